//! Kudos from chat: the real `cairn-relay` answering `/kudos` as Slack and Mattermost send it,
//! with a real `cairn-server`, real `cairn` members (Ana, Ben) in homes of their own, and a
//! fake platform at its wire interface (the incoming webhook the relay posts to, and the
//! `response_url` a command's late answer goes to).
//!
//! Needs the `cairn` and `cairn-server` binaries: `cargo build -p cairn-cli -p cairn-server`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use cairn_client::sync::{self, Client, Options};
use cairn_e2e::{Home, Server};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

const BIN: &str = env!("CARGO_BIN_EXE_cairn-relay");
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const MM_TOKEN: &str = "xr3j5x3p4pfjpeingpgpw8y96y";
/// How long the platforms give a slash command to answer.
const THREE_SECONDS: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(60);

/// A TCP proxy to the server that can hold what clients send (a server that is slow to
/// answer), without the relay knowing.
struct Proxy {
    url: String,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream, gate: Option<Arc<(Mutex<bool>, Condvar)>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        if let Some(g) = &gate {
            let open = g.0.lock().unwrap();
            drop(g.1.wait_while(open, |open| !*open).unwrap());
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

impl Proxy {
    fn start(server: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = server.trim_start_matches("http://").to_owned();
        let gate = Arc::new((Mutex::new(true), Condvar::new()));
        let g = Arc::clone(&gate);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(up) = TcpStream::connect(&target) else {
                    continue;
                };
                let (c2, u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                let g = Arc::clone(&g);
                std::thread::spawn(move || pipe(client, up, Some(g)));
                std::thread::spawn(move || pipe(u2, c2, None));
            }
        });
        Proxy { url, gate }
    }

    fn hold(&self) {
        *self.gate.0.lock().unwrap() = false;
    }

    fn release(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

/// What the fake platform received: (path, JSON body).
#[derive(Default)]
struct Received {
    hits: Mutex<Vec<(String, Value)>>,
    came: Condvar,
}

/// The platform's side the relay talks to: its incoming webhook (`/hook`) and the
/// `response_url`s of commands (`/response/N`), which take JSON as Slack and Mattermost do.
struct Platform {
    url: String,
    received: Arc<Received>,
    _runtime: tokio::runtime::Runtime,
}

impl Platform {
    fn start() -> Platform {
        use axum::extract::{Path, State};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let received = Arc::new(Received::default());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        async fn record(
            State(r): State<Arc<Received>>,
            path: String,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> (axum::http::StatusCode, &'static str) {
            let json = headers
                .get("content-type")
                .is_some_and(|c| c.as_bytes().starts_with(b"application/json"));
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return (axum::http::StatusCode::BAD_REQUEST, "invalid_payload");
            };
            if !json {
                return (axum::http::StatusCode::BAD_REQUEST, "invalid_content_type");
            }
            r.hits.lock().unwrap().push((path, v));
            r.came.notify_all();
            (axum::http::StatusCode::OK, "ok")
        }
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |s: State<Arc<Received>>, h: axum::http::HeaderMap, b: axum::body::Bytes| {
                        record(s, "/hook".into(), h, b)
                    },
                ),
            )
            .route(
                "/response/{n}",
                axum::routing::post(
                    |s: State<Arc<Received>>,
                     Path(n): Path<String>,
                     h: axum::http::HeaderMap,
                     b: axum::body::Bytes| {
                        record(s, format!("/response/{n}"), h, b)
                    },
                ),
            )
            .with_state(Arc::clone(&received));
        runtime.spawn(async move { axum::serve(listener, app).await });
        Platform {
            url,
            received,
            _runtime: runtime,
        }
    }

    /// The JSON posted to `path`, waited for.
    fn wait_for(&self, path: &str) -> Value {
        let hits = self.received.hits.lock().unwrap();
        let (hits, _) = self
            .received
            .came
            .wait_timeout_while(hits, WAIT, |h| h.iter().all(|(p, _)| p != path))
            .unwrap();
        hits.iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("nothing was posted to {path}"))
    }
}

/// How a test request is signed.
#[derive(Clone, Copy)]
enum Sign {
    /// As Slack signs, now.
    Good,
    /// As Slack signs, with a timestamp this many seconds ago.
    Old(i64),
    /// With another secret.
    Wrong,
    /// No signature headers at all.
    Missing,
}

/// A chat user of the fake workspace.
#[derive(Clone, Copy)]
struct User {
    id: &'static str,
    name: &'static str,
}

