//! Saved documents from elsewhere: a bounded look at what automerge's `load` and
//! `load_incremental` would be given (a snapshot a server sent, a document a replica stored)
//! before anything loads it.
//!
//! A saved document is a run of chunks: document chunks (automerge's compacted form, columns of
//! changes and of operations, the larger ones deflated) and change chunks. Loading walks every
//! operation and change the columns encode, and sets aside room for every operation number a
//! change claims; run-length encoding lets a hundred bytes claim 2^40 of either, and a deflated
//! column may inflate a thousandfold (automerge inflates it whole before looking). [`inspect`]
//! reads each chunk's header, inflates each deflated column into no more than
//! [`DocBounds::max_bytes`] all together, and reads the run lengths of every column, one column at
//! a time: its work and memory grow with the bytes received and what they may inflate to, never
//! with what they claim. It refuses compressed change chunks and bundles (cairn never writes
//! them; a server refuses them), columns cairn's documents never have, actions cairn never takes,
//! more operations, changes or successors than inflated bytes, and more than the bounds allow in
//! all. Change chunks get [`change::inspect`]'s bounds.
//!
//! ```
//! use automerge::{Automerge, transaction::Transactable, ROOT};
//! use cairn_core::snapshot::{self, DocBounds};
//!
//! let mut doc = Automerge::new();
//! doc.transact::<_, _, automerge::AutomergeError>(|tx| { tx.put(ROOT, "k", "v")?; Ok(()) }).unwrap();
//! let cost = snapshot::inspect(&doc.save(), &DocBounds::default()).unwrap();
//! assert_eq!((cost.ops, cost.changes), (1, 1));
//! // A saved document claiming 2^40 operations in a few dozen bytes is refused unread.
//! assert!(snapshot::inspect(&snapshot::op_bomb(40), &DocBounds::default()).is_err());
//! ```

use std::borrow::Cow;
use std::io::Read as _;

use crate::change::{
    self, Bounds, CAIRN_ACTIONS, CHANGE_CHUNK, DEFLATE_BIT, MAGIC, Reader, Refusal,
};

/// The chunk type of a saved document.
const DOCUMENT_CHUNK: u8 = 0;
/// The chunk type of a deflated change, and of a bundle of changes.
const COMPRESSED_CHUNK: u8 = 2;
const BUNDLE_CHUNK: u8 = 3;

/// The columns of a document chunk's changes, as `id << 4 | type`: actor, sequence number,
/// last operation, time, message, dependencies (group, index), extra bytes (metadata, raw).
const CHANGE_COLUMNS: [u64; 9] = [1, 3, 19, 35, 53, 64, 67, 86, 87];
/// The columns of its operations: object (actor, counter), key (actor, counter, string), id
/// (actor, counter), insert, action, value (metadata, raw), successors (group, actor, counter).
/// (Marks, which cairn never makes, add two more.)
const OP_COLUMNS: [u64; 14] = [1, 2, 17, 19, 21, 33, 35, 52, 66, 86, 87, 128, 129, 131];

const ACTION: u64 = 66;
const SUCC_GROUP: u64 = 128;
const MAX_OP: u64 = 19;
const DEPS_GROUP: u64 = 64;
const DEPS_INDEX: u64 = 67;
const VALUE_META: u64 = 86;
const VALUE_RAW: u64 = 87;

/// Column types (the low three bits of a specification).
const GROUP: u64 = 0;
const ACTOR: u64 = 1;
const INTEGER: u64 = 2;
const DELTA: u64 = 3;
const BOOLEAN: u64 = 4;
const STRING: u64 = 5;
const RAW: u64 = 7;

/// How much a saved document may cost to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocBounds {
    /// The most bytes all its chunks may hold once their deflated columns are inflated.
    pub max_bytes: usize,
    /// The most operations, and the most changes, all its chunks may hold together.
    pub max_ops: u64,
    /// The bounds of each change chunk in it.
    pub change: Bounds,
}

impl Default for DocBounds {
    /// A cairn document holds one member's month of events, or the team's members, pillars and
    /// rules: thousands of operations, tens of thousands for the largest team. Loading costs
    /// a few hundred bytes of memory per operation, so these bounds keep any one document under
    /// about a hundred megabytes, whatever it claims.
    fn default() -> Self {
        DocBounds {
            max_bytes: 16 << 20,
            max_ops: 1 << 18,
            change: Bounds::default(),
        }
    }
}

/// What [`inspect`] read of a saved document without loading it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Chunks, document and change chunks together.
    pub chunks: usize,
    /// Changes it holds.
    pub changes: u64,
    /// Operations it holds (successors included: automerge keeps a deletion as one).
    pub ops: u64,
    /// Operation numbers its changes claim, which loading sets aside room for.
    pub span: u64,
    /// Its bytes, with deflated columns inflated.
    pub len: u64,
}

