//! The organisation's document: its name, its non-negotiables (each with its why) and the notes
//! of every change its stewards made to them.
//!
//! The document is the `team` document of the organisation's own log on the server: written by
//! its stewards' devices only, read by every device of its attached teams. The server does not
//! know its schema; [`check_change`] is what it (or any replica) asks of a change, and
//! [`new_notes`] what a change says in the teams' feeds.
//!
//! Layout, as in the team document, everything at the root under a key prefix so that concurrent
//! writes merge field by field:
//! - `schema`, `name`, `created`: root scalars (two stewards who both start the document merge);
//! - `nn/<id>`: a map per non-negotiable (`title`, `why`, `by`, `at`, then `edited_by`,
//!   `edited_at`, and `retired`, `retired_by`, `retired_at`). Its id is derived from the
//!   writing device's actor and the document's heads, so two stewards never pick the same one.
//!   A retired non-negotiable is kept, marked, so history still reads;
//! - `note/<event id>`: a map per change (`what`: `added`, `edited` or `retired`; `nn`, `title`,
//!   `why`, `was`, `by`, `at`), written once in the same transaction as the change it notes. Its
//!   key is an [`EventId`] of the change's instant, so notes sort by time and read the same, in
//!   the same order, on every replica.
//!
//! Anything else (another key, an entry of the wrong type, a text empty or too long) is read as
//! nothing and listed in [`OrgState::ignored`], so a hostile steward can hide nothing valid and
//! [`check_change`] refuses a change that adds such a key.
//!
//! Each team's own "how" of a non-negotiable is the team's to write, in the team's document:
//! see [`crate::team::set_practice`].
//!
//! `by` is the steward as every team reads them (their name or `@handle@team`): a member id of
//! one team means nothing in another.
//!
//! ```
//! use automerge::{ActorId, Automerge};
//! use cairn_core::org;
//!
//! let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
//! org::init(&mut doc, "Acme schools", 0).unwrap();
//! let before = org::read(&doc).unwrap();
//! let id = org::add_commitment(&mut doc, &before, "We greet every newcomer", "nobody is a stranger", "Ana", 1_000).unwrap();
//! let after = org::read(&doc).unwrap();
//! assert_eq!(after.commitment(&id).unwrap().title, "We greet every newcomer");
//! assert!(org::check_change(&before, &after).is_ok());
//! let notes = org::new_notes(&before, &after);
//! assert_eq!(notes[0].text(), "the organisation added a non-negotiable: “We greet every newcomer”");
//! ```

use std::collections::BTreeMap;

use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value, transaction::Transactable};
use serde::Serialize;
use sha2::Digest as _;

use crate::event::{Event, Kind, check_text, one_line};
use crate::ids::{self, EventId};
use crate::{Error, MAX_TEXT_CHARS, Result};

/// The schema version written into new organisation documents.
pub const SCHEMA: i64 = 1;
/// The longest organisation name, steward name, or non-negotiable title.
pub const MAX_NAME_CHARS: usize = 120;
const NN: &str = "nn/";
const NOTE: &str = "note/";

/// A steward's mark on a non-negotiable: who and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    pub by: String,
    pub at_ms: i64,
}

/// One of the organisation's non-negotiables, with its why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrgCommitment {
    pub id: String,
    pub title: String,
    pub why: String,
    /// The steward who added it.
    pub by: String,
    pub at_ms: i64,
    /// The last edit of its title or why, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited: Option<Mark>,
    /// When it was retired, and by whom: it stays in the document so history still reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired: Option<Mark>,
}

/// What a note says changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum NoteChange {
    /// A new non-negotiable, with its why.
    Added { why: String },
    /// Its title (`was` the one before) or its why (the new one) changed.
    Edited {
        #[serde(skip_serializing_if = "Option::is_none")]
        was: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// Retired.
    Retired,
}

/// A note of one change to the organisation's non-negotiables, for every team's feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrgNote {
    /// Its id: the change's instant and a tag, the same on every replica.
    pub id: EventId,
    pub at_ms: i64,
    /// The steward who made the change.
    pub by: String,
    /// The non-negotiable it changed.
    pub commitment: String,
    /// The non-negotiable's title as the change left it.
    pub title: String,
    #[serde(flatten)]
    pub change: NoteChange,
}

impl OrgNote {
    /// The note in words, as a team's feed shows it (who made it is [`OrgNote::by`]).
    pub fn text(&self) -> String {
        let title = &self.title;
        match &self.change {
            NoteChange::Added { .. } => {
                format!("the organisation added a non-negotiable: “{title}”")
            }
            NoteChange::Edited { was: Some(was), .. } => {
                format!("the organisation reworded the non-negotiable “{was}”: “{title}”")
            }
            NoteChange::Edited { was: None, why } => format!(
                "the organisation gave a new why for the non-negotiable “{title}”: {}",
                why.as_deref().unwrap_or_default()
            ),
            NoteChange::Retired => {
                format!("the organisation retired the non-negotiable “{title}”")
            }
        }
    }

