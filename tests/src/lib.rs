//! End-to-end fixtures: the real `cairn` binary, each member with a temp home of their own.
//!
//! The binary is the one cargo built next to this test (`target/<profile>/cairn`), or the one
//! `CAIRN_BIN` names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod browser;
pub mod forge;
pub mod fuzz;
pub mod hostile;
pub mod http;
pub mod pg;
pub mod proxy;
pub mod server;

pub use server::{Acme, Server};

/// The path of the `cairn` binary under test.
pub fn cairn_bin() -> PathBuf {
    bin("cairn")
}

/// The path of one of the project's binaries: `CAIRN_BIN` / `CAIRN_SERVER_BIN`, or the one cargo
/// built next to this test (`target/<profile>/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> -> target/<profile>/NAME
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace` or run `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// The lines of the first `sh` block after `heading` in `page`, a path from the repository's
/// root (`README.md`, `docs/server.md`).
pub fn sh_block(page: &str, heading: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(page);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{page}: {e}"));
    let after = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("{page} has `{heading}`"))
        .1;
    let body = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a sh block")
        .0;
    body.lines().map(str::to_owned).collect()
}

/// A process started in the background, as a documented `... &` line starts it: killed when
/// dropped.
#[derive(Debug)]
pub struct Background(pub std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `c`, a `cairn-server serve`, in the background once it listens: the process and the
/// address it printed (`listening on http://127.0.0.1:PORT`).
pub fn serve_in_background(mut c: Command) -> (Background, String) {
    use std::io::BufRead;
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cairn-server starts");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut first)
        .expect("cairn-server says where it listens");
    let url = first
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    (Background(child), url)
}

/// A member's home: a temp directory used as `CAIRN_HOME`.
#[derive(Debug)]
pub struct Home {
    dir: tempfile::TempDir,
    /// When set, commands see a pinned clock (`CAIRN_NOW`): this day at 10:00 UTC, one minute
    /// later for each command run, so events keep their order.
    pub day: Option<String>,
    ticks: std::cell::Cell<u32>,
    /// The time zone of the member's machine (`TZ`).
    pub tz: String,
    /// Let writes start a quiet background sync (off by default, so tests control every sync).
    pub auto_sync: bool,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "command failed: {}{}",
            self.stderr, self.stdout
        );
        self.stdout
    }

    /// Asserts failure with one error: an `error:` line, then any `caused by:` lines, then at
    /// most one `hint:` line, and no panic. Returns them joined by spaces.
    #[track_caller]
    pub fn fails(self) -> String {
        assert_ne!(
            self.code, 0,
            "command should have failed; stdout: {}",
            self.stdout
        );
        let lines: Vec<_> = self.stderr.lines().collect();
        assert!(!lines.is_empty(), "no error printed");
        assert!(lines[0].starts_with("error: "), "got: {}", self.stderr);
        let rest = &lines[1..];
        let hints = rest.iter().filter(|l| l.starts_with("hint: ")).count();
        let causes = rest
            .iter()
            .take_while(|l| l.starts_with("caused by: "))
            .count();
        assert!(
            hints <= 1
                && causes + hints == rest.len()
                && rest
                    .last()
                    .is_none_or(|l| hints == 0 || l.starts_with("hint: ")),
            "an error, its causes, then one hint expected, got: {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        lines.join(" ")
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    pub fn new() -> Self {
        Home {
            dir: tempfile::tempdir().expect("a temp dir"),
            day: Some("2026-11-23".to_owned()),
            ticks: std::cell::Cell::new(0),
            tz: "Europe/Paris".to_owned(),
            auto_sync: false,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn replica(&self) -> PathBuf {
        self.dir.path().join("replica.sqlite3")
    }

    /// Where this home keeps the replica of the organisation `org` (its id).
    pub fn org_replica(&self, org: &str) -> PathBuf {
        self.dir
            .path()
            .join("orgs")
            .join(org)
            .join("replica.sqlite3")
    }

    /// Changes waiting in the outbox of this home's replica of the organisation `org`.
    pub fn org_outbox(&self, org: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.org_replica(org)).expect("the replica opens");
        conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .expect("the outbox counts")
    }

    /// The command, ready to run in this home, without colour.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(cairn_bin());
        c.args(args)
            .env("CAIRN_HOME", self.dir.path())
            .env("TZ", &self.tz)
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            // Output in a pipe is not wrapped, unless COLUMNS says a width.
            .env_remove("COLUMNS")
            .env("CAIRN_AUTO_SYNC", if self.auto_sync { "1" } else { "0" })
            .stdin(Stdio::null());
        match &self.day {
            Some(day) => {
                let n = self.ticks.get();
                assert!(n < 600, "the pinned clock stays within its day");
                self.ticks.set(n + 1);
                c.env(
                    "CAIRN_NOW",
                    format!("{day}T{:02}:{:02}:00Z", 10 + n / 60, n % 60),
                )
            }
            None => c.env_remove("CAIRN_NOW"),
        };
        c
    }

    /// Runs `cairn ARGS...` in this home.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("cairn runs").into()
    }

    /// A copy of this home, as a backup restored or a laptop copied by hand leaves it: the same
    /// replica, device token and actors, with the clock going on from where this one is.
    pub fn copy(&self) -> Home {
        let copy = Home {
            dir: tempfile::tempdir().expect("a temp dir"),
            day: self.day.clone(),
            ticks: std::cell::Cell::new(self.ticks.get()),
            tz: self.tz.clone(),
            auto_sync: self.auto_sync,
        };
        for entry in std::fs::read_dir(self.path()).expect("the home lists") {
            let entry = entry.expect("an entry");
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::copy(entry.path(), copy.path().join(entry.file_name()))
                    .expect("the file copies");
            }
        }
        copy
    }

    /// A value of the replica's `meta` table (`token`, `me`, `device_id`, ...).
    pub fn meta(&self, key: &str) -> String {
        let conn = rusqlite::Connection::open(self.replica()).expect("the replica opens");
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .unwrap_or_else(|e| panic!("no meta {key}: {e}"))
    }

    /// The changes waiting in the outbox: (document, bytes), oldest first.
    pub fn outbox(&self) -> Vec<(String, Vec<u8>)> {
        let conn = rusqlite::Connection::open(self.replica()).expect("the replica opens");
        let mut st = conn
            .prepare("SELECT doc, change FROM outbox ORDER BY seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A new home joined to `server` with `invite`, and `how` (`--name N`, `--claim @h`).
    pub fn joined(server: &Server, invite: &str, how: &[&str]) -> Self {
        let home = Home::new();
        let mut args = vec!["join", &server.url, "--invite", invite];
        args.extend_from_slice(how);
        home.run(&args).ok();
        home
    }

    /// Starts a team here with the given founder, plus members added by name.
    pub fn team(founder: &str, others: &[&str]) -> Self {
        let home = Home::new();
        home.run(&[
            "init",
            "--team",
            "Otters",
            "--name",
            founder,
            "--tz",
            "Europe/Paris",
        ])
        .ok();
        for o in others {
            home.run(&["team", "member", "add", o]).ok();
        }
        home
    }

    /// Every row of every table of the replica, to show a command changed nothing.
    pub fn dump(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.replica()).expect("the replica opens");
        let tables: Vec<String> = {
            let mut st = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let mut out = Vec::new();
        for t in tables {
            let mut st = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = st.column_count();
            let mut rows = st.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                out.push(format!("{t}: {}", cells.join(" | ")));
            }
        }
        out.sort();
        out
    }
}

