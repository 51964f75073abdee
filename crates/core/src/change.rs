//! Changes from elsewhere: a bounded look at an automerge change's bytes before anything decodes
//! it, and applying changes so that one that does not apply is refused instead of panicking.
//!
//! Decoding a change walks every operation it encodes, and the columns of a change are run-length
//! encoded: ninety bytes can claim 2^40 operations, or one operation with 2^40 predecessors.
//! [`inspect`] reads only the header and the run lengths of two columns, so its work grows with
//! the bytes received, and refuses a change whose decoding would cost more than its size allows.
//! [`decode`] then decodes what passed. [`apply`] applies decoded changes to a document and turns
//! an automerge panic (an operation naming an actor the change does not list, a counter that
//! overflows) into an error; the document is then unfit for use and must be reloaded.
//!
//! ```
//! use automerge::{Automerge, transaction::Transactable, ROOT};
//! use cairn_core::change::{self, Bounds};
//!
//! let mut doc = Automerge::new();
//! doc.transact::<_, _, automerge::AutomergeError>(|tx| { tx.put(ROOT, "k", "v")?; Ok(()) }).unwrap();
//! let bytes = doc.get_changes(&[])[0].raw_bytes().to_vec();
//! let (c, shape) = change::decode(&bytes, &Bounds::default()).unwrap();
//! assert_eq!(shape.ops, 1);
//! let mut replica = Automerge::new();
//! change::apply(&mut replica, vec![c]).unwrap();
//! // Thirty bytes of noise are refused before any decoding.
//! assert!(change::inspect(&[0x85; 30], &Bounds::default()).is_err());
//! ```

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::{Automerge, Change};

/// The first bytes of every automerge chunk.
pub(crate) const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// The chunk type of an uncompressed change.
pub(crate) const CHANGE_CHUNK: u8 = 1;
/// The ops columns whose run lengths say what decoding costs: the action of each operation
/// (column 4, unsigned integers) and the number of predecessors of each (column 7, a group).
const ACTION_COLUMN: u64 = (4 << 4) | 2;
const PRED_GROUP_COLUMN: u64 = 7 << 4;
/// The columns of cairn's changes, as automerge writes them: object (actor, counter), key
/// (actor, counter, string), insert, action, value (metadata, raw), predecessors (group, actor,
/// counter); as `id << 4 | type`. (Marks, which cairn never makes, add two more.)
const KNOWN_COLUMNS: [u64; 12] = [1, 2, 17, 19, 21, 52, 66, 86, 87, 112, 113, 115];
/// The actions of cairn's changes: make a map, set a value, make a list, delete. Text, counters
/// and marks are automerge's too, with rules of their own that its loader checks and applying a
/// change does not: a change using them could apply and leave a document that never loads.
pub(crate) const CAIRN_ACTIONS: [u64; 4] = [0, 1, 2, 3];
/// The bit of a column specification that marks it deflated.
pub(crate) const DEFLATE_BIT: u64 = 1 << 3;

/// How much a change may cost to decode and apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The most bytes of one change.
    pub max_bytes: usize,
    /// The most operations of one change. A change also has at most one operation per byte:
    /// cairn's own changes give each operation a key or a value of its own.
    pub max_ops: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_bytes: 1 << 20,
            max_ops: 10_000,
        }
    }
}

