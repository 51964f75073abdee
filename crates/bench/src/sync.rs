//! The sync rows: a real `cairn-server` on loopback, the seeded replica published to it, then
//! what a sync costs when nothing changed, for k new events, and for a new device catching up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_core::ids::EventId;
use cairn_core::{NewEvent, Stamp};
use cairn_protocol::{JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use cairn_store::{Remote, Replica};
use std::str::FromStr as _;

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
    /// Seconds after the publication until the server had kept every snapshot it made due.
    pub compact_secs: f64,
    /// A new device joining: seconds (the median of a few new devices), changes received, body
    /// bytes received, requests, whole documents received, and the bytes that crossed the wire
    /// (gzip, HTTP headers and all).
    pub join_secs: f64,
    pub join_changes: u64,
    pub join_bytes: u64,
    pub join_requests: u64,
    pub join_docs: u64,
    pub join_wire: u64,
    /// A device that stopped syncing while the last part of the history was still to come:
    /// log entries it was behind, seconds, documents and changes received, wire bytes.
    pub behind: Option<Behind>,
    /// The server's storage for the team: its log's bytes and its snapshots' bytes.
    pub log_bytes: u64,
    pub snapshot_bytes: u64,
    /// The same after pruning everything the snapshots hold.
    pub pruned_log_bytes: u64,
    pub pruned_snapshot_bytes: u64,
}

/// What a device far behind (but not new) cost to bring level.
#[derive(Debug)]
pub struct Behind {
    pub entries: u64,
    pub secs: f64,
    pub docs: u64,
    pub changes: u64,
    pub wire: u64,
}

/// A loopback relay in front of the server that counts the bytes coming back from it: what
/// crossed the wire, compressed, HTTP headers included.
struct Relay {
    url: String,
    down: Arc<AtomicU64>,
}

impl Relay {
    fn start(server_url: &str) -> Result<Relay, Failure> {
        let target = server_url.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Failure::run(format!("cannot listen for the relay: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::run(format!("the relay has no address: {e}")))?;
        let down = Arc::new(AtomicU64::new(0));
        let counted = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || copy(client_in, server_out, None));
                let counted = counted.clone();
                std::thread::spawn(move || copy(server, client, Some(&counted)));
            }
        });
        Ok(Relay {
            url: format!("http://{addr}"),
            down,
        })
    }

    /// Bytes the server sent since the last call.
    fn take(&self) -> u64 {
        self.down.swap(0, Ordering::Relaxed)
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream, count: Option<&AtomicU64>) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = count {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// `cairn ARGS --json` in `home`, talking to the server at `url` for this one run.
fn cairn_json_at(
    cairn: &Path,
    home: &Path,
    url: &str,
    args: &[&str],
) -> Result<serde_json::Value, Failure> {
    // The replica keeps its server's address: pointed at `url` for the run, then back.
    let replica = Replica::open(&home.join(crate::REPLICA_FILE))
        .map_err(|e| Failure::run(format!("cannot open {}: {e}", home.display())))?;
    let remote = replica
        .remote()
        .map_err(|e| Failure::run(e.to_string()))?
        .ok_or_else(|| Failure::run("the device has no server"))?;
    let mut replica = replica;
    let set = |r: &mut Replica, to: &str| {
        r.set_remote(&Remote {
            url: to.to_owned(),
            ..remote.clone()
        })
        .map_err(|e| Failure::run(e.to_string()))
    };
    set(&mut replica, url)?;
    drop(replica);
    let out = cairn_json(cairn, home, args);
    let mut replica =
        Replica::open(&home.join(crate::REPLICA_FILE)).map_err(|e| Failure::run(e.to_string()))?;
    set(&mut replica, &remote.url)?;
    out
}

/// The team writes `n` more events over the 90 days after "now": members' devices of their
/// own (a copy of `away`'s replica writes for each, and the changes go up with each member's
/// token). Returns the team's head after.
fn ninety_days(
    server_bin: &Path,
    db: &Path,
    team: &str,
    url: &str,
    away: &Path,
    work: &Path,
    n: usize,
) -> Result<u64, Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::run(format!("{what}: {e}"));
    let scratch = work.join("ninety-days");
    std::fs::create_dir_all(&scratch).map_err(|e| fail("cannot make a directory", &e))?;
    let path = scratch.join(crate::REPLICA_FILE);
    std::fs::copy(away.join(crate::REPLICA_FILE), &path)
        .map_err(|e| fail("cannot copy a replica", &e))?;
    let mut replica = Replica::open(&path).map_err(|e| fail("cannot open a replica", &e))?;
    let state = replica
        .team()
        .map_err(|e| fail("cannot read the team", &e))?;
    // The members who write: up to 50, neither the founder nor the device away (whose actors
    // their own devices hold).
    let away_member = replica
        .me()
        .map_err(|e| fail("cannot read the replica", &e))?;
    let writers: Vec<(String, String)> = state
        .members
        .iter()
        .skip(1)
        .filter(|m| m.id != away_member)
        .take(50)
        .map(|m| (m.id.clone(), m.handle.clone()))
        .collect();
    if writers.is_empty() || n == 0 {
        return Ok(0);
    }
    let start: i64 = jiff::Timestamp::from_str(NOW)
        .map(|t| t.as_millisecond())
        .unwrap_or(0);
    let span = 90 * 86_400_000i64;
    let mut per: Vec<Vec<(EventId, Stamp, NewEvent)>> = vec![Vec::new(); writers.len()];
    for i in 0..n {
        let at = start + 3_600_000 + span * i as i64 / n as i64;
        let w = i % writers.len();
        let date = jiff::Timestamp::from_millisecond(at)
            .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
            .unwrap_or_default();
        let stamp = Stamp {
            at_ms: at,
            tz: "UTC".into(),
            date,
            late: false,
        };
        let b = (i as u64).to_be_bytes();
        let id = EventId::new(at, [b[3], b[4], b[5], b[6], b[7]]);
        let text = crate::ACTIONS[i % crate::ACTIONS.len()];
        let pillar = Some(crate::PILLARS[i % crate::PILLARS.len()].to_owned());
        per[w].push((id, stamp, NewEvent::action(text, pillar, None)));
    }
    let agent = crate::load::agent();
    for ((member, handle), batch) in writers.iter().zip(&per) {
        replica
            .add_events(member, batch)
            .map_err(|e| fail("cannot write events", &e))?;
        let invite = admin(
            server_bin,
            db,
            &[
                "invite",
                "create",
                "--team",
                team,
                "--member",
                &format!("@{handle}"),
            ],
        )?;
        let join: JoinResponse = post_json(
            &agent,
            &format!("{url}/v1/join"),
            None,
            &JoinRequest {
                invite,
                device_name: "ninety days".into(),
                name: None,
                claim: None,
                publish: None,
                ..JoinRequest::default()
            },
        )?;
        loop {
            let out = replica
                .outbox(2_000, 4 << 20)
                .map_err(|e| fail("cannot read the outbox", &e))?;
            let Some(last) = out.last().map(|o| o.seq) else {
                break;
            };
            let req = SyncRequest {
                // Grouped as every cairn client groups it.
                push: cairn_client::sync::group_outbox(&out),
                max_pull: Some(0),
                ..SyncRequest::default()
            };
            let resp: SyncResponse =
                post_json(&agent, &format!("{url}/v1/sync"), Some(&join.token.0), &req)?;
            replica
                .apply_exchange(Some(last), &[], 0, start)
                .map_err(|e| fail("cannot drop what went up", &e))?;
            if resp.acked == 0 {
                return Err(Failure::run("the server took none of a member's events"));
            }
        }
    }
    let status = admin(server_bin, db, &["team", "list", "--json"])?;
    let teams: serde_json::Value = serde_json::from_str(&status)
        .map_err(|e| fail("`team list --json` printed no JSON", &e))?;
    Ok(teams
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == team))
        .map_or(0, |t| num(t, "changes")))
}

