//! `cairn config`: the home's settings, in the manner of `git config`.

use serde_json::json;

use crate::config::{KEYS, Origin};
use crate::context::Ctx;
use crate::error::Result;
use crate::output::{DIM, paint};

/// Show or change this home's settings: the default team, colour, pager, auto-sync and the
/// sync timeout.
///
/// They live in `config.toml` in the home (or the file CAIRN_CONFIG names). What applies, in
/// order: defaults < that file < environment < flags. `cairn config list` shows each setting,
/// its value and where it comes from.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Every setting: its value, where it comes from, and what it does (the default).
    List,
    /// The value of one setting that applies (nothing, and exit 1, when none is set).
    Get {
        #[arg(value_parser = KEYS.map(|k| k.0))]
        key: String,
    },
    /// Sets a setting in the home's config file.
    Set {
        #[arg(value_parser = KEYS.map(|k| k.0))]
        key: String,
        value: String,
    },
    /// Takes a setting out of the home's config file (a key it should not hold too).
    Unset { key: String },
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    match args.action.unwrap_or(Action::List) {
        Action::List => {
            let mut lines = Vec::new();
            let mut rows = Vec::new();
            for (key, env, about) in KEYS {
                let found = ctx.config.effective(key);
                let (value, from) = match &found {
                    Some((v, Origin::File)) => {
                        (v.clone(), format!("{}", ctx.config.path.display()))
                    }
                    Some((v, Origin::Env(var))) => (v.clone(), (*var).to_owned()),
                    None => (String::new(), "not set".to_owned()),
                };
                lines.push(format!(
                    "{key} = {value}  {}\n    {}",
                    paint(DIM, format!("({from})")),
                    paint(DIM, about)
                ));
                rows.push(json!({
                    "key": key, "value": found.as_ref().map(|f| &f.0), "from": from,
                    "env": env, "about": about,
                }));
            }
            ctx.out.say(lines.join("\n"), json!(rows))
        }
        Action::Get { key } => match ctx.config.effective(&key) {
            Some((value, _)) => ctx
                .out
                .say(value.clone(), json!({ "key": key, "value": value })),
            None => Err(crate::error::CliError::new(format!("{key} is not set"))
                .hint(format!("set it with `cairn config set {key} VALUE`"))),
        },
        Action::Set { key, value } => {
            ctx.config.set(&key, Some(&value))?;
            let path = ctx.config.path.display().to_string();
            ctx.out.say(
                format!("{key} = {} (in {path})", value.trim()),
                json!({ "key": key, "value": value.trim(), "file": path }),
            )
        }
        Action::Unset { key } => {
            ctx.config.set(&key, None)?;
            ctx.out
                .say(format!("{key} unset"), json!({ "key": key, "unset": true }))
        }
    }
}
