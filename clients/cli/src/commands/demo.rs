//! `cairn demo`: cairn at work on a sample team, in a throwaway home.

use std::process::Command;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{BOLD, DIM, paint};

/// Show cairn at work: a sample team of three logs, recognises and reacts, then reads its feed.
///
/// It runs the real `cairn` commands, printing each one, in a temporary home that is removed
/// afterwards (keep it with --keep). Your own replica is never touched.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the demo's home and print where it is.
    #[arg(long)]
    keep: bool,
}

const SCRIPT: &[&[&str]] = &[
    &[
        "init",
        "--team",
        "Otters",
        "--name",
        "Ana",
        "--tz",
        "Europe/Paris",
    ],
    &["team", "member", "add", "Ben Okafor", "--handle", "ben"],
    &["team", "member", "add", "Chloé Martin", "--handle", "chloe"],
    &[
        "team",
        "commit",
        "Reviews within one working day",
        "--why",
        "nobody should wait to ship",
    ],
    &[
        "log",
        "Explained the why behind the release freeze",
        "--pillar",
        "trust",
        "--why",
        "so nobody has to guess",
    ],
    &[
        "--as",
        "@ben",
        "log",
        "Let Chloé lead the incident review instead of doing it myself",
        "--pillar",
        "empowerment",
    ],
    &[
        "--as",
        "@chloe",
        "kudos",
        "@ana,@ben",
        "Calm, blameless incident write-up",
        "--pillar",
        "professionalism",
    ],
    &[
        "--as",
        "@ben",
        "log",
        "Checked in on a teammate after a rough on-call night",
        "--yesterday",
    ],
    &["--as", "@chloe", "react", "$1", "🎉"],
    &["--as", "@ben", "react", "$1"],
    &["feed"],
    &["team"],
];

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let dir = tempfile_dir()?;
    let exe = std::env::current_exe()?;
    let mut first_id = String::new();
    for step in SCRIPT {
        let argv: Vec<&str> = step
            .iter()
            .map(|a| if *a == "$1" { first_id.as_str() } else { a })
            .collect();
        ctx.out
            .line(paint(BOLD, format!("$ cairn {}", shell_words(&argv))))?;
        let out = Command::new(&exe)
            .args(&argv)
            .env("CAIRN_HOME", &dir)
            .env_remove("CAIRN_NOW")
            .output()?;
        ctx.out
            .line(String::from_utf8_lossy(&out.stdout).trim_end())?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(CliError::new(format!(
                "the demo failed at `cairn {}`: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        if argv.first() == Some(&"log") && first_id.is_empty() {
            let text = String::from_utf8_lossy(&out.stdout);
            first_id = text
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
        }
        ctx.out.line("")?;
    }
    if args.keep {
        ctx.out.line(paint(
            DIM,
            format!(
                "The demo team lives on in {}; try CAIRN_HOME={} cairn feed",
                dir.display(),
                dir.display()
            ),
        ))?;
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let name = format!("cairn-demo-{}", crate::context::random_id(8)?);
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .any(|c| c.is_whitespace() || c == ',' || c == '\'')
            {
                format!("\"{a}\"")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
