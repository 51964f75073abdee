//! The sync client: HTTP to a `cairn-server`, and the exchange loop that moves the outbox up and
//! the team's change log down until both sides are level.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use cairn_protocol::{
    ACTOR_REUSED, AUTH_SCHEME, Bytes, CatchUp, DocChanges, ErrorBody, Info, JoinRequest,
    JoinResponse, LinkResponse, MAX_RESPONSE_ENTRIES, PROTOCOL_VERSION, SyncRequest, SyncResponse,
};
use cairn_store::{CatchUpState, Incoming, IncomingDoc, Replica};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CliError, Kind, Result};

/// The most changes one request pushes; the server takes up to 10,000.
const PUSH_CHANGES: usize = 2_000;
/// The most change bytes one request pushes (past its first change).
const PUSH_BYTES: usize = 4 << 20;
/// Catching up on more than this many changes shows progress on a terminal...
const PROGRESS_FROM: u64 = 2_000;
/// ...or on more than this many whole documents.
const PROGRESS_DOCS_FROM: u64 = 50;

/// A connection to one server.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
    /// Wait and try again when the server says it is busy (429, 503), saying so on stderr.
    patient: bool,
    /// Say on stderr when the server is slow to answer (a person is watching a terminal).
    chatty: bool,
    /// How long a request may take in all.
    timeout: Duration,
}

/// After this long without an answer, a person watching is told that cairn is still waiting.
const STILL_WAITING: Duration = Duration::from_secs(5);

/// Tells a person on a terminal that the server has not answered yet, until dropped.
struct Waiting {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Waiting {
    fn start(base: &str, timeout: Duration) -> Waiting {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let base = base.to_owned();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut wait = STILL_WAITING;
            while rx.recv_timeout(wait) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                eprintln!(
                    "still waiting for the server at {base} ({} s; gives up after {} s)",
                    started.elapsed().as_secs(),
                    timeout.as_secs()
                );
                wait = Duration::from_secs(10);
            }
        });
        Waiting { stop: Some(tx) }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // Dropping the sender ends the thread's wait at once.
        self.stop.take();
    }
}

/// The longest wait a busy server can ask for that cairn sits out by itself.
const MAX_WAIT: Duration = Duration::from_secs(15);
/// Tries of one request against a busy server.
const TRIES: usize = 4;

/// Turns what the user typed into a base URL: `http(s)://host[:port][/path]`, no trailing slash.
pub fn normalise_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty());
    if !ok {
        return Err(CliError::new(format!("`{url}` is not a server address"))
            .hint("give it as http://HOST:PORT or https://HOST"));
    }
    Ok(url.to_owned())
}

impl Client {
    /// A client of the server at `base` that gives up once the server has been silent for
    /// `timeout` (no byte of an answer, or no room to send one): a stall is told within that
    /// time, while a large page that keeps coming, however slowly, still arrives.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Client {
        // A quiet sync after a write holds the home's sync lock: it gives up within a minute
        // however steadily a server trickles, where one asked for by hand may take long pages.
        let longest = if timeout <= QUIET_TIMEOUT {
            Duration::from_secs(60)
        } else {
            LONGEST
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(longest))
            .timeout_resolve(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .http_status_as_error(false)
            .build();
        Client {
            agent: config.into(),
            base: base.to_owned(),
            token,
            patient: true,
            chatty: false,
            timeout,
        }
    }

    /// A client that says so on stderr when the server is slow to answer.
    pub fn chatty(mut self) -> Client {
        self.chatty = true;
        self
    }

    /// A client that gives up at once when the server is busy (for quiet background syncs).
    pub fn impatient(mut self) -> Client {
        self.patient = false;
        self
    }

