//! The PostgreSQL backend: any number of `cairn-server` processes on one database, through a
//! pool of connections (tokio-postgres, deadpool).
//!
//! What keeps several processes right:
//! - a write to a team's log locks the team's row (`SELECT ... FOR UPDATE`) and checks the head
//!   it was planned on, so a team's entries are numbered without gaps, one writer at a time, and
//!   an entry is committed only after every entry numbered before it: a reader (at any
//!   isolation) that sees entry n sees every entry before it;
//! - an invite's use is spent by one conditional `UPDATE`, so its last use goes to one device;
//! - every request reads the token's row, so a revoked device is refused by every process from
//!   the next request;
//! - migrations run under an advisory lock, so processes starting together migrate once.

use std::collections::HashSet;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{
    Append, Device, DeviceInfo, DeviceRow, DocRead, DocsPage, DocsQuery, Dump, Entry, Facts,
    FactsQuery, Found, Invite, InviteInfo, Kind, LogRow, Logged, MemberDevices, NewInvite,
    OrgAccess, OrgRows, Page, Pruned, PullQuery, Registration, Result, Seen, Store, StoreError,
    TeamInfo, TeamLog, Unavailable,
};

const MIGRATIONS: &[&str] = &[
    // 1: the schema of SQLite's first three migrations, at once.
    r#"
    CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        head BIGINT NOT NULL DEFAULT 0,
        -- How many changes of the team were withdrawn (a cached document before that is stale).
        withdrawals BIGINT NOT NULL DEFAULT 0
    );
    -- Invite codes and device tokens are kept only as SHA-256 hashes.
    CREATE TABLE invites (
        code_hash BYTEA PRIMARY KEY,
        team TEXT NOT NULL REFERENCES teams (id),
        member TEXT,
        uses_left BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        -- The device that made a link code: revoking it takes its codes back.
        created_by TEXT
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        team TEXT NOT NULL REFERENCES teams (id),
        member TEXT NOT NULL,
        name TEXT NOT NULL,
        token_hash BYTEA NOT NULL UNIQUE,
        created_ms BIGINT NOT NULL,
        last_seen_ms BIGINT,
        revoked_ms BIGINT,
        importing BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX devices_member ON devices (team, member);
    -- The first device to push a change of an actor owns that actor, across all teams.
    CREATE TABLE actors (
        actor BYTEA PRIMARY KEY,
        device TEXT NOT NULL
    );
    -- The team's change log, numbered 1, 2, 3, ... per team. kind 0: an automerge change;
    -- kind 1: a notice that the changes whose hashes `data` lists were withdrawn.
    CREATE TABLE changes (
        team TEXT NOT NULL,
        seq BIGINT NOT NULL,
        doc TEXT NOT NULL,
        hash BYTEA NOT NULL,
        actor BYTEA NOT NULL,
        actor_seq BIGINT NOT NULL,
        device TEXT NOT NULL,
        data BYTEA NOT NULL,
        withdrawn_ms BIGINT,
        kind SMALLINT NOT NULL DEFAULT 0,
        PRIMARY KEY (team, seq)
    );
    CREATE UNIQUE INDEX changes_hash ON changes (team, hash);
    CREATE UNIQUE INDEX changes_actor_seq ON changes (team, doc, actor, actor_seq);
    CREATE INDEX changes_doc ON changes (team, doc, seq);
    CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms BIGINT NOT NULL);
"#,
    // 2: each document's compacted state as of a log entry.
    r#"
    CREATE TABLE snapshots (
        team TEXT NOT NULL,
        doc TEXT NOT NULL,
        seq BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (team, doc)
    );
"#,
    // 3: every document of a team with its last log entry (a device far behind is sent the
    // documents changed after its cursor).
    r#"
    CREATE TABLE documents (
        team TEXT NOT NULL,
        doc TEXT NOT NULL,
        last_seq BIGINT NOT NULL,
        PRIMARY KEY (team, doc)
    );
    INSERT INTO documents (team, doc, last_seq)
        SELECT team, doc, max(seq) FROM changes GROUP BY team, doc;
    -- Pruning: changes folded into a snapshot kept before a horizon go, and what went is
    -- counted; a device behind the last entry pruned catches up from whole documents.
    ALTER TABLE changes ADD COLUMN stored_ms BIGINT;
    ALTER TABLE snapshots ADD COLUMN kept_ms BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE teams ADD COLUMN pruned_through BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE teams ADD COLUMN pruned_changes BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE teams ADD COLUMN pruned_bytes BIGINT NOT NULL DEFAULT 0;
"#,
    // 4: the invite made for a team's founder, the only one that brings a team its first
    // history.
    r#"
    ALTER TABLE invites ADD COLUMN founder BOOLEAN NOT NULL DEFAULT FALSE;
"#,
    // 5: relays: invites made for them, and the read-only devices of no member they register
    // (their `member` is empty).
    r#"
    ALTER TABLE invites ADD COLUMN relay BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE devices ADD COLUMN relay BOOLEAN NOT NULL DEFAULT FALSE;
"#,
    // 6: organisations: each one's log is a row of `teams` marked here; the teams attached to
    // one (one organisation at most each), and its stewards (members of those teams).
    r#"
    CREATE TABLE orgs (
        id TEXT PRIMARY KEY REFERENCES teams (id)
    );
    CREATE TABLE org_teams (
        team TEXT PRIMARY KEY REFERENCES teams (id),
        org TEXT NOT NULL REFERENCES orgs (id)
    );
    CREATE INDEX org_teams_org ON org_teams (org);
    CREATE TABLE org_stewards (
        org TEXT NOT NULL REFERENCES orgs (id),
        team TEXT NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (org, team, member)
    );
    CREATE INDEX org_stewards_team ON org_stewards (team, member);
"#,
    // 7: the identity of this database's logs, said with every sync: a restore from a dump is
    // told with `cairn-server restored`, which gives a new one, so devices notice and send
    // again what the server lost.
    r#"
    CREATE TABLE server_log (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        log TEXT NOT NULL
    );
    INSERT INTO server_log (id, log) VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 24));
"#,
];

