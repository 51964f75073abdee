//! The relay rows: a real `cairn-server` on loopback, a team of two members (the real `cairn`, on
//! the real clock), and `cairn-relay` joined with a relay's invite, running, with one destination:
//! a small chat endpoint inside the bench that answers 200 to each incoming-webhook POST and
//! notes when it arrived. The relay reaches the server through a counting proxy (it forwards
//! bytes as they come, and counts each request it forwards), so its requests are counted at the
//! server's door without changing the server.
//!
//! 1. **Kudos to chat.** A member writes a kudos and syncs; the figure is the time from the end of
//!    that `cairn sync` to the message's arrival at the endpoint, for each of N kudos. The relay
//!    posts to a destination at most once a second (from the end of one request to the start of
//!    the next), so each kudos is synced at least 1.25 s after the endpoint answered the one
//!    before: the figure is the relay's latency, not its spacing.
//! 2. **An idle relay.** Then nothing happens. The window opens when the relay asks the server
//!    again after its last news (a request it starts) and lasts whole minutes: a relay that asks
//!    at most once a minute starts at most one request per minute of it. It runs while the rest
//!    of the bench does ([`Idle::finish`] waits out what is left of it), on a server of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::Failure;
use crate::sync::{Server, admin, server_bin, start_server_with};

/// How long the bench waits for one kudos to reach the endpoint before it calls the relay broken.
const ARRIVAL_LIMIT: Duration = Duration::from_secs(30);
/// The least time between the endpoint's answer to one post and the next kudos' sync: past the
/// relay's one-second spacing per destination, with room for the relay to read the answer.
const PACE: Duration = Duration::from_millis(1_250);

/// What the relay rows measured.
#[derive(Debug)]
pub struct RelayFigures {
    /// Each kudos' time from its author's sync to its arrival at the endpoint, in milliseconds,
    /// in the order they were written.
    pub latencies_ms: Vec<f64>,
    pub median_ms: f64,
    pub max_ms: f64,
    /// Requests the idle relay started in the window, by request line ("GET /v1/wait", ...).
    pub idle_requests: Vec<(String, usize)>,
    /// The window's length.
    pub idle_seconds: f64,
    /// The mean time between the starts of successive requests in the window (two or more).
    pub idle_spacing_s: Option<f64>,
    /// Whether the window is long enough for the figure to be judged (not in `--quick`).
    pub judged: bool,
}

impl RelayFigures {
    pub fn idle_total(&self) -> usize {
        self.idle_requests.iter().map(|(_, n)| n).sum()
    }

    pub fn idle_per_minute(&self) -> f64 {
        self.idle_total() as f64 * 60.0 / self.idle_seconds
    }
}

/// The relay left idle after the kudos were measured: everything still running, counted.
pub struct Idle {
    latencies_ms: Vec<f64>,
    opened: Instant,
    window: Duration,
    judged: bool,
    proxy: Proxy,
    // Stopped when dropped, the relay before its server.
    relay: Running,
    _server: Server,
}

/// The `cairn-relay` binary beside `cairn`.
pub fn relay_bin(cairn: &Path) -> PathBuf {
    cairn.with_file_name(format!("cairn-relay{}", std::env::consts::EXE_SUFFIX))
}

