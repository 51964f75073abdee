//! Kudos from chat: the `/kudos` slash command of Slack and Mattermost, answered over HTTP.
//!
//! `[chat]` in the config turns it on: `cairn-relay run` then listens at `listen` for
//! `POST /slack` and `POST /mattermost`. Every request is verified before its form is read for
//! anything else (Slack's `v0` signature within five minutes of its timestamp, Mattermost's
//! token compared in constant time); one that is not is answered 401 with an empty body, and
//! nothing is done. A verified command is answered at once with a private (ephemeral) reply;
//! the write and the sync happen after, on the chat worker ([`serve`]).
//!
//! A member links their chat user once: `cairn device link` prints a one-time code, and
//! `/kudos link CODE` makes the relay join with it as a new device of that member, with a
//! replica of its own ([`crate::links`]). From then on a `/kudos` they type is written by that
//! device, through the same writer as `cairn kudos`: the event is theirs, in their journal.
//! Mentions map to members only through links (Slack's `<@U123|name>` by user id, Mattermost's
//! `@username` by the username seen when that user linked or last typed a command); nobody is
//! ever found by a display name.
//!
//! The listener is small and bounded: one request per connection, a head of at most 8 KiB, a
//! body of at most 16 KiB (slash command forms are small), 5 s to send both, at most
//! [`MAX_CONNECTIONS`] at once.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use cairn_client::sync::{self, Client, Device, Options};
use cairn_client::write::{Clock, Writer};
use cairn_core::{NewEvent, TeamState};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::config::{Config, Secret};
use crate::links::{ChatUser, Link, Links, Platform};
use crate::{Error, Result};

/// The most connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;
/// The largest body taken (a slash command's form is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;
/// The largest request line and headers taken.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How far a Slack request's timestamp may be from now, either way.
pub const SLACK_WINDOW_S: i64 = 5 * 60;
/// How long a `/kudos link` waits for its outcome before it answers that the link is under way
/// (the outcome then follows through the command's `response_url`): platforms give a command
/// 3 s.
pub const LINK_PATIENCE: Duration = Duration::from_millis(1_500);
/// How often the worker tries again to send what linked devices wrote and could not send.
pub const RETRY_EVERY: Duration = Duration::from_secs(60);

/// The `[chat]` section of the config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Where the slash commands are answered (`127.0.0.1:3030`, behind an HTTPS proxy).
    pub listen: SocketAddr,
    /// The team's server, which link codes are spent at; default: the server of the relay's
    /// own replica.
    pub server: Option<String>,
    /// Slack: the app's signing secret.
    pub slack_signing_secret: Option<Secret>,
    /// Mattermost: the slash command's token.
    pub mattermost_token: Option<Secret>,
}

impl ChatConfig {
    /// What is wrong with the section, each with its field, added to `errors` and `warnings`.
    pub fn problems(
        &self,
        errors: &mut Vec<(String, String)>,
        warnings: &mut Vec<(String, String)>,
    ) {
        if self.slack_signing_secret.is_none() && self.mattermost_token.is_none() {
            errors.push((
                "chat".into(),
                "neither slack_signing_secret nor mattermost_token: no command could be verified"
                    .into(),
            ));
        }
        for (field, secret) in [
            ("chat.slack_signing_secret", &self.slack_signing_secret),
            ("chat.mattermost_token", &self.mattermost_token),
        ] {
            let Some(s) = secret else { continue };
            if let Secret::Inline(_) = s {
                warnings.push((
                    field.into(),
                    "is written inline: use env:NAME or file:PATH so the secret stays out of \
                     the config file"
                        .into(),
                ));
            }
            if let Err(e) = s.reveal() {
                errors.push((field.into(), e));
            }
        }
        if let Some(url) = &self.server
            && sync::normalise_url(url).is_err()
        {
            errors.push((
                "chat.server".into(),
                "is not a server address (like https://cairn.example.org)".into(),
            ));
        }
    }
}

/// The secrets requests are verified with, read once when the listener starts.
#[derive(Clone)]
pub struct Keys {
    pub slack_signing_secret: Option<String>,
    pub mattermost_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("Keys")
            .field("slack_signing_secret", &shown(&self.slack_signing_secret))
            .field("mattermost_token", &shown(&self.mattermost_token))
            .finish()
    }
}

impl Keys {
    /// Reads the secrets `chat` names; the error names the field, never the value.
    pub fn read(chat: &ChatConfig) -> Result<Keys> {
        let read = |field: &str, s: &Option<Secret>| {
            s.as_ref()
                .map(|s| {
                    s.reveal()
                        .map_err(|e| Error::Config(format!("chat.{field}: {e}")))
                })
                .transpose()
        };
        Ok(Keys {
            slack_signing_secret: read("slack_signing_secret", &chat.slack_signing_secret)?,
            mattermost_token: read("mattermost_token", &chat.mattermost_token)?,
        })
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths alone.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn slack_mac(secret: &str, timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    Some(mac)
}

/// Slack's signature of a request: `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`
/// keyed with the signing secret.
pub fn slack_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    slack_mac(secret, timestamp, body).map_or_else(String::new, |mac| {
        format!("v0={}", hex(&mac.finalize().into_bytes()))
    })
}

/// Whether a Slack request is Slack's: its timestamp within [`SLACK_WINDOW_S`] of `now_s`
/// either way, and its signature right (compared in constant time).
pub fn slack_verified(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_s: i64,
) -> bool {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return false;
    };
    let Ok(at) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if now_s.abs_diff(at) > SLACK_WINDOW_S.unsigned_abs() {
        return false;
    }
    let Some(given) = signature.trim().strip_prefix("v0=").and_then(unhex) else {
        return false;
    };
    slack_mac(secret, timestamp.trim(), body).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

/// Whether a Mattermost request carries the command's token (compared in constant time).
pub fn mattermost_verified(token: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| same(g.as_bytes(), token.as_bytes()))
}

/// Someone named in a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mention {
    /// Slack's escaped mention `<@U123|name>`: the user id (and the name as Slack showed it).
    User { id: String, shown: String },
    /// Mattermost's `@username` (and on Slack, an `@word` that is no user Slack knew).
    Name(String),
}

