//! A real `cairn-server` process on `127.0.0.1`, on a port the system picks, with its own
//! database in a temp directory; stopped when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{Run, bin};

/// A running server and its database.
#[derive(Debug)]
pub struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Flags given to `serve` besides `--listen`.
    flags: Vec<String>,
    /// The database: this server's own SQLite file, or a PostgreSQL URL shared with others.
    database: String,
}

impl Server {
    /// Starts a server on a fresh database.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts a server on a fresh database with extra `serve` flags (`--max-connections 3`).
    pub fn start_with(flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("a temp dir");
        let database = dir.path().join("server.sqlite3").display().to_string();
        Self::start_on(dir, database, flags)
    }

    /// Starts a server on `database`, a PostgreSQL URL (or SQLite path) other servers may share.
    pub fn start_shared(database: &str, flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("a temp dir");
        Self::start_on(dir, database.to_owned(), flags)
    }

    fn start_on(dir: tempfile::TempDir, database: String, flags: &[&str]) -> Server {
        let mut s = Server {
            dir,
            child: None,
            url: String::new(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            database,
        };
        s.spawn("127.0.0.1:0");
        s
    }

    /// The `--db` value: a SQLite path or a PostgreSQL URL.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `127.0.0.1:PORT`, for raw connections.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The server's database file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("server.sqlite3")
    }

    fn spawn(&mut self, listen: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("a log file");
        let mut child = Command::new(bin("cairn-server"))
            .args(["serve", "--listen", listen])
            .args(&self.flags)
            .env("CAIRN_SERVER_DB", &self.database)
            .env("CAIRN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("cairn-server starts");
        // The first line says where it listens; reading it waits exactly until it does.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("cairn-server prints its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}; log: {}", self.log()))
            .to_owned();
        self.url = url;
        self.child = Some(child);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server at once (SIGKILL): no graceful anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the server to exit; returns whether it exited cleanly.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let status = c.wait().expect("the server exits");
        sent && status.success()
    }

    /// Starts the server again with other `serve` flags, on the same database and address.
    pub fn restart_with(&mut self, flags: &[&str]) {
        self.flags = flags.iter().map(|f| (*f).to_owned()).collect();
        self.restart();
    }

    /// Starts the server again on the same database and the same address.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.url.trim_start_matches("http://").to_owned();
        self.spawn(&addr);
    }

