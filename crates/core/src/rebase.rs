//! Changes written again under a fresh actor: what a replica does when its actor turns out to be
//! shared with another copy of it (a copied home, a backup restored).
//!
//! Two replicas that share an actor number their next changes alike, and a server (like automerge
//! itself) keeps only one change per actor and number. A change cannot move to another actor as
//! it is: its operations are named by its actor. So its *effect* is written again: the document
//! without the changes ([`reconcile`]'s target) is brought to show what the document with them
//! shows, field by field, touching only what differs, in one new change of the target's actor.
//! Maps the target already holds are changed in place, key by key, so what teammates write into
//! them at the same time still merges as it would have. Lists are brought up to date position by
//! position and text is written whole: cairn's documents hold lists only inside an author's own
//! events (a kudos' recipients), which nobody else writes into.
//!
//! ```
//! use automerge::{ActorId, Automerge, ReadDoc, ROOT, transaction::Transactable};
//! let mut ours = Automerge::new().with_actor(ActorId::from([1u8; 16]));
//! ours.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "a", 1).map(drop)).unwrap();
//! let base_heads = ours.get_heads();
//! ours.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "b", 2).map(drop)).unwrap();
//!
//! // The document as it was before the second change, written on by a fresh actor.
//! let mut again = ours.fork_at(&base_heads).unwrap().with_actor(ActorId::from([2u8; 16]));
//! assert!(cairn_core::rebase::reconcile(&mut again, &ours).unwrap());
//! assert_eq!(again.get(ROOT, "b").unwrap().unwrap().0.to_i64(), Some(2));
//! ```

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ObjId, ObjType, Prop, ROOT, ReadDoc, Value};

use crate::Result;

/// Makes `target` show what `ours` shows, in one change of `target`'s actor holding only what
/// differs. Returns whether anything had to change.
pub fn reconcile(target: &mut Automerge, ours: &Automerge) -> Result<bool> {
    in_one_change(target, |tx| sync_map(tx, &ROOT, ours, &ROOT))
}

