//! `cairn`: log the small actions that make a team's culture, offline, and see them in one feed.
//!
//! Each subcommand lives in `commands/`, with its arguments (whose doc comments are the `--help`
//! text) and its `run` function. Everything goes through one error boundary in [`main`].

// Doc comments here are `--help` text for a terminal, where a bare URL reads best.
#![allow(rustdoc::bare_urls)]

mod commands;
mod complete;
mod config;
mod context;
mod error;
mod home;
mod output;
mod remote;
mod render;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::context::Ctx;
use crate::error::Kind;

/// Log the small actions that make your team's culture, and see them together.
///
/// cairn keeps a local replica of your team: micro-actions (`log`), recognitions (`kudos`) and
/// reactions, merged into one culture feed. Everything works offline.
#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version = env!("CAIRN_VERSION"),
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start with:\n  cairn init --team \"Otters\" --name \"Ana\"\n  \
                        cairn log \"Paired with a new teammate on their first review\" --pillar empowerment\n  \
                        cairn kudos @ben \"Thanks for the calm incident write-up\"\n  cairn feed\n\n\
                        Exit codes: 0 ok, 1 bad input, 2 bad usage, 3 replica missing or damaged, 4 other failures."
)]
struct Cli {
    /// Print JSON instead of text (read commands and confirmations).
    #[arg(long, global = true)]
    json: bool,

    /// Where the replica lives [env: CAIRN_HOME] [default: the platform's data dir, e.g.
    /// ~/.local/share/cairn].
    // CAIRN_HOME is read by hand, not by clap: an argument clap fills from the environment shows
    // in every usage line as if it had been typed.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,

    /// The team to act on, by name or id, when this home holds several [env: CAIRN_TEAM]
    /// [default: the config's `team`, else the home's only team]; for `init`, the new team's name.
    // CAIRN_TEAM is read by hand, as CAIRN_HOME is.
    #[arg(long, global = true, value_name = "NAME", add = complete::teams())]
    team: Option<String>,

    /// Act as another member of this replica (a shared device, a demo, a test).
    #[arg(long = "as", global = true, value_name = "@HANDLE", add = complete::handles())]
    as_member: Option<String>,

    /// When to colour the output: auto (on a terminal, without NO_COLOR), always or never
    /// [default: the config's `color`, else auto].
    #[arg(long, global = true, value_name = "WHEN",
          value_parser = ["auto", "always", "never"])]
    color: Option<String>,

    /// Never send long output (feed, digest, team) through a pager [env: PAGER picks the pager;
    /// PAGER=cat turns it off].
    #[arg(long, global = true)]
    no_pager: bool,

    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    cairn_core::change::install_panic_hook();
    // `COMPLETE=bash cairn -- WORDS...`: the shell asks for completions; answered, then exit.
    clap_complete::CompleteEnv::with_factory(command).complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(Kind::Usage.exit_code()),
            };
        }
    };
    let home = cli
        .home
        .or_else(|| std::env::var_os("CAIRN_HOME").map(PathBuf::from));
    let colour = |choice: &str| match choice {
        "always" => anstream::ColorChoice::Always.write_global(),
        "never" => anstream::ColorChoice::Never.write_global(),
        _ => {}
    };
    // The flag decides before anything is written; the config's `color`, read with the home,
    // only when no flag was given.
    if let Some(c) = &cli.color {
        colour(c);
    }
    let result = Ctx::new(home, cli.json, cli.as_member).and_then(|ctx| {
        let mut ctx = ctx.with_team(cli.team);
        // (NO_COLOR, an environment variable, comes before the file.)
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if cli.color.is_none()
            && !no_color
            && let Some(c) = ctx.config.get("color").map(str::to_owned)
        {
            colour(&c);
            // (The output stream takes the choice when it is made.)
            ctx.out.renew();
        }
        ctx.out.no_pager = cli.no_pager;
        commands::run(cli.command, &mut ctx)?;
        ctx.out.flush()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// The clap command, for completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