/// What [`inspect`] read of a change without decoding its operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Operations it encodes.
    pub ops: u64,
    /// Predecessors of all its operations together.
    pub preds: u64,
    /// The counter of its first operation.
    pub start_op: u64,
    /// Its number among its actor's changes.
    pub seq: u64,
    /// How many changes it depends on.
    pub deps: usize,
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it has {len} bytes; the most is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("it is not an uncompressed automerge change ({0})")]
    NotAChange(&'static str),
    #[error("it is cut short or damaged ({0})")]
    Malformed(&'static str),
    #[error(
        "it claims {ops} operations and {preds} predecessors in {len} bytes; the most is {max}"
    )]
    TooCostly {
        ops: u64,
        preds: u64,
        len: usize,
        max: u64,
    },
    #[error("its operation counters run past 2^32")]
    CounterOverflow,
    #[error("it does not decode: {0}")]
    Undecodable(String),
    #[error("it is damaged: its checksum does not match")]
    Checksum,
    #[error("it carries an author footer")]
    Author,
    #[error("its first operation is number {start_op}, but its place is after operation {after}")]
    Misplaced { start_op: u64, after: u64 },
    #[error("it does not apply: {0}")]
    DoesNotApply(String),
    #[error("it is not a saved document cairn loads ({0})")]
    NotADocument(&'static str),
    #[error("its deflated columns inflate past {max} bytes")]
    Inflates { max: usize },
    #[error(
        "it claims {ops} operations and {changes} changes in {len} bytes (inflated); the most is {max}"
    )]
    DocTooCostly {
        ops: u64,
        changes: u64,
        len: usize,
        max: u64,
    },
}

