//! `cairn-server backup`: a consistent copy of a SQLite database, taken while servers write to
//! it, checked before it is called done.
//!
//! The copy goes through SQLite's online backup API inside one read transaction of the source:
//! the counts read at its start (teams, devices, each log's head and changes) and the pages
//! copied are of the same moment, while writers go on (WAL mode lets them). The copy is written
//! beside the target as a hidden temp file (0600), switched out of WAL mode so it is one file,
//! checked (`PRAGMA integrity_check`, the same counts read back), synced, then renamed over the
//! target name; an existing target is replaced only when asked.
//!
//! The copy's logs get an identity of their own (`server_log`), so that a server restored from it
//! says so to every device, which then sends again what the server lost.
//!
//! PostgreSQL has tools of its own for this; [`BackupError::Postgres`] names them, and
//! `cairn-server restored` gives a restored database its new identity.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `--db` is a PostgreSQL URL.
    #[error(
        "`cairn-server backup` copies a SQLite database; back up PostgreSQL with its own tools \
         while the servers run: `pg_dump -Fc -f cairn.dump {0}`, and restore into an empty \
         database with `pg_restore --no-owner -d {0} cairn.dump`, then run `cairn-server \
         restored --db {0}` before starting the servers"
    )]
    Postgres(String),
    /// The source database file is not there.
    #[error(
        "no database at {0}; name the server's with --db PATH or CAIRN_SERVER_DB (the one \
         `cairn-server serve` uses)"
    )]
    NoDatabase(PathBuf),
    /// The source is a SQLite file but not a server's database.
    #[error("{0} is not a cairn-server database (it has no teams table)")]
    NotOurs(PathBuf),
    /// The target exists and `--force` was not given.
    #[error(
        "{0} exists; name another file, or pass --force to replace it (it stays as it is until \
         the new copy is checked)"
    )]
    Exists(PathBuf),
    /// The target is the database, or its WAL.
    #[error("{0} is the database itself (or its WAL); name a backup file elsewhere")]
    Itself(PathBuf),
    /// The target is a directory.
    #[error("{0} is a directory; name the backup file, like {0}/cairn-server.sqlite3")]
    Directory(PathBuf),
    /// A file operation failed.
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused a step.
    #[error("cannot {what}: {source}")]
    Sqlite {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The copy is damaged, or holds other counts than the source did.
    #[error("the copy failed its check ({0}); nothing was written to the target, try again")]
    Check(String),
}

type Result<T> = std::result::Result<T, BackupError>;

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> BackupError {
    move |source| BackupError::Sqlite { what, source }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> BackupError {
    move |source| BackupError::Io { what, source }
}

/// One log (a team's or an organisation's) as the backup holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogCount {
    pub id: String,
    /// The number of its last entry.
    pub head: i64,
    /// The entries it holds (fewer than `head` once pruned).
    pub changes: i64,
}

/// What the source held at the backup's moment, and so what the copy holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub teams: i64,
    pub orgs: i64,
    pub devices: i64,
    pub invites: i64,
    pub changes: i64,
    pub logs: Vec<LogCount>,
}

/// A backup made and checked.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub file: PathBuf,
    pub bytes: u64,
    pub integrity: &'static str,
    pub seconds: f64,
    #[serde(flatten)]
    pub counts: Counts,
}