    fn unreachable(&self, e: ureq::Error) -> CliError {
        if let ureq::Error::Timeout(_) = e {
            // The request may have reached the server: an invite may be spent, a team made.
            let again = if self.token.is_some() {
                "nothing is lost, `cairn sync` tries again later"
            } else {
                "run the command again later; if the invite was used up meanwhile, ask for a new one"
            };
            return CliError::new(format!(
                "the server at {} went silent for {} s",
                self.base,
                self.timeout.as_secs()
            ))
            .hint(format!(
                "it may be overloaded or stalled; {again} (CAIRN_SYNC_TIMEOUT=SECONDS waits longer)"
            ))
            .kind(Kind::Failure)
            .because(e);
        }
        // Nothing reached the server: a device of a team keeps its changes to send; a join or a
        // publish has done nothing yet.
        let again = if self.token.is_some() {
            "nothing is lost, `cairn sync` tries again"
        } else {
            "nothing was changed; run the command again"
        };
        // rustls reports a failed handshake as an I/O error; its words tell the cases apart.
        let told = {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        };
        let https = self.base.starts_with("https://");
        let what = match &e {
            ureq::Error::HostNotFound => "check the host name".to_owned(),
            ureq::Error::ConnectionFailed => {
                "is cairn-server running there? check the address and the port".to_owned()
            }
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "is cairn-server running there? check the address and the port".to_owned()
            }
            _ if https && told.contains("certificate") => {
                "the server's certificate is not trusted here (expired, self-signed or for \
                 another name); fix it on the server, or trust its issuer on this machine"
                    .to_owned()
            }
            _ if https
                && (told.contains("corrupt message") || told.contains("InvalidContentType")) =>
            {
                format!(
                    "the server does not speak HTTPS; if it is meant to be reached without it, \
                     use {}",
                    self.base.replacen("https://", "http://", 1)
                )
            }
            _ => "check the address and the network".to_owned(),
        };
        CliError::new(format!("cannot reach the server at {}", self.base))
            .hint(format!("{what}; {again}"))
            .kind(Kind::Failure)
            .because(e)
    }

    /// Sends `body` (or nothing) and decodes the answer, turning a refusal into a clear error.
    /// Returns the answer and the bytes sent and received.
    fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<(T, usize, usize)> {
        let url = format!("{}{path}", self.base);
        let bytes = body.map(serde_json::to_vec).transpose().map_err(|e| {
            CliError::new("cannot encode a request")
                .kind(Kind::Bug)
                .because(e)
        })?;
        let _waiting = self
            .chatty
            .then(|| Waiting::start(&self.base, self.timeout));
        let mut tries = 0;
        let (mut resp, sent) = loop {
            tries += 1;
            let resp = match &bytes {
                Some(bytes) => {
                    let mut req = self.agent.post(&url).content_type("application/json");
                    if let Some(t) = &self.token {
                        req = req.header("Authorization", format!("{AUTH_SCHEME} {t}"));
                    }
                    req.send(&bytes[..])
                }
                None => self.agent.get(&url).call(),
            };
            let resp = resp.map_err(|e| self.unreachable(e))?;
            let sent = bytes.as_ref().map_or(0, Vec::len);
            let status = resp.status().as_u16();
            if !matches!(status, 429 | 503) {
                break (resp, sent);
            }
            let wait = retry_after(&resp);
            if !self.patient || tries >= TRIES || wait > MAX_WAIT {
                break (resp, sent);
            }
            let why = if status == 429 {
                "asks this device to slow down"
            } else {
                "is busy"
            };
            eprintln!(
                "the server {why}; trying again in {} s",
                wait.as_secs().max(1)
            );
            std::thread::sleep(wait);
        };
        let status = resp.status();
        let data = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        let received = data.len();
        if status.is_success() {
            // (Its lists are counted while it is parsed: a page of millions of tiny entries is
            // refused before it takes the memory they would.)
            let value =
                cairn_protocol::parse_bounded(&data, MAX_RESPONSE_ENTRIES).map_err(|e| {
                    if e.to_string().contains("more entries") {
                        return stopped(
                            self,
                            format!(
                                "sent more than {MAX_RESPONSE_ENTRIES} entries in one answer, more \
                             than cairn takes"
                            ),
                        )
                        .because(e);
                    }
                    CliError::new(format!(
                        "the server at {} answered something cairn cannot read",
                        self.base
                    ))
                    .hint("is this address a cairn-server?")
                    .kind(Kind::Failure)
                    .because(e)
                })?;
            return Ok((value, sent, received));
        }
        let refusal = Refusal {
            status: status.as_u16(),
            body: serde_json::from_slice::<ErrorBody>(&data).ok(),
        };
        // An answer that is not a cairn-server's error body: another kind of server.
        let not_cairn = refusal.body.is_none();
        let err = CliError::new(format!("the server refused: {refusal}"))
            .kind(Kind::Failure)
            .because(refusal);
        Err(match status.as_u16() {
            429 | 503 => err.hint(format!(
                "the server asked to wait {} s; nothing is lost, run `cairn sync` then",
                retry_after(&resp).as_secs().max(1)
            )),
            401 => err.hint(
                "this device's token was refused (revoked?); keep what it holds with `cairn \
                 export > mine.json`, join again from a new home with a new invite \
                 (CAIRN_HOME=DIR cairn join ...), and bring your events there with `cairn import \
                 mine.json`",
            ),
            404 if body.is_some() || not_cairn => {
                err.hint(format!("is {} a cairn-server? it has no {path}", self.base))
            }
            409 => err.hint("see `cairn doctor`"),
            _ => err,
        })
    }

    /// The server's protocol and limits; fails when it speaks another protocol version.
    pub fn info(&self) -> Result<Info> {
        let (info, _, _): (Info, _, _) = self.call::<(), _>("/v1/info", None)?;
        if info.protocol != PROTOCOL_VERSION {
            return Err(CliError::new(format!(
                "the server speaks protocol {}, this cairn speaks {PROTOCOL_VERSION}",
                info.protocol
            ))
            .hint("upgrade the older of the two")
            .kind(Kind::Failure));
        }
        Ok(info)
    }

    pub fn join(&self, req: &JoinRequest) -> Result<JoinResponse> {
        Ok(self.call("/v1/join", Some(req))?.0)
    }

    pub fn link(&self) -> Result<LinkResponse> {
        Ok(self.call("/v1/link", Some(&serde_json::json!({})))?.0)
    }

    pub fn sync(&self, req: &SyncRequest) -> Result<(SyncResponse, usize, usize)> {
        self.call("/v1/sync", Some(req))
    }

    /// Checks this device's token with a sync that moves nothing; the number of the team's
    /// latest change.
    pub fn check_token(&self, cursor: u64) -> Result<u64> {
        let req = SyncRequest {
            cursor,
            max_pull: Some(0),
            ..SyncRequest::default()
        };
        Ok(self.sync(&req)?.0.head)
    }
}

