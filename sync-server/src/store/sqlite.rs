//! The embedded backend: one SQLite file in WAL mode, one connection, every call on the blocking
//! pool. Right for a team (or a few hundred) on a small box; one process only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    Append, Device, DeviceInfo, DeviceRow, DocRead, DocsPage, DocsQuery, Dump, Facts, FactsQuery,
    Found, Invite, InviteInfo, Kind, LogRow, Logged, MemberDevices, NewInvite, OrgAccess, OrgRows,
    Page, Pruned, PullQuery, Registration, Result, Seen, Store, StoreError, TeamInfo, TeamLog,
    Unavailable,
};

const MIGRATIONS: &[&str] = &[
    // 1: teams, invites, devices, actors and the change logs.
    r#"
    CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        head INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    -- Invite codes and device tokens are kept only as SHA-256 hashes.
    CREATE TABLE invites (
        code_hash BLOB PRIMARY KEY,
        team TEXT NOT NULL REFERENCES teams (id),
        member TEXT,
        uses_left INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        team TEXT NOT NULL REFERENCES teams (id),
        member TEXT NOT NULL,
        name TEXT NOT NULL,
        token_hash BLOB NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        last_seen_ms INTEGER,
        revoked_ms INTEGER,
        importing INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX devices_member ON devices (team, member);
    -- The first device to push a change of an actor owns that actor, across all teams; nobody
    -- else may use it (actor ids are 128 random bits).
    CREATE TABLE actors (
        actor BLOB PRIMARY KEY,
        device TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;
    -- The team's change log, numbered 1, 2, 3, ... per team.
    CREATE TABLE changes (
        team TEXT NOT NULL,
        seq INTEGER NOT NULL,
        doc TEXT NOT NULL,
        hash BLOB NOT NULL,
        actor BLOB NOT NULL,
        actor_seq INTEGER NOT NULL,
        device TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (team, seq)
    ) STRICT;
    CREATE UNIQUE INDEX changes_hash ON changes (team, hash);
    CREATE UNIQUE INDEX changes_actor_seq ON changes (team, doc, actor, actor_seq);
"#,
    // 2: the device that made a link code, so revoking the device takes back its codes.
    r#"
    ALTER TABLE invites ADD COLUMN created_by TEXT;
"#,
    // 3: each document's entries in log order (the server applies every change to its
    // document); withdrawn changes and the notices that tell devices about them; a row the
    // readiness check writes.
    r#"
    CREATE INDEX changes_doc ON changes (team, doc, seq);
    ALTER TABLE changes ADD COLUMN withdrawn_ms INTEGER;
    -- 0: an automerge change; 1: a notice that the changes whose hashes `data` lists were withdrawn.
    ALTER TABLE changes ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL) STRICT;
    -- How many changes of the team were withdrawn: a push checks its dependencies only then.
    ALTER TABLE teams ADD COLUMN withdrawals INTEGER NOT NULL DEFAULT 0;
"#,
    // 4: each document's compacted state as of a log entry, so a document loads without
    // replaying its whole log.
    r#"
    CREATE TABLE snapshots (
        team TEXT NOT NULL,
        doc TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (team, doc)
    ) STRICT;
"#,
    // 5: every document of a team with its last log entry, so a device far behind is sent the
    // documents changed after its cursor without a walk through the log.
    r#"
    CREATE TABLE documents (
        team TEXT NOT NULL,
        doc TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        PRIMARY KEY (team, doc)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO documents (team, doc, last_seq)
        SELECT team, doc, max(seq) FROM changes GROUP BY team, doc;
    -- Pruning: changes folded into a snapshot kept before a horizon go, and what went is
    -- counted; a device behind the last entry pruned catches up from whole documents.
    ALTER TABLE changes ADD COLUMN stored_ms INTEGER;
    ALTER TABLE snapshots ADD COLUMN kept_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE teams ADD COLUMN pruned_through INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE teams ADD COLUMN pruned_changes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE teams ADD COLUMN pruned_bytes INTEGER NOT NULL DEFAULT 0;
"#,
    // 6: the invite made for a team's founder, the only one that brings a team its first
    // history.
    r#"
    ALTER TABLE invites ADD COLUMN founder INTEGER NOT NULL DEFAULT 0;
"#,
    // 7: relays: invites made for them, and the read-only devices of no member they register
    // (their `member` is empty).
    r#"
    ALTER TABLE invites ADD COLUMN relay INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN relay INTEGER NOT NULL DEFAULT 0;
"#,
    // 8: organisations: each one's log is a row of `teams` marked here; the teams attached to
    // one (one organisation at most each), and its stewards (members of those teams).
    r#"
    CREATE TABLE orgs (
        id TEXT PRIMARY KEY REFERENCES teams (id)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE org_teams (
        team TEXT PRIMARY KEY REFERENCES teams (id),
        org TEXT NOT NULL REFERENCES orgs (id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX org_teams_org ON org_teams (org);
    CREATE TABLE org_stewards (
        org TEXT NOT NULL REFERENCES orgs (id),
        team TEXT NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (org, team, member)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX org_stewards_team ON org_stewards (team, member);
"#,
    // 9: the identity of this database's logs, said with every sync: a backup gets a new one,
    // so devices of a server restored from it notice and send again what it lost.
    r#"
    CREATE TABLE server_log (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        log TEXT NOT NULL
    ) STRICT;
    INSERT INTO server_log (id, log) VALUES (1, lower(hex(randomblob(12))));
"#,
];

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Unavailable(Unavailable::Busy)
            }
            // A full disk is the operator's to fix and passes: the client tries again later.
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Unavailable(Unavailable::DiskFull),
            Some(rusqlite::ErrorCode::ConstraintViolation) => {
                StoreError::Collided(format!("sqlite: {e}"))
            }
            _ => StoreError::Other(format!("sqlite: {e}")),
        }
    }
}

/// The SQLite backend.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    checkpoints: Mutex<Option<Checkpoints>>,
}

/// The thread that copies the WAL into the database; dropping it stops the thread and waits for
/// it.
#[derive(Debug)]
struct Checkpoints {
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Creates the database file readable by its owner only (0600), in a directory of its own
/// (0700) when that is made here: it holds the hashes of every token and the teams' histories.
/// SQLite gives its `-wal` and `-shm` files the database's permissions.
fn create_private(path: &Path) -> Result<()> {
    let fail = |what: &Path, e: std::io::Error| {
        StoreError::Other(format!("cannot create {}: {e}", what.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| fail(dir, e))?;
    }
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(path, e)),
        }
    }
    Ok(())
}

