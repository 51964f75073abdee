//! The sync client's public face against a real `cairn-server` process on `127.0.0.1:0`:
//! joining (a founder, a member), syncing both ways, and a device refused for good.
//!
//! (The server is the binary cargo built next to these tests: `cargo build -p cairn-server`.)

use std::path::Path;

use cairn_client::sync::{self, Client, Error, Join, Options, Step, TIMEOUT, Unreachable};
use cairn_e2e::Server;
use cairn_protocol::JoinRequest;

/// 2026-11-23T09:30:00Z.
const NOW: i64 = 1_795_426_200_000;

fn request(invite: &str, name: &str) -> JoinRequest {
    JoinRequest {
        invite: invite.to_owned(),
        device_name: "a test device".into(),
        name: Some(name.to_owned()),
        found: true,
        ..JoinRequest::default()
    }
}

fn with(invite: &str, name: &str, founder_tz: &str) -> Join {
    Join {
        request: request(invite, name),
        handle: None,
        founder_tz: founder_tz.to_owned(),
    }
}

fn join(server: &Server, invite: &str, name: &str, dir: &Path) -> sync::Joined {
    let client = Client::new(&server.url, None, TIMEOUT);
    sync::join(
        &client,
        &with(invite, name, "Europe/Paris"),
        &dir.join("replica.sqlite3"),
        NOW,
        Options::ASKED,
        &mut |_| {},
    )
    .expect("the join goes through")
}

#[test]
fn a_founder_and_a_member_join_and_see_each_other_after_a_sync() {
    let server = Server::start();
    let team = server.team("Otters");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let mut ana = join(&server, &server.founder(&team), "Ana", a.path());
    assert_eq!(ana.founded.as_deref(), Some("Europe/Paris"));
    assert!(ana.response.founder);
    assert!(
        ana.report.sent > 0,
        "the founding went up: {:?}",
        ana.report
    );
    let state = ana.replica.team().unwrap();
    assert_eq!(state.name, "Otters");
    assert_eq!(state.tz, "Europe/Paris");
    assert_eq!(state.handle_of(&ana.response.member_id), "ana");

    let ben = join(&server, &server.invite(&team, 1), "Ben Okafor", b.path());
    assert_eq!(ben.founded, None);
    assert!(
        ben.report.received > 0,
        "the team came down: {:?}",
        ben.report
    );
    // The newcomer added themselves to the team document, and sent it.
    let state = ben.replica.team().unwrap();
    assert_eq!(state.handle_of(&ben.response.member_id), "ben-okafor");
    assert_eq!(ben.replica.outbox_size().unwrap().0, 0);

    // Ana's next sync brings Ben; each request is told before it is recorded.
    let client = sync::client_for(&ana.replica, TIMEOUT).unwrap();
    let mut answered = Vec::new();
    let report = sync::sync_once(&mut ana.replica, &client, NOW, Options::ASKED, &mut |s| {
        if let Step::Answered { request } = s {
            answered.push(request);
        }
    })
    .unwrap();
    assert!(report.received > 0, "{report:?}");
    assert_eq!(answered, (1..=report.requests).collect::<Vec<_>>());
    let state = ana.replica.team().unwrap();
    assert_eq!(state.handle_of(&ben.response.member_id), "ben-okafor");

    // Level: a sync with nothing new is one request that moves nothing.
    let again =
        sync::sync_once(&mut ana.replica, &client, NOW, Options::ASKED, &mut |_| {}).unwrap();
    assert_eq!((again.requests, again.sent, again.received), (1, 0, 0));
}