/// `load::post`, its failure in the benchmark's words.
fn post_json<T: serde::de::DeserializeOwned>(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &impl serde::Serialize,
) -> Result<T, Failure> {
    crate::load::post(agent, url, token, body).map_err(|e| Failure::run(format!("{url}: {e}")))
}

/// Waits until the server has no snapshot left to keep (its `/metrics` say so), at most a
/// minute; returns how long that took.
fn compacted(url: &str) -> Result<f64, Failure> {
    let started = Instant::now();
    let agent = ureq::Agent::new_with_defaults();
    loop {
        let text = agent
            .get(format!("{url}/metrics"))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| Failure::run(format!("cannot read the server's metrics: {e}")))?;
        let pending = text
            .lines()
            .find_map(|l| l.strip_prefix("cairn_documents_compacting "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        match pending {
            Some(0) => return Ok(started.elapsed().as_secs_f64()),
            None => {
                return Err(Failure::run(
                    "the server's metrics say nothing of compaction",
                ));
            }
            Some(_) if started.elapsed() > Duration::from_secs(60) => {
                return Err(Failure::run("the server kept compacting for a minute"));
            }
            // Polled, not slept on as a guess: the figure is whatever the server reports.
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
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
    // Every simulated device connects from 127.0.0.1, and the load phases drive each device
    // flat out to find the server's capacity: no limits per address or per device here.
    start_server_with(
        bin,
        db,
        &[
            "--rate-join",
            "off",
            "--rate-sync",
            "off",
            "--max-connections-per-address",
            "4096",
            "--max-connections",
            "4096",
        ],
    )
}

/// Starts `cairn-server` on loopback on `db` with `flags` besides `--listen`.
pub fn start_server_with(
    bin: &Path,
    db: impl AsRef<std::ffi::OsStr>,
    flags: &[&str],
) -> Result<(Server, String), Failure> {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
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
    cairn_json_now(cairn, home, NOW, args)
}

/// [`cairn_json`] with the clock pinned at `now` instead of [`NOW`].
pub fn cairn_json_now(
    cairn: &Path,
    home: &Path,
    now: &str,
    args: &[&str],
) -> Result<serde_json::Value, Failure> {
    let out = Command::new(cairn)
        .args(args)
        .arg("--json")
        .env("CAIRN_HOME", home)
        .env("CAIRN_NOW", now)
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

/// How many new devices join, one after another, for the new-device row (its median).
pub const NEW_DEVICES: usize = 5;

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
    let (server, url) = start_server(&server_bin, &db)?;
    let team = admin(&server_bin, &db, &["team", "create", "Bench"])?;
    let invite = admin(
        &server_bin,
        &db,
        &[
            "invite",
            "create",
            "--team",
            &team,
            "--uses",
            &(5 + NEW_DEVICES).to_string(),
        ],
    )?;

    let outbox = num(&cairn_json(cairn, home, &["status"])?, "waiting");
    let started = Instant::now();
    let founder = admin(
        &server_bin,
        &db,
        &["invite", "create", "--team", &team, "--founder"],
    )?;
    let published = cairn_json(cairn, home, &["publish", &url, "--invite", &founder])?;
    let publish_secs = started.elapsed().as_secs_f64();
    let compact_secs = compacted(&url)?;
    let relay = Relay::start(&url)?;
    // A device that then goes away while the team writes 90 days more (an eighth of the
    // history, in the months after "now"), each member from a device of their own.
    let away = work.join("away-device");
    cairn_json(
        cairn,
        &away,
        &["join", &url, "--invite", &invite, "--name", "Away"],
    )?;
    // The founder hears of the device that joined: then nothing is new.
    cairn_json(cairn, home, &["sync"])?;
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
    compacted(&url)?;

    // A new device, several times over (each a device of its own, joining as a member of its
    // own): one catch-up is too short a figure to take alone on a shared machine, so the row
    // gives the median; what came, and the bytes on the wire, are the first one's.
    let mut joins = Vec::with_capacity(NEW_DEVICES);
    let mut first = None;
    for k in 0..NEW_DEVICES {
        let fresh = work.join(format!("new-device-{k}"));
        relay.take();
        let started = Instant::now();
        let joined = cairn_json(
            cairn,
            &fresh,
            &[
                "join",
                &relay.url,
                "--invite",
                &invite,
                "--name",
                &format!("Newcomer {k}"),
            ],
        )?;
        joins.push(started.elapsed().as_secs_f64());
        let wire = relay.take();
        first.get_or_insert((joined, wire));
        // (Only the first is kept: the others' homes would just fill the disk.)
        if k > 0 {
            let _ = std::fs::remove_dir_all(&fresh);
        }
    }
    joins.sort_by(f64::total_cmp);
    let join_secs = joins[joins.len() / 2];
    let (joined, join_wire) = first.expect("at least one new device");
    let ninety = ninety_days(&server_bin, &db, &team, &url, &away, work, events / 8)?;
    let behind = {
        let cursor = num(&cairn_json(cairn, &away, &["status"])?, "cursor");
        relay.take();
        let away_via_relay = relay.url.clone();
        let started = Instant::now();
        let back = cairn_json_at(cairn, &away, &away_via_relay, &["sync"])?;
        Some(Behind {
            entries: ninety.saturating_sub(cursor),
            secs: started.elapsed().as_secs_f64(),
            docs: num(&back, "docs"),
            changes: num(&back, "received"),
            wire: relay.take(),
        })
    };

    let teams: serde_json::Value =
        serde_json::from_str(&admin(&server_bin, &db, &["team", "list", "--json"])?)
            .map_err(|e| Failure::run(format!("`team list --json` printed no JSON: {e}")))?;
    let team_row = teams
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == team.as_str()))
        .cloned()
        .unwrap_or_default();
    // Then pruned of everything its snapshots hold, with the server stopped (a horizon of 0 is
    // safe only then).
    drop(server);
    admin(
        &server_bin,
        &db,
        &["team", "prune", "--team", &team, "--older-than", "0"],
    )?;
    let pruned: serde_json::Value =
        serde_json::from_str(&admin(&server_bin, &db, &["team", "list", "--json"])?)
            .map_err(|e| Failure::run(format!("`team list --json` printed no JSON: {e}")))?;
    let pruned_row = pruned
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == team.as_str()))
        .cloned()
        .unwrap_or_default();
    Ok(SyncFigures {
        events,
        publish_secs,
        publish_changes: outbox,
        publish_bytes: num(&published, "bytes_up"),
        compact_secs,
        noop_requests: num(&noop, "requests"),
        noop_bytes: num(&noop, "bytes_up") + num(&noop, "bytes_down"),
        new_events,
        join_secs,
        join_changes: num(&joined, "received"),
        join_bytes: num(&joined, "bytes_down"),
        join_requests: num(&joined, "requests"),
        join_docs: num(&joined, "docs"),
        join_wire,
        behind,
        log_bytes: num(&team_row, "log_bytes"),
        snapshot_bytes: num(&team_row, "snapshot_bytes"),
        pruned_log_bytes: num(&pruned_row, "log_bytes"),
        pruned_snapshot_bytes: num(&pruned_row, "snapshot_bytes"),
    })
}
