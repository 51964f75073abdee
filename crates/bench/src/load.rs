//! The server under load: C simulated clients on loopback, each with its own device token and
//! automerge actor. Four phases: no-op syncs and one-change pushes, each first as fast as the
//! clients can go (the server's capacity, requests per second), then paced at the target rate
//! (2,000 no-op syncs/s, 500 pushes/s) spread over all clients (the latency at that rate). Paced
//! latencies count from the moment a request was due, so a server that falls behind shows it
//! (no coordinated omission). RSS is the server's peak (`VmHWM`).

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge, ROOT, transaction::Transactable};
use cairn_protocol::{Bytes, DocChanges, JoinRequest, JoinResponse, SyncRequest, SyncResponse};

use crate::Failure;
use crate::sync::{Server, admin, server_bin, start_server};

/// What the load rows measured.
#[derive(Debug)]
pub struct LoadFigures {
    /// The storage and how many server processes: `SQLite`, `PostgreSQL x2`.
    pub label: String,
    pub clients: usize,
    pub seconds: f64,
    /// Requests per second with every client going flat out.
    pub noop_per_s: f64,
    pub push_per_s: f64,
    /// Latency percentiles at the target rates.
    pub noop_rate: f64,
    pub noop_p50_ms: f64,
    pub noop_p99_ms: f64,
    pub push_rate: f64,
    pub push_p50_ms: f64,
    pub push_p99_ms: f64,
    pub errors: usize,
    /// The server's peak resident memory (the largest of its processes), when the system
    /// tells it.
    pub rss_peak_mb: Option<f64>,
}

/// Where the servers under load keep their data.
#[derive(Clone, Debug)]
pub enum Storage {
    /// One process on a SQLite file of its own.
    Sqlite,
    /// `instances` processes on one PostgreSQL database (URL).
    Postgres { url: String, instances: usize },
}

/// The target rates of ARCHITECTURE.md, at which latency is measured.
const NOOP_RATE: f64 = 2_000.0;
const PUSH_RATE: f64 = 500.0;

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub(crate) fn post<T: serde::de::DeserializeOwned>(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    body: &impl serde::Serialize,
) -> Result<T, String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let mut req = agent.post(url).content_type("application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.send(&bytes[..]).map_err(|e| e.to_string())?;
    let status = resp.status();
    let data = resp
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&data)));
    }
    serde_json::from_slice(&data).map_err(|e| e.to_string())
}

/// One simulated device: its token, its journal and the actor writing it, and the server
/// process it talks to.
pub(crate) struct Client {
    url: String,
    token: String,
    doc_id: String,
    doc: Automerge,
    cursor: u64,
    n: u64,
    /// A change whose push failed, sent again before any new one (the server takes an actor's
    /// changes only in order).
    pending: Option<Vec<u8>>,
}

impl Client {
    /// A device that syncs at `url` (a server's `/v1/sync`, with its query if any) with
    /// `token`, from `cursor` on, writing the new document `doc_id` when it pushes.
    pub(crate) fn new(url: String, token: String, doc_id: String, cursor: u64) -> Client {
        let mut doc = Automerge::new();
        doc.set_actor(ActorId::random());
        Client {
            url,
            token,
            doc_id,
            doc,
            cursor,
            n: 0,
            pending: None,
        }
    }

    fn next_change(&mut self) -> Vec<u8> {
        let heads = self.doc.get_heads();
        let mut tx = self.doc.transaction();
        let _ = tx.put(ROOT, format!("k{}", self.n), "a small stone");
        tx.commit();
        self.n += 1;
        self.doc.get_changes(&heads)[0].raw_bytes().to_vec()
    }

    pub(crate) fn sync(
        &mut self,
        agent: &ureq::Agent,
        push: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let req = SyncRequest {
            cursor: self.cursor,
            push: push
                .map(|c| {
                    vec![DocChanges {
                        doc: self.doc_id.clone(),
                        changes: vec![Bytes(c)],
                    }]
                })
                .unwrap_or_default(),
            max_pull: None,
            import_done: false,
            withdrawals: false,
            ..SyncRequest::default()
        };
        let resp: SyncResponse = post(agent, &self.url, Some(&self.token), &req)?;
        self.cursor = resp.cursor;
        Ok(())
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Runs every client in a thread of its own for `secs`, pushing when `push` is set: flat out, or
/// paced so that all clients together send `rate` requests per second. Returns the clients, the
/// latencies (sorted) and the errors.
pub(crate) fn phase(
    clients: Vec<Client>,
    secs: f64,
    push: bool,
    rate: Option<f64>,
) -> (Vec<Client>, Vec<Duration>, usize) {
    let n = clients.len();
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let agent = agent();
                let mut lat = Vec::new();
                let mut errors = 0;
                // Each client's share of the rate, its first request offset so they interleave.
                let interval = rate.map(|r| Duration::from_secs_f64(n as f64 / r));
                barrier.wait();
                let start = Instant::now();
                let end = start + Duration::from_secs_f64(secs);
                let mut due =
                    start + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / n as u32);
                // Paced: every request due before the end is sent, late ones included, so the
                // slowest are counted.
                while if interval.is_some() {
                    due < end
                } else {
                    Instant::now() < end
                } {
                    if interval.is_some() {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let from = if interval.is_some() {
                        due
                    } else {
                        Instant::now()
                    };
                    let change = push.then(|| c.pending.take().unwrap_or_else(|| c.next_change()));
                    match c.sync(&agent, change.clone()) {
                        Ok(()) => lat.push(from.elapsed()),
                        Err(_) => {
                            errors += 1;
                            c.pending = change;
                        }
                    }
                    if let Some(iv) = interval {
                        due += iv;
                    }
                }
                (c, lat, errors)
            })
        })
        .collect();
    let mut out = Vec::new();
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        if let Ok((c, lat, e)) = h.join() {
            out.push(c);
            all.extend(lat);
            errors += e;
        }
    }
    all.sort_unstable();
    (out, all, errors)
}