/// A cursor over a change's bytes; every read checks what is left.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Refusal> {
        if n > self.bytes.len() {
            return Err(Refusal::Malformed(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    // (Read straight from the slice: these run for every value of every column inspected.)
    pub(crate) fn uleb(&mut self, what: &'static str) -> Result<u64, Refusal> {
        let mut value = 0u64;
        for (i, &b) in self.bytes.iter().take(10).enumerate() {
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                return Err(Refusal::Malformed(what));
            }
            value |= low << (7 * i);
            if b & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(Refusal::Malformed(what))
    }

    pub(crate) fn sleb(&mut self, what: &'static str) -> Result<i64, Refusal> {
        let mut value = 0i64;
        let mut shift = 0u32;
        for (i, &b) in self.bytes.iter().enumerate() {
            if shift >= 64 {
                return Err(Refusal::Malformed(what));
            }
            value |= i64::from(b & 0x7f).wrapping_shl(shift);
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(Refusal::Malformed(what))
    }

    /// Skips `n` LEB128 numbers, reading no more of each than where it ends.
    pub(crate) fn skip_lebs(&mut self, n: u64, what: &'static str) -> Result<(), Refusal> {
        let mut left = n;
        if left == 0 {
            return Ok(());
        }
        for (i, &b) in self.bytes.iter().enumerate() {
            if b & 0x80 == 0 {
                left -= 1;
                if left == 0 {
                    self.bytes = &self.bytes[i + 1..];
                    return Ok(());
                }
            }
        }
        Err(Refusal::Malformed(what))
    }

    pub(crate) fn len(&mut self, what: &'static str) -> Result<usize, Refusal> {
        usize::try_from(self.uleb(what)?).map_err(|_| Refusal::Malformed(what))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// What a run-length encoded column of unsigned integers holds: its number of entries, the sum
/// of its values, and whether every value passes `ok`, read from the run headers alone
/// (saturating, never overflowing). Nulls count as entries and pass.
fn rle_count_and_sum(column: &[u8], ok: impl Fn(u64) -> bool) -> Result<(u64, u64, bool), Refusal> {
    let what = "a run-length column";
    let mut r = Reader { bytes: column };
    let (mut count, mut sum, mut all_ok) = (0u64, 0u64, true);
    while !r.is_empty() {
        let header = r.sleb(what)?;
        if header > 0 {
            let n = header.unsigned_abs();
            let v = r.uleb(what)?;
            count = count.saturating_add(n);
            sum = sum.saturating_add(n.saturating_mul(v));
            all_ok &= ok(v);
        } else if header < 0 {
            for _ in 0..header.unsigned_abs() {
                let v = r.uleb(what)?;
                sum = sum.saturating_add(v);
                all_ok &= ok(v);
                count += 1;
            }
        } else {
            count = count.saturating_add(r.uleb(what)?);
        }
    }
    Ok((count, sum, all_ok))
}

/// A change taken apart into its header fields and its raw operation columns, without decoding
/// any operation: the bounded view [`inspect`] judges, and a way for tools and tests to put a
/// change together again with one part replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    pub deps: Vec<[u8; 32]>,
    pub actor: Vec<u8>,
    pub seq: u64,
    pub start_op: u64,
    pub time: i64,
    pub message: Vec<u8>,
    pub other_actors: Vec<Vec<u8>>,
    /// Each column's specification and bytes, in order.
    pub columns: Vec<(u64, Vec<u8>)>,
    /// Bytes after the columns (where an author footer would be).
    pub extra: Vec<u8>,
}

impl Parts {
    /// Takes an uncompressed change chunk apart, with work and memory bounded by its size.
    pub fn parse(bytes: &[u8]) -> Result<Parts, Refusal> {
        let mut r = Reader { bytes };
        if r.take(4, "magic bytes")
            .map_err(|_| Refusal::NotAChange("too short"))?
            != MAGIC
        {
            return Err(Refusal::NotAChange("no magic bytes"));
        }
        r.take(4, "checksum")?;
        let [kind] = r.take(1, "chunk type")? else {
            unreachable!("take(1) gives one byte")
        };
        if *kind != CHANGE_CHUNK {
            return Err(Refusal::NotAChange("another kind of chunk"));
        }
        let body_len = r.len("chunk length")?;
        if body_len != r.bytes.len() {
            return Err(Refusal::Malformed("its length does not match its bytes"));
        }
        let n = r.len("dependencies")?;
        let raw = r.take(
            n.checked_mul(32)
                .ok_or(Refusal::Malformed("dependencies"))?,
            "dependencies",
        )?;
        let deps = raw
            .chunks_exact(32)
            .map(|c| <[u8; 32]>::try_from(c).unwrap_or([0; 32]))
            .collect();
        let n = r.len("actor")?;
        let actor = r.take(n, "actor")?.to_vec();
        let seq = r.uleb("sequence number")?;
        let start_op = r.uleb("start op")?;
        if start_op == 0 {
            return Err(Refusal::Malformed("start op 0"));
        }
        let time = r.sleb("time")?;
        let n = r.len("message")?;
        let message = r.take(n, "message")?.to_vec();
        let n = r.len("other actors")?;
        // Each actor takes at least a byte: a count past what is left is a lie.
        if n > r.bytes.len() {
            return Err(Refusal::Malformed("other actors"));
        }
        let mut other_actors = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.len("other actors")?;
            other_actors.push(r.take(len, "other actors")?.to_vec());
        }
        let n = r.len("columns")?;
        if n > r.bytes.len() {
            return Err(Refusal::Malformed("columns"));
        }
        let mut specs = Vec::with_capacity(n);
        let mut total = 0usize;
        for _ in 0..n {
            let spec = r.uleb("column spec")?;
            let len = r.len("column length")?;
            if spec & DEFLATE_BIT != 0 {
                return Err(Refusal::NotAChange("a deflated column"));
            }
            total = total
                .checked_add(len)
                .ok_or(Refusal::Malformed("column lengths"))?;
            if total > r.bytes.len() {
                return Err(Refusal::Malformed("column lengths"));
            }
            specs.push((spec, len));
        }
        let mut columns = Vec::with_capacity(specs.len());
        for (spec, len) in specs {
            columns.push((spec, r.take(len, "columns")?.to_vec()));
        }
        Ok(Parts {
            deps,
            actor,
            seq,
            start_op,
            time,
            message,
            other_actors,
            columns,
            extra: r.bytes.to_vec(),
        })
    }

    /// Puts the change together again, with the checksum of what it now holds (the start of
    /// the SHA-256 of its chunk type, length and body, as automerge computes it).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        uleb(&mut body, self.deps.len() as u64);
        for d in &self.deps {
            body.extend_from_slice(d);
        }
        uleb(&mut body, self.actor.len() as u64);
        body.extend_from_slice(&self.actor);
        uleb(&mut body, self.seq);
        uleb(&mut body, self.start_op);
        sleb(&mut body, self.time);
        uleb(&mut body, self.message.len() as u64);
        body.extend_from_slice(&self.message);
        uleb(&mut body, self.other_actors.len() as u64);
        for a in &self.other_actors {
            uleb(&mut body, a.len() as u64);
            body.extend_from_slice(a);
        }
        uleb(&mut body, self.columns.len() as u64);
        for (spec, col) in &self.columns {
            uleb(&mut body, *spec);
            uleb(&mut body, col.len() as u64);
        }
        for (_, col) in &self.columns {
            body.extend_from_slice(col);
        }
        body.extend_from_slice(&self.extra);
        let mut out = MAGIC.to_vec();
        out.extend([0; 4]);
        out.push(CHANGE_CHUNK);
        uleb(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        let hash = <sha2::Sha256 as sha2::Digest>::digest(&out[8..]);
        out[4..8].copy_from_slice(&hash[..4]);
        out
    }

    /// The column with specification `spec`, if the change has it.
    pub fn column(&self, spec: u64) -> Option<&[u8]> {
        self.columns
            .iter()
            .find(|(s, _)| *s == spec)
            .map(|(_, c)| c.as_slice())
    }

    /// Replaces (or adds, in order) the column with specification `spec`.
    pub fn set_column(&mut self, spec: u64, column: Vec<u8>) {
        match self.columns.iter_mut().find(|(s, _)| *s == spec) {
            Some(c) => c.1 = column,
            None => {
                self.columns.push((spec, column));
                self.columns.sort_by_key(|c| c.0);
            }
        }
    }
}

/// Column specifications of a change's operations: what each column holds.
pub mod columns {
    /// The actor index of each operation's object (column 0, actor indices).
    pub const OBJ_ACTOR: u64 = 1;
    /// The counter of each operation's object (column 0, unsigned integers).
    pub const OBJ_COUNTER: u64 = 2;
    /// Each operation's action (column 4, unsigned integers).
    pub const ACTION: u64 = super::ACTION_COLUMN;
    /// How many predecessors each operation has (column 7, a group).
    pub const PRED_GROUP: u64 = super::PRED_GROUP_COLUMN;
}

/// Appends `v` as unsigned LEB128.
pub fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Appends `v` as signed LEB128.
pub fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0) {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Reads a change's header and the run lengths of its action and predecessor columns, with work
/// bounded by its size, and refuses it unless decoding and applying it stay within `bounds`.
pub fn inspect(bytes: &[u8], bounds: &Bounds) -> Result<Shape, Refusal> {
    if bytes.len() > bounds.max_bytes {
        return Err(Refusal::TooLarge {
            len: bytes.len(),
            max: bounds.max_bytes,
        });
    }
    let parts = Parts::parse(bytes)?;
    // Only the columns automerge writes, each once and in order: a column it reads in a way
    // this count does not (another type under a known id, say) could hide the true cost.
    let mut last = None;
    for (spec, _) in &parts.columns {
        if !KNOWN_COLUMNS.contains(spec) {
            return Err(Refusal::NotAChange("a column automerge does not write"));
        }
        if last.is_some_and(|l| l >= *spec) {
            return Err(Refusal::Malformed("columns out of order"));
        }
        last = Some(*spec);
    }
    let (ops, _, cairn_actions) = match parts.column(ACTION_COLUMN) {
        Some(c) => rle_count_and_sum(c, |a| CAIRN_ACTIONS.contains(&a))?,
        None => (0, 0, true),
    };
    let preds = match parts.column(PRED_GROUP_COLUMN) {
        Some(c) => rle_count_and_sum(c, |_| true)?.1,
        None => 0,
    };
    let cheap = (bytes.len() as u64).min(bounds.max_ops);
    if ops > cheap || preds > cheap.saturating_add(ops) {
        return Err(Refusal::TooCostly {
            ops,
            preds,
            len: bytes.len(),
            max: bounds.max_ops,
        });
    }
    if !cairn_actions {
        return Err(Refusal::NotAChange(
            "an action cairn never takes (text, counters or marks)",
        ));
    }
    // automerge keeps counters in 32 bits: a change whose ops would pass that overflows them.
    if parts.start_op.saturating_add(ops) > u64::from(u32::MAX) {
        return Err(Refusal::CounterOverflow);
    }
    Ok(Shape {
        ops,
        preds,
        start_op: parts.start_op,
        seq: parts.seq,
        deps: parts.deps.len(),
    })
}

/// Inspects, then decodes a change, refusing a damaged checksum and an author footer (cairn
/// never writes one).
pub fn decode(bytes: &[u8], bounds: &Bounds) -> Result<(Change, Shape), Refusal> {
    let shape = inspect(bytes, bounds)?;
    let change = quietly(|| Change::from_bytes(bytes.to_vec()))
        .map_err(|p| Refusal::Undecodable(p.to_owned()))?
        .map_err(|e| Refusal::Undecodable(e.to_string()))?;
    if !crate::ids::checksum_ok(bytes, &change.hash().0) {
        return Err(Refusal::Checksum);
    }
    if quietly(|| change.author().is_some()).unwrap_or(true) {
        return Err(Refusal::Author);
    }
    // Whether automerge would write it byte for byte the same is checked where that is cheap:
    // once it is applied (see `apply`).
    Ok((change, shape))
}

/// Applies `changes` (each with its dependencies in `doc` or before it) to `doc`, and checks
/// that each is then in it exactly as it came: automerge keeps operations, not change bytes, and
/// writes a change again from its operations when it saves or sends the document; a change that
/// does not come out byte for byte the same would get another hash on a replica that compacted
/// it, stranding every change after it. On an error the document may hold part of them, or be
/// in a state automerge never meant: throw it away and load it again.
pub fn apply(doc: &mut Automerge, changes: Vec<Change>) -> Result<(), Refusal> {
    let hashes: Vec<_> = changes.iter().map(Change::hash).collect();
    placed(doc, &changes)?;
    let applied = quietly(|| {
        let before = doc.get_heads();
        doc.apply_changes(changes)?;
        // The new changes as the document now writes them, in one pass over it.
        let again: std::collections::HashSet<_> =
            doc.get_changes(&before).iter().map(Change::hash).collect();
        Ok::<_, automerge::AutomergeError>(hashes.iter().all(|h| again.contains(h)))
    });
    match applied {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(Refusal::DoesNotApply(
            "the document does not hold it as it came".into(),
        )),
        Ok(Err(e)) => Err(Refusal::DoesNotApply(e.to_string())),
        Err(panic) => Err(Refusal::DoesNotApply(panic.to_owned())),
    }
}

/// Checks that each change's operations are numbered right after those of the changes it
/// depends on, as automerge numbers them: a document saves its changes by their last operation
/// and finds their first from their dependencies, so a change numbered otherwise (one that drops
/// its dependencies, say) applies, and the document it is in can then never be loaded again.
fn placed(doc: &Automerge, changes: &[Change]) -> Result<(), Refusal> {
    let mut ends: std::collections::HashMap<automerge::ChangeHash, u64> =
        std::collections::HashMap::new();
    // Where each actor's operations end among the changes before it in this batch, and for each
    // change of the batch, the changes of the document its history reaches first.
    let mut batch_ends: std::collections::HashMap<Vec<u8>, u64> = std::collections::HashMap::new();
    let mut reaches: std::collections::HashMap<automerge::ChangeHash, Vec<automerge::ChangeHash>> =
        std::collections::HashMap::new();
    for c in changes {
        let start_op = c.start_op().get();
        let mut after = 0;
        // A set beside the list: a hostile batch can make these long, and a list alone would
        // make the check cubic in the batch.
        let mut in_doc: Vec<automerge::ChangeHash> = Vec::new();
        let mut in_doc_set: std::collections::HashSet<automerge::ChangeHash> =
            std::collections::HashSet::new();
        for d in c.deps() {
            let end = match ends.get(d) {
                Some(e) => {
                    for h in reaches.get(d).into_iter().flatten() {
                        if in_doc_set.insert(*h) {
                            in_doc.push(*h);
                        }
                    }
                    *e
                }
                None => {
                    if in_doc_set.insert(*d) {
                        in_doc.push(*d);
                    }
                    quietly(|| doc.get_change_meta_by_hash(d).map(|m| m.max_op))
                        .map_err(|p| Refusal::DoesNotApply(p.to_owned()))?
                        .ok_or_else(|| {
                            Refusal::DoesNotApply("it waits for a change it depends on".into())
                        })?
                }
            };
            after = after.max(end);
        }
        if start_op != after + 1 {
            return Err(Refusal::Misplaced { start_op, after });
        }
        // An actor numbers its operations once: a change numbered again from before its
        // actor's last one (two operations with one number) applies, and the document then
        // never loads. Its history ends before it by the check above, so only the actor's
        // changes outside its history can collide: those of the batch before it, and those of
        // the document its history does not reach (none, for a change made honestly; with an
        // empty `in_doc`, automerge lists every change).
        let actor = c.actor_id().to_bytes().to_vec();
        let mut end = batch_ends.get(&actor).copied().unwrap_or(0);
        if c.seq() > 1 {
            let outside = quietly(|| {
                doc.get_changes_meta(&in_doc)
                    .into_iter()
                    .filter(|m| m.actor.to_bytes() == actor.as_slice())
                    .map(|m| m.max_op)
                    .max()
            })
            .map_err(|p| Refusal::DoesNotApply(p.to_owned()))?;
            end = end.max(outside.unwrap_or(0));
        }
        if start_op <= end {
            return Err(Refusal::Misplaced {
                start_op,
                after: end,
            });
        }
        batch_ends.insert(actor, c.max_op());
        ends.insert(c.hash(), c.max_op());
        reaches.insert(c.hash(), in_doc);
    }
    Ok(())
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic inside it into an error that says what panicked. While it runs, the
/// panic hook of [`install_panic_hook`] stays silent: the caller reports the failure itself.
pub fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, &'static str> {
    let was = QUIET.with(|q| q.replace(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    out.map_err(|_| "automerge failed on it (a panic, caught)")
}

/// Makes panics caught by [`quietly`] silent, leaving every other panic to the hook installed
/// before. For binaries: call once at start.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !QUIET.with(Cell::get) {
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT};

    fn one_change(ops: usize) -> Vec<u8> {
        let mut doc = Automerge::new().with_actor(ActorId::from([3u8; 16]));
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            for i in 0..ops {
                tx.put(ROOT, format!("key{i}"), i as i64)?;
            }
            Ok(())
        })
        .unwrap();
        doc.get_changes(&[])[0].raw_bytes().to_vec()
    }

    fn with_column(bytes: &[u8], spec: u64, column: Vec<u8>) -> Vec<u8> {
        let mut parts = Parts::parse(bytes).unwrap();
        parts.set_column(spec, column);
        parts.encode()
    }

    #[test]
    fn parts_round_trip_byte_for_byte() {
        for n in [1, 7, 300] {
            let bytes = one_change(n);
            assert_eq!(Parts::parse(&bytes).unwrap().encode(), bytes);
        }
    }

    #[test]
    fn honest_changes_pass_with_their_op_count() {
        for n in [1, 7, 300] {
            let bytes = one_change(n);
            let shape = inspect(&bytes, &Bounds::default()).unwrap();
            assert_eq!(shape.ops, n as u64);
            let (change, _) = decode(&bytes, &Bounds::default()).unwrap();
            assert_eq!(change.len(), n);
        }
    }

    #[test]
    fn a_run_of_two_to_the_forty_ops_is_refused_before_decoding() {
        let bytes = one_change(1);
        let mut col = Vec::new();
        sleb(&mut col, 1 << 40);
        col.push(1);
        let evil = with_column(&bytes, ACTION_COLUMN, col);
        assert!(evil.len() < 120, "{}", evil.len());
        let started = std::time::Instant::now();
        let err = inspect(&evil, &Bounds::default()).unwrap_err();
        assert!(
            matches!(err, Refusal::TooCostly { ops, .. } if ops == 1 << 40),
            "{err:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }

    #[test]
    fn a_run_of_predecessors_is_refused_before_decoding() {
        let bytes = one_change(1);
        let mut col = Vec::new();
        sleb(&mut col, 1);
        uleb(&mut col, 1 << 40);
        let evil = with_column(&bytes, PRED_GROUP_COLUMN, col);
        let err = inspect(&evil, &Bounds::default()).unwrap_err();
        assert!(matches!(err, Refusal::TooCostly { preds, .. } if preds == 1 << 40));
    }

    #[test]
    fn counters_past_32_bits_are_refused() {
        let bytes = one_change(2);
        let mut parts = Parts::parse(&bytes).unwrap();
        parts.start_op = u64::from(u32::MAX);
        assert_eq!(
            inspect(&parts.encode(), &Bounds::default()),
            Err(Refusal::CounterOverflow)
        );
    }

    #[test]
    fn noise_and_truncations_are_refused_never_panic() {
        let bytes = one_change(5);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n], &Bounds::default()).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra, &Bounds::default()).is_err());
        assert!(inspect(&[0xff; 64], &Bounds::default()).is_err());
    }

    #[test]
    fn apply_turns_a_panic_into_a_refusal() {
        let mut doc = Automerge::new().with_actor(ActorId::from([4u8; 16]));
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put_object(ROOT, "m", automerge::ObjType::Map)?;
            Ok(())
        })
        .unwrap();
        let heads = doc.get_heads();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "k", 1)?;
            Ok(())
        })
        .unwrap();
        let second = doc.get_changes(&heads)[0].raw_bytes().to_vec();
        let mut base = Automerge::new();
        base.apply_changes(doc.get_changes(&[]).into_iter().take(1))
            .unwrap();
        // The op's object as (1, actor 5): the change lists one actor.
        let mut parts = Parts::parse(&second).unwrap();
        let (mut actor, mut counter) = (Vec::new(), Vec::new());
        sleb(&mut actor, 1);
        uleb(&mut actor, 5);
        sleb(&mut counter, 1);
        uleb(&mut counter, 1);
        parts.set_column(columns::OBJ_ACTOR, actor);
        parts.set_column(columns::OBJ_COUNTER, counter);
        let evil = parts.encode();
        let (change, _) = decode(&evil, &Bounds::default()).expect("it decodes");
        let err = apply(&mut base, vec![change]).unwrap_err();
        assert!(matches!(err, Refusal::DoesNotApply(_)), "{err:?}");
    }

    #[test]
    fn a_change_numbered_again_inside_its_actors_range_is_refused() {
        // Actor A's first change holds operations 1 to 3; actor B's, made apart, operation 1.
        let mut a = Automerge::new().with_actor(ActorId::from([5u8; 16]));
        a.transact::<_, _, automerge::AutomergeError>(|tx| {
            for k in ["x", "y", "z"] {
                tx.put(ROOT, k, 1)?;
            }
            Ok(())
        })
        .unwrap();
        let heads = a.get_heads();
        a.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "w", 2).map(|_| ()))
            .unwrap();
        let first = a.get_changes(&[])[0].clone();
        let second = a.get_changes(&heads)[0].clone();
        let mut b = Automerge::new().with_actor(ActorId::from([6u8; 16]));
        b.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "v", 3).map(|_| ()))
            .unwrap();
        let other = b.get_changes(&[])[0].clone();
        let mut base = Automerge::new();
        apply(&mut base, vec![first.clone(), other.clone()]).unwrap();
        // A's second change made to depend on B's only: numbered 2, as its dependencies say, and
        // so again over A's own operations 2 and 3.
        let mut parts = Parts::parse(second.raw_bytes()).unwrap();
        parts.deps = vec![other.hash().0];
        parts.start_op = 2;
        let (evil, _) = decode(&parts.encode(), &Bounds::default()).unwrap();
        let misplaced = Refusal::Misplaced {
            start_op: 2,
            after: 3,
        };
        let mut doc = base.clone();
        assert_eq!(apply(&mut doc, vec![evil.clone()]), Err(misplaced.clone()));
        // The same in one batch with the changes before it.
        let mut fresh = Automerge::new();
        assert_eq!(apply(&mut fresh, vec![first, other, evil]), Err(misplaced));
        apply(&mut base, vec![second]).expect("the honest one applies");
    }
}