/// Sets up the team and the relay under `work`, measures `kudos` kudos to chat, then leaves the
/// relay idle and opens a window of `window` (judged when `judged`) on its requests.
pub fn start(
    cairn: &Path,
    work: &Path,
    kudos: usize,
    window: Duration,
    judged: bool,
) -> Result<Idle, Failure> {
    let server_bin = server_bin(cairn);
    let relay_bin = relay_bin(cairn);
    for (bin, package) in [(&server_bin, "cairn-server"), (&relay_bin, "cairn-relay")] {
        if !bin.is_file() {
            return Err(Failure::run(format!(
                "no {package} at {}; build it with `cargo build --release -p {package}` or pass \
                 --no-relay",
                bin.display()
            )));
        }
    }
    let db = work.join("server.sqlite3");
    // The server as it ships: its own limits, nothing turned off.
    let (server, url) = start_server_with(&server_bin, &db, &[])?;
    let team = admin(&server_bin, &db, &["team", "create", "Relay"])?;

    // Ana founds the team and Ben joins it, both on the real clock: a kudos stamped at a pinned
    // day weeks ago would reach the relay late, and be held for the digest instead of posted.
    let ana = work.join("ana");
    let ben = work.join("ben");
    member(
        cairn,
        &ana,
        &[
            "init", "--team", "Relay", "--name", "Ana", "--tz", "UTC", "--json",
        ],
    )?;
    let founder = admin(
        &server_bin,
        &db,
        &["invite", "create", "--team", &team, "--founder"],
    )?;
    member(cairn, &ana, &["publish", &url, "--invite", &founder])?;
    let invite = admin(&server_bin, &db, &["invite", "create", "--team", &team])?;
    member(
        cairn,
        &ben,
        &["join", &url, "--invite", &invite, "--name", "Ben"],
    )?;
    member(cairn, &ana, &["sync"])?;

    // The relay, joined through the counting proxy, posting to the chat endpoint.
    let (chat_url, posts) = chat_endpoint()?;
    let proxy = Proxy::start(&url)?;
    let config = work.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "home = {:?}\nallow_http = true\nallow_private = [\"127.0.0.1\"]\n\
             poll_interval_secs = 60\n\n\
             [[destination]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"env:CAIRN_BENCH_CHAT_URL\"\n",
            work.join("relay").display().to_string()
        ),
    )
    .map_err(|e| Failure::run(format!("cannot write {}: {e}", config.display())))?;
    let relay_invite = admin(
        &server_bin,
        &db,
        &["invite", "create", "--team", &team, "--relay"],
    )?;
    let relay_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&relay_bin);
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env("CAIRN_BENCH_CHAT_URL", &chat_url)
            .env_remove("CAIRN_RELAY_CONFIG")
            .env_remove("CAIRN_RELAY_HOME")
            .env_remove("CAIRN_RELAY_REPLICA")
            .stdin(Stdio::null());
        cmd
    };
    let out = relay_cmd(&["join", &proxy.url, "--invite", &relay_invite])
        .output()
        .map_err(|e| Failure::run(format!("cannot run {}: {e}", relay_bin.display())))?;
    if !out.status.success() {
        return Err(Failure::run(format!(
            "`cairn-relay join` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let errors = work.join("relay.err");
    let stderr = std::fs::File::create(&errors)
        .map_err(|e| Failure::run(format!("cannot create {}: {e}", errors.display())))?;
    let mut child = relay_cmd(&["run"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| Failure::run(format!("cannot run {}: {e}", relay_bin.display())))?;
    let stdout = child.stdout.take();
    let relay = Running {
        child,
        errors: errors.clone(),
    };
    let (line_tx, lines) = mpsc::channel();
    if let Some(out) = stdout {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                // Read to the end whether or not anyone listens, so the relay never blocks.
                let _ = line_tx.send(line);
            }
        });
    }
    // Its first look records the team's history (nothing of it is posted).
    let started = Instant::now();
    loop {
        let left = ARRIVAL_LIMIT.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(l) if l.starts_with("first start") => break,
            Ok(_) => {}
            Err(_) => {
                return Err(Failure::run(format!(
                    "cairn-relay run never made its first start: {}",
                    relay.errors()
                )));
            }
        }
    }

    // Kudos to chat.
    let mut latencies_ms = Vec::with_capacity(kudos);
    let mut answered: Option<Instant> = None;
    for i in 1..=kudos {
        let marker = format!("bench-kudos-{i:03}");
        member(
            cairn,
            &ana,
            &[
                "kudos",
                "@ben",
                &format!("Thanks for the patient review {marker}"),
                "--pillar",
                "trust",
            ],
        )?;
        // Pacing, not synchronisation: past the relay's spacing since the last post.
        if let Some(last) = answered {
            std::thread::sleep((last + PACE).saturating_duration_since(Instant::now()));
        }
        member(cairn, &ana, &["sync"])?;
        let synced = Instant::now();
        let post = loop {
            let left = ARRIVAL_LIMIT.saturating_sub(synced.elapsed());
            match posts.recv_timeout(left) {
                Ok(p) if p.body.contains(&marker) => break p,
                Ok(_) => {}
                Err(_) => {
                    return Err(Failure::run(format!(
                        "the relay posted no {marker} within {} s of Ana's sync: {}",
                        ARRIVAL_LIMIT.as_secs(),
                        relay.errors()
                    )));
                }
            }
        };
        // Signed: the relay may even post before the author's process has quite exited.
        let ms = if post.arrived >= synced {
            post.arrived.duration_since(synced).as_secs_f64() * 1e3
        } else {
            -(synced.duration_since(post.arrived).as_secs_f64() * 1e3)
        };
        latencies_ms.push(ms);
        answered = Some(post.answered);
    }

    let each: Vec<String> = latencies_ms.iter().map(|ms| format!("{ms:.1}")).collect();
    eprintln!(
        "relay: kudos to chat, from the author's sync to the post (ms): {}",
        each.join(", ")
    );

    // Idle from here: the window opens at the first request the relay starts after the sync
    // that brought the last kudos (the wait it asks again with).
    let opened = proxy.after_last_sync(ARRIVAL_LIMIT).ok_or_else(|| {
        Failure::run(format!(
            "the relay did not wait at the server again after its last sync: {}",
            relay.errors()
        ))
    })?;
    Ok(Idle {
        latencies_ms,
        opened,
        window,
        judged,
        proxy,
        relay,
        _server: server,
    })
}

