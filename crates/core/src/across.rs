//! Kudos across teams: recognitions a member of one team gives to people of other teams of the
//! same organisation.
//!
//! A member never writes into another team's documents. What they give across teams goes into
//! a journal of their own in the organisation's log, `x/<team>/<member>/<YYYY-MM>`
//! ([`crate::ids::across_doc`]), which every device of every team of the organisation reads.
//! Each team then shows, in its own feed, the kudos its members gave or received there
//! ([`Crossing::event_for`]); nothing else of one team reaches another.
//!
//! Layout: as in a journal, one map per recognition at the root, keyed by its [`EventId`]:
//! `from` (a map: `team`, `member`, `handle`, `team_name`), `to` (a list of such maps, 1 to
//! [`MAX_RECIPIENTS`]), `text`, `at`, `tz`, `date`, optionally `honours` (the id of the
//! organisation's non-negotiable it honours) and `retracted` (when its giver took it back). The
//! names are those at the time of giving, so every team reads the same words, whatever it knows
//! of the others.
//!
//! Anything else is read as nothing and listed in [`Crossings::ignored`]; [`check_change`] is
//! what the server (and any replica) asks of a change: the journal's owner gives, only to
//! people of the organisation, adds or retracts and never rewrites.
//!
//! ```
//! use automerge::{ActorId, Automerge};
//! use cairn_core::{across::{self, Person}, ids::{EventId, across_doc}, Stamp};
//!
//! let ana = Person::new("tdes", "m-ana", "ana", "Design");
//! let ben = Person::new("tpfm", "m-ben", "ben", "Platform");
//! let doc_id = across_doc("tdes", "m-ana", "2026-12");
//! let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
//! let stamp = Stamp { at_ms: 1_796_000_000_000, tz: "UTC".into(), date: "2026-12-01".into(), late: false };
//! let id = EventId::new(stamp.at_ms, [3; 5]);
//! let before = across::read(&doc_id, &doc).unwrap();
//! across::add(&mut doc, &doc_id, &ana, &[ben.clone()], &id, &stamp, "thanks for the on-call swap", None).unwrap();
//! let after = across::read(&doc_id, &doc).unwrap();
//! assert!(across::check_change(&doc_id, &before, &after, |_, _| true).is_ok());
//! let seen = after.items[0].event_for("tpfm").unwrap();
//! assert_eq!(seen.author, "@ana@design");
//! assert_eq!(seen.to, vec!["m-ben".to_owned()]);
//! ```

use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, Value, transaction::Transactable};
use serde::Serialize;

use crate::event::{Event, Kind, Stamp, check_text};
use crate::ids::{self, EventId};
use crate::org::{MAX_NAME_CHARS, valid};
use crate::{Error, MAX_TEXT_CHARS, Result};

/// The most people one recognition across teams names.
pub const MAX_RECIPIENTS: usize = 20;

/// Someone of a team of the organisation, as a recognition across teams names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Person {
    /// Their team's id.
    pub team: String,
    /// Their member id in that team.
    pub member: String,
    /// Their handle there, without `@`.
    pub handle: String,
    /// Their team's name.
    pub team_name: String,
}

impl Person {
    pub fn new(team: &str, member: &str, handle: &str, team_name: &str) -> Person {
        Person {
            team: team.to_owned(),
            member: member.to_owned(),
            handle: handle.to_owned(),
            team_name: team_name.to_owned(),
        }
    }

    /// How another team reads them: `@handle@team`, the team's name as a handle (`@ben@platform`).
    pub fn label(&self) -> String {
        let team = ids::handle_from_name(&self.team_name).unwrap_or_else(|| self.team.clone());
        format!("@{}@{team}", self.handle)
    }
}

/// One recognition across teams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Crossing {
    pub id: EventId,
    pub from: Person,
    pub to: Vec<Person>,
    pub text: String,
    /// The organisation's non-negotiable it honours, if its giver named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub honours: Option<String>,
    pub at_ms: i64,
    pub tz: String,
    /// The giver's local date.
    pub date: String,
    /// When its giver took it back, if they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retracted_ms: Option<i64>,
}

