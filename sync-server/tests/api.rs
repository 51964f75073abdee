//! The HTTP API on a real socket and a real SQLite file: what it takes, and everything it refuses
//! (with a 4xx, a JSON body, and nothing stored).

use std::sync::Arc;

use automerge::{ActorId, Automerge, transaction::Transactable};
use cairn_protocol::{
    Bytes, DocChanges, ErrorBody, JoinRequest, JoinResponse, SyncRequest, SyncResponse,
};
use cairn_server::hub::{Hub, Whom};
use cairn_server::store::{DeviceInfo, TeamInfo};
use cairn_server::{Limits, Result, State};

/// The admin's side of a test server: the hub's calls, waited for.
struct Admin {
    hub: Arc<Hub>,
    rt: tokio::runtime::Runtime,
}

impl Admin {
    fn create_team(&self, name: &str, now_ms: i64) -> Result<TeamInfo> {
        self.rt.block_on(self.hub.create_team(name, now_ms))
    }

    fn create_invite(
        &self,
        team: &str,
        uses: u32,
        expires_ms: i64,
        now_ms: i64,
        whom: Whom<'_>,
    ) -> Result<String> {
        self.rt
            .block_on(self.hub.create_invite(team, uses, expires_ms, now_ms, whom))
    }

    fn teams(&self) -> Result<Vec<TeamInfo>> {
        self.rt.block_on(self.hub.teams())
    }

    fn devices(&self, team: Option<&str>) -> Result<Vec<DeviceInfo>> {
        self.rt.block_on(self.hub.devices(team))
    }

    fn revoke(&self, device: &str, now_ms: i64) -> Result<()> {
        self.rt.block_on(self.hub.revoke(device, now_ms))
    }
}