/// Runs `write` in one transaction of `target`: committed as one change when it wrote anything,
/// rolled back when it wrote nothing or failed. Returns whether a change was made.
fn in_one_change(
    target: &mut Automerge,
    write: impl FnOnce(&mut Transaction<'_>) -> Result<()>,
) -> Result<bool> {
    let mut tx = target.transaction();
    if let Err(e) = write(&mut tx) {
        tx.rollback();
        return Err(e);
    }
    if tx.pending_ops() == 0 {
        tx.rollback();
        return Ok(false);
    }
    tx.commit();
    Ok(true)
}

/// Writes into `target`, in one change of its actor, what `after` shows that `before` did not:
/// the effect of the changes that lead from `before` to `after`, on a document that lacks some
/// of what they were made on (changes withdrawn under them). A key new in `after` is written
/// whole; an object both hold (the same one, by its id) is gone into where `target` still has
/// it, and skipped where it does not (what was withdrawn stays gone); a key `after` deleted is
/// deleted. Returns whether anything had to change.
pub fn redo(target: &mut Automerge, before: &Automerge, after: &Automerge) -> Result<bool> {
    in_one_change(target, |tx| {
        redo_map(tx, &ROOT, before, Some(&ROOT), after, &ROOT)
    })
}

/// [`redo`] for the map `a` of `after`, which is the map `b` of `before` (when it had it) and
/// the map `t` of the transaction.
fn redo_map(
    tx: &mut Transaction<'_>,
    t: &ObjId,
    before: &Automerge,
    b: Option<&ObjId>,
    after: &Automerge,
    a: &ObjId,
) -> Result<()> {
    let keys: Vec<String> = after.keys(a).collect();
    for key in &keys {
        let Some((value, id)) = after.get(a, key.as_str())? else {
            continue;
        };
        let was = match b {
            Some(b) => before.get(b, key.as_str())?,
            None => None,
        };
        match (&value, &was) {
            (Value::Scalar(now), Some((Value::Scalar(then), _))) if now == then => {}
            (Value::Object(kind), Some((Value::Object(then), was_id)))
                if kind == then && &id == was_id =>
            {
                // The same object, perhaps changed inside: only where the target still has it.
                let here = tx.get(t, key.as_str())?;
                if let Some((Value::Object(k), here_id)) = here
                    && k == *kind
                    && here_id == id
                {
                    match kind {
                        ObjType::Map | ObjType::Table => {
                            redo_map(tx, &here_id, before, Some(was_id), after, &id)?
                        }
                        _ => sync_obj(tx, &here_id, after, &id, *kind)?,
                    }
                }
            }
            _ => put_value(tx, t, key.as_str().into(), value, after, &id)?,
        }
    }
    if let Some(b) = b {
        let gone: Vec<String> = before
            .keys(b)
            .filter(|k| !keys.contains(k) && tx.get(t, k.as_str()).ok().flatten().is_some())
            .collect();
        for key in gone {
            tx.delete(t, key.as_str())?;
        }
    }
    Ok(())
}

/// Brings the object `t` of the transaction to what the object `o` of `ours` holds; both are of
/// kind `kind`.
fn sync_obj(
    tx: &mut Transaction<'_>,
    t: &ObjId,
    ours: &Automerge,
    o: &ObjId,
    kind: ObjType,
) -> Result<()> {
    match kind {
        ObjType::Map | ObjType::Table => sync_map(tx, t, ours, o),
        ObjType::List => sync_list(tx, t, ours, o),
        ObjType::Text => {
            let want = ours.text(o)?;
            if tx.text(t)? != want {
                let len = tx.length(t) as isize;
                tx.splice_text(t, 0, len, &want)?;
            }
            Ok(())
        }
    }
}

fn sync_map(tx: &mut Transaction<'_>, t: &ObjId, ours: &Automerge, o: &ObjId) -> Result<()> {
    let keys: std::collections::HashSet<String> = ours.keys(o).collect();
    for key in &keys {
        if let Some((value, id)) = ours.get(o, key.as_str())? {
            put_value(tx, t, key.as_str().into(), value, ours, &id)?;
        }
    }
    let gone: Vec<String> = tx.keys(t).filter(|k| !keys.contains(k)).collect();
    for key in gone {
        tx.delete(t, key.as_str())?;
    }
    Ok(())
}

fn sync_list(tx: &mut Transaction<'_>, t: &ObjId, ours: &Automerge, o: &ObjId) -> Result<()> {
    let want = ours.length(o);
    let have = tx.length(t);
    for i in 0..want {
        let Some((value, id)) = ours.get(o, i)? else {
            continue;
        };
        if i < have {
            put_value(tx, t, i.into(), value, ours, &id)?;
        } else {
            match value {
                Value::Scalar(s) => tx.insert(t, i, s.into_owned())?,
                Value::Object(kind) => {
                    let child = tx.insert_object(t, i, kind)?;
                    sync_obj(tx, &child, ours, &id, kind)?;
                }
            }
        }
    }
    for i in (want..have).rev() {
        tx.delete(t, i)?;
    }
    Ok(())
}

/// Writes `value` (the object `id` of `ours` when it is one) at `prop` of `t`, unless it is there
/// already; an object of the same kind there is brought up to date in place.
fn put_value(
    tx: &mut Transaction<'_>,
    t: &ObjId,
    prop: Prop,
    value: Value<'_>,
    ours: &Automerge,
    id: &ObjId,
) -> Result<()> {
    let here = tx.get(t, prop.clone())?;
    match value {
        Value::Scalar(s) => {
            let same = matches!(&here, Some((Value::Scalar(h), _)) if h.as_ref() == s.as_ref());
            if !same {
                tx.put(t, prop, s.into_owned())?;
            }
        }
        Value::Object(kind) => {
            let child = match here {
                Some((Value::Object(k), child)) if k == kind => child,
                _ => tx.put_object(t, prop, kind)?,
            };
            sync_obj(tx, &child, ours, id, kind)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{ActorId, AutomergeError};

    fn actor(n: u8) -> ActorId {
        ActorId::from([n; 16])
    }

    fn edit(
        doc: &mut Automerge,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) {
        doc.transact::<_, _, AutomergeError>(|tx| f(tx)).unwrap();
    }

    /// Everything a document shows, as one comparable value.
    fn shown(doc: &Automerge) -> automerge::hydrate::Value {
        doc.hydrate(None)
    }

    #[test]
    fn the_effect_of_dropped_changes_is_written_again_and_only_that() {
        let mut ours = Automerge::new().with_actor(actor(1));
        let mut ev = ROOT;
        edit(&mut ours, |tx| {
            ev = tx.put_object(ROOT, "ev1", ObjType::Map)?;
            tx.put(&ev, "text", "first")?;
            tx.put(&ev, "pillar", "trust")?;
            let to = tx.put_object(&ev, "to", ObjType::List)?;
            tx.insert(&to, 0, "m1")?;
            tx.insert(&to, 1, "m2")?;
            tx.put(ROOT, "gone", "soon")?;
            Ok(())
        });
        let base = ours.get_heads();
        // What the copy did after the fork: an edit, a new event, a deletion, a shorter list.
        edit(&mut ours, |tx| {
            tx.put(&ev, "text", "first, edited")?;
            let (_, to) = tx.get(&ev, "to")?.unwrap();
            tx.delete(&to, 1)?;
            let ev2 = tx.put_object(ROOT, "ev2", ObjType::Map)?;
            tx.put(&ev2, "text", "second")?;
            let t = tx.put_object(&ev2, "note", ObjType::Text)?;
            tx.splice_text(&t, 0, 0, "héllo")?;
            tx.delete(ROOT, "gone")?;
            Ok(())
        });
        let mut again = ours.fork_at(&base).unwrap().with_actor(actor(2));
        assert!(reconcile(&mut again, &ours).unwrap());
        assert_eq!(shown(&again), shown(&ours));
        // One change, by the fresh actor; the event's own object was edited in place.
        let fresh = again.get_changes(&base);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].actor_id(), &actor(2));
        assert_eq!(again.get(ROOT, "ev1").unwrap().unwrap().1, ev);
        // Nothing more to do a second time.
        assert!(!reconcile(&mut again, &ours).unwrap());
    }

    #[test]
    fn redo_writes_what_changed_on_a_document_without_what_was_withdrawn() {
        let mut doc = Automerge::new().with_actor(actor(1));
        let (mut spam, mut keep) = (ROOT, ROOT);
        edit(&mut doc, |tx| {
            keep = tx.put_object(ROOT, "ev1", ObjType::Map)?;
            tx.put(&keep, "text", "first")?;
            tx.put(ROOT, "old", "stays deleted")?;
            Ok(())
        });
        let base = doc.get_heads();
        edit(&mut doc, |tx| {
            spam = tx.put_object(ROOT, "spam", ObjType::Map)?;
            tx.put(&spam, "text", "cheap watches")?;
            Ok(())
        });
        let before = doc.clone();
        // This device's unsent work, made on top of the spam: a new event, an edit of its own
        // older event, an edit of the spam, a deletion.
        edit(&mut doc, |tx| {
            let ev2 = tx.put_object(ROOT, "ev2", ObjType::Map)?;
            tx.put(&ev2, "text", "second")?;
            let to = tx.put_object(&ev2, "to", ObjType::List)?;
            tx.insert(&to, 0, "m1")?;
            tx.put(&keep, "text", "first, edited")?;
            tx.put(&spam, "text", "edited spam")?;
            tx.delete(ROOT, "old")?;
            Ok(())
        });
        // The spam withdrawn: the target holds only the base.
        let mut target = doc.fork_at(&base).unwrap().with_actor(actor(2));
        assert!(redo(&mut target, &before, &doc).unwrap());
        let text = |d: &Automerge, k: &str| {
            let (_, o) = d.get(ROOT, k).unwrap().unwrap();
            d.get(&o, "text").unwrap().unwrap().0.into_string().unwrap()
        };
        assert_eq!(text(&target, "ev2"), "second");
        assert_eq!(text(&target, "ev1"), "first, edited");
        assert!(
            target.get(ROOT, "spam").unwrap().is_none(),
            "the spam stays gone"
        );
        assert!(target.get(ROOT, "old").unwrap().is_none());
        let fresh = target.get_changes(&base);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].actor_id(), &actor(2));
        // Nothing more to do a second time.
        let mut again = target.clone();
        let before_again = doc.clone();
        assert!(!redo(&mut again, &before_again, &doc).unwrap());
    }

    #[test]
    fn a_teammates_concurrent_edit_of_the_same_object_still_merges() {
        let mut ours = Automerge::new().with_actor(actor(1));
        let mut m = ROOT;
        edit(&mut ours, |tx| {
            m = tx.put_object(ROOT, "member/x", ObjType::Map)?;
            tx.put(&m, "name", "Ben")?;
            tx.put(&m, "handle", "ben")?;
            Ok(())
        });
        let base = ours.get_heads();
        edit(&mut ours, |tx| tx.put(&m, "name", "Ben O.").map(drop));
        // A teammate renames the handle meanwhile, on the base.
        let mut theirs = ours.fork_at(&base).unwrap().with_actor(actor(3));
        edit(&mut theirs, |tx| tx.put(&m, "handle", "ben-o").map(drop));

        let mut again = ours.fork_at(&base).unwrap().with_actor(actor(2));
        reconcile(&mut again, &ours).unwrap();
        again.merge(&mut theirs).unwrap();
        let (_, m2) = again.get(ROOT, "member/x").unwrap().unwrap();
        let get = |k: &str| again.get(&m2, k).unwrap().unwrap().0.into_string().unwrap();
        assert_eq!(
            (get("name"), get("handle")),
            ("Ben O.".into(), "ben-o".into())
        );
    }
}
