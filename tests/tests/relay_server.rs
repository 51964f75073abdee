//! The server's side of a relay, end to end: a real `cairn-server` process spoken to with raw
//! HTTP as `cairn-relay` would, beside real `cairn` members. A relay joins with an invite made
//! for one, pulls what members wrote, is refused every write and appears in no member list; any
//! device waits for news, answered within a second of a push, bounded per device and in all, and
//! ended at once when the server stops. On SQLite and PostgreSQL, and from a database of the
//! version before relays.

use std::io::Write as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use automerge::{ActorId, Automerge, transaction::Transactable};
use cairn_e2e::pg::Postgres;
use cairn_e2e::{Home, Server, feed, http};
use cairn_protocol::{
    Bytes, DeviceKind, DocChanges, ErrorBody, JoinRequest, JoinResponse, READ_ONLY, SyncRequest,
    SyncResponse, WRONG_KIND, WaitResponse,
};

/// A team on `server` founded by Ana with Bo joined, both synced; returns its id.
fn team_of_two(server: &Server) -> (String, Home, Home) {
    let team = server.team("Otters");
    let ana = Home::new();
    ana.run(&[
        "join",
        &server.url,
        "--invite",
        &server.founder(&team),
        "--name",
        "Ana",
    ])
    .ok();
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    ana.run(&["sync"]).ok();
    let bo = Home::joined(server, &server.invite(&team, 5), &["--name", "Bo"]);
    ana.run(&["sync"]).ok();
    (team, ana, bo)
}

/// A relay's invite to `team`, as the admin makes it.
fn relay_invite(server: &Server, team: &str) -> String {
    server
        .admin(&["invite", "create", "--team", team, "--relay"])
        .ok()
        .trim()
        .to_owned()
}

/// Joins a relay with `invite`, as `cairn-relay` does.
fn join_relay(server: &Server, invite: &str) -> JoinResponse {
    let req = JoinRequest {
        invite: invite.into(),
        device_name: "chat relay".into(),
        device_kind: DeviceKind::Relay,
        ..JoinRequest::default()
    };
    let (status, body) = http::post(
        &server.url,
        "/v1/join",
        None,
        &serde_json::to_vec(&req).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("a join response")
}

fn sync(server: &Server, token: &str, req: &SyncRequest) -> (u16, String) {
    http::post(
        &server.url,
        "/v1/sync",
        Some(token),
        &serde_json::to_vec(req).unwrap(),
    )
}

/// Everything after `cursor`, page after page; returns the last response and the changes.
fn pull(server: &Server, token: &str, mut cursor: u64) -> (SyncResponse, usize) {
    let mut pulled = 0;
    loop {
        let (status, body) = sync(
            server,
            token,
            &SyncRequest {
                cursor,
                ..SyncRequest::default()
            },
        );
        assert_eq!(status, 200, "{body}");
        let resp: SyncResponse = serde_json::from_str(&body).unwrap();
        pulled += resp.pulled.len();
        cursor = resp.cursor;
        if !resp.more {
            return (resp, pulled);
        }
    }
}

#[track_caller]
fn refused(status: u16, body: &str, want: u16) -> ErrorBody {
    assert_eq!(status, want, "{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not an error body ({e}): {body}"))
}

/// One automerge change by a fresh actor.
fn a_change() -> Vec<u8> {
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::random());
    let mut tx = doc.transaction();
    tx.put(automerge::ROOT, "name", "Taken over").unwrap();
    tx.commit();
    doc.get_changes(&[])[0].raw_bytes().to_vec()
}

/// What a wait answered: its status, `Retry-After`, body, and when it came.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
    at: Instant,
}

/// `GET /v1/wait?QUERY` with `token`; `None` when the connection failed (a server gone).
fn wait(url: &str, token: &str, query: &str) -> Option<Answer> {
    let resp = http::agent()
        .get(format!("{url}/v1/wait?{query}"))
        .header("Authorization", format!("Bearer {token}"))
        .call();
    let at = Instant::now();
    let mut resp = resp.ok()?;
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Some(Answer {
        status: resp.status().as_u16(),
        retry_after,
        body: resp.body_mut().read_to_string().unwrap_or_default(),
        at,
    })
}