/// A server on `127.0.0.1:0` in a thread of its own, stopped when dropped.
struct TestServer {
    url: String,
    db: Admin,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    fn start(limits: Limits) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let path = dir.path().join("server.sqlite3");
        let store = rt
            .block_on(cairn_server::store::open(
                path.to_str().unwrap(),
                &Default::default(),
            ))
            .unwrap();
        let hub = Arc::new(Hub::new(store, cairn_server::hub::DOC_CACHE));
        let db = Admin {
            hub: hub.clone(),
            rt,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let state = State::new(hub, limits);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                cairn_server::serve(listener, state, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            url: format!("http://{addr}"),
            db,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// POSTs raw bytes; returns the status and the body.
    fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> (u16, Vec<u8>) {
        let mut req = Self::agent()
            .post(format!("{}{path}", self.url))
            .content_type(content_type);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.send(body).unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_vec().unwrap())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut resp = Self::agent()
            .get(format!("{}{path}", self.url))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    }

    fn join(&self, req: &JoinRequest) -> JoinResponse {
        let (status, body) = self.post(
            "/v1/join",
            "application/json",
            &serde_json::to_vec(req).unwrap(),
            None,
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    fn sync(&self, token: &str, req: &SyncRequest) -> (u16, Vec<u8>) {
        self.post(
            "/v1/sync",
            "application/json",
            &serde_json::to_vec(req).unwrap(),
            Some(token),
        )
    }

    #[track_caller]
    fn sync_ok(&self, token: &str, req: &SyncRequest) -> SyncResponse {
        let (status, body) = self.sync(token, req);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    fn stored(&self) -> i64 {
        self.db.teams().unwrap().iter().map(|t| t.changes).sum()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn push(doc: &str, changes: Vec<Vec<u8>>) -> SyncRequest {
    SyncRequest {
        cursor: 0,
        push: vec![DocChanges {
            doc: doc.into(),
            changes: changes.into_iter().map(Bytes).collect(),
        }],
        max_pull: None,
        import_done: false,
        withdrawals: false,
        ..SyncRequest::default()
    }
}

/// A document written by `actor`: one change per key.
fn changes(actor: &ActorId, keys: &[&str]) -> Vec<Vec<u8>> {
    let mut doc = Automerge::new();
    doc.set_actor(actor.clone());
    let mut out = Vec::new();
    for k in keys {
        let heads = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, *k, "v").unwrap();
        tx.commit();
        out.extend(
            doc.get_changes(&heads)
                .iter()
                .map(|c| c.raw_bytes().to_vec()),
        );
    }
    out
}

/// A server with one team published by its founder; returns it, the founder's token and an
/// invite for five members.
fn founded(limits: Limits) -> (TestServer, String, String) {
    let server = TestServer::start(limits);
    let team = server.db.create_team("Otters", 0).unwrap();
    let invite = server
        .db
        .create_invite(&team.id, 5, i64::MAX, 0, Whom::Anyone)
        .unwrap();
    let founder = server
        .db
        .create_invite(&team.id, 1, i64::MAX, 0, Whom::Founder)
        .unwrap();
    let founder = server.join(&JoinRequest {
        invite: founder,
        device_name: "ana's laptop".into(),
        name: None,
        claim: None,
        publish: Some("ana".into()),
        ..JoinRequest::default()
    });
    (server, founder.token.0, invite)
}

#[track_caller]
fn refused(status: u16, body: &[u8], want: u16) -> ErrorBody {
    assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not an error body ({e}): {body:?}"))
}

#[test]
fn bad_requests_are_refused_and_store_nothing() {
    let limits = Limits {
        max_request_bytes: 64 << 10,
        max_push_changes: 20,
        ..Limits::default()
    };
    let (server, token, _) = founded(limits);
    let actor = ActorId::random();
    let good = changes(&actor, &["a", "b", "c"]);
    let r = server.sync_ok(&token, &push("team", good[..1].to_vec()));
    assert_eq!((r.acked, r.head), (1, 1));
    let stored = server.stored();

    let json = "application/json";
    let mut truncated = serde_json::to_vec(&push("team", good[1..].to_vec())).unwrap();
    truncated.truncate(truncated.len() / 2);
    let mut trailing = good[1].clone();
    trailing.extend_from_slice(&good[2]);
    let mut flipped = good[1].clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    type Case<'a> = (&'a str, u16, Box<dyn Fn() -> (u16, Vec<u8>) + 'a>);
    let cases: Vec<Case> = vec![
        (
            "garbage",
            400,
            Box::new(|| server.post("/v1/sync", json, b"{{{ not json", Some(&token))),
        ),
        (
            "truncated",
            400,
            Box::new(|| server.post("/v1/sync", json, &truncated, Some(&token))),
        ),
        (
            "wrong type",
            415,
            Box::new(|| server.post("/v1/sync", "text/plain", b"{}", Some(&token))),
        ),
        (
            "oversize",
            413,
            Box::new(|| server.post("/v1/sync", json, &vec![b' '; 100 << 10], Some(&token))),
        ),
        (
            "no token",
            401,
            Box::new(|| server.post("/v1/sync", json, b"{\"cursor\":0}", None)),
        ),
        (
            "bad token",
            401,
            Box::new(|| server.post("/v1/sync", json, b"{\"cursor\":0}", Some("cairn_0000"))),
        ),
        (
            "undecodable",
            400,
            Box::new(|| {
                server.sync(
                    &token,
                    &push("team", vec![vec![0x85, 0x6f, 0x4a, 0x83, 9, 9, 9]]),
                )
            }),
        ),
        (
            "flipped byte",
            400,
            Box::new(|| server.sync(&token, &push("team", vec![flipped.clone()]))),
        ),
        (
            "two in one",
            400,
            Box::new(|| server.sync(&token, &push("team", vec![trailing.clone()]))),
        ),
        (
            "bad doc",
            400,
            Box::new(|| server.sync(&token, &push("../etc/passwd", good[1..2].to_vec()))),
        ),
        (
            // (Number 3 of its actor after number 1: the server lost what came between, as a
            // restored one does, and says so with `past_head`.)
            "missing dep",
            409,
            Box::new(|| server.sync(&token, &push("team", good[2..].to_vec()))),
        ),
        (
            // (Number 2 of an actor the journal holds nothing of: 409 `past_head`.)
            "wrong doc",
            409,
            Box::new(|| server.sync(&token, &push("j/ana/2026-11", good[1..2].to_vec()))),
        ),
        (
            "too many",
            413,
            Box::new(|| server.sync(&token, &push("team", vec![good[0].clone(); 21]))),
        ),
        (
            "cursor ahead",
            409,
            Box::new(|| {
                server.sync(
                    &token,
                    &SyncRequest {
                        cursor: 99,
                        ..push("team", vec![])
                    },
                )
            }),
        ),
        (
            "unknown route",
            404,
            Box::new(|| server.post("/v1/nothing", json, b"{}", Some(&token))),
        ),
        (
            "bad join",
            400,
            Box::new(|| server.post("/v1/join", json, b"{\"invite\": 3}", None)),
        ),
        (
            "bad invite",
            403,
            Box::new(|| {
                server.post(
                    "/v1/join",
                    json,
                    br#"{"invite":"x","device_name":"d"}"#,
                    None,
                )
            }),
        ),
    ];
    for (what, want, case) in &cases {
        let (status, body) = case();
        let want = *want;
        let err = refused(status, &body, want);
        assert!(!err.message.is_empty(), "{what}");
        assert_eq!(server.stored(), stored, "{what} stored something");
    }
    // A push with a bad change anywhere stores none of it.
    let mut mixed = push("team", good[1..2].to_vec());
    mixed.push.push(DocChanges {
        doc: "team".into(),
        changes: vec![Bytes(vec![1, 2, 3])],
    });
    let (status, body) = server.sync(&token, &mixed);
    refused(status, &body, 400);
    assert_eq!(server.stored(), stored);

    // And the server still serves.
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.get("/readyz").0, 200);
    let r = server.sync_ok(&token, &push("team", good[1..].to_vec()));
    assert_eq!((r.acked, r.head), (2, 3));
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("cairn_http_requests_total{route=\"sync\",status=\"4xx\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_changes_stored_total 3"),
        "{metrics}"
    );
}

#[test]
fn a_device_writes_only_as_itself_and_only_its_own_journals() {
    let (server, ana, invite) = founded(Limits::default());
    let ana_actor = ActorId::random();
    let team_changes = changes(&ana_actor, &["name"]);
    server.sync_ok(&ana, &push("team", team_changes.clone()));
    let done = SyncRequest {
        import_done: true,
        withdrawals: false,
        ..push("team", vec![])
    };
    server.sync_ok(&ana, &done);
    // After publishing, Ana's device writes only Ana's journals.
    let (status, body) = server.sync(
        &ana,
        &push("j/bo/2026-11", changes(&ActorId::random(), &["x"])),
    );
    refused(status, &body, 403);

    let bo = server.join(&JoinRequest {
        invite,
        device_name: "bo's phone".into(),
        name: Some("Bo".into()),
        claim: None,
        publish: None,
        ..JoinRequest::default()
    });
    let bo_token = bo.token.0.clone();
    let stored = server.stored();
    // A replay of Ana's change, or a new change in her journal: refused.
    let (status, body) = server.sync(&bo_token, &push("team", team_changes));
    assert!(
        refused(status, &body, 403)
            .message
            .contains("another device")
    );
    let ana_journal = format!("j/{}/2026-11", "ana");
    let (status, body) = server.sync(
        &bo_token,
        &push(&ana_journal, changes(&ActorId::random(), &["forged"])),
    );
    refused(status, &body, 403);
    assert_eq!(server.stored(), stored);
    // His own journal is fine; the pull brings Ana's team change, never his own back.
    let own = format!("j/{}/2026-11", bo.member_id);
    let r = server.sync_ok(
        &bo_token,
        &push(&own, changes(&ActorId::random(), &["mine"])),
    );
    assert_eq!(r.acked, 1);
    assert_eq!(r.pulled.len(), 1);
    assert_eq!(r.pulled[0].doc, "team");

    // One actor, the same sequence number, other content: a copied replica. Refused.
    let actor = ActorId::random();
    let first = changes(&actor, &["one"]);
    let fork = changes(&actor, &["other"]);
    server.sync_ok(&bo_token, &push(&own, first.clone()));
    let (status, body) = server.sync(&bo_token, &push(&own, fork));
    refused(status, &body, 409);
    // Sending the same change again is fine: stored once.
    let before = server.stored();
    let r = server.sync_ok(&bo_token, &push(&own, first));
    assert_eq!(r.acked, 1);
    assert_eq!(server.stored(), before);
}

#[test]
fn a_token_reaches_its_own_team_only() {
    let (server, ana, _) = founded(Limits::default());
    let secret = changes(&ActorId::random(), &["secret"]);
    server.sync_ok(&ana, &push("team", secret.clone()));

    let other = server.db.create_team("Badgers", 0).unwrap();
    let invite = server
        .db
        .create_invite(&other.id, 1, i64::MAX, 0, Whom::Founder)
        .unwrap();
    let zed = server.join(&JoinRequest {
        invite,
        device_name: "zed".into(),
        name: None,
        claim: None,
        publish: Some("zed".into()),
        ..JoinRequest::default()
    });
    let zed_token = zed.token.0;
    // Reading: Zed's pull never sees the Otters' log.
    let r = server.sync_ok(&zed_token, &push("team", vec![]));
    assert!(r.pulled.is_empty() && r.head == 0);
    // Writing: the Otters' changes cannot be pushed into the Badgers' log.
    let (status, body) = server.sync(&zed_token, &push("team", secret));
    refused(status, &body, 403);
    let badgers = server
        .db
        .teams()
        .unwrap()
        .into_iter()
        .find(|t| t.id == other.id);
    assert_eq!(badgers.unwrap().changes, 0);
    // A revoked token stops at once.
    let devices = server.db.devices(Some(&other.id)).unwrap();
    server.db.revoke(&devices[0].id, 1).unwrap();
    let (status, body) = server.sync(&zed_token, &push("team", vec![]));
    refused(status, &body, 401);
}

#[test]
fn pages_are_bounded_and_resume_from_the_cursor() {
    let limits = Limits {
        max_page_changes: 7,
        ..Limits::default()
    };
    let (server, ana, invite) = founded(limits);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    server.sync_ok(&ana, &push("team", changes(&ActorId::random(), &keys)));
    server.sync_ok(
        &ana,
        &SyncRequest {
            import_done: true,
            withdrawals: false,
            ..push("team", vec![])
        },
    );
    let bo = server.join(&JoinRequest {
        invite,
        device_name: "bo".into(),
        name: Some("Bo".into()),
        claim: None,
        publish: None,
        ..JoinRequest::default()
    });
    let mut cursor = 0;
    let mut seen = Vec::new();
    let mut requests = 0;
    loop {
        let r = server.sync_ok(
            &bo.token.0,
            &SyncRequest {
                cursor,
                ..push("team", vec![])
            },
        );
        requests += 1;
        assert!(r.pulled.len() <= 7);
        seen.extend(r.pulled.iter().map(|p| p.seq));
        cursor = r.cursor;
        if !r.more {
            break;
        }
    }
    assert_eq!(seen, (1..=30).collect::<Vec<u64>>());
    assert_eq!(requests, 5);
    assert_eq!(cursor, 30);
}

#[test]
fn changes_come_in_order_uncompressed_and_without_gaps() {
    let (server, ana, _) = founded(Limits::default());
    let actor = ActorId::random();
    let three = changes(&actor, &["a", "b", "c"]);
    // Number 2 before number 1: refused (409 `past_head`: what a restored server that lost
    // number 1 says). Number 1 then 3 (deps aside): refused too.
    let (status, body) = server.sync(&ana, &push("team", vec![three[1].clone()]));
    assert_eq!(refused(status, &body, 409).error, "past_head");
    server.sync_ok(&ana, &push("team", vec![three[0].clone()]));
    // A compressed change (automerge compresses big ones on request) is refused before decoding.
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::random());
    let mut tx = doc.transaction();
    tx.put(automerge::ROOT, "big", "x".repeat(4_000)).unwrap();
    tx.commit();
    let mut change = doc.get_changes(&[])[0].clone();
    let compressed = change.bytes().into_owned();
    assert_eq!(compressed[8], 2, "automerge compressed it");
    let before = server.stored();
    let (status, body) = server.sync(&ana, &push("team", vec![compressed]));
    assert!(refused(status, &body, 400).message.contains("uncompressed"));
    assert_eq!(server.stored(), before);
    // A wrong method gets a JSON error too.
    let mut resp = TestServer::agent()
        .get(format!("{}/v1/sync", server.url))
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    refused(status, &resp.body_mut().read_to_vec().unwrap(), 405);
}

#[test]
fn publishing_holds_joins_back_and_can_be_retried() {
    let server = TestServer::start(Limits::default());
    let team = server.db.create_team("Otters", 0).unwrap();
    let invite = server
        .db
        .create_invite(&team.id, 5, i64::MAX, 0, Whom::Anyone)
        .unwrap();
    let founders = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                server
                    .db
                    .create_invite(&team.id, 1, i64::MAX, 0, Whom::Founder)
                    .unwrap()
            })
            .collect()
    };
    let publish = |invite: &str, who: &str| JoinRequest {
        invite: invite.to_owned(),
        device_name: "laptop".into(),
        name: None,
        claim: None,
        publish: Some(who.into()),
        ..JoinRequest::default()
    };
    let newcomer = JoinRequest {
        invite: invite.clone(),
        device_name: "phone".into(),
        name: Some("Bo".into()),
        claim: None,
        publish: None,
        ..JoinRequest::default()
    };
    // A publication whose answer was lost gives way to a second attempt, with another
    // founder's invite (the first was spent).
    let codes = founders(3);
    let lost = server.join(&publish(&codes[0], "ana"));
    let body = serde_json::to_vec(&publish(&codes[0], "ana")).unwrap();
    let (status, resp) = server.post("/v1/join", "application/json", &body, None);
    refused(status, &resp, 403);
    let ana = server.join(&publish(&codes[1], "ana")).token.0;
    let (status, body) = server.sync(&lost.token.0, &push("team", vec![]));
    refused(status, &body, 401);
    // While Ana's history goes up, nobody else joins.
    server.sync_ok(&ana, &push("team", changes(&ActorId::random(), &["name"])));
    let body = serde_json::to_vec(&newcomer).unwrap();
    let (status, resp) = server.post("/v1/join", "application/json", &body, None);
    let held = refused(status, &resp, 409);
    assert_eq!(held.error, cairn_protocol::NO_HISTORY);
    assert!(
        held.message.contains("being started by its founder"),
        "{held:?}"
    );
    server.sync_ok(
        &ana,
        &SyncRequest {
            import_done: true,
            withdrawals: false,
            ..push("team", vec![])
        },
    );
    let bo = server.join(&newcomer);
    // Once it has history, nobody publishes over it: not with a general invite, nor with a
    // founder's invite left over.
    let body = serde_json::to_vec(&publish(&invite, "mallory")).unwrap();
    let (status, resp) = server.post("/v1/join", "application/json", &body, None);
    refused(status, &resp, 409);
    let body = serde_json::to_vec(&publish(&codes[2], "mallory")).unwrap();
    let (status, resp) = server.post("/v1/join", "application/json", &body, None);
    assert!(
        refused(status, &resp, 403)
            .message
            .contains("has its history already")
    );
    // And no new founder's invite is made for it.
    let made = server
        .db
        .create_invite(&team.id, 1, i64::MAX, 0, Whom::Founder);
    assert!(
        matches!(&made, Err(cairn_server::Error::Conflict(m)) if m.contains("history already")),
        "{made:?}"
    );

    // A link code dies with the device that made it.
    let (status, resp) = server.post("/v1/link", "application/json", b"{}", Some(&bo.token.0));
    assert_eq!(status, 200);
    let link: cairn_protocol::LinkResponse = serde_json::from_slice(&resp).unwrap();
    server.db.revoke(&bo.device_id, 1).unwrap();
    let second = JoinRequest {
        invite: link.invite,
        device_name: "bo's tablet".into(),
        name: None,
        claim: None,
        publish: None,
        ..JoinRequest::default()
    };
    let body = serde_json::to_vec(&second).unwrap();
    let (status, resp) = server.post("/v1/join", "application/json", &body, None);
    refused(status, &resp, 403);
}

