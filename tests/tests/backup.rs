//! Backups end to end: `cairn-server backup --to FILE` taken while three real `cairn` members
//! write and sync through a real server, then the restore drill: the copy passes its checks, a
//! server started on it serves, and every change its log holds is pulled back byte for byte as
//! the source holds it under the same number.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use cairn_e2e::pg::Postgres;
use cairn_e2e::{Home, Run, Server, bin, http};
use cairn_protocol::{SyncRequest, SyncResponse};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// `cairn-server --db DB backup ARGS...`.
fn backup(db: &str, args: &[&str]) -> Run {
    std::process::Command::new(bin("cairn-server"))
        .args(["--db", db, "backup"])
        .args(args)
        .env_remove("CAIRN_SERVER_DB")
        .env_remove("CAIRN_SERVER_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cairn-server runs")
        .into()
}

/// Every entry of the team's log in `db`: (number, document, hash, bytes), in order.
fn log_of(db: &Path, team: &str) -> Vec<(i64, String, Vec<u8>, Vec<u8>)> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the database opens read-only");
    let mut st = conn
        .prepare("SELECT seq, doc, hash, data FROM changes WHERE team = ?1 ORDER BY seq")
        .unwrap();
    st.query_map([team], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn head_of(db: &Path, team: &str) -> i64 {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("SELECT head FROM teams WHERE id = ?1", [team], |r| r.get(0))
        .unwrap()
}

/// A team of three on `server`: Ana founded it (publishing a team begun offline), Bo and Cy
/// joined; returns their homes and the team's id.
fn three_members(server: &Server) -> (Vec<(String, Home)>, String) {
    let ana = Home::team("Ana", &[]);
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    let team = server.team("Otters");
    ana.run(&["publish", &server.url, "--invite", &server.founder(&team)])
        .ok();
    let invite = server.invite(&team, 5);
    let bo = Home::joined(server, &invite, &["--name", "Bo"]);
    let cy = Home::joined(server, &invite, &["--name", "Cy"]);
    (
        vec![("Ana".into(), ana), ("Bo".into(), bo), ("Cy".into(), cy)],
        team,
    )
}

/// Runs `work` while each member logs and syncs in a loop: after six rounds synced in all, and
/// until six more are; returns what `work` gave and each member's name, rounds and home.
fn under_load<T>(
    members: Vec<(String, Home)>,
    work: impl FnOnce() -> T,
) -> (T, Vec<(String, u32, Home)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (rounds, done) = mpsc::channel::<()>();
    let writers: Vec<_> = members
        .into_iter()
        .map(|(name, home)| {
            let stop = stop.clone();
            let rounds = rounds.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                // The pinned clock allows a few hundred commands a home: two a round.
                while !stop.load(Ordering::Relaxed) && n < 200 {
                    home.run(&["log", &format!("{name}'s round {n}")]).ok();
                    home.run(&["sync"]).ok();
                    n += 1;
                    if rounds.send(()).is_err() {
                        break;
                    }
                }
                (name, n, home)
            })
        })
        .collect();
    drop(rounds);
    for _ in 0..6 {
        done.recv().expect("the writers go on");
    }
    let out = work();
    for _ in 0..6 {
        done.recv().expect("the writers go on");
    }
    stop.store(true, Ordering::Relaxed);
    let finished = writers.into_iter().map(|w| w.join().unwrap()).collect();
    (out, finished)
}

/// Every entry of the log a device of `token` reads from the server at `url`, pulled one change
/// at a time from the start: (number, document, bytes), and the head the server says.
fn pull_all(url: &str, token: &str) -> (Vec<(i64, String, Vec<u8>)>, i64) {
    let mut pulled = Vec::new();
    let mut cursor = 0;
    loop {
        let req = SyncRequest {
            cursor,
            withdrawals: true,
            ..SyncRequest::default()
        };
        let (status, body) = http::post(
            url,
            "/v1/sync",
            Some(token),
            &serde_json::to_vec(&req).unwrap(),
        );
        assert_eq!(status, 200, "{body}");
        let resp: SyncResponse = serde_json::from_str(&body).unwrap();
        pulled.extend(
            resp.pulled
                .into_iter()
                .map(|p| (p.seq as i64, p.doc, p.change.0)),
        );
        cursor = resp.cursor;
        if !resp.more {
            assert_eq!(cursor, resp.head, "a device pulls up to the head");
            return (pulled, cursor as i64);
        }
    }
}

