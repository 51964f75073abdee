//! A server restored from a backup: what this device wrote goes up again.
//!
//! A server's logs carry an identity (`SyncResponse::log`) that a restore changes, and a
//! device whose cursor is past a log's head learns the same from the server (`past_head`).
//! Either way the server lost what was written after its backup, and every device still holds
//! what it wrote. [`Replica::resend_all`] puts every change of this device's own actors back in
//! the outbox, each document's in causal order, and starts reading the log from its start
//! again: the server acknowledges again what it kept (by hash, so nothing is stored twice) and
//! takes the rest, and the pulls bring back what others send again. Changes of others that
//! this replica holds are theirs to send: a server takes a change only from its author's
//! device.
//!
//! A change of this device's that depends on one the server lost and its author has not sent
//! again yet is refused (`missing_deps`): [`Replica::hold_back`] moves that document's
//! changes behind the rest of the outbox, so everything else goes up meanwhile.

use std::collections::HashSet;

use crate::docs::load_doc;
use crate::{Replica, Result, get_meta, set_meta};

/// The key of the server's log identity this replica last synced with.
const SERVER_LOG: &str = "server_log";

impl Replica {
    /// The identity of the server's logs this replica last synced with, if a server said one.
    pub fn server_log(&self) -> Result<Option<String>> {
        get_meta(&self.conn, SERVER_LOG)
    }

    /// Remembers the identity of the server's logs this replica syncs with.
    pub fn set_server_log(&mut self, log: &str) -> Result<()> {
        let tx = self.write()?;
        set_meta(&tx, SERVER_LOG, log)?;
        tx.commit()?;
        Ok(())
    }

    /// After a restore of the server (its logs' identity is `log` now): puts every change of
    /// this device's actors in the outbox again, in causal order document by document, and
    /// reads the log from its start again (no catch-up under way). Returns how many changes
    /// wait in the outbox now. In one transaction: a crash halfway leaves the replica as it was.
    pub fn resend_all(&mut self, log: Option<&str>) -> Result<usize> {
        let tx = self.write()?;
        let mine: HashSet<Vec<u8>> = {
            let mut st = tx.prepare("SELECT actor FROM actors")?;
            st.query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let docs: Vec<String> = {
            let mut st = tx.prepare("SELECT id FROM docs ORDER BY id")?;
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        // What waits unsent is written again below with the rest, in its document's order.
        tx.execute("DELETE FROM outbox", [])?;
        let mut queued = 0;
        {
            let mut put =
                tx.prepare("INSERT INTO outbox (doc, hash, change) VALUES (?1, ?2, ?3)")?;
            for doc_id in &docs {
                let doc = load_doc(&tx, doc_id)?;
                for c in doc.get_changes(&[]) {
                    if mine.contains(c.actor_id().to_bytes()) {
                        put.execute(rusqlite::params![
                            doc_id,
                            c.hash().0.as_slice(),
                            c.raw_bytes()
                        ])?;
                        queued += 1;
                    }
                }
            }
        }
        set_meta(&tx, "cursor", "0")?;
        tx.execute("DELETE FROM meta WHERE key = 'catch_up'", [])?;
        if let Some(log) = log {
            set_meta(&tx, SERVER_LOG, log)?;
        }
        tx.commit()?;
        Ok(queued)
    }

    /// Moves the outbox's changes of document `doc` behind all the others (the server lacks a
    /// change they depend on, which its author has not sent again yet); returns how many.
    pub fn hold_back(&mut self, doc: &str) -> Result<usize> {
        let tx = self.write()?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = {
            let mut st =
                tx.prepare("SELECT hash, change FROM outbox WHERE doc = ?1 ORDER BY seq")?;
            st.query_map([doc], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        tx.execute("DELETE FROM outbox WHERE doc = ?1", [doc])?;
        {
            let mut put =
                tx.prepare("INSERT INTO outbox (doc, hash, change) VALUES (?1, ?2, ?3)")?;
            for (hash, change) in &rows {
                put.execute(rusqlite::params![doc, hash, change])?;
            }
        }
        tx.commit()?;
        Ok(rows.len())
    }
}
