//! The replica's side of sync: the outbox going up, the team's change log coming down, the cursor
//! and the server this replica talks to.

use std::collections::HashSet;
use std::path::Path;

use automerge::{Automerge, Change, ChangeHash, ReadDoc};
use cairn_core::change::{self, Bounds};
use cairn_core::ids::is_doc_id;
use cairn_core::snapshot::{self, DocBounds};
use rusqlite::params;
use sha2::Digest as _;

use crate::docs::{load_doc, store_chunk};
use crate::{Error, Replica, Result, get_meta, index, set_meta};

/// One change made on this device that the server has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Its place in the outbox; acknowledging `seq` drops it and everything before it.
    pub seq: i64,
    pub doc: String,
    pub change: Vec<u8>,
}

/// A document the server sent whole: its compacted state (may be empty) and the changes after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingDoc {
    pub doc: String,
    pub snapshot: Vec<u8>,
    pub changes: Vec<Vec<u8>>,
}

/// Where a catch-up by whole documents stands, kept with the replica so that one cut short (a
/// crash, a dropped connection) goes on where it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchUpState {
    pub through: u64,
    pub after_doc: String,
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
    /// Changes set aside: they did not decode or did not apply.
    pub set_aside: usize,
    /// Changes waiting for the changes they depend on.
    pub waiting: usize,
    /// Changes this exchange set aside or began to keep waiting (what it cannot use), and their
    /// bytes: a page past [`MAX_UNUSABLE`] or [`MAX_UNUSABLE_BYTES`] of them is refused whole.
    pub unusable: usize,
    pub unusable_bytes: usize,
}

/// The most changes one page may bring that this replica cannot use (set aside because they
/// do not decode or apply, or kept waiting for changes that have not come): an honest server's
/// page holds none, or a few. Past it, or past [`MAX_UNUSABLE_BYTES`], the page is refused
/// whole ([`Error::Unusable`]) and the replica does not grow.
pub const MAX_UNUSABLE: usize = 1_000;
/// The most bytes of changes one page may bring that this replica cannot use.
pub const MAX_UNUSABLE_BYTES: usize = 16 << 20;

impl Applied {
    /// Notes a change set aside, of `bytes` bytes.
    fn aside(&mut self, bytes: usize) {
        self.set_aside += 1;
        self.unusable += 1;
        self.unusable_bytes += bytes;
    }

    /// Refuses the page when it brought more this replica cannot use than a page may.
    fn check_usable(&self) -> Result<()> {
        if self.unusable > MAX_UNUSABLE || self.unusable_bytes > MAX_UNUSABLE_BYTES {
            return Err(Error::Unusable {
                changes: self.unusable,
                bytes: self.unusable_bytes,
            });
        }
        Ok(())
    }
}

/// A change set aside because it did not decode or did not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// The SHA-256 of its chunk (its automerge hash, when the chunk is intact), in hex.
    pub hash: String,
    pub doc: String,
    pub reason: String,
    pub at_ms: i64,
}

/// A document new to this replica, made ready apart from the replica: loaded from its
/// snapshot, with the changes after it applied and its index rows read.
struct Prepared {
    /// The changes applied after the snapshot, as one chunk.
    chunk: Vec<u8>,
    applied: usize,
    /// Changes that did not decode, with why.
    aside: Vec<(Vec<u8>, String)>,
    rows: index::Rows,
}

