//! A fake of every chat platform the relay posts to, at its wire interface: one axum app on
//! 127.0.0.1:0 that checks each request as the real platform would (shape, limits, token,
//! signature), keeps what it received, and gives the answers a test scripts (429 with
//! `Retry-After`, 410, 500, a redirect, a stall) before its normal ones.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const MATRIX_TOKEN: &str = "syt_relay_token";
pub const ROOM: &str = "!room:example.org";
/// A Standard Webhooks secret (16 bytes of key).
pub const WEBHOOK_SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZg==";

/// The platforms, by the path each is served at.
pub const PLATFORMS: [&str; 6] = [
    "slack",
    "mattermost",
    "discord",
    "teams",
    "matrix",
    "webhook",
];

/// An answer a test scripts.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A status with headers and a body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// No answer until the test releases it (or the fake stops).
    Stall,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub platform: String,
    pub at: Instant,
    pub body: Value,
    pub headers: HashMap<String, String>,
    /// The status the fake answered (0 while stalled).
    pub status: u16,
    /// What the real platform would have refused, if anything.
    pub problem: Option<String>,
    /// A repeat the platform drops by its idempotency key (Matrix txn id, webhook-id).
    pub repeat: bool,
}

impl Hit {
    /// The text a person reads.
    pub fn text(&self) -> String {
        let b = &self.body;
        match self.platform.as_str() {
            "slack" => b["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            "mattermost" => b["text"].as_str().unwrap_or("").to_owned(),
            "discord" => b["content"].as_str().unwrap_or("").to_owned(),
            "teams" => b["attachments"][0]["content"]["body"][0]["inlines"]
                .as_array()
                .map(|runs| {
                    runs.iter()
                        .map(|r| r["text"].as_str().unwrap_or(""))
                        .collect::<String>()
                })
                .unwrap_or_default(),
            "matrix" => b["body"].as_str().unwrap_or("").to_owned(),
            _ => b["data"]["summary"].as_str().unwrap_or("").to_owned(),
        }
    }
}

#[derive(Default)]
struct State {
    hits: Vec<Hit>,
    script: HashMap<String, VecDeque<Answer>>,
    keys: HashSet<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    release: tokio::sync::Notify,
}

/// The fake, running on its own runtime until dropped.
pub struct Fake {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl Fake {
    pub fn start() -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            release: tokio::sync::Notify::new(),
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app_shared = shared.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = app_shared.clone();
                async move { handle(shared, method, uri, headers, body).await }
            },
        );
        rt.spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Fake {
            addr,
            shared,
            _rt: rt,
        }
    }

    /// The URL of `platform`'s endpoint (Matrix: the homeserver).
    pub fn url(&self, platform: &str) -> String {
        if platform == "matrix" {
            format!("http://{}", self.addr)
        } else {
            format!("http://{}/{platform}", self.addr)
        }
    }

    /// Gives `answers` to `platform`'s next requests, before the normal ones.
    pub fn script(&self, platform: &str, answers: Vec<Answer>) {
        let mut s = self.shared.state.lock().unwrap();
        s.script
            .entry(platform.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Lets every stalled request answer as normal.
    pub fn release(&self) {
        self.shared.release.notify_waiters();
    }

    /// Every request `platform` received, in order.
    pub fn hits(&self, platform: &str) -> Vec<Hit> {
        let s = self.shared.state.lock().unwrap();
        s.hits
            .iter()
            .filter(|h| h.platform == platform)
            .cloned()
            .collect()
    }

    /// Every request received.
    pub fn all(&self) -> Vec<Hit> {
        self.shared.state.lock().unwrap().hits.clone()
    }

    /// Waits until `done` holds of the requests received, for at most `limit`.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[Hit]) -> bool) -> bool {
        let end = Instant::now() + limit;
        let mut s = self.shared.state.lock().unwrap();
        loop {
            if done(&s.hits) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            s = self.shared.changed.wait_timeout(s, end - now).unwrap().0;
        }
    }
}

