//! Devices that die and come back: a home copied to a new laptop, a backup restored, a device
//! revoked. Nothing logged on any of them is lost, and nothing arrives twice.

use cairn_e2e::{Home, Server, feed};

/// A team started offline by Ana (who added Bo by name), published to `server`, with Bo joined
/// on his own device; returns both homes and the team's id.
fn team_on(server: &Server) -> (Home, Home, String) {
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let team = server.team("Otters");
    let invite = server.invite(&team, 10);
    ana.run(&["publish", &server.url, "--invite", &invite]).ok();
    let bo = Home::joined(
        server,
        &server.invite_for(&team, "@bo"),
        &["--claim", "@bo"],
    );
    (ana, bo, team)
}

/// The texts of a home's feed, oldest first.
fn texts(home: &Home) -> Vec<String> {
    let mut t: Vec<String> = feed(home, &[])
        .iter()
        .map(|i| i["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    t.reverse();
    t
}

/// Asserts `home` shows each of `want` exactly once (and nothing else of its own kind).
#[track_caller]
fn shows_once(home: &Home, want: &[&str]) {
    let got = texts(home);
    for w in want {
        let n = got.iter().filter(|t| t == w).count();
        assert_eq!(n, 1, "`{w}` shows {n} times in {got:?}");
    }
}

#[test]
fn a_copied_home_loses_nothing_and_sends_nothing_twice() {
    let server = Server::start();
    let (ana, bo, team) = team_on(&server);
    let first = ana.run(&["log", "Before the copy", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ana.run(&["sync"]).ok();

    // The home is copied to a new laptop; both go on as if each were the only one.
    let laptop = ana.copy();
    ana.run(&["log", "On the old laptop"]).ok();
    ana.run(&["team", "pillar", "add", "curiosity"]).ok();
    ana.run(&["sync"]).ok();
    laptop.run(&["log", "On the new laptop"]).ok();
    laptop
        .run(&["edit", &first, "Before the copy, edited on the new laptop"])
        .ok();
    laptop
        .run(&["team", "pillar", "add", "candour", "--about", "we say it"])
        .ok();
    // Meanwhile Bo renames himself: the copy must see it once it syncs again.
    bo.run(&["team", "member", "rename", "@bo", "--handle", "bo-b"])
        .ok();
    bo.run(&["sync"]).ok();

    let run = laptop.run(&["sync"]);
    let out = run.stdout.clone();
    assert_eq!(run.code, 0, "{}{}", run.stderr, run.stdout);
    assert!(
        run.stderr.contains("copied or restored"),
        "the copy is told what happened: {}",
        run.stderr
    );
    assert!(out.contains("sent"), "{out}");
    for home in [&ana, &bo] {
        home.run(&["sync"]).ok();
    }
    laptop.run(&["sync"]).ok();

    let everything = [
        "Wrote the onboarding notes",
        "Before the copy, edited on the new laptop",
        "On the old laptop",
        "On the new laptop",
    ];
    for home in [&ana, &laptop, &bo] {
        shows_once(home, &everything);
        let team = home.run(&["team", "--json"]).json();
        let pillars = team["pillars"].to_string();
        assert!(
            pillars.contains("curiosity") && pillars.contains("candour"),
            "{pillars}"
        );
        assert!(team.to_string().contains("bo-b"), "{team}");
    }
    // A member joining now gets every event from the server exactly once.
    let cy = Home::joined(&server, &server.invite(&team, 1), &["--name", "Cy"]);
    shows_once(&cy, &everything);
    assert_eq!(texts(&cy).len(), everything.len(), "{:?}", texts(&cy));
    // Both copies keep working, each under an actor of its own.
    ana.run(&["log", "Old laptop, later"]).ok();
    laptop.run(&["log", "New laptop, later"]).ok();
    for home in [&ana, &laptop, &ana, &cy] {
        home.run(&["sync"]).ok();
    }
    shows_once(&cy, &["Old laptop, later", "New laptop, later"]);
    let doctor = laptop.run(&["doctor"]);
    assert_eq!(doctor.code, 0, "{}{}", doctor.stderr, doctor.stdout);
}

#[test]
fn a_home_restored_from_a_backup_loses_nothing() {
    let server = Server::start();
    let (ana, bo, _team) = team_on(&server);
    let backup = ana.copy();
    // After the backup: work that reaches the server, then the laptop dies.
    ana.run(&["log", "After the backup"]).ok();
    ana.run(&["kudos", "@bo", "Thanks for the calm review"])
        .ok();
    ana.run(&["sync"]).ok();
    drop(ana);

    // Restored from last night's backup, Ana logs before her first sync.
    let restored = backup;
    restored.run(&["log", "On the restored laptop"]).ok();
    restored.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    let everything = [
        "Wrote the onboarding notes",
        "After the backup",
        "Thanks for the calm review",
        "On the restored laptop",
    ];
    shows_once(&restored, &everything);
    shows_once(&bo, &everything);
}