impl Mention {
    /// How the mention reads in a reply: `@` and the name as typed, kept to the characters a
    /// username has (a reply never carries markup someone typed).
    pub fn shown(&self) -> String {
        let name = match self {
            Mention::User { id, shown } if shown.is_empty() => id,
            Mention::User { shown, .. } => shown,
            Mention::Name(n) => n,
        };
        let clean: String = name
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(64)
            .collect();
        format!("@{clean}")
    }
}

/// What a `/kudos` command asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Link(String),
    Unlink,
    Kudos {
        to: Vec<Mention>,
        text: String,
        pillar: Option<String>,
    },
    /// Something that is none of these: why.
    Unclear(String),
}

/// Slack's escapes in a command's text undone: `&amp;`, `&lt;`, `&gt;`.
fn slack_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A Slack `<@U123|name>` or `<@U123>` word as a mention.
fn slack_mention(word: &str) -> Option<Mention> {
    let inner = word.strip_prefix("<@")?.strip_suffix('>')?;
    let (id, shown) = inner.split_once('|').unwrap_or((inner, ""));
    let ok = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then(|| Mention::User {
        id: id.to_owned(),
        shown: shown.to_owned(),
    })
}

/// Slack's escaped words (`<@U1|ben>`, `<#C1|general>`, `<!here>`, `<https://x|label>`) as
/// they read.
fn slack_plain(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        let shown = match target.chars().next() {
            Some('@') if !label.is_empty() => format!("@{label}"),
            Some('#') if !label.is_empty() => format!("#{label}"),
            Some('!') => {
                let name = target.strip_prefix('!').unwrap_or(target);
                format!("@{}", if label.is_empty() { name } else { label })
            }
            _ if !label.is_empty() => label.to_owned(),
            _ => target.to_owned(),
        };
        out.push_str(&shown);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    slack_unescape(&out)
}

/// A `#pillar` word (`#trust`, Slack's `<#C123|trust>`): the pillar's name.
fn pillar_word(platform: Platform, word: &str) -> Option<String> {
    let name = match platform {
        Platform::Slack if word.starts_with("<#") => {
            let inner = word.strip_prefix("<#")?.strip_suffix('>')?;
            inner.split_once('|')?.1.to_owned()
        }
        _ => word.strip_prefix('#')?.to_owned(),
    };
    let name = name.trim_end_matches(['.', '!', ',']);
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_'))
    .then(|| name.to_owned())
}

/// Reads a command's text: `help`, `link CODE`, `unlink`, or `@who [@who ...] what for
/// [#pillar]` (the mentions first, the pillar last).
pub fn parse(platform: Platform, text: &str) -> Command {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.first().map(|w| w.to_ascii_lowercase()).as_deref() {
        None | Some("help") => return Command::Help,
        Some("link") => {
            return match words.get(1..) {
                Some([code]) => Command::Link((*code).to_owned()),
                _ => Command::Unclear(
                    "`/kudos link` takes the code `cairn device link` printed".into(),
                ),
            };
        }
        Some("unlink") if words.len() == 1 => return Command::Unlink,
        _ => {}
    }
    let mut to = Vec::new();
    let mut n = 0;
    for w in &words {
        let mention = match platform {
            Platform::Slack => slack_mention(w.trim_end_matches([',', ':'])).or_else(|| {
                let name = w.strip_prefix('@')?;
                (!name.is_empty()).then(|| Mention::Name(slack_unescape(name)))
            }),
            Platform::Mattermost => w
                .strip_prefix('@')
                .map(|n| n.trim_end_matches([',', ':', '.']))
                .filter(|n| !n.is_empty())
                .map(|n| Mention::Name(n.to_owned())),
        };
        match mention {
            Some(m) => {
                if !to.contains(&m) {
                    to.push(m);
                }
                n += 1;
            }
            None => break,
        }
    }
    if to.is_empty() {
        return Command::Unclear(
            "a kudos names a teammate first, like `/kudos @ben thanks for the review`".into(),
        );
    }
    let mut rest = &words[n..];
    if let [only] = rest
        && pillar_word(platform, only).is_some()
    {
        rest = &[];
    }
    let mut pillar = None;
    if let Some((last, before)) = rest.split_last()
        && !before.is_empty()
        && let Some(p) = pillar_word(platform, last)
    {
        pillar = Some(p);
        rest = before;
    }
    let text = rest.join(" ");
    let text = match platform {
        Platform::Slack => slack_plain(&text),
        Platform::Mattermost => text,
    };
    if text.trim().is_empty() {
        return Command::Unclear(
            "say what you thank them for, like `/kudos @ben thanks for the review`".into(),
        );
    }
    Command::Kudos { to, text, pillar }
}

/// How a command's slash reads in replies (`/kudos`, or what the platform says it was).
fn slash(command: &str) -> &str {
    let name = command.strip_prefix('/').unwrap_or("");
    let plain = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain { command } else { "/kudos" }
}

/// The help reply.
pub fn help(cmd: &str) -> String {
    format!(
        "*{cmd}* thanks teammates in cairn, as you:\n\
         • `{cmd} @ben thanks for the calm write-up #trust`: a kudos to @ben (name several: \
         `{cmd} @ben @cy ...`); a `#pillar` at the end says which pillar it serves\n\
         • `{cmd} link CODE`: link your chat user to your cairn member once (run `cairn device \
         link` for a code); the relay then holds a device of yours that writes your kudos\n\
         • `{cmd} unlink`: undo the link\n\
         Only linked teammates can be thanked from here: each links their own chat user."
    )
}

fn how_to_link(cmd: &str) -> String {
    format!(
        "run `cairn device link` where you use cairn, then type `{cmd} link CODE` here with the \
         code it prints (valid 15 minutes)"
    )
}

/// The JSON body of a private reply, as both platforms take it.
pub fn ephemeral(text: &str) -> Vec<u8> {
    serde_json::json!({ "response_type": "ephemeral", "text": text })
        .to_string()
        .into_bytes()
}