/// Keeps each document's last entry, for a batch of entries given as columns ($2 documents,
/// $3 numbers).
/// Documents a catch-up page reads in one statement.
const DOCS_AT_ONCE: usize = 32;

const NOTE_DOCUMENTS: &str = "INSERT INTO documents (team, doc, last_seq)
     SELECT $1, doc, max(seq) FROM unnest($2::TEXT[], $3::BIGINT[]) AS e (doc, seq) GROUP BY doc
     ON CONFLICT (team, doc) DO UPDATE SET last_seq = GREATEST(documents.last_seq, excluded.last_seq)";

/// A statement parameter.
type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// A key for `pg_advisory_xact_lock` that only cairn's migrations take.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e00_0001;

fn failed(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // No answer from the database: a dropped connection, a restart.
        return StoreError::Unavailable(Unavailable::Down(format!("postgres: {e}")));
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        StoreError::Collided(format!("postgres: {}", db.message()))
    } else if *code == SqlState::DISK_FULL
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
    {
        StoreError::Unavailable(if *code == SqlState::DISK_FULL {
            Unavailable::DiskFull
        } else {
            Unavailable::Down(format!("postgres: {}", db.message()))
        })
    } else {
        StoreError::Other(format!("postgres: {} ({})", db.message(), code.code()))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        failed(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => failed(e),
            e => StoreError::Unavailable(Unavailable::Down(format!("postgres pool: {e}"))),
        }
    }
}

/// The advisory lock of a team's turn: the same number in every process (the first 8 bytes of
/// a SHA-256 of the team id, apart from the migrations' key by a prefix).
fn turn_key(team: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest([b"cairn-turn:".as_slice(), team.as_bytes()].concat());
    i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// A team's turn: a session advisory lock on a connection of the pool, released when dropped
/// (and by PostgreSQL itself if the process dies).
struct PgTurn {
    conn: Option<deadpool_postgres::Object>,
    key: i64,
    /// One of the pool's connections that may hold a turn, so the others stay free for the
    /// writes the turns are for (many teams at once must not take the whole pool waiting).
    _slot: tokio::sync::OwnedSemaphorePermit,
}

#[async_trait]
impl super::Release for PgTurn {
    async fn release(mut self: Box<Self>) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if conn
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
            .is_err()
        {
            // The lock must not outlive its turn: a connection that cannot say so is closed,
            // which releases it.
            let _ = deadpool_postgres::Object::take(conn);
        }
    }
}

impl Drop for PgTurn {
    fn drop(&mut self) {
        let (Some(conn), key) = (self.conn.take(), self.key) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if conn
                        .execute("SELECT pg_advisory_unlock($1)", &[&key])
                        .await
                        .is_err()
                    {
                        // The lock must not outlive its turn: a connection that cannot say so
                        // is closed, which releases it.
                        let _ = deadpool_postgres::Object::take(conn);
                    }
                });
            }
            Err(_) => {
                let _ = deadpool_postgres::Object::take(conn);
            }
        }
    }
}

/// The PostgreSQL backend.
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    /// Turns held at once: half the pool.
    turns: std::sync::Arc<tokio::sync::Semaphore>,
}

impl PgStore {
    /// Connects to `url` with at most `pool` connections, migrating the schema forward.
    pub async fn open(url: &str, pool: usize) -> Result<PgStore> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Other(format!(
                "`{}` is not a PostgreSQL URL: {e}",
                super::redact(url)
            ))
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool.max(2))
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Other(format!("postgres pool: {e}")))?;
        let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(
            (pool.status().max_size / 2).max(1),
        ));
        let store = PgStore { pool, turns };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS cairn_schema (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 version BIGINT NOT NULL
             )",
        )
        .await?;
        let version: i64 = tx
            .query_opt("SELECT version FROM cairn_schema WHERE id = 1", &[])
            .await?
            .map_or(0, |r| r.get(0));
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::Other(format!(
                "the database was written by a newer cairn-server (schema {version})"
            )));
        }
        // Every pending migration and the version it leaves run in this one transaction (DDL is
        // transactional in PostgreSQL): a server killed halfway leaves the database as it was
        // (its connection gone, PostgreSQL rolls the transaction back and frees the lock), and
        // the next start migrates it from there.
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO cairn_schema (id, version) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                &[&((i + 1) as i64)],
            )
            .await?;
            super::sqlite::pause_in_migration(i + 1);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn exists(c: &deadpool_postgres::ClientWrapper, team: &str) -> Result<()> {
        let st = c
            .prepare_cached("SELECT 1 FROM teams WHERE id = $1")
            .await?;
        match c.query_opt(&st, &[&team]).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("no team `{team}`"))),
        }
    }
}

async fn insert_invite(
    c: &impl tokio_postgres::GenericClient,
    i: &NewInvite,
) -> std::result::Result<u64, tokio_postgres::Error> {
    c.execute(
        "INSERT INTO invites (code_hash, team, member, uses_left, expires_ms, created_ms,
                              created_by, founder, relay)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &i.code_hash,
            &i.team,
            &i.member,
            &i.uses,
            &i.expires_ms,
            &i.created_ms,
            &i.created_by,
            &i.founder,
            &i.relay,
        ],
    )
    .await
}