impl Report {
    /// The one line a person reads.
    pub fn line(&self) -> String {
        let orgs = match self.counts.orgs {
            0 => String::new(),
            1 => "1 organisation, ".to_owned(),
            n => format!("{n} organisations, "),
        };
        format!(
            "backed up to {}: {} team{}, {orgs}{} device{}, {} change{}, {}, integrity {} ({:.1} s)",
            self.file.display(),
            self.counts.teams,
            plural(self.counts.teams),
            self.counts.devices,
            plural(self.counts.devices),
            thousands(self.counts.changes),
            plural(self.counts.changes),
            size(self.bytes),
            self.integrity,
            self.seconds
        )
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `48210` as `48,210`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn size(bytes: u64) -> String {
    match bytes {
        ..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// Copies the database `db` (the `--db` value) to `to`, checks the copy and says what it holds.
/// `force` lets it replace an existing `to`.
pub fn backup(db: &str, to: &Path, force: bool) -> Result<Report> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        return Err(BackupError::Postgres(crate::store::redact(db)));
    }
    let start = Instant::now();
    let source = Path::new(db);
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source.to_owned()));
    }
    if to.is_dir() {
        return Err(BackupError::Directory(to.to_owned()));
    }
    if !force && to.symlink_metadata().is_ok() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    // `--force` onto the database itself (or a file of its own beside it) would replace what
    // it copies.
    if let (Ok(db), Ok(target)) = (source.canonicalize(), to.canonicalize()) {
        let side = |end: &str| {
            let mut p = db.clone().into_os_string();
            p.push(end);
            PathBuf::from(p)
        };
        if target == db || target == side("-wal") || target == side("-shm") {
            return Err(BackupError::Itself(to.to_owned()));
        }
    }
    // Read-write without create: a missing file is an error, and SQLite may need to write the
    // WAL's shared-memory index to read; nothing else is written to the source.
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql("open the database"))?;
    src.busy_timeout(Duration::from_secs(10))
        .map_err(sql("set a busy timeout"))?;
    let ours: bool = src
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'teams'",
            [],
            |r| r.get(0),
        )
        .map_err(sql("read the database's schema"))?;
    if !ours {
        return Err(BackupError::NotOurs(source.to_owned()));
    }

    let temp = Temp::create(to)?;
    let mut dst = Connection::open(&temp.path).map_err(sql("open the copy"))?;
    // One read transaction: the counts and the pages copied are of the same moment.
    src.execute_batch("BEGIN DEFERRED")
        .map_err(sql("begin a read"))?;
    let held = counts(&src).map_err(sql("count the database's rows"))?;
    let copied = (|| {
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        b.step(-1)
    })();
    // Ends the read either way; a read-only transaction has nothing to commit or lose.
    let _ = src.execute_batch("COMMIT");
    drop(src);
    match copied.map_err(sql("copy the database"))? {
        rusqlite::backup::StepResult::Done => {}
        other => {
            return Err(BackupError::Check(format!(
                "the copy stopped early ({other:?}); the database was busy"
            )));
        }
    }
    // One file with no WAL beside it: what a backup should be. A server opening it goes back
    // to WAL by itself.
    let _mode: String = dst
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(sql("take the copy out of WAL mode"))?;
    // The copy's logs get an identity of their own: a server restored from it says another
    // than the one its devices last saw, and they send again what it lost.
    let has_log: bool = dst
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'server_log'",
            [],
            |r| r.get(0),
        )
        .map_err(sql("read the copy"))?;
    if has_log {
        dst.execute(
            "UPDATE server_log SET log = lower(hex(randomblob(12))) WHERE id = 1",
            [],
        )
        .map_err(sql("give the copy's logs an identity of their own"))?;
    }
    let integrity: Vec<String> = {
        let mut st = dst
            .prepare("PRAGMA integrity_check")
            .map_err(sql("check the copy"))?;
        st.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
            .map_err(sql("check the copy"))?
    };
    if integrity != ["ok"] {
        let shown: Vec<&str> = integrity.iter().take(5).map(String::as_str).collect();
        return Err(BackupError::Check(format!(
            "integrity_check says: {}",
            shown.join("; ")
        )));
    }
    let found = counts(&dst).map_err(sql("count the copy's rows"))?;
    if found != held {
        return Err(BackupError::Check(differences(&held, &found)));
    }
    dst.close()
        .map_err(|(_, e)| e)
        .map_err(sql("close the copy"))?;
    let bytes = temp.finish(to)?;
    Ok(Report {
        file: to.to_owned(),
        bytes,
        integrity: "ok",
        seconds: start.elapsed().as_secs_f64(),
        counts: held,
    })
}