pub(crate) fn rss_peak_mb(pid: u32) -> Option<f64> {
    proc_status_mb(pid, "VmHWM:")
}

/// A process's resident memory now (`VmRSS`), when the system tells it.
pub(crate) fn rss_now_mb(pid: u32) -> Option<f64> {
    proc_status_mb(pid, "VmRSS:")
}

fn proc_status_mb(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Measures the server on `storage` with `clients` concurrent clients, `secs` seconds per
/// phase; with several server processes, the clients are spread over them evenly.
pub fn measure(
    cairn: &Path,
    work: &Path,
    clients: usize,
    secs: f64,
    storage: &Storage,
) -> Result<LoadFigures, Failure> {
    let bin = server_bin(cairn);
    let (db, instances, label) = match storage {
        Storage::Sqlite => (
            work.join("load.sqlite3").into_os_string(),
            1,
            "SQLite".to_owned(),
        ),
        Storage::Postgres { url, instances } => (
            url.into(),
            (*instances).max(1),
            format!("PostgreSQL x{instances}"),
        ),
    };
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..instances {
        let (server, url): (Server, String) = start_server(&bin, &db)?;
        servers.push(server);
        urls.push(url);
    }
    let url = urls[0].clone();
    // A database that several runs share (PostgreSQL) keeps their teams: a name of its own.
    let name = format!("Load {label} {}", std::process::id());
    let team = admin(&bin, &db, &["team", "create", &name])?;
    let uses = (clients + 1).to_string();
    let invite = admin(
        &bin,
        &db,
        &["invite", "create", "--team", &team, "--uses", &uses],
    )?;
    let founder = admin(
        &bin,
        &db,
        &["invite", "create", "--team", &team, "--founder"],
    )?;
    let fail = |e: String| Failure::run(format!("the load test failed: {e}"));
    let a = agent();
    // A founder publishes one team change, so members may join.
    let join_url = format!("{url}/v1/join");
    let sync_url = format!("{url}/v1/sync");
    let founder: JoinResponse = post(
        &a,
        &join_url,
        None,
        &JoinRequest {
            invite: founder,
            device_name: "founder".into(),
            name: None,
            claim: None,
            publish: Some("founder".into()),
            ..JoinRequest::default()
        },
    )
    .map_err(fail)?;
    let mut first = Client::new(sync_url.clone(), founder.token.0, "team".into(), 0);
    let change = first.next_change();
    let req = SyncRequest {
        cursor: 0,
        push: vec![DocChanges {
            doc: "team".into(),
            changes: vec![Bytes(change)],
        }],
        max_pull: None,
        import_done: true,
        withdrawals: false,
        ..SyncRequest::default()
    };
    post::<SyncResponse>(&a, &sync_url, Some(&first.token), &req).map_err(fail)?;
    let mut all = Vec::with_capacity(clients);
    for i in 0..clients {
        let joined: JoinResponse = post(
            &a,
            &join_url,
            None,
            &JoinRequest {
                invite: invite.clone(),
                device_name: format!("client {i}"),
                name: Some(format!("Client {i}")),
                claim: None,
                publish: None,
                ..JoinRequest::default()
            },
        )
        .map_err(fail)?;
        let mut c = Client::new(
            format!("{}/v1/sync", urls[i % urls.len()]),
            joined.token.0,
            format!("j/{}/2026-11", joined.member_id),
            0,
        );
        c.sync(&a, None).map_err(fail)?;
        all.push(c);
    }
    let (all, noop_max, e1) = phase(all, secs, false, None);
    let (all, noop, e2) = phase(all, secs, false, Some(NOOP_RATE));
    let (all, push_max, e3) = phase(all, secs, true, None);
    let (_all, push, e4) = phase(all, secs, true, Some(PUSH_RATE));
    let rss = servers
        .iter()
        .filter_map(|s| rss_peak_mb(s.pid()))
        .reduce(f64::max);
    drop(servers);
    Ok(LoadFigures {
        label,
        clients,
        seconds: secs,
        noop_per_s: noop_max.len() as f64 / secs,
        push_per_s: push_max.len() as f64 / secs,
        noop_rate: noop.len() as f64 / secs,
        noop_p50_ms: percentile(&noop, 0.50),
        noop_p99_ms: percentile(&noop, 0.99),
        push_rate: push.len() as f64 / secs,
        push_p50_ms: percentile(&push, 0.50),
        push_p99_ms: percentile(&push, 0.99),
        errors: e1 + e2 + e3 + e4,
        rss_peak_mb: rss,
    })
}