#[test]
fn a_revoked_device_is_refused_for_good_and_what_is_remembered_is_told_once() {
    let server = Server::start();
    let team = server.team("Otters");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _ana = join(&server, &server.founder(&team), "Ana", a.path());
    let mut ben = join(&server, &server.invite(&team, 1), "Ben", b.path());

    server
        .admin(&["device", "revoke", &ben.response.device_id])
        .ok();
    let client = sync::client_for(&ben.replica, TIMEOUT).unwrap();
    let err = sync::sync_once(&mut ben.replica, &client, NOW, Options::ASKED, &mut |_| {})
        .expect_err("a revoked device's sync is refused");
    assert_eq!(err.refusal().map(|r| r.status), Some(401), "{err}");
    assert!(err.is_for_good());

    // What a client remembers is told once.
    let problem = sync::problem::Problem {
        message: err.to_string(),
        hint: None,
        at_ms: NOW,
    };
    sync::problem::remember(&mut ben.replica, &problem);
    assert_eq!(
        sync::problem::problem(&ben.replica).unwrap(),
        Some(problem.clone())
    );
    assert_eq!(sync::problem::tell_once(&mut ben.replica), Some(problem));
    assert_eq!(sync::problem::tell_once(&mut ben.replica), None);
}

#[test]
fn a_server_that_is_not_there_is_unreachable_and_nothing_is_written() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None, TIMEOUT);
    let path = dir.path().join("replica.sqlite3");
    let err = sync::join(
        &client,
        &with("CODE", "Ana", "UTC"),
        &path,
        NOW,
        Options::ASKED,
        &mut |_| {},
    )
    .expect_err("nothing listens there");
    assert!(
        matches!(
            err,
            Error::Unreachable {
                why: Unreachable::NotListening,
                device: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!path.exists());
}

#[test]
fn a_refused_invite_says_the_servers_code() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(&server.url, None, TIMEOUT);
    let err =
        sync::register(&client, &request("NOT-AN-INVITE", "Ana")).expect_err("no such invite");
    let refusal = err.refusal().expect("a refusal");
    assert!((400..500).contains(&refusal.status), "{err}");
    assert!(
        refusal.code().is_some(),
        "a cairn-server's body: {refusal:?}"
    );
    assert!(!dir.path().join("replica.sqlite3").exists());
}

#[test]
fn a_write_goes_up_with_the_next_sync_and_a_pull_only_sync_sends_nothing() {
    use cairn_client::write::{Clock, Writer};
    let server = Server::start();
    let team = server.team("Otters");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ana = join(&server, &server.founder(&team), "Ana", a.path());
    let mut ben = join(&server, &server.invite(&team, 1), "Ben", b.path());
    let clock = Clock::new(
        "2026-11-23T09:30:00Z".parse().unwrap(),
        jiff::tz::TimeZone::UTC,
    );

    // On a server, a device writes only as its own member.
    let err = Writer::new(&mut ben.replica, clock.clone(), Some("@ana")).unwrap_err();
    assert!(
        matches!(err, cairn_client::write::Error::ActingOnServer),
        "{err:?}"
    );
    let id = {
        let mut w = Writer::new(&mut ben.replica, clock, None).unwrap();
        w.kudos(&["@ana"], "Calm incident call", None).unwrap()
    };
    assert!(sync::has_work(&ben.replica));

    // A pull-only sync leaves it waiting here.
    let client = sync::client_for(&ben.replica, TIMEOUT).unwrap();
    let pull_only = Options {
        pull_only: true,
        ..Options::ASKED
    };
    let report = sync::sync_once(&mut ben.replica, &client, NOW, pull_only, &mut |_| {}).unwrap();
    assert_eq!(report.sent, 0);
    assert!(sync::has_work(&ben.replica));

    let report =
        sync::sync_once(&mut ben.replica, &client, NOW, Options::QUIET, &mut |_| {}).unwrap();
    assert!(report.sent > 0, "{report:?}");
    assert!(!sync::has_work(&ben.replica));

    let client = sync::client_for(&ana.replica, TIMEOUT).unwrap();
    sync::sync_once(&mut ana.replica, &client, NOW, Options::ASKED, &mut |_| {}).unwrap();
    let event = ana
        .replica
        .resolve(id.as_str(), &ana.response.member_id)
        .unwrap();
    assert_eq!(event.author, ben.response.member_id);
    assert_eq!(event.to, vec![ana.response.member_id.clone()]);
}

