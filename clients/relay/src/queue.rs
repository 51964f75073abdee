//! The delivery queue: the relay's own SQLite file, `relay.sqlite3` in its home.
//!
//! Tables:
//! - `seen`: every event the relay has looked at, once (so nothing is taken in twice);
//! - `deliveries`: one row per (destination, event), unique, with its state (`pending`,
//!   `sending`, `done`, `failed`, `in_doubt`), attempts, next attempt time and last status or
//!   error;
//! - `destinations`: per destination, when it last sent (the rate limit holds across
//!   restarts), since when it has been failing, and whether it is disabled and why;
//! - `held`: events that arrived too late to post alone, kept for the digest, and the week
//!   whose digest used each.
//!
//! Every step is one transaction. A row is marked `sending` (and committed) before its request
//! goes out and marked with the outcome after; a process that dies in between leaves it
//! `sending`, and [`Queue::recover`] decides at the next start: sent again where the platform
//! drops a repeat by its idempotency key, otherwise `in_doubt` and never sent again (at most
//! once).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::config::Kind;
use crate::post::Post;
use crate::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: the queue.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE TABLE seen (
        key TEXT PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        seen_ms INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        destination TEXT NOT NULL,
        event TEXT NOT NULL,
        post TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'sending', 'done', 'failed', 'in_doubt')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        next_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        UNIQUE (destination, event)
    ) STRICT;
    CREATE INDEX deliveries_due ON deliveries (destination, state, seq);
    CREATE TABLE destinations (
        name TEXT PRIMARY KEY,
        last_sent_ms INTEGER,
        failing_since_ms INTEGER,
        disabled_ms INTEGER,
        disabled_why TEXT
    ) STRICT;
    CREATE TABLE held (
        key TEXT PRIMARY KEY,
        post TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        arrived_ms INTEGER NOT NULL,
        digested_ms INTEGER
    ) STRICT;
    "#,
    // 2: which week's digest used a held event (every destination's digest of that week
    // quotes it, whenever each is due).
    r#"
    ALTER TABLE held ADD COLUMN digest_week TEXT;
    "#,
];

/// A row due for delivery.
#[derive(Clone, Debug)]
pub struct Due {
    pub seq: i64,
    pub event: String,
    pub post: Post,
    pub attempts: i64,
    pub next_ms: i64,
}

/// An event taken in by a pass.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// The event's key in the queue (its id and author).
    pub key: String,
    pub at_ms: i64,
    /// What to post, or `None` for an event never posted alone (a reaction, a retracted one).
    pub post: Option<Post>,
}

/// What a pass did with what arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Taken {
    /// Events new to the relay.
    pub new: usize,
    /// Deliveries queued.
    pub queued: usize,
    /// Events kept for the digest: they arrived too late to post alone.
    pub held: usize,
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Done { status: u16 },
    /// Try again after `after`.
    Retry {
        status: Option<u16>,
        error: String,
        after: Duration,
    },
    /// This message will not go: mark it failed and go on with the next.
    Failed { status: Option<u16>, error: String },
    /// The destination is gone: mark the message failed and disable the destination.
    Disable { status: Option<u16>, error: String },
}

/// A destination as the queue knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DestinationState {
    pub last_sent_ms: Option<i64>,
    pub failing_since_ms: Option<i64>,
    pub disabled_ms: Option<i64>,
    pub disabled_why: Option<String>,
}

/// One delivery as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub event: String,
    pub state: String,
    pub attempts: i64,
    pub updated_ms: i64,
    pub next_ms: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// The relay's queue, open.
