//! The server's storage on SQLite: teams, invites, devices, which device owns which automerge
//! actor, and each team's append-only change log.

use std::path::Path;
use std::sync::Mutex;

use automerge::Change;
use cairn_core::change::{self, Shape};
use cairn_core::ids::{self, TEAM_DOC};
use cairn_protocol::{
    Bytes, JoinRequest, JoinResponse, LinkResponse, Pulled, SyncRequest, SyncResponse, Token,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::docs::{DocCache, Loaded};
use crate::{Error, Limits, Result};

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
];

/// A team, as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TeamInfo {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub changes: i64,
    pub devices: i64,
}

/// A device, as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    pub id: String,
    pub team: String,
    pub member: String,
    pub name: String,
    pub created_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// The device a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub team: String,
    pub member: String,
    pub importing: bool,
    last_seen_ms: Option<i64>,
}

/// The server's database.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
    docs: DocCache,
}

/// Documents kept in memory by default: a team's document and the journals its devices write
/// this month, for a few teams.
pub const DOC_CACHE: usize = 512;

/// Creates the database file readable by its owner only (0600), in a directory of its own
/// (0700) when that is made here: it holds the hashes of every token and the teams' histories.
/// SQLite gives its `-wal` and `-shm` files the database's permissions.
fn create_private(path: &Path) -> Result<()> {
    let fail = |what: &Path, e: std::io::Error| {
        Error::Internal(format!("cannot create {}: {e}", what.display()))
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

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `n` random characters of the id alphabet (5 bits each).
pub fn random_code(n: usize) -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(ids::random_text(&bytes, n))
}

/// A device token: 256 random bits.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("cairn_{hex}"))
}

/// An invite code people can type: 20 characters (100 bits) in groups of five.
fn new_invite() -> Result<String> {
    let raw = random_code(20)?;
    Ok(format!(
        "{}-{}-{}-{}",
        &raw[0..5],
        &raw[5..10],
        &raw[10..15],
        &raw[15..20]
    ))
}