/// Makes `d` (a document this replica does not hold) ready on any thread; `None` when it needs
/// the careful way (a snapshot that does not load, changes that wait for others or do not
/// apply, nothing to store).
fn prepare(d: &IncomingDoc, bounds: &Bounds) -> Option<Prepared> {
    if !is_doc_id(&d.doc) {
        return None;
    }
    let mut doc = if d.snapshot.is_empty() {
        Automerge::new()
    } else {
        load_snapshot(&d.doc, &d.snapshot).ok()?
    };
    let mut applied: Vec<Change> = Vec::with_capacity(d.changes.len());
    let mut aside = Vec::new();
    let mut hashes = HashSet::new();
    for bytes in &d.changes {
        match change::decode(bytes, bounds) {
            Ok((c, _)) => {
                let hash = c.hash();
                if doc.get_change_meta_by_hash(&hash).is_some() || !hashes.insert(hash) {
                    continue;
                }
                let deps_there = c
                    .deps()
                    .iter()
                    .all(|h| hashes.contains(h) || doc.get_change_meta_by_hash(h).is_some());
                if !deps_there {
                    return None;
                }
                applied.push(c);
            }
            Err(why) => aside.push((bytes.clone(), why.to_string())),
        }
    }
    if !applied.is_empty() {
        change::apply(&mut doc, applied.clone()).ok()?;
    } else if d.snapshot.is_empty() {
        // Nothing at all: the careful way says so.
        return None;
    }
    let rows = index::rows(&d.doc, &doc).ok()?;
    let mut chunk = Vec::new();
    for c in &applied {
        chunk.extend_from_slice(c.raw_bytes());
    }
    // (The document is dropped here, on the worker: freeing it is work too.)
    Some(Prepared {
        chunk,
        applied: applied.len(),
        aside,
        rows,
    })
}

/// Stores a document made ready by [`prepare`]: one this replica knew nothing of (not held, no
/// changes of it waiting or withdrawn) when the page began, and the first copy of it in the page.
fn store_prepared(
    tx: &rusqlite::Transaction<'_>,
    d: &IncomingDoc,
    p: Prepared,
    now_ms: i64,
    applied: &mut Applied,
) -> Result<()> {
    let doc_id = d.doc.as_str();
    for (bytes, why) in &p.aside {
        set_aside(tx, doc_id, bytes, why, now_ms)?;
        applied.aside(bytes.len());
    }
    tx.prepare_cached("INSERT INTO docs (id, snapshot) VALUES (?1, ?2)")?
        .execute(params![doc_id, d.snapshot])?;
    if !p.chunk.is_empty() {
        crate::docs::append_chunk(tx, doc_id, 0, &p.chunk)?;
    }
    index::write_rows(tx, doc_id, &p.rows)?;
    applied.changes += p.applied;
    applied.docs += 1;
    Ok(())
}

/// What applying changes to one document did.
#[derive(Debug, Default)]
struct DocOutcome {
    applied: usize,
    known: usize,
    set_aside: usize,
    waiting: usize,
    /// Changes that began to wait here, and the bytes of those set aside.
    new_waiting: usize,
    aside_bytes: usize,
}

/// Where a document being applied to started from.
enum Base {
    /// As stored in the replica.
    Stored,
    /// A snapshot the server sent, for a document this replica did not have: stored as it came.
    Sent(Vec<u8>),
    /// The stored document with a sent snapshot merged in: the snapshot is stored beside it.
    /// `indexed` are the stored document's heads, as the index saw it.
    Merged {
        bytes: Vec<u8>,
        indexed: Vec<ChangeHash>,
    },
}

impl Base {
    /// The document it stands for, from the start.
    fn load(&self, tx: &rusqlite::Transaction<'_>, doc_id: &str) -> Result<Automerge> {
        match self {
            Base::Stored => load_doc(tx, doc_id),
            Base::Sent(bytes) => load_snapshot(doc_id, bytes),
            Base::Merged { bytes, .. } => {
                let mut doc = load_doc(tx, doc_id)?;
                merge_snapshot(tx, &mut doc, doc_id, bytes)?;
                Ok(doc)
            }
        }
    }
}

/// Inspects a snapshot a server sent ([`snapshot::inspect`]): its cost to load, bounded by its
/// size, before anything loads it.
fn inspect_snapshot(doc_id: &str, bytes: &[u8]) -> Result<snapshot::Cost> {
    snapshot::inspect(bytes, &DocBounds::default())
        .map_err(|why| Error::BadChange(format!("the snapshot of {doc_id}: {why}")))
}

fn load_snapshot(doc_id: &str, bytes: &[u8]) -> Result<Automerge> {
    inspect_snapshot(doc_id, bytes)?;
    change::quietly(|| Automerge::load(bytes))
        .map_err(|p| Error::BadChange(format!("in {doc_id}: {p}")))?
        .map_err(|e| Error::BadChange(format!("in {doc_id}: {e}")))
}