/// How long a 429 or 503 asks to wait (`Retry-After` in seconds; one second when unsaid).
fn retry_after<B>(resp: &ureq::http::Response<B>) -> Duration {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), |s| {
            Duration::from_secs(s.min(24 * 3600))
        })
}

/// What a sync moved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Changes the server took from this device.
    pub sent: usize,
    /// Changes new to this replica.
    pub received: usize,
    /// Documents received whole (a catch-up from far behind).
    pub docs: usize,
    /// HTTP requests made.
    pub requests: usize,
    pub bytes_up: usize,
    pub bytes_down: usize,
    pub cursor: u64,
    /// Changes from the server set aside because they do not apply (`cairn doctor` lists them).
    pub set_aside: usize,
    /// Changes the server's admin withdrew that left this replica.
    pub withdrawn: usize,
    /// What they were, a line each (events with their authors, parts of the team).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<String>,
    /// Changes of this device a notice named that the server never acknowledged: kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub kept: usize,
    /// This device's unsent changes made on withdrawn ones, written again and sent.
    #[serde(skip_serializing_if = "is_zero")]
    pub redone: usize,
    /// Notices held back whole, each with what it would have removed (the team's founding, a
    /// member's membership).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// Documents whose unsent changes were written again under a fresh actor: this replica was
    /// copied or restored from a backup, and another copy had used its actor's numbers.
    pub rebased: usize,
    /// Entries of the log received (changes, notices, and documents with their changes).
    #[serde(skip)]
    pub received_entries: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What one sync takes from a server at most, so that no server can keep a device busy, or its
/// replica growing, for ever: pages, changes (and documents) received, and bytes. An honest
/// server's catch-up on a team's whole history by single changes is a few hundred pages; a
/// sync that stops at a cap keeps what it applied, and the next one goes on from there.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub pages: usize,
    pub changes: usize,
    pub bytes: usize,
    /// Changes set aside or left waiting (what this replica cannot use), all pages together.
    pub unusable: usize,
    /// Pages in a row that move the cursor and bring nothing at all.
    pub idle_pages: usize,
}

impl Caps {
    /// For a sync asked for.
    pub const ASKED: Caps = Caps {
        pages: 2_000,
        changes: 1_000_000,
        bytes: 512 << 20,
        unusable: cairn_store::MAX_UNUSABLE,
        idle_pages: 8,
    };
    /// For the quiet sync after a write, which holds the home's sync lock: it sends what was
    /// written and brings what is new; a long catch-up waits for a sync asked for.
    pub const QUIET: Caps = Caps {
        pages: 64,
        changes: 200_000,
        bytes: 256 << 20,
        unusable: cairn_store::MAX_UNUSABLE,
        idle_pages: 8,
    };
}