fn normalise_invite(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

fn valid_member_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Db {
    /// Opens (or creates) the database at `path`, migrating it forward.
    pub fn open(path: &Path) -> Result<Db> {
        Self::open_with_cache(path, DOC_CACHE)
    }

    /// Opens the database keeping up to `cached` documents in memory.
    pub fn open_with_cache(path: &Path, cached: usize) -> Result<Db> {
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
            return Err(Error::Internal(format!(
                "{} was written by a newer cairn-server (schema {version})",
                path.display()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(Db {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            docs: DocCache::new(cached),
        })
    }

    /// Moves WAL checkpoints off the request path: a thread with a connection of its own copies
    /// the WAL into the database every half second, without blocking the writer, so no request
    /// waits behind a checkpoint (they made the 99th percentile of pushes ten times the median).
    pub fn checkpoint_in_background(&self) -> Result<()> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        self.conn()
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (the transaction rolls
        // back), so a poisoned lock is still a good connection.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The readiness check: a write, so a full disk or a read-only file shows.
    pub fn ready(&self, now_ms: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO health (id, at_ms) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
            [now_ms],
        )?;
        Ok(())
    }

    /// How many documents are held in memory.
    pub fn cached_docs(&self) -> usize {
        self.docs.held()
    }

    /// Creates a team with no history yet.
    pub fn create_team(&self, name: &str, now_ms: i64) -> Result<TeamInfo> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::BadRequest(
                "a team name has 1 to 100 characters".into(),
            ));
        }
        let id = random_code(12)?;
        self.conn().execute(
            "INSERT INTO teams (id, name, created_ms) VALUES (?1, ?2, ?3)",
            params![id, name, now_ms],
        )?;
        Ok(TeamInfo {
            id,
            name: name.to_owned(),
            created_ms: now_ms,
            changes: 0,
            devices: 0,
        })
    }

    /// Every team, oldest first.
    pub fn teams(&self) -> Result<Vec<TeamInfo>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, name, created_ms, head,
                    (SELECT count(*) FROM devices d WHERE d.team = t.id AND revoked_ms IS NULL)
             FROM teams t ORDER BY created_ms, id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TeamInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                created_ms: r.get(2)?,
                changes: r.get(3)?,
                devices: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn team_exists(conn: &Connection, team: &str) -> Result<()> {
        let found: Option<i64> = conn
            .query_row("SELECT 1 FROM teams WHERE id = ?1", [team], |r| r.get(0))
            .optional()?;
        found
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(format!("no team `{team}`")))
    }

    /// Creates an invite to `team` good for `uses` joins until `expires_ms`. With `member` (a
    /// handle, `@ana` or `ana`, or a member id) the invite is made for that member: it joins a
    /// device as them, the only way to take over a member who already exists.
    pub fn create_invite(
        &self,
        team: &str,
        uses: u32,
        expires_ms: i64,
        now_ms: i64,
        member: Option<&str>,
    ) -> Result<String> {
        if uses == 0 {
            return Err(Error::BadRequest("an invite needs at least one use".into()));
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::team_exists(&tx, team)?;
        let member = match member {
            None => None,
            Some(who) => {
                let state = team_state(&self.docs, &tx, team)?;
                if state.members.is_empty() {
                    return Err(Error::Conflict(
                        "this team has no history yet: its founder brings it first with `cairn publish`"
                            .into(),
                    ));
                }
                let who = who.trim();
                let found = match state.member(who) {
                    Some(m) => m.id.clone(),
                    None => state
                        .member_by_handle(who.trim_start_matches('@'))
                        .map_err(|e| Error::NotFound(e.to_string()))?
                        .id
                        .clone(),
                };
                Some(found)
            }
        };
        let code = new_invite()?;
        tx.execute(
            "INSERT INTO invites (code_hash, team, member, uses_left, expires_ms, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![hash(&code), team, member, uses, expires_ms, now_ms],
        )?;
        tx.commit()?;
        Ok(code)
    }

    /// Devices, of one team or all, oldest first.
    pub fn devices(&self, team: Option<&str>) -> Result<Vec<DeviceInfo>> {
        let conn = self.conn();
        if let Some(team) = team {
            Self::team_exists(&conn, team)?;
        }
        let mut st = conn.prepare(
            "SELECT id, team, member, name, created_ms, last_seen_ms, revoked_ms FROM devices
             WHERE ?1 IS NULL OR team = ?1 ORDER BY created_ms, id",
        )?;
        let rows = st.query_map([team], |r| {
            Ok(DeviceInfo {
                id: r.get(0)?,
                team: r.get(1)?,
                member: r.get(2)?,
                name: r.get(3)?,
                created_ms: r.get(4)?,
                last_seen_ms: r.get(5)?,
                revoked_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Revokes a device: its token stops working with the next request.
    pub fn revoke(&self, device: &str, now_ms: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE devices SET revoked_ms = coalesce(revoked_ms, ?2) WHERE id = ?1",
            params![device, now_ms],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("no device `{device}`")));
        }
        // Link codes it made die with it.
        tx.execute("DELETE FROM invites WHERE created_by = ?1", [device])?;
        tx.commit()?;
        Ok(())
    }

    /// Spends an invite: registers a device and returns its token.
    pub fn join(&self, req: &JoinRequest, now_ms: i64, max_devices: u32) -> Result<JoinResponse> {
        let device_name = req.device_name.trim();
        if device_name.is_empty() || device_name.chars().count() > 100 {
            return Err(Error::BadRequest(
                "a device name has 1 to 100 characters".into(),
            ));
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let code_hash = hash(&normalise_invite(&req.invite));
        let invite: Option<(String, Option<String>, i64, i64)> = tx
            .query_row(
                "SELECT team, member, uses_left, expires_ms FROM invites WHERE code_hash = ?1",
                [&code_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((team, linked_member, uses_left, expires_ms)) = invite else {
            return Err(Error::Forbidden("this invite code is not valid".into()));
        };
        if expires_ms <= now_ms {
            return Err(Error::Forbidden("this invite code has expired".into()));
        }
        if uses_left <= 0 {
            return Err(Error::Forbidden("this invite code has been used up".into()));
        }
        let head: i64 = tx.query_row("SELECT head FROM teams WHERE id = ?1", [&team], |r| {
            r.get(0)
        })?;
        // Active devices of the team, and those among them still bringing an offline history.
        let (devices, importing_devices): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(importing), 0) FROM devices
             WHERE team = ?1 AND revoked_ms IS NULL",
            [&team],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if req.publish.is_none() && importing_devices > 0 {
            return Err(Error::Conflict(
                "the team is being published; try again once its founder's `cairn publish` has \
                 finished (a publication that will never finish: `cairn-server device revoke` its device)"
                    .into(),
            ));
        }
        let no_history =
            "this team has no history yet: its founder brings it first with `cairn publish`";
        let mut importing = false;
        let member = if let Some(member) = linked_member {
            // An invite made for one member (by the admin, or a link code): the device joins as
            // them. A claim, if given, must name the same member.
            if let Some(handle) = &req.claim {
                let state = team_state(&self.docs, &tx, &team)?;
                let claimed = state
                    .member_by_handle(handle.trim().trim_start_matches('@'))
                    .ok()
                    .map(|m| m.id.clone());
                if claimed.as_deref() != Some(member.as_str()) {
                    return Err(Error::Forbidden(format!(
                        "this invite was made for @{}, not for {}",
                        state.handle_of(&member),
                        handle.trim()
                    )));
                }
            }
            member
        } else if let Some(member) = &req.publish {
            if head > 0 || devices > importing_devices {
                return Err(Error::Conflict(
                    "this team already has members on the server; join it instead".into(),
                ));
            }
            // An earlier publication by the same member that never sent anything (its answer
            // lost, say) gives way, with any link code it made; anyone else's does not.
            let others: i64 = tx.query_row(
                "SELECT count(*) FROM devices
                 WHERE team = ?1 AND revoked_ms IS NULL AND member <> ?2",
                params![team, member],
                |r| r.get(0),
            )?;
            if others > 0 {
                return Err(Error::Conflict(
                    "another member is publishing this team; ask the server's admin".into(),
                ));
            }
            tx.execute(
                "DELETE FROM invites WHERE created_by IN
                 (SELECT id FROM devices WHERE team = ?1 AND revoked_ms IS NULL)",
                [&team],
            )?;
            tx.execute(
                "UPDATE devices SET revoked_ms = ?2 WHERE team = ?1 AND revoked_ms IS NULL",
                params![team, now_ms],
            )?;
            if !valid_member_id(member) {
                return Err(Error::BadRequest(
                    "the member id to publish is not valid".into(),
                ));
            }
            importing = true;
            member.clone()
        } else if let Some(handle) = &req.claim {
            // A general invite never takes over a member who exists: anyone holding it could
            // then post as them. Taking a place needs an invite made for that member.
            return Err(Error::Forbidden(format!(
                "a general invite cannot claim {h}; ask the server's admin for an invite made \
                 for them (`cairn-server invite create --team {team} --member {h}`)",
                h = format_args!("@{}", handle.trim().trim_start_matches('@')),
            )));
        } else {
            if head == 0 {
                return Err(Error::Conflict(no_history.into()));
            }
            match req.name.as_deref().map(str::trim) {
                Some(name) if !name.is_empty() => {}
                _ => return Err(Error::BadRequest("a new member needs a name".into())),
            }
            random_code(16)?
        };
        let active: i64 = tx.query_row(
            "SELECT count(*) FROM devices WHERE team = ?1 AND member = ?2 AND revoked_ms IS NULL",
            params![team, member],
            |r| r.get(0),
        )?;
        if active >= i64::from(max_devices) {
            return Err(Error::Forbidden(format!(
                "this member has {active} devices already; the server's admin can revoke one \
                 (`cairn-server device list`)"
            )));
        }
        let device_id = random_code(12)?;
        let token = new_token()?;
        tx.execute(
            "INSERT INTO devices (id, team, member, name, token_hash, created_ms, importing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                device_id,
                team,
                member,
                device_name,
                hash(&token),
                now_ms,
                importing
            ],
        )?;
        tx.execute(
            "UPDATE invites SET uses_left = uses_left - 1 WHERE code_hash = ?1",
            [&code_hash],
        )?;
        forget_dead_invites(&tx, now_ms)?;
        tx.commit()?;
        Ok(JoinResponse {
            team_id: team,
            member_id: member,
            device_id,
            token: Token(token),
        })
    }

    /// The device holding `token`, if it is known and not revoked.
    pub fn authenticate(&self, token: &str) -> Result<Device> {
        let wanted = hash(token);
        let found = self
            .conn()
            .prepare_cached(
                "SELECT id, team, member, importing, last_seen_ms, token_hash, revoked_ms
                 FROM devices WHERE token_hash = ?1",
            )?
            .query_row([&wanted], |r| {
                Ok((
                    Device {
                        id: r.get(0)?,
                        team: r.get(1)?,
                        member: r.get(2)?,
                        importing: r.get(3)?,
                        last_seen_ms: r.get(4)?,
                    },
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                ))
            })
            .optional()?;
        match found {
            Some((device, stored, None)) if bool::from(stored.ct_eq(&wanted)) => Ok(device),
            _ => Err(Error::Unauthorized),
        }
    }

    /// Withdraws stored changes of `team` by their hashes (hex), with every stored change that
    /// depends on them: their content is dropped, they are never sent again, and one notice per
    /// document in the log tells devices to drop them too. Returns what was withdrawn: (document,
    /// hash in hex), the named changes first.
    pub fn withdraw(
        &self,
        team: &str,
        hashes: &[String],
        now_ms: i64,
    ) -> Result<Vec<(String, String)>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::team_exists(&tx, team)?;
        let mut wanted = std::collections::HashSet::new();
        let mut docs: Vec<String> = Vec::new();
        for h in hashes {
            let h = h.trim().to_ascii_lowercase();
            if h.len() < 8 || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::BadRequest(format!(
                    "`{h}` is not a change hash (8 to 64 hex digits)"
                )));
            }
            let mut st = tx.prepare(
                "SELECT hash, doc, withdrawn_ms FROM changes
                 WHERE team = ?1 AND kind = 0 AND lower(hex(hash)) LIKE ?2 || '%' LIMIT 2",
            )?;
            let found: Vec<(Vec<u8>, String, Option<i64>)> = st
                .query_map(params![team, h], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            match found.as_slice() {
                [] => {
                    return Err(Error::NotFound(format!("team {team} holds no change {h}")));
                }
                [_, _] => {
                    return Err(Error::BadRequest(format!(
                        "`{h}` names more than one change; give more of it"
                    )));
                }
                [(_, _, Some(_))] => {}
                [(hash, doc, None)] => {
                    wanted.insert(hash.clone());
                    if !docs.contains(doc) {
                        docs.push(doc.clone());
                    }
                }
                _ => unreachable!("LIMIT 2"),
            }
        }
        let mut head: i64 =
            tx.query_row("SELECT head FROM teams WHERE id = ?1", [team], |r| r.get(0))?;
        let mut out = Vec::new();
        for doc in docs {
            // The document's changes in log order: a change goes if it is named or depends on
            // one that goes (its dependencies come before it in the log).
            let mut gone: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
            let mut order = Vec::new();
            {
                let mut st = tx.prepare(
                    "SELECT seq, hash, data FROM changes
                     WHERE team = ?1 AND doc = ?2 AND kind = 0 AND withdrawn_ms IS NULL
                     ORDER BY seq",
                )?;
                let mut rows = st.query(params![team, doc])?;
                while let Some(r) = rows.next()? {
                    let seq: i64 = r.get(0)?;
                    let hash: Vec<u8> = r.get(1)?;
                    let data: Vec<u8> = r.get(2)?;
                    let deps = cairn_core::change::Parts::parse(&data)
                        .map(|p| p.deps)
                        .unwrap_or_default();
                    if wanted.contains(&hash) || deps.iter().any(|d| gone.contains(&d[..])) {
                        gone.insert(hash.clone());
                        order.push((seq, hash));
                    }
                }
            }
            let mut notice = Vec::new();
            for (seq, hash) in &order {
                tx.execute(
                    "UPDATE changes SET withdrawn_ms = ?3, data = x''
                     WHERE team = ?1 AND seq = ?2",
                    params![team, seq, now_ms],
                )?;
                notice.extend_from_slice(hash);
                out.push((doc.clone(), hex(hash)));
            }
            head += 1;
            let id = Sha256::digest([b"withdraw:".as_slice(), &notice].concat()).to_vec();
            tx.execute(
                "INSERT INTO changes (team, seq, doc, hash, actor, actor_seq, device, data, kind)
                 VALUES (?1, ?2, ?3, ?4, x'', ?2, '', ?5, ?6)",
                params![team, head, doc, id, notice, NOTICE],
            )?;
            self.docs.forget(team, &doc);
        }
        tx.execute(
            "UPDATE teams SET head = ?2, withdrawals = withdrawals + ?3 WHERE id = ?1",
            params![team, head, out.len() as i64],
        )?;
        tx.commit()?;
        out.sort_by_key(|(_, h)| !wanted.contains(&unhex(h).unwrap_or_default()));
        Ok(out)
    }

    /// A one-time invite that adds another device of `device`'s member; a device holds at most
    /// `max_live` codes that are neither used nor expired.
    pub fn link(&self, device: &Device, now_ms: i64, max_live: u32) -> Result<LinkResponse> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        forget_dead_invites(&tx, now_ms)?;
        let live: i64 = tx.query_row(
            "SELECT count(*) FROM invites
             WHERE created_by = ?1 AND uses_left > 0 AND expires_ms > ?2",
            params![device.id, now_ms],
            |r| r.get(0),
        )?;
        if live >= i64::from(max_live) {
            return Err(Error::TooManyRequests {
                message: format!(
                    "this device has {live} link codes waiting; use one or let them expire"
                ),
                retry_after: std::time::Duration::from_secs(15 * 60),
            });
        }
        let code = new_invite()?;
        let expires_at_ms = now_ms + LINK_CODE_MS;
        tx.execute(
            "INSERT INTO invites (code_hash, team, member, uses_left, expires_ms, created_ms,
                                  created_by)
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)",
            params![
                hash(&code),
                device.team,
                device.member,
                expires_at_ms,
                now_ms,
                device.id
            ],
        )?;
        tx.commit()?;
        Ok(LinkResponse {
            invite: code,
            expires_at_ms,
        })
    }

    /// One exchange: stores what `device` pushed (checked, applied to its document, once), then
    /// pages out the change log after the request's cursor. Either the whole push is stored or
    /// none of it.
    pub fn sync(
        &self,
        device: &Device,
        req: &SyncRequest,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(SyncResponse, SyncCounts)> {
        let pushed: usize = req.push.iter().map(|d| d.changes.len()).sum();
        if pushed > limits.max_push_changes {
            return Err(Error::TooLarge(format!(
                "a sync pushes at most {} changes; this one had {pushed}",
                limits.max_push_changes
            )));
        }
        // Inspect and decode every change before taking the database: the work a client can
        // cause stays outside the one lock every team shares, and is bounded by what it sent.
        // As many lists as changes at most (an empty list costs nothing but the parsing).
        if req.push.len() > limits.max_push_changes {
            return Err(Error::TooLarge(format!(
                "a sync pushes at most {} lists of changes; this one had {}",
                limits.max_push_changes,
                req.push.len()
            )));
        }
        let mut docs: Vec<(&str, Vec<(Change, String)>)> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut ops = 0u64;
        for dc in req.push.iter().filter(|dc| !dc.changes.is_empty()) {
            check_doc(device, &dc.doc)?;
            let mut decoded = Vec::with_capacity(dc.changes.len());
            for (i, bytes) in dc.changes.iter().enumerate() {
                let at = format!("change {} of {}", i + 1, dc.doc);
                let (c, shape) = decode(&bytes.0, limits, &at)?;
                ops += shape.ops;
                if ops > limits.max_push_ops {
                    return Err(Error::TooLarge(format!(
                        "a sync pushes at most {} operations; send fewer changes at once",
                        limits.max_push_ops
                    )));
                }
                decoded.push((c, at));
            }
            match index.get(dc.doc.as_str()) {
                Some(&i) => docs[i].1.extend(decoded),
                None => {
                    index.insert(&dc.doc, docs.len());
                    docs.push((&dc.doc, decoded));
                }
            }
        }
        let mut counts = SyncCounts::default();
        let mut conn = self.conn();
        let writes = pushed > 0
            || req.import_done
            || device
                .last_seen_ms
                .is_none_or(|t| now_ms - t > LAST_SEEN_EVERY_MS);
        let behavior = if writes {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        let tx = conn.transaction_with_behavior(behavior)?;
        let mut log: TeamLog = tx
            .prepare_cached("SELECT head, withdrawals FROM teams WHERE id = ?1")?
            .query_row([&device.team], |r| {
                Ok(TeamLog {
                    head: r.get(0)?,
                    withdrawals: r.get(1)?,
                    dropped: 0,
                })
            })?;
        // Before any document is taken: a request refused here costs nothing to the cache.
        if req.cursor > log.head as u64 {
            return Err(Error::Conflict(format!(
                "the cursor {} is past the team's last change {}: this server lost history \
                 or the replica came from elsewhere",
                req.cursor, log.head
            )));
        }
        let mut acked = 0u32;
        // Documents taken out of the cache; they go back only once the transaction commits, or
        // at once if this request changed nothing in them.
        let mut touched: Vec<(&str, Loaded)> = Vec::new();
        let stored = (|| {
            for (doc, changes) in docs {
                let mut loaded = self.docs.take(&device.team, doc, log.withdrawals);
                let outcome = loaded.catch_up(&tx, &device.team, doc).and_then(|()| {
                    for (change, at) in changes {
                        if store_change(&tx, device, doc, &mut loaded, change, &at, &mut log)? {
                            counts.stored += 1;
                        }
                        acked += 1;
                    }
                    Ok(())
                });
                touched.push((doc, loaded));
                outcome?;
            }
            Ok::<_, Error>(())
        })();
        if let Err(e) = stored {
            for (doc, loaded) in touched {
                if !loaded.dirty {
                    self.docs.put(&device.team, doc, loaded);
                }
            }
            return Err(e);
        }
        if log.dropped > 0 {
            tx.prepare_cached("UPDATE teams SET withdrawals = withdrawals + ?2 WHERE id = ?1")?
                .execute(params![device.team, log.dropped])?;
        }
        let head = log.head;
        counts.bytes_in = req
            .push
            .iter()
            .flat_map(|d| d.changes.iter())
            .map(|c| c.0.len())
            .sum();
        if counts.stored > 0 || log.dropped > 0 {
            tx.prepare_cached("UPDATE teams SET head = ?2 WHERE id = ?1")?
                .execute(params![device.team, head])?;
        }
        let max = req
            .max_pull
            .unwrap_or(limits.max_page_changes)
            .min(limits.max_page_changes);
        let mut pulled = Vec::new();
        let mut cursor = head as u64;
        let mut more = false;
        if max == 0 {
            cursor = req.cursor;
            more = req.cursor < head as u64;
        } else {
            // Withdrawal notices go to clients that understand them; the changes they name are
            // never sent again.
            // (Two texts, not a parameter in the condition: SQLite prepares again a statement
            // whose plan a bound value could change, on every request.)
            let mut st = tx.prepare_cached(if req.withdrawals {
                "SELECT seq, doc, data, kind FROM changes
                 WHERE team = ?1 AND seq > ?2 AND device <> ?3 AND withdrawn_ms IS NULL
                 ORDER BY seq LIMIT ?4"
            } else {
                "SELECT seq, doc, data, kind FROM changes
                 WHERE team = ?1 AND seq > ?2 AND device <> ?3 AND withdrawn_ms IS NULL
                   AND kind = 0
                 ORDER BY seq LIMIT ?4"
            })?;
            let mut rows = st.query(params![device.team, req.cursor as i64, device.id, max])?;
            let mut bytes = 0usize;
            while let Some(r) = rows.next()? {
                let seq: i64 = r.get(0)?;
                let data: Vec<u8> = r.get(2)?;
                let kind: i64 = r.get(3)?;
                bytes += data.len();
                if !pulled.is_empty() && bytes > limits.max_page_bytes {
                    more = true;
                    break;
                }
                let (change, withdrawn) = if kind == NOTICE {
                    (Bytes(Vec::new()), data.chunks(32).map(hex).collect())
                } else {
                    (Bytes(data), Vec::new())
                };
                pulled.push(Pulled {
                    seq: seq as u64,
                    doc: r.get(1)?,
                    change,
                    withdrawn,
                });
            }
            if pulled.len() == max as usize {
                more = true;
            }
            if more {
                cursor = pulled.last().map_or(req.cursor, |p| p.seq);
                more = cursor < head as u64;
            }
        }
        counts.pulled = pulled.len();
        counts.bytes_out = pulled.iter().map(|p| p.change.0.len()).sum();
        if req.import_done && device.importing {
            tx.execute(
                "UPDATE devices SET importing = 0 WHERE id = ?1",
                [&device.id],
            )?;
        }
        if writes {
            tx.prepare_cached("UPDATE devices SET last_seen_ms = ?2 WHERE id = ?1")?
                .execute(params![device.id, now_ms])?;
        }
        tx.commit()?;
        drop(conn);
        for (doc, loaded) in touched {
            self.docs.put(&device.team, doc, loaded);
        }
        Ok((
            SyncResponse {
                acked,
                pulled,
                cursor,
                more,
                head: head as u64,
            },
            counts,
        ))
    }
}

/// Inspects and decodes one pushed change with work bounded by its size, refusing what no
/// honest client sends: oversize, compressed, damaged or too costly changes, trailing bytes,
/// counters past 32 bits, author footers.
fn decode(bytes: &[u8], limits: &Limits, at: &str) -> Result<(Change, Shape)> {
    change::decode(bytes, &limits.change).map_err(|e| match e {
        change::Refusal::TooLarge { .. } => Error::TooLarge(format!("{at}: {e}")),
        _ => Error::BadRequest(format!("{at}: {e}")),
    })
}

/// The kind of a log entry that tells devices changes were withdrawn.
const NOTICE: i64 = 1;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// How long a link code stays good.
const LINK_CODE_MS: i64 = 15 * 60 * 1000;
/// How long a spent or expired invite is kept, so joining with it says why it failed.
const DEAD_INVITE_MS: i64 = 7 * 24 * 3600 * 1000;

/// Deletes invites that have been used up or expired for a while.
fn forget_dead_invites(tx: &rusqlite::Transaction<'_>, now_ms: i64) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM invites WHERE expires_ms < ?1 OR (uses_left <= 0 AND created_ms < ?1)",
    )?
    .execute([now_ms - DEAD_INVITE_MS])?;
    Ok(())
}

