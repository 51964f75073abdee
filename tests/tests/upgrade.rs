//! Upgrades without fear: a `cairn-server` killed in the middle of migrating an older database,
//! and a `cairn` killed in the middle of migrating an older replica, leave it as it was; the
//! next start migrates it and everyone goes on syncing. On SQLite and PostgreSQL.
//!
//! The window is hit without timing: debug builds stop before the migration commits when
//! `CAIRN_SERVER_TEST_PAUSE_MIGRATION` (the server) or `CAIRN_TEST_PAUSE_MIGRATION` (the
//! client) is set, say so on stdout and wait; the test then kills them (SIGKILL).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use cairn_e2e::pg::Postgres;
use cairn_e2e::{Home, Server, bin, feed};

/// The latest schemas (SQLite's, PostgreSQL's).
const LATEST: (i64, i64) = (9, 7);

/// The schemas from before relays (SQLite's, PostgreSQL's): three migrations ago on SQLite, so
/// that the one killed runs after others in the same start.
const BEFORE_RELAYS: (i64, i64) = (6, 4);

/// Undoes what the migrations since relays made: the logs' identity, organisations, relays.
const RELAYS_UNDONE: &str = "DROP TABLE server_log; DROP TABLE org_stewards; \
     DROP TABLE org_teams; DROP TABLE orgs; ALTER TABLE invites DROP COLUMN relay; \
     ALTER TABLE devices DROP COLUMN relay;";

/// A team on `server` founded by Ana, who logged an act, with Bo joined; everyone synced.
fn team_of_two(server: &Server) -> (String, Home, Home) {
    let (team, ana) = server.found_team("Otters", None, "Ana");
    ana.run(&["log", "Wrote the onboarding notes"]).ok();
    ana.run(&["sync"]).ok();
    let bo = Home::joined(server, &server.invite(&team, 5), &["--name", "Bo"]);
    ana.run(&["sync"]).ok();
    (team, ana, bo)
}

/// Reads the first line `child` prints, which says it stopped in its migration.
fn paused(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the process prints a line");
    line.trim().to_owned()
}

/// The database's schema version and whether `devices` has its `relay` column (which the
/// migration to relays adds).
fn schema(server: &Server, pg: Option<&Postgres>) -> (i64, bool) {
    match pg {
        None => {
            let conn = rusqlite::Connection::open(server.db()).expect("the database opens");
            let version = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            let relay: bool = conn
                .query_row(
                    "SELECT count(*) > 0 FROM pragma_table_info('devices') WHERE name = 'relay'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (version, relay)
        }
        Some(pg) => {
            let out = Command::new(pg.bin("psql"))
                .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                .args(["-p", &pg.port().to_string(), "-U", "cairn"])
                .args(["-d", server.database().rsplit('/').next().unwrap()])
                .args(["-c", "SELECT version FROM cairn_schema"])
                .args([
                    "-c",
                    "SELECT count(*) > 0 FROM information_schema.columns \
                     WHERE table_name = 'devices' AND column_name = 'relay'",
                ])
                .output()
                .expect("psql runs");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}");
            let mut lines = text.lines();
            let version = lines.next().unwrap().parse().unwrap();
            (version, lines.next() == Some("t"))
        }
    }
}