/// A request as the listener read it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, and a JSON body (empty for a refusal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    fn refused() -> Response {
        Response {
            status: 401,
            body: Vec::new(),
        }
    }

    fn say(text: &str) -> Response {
        Response {
            status: 200,
            body: ephemeral(text),
        }
    }
}

/// What the chat side tells the binary (never a secret, a code or a member's words).
#[derive(Clone, Debug)]
pub enum News {
    /// A chat user linked a device of `member`.
    Linked { platform: Platform, member: String },
    /// A link was undone.
    Unlinked { platform: Platform, member: String },
    /// A kudos from chat was written by the linked device of `member` (its sync comes next).
    Written { member: String, event: String },
    /// A kudos written from chat reached the server.
    Sent { member: String, event: String },
    /// What the linked device of `member` wrote earlier and had not sent (a server that was
    /// down, a relay stopped mid-sync) reached the server.
    Flushed { member: String },
    /// The linked device of `member` brought the team as the server has it now.
    Refreshed { member: String },
    /// Something failed; what it was.
    Failed(String),
}

impl std::fmt::Display for News {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            News::Linked { platform, member } => write!(
                f,
                "a {} user linked a device of member {member}",
                platform.as_str()
            ),
            News::Unlinked { platform, member } => write!(
                f,
                "a {} user unlinked the device of member {member}",
                platform.as_str()
            ),
            News::Written { member, event } => write!(
                f,
                "kudos written by the linked device of member {member} ({event}); syncing"
            ),
            News::Sent { member, event } => {
                write!(f, "sent kudos {event} by member {member} to the server")
            }
            News::Flushed { member } => write!(
                f,
                "what the linked device of member {member} held is on the server now"
            ),
            News::Refreshed { member } => write!(
                f,
                "the linked device of member {member} brought the team as it is now"
            ),
            News::Failed(e) => f.write_str(e),
        }
    }
}

/// Where a `/kudos link`'s outcome goes: to the request still waiting, or after it through
/// the `response_url`.
#[derive(Debug, Default)]
struct Rendezvous {
    state: Mutex<(Option<String>, bool)>,
    done: Condvar,
}

impl Rendezvous {
    /// Gives `text` to the waiting request; false when it stopped waiting.
    fn give(&self, text: String) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.1 {
            return false;
        }
        s.0 = Some(text);
        self.done.notify_all();
        true
    }

    /// Waits up to `limit` for the outcome; None (and no outcome taken later) when it passes.
    fn wait(&self, limit: Duration) -> Option<String> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut s, _) = self
            .done
            .wait_timeout_while(s, limit, |s| s.0.is_none())
            .unwrap_or_else(|e| e.into_inner());
        let out = s.0.take();
        if out.is_none() {
            s.1 = true;
        }
        out
    }
}

/// Work done after answering, one job at a time.
enum Job {
    Link {
        chat: ChatUser,
        username: String,
        code: String,
        cmd: String,
        answer: Arc<Rendezvous>,
        response_url: Option<String>,
    },
    Kudos {
        link: Link,
        to: Vec<String>,
        text: String,
        pillar: Option<String>,
        /// Sync before writing: a recipient is newer than the team the relay holds.
        fresh: bool,
        response_url: Option<String>,
    },
    Unlink {
        link: Link,
    },
    /// Bring the team to a linked device (a pillar typed that it did not know).
    Refresh {
        link: Link,
    },
}

/// The chat side's state, shared by the connections and the worker.
struct Chat {
    keys: Keys,
    cfg: Config,
    server: Option<String>,
    links: Mutex<Links>,
    /// Each link's team as its replica last read, for answering before anything is written.
    teams: Mutex<HashMap<String, TeamState>>,
    /// The links whose device the server refused for good (revoked): not synced again, and
    /// their users told.
    refused: Mutex<std::collections::HashSet<String>>,
    jobs: mpsc::SyncSender<Job>,
    agent: ureq::Agent,
    news: Arc<dyn Fn(News) + Send + Sync>,
    replays: Mutex<Replays>,
}

/// The Slack signatures seen while they could still be valid: a request sent again as it was
/// (a replay by whoever saw it) is refused like a wrong one.
#[derive(Debug, Default)]
pub struct Replays {
    seen: std::collections::VecDeque<(i64, String)>,
}

impl Replays {
    /// The most signatures remembered; past it the oldest is forgotten.
    pub const MAX: usize = 10_000;

