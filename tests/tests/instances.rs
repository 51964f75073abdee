//! Several `cairn-server` processes on one real PostgreSQL: members meet through whichever
//! instance they reach, and an instance killed mid-push loses nothing it acknowledged.

use std::collections::HashSet;

use cairn_e2e::pg::Postgres;
use cairn_e2e::{Home, Server, feed};

/// Points a member's replica at another instance (as a load balancer would send them there).
fn reach(home: &Home, server: &Server) {
    let conn = rusqlite::Connection::open(home.replica()).expect("the replica opens");
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'server_url'",
        [&server.url],
    )
    .expect("the server is set");
}

/// Hashes of every change in the shared log, read straight from PostgreSQL.
fn logged(url: &str) -> HashSet<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cairn_server::store::open(url, &Default::default())
            .await
            .unwrap();
        store
            .dump_log(("", 0), u32::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.entry.hash)
            .collect()
    })
}

#[test]
fn three_members_on_two_instances_converge_whatever_the_order() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("converge");
    let a = Server::start_shared(&url, &[]);
    let b = Server::start_shared(&url, &[]);
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let team = a.team("Otters");
    let invite = b.invite(&team, 10);
    ana.run(&["publish", &a.url, "--invite", &b.founder(&team)])
        .ok();
    // Bo through the other instance, Cy through the first.
    let bo = Home::joined(&b, &a.invite_for(&team, "@bo"), &["--claim", "@bo"]);
    let cy = Home::joined(&a, &invite, &["--name", "Cy"]);
    assert_eq!(feed(&bo, &[]).len(), 1);
    ana.run(&["sync"]).ok();

    ana.run(&["kudos", "@bo,@cy", "Great pairing on the flaky test"])
        .ok();
    bo.run(&["log", "Picked up the broken build nobody owned"])
        .ok();
    cy.run(&["kudos", "@ana", "Thanks for the calm incident call"])
        .ok();
    cy.run(&["team", "pillar", "add", "curiosity"]).ok();
    // Each syncs through one instance, then the other.
    for (home, server) in [
        (&cy, &b),
        (&ana, &a),
        (&bo, &a),
        (&bo, &b),
        (&cy, &a),
        (&ana, &b),
    ] {
        reach(home, server);
        home.run(&["sync"]).ok();
    }
    let seen = feed(&ana, &[]);
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert_eq!(feed(&bo, &[]), seen);
    assert_eq!(feed(&cy, &[]), seen);
    let team_json = bo.run(&["team", "--json"]).ok();
    assert!(team_json.contains("curiosity"), "{team_json}");
    // Both instances answer for the same log.
    assert_eq!(a.changes(&team), b.changes(&team));
    let (status, ready) = cairn_e2e::http::get(&b.url, "/readyz");
    assert_eq!(status, 200);
    assert!(ready.contains("postgres"), "{ready}");
}

#[test]
fn an_instance_killed_mid_push_loses_nothing_it_acknowledged() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("kill");
    let mut a = Server::start_shared(&url, &[]);
    let b = Server::start_shared(&url, &[]);
    let ana = Home::team("Ana", &["Bo"]);
    let team = a.team("Otters");
    ana.run(&["publish", &a.url, "--invite", &a.founder(&team)])
        .ok();
    let bo = Home::joined(&b, &b.invite_for(&team, "@bo"), &["--claim", "@bo"]);
    let mut expected = Vec::new();
    for i in 0..120 {
        let text = format!("stone {i}");
        ana.run(&["log", &text]).ok();
        expected.push(text);
    }
    let before: Vec<Vec<u8>> = ana.outbox().into_iter().map(|(_, c)| c).collect();
    assert!(before.len() >= 120);
    // The push goes to A, and A dies under it: once the log has moved (its transaction
    // committed), before or while its answer travels.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(cairn_server::store::open(&url, &Default::default()))
        .unwrap();
    let head = || rt.block_on(store.team_log(&team)).unwrap().head;
    let start = head();
    let mut sync = ana
        .command(&["sync"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cairn sync starts");
    while head() == start && sync.try_wait().expect("cairn sync runs").is_none() {
        std::thread::yield_now();
    }
    a.kill();
    let _ = sync.wait();
    let after: HashSet<Vec<u8>> = ana.outbox().into_iter().map(|(_, c)| c).collect();
    // Whatever left the outbox was acknowledged: it is in the log, for every instance.
    let log = logged(&url);
    let mut acked = 0;
    for change in before.iter().filter(|c| !after.contains(*c)) {
        let hash = automerge::Change::from_bytes(change.clone())
            .expect("an outbox change decodes")
            .hash();
        assert!(log.contains(hash.0.as_slice()), "acknowledged, not stored");
        acked += 1;
    }
    eprintln!(
        "{acked} of {} changes acknowledged before the kill",
        before.len()
    );
    // Through the instance that lives, the rest goes up and everyone meets.
    reach(&ana, &b);
    ana.run(&["sync"]).ok();
    assert!(ana.outbox().is_empty());
    bo.run(&["sync"]).ok();
    let texts: HashSet<String> = feed(&bo, &[])
        .iter()
        .map(|i| i["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    for t in &expected {
        assert!(texts.contains(t), "{t} is missing");
    }
}

#[test]
fn a_sqlite_server_moves_to_postgres_with_everything_intact() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("moved");
    let mut old = Server::start();
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let team = old.team("Otters");
    let invite = old.invite(&team, 10);
    ana.run(&["publish", &old.url, "--invite", &old.founder(&team)])
        .ok();
    let bo = Home::joined(&old, &old.invite_for(&team, "@bo"), &["--claim", "@bo"]);
    bo.run(&["kudos", "@ana", "Thanks for the notes"]).ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    let changes = old.changes(&team);
    let devices = old.admin(&["device", "list", "--json"]).json();

    // Stop, copy, serve the same teams from PostgreSQL.
    assert!(old.terminate());
    let out = old.admin(&["copy", "--to", &url]).ok();
    assert!(out.contains("checked"), "{out}");
    let new = Server::start_shared(&url, &[]);
    assert_eq!(new.changes(&team), changes);
    assert_eq!(new.admin(&["device", "list", "--json"]).json(), devices);
    // A second copy into it is refused: it holds teams now.
    let again = old.admin(&["copy", "--to", &url]).fails();
    assert!(again.contains("holds teams already"), "{again}");

    // Devices keep their tokens and cursors; the invite still works for a newcomer.
    for home in [&ana, &bo] {
        reach(home, &new);
    }
    ana.run(&["log", "First stone on the new server"]).ok();
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    let cy = Home::joined(&new, &invite, &["--name", "Cy"]);
    let seen = feed(&cy, &[]);
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_eq!(feed(&bo, &[]), feed(&ana, &[]));
    assert_eq!(feed(&bo, &[]), seen);
    let (status, metrics) = cairn_e2e::http::get(&new.url, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("backend=\"postgres\""), "{metrics}");
}