/// A wait begun in a thread of its own; its answer comes on the channel.
fn wait_in_background(server: &Server, token: &str, query: &str) -> mpsc::Receiver<Option<Answer>> {
    let (tx, rx) = mpsc::channel();
    let (url, token, query) = (server.url.clone(), token.to_owned(), query.to_owned());
    std::thread::spawn(move || {
        let _ = tx.send(wait(&url, &token, &query));
    });
    rx
}

/// A value of the server's metrics, 0 when absent.
fn metric(server: &Server, name: &str) -> u64 {
    let (_, text) = http::get(&server.url, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Returns once the server says `n` waits are pending (they are then parked on the server, not
/// on their way), failing after 10 s.
#[track_caller]
fn until_waiting(server: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = metric(server, "cairn_waiting");
        if now == n {
            return;
        }
        assert!(Instant::now() < deadline, "{now} waits pending, not {n}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn members(home: &Home) -> serde_json::Value {
    home.run(&["team", "--json"]).json()["members"].clone()
}

/// The relay's whole story on one server: joins, pulls, is refused every write, is no member,
/// shows as a relay, waits for news, and is revoked.
fn a_relay_reads_waits_and_never_writes(server: &Server) {
    let (team, ana, bo) = team_of_two(server);
    let before = members(&ana);
    assert_eq!(before.as_array().map(Vec::len), Some(2), "{before}");
    let invite = relay_invite(server, &team);

    // `cairn join` with a relay's invite is refused, saying what it is for; its use is not spent.
    let cy = Home::new();
    let err = cy
        .run(&["join", &server.url, "--invite", &invite, "--name", "Cy"])
        .fails();
    assert!(err.contains("cairn-relay"), "{err}");
    // A relay with a member's invite is refused too.
    let req = JoinRequest {
        invite: server.invite(&team, 1),
        device_name: "chat relay".into(),
        device_kind: DeviceKind::Relay,
        ..JoinRequest::default()
    };
    let (status, body) = http::post(
        &server.url,
        "/v1/join",
        None,
        &serde_json::to_vec(&req).unwrap(),
    );
    let e = refused(status, &body, 403);
    assert_eq!(e.error, WRONG_KIND, "{body}");
    assert!(e.message.contains("--relay"), "{body}");

    // The relay joins as no member and pulls everything members wrote.
    let relay = join_relay(server, &invite);
    assert_eq!(relay.device_kind, DeviceKind::Relay);
    assert_eq!(relay.member_id, "");
    let token = relay.token.0.clone();
    let stored = server.changes(&team);
    let (pulled, count) = pull(server, &token, 0);
    assert_eq!(count as i64, stored, "every change members wrote");
    assert_eq!(pulled.cursor, pulled.head);
    let head = pulled.head;
    // A relay far behind catches up from whole documents, as a member's new device does.
    let mut req = SyncRequest {
        snapshots: true,
        withdrawals: true,
        ..SyncRequest::default()
    };
    let mut docs = Vec::new();
    loop {
        let (status, body) = sync(server, &token, &req);
        assert_eq!(status, 200, "{body}");
        let resp: SyncResponse = serde_json::from_str(&body).unwrap();
        docs.extend(resp.docs.into_iter().map(|d| d.doc));
        match resp.catch_up {
            Some(c) => req.catch_up = Some(c),
            None => {
                assert_eq!(resp.cursor, head);
                break;
            }
        }
    }
    assert!(docs.iter().any(|d| d == "team"), "{docs:?}");
    assert!(docs.iter().any(|d| d.starts_with("j/")), "{docs:?}");

    // Every write is refused with read_only, and nothing is stored.
    for doc in ["team", &format!("j/{}/2026-11", ana.meta("me"))] {
        let (status, body) = http::push(&server.url, &token, doc, vec![a_change()]);
        let e = refused(status, &body, 403);
        assert_eq!(e.error, READ_ONLY, "{body}");
        assert!(e.message.contains("relay"), "{body}");
    }
    // A push among a pull: refused whole, nothing pulled either.
    let (status, body) = sync(
        server,
        &token,
        &SyncRequest {
            cursor: head,
            push: vec![DocChanges {
                doc: "team".into(),
                changes: vec![Bytes(a_change())],
            }],
            ..SyncRequest::default()
        },
    );
    assert_eq!(refused(status, &body, 403).error, READ_ONLY);
    let (status, body) = http::post(&server.url, "/v1/link", Some(&token), b"");
    assert_eq!(refused(status, &body, 403).error, READ_ONLY);
    assert_eq!(
        server.changes(&team),
        stored,
        "nothing of the relay's stored"
    );

    // It is in no member list: members see the same team after syncing.
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    assert_eq!(members(&ana), before);
    assert_eq!(members(&bo), before);
    // The admin sees it as a relay.
    let devices = server
        .admin(&["device", "list", "--team", &team, "--json"])
        .json();
    let listed: Vec<&serde_json::Value> = devices
        .as_array()
        .expect("devices")
        .iter()
        .filter(|d| d["id"] == relay.device_id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{devices}");
    assert_eq!(listed[0]["relay"], true, "{devices}");
    assert!(listed[0]["handle"].is_null(), "{devices}");
    let table = server.admin(&["device", "list", "--team", &team]).ok();
    let row = table
        .lines()
        .find(|l| l.starts_with(&relay.device_id))
        .expect("the relay's row");
    assert!(row.contains("(relay)"), "{table}");
    let invites = server.admin(&["invite", "list", "--team", &team]).ok();
    assert!(
        !invites.contains("a-relay"),
        "its one use is spent: {invites}"
    );

    // A wait answers within a second of a member's sync that pushes.
    let pending = wait_in_background(server, &token, &format!("after={head}&timeout_s=30"));
    until_waiting(server, 1);
    bo.run(&["log", "Paired on the flaky test"]).ok();
    bo.run(&["sync"]).ok();
    let synced = Instant::now();
    let got = pending
        .recv_timeout(Duration::from_secs(10))
        .expect("the wait answers")
        .expect("over HTTP");
    assert_eq!(got.status, 200, "{}", got.body);
    let news: WaitResponse = serde_json::from_str(&got.body).unwrap();
    assert!(news.head > head, "{news:?} after {head}");
    let late = got.at.saturating_duration_since(synced);
    assert!(
        late < Duration::from_secs(1),
        "answered {late:?} after the sync"
    );
    // What the wait announced, the relay pulls.
    let (pulled, count) = pull(server, &token, head);
    assert_eq!(pulled.head, news.head);
    assert!(count > 0);
    let head = pulled.head;

    // Behind already: answered at once. Idle: nothing, after the time asked for.
    let now = wait(&server.url, &token, "after=0&timeout_s=30").expect("an answer");
    assert_eq!(now.status, 200, "{}", now.body);
    let asked = Instant::now();
    let idle = wait(&server.url, &token, &format!("after={head}&timeout_s=1")).expect("an answer");
    let took = idle.at - asked;
    assert_eq!(idle.status, 204, "{}", idle.body);
    assert!(idle.body.is_empty(), "{}", idle.body);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A member's device waits too, with its own token.
    let (status, body) = {
        let a = wait(&server.url, &ana.meta("token"), "after=0&timeout_s=1").expect("an answer");
        (a.status, a.body)
    };
    assert_eq!(status, 200, "{body}");
    assert!(metric(server, "cairn_waits_total{outcome=\"news\"}") >= 2);
    assert!(metric(server, "cairn_waits_total{outcome=\"timeout\"}") >= 1);

    // Revoked, the relay is refused like any device.
    server.admin(&["device", "revoke", &relay.device_id]).ok();
    let (status, body) = sync(server, &token, &SyncRequest::default());
    assert_eq!(status, 401, "{body}");
    assert_eq!(members(&ana), before);
}

/// Waits are capped per device and in all (503 and Retry-After past either), every pending one
/// answers when news comes, and a server stopping with one pending stops at once.
fn waits_are_bounded_and_end_with_the_server(mut server: Server) {
    let (team, ana, bo) = team_of_two(&server);
    let relay = join_relay(&server, &relay_invite(&server, &team));
    let token = relay.token.0.clone();
    let (pulled, _) = pull(&server, &token, 0);
    let head = pulled.head;
    let query = format!("after={head}&timeout_s=30");
    let first = wait_in_background(&server, &token, &query);
    let second = wait_in_background(&server, &token, &query);
    until_waiting(&server, 2);
    // A third of the same device: refused.
    let third = wait(&server.url, &token, &query).expect("an answer");
    let e = refused(third.status, &third.body, 503);
    assert!(e.message.contains("this device"), "{e:?}");
    assert!(third.retry_after.is_some(), "{third:?}");
    // Ana's device takes the last place of three; Bo's finds none.
    let anas = wait_in_background(&server, &ana.meta("token"), &query);
    until_waiting(&server, 3);
    let bos = wait(&server.url, &bo.meta("token"), &query).expect("an answer");
    let e = refused(bos.status, &bos.body, 503);
    assert!(e.message.contains("too many waits"), "{e:?}");
    assert!(bos.retry_after.is_some(), "{bos:?}");
    // News: all three answer.
    ana.run(&["kudos", "@bo", "Thanks for the calm incident call"])
        .ok();
    ana.run(&["sync"]).ok();
    for pending in [first, second, anas] {
        let got = pending
            .recv_timeout(Duration::from_secs(10))
            .expect("the wait answers")
            .expect("over HTTP");
        assert_eq!(got.status, 200, "{}", got.body);
    }
    until_waiting(&server, 0);
    let (pulled, _) = pull(&server, &token, head);
    let head = pulled.head;

    // A client that hangs up mid-wait gives its place back (at the latest when its time is up).
    let mut stream = http::connect(server.addr(), Duration::from_secs(10));
    stream
        .write_all(
            format!(
                "GET /v1/wait?after={head}&timeout_s=2 HTTP/1.1\r\nhost: cairn\r\n\
                 authorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("the server takes the request");
    until_waiting(&server, 1);
    drop(stream);
    until_waiting(&server, 0);

    // A server told to stop with a wait pending stops at once, answering it.
    let pending = wait_in_background(&server, &token, &format!("after={head}&timeout_s=60"));
    until_waiting(&server, 1);
    let stopping = Instant::now();
    assert!(server.terminate(), "the server exits cleanly");
    let stopped = stopping.elapsed();
    assert!(
        stopped < Duration::from_secs(5),
        "stopped after {stopped:?}"
    );
    let answer = pending
        .recv_timeout(Duration::from_secs(5))
        .expect("the wait ends with the server");
    if let Some(a) = answer {
        assert_eq!(refused(a.status, &a.body, 503).error, "busy");
    }
}

/// A device a few changes behind catches up from whole documents.
const CATCH_UP: &[&str] = &["--catch-up-after", "2"];

#[test]
fn a_relay_reads_waits_and_never_writes_on_sqlite() {
    a_relay_reads_waits_and_never_writes(&Server::start_with(CATCH_UP));
}

#[test]
fn waits_are_bounded_and_end_with_the_server_on_sqlite() {
    waits_are_bounded_and_end_with_the_server(Server::start_with(&["--max-waiters", "3"]));
}

#[test]
fn relays_and_waits_on_postgres_and_news_from_another_instance() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    a_relay_reads_waits_and_never_writes(&Server::start_shared(&pg.create_db("relay"), CATCH_UP));
    waits_are_bounded_and_end_with_the_server(Server::start_shared(
        &pg.create_db("waits"),
        &["--max-waiters", "3"],
    ));

    // Two instances: a relay waits on one, Bo pushes through the other. The first hears of it
    // from its read of the head (every second here), not from a signal of its own.
    let url = pg.create_db("instances");
    let a = Server::start_shared(&url, &["--wait-poll", "1s"]);
    let b = Server::start_shared(&url, &[]);
    let (team, _ana, bo) = team_of_two(&a);
    let relay = join_relay(&a, &relay_invite(&a, &team));
    let (pulled, _) = pull(&a, &relay.token.0, 0);
    let pending = wait_in_background(
        &a,
        &relay.token.0,
        &format!("after={}&timeout_s=30", pulled.head),
    );
    until_waiting(&a, 1);
    let conn = rusqlite::Connection::open(bo.replica()).expect("the replica opens");
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'server_url'",
        [&b.url],
    )
    .expect("Bo reaches the other instance");
    bo.run(&["log", "Picked up the broken build"]).ok();
    bo.run(&["sync"]).ok();
    let synced = Instant::now();
    let got = pending
        .recv_timeout(Duration::from_secs(10))
        .expect("the wait answers")
        .expect("over HTTP");
    assert_eq!(got.status, 200, "{}", got.body);
    let late = got.at.saturating_duration_since(synced);
    assert!(
        late < Duration::from_secs(3),
        "answered {late:?} after the sync"
    );
}

/// Takes a server's database back to the version before relays: their columns gone (and the
/// organisations and the logs' identity that came after them), the schema numbers SQLite's 6
/// and PostgreSQL's 4.
fn before_relays(server: &Server, pg: Option<&Postgres>) {
    let sql = "DROP TABLE server_log; DROP TABLE org_stewards; DROP TABLE org_teams; \
               DROP TABLE orgs; ALTER TABLE invites DROP COLUMN relay; \
               ALTER TABLE devices DROP COLUMN relay;";
    server.back_to_schema(pg, sql, (9, 7), (6, 4));
}

/// A database from before relays migrates: its members go on syncing, and a relay joins.
fn an_older_database_migrates(mut server: Server, pg: Option<&Postgres>) {
    let (team, ana, bo) = team_of_two(&server);
    server.kill();
    before_relays(&server, pg);
    server.restart();
    ana.run(&["log", "Reviewed the runbook"]).ok();
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    assert_eq!(feed(&bo, &[]).len(), 2, "both of Ana's events");
    let devices = server
        .admin(&["device", "list", "--team", &team, "--json"])
        .json();
    assert!(
        devices
            .as_array()
            .expect("devices")
            .iter()
            .all(|d| d["relay"] == false),
        "{devices}"
    );
    let relay = join_relay(&server, &relay_invite(&server, &team));
    let (_, count) = pull(&server, &relay.token.0, 0);
    assert_eq!(count as i64, server.changes(&team));
    assert_eq!(members(&ana).as_array().map(Vec::len), Some(2));
}

#[test]
fn a_database_from_before_relays_migrates_on_sqlite() {
    an_older_database_migrates(Server::start(), None);
}

#[test]
fn a_database_from_before_relays_migrates_on_postgres() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("older");
    an_older_database_migrates(Server::start_shared(&url, &[]), Some(&pg));
}

#[test]
fn a_relay_stays_a_relay_through_a_copy_to_postgres() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let mut sqlite = Server::start();
    let (team, _ana, _bo) = team_of_two(&sqlite);
    let relay = join_relay(&sqlite, &relay_invite(&sqlite, &team));
    let spare = relay_invite(&sqlite, &team);
    sqlite.kill();
    let url = pg.create_db("copied");
    sqlite.admin(&["copy", "--to", &url]).ok();
    let server = Server::start_shared(&url, &[]);
    // Its token works, it still may not write, and its spare invite is still a relay's.
    let (_, count) = pull(&server, &relay.token.0, 0);
    assert_eq!(count as i64, server.changes(&team));
    let (status, body) = http::push(&server.url, &relay.token.0, "team", vec![a_change()]);
    assert_eq!(refused(status, &body, 403).error, READ_ONLY);
    let err = Home::new()
        .run(&["join", &server.url, "--invite", &spare, "--name", "Cy"])
        .fails();
    assert!(err.contains("cairn-relay"), "{err}");
    assert_eq!(join_relay(&server, &spare).device_kind, DeviceKind::Relay);
}
