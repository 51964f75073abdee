//! A server restored from last night's backup loses nothing, end to end: four real `cairn`
//! members of a team on a real `cairn-server`, a backup taken with `cairn-server backup` while
//! it serves, then an hour of work (events, an edit, kudos, a reaction, a change to the team),
//! the server restored from the backup, and one sync each. Every device notices (the restored
//! logs say another identity, or are behind its cursor), sends again what it wrote, and reads
//! the log again: every event of the hour is back on the server and on every replica, exactly
//! once, including those of a member whose device was offline during the restore, one who
//! wrote offline meanwhile, and one who joined after the backup (the restored server knows
//! nothing of her device: she takes her place back with `cairn join URL --invite CODE --again`).

use std::collections::HashMap;

use cairn_e2e::{Home, Server, bin, feed_all};
use rusqlite::Connection;

fn texts(home: &Home) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for item in feed_all(home, &[]) {
        if let Some(t) = item["text"].as_str() {
            *out.entry(t.to_owned()).or_default() += 1;
        }
    }
    out
}

/// How many changes of the team's log have a hash another one has too.
fn duplicated(db: &std::path::Path) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM (SELECT hash FROM changes GROUP BY team, hash HAVING count(*) > 1)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// A backup of `server`'s database taken with `cairn-server backup` while it serves.
struct Backup {
    _dir: tempfile::TempDir,
    copy: std::path::PathBuf,
}

impl Backup {
    fn take(server: &Server) -> Backup {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("backup.sqlite3");
        let out = std::process::Command::new(bin("cairn-server"))
            .args(["--db", &server.db().to_string_lossy(), "backup", "--to"])
            .arg(&copy)
            .env_remove("CAIRN_SERVER_DB")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Backup { _dir: dir, copy }
    }

    /// Stops `server`, puts the backup in its database's place and starts it again.
    fn restore(&self, server: &mut Server) {
        server.kill();
        let db = server.db();
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::copy(&self.copy, &db).unwrap();
        server.restart();
    }
}

