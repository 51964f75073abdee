//! A replica that turns out to share its actor with another copy of itself (a home copied to a
//! new laptop, a backup restored) writes its unsent changes again under a fresh actor.
//!
//! The server refuses a change that reuses an actor's number with other content, and names it.
//! That change, and every later one of this device to the same document, leaves the document;
//! what they did is written again by a fresh actor ([`cairn_core::rebase::reconcile`]), as one
//! new change in the outbox; the member writes with the fresh actor from then on. Nothing logged
//! on either copy is lost, and nothing is sent twice: what the server holds stays as it is.

use std::collections::HashSet;

use automerge::{Automerge, Change, ChangeHash};
use cairn_core::change;
use cairn_core::ids::is_doc_id;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::docs::{actor_for, load_doc};
use crate::{Error, Replica, Result, get_meta, set_meta};

/// What [`Replica::rebase`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebased {
    /// This device's changes that left the document.
    pub dropped: usize,
    /// Whether their effect needed a new change (false when another change of the outbox already
    /// did all they did).
    pub redone: bool,
    /// Changes set aside earlier (the other copy's, refused beside this one's) that apply now.
    pub restored: usize,
}

impl Replica {
    /// Writes again, under a fresh actor, this device's unsent changes to `doc_id` from the one
    /// the server refused (its hash, `refused`) on: the server holds another change with the
    /// same actor and number, so this replica was copied or restored from a backup.
    ///
    /// Fails, changing nothing, when the refused change is not one of this device's unsent
    /// changes, or when a change from elsewhere was made on top of the ones to write again.
    pub fn rebase(&mut self, doc_id: &str, refused: &[u8], now_ms: i64) -> Result<Rebased> {
        if !is_doc_id(doc_id) {
            return Err(Error::BadChange(format!("`{doc_id}` names no document")));
        }
        let path = self.path.clone();
        let tx = self.write()?;
        let outbox: Vec<Vec<u8>> = tx
            .prepare("SELECT change FROM outbox WHERE doc = ?1 ORDER BY seq")?
            .query_map([doc_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let unsent: Vec<Change> = outbox
            .into_iter()
            .filter_map(|bytes| Change::from_bytes(bytes).ok())
            .collect();
        let Some(first) = unsent.iter().find(|c| c.hash().0.as_slice() == refused) else {
            return Err(Error::NotUnsent(doc_id.to_owned()));
        };
        let (actor, from_seq) = (first.actor_id().clone(), first.seq());
        let mine: HashSet<ChangeHash> = unsent.iter().map(Change::hash).collect();
        let mut gone: HashSet<ChangeHash> = unsent
            .iter()
            .filter(|c| c.actor_id() == &actor && c.seq() >= from_seq)
            .map(Change::hash)
            .collect();
        let doc = load_doc(&tx, doc_id)?;
        let all = change::quietly(|| doc.get_changes(&[]))
            .map_err(|p| Error::BadChange(format!("in {doc_id}: {p}")))?;
        // (In causal order: what depends on a change comes after it.)
        let mut keep = Vec::with_capacity(all.len());
        for c in all {
            if gone.contains(&c.hash()) || c.deps().iter().any(|d| gone.contains(d)) {
                if !mine.contains(&c.hash()) {
                    return Err(Error::NotUnsent(doc_id.to_owned()));
                }
                gone.insert(c.hash());
            } else {
                keep.push(c);
            }
        }
        let mut base = Automerge::new();
        change::quietly(|| base.apply_changes(keep))
            .map_err(|p| Error::BadChange(format!("in {doc_id}: {p}")))?
            .map_err(|e| Error::BadChange(format!("in {doc_id}: {e}")))?;
        // The member whose actor it is writes with a fresh one from now on, in every document.
        let member: String = match tx
            .query_row(
                "SELECT member FROM actors WHERE actor = ?1",
                [actor.to_bytes()],
                |r| r.get(0),
            )
            .optional()?
        {
            Some(m) => m,
            None => get_meta(&tx, "me")?.ok_or_else(|| Error::Corrupt {
                path: path.clone(),
                detail: "it names no member".to_owned(),
            })?,
        };
        tx.execute("DELETE FROM actors WHERE actor = ?1", [actor.to_bytes()])?;
        let heads = base.get_heads();
        base.set_actor(actor_for(&tx, &member)?);
        let redone = cairn_core::rebase::reconcile(&mut base, &doc)?;
        {
            let mut del = tx.prepare_cached("DELETE FROM outbox WHERE hash = ?1")?;
            for h in &gone {
                del.execute([h.0.as_slice()])?;
            }
            let mut add =
                tx.prepare_cached("INSERT INTO outbox (doc, hash, change) VALUES (?1, ?2, ?3)")?;
            for c in base.get_changes(&heads) {
                add.execute(params![doc_id, c.hash().0.as_slice(), c.raw_bytes()])?;
            }
        }
        crate::docs::replace_doc(&tx, doc_id, &base)?;
        set_meta(&tx, COPIED, &now_ms.to_string())?;
        // What was set aside beside the dropped changes (the other copy's changes with the same
        // numbers, pulled before the server refused this one's) may apply now.
        let aside: Vec<(Vec<u8>, Vec<u8>)> = tx
            .prepare("SELECT hash, change FROM set_aside WHERE doc = ?1")?
            .query_map([doc_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut fresh = Vec::new();
        for (hash, bytes) in aside {
            if let Ok((c, _)) = change::decode(&bytes, &change::Bounds::default()) {
                tx.execute("DELETE FROM set_aside WHERE hash = ?1", [hash])?;
                fresh.push(c);
            }
        }
        let restored = if fresh.is_empty() {
            0
        } else {
            let doc = load_doc(&tx, doc_id)?;
            crate::sync::apply_stored(&tx, doc_id, doc, fresh, now_ms)?
        };
        tx.commit()?;
        Ok(Rebased {
            dropped: gone.len(),
            redone,
            restored,
        })
    }
}

/// The `meta` key that remembers when this replica found out it was a copy (another replica
/// wrote with one of its actors).
pub(crate) const COPIED: &str = "copied_ms";

/// After `applied` (changes new to this replica, pulled one by one) were applied: an actor of
/// this device among their authors means another replica writes with it too (a copy, a backup
/// restored): the member writes with a fresh actor from now on, so that the two copies number no
/// further change alike. (Changes inside a snapshot are not looked at: a copy that only ever
/// catches up by whole documents is found at the server's first `actor_reused` instead.)
pub(crate) fn retire_copied_actors(
    tx: &Transaction<'_>,
    applied: &[Change],
    now_ms: i64,
) -> Result<()> {
    let mine: Vec<Vec<u8>> = tx
        .prepare_cached("SELECT actor FROM actors")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut found = false;
    for actor in &mine {
        if applied
            .iter()
            .any(|c| c.actor_id().to_bytes() == actor.as_slice())
        {
            tx.prepare_cached("DELETE FROM actors WHERE actor = ?1")?
                .execute([actor])?;
            found = true;
        }
    }
    if found {
        set_meta(tx, COPIED, &now_ms.to_string())?;
    }
    Ok(())
}

impl Replica {
    /// When this replica found out it was a copy of another (a home copied, a backup restored),
    /// in milliseconds since the epoch; it writes under fresh actors since.
    pub fn copied_ms(&self) -> Result<Option<i64>> {
        Ok(get_meta(&self.conn, COPIED)?.and_then(|v| v.parse().ok()))
    }

    /// How many of `changes` (as a server's log holds them: document and bytes) were written
    /// with an actor of this device and are not in this replica: another copy of it wrote them.
    /// Changes that do not decode count for nothing.
    pub fn written_by_a_copy(&self, changes: &[(String, Vec<u8>)]) -> Result<usize> {
        let mine: HashSet<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT actor FROM actors")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut docs: std::collections::HashMap<&str, Automerge> = Default::default();
        let mut n = 0;
        for (doc_id, bytes) in changes {
            if !is_doc_id(doc_id) {
                continue;
            }
            // (What a server sends is inspected with bounded work before it is decoded.)
            let Ok((c, _)) = change::decode(bytes, &change::Bounds::default()) else {
                continue;
            };
            if !mine.contains(c.actor_id().to_bytes()) {
                continue;
            }
            let doc = match docs.entry(doc_id.as_str()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(load_doc(&self.conn, doc_id)?)
                }
            };
            if change::quietly(|| doc.get_change_meta_by_hash(&c.hash()).is_none()).unwrap_or(false)
            {
                n += 1;
            }
        }
        Ok(n)
    }
}