    /// Takes this (stopped) server's database back to an older schema: runs `sql`, which undoes
    /// what the migrations since made, and numbers the schema `to` (SQLite's, PostgreSQL's),
    /// after checking it was at `latest` (SQLite's, PostgreSQL's, in the cluster `pg`).
    pub fn back_to_schema(
        &self,
        pg: Option<&crate::pg::Postgres>,
        sql: &str,
        latest: (i64, i64),
        to: (i64, i64),
    ) {
        match pg {
            None => {
                let conn = rusqlite::Connection::open(self.db()).expect("the database opens");
                let version: i64 = conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(version, latest.0, "the latest SQLite schema");
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", to.0).unwrap();
            }
            Some(pg) => {
                let out = Command::new(pg.bin("psql"))
                    .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                    .args(["-p", &pg.port().to_string(), "-U", "cairn"])
                    .args(["-d", self.database().rsplit('/').next().unwrap()])
                    .args([
                        "-c",
                        &format!(
                            "SELECT version FROM cairn_schema WHERE version = {}",
                            latest.1
                        ),
                    ])
                    .args(["-c", sql])
                    .args(["-c", &format!("UPDATE cairn_schema SET version = {}", to.1)])
                    .output()
                    .expect("psql runs");
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && text.contains("(1 row)"),
                    "the latest PostgreSQL schema is {}: {text}{}",
                    latest.1,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// The hash of the team's last change (not a notice), in hex (SQLite databases).
    pub fn last_change(&self, team: &str) -> String {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let h: Vec<u8> = conn
            .query_row(
                "SELECT hash FROM changes WHERE team = ?1 AND kind = 0 ORDER BY seq DESC",
                [team],
                |r| r.get(0),
            )
            .unwrap();
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Runs `cairn-server ARGS...` on this server's database.
    pub fn admin(&self, args: &[&str]) -> Run {
        admin(&self.database, args)
    }

    /// Creates a team; returns its id.
    pub fn team(&self, name: &str) -> String {
        self.admin(&["team", "create", name]).ok().trim().to_owned()
    }

    /// Creates an invite to `team` for `uses` devices.
    pub fn invite(&self, team: &str, uses: u32) -> String {
        self.admin(&[
            "invite",
            "create",
            "--team",
            team,
            "--uses",
            &uses.to_string(),
        ])
        .ok()
        .trim()
        .to_owned()
    }

    /// Creates the founder's invite to `team` (a name or an id): the one that brings a team
    /// with no history its first, by `cairn publish` or `cairn join`.
    pub fn founder(&self, team: &str) -> String {
        self.admin(&["invite", "create", "--team", team, "--founder"])
            .ok()
            .trim()
            .to_owned()
    }

    /// Creates the organisation `name` with `cairn-server org create`; its id.
    pub fn create_org(&self, name: &str) -> String {
        self.admin(&["org", "create", name]).ok().trim().to_owned()
    }

    /// Creates the team `name` (attached to the organisation `org` if given) and a home whose
    /// founder, called `founder`, joined it on the server (nothing synced after the join):
    /// the team's id and the home.
    pub fn found_team(
        &self,
        name: &str,
        org: Option<&str>,
        founder: &str,
    ) -> (String, crate::Home) {
        let mut args = vec!["team", "create", name];
        if let Some(org) = org {
            args.extend(["--org", org]);
        }
        let team = self.admin(&args).ok().trim().to_owned();
        let home = crate::Home::new();
        home.run(&[
            "join",
            &self.url,
            "--invite",
            &self.founder(&team),
            "--name",
            founder,
        ])
        .ok();
        (team, home)
    }

    /// Creates a one-use invite made for the member `handle` of `team`.
    pub fn invite_for(&self, team: &str, handle: &str) -> String {
        self.admin(&["invite", "create", "--team", team, "--member", handle])
            .ok()
            .trim()
            .to_owned()
    }

    /// How many changes the team's log holds.
    pub fn changes(&self, team: &str) -> i64 {
        if self.database.starts_with("postgres") {
            let teams = self.admin(&["team", "list", "--json"]).json();
            return teams
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["id"] == team))
                .and_then(|t| t["changes"].as_i64())
                .expect("the team is listed");
        }
        let conn = rusqlite::Connection::open(self.db()).expect("the server db opens");
        conn.query_row(
            "SELECT count(*) FROM changes WHERE team = ?1",
            [team],
            |r| r.get(0),
        )
        .expect("a count")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM-like shutdown is tested elsewhere; here we only make sure nothing lingers.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn admin(db: &str, args: &[&str]) -> Run {
    Command::new(bin("cairn-server"))
        .args(args)
        .env("CAIRN_SERVER_DB", db)
        .stdin(Stdio::null())
        .output()
        .expect("cairn-server runs")
        .into()
}

/// The organisation most organisation tests start from: Acme, with Platform (Ana, its steward,
/// and Ben) and Mobile (Cy), founded on one server, nobody synced after joining.
#[derive(Debug)]
pub struct Acme {
    pub org: String,
    pub platform: String,
    pub mobile: String,
    pub ana: crate::Home,
    pub ben: crate::Home,
    pub cy: crate::Home,
}

impl Acme {
    pub fn found(server: &Server) -> Acme {
        let org = server.create_org("Acme");
        let (platform, ana) = server.found_team("Platform", Some("Acme"), "Ana");
        let ben = crate::Home::joined(server, &server.invite(&platform, 3), &["--name", "Ben"]);
        let (mobile, cy) = server.found_team("Mobile", Some("Acme"), "Cy");
        server
            .admin(&["org", "steward", "add", "Acme", "--member", "Platform:@ana"])
            .ok();
        Acme {
            org,
            platform,
            mobile,
            ana,
            ben,
            cy,
        }
    }
}
