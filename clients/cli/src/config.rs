//! The client's settings, and where each comes from.
//!
//! Precedence, written down once: **defaults < the home's config file < environment < flags**.
//! The file is `config.toml` in the home (`$CAIRN_HOME`), or the file `CAIRN_CONFIG` names; its
//! keys are the ones [`KEYS`] lists (see `cairn.example.toml` beside this crate, which a test
//! parses). `cairn config get|set|unset|list` reads and writes it, in the manner of `git config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{CliError, Kind, Result};

/// Every key the file takes: its name, the environment variable that overrides it, and what it
/// sets.
pub const KEYS: [(&str, Option<&str>, &str); 5] = [
    (
        "team",
        Some("CAIRN_TEAM"),
        "the team commands act on when a home holds several (a name or an id; --team overrides it)",
    ),
    (
        "color",
        None,
        "auto, always or never: when to colour the output (--color overrides it; NO_COLOR turns off the file's `always`)",
    ),
    (
        "pager",
        Some("PAGER"),
        "the pager for long output on a terminal (`less` by default; `cat` or empty for none)",
    ),
    (
        "auto-sync",
        Some("CAIRN_AUTO_SYNC"),
        "true or false: sync quietly in the background after each write when a server is known",
    ),
    (
        "sync-timeout",
        Some("CAIRN_SYNC_TIMEOUT"),
        "seconds (1 to 3600) a sync waits for a server that has gone silent (15 by default)",
    ),
];

/// The settings of the file, each as written there (`None`: not set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    pub values: BTreeMap<String, String>,
    /// What is wrong with the file, if anything: every command but `cairn config` refuses to
    /// go on until it is fixed (`cairn config unset KEY` takes out a bad key).
    pub problem: Option<String>,
    /// The file is no TOML at all: `cairn config set` would lose what it holds.
    pub unreadable: bool,
}

/// The file of settings for `home`: `CAIRN_CONFIG`, else `config.toml` in the home.
pub fn path(home: &Path) -> PathBuf {
    match std::env::var_os("CAIRN_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home.join("config.toml"),
    }
}

/// The text of the settings file at `path`, opened without following a link; one that is a
/// link, no plain file, another user's or writable by others is refused (it names a pager that
/// cairn runs).
fn read_own(path: &Path) -> Result<String, ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    let mut file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            return ReadError::Refused("is a symbolic link");
        }
        ReadError::Io(e)
    })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::Refused("is not a plain file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(ReadError::Refused("belongs to another user"));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(ReadError::Refused("can be written by other users"));
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(ReadError::Io)?;
    Ok(text)
}

