//! One member floods the server, a teammate syncs beside it: issue 25's member-DoS scenario.
//!
//! A server with its default limits; Mallory joins and makes nine more devices with link codes
//! (ten in all), and each device keeps four requests in flight, every one a gzip bomb (8 MiB of
//! JSON holding 2.8 million empty changes, about 8 KB on the wire), at 87 KiB/s all together.
//! Meanwhile Tess, a teammate, syncs with nothing to push at a steady rate, first with nobody
//! else on the server, then through the flood. Her latencies count from the moment each sync
//! was due; the server's CPU and peak memory are read from `/proc`.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_protocol::{JoinRequest, JoinResponse, LinkResponse, SyncRequest, SyncResponse};

use crate::Failure;
use crate::load::{agent, post};
use crate::sync::{admin, server_bin, start_server_with};

/// What the flood row measured.
#[derive(Debug)]
pub struct FloodFigures {
    pub seconds: f64,
    /// Bytes of one bomb on the wire.
    pub bomb_bytes: usize,
    /// Bombs sent, and how the server answered them: (status, count).
    pub bombs: u64,
    pub answers: Vec<(u16, u64)>,
    /// Tess's no-op syncs with nobody else on the server, then through the flood.
    pub quiet_p50_ms: f64,
    pub quiet_p99_ms: f64,
    pub flood_p50_ms: f64,
    pub flood_p99_ms: f64,
    pub flood_syncs: usize,
    pub errors: usize,
    /// The server's CPU during the flood, in cores, and its peak resident memory.
    pub cpu_cores: Option<f64>,
    pub rss_peak_mb: Option<f64>,
}

/// Mallory's devices, requests in flight on each, and the bytes per second they send together.
const DEVICES: usize = 10;
const IN_FLIGHT: usize = 4;
const BYTES_PER_S: f64 = 87.0 * 1024.0;
/// Tess's no-op syncs per second.
const TESS_RATE: f64 = 50.0;