#[test]
fn only_the_founders_invite_brings_the_first_history() {
    let server = TestServer::start(Limits::default());
    let team = server.db.create_team("Guild", 0).unwrap();
    let general = server
        .db
        .create_invite(&team.id, 5, i64::MAX, 0, Whom::Anyone)
        .unwrap();
    let post = |req: &JoinRequest| {
        let body = serde_json::to_vec(req).unwrap();
        server.post("/v1/join", "application/json", &body, None)
    };
    // A general invite neither publishes nor starts the team, and says which invite would.
    let publish = JoinRequest {
        invite: general.clone(),
        device_name: "laptop".into(),
        publish: Some("mallory".into()),
        team_name: Some("Mallory's".into()),
        ..JoinRequest::default()
    };
    let (status, body) = post(&publish);
    let no = refused(status, &body, 403);
    assert_eq!(no.error, cairn_protocol::NOT_FOUNDER);
    assert!(
        no.message
            .contains(&format!("invite create --team {} --founder", team.id)),
        "{no:?}"
    );
    let joiner = JoinRequest {
        invite: general.clone(),
        device_name: "phone".into(),
        name: Some("Bo".into()),
        found: true,
        ..JoinRequest::default()
    };
    let (status, body) = post(&joiner);
    let no = refused(status, &body, 409);
    assert_eq!(no.error, cairn_protocol::NO_HISTORY);
    assert!(
        no.message.contains("team `Guild` has no history yet"),
        "{no:?}"
    );
    // A founder's invite is for one device.
    assert!(
        server
            .db
            .create_invite(&team.id, 2, i64::MAX, 0, Whom::Founder)
            .is_err()
    );
    // An older client, which cannot write the team's first document, is not let in with it.
    let founder = server
        .db
        .create_invite(&team.id, 1, i64::MAX, 0, Whom::Founder)
        .unwrap();
    let old = JoinRequest {
        invite: founder.clone(),
        device_name: "ana's laptop".into(),
        name: Some("Ana".into()),
        ..JoinRequest::default()
    };
    let (status, body) = post(&old);
    assert!(refused(status, &body, 400).message.contains("too old"));
    // A new one founds the team: the answer names it and says so.
    let ana = server.join(&JoinRequest { found: true, ..old });
    assert!(ana.founder);
    assert_eq!(ana.team_name.as_deref(), Some("Guild"));
    // A joiner's answer names the team too, and is no founder's.
    server.sync_ok(
        &ana.token.0,
        &SyncRequest {
            import_done: true,
            ..push("team", changes(&ActorId::random(), &["name"]))
        },
    );
    let bo = server.join(&joiner);
    assert!(!bo.founder);
    assert_eq!(bo.team_name.as_deref(), Some("Guild"));
}