/// Reads every chunk of `bytes` with work bounded by their size and what they may inflate to,
/// and refuses them unless loading them stays within `bounds`.
pub fn inspect(bytes: &[u8], bounds: &DocBounds) -> Result<Cost, Refusal> {
    let mut cost = Cost::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (kind, len) = chunk_header(rest)?;
        let (chunk, after) = rest.split_at(len);
        rest = after;
        cost.chunks += 1;
        match kind {
            DOCUMENT_CHUNK => {
                let room = bounds.max_bytes.saturating_sub(cost.len as usize);
                let doc = document(chunk, room, bounds)?;
                cost.changes += doc.changes;
                cost.ops += doc.ops;
                cost.span += doc.span;
                cost.len += doc.len;
            }
            CHANGE_CHUNK => {
                let shape = change::inspect(chunk, &bounds.change)?;
                cost.changes += 1;
                cost.ops += shape.ops + shape.preds;
                cost.span += shape.ops;
                cost.len += chunk.len() as u64;
            }
            COMPRESSED_CHUNK => {
                return Err(Refusal::NotADocument("a compressed change chunk"));
            }
            BUNDLE_CHUNK => return Err(Refusal::NotADocument("a bundle of changes")),
            _ => return Err(Refusal::NotADocument("an unknown kind of chunk")),
        }
        if cost.len > bounds.max_bytes as u64 {
            return Err(Refusal::Inflates {
                max: bounds.max_bytes,
            });
        }
        if cost.ops.max(cost.changes).max(cost.span) > bounds.max_ops {
            return Err(Refusal::DocTooCostly {
                ops: cost.ops.max(cost.span),
                changes: cost.changes,
                len: cost.len as usize,
                max: bounds.max_ops,
            });
        }
    }
    Ok(cost)
}

/// The chunks of `bytes`, each whole (its header included), in order: what a replica that
/// keeps some and sets others aside takes apart. Nothing is inflated or decoded.
pub fn split(bytes: &[u8]) -> Result<Vec<&[u8]>, Refusal> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (_, len) = chunk_header(rest)?;
        let (chunk, after) = rest.split_at(len);
        out.push(chunk);
        rest = after;
    }
    Ok(out)
}

/// Whether `chunk` (one of [`split`]'s) is a document chunk, rather than a change.
pub fn is_document(chunk: &[u8]) -> bool {
    chunk.get(8) == Some(&DOCUMENT_CHUNK)
}

/// The type and whole length (header included) of the chunk `bytes` starts with.
fn chunk_header(bytes: &[u8]) -> Result<(u8, usize), Refusal> {
    let mut r = Reader { bytes };
    if r.take(4, "magic bytes")
        .map_err(|_| Refusal::NotADocument("too short"))?
        != MAGIC
    {
        return Err(Refusal::NotADocument("no magic bytes"));
    }
    r.take(4, "checksum")?;
    let [kind] = r.take(1, "chunk type")? else {
        unreachable!("take(1) gives one byte")
    };
    let len = r.len("chunk length")?;
    if len > r.bytes.len() {
        return Err(Refusal::Malformed("a chunk longer than its bytes"));
    }
    Ok((*kind, bytes.len() - r.bytes.len() + len))
}

/// One column of a document chunk: its specification and bytes as they came.
struct Column<'a> {
    spec: u64,
    bytes: &'a [u8],
}

/// The specifications and lengths of a set of columns, checked: known, once each, in order.
fn column_specs(
    r: &mut Reader<'_>,
    known: &[u64],
    room: usize,
) -> Result<Vec<(u64, usize)>, Refusal> {
    let n = r.len("columns")?;
    // Each takes at least two bytes: a count past what is left is a lie.
    if n > r.bytes.len() {
        return Err(Refusal::Malformed("columns"));
    }
    let mut specs = Vec::with_capacity(n);
    let mut last = None;
    let mut total = 0usize;
    for _ in 0..n {
        let spec = r.uleb("column spec")?;
        let len = r.len("column length")?;
        let plain = spec & !DEFLATE_BIT;
        if !known.contains(&plain) {
            return Err(Refusal::NotADocument(
                "a column cairn's documents never have",
            ));
        }
        if last.is_some_and(|l| l >= plain) {
            return Err(Refusal::Malformed("columns out of order"));
        }
        last = Some(plain);
        total = total
            .checked_add(len)
            .filter(|t| *t <= room)
            .ok_or(Refusal::Malformed("column lengths"))?;
        specs.push((spec, len));
    }
    Ok(specs)
}

/// What one document chunk holds.
struct DocCost {
    changes: u64,
    ops: u64,
    span: u64,
    len: u64,
}

