//! The local replica of cairn: one SQLite file holding the team's automerge documents, the outbox
//! of changes not yet sent, and an index derived from the documents that every read uses.
//!
//! Layout:
//! - `docs` and `chunks`: each document as a compacted snapshot plus the changes written since;
//! - `outbox`: every change made on this device, until the server acknowledges it;
//! - `members`, `pillars`, `commitments`, `events`, `recipients`: the index. It is updated in the
//!   same transaction as the document bytes and can be rebuilt from them at any time
//!   ([`Replica::rebuild_index`]).
//!
//! Every public write is one SQLite transaction: a crash loses at most the write in flight.
//!
//! ```
//! use cairn_store::{NewTeam, Replica};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("replica.sqlite3");
//! let team = NewTeam {
//!     team_id: "t1".into(), team_name: "Otters".into(), tz: "UTC".into(),
//!     member_id: "m1".into(), member_name: "Ana".into(), handle: "ana".into(), at_ms: 0,
//! };
//! Replica::create(&path, &team).unwrap();
//! let replica = Replica::open(&path).unwrap();
//! assert_eq!(replica.team().unwrap().members[0].handle, "ana");
//! ```

mod error;
mod index;
mod schema;
mod sync;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use automerge::{ActorId, Automerge, ReadDoc};
use cairn_core::feed::{FeedItem, FeedQuery};
use cairn_core::ids::{self, EventId, TEAM_DOC};
use cairn_core::time::Date;
use cairn_core::{Edit, Event, Kind, NewEvent, Stamp, TeamState, journal, team};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

pub use error::{Error, Result};
pub use schema::SCHEMA_VERSION;
pub use sync::{Applied, CatchUpState, Incoming, IncomingDoc, Outgoing, Remote, SetAside};

/// Chunks a document may gather before it is compacted into one snapshot.
const COMPACT_AFTER_CHUNKS: i64 = 64;

/// What a new replica starts with.
#[derive(Clone, Debug)]
pub struct NewTeam {
    pub team_id: String,
    pub team_name: String,
    pub tz: String,
    pub member_id: String,
    pub member_name: String,
    pub handle: String,
    pub at_ms: i64,
}

/// What a reaction did: reacting twice with the same emoji takes the reaction back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reacted {
    Added,
    Removed,
}

/// Which index rows a document change touched.
enum Touched<'a> {
    Team,
    Event(&'a EventId),
    Events(&'a [&'a EventId]),
}

/// Which of the days members acted a read wants.
#[derive(Clone, Copy)]
enum Days<'a> {
    All,
    Weeks,
    Since(Date),
    Of(&'a str),
}

/// Counts describing a replica, for `doctor` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub docs: i64,
    pub chunks: i64,
    pub events: i64,
    pub outbox: i64,
}

/// An open replica.
#[derive(Debug)]
pub struct Replica {
    conn: Connection,
    path: PathBuf,
}

impl Replica {
    /// Creates a new replica at `path` holding a new team; fails if one exists.
    pub fn create(path: &Path, new: &NewTeam) -> Result<Replica> {
        Self::create_with(path, |tx| {
            set_meta(tx, "team_id", &new.team_id)?;
            set_meta(tx, "me", &new.member_id)?;
            Self::change_in(tx, TEAM_DOC, &new.member_id, Touched::Team, |doc| {
                team::init(
                    doc,
                    &new.team_name,
                    &new.tz,
                    &new.member_name,
                    &new.handle,
                    &new.member_id,
                    new.at_ms,
                )
            })?;
            Ok(())
        })
    }