    /// Whether `signature`, verified at `now_s`, is new; remembers it.
    pub fn first(&mut self, signature: &str, now_s: i64) -> bool {
        // A timestamp may be up to the window ahead of now: keep twice the window.
        while self
            .seen
            .front()
            .is_some_and(|(at, _)| *at < now_s - 2 * SLACK_WINDOW_S)
        {
            self.seen.pop_front();
        }
        if self.seen.iter().any(|(_, s)| s == signature) {
            return false;
        }
        if self.seen.len() >= Self::MAX {
            self.seen.pop_front();
        }
        self.seen.push_back((now_s, signature.to_owned()));
        true
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The team's server: `[chat] server`, else the relay's own replica's.
fn server_of(cfg: &Config, chat: &ChatConfig) -> Option<String> {
    if let Some(s) = &chat.server {
        return sync::normalise_url(s).ok();
    }
    cairn_store::Replica::open(&cfg.replica)
        .ok()
        .and_then(|r| r.remote().ok().flatten())
        .map(|r| r.url)
}

/// The form's value of `name`.
fn field<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Chat {
    fn say_later(&self, response_url: Option<&str>, text: &str) {
        let Some(url) = response_url else { return };
        if self.cfg.check_url(url).is_err() {
            (self.news)(News::Failed(
                "a command's response_url is not one the relay may reach (https, or allow_http)"
                    .into(),
            ));
            return;
        }
        let agent = self.agent.clone();
        let url = url.to_owned();
        let body = ephemeral(text);
        let news = Arc::clone(&self.news);
        std::thread::spawn(move || {
            let sent = agent
                .post(&url)
                .header("content-type", "application/json")
                .send(&body[..]);
            if let Err(e) = sent {
                news(News::Failed(format!(
                    "a reply through a command's response_url failed: {e}"
                )));
            }
        });
    }

    /// Answers one request.
    fn respond(&self, req: &Request, now_s: i64) -> Response {
        let platform = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/healthz") => {
                return Response {
                    status: 200,
                    body: b"ok\n".to_vec(),
                };
            }
            ("POST", "/slack") if self.keys.slack_signing_secret.is_some() => Platform::Slack,
            ("POST", "/mattermost") if self.keys.mattermost_token.is_some() => Platform::Mattermost,
            _ => {
                return Response {
                    status: 404,
                    body: Vec::new(),
                };
            }
        };
        let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
        let verified = match platform {
            Platform::Slack => self.keys.slack_signing_secret.as_deref().is_some_and(|s| {
                slack_verified(
                    s,
                    req.header("x-slack-request-timestamp"),
                    req.header("x-slack-signature"),
                    &req.body,
                    now_s,
                )
            }),
            Platform::Mattermost => self
                .keys
                .mattermost_token
                .as_deref()
                .is_some_and(|t| mattermost_verified(t, field(&form, "token"))),
        };
        if !verified {
            return Response::refused();
        }
        if platform == Platform::Slack {
            let signature = req.header("x-slack-signature").unwrap_or("");
            let mut replays = self.replays.lock().unwrap_or_else(|e| e.into_inner());
            if !replays.first(signature, now_s) {
                return Response::refused();
            }
        }
        if field(&form, "ssl_check") == Some("1") {
            return Response {
                status: 200,
                body: Vec::new(),
            };
        }
        let (Some(workspace), Some(user)) = (field(&form, "team_id"), field(&form, "user_id"))
        else {
            return Response::say("cairn could not tell who typed this (no team_id or user_id).");
        };
        let chat = ChatUser {
            platform,
            workspace: workspace.to_owned(),
            user: user.to_owned(),
        };
        let username = field(&form, "user_name").unwrap_or("").to_owned();
        let cmd = slash(field(&form, "command").unwrap_or("/kudos")).to_owned();
        let response_url = field(&form, "response_url")
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let text = field(&form, "text").unwrap_or("");
        let outcome = match parse(platform, text) {
            Command::Help => Ok(help(&cmd)),
            Command::Unclear(why) => Ok(format!("{why}. `{cmd} help` shows what it takes.")),
            Command::Link(code) => self.link(chat, username, code, cmd, response_url),
            Command::Unlink => self.unlink(&chat, &cmd),
            Command::Kudos { to, text, pillar } => {
                self.kudos(&chat, &username, &to, text, pillar, &cmd, response_url)
            }
        };
        match outcome {
            Ok(text) => Response::say(&text),
            Err(e) => {
                (self.news)(News::Failed(e.to_string()));
                Response::say(
                    "cairn's relay failed to read its links; nothing was written. Try again in a minute.",
                )
            }
        }
    }

    fn link(
        &self,
        chat: ChatUser,
        username: String,
        code: String,
        cmd: String,
        response_url: Option<String>,
    ) -> Result<String> {
        if let Some(link) = self.lock_links().by_user(&chat)? {
            let who = self.member_name(&link);
            return Ok(format!(
                "You are linked already (to {who}). `{cmd} unlink` first to link again."
            ));
        }
        let answer = Arc::new(Rendezvous::default());
        let job = Job::Link {
            chat,
            username,
            code,
            cmd,
            answer: Arc::clone(&answer),
            response_url,
        };
        if self.jobs.try_send(job).is_err() {
            return Ok(
                "cairn's relay is busy: try again in a minute (your code is not spent).".into(),
            );
        }
        Ok(answer.wait(LINK_PATIENCE).unwrap_or_else(|| {
            "Linking: the team's server is slow to answer. I will tell you here when it is done."
                .into()
        }))
    }

    fn unlink(&self, chat: &ChatUser, cmd: &str) -> Result<String> {
        let Some(link) = self.lock_links().remove(chat)? else {
            return Ok(format!(
                "You are not linked. {}",
                capitalise(&how_to_link(cmd))
            ));
        };
        let who = self.member_name(&link);
        (self.news)(News::Unlinked {
            platform: chat.platform,
            member: link.member.clone(),
        });
        let device = link.device.clone();
        // Its replica goes once what it wrote is sent (the worker tries).
        let _ = self.jobs.try_send(Job::Unlink { link });
        Ok(format!(
            "Unlinked: your kudos from here are no longer written as {who}. The relay's device \
             ({device}) can be revoked by the server's admin (`cairn-server device revoke \
             {device}`) or from your own devices."
        ))
    }