const ANA: User = User {
    id: "U0ANA0001",
    name: "ana.m",
};
const BEN: User = User {
    id: "U0BEN0002",
    name: "ben.o",
};
const CY: User = User {
    id: "U0CY00003",
    name: "cy",
};

/// A private answer: its status, its text (empty for an empty body), how long it took.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    text: String,
    took: Duration,
}

/// `cairn-relay --config CONFIG run` with its secrets, and its standard output line by line.
fn spawn_relay(config: &std::path::Path, platform: &str) -> (Child, mpsc::Receiver<String>) {
    let mut relay = Command::new(BIN)
        .env_clear()
        .env("TEST_SLACK_HOOK", format!("{platform}/hook"))
        .env("TEST_SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let out = BufReader::new(relay.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (relay, lines)
}

struct World {
    server: Server,
    team: String,
    ana: Home,
    ben: Home,
    proxy: Proxy,
    platform: Platform,
    dir: tempfile::TempDir,
    relay: Child,
    lines: mpsc::Receiver<String>,
    chat: String,
    agent: ureq::Agent,
    responses: std::cell::Cell<u32>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.relay.kill();
        let _ = self.relay.wait();
    }
}

impl World {
    fn new() -> World {
        let server = Server::start();
        let team = server.team("Otters");
        let ana = Home::joined(&server, &server.founder(&team), &["--name", "Ana"]);
        let ben = Home::joined(&server, &server.invite(&team, 1), &["--name", "Ben"]);
        ana.run(&["sync"]).ok();
        let proxy = Proxy::start(&server.url);
        let platform = Platform::start();
        let dir = tempfile::tempdir().unwrap();
        // The relay's own read-only device.
        let invite = server
            .admin(&["invite", "create", "--team", &team, "--relay"])
            .ok()
            .trim()
            .to_owned();
        let relay_replica = dir.path().join("relay.sqlite3");
        sync::join(
            &Client::new(&server.url, None, sync::TIMEOUT),
            &sync::Join {
                request: cairn_protocol::JoinRequest {
                    invite,
                    device_name: "chat relay".into(),
                    device_kind: cairn_protocol::DeviceKind::Relay,
                    ..cairn_protocol::JoinRequest::default()
                },
                ..sync::Join::default()
            },
            &relay_replica,
            jiff::Timestamp::now().as_millisecond(),
            Options::ASKED,
            &mut |_| {},
        )
        .expect("the relay joins");
        std::fs::write(dir.path().join("mm-token"), format!("{MM_TOKEN}\n")).unwrap();
        let config = dir.path().join("relay.toml");
        std::fs::write(
            &config,
            format!(
                "home = {home:?}\nreplica = {relay_replica:?}\nallow_http = true\n\
                 allow_private = [\"127.0.0.1\"]\n\n\
                 [[destination]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"env:TEST_SLACK_HOOK\"\n\n\
                 [chat]\nlisten = \"127.0.0.1:0\"\nserver = {server:?}\n\
                 slack_signing_secret = \"env:TEST_SLACK_SIGNING_SECRET\"\n\
                 mattermost_token = \"file:{token}\"\n",
                home = dir.path().join("relay-home"),
                server = proxy.url,
                token = dir.path().join("mm-token").display(),
            ),
        )
        .unwrap();
        let (relay, lines) = spawn_relay(&config, &platform.url);
        let mut world = World {
            server,
            team,
            ana,
            ben,
            proxy,
            platform,
            dir,
            relay,
            lines,
            chat: String::new(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into(),
            responses: std::cell::Cell::new(0),
        };
        world.chat = world.chat_url();
        world
    }

    /// Where the running relay answers slash commands, as it says at its start.
    fn chat_url(&self) -> String {
        let line = self.line("slash commands at http://");
        line.strip_prefix("slash commands at ")
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .trim_end_matches("/slack")
            .to_owned()
    }

    /// Kills the relay (as a crash would) and starts it again on the same home.
    fn restart_relay(&mut self) {
        let _ = self.relay.kill();
        let _ = self.relay.wait();
        let (relay, lines) = spawn_relay(&self.dir.path().join("relay.toml"), &self.platform.url);
        self.relay = relay;
        self.lines = lines;
        self.chat = self.chat_url();
    }

    /// Waits for the relay to print a line that starts with `start`.
    fn line(&self, start: &str) -> String {
        let until = Instant::now() + WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(start) => return l,
                Ok(_) => {}
                Err(_) => panic!("the relay never said {start:?}"),
            }
        }
    }

    fn response_url(&self) -> String {
        let n = self.responses.get() + 1;
        self.responses.set(n);
        format!("{}/response/{n}", self.platform.url)
    }

    fn post(&self, path: &str, headers: &[(&str, String)], body: &str) -> Answer {
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.chat))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let started = Instant::now();
        let mut res = req.send(body).expect("the relay answers");
        let took = started.elapsed();
        let status = res.status().as_u16();
        let body = res.body_mut().read_to_string().unwrap();
        let text = if status == 200 && !body.is_empty() {
            let v: Value = serde_json::from_str(&body).expect("a JSON answer");
            assert_eq!(v["response_type"], "ephemeral", "{v}");
            v["text"].as_str().unwrap().to_owned()
        } else {
            String::new()
        };
        Answer {
            status,
            body,
            text,
            took,
        }
    }

    /// `/kudos TEXT` typed by `user` in Slack, the form as Slack posts it, signed as `sign`.
    fn slack(&self, user: User, text: &str, sign: Sign) -> (Answer, String) {
        let (headers, body, response_url) = self.slack_request(user, text, sign);
        (self.post("/slack", &headers, &body), response_url)
    }

    /// The headers and form of a `/kudos TEXT` by `user`, signed as `sign`, and its
    /// response_url.
    #[allow(clippy::type_complexity)]
    fn slack_request(
        &self,
        user: User,
        text: &str,
        sign: Sign,
    ) -> (Vec<(&'static str, String)>, String, String) {
        let response_url = self.response_url();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "gIkuvaNzQIHg97ATvDxqgjtO")
            .append_pair("team_id", "T0001")
            .append_pair("team_domain", "otters")
            .append_pair("channel_id", "C2147483705")
            .append_pair("channel_name", "general")
            .append_pair("user_id", user.id)
            .append_pair("user_name", user.name)
            .append_pair("command", "/kudos")
            .append_pair("text", text)
            .append_pair("api_app_id", "A123456")
            .append_pair("is_enterprise_install", "false")
            .append_pair("response_url", &response_url)
            .append_pair("trigger_id", "13345224609.738474920.8088930838d88f008e0")
            .finish();
        let now = jiff::Timestamp::now().as_second();
        let sig = |secret: &str, ts: i64| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("v0:{ts}:{body}").as_bytes());
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("v0={hex}")
        };
        let headers = match sign {
            Sign::Good => vec![
                ("x-slack-request-timestamp", now.to_string()),
                ("x-slack-signature", sig(SIGNING_SECRET, now)),
            ],
            Sign::Old(secs) => vec![
                ("x-slack-request-timestamp", (now - secs).to_string()),
                ("x-slack-signature", sig(SIGNING_SECRET, now - secs)),
            ],
            Sign::Wrong => vec![
                ("x-slack-request-timestamp", now.to_string()),
                ("x-slack-signature", sig("not-the-secret", now)),
            ],
            Sign::Missing => vec![],
        };
        let mut headers = headers;
        headers.push((
            "user-agent",
            "Slackbot 1.0 (+https://api.slack.com/robots)".into(),
        ));
        (headers, body, response_url)
    }

    /// `/kudos TEXT` typed by `user` in Mattermost, the form as Mattermost posts it.
    fn mattermost(&self, user: User, text: &str, token: &str) -> (Answer, String) {
        let response_url = self.response_url();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("channel_id", "qmd5oqtwoibz8cuzxzg5ekshgr")
            .append_pair("channel_name", "town-square")
            .append_pair("command", "/kudos")
            .append_pair("response_url", &response_url)
            .append_pair("team_domain", "otters")
            .append_pair("team_id", "w1ctxcpbgbnpdfe3gzq6yyp3ro")
            .append_pair("text", text)
            .append_pair("token", token)
            .append_pair("trigger_id", "c3ppZzN1ZHBzdGc0aDd4OnF6dzV6")
            .append_pair("user_id", &user.id.to_lowercase())
            .append_pair("user_name", user.name)
            .finish();
        (self.post("/mattermost", &[], &body), response_url)
    }

    /// What a link finally said: its answer, or, when the answer said it was under way, what
    /// came to its response_url.
    fn link_outcome(&self, (answer, response_url): (Answer, String)) -> String {
        assert_eq!(answer.status, 200, "{answer:?}");
        eprintln!("a link answered in {:?}", answer.took);
        assert!(answer.took < THREE_SECONDS, "{answer:?}");
        if answer.text.starts_with("Linking:") {
            let path = response_url.trim_start_matches(&self.platform.url);
            let v = self.platform.wait_for(path);
            assert_eq!(v["response_type"], "ephemeral", "{v}");
            v["text"].as_str().unwrap().to_owned()
        } else {
            answer.text
        }
    }

    fn link_code(home: &Home) -> String {
        home.run(&["device", "link"]).ok().trim().to_owned()
    }

    fn feed(home: &Home) -> Vec<Value> {
        home.run(&["sync"]).ok();
        home.run(&["feed", "--json"]).json()["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn kudos_in(home: &Home) -> Vec<Value> {
        World::feed(home)
            .into_iter()
            .filter(|i| i["to"].as_array().is_some_and(|t| !t.is_empty()))
            .collect()
    }
}