#[derive(Debug)]
pub struct Queue {
    conn: Connection,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Queue {
    /// Opens (creating or migrating) the queue at `path`.
    pub fn open(path: &Path) -> Result<Queue> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                what: format!("cannot create {}", dir.display()),
                source: e,
            })?;
        }
        // The queue holds what members wrote: readable by its owner alone, as replicas are.
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::Io {
                    what: format!("cannot create {}", path.display()),
                    source: e,
                })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut q = Queue { conn };
        q.migrate()?;
        Ok(q)
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(Error::Queue(format!(
                "the queue was written by a newer cairn-relay (schema {version}, this one knows \
                 {known})"
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether the relay has recorded where the team's history ended at its first start.
    pub fn started(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM meta WHERE key = 'started_ms'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The first start, at `now` (the relay's clock): every event there is now is history,
    /// seen and never posted.
    pub fn record_history(&mut self, keys: &[(String, i64)], now: i64) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO seen (key, at_ms, seen_ms) VALUES (?1, ?2, ?3)",
            )?;
            for (key, at) in keys {
                n += st.execute(params![key, at, now])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('started_ms', ?1)",
            [now.to_string()],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// When the relay first started (the relay's clock), if it has.
    pub fn started_ms(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'started_ms'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .and_then(|v| v.parse().ok()))
    }

    /// The state of the delivery of `event` to `dest`, if it was queued.
    pub fn delivery_state(&self, dest: &str, event: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT state FROM deliveries WHERE destination = ?1 AND event = ?2")?
            .query_row([dest, event], |r| r.get(0))
            .optional()?)
    }

    /// The events held for the digest keyed `digest` that happened before `before_ms`: those
    /// no digest used yet, and those this one's week used already (for another destination).
    pub fn held_for(&self, digest: &str, before_ms: i64) -> Result<Vec<crate::digest::Held>> {
        let mut st = self.conn.prepare_cached(
            "SELECT key, at_ms FROM held
             WHERE (digested_ms IS NULL OR digest_week = ?1) AND at_ms < ?2
             ORDER BY at_ms, key",
        )?;
        Ok(st
            .query_map(params![digest, before_ms], |r| {
                Ok(crate::digest::Held {
                    key: r.get(0)?,
                    at_ms: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Queues the digest `post` (keyed by its week, `digest`) for `dest` and marks the held
    /// events it `used` as used by that week, in one transaction. Returns whether it was
    /// queued (false: it was already, once per destination and week).
    pub fn queue_digest(
        &mut self,
        dest: &str,
        digest: &str,
        post: &Post,
        used: &[String],
        now_ms: i64,
    ) -> Result<bool> {
        let json = serde_json::to_string(post)
            .map_err(|e| Error::Queue(format!("cannot encode a post: {e}")))?;
        let tx = self.conn.transaction()?;
        let queued = tx.execute(
            "INSERT OR IGNORE INTO deliveries
             (destination, event, post, state, created_ms, next_ms, updated_ms)
             VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4)",
            params![dest, digest, json, now_ms],
        )?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE held SET digested_ms = coalesce(digested_ms, ?2),
                 digest_week = coalesce(digest_week, ?3) WHERE key = ?1",
            )?;
            for key in used {
                st.execute(params![key, now_ms, digest])?;
            }
        }
        tx.commit()?;
        Ok(queued > 0)
    }

    /// Whether the relay has seen the event (or celebration) `key`.
    pub fn is_seen(&self, key: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM seen WHERE key = ?1")?
            .query_row([key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// When the whole history was last read, and how many events the replica held then.
    pub fn last_full_read(&self) -> Result<(Option<i64>, Option<i64>)> {
        let get = |key: &str| -> Result<Option<i64>> {
            Ok(self
                .conn
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get::<_, String>(0))
                .optional()?
                .and_then(|v| v.parse().ok()))
        };
        Ok((get("full_read_events")?, get("full_read_ms")?))
    }

    /// Notes a read of the whole history at `at_ms`, when the replica held `events` events.
    pub fn set_last_full_read(&mut self, events: i64, at_ms: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (k, v) in [("full_read_events", events), ("full_read_ms", at_ms)] {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The keys of every event the relay has seen.
    pub fn seen_keys(&self) -> Result<std::collections::HashSet<String>> {
        let mut st = self.conn.prepare("SELECT key FROM seen")?;
        Ok(st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Takes in what a pass found, in one transaction: each event new to the relay is queued
    /// for every destination in `targets` that takes its kind, or held for the digest when it
    /// happened more than `late_after` before `now_ms`.
    pub fn take_in(
        &mut self,
        arrivals: &[Arrival],
        targets: &[(String, Vec<crate::post::PostKind>)],
        late_after: Duration,
        now_ms: i64,
    ) -> Result<Taken> {
        let tx = self.conn.transaction()?;
        let mut taken = Taken::default();
        {
            let mut seen = tx.prepare_cached(
                "INSERT OR IGNORE INTO seen (key, at_ms, seen_ms) VALUES (?1, ?2, ?3)",
            )?;
            let mut queue = tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries
                 (destination, event, post, state, created_ms, next_ms, updated_ms)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4, ?4)",
            )?;
            let mut hold = tx.prepare_cached(
                "INSERT OR IGNORE INTO held (key, post, at_ms, arrived_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for a in arrivals {
                if seen.execute(params![a.key, a.at_ms, now_ms])? == 0 {
                    continue;
                }
                taken.new += 1;
                let Some(post) = &a.post else { continue };
                let json = serde_json::to_string(post)
                    .map_err(|e| Error::Queue(format!("cannot encode a post: {e}")))?;
                let late = now_ms.saturating_sub(a.at_ms) > late_after.as_millis() as i64;
                if late {
                    taken.held += hold.execute(params![a.key, json, a.at_ms, now_ms])?;
                    continue;
                }
                for (dest, kinds) in targets {
                    if kinds.contains(&post.kind) {
                        taken.queued += queue.execute(params![dest, a.key, json, now_ms])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(taken)
    }

    /// At a start: rows left `sending` by a process that died mid-request. For a platform in
    /// `dedupes` they are sent again (the same idempotency key makes a repeat harmless);
    /// otherwise they become `in_doubt` and are not sent again. Returns (resent, in doubt).
    pub fn recover(&mut self, kinds: &[(String, Kind)]) -> Result<(usize, usize)> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut resend = 0;
        let mut doubt = 0;
        let names: Vec<String> = {
            let mut st =
                tx.prepare("SELECT DISTINCT destination FROM deliveries WHERE state = 'sending'")?;
            st.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for name in names {
            // The request cut short ended at the latest now: the spacing counts from here.
            tx.execute(
                "UPDATE destinations SET last_sent_ms = max(coalesce(last_sent_ms, 0), ?2)
                 WHERE name = ?1",
                params![name, now],
            )?;
            let dedupes = kinds
                .iter()
                .find(|(n, _)| *n == name)
                .is_some_and(|(_, k)| k.dedupes());
            if dedupes {
                resend += tx.execute(
                    "UPDATE deliveries SET state = 'pending', next_ms = ?2, updated_ms = ?2,
                     last_error = 'the relay stopped mid-request; sent again with the same key'
                     WHERE destination = ?1 AND state = 'sending'",
                    params![name, now],
                )?;
            } else {
                doubt += tx.execute(
                    "UPDATE deliveries SET state = 'in_doubt', updated_ms = ?2,
                     last_error = 'the relay stopped mid-request: it may or may not have been \
                     posted, and this platform takes no idempotency key, so it is not sent again'
                     WHERE destination = ?1 AND state = 'sending'",
                    params![name, now],
                )?;
            }
        }
        tx.commit()?;
        Ok((resend, doubt))
    }

    /// The next row to deliver to `dest` (due or not): the oldest pending one.
    pub fn next(&self, dest: &str) -> Result<Option<Due>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT seq, event, post, attempts, next_ms FROM deliveries
                 WHERE destination = ?1 AND state = 'pending' ORDER BY seq LIMIT 1",
            )?
            .query_row([dest], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        let Some((seq, event, post, attempts, next_ms)) = row else {
            return Ok(None);
        };
        let post: Post = serde_json::from_str(&post).map_err(|e| {
            Error::Queue(format!(
                "delivery {seq} holds a post that cannot be read: {e}"
            ))
        })?;
        Ok(Some(Due {
            seq,
            event,
            post,
            attempts,
            next_ms,
        }))
    }

    /// The events with messages still waiting (at most `limit`), oldest first.
    pub fn waiting_events(&self, limit: usize) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT event FROM deliveries WHERE state = 'pending'
             GROUP BY event ORDER BY min(seq) LIMIT ?1",
        )?;
        Ok(st
            .query_map([limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Brings the waiting messages of `event` in line with it: its post as it now reads
    /// (edited), or, with `None`, dropped with `why` (retracted or withdrawn before it was
    /// posted). Returns how many messages changed.
    pub fn revise(&mut self, event: &str, post: Option<&Post>, why: &str) -> Result<usize> {
        let now = now_ms();
        let n = match post {
            Some(post) => {
                let json = serde_json::to_string(post)
                    .map_err(|e| Error::Queue(format!("cannot encode a post: {e}")))?;
                self.conn.execute(
                    "UPDATE deliveries SET post = ?2, updated_ms = ?3
                     WHERE event = ?1 AND state = 'pending' AND post != ?2",
                    params![event, json, now],
                )?
            }
            None => self.conn.execute(
                "UPDATE deliveries SET state = 'failed', updated_ms = ?2, last_error = ?3
                 WHERE event = ?1 AND state = 'pending'",
                params![event, now, why],
            )?,
        };
        Ok(n)
    }

    /// Marks row `seq` as being sent (committed before the request goes out).
    pub fn mark_sending(&mut self, dest: &str, seq: i64, now_ms: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_ms = ?2
             WHERE seq = ?1",
            params![seq, now_ms],
        )?;
        tx.execute(
            "INSERT INTO destinations (name, last_sent_ms) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_sent_ms = excluded.last_sent_ms",
            params![dest, now_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records how the attempt at row `seq`, whose request ended at `ended_ms`, ended; a
    /// destination failing for longer than `disable_after` is disabled. Returns the reason when
    /// the destination was disabled.
    pub fn record(
        &mut self,
        dest: &str,
        seq: i64,
        outcome: &Outcome,
        disable_after: Duration,
        ended_ms: i64,
        now_ms: i64,
    ) -> Result<Option<String>> {
        let tx = self.conn.transaction()?;
        // The spacing between two messages counts from the end of this request (so two
        // arrive a second apart, however long the first took to connect and send).
        tx.execute(
            "INSERT INTO destinations (name, last_sent_ms) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE
             SET last_sent_ms = max(coalesce(last_sent_ms, 0), excluded.last_sent_ms)",
            params![dest, ended_ms],
        )?;
        let mut disabled = None;
        let failing = |tx: &rusqlite::Transaction<'_>, error: &str| -> Result<Option<String>> {
            tx.execute(
                "UPDATE destinations SET failing_since_ms = coalesce(failing_since_ms, ?2)
                 WHERE name = ?1",
                params![dest, now_ms],
            )?;
            let since: i64 = tx.query_row(
                "SELECT failing_since_ms FROM destinations WHERE name = ?1",
                [dest],
                |r| r.get(0),
            )?;
            if now_ms - since > disable_after.as_millis() as i64 {
                let days = (now_ms - since) as f64 / 86_400_000.0;
                Ok(Some(format!(
                    "failing for {days:.1} days (the last: {error})"
                )))
            } else {
                Ok(None)
            }
        };
        match outcome {
            Outcome::Done { status } => {
                tx.execute(
                    "UPDATE deliveries SET state = 'done', updated_ms = ?2, last_status = ?3,
                     last_error = NULL WHERE seq = ?1",
                    params![seq, now_ms, status],
                )?;
                tx.execute(
                    "UPDATE destinations SET failing_since_ms = NULL WHERE name = ?1",
                    [dest],
                )?;
            }
            Outcome::Retry {
                status,
                error,
                after,
            } => {
                let next = now_ms + after.as_millis() as i64;
                tx.execute(
                    "UPDATE deliveries SET state = 'pending', updated_ms = ?2, next_ms = ?3,
                     last_status = ?4, last_error = ?5 WHERE seq = ?1",
                    params![seq, now_ms, next, status, error],
                )?;
                disabled = failing(&tx, error)?;
            }
            Outcome::Failed { status, error } => {
                tx.execute(
                    "UPDATE deliveries SET state = 'failed', updated_ms = ?2, last_status = ?3,
                     last_error = ?4 WHERE seq = ?1",
                    params![seq, now_ms, status, error],
                )?;
                disabled = failing(&tx, error)?;
            }
            Outcome::Disable { status, error } => {
                tx.execute(
                    "UPDATE deliveries SET state = 'failed', updated_ms = ?2, last_status = ?3,
                     last_error = ?4 WHERE seq = ?1",
                    params![seq, now_ms, status, error],
                )?;
                disabled = Some(error.clone());
            }
        }
        if let Some(why) = &disabled {
            tx.execute(
                "UPDATE destinations SET disabled_ms = ?2, disabled_why = ?3 WHERE name = ?1",
                params![dest, now_ms, why],
            )?;
        }
        tx.commit()?;
        Ok(disabled)
    }

    /// What the queue knows of destination `name`.
    pub fn destination(&self, name: &str) -> Result<DestinationState> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT last_sent_ms, failing_since_ms, disabled_ms, disabled_why
                 FROM destinations WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(DestinationState {
                    last_sent_ms: r.get(0)?,
                    failing_since_ms: r.get(1)?,
                    disabled_ms: r.get(2)?,
                    disabled_why: r.get(3)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// Enables destination `name` again; its pending messages go on from where they stopped.
    /// Returns whether it was disabled.
    pub fn enable(&mut self, name: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE destinations SET disabled_ms = NULL, disabled_why = NULL,
             failing_since_ms = NULL WHERE name = ?1 AND disabled_ms IS NOT NULL",
            [name],
        )? > 0)
    }

    /// How many of `name`'s deliveries are in each state.
    pub fn counts(&self, name: &str) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT state, count(*) FROM deliveries WHERE destination = ?1 GROUP BY state
             ORDER BY state",
        )?;
        Ok(st
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// When `name`'s oldest message still waiting was queued.
    pub fn oldest_pending_ms(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(created_ms) FROM deliveries WHERE destination = ?1
                 AND state IN ('pending', 'sending')",
            )?
            .query_row([name], |r| r.get(0))?)
    }

    /// `name`'s latest `limit` deliveries, newest first.
    pub fn latest(&self, name: &str, limit: usize) -> Result<Vec<Delivery>> {
        let mut st = self.conn.prepare_cached(
            "SELECT event, state, attempts, updated_ms, next_ms, last_status, last_error
             FROM deliveries WHERE destination = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        Ok(st
            .query_map(params![name, limit as i64], |r| {
                Ok(Delivery {
                    event: r.get(0)?,
                    state: r.get(1)?,
                    attempts: r.get(2)?,
                    updated_ms: r.get(3)?,
                    next_ms: r.get(4)?,
                    last_status: r.get(5)?,
                    last_error: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The events kept for the digest and not yet in one, oldest first.
    pub fn held(&self) -> Result<Vec<Post>> {
        let mut st = self.conn.prepare_cached(
            "SELECT post FROM held WHERE digested_ms IS NULL ORDER BY at_ms, key",
        )?;
        let rows: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        rows.iter()
            .map(|p| {
                serde_json::from_str(p)
                    .map_err(|e| Error::Queue(format!("a held post cannot be read: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::PostKind;

    fn post(event: &str) -> Post {
        let mut p = Post::test("Otters", 0);
        p.kind = PostKind::Recognition;
        p.event = event.into();
        p
    }

    /// A queue in `dir` with one recognition, `e1`, queued for destination `dest`.
    fn one_queued(dir: &tempfile::TempDir, dest: &str) -> Queue {
        let mut q = Queue::open(&dir.path().join("relay.sqlite3")).unwrap();
        let now = now_ms();
        let arrivals = vec![Arrival {
            key: "e1/ana".into(),
            at_ms: now,
            post: Some(post("e1")),
        }];
        let targets = vec![(dest.to_owned(), vec![PostKind::Recognition])];
        let t = q
            .take_in(&arrivals, &targets, Duration::from_secs(60), now)
            .unwrap();
        assert_eq!((t.new, t.queued, t.held), (1, 1, 0));
        // Once only.
        let t = q
            .take_in(&arrivals, &targets, Duration::from_secs(60), now)
            .unwrap();
        assert_eq!((t.new, t.queued, t.held), (0, 0, 0));
        q
    }

    #[test]
    fn each_destination_and_event_is_queued_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = one_queued(&dir, "a");
        let now = now_ms();
        let due = q.next("a").unwrap().unwrap();
        q.mark_sending("a", due.seq, now).unwrap();
        // A process that died here: a platform without idempotency keys never sees it again.
        let (resent, doubt) = q.recover(&[("a".into(), Kind::Slack)]).unwrap();
        assert_eq!((resent, doubt), (0, 1));
        assert!(q.next("a").unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn the_queue_is_readable_by_its_owner_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite3");
        Queue::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_matrix_message_in_doubt_is_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = one_queued(&dir, "m");
        let now = now_ms();
        let due = q.next("m").unwrap().unwrap();
        q.mark_sending("m", due.seq, now).unwrap();
        assert_eq!(q.recover(&[("m".into(), Kind::Matrix)]).unwrap(), (1, 0));
        assert_eq!(q.next("m").unwrap().unwrap().seq, due.seq);
    }

    #[test]
    fn days_of_failure_disable_a_destination() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = one_queued(&dir, "d");
        let now = now_ms();
        let seq = q.next("d").unwrap().unwrap().seq;
        let retry = Outcome::Retry {
            status: Some(503),
            error: "503".into(),
            after: Duration::from_secs(5),
        };
        let three_days = Duration::from_secs(3 * 86_400);
        assert_eq!(
            q.record("d", seq, &retry, three_days, now, now).unwrap(),
            None
        );
        let later = now + 3 * 86_400_000 + 1;
        let why = q
            .record("d", seq, &retry, three_days, later, later)
            .unwrap();
        assert!(why.unwrap().contains("failing for 3.0 days"));
        assert!(q.destination("d").unwrap().disabled_ms.is_some());
        assert!(q.enable("d").unwrap());
        assert!(q.destination("d").unwrap().disabled_ms.is_none());
    }
}