    fn lock_links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_refused(&self, link: &Link) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&link.id)
    }

    fn team_of(&self, link: &Link) -> Option<TeamState> {
        let teams = self.teams.lock().unwrap_or_else(|e| e.into_inner());
        teams.get(&link.id).cloned()
    }

    fn member_name(&self, link: &Link) -> String {
        self.team_of(link)
            .and_then(|t| {
                t.member(&link.member)
                    .map(|m| format!("{} (@{})", m.name, m.handle))
            })
            .unwrap_or_else(|| "your cairn member".into())
    }

    #[allow(clippy::too_many_arguments)]
    fn kudos(
        &self,
        chat: &ChatUser,
        username: &str,
        to: &[Mention],
        text: String,
        pillar: Option<String>,
        cmd: &str,
        response_url: Option<String>,
    ) -> Result<String> {
        let mut links = self.lock_links();
        let Some(me) = links.by_user(chat)? else {
            return Ok(format!(
                "Your chat user is not linked to a cairn member yet, so nothing was written. To \
                 link it, {}.",
                how_to_link(cmd)
            ));
        };
        if chat.platform == Platform::Mattermost {
            links.seen_as(chat, username)?;
        }
        let mut members = Vec::new();
        let mut shown = Vec::new();
        let mut unlinked = Vec::new();
        for m in to {
            let found = match m {
                Mention::User { id, .. } => links.by_user(&ChatUser {
                    platform: chat.platform,
                    workspace: chat.workspace.clone(),
                    user: id.clone(),
                })?,
                Mention::Name(name) if chat.platform == Platform::Mattermost => {
                    links.by_username(chat.platform, &chat.workspace, name)?
                }
                // On Slack an `@word` Slack did not turn into a user is nobody's.
                Mention::Name(_) => None,
            };
            match found {
                Some(l) => {
                    members.push(l.member);
                    shown.push(m.shown());
                }
                None => unlinked.push(m.shown()),
            }
        }
        drop(links);
        if !unlinked.is_empty() {
            let (who, have) = if unlinked.len() == 1 {
                (unlinked[0].clone(), "has")
            } else {
                (unlinked.join(", "), "have")
            };
            return Ok(format!(
                "{who} {have} not linked their chat user to cairn, so nothing was written. To \
                 link, they {}. (In Slack, pick them from the list as you type @ so Slack sends \
                 who they are.)",
                how_to_link(cmd).replacen("run", "can run", 1)
            ));
        }
        if self.is_refused(&me) {
            return Ok(format!(
                "The team's server no longer takes your linked device (it was revoked), so \
                 nothing was written. `{cmd} unlink`, then link again with a new code from \
                 `cairn device link`."
            ));
        }
        let Some(team) = self.team_of(&me) else {
            return Ok("Your linked device has not brought the team yet: try again in a minute. Nothing was written.".into());
        };
        // The same rules the write applies, checked now so the reply can say what is wrong.
        let checked =
            NewEvent::kudos(members.clone(), &text, pillar.clone()).validate(&team, &me.member);
        let fresh = match checked {
            Ok(_) => false,
            // A teammate who joined after the device last synced: the worker brings the team
            // before it writes (the pillar and the text were checked before the recipients).
            Err(cairn_core::Error::UnknownMember(id)) if id != me.member => true,
            Err(e @ cairn_core::Error::UnknownPillar { .. }) => {
                // Perhaps a pillar added since the device last synced: it syncs now, so the
                // next try knows it.
                let _ = self.jobs.try_send(Job::Refresh { link: me });
                return Ok(format!(
                    "Nothing was written: {e}. (A pillar added just now is known in a moment: \
                     try again.)"
                ));
            }
            Err(e) => return Ok(format!("Nothing was written: {e}.")),
        };
        let names: Vec<String> = members
            .iter()
            .zip(&shown)
            .map(|(id, shown)| {
                team.member(id)
                    .map_or_else(|| shown.clone(), |m| m.name.clone())
            })
            .collect();
        let job = Job::Kudos {
            link: me,
            to: members,
            text,
            pillar,
            fresh,
            response_url,
        };
        if self.jobs.try_send(job).is_err() {
            return Ok("cairn's relay is busy: nothing was written. Try again in a minute.".into());
        }
        Ok(format!(
            "Thanks to {} on its way: written as you by your linked device, it reaches the \
             team at once.",
            names.join(", ")
        ))
    }

    /// Runs the jobs, one at a time, and at the start and every [`RETRY_EVERY`] syncs the
    /// linked devices that have something to send or no team yet.
    fn work(&self, jobs: mpsc::Receiver<Job>) {
        // What a previous process wrote and did not send goes first.
        self.retry_all();
        let mut retried = Instant::now();
        loop {
            // Due every RETRY_EVERY even while jobs keep coming.
            if retried.elapsed() >= RETRY_EVERY {
                self.retry_all();
                retried = Instant::now();
            }
            match jobs.recv_timeout(RETRY_EVERY.saturating_sub(retried.elapsed())) {
                Ok(Job::Link {
                    chat,
                    username,
                    code,
                    cmd,
                    answer,
                    response_url,
                }) => {
                    let text = self.do_link(chat, username, &code, &cmd);
                    if !answer.give(text.clone()) {
                        self.say_later(response_url.as_deref(), &text);
                    }
                }
                Ok(Job::Kudos {
                    link,
                    to,
                    text,
                    pillar,
                    fresh,
                    response_url,
                }) => {
                    if let Err(e) = self.do_kudos(&link, &to, &text, pillar, fresh) {
                        (self.news)(News::Failed(format!(
                            "a kudos from chat by {} did not reach the team: {e}",
                            link.member
                        )));
                        self.say_later(
                            response_url.as_deref(),
                            &format!("Your kudos did not reach the team: {e}."),
                        );
                    }
                }
                Ok(Job::Refresh { link }) => {
                    if !self.is_refused(&link)
                        && let Ok(mut device) = Device::open(&self.path_of(&link), sync::TIMEOUT)
                        && self.sync(&link, &mut device, None)
                    {
                        (self.news)(News::Refreshed {
                            member: link.member.clone(),
                        });
                    }
                }
                Ok(Job::Unlink { link }) => {
                    // What it wrote and has not sent goes first, if the server answers.
                    let refused = self
                        .refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&link.id);
                    if !refused
                        && let Ok(mut device) = Device::open(&self.path_of(&link), sync::TIMEOUT)
                        && sync::has_work(&device.replica)
                    {
                        let _ = device.sync(now_ms(), Options::ASKED, &mut |_| {});
                    }
                    self.teams
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&link.id);
                    if let Err(e) = self.lock_links().remove_dir(&link.id) {
                        (self.news)(News::Failed(e.to_string()));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn path_of(&self, link: &Link) -> PathBuf {
        self.lock_links().replica_path(&link.id)
    }

    fn retry_all(&self) {
        let all = match self.lock_links().all() {
            Ok(all) => all,
            Err(e) => {
                (self.news)(News::Failed(e.to_string()));
                return;
            }
        };
        for link in all {
            if self.is_refused(&link) {
                continue;
            }
            let Ok(mut device) = Device::open(&self.path_of(&link), sync::TIMEOUT) else {
                continue;
            };
            // What it wrote and could not send; or a team it has not brought yet (its first
            // sync failed).
            let known = self
                .teams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&link.id);
            let work = sync::has_work(&device.replica);
            if !(known || work) {
                continue;
            }
            if self.sync(&link, &mut device, None) && work {
                (self.news)(News::Flushed {
                    member: link.member.clone(),
                });
            }
        }
    }

    /// Syncs a linked device; keeps its team for answering; says what went out. Returns
    /// whether the sync went through.
    fn sync(&self, link: &Link, device: &mut Device, event: Option<String>) -> bool {
        let synced = match device.sync(now_ms(), Options::ASKED, &mut |_| {}) {
            Ok(_) => {
                if let Some(event) = event {
                    (self.news)(News::Sent {
                        member: link.member.clone(),
                        event,
                    });
                }
                true
            }
            Err(e) if e.is_for_good() => {
                (self.news)(News::Failed(format!(
                    "the server refused the linked device of {} for good (revoked?); it is not \
                     tried again until its user links again: {e}",
                    link.member
                )));
                sync::problem::remember(
                    &mut device.replica,
                    &sync::problem::Problem {
                        message: e.to_string(),
                        hint: Some("unlink and link again".into()),
                        at_ms: now_ms(),
                    },
                );
                self.refused
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(link.id.clone());
                false
            }
            Err(e) => {
                (self.news)(News::Failed(format!(
                    "the linked device of {} did not sync (it tries again within a minute): {e}",
                    link.member
                )));
                false
            }
        };
        if let Ok(team) = device.replica.team() {
            self.teams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(link.id.clone(), team);
        }
        synced
    }

    fn do_kudos(
        &self,
        link: &Link,
        to: &[String],
        text: &str,
        pillar: Option<String>,
        fresh: bool,
    ) -> std::result::Result<(), String> {
        let mut device =
            Device::open(&self.path_of(link), sync::TIMEOUT).map_err(|e| e.to_string())?;
        if fresh {
            let _ = self.sync(link, &mut device, None);
        }
        // The relay does not know where the member is: the team's zone stands in.
        let clock = Clock::new(jiff::Timestamp::now(), jiff::tz::TimeZone::unknown());
        let id = {
            let mut w = Writer::new(&mut device.replica, clock, None).map_err(|e| e.to_string())?;
            let handles: Vec<String> = to
                .iter()
                .map(|id| {
                    w.team
                        .member(id)
                        .map(|m| m.handle.clone())
                        .ok_or_else(|| "a teammate named is no longer in the team".to_owned())
                })
                .collect::<std::result::Result<_, _>>()?;
            let handles: Vec<&str> = handles.iter().map(String::as_str).collect();
            w.kudos(&handles, text, pillar).map_err(|e| e.to_string())?
        };
        (self.news)(News::Written {
            member: link.member.clone(),
            event: id.as_str().to_owned(),
        });
        if !self.sync(link, &mut device, Some(id.as_str().to_owned())) && self.is_refused(link) {
            return Err(
                "the team's server no longer takes your linked device (it was revoked); \
                 unlink, then link again with a new code"
                    .into(),
            );
        }
        Ok(())
    }

    fn do_link(&self, chat: ChatUser, username: String, code: &str, cmd: &str) -> String {
        let Some(server) = self.server.clone() else {
            (self.news)(News::Failed(
                "a /kudos link came, but the relay knows no server: set [chat] server".into(),
            ));
            return "cairn's relay does not know the team's server yet, so it cannot link you. \
                    Tell whoever runs it (`server` in its `[chat]` config). Your code is not spent."
                .into();
        };
        match self.lock_links().by_user(&chat) {
            Ok(Some(_)) => {
                return format!("You are linked already. `{cmd} unlink` first to link again.");
            }
            Ok(None) => {}
            Err(e) => {
                (self.news)(News::Failed(e.to_string()));
                return "cairn's relay failed to read its links: try again in a minute.".into();
            }
        }
        let made = self.lock_links().new_dir();
        let id = match made {
            Ok(id) => id,
            Err(e) => {
                (self.news)(News::Failed(e.to_string()));
                return "cairn's relay could not make room for your device: try again later. Your code is not spent.".into();
            }
        };
        let path = self.path_of(&Link {
            id: id.clone(),
            chat: chat.clone(),
            username: String::new(),
            member: String::new(),
            device: String::new(),
            created_ms: 0,
        });
        let client = Client::new(&server, None, sync::TIMEOUT);
        let request = cairn_protocol::JoinRequest {
            invite: code.trim().to_owned(),
            device_name: format!("cairn-relay: {} {}", chat.platform.as_str(), username)
                .trim()
                .chars()
                .take(80)
                .collect(),
            ..cairn_protocol::JoinRequest::default()
        };
        let response = match sync::register(&client, &request) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.lock_links().remove_dir(&id);
                if e.refusal().is_some() && e.is_for_good() {
                    return format!(
                        "That code did not link you: it is wrong, spent or expired (a code \
                         works once, for 15 minutes). Run `cairn device link` for a new one and \
                         type `{cmd} link CODE` again."
                    );
                }
                (self.news)(News::Failed(format!(
                    "a link could not reach the server: {e}"
                )));
                return "The team's server did not take the code just now (it may be down or busy): try again in a minute.".into();
            }
        };
        if response.member_id.is_empty() {
            let _ = self.lock_links().remove_dir(&id);
            return format!(
                "That code is not a member's: run `cairn device link` for your own and type \
                 `{cmd} link CODE` again."
            );
        }
        let begun = sync::begin(&path, &server, &response, None, None, "UTC", now_ms());
        let replica = match begun {
            Ok((replica, _)) => replica,
            Err(e) => {
                let _ = self.lock_links().remove_dir(&id);
                (self.news)(News::Failed(format!("a linked device's replica: {e}")));
                return "The code was taken but the relay could not keep the device: ask whoever runs it. Run `cairn device link` for a new code to try again.".into();
            }
        };
        let link = Link {
            id: id.clone(),
            chat: chat.clone(),
            username,
            member: response.member_id.clone(),
            device: response.device_id.clone(),
            created_ms: now_ms(),
        };
        if let Err(e) = self.lock_links().add(&link) {
            (self.news)(News::Failed(e.to_string()));
            return "The code was taken but the relay could not record the link: ask whoever runs it.".into();
        }
        (self.news)(News::Linked {
            platform: chat.platform,
            member: link.member.clone(),
        });
        // The team arrives with the first sync; a slow server leaves it for the next.
        match sync::client_for(&replica, sync::TIMEOUT) {
            Ok(client) => {
                self.sync(&link, &mut Device { replica, client }, None);
            }
            Err(e) => (self.news)(News::Failed(format!("a linked device's server: {e}"))),
        }
        let who = self.member_name(&link);
        format!(
            "Linked: your kudos from here are written as {who} by a device of yours the relay \
             holds. `{cmd} @teammate thanks for ... #pillar` to thank someone; `{cmd} unlink` \
             to undo it."
        )
    }
}