/// Merges a snapshot a server sent into `doc`, document `doc_id` as stored (`conn`): refused,
/// before anything loads it, when it would cost too much to load alone or with what is stored.
fn merge_snapshot(
    conn: &rusqlite::Connection,
    doc: &mut Automerge,
    doc_id: &str,
    bytes: &[u8],
) -> Result<()> {
    let cost = inspect_snapshot(doc_id, bytes)?;
    let held = crate::docs::stored_cost(conn, doc_id)?;
    let max = crate::docs::MAX_DOC_OPS;
    if held.saturating_add(cost.ops.max(cost.span)) > max {
        return Err(Error::BadChange(format!(
            "the snapshot of {doc_id}: with the {held} operations stored here it would make a \
             document of more than {max}"
        )));
    }
    change::quietly(|| doc.load_incremental(bytes))
        .map_err(|p| Error::BadChange(format!("in {doc_id}: {p}")))?
        .map_err(|e| Error::BadChange(format!("in {doc_id}: {e}")))?;
    Ok(())
}

/// Applies `fresh` (decoded, in log order) and the changes waiting beside the document to
/// document `doc_id`, starting from `doc` (as `base` says): the ones whose dependencies are
/// there are applied and stored, the others wait, and any that does not apply is set aside,
/// never stopping the others.
fn apply_to_doc(
    tx: &rusqlite::Transaction<'_>,
    doc_id: &str,
    mut doc: Automerge,
    base: Base,
    fresh: Vec<Change>,
    now_ms: i64,
) -> Result<DocOutcome> {
    let mut out = DocOutcome::default();
    // The heads the index saw (none for a document new here).
    let indexed = match &base {
        Base::Stored => doc.get_heads(),
        Base::Sent(_) => Vec::new(),
        Base::Merged { indexed, .. } => indexed.clone(),
    };
    let withdrawn = withdrawn_hashes(tx, doc_id)?;
    let mut candidates: Vec<Change> = Vec::new();
    let mut hashes = HashSet::new();
    for c in fresh {
        let hash = c.hash();
        if withdrawn.contains(&hash)
            || doc.get_change_meta_by_hash(&hash).is_some()
            || !hashes.insert(hash)
        {
            out.known += 1;
            continue;
        }
        candidates.push(c);
    }
    let had_waiting = {
        let mut st = tx.prepare_cached("SELECT change FROM waiting WHERE doc = ?1")?;
        let rows = st.query_map([doc_id], |r| r.get::<_, Vec<u8>>(0))?;
        let mut n = 0;
        for bytes in rows {
            let bytes = bytes?;
            // They were decoded before they were put to wait.
            if let Ok(c) = Change::from_bytes(bytes)
                && hashes.insert(c.hash())
            {
                candidates.push(c);
                n += 1;
            }
        }
        n
    };
    // Order by dependencies: a change is ready when each of its dependencies is in the document
    // or among the ready ones before it. The log's order is already such an order.
    let mut ready: Vec<Change> = Vec::new();
    let mut ready_hashes: HashSet<ChangeHash> = HashSet::new();
    while !candidates.is_empty() {
        let before = ready.len();
        let mut rest = Vec::new();
        for c in candidates {
            let deps_there = c
                .deps()
                .iter()
                .all(|d| ready_hashes.contains(d) || doc.get_change_meta_by_hash(d).is_some());
            if deps_there {
                ready_hashes.insert(c.hash());
                ready.push(c);
            } else {
                rest.push(c);
            }
        }
        candidates = rest;
        if ready.len() == before {
            break;
        }
    }
    if had_waiting > 0 {
        let mut del = tx.prepare_cached("DELETE FROM waiting WHERE hash = ?1")?;
        for c in &ready {
            del.execute([c.hash().0.as_slice()])?;
        }
    }
    {
        let mut wait = tx.prepare_cached(
            "INSERT INTO waiting (hash, doc, change) VALUES (?1, ?2, ?3)
             ON CONFLICT (hash) DO NOTHING",
        )?;
        for c in &candidates {
            out.new_waiting +=
                wait.execute(params![c.hash().0.as_slice(), doc_id, c.raw_bytes()])?;
        }
    }
    out.waiting = candidates.len();
    let mut applied: Vec<Change> = Vec::with_capacity(ready.len());
    if ready.is_empty() {
        // Nothing to apply.
    } else if change::apply(&mut doc, ready.clone()).is_ok() {
        applied = ready;
    } else {
        // One of them does not apply: start again from where the document started and apply
        // them one at a time, each on a copy, setting aside those that fail (and those that
        // need them).
        doc = base.load(tx, doc_id)?;
        let mut refused: HashSet<ChangeHash> = HashSet::new();
        for c in ready {
            let hash = c.hash();
            let reason = if c.deps().iter().any(|d| refused.contains(d)) {
                Some("it depends on a change that was set aside".to_owned())
            } else {
                let mut copy = doc.clone();
                match change::apply(&mut copy, vec![c.clone()]) {
                    Ok(()) => {
                        doc = copy;
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            };
            match reason {
                None => applied.push(c),
                Some(why) => {
                    refused.insert(hash);
                    set_aside(tx, doc_id, c.raw_bytes(), &why, now_ms)?;
                    out.set_aside += 1;
                    out.aside_bytes += c.raw_bytes().len();
                }
            }
        }
    }
    let mut chunk = Vec::new();
    for c in &applied {
        chunk.extend_from_slice(c.raw_bytes());
    }
    out.applied = applied.len();
    if !applied.is_empty() {
        crate::rebase::retire_copied_actors(tx, &applied, now_ms)?;
    }
    match base {
        Base::Stored if applied.is_empty() => return Ok(out),
        Base::Stored => store_chunk(tx, doc_id, &doc, &chunk)?,
        Base::Sent(bytes) => {
            // Stored as it came: a snapshot this replica would save again is the same document.
            tx.prepare_cached(
                "INSERT INTO docs (id, snapshot) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot",
            )?
            .execute(params![doc_id, bytes])?;
            if !chunk.is_empty() {
                store_chunk(tx, doc_id, &doc, &chunk)?;
            }
        }
        Base::Merged { mut bytes, .. } => {
            // Chunks load in order, a whole document as well as changes.
            bytes.extend_from_slice(&chunk);
            store_chunk(tx, doc_id, &doc, &bytes)?;
        }
    }
    index::update(tx, doc_id, &doc, &indexed)?;
    Ok(out)
}

/// Applies `fresh` to document `doc_id` as stored (`doc`), as a pulled page would: the number
/// of changes applied.
pub(crate) fn apply_stored(
    tx: &rusqlite::Transaction<'_>,
    doc_id: &str,
    doc: Automerge,
    fresh: Vec<Change>,
    now_ms: i64,
) -> Result<usize> {
    Ok(apply_to_doc(tx, doc_id, doc, Base::Stored, fresh, now_ms)?.applied)
}

/// Keeps a change that did not decode or apply, with why, out of its document.
pub(crate) fn set_aside(
    tx: &rusqlite::Transaction<'_>,
    doc_id: &str,
    bytes: &[u8],
    why: &str,
    now_ms: i64,
) -> Result<()> {
    // Never decoded again here: the bytes may be anything. A change's own hash is the SHA-256
    // of its chunk past the magic bytes and checksum, so an intact change keeps its hash.
    let hash = sha2::Sha256::digest(bytes.get(8..).unwrap_or_default()).to_vec();
    tx.prepare_cached(
        "INSERT INTO set_aside (hash, doc, change, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (hash) DO NOTHING",
    )?
    .execute(params![hash, doc_id, bytes, why, now_ms])?;
    tx.prepare_cached("DELETE FROM waiting WHERE hash = ?1")?
        .execute([&hash])?;
    Ok(())
}

/// The hashes of the changes of `doc_id` the server's admin withdrew.
pub(crate) fn withdrawn_hashes(
    conn: &rusqlite::Connection,
    doc_id: &str,
) -> Result<HashSet<ChangeHash>> {
    let mut st = conn.prepare_cached("SELECT hash FROM withdrawn WHERE doc = ?1")?;
    let rows = st.query_map([doc_id], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = HashSet::new();
    for h in rows {
        if let Ok(h) = ChangeHash::try_from(h?.as_slice()) {
            out.insert(h);
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    /// Writes the team's first document into a replica that joined as the founder of a team
    /// with no history yet: the team called `team_name`, in the zone `tz`, with this replica's
    /// member (`name`, `@handle`) as its first member, waiting in the outbox to go up. Returns
    /// false, writing nothing, when the replica holds a team document already.
    pub fn found(
        &mut self,
        team_name: &str,
        tz: &str,
        name: &str,
        handle: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let me = self.me()?;
        let tx = self.write()?;
        if !index::team(&tx)?.name.is_empty() {
            return Ok(false);
        }
        Self::change_in(&tx, cairn_core::ids::TEAM_DOC, &me, |doc| {
            cairn_core::team::init(doc, team_name, tz, name, handle, &me, at_ms)
        })?;
        tx.commit()?;
        Ok(true)
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
    /// Changes already held are skipped. A change whose dependencies have not arrived waits
    /// beside its document until they do. A change that does not decode or does not apply is set
    /// aside with the reason (see [`Replica::set_aside`]); it never stops the rest. Only a change
    /// naming no document a team holds fails the whole exchange, writing nothing.
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
        let bounds = Bounds::default();
        let mut days = index::DaysPaused::start(&tx, order.len())?;
        for doc_id in order {
            days.touched(doc_id);
            let mut fresh = Vec::new();
            for p in pulled.iter().filter(|p| p.doc == doc_id) {
                match change::decode(&p.change, &bounds) {
                    Ok((c, _)) => fresh.push(c),
                    Err(why) => {
                        set_aside(&tx, doc_id, &p.change, &why.to_string(), now_ms)?;
                        applied.aside(p.change.len());
                    }
                }
            }
            let doc = load_doc(&tx, doc_id)?;
            let outcome = apply_to_doc(&tx, doc_id, doc, Base::Stored, fresh, now_ms)?;
            applied.changes += outcome.applied;
            applied.known += outcome.known;
            applied.set_aside += outcome.set_aside;
            applied.waiting += outcome.waiting;
            applied.unusable += outcome.set_aside + outcome.new_waiting;
            applied.unusable_bytes += outcome.aside_bytes;
            if outcome.applied > 0 {
                applied.docs += 1;
            }
        }
        applied.check_usable()?;
        days.finish(&tx)?;
        // A page of single changes: no catch-up by documents is going on any more.
        finish_catch_up(&tx)?;
        set_meta(&tx, "cursor", &cursor.to_string())?;
        set_meta(&tx, "last_sync_ms", &now_ms.to_string())?;
        tx.commit()?;
        Ok(applied)
    }

    /// Applies one page of a catch-up by whole documents in one transaction: drops the outbox
    /// through `acked_through`; merges each document's snapshot into what this replica holds
    /// (its own changes not yet sent stay), applies the changes after it and indexes the
    /// document once; then keeps `state` (`None`: the catch-up is over) and moves the cursor to
    /// `cursor`. A snapshot that does not load is set aside with the reason, like a change.
    ///
    /// While more pages are to come, the page's part of the write-ahead log is copied into the
    /// database by a checkpoint on a thread of its own that may still run when this returns:
    /// the next page, and dropping the replica, wait for it.
    pub fn apply_docs(
        &mut self,
        acked_through: Option<i64>,
        docs: &[IncomingDoc],
        state: Option<&CatchUpState>,
        cursor: u64,
        now_ms: i64,
    ) -> Result<Applied> {
        for d in docs {
            if !is_doc_id(&d.doc) {
                return Err(Error::BadChange(format!("`{}` names no document", d.doc)));
            }
        }
        // Whole documents touch much of the index: room for it in memory, not a trip to the
        // file for every row. And no checkpoint when a page commits, on this thread: each would
        // wait for the disk twice before the next page could start. The pages written so far
        // are copied into the database by a thread of their own while the next page is made
        // ready, and what is left once more when the catch-up is over. (Only for the page's
        // own commit: the connection checkpoints as usual again afterwards, whatever happens
        // next.)
        self.conn
            .execute_batch("PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0;")?;
        let applied = self.apply_page(acked_through, docs, state, cursor, now_ms);
        let restored = self.conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT};"
        ));
        let applied = applied?;
        restored?;
        self.wait_for_checkpoint();
        if state.is_some() {
            self.checkpoint_aside();
        } else {
            // (Readers in other processes may keep part of the log from being copied: the next
            // checkpoint does the rest.)
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(applied)
    }

    /// Copies what the log holds into the database on a thread and connection of its own,
    /// beside whatever this connection does next. It only helps: a checkpoint that cannot
    /// start (no thread to be had, no log to copy), or stops half-way, leaves its pages to the
    /// next one, as SQLite always does. (A passive checkpoint never waits for a lock.)
    fn checkpoint_aside(&mut self) {
        if !self.wal {
            return;
        }
        let path = self.path.clone();
        self.checkpointer = std::thread::Builder::new()
            .name("cairn-checkpoint".into())
            .spawn(move || {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
                if let Ok(conn) = rusqlite::Connection::open_with_flags(&path, flags) {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .ok();
    }

    fn apply_page(
        &mut self,
        acked_through: Option<i64>,
        docs: &[IncomingDoc],
        state: Option<&CatchUpState>,
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
        // A replica that holds no event yet takes the team in bulk: the index's indexes that
        // would be written all over go for the catch-up and are built again, in one sort each,
        // when its last page begins (while that page's documents load) or, when there was just
        // one page, once it is written.
        let starting = get_meta(&tx, "catch_up")?.is_none();
        let lifted = get_meta(&tx, BULK_INDEXES)?.is_some();
        let last_of_bulk = lifted && state.is_none();
        if starting && !lifted {
            // (Rows given from outside are no part of the team's history.)
            let empty: bool = tx.query_row(
                &format!(
                    "SELECT NOT EXISTS (SELECT 1 FROM events WHERE NOT {})",
                    crate::outside::OUTSIDE_ROW
                ),
                [],
                |r| r.get(0),
            )?;
            if empty && docs.len() + usize::from(state.is_some()) > 1 {
                // (The days members acted are counted page by page, as any page of many
                // documents does: see `DaysPaused`.)
                let indexes = index::bulk_indexes(&tx)?;
                for (name, _) in &indexes {
                    tx.execute(&format!("DROP INDEX \"{name}\""), [])?;
                }
                let sql: Vec<&str> = indexes.iter().map(|(_, sql)| sql.as_str()).collect();
                set_meta(&tx, BULK_INDEXES, &sql.join(";\n"))?;
            }
        }
        let bounds = Bounds::default();
        let mut days = index::DaysPaused::start(&tx, docs.len())?;
        for d in docs {
            days.touched(&d.doc);
        }
        // The documents this replica knows something of already (held, or with changes of
        // them waiting or withdrawn) take the careful way; the others are made ready apart.
        let known: HashSet<String> = tx
            .prepare_cached(
                "SELECT id FROM docs UNION SELECT doc FROM waiting UNION SELECT doc FROM withdrawn",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        // Two passes, on two threads: documents new here are loaded, caught up with their
        // changes and read for the index on a worker while this thread writes the ones before.
        std::thread::scope(|scope| -> Result<()> {
            // Loading documents costs more than writing them: two workers load every other
            // one each, and this thread takes them in turn, in the page's order. They may run
            // ahead as far as the page goes (what they make is about the size of what came), so
            // they keep loading while this thread builds the lifted indexes or waits for SQLite.
            let (known, bounds) = (&known, &bounds);
            let ready: Vec<std::sync::mpsc::Receiver<Option<Prepared>>> = (0..WORKERS)
                .map(|k| {
                    let (send, ready) = std::sync::mpsc::channel::<Option<Prepared>>();
                    scope.spawn(move || {
                        for d in docs.iter().skip(k).step_by(WORKERS) {
                            let p = (!known.contains(&d.doc))
                                .then(|| prepare(d, bounds))
                                .flatten();
                            if send.send(p).is_err() {
                                return;
                            }
                        }
                    });
                    ready
                })
                .collect();
            if last_of_bulk {
                end_bulk(&tx)?;
            }
            let mut taken: HashSet<&str> = HashSet::with_capacity(docs.len());
            for (i, d) in docs.iter().enumerate() {
                let prepared = ready[i % WORKERS]
                    .recv()
                    .map_err(|_| Error::BadChange("a worker stopped".into()))?;
                // (A second copy of a document in one page takes the careful way.)
                let first = taken.insert(d.doc.as_str());
                if let Some(p) = prepared
                    && first
                {
                    store_prepared(&tx, d, p, now_ms, &mut applied)?;
                    continue;
                }
                let doc_id = d.doc.as_str();
                let held: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM docs WHERE id = ?1)")?
                    .query_row([doc_id], |r| r.get(0))?;
                let (doc, base) = if d.snapshot.is_empty() {
                    (load_doc(&tx, doc_id)?, Base::Stored)
                } else if !held {
                    match load_snapshot(doc_id, &d.snapshot) {
                        Ok(doc) => (doc, Base::Sent(d.snapshot.clone())),
                        Err(e) => {
                            set_aside(&tx, doc_id, &d.snapshot, &e.to_string(), now_ms)?;
                            applied.aside(d.snapshot.len());
                            (load_doc(&tx, doc_id)?, Base::Stored)
                        }
                    }
                } else {
                    let mut doc = load_doc(&tx, doc_id)?;
                    let before = doc.get_heads();
                    match merge_snapshot(&tx, &mut doc, doc_id, &d.snapshot) {
                        // Nothing new in it: nothing to store.
                        Ok(()) if doc.get_heads() == before => (doc, Base::Stored),
                        Ok(()) => (
                            doc,
                            Base::Merged {
                                bytes: d.snapshot.clone(),
                                indexed: before,
                            },
                        ),
                        Err(e) => {
                            set_aside(&tx, doc_id, &d.snapshot, &e.to_string(), now_ms)?;
                            applied.aside(d.snapshot.len());
                            (load_doc(&tx, doc_id)?, Base::Stored)
                        }
                    }
                };
                let whole = !matches!(base, Base::Stored);
                let mut fresh = Vec::with_capacity(d.changes.len());
                for bytes in &d.changes {
                    match change::decode(bytes, bounds) {
                        Ok((c, _)) => fresh.push(c),
                        Err(why) => {
                            set_aside(&tx, doc_id, bytes, &why.to_string(), now_ms)?;
                            applied.aside(bytes.len());
                        }
                    }
                }
                let outcome = apply_to_doc(&tx, doc_id, doc, base, fresh, now_ms)?;
                applied.changes += outcome.applied;
                applied.known += outcome.known;
                applied.set_aside += outcome.set_aside;
                applied.waiting += outcome.waiting;
                applied.unusable += outcome.set_aside + outcome.new_waiting;
                applied.unusable_bytes += outcome.aside_bytes;
                if outcome.applied > 0 || whole {
                    applied.docs += 1;
                }
            }
            Ok(())
        })?;
        applied.check_usable()?;
        days.finish(&tx)?;
        match state {
            Some(s) => set_meta(&tx, "catch_up", &format!("{} {}", s.through, s.after_doc))?,
            None => finish_catch_up(&tx)?,
        }
        set_meta(&tx, "cursor", &cursor.to_string())?;
        set_meta(&tx, "last_sync_ms", &now_ms.to_string())?;
        tx.commit()?;
        Ok(applied)
    }

    /// The catch-up by whole documents this replica is in the middle of, if any.
    pub fn catch_up_state(&self) -> Result<Option<CatchUpState>> {
        Ok(get_meta(&self.conn, "catch_up")?.and_then(|v| {
            let (through, after_doc) = v.split_once(' ')?;
            Some(CatchUpState {
                through: through.parse().ok()?,
                after_doc: after_doc.to_owned(),
            })
        }))
    }

    /// Changes set aside because they did not decode or apply, newest first: at most `limit` of
    /// them (see [`Replica::set_aside_count`] and [`Replica::each_set_aside`]).
    pub fn set_aside(&self, limit: usize) -> Result<Vec<SetAside>> {
        let mut out = Vec::new();
        self.set_aside_rows(Some(limit), |a| {
            out.push(a);
            Ok::<_, Error>(())
        })?;
        Ok(out)
    }

    /// How many changes are set aside, and their bytes.
    pub fn set_aside_count(&self) -> Result<(u64, u64)> {
        Ok(self.conn.query_row(
            "SELECT count(*), coalesce(sum(length(change)), 0) FROM set_aside",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// Calls `f` with every change set aside, newest first, one at a time: memory stays
    /// bounded however many there are. An error of `f` stops it and is returned.
    pub fn each_set_aside<E: From<Error>>(
        &self,
        f: impl FnMut(SetAside) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.set_aside_rows(None, f)
    }

    fn set_aside_rows<E: From<Error>>(
        &self,
        limit: Option<usize>,
        mut f: impl FnMut(SetAside) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut st = self
            .conn
            .prepare(
                "SELECT hash, doc, reason, at_ms FROM set_aside ORDER BY at_ms DESC, hash LIMIT ?1",
            )
            .map_err(Error::from)?;
        let limit = limit.map_or(-1, |l| l as i64);
        let mut rows = st.query([limit]).map_err(Error::from)?;
        while let Some(r) = rows.next().map_err(Error::from)? {
            let row = (|| -> Result<SetAside> {
                let hash: Vec<u8> = r.get(0)?;
                Ok(SetAside {
                    hash: hex(&hash),
                    doc: r.get(1)?,
                    reason: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            })()?;
            f(row)?;
        }
        Ok(())
    }

    /// How many changes wait in the outbox, and their bytes.
    pub fn outbox_size(&self) -> Result<(i64, i64)> {
        Ok(self.conn.query_row(
            "SELECT count(*), coalesce(sum(length(change)), 0) FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// The number of the last change this device wrote (0 before the first): it only grows, so
    /// a command can tell whether it left anything for the server.
    pub fn outbox_head(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
            [],
            |r| r.get(0),
        )?)
    }

    /// True when at least one change waits in the outbox (cheap, unlike [`Replica::outbox_size`]).
    pub fn outbox_waiting(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM outbox)", [], |r| r.get(0))?)
    }

    /// Changes that arrived before the changes they depend on.
    pub fn waiting_changes(&self) -> Result<usize> {
        let beside: i64 = self
            .conn
            .query_row("SELECT count(*) FROM waiting", [], |r| r.get(0))?;
        // Replicas made before changes waited beside their documents keep them inside.
        let mut st = self.conn.prepare("SELECT id FROM docs WHERE chunks > 0")?;
        let ids: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut inside = 0;
        for id in ids {
            // (A document that cannot be loaded is said by `verify_index`.)
            if let Ok(doc) = load_doc(&self.conn, &id) {
                inside += doc.get_missing_deps(&[]).len();
            }
        }
        Ok(beside as usize + inside)
    }
}

/// SQLite's own number of pages in the write-ahead log past which a commit checkpoints it.
const WAL_AUTOCHECKPOINT: u32 = 1000;

/// Threads that load whole documents while the applying thread writes them.
const WORKERS: usize = 2;

/// The `meta` key holding the statements that build the index's own indexes again, while a
/// catch-up in bulk goes on without them.
pub(crate) const BULK_INDEXES: &str = "bulk_indexes";

/// Ends a catch-up by whole documents: the index's own indexes are built again if it went in
/// bulk, and its state goes.
fn finish_catch_up(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    end_bulk(tx)?;
    tx.prepare_cached("DELETE FROM meta WHERE key = 'catch_up'")?
        .execute([])?;
    Ok(())
}

/// Puts back the indexes a catch-up in bulk lifted, if one is under way. (A replica an older
/// cairn left in the middle of one also gets back the triggers it lifted, and counts the days
/// members acted: the statements are the ones it kept.)
pub(crate) fn end_bulk(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    if let Some(sql) = get_meta(tx, BULK_INDEXES)? {
        tx.execute_batch(&sql)?;
        tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
            .execute([BULK_INDEXES])?;
    }
    Ok(())
}

fn set_remote(tx: &rusqlite::Transaction<'_>, remote: &Remote) -> Result<()> {
    set_meta(tx, "server_url", &remote.url)?;
    set_meta(tx, "device_id", &remote.device_id)?;
    set_meta(tx, "token", &remote.token)?;
    Ok(())
}