#[test]
fn a_publication_gives_the_server_the_teams_own_name() {
    let server = TestServer::start(Limits::default());
    let team = server.db.create_team("Guild", 0).unwrap();
    let founder = server
        .db
        .create_invite(&team.id, 1, i64::MAX, 0, Whom::Founder)
        .unwrap();
    let ana = server.join(&JoinRequest {
        invite: founder,
        device_name: "laptop".into(),
        publish: Some("ana".into()),
        team_name: Some("  Guild of Rustaceans ".into()),
        ..JoinRequest::default()
    });
    assert!(ana.founder);
    assert_eq!(ana.team_name.as_deref(), Some("Guild"), "what it was");
    let teams = server.db.teams().unwrap();
    assert_eq!(teams[0].name, "Guild of Rustaceans");
}

/// Sends raw bytes as one HTTP/1.1 request; returns the response's head (lowercased) and body.
fn raw_post(server: &TestServer, headers: &[(&str, &str)], body: &[u8]) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
    let mut body = out[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        // Each chunk: its length in hex, CRLF, the bytes, CRLF; a zero length ends.
        let (mut rest, mut plain) = (&body[..], Vec::new());
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let len =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
            if len == 0 {
                break;
            }
            plain.extend_from_slice(&rest[eol + 2..eol + 2 + len]);
            rest = &rest[eol + 4 + len..];
        }
        body = plain;
    }
    (head, body)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn pages_go_out_gzipped_to_clients_that_ask_and_gzipped_pushes_come_in() {
    let (server, ana, invite) = founded(Limits::default());
    let keys: Vec<String> = (0..200).map(|i| format!("key {i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    // Ana's push, gzipped.
    let body = serde_json::to_vec(&SyncRequest {
        import_done: true,
        ..push("team", changes(&ActorId::random(), &keys))
    })
    .unwrap();
    let auth = format!("Bearer {ana}");
    let (head, _) = raw_post(
        &server,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(&body),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let bo = server
        .join(&JoinRequest {
            invite,
            device_name: "bo's phone".into(),
            name: Some("Bo".into()),
            claim: None,
            publish: None,
            ..JoinRequest::default()
        })
        .token
        .0;
    // Bo's pull of it, gzipped because he asks.
    let pull = serde_json::to_vec(&push("team", vec![])).unwrap();
    let auth = format!("Bearer {bo}");
    let (head, gzipped) = raw_post(
        &server,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Accept-Encoding", "gzip"),
        ],
        &pull,
    );
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut plain)
        .unwrap();
    let resp: SyncResponse = serde_json::from_slice(&plain).unwrap();
    assert_eq!(resp.pulled.len(), 200);
    assert!(
        gzipped.len() * 2 < plain.len(),
        "{} of {}",
        gzipped.len(),
        plain.len()
    );
}

#[test]
fn a_gzip_bomb_inflates_no_further_than_the_body_limit() {
    let (server, ana, _) = founded(Limits::default());
    // 64 MiB of zeros in 64 KiB: inflated, eight times the body limit.
    let bomb = gzip(&vec![b' '; 64 << 20]);
    assert!(bomb.len() < 100 << 10, "{}", bomb.len());
    let auth = format!("Bearer {ana}");
    let started = std::time::Instant::now();
    let (head, body) = raw_post(
        &server,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &bomb,
    );
    assert!(head.starts_with("http/1.1 413"), "{head}");
    refused(413, &body, 413);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A gzip it cannot read is refused as such.
    let (head, _) = raw_post(
        &server,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        b"not gzip at all",
    );
    assert!(head.starts_with("http/1.1 400"), "{head}");
}

/// The server's `cairn_request_body_bytes_total`: bytes of request bodies it read, inflated.
fn body_bytes_read(server: &TestServer) -> Option<u64> {
    let (_, metrics) = server.get("/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("cairn_request_body_bytes_total "))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn a_gzip_bomb_is_refused_before_the_rest_of_it_comes() {
    use std::io::{Read, Write};
    let (server, ana, _) = founded(Limits {
        body_timeout: std::time::Duration::from_secs(120),
        ..Limits::default()
    });
    // Issue 25, finding 4: 8 MiB of JSON with 2.8 million empty changes, gzipped to a few
    // kilobytes. Its headers announce all of it; only its first quarter is sent, and the
    // connection stays open.
    let json = format!(
        "{{\"cursor\":0,\"push\":[{{\"doc\":\"team\",\"changes\":[{}\"\"]}}]}}",
        "\"\",".repeat((8 << 20) / 3)
    );
    let bomb = gzip(json.as_bytes());
    let before = body_bytes_read(&server).unwrap_or(0);
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ana}\r\n\
         Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bomb[..bomb.len() / 4]).unwrap();
    // The answer comes without the rest: the server stopped at what its caps allow.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer before the rest of the body came: {e}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // What it read of the 8 MiB: the first items past the cap, a chunk of inflation more.
    let read = body_bytes_read(&server).expect("bytes read are counted") - before;
    assert!(
        read < 512 << 10,
        "the server inflated {read} bytes of the bomb"
    );
    // Ana's next honest sync goes through.
    let r = server.sync_ok(&ana, &push("team", changes(&ActorId::random(), &["a"])));
    assert_eq!(r.acked, 1);
}