/// Inspects one document chunk, inflating its deflated columns into at most `room` bytes.
fn document<'a>(chunk: &'a [u8], room: usize, bounds: &DocBounds) -> Result<DocCost, Refusal> {
    let mut r = Reader { bytes: chunk };
    r.take(9, "chunk header")?;
    r.len("chunk length")?;
    let actors = r.len("actors")?;
    if actors > r.bytes.len() {
        return Err(Refusal::Malformed("actors"));
    }
    for _ in 0..actors {
        let len = r.len("actor")?;
        r.take(len, "actor")?;
    }
    let heads = r.len("heads")?;
    r.take(
        heads.checked_mul(32).ok_or(Refusal::Malformed("heads"))?,
        "heads",
    )?;
    let rest = r.bytes.len();
    let change_specs = column_specs(&mut r, &CHANGE_COLUMNS, rest)?;
    let rest = r.bytes.len();
    let op_specs = column_specs(&mut r, &OP_COLUMNS, rest)?;
    let mut take = |specs: &[(u64, usize)]| -> Result<Vec<Column<'_>>, Refusal> {
        specs
            .iter()
            .map(|&(spec, len)| {
                Ok(Column {
                    spec,
                    bytes: r.take(len, "columns")?,
                })
            })
            .collect()
    };
    let change_cols = take(&change_specs)?;
    let op_cols = take(&op_specs)?;
    // The head indices, when there are any (older documents have none).
    if !r.is_empty() {
        for _ in 0..heads {
            r.uleb("head indices")?;
        }
        if !r.is_empty() {
            return Err(Refusal::Malformed("bytes after the document"));
        }
    }
    let mut len = (chunk.len()
        - change_cols.iter().map(|c| c.bytes.len()).sum::<usize>()
        - op_cols.iter().map(|c| c.bytes.len()).sum::<usize>()) as u64;
    let mut inflated = 0usize;
    let mut read = |col: &Column<'a>| -> Result<Cow<'a, [u8]>, Refusal> {
        let data = inflate(col, room.saturating_sub(inflated))?;
        inflated += data.len();
        Ok(data)
    };

    // The changes: how many, and what their operation numbers claim.
    let mut changes = 0u64;
    let mut deps = 0u64;
    let mut extra = Counts::default();
    let (mut max_ops, mut dep_counts, mut dep_indices) = (Vec::new(), Vec::new(), Vec::new());
    for col in &change_cols {
        let data = read(col)?;
        let spec = col.spec & !DEFLATE_BIT;
        let counts = counts(&data, spec, actors as u64)?;
        match spec {
            // A group's rows are changes too (each change has its count of dependencies):
            // automerge decodes every one of them, whatever the counts add up to.
            DEPS_GROUP => {
                deps = deps.max(counts.sum);
                changes = changes.max(counts.rows);
            }
            DEPS_INDEX => deps = deps.max(counts.rows),
            VALUE_META => {
                extra = counts;
                changes = changes.max(counts.rows);
            }
            VALUE_RAW => extra.raw = data.len() as u64,
            _ => changes = changes.max(counts.rows),
        }
        // Decoded only once their rows are known to be few enough.
        if matches!(spec, MAX_OP | DEPS_GROUP | DEPS_INDEX) && counts.rows <= bounded(room, bounds)
        {
            let values = decode(&data, spec)?;
            match spec {
                MAX_OP => max_ops = values,
                DEPS_GROUP => dep_counts = values,
                _ => dep_indices = values,
            }
        }
    }
    if extra.sum > extra.raw {
        return Err(Refusal::Malformed("extra bytes past their column"));
    }

    // The operations: how many, and their successors.
    let mut ops = 0u64;
    let mut succ = 0u64;
    let mut values = Counts::default();
    for col in &op_cols {
        let data = read(col)?;
        let spec = col.spec & !DEFLATE_BIT;
        let counts = counts(&data, spec, actors as u64)?;
        if spec == ACTION && !counts.cairn_actions {
            return Err(Refusal::NotADocument(
                "an action cairn never takes (text, counters or marks)",
            ));
        }
        match spec {
            // As for the changes' groups: a group's rows are operations.
            SUCC_GROUP => {
                succ = succ.max(counts.sum);
                ops = ops.max(counts.rows);
            }
            129 | 131 => succ = succ.max(counts.rows),
            VALUE_META => {
                values = counts;
                ops = ops.max(counts.rows);
            }
            VALUE_RAW => values.raw = data.len() as u64,
            _ => ops = ops.max(counts.rows),
        }
    }
    if values.sum > values.raw {
        return Err(Refusal::Malformed("values past their column"));
    }
    len += inflated as u64;
    let span = span(&max_ops, &dep_counts, &dep_indices)?;
    // Automerge's own documents spend bytes on every operation, change and successor: these
    // may each be as many as the bytes, no more. Strings repeated by a run cost as much as
    // their bytes once each.
    let cheap = len.min(bounds.max_ops);
    let strings = extra.strings + values.strings;
    if ops > cheap || changes > cheap || succ > cheap || deps > cheap || span > bounds.max_ops {
        return Err(Refusal::DocTooCostly {
            ops: ops.max(succ).max(span),
            changes: changes.max(deps),
            len: len as usize,
            max: bounds.max_ops,
        });
    }
    if strings > len.saturating_mul(8) {
        return Err(Refusal::DocTooCostly {
            ops: strings,
            changes,
            len: len as usize,
            max: bounds.max_ops,
        });
    }
    Ok(DocCost {
        changes,
        ops: ops + succ,
        span,
        len,
    })
}