fn device_info(r: &tokio_postgres::Row) -> DeviceInfo {
    DeviceInfo {
        id: r.get(0),
        team: r.get(1),
        member: r.get(2),
        name: r.get(3),
        created_ms: r.get(4),
        last_seen_ms: r.get(5),
        revoked_ms: r.get(6),
        relay: r.get(7),
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ready(&self, now_ms: i64) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO health (id, at_ms) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
            &[&now_ms],
        )
        .await?;
        Ok(())
    }

    async fn create_team(&self, id: &str, name: &str, now_ms: i64) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO teams (id, name, created_ms) VALUES ($1, $2, $3)",
            &[&id, &name, &now_ms],
        )
        .await?;
        Ok(())
    }

    async fn teams(&self) -> Result<Vec<TeamInfo>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT id, name, created_ms, head,
                        (SELECT count(*) FROM devices d
                         WHERE d.team = t.id AND revoked_ms IS NULL),
                        (SELECT coalesce(sum(length(data)), 0)::BIGINT FROM changes c
                         WHERE c.team = t.id),
                        (SELECT coalesce(sum(length(data)), 0)::BIGINT FROM snapshots n
                         WHERE n.team = t.id),
                        pruned_changes, pruned_bytes
                 FROM teams t WHERE id NOT IN (SELECT id FROM orgs)
                 ORDER BY created_ms, id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TeamInfo {
                id: r.get(0),
                name: r.get(1),
                created_ms: r.get(2),
                changes: r.get(3),
                devices: r.get(4),
                log_bytes: r.get(5),
                snapshot_bytes: r.get(6),
                pruned_changes: r.get(7),
                pruned_bytes: r.get(8),
            })
            .collect())
    }

    async fn team_log(&self, team: &str) -> Result<TeamLog> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("SELECT head, withdrawals, pruned_through FROM teams WHERE id = $1")
            .await?;
        let row = c
            .query_opt(&st, &[&team])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))?;
        Ok(TeamLog {
            head: row.get(0),
            withdrawals: row.get(1),
            pruned: row.get(2),
        })
    }

    async fn team_name(&self, team: &str) -> Result<String> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("SELECT name FROM teams WHERE id = $1")
            .await?;
        let row = c
            .query_opt(&st, &[&team])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))?;
        Ok(row.get(0))
    }

    async fn team_names(&self) -> Result<Vec<(String, String)>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT id, name FROM teams WHERE id NOT IN (SELECT id FROM orgs)
                 ORDER BY created_ms, id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn add_invite(&self, i: &NewInvite) -> Result<()> {
        let c = self.pool.get().await?;
        Self::exists(&c, &i.team).await?;
        insert_invite(&**c, i).await?;
        Ok(())
    }

    async fn invites(&self, team: Option<&str>, now_ms: i64) -> Result<Vec<InviteInfo>> {
        let c = self.pool.get().await?;
        if let Some(team) = team {
            Self::exists(&c, team).await?;
        }
        let rows = c
            .query(
                "SELECT code_hash, team, member, uses_left, expires_ms, created_ms, created_by,
                        founder, relay
                 FROM invites
                 WHERE ($1::TEXT IS NULL OR team = $1) AND uses_left > 0 AND expires_ms > $2
                 ORDER BY created_ms, code_hash",
                &[&team, &now_ms],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| InviteInfo {
                code_hash: r.get(0),
                team: r.get(1),
                member: r.get(2),
                uses_left: r.get(3),
                expires_ms: r.get(4),
                created_ms: r.get(5),
                created_by: r.get(6),
                founder: r.get(7),
                relay: r.get(8),
            })
            .collect())
    }

    async fn remove_invite(&self, code_hash: &[u8]) -> Result<bool> {
        let c = self.pool.get().await?;
        Ok(
            c.execute("DELETE FROM invites WHERE code_hash = $1", &[&code_hash])
                .await?
                > 0,
        )
    }

    async fn invite(&self, code_hash: &[u8]) -> Result<Option<Invite>> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT team, member, uses_left, expires_ms, founder, relay FROM invites
                 WHERE code_hash = $1",
                &[&code_hash],
            )
            .await?;
        Ok(row.map(|r| Invite {
            team: r.get(0),
            member: r.get(1),
            uses_left: r.get(2),
            expires_ms: r.get(3),
            founder: r.get(4),
            relay: r.get(5),
        }))
    }

    async fn live_links(&self, device: &str, now_ms: i64) -> Result<i64> {
        let c = self.pool.get().await?;
        let row = c
            .query_one(
                "SELECT count(*) FROM invites
                 WHERE created_by = $1 AND uses_left > 0 AND expires_ms > $2",
                &[&device, &now_ms],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn register(&self, reg: &Registration) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // The team's row, locked: registrations of one team (and their device counts) go one at
        // a time across every server.
        let head: Option<i64> = tx
            .query_opt(
                "SELECT head FROM teams WHERE id = $1 FOR UPDATE",
                &[&reg.team],
            )
            .await?
            .map(|r| r.get(0));
        let invite: Option<(i64, i64)> = tx
            .query_opt(
                "SELECT uses_left, expires_ms FROM invites WHERE code_hash = $1 FOR UPDATE",
                &[&reg.invite_hash],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)));
        let active: i64 = tx
            .query_one(
                "SELECT count(*) FROM devices
                 WHERE team = $1 AND member = $2 AND relay = $3 AND revoked_ms IS NULL",
                &[&reg.team, &reg.member, &reg.relay],
            )
            .await?
            .get(0);
        (reg.admit)(
            reg,
            &Seen {
                invite,
                head: head.unwrap_or(0),
                active,
            },
        )?;
        tx.execute(
            "UPDATE invites SET uses_left = uses_left - 1 WHERE code_hash = $1",
            &[&reg.invite_hash],
        )
        .await?;
        if reg.publish {
            tx.execute(
                "DELETE FROM invites WHERE created_by IN
                 (SELECT id FROM devices WHERE team = $1 AND revoked_ms IS NULL)",
                &[&reg.team],
            )
            .await?;
            tx.execute(
                "UPDATE devices SET revoked_ms = $2 WHERE team = $1 AND revoked_ms IS NULL",
                &[&reg.team, &reg.now_ms],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO devices (id, team, member, name, token_hash, created_ms, importing,
                                  relay)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &reg.device_id,
                &reg.team,
                &reg.member,
                &reg.name,
                &reg.token_hash,
                &reg.now_ms,
                &reg.publish,
                &reg.relay,
            ],
        )
        .await?;
        if let Some(name) = &reg.rename {
            tx.execute(
                "UPDATE teams SET name = $2 WHERE id = $1",
                &[&reg.team, name],
            )
            .await?;
        }
        tx.execute(
            "DELETE FROM invites WHERE expires_ms < $1 OR (uses_left <= 0 AND created_ms < $1)",
            &[&reg.forget_before_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn devices(&self, team: Option<&str>) -> Result<Vec<DeviceInfo>> {
        let c = self.pool.get().await?;
        if let Some(team) = team {
            Self::exists(&c, team).await?;
        }
        let rows = c
            .query(
                "SELECT id, team, member, name, created_ms, last_seen_ms, revoked_ms, relay
                 FROM devices WHERE $1::TEXT IS NULL OR team = $1 ORDER BY created_ms, id",
                &[&team],
            )
            .await?;
        Ok(rows.iter().map(device_info).collect())
    }

    async fn member_devices(&self, team: &str) -> Result<Vec<MemberDevices>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT member, count(*), count(*) FILTER (WHERE importing) FROM devices
                 WHERE team = $1 AND revoked_ms IS NULL AND NOT relay
                 GROUP BY member ORDER BY member",
                &[&team],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| MemberDevices {
                member: r.get(0),
                active: r.get(1),
                importing: r.get(2),
            })
            .collect())
    }

    async fn device_by_token(&self, token_hash: &[u8]) -> Result<Option<Device>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "SELECT d.id, d.team, d.member, d.importing, d.last_seen_ms, d.revoked_ms, t.head,
                        t.pruned_through, d.relay
                 FROM devices d JOIN teams t ON t.id = d.team WHERE d.token_hash = $1",
            )
            .await?;
        let row = c.query_opt(&st, &[&token_hash]).await?;
        Ok(row.map(|r| Device {
            id: r.get(0),
            team: r.get(1),
            member: r.get(2),
            importing: r.get(3),
            last_seen_ms: r.get(4),
            revoked: r.get::<_, Option<i64>>(5).is_some(),
            team_head: r.get(6),
            team_pruned: r.get(7),
            relay: r.get(8),
            org: None,
        }))
    }

    async fn revoke(&self, device: &str, now_ms: i64) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE devices SET revoked_ms = coalesce(revoked_ms, $2) WHERE id = $1",
                &[&device, &now_ms],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no device `{device}`")));
        }
        tx.execute("DELETE FROM invites WHERE created_by = $1", &[&device])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn touch(&self, device: &str, now_ms: i64, import_done: bool) -> Result<()> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "UPDATE devices SET last_seen_ms = $2,
                        importing = CASE WHEN $3 THEN FALSE ELSE importing END
                 WHERE id = $1",
            )
            .await?;
        c.execute(&st, &[&device, &now_ms, &import_done]).await?;
        Ok(())
    }

    async fn turn(&self, team: &str) -> Result<super::Turn> {
        let slot = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Other(format!("turns closed: {e}")))?;
        let conn = self.pool.get().await?;
        let key = turn_key(team);
        conn.execute("SELECT pg_advisory_lock($1)", &[&key]).await?;
        Ok(super::Turn(Some(Box::new(PgTurn {
            conn: Some(conn),
            key,
            _slot: slot,
        }))))
    }

    async fn facts(&self, team: &str, q: &FactsQuery) -> Result<Facts> {
        let c = self.pool.get().await?;
        let (docs, actors): (Vec<&str>, Vec<&[u8]>) = q
            .tips
            .iter()
            .map(|(d, a)| (d.as_str(), a.as_slice()))
            .unzip();
        let (log_st, owners_st, known_st, tips_st) = tokio::try_join!(
            c.prepare_cached("SELECT head, withdrawals FROM teams WHERE id = $1"),
            c.prepare_cached("SELECT actor, device FROM actors WHERE actor = ANY($1)"),
            c.prepare_cached(
                "SELECT hash, doc, withdrawn_ms IS NOT NULL FROM changes
                 WHERE team = $1 AND hash = ANY($2)",
            ),
            c.prepare_cached(
                "SELECT w.doc, w.actor, c.actor_seq, c.hash
                 FROM unnest($2::TEXT[], $3::BYTEA[]) AS w (doc, actor)
                 CROSS JOIN LATERAL (
                     SELECT actor_seq, hash FROM changes
                     WHERE team = $1 AND doc = w.doc AND actor = w.actor
                     ORDER BY actor_seq DESC LIMIT 1
                 ) c",
            ),
        )?;
        // One round trip: the four queries go out together on one connection.
        let p_log: [Param<'_>; 1] = [&team];
        let p_owners: [Param<'_>; 1] = [&q.actors];
        let p_known: [Param<'_>; 2] = [&team, &q.hashes];
        let p_tips: [Param<'_>; 3] = [&team, &docs, &actors];
        let (log, owners, known, tips) = tokio::try_join!(
            c.query_opt(&log_st, &p_log),
            c.query(&owners_st, &p_owners),
            c.query(&known_st, &p_known),
            c.query(&tips_st, &p_tips),
        )?;
        let log = log.ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))?;
        let mut facts = Facts {
            log: TeamLog {
                head: log.get(0),
                withdrawals: log.get(1),
                pruned: 0,
            },
            ..Facts::default()
        };
        for r in owners {
            facts.owners.insert(r.get(0), r.get(1));
        }
        for r in known {
            facts.known.insert(r.get(0), (r.get(1), r.get(2)));
        }
        for r in tips {
            facts
                .tips
                .insert((r.get(0), r.get(1)), (r.get(2), r.get(3)));
        }
        Ok(facts)
    }

    async fn append(&self, team: &str, a: &Append) -> Result<i64> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let (head_st, actors_st, withdraw_st, insert_st, documents_st) = tokio::try_join!(
            // The head moves only from the one it was planned on; this locks the team's row
            // until the commit, so a team's entries commit in their order.
            tx.prepare_cached(
                "UPDATE teams SET head = head + $2, withdrawals = withdrawals + $3
                 WHERE id = $1 AND head = $4",
            ),
            tx.prepare_cached(
                "INSERT INTO actors (actor, device)
                 SELECT * FROM unnest($1::BYTEA[], $2::TEXT[])
                 ON CONFLICT (actor) DO NOTHING",
            ),
            tx.prepare_cached(
                "UPDATE changes SET withdrawn_ms = $3, data = ''::BYTEA
                 WHERE team = $1 AND seq = ANY($2)",
            ),
            tx.prepare_cached(
                "INSERT INTO changes (team, seq, doc, hash, actor, actor_seq, device, data,
                                      withdrawn_ms, kind, stored_ms)
                 SELECT $1, *, $11 FROM unnest($2::BIGINT[], $3::TEXT[], $4::BYTEA[], $5::BYTEA[],
                                               $6::BIGINT[], $7::TEXT[], $8::BYTEA[],
                                               $9::BIGINT[], $10::SMALLINT[])",
            ),
            tx.prepare_cached(NOTE_DOCUMENTS),
        )?;
        let n = a.entries.len() as i64;
        let seq = a.base_head + n;
        let (actors, devices): (Vec<&[u8]>, Vec<&str>) = a
            .claims
            .iter()
            .map(|(actor, device)| (actor.as_slice(), device.as_str()))
            .unzip();
        // The batch as columns: one statement for every entry.
        let seqs: Vec<i64> = (a.base_head + 1..=seq).collect();
        let mut docs = Vec::with_capacity(a.entries.len());
        let mut hashes = Vec::with_capacity(a.entries.len());
        let mut entry_actors = Vec::with_capacity(a.entries.len());
        let mut actor_seqs = Vec::with_capacity(a.entries.len());
        let mut entry_devices = Vec::with_capacity(a.entries.len());
        let mut datas = Vec::with_capacity(a.entries.len());
        let mut withdrawn = Vec::with_capacity(a.entries.len());
        let mut kinds = Vec::with_capacity(a.entries.len());
        for e in &a.entries {
            docs.push(e.doc.as_str());
            hashes.push(e.hash.as_slice());
            entry_actors.push(e.actor.as_slice());
            actor_seqs.push(e.actor_seq);
            entry_devices.push(e.device.as_str());
            datas.push(e.data.as_slice());
            withdrawn.push(e.withdrawn_ms);
            kinds.push(e.kind as i16);
        }
        let head_params: [Param<'_>; 4] = [&team, &n, &a.withdrawals, &a.base_head];
        let actor_params: [Param<'_>; 2] = [&actors, &devices];
        let withdraw_params: [Param<'_>; 3] = [&team, &a.withdraw, &a.withdrawn_ms];
        let insert_params: [Param<'_>; 11] = [
            &team,
            &seqs,
            &docs,
            &hashes,
            &entry_actors,
            &actor_seqs,
            &entry_devices,
            &datas,
            &withdrawn,
            &kinds,
            &a.stored_ms,
        ];
        let documents_params: [Param<'_>; 3] = [&team, &docs, &seqs];
        // One round trip: the statements go out together, in this order, on one connection.
        let (moved, claimed, _, _, _) = tokio::try_join!(
            tx.execute(&head_st, &head_params),
            async {
                if a.claims.is_empty() {
                    Ok(0)
                } else {
                    tx.execute(&actors_st, &actor_params).await
                }
            },
            async {
                if a.withdraw.is_empty() {
                    Ok(0)
                } else {
                    tx.execute(&withdraw_st, &withdraw_params).await
                }
            },
            async {
                if a.entries.is_empty() {
                    Ok(0)
                } else {
                    tx.execute(&insert_st, &insert_params).await
                }
            },
            async {
                if a.entries.is_empty() {
                    Ok(0)
                } else {
                    tx.execute(&documents_st, &documents_params).await
                }
            },
        )?;
        // A snapshot holds what it folded in: withdrawn content goes with it.
        let noticed: Vec<&str> = a
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Notice)
            .map(|e| e.doc.as_str())
            .collect();
        if !noticed.is_empty() {
            tx.execute(
                "DELETE FROM snapshots WHERE team = $1 AND doc = ANY($2)",
                &[&team, &noticed],
            )
            .await?;
        }
        // A withdrawal hands the documents it touched back as they are without it.
        for (doc, data) in &a.snapshots {
            tx.execute(
                "INSERT INTO snapshots (team, doc, seq, data, kept_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (team, doc) DO UPDATE SET seq = excluded.seq, data = excluded.data,
                     kept_ms = excluded.kept_ms",
                &[&team, doc, &seq, data, &a.stored_ms],
            )
            .await?;
        }
        if moved != 1 {
            drop(tx);
            let c = self.pool.get().await?;
            Self::exists(&c, team).await?;
            return Err(StoreError::HeadMoved);
        }
        if claimed != a.claims.len() as u64 {
            return Err(StoreError::ActorTaken);
        }
        tx.commit().await?;
        Ok(seq)
    }

    async fn docs_changes(
        &self,
        team: &str,
        after: &[(String, i64)],
    ) -> Result<Vec<(String, i64, Vec<u8>)>> {
        let c = self.pool.get().await?;
        let (docs, froms): (Vec<&str>, Vec<i64>) =
            after.iter().map(|(d, s)| (d.as_str(), *s)).unzip();
        let st = c
            .prepare_cached(
                // LATERAL: one index range per document, never a scan of the team's log.
                "SELECT w.doc, c.seq, c.data
                 FROM unnest($2::TEXT[], $3::BIGINT[]) AS w (doc, after)
                 CROSS JOIN LATERAL (
                     SELECT seq, data FROM changes
                     WHERE team = $1 AND doc = w.doc AND seq > w.after
                       AND kind = 0 AND withdrawn_ms IS NULL
                 ) c
                 ORDER BY c.seq",
            )
            .await?;
        let rows = c.query(&st, &[&team, &docs, &froms]).await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn snapshot(&self, team: &str, doc: &str) -> Result<Option<(i64, Vec<u8>)>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("SELECT seq, data FROM snapshots WHERE team = $1 AND doc = $2")
            .await?;
        Ok(c.query_opt(&st, &[&team, &doc])
            .await?
            .map(|r| (r.get(0), r.get(1))))
    }

    async fn put_snapshot(
        &self,
        team: &str,
        doc: &str,
        seq: i64,
        data: &[u8],
        withdrawals: i64,
    ) -> Result<bool> {
        let c = self.pool.get().await?;
        // FOR SHARE: a withdrawal committing meanwhile (it updates the team's row) is waited
        // for, and its count then seen.
        let n = c
            .execute(
                "INSERT INTO snapshots (team, doc, seq, data, kept_ms)
                 SELECT $1, $2, $3, $4, $6 FROM teams WHERE id = $1 AND withdrawals = $5 FOR SHARE
                 ON CONFLICT (team, doc) DO UPDATE SET seq = excluded.seq, data = excluded.data,
                     kept_ms = excluded.kept_ms
                 WHERE excluded.seq > snapshots.seq",
                &[&team, &doc, &seq, &data, &withdrawals, &super::now_ms()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn prune(&self, team: &str, before_ms: i64) -> Result<Pruned> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // The team's row, locked: one pruning at a time, and none beside a write of its log.
        tx.query_opt("SELECT 1 FROM teams WHERE id = $1 FOR UPDATE", &[&team])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no team `{team}`")))?;
        // What goes: see the SQLite backend.
        let row = tx
            .query_one(
                "WITH gone AS (
                     DELETE FROM changes c
                     WHERE c.team = $1 AND c.kind = 0 AND c.withdrawn_ms IS NULL
                       AND coalesce(c.stored_ms, 0) < $2
                       AND c.seq <= (SELECT s.seq FROM snapshots s
                                     WHERE s.team = c.team AND s.doc = c.doc AND s.kept_ms < $2)
                       AND c.actor_seq < (SELECT max(t.actor_seq) FROM changes t
                                          WHERE t.team = c.team AND t.doc = c.doc
                                            AND t.actor = c.actor)
                     RETURNING c.seq, length(c.data) AS size
                 )
                 SELECT count(*), coalesce(sum(size), 0)::BIGINT, max(seq) FROM gone",
                &[&team, &before_ms],
            )
            .await?;
        let (changes, bytes, through): (i64, i64, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        if changes > 0 {
            tx.execute(
                "UPDATE teams SET pruned_through = GREATEST(pruned_through, $2),
                     pruned_changes = pruned_changes + $3, pruned_bytes = pruned_bytes + $4
                 WHERE id = $1",
                &[&team, &through, &changes, &bytes],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Pruned { changes, bytes })
    }

    async fn pull_docs(&self, q: &DocsQuery) -> Result<DocsPage> {
        let mut c = self.pool.get().await?;
        // One snapshot: the documents' snapshots and tails agree with each other and the head.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let (head_st, names_st, snaps_st, docs_st, left_st) = tokio::try_join!(
            tx.prepare_cached("SELECT head, withdrawals FROM teams WHERE id = $1"),
            tx.prepare_cached(
                "SELECT doc FROM documents WHERE team = $1 AND last_seq > $2 AND doc > $3
                 ORDER BY doc LIMIT $4",
            ),
            // Each document's snapshot, when newer than the cursor...
            tx.prepare_cached(
                "SELECT doc, seq, data FROM snapshots
                 WHERE team = $1 AND doc = ANY($3) AND seq > $2",
            ),
            // ...and the changes after it (each row once: a snapshot is never repeated per row).
            tx.prepare_cached(
                "SELECT w.doc, c.seq, c.data
                 FROM unnest($3::TEXT[]) WITH ORDINALITY AS w (doc, ord)
                 CROSS JOIN LATERAL (
                     SELECT seq, data FROM changes
                     WHERE team = $1 AND doc = w.doc
                       AND seq > coalesce((SELECT s.seq FROM snapshots s
                                           WHERE s.team = $1 AND s.doc = w.doc AND s.seq > $2),
                                          $2)
                       AND kind = 0 AND withdrawn_ms IS NULL
                 ) c
                 ORDER BY w.ord, c.seq",
            ),
            tx.prepare_cached(
                "SELECT count(*) FROM documents WHERE team = $1 AND last_seq > $2 AND doc > $3",
            ),
        )?;
        let team_row = tx
            .query_opt(&head_st, &[&q.team])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no team `{}`", q.team)))?;
        let (head, withdrawals): (i64, i64) = (team_row.get(0), team_row.get(1));
        let names: Vec<String> = tx
            .query(
                &names_st,
                &[&q.team, &q.after, &q.after_doc, &i64::from(q.max_docs)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut page = DocsPage {
            head,
            withdrawals,
            ..DocsPage::default()
        };
        // A few documents at a time, so a page of large ones never reads more than it sends.
        let mut bytes = 0usize;
        'chunks: for chunk in names.chunks(DOCS_AT_ONCE) {
            let params: [Param<'_>; 3] = [&q.team, &q.after, &chunk];
            let (snaps, rows) =
                tokio::try_join!(tx.query(&snaps_st, &params), tx.query(&docs_st, &params),)?;
            let mut snapshots: std::collections::HashMap<String, (i64, Vec<u8>)> = snaps
                .into_iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            let mut tails: std::collections::HashMap<String, Vec<(i64, Vec<u8>)>> =
                std::collections::HashMap::new();
            for r in rows {
                tails
                    .entry(r.get(0))
                    .or_default()
                    .push((r.get(1), r.get(2)));
            }
            let read: Vec<DocRead> = chunk
                .iter()
                .map(|doc| DocRead {
                    doc: doc.clone(),
                    snapshot: snapshots.remove(doc),
                    tail: tails.remove(doc).unwrap_or_default(),
                })
                .collect();
            for d in read {
                let size = d.snapshot.as_ref().map_or(0, |(_, s)| s.len())
                    + d.tail.iter().map(|(_, t)| t.len()).sum::<usize>();
                if !page.docs.is_empty() && bytes + size > q.max_bytes {
                    break 'chunks;
                }
                bytes += size;
                page.docs.push(d);
            }
        }
        let last = page
            .docs
            .last()
            .map_or(q.after_doc.clone(), |d| d.doc.clone());
        page.left = tx
            .query_one(&left_st, &[&q.team, &q.after, &last])
            .await?
            .get(0);
        if let Some(through) = q.notices_through {
            let rows = tx
                .query(
                    "SELECT seq, doc, data FROM changes
                     WHERE team = $1 AND seq > $2 AND seq <= $3 AND kind = 1 ORDER BY seq",
                    &[&q.team, &q.after, &through],
                )
                .await?;
            for r in rows {
                page.notices.push(Logged {
                    seq: r.get(0),
                    doc: r.get(1),
                    data: r.get(2),
                    kind: Kind::Notice,
                });
            }
        }
        tx.commit().await?;
        Ok(page)
    }

    async fn pull(&self, q: &PullQuery) -> Result<Page> {
        let mut c = self.pool.get().await?;
        let head_st = c
            .prepare_cached("SELECT head, pruned_through FROM teams WHERE id = $1")
            .await?;
        let head = |row: Option<tokio_postgres::Row>| -> Result<(i64, i64)> {
            let row = row.ok_or_else(|| StoreError::NotFound(format!("no team `{}`", q.team)))?;
            Ok((row.get(0), row.get(1)))
        };
        // Nothing new (most syncs): one statement, no transaction.
        let (first, pruned) = head(c.query_opt(&head_st, &[&q.team]).await?)?;
        if q.max == 0 || q.after >= first {
            return Ok(Page {
                head: first,
                entries: Vec::new(),
                more: false,
                pruned,
            });
        }
        // The head and the page from one snapshot.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let (head, pruned) = head(tx.query_opt(&head_st, &[&q.team]).await?)?;
        let st = tx
            .prepare_cached(
                "SELECT seq, doc, data, kind, hash FROM changes
                 WHERE team = $1 AND seq > $2 AND withdrawn_ms IS NULL
                   AND ($3 OR kind = 0)
                 ORDER BY seq LIMIT $4",
            )
            .await?;
        // (The request's own changes are read and passed over: room for them too.)
        let limit = i64::from(q.max) + q.skip.len() as i64;
        let rows = tx
            .query(&st, &[&q.team, &q.after, &q.notices, &limit])
            .await?;
        tx.commit().await?;
        let mut page = Page {
            head,
            entries: Vec::new(),
            more: rows.len() as i64 == limit,
            pruned,
        };
        let mut bytes = 0usize;
        for r in rows {
            if !q.skip.is_empty() && q.skip.contains(r.get::<_, &[u8]>(4)) {
                continue;
            }
            let data: Vec<u8> = r.get(2);
            bytes += data.len();
            if !page.entries.is_empty() && bytes > q.max_bytes {
                page.more = true;
                break;
            }
            page.entries.push(Logged {
                seq: r.get(0),
                doc: r.get(1),
                data,
                kind: Kind::from_i64(i64::from(r.get::<_, i16>(3))),
            });
        }
        Ok(page)
    }

    async fn find_changes(&self, team: &str, prefix: &str, limit: u32) -> Result<Vec<Found>> {
        let c = self.pool.get().await?;
        Self::exists(&c, team).await?;
        let prefix = prefix.to_ascii_lowercase();
        let rows = c
            .query(
                "SELECT seq, hash, doc, withdrawn_ms IS NOT NULL FROM changes
                 WHERE team = $1 AND kind = 0 AND encode(hash, 'hex') LIKE $2 || '%'
                 ORDER BY seq LIMIT $3",
                &[&team, &prefix, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Found {
                seq: r.get(0),
                hash: r.get(1),
                doc: r.get(2),
                withdrawn: r.get(3),
            })
            .collect())
    }

    async fn create_org(&self, id: &str, name: &str, now_ms: i64) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO teams (id, name, created_ms) VALUES ($1, $2, $3)",
            &[&id, &name, &now_ms],
        )
        .await?;
        tx.execute("INSERT INTO orgs (id) VALUES ($1)", &[&id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn server_log(&self) -> Result<String> {
        let c = self.pool.get().await?;
        let row = c
            .query_one("SELECT log FROM server_log WHERE id = 1", &[])
            .await?;
        Ok(row.get(0))
    }

    async fn renew_server_log(&self) -> Result<String> {
        let c = self.pool.get().await?;
        let row = c
            .query_one(
                "UPDATE server_log SET log = substr(md5(random()::text || clock_timestamp()::text), 1, 24)
                 WHERE id = 1 RETURNING log",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn org_rows(&self) -> Result<OrgRows> {
        let mut c = self.pool.get().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let orgs = tx
            .query(
                "SELECT o.id, t.name, t.created_ms FROM orgs o JOIN teams t ON t.id = o.id
                 ORDER BY t.created_ms, o.id",
                &[],
            )
            .await?;
        let teams = tx
            .query("SELECT team, org FROM org_teams ORDER BY org, team", &[])
            .await?;
        let stewards = tx
            .query(
                "SELECT org, team, member FROM org_stewards ORDER BY org, team, member",
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok(OrgRows {
            orgs: orgs
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
            teams: teams.iter().map(|r| (r.get(0), r.get(1))).collect(),
            stewards: stewards
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        })
    }

    async fn set_team_org(&self, team: &str, org: Option<&str>) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("DELETE FROM org_stewards WHERE team = $1", &[&team])
            .await?;
        tx.execute("DELETE FROM org_teams WHERE team = $1", &[&team])
            .await?;
        if let Some(org) = org {
            tx.execute(
                "INSERT INTO org_teams (team, org) VALUES ($1, $2)",
                &[&team, &org],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_steward(
        &self,
        org: &str,
        team: &str,
        member: &str,
        steward: bool,
    ) -> Result<bool> {
        let c = self.pool.get().await?;
        let n = if steward {
            c.execute(
                "INSERT INTO org_stewards (org, team, member) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&org, &team, &member],
            )
            .await?
        } else {
            c.execute(
                "DELETE FROM org_stewards WHERE org = $1 AND team = $2 AND member = $3",
                &[&org, &team, &member],
            )
            .await?
        };
        Ok(n > 0)
    }

    async fn org_access(&self, team: &str, member: &str) -> Result<Option<OrgAccess>> {
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached(
                "SELECT o.org, t.name, t.head, t.pruned_through,
                        EXISTS (SELECT 1 FROM org_stewards s
                                WHERE s.org = o.org AND s.team = o.team AND s.member = $2)
                 FROM org_teams o JOIN teams t ON t.id = o.org
                 WHERE o.team = $1",
            )
            .await?;
        Ok(c.query_opt(&st, &[&team, &member])
            .await?
            .map(|r| OrgAccess {
                org: r.get(0),
                name: r.get(1),
                head: r.get(2),
                pruned: r.get(3),
                steward: r.get(4),
            }))
    }

    async fn load_orgs(&self, rows: &OrgRows) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        for (id, _, _) in &rows.orgs {
            tx.execute("INSERT INTO orgs (id) VALUES ($1)", &[id])
                .await?;
        }
        for (team, org) in &rows.teams {
            tx.execute(
                "INSERT INTO org_teams (team, org) VALUES ($1, $2)",
                &[team, org],
            )
            .await?;
        }
        for (org, team, member) in &rows.stewards {
            tx.execute(
                "INSERT INTO org_stewards (org, team, member) VALUES ($1, $2, $3)",
                &[org, team, member],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn dump(&self) -> Result<Dump> {
        let mut c = self.pool.get().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let mut dump = Dump::default();
        for r in tx
            .query(
                "SELECT id, name, created_ms, head, withdrawals FROM teams",
                &[],
            )
            .await?
        {
            dump.teams
                .push((r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)));
        }
        for r in tx
            .query(
                "SELECT code_hash, team, member, uses_left, expires_ms, created_ms, created_by,
                        founder, relay
                 FROM invites",
                &[],
            )
            .await?
        {
            dump.invites.push(NewInvite {
                code_hash: r.get(0),
                team: r.get(1),
                member: r.get(2),
                uses: r.get(3),
                expires_ms: r.get(4),
                created_ms: r.get(5),
                created_by: r.get(6),
                founder: r.get(7),
                relay: r.get(8),
            });
        }
        for r in tx
            .query(
                "SELECT id, team, member, name, created_ms, last_seen_ms, revoked_ms, relay,
                        token_hash, importing
                 FROM devices",
                &[],
            )
            .await?
        {
            dump.devices.push(DeviceRow {
                info: device_info(&r),
                token_hash: r.get(8),
                importing: r.get(9),
            });
        }
        for r in tx.query("SELECT actor, device FROM actors", &[]).await? {
            dump.actors.push((r.get(0), r.get(1)));
        }
        for r in tx
            .query(
                "SELECT id, pruned_through, pruned_changes, pruned_bytes FROM teams
                 WHERE pruned_through > 0",
                &[],
            )
            .await?
        {
            dump.pruned.push((r.get(0), r.get(1), r.get(2), r.get(3)));
        }
        for r in tx
            .query("SELECT team, doc, seq, data, kept_ms FROM snapshots", &[])
            .await?
        {
            dump.snapshots.push(super::SnapshotRow {
                team: r.get(0),
                doc: r.get(1),
                seq: r.get(2),
                data: r.get(3),
                kept_ms: r.get(4),
            });
        }
        tx.commit().await?;
        Ok(dump)
    }

    async fn dump_log(&self, after: (&str, i64), limit: u32) -> Result<Vec<LogRow>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT team, seq, doc, hash, actor, actor_seq, device, data, withdrawn_ms, kind,
                        stored_ms
                 FROM changes WHERE (team, seq) > ($1, $2) ORDER BY team, seq LIMIT $3",
                &[&after.0, &after.1, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LogRow {
                team: r.get(0),
                seq: r.get(1),
                entry: Entry {
                    doc: r.get(2),
                    hash: r.get(3),
                    actor: r.get(4),
                    actor_seq: r.get(5),
                    device: r.get(6),
                    data: r.get(7),
                    withdrawn_ms: r.get(8),
                    kind: Kind::from_i64(i64::from(r.get::<_, i16>(9))),
                },
                stored_ms: r.get(10),
            })
            .collect())
    }

    async fn load(&self, d: &Dump) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute("LOCK TABLE teams IN EXCLUSIVE MODE", &[])
            .await?;
        let teams: i64 = tx
            .query_one("SELECT count(*) FROM teams", &[])
            .await?
            .get(0);
        if teams > 0 {
            return Err(StoreError::NotEmpty);
        }
        for t in &d.teams {
            tx.execute(
                "INSERT INTO teams (id, name, created_ms, head, withdrawals)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&t.0, &t.1, &t.2, &t.3, &t.4],
            )
            .await?;
        }
        for i in &d.invites {
            insert_invite(&*tx, i).await?;
        }
        for r in &d.devices {
            let i = &r.info;
            tx.execute(
                "INSERT INTO devices (id, team, member, name, token_hash, created_ms,
                                      last_seen_ms, revoked_ms, importing, relay)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &i.id,
                    &i.team,
                    &i.member,
                    &i.name,
                    &r.token_hash,
                    &i.created_ms,
                    &i.last_seen_ms,
                    &i.revoked_ms,
                    &r.importing,
                    &i.relay,
                ],
            )
            .await?;
        }
        for (actor, device) in &d.actors {
            tx.execute(
                "INSERT INTO actors (actor, device) VALUES ($1, $2)",
                &[actor, device],
            )
            .await?;
        }
        for (team, through, changes, bytes) in &d.pruned {
            tx.execute(
                "UPDATE teams SET pruned_through = $2, pruned_changes = $3, pruned_bytes = $4
                 WHERE id = $1",
                &[team, through, changes, bytes],
            )
            .await?;
        }
        for n in &d.snapshots {
            tx.execute(
                "INSERT INTO snapshots (team, doc, seq, data, kept_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&n.team, &n.doc, &n.seq, &n.data, &n.kept_ms],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_log(&self, rows: &[LogRow]) -> Result<()> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached(
                "INSERT INTO changes (team, seq, doc, hash, actor, actor_seq, device, data,
                                      withdrawn_ms, kind, stored_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .await?;
        for r in rows {
            let e = &r.entry;
            tx.execute(
                &st,
                &[
                    &r.team,
                    &r.seq,
                    &e.doc,
                    &e.hash,
                    &e.actor,
                    &e.actor_seq,
                    &e.device,
                    &e.data,
                    &e.withdrawn_ms,
                    &(e.kind as i16),
                    &r.stored_ms,
                ],
            )
            .await?;
        }
        for team in rows.iter().map(|r| r.team.as_str()).collect::<HashSet<_>>() {
            let (docs, seqs): (Vec<&str>, Vec<i64>) = rows
                .iter()
                .filter(|r| r.team == team)
                .map(|r| (r.entry.doc.as_str(), r.seq))
                .unzip();
            tx.execute(NOTE_DOCUMENTS, &[&team, &docs, &seqs]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
