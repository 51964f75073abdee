//! `cairn-server`'s configuration file: one place where every subcommand finds the database, the
//! public address and the server's limits.
//!
//! Each setting comes from, weakest first: the built-in default, the file, the environment
//! (`CAIRN_SERVER_*`), the command line. The file is TOML; its keys are the long flags' names
//! (`public_url` or `public-url`), top-level for the settings every subcommand shares and under
//! `[serve]` for the server's own. It is `--config PATH`, else `CAIRN_SERVER_CONFIG`, else
//! `cairn-server/config.toml` in the platform's config directory (`~/.config` on Linux) when that
//! file exists. See `cairn-server.example.toml`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The settings of a configuration file, as text for clap to parse like a flag's value.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub path: PathBuf,
    /// Settings every subcommand shares.
    pub shared: Vec<(String, String)>,
    /// `[serve]`: the server's own.
    pub serve: Vec<(String, String)>,
}

/// The file named by `--config` in `args`, or `CAIRN_SERVER_CONFIG`, or the default path when it
/// exists; `None` when there is none.
pub fn find(args: &[OsString]) -> Result<Option<Config>, String> {
    let mut named: Option<PathBuf> = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            named = it.next().map(PathBuf::from);
        } else if let Some(p) = a.strip_prefix("--config=") {
            named = Some(PathBuf::from(p));
        }
    }
    let named = named.or_else(|| {
        std::env::var_os("CAIRN_SERVER_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    match named {
        Some(path) => load(&path).map(Some),
        None => match default_path().filter(|p| p.is_file()) {
            Some(path) => load(&path).map(Some),
            None => Ok(None),
        },
    }
}

/// Where the file is looked for when none is named.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("cairn-server").join("config.toml"))
}

fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration {}: {e}", path.display()))?;
    parse(&text, path)
}

/// Reads the file's settings; a value that is not a string, a number or a true/false is refused.
pub fn parse(text: &str, path: &Path) -> Result<Config, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
    let mut config = Config {
        path: path.to_owned(),
        ..Config::default()
    };
    for (key, value) in &table {
        match value {
            toml::Value::Table(inner) if key == "serve" => {
                for (k, v) in inner {
                    config
                        .serve
                        .push((id(k), scalar(v, &format!("serve.{k}"), path)?));
                }
            }
            toml::Value::Table(_) => {
                return Err(format!(
                    "{}: unknown section [{key}] (the only one is [serve])",
                    path.display()
                ));
            }
            v => config.shared.push((id(key), scalar(v, key, path)?)),
        }
    }
    Ok(config)
}

fn id(key: &str) -> String {
    key.trim().replace('-', "_")
}

fn scalar(v: &toml::Value, key: &str, path: &Path) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!(
            "{}: `{key}` must be a string, a number or true/false",
            path.display()
        )),
    }
}

impl Config {
    /// `command` with this file's settings as its defaults: the environment and the command
    /// line still win. A key that names no setting is refused, with the ones there are.
    pub fn apply(&self, command: clap::Command) -> Result<clap::Command, String> {
        let mut command = command;
        for (key, value) in &self.shared {
            let known = command
                .get_arguments()
                .any(|a| a.get_id() == key.as_str() && a.get_long().is_some() && key != "config");
            if !known {
                return Err(self.unknown(key, &command));
            }
            let value: &'static str = Box::leak(value.clone().into_boxed_str());
            command = command.mut_arg(key.as_str(), |a| a.default_value(value));
        }
        if !self.serve.is_empty() {
            let Some(serve) = command.find_subcommand("serve").cloned() else {
                return Err("this cairn-server has no serve command".into());
            };
            let mut serve = serve;
            for (key, value) in &self.serve {
                if !serve
                    .get_arguments()
                    .any(|a| a.get_id() == key.as_str() && a.get_long().is_some())
                {
                    return Err(self.unknown(&format!("serve.{key}"), &serve));
                }
                let value: &'static str = Box::leak(value.clone().into_boxed_str());
                serve = serve.mut_arg(key.as_str(), |a| a.default_value(value));
            }
            command = command.mut_subcommand("serve", |_| serve);
        }
        Ok(command)
    }

    fn unknown(&self, key: &str, command: &clap::Command) -> String {
        let known: Vec<String> = command
            .get_arguments()
            .filter(|a| a.get_long().is_some() && a.get_id() != "config" && a.get_id() != "help")
            .map(|a| a.get_id().to_string())
            .collect();
        format!(
            "{}: unknown setting `{key}` (known here: {})",
            self.path.display(),
            known.join(", ")
        )
    }
}