/// Why the settings file was not read.
#[derive(Debug)]
enum ReadError {
    Io(std::io::Error),
    /// What is wrong with it: "is a symbolic link", ...
    Refused(&'static str),
}

impl Config {
    /// Reads the settings of `home`; a missing file sets nothing.
    pub fn load(home: &Path) -> Result<Config> {
        let path = path(home);
        let text = match read_own(&path) {
            Ok(text) => text,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config {
                    path,
                    ..Config::default()
                });
            }
            Err(ReadError::Io(e)) => {
                return Err(CliError::new(format!("cannot read {}", path.display()))
                    .kind(Kind::Failure)
                    .because(e));
            }
            Err(ReadError::Refused(why)) => {
                return Err(CliError::new(format!(
                    "the settings file {} {why}: cairn reads no settings someone else could write",
                    path.display()
                ))
                .hint(format!(
                    "put a plain file of your own there, not writable by others (`chmod 600 {}`), or remove it",
                    path.display()
                ))
                .kind(Kind::Failure));
            }
        };
        Self::parse(&text, path)
    }

    /// Reads settings from the text of a file at `path`: what it sets, and what is wrong in it.
    pub fn parse(text: &str, path: PathBuf) -> Result<Config> {
        let mut config = Config {
            path,
            ..Config::default()
        };
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(e) => {
                let e: toml::de::Error = e;
                config.problem = Some(e.message().to_owned());
                config.unreadable = true;
                return Ok(config);
            }
        };
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    config
                        .problem
                        .get_or_insert(format!("`{key}` is a {}", other.type_str()));
                    continue;
                }
            };
            if let Err(e) = check(&key, &text) {
                config.problem.get_or_insert(e.message);
            }
            config.values.insert(key, text);
        }
        Ok(config)
    }

    /// The error of a file with something wrong in it, if it has.
    pub fn trouble(&self) -> Option<CliError> {
        let why = self.problem.as_ref()?;
        let hint = if self.unreadable {
            "fix it by hand (it is TOML: `key = \"value\"` lines), or move it aside".to_owned()
        } else {
            "`cairn config list` shows the settings; `cairn config unset KEY` takes one out"
                .to_owned()
        };
        Some(
            CliError::new(format!(
                "{} is not a cairn config file: {why}",
                self.path.display()
            ))
            .hint(hint)
            .kind(Kind::Input),
        )
    }

    /// The value the file gives `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key` that applies: the environment's when it is one the key takes, else
    /// the file's.
    pub fn effective(&self, key: &str) -> Option<(String, Origin)> {
        if let Some(var) = KEYS.iter().find(|k| k.0 == key).and_then(|k| k.1)
            && let Ok(v) = std::env::var(var)
            && (key == "pager" || check(key, &v).is_ok())
        {
            return Some((v, Origin::Env(var)));
        }
        self.get(key).map(|v| (v.to_owned(), Origin::File))
    }

    /// Sets (or with `None` removes) `key` in the file, checked first; the file is written whole.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        if self.unreadable
            && let Some(e) = self.trouble()
        {
            return Err(e);
        }
        match value {
            Some(v) => {
                let v = v.trim();
                check(key, v)?;
                // Kept as the file writes it back: a word in lower case, a number as a number.
                let v = match key {
                    "auto-sync" => match v.to_ascii_lowercase().as_str() {
                        "1" | "true" => "true".to_owned(),
                        _ => "false".to_owned(),
                    },
                    "sync-timeout" => v.parse::<u64>().map_or(v.to_owned(), |n| n.to_string()),
                    _ => v.to_owned(),
                };
                self.values.insert(key.to_owned(), v);
            }
            None => {
                // (A key the file should not hold can be taken out too.)
                if self.values.remove(key).is_none() {
                    known(key)?;
                }
            }
        }
        self.problem = None;
        for (k, v) in &self.values {
            if let Err(e) = check(k, v) {
                self.problem.get_or_insert(e.message);
            }
        }
        self.save()
    }

    fn save(&self) -> Result<()> {
        let mut text =
            String::from("# cairn's settings for this home (`cairn config list` shows them all)\n");
        for (k, v) in &self.values {
            let value = match k.as_str() {
                "auto-sync" => v.clone(),
                "sync-timeout" => v.clone(),
                // (A JSON string is a TOML basic string: the same quotes and escapes.)
                _ => serde_json::Value::String(v.clone()).to_string(),
            };
            text.push_str(&format!("{k} = {value}\n"));
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // (A home made here is private, as `init` makes it.)
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir)?;
        }
        // Written aside, new and only for its owner, and renamed into place: a crash never
        // leaves half a file, and nothing already there (a link) is written through.
        let tmp = self.path.with_extension("toml.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&tmp)?, text.as_bytes())?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }

    /// The auto-sync setting that applies: off only when said so.
    pub fn auto_sync(&self) -> bool {
        !matches!(
            self.effective("auto-sync").map(|(v, _)| v),
            Some(v) if v == "0" || v.eq_ignore_ascii_case("false")
        )
    }

    /// How long a sync waits for a silent server, when a setting says so.
    pub fn sync_timeout(&self) -> Option<Duration> {
        self.effective("sync-timeout")
            .and_then(|(v, _)| v.trim().parse::<u64>().ok())
            .filter(|s| (1..=3600).contains(s))
            .map(Duration::from_secs)
    }
}

