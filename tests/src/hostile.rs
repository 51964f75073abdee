//! A hostile server, faked at its wire interface: a small HTTP/1.1 server on `127.0.0.1:0`, in a
//! thread of the test, that answers `/v1/info`, `/v1/join` and `/v1/sync` as a cairn-server
//! would (it takes every push and numbers it) until the test gives it other answers: bombs,
//! loops and forged notices. And a way to run `cairn` under watch: its wall time and its peak
//! resident memory, killed past a limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_protocol::{
    Info, JoinRequest, JoinResponse, PROTOCOL_VERSION, Pulled, SyncRequest, SyncResponse, Token,
};

use crate::Run;

/// What the fake answers a sync with: a response that acknowledges every change pushed, one
/// sent exactly as it is, or raw JSON bytes (too large or too odd to be a [`SyncResponse`]
/// worth building).
#[derive(Debug)]
pub enum Reply {
    Page(SyncResponse),
    Exact(SyncResponse),
    Raw(Vec<u8>),
}

/// How the fake answers a sync, given the request and the log it keeps (every change pushed,
/// numbered from 1): `None` for the honest answer.
type Answer = Box<dyn FnMut(&SyncRequest, &Log) -> Option<Reply> + Send>;

/// Every change pushed to the fake, in order: (document, bytes); entry `n` of the log is
/// `changes[n - 1]`.
#[derive(Debug, Default)]
pub struct Log {
    pub changes: Vec<(String, Vec<u8>)>,
}

struct State {
    log: Log,
    answer: Option<Answer>,
}

/// A fake server; stopped when dropped.
pub struct Hostile {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    syncs: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hostile").field("url", &self.url).finish()
    }
}