fn platform_of(path: &str) -> String {
    if path.starts_with("/_matrix/") {
        "matrix".into()
    } else {
        path.trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

/// What the real platform would refuse in this request, and its idempotency key.
fn check(
    platform: &str,
    method: &Method,
    uri: &Uri,
    headers: &HashMap<String, String>,
    body: &Bytes,
    v: &Value,
) -> (Option<String>, Option<String>) {
    let problem = |s: &str| (Some(s.to_owned()), None);
    if headers.get("content-type").map(String::as_str) != Some("application/json") {
        return problem("not JSON");
    }
    match platform {
        "slack" => {
            let Some(text) = v["text"].as_str() else {
                return problem("no text");
            };
            if text.is_empty() {
                return problem("empty text");
            }
            let Some(blocks) = v["blocks"].as_array() else {
                return problem("no blocks");
            };
            for b in blocks {
                if b["type"] != "section" {
                    return problem("not a section");
                }
                let t = b["text"]["text"].as_str().unwrap_or("");
                if t.chars().count() > 3000 || t.is_empty() {
                    return problem("a section's text is empty or over 3000 characters");
                }
            }
            (None, None)
        }
        "mattermost" => match v["text"].as_str() {
            Some(t) if !t.is_empty() && t.chars().count() <= 16_383 => (None, None),
            _ => problem("text missing or over 16383 characters"),
        },
        "discord" => {
            if v["allowed_mentions"]["parse"] != json!([]) {
                return problem("allowed_mentions.parse is not empty");
            }
            match v["content"].as_str() {
                Some(t) if !t.is_empty() && t.chars().count() <= 2_000 => (None, None),
                _ => problem("content missing or over 2000 characters"),
            }
        }
        "teams" => {
            let a = &v["attachments"][0];
            if v["type"] != "message"
                || a["contentType"] != "application/vnd.microsoft.card.adaptive"
                || a["content"]["type"] != "AdaptiveCard"
                || !a["content"]["body"].is_array()
            {
                return problem("not an Adaptive Card in a Workflows envelope");
            }
            (None, None)
        }
        "matrix" => {
            let path = uri.path();
            let want = format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/",
                ROOM.replace('!', "%21").replace(':', "%3A")
            );
            let Some(txn) = path.strip_prefix(&want) else {
                return problem("not the room's send endpoint");
            };
            if *method != Method::PUT || txn.is_empty() {
                return problem("not a PUT with a transaction id");
            }
            if headers.get("authorization") != Some(&format!("Bearer {MATRIX_TOKEN}")) {
                return problem("bad token");
            }
            if v["msgtype"] != "m.notice" || !v["body"].is_string() {
                return problem("not an m.notice with a body");
            }
            (None, Some(format!("txn:{txn}")))
        }
        "webhook" => {
            let (Some(id), Some(ts), Some(sig)) = (
                headers.get("webhook-id"),
                headers.get("webhook-timestamp"),
                headers.get("webhook-signature"),
            ) else {
                return problem("missing webhook-id, webhook-timestamp or webhook-signature");
            };
            let Ok(ts) = ts.parse::<i64>() else {
                return problem("bad timestamp");
            };
            let now = jiff::Timestamp::now().as_second();
            if (now - ts).abs() > 300 {
                return problem("timestamp outside the 5-minute tolerance");
            }
            let key = base64::engine::general_purpose::STANDARD
                .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
                .unwrap();
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(body);
            let want =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            if !sig.split(' ').any(|s| s == format!("v1,{want}")) {
                return problem("bad signature");
            }
            (None, Some(format!("id:{id}")))
        }
        _ => problem("no such platform"),
    }
}

fn normal(platform: &str) -> (u16, String) {
    match platform {
        "discord" => (204, String::new()),
        "teams" => (202, String::new()),
        "matrix" => (200, r#"{"event_id":"$e"}"#.into()),
        _ => (200, "ok".into()),
    }
}

async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let platform = platform_of(uri.path());
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (problem, key) = check(&platform, &method, &uri, &headers, &body, &v);
    let (index, answer) = {
        let mut s = shared.state.lock().unwrap();
        let repeat = key.as_ref().is_some_and(|k| !s.keys.insert(k.clone()));
        let answer = s.script.get_mut(&platform).and_then(VecDeque::pop_front);
        s.hits.push(Hit {
            platform: platform.clone(),
            at: Instant::now(),
            body: v,
            headers,
            status: 0,
            problem: problem.clone(),
            repeat,
        });
        (s.hits.len() - 1, answer)
    };
    shared.changed.notify_all();
    let (status, extra, text) = match (problem, answer) {
        (Some(p), _) => (400, vec![], p),
        (None, Some(Answer::Status(s, h, b))) => (s, h, b),
        (None, Some(Answer::Stall)) => {
            shared.release.notified().await;
            let (s, b) = normal(&platform);
            (s, vec![], b)
        }
        (None, None) => {
            let (s, b) = normal(&platform);
            (s, vec![], b)
        }
    };
    {
        let mut s = shared.state.lock().unwrap();
        s.hits[index].status = status;
    }
    shared.changed.notify_all();
    let mut resp = (StatusCode::from_u16(status).unwrap(), text).into_response();
    for (k, val) in extra {
        resp.headers_mut().insert(k, val.parse().unwrap());
    }
    resp
}