impl Crossing {
    /// Whether it names someone of `team`, or was given by one of them.
    pub fn touches(&self, team: &str) -> bool {
        self.from.team == team || self.to.iter().any(|p| p.team == team)
    }

    /// Whether it crosses teams at all (its giver's team is not the only one it names).
    pub fn crosses(&self) -> bool {
        self.to.iter().any(|p| p.team != self.from.team)
    }

    /// The recognition as team `team`'s feed shows it, `None` when it touches that team not: a
    /// kudos whose author is the member id when the giver is of `team` and their label
    /// (`@ana@design`) otherwise, and whose recipients are member ids for `team`'s people and
    /// labels for the others'. A label starts with `@`, which no member id does.
    pub fn event_for(&self, team: &str) -> Option<Event> {
        if !self.touches(team) {
            return None;
        }
        let name = |p: &Person| {
            if p.team == team {
                p.member.clone()
            } else {
                p.label()
            }
        };
        Some(Event {
            id: self.id.clone(),
            kind: Kind::Kudos,
            author: name(&self.from),
            at_ms: self.at_ms,
            tz: self.tz.clone(),
            date: self.date.clone(),
            late: false,
            pillar: None,
            text: self.text.clone(),
            why: None,
            to: self.to.iter().map(name).collect(),
            target: None,
            emoji: None,
            retracted: self.retracted_ms.is_some(),
            edited_ms: None,
            honours: self.honours.clone(),
        })
    }
}

/// A journal of kudos across teams, read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Crossings {
    /// Its recognitions by its owner, oldest first.
    pub items: Vec<Crossing>,
    /// Root keys read as nothing (outside the schema, malformed, or not by the journal's
    /// owner). Sorted.
    pub ignored: Vec<String>,
}

impl Crossings {
    pub fn get(&self, id: &EventId) -> Option<&Crossing> {
        self.items.iter().find(|c| &c.id == id)
    }
}

/// Why a change to a journal of kudos across teams is refused ([`check_change`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{0}` names no journal of kudos across teams")]
    NotAJournal(String),
    #[error("the change writes `{0}`, which is no recognition by the journal's owner")]
    Foreign(String),
    #[error("the change removes or rewrites the recognition `{0}`")]
    Rewritten(String),
    #[error("the recognition `{0}` names someone who is not of the organisation's teams")]
    Stranger(String),
    #[error(
        "the recognition `{0}` is not given across teams (its giver names only their own team)"
    )]
    NotAcross(String),
}

/// Checks a change to journal `doc_id` from the journal read before it and after it: it adds
/// only well-formed recognitions by the journal's owner (a key read as nothing that was not
/// there before is refused), each naming only people `known(team, member)` says belong to the
/// organisation's teams, at least one of them of another team than the giver's, never the
/// giver; it rewrites and removes none, and only marks one retracted.
pub fn check_change(
    doc_id: &str,
    before: &Crossings,
    after: &Crossings,
    known: impl Fn(&str, &str) -> bool,
) -> std::result::Result<(), Refusal> {
    if ids::across_owner(doc_id).is_none() {
        return Err(Refusal::NotAJournal(doc_id.chars().take(80).collect()));
    }
    if let Some(k) = after
        .ignored
        .iter()
        .find(|k| before.ignored.binary_search(k).is_err())
    {
        return Err(Refusal::Foreign(k.clone()));
    }
    for b in &before.items {
        let Some(a) = after.get(&b.id) else {
            return Err(Refusal::Rewritten(b.id.to_string()));
        };
        let same = Crossing {
            retracted_ms: b.retracted_ms,
            ..a.clone()
        };
        if &same != b || (b.retracted_ms.is_some() && a.retracted_ms != b.retracted_ms) {
            return Err(Refusal::Rewritten(b.id.to_string()));
        }
    }
    for a in after.items.iter().filter(|a| before.get(&a.id).is_none()) {
        if !a.crosses() {
            return Err(Refusal::NotAcross(a.id.to_string()));
        }
        if !known(&a.from.team, &a.from.member) || a.to.iter().any(|p| !known(&p.team, &p.member)) {
            return Err(Refusal::Stranger(a.id.to_string()));
        }
    }
    Ok(())
}

