//! Hostile changes, made byte by byte as a member bent on harm would make them.

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT, ScalarValue};
use cairn_core::change::{Parts, columns, sleb, uleb};

/// `base` (a change's bytes) with its first operation's object naming actor index 5 of a change
/// that lists one actor: it decodes, and automerge panics applying it.
pub fn foreign_actor_index(base: &[u8]) -> Vec<u8> {
    let mut parts = Parts::parse(base).expect("a change");
    let (mut actor, mut counter) = (Vec::new(), Vec::new());
    sleb(&mut actor, 1);
    uleb(&mut actor, 5);
    sleb(&mut counter, 1);
    uleb(&mut counter, 1);
    parts.set_column(columns::OBJ_ACTOR, actor);
    parts.set_column(columns::OBJ_COUNTER, counter);
    parts.encode()
}

/// `base` with its counters starting at 2^32 - 1.
pub fn counter_overflow(base: &[u8]) -> Vec<u8> {
    let mut parts = Parts::parse(base).expect("a change");
    parts.start_op = u64::from(u32::MAX);
    parts.encode()
}

/// A change with `base`'s header (actor, sequence, dependencies) whose every column is one run
/// of 2^`log2` entries: `put(ROOT, "k", null)` that many times, in about a hundred bytes.
pub fn op_bomb(base: &[u8], log2: u32) -> Vec<u8> {
    let n = 1u64 << log2;
    let mut one = Automerge::new();
    one.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(ROOT, "k", ScalarValue::Null)?;
        Ok(())
    })
    .expect("a change of one op");
    let template = Parts::parse(one.get_changes(&[])[0].raw_bytes()).expect("a change");
    let mut parts = Parts::parse(base).expect("a change");
    parts.columns = template
        .columns
        .into_iter()
        .map(|(spec, col)| (spec, as_one_run(spec, &col, n)))
        .collect();
    parts.encode()
}

/// The one-entry column `col` as a run of `n` of its entry.
fn as_one_run(spec: u64, col: &[u8], n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    match spec & 7 {
        // Booleans: alternating run lengths, starting with false.
        4 => {
            if col.first() == Some(&0) {
                out.push(0);
            }
            uleb(&mut out, n);
        }
        // Raw values: nulls take no bytes.
        7 => out.extend_from_slice(col),
        // Run-length columns: one literal (-1, value) or one null (0, 1).
        _ => match col.first() {
            Some(0) => {
                out.push(0);
                uleb(&mut out, n);
            }
            _ => {
                sleb(&mut out, n as i64);
                out.extend_from_slice(&col[1..]);
            }
        },
    }
    out
}
