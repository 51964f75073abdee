//! The replica's side of sync: the outbox going up, the team's change log coming down, the cursor
//! and the server this replica talks to.

use std::collections::HashSet;
use std::path::Path;

use automerge::{Change, ReadDoc};
use cairn_core::ids::{self, is_doc_id};

use crate::{Error, Replica, Result, get_meta, index, load_doc, set_meta, store_chunk};

/// One change made on this device that the server has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Its place in the outbox; acknowledging `seq` drops it and everything before it.
    pub seq: i64,
    pub doc: String,
    pub change: Vec<u8>,
}

/// One change of the team's change log, as the server numbered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub doc: String,
    pub change: Vec<u8>,
}

/// What applying an exchange did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes new to this replica.
    pub changes: usize,
    /// Changes already here (sent twice, or made on this device).
    pub known: usize,
    /// Documents whose index rows were rebuilt.
    pub docs: usize,
    /// Outbox entries dropped.
    pub acked: usize,
}

/// The server a replica syncs with, and who it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    pub device_id: String,
    pub token: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("device_id", &self.device_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Replica {
    /// Creates a replica for a member who joined a team through a server; the team's documents
    /// arrive with the first sync.
    pub fn create_joined(
        path: &Path,
        team_id: &str,
        member_id: &str,
        remote: &Remote,
    ) -> Result<Replica> {
        Self::create_with(path, |tx| {
            set_meta(tx, "team_id", team_id)?;
            set_meta(tx, "me", member_id)?;
            set_remote(tx, remote)
        })
    }

    /// The server this replica syncs with, if any.
    pub fn remote(&self) -> Result<Option<Remote>> {
        let url = get_meta(&self.conn, "server_url")?;
        let device_id = get_meta(&self.conn, "device_id")?;
        let token = get_meta(&self.conn, "token")?;
        Ok(match (url, device_id, token) {
            (Some(url), Some(device_id), Some(token)) => Some(Remote {
                url,
                device_id,
                token,
            }),
            _ => None,
        })
    }

    /// Remembers the server this replica syncs with from now on.
    pub fn set_remote(&mut self, remote: &Remote) -> Result<()> {
        let tx = self.write()?;
        set_remote(&tx, remote)?;
        tx.commit()?;
        Ok(())
    }

    /// A setting of this replica kept beside its data (`None` when unset).
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        get_meta(&self.conn, &format!("setting.{key}"))
    }

    /// Sets (or with `None` removes) a setting.
    pub fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let key = format!("setting.{key}");
        match value {
            Some(v) => {
                let tx = self.write()?;
                set_meta(&tx, &key, v)?;
                tx.commit()?;
            }
            None => {
                self.conn
                    .execute("DELETE FROM meta WHERE key = ?1", [key])?;
            }
        }
        Ok(())
    }

    /// The number of the last entry of the team's change log applied here.
    pub fn cursor(&self) -> Result<u64> {
        Ok(get_meta(&self.conn, "cursor")?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    }

    /// When the last sync finished, in milliseconds since the epoch.
    pub fn last_sync_ms(&self) -> Result<Option<i64>> {
        Ok(get_meta(&self.conn, "last_sync_ms")?.and_then(|c| c.parse().ok()))
    }

    /// The oldest outbox entries: at most `max` of them and, past the first, at most `max_bytes`.
    pub fn outbox(&self, max: usize, max_bytes: usize) -> Result<Vec<Outgoing>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, doc, change FROM outbox ORDER BY seq LIMIT ?1")?;
        let mut rows = st.query([max as i64])?;
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(r) = rows.next()? {
            let change: Vec<u8> = r.get(2)?;
            bytes += change.len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(Outgoing {
                seq: r.get(0)?,
                doc: r.get(1)?,
                change,
            });
        }
        Ok(out)
    }

    /// Applies one exchange in one transaction: drops the outbox through `acked_through`, applies
    /// the pulled changes to their documents and index, and moves the cursor to `cursor`.
    ///
    /// Changes already held are skipped; changes whose dependencies have not arrived wait inside
    /// their document until they do. A change that does not decode, or names a document no team
    /// holds, fails the whole exchange and writes nothing.
    pub fn apply_exchange(
        &mut self,
        acked_through: Option<i64>,
        pulled: &[Incoming],
        cursor: u64,
        now_ms: i64,
    ) -> Result<Applied> {
        let tx = self.write()?;
        let mut applied = Applied::default();
        if let Some(seq) = acked_through {
            applied.acked = tx
                .prepare_cached("DELETE FROM outbox WHERE seq <= ?1")?
                .execute([seq])?;
        }
        // Group by document, keeping the log's order within each.
        let mut order: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for p in pulled {
            if !is_doc_id(&p.doc) {
                return Err(Error::BadChange(format!("`{}` names no document", p.doc)));
            }
            if seen.insert(p.doc.as_str()) {
                order.push(&p.doc);
            }
        }
        for doc_id in order {
            let mut doc = load_doc(&tx, doc_id)?;
            let mut fresh = Vec::new();
            let mut chunk = Vec::new();
            let mut hashes = HashSet::new();
            for p in pulled.iter().filter(|p| p.doc == doc_id) {
                let change = Change::from_bytes(p.change.clone())
                    .map_err(|e| Error::BadChange(format!("in {doc_id}: {e}")))?;
                let hash = change.hash();
                if !ids::checksum_ok(&p.change, &hash.0) {
                    return Err(Error::BadChange(format!("in {doc_id}: a damaged change")));
                }
                if doc.get_change_by_hash(&hash).is_some() || !hashes.insert(hash) {
                    applied.known += 1;
                    continue;
                }
                chunk.extend_from_slice(&p.change);
                fresh.push(change);
            }
            if fresh.is_empty() {
                continue;
            }
            applied.changes += fresh.len();
            doc.apply_changes(fresh)
                .map_err(|e| Error::BadChange(format!("in {doc_id}: {e}")))?;
            store_chunk(&tx, doc_id, &doc, &chunk)?;
            index::reindex_doc(&tx, doc_id, &doc)?;
            applied.docs += 1;
        }
        set_meta(&tx, "cursor", &cursor.to_string())?;
        set_meta(&tx, "last_sync_ms", &now_ms.to_string())?;
        tx.commit()?;
        Ok(applied)
    }

    /// How many changes wait in the outbox, and their bytes.
    pub fn outbox_size(&self) -> Result<(i64, i64)> {
        Ok(self.conn.query_row(
            "SELECT count(*), coalesce(sum(length(change)), 0) FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// True when at least one change waits in the outbox (cheap, unlike [`Replica::outbox_size`]).
    pub fn outbox_waiting(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM outbox)", [], |r| r.get(0))?)
    }

    /// Changes that arrived before the changes they depend on, per document.
    pub fn waiting_changes(&self) -> Result<usize> {
        let mut st = self.conn.prepare("SELECT id FROM docs WHERE chunks > 0")?;
        let ids: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut waiting = 0;
        for id in ids {
            waiting += load_doc(&self.conn, &id)?.get_missing_deps(&[]).len();
        }
        Ok(waiting)
    }
}

fn set_remote(tx: &rusqlite::Transaction<'_>, remote: &Remote) -> Result<()> {
    set_meta(tx, "server_url", &remote.url)?;
    set_meta(tx, "device_id", &remote.device_id)?;
    set_meta(tx, "token", &remote.token)?;
    Ok(())
}