#[test]
fn a_linked_slack_user_thanks_a_linked_teammate_and_nothing_unverified_is_done() {
    let w = World::new();

    // Unverified requests: a stale (6 minutes), wrong or missing signature, each carrying a
    // good link code: 401, an empty body, and the code is not spent.
    let ben_code = World::link_code(&w.ben);
    let changes = w.server.changes(&w.team);
    for sign in [Sign::Old(6 * 60), Sign::Wrong, Sign::Missing] {
        let (a, _) = w.slack(BEN, &format!("link {ben_code}"), sign);
        assert_eq!((a.status, a.body.as_str()), (401, ""), "{a:?}");
    }
    assert_eq!(w.server.changes(&w.team), changes);

    // A good signature (4 minutes old is still within the window) is answered, once: the
    // same request sent again is refused.
    let (headers, body, _) = w.slack_request(ANA, "help", Sign::Old(4 * 60));
    let help = w.post("/slack", &headers, &body);
    assert_eq!(help.status, 200, "{help:?}");
    assert!(help.text.contains("link CODE"), "{help:?}");
    assert!(help.took < THREE_SECONDS, "{help:?}");
    let again = w.post("/slack", &headers, &body);
    assert_eq!((again.status, again.body.as_str()), (401, ""), "{again:?}");

    // An unlinked typer is told how to link; nothing is written.
    let (a, _) = w.slack(ANA, "<@U0BEN0002|ben.o> thanks #trust", Sign::Good);
    assert!(
        a.text.contains("not linked") && a.text.contains("cairn device link"),
        "{a:?}"
    );

    // Ana and Ben link their chat users with their codes (Ben's was never spent above).
    let ana_code = World::link_code(&w.ana);
    let said = w.link_outcome(w.slack(ANA, &format!("link {ana_code}"), Sign::Good));
    assert!(said.starts_with("Linked"), "{said}");
    assert!(said.contains("Ana"), "{said}");
    w.line("chat: a slack user linked");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let home = w.dir.path().join("relay-home");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.join("links.sqlite3")), 0o600);
        let links: Vec<PathBuf> = std::fs::read_dir(home.join("links"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(mode(&links[0]), 0o700);
        assert_eq!(mode(&links[0].join("replica.sqlite3")), 0o600);
    }
    let said = w.link_outcome(w.slack(BEN, &format!("link {ben_code}"), Sign::Good));
    assert!(said.starts_with("Linked"), "{said}");
    w.line("chat: a slack user linked");

    // A code nobody made, and a code used once, are refused, with how to get a new one.
    let said = w.link_outcome(w.slack(CY, "link NOT-A-CODE", Sign::Good));
    assert!(
        said.contains("wrong, spent or expired") && said.contains("cairn device link"),
        "{said}"
    );
    let said = w.link_outcome(w.slack(CY, &format!("link {ana_code}"), Sign::Good));
    assert!(
        said.contains("wrong, spent or expired") && said.contains("cairn device link"),
        "{said}"
    );

    // A recipient who has not linked: the typer is told how they can; nothing is written.
    let changes = w.server.changes(&w.team);
    let (a, _) = w.slack(
        ANA,
        "<@U0CY00003|cy> thanks for the review #trust",
        Sign::Good,
    );
    assert_eq!(a.status, 200);
    assert!(
        a.text.contains("@cy has not linked") && a.text.contains("cairn device link"),
        "{a:?}"
    );
    // A bare @word (no user Slack knew) is nobody's, whatever it spells.
    let (a, _) = w.slack(ANA, "@ben thanks for the review", Sign::Good);
    assert!(a.text.contains("@ben has not linked"), "{a:?}");

    // The server is slow: the answer still comes within 3 s, and the write and the sync come
    // after it.
    w.proxy.hold();
    let (a, _) = w.slack(
        ANA,
        "<@U0BEN0002|ben.o> thanks for the calm write-up #trust",
        Sign::Good,
    );
    assert_eq!(a.status, 200, "{a:?}");
    eprintln!("a kudos answered in {:?} while the server was held", a.took);
    assert!(a.took < THREE_SECONDS, "{a:?}");
    assert!(a.text.starts_with("Thanks to Ben"), "{a:?}");
    assert_eq!(
        w.server.changes(&w.team),
        changes,
        "nothing reached the server while it was held"
    );
    w.proxy.release();
    w.line("chat: sent kudos");

    // Ben's own cairn shows it as Ana's kudos to Ben, after his sync; and only that one.
    let kudos = World::kudos_in(&w.ben);
    assert_eq!(kudos.len(), 1, "{kudos:?}");
    let k = &kudos[0];
    assert_eq!(k["author"], "ana", "{k}");
    assert_eq!(k["to"], serde_json::json!(["ben"]), "{k}");
    assert_eq!(k["text"], "thanks for the calm write-up", "{k}");
    assert!(k["pillar"].to_string().contains("trust"), "{k}");
    // Ana's own replica has it too, as hers.
    let ana_kudos = World::kudos_in(&w.ana);
    assert_eq!(ana_kudos.len(), 1, "{ana_kudos:?}");
    assert_eq!(ana_kudos[0]["author"], "ana");
    // And the relay's own replica: it posts it to the team's channel as any other kudos.
    let posted = w.platform.wait_for("/hook");
    let text = posted["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Ana")
            && text.contains("Ben")
            && text.contains("thanks for the calm write-up"),
        "{posted}"
    );

    // Unlinking says how the device can be revoked; a kudos after it is not written.
    let (a, _) = w.slack(ANA, "unlink", Sign::Good);
    assert!(
        a.text.starts_with("Unlinked") && a.text.contains("cairn-server device revoke"),
        "{a:?}"
    );
    let (a, _) = w.slack(ANA, "<@U0BEN0002|ben.o> again", Sign::Good);
    assert!(a.text.contains("not linked"), "{a:?}");
}