#[test]
fn a_backup_taken_under_load_restores_to_a_server_that_serves_every_change_it_holds() {
    let server = Server::start();
    let (members, team) = three_members(&server);
    let ana_token = members[0].1.meta("token");
    let before = head_of(&server.db(), &team);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.sqlite3");
    let db = server.database().to_owned();
    let (report, finished) = under_load(members, || {
        backup(&db, &["--to", &file.display().to_string(), "--json"])
    });
    let report: Value = report.json();

    // The report: the counts of one moment in the middle of the load, checked.
    assert_eq!(report["integrity"], "ok", "{report}");
    assert_eq!(report["teams"], 1, "{report}");
    assert_eq!(report["devices"], 3, "{report}");
    let logged = &report["logs"][0];
    assert_eq!(logged["id"], team.as_str(), "{report}");
    let backed_head = logged["head"].as_i64().unwrap();
    let source_head = head_of(&server.db(), &team);
    assert!(
        before < backed_head && backed_head < source_head,
        "the backup is of the middle of the load: {before} < {backed_head} < {source_head}"
    );
    assert_eq!(report["changes"], logged["changes"]);

    // The file: private, whole, and holding what the report says.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    assert_eq!(
        report["bytes"].as_u64(),
        Some(std::fs::metadata(&file).unwrap().len())
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers,
        ["cairn.sqlite3"],
        "one file, no temp or WAL beside it"
    );
    {
        let conn = Connection::open_with_flags(&file, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    let backed = log_of(&file, &team);
    let source = log_of(&server.db(), &team);
    assert_eq!(backed.len() as i64, logged["changes"].as_i64().unwrap());
    assert_eq!(backed.last().map(|e| e.0), Some(backed_head));
    assert!(source.len() > backed.len());
    // Every entry of the copy is the source's entry of the same number, and none is missing.
    assert_eq!(backed[..], source[..backed.len()]);

    // Every member's device wrote during the load, and so did the load go on past the backup.
    assert!(finished.iter().all(|(_, n, _)| *n >= 1), "everyone wrote");

    // A server started on the copy serves it: a device of the backup pulls its whole log, one
    // change at a time, exactly as the source stores it.
    let restored = Server::start_shared(&file.display().to_string(), &[]);
    let (status, _) = http::get(&restored.url, "/readyz");
    assert_eq!(status, 200);
    let (pulled, head) = pull_all(&restored.url, &ana_token);
    assert_eq!(head, backed_head);
    let expected: Vec<(i64, String, Vec<u8>)> = backed
        .iter()
        .map(|(seq, doc, _, data)| (*seq, doc.clone(), data.clone()))
        .collect();
    assert_eq!(pulled.len(), expected.len());
    assert!(
        pulled == expected,
        "the restored server serves the backup's log as stored"
    );
}

#[test]
fn an_existing_file_is_kept_without_force_and_replaced_with_it() {
    let server = Server::start();
    let (members, team) = three_members(&server);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nightly.sqlite3");
    let path = file.display().to_string();
    let db = server.database().to_owned();

    let line = backup(&db, &["--to", &path]).ok();
    assert!(
        line.starts_with(&format!("backed up to {path}: 1 team, 3 devices, "))
            && line.contains(" changes, ")
            && line.trim_end().contains(", integrity ok ("),
        "{line}"
    );
    let first = std::fs::read(&file).unwrap();

    members[1].1.run(&["log", "Paired on the flaky test"]).ok();
    members[1].1.run(&["sync"]).ok();
    let err = backup(&db, &["--to", &path]).fails();
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        first,
        "the old backup is untouched"
    );

    let json = backup(&db, &["--to", &path, "--force", "--json"]).json();
    assert_eq!(json["integrity"], "ok");
    assert_eq!(
        json["logs"][0]["head"].as_i64(),
        Some(head_of(&server.db(), &team))
    );
    assert!(head_of(&file, &team) > head_of_bytes(&first, dir.path(), &team));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
}

/// The head of `team` in a database held as bytes (written to a file of its own to read it).
fn head_of_bytes(bytes: &[u8], dir: &Path, team: &str) -> i64 {
    let path = dir.join("earlier.sqlite3");
    std::fs::write(&path, bytes).unwrap();
    head_of(&path, team)
}