#[test]
fn a_wait_ends_when_a_teammate_sends_news_and_says_none_when_nothing_came() {
    use cairn_client::write::{Clock, Writer};
    let server = Server::start();
    let team = server.team("Otters");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    drop(join(&server, &server.founder(&team), "Ana", a.path()));
    let mut ben = join(&server, &server.invite(&team, 1), "Ben", b.path());
    // Ana's device, opened again as a headless client would.
    let mut ana = sync::Device::open(&a.path().join("replica.sqlite3"), TIMEOUT).unwrap();
    let client = ana.client.clone();

    // Behind already (Ben's join): the wait ends at once.
    let cursor = ana.replica.cursor().unwrap();
    let head = ana.wait(30).unwrap();
    assert!(head.is_some_and(|h| h > cursor), "{head:?} after {cursor}");
    ana.sync(NOW, Options::ASKED, &mut |_| {}).unwrap();
    let cursor = ana.replica.cursor().unwrap();

    // Level: nothing comes within a second.
    assert_eq!(client.wait(cursor, 1).unwrap(), None);

    // A wait under way ends with Ben's news (or at once, if his sync came first).
    let waiting = {
        let client = client.clone();
        std::thread::spawn(move || client.wait(cursor, 30))
    };
    let clock = Clock::new(
        "2026-11-23T09:30:00Z".parse().unwrap(),
        jiff::tz::TimeZone::UTC,
    );
    Writer::new(&mut ben.replica, clock, None)
        .unwrap()
        .log("Paired on the flaky test", None, None, None)
        .unwrap();
    let bens = sync::client_for(&ben.replica, TIMEOUT).unwrap();
    sync::sync_once(&mut ben.replica, &bens, NOW, Options::QUIET, &mut |_| {}).unwrap();
    let head = waiting.join().unwrap().unwrap();
    assert!(head.is_some_and(|h| h > cursor), "{head:?} after {cursor}");
    let report = ana.sync(NOW, Options::ASKED, &mut |_| {}).unwrap();
    assert!(report.received > 0, "{report:?}");

    // A stranger's token is refused, not waited on.
    let stranger = Client::new(&server.url, Some("not-a-token".into()), TIMEOUT);
    let err = stranger.wait(0, 30).unwrap_err();
    assert_eq!(err.refusal().map(|r| r.status), Some(401), "{err}");
}

#[test]
fn a_relay_joins_as_no_member_and_pulls_with_the_same_sync() {
    use cairn_protocol::DeviceKind;
    let server = Server::start();
    let team = server.team("Otters");
    let (a, r) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ana = join(&server, &server.founder(&team), "Ana", a.path());
    let invite = server
        .admin(&["invite", "create", "--team", &team, "--relay"])
        .ok()
        .trim()
        .to_owned();
    let relay = sync::join(
        &Client::new(&server.url, None, TIMEOUT),
        &Join {
            request: JoinRequest {
                invite,
                device_name: "chat relay".into(),
                device_kind: DeviceKind::Relay,
                ..JoinRequest::default()
            },
            ..Join::default()
        },
        &r.path().join("replica.sqlite3"),
        NOW,
        Options {
            pull_only: true,
            ..Options::ASKED
        },
        &mut |_| {},
    )
    .expect("a relay joins");
    assert_eq!(relay.response.device_kind, DeviceKind::Relay);
    assert_eq!(relay.response.member_id, "");
    assert_eq!(relay.report.sent, 0);
    assert!(relay.report.received > 0, "{:?}", relay.report);
    // It holds the team, and is none of its members.
    let state = relay.replica.team().unwrap();
    assert_eq!(state.name, "Otters");
    assert!(state.member(&ana.response.member_id).is_some());
    assert_eq!(state.members.len(), 1);
}
