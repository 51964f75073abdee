//! Documents as stored: a compacted snapshot plus the chunks of changes written since, and the
//! automerge actor of each member on this device.

use automerge::{ActorId, Automerge, ReadDoc};
use cairn_core::snapshot::{self, Cost, DocBounds};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::{Error, Result};

/// Chunks a document may gather before it is compacted into one snapshot.
const COMPACT_AFTER_CHUNKS: i64 = 64;

/// The actor of `member` on this device, made on first use.
pub(crate) fn actor_for(conn: &Connection, member: &str) -> Result<ActorId> {
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

/// The most operations (and changes) one stored document may hold, its pieces together. A
/// snapshot a server sends is held to half of it ([`DocBounds::default`]), so a document that
/// merged one still grows by its own changes for a long while.
pub(crate) const MAX_DOC_OPS: u64 = 1 << 19;

/// What one stored document may cost to load, all its pieces together.
pub(crate) fn stored_bounds() -> DocBounds {
    let wire = DocBounds::default();
    DocBounds {
        max_bytes: wire.max_bytes * 2,
        max_ops: MAX_DOC_OPS,
        ..wire
    }
}

/// A stored document's pieces (its snapshot, then its chunks), each with its cost to load.
pub(crate) type Pieces = Vec<(Vec<u8>, Cost)>;

/// The stored pieces of a document, oldest first (its snapshot, then its chunks), each with
/// what it would cost to load; `None` when the document is not stored. A piece that loading
/// could make cost more than the bounds allow, alone or with the ones before it, is an error
/// naming it: nothing has loaded it.
pub(crate) fn stored_pieces(conn: &Connection, doc_id: &str) -> Result<Option<Pieces>> {
    let snapshot: Option<Vec<u8>> = conn
        .prepare_cached("SELECT snapshot FROM docs WHERE id = ?1")?
        .query_row([doc_id], |r| r.get(0))
        .optional()?;
    let Some(snapshot) = snapshot else {
        return Ok(None);
    };
    let mut pieces = vec![snapshot];
    let mut st = conn.prepare_cached("SELECT data FROM chunks WHERE doc = ?1 ORDER BY seq")?;
    let mut rows = st.query([doc_id])?;
    while let Some(row) = rows.next()? {
        pieces.push(row.get(0)?);
    }
    let bounds = stored_bounds();
    let mut total = Cost::default();
    let mut out = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.into_iter().enumerate() {
        let room = DocBounds {
            max_bytes: bounds.max_bytes.saturating_sub(total.len as usize),
            max_ops: bounds.max_ops.saturating_sub(total.ops.max(total.span)),
            ..bounds.clone()
        };
        let cost = snapshot::inspect(&piece, &room).map_err(|why| Error::Document {
            doc: doc_id.to_owned(),
            detail: if i == 0 {
                format!("its snapshot would cost too much to load: {why}")
            } else {
                format!("its chunk {i} would cost too much to load: {why}")
            },
        })?;
        total.len += cost.len;
        total.ops += cost.ops;
        total.span += cost.span;
        out.push((piece, cost));
    }
    Ok(Some(out))
}

/// The operations document `doc_id` holds as stored (0 when it is not), as loading would count
/// them.
pub(crate) fn stored_cost(conn: &Connection, doc_id: &str) -> Result<u64> {
    Ok(stored_pieces(conn, doc_id)?
        .unwrap_or_default()
        .iter()
        .map(|(_, cost)| cost.ops.max(cost.span))
        .sum())
}

/// Loads a document from its snapshot and chunks; a document not stored yet is empty. Stored
/// bytes that would cost more to load than a document may ([`stored_pieces`]), or that
/// automerge cannot load (or panics on), are an error, never a crash.
pub(crate) fn load_doc(conn: &Connection, doc_id: &str) -> Result<Automerge> {
    let bad = |detail: String| Error::Document {
        doc: doc_id.to_owned(),
        detail,
    };
    let Some(pieces) = stored_pieces(conn, doc_id)? else {
        return Ok(Automerge::new());
    };
    let mut doc = Automerge::new();
    for (i, (piece, _)) in pieces.iter().enumerate() {
        if piece.is_empty() {
            continue;
        }
        if i == 0 {
            doc = cairn_core::change::quietly(|| Automerge::load(piece))
                .map_err(|p| bad(p.to_owned()))?
                .map_err(|e| bad(e.to_string()))?;
        } else {
            cairn_core::change::quietly(|| doc.load_incremental(piece))
                .map_err(|p| bad(p.to_owned()))?
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(doc)
}

/// Appends `chunk` to the document's stored form, compacting it when chunks pile up.
///
/// A document holding changes that wait for their dependencies is never compacted: a snapshot
/// would leave the waiting changes out.
pub(crate) fn store_chunk(
    tx: &Transaction<'_>,
    doc_id: &str,
    doc: &Automerge,
    chunk: &[u8],
) -> Result<()> {
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

/// Stores `doc` as document `doc_id`'s whole new state (one snapshot, no chunks) and indexes it
/// again: for a document rebuilt without some of its changes.
pub(crate) fn replace_doc(tx: &Transaction<'_>, doc_id: &str, doc: &Automerge) -> Result<()> {
    tx.execute("DELETE FROM chunks WHERE doc = ?1", [doc_id])?;
    tx.execute(
        "UPDATE docs SET snapshot = ?2, chunks = 0, chunk_bytes = 0 WHERE id = ?1",
        params![doc_id, doc.save()],
    )?;
    crate::index::reindex_doc(tx, doc_id, doc)
}