/// The most rows a column may have for its values to be worth decoding.
fn bounded(room: usize, bounds: &DocBounds) -> u64 {
    (room as u64).min(bounds.max_ops)
}

/// A column's bytes, inflated if it is deflated, into at most `room` bytes.
fn inflate<'a>(col: &Column<'a>, room: usize) -> Result<Cow<'a, [u8]>, Refusal> {
    if col.spec & DEFLATE_BIT == 0 {
        if col.bytes.len() > room {
            return Err(Refusal::Inflates {
                max: room.saturating_add(col.bytes.len()),
            });
        }
        return Ok(Cow::Borrowed(col.bytes));
    }
    INFLATER.with(|d| inflate_with(&mut d.borrow_mut(), col.bytes, room).map(Cow::Owned))
}

thread_local! {
    /// One inflater a thread, reset for each column: a document's columns are many and small,
    /// and making an inflater costs more than most of them take to inflate.
    static INFLATER: std::cell::RefCell<flate2::Decompress> =
        std::cell::RefCell::new(flate2::Decompress::new(false));
}

/// Inflates `input` (raw DEFLATE) with `d` into at most `room` bytes.
fn inflate_with(d: &mut flate2::Decompress, input: &[u8], room: usize) -> Result<Vec<u8>, Refusal> {
    let bad = Refusal::Malformed("a deflated column that does not inflate");
    d.reset(false);
    // Room for what a column usually inflates to, then twice as much each time it fills.
    let mut out = Vec::with_capacity(input.len().saturating_mul(8).clamp(64, room + 1));
    loop {
        let (was_in, was_out) = (d.total_in(), d.total_out());
        let read = usize::try_from(was_in).map_err(|_| bad.clone())?;
        let status = d
            .decompress_vec(
                &input[read.min(input.len())..],
                &mut out,
                flate2::FlushDecompress::Finish,
            )
            .map_err(|_| bad.clone())?;
        if out.len() > room {
            return Err(Refusal::Inflates { max: room });
        }
        if status == flate2::Status::StreamEnd {
            return Ok(out);
        }
        if out.len() == out.capacity() {
            let more = out.len().max(64).min(room + 1 - out.len());
            if more == 0 {
                return Err(Refusal::Inflates { max: room });
            }
            out.reserve_exact(more);
        } else if d.total_in() == was_in && d.total_out() == was_out {
            // Room to write and nothing read or written: the stream is cut short.
            return Err(bad);
        }
    }
}

/// What a column holds, read from its runs alone.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    /// Entries (nulls included).
    rows: u64,
    /// A group's entries together; a value metadata column's value bytes.
    sum: u64,
    /// Bytes of the strings it holds, each counted as often as a run repeats it.
    strings: u64,
    /// The raw value bytes beside a metadata column.
    raw: u64,
    /// Whether every action is one cairn takes (an action column).
    cairn_actions: bool,
}

/// Counts the entries of a column of specification `spec` (type in its low three bits) without
/// decoding them one by one (saturating, never overflowing); `actors` bounds actor indices.
fn counts(column: &[u8], spec: u64, actors: u64) -> Result<Counts, Refusal> {
    let what = "a run-length column";
    let kind = spec & 7;
    let mut c = Counts {
        cairn_actions: true,
        ..Counts::default()
    };
    let mut r = Reader { bytes: column };
    match kind {
        RAW => return Ok(c),
        BOOLEAN => {
            while !r.is_empty() {
                c.rows = c.rows.saturating_add(r.uleb(what)?);
            }
            return Ok(c);
        }
        _ => {}
    }
    let value = |r: &mut Reader<'_>, n: u64, c: &mut Counts| -> Result<(), Refusal> {
        match kind {
            DELTA => {
                r.sleb(what)?;
            }
            STRING => {
                let len = r.len(what)?;
                r.take(len, what)?;
                c.strings = c.strings.saturating_add(n.saturating_mul(len as u64));
            }
            _ => {
                let v = r.uleb(what)?;
                let v = if spec == VALUE_META { v >> 4 } else { v };
                if kind == ACTOR && v >= actors {
                    return Err(Refusal::Malformed("an actor index past the actors"));
                }
                if spec == ACTION && !CAIRN_ACTIONS.contains(&v) {
                    c.cairn_actions = false;
                }
                if kind == GROUP || spec == VALUE_META {
                    c.sum = c.sum.saturating_add(n.saturating_mul(v));
                }
            }
        }
        Ok(())
    };
    // Literal values only counted (deltas, and integers nothing checks) are skipped, not read.
    let skip = kind == DELTA || (kind == INTEGER && spec != ACTION);
    while !r.is_empty() {
        let header = r.sleb(what)?;
        if header > 0 {
            let n = header.unsigned_abs();
            value(&mut r, n, &mut c)?;
            c.rows = c.rows.saturating_add(n);
        } else if header < 0 {
            let n = header.unsigned_abs();
            if skip {
                r.skip_lebs(n, what)?;
            } else {
                for _ in 0..n {
                    value(&mut r, 1, &mut c)?;
                }
            }
            c.rows = c.rows.saturating_add(n);
        } else {
            c.rows = c.rows.saturating_add(r.uleb(what)?);
        }
    }
    Ok(c)
}

