//! The local replica of cairn: one SQLite file holding the team's automerge documents, the outbox
//! of changes not yet sent, and an index derived from the documents that every read uses.
//!
//! Layout:
//! - `docs` and `chunks`: each document as a compacted snapshot plus the changes written since;
//! - `outbox`: every change made on this device, until the server acknowledges it;
//! - `members`, `pillars`, `commitments`, `events`, `recipients`: the index. It is updated in the
//!   same transaction as the document bytes and can be rebuilt from them at any time
//!   ([`Replica::rebuild_index`]), beside the events given from outside
//!   ([`Replica::set_outside_events`]), which a rebuild keeps;
//! - `member_days` and `member_weeks`: the days and weeks each member acted, kept from `events`
//!   by triggers, for streaks.
//!
//! Every public write is one SQLite transaction: a crash loses at most the write in flight.
//!
//! Modules (each adds its part of [`Replica`]'s methods):
//! - `file`: making a replica whole or not at all, opening it, migrating its schema (`schema`);
//! - `docs`: documents as stored (snapshot and chunks) and each member's automerge actor;
//! - `write`: the writes a member makes, each one transaction with its outbox entries and index
//!   rows;
//! - `index`: the index's rows, written from documents and read by `read` (feed, events by name,
//!   the days members acted, the acts that count);
//! - `sync`: what goes to the server and what comes back, applied change by change or as whole
//!   documents;
//! - `withdraw`: withdrawal notices, applied unless they would hurt, and kept for review;
//! - `rebase`: a copied or restored replica's unsent changes written again under a fresh actor;
//! - `doctor`: counts, a rebuild of the index, a check of it against the documents;
//! - `outside`: events given from outside the team's documents (its organisation's notes),
//!   rows of the index that every rebuild keeps.
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

mod docs;
mod doctor;
mod error;
mod file;
mod index;
mod outside;
mod read;
mod rebase;
mod resend;
mod schema;
mod sync;
mod withdraw;
mod write;

use std::path::{Path, PathBuf};

use cairn_core::TeamState;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub use doctor::{Repaired, Stats};
pub use error::{Error, Result};
pub use rebase::Rebased;
pub use schema::SCHEMA_VERSION;
pub use sync::{
    Applied, CatchUpState, Incoming, IncomingDoc, MAX_UNUSABLE, MAX_UNUSABLE_BYTES, Outgoing,
    Remote, SetAside,
};
pub use withdraw::{MAX_LINES as MAX_WITHDRAWN_LINES, Withdrawal};

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

/// Which team a replica holds, as [`Replica::peek`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peek {
    pub team_id: String,
    /// Empty until the team document arrived (a device that joined and has not synced yet).
    pub team_name: String,
    pub server_url: Option<String>,
}

/// What a reaction did: reacting twice with the same emoji takes the reaction back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reacted {
    Added,
    Removed,
}

/// An open replica.
#[derive(Debug)]
pub struct Replica {
    conn: Connection,
    path: PathBuf,
    /// Whether the replica keeps a write-ahead log (a file system without shared memory keeps
    /// the rollback journal).
    wal: bool,
    /// A checkpoint running beside this connection during a catch-up (see `apply_docs`).
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.wait_for_checkpoint();
    }
}

impl Replica {
    /// Waits for the checkpoint running beside this connection, if any.
    fn wait_for_checkpoint(&mut self) {
        if let Some(running) = self.checkpointer.take() {
            // (It catches its own errors: a panic there has nothing to tell.)
            let _ = running.join();
        }
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
