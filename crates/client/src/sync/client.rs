//! HTTP to a `cairn-server`: requests, answers bounded as they are read, refusals as errors.

use std::sync::Arc;
use std::time::Duration;

use cairn_protocol::{
    ACTOR_REUSED, AUTH_SCHEME, ErrorBody, Info, JoinRequest, JoinResponse, LinkResponse,
    MAX_RESPONSE_ENTRIES, MAX_WAIT_S, OrgRef, OrgResponse, PROTOCOL_VERSION, SyncRequest,
    SyncResponse, WaitResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Error, QUIET_TIMEOUT, Result, Unreachable};

/// The longest one request may take in all, however steadily its answer comes.
const LONGEST: Duration = Duration::from_secs(30 * 60);
/// After this long without an answer, a watcher is told that the client is still waiting.
const STILL_WAITING: Duration = Duration::from_secs(5);
/// The longest wait a busy server can ask for that the client sits out by itself.
const MAX_WAIT: Duration = Duration::from_secs(15);
/// Tries of one request against a busy server.
const TRIES: usize = 4;

/// What a client tells whoever watches it while a request is under way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The server has not answered yet (only from a client made [`Client::announce_waits`]):
    /// first after 5 s, then every 10 s.
    StillWaiting {
        base: String,
        elapsed: Duration,
        timeout: Duration,
    },
    /// The server is busy (503) or asks this device to slow down (429): the request is tried
    /// again after `wait`.
    Retrying { slow_down: bool, wait: Duration },
}

/// Who is told of [`Notice`]s; called from the thread the request runs on, or a watcher's.
type Observer = Arc<dyn Fn(&Notice) + Send + Sync>;

/// A connection to one server.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
    /// Wait and try again when the server says it is busy (429, 503).
    patient: bool,
    /// Tell the observer when the server is slow to answer.
    announce: bool,
    /// How long a request may go without a byte of its answer.
    timeout: Duration,
    observer: Option<Observer>,
    /// The organisation whose log [`Client::sync`] and [`Client::wait`] are about (`?org=`),
    /// else the device's team's.
    org: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in a debug line.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("patient", &self.patient)
            .field("announce", &self.announce)
            .field("timeout", &self.timeout)
            .field("org", &self.org)
            .finish_non_exhaustive()
    }
}