#[test]
fn a_server_restored_from_a_backup_gets_back_everything_its_devices_hold() {
    let mut server = Server::start();
    let (team, ana) = server.found_team("Otters", None, "Ana");
    let invite = server.invite(&team, 5);
    let ben = Home::joined(&server, &invite, &["--name", "Ben"]);
    let cy = Home::joined(&server, &invite, &["--name", "Cy"]);
    let eve = Home::joined(&server, &invite, &["--name", "Eve"]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    for h in [&ana, &ben, &cy, &eve, &ana] {
        h.run(&["sync"]).ok();
    }

    // Last night's backup, taken while the server serves.
    let backup = Backup::take(&server);

    // An hour of work, all of it synced. Eve syncs first and then not again before the
    // restore: her place in the log stays low, below what the others send again after it, and
    // she has nothing unsent, so only the restored logs' identity tells her device what
    // happened.
    eve.run(&["log", "Answered the customer's question"]).ok();
    eve.run(&["sync"]).ok();
    cy.run(&["log", "Tidied the backlog"]).ok();
    cy.run(&["sync"]).ok();
    let logged = ana
        .run(&["log", "Paired on the flaky test", "--json"])
        .json();
    let first = logged["short"].as_str().unwrap().to_owned();
    ana.run(&["log", "Reviewed the release notes"]).ok();
    ana.run(&["edit", &first, "Paired with Ben on the flaky test"])
        .ok();
    ana.run(&["team", "pillar", "add", "Curiosity"]).ok();
    ana.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();
    ben.run(&["kudos", "@ana", "Calm incident call"]).ok();
    ben.run(&["react", &first, "🎉"]).ok();
    // A new member joins within the hour.
    let dee = Home::joined(&server, &invite, &["--name", "Dee"]);
    dee.run(&["log", "Read the whole wiki on day one"]).ok();
    dee.run(&["kudos", "@ana", "Thanks for the warm welcome"])
        .ok();
    for h in [&dee, &ben, &ana, &ben] {
        h.run(&["sync"]).ok();
    }
    // Cy goes offline with something unsent.
    cy.run(&["log", "Wrote the retro notes on the train"]).ok();
    let before = texts(&ana);
    assert_eq!(before.len(), 9, "{before:?}");

    // The server is restored from the backup.
    backup.restore(&mut server);
    let db = server.db();

    // One sync each: Ana and Ben now, Cy (offline during the restore) later.
    let said = ana.run(&["sync"]);
    assert!(
        said.stderr
            .contains("the server was restored from a backup"),
        "{}",
        said.stderr
    );
    ben.run(&["sync"]).ok();
    let head = server.changes(&team);
    let cursor: i64 = eve.meta("cursor").parse().unwrap();
    assert!(
        cursor <= head,
        "Eve's place ({cursor}) is within the restored log ({head})"
    );
    assert!(eve.outbox().is_empty(), "Eve has nothing unsent");
    for h in [&eve, &cy] {
        let said = h.run(&["sync"]);
        assert!(
            said.stderr
                .contains("the server was restored from a backup"),
            "{}",
            said.stderr
        );
    }
    // Dee joined after the backup: the restored server knows nothing of her device, says so,
    // and she takes her place back with the invite she joined with.
    let refused = dee.run(&["sync"]).fails();
    assert!(refused.contains("--again"), "{refused}");
    let back = dee
        .run(&[
            "join",
            &server.url,
            "--invite",
            &invite,
            "--again",
            "--json",
        ])
        .json();
    assert!(back["resent"].as_u64().unwrap() >= 3, "{back}");
    // Everything is on the server, once.
    assert_eq!(duplicated(&db), 0, "a change stored twice");
    // A last pull for those who synced before the others sent theirs again.
    for h in [&ana, &ben, &cy, &eve, &dee] {
        h.run(&["sync"]).ok();
    }
    let mut want = before.clone();
    want.insert("Wrote the retro notes on the train".into(), 1);
    for (who, h) in [
        ("Ana", &ana),
        ("Ben", &ben),
        ("Cy", &cy),
        ("Eve", &eve),
        ("Dee", &dee),
    ] {
        assert_eq!(texts(h), want, "{who}");
        let team = h.run(&["team", "--json"]).json();
        assert!(
            team.to_string().contains("Curiosity"),
            "{who}: the pillar is back: {team}"
        );
    }
    // The reaction is back too.
    let items = feed_all(&cy, &[]);
    let paired = items
        .iter()
        .find(|i| i["text"] == "Paired with Ben on the flaky test")
        .expect("the edited event");
    assert_eq!(paired["reactions"][0]["emoji"], "🎉", "{paired}");
    // Nobody takes the place of a member the server knows with a general invite.
    let (status, body) = cairn_e2e::http::post(
        &server.url,
        "/v1/join",
        None,
        &serde_json::to_vec(&cairn_protocol::JoinRequest {
            invite: invite.clone(),
            device_name: "mallory".into(),
            rejoin: Some(ana.meta("me")),
            ..Default::default()
        })
        .unwrap(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("has this member on this server already"),
        "{body}"
    );
    // Dee is a member again for everyone, and a new device reads it all from the server.
    let team_now = ana.run(&["team", "--json"]).json();
    assert!(team_now.to_string().contains("\"dee\""), "{team_now}");
    let fay = Home::joined(&server, &server.invite(&team, 1), &["--name", "Fay"]);
    fay.run(&["sync"]).ok();
    let mut seen = texts(&fay);
    seen.retain(|k, _| want.contains_key(k));
    assert_eq!(seen, want, "Fay");
}

/// A change made on top of one the restored server lost waits, held back, until its author's
/// device sends that one again; everything else of the device goes up meanwhile.
#[test]
fn a_change_on_top_of_one_the_server_lost_waits_for_its_author() {
    let mut server = Server::start();
    let (team, ana) = server.found_team("Otters", None, "Ana");
    let ben = Home::joined(&server, &server.invite(&team, 5), &["--name", "Ben"]);
    for h in [&ana, &ben] {
        h.run(&["sync"]).ok();
    }
    let backup = Backup::take(&server);
    // Ana adds a pillar; Ben, once he has it, says what it means; and logs.
    ana.run(&["team", "pillar", "add", "Curiosity"]).ok();
    ana.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();
    ben.run(&[
        "team",
        "pillar",
        "edit",
        "Curiosity",
        "--about",
        "we ask why",
    ])
    .ok();
    ben.run(&["log", "Asked why the deploy is manual"]).ok();
    ben.run(&["sync"]).ok();

    backup.restore(&mut server);
    let db = server.db();

    // Ben first: his edit waits for Ana's pillar; his event goes up.
    let said = ben.run(&["sync"]);
    assert!(
        said.stderr.contains("wait for changes of others"),
        "{}",
        said.stderr
    );
    assert!(!ben.outbox().is_empty(), "the edit waits here");
    let fresh = Home::joined(&server, &server.invite(&team, 2), &["--name", "Cy"]);
    fresh.run(&["sync"]).ok();
    assert!(
        texts(&fresh).contains_key("Asked why the deploy is manual"),
        "Ben's event went up"
    );
    // Ana's device sends the pillar again; Ben's next sync sends his edit.
    ana.run(&["sync"]).ok();
    ben.run(&["sync"]).ok();
    assert!(ben.outbox().is_empty(), "nothing waits");
    fresh.run(&["sync"]).ok();
    let team = fresh.run(&["team", "--json"]).json();
    assert!(team.to_string().contains("we ask why"), "{team}");
    assert_eq!(duplicated(&db), 0);
}