/// The feed of `home` as JSON items: what members logged and gave, without the notes of changes
/// to the team (which [`feed_all`] keeps).
pub fn feed(home: &Home, extra: &[&str]) -> Vec<serde_json::Value> {
    feed_all(home, extra)
        .into_iter()
        .filter(|i| i["kind"] != "team")
        .collect()
}

/// The whole feed of `home` as JSON items, notes of changes to the team included: page after
/// page, each going on before the last one's id, as `feed --json` says.
pub fn feed_all(home: &Home, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["feed", "--json", "--limit", "1000"];
        args.extend_from_slice(extra);
        if let Some(b) = &before {
            args.extend_from_slice(&["--before", b]);
        }
        let page = home.run(&args).json();
        let serde_json::Value::Array(got) = &page["items"] else {
            panic!("feed --json has no items: {page}");
        };
        items.extend(got.iter().cloned());
        match (&page["more"], &page["next_before"]) {
            (serde_json::Value::Bool(true), serde_json::Value::String(next)) => {
                before = Some(next.clone());
            }
            (serde_json::Value::Bool(false), serde_json::Value::Null) => return items,
            _ => panic!("feed --json says neither more nor done: {page}"),
        }
    }
}

/// Words as a shell splits them (double quotes only, which is all the README and the server's
/// printed commands use).
pub fn shell_words(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in code.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}