/// Decodes a column of unsigned integers (a group) or of deltas (their running sums) into its
/// values, nulls as 0: for a column whose rows are known to be few.
fn decode(column: &[u8], spec: u64) -> Result<Vec<u64>, Refusal> {
    let what = "a run-length column";
    let delta = spec & 7 == DELTA;
    let mut r = Reader { bytes: column };
    let mut out = Vec::new();
    let mut sum: i64 = 0;
    // The value a read entry stands for: itself, or for deltas the running sum.
    let step = |sum: &mut i64, r: &mut Reader<'_>, n: u64, out: &mut Vec<u64>| {
        if delta {
            let d = r.sleb(what)?;
            for _ in 0..n {
                *sum = sum
                    .checked_add(d)
                    .filter(|s| (0..=i64::from(u32::MAX)).contains(s))
                    .ok_or(Refusal::Malformed("a delta column out of range"))?;
                out.push(*sum as u64);
            }
        } else {
            let v = r.uleb(what)?;
            out.extend(std::iter::repeat_n(v, n as usize));
        }
        Ok::<(), Refusal>(())
    };
    while !r.is_empty() {
        let header = r.sleb(what)?;
        if header > 0 {
            step(&mut sum, &mut r, header.unsigned_abs(), &mut out)?;
        } else if header < 0 {
            for _ in 0..header.unsigned_abs() {
                step(&mut sum, &mut r, 1, &mut out)?;
            }
        } else {
            let n = r.uleb(what)?;
            out.extend(std::iter::repeat_n(
                if delta { sum as u64 } else { 0 },
                n as usize,
            ));
        }
    }
    Ok(out)
}

/// The operation numbers the changes claim together, as automerge counts them when it loads:
/// each change's last operation less the latest last operation among its dependencies.
fn span(max_ops: &[u64], dep_counts: &[u64], dep_indices: &[u64]) -> Result<u64, Refusal> {
    let mut deps = dep_indices.iter();
    let mut total = 0u64;
    for (i, max_op) in max_ops.iter().enumerate() {
        let n = dep_counts.get(i).copied().unwrap_or(0);
        let mut latest = 0;
        for _ in 0..n {
            let d = *deps.next().ok_or(Refusal::Malformed("dependencies"))?;
            latest = latest.max(
                *max_ops
                    .get(d as usize)
                    .ok_or(Refusal::Malformed("a dependency past the changes"))?,
            );
        }
        if latest > *max_op {
            return Err(Refusal::Malformed(
                "a change numbered before its dependencies",
            ));
        }
        total = total.saturating_add(max_op - latest);
    }
    Ok(total)
}

/// A saved document of one change whose columns claim `2^exp` operations, every one setting
/// the root's key `k`, in about a hundred bytes: what a hostile server could send. Automerge
/// walks every one of them before it finds the heads do not match (merged into a document it
/// holds, it never checks). For tests and the fuzz targets.
pub fn op_bomb(exp: u32) -> Vec<u8> {
    use automerge::transaction::Transactable as _;
    let n = 1i64 << exp;
    let mut doc = automerge::Automerge::new().with_actor(automerge::ActorId::from([9u8; 16]));
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        for i in 0..3 {
            tx.put(automerge::ROOT, format!("k{i}"), ())?;
        }
        Ok(())
    })
    .expect("a transaction on a new document");
    let mut parts = DocParts::parse(&doc.save_nocompress()).expect("a document automerge saved");
    let run = |value: &[u8]| {
        let mut col = Vec::new();
        change::sleb(&mut col, n);
        col.extend_from_slice(value);
        col
    };
    for (spec, col) in &mut parts.change_columns {
        if *spec == MAX_OP {
            col.clear();
            change::sleb(col, 1);
            change::sleb(col, n);
        }
    }
    for (spec, col) in &mut parts.op_columns {
        *col = match *spec {
            21 => run(&[1, b'k']),
            33 | 86 | SUCC_GROUP => run(&[0]),
            35 | ACTION => run(&[1]),
            52 => {
                let mut c = Vec::new();
                change::uleb(&mut c, n as u64);
                c
            }
            _ => continue,
        };
    }
    parts.encode()
}

