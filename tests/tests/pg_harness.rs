//! The throwaway PostgreSQL harness itself: it starts, serves queries, and leaves nothing behind.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_e2e::pg::Postgres;

/// `select 1` in database `db` with the cluster's own `psql`, over TCP as the `cairn` role (trust
/// auth, so it works as whichever OS user runs the test, root included).
fn select_one(pg: &Postgres, db: &str) -> String {
    let out = Command::new(pg.bin("psql"))
        .args(["-X", "-h", "127.0.0.1", "-p", &pg.port().to_string()])
        .args(["-U", "cairn", "-d", db, "-Atc", "select 1"])
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether process `pid` is still alive; a zombie waiting for a parent that never reaps it counts
/// as gone, since it holds no port and no files.
fn process_alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "PID (COMM) STATE ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn a_cluster_serves_its_databases_and_leaves_nothing_behind() {
    let started = Instant::now();
    let Some(pg) = Postgres::for_test() else {
        return;
    };
    let start_time = started.elapsed();

    let port = pg.port();
    assert_ne!(port, 0);
    let dir = pg.dir().to_path_buf();
    let postmaster_pid = std::fs::read_to_string(pg.data_dir().join("postmaster.pid"))
        .expect("a running cluster has a postmaster.pid")
        .lines()
        .next()
        .expect("postmaster.pid starts with the pid")
        .trim()
        .to_owned();

    let orders = pg.create_db("orders");
    let audit = pg.create_db("audit");
    assert_eq!(orders, format!("postgres://cairn@127.0.0.1:{port}/orders"));
    assert_eq!(audit, pg.url("audit"));

    assert_eq!(select_one(&pg, "orders"), "1");
    assert_eq!(select_one(&pg, "audit"), "1");

    let stopping = Instant::now();
    drop(pg);
    let stop_time = stopping.elapsed();
    eprintln!(
        "pg harness: start {start_time:?}, stop {stop_time:?}, start+stop {:?}",
        start_time + stop_time
    );

    let refused = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}")
            .parse()
            .expect("a socket address"),
        Duration::from_secs(2),
    );
    assert!(
        refused.is_err(),
        "port {port} still accepts connections after drop"
    );
    assert!(
        !process_alive(&postmaster_pid),
        "postmaster {postmaster_pid} still runs after drop"
    );
    assert!(
        !Path::new(&dir).exists(),
        "{} still exists after drop",
        dir.display()
    );
}

#[test]
fn two_clusters_run_side_by_side_on_their_own_ports() {
    let Some(a) = Postgres::for_test() else {
        return;
    };
    let b = Postgres::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    a.create_db("same_name");
    b.create_db("same_name");
    assert_eq!(select_one(&a, "same_name"), "1");
    assert_eq!(select_one(&b, "same_name"), "1");
}