/// 8 MiB of JSON with 2.8 million empty changes, gzipped as tightly as gzip goes.
fn bomb() -> Vec<u8> {
    let mut json = Vec::with_capacity(8 << 20);
    json.extend_from_slice(br#"{"cursor":0,"push":[{"doc":"team","changes":["#);
    while json.len() < (8 << 20) - 8 {
        json.extend_from_slice(br#""","#);
    }
    json.extend_from_slice(br#"""]}]}"#);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = e.write_all(&json);
    e.finish().unwrap_or_default()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's closing parenthesis: utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_peak_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Tess's no-op syncs at [`TESS_RATE`] for `secs`: her latencies (sorted) and errors.
fn tess(url: &str, token: &str, secs: f64) -> (Vec<Duration>, usize) {
    let agent = agent();
    let interval = Duration::from_secs_f64(1.0 / TESS_RATE);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut due = start;
    let mut cursor = 0;
    let (mut lat, mut errors) = (Vec::new(), 0);
    // A server that falls far behind is given up on: the syncs still due count as errors.
    let give_up = end + Duration::from_secs_f64(secs);
    while due < end {
        let now = Instant::now();
        if now > give_up {
            errors += ((end - due).as_secs_f64() * TESS_RATE).ceil() as usize;
            break;
        }
        if due > now {
            std::thread::sleep(due - now);
        }
        let req = SyncRequest {
            cursor,
            ..SyncRequest::default()
        };
        match post::<SyncResponse>(&agent, url, Some(token), &req) {
            Ok(resp) => {
                cursor = resp.cursor;
                lat.push(due.elapsed());
            }
            Err(_) => errors += 1,
        }
        due += interval;
    }
    lat.sort_unstable();
    (lat, errors)
}

/// Runs the scenario for `secs` seconds of each phase on a fresh SQLite server.
pub fn measure(cairn: &Path, work: &Path, secs: f64) -> Result<FloodFigures, Failure> {
    let bin = server_bin(cairn);
    let db = work.join("flood.sqlite3");
    let fail = |e: String| Failure::run(format!("the flood row failed: {e}"));
    // The server as shipped: every limit at its default.
    let (server, url) = start_server_with(&bin, &db, &[])?;
    let pid = server.pid();
    let team = admin(&bin, &db, &["team", "create", "Flood"])?;
    let founder = admin(
        &bin,
        &db,
        &["invite", "create", "--team", &team, "--founder"],
    )?;
    let invite = admin(
        &bin,
        &db,
        &["invite", "create", "--team", &team, "--uses", "2"],
    )?;
    let a = agent();
    let join_url = format!("{url}/v1/join");
    let sync_url = format!("{url}/v1/sync");
    let link_url = format!("{url}/v1/link");
    let join = |invite: &str, name: Option<&str>, publish: Option<&str>| {
        post::<JoinResponse>(
            &a,
            &join_url,
            None,
            &JoinRequest {
                invite: invite.to_owned(),
                device_name: "a device".into(),
                name: name.map(str::to_owned),
                publish: publish.map(str::to_owned),
                ..JoinRequest::default()
            },
        )
    };
    // The founder's one team change, so members may join.
    let founder = join(&founder, None, Some("founder")).map_err(fail)?;
    let mut doc = automerge::Automerge::new();
    let change = {
        use automerge::transaction::Transactable;
        let mut tx = doc.transaction();
        let _ = tx.put(automerge::ROOT, "name", "Flood");
        tx.commit();
        doc.get_changes(&[])[0].raw_bytes().to_vec()
    };
    let first = SyncRequest {
        push: vec![cairn_protocol::DocChanges {
            doc: "team".into(),
            changes: vec![cairn_protocol::Bytes(change)],
        }],
        import_done: true,
        ..SyncRequest::default()
    };
    post::<SyncResponse>(&a, &sync_url, Some(&founder.token.0), &first).map_err(fail)?;
    let tess_token = join(&invite, Some("Tess"), None).map_err(fail)?.token.0;
    // Mallory and her nine more devices, linked five at a time (a device holds five codes).
    let mut mallory = vec![join(&invite, Some("Mallory"), None).map_err(fail)?.token.0];
    let mut linker = 0;
    while mallory.len() < DEVICES {
        let code: Result<LinkResponse, String> = post(
            &a,
            &link_url,
            Some(&mallory[linker]),
            &serde_json::json!({}),
        );
        match code {
            Ok(code) => mallory.push(join(&code.invite, None, None).map_err(fail)?.token.0),
            // This device's codes are spent: the newest links the next ones.
            Err(_) if linker + 1 < mallory.len() => linker = mallory.len() - 1,
            Err(e) => return Err(fail(e)),
        }
    }

    let (quiet, quiet_errors) = tess(&sync_url, &tess_token, secs);

    let bomb = Arc::new(bomb());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let statuses: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>> = Arc::default();
    let senders = DEVICES * IN_FLIGHT;
    // Each sender's share of the bandwidth: one bomb every `every`.
    let every = Duration::from_secs_f64(senders as f64 * bomb.len() as f64 / BYTES_PER_S);
    let handles: Vec<_> = (0..senders)
        .map(|i| {
            let (token, bomb, stop) = (mallory[i % DEVICES].clone(), bomb.clone(), stop.clone());
            let (sent, statuses, url) = (sent.clone(), statuses.clone(), sync_url.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut due = Instant::now() + every.mul_f64(i as f64 / senders as f64);
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep((due - now).min(Duration::from_millis(50)));
                        continue;
                    }
                    due += every;
                    let resp = agent
                        .post(&url)
                        .header("Authorization", format!("Bearer {token}"))
                        .header("Content-Type", "application/json")
                        .header("Content-Encoding", "gzip")
                        .send(&bomb[..]);
                    sent.fetch_add(1, Ordering::Relaxed);
                    let status = match resp {
                        Ok(mut r) => {
                            let _ = r.body_mut().read_to_vec();
                            r.status().as_u16()
                        }
                        Err(_) => 0,
                    };
                    let mut s = statuses.lock().unwrap_or_else(|e| e.into_inner());
                    *s.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    let ticks = cpu_ticks(pid);
    let started = Instant::now();
    let (flood, flood_errors) = tess(&sync_url, &tess_token, secs);
    let cpu = ticks.zip(cpu_ticks(pid)).map(|(a, b)| {
        // Clock ticks are hundredths of a second on Linux.
        (b - a) as f64 / 100.0 / started.elapsed().as_secs_f64()
    });
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let rss = rss_peak_mb(pid);
    drop(server);
    let answers = statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(s, n)| (*s, *n))
        .collect();
    Ok(FloodFigures {
        seconds: secs,
        bomb_bytes: bomb.len(),
        bombs: sent.load(Ordering::Relaxed),
        answers,
        quiet_p50_ms: percentile(&quiet, 0.50),
        quiet_p99_ms: percentile(&quiet, 0.99),
        flood_p50_ms: percentile(&flood, 0.50),
        flood_p99_ms: percentile(&flood, 0.99),
        flood_syncs: flood.len(),
        errors: quiet_errors + flood_errors,
        cpu_cores: cpu,
        rss_peak_mb: rss,
    })
}