impl Idle {
    /// What is left of the window.
    pub fn left(&self) -> Duration {
        (self.opened + self.window).saturating_duration_since(Instant::now())
    }

    /// Waits out what is left of the window, then stops the relay and its server.
    pub fn finish(mut self) -> Result<RelayFigures, Failure> {
        let end = self.opened + self.window;
        // The measurement's window, whatever the rest of the bench took.
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let mut idle_requests: Vec<(String, usize)> = Vec::new();
        let mut starts = Vec::new();
        for (at, line) in self.proxy.seen() {
            if at < self.opened || at >= end {
                continue;
            }
            starts.push(at);
            match idle_requests.iter_mut().find(|(l, _)| *l == line) {
                Some((_, n)) => *n += 1,
                None => idle_requests.push((line, 1)),
            }
        }
        if let Ok(Some(status)) = self.relay.child.try_wait() {
            return Err(Failure::run(format!(
                "cairn-relay run stopped while idle ({status}): {}",
                self.relay.errors()
            )));
        }
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median_ms = match n {
            0 => 0.0,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Ok(RelayFigures {
            max_ms: sorted.last().copied().unwrap_or(0.0),
            median_ms,
            latencies_ms: self.latencies_ms,
            idle_requests,
            idle_seconds: self.window.as_secs_f64(),
            idle_spacing_s: match (starts.first(), starts.last()) {
                (Some(first), Some(last)) if starts.len() > 1 => {
                    Some(last.duration_since(*first).as_secs_f64() / (starts.len() - 1) as f64)
                }
                _ => None,
            },
            judged: self.judged,
        })
    }
}

/// `cairn ARGS` in `home` on the real clock, with no sync of its own after a write.
fn member(cairn: &Path, home: &Path, args: &[&str]) -> Result<(), Failure> {
    let out = Command::new(cairn)
        .args(args)
        .env("CAIRN_HOME", home)
        .env_remove("CAIRN_NOW")
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
    Ok(())
}

/// `cairn-relay run`, stopped when dropped.
struct Running {
    child: Child,
    /// Where its standard error goes.
    errors: PathBuf,
}

impl Running {
    /// The end of what the relay said on standard error, for a failure's message.
    fn errors(&self) -> String {
        let text = std::fs::read_to_string(&self.errors).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" / ");
        if tail.is_empty() {
            "the relay said nothing on stderr".to_owned()
        } else {
            format!("the relay said: {tail}")
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message the chat endpoint took.
struct Post {
    /// When its body had been read whole.
    arrived: Instant,
    /// When the endpoint had written its answer.
    answered: Instant,
    body: String,
}

/// The chat endpoint: answers `200 ok` to every request with a body of known length (an
/// incoming webhook's POST), keeps connections open as a platform does, and sends each message
/// it took. Returns its URL.
fn chat_endpoint() -> Result<(String, mpsc::Receiver<Post>), Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Failure::run(format!("cannot listen for the chat endpoint: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::run(format!("the chat endpoint has no address: {e}")))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || answer(conn, &tx));
        }
    });
    Ok((format!("http://{addr}/services/bench"), rx))
}

/// Serves one connection of the chat endpoint until it closes.
fn answer(conn: TcpStream, tx: &mpsc::Sender<Post>) {
    let _ = conn.set_nodelay(true);
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut length = None;
        let mut line = String::new();
        // The head, a line at a time, to the blank line.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let Some(length) = length.filter(|n| *n <= 1 << 20) else {
            let _ = out.write_all(
                b"HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            return;
        };
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let arrived = Instant::now();
        if out
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok",
            )
            .is_err()
        {
            return;
        }
        let _ = tx.send(Post {
            arrived,
            answered: Instant::now(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
}

/// The requests the proxy forwarded: when each began and its request line (method and path, no
/// query).
type Seen = Arc<(Mutex<Vec<(Instant, String)>>, Condvar)>;

/// A loopback proxy in front of the server that forwards bytes both ways as they come and counts
/// the requests: a request begins with the first bytes from the client after the server spoke
/// (or on a new connection); one client sends its next request only after the answer to the
/// last, as HTTP/1.1 clients without pipelining do.
struct Proxy {
    url: String,
    seen: Seen,
}

impl Proxy {
    fn start(server_url: &str) -> Result<Proxy, Failure> {
        let target = server_url.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Failure::run(format!("cannot listen for the proxy: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::run(format!("the proxy has no address: {e}")))?;
        let seen: Seen = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                // Whether the next bytes from the client begin a request.
                let fresh = Arc::new(AtomicBool::new(true));
                let (up, log) = (fresh.clone(), log.clone());
                std::thread::spawn(move || forward_up(client_in, server_out, &up, &log));
                std::thread::spawn(move || forward_down(server, client, &fresh));
            }
        });
        Ok(Proxy {
            url: format!("http://{addr}"),
            seen,
        })
    }

    fn seen(&self) -> Vec<(Instant, String)> {
        self.seen
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the first request other than a sync after the relay's last sync (one sync may take
    /// several) began, waiting for it at most `limit`.
    fn after_last_sync(&self, limit: Duration) -> Option<Instant> {
        let (lock, bell) = &*self.seen;
        let started = Instant::now();
        let mut seen = lock.lock().unwrap_or_else(|e| e.into_inner());
        let is_sync = |l: &str| l.ends_with(" /v1/sync");
        loop {
            if let Some(i) = seen.iter().rposition(|(_, l)| is_sync(l))
                && let Some((at, _)) = seen[i..].iter().find(|(_, l)| !is_sync(l))
            {
                return Some(*at);
            }
            let left = limit.checked_sub(started.elapsed())?;
            seen = bell
                .wait_timeout(seen, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn forward_up(mut from: TcpStream, mut to: TcpStream, fresh: &AtomicBool, seen: &Seen) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        if fresh.swap(false, Ordering::SeqCst) {
            let at = Instant::now();
            let head = String::from_utf8_lossy(&buf[..n.min(512)]).into_owned();
            let first = head.lines().next().unwrap_or_default();
            // "GET /v1/wait?after=3&timeout_s=60 HTTP/1.1" -> "GET /v1/wait"
            let mut words = first.split(' ');
            let method = words.next().unwrap_or_default();
            let path = words.next().unwrap_or_default();
            let path = path.split('?').next().unwrap_or_default();
            let (lock, bell) = &**seen;
            lock.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((at, format!("{method} {path}")));
            bell.notify_all();
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn forward_down(mut from: TcpStream, mut to: TcpStream, fresh: &AtomicBool) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        // Before the client can have the answer, and so before it can ask again.
        fresh.store(true, Ordering::SeqCst);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_counts_each_request_on_a_kept_connection_and_the_endpoint_takes_each_post() {
        let (chat, posts) = chat_endpoint().unwrap();
        let base = chat.trim_end_matches("/services/bench");
        let proxy = Proxy::start(base).unwrap();
        let agent = ureq::Agent::new_with_defaults();
        for i in 0..3 {
            let mut resp = agent
                .post(format!("{}/services/bench?x={i}", proxy.url))
                .send(format!("{{\"text\": \"message {i}\"}}").as_bytes())
                .unwrap();
            assert_eq!(resp.body_mut().read_to_string().unwrap(), "ok");
        }
        let got: Vec<String> = (0..3)
            .map(|_| posts.recv_timeout(Duration::from_secs(5)).unwrap().body)
            .collect();
        assert!(got[2].contains("message 2"), "{got:?}");
        let seen = proxy.seen();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.iter().all(|(_, l)| l == "POST /services/bench"));
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