fn capitalise(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Reads what comes next from `stream` into `buf` (0 at its end), by `deadline` (else 408).
fn read_some(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> std::result::Result<usize, u16> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(408);
    }
    let _ = stream.set_read_timeout(Some(left));
    stream.read(buf).map_err(|_| 408)
}

/// Reads one request from `stream`: a head of at most [`MAX_HEAD`], a body of at most
/// [`MAX_BODY`] by its `Content-Length`, all within `deadline`. An error is the status to
/// answer (0: close without answering).
fn read_request(stream: &mut TcpStream, deadline: Instant) -> std::result::Result<Request, u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if got.len() > MAX_HEAD {
            return Err(431);
        }
        match read_some(stream, &mut buf, deadline)? {
            0 => return Err(0),
            n => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = std::str::from_utf8(&got[..head_end]).map_err(|_| 400u16)?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(400);
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(400);
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut req = Request {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or("").to_owned(),
        headers,
        body: Vec::new(),
    };
    if req.header("transfer-encoding").is_some() {
        return Err(411);
    }
    let length = match req.header("content-length") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| 400u16)?,
    };
    if length > MAX_BODY {
        return Err(413);
    }
    if length > 0
        && req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = got[head_end + 4..].to_vec();
    while body.len() < length {
        match read_some(stream, &mut buf, deadline)? {
            0 => return Err(400),
            n => body.extend_from_slice(&buf[..n]),
        }
    }
    if body.len() > length {
        // One request per connection: nothing may follow the body.
        return Err(400);
    }
    req.body = body;
    Ok(req)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn write_response(stream: &mut TcpStream, r: &Response) {
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let kind = if r.body.first() == Some(&b'{') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&r.body);
    let _ = stream.flush();
}