/// Where a setting's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    File,
    Env(&'static str),
}

fn known(key: &str) -> Result<()> {
    if KEYS.iter().any(|k| k.0 == key) {
        return Ok(());
    }
    let names: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
    Err(CliError::new(format!("`{key}` is no setting of cairn"))
        .hint(format!("the settings are {}", names.join(", "))))
}

/// Checks a value of `key` as the file or `cairn config set` gives it.
fn check(key: &str, value: &str) -> Result<()> {
    known(key)?;
    let ok = match key {
        "color" => ["auto", "always", "never"].contains(&value),
        "auto-sync" => ["true", "false", "1", "0"].contains(&value.to_ascii_lowercase().as_str()),
        "pager" => true,
        "sync-timeout" => value.parse::<u64>().is_ok_and(|s| (1..=3600).contains(&s)),
        "team" => !value.trim().is_empty(),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    let want = match key {
        "color" => "auto, always or never",
        "auto-sync" => "true or false",
        "sync-timeout" => "a number of seconds from 1 to 3600",
        _ => "a team's name or id",
    };
    Err(CliError::new(format!("`{value}` is no value for {key}")).hint(format!("give {want}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_sets_every_key() {
        let text = include_str!("../cairn.example.toml");
        let c = Config::parse(text, "cairn.example.toml".into()).unwrap();
        for (key, _, _) in KEYS {
            assert!(c.get(key).is_some(), "the example sets {key}");
        }
        assert_eq!(c.get("sync-timeout"), Some("30"));
    }

    #[test]
    fn a_bad_file_names_itself_and_what_is_wrong() {
        for (text, said) in [
            ("colour = \"auto\"", "`colour` is no setting"),
            ("color = \"sometimes\"", "no value for color"),
            ("sync-timeout = 0", "no value for sync-timeout"),
            ("team = [1]", "`team` is a array"),
            ("team = ", "config file"),
        ] {
            let c = Config::parse(text, "/h/config.toml".into()).unwrap();
            let e = c.trouble().expect("a problem");
            assert!(
                e.message.contains("/h/config.toml") && e.message.contains(said),
                "{text}: {}",
                e.message
            );
        }
        assert!(
            Config::parse("team = \"x\"", "c".into())
                .unwrap()
                .trouble()
                .is_none()
        );
    }

    #[test]
    fn a_bad_key_can_be_taken_out_and_a_broken_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "colour = \"never\"\nteam = \"Otters\"\n").unwrap();
        let mut c = Config::load(dir.path()).unwrap();
        assert!(c.trouble().is_some());
        c.set("colour", None).unwrap();
        let back = Config::load(dir.path()).unwrap();
        assert!(back.trouble().is_none());
        assert_eq!(back.get("team"), Some("Otters"));
        std::fs::write(&file, "team = \"Otters\nthis is not toml").unwrap();
        let mut c = Config::load(dir.path()).unwrap();
        assert!(c.set("color", Some("never")).is_err());
        assert!(std::fs::read_to_string(&file).unwrap().contains("not toml"));
    }

    #[test]
    fn set_and_unset_write_a_file_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::load(dir.path()).unwrap();
        assert!(c.values.is_empty());
        c.set("team", Some("Guild of \"Rust\"")).unwrap();
        c.set("auto-sync", Some("FALSE")).unwrap();
        c.set("sync-timeout", Some("030")).unwrap();
        assert!(c.set("sync-timeout", Some("forever")).is_err());
        let back = Config::load(dir.path()).unwrap();
        assert_eq!(back.values, c.values);
        assert!(back.trouble().is_none(), "what set writes reads back");
        assert_eq!(back.get("sync-timeout"), Some("30"));
        assert!(!back.auto_sync());
        let mut back = back;
        back.set("team", None).unwrap();
        assert_eq!(Config::load(dir.path()).unwrap().get("team"), None);
    }
}