/// How often a device's last-seen time is written, so a no-op sync stays a read.
const LAST_SEEN_EVERY_MS: i64 = 60_000;

/// What one sync moved, for the metrics.
#[derive(Clone, Debug, Default)]
pub struct SyncCounts {
    pub stored: usize,
    pub pulled: usize,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

/// A device writes the team document and its own member's journals; a publishing device brings
/// the whole offline history, every member's journals included.
fn check_doc(device: &Device, doc: &str) -> Result<()> {
    if !ids::is_doc_id(doc) {
        return Err(Error::BadRequest(format!("`{doc}` names no document")));
    }
    if doc == TEAM_DOC || device.importing || ids::journal_owner(doc) == Some(&device.member) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "a device writes only its own member's journals, not {doc}"
    )))
}

/// Where a team's log stands while a push is stored.
struct TeamLog {
    /// The number of its last entry.
    head: i64,
    /// How many of its changes were ever withdrawn.
    withdrawals: i64,
    /// Changes of this push dropped because they were made on withdrawn ones.
    dropped: i64,
}

/// Stores one change unless the log holds it already; returns whether it was new. A new change
/// must apply to `loaded` (the document as the log has it), and is applied to it.
fn store_change(
    tx: &rusqlite::Transaction<'_>,
    device: &Device,
    doc: &str,
    loaded: &mut Loaded,
    change: Change,
    at: &str,
    log: &mut TeamLog,
) -> Result<bool> {
    let actor = change.actor_id().to_bytes().to_vec();
    let owner: Option<String> = tx
        .prepare_cached("SELECT device FROM actors WHERE actor = ?1")?
        .query_row([&actor], |r| r.get(0))
        .optional()?;
    match owner {
        Some(d) if d != device.id => {
            return Err(Error::Forbidden(format!(
                "{at} is signed by another device's actor"
            )));
        }
        Some(_) => {}
        None => {
            tx.prepare_cached("INSERT INTO actors (actor, device) VALUES (?1, ?2)")?
                .execute(params![actor, device.id])?;
        }
    }
    let hash = change.hash();
    let known: Option<(String, Option<i64>)> = tx
        .prepare_cached("SELECT doc, withdrawn_ms FROM changes WHERE team = ?1 AND hash = ?2")?
        .query_row(params![device.team, hash.0.as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    // A change the admin withdrew, or one made on top of one, is taken and dropped: the device
    // drops it too once it reads the notice, and must not be stuck pushing it meanwhile.
    if known.as_ref().is_some_and(|(_, w)| w.is_some()) {
        return Ok(false);
    }
    let mut on_withdrawn = false;
    if log.withdrawals > 0 && known.is_none() {
        for d in change.deps() {
            let gone: Option<i64> = tx
                .prepare_cached(
                    "SELECT 1 FROM changes
                     WHERE team = ?1 AND hash = ?2 AND withdrawn_ms IS NOT NULL",
                )?
                .query_row(params![device.team, d.0.as_slice()], |r| r.get(0))
                .optional()?;
            on_withdrawn |= gone.is_some();
        }
    }
    if let Some((known_doc, _)) = known {
        if known_doc != doc {
            return Err(Error::BadRequest(format!(
                "{at} is already stored in another document"
            )));
        }
        return Ok(false);
    }
    // An actor's changes to a document are numbered 1, 2, 3, ... and automerge refuses any
    // other order, so the log takes them only that way: one gap or reuse would stop every replica.
    let seq = change.seq() as i64;
    let (last, prev): (i64, Option<Vec<u8>>) = tx
        .prepare_cached(
            "SELECT actor_seq, hash FROM changes
             WHERE team = ?1 AND doc = ?2 AND actor = ?3 ORDER BY actor_seq DESC LIMIT 1",
        )?
        .query_row(params![device.team, doc, actor], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .unwrap_or((0, None));
    if seq <= last {
        return Err(Error::Conflict(format!(
            "{at} reuses sequence number {seq} of its actor with other content: the replica was \
             restored or copied"
        )));
    }
    if seq != last + 1 {
        return Err(Error::BadRequest(format!(
            "{at} is number {seq} of its actor, but the server holds {last} before it"
        )));
    }
    // Made on top of a withdrawn change: taken and dropped at once, and kept as withdrawn (with
    // no content), so what was made on top of it in turn is dropped too and the actor's
    // numbering holds.
    let (data, withdrawn_ms) = if on_withdrawn {
        log.dropped += 1;
        (Vec::new(), Some(0))
    } else {
        // Its operations come after those of its actor's previous change: an actor numbers its
        // operations once, and two operations with one number would break every replica.
        let prev_end = prev
            .and_then(|h| automerge::ChangeHash::try_from(h.as_slice()).ok())
            .and_then(|h| {
                cairn_core::change::quietly(|| {
                    loaded.doc.get_change_meta_by_hash(&h).map(|m| m.max_op)
                })
                .ok()
                .flatten()
            });
        if prev_end.is_some_and(|end| change.start_op().get() <= end) {
            return Err(Error::BadRequest(format!(
                "{at} numbers its operations again from before its actor's previous change"
            )));
        }
        for dep in change.deps() {
            let missing =
                cairn_core::change::quietly(|| loaded.doc.get_change_meta_by_hash(dep).is_none());
            if missing.unwrap_or(true) {
                return Err(Error::BadRequest(format!(
                    "{at} depends on a change of {doc} the server does not have"
                )));
            }
        }
        // The one check that matters most: the change applies to the document as every replica
        // will hold it. Nothing that fails here is stored, so nothing stored can stop a replica.
        let raw = change.raw_bytes().to_vec();
        loaded.dirty = true;
        if let Err(e) = cairn_core::change::apply(&mut loaded.doc, vec![change]) {
            return Err(Error::BadRequest(format!("{at}: {e}")));
        }
        (raw, None)
    };
    log.head += 1;
    tx.prepare_cached(
        "INSERT INTO changes (team, seq, doc, hash, actor, actor_seq, device, data, withdrawn_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        device.team,
        log.head,
        doc,
        hash.0.as_slice(),
        actor,
        seq,
        device.id,
        data,
        withdrawn_ms
    ])?;
    if on_withdrawn {
        return Ok(false);
    }
    loaded.seq = log.head;
    Ok(true)
}

/// The team as its team document says (for claiming a member by handle).
fn team_state(
    docs: &DocCache,
    tx: &rusqlite::Transaction<'_>,
    team: &str,
) -> Result<cairn_core::TeamState> {
    let withdrawals: i64 =
        tx.query_row("SELECT withdrawals FROM teams WHERE id = ?1", [team], |r| {
            r.get(0)
        })?;
    let mut loaded = docs.take(team, TEAM_DOC, withdrawals);
    loaded.catch_up(tx, team, TEAM_DOC)?;
    let state = cairn_core::team::read(&loaded.doc).map_err(|e| Error::Internal(e.to_string()));
    // Only committed entries were read, so the document can go back as it is.
    docs.put(team, TEAM_DOC, loaded);
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_not_ready_and_asks_to_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.sqlite3")).unwrap();
        db.ready(1).unwrap();
        // No page more: as a full disk does, every write that needs one fails.
        let pages: i64 = db
            .conn()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        db.conn()
            .execute_batch(&format!("PRAGMA max_page_count = {pages};"))
            .unwrap();
        let name = "n".repeat(100);
        let err = (0..10_000)
            .find_map(|i| db.create_team(&name, i).err())
            .expect("the disk fills up");
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        let (status, _) = err.status();
        assert_eq!(status.as_u16(), 503);
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