/// `bytes` deflated as automerge deflates a long column (raw DEFLATE): for tools and tests that
/// put documents together ([`DocParts`]; a deflated column's specification has bit 3 set).
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::bufread::DeflateEncoder::new(bytes, flate2::Compression::fast())
        .read_to_end(&mut out)
        .expect("deflating in memory");
    out
}

/// A compressed change chunk that inflates to `len` bytes of zeros (a few hundred times fewer
/// on the wire): automerge inflates it whole before it looks at it. For tests.
pub fn compressed_bomb(len: usize) -> Vec<u8> {
    let mut deflated = Vec::new();
    flate2::read::DeflateEncoder::new(
        std::io::repeat(0).take(len as u64),
        flate2::Compression::best(),
    )
    .read_to_end(&mut deflated)
    .expect("deflating into memory");
    let mut out = MAGIC.to_vec();
    out.extend([0; 4]);
    out.push(COMPRESSED_CHUNK);
    change::uleb(&mut out, deflated.len() as u64);
    out.extend(deflated);
    out
}

/// A document chunk taken apart into its header fields and raw columns (as they came: deflated
/// ones stay deflated), so that tools and tests can put it together again with a part replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocParts {
    pub actors: Vec<Vec<u8>>,
    pub heads: Vec<[u8; 32]>,
    /// Each change column's specification and bytes, in order.
    pub change_columns: Vec<(u64, Vec<u8>)>,
    /// Each operation column's specification and bytes, in order.
    pub op_columns: Vec<(u64, Vec<u8>)>,
    /// The bytes after the columns (the head indices).
    pub suffix: Vec<u8>,
}

