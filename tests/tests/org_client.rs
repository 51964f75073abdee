//! A member's home keeps its organisation's replica, end to end: a real `cairn-server` process
//! administered with its own commands, real `cairn` members of two teams of one organisation
//! and of a team of none. `cairn sync` (and the join) keeps `orgs/<id>/replica.sqlite3` beside
//! the team's, brings a steward's change to every member of both teams, has a non-negotiable
//! written by a member who is no steward refused (kept, said), stops (said once) when a team is detached, and a home whose team
//! has no organisation makes exactly the requests it made before.

use automerge::Automerge;
use cairn_e2e::proxy::Proxy;
use cairn_e2e::{Home, Server};

/// A team named `name` on `server` (in `org` if given), founded on the server by `founder`,
/// who logs one event and syncs.
fn founded(server: &Server, name: &str, org: Option<&str>, founder: &str) -> (String, Home) {
    let (team, home) = server.found_team(name, org, founder);
    home.run(&["log", &format!("{founder} wrote the runbook")])
        .ok();
    home.run(&["sync"]).ok();
    (team, home)
}

/// When the stewards write, in ms since the epoch (2026-11-23, the members' pinned day).
const AT_MS: i64 = 1_763_892_000_000;

/// Writes a change into the organisation's document of `home`'s replica of it, through the
/// store (as a client does); the next `cairn sync` is to send it.
fn write_org(home: &Home, org: &str, op: impl FnOnce(&mut Automerge) -> cairn_core::Result<()>) {
    let mut replica = cairn_store::Replica::open(&home.org_replica(org)).expect("it opens");
    let me = replica.me().unwrap();
    replica
        .change_team(&me, |doc, _| op(doc))
        .expect("the change is written");
}

/// A non-negotiable added by `by` (the organisation's document started first if need be).
fn add_non_negotiable(home: &Home, org: &str, by: &str, title: &str, at_ms: i64) {
    write_org(home, org, |doc| {
        if cairn_core::org::read(&*doc)?.name.is_empty() {
            cairn_core::org::init(doc, "Acme", at_ms)?;
        }
        let state = cairn_core::org::read(&*doc)?;
        cairn_core::org::add_commitment(doc, &state, title, "it holds us together", by, at_ms)
            .map(|_| ())
    });
}

