//! `cairn demo`: cairn at work: a server on loopback and three members who log offline, sync and
//! meet in one feed, all in a throwaway directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{BOLD, DIM, paint};

/// Show cairn at work: a sync server on loopback, three members who log offline on their own
/// replicas, sync, and read one merged feed.
///
/// It runs the real `cairn` and `cairn-server` programs (the server must sit next to `cairn`, or
/// be named by CAIRN_SERVER_BIN), printing each command, in a temporary directory that is removed
/// afterwards (keep it with --keep). Your own replica is never touched.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the demo's directory (homes and server database) and print where it is.
    #[arg(long)]
    keep: bool,
}

/// One step: who runs it (a member's home, or the server's admin) and the arguments.
/// `$URL`, `$FOUNDER` (the founder's invite), `$INVITE`, `$TEAM` and `$1` (the first event
/// logged) are filled in as they appear.
const SCRIPT: &[(&str, &[&str])] = &[
    ("admin", &["team", "create", "Otters"]),
    (
        "admin",
        &["invite", "create", "--team", "Otters", "--founder"],
    ),
    (
        "admin",
        &["invite", "create", "--team", "$TEAM", "--uses", "5"],
    ),
    (
        "# Ana started the team on her laptop before there was a server",
        &[],
    ),
    (
        "ana",
        &[
            "init",
            "--team",
            "Otters",
            "--name",
            "Ana",
            "--tz",
            "Europe/Paris",
        ],
    ),
    (
        "ana",
        &[
            "team",
            "commit",
            "Reviews within one working day",
            "--why",
            "nobody should wait to ship",
        ],
    ),
    (
        "ana",
        &[
            "log",
            "Explained the why behind the release freeze",
            "--pillar",
            "trust",
        ],
    ),
    ("ana", &["publish", "$URL", "--invite", "$FOUNDER"]),
    ("# Ben and Chloé join from their own machines", &[]),
    (
        "ben",
        &[
            "join",
            "$URL",
            "--invite",
            "$INVITE",
            "--name",
            "Ben Okafor",
            "--handle",
            "ben",
        ],
    ),
    (
        "chloe",
        &[
            "join",
            "$URL",
            "--invite",
            "$INVITE",
            "--name",
            "Chloé Martin",
            "--handle",
            "chloe",
        ],
    ),
    ("# Everyone works offline for a while", &[]),
    (
        "ben",
        &[
            "log",
            "Let Chloé lead the incident review instead of doing it myself",
            "--pillar",
            "empowerment",
        ],
    ),
    (
        "chloe",
        &[
            "kudos",
            "@ana,@ben",
            "Calm, blameless incident write-up",
            "--pillar",
            "professionalism",
        ],
    ),
    ("chloe", &["react", "$1", "🎉"]),
    (
        "ben",
        &[
            "log",
            "Checked in on a teammate after a rough on-call night",
            "--yesterday",
        ],
    ),
    (
        "ana",
        &[
            "log",
            "Picked up the flaky test nobody owned",
            "--pillar",
            "professionalism",
        ],
    ),
    ("# Then they sync, in any order", &[]),
    ("ben", &["sync"]),
    ("ana", &["sync"]),
    ("chloe", &["sync"]),
    ("ben", &["react", "$1"]),
    ("ben", &["sync"]),
    ("ana", &["sync"]),
    ("chloe", &["sync"]),
    ("# One feed, the same on every replica", &[]),
    ("ana", &["feed"]),
    ("chloe", &["status"]),
];

/// The server process, stopped when dropped.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name(format!("cairn-server{}", std::env::consts::EXE_SUFFIX));
    if bin.exists() {
        return Ok(bin);
    }
    Err(
        CliError::new("the demo needs cairn-server, and it is not next to cairn")
            .hint("build both with `cargo build --release`, or set CAIRN_SERVER_BIN"),
    )
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let dir = tempfile_dir()?;
    let result = run_in(&dir, ctx);
    if args.keep {
        ctx.out.line(paint(
            DIM,
            format!(
                "The demo lives on in {}; try CAIRN_HOME={} cairn feed",
                dir.display(),
                dir.join("ana").display()
            ),
        ))?;
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(dir: &Path, ctx: &mut Ctx) -> Result<()> {
    let server = server_bin()?;
    let db = dir.join("server.sqlite3");
    ctx.out.line(paint(
        BOLD,
        "$ cairn-server serve --listen 127.0.0.1:0   # a sync server on loopback",
    ))?;
    let mut child = Command::new(&server)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CAIRN_SERVER_DB", &db)
        .env("CAIRN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start {}: {e}", server.display())))?;
    let stdout = child.stdout.take();
    let guard = ServerGuard(child);
    let mut first = String::new();
    if let Some(out) = stdout {
        BufReader::new(out).read_line(&mut first)?;
    }
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| CliError::new("the demo's server did not start"))?
        .to_owned();
    ctx.out.line(first.trim())?;
    ctx.out.line("")?;

    let exe = std::env::current_exe()?;
    let (mut team, mut invite, mut first_id) = (String::new(), String::new(), String::new());
    let mut founder = String::new();
    for (who, step) in SCRIPT {
        if who.starts_with('#') {
            ctx.out.line(paint(DIM, who))?;
            continue;
        }
        let argv: Vec<&str> = step
            .iter()
            .map(|a| match *a {
                "$URL" => url.as_str(),
                "$INVITE" => invite.as_str(),
                "$FOUNDER" => founder.as_str(),
                "$TEAM" => team.as_str(),
                "$1" => first_id.as_str(),
                a => a,
            })
            .collect();
        let mut cmd = if *who == "admin" {
            ctx.out.line(paint(
                BOLD,
                format!("$ cairn-server {}", shell_words(&argv)),
            ))?;
            let mut c = Command::new(&server);
            c.env("CAIRN_SERVER_DB", &db);
            c
        } else {
            ctx.out
                .line(paint(BOLD, format!("{who}$ cairn {}", shell_words(&argv))))?;
            let mut c = Command::new(&exe);
            c.env("CAIRN_HOME", dir.join(who))
                // The demo syncs when it says so; a real member's writes also sync quietly.
                .env("CAIRN_AUTO_SYNC", "0");
            c
        };
        let out = cmd.args(&argv).env_remove("CAIRN_NOW").output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ctx.out.line(stdout.trim_end())?;
        if !out.status.success() {
            return Err(CliError::new(format!(
                "the demo failed at `{}`: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        match argv.first().copied() {
            Some("team") if *who == "admin" => team = stdout.trim().to_owned(),
            Some("invite") if argv.contains(&"--founder") => founder = stdout.trim().to_owned(),
            Some("invite") => invite = stdout.trim().to_owned(),
            Some("log") if first_id.is_empty() => {
                first_id = stdout
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
            }
            _ => {}
        }
        ctx.out.line("")?;
    }
    drop(guard);
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
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