/// The variable that stops a debug build in the middle of a migration, for the test that
/// kills it there.
#[cfg(debug_assertions)]
const PAUSE_MIGRATION: &str = "CAIRN_SERVER_TEST_PAUSE_MIGRATION";

/// Test-only, in debug builds: with `CAIRN_SERVER_TEST_PAUSE_MIGRATION=N`, stops once migration
/// `N` (of this backend's list, from 1) and its version ran, before the transaction commits,
/// says `paused in migration N` on stdout and waits to be killed, so that a test kills the
/// server mid-migration without guessing at timing. The one place the store writes to stdout
/// or blocks for ever: release builds have none of it.
pub(super) fn pause_in_migration(step: usize) {
    #[cfg(debug_assertions)]
    if std::env::var(PAUSE_MIGRATION)
        .ok()
        .and_then(|v| v.parse().ok())
        == Some(step)
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "paused in migration {step}");
        let _ = out.flush();
        drop(out);
        loop {
            std::thread::park();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

/// Takes group and other permissions off a file, if it exists and has any.
fn tighten(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                let _ =
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, migrating it forward.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        create_private(path)?;
        // A database made before it was private becomes so now: it holds every team's history.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            tighten(Path::new(&name));
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement of a sync stays prepared: past the cache, SQLite parses it again on
        // every request (a quarter of a no-op sync's time, measured).
        conn.set_prepared_statement_cache_capacity(64);
        // The plans never depend on bound values: otherwise SQLite prepares a statement again
        // whenever a cursor it was planned with changes (every sync; measured: a fifth of a
        // push's time).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        // FULL: a change the server acknowledged is on disk, because the client then forgets it.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::Other(format!(
                "{} was written by a newer cairn-server (schema {version})",
                path.display()
            )));
        }
        // Every pending migration and the version it leaves run in this one transaction (DDL
        // and `user_version` are transactional in SQLite): a server killed halfway leaves the
        // database as it was, and the next start migrates it from there.
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            pause_in_migration(i + 1);
        }
        tx.commit()?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
            checkpoints: Mutex::new(None),
        })
    }

    /// Moves WAL checkpoints off the request path: a thread with a connection of its own copies
    /// the WAL into the database every half second, without blocking the writer, so no request
    /// waits behind a checkpoint (they made the 99th percentile of pushes ten times the median).
    /// The thread stops when the store is dropped.
    pub fn checkpoint_in_background(&self) -> Result<()> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        lock(&self.conn).execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_millis(500))
                {
                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                }
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
            })
            .map_err(|e| StoreError::Other(format!("cannot start the checkpoint thread: {e}")))?;
        *lock(&self.checkpoints) = Some(Checkpoints {
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(|e| StoreError::Other(format!("a worker failed: {e}")))?
    }

    /// The connection, for tests that need to break it.
    #[cfg(test)]
    fn raw(&self) -> std::sync::MutexGuard<'_, Connection> {
        lock(&self.conn)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite half-written (the transaction rolls
    // back), so a poisoned lock is still a good connection.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn exists(conn: &Connection, team: &str) -> Result<()> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM teams WHERE id = ?1")?
        .query_row([team], |r| r.get(0))
        .optional()?;
    found
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ready(&self, now_ms: i64) -> Result<()> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO health (id, at_ms) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
                [now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_team(&self, id: &str, name: &str, now_ms: i64) -> Result<()> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.call(move |c| {
            c.execute(
                "INSERT INTO teams (id, name, created_ms) VALUES (?1, ?2, ?3)",
                params![id, name, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn teams(&self) -> Result<Vec<TeamInfo>> {
        self.call(|c| {
            let mut st = c.prepare(
                "SELECT id, name, created_ms, head,
                        (SELECT count(*) FROM devices d
                         WHERE d.team = t.id AND revoked_ms IS NULL),
                        (SELECT coalesce(sum(length(data)), 0) FROM changes c
                         WHERE c.team = t.id),
                        (SELECT coalesce(sum(length(data)), 0) FROM snapshots n
                         WHERE n.team = t.id),
                        pruned_changes, pruned_bytes
                 FROM teams t WHERE id NOT IN (SELECT id FROM orgs)
                 ORDER BY created_ms, id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(TeamInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_ms: r.get(2)?,
                    changes: r.get(3)?,
                    devices: r.get(4)?,
                    log_bytes: r.get(5)?,
                    snapshot_bytes: r.get(6)?,
                    pruned_changes: r.get(7)?,
                    pruned_bytes: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn team_log(&self, team: &str) -> Result<TeamLog> {
        let team = team.to_owned();
        self.call(move |c| {
            c.prepare_cached("SELECT head, withdrawals, pruned_through FROM teams WHERE id = ?1")?
                .query_row([&team], |r| {
                    Ok(TeamLog {
                        head: r.get(0)?,
                        withdrawals: r.get(1)?,
                        pruned: r.get(2)?,
                    })
                })
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))
        })
        .await
    }

    async fn team_name(&self, team: &str) -> Result<String> {
        let team = team.to_owned();
        self.call(move |c| {
            c.prepare_cached("SELECT name FROM teams WHERE id = ?1")?
                .query_row([&team], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))
        })
        .await
    }

    async fn team_names(&self) -> Result<Vec<(String, String)>> {
        self.call(|c| {
            let mut st = c.prepare(
                "SELECT id, name FROM teams WHERE id NOT IN (SELECT id FROM orgs)
                 ORDER BY created_ms, id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn add_invite(&self, i: &NewInvite) -> Result<()> {
        let i = i.clone();
        self.call(move |c| {
            exists(c, &i.team)?;
            insert_invite(c, &i)?;
            Ok(())
        })
        .await
    }

    async fn invites(&self, team: Option<&str>, now_ms: i64) -> Result<Vec<InviteInfo>> {
        let team = team.map(str::to_owned);
        self.call(move |c| {
            if let Some(team) = &team {
                exists(c, team)?;
            }
            let mut st = c.prepare(
                "SELECT code_hash, team, member, uses_left, expires_ms, created_ms, created_by,
                        founder, relay
                 FROM invites WHERE (?1 IS NULL OR team = ?1) AND uses_left > 0 AND expires_ms > ?2
                 ORDER BY created_ms, code_hash",
            )?;
            let rows = st.query_map(params![team, now_ms], |r| {
                Ok(InviteInfo {
                    code_hash: r.get(0)?,
                    team: r.get(1)?,
                    member: r.get(2)?,
                    uses_left: r.get(3)?,
                    expires_ms: r.get(4)?,
                    created_ms: r.get(5)?,
                    created_by: r.get(6)?,
                    founder: r.get(7)?,
                    relay: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn remove_invite(&self, code_hash: &[u8]) -> Result<bool> {
        let code_hash = code_hash.to_vec();
        self.call(move |c| {
            Ok(c.execute("DELETE FROM invites WHERE code_hash = ?1", [&code_hash])? > 0)
        })
        .await
    }

    async fn invite(&self, code_hash: &[u8]) -> Result<Option<Invite>> {
        let code_hash = code_hash.to_vec();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT team, member, uses_left, expires_ms, founder, relay FROM invites
                 WHERE code_hash = ?1",
                [&code_hash],
                |r| {
                    Ok(Invite {
                        team: r.get(0)?,
                        member: r.get(1)?,
                        uses_left: r.get(2)?,
                        expires_ms: r.get(3)?,
                        founder: r.get(4)?,
                        relay: r.get(5)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn live_links(&self, device: &str, now_ms: i64) -> Result<i64> {
        let device = device.to_owned();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT count(*) FROM invites
                 WHERE created_by = ?1 AND uses_left > 0 AND expires_ms > ?2",
                params![device, now_ms],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn register(&self, reg: &Registration) -> Result<()> {
        let reg = reg.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let invite = tx
                .query_row(
                    "SELECT uses_left, expires_ms FROM invites WHERE code_hash = ?1",
                    [&reg.invite_hash],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let head: i64 = tx
                .query_row("SELECT head FROM teams WHERE id = ?1", [&reg.team], |r| {
                    r.get(0)
                })
                .optional()?
                .unwrap_or(0);
            let active: i64 = tx.query_row(
                "SELECT count(*) FROM devices
                 WHERE team = ?1 AND member = ?2 AND relay = ?3 AND revoked_ms IS NULL",
                params![reg.team, reg.member, reg.relay],
                |r| r.get(0),
            )?;
            (reg.admit)(
                &reg,
                &Seen {
                    invite,
                    head,
                    active,
                },
            )?;
            tx.execute(
                "UPDATE invites SET uses_left = uses_left - 1 WHERE code_hash = ?1",
                [&reg.invite_hash],
            )?;
            if reg.publish {
                tx.execute(
                    "DELETE FROM invites WHERE created_by IN
                     (SELECT id FROM devices WHERE team = ?1 AND revoked_ms IS NULL)",
                    [&reg.team],
                )?;
                tx.execute(
                    "UPDATE devices SET revoked_ms = ?2 WHERE team = ?1 AND revoked_ms IS NULL",
                    params![reg.team, reg.now_ms],
                )?;
            }
            tx.execute(
                "INSERT INTO devices (id, team, member, name, token_hash, created_ms, importing,
                                      relay)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    reg.device_id,
                    reg.team,
                    reg.member,
                    reg.name,
                    reg.token_hash,
                    reg.now_ms,
                    reg.publish,
                    reg.relay
                ],
            )?;
            if let Some(name) = &reg.rename {
                tx.execute(
                    "UPDATE teams SET name = ?2 WHERE id = ?1",
                    params![reg.team, name],
                )?;
            }
            tx.prepare_cached(
                "DELETE FROM invites
                 WHERE expires_ms < ?1 OR (uses_left <= 0 AND created_ms < ?1)",
            )?
            .execute([reg.forget_before_ms])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn devices(&self, team: Option<&str>) -> Result<Vec<DeviceInfo>> {
        let team = team.map(str::to_owned);
        self.call(move |c| {
            if let Some(team) = &team {
                exists(c, team)?;
            }
            let mut st = c.prepare(
                "SELECT id, team, member, name, created_ms, last_seen_ms, revoked_ms, relay
                 FROM devices WHERE ?1 IS NULL OR team = ?1 ORDER BY created_ms, id",
            )?;
            let rows = st.query_map([team], device_info)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn member_devices(&self, team: &str) -> Result<Vec<MemberDevices>> {
        let team = team.to_owned();
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT member, count(*), coalesce(sum(importing), 0) FROM devices
                 WHERE team = ?1 AND revoked_ms IS NULL AND relay = 0
                 GROUP BY member ORDER BY member",
            )?;
            let rows = st.query_map([team], |r| {
                Ok(MemberDevices {
                    member: r.get(0)?,
                    active: r.get(1)?,
                    importing: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn device_by_token(&self, token_hash: &[u8]) -> Result<Option<Device>> {
        let token_hash = token_hash.to_vec();
        self.call(move |c| {
            Ok(c.prepare_cached(
                "SELECT d.id, d.team, d.member, d.importing, d.last_seen_ms, d.revoked_ms, t.head,
                        t.pruned_through, d.relay
                 FROM devices d JOIN teams t ON t.id = d.team WHERE d.token_hash = ?1",
            )?
            .query_row([&token_hash], |r| {
                Ok(Device {
                    id: r.get(0)?,
                    team: r.get(1)?,
                    member: r.get(2)?,
                    importing: r.get(3)?,
                    last_seen_ms: r.get(4)?,
                    revoked: r.get::<_, Option<i64>>(5)?.is_some(),
                    team_head: r.get(6)?,
                    team_pruned: r.get(7)?,
                    relay: r.get(8)?,
                    org: None,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn revoke(&self, device: &str, now_ms: i64) -> Result<()> {
        let device = device.to_owned();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE devices SET revoked_ms = coalesce(revoked_ms, ?2) WHERE id = ?1",
                params![device, now_ms],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no device `{device}`")));
            }
            tx.execute("DELETE FROM invites WHERE created_by = ?1", [&device])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn touch(&self, device: &str, now_ms: i64, import_done: bool) -> Result<()> {
        let device = device.to_owned();
        self.call(move |c| {
            c.prepare_cached(
                "UPDATE devices SET last_seen_ms = ?2,
                        importing = CASE WHEN ?3 THEN 0 ELSE importing END
                 WHERE id = ?1",
            )?
            .execute(params![device, now_ms, import_done])?;
            Ok(())
        })
        .await
    }

    async fn turn(&self, _team: &str) -> Result<super::Turn> {
        Ok(super::Turn::default())
    }

    async fn facts(&self, team: &str, q: &FactsQuery) -> Result<Facts> {
        let (team, q) = (team.to_owned(), q.clone());
        self.call(move |c| {
            let tx = c.transaction()?;
            let log = tx
                .prepare_cached("SELECT head, withdrawals FROM teams WHERE id = ?1")?
                .query_row([&team], |r| {
                    Ok(TeamLog {
                        head: r.get(0)?,
                        withdrawals: r.get(1)?,
                        pruned: 0,
                    })
                })
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))?;
            let mut facts = Facts {
                log,
                ..Facts::default()
            };
            {
                let mut st = tx.prepare_cached("SELECT device FROM actors WHERE actor = ?1")?;
                for actor in &q.actors {
                    if let Some(d) = st.query_row([actor], |r| r.get(0)).optional()? {
                        facts.owners.insert(actor.clone(), d);
                    }
                }
                let mut st = tx.prepare_cached(
                    "SELECT doc, withdrawn_ms IS NOT NULL FROM changes
                     WHERE team = ?1 AND hash = ?2",
                )?;
                for hash in &q.hashes {
                    if let Some(found) = st
                        .query_row(params![team, hash], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?
                    {
                        facts.known.insert(hash.clone(), found);
                    }
                }
                let mut st = tx.prepare_cached(
                    "SELECT actor_seq, hash FROM changes
                     WHERE team = ?1 AND doc = ?2 AND actor = ?3
                     ORDER BY actor_seq DESC LIMIT 1",
                )?;
                for (doc, actor) in &q.tips {
                    if let Some(tip) = st
                        .query_row(params![team, doc, actor], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?
                    {
                        facts.tips.insert((doc.clone(), actor.clone()), tip);
                    }
                }
            }
            tx.commit()?;
            Ok(facts)
        })
        .await
    }

    async fn append(&self, team: &str, a: &Append) -> Result<i64> {
        let (team, a) = (team.to_owned(), a.clone());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let head: i64 = tx
                .prepare_cached("SELECT head FROM teams WHERE id = ?1")?
                .query_row([&team], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))?;
            if head != a.base_head {
                return Err(StoreError::HeadMoved);
            }
            for (actor, device) in &a.claims {
                let owner: String = tx
                    .prepare_cached(
                        "INSERT INTO actors (actor, device) VALUES (?1, ?2)
                         ON CONFLICT (actor) DO UPDATE SET device = device
                         RETURNING device",
                    )?
                    .query_row(params![actor, device], |r| r.get(0))?;
                if owner != *device {
                    return Err(StoreError::ActorTaken);
                }
            }
            // A snapshot holds what it folded in: withdrawn content goes with it.
            for e in a.entries.iter().filter(|e| e.kind == Kind::Notice) {
                tx.prepare_cached("DELETE FROM snapshots WHERE team = ?1 AND doc = ?2")?
                    .execute(params![team, e.doc])?;
            }
            for seq in &a.withdraw {
                tx.prepare_cached(
                    "UPDATE changes SET withdrawn_ms = ?3, data = x''
                     WHERE team = ?1 AND seq = ?2",
                )?
                .execute(params![team, seq, a.withdrawn_ms])?;
            }
            let mut seq = head;
            for e in &a.entries {
                seq += 1;
                insert_entry(&tx, &team, seq, e, Some(a.stored_ms))?;
            }
            // A withdrawal hands the documents it touched back as they are without it.
            for (doc, data) in &a.snapshots {
                tx.prepare_cached(
                    "INSERT INTO snapshots (team, doc, seq, data, kept_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (team, doc) DO UPDATE SET seq = excluded.seq, data = excluded.data,
                         kept_ms = excluded.kept_ms",
                )?
                .execute(params![team, doc, seq, data, a.stored_ms])?;
            }
            if seq != head || a.withdrawals != 0 {
                tx.prepare_cached(
                    "UPDATE teams SET head = ?2, withdrawals = withdrawals + ?3 WHERE id = ?1",
                )?
                .execute(params![team, seq, a.withdrawals])?;
            }
            tx.commit()?;
            Ok(seq)
        })
        .await
    }

    async fn docs_changes(
        &self,
        team: &str,
        after: &[(String, i64)],
    ) -> Result<Vec<(String, i64, Vec<u8>)>> {
        let (team, after) = (team.to_owned(), after.to_vec());
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT seq, data FROM changes
                 WHERE team = ?1 AND doc = ?2 AND seq > ?3 AND kind = 0 AND withdrawn_ms IS NULL
                 ORDER BY seq",
            )?;
            let mut out = Vec::new();
            for (doc, from) in &after {
                let rows = st.query_map(params![team, doc, from], |r| {
                    Ok((doc.clone(), r.get(0)?, r.get(1)?))
                })?;
                for row in rows {
                    out.push(row?);
                }
            }
            out.sort_by_key(|(_, seq, _)| *seq);
            Ok(out)
        })
        .await
    }

    async fn snapshot(&self, team: &str, doc: &str) -> Result<Option<(i64, Vec<u8>)>> {
        let (team, doc) = (team.to_owned(), doc.to_owned());
        self.call(move |c| {
            Ok(
                c.prepare_cached("SELECT seq, data FROM snapshots WHERE team = ?1 AND doc = ?2")?
                    .query_row(params![team, doc], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            )
        })
        .await
    }

    async fn put_snapshot(
        &self,
        team: &str,
        doc: &str,
        seq: i64,
        data: &[u8],
        withdrawals: i64,
    ) -> Result<bool> {
        let (team, doc, data) = (team.to_owned(), doc.to_owned(), data.to_vec());
        self.call(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO snapshots (team, doc, seq, data, kept_ms)
                     SELECT ?1, ?2, ?3, ?4, ?6 FROM teams WHERE id = ?1 AND withdrawals = ?5
                     ON CONFLICT (team, doc) DO UPDATE SET seq = excluded.seq, data = excluded.data,
                         kept_ms = excluded.kept_ms
                     WHERE excluded.seq > snapshots.seq",
                )?
                .execute(params![team, doc, seq, data, withdrawals, super::now_ms()])?;
            Ok(n == 1)
        })
        .await
    }

    async fn prune(&self, team: &str, before_ms: i64) -> Result<Pruned> {
        let team = team.to_owned();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            exists(&tx, &team)?;
            // What goes: changes (not notices, not withdrawn ones, which keep their hashes)
            // stored before the horizon, folded into their document's snapshot kept before it
            // too, except each actor's last change in each document (its numbering goes on
            // from there).
            const PRUNABLE: &str = "team = ?1 AND kind = 0 AND withdrawn_ms IS NULL
                AND coalesce(stored_ms, 0) < ?2
                AND seq <= (SELECT s.seq FROM snapshots s
                            WHERE s.team = changes.team AND s.doc = changes.doc
                              AND s.kept_ms < ?2)
                AND actor_seq < (SELECT max(t.actor_seq) FROM changes t
                                 WHERE t.team = changes.team AND t.doc = changes.doc
                                   AND t.actor = changes.actor)";
            let (changes, bytes, through): (i64, i64, Option<i64>) = tx.query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(length(data)), 0), max(seq) FROM changes
                     WHERE {PRUNABLE}"
                ),
                params![team, before_ms],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            if changes > 0 {
                tx.execute(
                    &format!("DELETE FROM changes WHERE {PRUNABLE}"),
                    params![team, before_ms],
                )?;
                tx.execute(
                    "UPDATE teams SET pruned_through = max(pruned_through, ?2),
                         pruned_changes = pruned_changes + ?3, pruned_bytes = pruned_bytes + ?4
                     WHERE id = ?1",
                    params![team, through, changes, bytes],
                )?;
            }
            tx.commit()?;
            Ok(Pruned { changes, bytes })
        })
        .await
    }

    async fn pull_docs(&self, q: &DocsQuery) -> Result<DocsPage> {
        let q = q.clone();
        self.call(move |c| {
            // One read transaction: the snapshots and tails agree with each other and the head.
            let tx = c.transaction()?;
            let (head, withdrawals): (i64, i64) = tx
                .prepare_cached("SELECT head, withdrawals FROM teams WHERE id = ?1")?
                .query_row([&q.team], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no team `{}`", q.team)))?;
            let names: Vec<String> = tx
                .prepare_cached(
                    "SELECT doc FROM documents WHERE team = ?1 AND last_seq > ?2 AND doc > ?3
                     ORDER BY doc LIMIT ?4",
                )?
                .query_map(params![q.team, q.after, q.after_doc, q.max_docs], |r| {
                    r.get(0)
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut page = DocsPage {
                head,
                withdrawals,
                ..DocsPage::default()
            };
            let mut snap = tx.prepare_cached(
                "SELECT seq, data FROM snapshots WHERE team = ?1 AND doc = ?2 AND seq > ?3",
            )?;
            let mut tail = tx.prepare_cached(
                "SELECT seq, data FROM changes
                 WHERE team = ?1 AND doc = ?2 AND seq > ?3 AND kind = 0 AND withdrawn_ms IS NULL
                 ORDER BY seq",
            )?;
            let mut bytes = 0usize;
            for doc in names {
                let snapshot: Option<(i64, Vec<u8>)> = snap
                    .query_row(params![q.team, doc, q.after], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                let from = snapshot.as_ref().map_or(q.after, |(seq, _)| *seq);
                let rows: Vec<(i64, Vec<u8>)> = tail
                    .query_map(params![q.team, doc, from], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let size = snapshot.as_ref().map_or(0, |(_, d)| d.len())
                    + rows.iter().map(|(_, d)| d.len()).sum::<usize>();
                if !page.docs.is_empty() && bytes + size > q.max_bytes {
                    break;
                }
                bytes += size;
                page.docs.push(DocRead {
                    doc,
                    snapshot,
                    tail: rows,
                });
            }
            let last = page
                .docs
                .last()
                .map_or(q.after_doc.clone(), |d| d.doc.clone());
            page.left = tx
                .prepare_cached(
                    "SELECT count(*) FROM documents WHERE team = ?1 AND last_seq > ?2 AND doc > ?3",
                )?
                .query_row(params![q.team, q.after, last], |r| r.get(0))?;
            if let Some(through) = q.notices_through {
                let mut st = tx.prepare_cached(
                    "SELECT seq, doc, data FROM changes
                     WHERE team = ?1 AND seq > ?2 AND seq <= ?3 AND kind = 1 ORDER BY seq",
                )?;
                let rows = st.query_map(params![q.team, q.after, through], |r| {
                    Ok(Logged {
                        seq: r.get(0)?,
                        doc: r.get(1)?,
                        data: r.get(2)?,
                        kind: Kind::Notice,
                    })
                })?;
                for row in rows {
                    page.notices.push(row?);
                }
            }
            Ok(page)
        })
        .await
    }

    async fn pull(&self, q: &PullQuery) -> Result<Page> {
        let q = q.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let (head, pruned): (i64, i64) = tx
                .prepare_cached("SELECT head, pruned_through FROM teams WHERE id = ?1")?
                .query_row([&q.team], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no team `{}`", q.team)))?;
            let mut page = Page {
                head,
                entries: Vec::new(),
                more: false,
                pruned,
            };
            if q.max > 0 && q.after < head {
                // Two texts, not a parameter in the condition: SQLite prepares again a statement
                // whose plan a bound value could change, on every request.
                let mut st = tx.prepare_cached(if q.notices {
                    "SELECT seq, doc, data, kind, hash FROM changes
                     WHERE team = ?1 AND seq > ?2 AND withdrawn_ms IS NULL
                     ORDER BY seq LIMIT ?3"
                } else {
                    "SELECT seq, doc, data, kind, hash FROM changes
                     WHERE team = ?1 AND seq > ?2 AND withdrawn_ms IS NULL AND kind = 0
                     ORDER BY seq LIMIT ?3"
                })?;
                // (The request's own changes are read and passed over: room for them too.)
                let limit = i64::from(q.max) + q.skip.len() as i64;
                let mut rows = st.query(params![q.team, q.after, limit])?;
                let mut bytes = 0usize;
                let mut read = 0i64;
                while let Some(r) = rows.next()? {
                    read += 1;
                    if !q.skip.is_empty()
                        && q.skip
                            .contains(r.get_ref(4)?.as_blob().map_err(rusqlite::Error::from)?)
                    {
                        continue;
                    }
                    let data: Vec<u8> = r.get(2)?;
                    bytes += data.len();
                    if !page.entries.is_empty() && bytes > q.max_bytes {
                        page.more = true;
                        break;
                    }
                    page.entries.push(Logged {
                        seq: r.get(0)?,
                        doc: r.get(1)?,
                        data,
                        kind: Kind::from_i64(r.get(3)?),
                    });
                }
                if read == limit {
                    page.more = true;
                }
            }
            drop(tx);
            Ok(page)
        })
        .await
    }

    async fn find_changes(&self, team: &str, prefix: &str, limit: u32) -> Result<Vec<Found>> {
        let (team, prefix) = (team.to_owned(), prefix.to_ascii_lowercase());
        self.call(move |c| {
            exists(c, &team)?;
            let mut st = c.prepare(
                "SELECT seq, hash, doc, withdrawn_ms IS NOT NULL FROM changes
                 WHERE team = ?1 AND kind = 0 AND lower(hex(hash)) LIKE ?2 || '%'
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![team, prefix, limit], |r| {
                Ok(Found {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                    doc: r.get(2)?,
                    withdrawn: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn create_org(&self, id: &str, name: &str, now_ms: i64) -> Result<()> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO teams (id, name, created_ms) VALUES (?1, ?2, ?3)",
                params![id, name, now_ms],
            )?;
            tx.execute("INSERT INTO orgs (id) VALUES (?1)", [&id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn server_log(&self) -> Result<String> {
        self.call(|c| Ok(c.query_row("SELECT log FROM server_log WHERE id = 1", [], |r| r.get(0))?))
            .await
    }

    async fn renew_server_log(&self) -> Result<String> {
        self.call(|c| {
            Ok(c.query_row(
                "UPDATE server_log SET log = lower(hex(randomblob(12))) WHERE id = 1 RETURNING log",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn org_rows(&self) -> Result<OrgRows> {
        self.call(|c| {
            let tx = c.transaction()?;
            let mut rows = OrgRows::default();
            {
                let mut st = tx.prepare(
                    "SELECT o.id, t.name, t.created_ms FROM orgs o JOIN teams t ON t.id = o.id
                     ORDER BY t.created_ms, o.id",
                )?;
                rows.orgs = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = tx.prepare("SELECT team, org FROM org_teams ORDER BY org, team")?;
                rows.teams = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = tx.prepare(
                    "SELECT org, team, member FROM org_stewards ORDER BY org, team, member",
                )?;
                rows.stewards = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(rows)
        })
        .await
    }

    async fn set_team_org(&self, team: &str, org: Option<&str>) -> Result<()> {
        let (team, org) = (team.to_owned(), org.map(str::to_owned));
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM org_stewards WHERE team = ?1", [&team])?;
            tx.execute("DELETE FROM org_teams WHERE team = ?1", [&team])?;
            if let Some(org) = org {
                tx.execute(
                    "INSERT INTO org_teams (team, org) VALUES (?1, ?2)",
                    [&team, &org],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn set_steward(
        &self,
        org: &str,
        team: &str,
        member: &str,
        steward: bool,
    ) -> Result<bool> {
        let (org, team, member) = (org.to_owned(), team.to_owned(), member.to_owned());
        self.call(move |c| {
            let n = if steward {
                c.execute(
                    "INSERT INTO org_stewards (org, team, member) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                    [&org, &team, &member],
                )?
            } else {
                c.execute(
                    "DELETE FROM org_stewards WHERE org = ?1 AND team = ?2 AND member = ?3",
                    [&org, &team, &member],
                )?
            };
            Ok(n > 0)
        })
        .await
    }

    async fn org_access(&self, team: &str, member: &str) -> Result<Option<OrgAccess>> {
        let (team, member) = (team.to_owned(), member.to_owned());
        self.call(move |c| {
            Ok(c.prepare_cached(
                "SELECT o.org, t.name, t.head, t.pruned_through,
                        EXISTS (SELECT 1 FROM org_stewards s
                                WHERE s.org = o.org AND s.team = o.team AND s.member = ?2)
                 FROM org_teams o JOIN teams t ON t.id = o.org
                 WHERE o.team = ?1",
            )?
            .query_row([&team, &member], |r| {
                Ok(OrgAccess {
                    org: r.get(0)?,
                    name: r.get(1)?,
                    head: r.get(2)?,
                    pruned: r.get(3)?,
                    steward: r.get(4)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn load_orgs(&self, rows: &OrgRows) -> Result<()> {
        let rows = rows.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (id, _, _) in &rows.orgs {
                tx.execute("INSERT INTO orgs (id) VALUES (?1)", [id])?;
            }
            for (team, org) in &rows.teams {
                tx.execute(
                    "INSERT INTO org_teams (team, org) VALUES (?1, ?2)",
                    [team, org],
                )?;
            }
            for (org, team, member) in &rows.stewards {
                tx.execute(
                    "INSERT INTO org_stewards (org, team, member) VALUES (?1, ?2, ?3)",
                    [org, team, member],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn dump(&self) -> Result<Dump> {
        self.call(|c| {
            let tx = c.transaction()?;
            let mut dump = Dump::default();
            {
                let mut st =
                    tx.prepare("SELECT id, name, created_ms, head, withdrawals FROM teams")?;
                dump.teams = st
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = tx.prepare(
                    "SELECT code_hash, team, member, uses_left, expires_ms, created_ms, created_by,
                            founder, relay
                     FROM invites",
                )?;
                dump.invites = st
                    .query_map([], |r| {
                        Ok(NewInvite {
                            code_hash: r.get(0)?,
                            team: r.get(1)?,
                            member: r.get(2)?,
                            uses: r.get(3)?,
                            expires_ms: r.get(4)?,
                            created_ms: r.get(5)?,
                            created_by: r.get(6)?,
                            founder: r.get(7)?,
                            relay: r.get(8)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = tx.prepare(
                    "SELECT id, team, member, name, created_ms, last_seen_ms, revoked_ms, relay,
                            token_hash, importing
                     FROM devices",
                )?;
                dump.devices = st
                    .query_map([], |r| {
                        Ok(DeviceRow {
                            info: device_info(r)?,
                            token_hash: r.get(8)?,
                            importing: r.get(9)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = tx.prepare("SELECT actor, device FROM actors")?;
                dump.actors = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = tx.prepare(
                    "SELECT id, pruned_through, pruned_changes, pruned_bytes FROM teams
                     WHERE pruned_through > 0",
                )?;
                dump.pruned = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = tx.prepare("SELECT team, doc, seq, data, kept_ms FROM snapshots")?;
                dump.snapshots = st
                    .query_map([], |r| {
                        Ok(super::SnapshotRow {
                            team: r.get(0)?,
                            doc: r.get(1)?,
                            seq: r.get(2)?,
                            data: r.get(3)?,
                            kept_ms: r.get(4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
            }
            drop(tx);
            Ok(dump)
        })
        .await
    }

    async fn dump_log(&self, after: (&str, i64), limit: u32) -> Result<Vec<LogRow>> {
        let (team, seq) = (after.0.to_owned(), after.1);
        self.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT team, seq, doc, hash, actor, actor_seq, device, data, withdrawn_ms, kind,
                        stored_ms
                 FROM changes WHERE (team, seq) > (?1, ?2) ORDER BY team, seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![team, seq, limit], |r| {
                Ok(LogRow {
                    team: r.get(0)?,
                    seq: r.get(1)?,
                    entry: super::Entry {
                        doc: r.get(2)?,
                        hash: r.get(3)?,
                        actor: r.get(4)?,
                        actor_seq: r.get(5)?,
                        device: r.get(6)?,
                        data: r.get(7)?,
                        withdrawn_ms: r.get(8)?,
                        kind: Kind::from_i64(r.get(9)?),
                    },
                    stored_ms: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn load(&self, d: &Dump) -> Result<()> {
        let d = d.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let teams: i64 = tx.query_row("SELECT count(*) FROM teams", [], |r| r.get(0))?;
            if teams > 0 {
                return Err(StoreError::NotEmpty);
            }
            for t in &d.teams {
                tx.execute(
                    "INSERT INTO teams (id, name, created_ms, head, withdrawals)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![t.0, t.1, t.2, t.3, t.4],
                )?;
            }
            for i in &d.invites {
                insert_invite(&tx, i)?;
            }
            for r in &d.devices {
                let i = &r.info;
                tx.execute(
                    "INSERT INTO devices (id, team, member, name, token_hash, created_ms,
                                          last_seen_ms, revoked_ms, importing, relay)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        i.id,
                        i.team,
                        i.member,
                        i.name,
                        r.token_hash,
                        i.created_ms,
                        i.last_seen_ms,
                        i.revoked_ms,
                        r.importing,
                        i.relay
                    ],
                )?;
            }
            for (actor, device) in &d.actors {
                tx.execute(
                    "INSERT INTO actors (actor, device) VALUES (?1, ?2)",
                    params![actor, device],
                )?;
            }
            for (team, through, changes, bytes) in &d.pruned {
                tx.execute(
                    "UPDATE teams SET pruned_through = ?2, pruned_changes = ?3, pruned_bytes = ?4
                     WHERE id = ?1",
                    params![team, through, changes, bytes],
                )?;
            }
            for n in &d.snapshots {
                tx.execute(
                    "INSERT INTO snapshots (team, doc, seq, data, kept_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![n.team, n.doc, n.seq, n.data, n.kept_ms],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn load_log(&self, rows: &[LogRow]) -> Result<()> {
        let rows = rows.to_vec();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for r in &rows {
                let e = &r.entry;
                insert_entry(&tx, &r.team, r.seq, e, r.stored_ms)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

fn insert_invite(c: &Connection, i: &NewInvite) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO invites (code_hash, team, member, uses_left, expires_ms, created_ms,
                              created_by, founder, relay)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        i.code_hash,
        i.team,
        i.member,
        i.uses,
        i.expires_ms,
        i.created_ms,
        i.created_by,
        i.founder,
        i.relay
    ])?;
    Ok(())
}

fn insert_entry(
    c: &Connection,
    team: &str,
    seq: i64,
    e: &super::Entry,
    stored_ms: Option<i64>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO changes (team, seq, doc, hash, actor, actor_seq, device, data, withdrawn_ms,
                              kind, stored_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        team,
        seq,
        e.doc,
        e.hash,
        e.actor,
        e.actor_seq,
        e.device,
        e.data,
        e.withdrawn_ms,
        e.kind as i64,
        stored_ms
    ])?;
    c.prepare_cached(
        "INSERT INTO documents (team, doc, last_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (team, doc) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
    )?
    .execute(params![team, e.doc, seq])?;
    Ok(())
}

fn device_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceInfo> {
    Ok(DeviceInfo {
        id: r.get(0)?,
        team: r.get(1)?,
        member: r.get(2)?,
        name: r.get(3)?,
        created_ms: r.get(4)?,
        last_seen_ms: r.get(5)?,
        revoked_ms: r.get(6)?,
        relay: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_disk_is_unavailable_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap();
        store.ready(1).await.unwrap();
        // No page more: as a full disk does, every write that needs one fails.
        {
            let c = store.raw();
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            c.execute_batch(&format!("PRAGMA max_page_count = {pages};"))
                .unwrap();
        }
        let name = "n".repeat(100);
        let mut err = None;
        for i in 0..10_000 {
            if let Err(e) = store.create_team(&format!("t{i}"), &name, i).await {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the disk fills up");
        assert!(
            matches!(err, StoreError::Unavailable(Unavailable::DiskFull)),
            "{err:?}"
        );
    }
}