/// A server killed in the middle of migrating a database from before relays (the last of its
/// migrations run, not committed) leaves it as it was, even while it runs; started again, it
/// migrates it, its members go on syncing, and someone new joins.
fn killed_mid_migration(mut server: Server, pg: Option<&Postgres>) {
    let (team, ana, bo) = team_of_two(&server);
    server.kill();
    server.back_to_schema(pg, RELAYS_UNDONE, LATEST, BEFORE_RELAYS);
    let (before, latest) = match pg {
        None => (BEFORE_RELAYS.0, LATEST.0),
        Some(_) => (BEFORE_RELAYS.1, LATEST.1),
    };

    let mut migrating = Command::new(bin("cairn-server"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CAIRN_SERVER_DB", server.database())
        .env("CAIRN_SERVER_TEST_PAUSE_MIGRATION", latest.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cairn-server starts");
    assert_eq!(
        paused(&mut migrating),
        format!("paused in migration {latest}")
    );
    assert_eq!(
        schema(&server, pg),
        (before, false),
        "nothing of the migration shows before it commits"
    );
    migrating.kill().expect("SIGKILL");
    migrating.wait().expect("the server is gone");
    assert_eq!(
        schema(&server, pg),
        (before, false),
        "killed mid-migration, the database is as it was"
    );

    server.restart();
    assert_eq!(schema(&server, pg), (latest, true), "migrated");
    ana.run(&["log", "Reviewed the runbook"]).ok();
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    assert_eq!(feed(&bo, &[]).len(), 2, "both of Ana's acts");
    let cy = Home::joined(&server, &server.invite(&team, 1), &["--name", "Cy"]);
    assert_eq!(feed(&cy, &[]).len(), 2, "someone new reads the history");
    let devices = server
        .admin(&["device", "list", "--team", &team, "--json"])
        .json();
    assert_eq!(devices.as_array().expect("devices").len(), 3, "{devices}");
}

#[test]
fn a_server_killed_mid_migration_starts_cleanly_next_time_on_sqlite() {
    if !cfg!(debug_assertions) {
        eprintln!("note: the migration's pause is in debug builds only; skipping");
        return;
    }
    killed_mid_migration(Server::start(), None);
}

#[test]
fn a_server_killed_mid_migration_starts_cleanly_next_time_on_postgres() {
    if !cfg!(debug_assertions) {
        eprintln!("note: the migration's pause is in debug builds only; skipping");
        return;
    }
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let url = pg.create_db("killed");
    killed_mid_migration(Server::start_shared(&url, &[]), Some(&pg));
}

/// The replica's schema version and whether `events` has its `honours` column (which the
/// latest migration adds).
fn replica_schema(home: &Home) -> (i64, bool) {
    let conn = rusqlite::Connection::open(home.replica()).expect("the replica opens");
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let honours: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'honours'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (version, honours)
}

/// A `cairn` killed in the middle of migrating a replica of the schema before the latest (its
/// statements, its version and the whole index made again, not committed) leaves it as it was;
/// the next command migrates it and the member goes on syncing.
#[test]
fn a_cairn_killed_mid_migration_opens_its_replica_next_time() {
    if !cfg!(debug_assertions) {
        eprintln!("note: the migration's pause is in debug builds only; skipping");
        return;
    }
    let server = Server::start();
    let (_team, ana, bo) = team_of_two(&server);
    let latest = replica_schema(&ana).0;
    let conn = rusqlite::Connection::open(ana.replica()).expect("the replica opens");
    conn.execute_batch(
        "DROP INDEX events_honours; ALTER TABLE events DROP COLUMN honours; \
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", latest - 1)
        .unwrap();
    drop(conn);
    let before = ana.dump();

    let mut migrating = ana
        .command(&["feed", "--json"])
        .env("CAIRN_TEST_PAUSE_MIGRATION", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cairn starts");
    assert_eq!(paused(&mut migrating), "paused in migration");
    migrating.kill().expect("SIGKILL");
    migrating.wait().expect("cairn is gone");
    assert_eq!(replica_schema(&ana), (latest - 1, false));
    assert_eq!(
        ana.dump(),
        before,
        "killed mid-migration, the replica is as it was"
    );

    assert_eq!(feed(&ana, &[]).len(), 1);
    assert_eq!(replica_schema(&ana), (latest, true), "migrated");
    ana.run(&["log", "Reviewed the runbook"]).ok();
    ana.run(&["sync"]).ok();
    bo.run(&["sync"]).ok();
    assert_eq!(feed(&bo, &[]).len(), 2, "both of Ana's acts");
}

/// A server meeting a database of a newer `cairn-server` refuses to start, says why, and
/// leaves it untouched.
#[test]
fn a_server_refuses_a_database_newer_than_it_knows() {
    let mut server = Server::start();
    server.kill();
    let conn = rusqlite::Connection::open(server.db()).expect("the database opens");
    conn.pragma_update(None, "user_version", LATEST.0 + 1)
        .unwrap();
    drop(conn);
    let out = Command::new(bin("cairn-server"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CAIRN_SERVER_DB", server.database())
        .stdin(Stdio::null())
        .output()
        .expect("cairn-server runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it never listened");
    assert!(
        said.contains(&format!(
            "was written by a newer cairn-server (schema {})",
            LATEST.0 + 1
        )),
        "{said}"
    );
    assert_eq!(schema(&server, None).0, LATEST.0 + 1);
}
