//! Trust, tried as a hostile member and as a stranger on the network would, against a real
//! `cairn-server` process and real `cairn` homes: nobody can break, stall, rewrite or read the
//! team.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_e2e::forge;
use cairn_e2e::http::{self, connect, exchange, read_to_close};
use cairn_e2e::{Home, Server, feed};

/// Ana's team with Bo added by name, published; Bo joined with an invite made for him and logged
/// once. Returns the server's team id too.
fn team_with_bo(server: &Server) -> (Home, Home, String) {
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    let bo = Home::new();
    let bo_invite = server.invite_for(&team, "@bo");
    bo.run(&["join", &server.url, "--invite", &bo_invite]).ok();
    bo.run(&["log", "Paired on the flaky test"]).ok();
    bo.run(&["sync"]).ok();
    (ana, bo, team)
}

fn texts(home: &Home) -> Vec<String> {
    let mut t: Vec<String> = feed(home, &[])
        .iter()
        .map(|i| i["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    t.sort();
    t
}

/// Bo's next change, made offline and taken from his outbox unsent: (document, bytes).
fn next_change_of(bo: &Home) -> (String, Vec<u8>) {
    bo.run(&["log", "An honest stone"]).ok();
    let mut out = bo.outbox();
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

/// Document `doc` of `team` as the server's log has it.
fn stored_doc(server: &Server, team: &str, doc: &str) -> automerge::Automerge {
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let mut st = conn
        .prepare("SELECT data FROM changes WHERE team = ?1 AND doc = ?2 ORDER BY seq")
        .unwrap();
    let changes: Vec<automerge::Change> = st
        .query_map([team, doc], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| automerge::Change::from_bytes(b.unwrap()).unwrap())
        .collect();
    let mut out = automerge::Automerge::new();
    out.apply_changes(changes).unwrap();
    out
}

/// Every event in `member`'s journals as the server holds them.
fn stored_journals(server: &Server, team: &str, member: &str) -> Vec<cairn_core::Event> {
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let mut st = conn
        .prepare("SELECT DISTINCT doc FROM changes WHERE team = ?1 AND doc LIKE ?2")
        .unwrap();
    let docs: Vec<String> = st
        .query_map([team, &format!("j/{member}/%")], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    docs.iter()
        .flat_map(|d| cairn_core::journal::read(&stored_doc(server, team, d)).unwrap())
        .collect()
}

#[test]
fn a_change_that_does_not_apply_is_refused_and_the_team_goes_on() {
    let server = Server::start();
    let (ana, bo, team) = team_with_bo(&server);
    let token = bo.meta("token");
    let (doc, honest) = next_change_of(&bo);
    let stored = server.changes(&team);

    // Finding 1: an op naming actor index 5 of a change with one actor (automerge panics
    // applying it), and a change whose counters run past 2^32.
    for evil in [
        forge::foreign_actor_index(&honest),
        forge::counter_overflow(&honest),
    ] {
        let (status, body) = http::push(&server.url, &token, &doc, vec![evil]);
        assert_eq!(status, 400, "{body}");
        assert_eq!(server.changes(&team), stored, "nothing is stored");
    }

    // Bo's honest change still goes, and everyone, a newcomer included, syncs and reads.
    bo.run(&["sync"]).ok();
    let sync = ana.run(&["sync"]);
    assert!(!sync.stderr.contains("panicked"), "{}", sync.stderr);
    assert_eq!(sync.code, 0, "{}", sync.stderr);
    let cy = Home::new();
    let invite = server.invite(&team, 1);
    let joined = cy.run(&["join", &server.url, "--invite", &invite, "--name", "Cy"]);
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    let want = [
        "An honest stone",
        "Paired on the flaky test",
        "Wrote the onboarding notes",
    ];
    assert_eq!(texts(&ana), want);
    assert_eq!(texts(&cy), want);
}

#[test]
fn a_change_claiming_two_to_the_forty_operations_is_refused_before_it_costs_anything() {
    let server = Server::start();
    let (_ana, bo, team) = team_with_bo(&server);
    let token = bo.meta("token");
    let (doc, honest) = next_change_of(&bo);
    // Finding 2: every column one run of 2^40 entries, about a hundred bytes in all.
    let bomb = forge::op_bomb(&honest, 40);
    assert!(bomb.len() < 200, "{}", bomb.len());
    // Before, decoding one kept a worker busy for hours; now it is refused on sight.
    let before = server.changes(&team);
    let (status, body) = http::push(&server.url, &token, &doc, vec![bomb]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("operations"), "{body}");
    assert_eq!(http::get(&server.url, "/readyz").0, 200);
    bo.run(&["sync"]).ok();
    assert_eq!(
        server.changes(&team),
        before + 1,
        "Bo's honest change landed"
    );
}

#[test]
fn a_stranger_is_refused_before_the_body_is_read() {
    let server = Server::start_with(&["--body-timeout", "1s"]);
    let (_ana, bo, _team) = team_with_bo(&server);
    // Finding 3: a 16 MB body announced, none of it sent. The answer comes at once: the server
    // does not wait for, or hold, a byte of it.
    for auth in ["", "Authorization: Bearer cairn_0000\r\n"] {
        let mut s = connect(server.addr(), Duration::from_secs(20));
        let head = format!(
            "POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}\
             Content-Length: 16000000\r\n\r\n"
        );
        let (answer, _) = exchange(&mut s, head.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    }
    // With a good token, a body past the limit is refused by its length alone, and a body
    // that stops coming is given up on.
    let token = bo.meta("token");
    let mut s = connect(server.addr(), Duration::from_secs(20));
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: 100000000\r\n\r\n"
    );
    let (answer, _) = exchange(&mut s, head.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    let mut s = connect(server.addr(), Duration::from_secs(20));
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n{{\"cursor\""
    );
    let (answer, _) = exchange(&mut s, head.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

#[test]
fn slow_idle_and_surplus_connections_are_closed() {
    // Finding 4: partial headers and idle keep-alive connections are closed after the header
    // timeout.
    let server = Server::start_with(&["--header-timeout", "1s"]);
    let mut partial = connect(server.addr(), Duration::from_secs(20));
    let (_, closed) = exchange(&mut partial, b"POST /v1/sync HTTP/1.1\r\nHost:");
    assert!(
        closed,
        "a connection that never finishes its headers is closed"
    );
    let mut idle = connect(server.addr(), Duration::from_secs(20));
    let (answer, closed) = exchange(&mut idle, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle kept-alive connection is closed");

    // Past the cap, a connection is told 503 with Retry-After and closed; the log says so.
    let capped = Server::start_with(&["--max-connections", "3", "--header-timeout", "60s"]);
    let held: Vec<_> = (0..3)
        .map(|_| connect(capped.addr(), Duration::from_secs(20)))
        .collect();
    let mut extra = connect(capped.addr(), Duration::from_secs(20));
    let (answer, closed) = read_to_close(&mut extra);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.to_lowercase().contains("retry-after: 1"),
        "{answer:?}"
    );
    assert!(closed);
    drop(held);
    assert!(
        capped.log().contains("too many connections"),
        "{}",
        capped.log()
    );
    // One address cannot hold every connection by itself either.
    let per_address = Server::start_with(&["--max-connections-per-address", "2"]);
    let held: Vec<_> = (0..2)
        .map(|_| connect(per_address.addr(), Duration::from_secs(20)))
        .collect();
    let mut extra = connect(per_address.addr(), Duration::from_secs(20));
    let (answer, _) = read_to_close(&mut extra);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    drop(held);
}

#[test]
fn a_member_cannot_take_over_a_teammates_event_by_its_id() {
    let server = Server::start();
    let (ana, bo, team) = team_with_bo(&server);
    let team = team.as_str();
    ana.run(&["sync"]).ok();
    // Finding 5: the attacker reuses the victim's event id for an event of their own. Before,
    // the copy in the journal whose id sorts first won everywhere, so the attacker is whichever
    // of the two has that journal.
    let (ana_id, bo_id) = (ana.meta("me"), bo.meta("me"));
    let (attacker, attacker_handle, victim, victim_handle) = if bo_id < ana_id {
        (&bo, "@bo", &ana, "ana")
    } else {
        (&ana, "@ana", &bo, "bo")
    };
    victim
        .run(&["kudos", attacker_handle, "Thanks for the calm review"])
        .ok();
    victim.run(&["sync"]).ok();
    attacker.run(&["sync"]).ok();
    let item = feed(attacker, &[])
        .into_iter()
        .find(|i| i["author"] == victim_handle && i["kind"] != "action")
        .unwrap_or_else(|| panic!("the victim's event: {:?}", feed(attacker, &[])));
    // The attacker writes the event with the victim's id into their own journal, by hand,
    // as a client other than `cairn` would: a fresh actor, the journal's heads as they are on
    // the server.
    let id = cairn_core::ids::EventId::parse(item["id"].as_str().unwrap()).unwrap();
    let original = stored_journals(&server, team, &victim.meta("me"))
        .into_iter()
        .find(|e| e.id == id)
        .expect("the victim's event is on the server");
    let me = attacker.meta("me");
    let journal = cairn_core::ids::journal_doc(&me, &cairn_core::ids::month_of(original.at_ms));
    let state = cairn_core::team::read(&stored_doc(&server, team, "team")).unwrap();
    let mut doc = stored_doc(&server, team, &journal);
    doc.set_actor(automerge::ActorId::random());
    let heads = doc.get_heads();
    let stamp = cairn_core::Stamp {
        at_ms: original.at_ms,
        tz: original.tz.clone(),
        date: original.date.clone(),
        late: false,
    };
    let new = cairn_core::NewEvent::action("I wrote over your thanks", None, None);
    cairn_core::journal::add(&mut doc, &state, &me, &id, &stamp, &new).unwrap();
    let change = doc.get_changes(&heads)[0].raw_bytes().to_vec();
    let (status, body) = http::push(&server.url, &attacker.meta("token"), &journal, vec![change]);
    assert_eq!(status, 200, "{body}");
    victim.run(&["sync"]).ok();
    // (The attacker's own device never pulls what it pushed; a newcomer sees the team.)
    let cy = Home::new();
    let invite = server.invite(team, 1);
    cy.run(&["join", &server.url, "--invite", &invite, "--name", "Cy"])
        .ok();
    for home in [victim, &cy] {
        let items: Vec<_> = feed(home, &[])
            .into_iter()
            .filter(|i| i["id"] == item["id"])
            .collect();
        assert_eq!(items.len(), 2, "both events stay, apart: {items:?}");
        let theirs = items
            .iter()
            .find(|i| i["author"] == victim_handle)
            .expect("the victim's event is still the victim's");
        assert_eq!(theirs["text"], "Thanks for the calm review");
        assert_eq!(theirs["to"], item["to"]);
    }
}

#[test]
fn a_general_invite_never_claims_an_existing_member() {
    let server = Server::start();
    let (_ana, bo, team) = team_with_bo(&server);
    // Finding 6: the admin revokes Bo's device; a holder of the team's general invite then
    // tries to take Bo's place.
    server
        .admin(&["device", "revoke", &bo.meta("device_id")])
        .ok();
    let mallory = Home::new();
    let invite = server.invite(&team, 10);
    let run = mallory.run(&["join", &server.url, "--invite", &invite, "--claim", "@bo"]);
    let line = run.fails();
    assert!(line.contains("general invite cannot claim @bo"), "{line}");
    assert!(!mallory.replica().exists());
    // The way back for Bo is an invite made for him.
    let bo2 = Home::new();
    let for_bo = server.invite_for(&team, "@bo");
    bo2.run(&["join", &server.url, "--invite", &for_bo]).ok();
    assert_eq!(bo2.meta("me"), bo.meta("me"));
    // ... which nobody else can turn into someone else's place.
    let for_bo = server.invite_for(&team, "@bo");
    let eve = Home::new();
    let line = eve
        .run(&["join", &server.url, "--invite", &for_bo, "--claim", "@ana"])
        .fails();
    assert!(line.contains("made for @bo"), "{line}");
}

#[cfg(unix)]
#[test]
fn replica_and_server_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("new-home");
    let run = std::process::Command::new(cairn_e2e::cairn_bin())
        .args(["init", "--team", "Otters", "--name", "Ana", "--tz", "UTC"])
        .env("CAIRN_HOME", &home)
        .env("CAIRN_AUTO_SYNC", "0")
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    // Finding 7: the replica holds the device token.
    assert_eq!(mode(&home), 0o700);
    for f in [
        "replica.sqlite3",
        "replica.sqlite3-wal",
        "replica.sqlite3-shm",
    ] {
        let p = home.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    // A replica made by an older cairn is made private when opened.
    std::fs::set_permissions(
        home.join("replica.sqlite3"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let run = std::process::Command::new(cairn_e2e::cairn_bin())
        .args(["feed"])
        .env("CAIRN_HOME", &home)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(mode(&home.join("replica.sqlite3")), 0o600);
    // The server's database, in a directory it makes.
    let db = dir.path().join("srv").join("server.sqlite3");
    let run = std::process::Command::new(cairn_e2e::bin("cairn-server"))
        .args(["team", "create", "Otters"])
        .env("CAIRN_SERVER_DB", &db)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    assert_eq!(mode(&db), 0o600);
}

#[test]
fn a_refusal_is_one_escaped_log_line_with_the_clients_address() {
    let server = Server::start();
    let (_ana, bo, _team) = team_with_bo(&server);
    // Finding 8: a document id carrying a newline and a terminal escape, made to look like a
    // log line of its own.
    let forged = "j/x\n2026-11-27T00:00:00Z  INFO cairn_server: admin logged in \u{1b}[2J";
    let (status, _) = http::push(&server.url, &bo.meta("token"), forged, vec![vec![1]]);
    assert_eq!(status, 400);
    let (status, _) = http::post(&server.url, "/v1/sync", Some("nope"), b"{}");
    assert_eq!(status, 401);
    let log = server.log();
    assert!(
        !log.contains("admin logged in \u{1b}"),
        "raw text in the log: {log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2026-11-27T00:00:00Z")),
        "a forged line: {log}"
    );
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("admin logged in"))
        .collect();
    assert_eq!(refusals.len(), 1, "one line per refusal: {log}");
    assert!(refusals[0].contains("client=127.0.0.1"), "{}", refusals[0]);
    assert!(refusals[0].contains("status=400"), "{}", refusals[0]);
    assert!(!refusals[0].contains("ERROR"), "{}", refusals[0]);
    let unauthorized: Vec<&str> = log.lines().filter(|l| l.contains("status=401")).collect();
    assert_eq!(unauthorized.len(), 1, "{log}");
    assert!(!log.contains("nope"), "tokens never reach the log");
}

#[test]
fn a_stranger_behind_a_members_address_never_locks_the_member_out() {
    let server = Server::start();
    let (ana, bo, _team) = team_with_bo(&server);
    // Issue 25, finding 7: a stranger sends junk tokens from the members' address (an office's
    // NAT, a proxy not trusted), tokens of the server's shape and not, as fast as it can, for as
    // long as Bo's sync takes.
    let stop = Arc::new(AtomicBool::new(false));
    let (limited, engaged) = std::sync::mpsc::channel();
    let flood = {
        let (url, stop) = (server.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            for i in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let junk = if i % 2 == 0 {
                    format!("cairn_{i:064x}")
                } else {
                    format!("guess-{i}")
                };
                let (status, _) = http::post(&url, "/v1/sync", Some(&junk), b"{\"cursor\":0}");
                if status == 429 && statuses.last() != Some(&429) {
                    let _ = limited.send(());
                }
                statuses.push(status);
            }
            statuses
        })
    };
    // The address is past its refused-token limit...
    engaged
        .recv_timeout(Duration::from_secs(60))
        .expect("the stranger is refused with 429 once past the limit");
    // ...and Bo, at the same address, syncs as if nobody knocked.
    bo.run(&["log", "Logged while a stranger knocked"]).ok();
    let run = bo.run(&["sync"]);
    stop.store(true, Ordering::Relaxed);
    let statuses = flood.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("too many"), "{}", run.stderr);
    assert!(
        !statuses.contains(&200),
        "a junk token got in: {statuses:?}"
    );
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        refused >= 10,
        "the stranger was held back: {refused} of {}",
        statuses.len()
    );
    ana.run(&["sync"]).ok();
    assert!(texts(&ana).contains(&"Logged while a stranger knocked".to_owned()));
}

#[test]
fn guessing_invites_and_minting_link_codes_are_rate_limited() {
    let server = Server::start_with(&["--rate-join", "5/10m", "--rate-link", "3/1m"]);
    let (_ana, bo, team) = team_with_bo(&server);
    // Finding 9: invite guesses. (Ana's publication and Bo's join spent two of the five.)
    let guess = br#"{"invite":"aaaaa-bbbbb-ccccc-ddddd","device_name":"x","name":"X"}"#;
    let statuses: Vec<u16> = (0..6)
        .map(|_| http::post(&server.url, "/v1/join", None, guess).0)
        .collect();
    assert_eq!(statuses, [403, 403, 403, 429, 429, 429], "{statuses:?}");
    let agent = http::agent();
    let resp = agent
        .post(format!("{}/v1/join", server.url))
        .content_type("application/json")
        .send(&guess[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    // The CLI says so plainly instead of a bare status.
    let cy = Home::new();
    let invite = server.invite(&team, 1);
    let line = cy
        .run(&["join", &server.url, "--invite", &invite, "--name", "Cy"])
        .fails();
    assert!(line.contains("too many joins"), "{line}");
    // Link codes: three, then 429; codes are not minted without end.
    let codes: Vec<i32> = (0..4).map(|_| bo.run(&["device", "link"]).code).collect();
    assert_eq!(&codes[..3], [0, 0, 0]);
    assert_ne!(codes[3], 0);
}

#[test]
fn a_bad_change_an_older_server_stored_is_set_aside_and_can_be_withdrawn() {
    let server = Server::start();
    let (ana, bo, team) = team_with_bo(&server);
    ana.run(&["sync"]).ok();
    // An older server stored whatever checked out: put such a change in the log by hand, as a
    // device of Bo's with an actor of its own would have pushed it.
    let (doc, honest) = next_change_of(&bo);
    let mut parts = cairn_core::change::Parts::parse(&forge::foreign_actor_index(&honest)).unwrap();
    parts.actor = vec![0xee; 16];
    parts.seq = 1;
    let evil = parts.encode();
    let hash: String = <sha2::Sha256 as sha2::Digest>::digest(&evil[8..])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    {
        let conn = rusqlite::Connection::open(server.db()).unwrap();
        conn.execute(
            "UPDATE teams SET head = head + 1 WHERE id = ?1",
            [team.as_str()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO changes (team, seq, doc, hash, actor, actor_seq, device, data)
             SELECT ?1, head, ?2, ?3, ?4, 1, ?5, ?6 FROM teams WHERE id = ?1",
            rusqlite::params![
                team,
                doc,
                <sha2::Sha256 as sha2::Digest>::digest(&evil[8..]).to_vec(),
                parts.actor,
                bo.meta("device_id"),
                evil
            ],
        )
        .unwrap();
    }
    // Ana's client sets it aside and says so; the rest of the exchange goes on.
    bo.run(&["sync"]).ok();
    let run = ana.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("set aside 1 change"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(texts(&ana).contains(&"An honest stone".to_owned()));
    let doctor = ana.run(&["doctor", "--json"]).json();
    assert_eq!(doctor["set_aside"][0]["hash"], hash.as_str(), "{doctor}");
    // The admin withdraws it; Ana's replica forgets it, and a newcomer never sees it.
    let out = server
        .admin(&["change", "withdraw", "--team", &team, &hash[..16]])
        .ok();
    assert!(out.contains(&hash), "{out}");
    ana.run(&["sync"]).ok();
    let doctor = ana.run(&["doctor", "--json"]).json();
    assert_eq!(doctor["set_aside"], serde_json::json!([]), "{doctor}");

    // A change that applied fine can be withdrawn too: it leaves every replica, its author's
    // included, and what was made on top of it goes with it.
    bo.run(&["log", "Buy cheap watches at example.com"]).ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    assert!(texts(&ana).iter().any(|t| t.contains("cheap watches")));
    let spam = server.last_change(&team);
    server
        .admin(&["change", "withdraw", "--team", &team, &spam])
        .ok();
    let run = ana.run(&["sync"]);
    assert!(run.stderr.contains("withdrew 1 change"), "{}", run.stderr);
    for home in [&ana, &bo] {
        home.run(&["sync"]).ok();
        assert!(!texts(home).iter().any(|t| t.contains("cheap watches")));
        assert!(home.run(&["doctor"]).code == 0);
    }
    let cy = Home::new();
    let invite = server.invite(&team, 1);
    cy.run(&["join", &server.url, "--invite", &invite, "--name", "Cy"])
        .ok();
    assert!(!texts(&cy).iter().any(|t| t.contains("cheap watches")));
    assert!(texts(&cy).contains(&"An honest stone".to_owned()));
    // Bo keeps writing; nothing of his is stuck.
    bo.run(&["log", "Back to work"]).ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    assert!(texts(&ana).contains(&"Back to work".to_owned()));
}

#[test]
fn a_device_with_changes_made_on_a_withdrawn_one_is_never_stuck() {
    let server = Server::start();
    let (ana, bo, team) = team_with_bo(&server);
    bo.run(&["log", "Buy cheap watches"]).ok();
    bo.run(&["sync"]).ok();
    let spam = server.last_change(&team);
    // Offline, Bo goes on writing in the same journal, on top of what is about to go.
    bo.run(&["log", "One"]).ok();
    bo.run(&["log", "Two"]).ok();
    bo.run(&["log", "Three"]).ok();
    server
        .admin(&["change", "withdraw", "--team", &team, &spam])
        .ok();
    // His sync goes through: the spam goes everywhere, and what he wrote on top of it, never
    // sent, is written again without it and sent (a withdrawal never takes a device's unsent
    // work): nothing of his is lost.
    let run = bo.run(&["sync"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("withdrew"), "{}", run.stderr);
    assert!(run.stderr.contains("written again"), "{}", run.stderr);
    ana.run(&["sync"]).ok();
    for home in [&ana, &bo] {
        let t = texts(home);
        assert!(!t.iter().any(|t| t.contains("watches")), "{t:?}");
        for kept in ["One", "Two", "Three"] {
            assert!(t.contains(&kept.to_owned()), "{t:?}");
        }
    }
    // And from then on he writes as before, with an actor of his own again.
    bo.run(&["log", "Four"]).ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    assert!(texts(&ana).contains(&"Four".to_owned()));
    assert_eq!(bo.run(&["status", "--json"]).json()["waiting"], 0);
}

/// Finding 9 (round two): a home another user could write, or owns, is refused before anything
/// in it is read, with a hint that works; so is a folder of a team after the first.
#[test]
fn a_home_others_could_swap_files_in_is_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let ana = Home::team("Ana", &[]);
    ana.run(&["log", "Wrote the runbook"]).ok();
    let before = ana.dump();
    let chmod = |dir: &std::path::Path, mode: u32| {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    for mode in [0o777, 0o770, 0o702, 0o1777] {
        chmod(ana.path(), mode);
        let err = ana.run(&["log", "Logged into a shared home"]).fails();
        assert!(
            err.contains("can be written by other users"),
            "{mode:o}: {err}"
        );
        assert!(
            err.contains(&format!("`chmod 700 {}`", ana.path().display())),
            "{err}"
        );
    }
    assert_eq!(ana.dump(), before, "nothing was written");
    // The hint, followed as it is written, mends it.
    let status = std::process::Command::new("chmod")
        .arg("700")
        .arg(ana.path())
        .status()
        .unwrap();
    assert!(status.success());
    ana.run(&["log", "Back home"]).ok();
    // Readable by others is not writable: a home an older cairn left 0755 still works.
    chmod(ana.path(), 0o755);
    ana.run(&["feed"]).ok();

    // A team after the first lives in teams/ID/: that folder is checked too.
    ana.run(&["init", "--team", "Badgers", "--name", "Ana"])
        .ok();
    let teams = ana.path().join("teams");
    let badgers = std::fs::read_dir(&teams)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    chmod(&badgers, 0o777);
    let err = ana.run(&["--team", "Badgers", "feed"]).fails();
    assert!(
        err.contains(&format!("the folder {}", badgers.display()))
            && err.contains("can be written by other users"),
        "{err}"
    );
    chmod(&badgers, 0o700);
    ana.run(&["--team", "Badgers", "feed"]).ok();

    // Another user's home: refused, to root as well (tests run as root in CI, who can give a
    // home away; elsewhere this part needs root and is left out).
    let me = std::fs::metadata(ana.path()).unwrap().uid();
    if me == 0 {
        std::os::unix::fs::chown(ana.path(), Some(65534), None).unwrap();
        let err = ana.run(&["feed"]).fails();
        std::os::unix::fs::chown(ana.path(), Some(0), None).unwrap();
        assert!(
            err.contains("belongs to another user (uid 65534)") && err.contains("CAIRN_HOME"),
            "{err}"
        );
        ana.run(&["feed"]).ok();
    }
}

/// Finding 9 (round two): a link in a home, where the lock, the replica, its WAL and shared
/// memory or the settings go, is refused, and the file it points to is left as it was (not
/// made, not chmodded, not written, not read as settings).
#[test]
fn links_in_a_home_are_refused_and_what_they_point_to_is_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let elsewhere = tempfile::tempdir().unwrap();
    let state = |p: &std::path::Path| {
        std::fs::read(p)
            .ok()
            .map(|bytes| (bytes, std::fs::metadata(p).unwrap().permissions().mode()))
    };
    let cases: [(&str, &[&str]); 6] = [
        ("sync.lock", &["sync"]),
        ("replica.sqlite3", &["log", "Wrote the runbook"]),
        ("replica.sqlite3", &["feed"]),
        ("replica.sqlite3-wal", &["log", "Wrote the runbook"]),
        ("replica.sqlite3-shm", &["feed"]),
        ("config.toml", &["feed"]),
    ];
    for (n, (name, args)) in cases.into_iter().enumerate() {
        let ana = Home::team("Ana", &[]);
        let target = elsewhere.path().join(format!("{n}-{name}"));
        match name {
            // Nothing there: the lock would make it.
            "sync.lock" => {}
            // Someone else's replica, swapped in, readable by all.
            "replica.sqlite3" => {
                let mallory = Home::team("Mallory", &[]);
                std::fs::copy(mallory.replica(), &target).unwrap();
                std::fs::remove_file(ana.replica()).unwrap();
            }
            // Settings that would read well (and name a pager to run).
            "config.toml" => std::fs::write(&target, "color = \"never\"\n").unwrap(),
            _ => std::fs::write(&target, "precious\n").unwrap(),
        }
        if target.exists() {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        // (SQLite may have left its own file there.)
        let _ = std::fs::remove_file(ana.path().join(name));
        std::os::unix::fs::symlink(&target, ana.path().join(name)).unwrap();
        let before = state(&target);
        let err = ana.run(args).fails();
        assert!(
            err.contains(&format!(
                "{} is a symbolic link",
                ana.path().join(name).display()
            )),
            "{name}, {args:?}: {err}"
        );
        assert_eq!(
            state(&target),
            before,
            "{name}, {args:?}: its target changed"
        );
    }
}

/// The hash of the last change to the team document the server holds, in hex.
fn last_team_change(server: &Server, team: &str) -> String {
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let h: Vec<u8> = conn
        .query_row(
            "SELECT hash FROM changes WHERE team = ?1 AND doc = 'team' AND kind = 0
             ORDER BY seq DESC",
            [team],
            |r| r.get(0),
        )
        .unwrap();
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// [`team_with_bo`], where Ana then adds the pillar Curiosity and Bo syncs it; returns the
/// hash of the team document's change that added it too.
fn team_with_a_pillar(server: &Server) -> (Home, Home, String, String) {
    let (ana, bo, team) = team_with_bo(server);
    ana.run(&["team", "pillar", "add", "Curiosity"]).ok();
    ana.run(&["sync"]).ok();
    let pillar = last_team_change(server, &team);
    bo.run(&["sync"]).ok();
    (ana, bo, team, pillar)
}

/// The pillars' names and the members' handles `home` reads in its team.
fn pillars_and_members(home: &Home) -> (Vec<String>, Vec<String>) {
    let team = home.run(&["team", "--json"]).json();
    let names = |list: &str, field: &str| -> Vec<String> {
        team[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list}: {team}"))
            .iter()
            .map(|x| x[field].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    (names("pillars", "name"), names("members", "handle"))
}

#[test]
fn withdrawing_a_harmless_team_change_says_what_goes_and_keeps_a_later_membership() {
    let server = Server::start();
    // Issue 25, finding 5: Ana adds a pillar; later Dee joins, on a replica that has it.
    let (ana, bo, team, pillar) = team_with_a_pillar(&server);
    let dee = Home::new();
    let invite = server.invite(&team, 1);
    dee.run(&["join", &server.url, "--invite", &invite, "--name", "Dee"])
        .ok();
    dee.run(&["log", "Dee's first stone"]).ok();
    dee.run(&["sync"]).ok();
    // The admin asks first: the pillar, by Ana, is taken back; Dee's membership, made after it
    // but not on it, stays. Nothing is done by asking.
    let preview = server
        .admin(&[
            "change",
            "withdraw",
            "--team",
            &team,
            &pillar[..12],
            "--dry-run",
            "--json",
        ])
        .json();
    assert_eq!(preview["done"], false, "{preview}");
    let changes = preview["changes"].as_array().unwrap();
    let named: Vec<_> = changes.iter().filter(|c| c["named"] == true).collect();
    assert_eq!(named.len(), 1, "{preview}");
    assert_eq!(named[0]["hash"], pillar.as_str());
    assert_eq!(named[0]["author"], "@ana", "{preview}");
    assert_eq!(named[0]["kind"], "pillar #Curiosity", "{preview}");
    assert_eq!(named[0]["fate"], "taken_back", "{preview}");
    let dees = changes
        .iter()
        .find(|c| c["kind"] == "membership of @dee")
        .unwrap_or_else(|| panic!("Dee's membership is listed: {preview}"));
    assert_eq!(dees["author"], "@dee");
    assert_eq!(dees["fate"], "kept", "{preview}");
    assert!(pillars_and_members(&bo).0.contains(&"Curiosity".to_owned()));
    // It reaches nothing beyond the named change, so it goes without a flag, and says how many
    // went: one.
    let run = server.admin(&["change", "withdraw", "--team", &team, &pillar]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&pillar), "{}", run.stdout);
    assert!(
        run.stderr.contains("what 1 change(s) set taken back"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("out of the history"), "{}", run.stderr);
    // Every replica drops the pillar and keeps Dee, who goes on logging.
    let cy = Home::new();
    let invite = server.invite(&team, 1);
    cy.run(&["join", &server.url, "--invite", &invite, "--name", "Cy"])
        .ok();
    for home in [&ana, &bo, &dee, &cy] {
        home.run(&["sync"]).ok();
        let (pillars, members) = pillars_and_members(home);
        assert!(!pillars.contains(&"Curiosity".to_owned()), "{pillars:?}");
        assert!(members.contains(&"dee".to_owned()), "{members:?}");
        assert_eq!(home.run(&["doctor"]).code, 0);
    }
    dee.run(&["log", "Still here"]).ok();
    dee.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    assert!(texts(&ana).contains(&"Still here".to_owned()));
    assert!(texts(&cy).contains(&"Dee's first stone".to_owned()));
}

#[test]
fn a_withdrawal_that_reaches_beyond_the_named_change_needs_consent() {
    let server = Server::start();
    let (ana, bo, team, pillar) = team_with_a_pillar(&server);
    // Bo says anew what it means: made on Ana's pillar.
    bo.run(&[
        "team",
        "pillar",
        "edit",
        "Curiosity",
        "--about",
        "we ask, then listen",
    ])
    .ok();
    bo.run(&["sync"]).ok();
    let edit = last_team_change(&server, &team);
    // Without --cascade: the list, with Bo's edit going with it, and nothing done.
    let run = server.admin(&["change", "withdraw", "--team", &team, &pillar]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("--cascade"), "{}", run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&edit))
        .unwrap_or_else(|| panic!("Bo's edit is listed: {}", run.stdout));
    assert!(
        line.contains("@bo") && line.contains("pillar #Curiosity"),
        "{line}"
    );
    assert!(line.contains("with it (made on it)"), "{line}");
    ana.run(&["sync"]).ok();
    assert!(
        pillars_and_members(&ana)
            .0
            .contains(&"Curiosity".to_owned())
    );
    // With it: both go (nothing else came after, so out of the history), and the count says
    // two.
    let run = server.admin(&["change", "withdraw", "--team", &team, &pillar, "--cascade"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("withdrew 2 change(s) out of the history"),
        "{}",
        run.stderr
    );
    for home in [&ana, &bo] {
        home.run(&["sync"]).ok();
        assert!(
            !pillars_and_members(home)
                .0
                .contains(&"Curiosity".to_owned())
        );
    }
}