/// Tells the observer that the server has not answered yet, until dropped.
struct Waiting {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Waiting {
    fn start(base: &str, timeout: Duration, observer: Observer) -> Waiting {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let base = base.to_owned();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut wait = STILL_WAITING;
            while rx.recv_timeout(wait) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                observer(&Notice::StillWaiting {
                    base: base.clone(),
                    elapsed: started.elapsed(),
                    timeout,
                });
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

/// Turns what a person typed into a base URL: `http(s)://host[:port][/path]`, no trailing slash.
pub fn normalise_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty());
    if !ok {
        return Err(Error::BadUrl(url.to_owned()));
    }
    Ok(url.to_owned())
}

impl Client {
    /// A client of the server at `base` (with a device's `token`, or none for a join) that
    /// gives up once the server has been silent for `timeout` (no byte of an answer, or no room
    /// to send one): a stall is told within that time, while a large page that keeps coming,
    /// however slowly, still arrives.
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
            announce: false,
            timeout,
            observer: None,
            org: None,
        }
    }

    /// This client for the log of organisation `id` (its id as the server named it): its
    /// [`Client::sync`] and [`Client::wait`] go to `?org=ID`, with the same token.
    pub fn for_org(&self, id: &str) -> Client {
        let mut client = self.clone();
        client.org = Some(id.to_owned());
        client
    }

    /// The organisation this client's syncs and waits are about, if any.
    pub fn org_id(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// A client that tells `observer` what goes on while a request is under way.
    pub fn observe(mut self, observer: impl Fn(&Notice) + Send + Sync + 'static) -> Client {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// A client that tells its observer when the server is slow to answer
    /// ([`Notice::StillWaiting`]).
    pub fn announce_waits(mut self) -> Client {
        self.announce = true;
        self
    }

    /// A client that gives up at once when the server is busy (for quiet background syncs).
    pub fn impatient(mut self) -> Client {
        self.patient = false;
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// How long a request may go without a byte of its answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn tell(&self, notice: &Notice) {
        if let Some(o) = &self.observer {
            o(notice);
        }
    }

    fn unreachable(&self, e: ureq::Error) -> Error {
        let device = self.token.is_some();
        if let ureq::Error::Timeout(_) = e {
            // The request may have reached the server: an invite may be spent, a team made.
            return Error::Silent {
                base: self.base.clone(),
                timeout: self.timeout,
                device,
                source: e,
            };
        }
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
        let why = match &e {
            ureq::Error::HostNotFound => Unreachable::HostNotFound,
            ureq::Error::ConnectionFailed => Unreachable::NotListening,
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                Unreachable::NotListening
            }
            _ if https && told.contains("certificate") => Unreachable::Certificate,
            _ if https
                && (told.contains("corrupt message") || told.contains("InvalidContentType")) =>
            {
                Unreachable::NotHttps
            }
            _ => Unreachable::Other,
        };
        Error::Unreachable {
            base: self.base.clone(),
            why,
            device,
            source: e,
        }
    }

    /// The error of an exchange stopped because the server broke one of its rules.
    pub(super) fn stopped(&self, what: String, resumable: bool) -> Error {
        Error::Stopped {
            base: self.base.clone(),
            what,
            resumable,
            source: None,
        }
    }

    /// Sends `body` (or nothing) and decodes the answer, turning a refusal into a clear error.
    /// Returns the answer and the bytes sent and received.
    fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<(T, usize, usize)> {
        let url = format!("{}{path}", self.base);
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(Error::Encode)?;
        let _waiting = match &self.observer {
            Some(o) if self.announce => Some(Waiting::start(&self.base, self.timeout, o.clone())),
            _ => None,
        };
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
                None => {
                    let mut req = self.agent.get(&url);
                    if let Some(t) = &self.token {
                        req = req.header("Authorization", format!("{AUTH_SCHEME} {t}"));
                    }
                    req.call()
                }
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
            self.tell(&Notice::Retrying {
                slow_down: status == 429,
                wait,
            });
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
                        return Error::Stopped {
                            base: self.base.clone(),
                            what: format!(
                                "sent more than {MAX_RESPONSE_ENTRIES} entries in one answer, \
                                 more than cairn takes"
                            ),
                            resumable: false,
                            source: Some(e),
                        };
                    }
                    Error::Unreadable {
                        base: self.base.clone(),
                        source: e,
                    }
                })?;
            return Ok((value, sent, received));
        }
        Err(self.refused(&resp, &data, path, body.is_some()))
    }

    /// The error of a refusal: `resp`'s status, its body `data` when a cairn-server's.
    fn refused<B>(
        &self,
        resp: &ureq::http::Response<B>,
        data: &[u8],
        path: &str,
        posted: bool,
    ) -> Error {
        Error::Refused {
            refusal: Box::new(Refusal {
                status: resp.status().as_u16(),
                body: serde_json::from_slice::<ErrorBody>(data).ok(),
            }),
            base: self.base.clone(),
            path: path.to_owned(),
            posted,
            retry_after: retry_after(resp),
        }
    }

    /// Waits for news: returns the number of the team's latest entry as soon as the log has one
    /// after `after` (a cursor), or `None` when `timeout_s` seconds pass with none (the server
    /// cuts it to [`cairn_protocol::MAX_WAIT_S`]). Costs the server nothing while it waits, so a
    /// device that must hear of news within seconds syncs when this returns instead of polling.
    /// A server too old to offer it refuses with 404 ([`Error::Refused`]): sync now and then
    /// instead. A busy server's 429 or 503 is an error too, with how long it asked to wait.
    pub fn wait(&self, after: u64, timeout_s: u64) -> Result<Option<u64>> {
        let mut path = format!("/v1/wait?after={after}&timeout_s={timeout_s}");
        if let Some(org) = &self.org {
            path.push_str(&format!("&org={org}"));
        }
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("{AUTH_SCHEME} {t}"));
        }
        // The server is silent for as long as it waits: the silence allowed is this client's
        // timeout past that.
        let patience = self.timeout + Duration::from_secs(timeout_s.min(MAX_WAIT_S));
        let mut resp = req
            .config()
            .timeout_per_read(Some(patience))
            .timeout_global(Some(patience + self.timeout))
            .build()
            .call()
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let data = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .map_err(|e| self.unreachable(e))?;
        match status {
            204 => Ok(None),
            200..=299 => serde_json::from_slice::<WaitResponse>(&data)
                .map(|w| Some(w.head))
                .map_err(|e| Error::Unreadable {
                    base: self.base.clone(),
                    source: e,
                }),
            _ => Err(self.refused(&resp, &data, "/v1/wait", false)),
        }
    }

    /// The server's protocol and limits; fails when it speaks another protocol version.
    pub fn info(&self) -> Result<Info> {
        let (info, _, _): (Info, _, _) = self.call::<(), _>("/v1/info", None)?;
        if info.protocol != PROTOCOL_VERSION {
            return Err(Error::Protocol {
                server: info.protocol,
            });
        }
        Ok(info)
    }

    /// Spends an invite: registers this device and returns its token.
    pub fn join(&self, req: &JoinRequest) -> Result<JoinResponse> {
        Ok(self.call("/v1/join", Some(req))?.0)
    }

    /// A one-time code that lets another device of this member join.
    pub fn link(&self) -> Result<LinkResponse> {
        Ok(self.call("/v1/link", Some(&serde_json::json!({})))?.0)
    }

    /// One sync request; the answer and the bytes sent and received.
    /// With [`Client::for_org`], it is a sync of that organisation's log.
    pub fn sync(&self, req: &SyncRequest) -> Result<(SyncResponse, usize, usize)> {
        match &self.org {
            None => self.call("/v1/sync", Some(req)),
            Some(org) => self.call(&format!("/v1/sync?org={org}"), Some(req)),
        }
    }

    /// The organisation this device's team belongs to now (`GET /v1/org`), if any. A server
    /// from before organisations answers 404: none, there.
    pub fn org(&self) -> Result<Option<OrgRef>> {
        Ok(self.org_of_team()?.org)
    }

    /// `GET /v1/org` whole: the organisation, and the id of this device's team on the server
    /// (see [`OrgResponse::team`]). A server from before organisations: none, and no id.
    pub fn org_of_team(&self) -> Result<OrgResponse> {
        match self.call::<(), OrgResponse>("/v1/org", None) {
            Ok((resp, _, _)) => Ok(resp),
            Err(e) if e.refusal().is_some_and(|r| r.status == 404) => Ok(OrgResponse::default()),
            Err(e) => Err(e),
        }
    }

    /// Everyone of the teams of this device's organisation (`GET /v1/org/people`): whom kudos
    /// across teams may name. `None` from a server from before it, or for a team of none.
    pub fn org_people(&self) -> Result<Option<cairn_protocol::OrgPeople>> {
        match self.call::<(), cairn_protocol::OrgPeople>("/v1/org/people", None) {
            Ok((resp, _, _)) => Ok(Some(resp)),
            Err(e) if e.refusal().is_some_and(|r| r.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
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

/// A refusal by the server, as its error body says it: callers decide by its code, never by
/// its words.
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

    /// Whether trying again will not cure it: a 4xx that is not a timeout (408) or a request
    /// to slow down (429). A device remembers these ([`super::problem::remember`]).
    pub fn is_for_good(&self) -> bool {
        (400..500).contains(&self.status) && !matches!(self.status, 408 | 429)
    }

    /// The server's error code (`not_founder`, `conflict`, ...), when it sent one.
    pub fn code(&self) -> Option<&str> {
        self.body.as_ref().map(|b| b.error.as_str())
    }
}

/// Bytes from hex, for the hashes of withdrawal notices and of refused changes.
pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Text a server sent, made safe to show: control characters (terminal escapes, newlines that
/// would forge another line) escaped, and at most 500 characters.
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

    #[test]
    fn addresses_are_normalised_or_refused() {
        assert_eq!(
            normalise_url(" https://cairn.example.org/ ")
                .ok()
                .as_deref(),
            Some("https://cairn.example.org")
        );
        assert!(matches!(
            normalise_url("cairn.example.org"),
            Err(Error::BadUrl(_))
        ));
        assert!(matches!(normalise_url("http://"), Err(Error::BadUrl(_))));
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let c = Client::new(
            "http://127.0.0.1:9",
            Some("secret-token".into()),
            QUIET_TIMEOUT,
        );
        assert!(!format!("{c:?}").contains("secret-token"));
    }
}