/// Gives a recognition across teams: writes it into `doc`, the journal `doc_id` of `from`.
/// Refuses an empty or too long text, no recipient or too many, the giver among them, a
/// recognition that names only the giver's own team, and one whose id is taken.
#[allow(clippy::too_many_arguments)]
pub fn add(
    doc: &mut Automerge,
    doc_id: &str,
    from: &Person,
    to: &[Person],
    id: &EventId,
    stamp: &Stamp,
    text: &str,
    honours: Option<&str>,
) -> Result<()> {
    if ids::across_owner(doc_id) != Some((from.team.as_str(), from.member.as_str())) {
        return Err(Error::Malformed(format!(
            "`{doc_id}` is not the journal across teams of {}",
            from.label()
        )));
    }
    let text = check_text(text, MAX_TEXT_CHARS)?;
    if to.is_empty() {
        return Err(Error::NoRecipients);
    }
    if to.len() > MAX_RECIPIENTS {
        return Err(Error::Malformed(format!(
            "a recognition names {MAX_RECIPIENTS} people at most"
        )));
    }
    if to
        .iter()
        .any(|p| p.team == from.team && p.member == from.member)
    {
        return Err(Error::SelfKudos);
    }
    if to.iter().all(|p| p.team == from.team) {
        return Err(Error::Malformed(
            "nobody named is of another team: thank teammates with a plain `cairn kudos`".into(),
        ));
    }
    for p in std::iter::once(from).chain(to) {
        check_text(&p.handle, MAX_NAME_CHARS)?;
        check_text(&p.team_name, MAX_NAME_CHARS)?;
    }
    if doc.get(ROOT, id.as_str())?.is_some() {
        return Err(Error::EventExists(id.short().to_owned()));
    }
    doc.transact::<_, _, Error>(|tx| {
        let o = tx.put_object(ROOT, id.as_str(), ObjType::Map)?;
        let person = |tx: &mut automerge::transaction::Transaction<'_>,
                      obj: ObjId,
                      p: &Person|
         -> Result<()> {
            tx.put(&obj, "team", p.team.as_str())?;
            tx.put(&obj, "member", p.member.as_str())?;
            tx.put(&obj, "handle", p.handle.as_str())?;
            tx.put(&obj, "team_name", p.team_name.as_str())?;
            Ok(())
        };
        let f = tx.put_object(&o, "from", ObjType::Map)?;
        person(tx, f, from)?;
        let list = tx.put_object(&o, "to", ObjType::List)?;
        for (i, p) in to.iter().enumerate() {
            let m = tx.insert_object(&list, i, ObjType::Map)?;
            person(tx, m, p)?;
        }
        tx.put(&o, "text", text.as_str())?;
        tx.put(&o, "at", stamp.at_ms)?;
        tx.put(&o, "tz", stamp.tz.as_str())?;
        tx.put(&o, "date", stamp.date.as_str())?;
        if let Some(h) = honours {
            tx.put(&o, "honours", h)?;
        }
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Takes back recognition `id` of the journal: it stays, marked, and every feed drops it.
pub fn retract(doc: &mut Automerge, id: &EventId, at_ms: i64) -> Result<()> {
    let Some((Value::Object(ObjType::Map), obj)) = doc.get(ROOT, id.as_str())? else {
        return Err(Error::NoSuchEvent(id.short().to_owned()));
    };
    if doc.get(&obj, "retracted")?.is_some() {
        return Err(Error::Retracted(id.short().to_owned()));
    }
    doc.transact::<_, _, Error>(|tx| {
        tx.put(&obj, "retracted", at_ms)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Reads journal `doc_id`: the recognitions by its owner (an entry naming another giver is read
/// as nothing), oldest first.
pub fn read<D: ReadDoc>(doc_id: &str, doc: &D) -> Result<Crossings> {
    let owner = ids::across_owner(doc_id);
    let mut out = Crossings::default();
    for key in doc.keys(ROOT) {
        let item = match (
            EventId::parse(&key),
            doc.get(ROOT, key.as_str()).ok().flatten(),
        ) {
            (Some(id), Some((Value::Object(ObjType::Map), obj))) => read_one(doc, id, &obj)
                .filter(|c| owner == Some((c.from.team.as_str(), c.from.member.as_str()))),
            _ => None,
        };
        match item {
            Some(c) => out.items.push(c),
            None => out.ignored.push(key),
        }
    }
    out.items.sort_by(|a, b| a.id.cmp(&b.id));
    out.ignored.sort();
    Ok(out)
}

fn read_one<D: ReadDoc>(doc: &D, id: EventId, obj: &ObjId) -> Option<Crossing> {
    const KEYS: [&str; 8] = [
        "from",
        "to",
        "text",
        "at",
        "tz",
        "date",
        "honours",
        "retracted",
    ];
    if doc.keys(obj).any(|k| !KEYS.contains(&k.as_str())) {
        return None;
    }
    let text = |k: &str| match doc.get(obj, k).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    };
    let from = match doc.get(obj, "from").ok()?? {
        (Value::Object(ObjType::Map), o) => read_person(doc, &o)?,
        _ => return None,
    };
    let list = match doc.get(obj, "to").ok()?? {
        (Value::Object(ObjType::List), o) => o,
        _ => return None,
    };
    let n = doc.length(&list);
    if n == 0 || n > MAX_RECIPIENTS {
        return None;
    }
    let mut to = Vec::with_capacity(n);
    for i in 0..n {
        match doc.get(&list, i).ok()?? {
            (Value::Object(ObjType::Map), o) => to.push(read_person(doc, &o)?),
            _ => return None,
        }
    }
    let body = valid(text("text"), MAX_TEXT_CHARS, false)?;
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return None;
    }
    let at_ms = doc.get(obj, "at").ok()??.0.as_i64()?;
    let tz = valid(text("tz"), 64, true)?;
    let date = text("date").filter(|d| jiff::civil::Date::strptime("%Y-%m-%d", d).is_ok())?;
    let honours = match doc.get(obj, "honours").ok()? {
        None => None,
        Some(_) => Some(text("honours").filter(|h| ids::is_id_text(h) && h.len() <= 32)?),
    };
    let retracted_ms = match doc.get(obj, "retracted").ok()? {
        None => None,
        Some((v, _)) => Some(v.as_i64()?),
    };
    Some(Crossing {
        id,
        from,
        to,
        text: body,
        honours,
        at_ms,
        tz,
        date,
        retracted_ms,
    })
}

fn read_person<D: ReadDoc>(doc: &D, obj: &ObjId) -> Option<Person> {
    if doc.length(obj) != 4 {
        return None;
    }
    let text = |k: &str| match doc.get(obj, k).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    };
    let team = text("team").filter(|t| ids::is_id_text(t) && t.len() <= 64)?;
    let member = text("member").filter(|m| {
        !m.is_empty()
            && m.len() <= 64
            && m.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })?;
    let clean = |t: String| (!t.chars().any(char::is_control)).then_some(t);
    let handle = valid(text("handle"), MAX_NAME_CHARS, true).and_then(clean)?;
    let team_name = valid(text("team_name"), MAX_NAME_CHARS, true).and_then(clean)?;
    Some(Person {
        team,
        member,
        handle,
        team_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ActorId;

    fn people() -> (Person, Person, Person) {
        (
            Person::new("tdes", "m-ana", "ana", "Design"),
            Person::new("tpfm", "m-ben", "ben", "Platform"),
            Person::new("tdes", "m-cy", "cy", "Design"),
        )
    }

    fn stamp(at_ms: i64) -> Stamp {
        Stamp {
            at_ms,
            tz: "UTC".into(),
            date: "2026-12-01".into(),
            late: false,
        }
    }

    const DOC: &str = "x/tdes/m-ana/2026-12";

    fn given() -> (Automerge, Crossings, EventId) {
        let (ana, ben, cy) = people();
        let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        let id = EventId::new(1_000, [1; 5]);
        add(
            &mut doc,
            DOC,
            &ana,
            &[ben, cy],
            &id,
            &stamp(1_000),
            "thanks",
            Some("abc"),
        )
        .unwrap();
        let read = read(DOC, &doc).unwrap();
        (doc, read, id)
    }

    #[test]
    fn each_team_reads_its_own_people_by_id_and_the_others_by_label() {
        let (_, read, _) = given();
        let c = &read.items[0];
        assert!(read.ignored.is_empty());
        let design = c.event_for("tdes").unwrap();
        assert_eq!(design.author, "m-ana");
        assert_eq!(design.to, vec!["@ben@platform", "m-cy"]);
        let platform = c.event_for("tpfm").unwrap();
        assert_eq!(platform.author, "@ana@design");
        assert_eq!(platform.to, vec!["m-ben", "@cy@design"]);
        assert!(c.event_for("tzzz").is_none());
        assert!(design.counts());
    }

    #[test]
    fn what_a_change_may_do() {
        let (mut doc, read1, id) = given();
        let empty = Crossings::default();
        assert!(check_change(DOC, &empty, &read1, |_, _| true).is_ok());
        assert_eq!(
            check_change(DOC, &empty, &read1, |_, m| m != "m-ben"),
            Err(Refusal::Stranger(id.to_string()))
        );
        assert!(check_change("team", &empty, &read1, |_, _| true).is_err());
        // A retraction is a mark, kept.
        retract(&mut doc, &id, 2_000).unwrap();
        let read2 = read(DOC, &doc).unwrap();
        assert!(check_change(DOC, &read1, &read2, |_, _| true).is_ok());
        assert!(check_change(DOC, &read2, &read1, |_, _| true).is_err());
        // A rewritten text is refused.
        let (_, obj) = doc.get(ROOT, id.as_str()).unwrap().unwrap();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(&obj, "text", "other"))
            .unwrap();
        let read3 = read(DOC, &doc).unwrap();
        assert_eq!(
            check_change(DOC, &read2, &read3, |_, _| true),
            Err(Refusal::Rewritten(id.to_string()))
        );
        // A key outside the schema is refused.
        doc.transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "junk", 1))
            .unwrap();
        let read4 = read(DOC, &doc).unwrap();
        assert_eq!(
            check_change(DOC, &read3, &read4, |_, _| true),
            Err(Refusal::Foreign("junk".into()))
        );
    }

    #[test]
    fn another_givers_entry_in_the_journal_reads_as_nothing() {
        let (ana, ben, _) = people();
        let mut doc = Automerge::new().with_actor(ActorId::from([2u8; 16]));
        let id = EventId::new(1_000, [2; 5]);
        // Ben's recognition, written into Ana's journal by hand.
        let ben_doc = "x/tpfm/m-ben/2026-12";
        add(
            &mut doc,
            ben_doc,
            &ben,
            &[ana],
            &id,
            &stamp(1_000),
            "hi",
            None,
        )
        .unwrap();
        let read = read(DOC, &doc).unwrap();
        assert!(read.items.is_empty());
        assert_eq!(read.ignored, vec![id.to_string()]);
    }

    #[test]
    fn a_recognition_that_crosses_nothing_or_names_its_giver_is_refused() {
        let (ana, _, cy) = people();
        let mut doc = Automerge::new();
        let id = EventId::new(1_000, [3; 5]);
        assert!(add(&mut doc, DOC, &ana, &[cy], &id, &stamp(1), "x", None).is_err());
        assert!(
            add(
                &mut doc,
                DOC,
                &ana,
                std::slice::from_ref(&ana),
                &id,
                &stamp(1),
                "x",
                None
            )
            .is_err()
        );
        assert!(add(&mut doc, DOC, &ana, &[], &id, &stamp(1), "x", None).is_err());
        let (_, ben, _) = people();
        assert!(
            add(
                &mut doc,
                "x/tpfm/m-ben/2026-12",
                &ana,
                &[ben],
                &id,
                &stamp(1),
                "x",
                None
            )
            .is_err()
        );
    }
}