    /// The note as an event of a team's feed (kind [`Kind::Team`], counting for nothing), dated
    /// in the team's zone `tz`; its author is the steward as the note names them, not a member
    /// of the team.
    pub fn event(&self, tz: &str) -> Event {
        let date = crate::time::local_date(self.at_ms, tz)
            .or_else(|| crate::time::local_date(self.at_ms, "UTC"))
            .unwrap_or_default();
        Event {
            id: self.id.clone(),
            kind: Kind::Team,
            author: self.by.clone(),
            at_ms: self.at_ms,
            tz: tz.to_owned(),
            date: date.to_string(),
            late: false,
            pillar: None,
            text: self.text(),
            why: None,
            to: Vec::new(),
            target: None,
            emoji: None,
            retracted: false,
            edited_ms: None,
            honours: None,
        }
    }
}

/// The organisation's document read into plain values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OrgState {
    pub name: String,
    /// Every non-negotiable, retired ones included, oldest first.
    pub commitments: Vec<OrgCommitment>,
    /// The notes of every change, oldest first (by id: time, then tag).
    pub notes: Vec<OrgNote>,
    /// Root keys read as nothing: outside the schema, of the wrong type, or holding a text
    /// that is empty or too long. Sorted.
    pub ignored: Vec<String>,
}

impl OrgState {
    /// The non-negotiable with this id, retired or not.
    pub fn commitment(&self, id: &str) -> Option<&OrgCommitment> {
        self.commitments.iter().find(|c| c.id == id)
    }

    /// The non-negotiables in force (not retired), oldest first.
    pub fn live(&self) -> impl Iterator<Item = &OrgCommitment> {
        self.commitments.iter().filter(|c| c.retired.is_none())
    }
}

/// Why a change to the organisation's document is refused ([`check_change`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the change removes the non-negotiable `{0}` (or makes it unreadable)")]
    Removed(String),
    #[error("the change brings back the retired non-negotiable `{0}`")]
    Unretired(String),
    #[error("the change removes or rewrites the note `{0}`")]
    NoteChanged(String),
    #[error("the change alters the non-negotiable `{0}` without a note of it")]
    Unnoted(String),
    #[error("the change rewrites who added the non-negotiable `{0}`, or when")]
    Rewritten(String),
    #[error("the change writes `{0}`, which is not the organisation's")]
    Foreign(String),
    #[error("the change's note `{0}` says what the change did not do")]
    FalseNote(String),
}

/// Checks what a change may do to the organisation's document, from the document read before
/// it and after it: write only the organisation's own fields (no key read as nothing that was
/// not there before), remove no non-negotiable (retired ones stay retired), leave every note as
/// it was, keep who added each non-negotiable and when, and note each one it adds, edits or
/// retires (a note of an addition names a
/// new one, of an edit one that was there, of a retirement one retired).
///
/// Who wrote a note (`by`) is not checked here: the server knows which steward pushed.
pub fn check_change(before: &OrgState, after: &OrgState) -> std::result::Result<(), Refusal> {
    if let Some(k) = after
        .ignored
        .iter()
        .find(|k| before.ignored.binary_search(k).is_err())
    {
        return Err(Refusal::Foreign(k.clone()));
    }
    let fresh: Vec<&OrgNote> = new_notes(before, after);
    for n in &fresh {
        let was = before.commitment(&n.commitment);
        let true_note = after
            .commitment(&n.commitment)
            .is_some_and(|now| match n.change {
                NoteChange::Added { .. } => was.is_none(),
                NoteChange::Edited { .. } => was.is_some(),
                NoteChange::Retired => now.retired.is_some(),
            });
        if !true_note {
            return Err(Refusal::FalseNote(n.id.to_string()));
        }
    }
    let noted = |id: &str| fresh.iter().any(|n| n.commitment == id);
    for b in &before.commitments {
        let Some(a) = after.commitment(&b.id) else {
            return Err(Refusal::Removed(b.id.clone()));
        };
        if b.retired.is_some() && a.retired.is_none() {
            return Err(Refusal::Unretired(b.id.clone()));
        }
        if (&a.by, a.at_ms) != (&b.by, b.at_ms) {
            return Err(Refusal::Rewritten(b.id.clone()));
        }
        let changed =
            a.title != b.title || a.why != b.why || a.retired != b.retired || a.edited != b.edited;
        if changed && !noted(&a.id) {
            return Err(Refusal::Unnoted(a.id.clone()));
        }
    }
    if let Some(a) = after
        .commitments
        .iter()
        .find(|a| before.commitment(&a.id).is_none() && !noted(&a.id))
    {
        return Err(Refusal::Unnoted(a.id.clone()));
    }
    let now: BTreeMap<&EventId, &OrgNote> = after.notes.iter().map(|n| (&n.id, n)).collect();
    if let Some(n) = before.notes.iter().find(|n| now.get(&n.id) != Some(n)) {
        return Err(Refusal::NoteChanged(n.id.to_string()));
    }
    Ok(())
}

/// The notes `after` holds that `before` did not: what a change says in every team's feed,
/// oldest first.
pub fn new_notes<'a>(before: &OrgState, after: &'a OrgState) -> Vec<&'a OrgNote> {
    let old: std::collections::BTreeSet<&EventId> = before.notes.iter().map(|n| &n.id).collect();
    after
        .notes
        .iter()
        .filter(|n| !old.contains(&n.id))
        .collect()
}

