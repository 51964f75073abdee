//! Journals: the documents that hold events, one per member per UTC month.
//!
//! Each event is a map at the root keyed by its id. Its creator makes the map once; edits and
//! retractions are plain field writes into it, so concurrent ones from two devices merge like any
//! other field.
//!
//! A reader takes the fields it knows and skips the others (a scalar or an object under a key
//! it does not know), so a later version may add fields to an event: `honours` (the id of the
//! organisation's non-negotiable an act honours) came so, and an older cairn reads such an
//! event as it always did, without it.

use automerge::{
    Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValueRef, ValueRef, transaction::Transactable,
};

use crate::event::{Edit, Event, Kind, NewEvent, Stamp, one_line};
use crate::ids::EventId;
use crate::team::TeamState;
use crate::{Error, Result};

/// Writes a new event by `author` into `doc`. The event is validated against `team` first; an
/// invalid event leaves the document untouched.
pub fn add(
    doc: &mut Automerge,
    team: &TeamState,
    author: &str,
    id: &EventId,
    stamp: &Stamp,
    new: &NewEvent,
) -> Result<()> {
    let e = new.clone().validate(team, author)?;
    if doc.get(ROOT, id.as_str())?.is_some() {
        return Err(Error::EventExists(id.short().to_owned()));
    }
    doc.transact::<_, _, Error>(|tx| {
        let o = tx.put_object(ROOT, id.as_str(), ObjType::Map)?;
        tx.put(&o, "kind", e.kind.as_str())?;
        tx.put(&o, "author", author)?;
        tx.put(&o, "at", stamp.at_ms)?;
        tx.put(&o, "tz", stamp.tz.as_str())?;
        tx.put(&o, "date", stamp.date.as_str())?;
        if stamp.late {
            tx.put(&o, "late", true)?;
        }
        if let Some(p) = &e.pillar {
            tx.put(&o, "pillar", p.as_str())?;
        }
        if !e.text.is_empty() {
            tx.put(&o, "text", e.text.as_str())?;
        }
        if let Some(w) = &e.why {
            tx.put(&o, "why", w.as_str())?;
        }
        if !e.to.is_empty() {
            let list = tx.put_object(&o, "to", ObjType::List)?;
            for (i, m) in e.to.iter().enumerate() {
                tx.insert(&list, i, m.as_str())?;
            }
        }
        if let Some(t) = &e.target {
            tx.put(&o, "target", t.as_str())?;
        }
        if let Some(em) = &e.emoji {
            tx.put(&o, "emoji", em.as_str())?;
        }
        if let Some(h) = &e.honours {
            tx.put(&o, "honours", h.as_str())?;
        }
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

fn own_event(doc: &Automerge, author: &str, id: &EventId) -> Result<(ObjId, Event)> {
    let Some((_, obj)) = doc.get(ROOT, id.as_str())? else {
        return Err(Error::NoSuchEvent(id.short().to_owned()));
    };
    let event = read_event(doc, id, &obj)?;
    if event.author != author {
        return Err(Error::NotYours(id.short().to_owned()));
    }
    if event.retracted {
        return Err(Error::Retracted(id.short().to_owned()));
    }
    Ok((obj, event))
}

/// Edits event `id`, which `author` must have written.
pub fn edit(
    doc: &mut Automerge,
    team: &TeamState,
    author: &str,
    id: &EventId,
    edit: &Edit,
    at_ms: i64,
) -> Result<()> {
    let (obj, event) = own_event(doc, author, id)?;
    match event.kind {
        Kind::Reaction => return Err(Error::EditReaction),
        Kind::Team => return Err(Error::EditTeamNote),
        Kind::Action | Kind::Kudos => {}
    }
    let edit = edit.clone().validate(team)?;
    doc.transact::<_, _, Error>(|tx| {
        if let Some(t) = &edit.text {
            tx.put(&obj, "text", t.as_str())?;
        }
        if let Some(p) = &edit.pillar {
            tx.put(&obj, "pillar", p.as_str())?;
        }
        if let Some(w) = &edit.why {
            tx.put(&obj, "why", w.as_str())?;
        }
        tx.put(&obj, "edited", at_ms)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Retracts event `id`, which `author` must have written. It stays in the journal, marked, with
/// when it was retracted (`retracted_at`); a retraction is no edit, so `edited` stays as it was.
pub fn retract(doc: &mut Automerge, author: &str, id: &EventId, at_ms: i64) -> Result<()> {
    let (obj, _) = own_event(doc, author, id)?;
    doc.transact::<_, _, Error>(|tx| {
        tx.put(&obj, "retracted", true)?;
        tx.put(&obj, "retracted_at", at_ms)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Reads the events of journal `doc_id` that count: those of its owner. A change that put another
/// member's name on an event in someone's journal is never shown, whoever let it through.
pub fn read_own<D: ReadDoc>(doc_id: &str, doc: &D) -> Result<Vec<Event>> {
    let owner = crate::ids::journal_owner(doc_id);
    let mut events = read(doc)?;
    events.retain(|e| owner == Some(e.author.as_str()));
    Ok(events)
}

/// Reads event `id` of journal `doc_id` as [`read_own`] does: `None` when the journal does not
/// hold it, holds something else under its key, holds a malformed one, or one by someone else.
pub fn get_own<D: ReadDoc>(doc_id: &str, doc: &D, id: &EventId) -> Option<Event> {
    let owner = crate::ids::journal_owner(doc_id)?;
    let (value, obj) = doc.get(ROOT, id.as_str()).ok()??;
    if !matches!(value, automerge::Value::Object(ObjType::Map)) {
        return None;
    }
    read_event(doc, id, &obj).ok().filter(|e| e.author == owner)
}

/// Reads one event, if the journal holds it.
pub fn get<D: ReadDoc>(doc: &D, id: &EventId) -> Result<Option<Event>> {
    match doc.get(ROOT, id.as_str())? {
        Some((_, obj)) => Ok(Some(read_event(doc, id, &obj)?)),
        None => Ok(None),
    }
}

/// Reads every event of the journal, in id order. Keys that are not event ids are skipped, so a
/// later version may add other entries; so are malformed events, so that one bad entry from a
/// faulty peer cannot hide the rest.
///
/// The whole document is read in one pass over its objects (automerge's document iterator), each
/// object's fields in turn: looking each event up with a range of its own costs a seek into the
/// document per event, which made reading a whole journal about 1.8 times slower. An event whose
/// recipients are not a list (only a faulty peer writes that) is read the per-event way, so both
/// ways read every document alike (a property test holds them together).
pub fn read<D: ReadDoc>(doc: &D) -> Result<Vec<Event>> {
    // The document iterator also walks objects no event reads (text in a junk field, say): should
    // automerge fail on one of those, the events are read the per-event way, which never visits
    // them.
    match crate::change::quietly(|| read_in_one_pass(doc)) {
        Ok(events) => events,
        Err(_) => read_by_events(doc),
    }
}

/// Reads every event of the journal event by event, each with a range of its own.
fn read_by_events<D: ReadDoc>(doc: &D) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    for item in doc.map_range(ROOT, ..) {
        let Some(id) = EventId::parse(&item.key) else {
            continue;
        };
        if !matches!(item.value, ValueRef::Object(ObjType::Map)) {
            continue;
        }
        if let Ok(e) = read_event(doc, &id, &item.id()) {
            out.push(e);
        }
    }
    Ok(out)
}

fn read_in_one_pass<D: ReadDoc>(doc: &D) -> Result<Vec<Event>> {
    use automerge::iter::DocItem;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// What an object of the document is to the reader.
    #[derive(Clone, Copy)]
    enum Role {
        /// The journal's root: its keys are the events.
        Root,
        /// The map of event `n`.
        Event(usize),
        /// The recipients of event `n`.
        To(usize),
        /// Something no event reads.
        Other,
    }
    struct Slot {
        obj: ObjId,
        fields: Fields,
        /// Read the per-event way: its recipients are not a list.
        apart: bool,
    }
    let mut slots: Vec<Slot> = Vec::new();
    let mut roles: HashMap<ObjId, Role> = HashMap::new();
    // The document iterator hands out each object's items together, under one shared id.
    let mut current: Option<(Arc<ObjId>, Role)> = None;
    for item in doc.iter() {
        let role = match &current {
            Some((obj, role)) if Arc::ptr_eq(obj, &item.obj) => *role,
            _ => {
                let role = if *item.obj == ROOT {
                    Role::Root
                } else {
                    roles.get(&*item.obj).copied().unwrap_or(Role::Other)
                };
                current = Some((item.obj.clone(), role));
                role
            }
        };
        match (role, item.item) {
            (Role::Root, DocItem::Map(m)) => {
                let Some(id) = EventId::parse(&m.key) else {
                    continue;
                };
                if !matches!(m.value, ValueRef::Object(ObjType::Map)) {
                    continue;
                }
                let obj = m.id();
                roles.insert(obj.clone(), Role::Event(slots.len()));
                slots.push(Slot {
                    obj,
                    fields: Fields::new(id),
                    apart: false,
                });
            }
            (Role::Event(n), DocItem::Map(m)) => match &m.value {
                ValueRef::Scalar(v) => slots[n].fields.scalar(&m.key, v, || m.id()),
                ValueRef::Object(kind) if m.key == "to" => {
                    if *kind == ObjType::List {
                        roles.insert(m.id(), Role::To(n));
                    } else {
                        slots[n].apart = true;
                    }
                }
                ValueRef::Object(_) => {}
            },
            (Role::To(n), DocItem::List(l)) => {
                if let ValueRef::Scalar(ScalarValueRef::Str(s)) = &l.value {
                    slots[n].fields.to.push(s.to_string());
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        let read = if slot.apart {
            read_event(doc, &slot.fields.e.id, &slot.obj)
        } else {
            slot.fields.finish()
        };
        if let Ok(e) = read {
            out.push(e);
        }
    }
    Ok(out)
}

/// Reads one event, field by field, from its map `obj`.
fn read_event<D: ReadDoc>(doc: &D, id: &EventId, obj: &ObjId) -> Result<Event> {
    let mut fields = Fields::new(id.clone());
    let mut to = None;
    for f in doc.map_range(obj, ..) {
        match &f.value {
            ValueRef::Scalar(v) => fields.scalar(&f.key, v, || f.id()),
            _ if f.key == "to" => to = Some(f.id()),
            _ => {}
        }
    }
    if let Some(list) = to {
        for v in doc.values(&list) {
            if let Some(s) = v.0.as_str() {
                fields.to.push(s.to_owned());
            }
        }
    }
    fields.finish()
}

/// An event's fields as they are read, one by one, whatever the order.
struct Fields {
    e: Event,
    kind: Option<String>,
    author: Option<String>,
    to: Vec<String>,
    /// The operations that wrote `retracted` and `edited`: an older cairn wrote both in one
    /// retraction (see [`Fields::finish`]).
    retracted_op: Option<ObjId>,
    edited_op: Option<ObjId>,
}

impl Fields {
    fn new(id: EventId) -> Self {
        Fields {
            e: Event {
                id,
                kind: Kind::Action,
                author: String::new(),
                at_ms: 0,
                tz: "UTC".to_owned(),
                date: String::new(),
                late: false,
                pillar: None,
                text: String::new(),
                why: None,
                to: Vec::new(),
                target: None,
                emoji: None,
                retracted: false,
                edited_ms: None,
                honours: None,
            },
            kind: None,
            author: None,
            to: Vec::new(),
            retracted_op: None,
            edited_op: None,
        }
    }

    /// Takes field `key` with scalar value `v`, written by operation `op`; unknown keys are left
    /// for later versions.
    fn scalar(&mut self, key: &str, v: &ScalarValueRef<'_>, op: impl FnOnce() -> ObjId) {
        let e = &mut self.e;
        let text = || match v {
            ScalarValueRef::Str(s) => Some(s.to_string()),
            _ => None,
        };
        let int = || match v {
            ScalarValueRef::Int(i) | ScalarValueRef::Counter(i) | ScalarValueRef::Timestamp(i) => {
                Some(*i)
            }
            ScalarValueRef::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        };
        let flag = || matches!(v, ScalarValueRef::Boolean(true));
        match key {
            "kind" => self.kind = text(),
            "author" => self.author = text(),
            "at" => e.at_ms = int().unwrap_or(0),
            "tz" => e.tz = one_line(text().unwrap_or_else(|| "UTC".to_owned())),
            "date" => e.date = text().unwrap_or_default(),
            "late" => e.late = flag(),
            "pillar" => e.pillar = text().map(one_line),
            "text" => e.text = text().unwrap_or_default(),
            "why" => e.why = text(),
            "target" => e.target = text().and_then(|t| EventId::parse(&t)),
            "emoji" => e.emoji = text().map(one_line),
            // Something else there (only a faulty peer writes that) honours nothing; the act
            // still counts.
            "honours" => e.honours = text().filter(|h| crate::event::is_honours_id(h)),
            "retracted" => {
                e.retracted = flag();
                self.retracted_op = Some(op());
            }
            "edited" => {
                e.edited_ms = int();
                self.edited_op = Some(op());
            }
            _ => {}
        }
    }

    /// The event, if its kind and author were there.
    fn finish(self) -> Result<Event> {
        let mut e = self.e;
        e.date = checked_date(&e);
        // An older cairn wrote `edited` right after `retracted`, in the same change, when it
        // retracted: that is the retraction's time, not an edit's.
        if let (true, Some(ObjId::Id(r, actor_r, _)), Some(ObjId::Id(w, actor_w, _))) =
            (e.retracted, &self.retracted_op, &self.edited_op)
            && actor_r == actor_w
            && *w == r + 1
        {
            e.edited_ms = None;
        }
        let kind = self
            .kind
            .ok_or_else(|| Error::Malformed("missing `kind`".into()))?;
        e.kind = Kind::parse(&kind).ok_or_else(|| Error::Malformed(format!("kind `{kind}`")))?;
        e.author = self
            .author
            .ok_or_else(|| Error::Malformed("missing `author`".into()))?;
        e.to = self.to;
        if !e.kind.is_act() {
            e.honours = None;
        }
        Ok(e)
    }
}

/// The most days an event's local date lies before the UTC date of its instant (a week's late
/// window, far west): what `checked_date` takes, and what a feed until a date relies on.
pub const MAX_DAYS_BEHIND: i64 = 9;

/// The event's local date, if it can be the date of its instant somewhere on Earth, or a late
/// log of the last week (from nine days before the UTC date, a week's late window far west, to
/// one day after); otherwise the date its own instant and zone give. A faulty or hostile peer
/// cannot backdate a streak by more than that, nor stretch the team's history to year 1.
fn checked_date(e: &Event) -> String {
    // An instant no calendar holds: no date that anything could count.
    let Some(utc) = crate::time::local_date(e.at_ms, "UTC") else {
        return String::new();
    };
    if let Ok(d) = e.date.parse::<jiff::civil::Date>() {
        let lo = utc
            .checked_sub(jiff::Span::new().days(MAX_DAYS_BEHIND))
            .unwrap_or(utc);
        let hi = utc.checked_add(jiff::Span::new().days(1)).unwrap_or(utc);
        if d >= lo && d <= hi {
            // Always as `YYYY-MM-DD`, whatever form was written (`20261123`, a time with an
            // offset): the replica's SQL reads the same day from it as Rust does.
            return d.to_string();
        }
    }
    let local = crate::time::local_date(e.at_ms, &e.tz).unwrap_or(utc);
    let local = if e.late {
        local.yesterday().unwrap_or(local)
    } else {
        local
    };
    local.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team;
    use automerge::ActorId;

    fn setup() -> (Automerge, TeamState) {
        let mut t = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        team::init(&mut t, "Otters", "UTC", "Ana", "ana", "ana", 0).unwrap();
        let mut state = team::read(&t).unwrap();
        team::add_member(&mut t, &state, "ben", "Ben", None, 0).unwrap();
        state = team::read(&t).unwrap();
        (Automerge::new().with_actor(ActorId::from([2u8; 16])), state)
    }

    fn stamp(at_ms: i64) -> Stamp {
        Stamp {
            at_ms,
            tz: "UTC".into(),
            date: "2026-11-23".into(),
            late: false,
        }
    }

    #[test]
    fn an_act_names_the_non_negotiable_it_honours_and_readers_skip_what_they_do_not_know() {
        let (mut doc, team) = setup();
        let at = 1_795_474_740_000;
        let id = EventId::new(at, [4; 5]);
        let new = NewEvent::action("greeted Cy", None, None).honouring(Some("nn0greet".into()));
        add(&mut doc, &team, "ana", &id, &stamp(at), &new).unwrap();
        // Kept inside the event's map, as one more scalar field.
        let (_, obj) = doc.get(ROOT, id.as_str()).unwrap().unwrap();
        assert_eq!(
            doc.get(&obj, "honours").unwrap().unwrap().0.as_str(),
            Some("nn0greet")
        );
        let e = get_own("j/ana/2026-11", &doc, &id).unwrap();
        assert_eq!(e.honours.as_deref(), Some("nn0greet"));
        assert_eq!(read_own("j/ana/2026-11", &doc).unwrap(), vec![e.clone()]);
        // A reader that does not know a field (as an older cairn does not know `honours`)
        // reads the event all the same: every way of reading skips fields it does not know,
        // scalars and objects alike, and the event stays in the feed.
        doc.transact::<_, _, Error>(|tx| {
            tx.put(&obj, "later", "something new")?;
            let o = tx.put_object(&obj, "later_map", ObjType::Map)?;
            tx.put(&o, "x", 1)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(read_in_one_pass(&doc).unwrap(), vec![e.clone()]);
        assert_eq!(read_by_events(&doc).unwrap(), vec![e.clone()]);
        assert_eq!(read_event(&doc, &id, &obj).unwrap(), e);
        // Only an act honours something; an id no organisation could have is refused, and
        // one a faulty peer wrote reads as none.
        let r = NewEvent::reaction(id.clone(), "🎉").honouring(Some("nn0greet".into()));
        assert_eq!(r.validate(&team, "ben").unwrap().honours, None);
        let bad = NewEvent::action("x", None, None).honouring(Some("Not An Id".into()));
        assert!(matches!(
            bad.validate(&team, "ana"),
            Err(Error::Malformed(_))
        ));
        doc.transact::<_, _, Error>(|tx| {
            tx.put(&obj, "honours", "Not An Id")?;
            Ok(())
        })
        .unwrap();
        let read = read(&doc).unwrap();
        assert_eq!((read.len(), read[0].honours.as_ref()), (1, None));
    }

    #[test]
    fn a_date_far_from_the_instant_is_taken_from_the_instant() {
        let (mut doc, team) = setup();
        let at = 1_795_474_740_000; // 2026-11-23T22:59Z, 23:59 in Paris
        let mut s = stamp(at);
        s.tz = "Europe/Paris".into();
        s.date = "1970-01-01".into();
        let id = EventId::new(at, [3; 5]);
        add(
            &mut doc,
            &team,
            "ana",
            &id,
            &s,
            &NewEvent::action("x", None, None),
        )
        .unwrap();
        assert_eq!(get(&doc, &id).unwrap().unwrap().date, "2026-11-23");
        // A late log just after midnight, far west: two days before the UTC date is fine.
        let id = EventId::new(at + 1, [4; 5]);
        s.date = "2026-11-21".into();
        add(
            &mut doc,
            &team,
            "ana",
            &id,
            &s,
            &NewEvent::action("y", None, None),
        )
        .unwrap();
        assert_eq!(get(&doc, &id).unwrap().unwrap().date, "2026-11-21");
        // Another form of the same day reads as `YYYY-MM-DD`, which the replica's SQL reads too.
        let id = EventId::new(at + 2, [5; 5]);
        s.date = "20261121".into();
        add(
            &mut doc,
            &team,
            "ana",
            &id,
            &s,
            &NewEvent::action("z", None, None),
        )
        .unwrap();
        assert_eq!(get(&doc, &id).unwrap().unwrap().date, "2026-11-21");
    }

    #[test]
    fn events_round_trip() {
        let (mut doc, team) = setup();
        let id = EventId::new(5, [1; 5]);
        let new = NewEvent::kudos(
            vec!["ben".into()],
            " thanks for the review ",
            Some("Trust".into()),
        );
        add(&mut doc, &team, "ana", &id, &stamp(5), &new).unwrap();
        let e = get(&doc, &id).unwrap().unwrap();
        assert_eq!(e.kind, Kind::Kudos);
        assert_eq!(e.text, "thanks for the review");
        assert_eq!(e.pillar.as_deref(), Some("trust"));
        assert_eq!(e.to, ["ben"]);
        assert_eq!(read(&doc).unwrap(), vec![e]);
    }

    #[test]
    fn only_the_author_edits_or_retracts() {
        let (mut doc, team) = setup();
        let id = EventId::new(5, [1; 5]);
        add(
            &mut doc,
            &team,
            "ana",
            &id,
            &stamp(5),
            &NewEvent::action("x", None, None),
        )
        .unwrap();
        let heads = doc.get_heads();
        let e = Edit {
            text: Some("y".into()),
            ..Edit::default()
        };
        assert!(matches!(
            edit(&mut doc, &team, "ben", &id, &e, 6),
            Err(Error::NotYours(_))
        ));
        assert!(matches!(
            retract(&mut doc, "ben", &id, 6),
            Err(Error::NotYours(_))
        ));
        assert_eq!(doc.get_heads(), heads, "a refused change writes nothing");
        edit(&mut doc, &team, "ana", &id, &e, 6).unwrap();
        retract(&mut doc, "ana", &id, 7).unwrap();
        let got = get(&doc, &id).unwrap().unwrap();
        assert_eq!(got.text, "y");
        assert!(got.retracted);
        assert_eq!(
            got.edited_ms,
            Some(6),
            "edited when edited, not when retracted"
        );
        assert!(matches!(
            retract(&mut doc, "ana", &id, 8),
            Err(Error::Retracted(_))
        ));
    }

    #[test]
    fn a_retraction_is_no_edit() {
        let (mut doc, team) = setup();
        let id = EventId::new(5, [1; 5]);
        let old = EventId::new(6, [2; 5]);
        for id in [&id, &old] {
            let new = NewEvent::action("x", None, None);
            add(&mut doc, &team, "ana", id, &stamp(5), &new).unwrap();
        }
        retract(&mut doc, "ana", &id, 7).unwrap();
        // As an older cairn retracted: `edited` written in the same change, after `retracted`.
        let (_, obj) = doc.get(ROOT, old.as_str()).unwrap().unwrap();
        doc.transact::<_, _, Error>(|tx| {
            tx.put(&obj, "retracted", true)?;
            tx.put(&obj, "edited", 8)?;
            Ok(())
        })
        .unwrap();
        for e in [get(&doc, &id), get(&doc, &old)] {
            let e = e.unwrap().unwrap();
            assert!(e.retracted);
            assert_eq!(e.edited_ms, None, "{e:?}");
        }
        // Both ways of reading a journal agree.
        let all = read(&doc).unwrap();
        assert!(
            all.iter().all(|e| e.retracted && e.edited_ms.is_none()),
            "{all:?}"
        );
    }

    #[test]
    fn an_id_is_written_once() {
        let (mut doc, team) = setup();
        let id = EventId::new(5, [1; 5]);
        add(
            &mut doc,
            &team,
            "ana",
            &id,
            &stamp(5),
            &NewEvent::action("a", None, None),
        )
        .unwrap();
        let again = add(
            &mut doc,
            &team,
            "ana",
            &id,
            &stamp(6),
            &NewEvent::action("b", None, None),
        );
        assert!(matches!(again, Err(Error::EventExists(_))));
        assert_eq!(get(&doc, &id).unwrap().unwrap().text, "a");
    }

    #[test]
    fn invalid_events_write_nothing() {
        let (mut doc, team) = setup();
        let id = EventId::new(5, [1; 5]);
        assert!(
            add(
                &mut doc,
                &team,
                "ana",
                &id,
                &stamp(5),
                &NewEvent::action(" ", None, None)
            )
            .is_err()
        );
        assert!(doc.get_heads().is_empty());
    }

    /// One write a peer (faulty or not) makes into a journal.
    #[derive(Clone, Debug)]
    enum Write {
        /// A field of event `n` (or a junk key at the root) set to a scalar.
        Field(usize, &'static str, Scalar),
        /// Event `n`'s recipients as a list of these (strings or numbers).
        ToList(usize, Vec<Option<&'static str>>),
        /// Event `n`'s recipients as another kind of object, or a field as an object.
        Object(usize, &'static str, u8),
        /// Event `n` deleted, or its recipient `k` deleted.
        Delete(usize, Option<usize>),
    }

    #[derive(Clone, Debug)]
    enum Scalar {
        Str(&'static str),
        Int(i64),
        Bool(bool),
    }

    const KEYS: [&str; 15] = [
        "kind",
        "author",
        "at",
        "tz",
        "date",
        "late",
        "pillar",
        "text",
        "why",
        "target",
        "emoji",
        "retracted",
        "edited",
        "to",
        "other",
    ];
    const WORDS: [&str; 8] = [
        "action",
        "kudos",
        "reaction",
        "ana",
        "ben",
        "Europe/Paris",
        "2026-11-23",
        "20261123",
    ];

    fn write() -> impl proptest::strategy::Strategy<Value = Write> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            proptest::sample::select(&WORDS[..]).prop_map(Scalar::Str),
            (1_795_000_000_000i64..1_796_000_000_000).prop_map(Scalar::Int),
            any::<bool>().prop_map(Scalar::Bool),
        ];
        prop_oneof![
            6 => (0..6usize, proptest::sample::select(&KEYS[..]), scalar)
                .prop_map(|(n, k, v)| Write::Field(n, k, v)),
            2 => (0..6usize, proptest::collection::vec(
                    proptest::option::of(proptest::sample::select(&WORDS[..])), 0..4))
                .prop_map(|(n, l)| Write::ToList(n, l)),
            1 => (0..6usize, proptest::sample::select(&["to", "text", "other"][..]), 0..3u8)
                .prop_map(|(n, k, t)| Write::Object(n, k, t)),
            1 => (0..6usize, proptest::option::of(0..3usize))
                .prop_map(|(n, k)| Write::Delete(n, k)),
        ]
    }

    /// The key of event `n` (5: a key that is no event id).
    fn key(n: usize) -> String {
        if n == 5 {
            "not-an-event".into()
        } else {
            EventId::new(1_795_000_000_000 + n as i64, [n as u8; 5])
                .as_str()
                .to_owned()
        }
    }

    fn apply(doc: &mut Automerge, w: &Write) {
        use automerge::ScalarValue;
        let _ = doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            let n = match w {
                Write::Field(n, ..) | Write::ToList(n, _) | Write::Object(n, ..) => *n,
                Write::Delete(n, _) => *n,
            };
            let ev = match tx.get(ROOT, key(n))? {
                Some((automerge::Value::Object(ObjType::Map), o)) => o,
                _ if matches!(w, Write::Delete(..)) => return Ok(()),
                _ => tx.put_object(ROOT, key(n), ObjType::Map)?,
            };
            match w {
                Write::Field(_, k, v) => {
                    let v = match v {
                        Scalar::Str(s) => ScalarValue::Str((*s).into()),
                        Scalar::Int(i) => ScalarValue::Int(*i),
                        Scalar::Bool(b) => ScalarValue::Boolean(*b),
                    };
                    tx.put(&ev, *k, v)?;
                }
                Write::ToList(_, items) => {
                    let l = tx.put_object(&ev, "to", ObjType::List)?;
                    for (i, it) in items.iter().enumerate() {
                        match it {
                            Some(s) => tx.insert(&l, i, *s)?,
                            None => tx.insert(&l, i, i as i64)?,
                        }
                    }
                }
                Write::Object(_, k, t) => {
                    let kind = [ObjType::Map, ObjType::Text, ObjType::List][*t as usize];
                    let o = tx.put_object(&ev, *k, kind)?;
                    match kind {
                        ObjType::Map => tx.put(&o, "x", "ana")?,
                        ObjType::Text => tx.splice_text(&o, 0, 0, "ana")?,
                        _ => {
                            let inner = tx.insert_object(&o, 0, ObjType::Map)?;
                            tx.put(&inner, "x", "ben")?;
                        }
                    }
                }
                Write::Delete(_, None) => tx.delete(ROOT, key(n))?,
                Write::Delete(_, Some(k)) => {
                    if let Some((automerge::Value::Object(ObjType::List), l)) = tx.get(&ev, "to")?
                        && *k < tx.length(&l)
                    {
                        tx.delete(&l, *k)?;
                    }
                }
            }
            Ok(())
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Reading a whole journal in one pass gives what reading it event by event gives,
        /// whatever two peers wrote into it, concurrently or not.
        #[test]
        fn one_pass_reads_what_event_by_event_reads(
            shared in proptest::collection::vec(write(), 0..12),
            one in proptest::collection::vec(write(), 0..8),
            other in proptest::collection::vec(write(), 0..8),
        ) {
            let mut a = Automerge::new().with_actor(ActorId::from([1u8; 16]));
            // Well-formed events first, for the writes to bend.
            for n in 0..5 {
                let kind = if n % 2 == 0 { "action" } else { "kudos" };
                apply(&mut a, &Write::Field(n, "kind", Scalar::Str(kind)));
                apply(&mut a, &Write::Field(n, "author", Scalar::Str("ana")));
                apply(&mut a, &Write::Field(n, "at", Scalar::Int(1_795_000_000_000)));
                apply(&mut a, &Write::Field(n, "text", Scalar::Str("kudos")));
                if n % 2 == 1 {
                    apply(&mut a, &Write::ToList(n, vec![Some("ben"), None, Some("ana")]));
                }
            }
            let base = read_by_events(&a).unwrap();
            proptest::prop_assert_eq!(base.len(), 5);
            for w in &shared {
                apply(&mut a, w);
            }
            let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
            for w in &one {
                apply(&mut a, w);
            }
            for w in &other {
                apply(&mut b, w);
            }
            a.merge(&mut b).unwrap();
            let want = read_by_events(&a).unwrap();
            proptest::prop_assert_eq!(read_in_one_pass(&a).unwrap(), want);
        }
    }
}