impl Hostile {
    /// Starts a fake that answers honestly, on a port the system picks.
    pub fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let state = Arc::new(Mutex::new(State {
            log: Log::default(),
            answer: None,
        }));
        let syncs = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, syncs, stop) = (state.clone(), syncs.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(conn) = conn {
                        let (state, syncs) = (state.clone(), syncs.clone());
                        // A request at a time each, several at once: a client may ask for the
                        // next page while it applies this one.
                        std::thread::spawn(move || serve(conn, &state, &syncs));
                    }
                }
            })
        };
        Hostile {
            url,
            state,
            syncs,
            stop,
            thread: Some(thread),
        }
    }

    /// Answers syncs with `f` from now on (`None` from it: the honest answer). A sync that
    /// pulls nothing (`cairn doctor`'s check of the token) is always answered honestly.
    pub fn answer(&self, f: impl FnMut(&SyncRequest, &Log) -> Option<Reply> + Send + 'static) {
        self.lock().answer = Some(Box::new(f));
    }

    /// Answers honestly again.
    pub fn honest(&self) {
        self.lock().answer = None;
    }

    /// Sync requests answered so far.
    pub fn syncs(&self) -> usize {
        self.syncs.load(Ordering::SeqCst)
    }

    /// The changes pushed so far: (document, bytes).
    pub fn pushed(&self) -> Vec<(String, Vec<u8>)> {
        self.lock().log.changes.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request from `conn`, answers it and closes the connection.
fn serve(conn: TcpStream, state: &Mutex<State>, syncs: &AtomicUsize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let (status, reply) = match path.as_str() {
        "/v1/info" => (
            200,
            serde_json::to_vec(&Info {
                protocol: PROTOCOL_VERSION,
                server_version: "hostile".into(),
                max_request_bytes: 8 << 20,
                max_page_changes: 5_000,
            })
            .expect("it encodes"),
        ),
        "/v1/join" => {
            let req: JoinRequest = serde_json::from_slice(&body).unwrap_or_default();
            let resp = JoinResponse {
                team_id: "t-hostile".into(),
                member_id: req.publish.unwrap_or_else(|| "m-hostile".into()),
                device_id: "d-hostile".into(),
                token: Token("cairn_hostile".into()),
                team_name: None,
                founder: false,
                ..JoinResponse::default()
            };
            (200, serde_json::to_vec(&resp).expect("it encodes"))
        }
        "/v1/sync" => match serde_json::from_slice::<SyncRequest>(&body) {
            Ok(req) => {
                syncs.fetch_add(1, Ordering::SeqCst);
                (200, sync(&req, state))
            }
            Err(_) => (400, br#"{"error":"bad_request","message":"no"}"#.to_vec()),
        },
        _ => (404, br#"{"error":"not_found","message":"no"}"#.to_vec()),
    };
    let mut conn = reader.into_inner();
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        reply.len()
    );
    let _ = conn.write_all(&reply);
}

/// The answer to a sync: the test's, or what an honest server would say.
fn sync(req: &SyncRequest, state: &Mutex<State>) -> Vec<u8> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let pushed: usize = req.push.iter().map(|d| d.changes.len()).sum();
    for d in &req.push {
        for c in &d.changes {
            state.log.changes.push((d.doc.clone(), c.0.clone()));
        }
    }
    let head = state.log.changes.len() as u64;
    if req.max_pull != Some(0) {
        let State { log, answer } = &mut *state;
        if let Some(reply) = answer.as_mut().and_then(|f| f(req, log)) {
            return match reply {
                Reply::Page(mut page) => {
                    page.acked = pushed as u32;
                    serde_json::to_vec(&page).expect("it encodes")
                }
                Reply::Exact(page) => {
                    // What it did not acknowledge, it does not keep.
                    let kept = log.changes.len() - pushed + page.acked as usize;
                    log.changes.truncate(kept);
                    serde_json::to_vec(&page).expect("it encodes")
                }
                Reply::Raw(bytes) => bytes,
            };
        }
    }
    // Honest: what this request pushed is acknowledged and not sent back; the rest after the
    // cursor is.
    let first_pushed = head - pushed as u64;
    let pulled = (req.cursor..first_pushed)
        .map(|i| {
            let (doc, change) = &state.log.changes[i as usize];
            Pulled {
                seq: i + 1,
                doc: doc.clone(),
                change: cairn_protocol::Bytes(change.clone()),
                withdrawn: Vec::new(),
            }
        })
        .collect();
    let page = SyncResponse {
        acked: pushed as u32,
        pulled,
        cursor: if req.max_pull == Some(0) {
            req.cursor
        } else {
            head
        },
        more: false,
        head,
        ..SyncResponse::default()
    };
    serde_json::to_vec(&page).expect("it encodes")
}

/// A command watched while it runs.
#[derive(Debug)]
pub struct Watched {
    pub run: Run,
    /// Its wall time, from start to exit (or to the kill).
    pub elapsed: Duration,
    /// The most resident memory it held, in KiB (`VmHWM`, read as it ran).
    pub peak_kib: u64,
    /// Whether it was killed for passing the time or memory limit.
    pub killed: bool,
}

impl Watched {
    /// Asserts the command left within `secs` seconds and `mib` MiB of resident memory.
    #[track_caller]
    pub fn within(&self, secs: u64, mib: u64) {
        // (Shown with --nocapture: how far inside the bounds it stayed.)
        eprintln!(
            "{:?}, {} MiB at its peak",
            self.elapsed,
            self.peak_kib >> 10
        );
        assert!(
            !self.killed && self.elapsed < Duration::from_secs(secs) && self.peak_kib < mib << 10,
            "{}: {:?}, {} MiB at its peak (the most: {secs} s, {mib} MiB); stderr: {}",
            if self.killed { "killed" } else { "exited" },
            self.elapsed,
            self.peak_kib >> 10,
            self.run.stderr.chars().take(2_000).collect::<String>()
        );
    }
}

/// Runs `cmd`, reading its peak resident memory from `/proc` as it runs, and kills it once it
/// passes `limit` of wall time or 1 GiB of memory (then `killed`). The memory is the kernel's
/// own high-water mark, so a peak between two readings is not missed (only one in the last
/// moments before it exits could be).
pub fn watch(mut cmd: Command, limit: Duration) -> Watched {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    // Its output is read beside it: a full pipe must never stop it.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let mut killed = false;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if started.elapsed() > limit || peak > 1 << 20 {
            killed = true;
            let _ = child.kill();
            break child.wait().expect("the child exits");
        }
        // Sampling, not synchronisation: the next reading of the high-water mark.
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let text = |h: JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Watched {
        run: Run {
            code: status.code().unwrap_or(-1),
            stdout: text(stdout),
            stderr: text(stderr),
        },
        elapsed,
        peak_kib: peak,
        killed,
    }
}