#[test]
fn postgres_is_sent_to_pg_dump_and_a_missing_database_to_the_flag() {
    let err = backup(
        "postgres://cairn:hunter2@db.example/cairn",
        &["--to", "x.dump"],
    )
    .fails();
    assert!(
        err.contains("pg_dump -Fc") && err.contains("pg_restore") && !err.contains("hunter2"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("server.sqlite3");
    let err = backup(&missing.display().to_string(), &["--to", "x"]).fails();
    assert!(
        err.contains("--db") && err.contains("CAIRN_SERVER_DB"),
        "{err}"
    );
    assert!(!missing.exists(), "nothing created");
}

/// The commands in backquotes of `text` that start with `program`, as words.
fn quoted_command(text: &str, program: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .find(|c| c.starts_with(program))
        .unwrap_or_else(|| panic!("no `{program} ...` in: {text}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn postgres_backs_up_under_load_and_restores_with_the_commands_the_refusal_names() {
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let source = pg.create_db("source");
    let server = Server::start_shared(&source, &[]);
    let (members, _team) = three_members(&server);
    let token = members[0].1.meta("token");
    let (_, before) = pull_all(&server.url, &token);

    // The refusal says what to run instead: run that, word for word but for the paths.
    let refusal = server.admin(&["backup", "--to", "cairn.sqlite3"]).fails();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("cairn.dump").display().to_string();
    let target = pg.create_db("restored");
    let run = |words: Vec<String>| {
        let words: Vec<String> = words
            .into_iter()
            .map(|w| match w.as_str() {
                "cairn.dump" => dump.clone(),
                _ => w,
            })
            .collect();
        let out = std::process::Command::new(pg.bin(&words[0]))
            .args(&words[1..])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the PostgreSQL tool runs");
        assert!(
            out.status.success(),
            "{words:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let pg_dump = quoted_command(&refusal, "pg_dump");
    assert!(pg_dump.contains(&source), "{refusal}");
    let ((), _) = under_load(members, || run(pg_dump));
    let pg_restore: Vec<String> = quoted_command(&refusal, "pg_restore")
        .into_iter()
        .map(|w| if w == source { target.clone() } else { w })
        .collect();
    run(pg_restore);
    // Then, as the refusal says, the restored database is told so: its logs get an identity of
    // their own, which every device notices at its next sync.
    assert!(refusal.contains("restored --db"), "{refusal}");
    let renewed = std::process::Command::new(bin("cairn-server"))
        .args(["--db", &target, "restored"])
        .env_remove("CAIRN_SERVER_DB")
        .output()
        .expect("cairn-server runs");
    assert!(
        renewed.status.success(),
        "{}",
        String::from_utf8_lossy(&renewed.stderr)
    );

    // A server on the restored database serves the log of the dump's moment, each change as
    // the source holds it under the same number.
    let restored = Server::start_shared(&target, &[]);
    let log_of_server = |url: &str| -> Option<String> {
        let (status, body) = http::post(
            url,
            "/v1/sync",
            Some(&token),
            &serde_json::to_vec(&SyncRequest {
                max_pull: Some(0),
                ..SyncRequest::default()
            })
            .unwrap(),
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<SyncResponse>(&body).unwrap().log
    };
    let (was, is) = (log_of_server(&server.url), log_of_server(&restored.url));
    assert!(was.is_some() && is.is_some() && was != is, "{was:?} {is:?}");
    let (got, head) = pull_all(&restored.url, &token);
    let (all, source_head) = pull_all(&server.url, &token);
    assert!(
        before < head && head < source_head,
        "the dump is of the middle of the load: {before} < {head} < {source_head}"
    );
    assert_eq!(got.last().map(|e| e.0), Some(head));
    assert!(
        got[..] == all[..got.len()],
        "the same entries under the same numbers"
    );
}

#[test]
fn the_readme_backup_command_works_word_for_word() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/backup.md"))
        .expect("the backup page");
    let block = readme
        .split_once("# Backups")
        .and_then(|(_, rest)| rest.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("a sh block under # Backups");
    let mut lines = block.lines();
    let command = lines.next().unwrap();
    let said = lines.next().unwrap().trim_start_matches("# ");

    let server = Server::start();
    let (_members, _team) = three_members(&server);
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().display().to_string();
    let command = command
        .replace("/var/lib/cairn/server.sqlite3", server.database())
        .replace("/backups", &backups);
    let out = std::process::Command::new("sh")
        .args(["-c", &command])
        .env("PATH", path_with_server())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh runs");
    let run = Run::from(out);
    let line = run.ok();
    // The same words as the README's line; only the numbers, the date, the
    // plurals and the unit of the size differ.
    let shape = |text: &str, file: &str| {
        let mut out = String::new();
        let text = text.replace(file, "FILE");
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() {
                while chars
                    .next_if(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
                    .is_some()
                {}
                out.push('N');
            } else {
                out.push(c);
            }
        }
        out.replace("teams", "team")
            .replace("devices", "device")
            .replace("changes", "change")
            .replace("N kB", "N MB")
            .replace("N B,", "N MB,")
    };
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let readme_file = said
        .split_once(": ")
        .and_then(|(head, _)| head.strip_prefix("backed up to "))
        .unwrap();
    assert_eq!(
        shape(line.trim(), &files[0]),
        shape(said, readme_file),
        "{line}"
    );
}

/// PATH with the directory of the `cairn-server` under test first.
fn path_with_server() -> std::ffi::OsString {
    let server = bin("cairn-server");
    let mut dirs = vec![server.parent().unwrap().to_owned()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}
