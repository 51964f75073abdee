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
    ana.run(&["publish", &server.url, "--invite", &invite]).ok();
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