#[test]
fn mattermost_mentions_map_through_the_usernames_seen_at_linking() {
    let w = World::new();
    let (a, _) = w.mattermost(ANA, "help", "not-the-token");
    assert_eq!((a.status, a.body.as_str()), (401, ""), "{a:?}");
    let (a, _) = w.mattermost(ANA, "help", "");
    assert_eq!((a.status, a.body.as_str()), (401, ""), "{a:?}");
    let (a, _) = w.mattermost(ANA, "help", MM_TOKEN);
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.text.contains("link CODE"), "{a:?}");

    let said =
        w.link_outcome(w.mattermost(ANA, &format!("link {}", World::link_code(&w.ana)), MM_TOKEN));
    assert!(said.starts_with("Linked"), "{said}");
    // Ben links while the server is held: the answer says it is under way within 3 s, and
    // the outcome comes to the command's response_url once the server answers.
    w.proxy.hold();
    let code = World::link_code(&w.ben);
    let (a, response_url) = w.mattermost(BEN, &format!("link {code}"), MM_TOKEN);
    eprintln!("a link answered in {:?} while the server was held", a.took);
    assert!(a.took < THREE_SECONDS, "{a:?}");
    assert!(a.text.starts_with("Linking:"), "{a:?}");
    w.proxy.release();
    let said = w.link_outcome((a, response_url));
    assert!(said.starts_with("Linked"), "{said}");
    // A display name or a cairn handle is not a Mattermost username: nobody.
    let (a, _) = w.mattermost(ANA, "@Ben thanks", MM_TOKEN);
    assert!(a.text.contains("@Ben has not linked"), "{a:?}");
    let (a, _) = w.mattermost(ANA, "@ben thanks for the pairing", MM_TOKEN);
    assert!(a.text.contains("@ben has not linked"), "{a:?}");
    // The username Ben linked under names him.
    let typed = Instant::now();
    let (a, _) = w.mattermost(ANA, "@ben.o thanks for the pairing #trust", MM_TOKEN);
    assert!(a.text.starts_with("Thanks to Ben"), "{a:?}");
    assert!(a.took < THREE_SECONDS, "{a:?}");
    w.line("chat: sent kudos");
    // Through the server to the relay's own replica, and posted to the team's channel.
    let posted = w.platform.wait_for("/hook");
    eprintln!(
        "typed in chat to posted in the channel: {:?}",
        typed.elapsed()
    );
    assert!(
        posted["text"]
            .as_str()
            .unwrap_or_default()
            .contains("thanks for the pairing"),
        "{posted}"
    );
    let kudos = World::kudos_in(&w.ben);
    assert_eq!(kudos.len(), 1, "{kudos:?}");
    assert_eq!(kudos[0]["author"], "ana");
    assert_eq!(kudos[0]["text"], "thanks for the pairing");

    // A pillar added after Ana's device last synced: the first try is refused with the reason
    // and brings the team; the next is written.
    w.ana.run(&["team", "pillar", "add", "curiosity"]).ok();
    w.ana.run(&["sync"]).ok();
    let (a, _) = w.mattermost(ANA, "@ben.o thanks for asking why #curiosity", MM_TOKEN);
    assert!(
        a.text.starts_with("Nothing was written: unknown pillar"),
        "{a:?}"
    );
    w.line("chat: the linked device of member");
    let (a, _) = w.mattermost(ANA, "@ben.o thanks for asking why #curiosity", MM_TOKEN);
    assert!(a.text.starts_with("Thanks to Ben"), "{a:?}");
    w.line("chat: sent kudos");
    assert_eq!(World::kudos_in(&w.ben).len(), 2);
}