/// The error of a sync stopped because the server broke a rule of the exchange or passed a cap.
fn stopped(client: &Client, what: String) -> CliError {
    CliError::new(format!("the server at {} {what}", client.base))
        .hint(
            "what came before was kept and nothing is lost; if it goes on, the server may be \
             damaged or hostile: tell its admin (`cairn doctor` shows what this device holds)",
        )
        .kind(Kind::Failure)
}

/// Documents one sync writes again under a fresh actor at most (a copy touches a few: the
/// month's journal, the team document); past it, a server that keeps refusing is an error.
const MAX_REBASES: usize = 64;

/// A refusal by the server, as its error body says it: the source of the error it becomes, so
/// callers decide by its code, never by its words.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    /// The server's body, when it was a cairn-server's.
    pub body: Option<ErrorBody>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.body {
            Some(b) => f.write_str(&printable(&b.message)),
            None => write!(f, "HTTP {}", self.status),
        }
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// For a change that reuses this device's actor's number: its document and hash.
    pub fn reused(&self) -> Option<(String, Vec<u8>)> {
        let b = self.body.as_ref().filter(|b| b.error == ACTOR_REUSED)?;
        Some((b.doc.clone()?, unhex(b.change.as_deref()?)?))
    }
}

/// Bytes from hex, for the hashes of withdrawal notices and of refused changes.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Text a server sent, made safe to print: control characters (terminal escapes, newlines that
/// would forge another line) shown escaped, and at most 500 characters.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 500 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Exchanges with the server until the outbox is empty and the log is pulled to its head, within
/// the caps of a sync asked for.
pub fn sync(
    replica: &mut Replica,
    client: &Client,
    now_ms: i64,
    import_done: bool,
    show_progress: bool,
) -> Result<Report> {
    sync_within(
        replica,
        client,
        now_ms,
        import_done,
        show_progress,
        Caps::ASKED,
    )
}

/// [`sync`] within `caps`.
pub fn sync_within(
    replica: &mut Replica,
    client: &Client,
    now_ms: i64,
    import_done: bool,
    show_progress: bool,
    caps: Caps,
) -> Result<Report> {
    std::thread::scope(|scope| {
        exchange(
            replica,
            client,
            now_ms,
            import_done,
            show_progress,
            caps,
            scope,
        )
    })
}

/// A response on its way: the next page of a catch-up, asked for while this one is applied.
type Ahead<'scope> = std::thread::ScopedJoinHandle<'scope, Result<(SyncResponse, usize, usize)>>;