impl DocParts {
    /// Takes one document chunk apart, with work bounded by its size.
    pub fn parse(bytes: &[u8]) -> Result<DocParts, Refusal> {
        let (kind, len) = chunk_header(bytes)?;
        if kind != DOCUMENT_CHUNK || len != bytes.len() {
            return Err(Refusal::NotADocument("not one document chunk"));
        }
        let mut r = Reader { bytes };
        r.take(9, "chunk header")?;
        r.len("chunk length")?;
        let n = r.len("actors")?;
        if n > r.bytes.len() {
            return Err(Refusal::Malformed("actors"));
        }
        let mut actors = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.len("actor")?;
            actors.push(r.take(len, "actor")?.to_vec());
        }
        let n = r.len("heads")?;
        let raw = r.take(
            n.checked_mul(32).ok_or(Refusal::Malformed("heads"))?,
            "heads",
        )?;
        let heads = raw
            .chunks_exact(32)
            .map(|c| <[u8; 32]>::try_from(c).unwrap_or([0; 32]))
            .collect();
        let specs = |r: &mut Reader<'_>| -> Result<Vec<(u64, usize)>, Refusal> {
            let n = r.len("columns")?;
            if n > r.bytes.len() {
                return Err(Refusal::Malformed("columns"));
            }
            (0..n)
                .map(|_| Ok((r.uleb("column spec")?, r.len("column length")?)))
                .collect()
        };
        let change_specs = specs(&mut r)?;
        let op_specs = specs(&mut r)?;
        let mut take = |specs: Vec<(u64, usize)>| -> Result<Vec<(u64, Vec<u8>)>, Refusal> {
            specs
                .into_iter()
                .map(|(spec, len)| Ok((spec, r.take(len, "columns")?.to_vec())))
                .collect()
        };
        let change_columns = take(change_specs)?;
        let op_columns = take(op_specs)?;
        Ok(DocParts {
            actors,
            heads,
            change_columns,
            op_columns,
            suffix: r.bytes.to_vec(),
        })
    }

    /// Puts the chunk together again, with the checksum of what it now holds.
    pub fn encode(&self) -> Vec<u8> {
        use change::uleb;
        let mut body = Vec::new();
        uleb(&mut body, self.actors.len() as u64);
        for a in &self.actors {
            uleb(&mut body, a.len() as u64);
            body.extend_from_slice(a);
        }
        uleb(&mut body, self.heads.len() as u64);
        for h in &self.heads {
            body.extend_from_slice(h);
        }
        for cols in [&self.change_columns, &self.op_columns] {
            uleb(&mut body, cols.len() as u64);
            for (spec, col) in cols {
                uleb(&mut body, *spec);
                uleb(&mut body, col.len() as u64);
            }
        }
        for cols in [&self.change_columns, &self.op_columns] {
            for (_, col) in cols {
                body.extend_from_slice(col);
            }
        }
        body.extend_from_slice(&self.suffix);
        let mut out = MAGIC.to_vec();
        out.extend([0; 4]);
        out.push(DOCUMENT_CHUNK);
        uleb(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        let hash = <sha2::Sha256 as sha2::Digest>::digest(&out[8..]);
        out[4..8].copy_from_slice(&hash[..4]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable as _;
    use automerge::{ActorId, Automerge, ObjType, ROOT};
    use std::time::{Duration, Instant};

    /// A document of `events` events of eight fields each, made in as many changes.
    fn journal_like(events: usize) -> Automerge {
        let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        for i in 0..events {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                let m = tx.put_object(ROOT, format!("ev{i}"), ObjType::Map)?;
                for k in [
                    "text", "author", "tz", "date", "kind", "pillar", "why", "at",
                ] {
                    tx.put(&m, k, format!("{k} of event {i}"))?;
                }
                let to = tx.put_object(&m, "to", ObjType::List)?;
                tx.insert(&to, 0, "m-ben")?;
                Ok(())
            })
            .unwrap();
        }
        doc
    }

    fn refused_quickly(bytes: &[u8]) -> Refusal {
        let started = Instant::now();
        let err = inspect(bytes, &DocBounds::default()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        err
    }

    #[test]
    fn honest_documents_pass_with_their_counts() {
        for events in [1, 40, 2_000] {
            let mut doc = journal_like(events);
            for saved in [doc.save(), doc.save_nocompress()] {
                let cost = inspect(&saved, &DocBounds::default()).unwrap();
                assert_eq!(cost.changes, events as u64);
                assert_eq!(cost.chunks, 1);
                // Ten operations an event, and a deletion as a successor below.
                assert_eq!(cost.ops, 11 * events as u64);
                assert_eq!(cost.span, cost.ops);
            }
            // A document and the changes saved after it, as a replica stores them.
            let heads = doc.get_heads();
            doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.delete(ROOT, "ev0"))
                .unwrap();
            let mut fork = doc.fork_at(&heads).unwrap();
            let mut stored = fork.save();
            stored.extend(doc.save_after(&heads));
            let cost = inspect(&stored, &DocBounds::default()).unwrap();
            assert_eq!((cost.chunks, cost.changes), (2, events as u64 + 1));
            fork.load_incremental(&doc.save_after(&heads)).unwrap();
        }
        // Deleting makes a successor.
        let mut doc = journal_like(3);
        doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.delete(ROOT, "ev1"))
            .unwrap();
        let cost = inspect(&doc.save(), &DocBounds::default()).unwrap();
        assert_eq!((cost.ops, cost.changes), (34, 4));
    }

    #[test]
    fn a_run_of_two_to_the_forty_operations_is_refused_unread() {
        for exp in [22, 40] {
            let bomb = op_bomb(exp);
            assert!(bomb.len() < 200, "{}", bomb.len());
            assert_eq!(bomb[8], DOCUMENT_CHUNK);
            let err = refused_quickly(&bomb);
            // (Past 2^32, the numbers of its operations are refused before they are counted.)
            assert!(
                matches!(err, Refusal::DocTooCostly { ops, .. } if ops == 1 << exp)
                    || exp > 32 && err == Refusal::Malformed("a delta column out of range"),
                "{err:?}"
            );
        }
    }

    /// `doc`'s saved form with column `spec` (of its operations, or of its changes) replaced.
    fn with_column(doc: &Automerge, ops: bool, spec: u64, column: Vec<u8>) -> Vec<u8> {
        let mut parts = DocParts::parse(&doc.save_nocompress()).unwrap();
        let cols = if ops {
            &mut parts.op_columns
        } else {
            &mut parts.change_columns
        };
        match cols
            .iter_mut()
            .find(|(s, _)| *s & !DEFLATE_BIT == spec & !DEFLATE_BIT)
        {
            Some(c) => *c = (spec, column),
            None => {
                cols.push((spec, column));
                cols.sort_by_key(|c| c.0);
            }
        }
        parts.encode()
    }

    fn deflated(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::bufread::DeflateEncoder::new(bytes, flate2::Compression::best())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_column_that_inflates_past_the_bound_is_refused_with_bounded_memory() {
        let doc = journal_like(3);
        // 64 MiB of zeros deflate to about 64 KB.
        let bomb = deflated(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let evil = with_column(&doc, true, VALUE_RAW | DEFLATE_BIT, bomb);
        let err = refused_quickly(&evil);
        assert!(matches!(err, Refusal::Inflates { .. }), "{err:?}");
        // Raw bytes past the bound, not deflated, are refused too.
        let big = with_column(&doc, true, VALUE_RAW, vec![0u8; (16 << 20) + 1]);
        assert!(matches!(refused_quickly(&big), Refusal::Inflates { .. }));
    }

    #[test]
    fn a_column_inflates_to_its_room_exactly_and_a_cut_one_is_refused() {
        let mut d = flate2::Decompress::new(false);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let deflated = deflate(&data);
        assert_eq!(inflate_with(&mut d, &deflated, data.len()).unwrap(), data);
        assert_eq!(
            inflate_with(&mut d, &deflated, data.len() - 1),
            Err(Refusal::Inflates {
                max: data.len() - 1
            })
        );
        for cut in [0, 1, deflated.len() / 2, deflated.len() - 1] {
            assert!(
                inflate_with(&mut d, &deflated[..cut], 1 << 20).is_err(),
                "{cut}"
            );
        }
        // The same inflater goes on after a refusal.
        assert_eq!(inflate_with(&mut d, &deflated, 1 << 20).unwrap(), data);
    }

    #[test]
    fn compressed_change_chunks_and_bundles_are_refused() {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            for i in 0..200 {
                tx.put(ROOT, format!("key{i}"), "a value long enough to compress")?;
            }
            Ok(())
        })
        .unwrap();
        let mut change = doc.get_changes(&[])[0].clone();
        let compressed = change.bytes().into_owned();
        assert_eq!(compressed[8], COMPRESSED_CHUNK, "automerge compressed it");
        assert_eq!(
            refused_quickly(&compressed),
            Refusal::NotADocument("a compressed change chunk")
        );
        // Behind an honest document, too.
        let mut both = Automerge::new().save();
        both.extend(journal_like(2).save());
        both.extend(&compressed);
        assert!(inspect(&both, &DocBounds::default()).is_err());
        let mut bundle = compressed.clone();
        bundle[8] = BUNDLE_CHUNK;
        assert!(matches!(
            refused_quickly(&bundle),
            Refusal::NotADocument(_) | Refusal::Malformed(_)
        ));
    }

    #[test]
    fn changes_that_claim_more_operation_numbers_than_allowed_are_refused() {
        let doc = journal_like(2);
        // Both changes claim to end at operation 2^31, neither depending on the other.
        let mut max_op = Vec::new();
        change::sleb(&mut max_op, -2);
        change::sleb(&mut max_op, 1 << 31);
        change::sleb(&mut max_op, 0);
        let mut deps = Vec::new();
        change::sleb(&mut deps, 2);
        change::uleb(&mut deps, 0);
        let evil = with_column(&doc, false, MAX_OP, max_op);
        let evil = {
            let mut parts = DocParts::parse(&evil).unwrap();
            parts.change_columns.retain(|(s, _)| *s != DEPS_INDEX);
            for c in &mut parts.change_columns {
                if c.0 == DEPS_GROUP {
                    c.1 = deps.clone();
                }
            }
            parts.encode()
        };
        let err = refused_quickly(&evil);
        assert!(
            matches!(err, Refusal::DocTooCostly { ops, .. } if ops >= 1 << 31),
            "{err:?}"
        );
    }

    #[test]
    fn runs_of_changes_successors_and_strings_are_refused() {
        let doc = journal_like(2);
        let mut run = Vec::new();
        change::sleb(&mut run, 1 << 30);
        change::uleb(&mut run, 0);
        // 2^30 changes by actor 0.
        let evil = with_column(&doc, false, 1, run.clone());
        assert!(matches!(
            refused_quickly(&evil),
            Refusal::DocTooCostly { .. }
        ));
        // Every operation with 2^30 successors.
        let mut succ = Vec::new();
        change::sleb(&mut succ, 1);
        change::uleb(&mut succ, 1 << 30);
        let evil = with_column(&doc, true, SUCC_GROUP, succ);
        assert!(matches!(
            refused_quickly(&evil),
            Refusal::DocTooCostly { .. }
        ));
        // A message of a kilobyte, repeated a million times.
        let mut message = Vec::new();
        change::sleb(&mut message, 1 << 20);
        change::uleb(&mut message, 1024);
        message.extend(vec![b'x'; 1024]);
        let evil = with_column(&doc, false, 53, message);
        assert!(matches!(
            refused_quickly(&evil),
            Refusal::DocTooCostly { .. }
        ));
    }

    #[test]
    fn what_cairn_never_writes_is_refused() {
        let mut doc = Automerge::new();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            let t = tx.put_object(ROOT, "note", ObjType::Text)?;
            tx.splice_text(&t, 0, 0, "hello")?;
            Ok(())
        })
        .unwrap();
        assert!(matches!(
            refused_quickly(&doc.save()),
            Refusal::NotADocument(_)
        ));
        // A column no document of cairn's has (a mark's name).
        let evil = with_column(&journal_like(1), true, 165, vec![1, 0]);
        assert!(matches!(refused_quickly(&evil), Refusal::NotADocument(_)));
    }

    #[test]
    fn noise_and_truncations_are_refused_never_panic() {
        let saved = journal_like(5).save();
        for n in 1..saved.len() {
            assert!(inspect(&saved[..n], &DocBounds::default()).is_err(), "{n}");
        }
        for b in [0x00, 0x85, 0xff] {
            assert!(inspect(&[b; 64], &DocBounds::default()).is_err());
        }
        let parts = DocParts::parse(&saved).unwrap();
        assert_eq!(parts.encode(), saved, "parts round trip byte for byte");
    }
}