/// A kudos written while the server is held, and the relay killed before its sync could
/// finish: the next start sends it, and it lands once. A linked device revoked later: its user
/// is told, and nothing more is sent.
#[test]
fn a_kudos_written_before_a_crash_is_sent_by_the_next_start_and_a_revoked_link_says_so() {
    let mut w = World::new();
    let said = w.link_outcome(w.slack(
        ANA,
        &format!("link {}", World::link_code(&w.ana)),
        Sign::Good,
    ));
    assert!(said.starts_with("Linked"), "{said}");
    let said = w.link_outcome(w.slack(
        BEN,
        &format!("link {}", World::link_code(&w.ben)),
        Sign::Good,
    ));
    assert!(said.starts_with("Linked"), "{said}");
    w.proxy.hold();
    let (a, _) = w.slack(
        ANA,
        "<@U0BEN0002|ben.o> thanks for staying late",
        Sign::Good,
    );
    assert!(a.text.starts_with("Thanks to Ben"), "{a:?}");
    w.line("chat: kudos written");
    w.restart_relay();
    w.proxy.release();
    w.line("chat: what the linked device of member");
    let kudos = World::kudos_in(&w.ben);
    assert_eq!(kudos.len(), 1, "{kudos:?}");
    assert_eq!(kudos[0]["author"], "ana");
    assert_eq!(kudos[0]["text"], "thanks for staying late");

    // Ana revokes the device the relay holds for her: her next kudos from chat is written,
    // refused by the server, and she is told through the response_url; the one after is
    // refused at once, and nothing more reaches Ben.
    let devices = w
        .server
        .admin(&["device", "list", "--team", &w.team, "--json"])
        .json();
    let id = devices
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| {
            let d = if d["device"].is_object() {
                &d["device"]
            } else {
                d
            };
            (d["name"] == "cairn-relay: slack ana.m").then(|| d["id"].as_str().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no device of Ana's link in {devices}"));
    w.server.admin(&["device", "revoke", &id]).ok();
    let (a, response_url) = w.slack(ANA, "<@U0BEN0002|ben.o> thanks again", Sign::Good);
    assert!(a.text.starts_with("Thanks to Ben"), "{a:?}");
    let told = w
        .platform
        .wait_for(response_url.trim_start_matches(&w.platform.url));
    assert!(told["text"].as_str().unwrap().contains("revoked"), "{told}");
    let (a, _) = w.slack(ANA, "<@U0BEN0002|ben.o> and again", Sign::Good);
    assert!(
        a.text.contains("revoked") && a.text.contains("unlink"),
        "{a:?}"
    );
    assert_eq!(World::kudos_in(&w.ben).len(), 1);
}

/// A body larger than a slash command's form is refused by its length, before it is read.
#[test]
fn a_body_over_16_kib_is_refused_by_its_length() {
    let w = World::new();
    let mut s = TcpStream::connect(w.chat.trim_start_matches("http://")).unwrap();
    write!(
        s,
        "POST /slack HTTP/1.1\r\nhost: relay\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\n\r\n",
        17 * 1024
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "an empty body: {answer}");
}