#[test]
fn a_members_devices_share_one_sync_budget() {
    let (server, ana, invite) = founded(Limits {
        sync: cairn_server::Rate::new(3, std::time::Duration::from_secs(3600)),
        ..Limits::default()
    });
    let first = SyncRequest {
        import_done: true,
        ..push("team", changes(&ActorId::random(), &["a"]))
    };
    server.sync_ok(&ana, &first);
    // A second device of Ana's, by a link code.
    let (status, body) = server.post("/v1/link", "application/json", b"", Some(&ana));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let code: cairn_protocol::LinkResponse = serde_json::from_slice(&body).unwrap();
    let phone = server
        .join(&JoinRequest {
            invite: code.invite,
            device_name: "ana's phone".into(),
            ..JoinRequest::default()
        })
        .token
        .0;
    let bo = server
        .join(&JoinRequest {
            invite,
            device_name: "bo's laptop".into(),
            name: Some("Bo".into()),
            ..JoinRequest::default()
        })
        .token
        .0;
    // Ana's laptop syncs once more, her phone once: her three are spent, whichever device.
    server.sync_ok(&ana, &push("team", vec![]));
    server.sync_ok(&phone, &push("team", vec![]));
    let (status, body) = server.sync(&phone, &push("team", vec![]));
    let err = refused(status, &body, 429);
    assert!(err.message.contains("member"), "{}", err.message);
    let (status, body) = server.sync(&ana, &push("team", vec![]));
    refused(status, &body, 429);
    // Bo's budget is his own.
    for _ in 0..3 {
        server.sync_ok(&bo, &push("team", vec![]));
    }
}