/// The non-negotiables in force as `home`'s replica of the organisation holds them.
fn org_says(home: &Home, org: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(home.org_replica(org)).expect("the replica opens");
    let mut pieces: Vec<Vec<u8>> = conn
        .query_row("SELECT snapshot FROM docs WHERE id = 'team'", [], |r| {
            r.get(0)
        })
        .map(|s| vec![s])
        .unwrap_or_default();
    let mut st = conn
        .prepare("SELECT data FROM chunks WHERE doc = 'team' ORDER BY seq")
        .unwrap();
    pieces.extend(
        st.query_map([], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(Result::unwrap),
    );
    let mut doc = Automerge::new();
    for p in pieces.iter().filter(|p| !p.is_empty()) {
        doc.load_incremental(p).expect("the document loads");
    }
    let state = cairn_core::org::read(&doc).expect("the organisation reads");
    state.live().map(|c| c.title.clone()).collect()
}

/// Whether `cond` holds within `secs` seconds (for what a background process does).
fn until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

#[test]
fn members_of_both_teams_hold_the_organisation_and_only_its_steward_writes_it() {
    let server = Server::start();
    let org = server.create_org("Acme");
    let (platform, ana) = founded(&server, "Platform", Some("Acme"), "Ana");
    let ben = Home::joined(&server, &server.invite(&platform, 3), &["--name", "Ben"]);
    let (mobile, cy) = founded(&server, "Mobile", Some("Acme"), "Cy");
    let mut eve = Home::new();
    let joined = eve
        .run(&[
            "join",
            &server.url,
            "--invite",
            &server.invite(&mobile, 3),
            "--name",
            "Eve",
        ])
        .ok();
    assert!(
        joined.contains("Its organisation Acme is kept here too."),
        "{joined}"
    );
    server
        .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
        .ok();

    // Joining (or the first sync) made the organisation's replica, private like the team's.
    for (who, home) in [("Ana", &ana), ("Ben", &ben), ("Cy", &cy), ("Eve", &eve)] {
        let path = home.org_replica(&org);
        assert!(path.exists(), "{who} holds no replica of the organisation");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{who}: {mode:o}");
        }
    }

    // The steward writes the organisation's document; her next sync sends it.
    let synced = ana.run(&["sync", "--json"]).json();
    assert_eq!(synced["org"]["name"], "Acme", "{synced}");
    assert_eq!(synced["org"]["steward"], true, "{synced}");
    add_non_negotiable(&ana, &org, "Ana", "Be kind", AT_MS);
    ana.run(&["sync"]).ok();
    assert_eq!(ana.org_outbox(&org), 0, "the steward's change went up");
    // (Starting the document and adding to it: two changes.)
    let head = server.changes(&org);
    assert_eq!(head, 2);
    let status = ana.run(&["status", "--json"]).json();
    assert_eq!(status["org"]["id"], org.as_str(), "{status}");
    assert_eq!(status["org"]["name"], "Acme");
    assert_eq!(status["org"]["steward"], true);
    assert!(status["org"]["last_sync_ms"].is_i64(), "{status}");
    let text = ana.run(&["status"]).ok();
    assert!(
        text.contains("org       Acme (you are a steward), last sync"),
        "{text}"
    );

    // Every member of both teams gets it with `cairn sync`.
    for (who, home) in [("Ben", &ben), ("Cy", &cy), ("Eve", &eve)] {
        home.run(&["sync"]).ok();
        assert_eq!(
            org_says(home, &org),
            ["Be kind"],
            "{who} holds the steward's change"
        );
        let status = home.run(&["status", "--json"]).json();
        assert_eq!(status["org"]["name"], "Acme", "{who}: {status}");
        assert_eq!(status["org"]["steward"], false, "{who}");
    }
    // The quiet sync after a write brings it too.
    add_non_negotiable(&ana, &org, "Ana", "Own the pager", AT_MS + 1);
    ana.run(&["sync"]).ok();
    eve.auto_sync = true;
    eve.run(&["log", "Eve paired on the pager"]).ok();
    assert!(
        until(20, || org_says(&eve, &org).len() == 2),
        "the background sync brought nothing of the organisation: {:?}",
        org_says(&eve, &org)
    );
    eve.auto_sync = false;
    let text = ben.run(&["status"]).ok();
    assert!(text.contains("org       Acme, last sync"), "{text}");

    // A member who is no steward writes no non-negotiable (`cairn org add` refuses him; here
    // it is written by hand): the server refuses it, what he wrote stays here, said, and his
    // sync goes on (no stop).
    let head = server.changes(&org);
    add_non_negotiable(&ben, &org, "Ben", "Ship daily", AT_MS + 2);
    let run = ben.run(&["sync"]);
    assert!(
        run.stderr
            .contains("refused your changes to the organisation")
            && !run.stderr.contains("stopped"),
        "{}",
        run.stderr
    );
    run.ok();
    assert_eq!(
        server.changes(&org),
        head,
        "nothing of Ben's reached the log"
    );
    assert_eq!(ben.org_outbox(&org), 1);
    let status = ben.run(&["status", "--json"]).json();
    assert_eq!(status["org"]["name"], "Acme", "{status}");
    assert!(status["org_stopped"].is_null(), "{status}");

    // A team detached from the organisation stops syncing it, said once; what it gave stays.
    server.admin(&["team", "detach", "Mobile"]).ok();
    let out = cy.command(&["sync"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("Acme")).collect();
    assert_eq!(
        lines,
        [
            "note: stopped syncing the organisation `Acme`: the team left it; what it gave stays \
          here, read-only"
        ],
        "{err}"
    );
    let out = cy.command(&["sync"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Acme"), "told once: {err}");
    let status = cy.run(&["status", "--json"]).json();
    assert!(status["org"].is_null(), "{status}");
    assert_eq!(status["org_stopped"]["name"], "Acme", "{status}");
    assert_eq!(org_says(&cy, &org), ["Be kind"]);
    // The other team's members go on syncing it.
    add_non_negotiable(&ana, &org, "Ana", "Ship small", AT_MS + 3);
    ana.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();
    let ben_holds = org_says(&ben, &org);
    assert!(
        ben_holds.contains(&"Ship small".to_owned()),
        "{ben_holds:?}"
    );
    assert_eq!(
        org_says(&ana, &org),
        ["Be kind", "Own the pager", "Ship small"],
        "nothing of Ben's reached the steward"
    );
    cy.run(&["sync"]).ok();
    assert_eq!(
        org_says(&cy, &org),
        ["Be kind"],
        "a detached team's replica is left as it was"
    );

    // A steward's change the server refuses (a key outside the organisation's document) is
    // said, waits unsent, and the organisation goes on syncing for her.
    write_org(&ana, &org, |doc| {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            use automerge::transaction::Transactable;
            tx.put(automerge::ROOT, "not_the_schema", "x")
        })
        .map(|_| ())
        .map_err(|f| f.error.into())
    });
    let out = ana.command(&["sync"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the server refused your changes to the organisation `Acme`"),
        "{err}"
    );
    assert_eq!(ana.org_outbox(&org), 1);
    let status = ana.run(&["status", "--json"]).json();
    assert_eq!(status["org"]["name"], "Acme", "{status}");
    assert!(status["org_stopped"].is_null(), "{status}");
}

#[test]
fn a_home_without_an_organisation_makes_the_requests_it_made_before() {
    let server = Server::start();
    // Every request of the members goes through a proxy that counts them.
    let proxy = Proxy::start(&server.url);
    let team = server.admin(&["team", "create", "Outsiders"]).ok();
    let team = team.trim();
    let dan = Home::new();
    let founder = server.founder(team);
    dan.run(&["join", &proxy.url, "--invite", &founder, "--name", "Dan"])
        .ok();
    let ida = Home::new();
    let invite = server.invite(team, 1);
    ida.run(&["join", &proxy.url, "--invite", &invite, "--name", "Ida"])
        .ok();
    // Joining asked what it asked before: the server's protocol, the join, syncs.
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .all(|l| ["GET /v1/info", "POST /v1/join", "POST /v1/sync"].contains(&l.as_str())),
        "{seen:?}"
    );
    assert!(!dan.path().join("orgs").exists());

    // A write and a sync each: one request a sync, and nothing about organisations.
    dan.run(&["log", "Dan fixed the build"]).ok();
    let before = proxy.seen().len();
    dan.run(&["sync"]).ok();
    ida.run(&["sync"]).ok();
    ida.run(&["sync"]).ok();
    assert_eq!(
        proxy.seen()[before..],
        ["POST /v1/sync", "POST /v1/sync", "POST /v1/sync"],
    );
    let status = dan.run(&["status", "--json"]).json();
    assert!(status["org"].is_null(), "{status}");
    let synced = dan.run(&["sync", "--json"]).json();
    assert!(synced.get("org").is_none(), "{synced}");

    // A home from before organisations (it never learned) asks once, then not for a day.
    let conn = rusqlite::Connection::open(ida.replica()).unwrap();
    conn.execute("DELETE FROM meta WHERE key = 'setting.org'", [])
        .unwrap();
    drop(conn);
    let before = proxy.seen().len();
    ida.run(&["sync"]).ok();
    ida.run(&["sync"]).ok();
    assert_eq!(
        proxy.seen()[before..],
        ["POST /v1/sync", "GET /v1/org", "POST /v1/sync"],
    );
    assert!(!ida.path().join("orgs").exists());
}

#[test]
fn a_refusal_of_the_organisations_log_stops_syncing_it_once() {
    let server = Server::start();
    let org = server.create_org("Acme");
    let (_, finn) = founded(&server, "Web", Some("Acme"), "Finn");
    assert!(finn.org_replica(&org).exists());
    // Two syncs within a minute: the second, the quiet one after a write, does not ask which
    // organisation the team is in (a sync its person asks for does), so the detach between
    // them meets it as the log's refusal; the next command tells it.
    let at = |t: &str, args: &[&str]| {
        let mut c = finn.command(args);
        c.env("CAIRN_NOW", format!("2026-11-23T20:00:{t}Z"));
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = at("00", &["sync"]);
    assert!(!err.contains("Acme"), "{err}");
    server.admin(&["team", "detach", "Web"]).ok();
    let quiet = at("20", &["sync", "--background"]);
    assert!(quiet.is_empty(), "the quiet sync says nothing: {quiet}");
    let err = at("30", &["sync"]);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("Acme")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0]
            .starts_with("note: stopped syncing the organisation `Acme`: the server refused it: "),
        "{err}"
    );
    let err = at("40", &["sync"]);
    assert!(!err.contains("Acme"), "told once: {err}");
    let status = finn.run(&["status", "--json"]).json();
    assert!(status["org"].is_null(), "{status}");
    assert_eq!(status["org_stopped"]["name"], "Acme", "{status}");
    let text = finn.run(&["status"]).ok();
    assert!(
        text.contains("stopped syncing the organisation `Acme`"),
        "{text}"
    );
}

#[test]
fn a_server_from_before_organisations_is_asked_once_a_day_and_syncs_as_before() {
    // The fake answers what a server of the version before did: 404 for `GET /v1/org`.
    let fake = cairn_e2e::hostile::Hostile::start();
    let proxy = Proxy::start(&fake.url);
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    ana.run(&["publish", &proxy.url, "--invite", "aaaaa-bbbbb"])
        .ok();
    ana.run(&["log", "Paired on the flaky test"]).ok();
    for _ in 0..3 {
        let run = ana.run(&["sync"]);
        assert!(!run.stderr.contains("warning"), "{}", run.stderr);
        run.ok();
    }
    // The publication asked once (it had never learned), and every sync since is one request.
    assert_eq!(proxy.count("/v1/org"), 1, "{:?}", proxy.seen());
    let seen = proxy.seen();
    assert_eq!(seen[seen.len() - 3..], ["POST /v1/sync"; 3]);
    assert!(!fake.pushed().is_empty());
    let status = ana.run(&["status", "--json"]).json();
    assert!(status["org"].is_null(), "{status}");
    assert!(!ana.path().join("orgs").exists());
}
