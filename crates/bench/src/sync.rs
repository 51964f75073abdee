//! The sync rows: a real `cairn-server` on loopback, the seeded replica published to it, then
//! what a sync costs when nothing changed, for k new events, and for a new device catching up.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{Failure, NOW};

/// What the sync rows measured at one size.
#[derive(Debug)]
pub struct SyncFigures {
    pub events: usize,
    /// `cairn publish` of the whole seeded history: seconds, changes and request body bytes.
    pub publish_secs: f64,
    pub publish_changes: u64,
    pub publish_bytes: u64,
    /// A sync with nothing new: requests and body bytes both ways.
    pub noop_requests: u64,
    pub noop_bytes: u64,
    /// For each k: (k, the new changes' own bytes, bytes sent up, requests).
    pub new_events: Vec<(usize, u64, u64, u64)>,
    /// A new device joining: seconds, changes received, body bytes received, requests.
    pub join_secs: f64,
    pub join_changes: u64,
    pub join_bytes: u64,
    pub join_requests: u64,
}

/// The server process, stopped when dropped.
pub struct Server(Child);

impl Server {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// Starts `cairn-server` on loopback on the database `db` (a SQLite file or a PostgreSQL URL);
/// returns it and its base URL.
pub fn start_server(
    bin: &Path,
    db: impl AsRef<std::ffi::OsStr>,
) -> Result<(Server, String), Failure> {
    let mut child = Command::new(bin)
        // Every simulated device connects from 127.0.0.1, and the load phases drive each device
        // flat out to find the server's capacity: no limits per address or per device here.
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-join",
            "off",
            "--rate-sync",
            "off",
        ])
        .args([
            "--max-connections-per-address",
            "4096",
            "--max-connections",
            "4096",
        ])
        .env("CAIRN_SERVER_DB", db)
        .env("CAIRN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::run(format!("cannot start {}: {e}", bin.display())))?;
    let stdout = child.stdout.take();
    let server = Server(child);
    let mut line = String::new();
    if let Some(out) = stdout {
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| Failure::run(format!("the server said nothing: {e}")))?;
    }
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| Failure::run("the server did not start"))?
        .to_owned();
    Ok((server, url))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `cairn-server` binary beside `cairn`.
pub fn server_bin(cairn: &Path) -> PathBuf {
    cairn.with_file_name(format!("cairn-server{}", std::env::consts::EXE_SUFFIX))
}

pub fn cairn_json(cairn: &Path, home: &Path, args: &[&str]) -> Result<serde_json::Value, Failure> {
    let out = Command::new(cairn)
        .args(args)
        .arg("--json")
        .env("CAIRN_HOME", home)
        .env("CAIRN_NOW", NOW)
        .env("CAIRN_AUTO_SYNC", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::run(format!("cannot run {}: {e}", cairn.display())))?;
    if !out.status.success() {
        return Err(Failure::run(format!(
            "`cairn {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::run(format!("`cairn {}` printed no JSON: {e}", args.join(" "))))
}

pub fn admin(
    server: &Path,
    db: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
) -> Result<String, Failure> {
    let out = Command::new(server)
        .args(args)
        .env("CAIRN_SERVER_DB", db)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::run(format!("cannot run {}: {e}", server.display())))?;
    if !out.status.success() {
        return Err(Failure::run(format!(
            "`cairn-server {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Publishes the seeded replica in `home` to a fresh server in `work`, then measures.
pub fn measure(
    cairn: &Path,
    home: &Path,
    work: &Path,
    events: usize,
) -> Result<SyncFigures, Failure> {
    let server_bin = server_bin(cairn);
    if !server_bin.is_file() {
        return Err(Failure::run(format!(
            "no cairn-server at {}; build it with `cargo build --release -p cairn-server`",
            server_bin.display()
        )));
    }
    let db = work.join("server.sqlite3");
    let (_server, url) = start_server(&server_bin, &db)?;
    let team = admin(&server_bin, &db, &["team", "create", "Bench"])?;
    let invite = admin(
        &server_bin,
        &db,
        &["invite", "create", "--team", &team, "--uses", "5"],
    )?;

    let started = Instant::now();
    let published = cairn_json(cairn, home, &["publish", &url, "--invite", &invite])?;
    let publish_secs = started.elapsed().as_secs_f64();

    let noop = cairn_json(cairn, home, &["sync"])?;
    let mut new_events = Vec::new();
    for k in [1usize, 10, 100] {
        for n in 0..k {
            cairn_json(
                cairn,
                home,
                &["log", &format!("sync bench {k}/{n}"), "--pillar", "trust"],
            )?;
        }
        let waiting = num(&cairn_json(cairn, home, &["status"])?, "waiting_bytes");
        let sync = cairn_json(cairn, home, &["sync"])?;
        new_events.push((k, waiting, num(&sync, "bytes_up"), num(&sync, "requests")));
    }

    let fresh = work.join("new-device");
    let started = Instant::now();
    let joined = cairn_json(
        cairn,
        &fresh,
        &["join", &url, "--invite", &invite, "--name", "Newcomer"],
    )?;
    let join_secs = started.elapsed().as_secs_f64();
    Ok(SyncFigures {
        events,
        publish_secs,
        publish_changes: num(&published, "sent"),
        publish_bytes: num(&published, "bytes_up"),
        noop_requests: num(&noop, "requests"),
        noop_bytes: num(&noop, "bytes_up") + num(&noop, "bytes_down"),
        new_events,
        join_secs,
        join_changes: num(&joined, "received"),
        join_bytes: num(&joined, "bytes_down"),
        join_requests: num(&joined, "requests"),
    })
}
