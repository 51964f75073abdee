//! Devices that die and come back: a home copied to a new laptop, a backup restored, a device
//! revoked. Nothing logged on any of them is lost, and nothing arrives twice.

use cairn_e2e::{Home, Server, feed};

/// A team started offline by Ana (who added Bo by name), published to `server`, with Bo joined
/// on his own device; returns both homes and the team's id.
fn team_on(server: &Server) -> (Home, Home, String) {
    let ana = Home::team("Ana", &["Bo"]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
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

    // Before it syncs, `doctor` asks the server and names what to do.
    let doctor = laptop.run(&["doctor"]);
    assert_ne!(doctor.code, 0);
    let err = doctor.fails();
    assert!(
        err.contains("copied or restored") && err.contains("run `cairn sync`"),
        "{err}"
    );
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
    assert!(
        doctor.stdout.contains("to be a copy of another replica"),
        "{}",
        doctor.stdout
    );
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

#[test]
fn a_revoked_device_says_so_once_and_its_events_move_to_a_new_one() {
    let server = Server::start();
    let (ana, bo, team) = team_on(&server);
    bo.run(&["log", "Synced before the revoke"]).ok();
    bo.run(&["sync"]).ok();
    server
        .admin(&["device", "revoke", &bo.meta("device_id")])
        .ok();

    // Bo logs on; the quiet sync after the write is refused.
    let logged = bo.run(&["log", "Logged after the revoke"]);
    assert_eq!(logged.code, 0);
    bo.run(&["kudos", "@ana", "Thanks for the handover"]).ok();
    let quiet = bo.run(&["sync", "--background"]);
    assert_eq!(quiet.code, 4, "{}", quiet.stderr);
    assert!(quiet.stderr.is_empty() || quiet.stderr.starts_with("error"));
    // The next command says so, once, on stderr; its own output is untouched.
    let read = bo.run(&["feed"]);
    assert_eq!(read.code, 0);
    assert!(read.stdout.contains("Logged after the revoke"));
    let warning: Vec<&str> = read.stderr.lines().collect();
    assert_eq!(warning.len(), 1, "{}", read.stderr);
    assert!(
        warning[0].starts_with("warning: this device's last sync was refused")
            && warning[0].contains("2 changes wait here unsent"),
        "{}",
        read.stderr
    );
    assert_eq!(
        bo.run(&["feed"]).stderr,
        "",
        "said once, not on every command"
    );
    // Status says it every time, with what to do.
    let status = bo.run(&["status"]).ok();
    assert!(
        status.contains("problem") && status.contains("revoked") && status.contains("cairn import"),
        "{status}"
    );
    assert!(bo.run(&["status", "--json"]).json()["problem"]["message"].is_string());

    // Bo's events move to a new device through an export.
    let export = bo.path().join("mine.json");
    std::fs::write(&export, bo.run(&["export"]).ok()).unwrap();
    let new = Home::joined(
        &server,
        &server.invite_for(&team, "@bo"),
        &["--claim", "@bo"],
    );
    let export = export.display().to_string();
    let dry = new.run(&["import", &export, "--dry-run", "--json"]).json();
    assert_eq!(dry["added"], 2, "{dry}");
    let done = new.run(&["import", &export, "--json"]).json();
    assert_eq!(
        (&done["added"], &done["already"]),
        (&2.into(), &1.into()),
        "Bo's two unsent events come, the synced one is here already: {done}"
    );
    assert!(
        done["others"].as_u64().unwrap() >= 1,
        "Ana's events stay hers: {done}"
    );
    let again = new.run(&["import", &export, "--json"]).json();
    assert_eq!((&again["added"], &again["already"]), (&0.into(), &3.into()));
    new.run(&["sync"]).ok();
    ana.run(&["sync"]).ok();
    shows_once(
        &ana,
        &[
            "Synced before the revoke",
            "Logged after the revoke",
            "Thanks for the handover",
        ],
    );
    let kudos = feed(&ana, &[])
        .into_iter()
        .find(|i| i["text"] == "Thanks for the handover")
        .unwrap();
    assert_eq!(
        (&kudos["author"], &kudos["to"][0]),
        (&"bo".into(), &"ana".into())
    );

    // An older cairn's export, which names authors by handle alone (a handle another team's
    // member may share), is refused rather than guessed at.
    let old = bo.path().join("old.json");
    let mut events: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bo.path().join("mine.json")).unwrap())
            .unwrap();
    for e in events.as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("author_id");
    }
    std::fs::write(&old, events.to_string()).unwrap();
    let err = new.run(&["import", &old.display().to_string()]).fails();
    assert!(
        err.contains("older cairn") && err.contains("export again"),
        "{err}"
    );
    // An export of someone else's events is not taken as one's own.
    let anas = ana.path().join("ana.json");
    std::fs::write(&anas, ana.run(&["export"]).ok()).unwrap();
    let cy = Home::joined(&server, &server.invite(&team, 1), &["--name", "Cy"]);
    let err = cy.run(&["import", &anas.display().to_string()]).fails();
    assert!(
        err.contains("none of the") && err.contains("yours"),
        "{err}"
    );
}

#[test]
fn a_replica_follows_its_server_to_a_new_address() {
    let server = Server::start();
    let (ana, _bo, _team) = team_on(&server);
    // Not a server at all: refused, nothing changed.
    let err = ana
        .run(&["remote", "set-url", "http://127.0.0.1:9"])
        .fails();
    assert!(err.contains("cannot reach"), "{err}");
    assert_eq!(
        ana.run(&["remote", "--json"]).json()["server"],
        server.url.as_str()
    );
    // Another cairn-server, which does not know this device: refused too.
    let other = Server::start();
    let err = ana.run(&["remote", "set-url", &other.url]).fails();
    assert!(err.contains("not as this device's server"), "{err}");
    // Down for now: pointed at anyway when asked to, and back.
    ana.run(&["remote", "set-url", "http://127.0.0.1:9", "--no-check"])
        .ok();
    assert!(ana.run(&["sync"]).fails().contains("cannot reach"));
    let out = ana
        .run(&["remote", "set-url", &format!("{}/", server.url)])
        .ok();
    assert!(out.contains(&server.url), "{out}");
    ana.run(&["log", "Still here"]).ok();
    ana.run(&["sync"]).ok();
    assert_eq!(ana.run(&["status", "--json"]).json()["waiting"], 0);
}
