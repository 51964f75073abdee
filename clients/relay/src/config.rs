//! The relay's configuration: a TOML file, then the environment, then flags.
//!
//! Precedence, written down once: defaults < file < environment < flags. The file names the
//! destinations; the environment (`CAIRN_RELAY_HOME`, `CAIRN_RELAY_REPLICA`) and flags
//! (`--home`, `--replica`) override where the relay keeps its files. Secrets (webhook URLs,
//! tokens, signing secrets) are references: `env:NAME` or `file:PATH`; an inline secret works
//! but is reported as a problem worth fixing. A [`Secret`] never shows in `Debug` and is read
//! only when a request is built.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{Error, Result};

/// The example configuration, with every platform (a test parses it).
pub const EXAMPLE: &str = include_str!("../cairn-relay.example.toml");

/// The platforms the relay posts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Slack,
    Mattermost,
    Discord,
    Teams,
    Matrix,
    Webhook,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Mattermost => "mattermost",
            Kind::Discord => "discord",
            Kind::Teams => "teams",
            Kind::Matrix => "matrix",
            Kind::Webhook => "webhook",
        }
    }

    /// Whether the platform drops a second request carrying the same idempotency key (Matrix's
    /// transaction id; a Standard Webhooks receiver's `webhook-id`): only then is a message
    /// whose fate is unknown sent again.
    pub fn dedupes(self) -> bool {
        matches!(self, Kind::Matrix | Kind::Webhook)
    }
}

/// The parts of what happens in the team that a destination can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// Each recognition as it arrives.
    Recognitions,
    /// Each micro-action as it arrives.
    MicroActions,
    /// Notes of changes to the team (a commitment added or retired, a challenge started).
    TeamNotes,
    /// Celebrations of the team (a challenge reached, a team streak milestone).
    Celebrations,
    /// The weekly digest: the team's figures and quoted kudos of the week that ended, at the
    /// destination's `digest` time in the team's zone.
    Digest,
}

/// A secret as written in the config: a reference to where it lives, or the value inline.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// `env:NAME`: read from the environment variable `NAME`.
    Env(String),
    /// `file:PATH`: read from the file (its content, trailing whitespace trimmed).
    File(PathBuf),
    /// The value itself, inline in the config file.
    Inline(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "env:{name}"),
            Secret::File(path) => write!(f, "file:{}", path.display()),
            Secret::Inline(_) => f.write_str("<redacted>"),
        }
    }
}

impl Secret {
    /// Reads a secret reference as written in the config.
    pub fn parse(text: &str) -> Secret {
        if let Some(name) = text.strip_prefix("env:") {
            Secret::Env(name.to_owned())
        } else if let Some(path) = text.strip_prefix("file:") {
            Secret::File(PathBuf::from(path))
        } else {
            Secret::Inline(text.to_owned())
        }
    }

    /// The secret's value. Errors say where it was looked for, never what it holds.
    pub fn reveal(&self) -> std::result::Result<String, String> {
        match self {
            Secret::Env(name) => match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                Ok(_) => Err(format!("the environment variable {name} is empty")),
                Err(_) => Err(format!("the environment variable {name} is not set")),
            },
            Secret::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
                Ok(_) => Err(format!("the file {} is empty", path.display())),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            },
            Secret::Inline(v) => Ok(v.clone()),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Secret::parse(&text))
    }
}

/// One place the relay posts to.
#[derive(Clone, Debug)]
pub struct Destination {
    /// Its name in `status` and the queue (unique).
    pub name: String,
    pub kind: Kind,
    /// The webhook URL (Slack, Mattermost, Discord, Teams, webhook): a secret for the chat
    /// platforms, whose URL is the credential.
    pub url: Option<Secret>,
    /// Matrix: the homeserver's base URL (`https://matrix.example.org`).
    pub homeserver: Option<String>,
    /// Matrix: the room id (`!abc:example.org`).
    pub room: Option<String>,
    /// Matrix: the access token of the relay's user.
    pub access_token: Option<Secret>,
    /// Webhook: the Standard Webhooks signing secret (`whsec_` and base64).
    pub secret: Option<Secret>,
    /// What it is sent.
    pub parts: BTreeSet<Part>,
    /// When its weekly digest is due, in the team's zone (when `parts` asks for it).
    pub digest: crate::digest::Schedule,
}