/// What the database holds, read in the caller's transaction.
fn counts(conn: &Connection) -> rusqlite::Result<Counts> {
    let one = |q: &str| conn.query_row(q, [], |r| r.get::<_, i64>(0));
    let orgs = if conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'orgs'",
            [],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false)
    {
        one("SELECT count(*) FROM orgs")?
    } else {
        0
    };
    let mut st = conn.prepare(
        "SELECT t.id, t.head, (SELECT count(*) FROM changes c WHERE c.team = t.id)
         FROM teams t ORDER BY t.id",
    )?;
    let logs: Vec<LogCount> = st
        .query_map([], |r| {
            Ok(LogCount {
                id: r.get(0)?,
                head: r.get(1)?,
                changes: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Counts {
        teams: logs.len() as i64 - orgs,
        orgs,
        devices: one("SELECT count(*) FROM devices")?,
        invites: one("SELECT count(*) FROM invites")?,
        changes: logs.iter().map(|l| l.changes).sum(),
        logs,
    })
}

/// Says how two counts differ, for a failed check.
fn differences(held: &Counts, found: &Counts) -> String {
    let mut out = Vec::new();
    for (what, a, b) in [
        ("teams", held.teams, found.teams),
        ("organisations", held.orgs, found.orgs),
        ("devices", held.devices, found.devices),
        ("invites", held.invites, found.invites),
        ("changes", held.changes, found.changes),
    ] {
        if a != b {
            out.push(format!("{what}: {a} in the database, {b} in the copy"));
        }
    }
    let by_id: BTreeMap<&str, &LogCount> = found.logs.iter().map(|l| (l.id.as_str(), l)).collect();
    for l in &held.logs {
        match by_id.get(l.id.as_str()) {
            Some(c) if *c == l => {}
            Some(c) => out.push(format!(
                "log {}: head {} and {} changes in the database, head {} and {} in the copy",
                l.id, l.head, l.changes, c.head, c.changes
            )),
            None => out.push(format!("log {} is missing from the copy", l.id)),
        }
    }
    if out.is_empty() {
        out.push("the logs differ".to_owned());
    }
    out.join("; ")
}

/// The copy under way: a hidden file beside the target, removed unless it became the target.
struct Temp {
    path: PathBuf,
    done: bool,
}

impl Temp {
    fn create(to: &Path) -> Result<Temp> {
        let dir = match to.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".to_owned());
        let path = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .map_err(io(format!("create {}", path.display())))?;
        Ok(Temp { path, done: false })
    }

    /// Makes the copy durable, gives it the target's name, and returns its size.
    fn finish(mut self, to: &Path) -> Result<u64> {
        let file =
            std::fs::File::open(&self.path).map_err(io(format!("open {}", self.path.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io(format!("make {} private", self.path.display())))?;
        }
        file.sync_all()
            .map_err(io(format!("sync {}", self.path.display())))?;
        let bytes = file
            .metadata()
            .map_err(io(format!("read {}", self.path.display())))?
            .len();
        drop(file);
        std::fs::rename(&self.path, to).map_err(io(format!(
            "rename {} to {}",
            self.path.display(),
            to.display()
        )))?;
        self.done = true;
        // The rename itself survives a crash once the directory is synced.
        #[cfg(unix)]
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(bytes)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
            for side in ["-journal", "-wal", "-shm"] {
                let mut path = self.path.clone().into_os_string();
                path.push(side);
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(48_210), "48,210");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-1_234), "-1,234");
    }

    #[test]
    fn postgres_is_refused_with_its_own_tools_and_no_password() {
        let err = backup(
            "postgres://cairn:secret@db.example/cairn",
            Path::new("x"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("pg_dump -Fc") && err.contains("pg_restore"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn the_database_is_never_its_own_backup() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.sqlite3");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE teams (id TEXT, head INTEGER);
             CREATE TABLE devices (id TEXT); CREATE TABLE invites (id TEXT);
             CREATE TABLE changes (team TEXT, seq INTEGER);
             INSERT INTO teams VALUES ('t', 0);",
        )
        .unwrap();
        let before = std::fs::read(&db).unwrap();
        let name = db.display().to_string();
        for to in [db.clone(), dir.path().join("server.sqlite3-wal")] {
            let err = backup(&name, &to, true).unwrap_err();
            assert!(matches!(err, BackupError::Itself(_)), "{err}");
        }
        assert_eq!(std::fs::read(&db).unwrap(), before);
        // A file elsewhere is fine, and holds what the database does.
        let report = backup(&name, &dir.path().join("copy.sqlite3"), false).unwrap();
        assert_eq!((report.counts.teams, report.integrity), (1, "ok"));
        drop(conn);
    }

    #[test]
    fn a_missing_database_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("none.sqlite3");
        let err = backup(&db.display().to_string(), &dir.path().join("b"), false).unwrap_err();
        assert!(err.to_string().contains("--db"), "{err}");
        assert!(!db.exists(), "nothing created");
    }
}