fn check_name(name: &str) -> Result<String> {
    Ok(one_line(check_text(name, MAX_NAME_CHARS)?))
}

/// Starts the organisation's document, named `name`. Two stewards who both start it merge: its
/// fields are root scalars.
pub fn init(doc: &mut automerge::Automerge, name: &str, at_ms: i64) -> Result<()> {
    let name = check_name(name)?;
    doc.transact::<_, _, Error>(|tx| {
        tx.put(ROOT, "schema", SCHEMA)?;
        tx.put(ROOT, "name", name.as_str())?;
        tx.put(ROOT, "created", at_ms)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// 32 bytes that no other write will have: the device's actor, where the document stands, and
/// what is written.
fn fresh_bytes(doc: &automerge::Automerge, what: &str, at_ms: i64) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(doc.get_actor().to_bytes());
    let mut heads = doc.get_heads();
    heads.sort();
    for head in heads {
        h.update(head.0);
    }
    h.update(at_ms.to_le_bytes());
    h.update(what.as_bytes());
    h.finalize().into()
}

fn note_id(doc: &automerge::Automerge, what: &str, at_ms: i64) -> EventId {
    let b = fresh_bytes(doc, what, at_ms);
    EventId::new(at_ms, [b[0], b[1], b[2], b[3], b[4]])
}

fn put_note(
    tx: &mut impl Transactable,
    id: &EventId,
    nn: &str,
    title: &str,
    change: &NoteChange,
    by: &str,
    at_ms: i64,
) -> Result<()> {
    let n = tx.put_object(ROOT, format!("{NOTE}{id}"), ObjType::Map)?;
    let what = match change {
        NoteChange::Added { why } => {
            tx.put(&n, "why", why.as_str())?;
            "added"
        }
        NoteChange::Edited { was, why } => {
            if let Some(w) = was {
                tx.put(&n, "was", w.as_str())?;
            }
            if let Some(w) = why {
                tx.put(&n, "why", w.as_str())?;
            }
            "edited"
        }
        NoteChange::Retired => "retired",
    };
    tx.put(&n, "what", what)?;
    tx.put(&n, "nn", nn)?;
    tx.put(&n, "title", title)?;
    tx.put(&n, "by", by)?;
    tx.put(&n, "at", at_ms)?;
    Ok(())
}

/// Adds a non-negotiable with its why, by steward `by`, and its note; returns its id.
pub fn add_commitment(
    doc: &mut automerge::Automerge,
    state: &OrgState,
    title: &str,
    why: &str,
    by: &str,
    at_ms: i64,
) -> Result<String> {
    let title = check_name(title)?;
    let why = check_text(why, MAX_TEXT_CHARS)?;
    let by = check_name(by)?;
    if let Some(c) = state
        .live()
        .find(|c| c.title.to_lowercase() == title.to_lowercase())
    {
        return Err(Error::BadRule(format!(
            "the organisation already has the non-negotiable “{}”",
            c.title
        )));
    }
    let seed = fresh_bytes(doc, &format!("nn {title}"), at_ms);
    let id = ids::random_text(&seed[..10], 16);
    let note = note_id(doc, &format!("note {id}"), at_ms);
    doc.transact::<_, _, Error>(|tx| {
        let c = tx.put_object(ROOT, format!("{NN}{id}"), ObjType::Map)?;
        tx.put(&c, "title", title.as_str())?;
        tx.put(&c, "why", why.as_str())?;
        tx.put(&c, "by", by.as_str())?;
        tx.put(&c, "at", at_ms)?;
        let change = NoteChange::Added { why: why.clone() };
        put_note(tx, &note, &id, &title, &change, &by, at_ms)
    })
    .map_err(|f| f.error)?;
    Ok(id)
}

/// The live non-negotiable `id` and its map in the document.
fn live_map<'s>(
    doc: &automerge::Automerge,
    state: &'s OrgState,
    id: &str,
) -> Result<(&'s OrgCommitment, ObjId)> {
    let Some(c) = state.commitment(id) else {
        return Err(Error::NoSuchSetting(id.to_owned()));
    };
    if c.retired.is_some() {
        return Err(Error::BadRule(format!(
            "the non-negotiable “{}” is retired",
            c.title
        )));
    }
    match doc.get(ROOT, format!("{NN}{id}").as_str())? {
        Some((Value::Object(ObjType::Map), obj)) => Ok((c, obj)),
        _ => Err(Error::NoSuchSetting(id.to_owned())),
    }
}

/// Rewords non-negotiable `id` or gives it a new why (`None` leaves a field as it is), by
/// steward `by`, with its note. Two stewards' edits of different fields both hold.
pub fn edit_commitment(
    doc: &mut automerge::Automerge,
    state: &OrgState,
    id: &str,
    title: Option<&str>,
    why: Option<&str>,
    by: &str,
    at_ms: i64,
) -> Result<()> {
    let title = title.map(check_name).transpose()?;
    let why = why.map(|w| check_text(w, MAX_TEXT_CHARS)).transpose()?;
    let by = check_name(by)?;
    let (c, obj) = live_map(doc, state, id)?;
    let title = title.filter(|t| *t != c.title);
    let why = why.filter(|w| *w != c.why);
    if title.is_none() && why.is_none() {
        return Err(Error::NothingToEdit);
    }
    let change = NoteChange::Edited {
        was: title.as_ref().map(|_| c.title.clone()),
        why: why.clone(),
    };
    let shown = title.clone().unwrap_or_else(|| c.title.clone());
    let note = note_id(doc, &format!("edit {id}"), at_ms);
    doc.transact::<_, _, Error>(|tx| {
        if let Some(t) = &title {
            tx.put(&obj, "title", t.as_str())?;
        }
        if let Some(w) = &why {
            tx.put(&obj, "why", w.as_str())?;
        }
        tx.put(&obj, "edited_by", by.as_str())?;
        tx.put(&obj, "edited_at", at_ms)?;
        put_note(tx, &note, id, &shown, &change, &by, at_ms)
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Retires non-negotiable `id`, by steward `by`, with its note: it leaves every team's list but
/// stays in the document, marked, so what named it still reads.
pub fn retire_commitment(
    doc: &mut automerge::Automerge,
    state: &OrgState,
    id: &str,
    by: &str,
    at_ms: i64,
) -> Result<()> {
    let by = check_name(by)?;
    let (c, obj) = live_map(doc, state, id)?;
    let note = note_id(doc, &format!("retire {id}"), at_ms);
    doc.transact::<_, _, Error>(|tx| {
        tx.put(&obj, "retired", true)?;
        tx.put(&obj, "retired_by", by.as_str())?;
        tx.put(&obj, "retired_at", at_ms)?;
        put_note(tx, &note, id, &c.title, &NoteChange::Retired, &by, at_ms)
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// The string at `key` of `obj` when it is one.
fn text<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((v, _))) => v.as_str().map(str::to_owned),
        _ => None,
    }
}

fn int<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key) {
        Ok(Some((v, _))) => v.as_i64(),
        _ => None,
    }
}

/// A text as cairn would have written it: trimmed, not empty, at most `max` characters; on one
/// line when `line`.
pub(crate) fn valid(text: Option<String>, max: usize, line: bool) -> Option<String> {
    let t = text?;
    let t = t.trim();
    if t.is_empty() || t.chars().nth(max).is_some() {
        return None;
    }
    Some(if line {
        one_line(t.to_owned())
    } else {
        t.to_owned()
    })
}

fn read_commitment<D: ReadDoc>(doc: &D, id: &str, obj: &ObjId) -> Option<OrgCommitment> {
    if !ids::is_id_text(id) || id.len() > 32 {
        return None;
    }
    let name = |k: &str| valid(text(doc, obj, k), MAX_NAME_CHARS, true);
    let mark = |by: &str, at: &str| Mark {
        by: name(by).unwrap_or_default(),
        at_ms: int(doc, obj, at).unwrap_or(0),
    };
    let why = match text(doc, obj, "why") {
        None => String::new(),
        some => valid(some, MAX_TEXT_CHARS, false)?,
    };
    let retired = matches!(doc.get(obj, "retired"), Ok(Some((v, _))) if v.as_bool() == Some(true));
    Some(OrgCommitment {
        id: id.to_owned(),
        title: name("title")?,
        why,
        by: name("by").unwrap_or_default(),
        at_ms: int(doc, obj, "at").unwrap_or(0),
        edited: int(doc, obj, "edited_at")
            .is_some()
            .then(|| mark("edited_by", "edited_at")),
        retired: retired.then(|| mark("retired_by", "retired_at")),
    })
}

fn read_note<D: ReadDoc>(doc: &D, id: &str, obj: &ObjId) -> Option<OrgNote> {
    let id = EventId::parse(id)?;
    let name = |k: &str| valid(text(doc, obj, k), MAX_NAME_CHARS, true);
    let long = |k: &str| valid(text(doc, obj, k), MAX_TEXT_CHARS, false);
    let change = match text(doc, obj, "what")?.as_str() {
        "added" => NoteChange::Added {
            why: long("why").unwrap_or_default(),
        },
        "edited" => {
            let (was, why) = (name("was"), long("why"));
            if was.is_none() && why.is_none() {
                return None;
            }
            NoteChange::Edited { was, why }
        }
        "retired" => NoteChange::Retired,
        _ => return None,
    };
    let commitment = text(doc, obj, "nn").filter(|n| ids::is_id_text(n) && n.len() <= 32)?;
    Some(OrgNote {
        id,
        at_ms: int(doc, obj, "at")?,
        by: name("by")?,
        commitment,
        title: name("title")?,
        change,
    })
}

/// Reads the organisation's document into an [`OrgState`]. Whatever it does not understand is
/// left out (and listed in [`OrgState::ignored`]); nothing in a document makes it fail or panic.
pub fn read<D: ReadDoc>(doc: &D) -> Result<OrgState> {
    let mut state = OrgState::default();
    let mut ignored = Vec::new();
    for key in doc.keys(ROOT) {
        let got = doc.get(ROOT, key.as_str()).ok().flatten();
        let understood = match (key.as_str(), got) {
            ("schema" | "created", Some((v, _))) => v.as_i64().is_some(),
            ("name", Some((v, _))) => {
                match valid(v.as_str().map(str::to_owned), MAX_NAME_CHARS, true) {
                    Some(n) => {
                        state.name = n;
                        true
                    }
                    None => false,
                }
            }
            (k, Some((Value::Object(ObjType::Map), obj))) => {
                if let Some(id) = k.strip_prefix(NN) {
                    read_commitment(doc, id, &obj)
                        .map(|c| state.commitments.push(c))
                        .is_some()
                } else if let Some(id) = k.strip_prefix(NOTE) {
                    read_note(doc, id, &obj)
                        .map(|n| state.notes.push(n))
                        .is_some()
                } else {
                    false
                }
            }
            _ => false,
        };
        if !understood {
            ignored.push(key);
        }
    }
    state
        .commitments
        .sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    state.notes.sort_by(|a, b| a.id.cmp(&b.id));
    ignored.sort();
    state.ignored = ignored;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{ActorId, Automerge};

    fn org() -> (Automerge, OrgState) {
        let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        init(&mut doc, "Acme", 5).unwrap();
        let state = read(&doc).unwrap();
        (doc, state)
    }

    #[test]
    fn two_stewards_who_both_start_the_document_merge() {
        let mut a = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        let mut b = Automerge::new().with_actor(ActorId::from([2u8; 16]));
        init(&mut a, "Acme", 1).unwrap();
        init(&mut b, "Acme schools", 2).unwrap();
        let s = read(&a).unwrap();
        let id = add_commitment(&mut a, &s, "Kept", "fine", "Ana", 3).unwrap();
        merged(&mut a, &mut b);
        let (ra, rb) = (read(&a).unwrap(), read(&b).unwrap());
        assert_eq!(ra, rb);
        assert!(["Acme", "Acme schools"].contains(&ra.name.as_str()));
        assert!(ra.commitment(&id).is_some() && ra.ignored.is_empty());
    }

    #[test]
    fn whatever_is_written_reads_without_panicking() {
        use proptest::prelude::*;
        const KEYS: [&str; 12] = [
            "name",
            "schema",
            "nn/aa",
            "nn/aa/title",
            "note/X",
            "practice/aa/text",
            "title",
            "why",
            "what",
            "at",
            "retired",
            "nn",
        ];
        let scalar = prop_oneof![
            any::<i64>().prop_map(automerge::ScalarValue::Int),
            any::<bool>().prop_map(automerge::ScalarValue::Boolean),
            "[a-z \n]{0,12}".prop_map(|t| automerge::ScalarValue::Str(t.into())),
            Just(automerge::ScalarValue::Null),
            any::<f64>().prop_map(automerge::ScalarValue::F64),
        ];
        let write = (0..KEYS.len(), 0..KEYS.len(), 0..4u8, scalar);
        let cfg = ProptestConfig {
            cases: 64,
            ..ProptestConfig::default()
        };
        proptest!(cfg, |(writes in proptest::collection::vec(write, 0..24))| {
            let (mut doc, s) = org();
            let id = add_commitment(&mut doc, &s, "Kept", "fine", "Ana", 10).unwrap();
            let note = read(&doc).unwrap().notes[0].id.to_string();
            let good = read(&doc).unwrap();
            for (k, inner, how, value) in writes {
                let key = KEYS[k].replace("aa", &id).replace('X', &note);
                let _ = doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                    let target = match tx.get(ROOT, key.as_str())? {
                        Some((Value::Object(_), obj)) if how > 0 => obj,
                        _ => ROOT,
                    };
                    match (how, target == ROOT) {
                        (0, _) | (_, true) => tx.put(&target, key.as_str(), value.clone())?,
                        (1, false) => tx.put(&target, KEYS[inner], value.clone())?,
                        (2, false) => tx.delete(&target, KEYS[inner])?,
                        _ => {
                            tx.put_object(ROOT, key.as_str(), ObjType::Map)?;
                        }
                    }
                    Ok(())
                });
                let now = read(&doc).unwrap();
                let _ = check_change(&good, &now);
                let _ = crate::team::practices(&doc).unwrap();
                prop_assert!(now.commitments.iter().all(|c| !c.title.is_empty()));
            }
        });
    }

    fn merged(a: &mut Automerge, b: &mut Automerge) {
        a.merge(b).unwrap();
        b.merge(a).unwrap();
    }

    #[test]
    fn a_new_organisation_reads_back() {
        let (_, state) = org();
        assert_eq!(state.name, "Acme");
        assert!(state.commitments.is_empty() && state.notes.is_empty());
        assert!(state.ignored.is_empty(), "{:?}", state.ignored);
        let empty = read(&Automerge::new()).unwrap();
        assert_eq!(empty, OrgState::default());
        assert!(init(&mut Automerge::new(), "  ", 0).is_err());
    }

    #[test]
    fn add_edit_retire_each_with_its_note() {
        let (mut doc, s0) = org();
        let id = add_commitment(
            &mut doc,
            &s0,
            "Reviews within a day",
            "nobody waits",
            "Ana",
            10,
        )
        .unwrap();
        let s1 = read(&doc).unwrap();
        let c = s1.commitment(&id).unwrap();
        assert_eq!(
            (c.why.as_str(), c.by.as_str(), c.at_ms),
            ("nobody waits", "Ana", 10)
        );
        assert!(c.edited.is_none() && c.retired.is_none());
        assert!(matches!(
            add_commitment(&mut doc, &s1, "reviews WITHIN a day", "again", "Ben", 11),
            Err(Error::BadRule(_))
        ));

        edit_commitment(
            &mut doc,
            &s1,
            &id,
            Some("Reviews within a working day"),
            None,
            "Ben",
            20,
        )
        .unwrap();
        let s2 = read(&doc).unwrap();
        assert!(matches!(
            edit_commitment(
                &mut doc,
                &s2,
                &id,
                Some("Reviews within a working day"),
                Some("nobody waits"),
                "Ben",
                21
            ),
            Err(Error::NothingToEdit)
        ));
        edit_commitment(
            &mut doc,
            &s2,
            &id,
            None,
            Some("blocked work costs most"),
            "Ana",
            30,
        )
        .unwrap();
        let s3 = read(&doc).unwrap();
        let c = s3.commitment(&id).unwrap();
        assert_eq!(c.title, "Reviews within a working day");
        assert_eq!(c.why, "blocked work costs most");
        assert_eq!(
            c.edited,
            Some(Mark {
                by: "Ana".into(),
                at_ms: 30
            })
        );

        retire_commitment(&mut doc, &s3, &id, "Cy", 40).unwrap();
        let s4 = read(&doc).unwrap();
        let c = s4.commitment(&id).unwrap();
        assert_eq!(
            c.retired,
            Some(Mark {
                by: "Cy".into(),
                at_ms: 40
            })
        );
        assert_eq!(s4.live().count(), 0);
        assert!(matches!(
            retire_commitment(&mut doc, &s4, &id, "Cy", 41),
            Err(Error::BadRule(_))
        ));
        assert!(edit_commitment(&mut doc, &s4, &id, Some("x"), None, "Cy", 41).is_err());
        assert!(matches!(
            retire_commitment(&mut doc, &s4, "nope", "Cy", 41),
            Err(Error::NoSuchSetting(_))
        ));

        let texts: Vec<String> = s4.notes.iter().map(OrgNote::text).collect();
        assert_eq!(
            texts,
            [
                "the organisation added a non-negotiable: “Reviews within a day”",
                "the organisation reworded the non-negotiable “Reviews within a day”: “Reviews within a working day”",
                "the organisation gave a new why for the non-negotiable “Reviews within a working day”: blocked work costs most",
                "the organisation retired the non-negotiable “Reviews within a working day”",
            ]
        );
        let whens: Vec<(i64, &str)> = s4.notes.iter().map(|n| (n.at_ms, n.by.as_str())).collect();
        assert_eq!(whens, [(10, "Ana"), (20, "Ben"), (30, "Ana"), (40, "Cy")]);
        assert!(s4.notes.iter().all(|n| n.commitment == id));
        // Each step is a change the check lets through, and says its one note.
        for (before, after) in [(&s0, &s1), (&s1, &s2), (&s2, &s3), (&s3, &s4)] {
            assert_eq!(check_change(before, after), Ok(()));
            assert_eq!(new_notes(before, after).len(), 1);
        }
        let e = s4.notes[0].event("Europe/Paris");
        assert_eq!(
            (e.kind, e.author.as_str(), e.date.as_str()),
            (Kind::Team, "Ana", "1970-01-01")
        );
        assert!(!e.counts());
    }

    #[test]
    fn two_stewards_edits_merge_field_by_field() {
        let (mut a, s) = org();
        let id =
            add_commitment(&mut a, &s, "Demo every Friday", "show, not tell", "Ana", 10).unwrap();
        let s = read(&a).unwrap();
        let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
        edit_commitment(
            &mut a,
            &s,
            &id,
            Some("Demo every other Friday"),
            None,
            "Ana",
            20,
        )
        .unwrap();
        edit_commitment(
            &mut b,
            &s,
            &id,
            None,
            Some("we learn from each other"),
            "Ben",
            21,
        )
        .unwrap();
        // Meanwhile each adds one of their own.
        let sa = read(&a).unwrap();
        let sb = read(&b).unwrap();
        let x = add_commitment(
            &mut a,
            &sa,
            "Blameless reviews",
            "we fix systems",
            "Ana",
            30,
        )
        .unwrap();
        let y = add_commitment(&mut b, &sb, "Pair on hard things", "two heads", "Ben", 30).unwrap();
        assert_ne!(x, y);
        merged(&mut a, &mut b);
        let (ra, rb) = (read(&a).unwrap(), read(&b).unwrap());
        assert_eq!(ra, rb);
        let c = ra.commitment(&id).unwrap();
        assert_eq!(c.title, "Demo every other Friday");
        assert_eq!(c.why, "we learn from each other");
        assert_eq!(ra.live().count(), 3);
        assert_eq!(ra.notes.len(), 5);
        assert!(ra.ignored.is_empty());
        // One retires while the other rewords: retired, with the new words.
        let mut c2 = a.fork().with_actor(ActorId::from([3u8; 16]));
        retire_commitment(&mut a, &ra, &x, "Ana", 40).unwrap();
        edit_commitment(
            &mut c2,
            &ra,
            &x,
            Some("Blameless post-mortems"),
            None,
            "Cy",
            41,
        )
        .unwrap();
        merged(&mut a, &mut c2);
        let r = read(&a).unwrap();
        assert_eq!(r, read(&c2).unwrap());
        let c = r.commitment(&x).unwrap();
        assert!(c.retired.is_some());
        assert_eq!(c.title, "Blameless post-mortems");
        assert_eq!(check_change(&ra, &r), Ok(()));
    }

    fn hand(
        doc: &mut Automerge,
        f: impl FnOnce(
            &mut automerge::transaction::Transaction<'_>,
        ) -> std::result::Result<(), automerge::AutomergeError>,
    ) {
        doc.transact::<_, _, automerge::AutomergeError>(|tx| f(tx))
            .unwrap();
    }

    #[test]
    fn a_hostile_document_reads_what_is_valid() {
        let (mut doc, s) = org();
        let id = add_commitment(&mut doc, &s, "Kept", "fine", "Ana", 10).unwrap();
        let good = read(&doc).unwrap();
        let huge = "x".repeat(1_000_000);
        hand(&mut doc, |tx| {
            tx.put(ROOT, "name", 42)?;
            tx.put(ROOT, "schema", "one")?;
            tx.put(ROOT, "member/m-ana", "x")?;
            tx.put(ROOT, "nn/abc", "not a map")?;
            let l = tx.put_object(ROOT, "nn/list", ObjType::List)?;
            tx.insert(&l, 0, 1)?;
            let m = tx.put_object(ROOT, "nn/huge", ObjType::Map)?;
            tx.put(&m, "title", huge.as_str())?;
            let m = tx.put_object(ROOT, "nn/nottitled", ObjType::Map)?;
            tx.put(&m, "title", 7)?;
            tx.put(&m, "at", "yesterday")?;
            let m = tx.put_object(ROOT, "nn/Bad Id!", ObjType::Map)?;
            tx.put(&m, "title", "bad id")?;
            let m = tx.put_object(ROOT, "nn/bare", ObjType::Map)?;
            tx.put(&m, "title", "Only a title\nand a break")?;
            tx.put(&m, "retired", "yes")?;
            tx.put(&m, "edited_at", 3)?;
            let m = tx.put_object(ROOT, "note/notanid", ObjType::Map)?;
            tx.put(&m, "what", "added")?;
            let id = EventId::new(50, [1; 5]);
            let m = tx.put_object(ROOT, format!("note/{id}"), ObjType::Map)?;
            tx.put(&m, "what", "exploded")?;
            let id = EventId::new(60, [2; 5]);
            let m = tx.put_object(ROOT, format!("note/{id}"), ObjType::Map)?;
            tx.put(&m, "what", "edited")?;
            tx.put(&m, "nn", "bare")?;
            tx.put(&m, "title", "t")?;
            tx.put(&m, "by", "Eve")?;
            tx.put(&m, "at", 60)?;
            let t = tx.put_object(ROOT, "note/text", ObjType::Text)?;
            tx.splice_text(&t, 0, 0, "hello")?;
            Ok(())
        });
        let s = read(&doc).unwrap();
        assert_eq!(s.name, "");
        let titles: Vec<&str> = s.commitments.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["Only a title and a break", "Kept"]);
        let bare = s.commitment("bare").unwrap();
        assert!(bare.retired.is_none() && bare.why.is_empty() && bare.by.is_empty());
        assert_eq!(
            bare.edited,
            Some(Mark {
                by: String::new(),
                at_ms: 3
            })
        );
        assert_eq!(
            s.notes.len(),
            1,
            "an edit note that says nothing changed is none"
        );
        assert!(s.commitment(&id).is_some());
        for k in [
            "member/m-ana",
            "name",
            "nn/abc",
            "nn/huge",
            "nn/list",
            "nn/nottitled",
            "note/notanid",
            "note/text",
            "schema",
        ] {
            assert!(s.ignored.iter().any(|i| i == k), "{k} in {:?}", s.ignored);
        }
        assert_eq!(
            check_change(&good, &s),
            Err(Refusal::Foreign("member/m-ana".into()))
        );
    }

    #[test]
    fn the_check_refuses_what_a_steward_may_not_do() {
        let (mut doc, s) = org();
        let id = add_commitment(&mut doc, &s, "Kept", "fine", "Ana", 10).unwrap();
        let s = read(&doc).unwrap();
        retire_commitment(&mut doc, &s, &id, "Ana", 20).unwrap();
        let retired = read(&doc).unwrap();
        let (_, obj) = doc.get(ROOT, format!("nn/{id}").as_str()).unwrap().unwrap();

        let mut d = doc.fork();
        hand(&mut d, |tx| tx.put(&obj, "retired", false));
        assert_eq!(
            check_change(&retired, &read(&d).unwrap()),
            Err(Refusal::Unretired(id.clone()))
        );

        let mut d = doc.fork();
        hand(&mut d, |tx| tx.delete(ROOT, format!("nn/{id}").as_str()));
        assert_eq!(
            check_change(&retired, &read(&d).unwrap()),
            Err(Refusal::Removed(id.clone()))
        );

        let mut d = doc.fork();
        hand(&mut d, |tx| tx.put(&obj, "by", "Mallory"));
        assert_eq!(
            check_change(&retired, &read(&d).unwrap()),
            Err(Refusal::Rewritten(id.clone()))
        );

        let mut d = doc.fork();
        hand(&mut d, |tx| tx.put(&obj, "title", "quietly changed"));
        assert_eq!(
            check_change(&retired, &read(&d).unwrap()),
            Err(Refusal::Unnoted(id.clone()))
        );

        let note = retired.notes[0].id.clone();
        let mut d = doc.fork();
        let (_, n) = doc
            .get(ROOT, format!("note/{note}").as_str())
            .unwrap()
            .unwrap();
        hand(&mut d, |tx| tx.put(&n, "by", "Mallory"));
        assert_eq!(
            check_change(&retired, &read(&d).unwrap()),
            Err(Refusal::NoteChanged(note.to_string()))
        );

        let mut d = doc.fork();
        hand(&mut d, |tx| {
            let m = tx.put_object(ROOT, "nn/sneaky", ObjType::Map)?;
            tx.put(&m, "title", "Unannounced")
        });
        assert_eq!(
            check_change(&retired, &read(&d).unwrap()),
            Err(Refusal::Unnoted("sneaky".into()))
        );

        // A note of something that did not happen.
        let mut d = doc.fork();
        let fake = EventId::new(30, [3; 5]);
        hand(&mut d, |tx| {
            let m = tx.put_object(ROOT, format!("note/{fake}"), ObjType::Map)?;
            tx.put(&m, "what", "added")?;
            tx.put(&m, "nn", id.as_str())?;
            tx.put(&m, "title", "Kept")?;
            tx.put(&m, "by", "Mallory")?;
            tx.put(&m, "at", 30)
        });
        assert_eq!(
            check_change(&retired, &read(&d).unwrap()),
            Err(Refusal::FalseNote(fake.to_string()))
        );
    }

    #[test]
    fn notes_read_the_same_on_every_replica_whatever_the_merge_order() {
        use proptest::prelude::*;
        let cfg = ProptestConfig {
            cases: 64,
            ..ProptestConfig::default()
        };
        proptest!(cfg, |(ops in proptest::collection::vec((0..3usize, 0..4u8, 0..3usize, 0..50i64), 1..12),
                         order in Just(()).prop_perturb(|_, mut rng| {
                             let mut o = vec![0usize, 1, 2];
                             for i in (1..3).rev() { o.swap(i, (rng.next_u32() as usize) % (i + 1)); }
                             o
                         }))| {
            let (base, _) = org();
            let mut docs: Vec<Automerge> = (0..3u8)
                .map(|i| base.fork().with_actor(ActorId::from([10 + i; 16])))
                .collect();
            for (who, op, pick, at) in ops {
                let d = &mut docs[who];
                let s = read(d).unwrap();
                let live: Vec<String> = s.live().map(|c| c.id.clone()).collect();
                let target = live.get(pick % live.len().max(1)).cloned();
                let by = ["Ana", "Ben", "Cy"][who];
                let _ = match (op, target) {
                    (0, _) | (_, None) => add_commitment(d, &s, &format!("nn {who} {at}"), "why", by, at).map(|_| ()),
                    (1, Some(t)) => edit_commitment(d, &s, &t, Some(&format!("t {who} {at}")), None, by, at),
                    (2, Some(t)) => edit_commitment(d, &s, &t, None, Some(&format!("w {who} {at}")), by, at),
                    (_, Some(t)) => retire_commitment(d, &s, &t, by, at),
                };
            }
            let mut x = Automerge::new();
            for i in &order { x.merge(&mut docs[*i].clone()).unwrap(); }
            let mut y = Automerge::new();
            for i in order.iter().rev() { y.merge(&mut docs[*i].clone()).unwrap(); }
            let (rx, ry) = (read(&x).unwrap(), read(&y).unwrap());
            prop_assert_eq!(&rx, &ry);
            prop_assert!(rx.ignored.is_empty());
            let ids: Vec<&EventId> = rx.notes.iter().map(|n| &n.id).collect();
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(ids, sorted);
            // Every change passes the check as a server applying them one by one sees it.
            let mut server = Automerge::new();
            let mut before = read(&server).unwrap();
            for c in x.get_changes(&[]) {
                server.apply_changes([c.clone()]).unwrap();
                let after = read(&server).unwrap();
                prop_assert_eq!(check_change(&before, &after), Ok(()));
                before = after;
            }
            prop_assert_eq!(before, rx);
        });
    }
}