/// A host or network that may be reached although its address is private.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// A host name as written in a URL (`chat.internal.example`).
    Host(String),
    /// A network (`10.1.0.0/16`, `fd00::/8`) or a single address.
    Net(IpAddr, u8),
}

impl Allowed {
    /// Reads `chat.internal`, `10.0.0.0/8`, `127.0.0.1` or `::1`.
    pub fn parse(text: &str) -> std::result::Result<Allowed, String> {
        let text = text.trim();
        if let Some((addr, bits)) = text.split_once('/') {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{text:?} is not a network (like 10.0.0.0/8)"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?;
            return Ok(Allowed::Net(addr, bits));
        }
        if let Ok(addr) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(Allowed::Net(addr, bits));
        }
        let host = text.to_ascii_lowercase();
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!("{text:?} is neither a host name nor a network"));
        }
        Ok(Allowed::Host(host))
    }
}

/// The whole configuration, with defaults filled in.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the relay keeps its queue (`relay.sqlite3`) and, by default, its replica.
    pub home: PathBuf,
    /// The team's replica the relay reads.
    pub replica: PathBuf,
    pub destinations: Vec<Destination>,
    /// Private, loopback or link-local hosts and networks that may be reached anyway.
    pub allow_private: Vec<Allowed>,
    /// Whether plain `http://` URLs are allowed (HTTPS only otherwise).
    pub allow_http: bool,
    /// An event that reaches the relay later than this after it happened is kept for the
    /// digest instead of posted alone.
    pub late_after: Duration,
    /// A destination that has failed for this long is disabled.
    pub disable_after: Duration,
    /// How long `run` waits between passes when nothing is due.
    pub poll_interval: Duration,
    /// Each request's whole time limit.
    pub timeout: Duration,
    /// Slash commands from chat (`[chat]`): where they are answered and how they are verified.
    pub chat: Option<crate::chat::ChatConfig>,
}

/// Problems found in a configuration, each with the field it concerns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    /// `(field, what is wrong)`: the configuration cannot be used.
    pub errors: Vec<(String, String)>,
    /// `(field, what is worth fixing)`: the configuration works.
    pub warnings: Vec<(String, String)>,
}

/// Overrides from the environment and flags, applied over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub home: Option<PathBuf>,
    pub replica: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    home: Option<PathBuf>,
    replica: Option<PathBuf>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    allow_private: Vec<String>,
    late_after_hours: Option<f64>,
    disable_after_days: Option<f64>,
    poll_interval_secs: Option<f64>,
    timeout_secs: Option<f64>,
    digest: Option<crate::digest::Schedule>,
    #[serde(default, rename = "destination")]
    destinations: Vec<FileDestination>,
    chat: Option<crate::chat::ChatConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDestination {
    name: String,
    kind: Kind,
    url: Option<Secret>,
    homeserver: Option<String>,
    room: Option<String>,
    access_token: Option<Secret>,
    secret: Option<Secret>,
    post: Option<Vec<Part>>,
    digest: Option<crate::digest::Schedule>,
}

/// The default home: the platform's data directory, `cairn-relay` in it.
pub fn default_home() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cairn-relay")
}

/// The default config file: the platform's config directory, `cairn-relay/config.toml`.
pub fn default_path() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cairn-relay")
        .join("config.toml")
}

fn duration(field: &str, value: Option<f64>, unit: f64, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v * unit < 1e9 => {
            Ok(Duration::from_secs_f64(v * unit))
        }
        Some(v) => Err(Error::Config(format!(
            "{field}: {v} is not a positive number of reasonable size"
        ))),
    }
}

