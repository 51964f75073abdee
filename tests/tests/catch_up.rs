//! A device far behind catches up from whole documents (each one's snapshot and the changes
//! after it) instead of every change, and ends with the same replica a replay gives: real
//! `cairn-server` processes, real `cairn` homes.

use cairn_e2e::{Home, Server, feed};
use serde_json::Value;

/// A team with some history: Ana publishes it and Bo joins; both log, give kudos, react, edit
/// and retract. Returns their homes and an invite good for ten devices.
fn busy_team(server: &Server) -> (Home, Home, String) {
    let ana = Home::team("Ana", &[]);
    for i in 0..8 {
        ana.run(&["log", &format!("Ana's step {i}"), "--pillar", "trust"])
            .ok();
    }
    let team = server.team("Otters");
    let invite = server.invite(&team, 10);
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    let bo = Home::joined(server, &invite, &["--name", "Bo"]);
    for i in 0..6 {
        bo.run(&["log", &format!("Bo's step {i}")]).ok();
    }
    bo.run(&["kudos", "@ana", "Thanks for the onboarding notes"])
        .ok();
    let mine = bo.run(&["log", "Reviewed three PRs", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bo.run(&["edit", &mine, "Reviewed four PRs"]).ok();
    let gone = bo.run(&["log", "Logged by mistake", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bo.run(&["retract", &gone]).ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    let first = feed(&ana, &[])[0]["id"].as_str().unwrap().to_owned();
    ana.run(&["react", &first, "🎉"]).ok();
    ana.run(&["kudos", "@bo", "Calm incident call"]).ok();
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    (ana, bo, invite)
}

/// The catch-up by documents a home is in the middle of.
fn catch_up_state(home: &Home) -> Option<String> {
    let conn = rusqlite::Connection::open(home.replica()).unwrap();
    conn.query_row("SELECT value FROM meta WHERE key = 'catch_up'", [], |r| {
        r.get(0)
    })
    .ok()
}

/// The names of a replica's indexes.
fn indexes(home: &Home) -> Vec<String> {
    let conn = rusqlite::Connection::open(home.replica()).unwrap();
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn export(home: &Home) -> String {
    home.run(&["export", "--format", "json"]).ok()
}

/// `cairn ARGS --json` without the viewer's own part.
fn team_view(home: &Home, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let mut v = home.run(&all).json();
    v["you"] = Value::Null;
    v
}

#[test]
fn a_device_far_behind_gets_whole_documents_and_the_replica_a_replay_gives() {
    // First a server that sends only single changes: the replay.
    let mut server = Server::start_with(&["--catch-up-after", "1000000"]);
    let (ana, _bo, invite) = busy_team(&server);
    let replay = Home::joined(&server, &invite, &["--name", "Replay"]);
    let replayed = replay.run(&["sync", "--json"]).json();
    assert_eq!(replayed["docs"], 0, "{replayed}");

    // Then the same database served to a device behind by anything at all, one document a page.
    server.restart_with(&["--catch-up-after", "0", "--max-page-bytes", "1"]);
    let whole = Home::new();
    let joined = whole
        .run(&[
            "join",
            &server.url,
            "--invite",
            &invite,
            "--name",
            "Whole",
            "--json",
        ])
        .json();
    let docs = joined["docs"].as_u64().unwrap();
    // The team document and two journals at least, a page each.
    assert!(docs >= 3, "{joined}");
    assert!(joined["requests"].as_u64().unwrap() > docs, "{joined}");
    assert_eq!(catch_up_state(&whole), None);

    assert_eq!(export(&whole), export(&replay));
    // The index's own indexes, dropped for the bulk catch-up, are all there again.
    assert_eq!(indexes(&whole), indexes(&replay));
    assert!(indexes(&whole).len() >= 8, "{:?}", indexes(&whole));
    // The replay hears of the newcomer (a change or two: whole documents too, on this server).
    replay.run(&["sync"]).ok();
    assert!(export(&whole).contains("Reviewed four PRs"));
    assert_eq!(feed(&whole, &[]), feed(&replay, &[]));
    for args in [["streaks"], ["digest"], ["team"]] {
        assert_eq!(team_view(&whole, &args), team_view(&replay, &args));
    }
    let doctor = whole.run(&["doctor"]).ok();
    assert!(doctor.contains("in step with the documents"), "{doctor}");
    // A device up to date is not sent documents: its sync is one request.
    ana.run(&["sync"]).ok();
    let again = ana.run(&["sync", "--json"]).json();
    assert_eq!(
        (again["docs"].as_u64(), again["requests"].as_u64()),
        (Some(0), Some(1))
    );
}

#[test]
fn a_catch_up_cut_short_goes_on_and_unsent_changes_stay() {
    let mut server = Server::start_with(&["--catch-up-after", "1000000"]);
    let (ana, bo, invite) = busy_team(&server);
    let reference = Home::joined(&server, &invite, &["--name", "Reference"]);

    // Bo writes while the server is down; so does Ana, who syncs once it is back.
    server.kill();
    let offline = bo.run(&["log", "Written on the train", "--json"]).json();
    assert!(offline["id"].is_string(), "{offline}");
    for i in 0..6 {
        ana.run(&["log", &format!("Ana while Bo is away {i}")]).ok();
    }
    server.restart_with(&["--catch-up-after", "0", "--max-page-bytes", "1"]);
    let url = server.url.clone();
    ana.run(&["sync"]).ok();

    // A new device dies after its second page; its next sync goes on from there.
    let cut = Home::new();
    let died = cut
        .command(&["join", &url, "--invite", &invite, "--name", "Cut"])
        .env("CAIRN_TEST_CRASH_AFTER_RESPONSE", "3")
        .output()
        .unwrap();
    assert_eq!(died.status.code(), Some(86), "{died:?}");
    assert!(
        catch_up_state(&cut).is_some(),
        "a catch-up under way is kept"
    );
    let rest = cut.run(&["sync", "--json"]).json();
    assert_eq!(catch_up_state(&cut), None);
    // It went on after the two documents it had: a device starting afresh gets two more.
    let fresh = Home::new();
    let all_docs = fresh
        .run(&[
            "join", &url, "--invite", &invite, "--name", "Fresh", "--json",
        ])
        .json()["docs"]
        .as_u64()
        .unwrap();
    assert_eq!(rest["docs"].as_u64().unwrap() + 2, all_docs, "{rest}");

    // Bo comes back: what he wrote goes up, the documents come down, nothing of his is lost.
    let back = bo.run(&["sync", "--json"]).json();
    assert!(back["docs"].as_u64().unwrap() >= 1, "{back}");
    assert_eq!(back["sent"], 1, "{back}");
    reference.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    cut.run(&["sync"]).ok();
    let all = export(&reference);
    assert!(all.contains("Written on the train") && all.contains("Ana while Bo is away 5"));
    fresh.run(&["sync"]).ok();
    for h in [&ana, &bo, &cut, &fresh] {
        assert_eq!(export(h), all);
    }
}

/// Prunes everything the snapshots hold (a horizon of 0: only with no server running).
fn prune_all(server: &Server, team: &str) -> Value {
    server
        .admin(&[
            "team",
            "prune",
            "--team",
            team,
            "--older-than",
            "0",
            "--json",
        ])
        .json()
}

/// The id of the server's one team.
fn only_team(server: &Server) -> String {
    server.admin(&["team", "list", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn team_sizes(server: &Server, team: &str) -> Value {
    let teams = server.admin(&["team", "list", "--json"]).json();
    teams
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == team)
        .cloned()
        .unwrap()
}

#[test]
fn a_pruned_log_strands_no_device_and_a_withdrawal_still_reaches_everyone() {
    let mut server = Server::start_with(&["--catch-up-after", "1000000"]);
    let (ana, bo, invite) = busy_team(&server);
    let team = only_team(&server);
    // A device that stops syncing now, before anything is pruned.
    let away = Home::joined(&server, &invite, &["--name", "Away"]);
    // More history, then a newcomer whose catch-up leaves a snapshot of every document.
    for i in 0..6 {
        ana.run(&["log", &format!("Ana, later {i}")]).ok();
        bo.run(&["log", &format!("Bo, later {i}")]).ok();
    }
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    server.restart_with(&["--catch-up-after", "0"]);
    let helper = Home::joined(&server, &invite, &["--name", "Helper"]);
    let before = team_sizes(&server, &team);

    // Pruned with no server running (a horizon of 0 is safe only then).
    server.kill();
    let pruned = prune_all(&server, &team);
    assert!(pruned["changes"].as_i64().unwrap() > 10, "{pruned}");
    let after = team_sizes(&server, &team);
    assert_eq!(after["pruned_changes"], pruned["changes"]);
    assert!(
        after["log_bytes"].as_i64().unwrap() < before["log_bytes"].as_i64().unwrap(),
        "{before} {after}"
    );
    // Even a server that sends single changes to devices a little behind sends whole
    // documents to one behind what was pruned.
    server.restart_with(&["--catch-up-after", "1000000"]);
    let back = away.run(&["sync", "--json"]).json();
    assert!(back["docs"].as_u64().unwrap() >= 2, "{back}");
    // An old client that cannot take documents is told to update, not fed a hole.
    let token = away.meta("token");
    let (status, body) = cairn_e2e::http::post(
        &server.url,
        "/v1/sync",
        Some(&token),
        br#"{"cursor": 1, "withdrawals": true}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("update cairn"), "{body}");
    let newcomer = Home::joined(&server, &invite, &["--name", "Newcomer"]);
    for h in [&ana, &bo, &helper] {
        h.run(&["sync"]).ok();
    }
    let all = export(&ana);
    assert!(all.contains("Ana's step 0") && all.contains("Bo, later 5"));
    for h in [&bo, &away, &helper, &newcomer] {
        assert_eq!(export(h), all);
    }

    // Bo logs spam; the admin withdraws it after the pruning: it leaves every replica, and the
    // server's snapshot of Bo's journal is rebuilt without it and keeps what was pruned.
    bo.run(&["log", "Buy cheap watches"]).ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    let spam = server.last_change(&team);
    server
        .admin(&["change", "withdraw", "--team", &team, &spam])
        .ok();
    let late = Home::joined(&server, &invite, &["--name", "Late"]);
    for h in [&ana, &bo, &away] {
        h.run(&["sync"]).ok();
    }
    let all = export(&ana);
    assert!(!all.contains("cheap watches") && all.contains("Bo's step 0"));
    for h in [&bo, &away, &late] {
        assert_eq!(export(h), all);
    }
}

#[test]
fn a_withdrawal_reaches_what_was_built_on_a_pruned_change() {
    let mut server = Server::start();
    let (ana, bo, invite) = busy_team(&server);
    let team = only_team(&server);
    let code = bo.run(&["device", "link", "--json"]).json()["invite"]
        .as_str()
        .unwrap()
        .to_owned();
    let laptop = Home::joined(&server, &code, &[]);
    // Bo's phone writes the spam; the laptop writes twice on top of it (in the same journal).
    bo.run(&["log", "Buy cheap watches"]).ok();
    bo.run(&["sync"]).ok();
    let spam = server.last_change(&team);
    laptop.run(&["sync"]).ok();
    laptop.run(&["log", "On top of the spam"]).ok();
    laptop.run(&["log", "Further on top"]).ok();
    laptop.run(&["sync"]).ok();
    // A newcomer leaves snapshots of every document; then the log is pruned: the laptop's first
    // change goes (its last stays, as does the phone's spam, each its device's last).
    server.restart_with(&["--catch-up-after", "0"]);
    Home::joined(&server, &invite, &["--name", "Helper"]);
    server.kill();
    let pruned = prune_all(&server, &team);
    assert!(pruned["changes"].as_i64().unwrap() > 0, "{pruned}");
    server.restart_with(&[]);
    // Offline, the laptop builds on what is about to go.
    laptop.run(&["log", "Built before the notice came"]).ok();

    // The laptop's two changes came after the spam in its journal: they would go with it, so
    // the admin is shown them and asked to say so.
    let asked = server.admin(&["change", "withdraw", "--team", &team, &spam]);
    assert_ne!(asked.code, 0, "{}", asked.stdout);
    assert!(asked.stderr.contains("--cascade"), "{}", asked.stderr);
    let with_it = asked
        .stdout
        .lines()
        .filter(|l| l.contains("withdrawn with it"))
        .count();
    assert_eq!(with_it, 2, "{}", asked.stdout);
    let out = server
        .admin(&["change", "withdraw", "--team", &team, &spam, "--cascade"])
        .ok();
    assert!(out.contains(&spam), "{out}");
    // The laptop is not stuck, and loses nothing it had not sent: its change made on withdrawn
    // ones is written again without them, and sent.
    let run = laptop.run(&["sync", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for h in [&ana, &bo, &laptop] {
        h.run(&["sync"]).ok();
    }
    let late = Home::joined(&server, &invite, &["--name", "Late"]);
    let all = export(&ana);
    for gone in ["cheap watches", "On top of the spam", "Further on top"] {
        assert!(!all.contains(gone), "{gone} is still there");
    }
    assert!(all.contains("Built before the notice came"), "{all}");
    assert!(all.contains("Bo's step 0"));
    for h in [&bo, &laptop, &late] {
        assert_eq!(export(h), all);
    }
    // And the laptop writes on.
    laptop.run(&["log", "Back to work"]).ok();
    laptop.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    assert!(export(&ana).contains("Back to work"));
}