    /// Creates a replica at `path` whose first transaction is `fill`; fails if one exists.
    fn create_with(
        path: &Path,
        fill: impl FnOnce(&Transaction<'_>) -> Result<()>,
    ) -> Result<Replica> {
        if path.exists() || sidecar(path, "-wal").exists() {
            return Err(Error::Exists(path.to_owned()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            // The home holds the device token: only its owner may look inside.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                detail: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        // Build the whole replica under a name of its own, then link it into place, so a crash
        // during `init` never leaves a half-made replica behind and two `init`s at once cannot
        // overwrite each other (linking fails when the target exists).
        let tmp = sidecar(path, &format!(".creating-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let built = (|| {
            // Made 0600 before SQLite opens it (SQLite gives its -wal and -shm files the same
            // mode): the replica holds the device token.
            private_file(&tmp).map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                detail: format!("cannot create {}: {e}", tmp.display()),
            })?;
            let conn = Connection::open(&tmp)?;
            let mut replica = Replica {
                conn,
                path: path.to_owned(),
            };
            replica.configure()?;
            replica.migrate()?;
            let tx = replica
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            fill(&tx)?;
            tx.commit()?;
            replica
                .conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok::<_, Error>(())
        })();
        let linked = built.and_then(|()| {
            std::fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Exists(path.to_owned())
                } else {
                    Error::Corrupt {
                        path: path.to_owned(),
                        detail: format!("cannot put the new replica in place: {e}"),
                    }
                }
            })
        });
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(sidecar(&tmp, suffix));
        }
        linked?;
        Replica::open(path)
    }

    /// Opens an existing replica, migrating an older schema forward.
    pub fn open(path: &Path) -> Result<Replica> {
        if !path.exists() {
            return Err(Error::Missing(path.to_owned()));
        }
        // Only a file that is not a database, or a damaged one, is "corrupt"; permissions, a full
        // disk or an I/O error are reported as they are, so nobody replaces a good replica.
        let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                Error::Corrupt {
                    path: path.to_owned(),
                    detail: e.to_string(),
                }
            }
            _ => Error::from(e),
        };
        // Replicas made before they were private become so now.
        for suffix in ["", "-wal", "-shm"] {
            tighten(&sidecar(path, suffix));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(corrupt)?;
        let mut replica = Replica {
            conn,
            path: path.to_owned(),
        };
        replica.configure().map_err(|e| match e {
            Error::Sqlite(e) => corrupt(e),
            other => other,
        })?;
        let version: i64 = replica
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        if version > SCHEMA_VERSION {
            return Err(Error::TooNew {
                path: path.to_owned(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                detail: "not a cairn replica".to_owned(),
            });
        }
        if version < SCHEMA_VERSION {
            replica.migrate()?;
        }
        let me: Option<String> = replica
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'me'", [], |r| r.get(0))
            .optional()
            .map_err(corrupt)?;
        if me.is_none() {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                detail: "it names no member".to_owned(),
            });
        }
        Ok(replica)
    }

    fn configure(&mut self) -> Result<()> {
        self.conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL keeps readers and the writer apart; NORMAL sync in WAL mode never corrupts, and a
        // power loss can cost only the last transactions.
        // A file system without shared memory keeps the rollback journal: just as safe.
        let _mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        self.conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        // Schema 4 keys events by id and author: the whole index is made again.
        if (1..4).contains(&version) {
            reindex_all(&tx)?;
        }
        // Schemas 3 and 5 index more of the team document (rules and challenges; members who
        // left or were merged): fill them from it.
        if (1..5).contains(&version) {
            let has_team: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM docs WHERE id = ?1)",
                [TEAM_DOC],
                |r| r.get(0),
            )?;
            if has_team {
                let doc = load_doc(&tx, TEAM_DOC)?;
                index::reindex_team(&tx, &doc)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Where this replica lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The member who owns this device.
    pub fn me(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'me'", [], |r| r.get(0))?)
    }

    /// A number that changes whenever another connection (another cairn, a sync) commits to
    /// this replica: SQLite's `data_version`, cheap enough to poll.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// The dates member `id`'s calendar skipped by travel (see [`cairn_core::rules::travel_skips`]),
    /// from the instants and local dates of what they logged at the time.
    pub fn travel_skips(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeSet<cairn_core::time::Date>> {
        let mut st = self.conn.prepare_cached(
            "SELECT at_ms, date FROM events
             WHERE author = ?1 AND kind IN ('action', 'kudos') AND retracted = 0 AND late = 0",
        )?;
        let mut stamps = Vec::new();
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            let date = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            if let Some(d) = cairn_core::time::parse_date(date) {
                stamps.push((r.get::<_, i64>(0)?, d));
            }
        }
        Ok(cairn_core::rules::travel_skips(&stamps))
    }

    /// Whether member `id` has written any event: a placeholder added by hand never has.
    pub fn has_written(&self, id: &str) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM events WHERE author = ?1)",
            [id],
            |r| r.get(0),
        )?)
    }

    /// The team's id.
    pub fn team_id(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'team_id'", [], |r| {
                r.get(0)
            })?)
    }

    /// The team as the index knows it.
    pub fn team(&self) -> Result<TeamState> {
        index::team(&self.conn)
    }

    /// Logs a micro-action or a recognition by `author`.
    pub fn add_event(
        &mut self,
        author: &str,
        id: &EventId,
        stamp: &Stamp,
        new: &NewEvent,
    ) -> Result<()> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let doc = ids::journal_doc(author, &ids::month_of(stamp.at_ms));
        Self::change_in(&tx, &doc, author, Touched::Event(id), |d| {
            journal::add(d, &team, author, id, stamp, new)
        })?;
        tx.commit()?;
        Ok(())
    }

    /// Logs many events by `author` in one transaction, loading each journal once: for imports
    /// and for seeding large replicas. Stops at the first invalid event, writing nothing.
    pub fn add_events(
        &mut self,
        author: &str,
        events: &[(EventId, Stamp, NewEvent)],
    ) -> Result<()> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let mut start = 0;
        while start < events.len() {
            let month = ids::month_of(events[start].1.at_ms);
            let end = events[start..]
                .iter()
                .position(|(_, s, _)| ids::month_of(s.at_ms) != month)
                .map_or(events.len(), |n| start + n);
            let batch = &events[start..end];
            let doc_id = ids::journal_doc(author, &month);
            let ids: Vec<&EventId> = batch.iter().map(|(id, _, _)| id).collect();
            Self::change_in(&tx, &doc_id, author, Touched::Events(&ids), |d| {
                for (id, stamp, new) in batch {
                    journal::add(d, &team, author, id, stamp, new)?;
                }
                Ok(())
            })?;
            start = end;
        }
        tx.commit()?;
        Ok(())
    }

    /// Reacts to event `target` with `emoji`; a second identical reaction takes it back.
    pub fn react(
        &mut self,
        author: &str,
        target: &EventId,
        emoji: &str,
        id: &EventId,
        stamp: &Stamp,
    ) -> Result<Reacted> {
        let tx = self.write()?;
        // Two members' events may share an id; a reaction names the id, so it shows on each.
        let Some(t) = index::events_with_id(&tx, target)?.into_iter().next() else {
            return Err(Error::NoSuchEvent(target.short().to_owned()));
        };
        if t.kind == Kind::Reaction {
            return Err(cairn_core::Error::ReactToReaction.into());
        }
        if t.retracted {
            return Err(cairn_core::Error::Retracted(target.short().to_owned()).into());
        }
        // The same reaction made on two devices shows once; taking it back takes back both.
        let mine = index::live_reactions(&tx, target, author, emoji.trim())?;
        let outcome = if !mine.is_empty() {
            for r in &mine {
                let doc = index::doc_of(&tx, r, author)?;
                Self::change_in(&tx, &doc, author, Touched::Event(r), |d| {
                    journal::retract(d, author, r, stamp.at_ms)
                })?;
            }
            Reacted::Removed
        } else {
            let team = index::team(&tx)?;
            let doc = ids::journal_doc(author, &ids::month_of(stamp.at_ms));
            let new = NewEvent::reaction(target.clone(), emoji);
            Self::change_in(&tx, &doc, author, Touched::Event(id), |d| {
                journal::add(d, &team, author, id, stamp, &new)
            })?;
            Reacted::Added
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// Edits `author`'s own event `id`.
    pub fn edit_event(
        &mut self,
        author: &str,
        id: &EventId,
        edit: &Edit,
        at_ms: i64,
    ) -> Result<()> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let doc = own_doc(&tx, id, author)?;
        Self::change_in(&tx, &doc, author, Touched::Event(id), |d| {
            journal::edit(d, &team, author, id, edit, at_ms)
        })?;
        tx.commit()?;
        Ok(())
    }

    /// Retracts `author`'s own event `id`.
    pub fn retract_event(&mut self, author: &str, id: &EventId, at_ms: i64) -> Result<()> {
        let tx = self.write()?;
        let doc = own_doc(&tx, id, author)?;
        Self::change_in(&tx, &doc, author, Touched::Event(id), |d| {
            journal::retract(d, author, id, at_ms)
        })?;
        tx.commit()?;
        Ok(())
    }

    /// Changes the team document as member `by`.
    pub fn change_team<T>(
        &mut self,
        by: &str,
        op: impl FnOnce(&mut Automerge, &TeamState) -> cairn_core::Result<T>,
    ) -> Result<T> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let out = Self::change_in(&tx, TEAM_DOC, by, Touched::Team, |d| op(d, &team))?;
        tx.commit()?;
        Ok(out)
    }

    /// Changes the team document as member `by`, and notes the change in the feed (an event of
    /// kind team in `by`'s journal, saying what changed), in one transaction: `op` returns its
    /// result and the note's words.
    pub fn change_team_noted<T>(
        &mut self,
        by: &str,
        id: &EventId,
        stamp: &Stamp,
        op: impl FnOnce(&mut Automerge, &TeamState) -> cairn_core::Result<(T, String)>,
    ) -> Result<T> {
        let tx = self.write()?;
        let team = index::team(&tx)?;
        let (out, note) = Self::change_in(&tx, TEAM_DOC, by, Touched::Team, |d| op(d, &team))?;
        let team = index::team(&tx)?;
        let doc = ids::journal_doc(by, &ids::month_of(stamp.at_ms));
        Self::change_in(&tx, &doc, by, Touched::Event(id), |d| {
            journal::add(d, &team, by, id, stamp, &NewEvent::team(&note))
        })?;
        tx.commit()?;
        Ok(out)
    }

    /// Finds the event named by `text`: a full id, or a prefix (4 characters or more) of its tag.
    /// When two members' events share the id, `me`'s own is the one meant; otherwise the name is
    /// ambiguous.
    pub fn resolve(&self, text: &str, me: &str) -> Result<Event> {
        let text = text.trim().to_lowercase();
        let id = if let Some(id) = EventId::parse(&text) {
            Some(id)
        } else if text.len() >= 4 && ids::is_id_text(&text) {
            let mut ids = index::ids_by_tag_prefix(&self.conn, &text, 6)?;
            if ids.len() > 1 {
                ids.truncate(5);
                let candidates = ids
                    .iter()
                    .map(|i| i.tag().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::AmbiguousEvent {
                    prefix: text,
                    candidates,
                });
            }
            ids.pop()
        } else {
            None
        };
        let Some(id) = id else {
            return Err(Error::NoSuchEvent(text));
        };
        let mut found = index::events_with_id(&self.conn, &id)?;
        if found.len() > 1 {
            if let Some(i) = found.iter().position(|e| e.author == me) {
                return Ok(found.swap_remove(i));
            }
            let team = index::team(&self.conn)?;
            let candidates = found
                .iter()
                .map(|e| format!("{} by @{}", e.id.tag(), team.handle_of(&e.author)))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::AmbiguousEvent {
                prefix: text,
                candidates,
            });
        }
        found.pop().ok_or(Error::NoSuchEvent(text))
    }

    /// The feed, from the index, read in one snapshot.
    pub fn feed(&self, query: &FeedQuery) -> Result<Vec<FeedItem>> {
        let tx = self.conn.unchecked_transaction()?;
        let mut events = index::feed_events(&tx, query)?;
        // A placeholder merged into a member: their kudos name that member.
        let aliases = index::aliases(&tx)?;
        if !aliases.is_empty() {
            for e in &mut events {
                let mut to: Vec<String> = Vec::with_capacity(e.to.len());
                for m in &e.to {
                    let m = aliases.get(m).unwrap_or(m).clone();
                    if !to.contains(&m) {
                        to.push(m);
                    }
                }
                e.to = to;
                if let Some(a) = aliases.get(&e.author) {
                    e.author = a.clone();
                }
            }
        }
        let targets: std::collections::BTreeSet<&EventId> = events.iter().map(|e| &e.id).collect();
        let reactions = index::reactions_to(&tx, targets.into_iter())?;
        Ok(cairn_core::feed::feed(
            events.iter().chain(reactions.iter()),
            query,
        ))
    }

    /// Who was active on which local date: one pair per member and date with a micro-action or
    /// a recognition that was not retracted (what streaks count). Member ids are shared, not
    /// copied per row: there are tens of thousands of pairs and a few hundred members.
    pub fn activity(&self) -> Result<Vec<(Rc<str>, Date)>> {
        self.days(Days::All)
    }

    /// Who was active in which week, as (member, the Monday that starts it), each pair once:
    /// what the weekly team streak needs, a row per member and week instead of one per day.
    pub fn activity_by_week(&self) -> Result<Vec<(Rc<str>, Date)>> {
        self.days(Days::Weeks)
    }

    /// [`Replica::activity`] from the week of `from` on: what a heatmap of the last weeks needs.
    pub fn activity_since(&self, from: Date) -> Result<Vec<(Rc<str>, Date)>> {
        self.days(Days::Since(from))
    }

    /// The dates member `id` was active (their own and those of placeholders merged into them).
    pub fn active_days(&self, id: &str) -> Result<std::collections::BTreeSet<Date>> {
        Ok(self
            .days(Days::Of(id))?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    fn days(&self, which: Days<'_>) -> Result<Vec<(Rc<str>, Date)>> {
        let aliases = index::aliases(&self.conn)?;
        // Kept by triggers on `events`: a row per member and day, not one per event. A catch-up
        // in bulk not finished yet (cut between pages) has lifted them: the events are read.
        let bulk = get_meta(&self.conn, sync::BULK_INDEXES)?.is_some();
        let table = if bulk {
            format!("({})", schema::COUNTED_DAYS)
        } else {
            "member_days".to_owned()
        };
        // Each query's rows are (author, date).
        let (sql, params): (String, Vec<String>) = match which {
            Days::All => (format!("SELECT author, date FROM {table}"), vec![]),
            Days::Weeks if bulk => (format!("SELECT DISTINCT author, week FROM {table}"), vec![]),
            Days::Weeks => ("SELECT author, week FROM member_weeks".to_owned(), vec![]),
            Days::Since(from) => (
                format!("SELECT author, date FROM {table} WHERE week >= ?1"),
                vec![from.to_string()],
            ),
            // The member (unless merged into someone else) and the placeholders merged into
            // them.
            Days::Of(id) => {
                let mut who: Vec<String> = Vec::new();
                if !aliases.contains_key(id) {
                    who.push(id.to_owned());
                }
                who.extend(
                    aliases
                        .iter()
                        .filter(|(_, to)| *to == id)
                        .map(|(from, _)| from.clone()),
                );
                let marks = vec!["?"; who.len()].join(", ");
                (
                    format!("SELECT author, date FROM {table} WHERE author IN ({marks})"),
                    who,
                )
            }
        };
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(&params))?;
        let mut names: HashMap<String, Rc<str>> = HashMap::new();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let author = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let author = aliases.get(author).map_or(author, String::as_str);
            let Some(date) = cairn_core::time::parse_date(
                r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?,
            ) else {
                continue;
            };
            let name = match names.get(author) {
                Some(n) => n.clone(),
                None => {
                    let n: Rc<str> = author.into();
                    names.insert(author.to_owned(), n.clone());
                    n
                }
            };
            out.push((name, date));
        }
        Ok(out)
    }

    /// Every act that counts for badges and challenges (micro-actions and recognitions, not
    /// retracted), in time order, with recognitions' recipients.
    pub fn acts(&self) -> Result<Vec<cairn_core::goals::Act>> {
        // Two scans in the same (event, author) order, merged here: a lookup of the recipients
        // per event would cost a B-tree search for each of them.
        let tx = self.conn.unchecked_transaction()?;
        let aliases = index::aliases(&tx)?;
        let canon = |id: &str| -> String { aliases.get(id).map_or(id, String::as_str).to_owned() };
        let mut events = tx.prepare_cached(
            "SELECT id, author, date, kind, pillar FROM events
             WHERE kind IN ('action', 'kudos') AND retracted = 0
             ORDER BY id, author",
        )?;
        let mut recipients = tx.prepare_cached(
            "SELECT event, author, member FROM recipients ORDER BY event, author, ord",
        )?;
        let mut to_rows = recipients.query([])?;
        let mut pending = to_rows.next()?;
        let mut rows = events.query([])?;
        let mut out: Vec<cairn_core::goals::Act> = Vec::new();
        while let Some(r) = rows.next()? {
            let id = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let author = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            let mut to = Vec::new();
            // Recipients come in the same order: skip those of events not counted, take these.
            while let Some(t) = pending {
                let ev = t.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let by = t.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                match (ev, by).cmp(&(id, author)) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        let m = canon(t.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?);
                        if !to.contains(&m) {
                            to.push(m);
                        }
                    }
                    std::cmp::Ordering::Greater => break,
                }
                pending = to_rows.next()?;
            }
            let date = r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
            let kind = r.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
            let (Some(date), Some(kind)) = (cairn_core::time::parse_date(date), Kind::parse(kind))
            else {
                continue;
            };
            out.push(cairn_core::goals::Act {
                author: canon(author),
                date,
                kind,
                pillar: r.get(4)?,
                to,
            });
        }
        Ok(out)
    }

    /// Calls `f` with every event, reactions and retracted ones included, in id order.
    pub fn for_each_event(&self, f: impl FnMut(Event) -> Result<()>) -> Result<()> {
        index::for_each_event(&self.conn, f)
    }

    /// Counts of documents, chunks, events and outbox entries.
    pub fn stats(&self) -> Result<Stats> {
        let count = |sql: &str| -> Result<i64> { Ok(self.conn.query_row(sql, [], |r| r.get(0))?) };
        Ok(Stats {
            docs: count("SELECT count(*) FROM docs")?,
            chunks: count("SELECT count(*) FROM chunks")?,
            events: count("SELECT count(*) FROM events")?,
            outbox: count("SELECT count(*) FROM outbox")?,
        })
    }

    /// Rebuilds the whole index from the documents, in one transaction.
    pub fn rebuild_index(&mut self) -> Result<()> {
        let tx = self.write()?;
        reindex_all(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Compares the index with the documents; returns one line per difference found.
    pub fn verify_index(&self) -> Result<Vec<String>> {
        // One snapshot, so a writer in another shell cannot make a healthy index look wrong.
        let tx = self.conn.unchecked_transaction()?;
        let conn: &Connection = &tx;
        let mut problems = Vec::new();
        let mut st = conn.prepare("SELECT id FROM docs ORDER BY id")?;
        let docs: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut seen = 0i64;
        for id in &docs {
            let doc = load_doc(conn, id)?;
            if id == TEAM_DOC {
                let from_doc = team::read(&doc)?;
                let from_index = index::team(conn)?;
                if from_doc != from_index {
                    problems.push("the team in the index differs from the team document".into());
                }
                continue;
            }
            let owner = ids::journal_owner(id);
            for e in journal::read(&doc)? {
                if owner != Some(e.author.as_str()) {
                    continue; // never indexed: see `index::reindex_doc`
                }
                seen += 1;
                let Some(row) = index::event(conn, &e.id, &e.author)? else {
                    problems.push(format!("event {} is missing from the index", e.id));
                    continue;
                };
                let row_doc = index::doc_of(conn, &e.id, &e.author)?;
                if row_doc.as_str() < id.as_str() {
                    // The same author's id in another journal that sorts first: that one keeps it.
                    seen -= 1;
                } else if row_doc != *id {
                    problems.push(format!("event {} is indexed from another journal", e.id));
                } else if row != e {
                    problems.push(format!("event {} differs from its journal", e.id));
                }
            }
        }
        let indexed: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        if indexed != seen {
            problems.push(format!(
                "the index holds {indexed} events, the journals {seen}"
            ));
        }
        // The days and weeks members acted, as the triggers kept them, against a count of the
        // events (not kept while a catch-up in bulk is unfinished: counted when it ends).
        if get_meta(conn, sync::BULK_INDEXES)?.is_none() {
            let astray = |table: &str, columns: &str, counted: &str| -> Result<i64> {
                Ok(conn.query_row(
                    &format!(
                        "WITH counted AS ({counted})
                         SELECT (SELECT count(*) FROM (
                             SELECT {columns} FROM {table} EXCEPT SELECT {columns} FROM counted
                         )) + (SELECT count(*) FROM (
                             SELECT {columns} FROM counted EXCEPT SELECT {columns} FROM {table}
                         ))"
                    ),
                    [],
                    |r| r.get(0),
                )?)
            };
            let days = astray(
                "member_days",
                "author, date, week, acts",
                schema::COUNTED_DAYS,
            )?;
            if days > 0 {
                problems.push(format!(
                    "{days} of the days members acted are out of step with their events"
                ));
            }
            let weeks = astray("member_weeks", "author, week, days", schema::COUNTED_WEEKS)?;
            if weeks > 0 {
                problems.push(format!(
                    "{weeks} of the weeks members acted are out of step with their days"
                ));
            }
        }
        Ok(problems)
    }

    fn write(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Loads document `doc_id` (empty if new), applies `op` as member `member`'s actor, and writes
    /// the new changes, the outbox entries and the index rows they touch, all inside `tx`.
    fn change_in<T>(
        tx: &Transaction<'_>,
        doc_id: &str,
        member: &str,
        touched: Touched<'_>,
        op: impl FnOnce(&mut Automerge) -> cairn_core::Result<T>,
    ) -> Result<T> {
        let mut doc = load_doc(tx, doc_id)?;
        doc.set_actor(actor_for(tx, member)?);
        let heads = doc.get_heads();
        let out = op(&mut doc)?;
        let changes = doc.get_changes(&heads);
        if changes.is_empty() {
            return Ok(out);
        }
        let mut chunk = Vec::new();
        {
            let mut outbox =
                tx.prepare_cached("INSERT INTO outbox (doc, hash, change) VALUES (?1, ?2, ?3)")?;
            for c in &changes {
                chunk.extend_from_slice(c.raw_bytes());
                outbox.execute(params![doc_id, c.hash().0.as_slice(), c.raw_bytes()])?;
            }
        }
        store_chunk(tx, doc_id, &doc, &chunk)?;
        match touched {
            Touched::Team => index::reindex_team(tx, &doc)?,
            Touched::Event(id) => index_events(tx, doc_id, &doc, &[id])?,
            Touched::Events(ids) => index_events(tx, doc_id, &doc, ids)?,
        }
        Ok(out)
    }
}

/// The journal holding `author`'s own event `id`; someone else's event is refused as theirs.
fn own_doc(conn: &Connection, id: &EventId, author: &str) -> Result<String> {
    match index::doc_of(conn, id, author) {
        Err(Error::NoSuchEvent(_)) if !index::events_with_id(conn, id)?.is_empty() => {
            Err(cairn_core::Error::NotYours(id.short().to_owned()).into())
        }
        other => other,
    }
}

/// Rebuilds the whole index from the documents inside `tx`.
fn reindex_all(tx: &Transaction<'_>) -> Result<()> {
    let days = index::DaysPaused::start(tx, usize::MAX)?;
    index::clear(tx)?;
    let docs: Vec<String> = {
        let mut st = tx.prepare("SELECT id FROM docs ORDER BY id")?;
        st.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    for id in docs {
        let doc = load_doc(tx, &id)?;
        index::reindex_doc(tx, &id, &doc)?;
    }
    // Counted from the events whether the triggers were there or not (a catch-up in bulk cut
    // between pages has lifted them).
    tx.execute_batch(schema::MEMBER_DAYS_REBUILD)?;
    days.finish(tx)
}

fn index_events(
    tx: &Transaction<'_>,
    doc_id: &str,
    doc: &Automerge,
    ids: &[&EventId],
) -> Result<()> {
    for id in ids {
        let Some(e) = journal::get(doc, id)? else {
            return Err(cairn_core::Error::NoSuchEvent(id.short().to_owned()).into());
        };
        index::upsert_event(tx, doc_id, &e)?;
    }
    Ok(())
}

/// Creates an empty file only its owner can read and write.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
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

/// `path` with `suffix` added to its file name (`replica.sqlite3-wal`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The actor of `member` on this device, made on first use.
fn actor_for(conn: &Connection, member: &str) -> Result<ActorId> {
    let found: Option<Vec<u8>> = conn
        .query_row(
            "SELECT actor FROM actors WHERE member = ?1",
            [member],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(bytes) = found {
        return Ok(ActorId::from(bytes));
    }
    let actor = ActorId::random();
    conn.execute(
        "INSERT INTO actors (member, actor) VALUES (?1, ?2)",
        params![member, actor.to_bytes()],
    )?;
    Ok(actor)
}

/// Loads a document from its snapshot and chunks; a document not stored yet is empty. Stored
/// bytes that automerge cannot load (or panics on) are an error, never a crash.
fn load_doc(conn: &Connection, doc_id: &str) -> Result<Automerge> {
    let bad = |detail: String| Error::Document {
        doc: doc_id.to_owned(),
        detail,
    };
    let snapshot: Option<Vec<u8>> = conn
        .prepare_cached("SELECT snapshot FROM docs WHERE id = ?1")?
        .query_row([doc_id], |r| r.get(0))
        .optional()?;
    let Some(snapshot) = snapshot else {
        return Ok(Automerge::new());
    };
    let mut doc = if snapshot.is_empty() {
        Automerge::new()
    } else {
        cairn_core::change::quietly(|| Automerge::load(&snapshot))
            .map_err(|p| bad(p.to_owned()))?
            .map_err(|e| bad(e.to_string()))?
    };
    let mut st = conn.prepare_cached("SELECT data FROM chunks WHERE doc = ?1 ORDER BY seq")?;
    let mut rows = st.query([doc_id])?;
    while let Some(row) = rows.next()? {
        let data: Vec<u8> = row.get(0)?;
        cairn_core::change::quietly(|| doc.load_incremental(&data))
            .map_err(|p| bad(p.to_owned()))?
            .map_err(|e| bad(e.to_string()))?;
    }
    Ok(doc)
}

/// Appends `chunk` to the document's stored form, compacting it when chunks pile up.
///
/// A document holding changes that wait for their dependencies is never compacted: a snapshot
/// would leave the waiting changes out.
fn store_chunk(tx: &Transaction<'_>, doc_id: &str, doc: &Automerge, chunk: &[u8]) -> Result<()> {
    let chunks: Option<i64> = tx
        .prepare_cached("SELECT chunks FROM docs WHERE id = ?1")?
        .query_row([doc_id], |r| r.get(0))
        .optional()?;
    let complete = || doc.get_missing_deps(&[]).is_empty();
    match chunks {
        None if complete() => {
            tx.prepare_cached("INSERT INTO docs (id, snapshot) VALUES (?1, ?2)")?
                .execute(params![doc_id, doc.save()])?;
        }
        None => {
            tx.prepare_cached("INSERT INTO docs (id, snapshot) VALUES (?1, x'')")?
                .execute([doc_id])?;
            append_chunk(tx, doc_id, 0, chunk)?;
        }
        Some(n) if n + 1 >= COMPACT_AFTER_CHUNKS && complete() => {
            tx.prepare_cached("DELETE FROM chunks WHERE doc = ?1")?
                .execute([doc_id])?;
            tx.prepare_cached(
                "UPDATE docs SET snapshot = ?2, chunks = 0, chunk_bytes = 0 WHERE id = ?1",
            )?
            .execute(params![doc_id, doc.save()])?;
        }
        Some(n) => append_chunk(tx, doc_id, n, chunk)?,
    }
    Ok(())
}

pub(crate) fn append_chunk(tx: &Transaction<'_>, doc_id: &str, n: i64, chunk: &[u8]) -> Result<()> {
    tx.prepare_cached("INSERT INTO chunks (doc, seq, data) VALUES (?1, ?2, ?3)")?
        .execute(params![doc_id, n + 1, chunk])?;
    tx.prepare_cached(
        "UPDATE docs SET chunks = chunks + 1, chunk_bytes = chunk_bytes + ?2 WHERE id = ?1",
    )?
    .execute(params![doc_id, chunk.len() as i64])?;
    Ok(())
}