fn exchange<'scope>(
    replica: &mut Replica,
    client: &'scope Client,
    now_ms: i64,
    import_done: bool,
    show_progress: bool,
    caps: Caps,
    scope: &'scope std::thread::Scope<'scope, '_>,
) -> Result<Report> {
    let mut report = Report::default();
    let start = replica.cursor()?;
    let mut progress = Progress::new(show_progress);
    let mut ahead: Option<Ahead<'scope>> = None;
    // Pages in a row that brought nothing, and what this replica could not use so far.
    let mut idle = 0;
    let mut unusable = 0;
    loop {
        let mut batch = replica.outbox(PUSH_CHANGES, PUSH_BYTES)?;
        let full_batch = batch.len() == PUSH_CHANGES;
        let mut push: Vec<DocChanges> = Vec::new();
        for o in &batch {
            match push.last_mut() {
                Some(last) if last.doc == o.doc => last.changes.push(Bytes(o.change.clone())),
                _ => push.push(DocChanges {
                    doc: o.doc.clone(),
                    changes: vec![Bytes(o.change.clone())],
                }),
            }
        }
        let req = SyncRequest {
            cursor: replica.cursor()?,
            push,
            max_pull: None,
            import_done: import_done && batch.is_empty(),
            withdrawals: true,
            snapshots: true,
            catch_up: replica.catch_up_state()?.map(|c| CatchUp {
                through: c.through,
                after_doc: c.after_doc,
            }),
        };
        let (resp, up, down) = match ahead.take() {
            // Asked for with this very cursor and catch-up, and nothing pushed: what was
            // written meanwhile goes up next time round.
            Some(next) => {
                batch.clear();
                next.join()
                    .map_err(|_| CliError::new("a sync worker failed").kind(Kind::Failure))??
            }
            None => match client.sync(&req) {
                Ok(answer) => answer,
                Err(e) => {
                    // A copied or restored replica: the server holds other changes with this
                    // device's actor and numbers. Its own are written again under a fresh actor
                    // and the exchange goes on.
                    let Some((doc, hash)) = e.refusal().and_then(Refusal::reused) else {
                        return Err(e);
                    };
                    if report.rebased >= MAX_REBASES {
                        return Err(e);
                    }
                    replica.rebase(&doc, &hash, now_ms).map_err(|r| {
                        CliError::from(r).hint(
                            "this replica was copied or restored and cairn could not write its \
                             unsent changes again; keep them with `cairn export`, then tell the \
                             server's admin",
                        )
                    })?;
                    report.rebased += 1;
                    report.requests += 1;
                    continue;
                }
            },
        };
        // For the crash tests: die in the worst place, after the server stored the push and
        // before this replica recorded it.
        // (`exit` runs no destructors: the replica is left as a crash would leave it, without
        // the core dump an abort might write.)
        // (Its value: the response to die at, 1 for the first.)
        if let Some(n) = std::env::var_os("CAIRN_TEST_CRASH_AFTER_RESPONSE")
            && n.to_str().and_then(|n| n.parse().ok()).unwrap_or(1) == report.requests + 1
        {
            std::process::exit(86);
        }
        report.requests += 1;
        report.bytes_up += up;
        report.bytes_down += down;
        let acked = (resp.acked as usize).min(batch.len());
        let acked_through = acked.checked_sub(1).map(|i| batch[i].seq);
        // Every page moves the exchange on (the cursor, the catch-up's place or what was
        // acknowledged), within what one sync takes: a server that says there is more and never
        // gets there is an error, not a loop.
        let before = (
            req.cursor,
            req.catch_up.as_ref().map(|c| c.after_doc.clone()),
        );
        let after = (
            resp.cursor,
            resp.catch_up.as_ref().map(|c| c.after_doc.clone()),
        );
        if resp.cursor < req.cursor {
            return Err(stopped(
                client,
                format!(
                    "sent the log back to entry {} from {}",
                    resp.cursor, req.cursor
                ),
            ));
        }
        if resp.more && before == after && acked == 0 {
            return Err(stopped(
                client,
                format!(
                    "says there is more after entry {} but sends nothing new",
                    resp.cursor
                ),
            ));
        }
        let brought = resp.pulled.len()
            + resp.docs.len()
            + resp.docs.iter().map(|d| d.changes.len()).sum::<usize>();
        idle = if brought == 0 && acked == 0 {
            idle + 1
        } else {
            0
        };
        if resp.more && idle >= caps.idle_pages {
            return Err(stopped(
                client,
                format!("sent {idle} pages in a row with nothing in them and says there is more"),
            ));
        }
        report.received_entries += brought;
        if resp.more && report.requests >= caps.pages {
            return Err(stopped(
                client,
                format!(
                    "still has more after {} pages, the most one sync takes",
                    report.requests
                ),
            )
            .hint("what came was kept; run `cairn sync` again to go on"));
        }
        if resp.more && (report.received_entries > caps.changes || report.bytes_down > caps.bytes) {
            return Err(stopped(
                client,
                format!(
                    "still has more after {} changes and {} in one sync, the most one sync takes",
                    report.received_entries,
                    crate::commands::sync::size(report.bytes_down)
                ),
            )
            .hint("what came was kept; run `cairn sync` again to go on"));
        }
        let mut pulled: Vec<Incoming> = Vec::with_capacity(resp.pulled.len());
        // Whether a notice wrote this device's changes again (they go up before the end).
        let mut rewritten = false;
        for p in resp.pulled {
            if p.withdrawn.is_empty() {
                pulled.push(Incoming {
                    doc: p.doc,
                    change: p.change.0,
                });
                continue;
            }
            // The server's admin withdrew changes: they leave this replica too, unless that
            // would hurt (see `Replica::withdraw`).
            let hashes: Vec<Vec<u8>> = p.withdrawn.iter().filter_map(|h| unhex(h)).collect();
            let w = replica.withdraw(&p.doc, &hashes, acked_through, now_ms)?;
            report.withdrawn += w.dropped;
            report.kept += w.refused;
            report.redone += w.redone;
            if let Some(held) = w.held {
                report.held.push(held);
            }
            if report.gone.len() < cairn_store::MAX_WITHDRAWN_LINES {
                report.gone.extend(w.what);
            }
            rewritten |= w.redone > 0;
        }
        let by_docs = !resp.docs.is_empty() || resp.catch_up.is_some();
        let applied = if by_docs {
            let docs: Vec<IncomingDoc> = resp
                .docs
                .into_iter()
                .map(|d| IncomingDoc {
                    doc: d.doc,
                    snapshot: d.snapshot.0,
                    changes: d.changes.into_iter().map(|c| c.0).collect(),
                })
                .collect();
            let state = resp.catch_up.map(|c| CatchUpState {
                through: c.through,
                after_doc: c.after_doc,
            });
            let n = docs.len();
            // The next page is asked for now, while this one is applied: the server's work and
            // the way there overlap with this replica's.
            // (Not while publishing: the request that ends a publication says so itself.)
            // (Nor when a notice wrote this device's changes again: they go up first.)
            if let Some(c) = &state
                && acked == batch.len()
                && !full_batch
                && !import_done
                && !rewritten
            {
                let next = SyncRequest {
                    cursor: resp.cursor,
                    withdrawals: true,
                    snapshots: true,
                    catch_up: Some(CatchUp {
                        through: c.through,
                        after_doc: c.after_doc.clone(),
                    }),
                    ..SyncRequest::default()
                };
                ahead = Some(scope.spawn(move || client.sync(&next)));
            }
            let applied =
                replica.apply_docs(acked_through, &docs, state.as_ref(), resp.cursor, now_ms)?;
            report.docs += n;
            progress.show_docs(report.docs as u64, report.docs as u64 + resp.docs_left);
            applied
        } else {
            let applied = replica.apply_exchange(acked_through, &pulled, resp.cursor, now_ms)?;
            progress.show(
                resp.cursor.saturating_sub(start),
                resp.head.saturating_sub(start),
            );
            applied
        };
        report.sent += acked;
        report.received += applied.changes;
        report.set_aside += applied.set_aside;
        report.cursor = resp.cursor;
        unusable += applied.unusable;
        if resp.more && unusable > caps.unusable {
            return Err(stopped(
                client,
                format!(
                    "sent {unusable} changes this replica cannot use in one sync (`cairn doctor` \
                     lists them)"
                ),
            ));
        }
        let pushed_all = acked == batch.len() && !full_batch && !rewritten;
        // A publication ends with one more exchange, with an empty outbox, that says so.
        let import_said = !import_done || batch.is_empty();
        if !resp.more && pushed_all && import_said {
            break;
        }
        if acked < batch.len() && !resp.more {
            return Err(CliError::new("the server took only part of what was sent")
                .hint("run `cairn sync` again")
                .kind(Kind::Failure));
        }
    }
    progress.finish();
    Ok(report)
}

