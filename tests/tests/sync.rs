//! Sync end to end: one real `cairn-server` process, several members each with a real `cairn`
//! home, meeting in one feed.

use cairn_e2e::{Home, Server, feed};
use serde_json::Value;

/// A team started offline by Ana (who added Bo by name), published to `server`; returns Ana's
/// home, the team's id on the server and an invite good for ten devices.
fn published(server: &Server) -> (Home, String, String) {
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&[
        "log",
        "Wrote the onboarding notes",
        "--pillar",
        "empowerment",
    ])
    .ok();
    let team = server.team("Otters");
    let invite = server.invite(&team, 10);
    let out = ana
        .run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    assert!(out.contains("Published Otters"), "{out}");
    (ana, team, invite)
}

#[test]
fn publishing_a_new_team_says_it_sent_one_change() {
    let server = Server::start();
    let ana = Home::team("Ana", &[]);
    let team = server.team("Otters");
    let invite = server.founder(&team);
    let out = ana.run(&["publish", &server.url, "--invite", &invite]).ok();
    assert!(out.contains(": 1 change sent ("), "{out}");
}

fn texts(home: &Home) -> Vec<String> {
    feed(home, &[])
        .iter()
        .map(|i| i["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `cairn ARGS --json` on every home, each viewer's own "you" part aside: asserts they agree and
/// returns the shared view.
fn same_everywhere(homes: &[&Home], args: &[&str]) -> Value {
    let views: Vec<Value> = homes
        .iter()
        .map(|h| {
            let mut all = args.to_vec();
            all.push("--json");
            let mut v = h.run(&all).json();
            v["you"] = Value::Null;
            v
        })
        .collect();
    for v in &views[1..] {
        assert_eq!(*v, views[0], "cairn {}", args.join(" "));
    }
    views.into_iter().next().unwrap_or_default()
}

fn status(home: &Home) -> Value {
    home.run(&["status", "--json"]).json()
}

#[test]
fn three_members_log_offline_and_converge_whatever_the_order() {
    let server = Server::start();
    let (ana, team, invite) = published(&server);
    let bo = Home::joined(
        &server,
        &server.invite_for(&team, "@bo"),
        &["--claim", "@bo"],
    );
    let cy = Home::joined(&server, &invite, &["--name", "Cy"]);
    assert_eq!(texts(&bo), ["Wrote the onboarding notes"]);
    ana.run(&["sync"]).ok();

    // Everyone works offline.
    ana.run(&[
        "log",
        "Explained the why of the new rota",
        "--pillar",
        "trust",
    ])
    .ok();
    ana.run(&["kudos", "@bo,@cy", "Great pairing on the flaky test"])
        .ok();
    bo.run(&["log", "Picked up the broken build nobody owned"])
        .ok();
    let id = bo.run(&["log", "Reviewed three PRs", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bo.run(&["edit", &id, "Reviewed four PRs"]).ok();
    cy.run(&["kudos", "@ana", "Thanks for the calm incident call"])
        .ok();
    cy.run(&["log", "Checked in on the new hire", "--yesterday"])
        .ok();
    cy.run(&["team", "pillar", "add", "curiosity"]).ok();
    for h in [&ana, &bo, &cy] {
        assert!(status(h)["waiting"].as_i64().unwrap() > 0);
    }

    // Sync in one order, then another.
    for h in [&cy, &ana, &bo, &bo, &cy, &ana] {
        h.run(&["sync"]).ok();
    }
    let a = feed(&ana, &[]);
    assert_eq!(a.len(), 7, "{a:#?}");
    assert_eq!(feed(&bo, &[]), a);
    assert_eq!(feed(&cy, &[]), a);
    assert!(a.iter().any(|i| i["text"] == "Reviewed four PRs"));
    let team_view = same_everywhere(&[&ana, &bo, &cy], &["team"]);
    assert!(team_view.to_string().contains("curiosity"));
    assert!(team_view.to_string().contains("\"cy\""));

    // Reactions made after the first meeting travel too, and a sync with nothing new moves nothing.
    let target = a[0]["id"].as_str().unwrap().to_owned();
    bo.run(&["react", &target, "🎉"]).ok();
    bo.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    let reacted = feed(&ana, &[]);
    assert_eq!(reacted[0]["reactions"][0]["by"][0], "bo");
    let idle = cy.run(&["sync", "--json"]).json();
    assert_eq!(idle["received"], 1);
    let idle = cy.run(&["sync", "--json"]).json();
    assert_eq!(
        (idle["sent"].as_u64(), idle["received"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(idle["requests"], 1);
    assert!(idle["bytes_up"].as_u64().unwrap() + idle["bytes_down"].as_u64().unwrap() < 2_000);
    for h in [&ana, &bo, &cy] {
        assert_eq!(status(h)["waiting"], 0);
        h.run(&["doctor"]).ok();
    }
    // The same events give the same team streak and heatmap everywhere ("you" is each one's own).
    let streaks = same_everywhere(&[&ana, &bo, &cy], &["streaks"]);
    assert!(
        streaks["heatmap"]["max"].as_u64().unwrap() >= 3,
        "{streaks:#}"
    );
    let badges = same_everywhere(&[&ana, &bo, &cy], &["badges"]);
    assert_eq!(badges["reach"]["recognised"], 3, "{badges:#}");
    let digests: Vec<String> = [&ana, &bo, &cy]
        .iter()
        .map(|h| h.run(&["digest", "--format", "md"]).ok())
        .collect();
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
    assert!(
        digests[0].contains("Great pairing on the flaky test"),
        "{}",
        digests[0]
    );
    // Every change is stored once, however often it was sent.
    let log_len = server.changes(&team);
    ana.run(&["sync"]).ok();
    assert_eq!(server.changes(&team), log_len);
}

#[test]
fn a_member_with_a_second_device() {
    let server = Server::start();
    let (ana, _team, _invite) = published(&server);
    let code = ana.run(&["device", "link", "--json"]).json()["invite"]
        .as_str()
        .unwrap()
        .to_owned();
    let laptop = Home::joined(&server, &code, &[]);
    assert_eq!(texts(&laptop), ["Wrote the onboarding notes"]);
    laptop.run(&["log", "Logged from the laptop"]).ok();
    laptop.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    let items = feed(&ana, &[]);
    let item = items
        .iter()
        .find(|i| i["text"] == "Logged from the laptop")
        .expect("the laptop's event reached the first device");
    assert_eq!(item["author"], "ana");
    // The one-time code is spent.
    let again = Home::new();
    let err = again.run(&["join", &server.url, "--invite", &code]).fails();
    assert!(err.contains("used up"), "{err}");
    // Printed for people, the code stands alone on standard output.
    let run = ana.run(&["device", "link"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let code = run.stdout.trim();
    assert!(
        !code.is_empty() && !code.contains(' ') && !code.contains('\n'),
        "{code:?}"
    );
    assert!(
        run.stderr
            .contains(&format!("cairn join {} --invite {code}", server.url))
    );
    // A web server that is not cairn's is named as the likely mistake.
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web_url = format!("http://{}", web.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in web.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found",
            );
        }
    });
    let err = Home::new()
        .run(&["join", &web_url, "--invite", "abcde-fghij", "--name", "Zed"])
        .fails();
    assert!(
        err.contains("HTTP 404") && err.contains("a cairn-server?"),
        "{err}"
    );
}

#[test]
fn a_killed_server_or_client_loses_nothing() {
    let mut server = Server::start();
    let (ana, team, _invite) = published(&server);
    let bo = Home::joined(
        &server,
        &server.invite_for(&team, "@bo"),
        &["--claim", "@bo"],
    );
    let mut expected = texts(&ana);
    for round in 0..4 {
        for i in 0..5 {
            let text = format!("round {round} stone {i}");
            ana.run(&["log", &text]).ok();
            expected.push(text);
        }
        // Kill the server while Ana syncs; wherever the kill lands, a later sync completes.
        let mut sync = ana
            .command(&["sync"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cairn sync starts");
        server.kill();
        let _ = sync.wait();
        server.restart();
        // A client that dies after the server stored its push but before it recorded that: the
        // next sync sends the same changes again, and they are stored once.
        ana.run(&["log", &format!("round {round} late stone")]).ok();
        expected.push(format!("round {round} late stone"));
        let crashed = ana
            .command(&["sync"])
            .env("CAIRN_TEST_CRASH_AFTER_RESPONSE", "1")
            .status()
            .expect("cairn sync runs");
        assert_eq!(crashed.code(), Some(86));
        assert_eq!(
            server.changes(&team),
            // The team, adding Bo and its note in the feed, the first stone, Bo's arrival (his
            // device joined); then each round.
            5 + 6 * (round + 1),
            "the server stored the push"
        );
        assert!(status(&ana)["waiting"].as_i64().unwrap() > 0);
        // The same for a client that dies after pulling, before applying.
        let crashed = bo
            .command(&["sync"])
            .env("CAIRN_TEST_CRASH_AFTER_RESPONSE", "1")
            .status()
            .expect("cairn sync runs");
        assert_eq!(crashed.code(), Some(86));
        ana.run(&["sync"]).ok();
        assert_eq!(status(&ana)["waiting"], 0);
    }
    bo.run(&["sync"]).ok();
    let mut got = texts(&bo);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    ana.run(&["doctor"]).ok();
    bo.run(&["doctor"]).ok();
    // The four first changes and Bo's arrival, and one per stone since: each stored once.
    assert_eq!(server.changes(&team), 5 + 24);
    let log = server.changes(&team);
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    assert_eq!(server.changes(&team), log);
}

#[test]
fn a_revoked_device_is_refused_at_once() {
    let server = Server::start();
    let (_ana, team, _invite) = published(&server);
    let bo = Home::joined(
        &server,
        &server.invite_for(&team, "@bo"),
        &["--claim", "@bo"],
    );
    let devices = server
        .admin(&["device", "list", "--team", &team, "--json"])
        .json();
    // Ana's device came first, Bo's second.
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let device = devices[1]["id"].as_str().unwrap().to_owned();
    server.admin(&["device", "revoke", &device]).ok();
    let before = server.changes(&team);
    bo.run(&["log", "written after the revocation"]).ok();
    let err = bo.run(&["sync"]).fails();
    assert!(err.contains("refused"), "{err}");
    assert_eq!(server.changes(&team), before);
    // Still usable offline, and the change waits.
    assert_eq!(status(&bo)["waiting"], 1);
}

#[test]
fn joining_takes_a_valid_invite_and_a_published_team() {
    let server = Server::start();
    let team = server.team("Empty");
    let invite = server.invite(&team, 2);
    let h = Home::new();
    let err = h
        .run(&["join", &server.url, "--invite", &invite, "--name", "Dee"])
        .fails();
    assert!(
        err.contains("has no history yet") && err.contains("run this `cairn join` again"),
        "{err}"
    );
    assert!(!err.contains("cairn doctor"), "{err}");
    let err = h
        .run(&[
            "join",
            &server.url,
            "--invite",
            "nope-nope",
            "--name",
            "Dee",
        ])
        .fails();
    assert!(err.contains("not valid"), "{err}");
    let err = h
        .run(&["join", "ftp://example", "--invite", "x", "--name", "Dee"])
        .fails();
    assert!(err.contains("not a server address"), "{err}");
    // Nothing was left behind by the failed joins.
    assert!(!h.replica().exists());
    // A server that is not there (nothing listens on port 1): one clear line.
    let err = h
        .run(&[
            "join",
            "http://127.0.0.1:1",
            "--invite",
            &invite,
            "--name",
            "Dee",
        ])
        .fails();
    assert!(err.contains("cannot reach"), "{err}");
}

/// Waits for `cond` to hold, checking every 20 ms, for at most `secs` seconds.
fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
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
fn writes_sync_quietly_in_the_background_and_never_wait_for_the_network() {
    let mut server = Server::start();
    let (mut ana, team, _invite) = published(&server);
    let mut bo = Home::joined(
        &server,
        &server.invite_for(&team, "@bo"),
        &["--claim", "@bo"],
    );
    ana.auto_sync = true;
    ana.run(&["log", "Synced without asking"]).ok();
    // The write returned at once; a background sync sends it shortly after.
    assert!(
        wait_until(20, || status(&ana)["waiting"] == 0),
        "the background sync did not run: {}",
        server.log()
    );
    bo.run(&["sync"]).ok();
    assert!(texts(&bo).contains(&"Synced without asking".to_owned()));
    // A change of the team says it wrote as well, and goes up by itself.
    bo.auto_sync = true;
    bo.run(&["team", "pillar", "add", "care"]).ok();
    assert!(
        wait_until(20, || status(&bo)["waiting"] == 0),
        "no background sync after a change of the team: {}",
        server.log()
    );

    // With the server gone, writes still succeed and wait in the outbox.
    server.kill();
    ana.run(&["log", "Written with the server down"]).ok();
    assert!(texts(&ana).contains(&"Written with the server down".to_owned()));
    let err = ana.run(&["sync"]).fails();
    assert!(err.contains("cannot reach"), "{err}");
    assert_eq!(status(&ana)["waiting"], 1);
    server.restart();
    ana.run(&["sync"]).ok();
    assert_eq!(status(&ana)["waiting"], 0);
}

#[cfg(unix)]
#[test]
fn the_server_reports_health_and_stops_cleanly_on_sigterm() {
    let mut server = Server::start();
    let (ana, _team, _invite) = published(&server);
    let doctor = ana.run(&["doctor", "--json"]).json();
    assert_eq!(doctor["server"]["reachable"], true);
    assert_eq!(doctor["server"]["protocol"], 1);
    assert!(server.terminate(), "{}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
    // Doctor now says the server is unreachable, in one line, and fails.
    let err = ana.run(&["doctor"]).fails();
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn a_newcomer_whose_handle_is_taken_gets_a_free_one() {
    let server = Server::start();
    let (_ana, _team, invite) = published(&server);
    let other_ana = Home::joined(&server, &invite, &["--name", "Ana"]);
    let me = other_ana.run(&["team", "--json"]).json();
    assert_eq!(me["you"], "ana-2");
    // A handle already at 32 characters makes room for its number.
    let long = "Maximiliano Alejandro Fernández de la Vega Rodríguez";
    Home::joined(&server, &invite, &["--name", long]);
    let second = Home::joined(&server, &invite, &["--name", long]);
    let me = second.run(&["team", "--json"]).json();
    assert_eq!(me["you"], "maximiliano-alejandro-fernande-2", "{me}");
    assert_eq!(status(&other_ana)["waiting"], 0);
}