impl Config {
    /// Reads the config file at `path` with `overrides` applied over it.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text, overrides)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Reads a configuration from TOML text with `overrides` applied over it. Only what cannot
    /// be represented fails here; [`Config::problems`] says what else is wrong.
    pub fn parse(text: &str, overrides: &Overrides) -> Result<Config> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            // toml's message carries the line and the field; keep it on one line.
            Error::Config(e.to_string().trim().replace('\n', " "))
        })?;
        let home = overrides
            .home
            .clone()
            .or(file.home)
            .unwrap_or_else(default_home);
        let replica = overrides
            .replica
            .clone()
            .or(file.replica)
            .unwrap_or_else(|| home.join("replica.sqlite3"));
        let mut allow_private = Vec::new();
        for (i, entry) in file.allow_private.iter().enumerate() {
            allow_private.push(
                Allowed::parse(entry)
                    .map_err(|e| Error::Config(format!("allow_private[{i}]: {e}")))?,
            );
        }
        let schedule = file.digest.unwrap_or_default();
        let destinations = file
            .destinations
            .into_iter()
            .map(|d| Destination {
                name: d.name,
                kind: d.kind,
                url: d.url,
                homeserver: d.homeserver,
                room: d.room,
                access_token: d.access_token,
                secret: d.secret,
                parts: d
                    .post
                    .map_or_else(|| BTreeSet::from([Part::Recognitions]), BTreeSet::from_iter),
                digest: d.digest.unwrap_or(schedule),
            })
            .collect();
        Ok(Config {
            home,
            replica,
            destinations,
            allow_private,
            allow_http: file.allow_http,
            late_after: duration(
                "late_after_hours",
                file.late_after_hours,
                3600.0,
                Duration::from_secs(6 * 3600),
            )?,
            disable_after: duration(
                "disable_after_days",
                file.disable_after_days,
                86_400.0,
                Duration::from_secs(3 * 86_400),
            )?,
            poll_interval: duration(
                "poll_interval_secs",
                file.poll_interval_secs,
                1.0,
                Duration::from_secs(60),
            )?,
            timeout: duration(
                "timeout_secs",
                file.timeout_secs,
                1.0,
                Duration::from_secs(20),
            )?,
            chat: file.chat,
        })
    }

    /// The destination named `name`.
    pub fn destination(&self, name: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// Everything wrong with this configuration, each with its field; secrets are read to see
    /// that they are there, never shown.
    pub fn problems(&self) -> Problems {
        let mut p = Problems::default();
        if self.destinations.is_empty() {
            p.errors.push((
                "destination".into(),
                "no destination: add a [[destination]] table".into(),
            ));
        }
        if let Some(chat) = &self.chat {
            chat.problems(&mut p.errors, &mut p.warnings);
        }
        let mut names = BTreeSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let at = |field: &str| format!("destination[{i}] ({}).{field}", d.name);
            if d.name.trim().is_empty() {
                p.errors.push((at("name"), "is empty".into()));
            } else if !names.insert(d.name.as_str()) {
                p.errors
                    .push((at("name"), "another destination has this name".into()));
            }
            if d.parts.is_empty() {
                p.warnings
                    .push((at("post"), "is empty: nothing will be posted here".into()));
            }
            // A generic webhook's URL is not its credential (its signing secret is).
            let url_is_secret = d.kind != Kind::Webhook;
            let secret = |p: &mut Problems, field: &str, s: &Option<Secret>, required: bool| match s
            {
                None if required => p.errors.push((at(field), "is missing".into())),
                None => {}
                Some(s) => {
                    if let Secret::Inline(_) = s
                        && (field != "url" || url_is_secret)
                    {
                        p.warnings.push((
                            at(field),
                            "is written inline: use env:NAME or file:PATH so the secret \
                                 stays out of the config file"
                                .into(),
                        ));
                    }
                    if let Err(e) = s.reveal() {
                        p.errors.push((at(field), e));
                    }
                }
            };
            match d.kind {
                Kind::Matrix => {
                    secret(&mut p, "access_token", &d.access_token, true);
                    match &d.homeserver {
                        None => p.errors.push((at("homeserver"), "is missing".into())),
                        Some(h) => {
                            if let Err(e) = self.check_url(h) {
                                p.errors.push((at("homeserver"), e));
                            }
                        }
                    }
                    match &d.room {
                        None => p.errors.push((at("room"), "is missing".into())),
                        Some(r) if !r.starts_with('!') || !r.contains(':') || r.len() < 4 => p
                            .errors
                            .push((at("room"), "must be a room id like !abc:example.org".into())),
                        Some(_) => {}
                    }
                    for (field, set) in [("url", d.url.is_some()), ("secret", d.secret.is_some())] {
                        if set {
                            p.errors
                                .push((at(field), "is not used by a matrix destination".into()));
                        }
                    }
                }
                kind => {
                    secret(&mut p, "url", &d.url, true);
                    if let Some(Ok(url)) = d.url.as_ref().map(Secret::reveal)
                        && let Err(e) = self.check_url(&url)
                    {
                        p.errors.push((at("url"), e));
                    }
                    if kind == Kind::Webhook {
                        secret(&mut p, "secret", &d.secret, true);
                        if let Some(Ok(s)) = d.secret.as_ref().map(Secret::reveal)
                            && let Err(e) = crate::format::webhook_key(&s)
                        {
                            p.errors.push((at("secret"), e));
                        }
                    } else if d.secret.is_some() {
                        p.errors.push((
                            at("secret"),
                            format!("is not used by a {} destination", kind.as_str()),
                        ));
                    }
                    for (field, set) in [
                        ("homeserver", d.homeserver.is_some()),
                        ("room", d.room.is_some()),
                        ("access_token", d.access_token.is_some()),
                    ] {
                        if set {
                            p.errors.push((
                                at(field),
                                format!("is not used by a {} destination", kind.as_str()),
                            ));
                        }
                    }
                }
            }
        }
        p
    }

    /// Whether `url` may be used: absolute, HTTPS (or HTTP when allowed), with a host. Where
    /// the host leads is checked when connecting ([`crate::net`]). The message never repeats
    /// the URL, which may be a secret.
    pub fn check_url(&self, url: &str) -> std::result::Result<(), String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("is not an absolute URL (like https://chat.example/hooks/...)")?;
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err("uses http: only https is allowed unless allow_http = true".into());
            }
            _ => return Err("must start with https://".into()),
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err("must not carry a user name or password before the host".into());
        }
        if authority.is_empty() {
            return Err("has no host".into());
        }
        url.parse::<ureq::http::Uri>()
            .map_err(|_| "is not a valid URL".to_owned())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_with_every_platform() {
        let c = Config::parse(EXAMPLE, &Overrides::default()).unwrap();
        let kinds: BTreeSet<&str> = c.destinations.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(
            kinds,
            BTreeSet::from([
                "discord",
                "matrix",
                "mattermost",
                "slack",
                "teams",
                "webhook"
            ])
        );
        assert_eq!(c.allow_private.len(), 2);
        // Its only problems are the secrets this machine does not hold.
        for (field, what) in c.problems().errors {
            assert!(
                what.contains("not set") || what.contains("cannot read"),
                "{field}: {what}"
            );
        }
    }

    #[test]
    fn the_digest_is_asked_for_and_its_time_set_at_the_top_or_per_destination() {
        let text = r#"
            digest = "friday 16:30"
            [[destination]]
            name = "a"
            kind = "discord"
            url = "https://d.example/x"
            post = ["recognitions", "digest"]
            [[destination]]
            name = "b"
            kind = "discord"
            url = "https://d.example/y"
            post = ["digest"]
            digest = "tue 08:00"
        "#;
        let c = Config::parse(text, &Overrides::default()).unwrap();
        assert!(c.destinations[0].parts.contains(&Part::Digest));
        assert_eq!(c.destinations[0].digest.to_string(), "friday 16:30");
        assert_eq!(c.destinations[1].digest.to_string(), "tuesday 08:00");
        // Off unless asked for; Monday 09:00 unless said otherwise.
        let c = Config::parse(EXAMPLE, &Overrides::default()).unwrap();
        let discord = c.destination("discord").unwrap();
        assert!(!discord.parts.contains(&Part::Digest));
        assert_eq!(discord.digest.to_string(), "monday 09:00");
        let e = Config::parse("digest = \"someday 9\"", &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("like \"monday 09:00\""), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::parse("hooks.slack.com/services/T0/B0/XYZ");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Secret::parse("env:SLACK")), "env:SLACK");
    }

    #[test]
    fn allowed_entries_parse() {
        assert_eq!(
            Allowed::parse("10.0.0.0/8").unwrap(),
            Allowed::Net("10.0.0.0".parse().unwrap(), 8)
        );
        assert_eq!(
            Allowed::parse("::1").unwrap(),
            Allowed::Net("::1".parse().unwrap(), 128)
        );
        assert_eq!(
            Allowed::parse("Chat.Internal").unwrap(),
            Allowed::Host("chat.internal".into())
        );
        assert!(Allowed::parse("10.0.0.0/40").is_err());
        assert!(Allowed::parse("a b").is_err());
    }

    #[test]
    fn flags_and_environment_override_the_file() {
        let text = "home = \"/from/file\"\n";
        let c = Config::parse(text, &Overrides::default()).unwrap();
        assert_eq!(c.home, PathBuf::from("/from/file"));
        assert_eq!(c.replica, PathBuf::from("/from/file/replica.sqlite3"));
        let c = Config::parse(
            text,
            &Overrides {
                home: Some("/from/flag".into()),
                replica: None,
            },
        )
        .unwrap();
        assert_eq!(c.home, PathBuf::from("/from/flag"));
        assert_eq!(c.late_after, Duration::from_secs(6 * 3600));
        assert_eq!(c.disable_after, Duration::from_secs(3 * 86_400));
    }

    #[test]
    fn urls_are_https_unless_http_is_allowed() {
        let mut c = Config::parse("", &Overrides::default()).unwrap();
        assert!(c.check_url("https://hooks.example/x").is_ok());
        assert!(c.check_url("http://hooks.example/x").is_err());
        assert!(c.check_url("ftp://hooks.example/x").is_err());
        assert!(c.check_url("https://user:pw@hooks.example/x").is_err());
        c.allow_http = true;
        assert!(c.check_url("http://hooks.example/x").is_ok());
    }

    #[test]
    fn problems_name_their_field() {
        let text = r#"
            [[destination]]
            name = "a"
            kind = "matrix"
            homeserver = "http://m.example"
            access_token = "inline-token"

            [[destination]]
            name = "a"
            kind = "webhook"
            url = "https://h.example/in"
            secret = "whsec_not base64!"
        "#;
        let c = Config::parse(text, &Overrides::default()).unwrap();
        let p = c.problems();
        let fields: Vec<&str> = p.errors.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"destination[0] (a).homeserver"), "{p:?}");
        assert!(fields.contains(&"destination[0] (a).room"), "{p:?}");
        assert!(fields.contains(&"destination[1] (a).name"), "{p:?}");
        assert!(fields.contains(&"destination[1] (a).secret"), "{p:?}");
        assert!(
            p.warnings
                .iter()
                .any(|(f, _)| f == "destination[0] (a).access_token"),
            "{p:?}"
        );
        // No message repeats a secret.
        assert!(!format!("{p:?}").contains("inline-token"));
    }
}