/// A one-line progress bar on stderr, drawn only on a terminal and only for long catch-ups:
/// what is done of what there is, and how fast it goes.
struct Progress {
    on: bool,
    drawn: bool,
    started: Instant,
}

impl Progress {
    fn new(wanted: bool) -> Self {
        Progress {
            on: wanted && std::io::stderr().is_terminal(),
            drawn: false,
            started: Instant::now(),
        }
    }

    /// Changes of the log applied, of those there were.
    fn show(&mut self, done: u64, total: u64) {
        if total >= PROGRESS_FROM {
            self.draw(done, total, "changes");
        }
    }

    /// Documents received whole, of those there are.
    fn show_docs(&mut self, done: u64, total: u64) {
        if total >= PROGRESS_DOCS_FROM {
            self.draw(done, total, "documents");
        }
    }

    fn draw(&mut self, done: u64, total: u64, what: &str) {
        if !self.on {
            return;
        }
        let width = 30;
        let filled = (done.min(total) * width / total.max(1)) as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            "-".repeat(width as usize - filled)
        );
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (done as f64 / secs).round() as u64;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rcatching up [{bar}] {done}/{total} {what}, {rate}/s\x1b[K"
        );
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// How long a quiet sync after a write waits for a silent server (it never holds the write).
pub const QUIET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an asked-for sync waits for a silent server (one that sends no byte).
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// The longest one request may take in all, however steadily its answer comes.
const LONGEST: Duration = Duration::from_secs(30 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_cannot_reach_the_terminal_raw() {
        assert_eq!(printable("plain words"), "plain words");
        let evil = printable("ok\u{1b}[2J\nerror: forged\u{7}");
        assert!(!evil.chars().any(char::is_control), "{evil:?}");
        assert!(evil.contains("\\u{1b}[2J\\nerror: forged"), "{evil}");
        assert_eq!(printable(&"x".repeat(600)).chars().count(), 501);
    }
}