fn answer(chat: &Chat, mut stream: TcpStream) {
    let deadline = Instant::now() + READ_TIMEOUT;
    let response = match read_request(&mut stream, deadline) {
        Ok(req) => chat.respond(&req, jiff::Timestamp::now().as_second()),
        Err(0) => return,
        Err(status) => Response {
            status,
            body: Vec::new(),
        },
    };
    write_response(&mut stream, &response);
}

/// Starts answering slash commands from `listener`, for as long as the process runs: reads
/// the secrets (an error names the field), the links, and each linked device's team, then
/// serves each connection on a thread of its own (at most [`MAX_CONNECTIONS`]) and does the
/// writes and syncs on one worker. What happens is told to `news`.
pub fn serve(
    cfg: &Config,
    chat: &ChatConfig,
    listener: TcpListener,
    news: impl Fn(News) + Send + Sync + 'static,
) -> Result<()> {
    let keys = Keys::read(chat)?;
    if keys.slack_signing_secret.is_none() && keys.mattermost_token.is_none() {
        return Err(Error::Config(
            "chat: neither slack_signing_secret nor mattermost_token is set".into(),
        ));
    }
    let links = Links::open(&cfg.home)?;
    let mut teams = HashMap::new();
    let mut refused = std::collections::HashSet::new();
    for link in links.all()? {
        if let Ok(r) = cairn_store::Replica::open(&links.replica_path(&link.id)) {
            if let Ok(team) = r.team() {
                teams.insert(link.id.clone(), team);
            }
            if matches!(sync::problem::problem(&r), Ok(Some(_))) {
                refused.insert(link.id.clone());
            }
        }
    }
    let (jobs, queue) = mpsc::sync_channel(64);
    let state = Arc::new(Chat {
        keys,
        cfg: cfg.clone(),
        server: server_of(cfg, chat),
        links: Mutex::new(links),
        teams: Mutex::new(teams),
        refused: Mutex::new(refused),
        jobs,
        agent: crate::deliver::agent(cfg),
        news: Arc::new(news),
        replays: Mutex::new(Replays::default()),
    });
    let worker = Arc::clone(&state);
    std::thread::spawn(move || worker.work(queue));
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::SeqCst);
                drop(stream);
                continue;
            }
            let state = Arc::clone(&state);
            let active = Arc::clone(&active);
            std::thread::spawn(move || {
                answer(&state, stream);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_signatures_are_checked_with_their_window() {
        let body = b"token=x&team_id=T1&text=help";
        let sig = slack_signature("s3cret", "1700000000", body);
        assert!(sig.starts_with("v0=") && sig.len() == 3 + 64);
        let ok = |ts: &str, sig: &str, now: i64| {
            slack_verified("s3cret", Some(ts), Some(sig), body, now)
        };
        assert!(ok("1700000000", &sig, 1_700_000_000));
        assert!(ok("1700000000", &sig, 1_700_000_300));
        assert!(ok("1700000000", &sig, 1_699_999_700));
        assert!(!ok("1700000000", &sig, 1_700_000_301));
        assert!(!ok("1700000000", &sig, 1_699_999_699));
        assert!(!slack_verified(
            "other",
            Some("1700000000"),
            Some(&sig),
            body,
            1_700_000_000
        ));
        assert!(!slack_verified(
            "s3cret",
            None,
            Some(&sig),
            body,
            1_700_000_000
        ));
        assert!(!slack_verified(
            "s3cret",
            Some("1700000000"),
            None,
            body,
            1_700_000_000
        ));
        assert!(!ok("1700000000", "v0=zz", 1_700_000_000));
        assert!(!ok("1700000000", &sig.replace("v0=", "v1="), 1_700_000_000));
        assert!(!ok("soon", &sig, 1_700_000_000));
        assert!(!slack_verified(
            "s3cret",
            Some("1700000000"),
            Some(&sig),
            b"text=other",
            1_700_000_000
        ));
    }

    #[test]
    fn mattermost_tokens_must_match_whole() {
        assert!(mattermost_verified("tok", Some("tok")));
        assert!(!mattermost_verified("tok", Some("tox")));
        assert!(!mattermost_verified("tok", Some("tok2")));
        assert!(!mattermost_verified("tok", Some("")));
        assert!(!mattermost_verified("tok", None));
    }

    #[test]
    fn commands_read_as_they_are_typed() {
        assert_eq!(parse(Platform::Slack, ""), Command::Help);
        assert_eq!(parse(Platform::Slack, " help "), Command::Help);
        assert_eq!(
            parse(Platform::Slack, "link ABCD-1234"),
            Command::Link("ABCD-1234".into())
        );
        assert!(matches!(
            parse(Platform::Slack, "link"),
            Command::Unclear(_)
        ));
        assert_eq!(parse(Platform::Mattermost, "unlink"), Command::Unlink);
        assert_eq!(
            parse(
                Platform::Slack,
                "<@U1|ben> <@U2> thanks for the calm write-up &amp; the <@U3|cy> pairing #trust"
            ),
            Command::Kudos {
                to: vec![
                    Mention::User {
                        id: "U1".into(),
                        shown: "ben".into()
                    },
                    Mention::User {
                        id: "U2".into(),
                        shown: String::new()
                    },
                ],
                text: "thanks for the calm write-up & the @cy pairing".into(),
                pillar: Some("trust".into()),
            }
        );
        assert_eq!(
            parse(Platform::Slack, "<@U1|ben>: thanks <#C9|trust>"),
            Command::Kudos {
                to: vec![Mention::User {
                    id: "U1".into(),
                    shown: "ben".into()
                }],
                text: "thanks".into(),
                pillar: Some("trust".into()),
            }
        );
        assert_eq!(
            parse(Platform::Mattermost, "@ben, @cy thanks for #1 today"),
            Command::Kudos {
                to: vec![Mention::Name("ben".into()), Mention::Name("cy".into())],
                text: "thanks for #1 today".into(),
                pillar: None,
            }
        );
        assert!(matches!(
            parse(Platform::Mattermost, "@ben"),
            Command::Unclear(_)
        ));
        assert!(matches!(
            parse(Platform::Mattermost, "thanks all"),
            Command::Unclear(_)
        ));
        assert!(matches!(
            parse(Platform::Mattermost, "@ben #trust"),
            Command::Unclear(_)
        ));
    }

    #[test]
    fn slack_escapes_read_as_text() {
        assert_eq!(
            slack_plain("see <https://x.example|the doc> and <!here> <#C1|ops> &lt;b&gt;"),
            "see the doc and @here #ops <b>"
        );
        assert_eq!(slack_plain("a < b"), "a < b");
    }

    #[test]
    fn a_signature_is_taken_once_while_it_could_be_valid() {
        let mut r = Replays::default();
        assert!(r.first("v0=aa", 1_000));
        assert!(!r.first("v0=aa", 1_100));
        assert!(r.first("v0=bb", 1_100));
        // Long after its window, the memory of it is gone (and its timestamp refused anyway).
        assert!(r.first("v0=aa", 1_000 + 2 * SLACK_WINDOW_S + 1));
        assert_eq!(r.seen.len(), 2);
    }

    #[test]
    fn replies_repeat_no_markup() {
        assert_eq!(Mention::Name("<!channel>*x*".into()).shown(), "@channelx");
        assert_eq!(
            Mention::User {
                id: "U1".into(),
                shown: String::new()
            }
            .shown(),
            "@U1"
        );
        assert_eq!(slash("/kudos"), "/kudos");
        assert_eq!(slash("/thanks_2"), "/thanks_2");
        assert_eq!(slash("/<b>"), "/kudos");
        assert_eq!(slash("kudos"), "/kudos");
    }

    /// Sends `raw` to a listener and returns what `read_request` made of it.
    fn read_raw(raw: Vec<u8>) -> std::result::Result<Request, u16> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(&raw);
            // Held open until the server is done, as a client waiting for its answer.
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        });
        let (mut stream, _) = listener.accept().unwrap();
        let got = read_request(&mut stream, Instant::now() + Duration::from_millis(500));
        drop(stream);
        client.join().unwrap();
        got
    }

    #[test]
    fn requests_are_read_within_their_bounds() {
        let ok = read_raw(
            b"POST /slack?x=1 HTTP/1.1\r\nHost: r\r\nContent-Length: 6\r\n\r\ntext=a".to_vec(),
        )
        .unwrap();
        assert_eq!((ok.method.as_str(), ok.path.as_str()), ("POST", "/slack"));
        assert_eq!(ok.header("host"), Some("r"));
        assert_eq!(ok.body, b"text=a");
        let chunked =
            b"POST /slack HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ntext=a\r\n0\r\n\r\n";
        assert_eq!(read_raw(chunked.to_vec()).unwrap_err(), 411);
        let big = format!(
            "POST /slack HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(read_raw(big.into_bytes()).unwrap_err(), 413);
        let mut long = b"POST /slack HTTP/1.1\r\nX-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        assert_eq!(read_raw(long).unwrap_err(), 431);
        // A body shorter than it said, then nothing: cut at the deadline.
        let short = b"POST /slack HTTP/1.1\r\nContent-Length: 100\r\n\r\ntext=".to_vec();
        assert_eq!(read_raw(short).unwrap_err(), 408);
        assert_eq!(read_raw(b"NONSENSE\r\n\r\n".to_vec()).unwrap_err(), 400);
    }

    #[test]
    fn keys_never_show_in_debug() {
        let k = Keys {
            slack_signing_secret: Some("s3cret".into()),
            mattermost_token: None,
        };
        assert!(!format!("{k:?}").contains("s3cret"));
    }

    #[test]
    fn a_link_outcome_goes_to_the_request_or_after_it() {
        let r = Rendezvous::default();
        assert!(r.give("done".into()));
        assert_eq!(r.wait(Duration::from_millis(1)).as_deref(), Some("done"));
        let late = Rendezvous::default();
        assert_eq!(late.wait(Duration::from_millis(1)), None);
        assert!(!late.give("too late".into()));
    }
}
