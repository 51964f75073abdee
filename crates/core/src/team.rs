//! The team document: name, time zone, pillars, commitments and members.
//!
//! Every collection lives at the root under a key prefix (`pillar/<id>/name`, `member/<id>`, ...)
//! rather than in a nested map created once: two replicas that each created the same nested map
//! would conflict and one side's entries would vanish from view. Members and commitments have
//! random ids, so each gets a map of its own; a pillar's id comes from its name, which two people
//! may pick at once, so its fields are root scalars that merge one by one.

use automerge::{ObjType, ROOT, ReadDoc, transaction::Transactable};
use serde::Serialize;

use crate::event::{check_text, one_line};
use crate::rules::{Cadence, Quorum, Rules, format_rest_days};
use crate::value::{children, get_bool, get_i64, get_str, req_str};
use crate::{Error, Result, ids};

/// The schema version written into new team documents.
pub const SCHEMA: i64 = 1;
/// The pillars a new team starts with.
pub const DEFAULT_PILLARS: [(&str, &str); 3] = [
    ("trust", "we keep our word and assume good intent"),
    (
        "empowerment",
        "we hand over ownership and back each other up",
    ),
    (
        "professionalism",
        "we do the small things well, even unasked",
    ),
];
const MAX_NAME_CHARS: usize = 80;

/// A value the team cares about; every event may name one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pillar {
    pub id: String,
    pub name: String,
    pub about: Option<String>,
}

/// One of the team's non-negotiables, with its why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Commitment {
    pub id: String,
    pub text: String,
    pub why: String,
    pub by: String,
    pub at_ms: i64,
}

/// A member of the team.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub handle: String,
    pub joined_ms: i64,
    /// When they left the team (or were removed): their history stays, attributed to them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_ms: Option<i64>,
    /// The member this one turned out to be (a placeholder and the person who joined): their
    /// kudos and mentions count for that member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// Added by a teammate before they joined (`cairn team member add`): they count in the
    /// team's figures only from when they arrive or first act. Documents from before this field
    /// have none: their members all count, as they did.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub placeholder: bool,
    /// When a placeholder arrived: a device of theirs joined (an invite made for them) and synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrived_ms: Option<i64>,
    /// Whether they may be named in chat, as they set it themselves ([`set_named_in_chat`]);
    /// `None` when they never did (and in documents from before this field): named, as
    /// everyone was. Read it through [`TeamState::named_in_chat`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<bool>,
}

impl Member {
    /// When the team document says they count from: a member who joined, from then; a
    /// placeholder, from when they arrived (`None` until then: their first act may still start
    /// their time on the team).
    pub fn arrived(&self) -> Option<i64> {
        if self.placeholder {
            self.arrived_ms
        } else {
            Some(self.joined_ms)
        }
    }
}

/// A member's time on the team, for the team streak's quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenure {
    pub id: String,
    /// The local date they joined (or arrived, for a placeholder); `None` for a placeholder who
    /// has not arrived: they count from their first activity, if any.
    pub joined: Option<jiff::civil::Date>,
    /// The local date they left; they count in the quorum up to that date's period.
    pub left: Option<jiff::civil::Date>,
}

/// The team document read into plain values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TeamState {
    pub name: String,
    pub tz: String,
    pub pillars: Vec<Pillar>,
    pub commitments: Vec<Commitment>,
    /// The members today: they count in quorums, reach, nudges and new badges.
    pub members: Vec<Member>,
    /// Members who left, and placeholders merged into the member they stood for: their history
    /// is still theirs (or the merged member's) to read.
    pub former: Vec<Member>,
    /// The streak rules (`rule/<field>` root scalars, so two members' edits merge field by field).
    pub rules: Rules,
    /// The team's challenges, oldest first.
    pub challenges: Vec<crate::goals::Challenge>,
}

impl TeamState {
    /// The member with this handle (with or without the leading `@`).
    /// Two members who picked the same handle offline are ambiguous until one changes it.
    ///
    /// A handle matches as typed, or regardless of case and accents (`@Chloé` finds `@chloe`),
    /// or as the handle the member's name reads as (a handle made before names were read:
    /// `@chloe-martin` finds Chloé Martin whose handle is `@chlo-martin`). An unknown handle
    /// comes with the handles it is close to.
    ///
    /// The handle of a placeholder merged into a member finds that member; the handle of a member
    /// who left is refused with [`Error::MemberLeft`].
    pub fn member_by_handle(&self, handle: &str) -> Result<&Member> {
        let typed = handle.trim().trim_start_matches('@');
        let exact = typed.to_lowercase();
        let key = ids::handle_key(typed);
        let tiers: [&dyn Fn(&Member) -> bool; 3] = [
            &|m| m.handle == exact,
            &|m| ids::handle_key(&m.handle) == key,
            &|m| ids::handle_from_name(&m.name).is_some_and(|h| h == key),
        ];
        for matches in tiers {
            let mut found = self.members.iter().filter(|m| matches(m));
            match (found.next(), found.next()) {
                (Some(m), None) => return Ok(m),
                (Some(_), Some(_)) => return Err(Error::AmbiguousHandle(exact.clone())),
                (None, _) => {}
            }
        }
        let former: Vec<&Member> = self.former.iter().filter(|m| m.handle == exact).collect();
        if let Some(now) = former
            .iter()
            .filter_map(|m| self.member(&m.id))
            .find(|now| now.left_ms.is_none() && now.merged_into.is_none())
        {
            return Ok(now);
        }
        if !former.is_empty() {
            return Err(Error::MemberLeft(exact));
        }
        Err(Error::UnknownHandle {
            handle: exact.clone(),
            near: self.near_handles(&key),
        })
    }

    /// Up to three handles close to `key`: starting with it, holding it, or with a name that
    /// does.
    fn near_handles(&self, key: &str) -> Vec<String> {
        if key.len() < 2 {
            return Vec::new();
        }
        let mut near: Vec<String> = self
            .members
            .iter()
            .filter(|m| {
                let name = ids::handle_from_name(&m.name).unwrap_or_default();
                m.handle.contains(key) || name.contains(key) || key.contains(m.handle.as_str())
            })
            .map(|m| m.handle.clone())
            .collect();
        near.sort_by_key(|h| (!h.starts_with(key), h.len(), h.clone()));
        near.dedup();
        near.truncate(3);
        near
    }

    /// A member named by handle or, for two members who share a handle, by id.
    pub fn member_by_handle_or_id(&self, text: &str) -> Result<&Member> {
        let t = text.trim().trim_start_matches('@');
        if let Some(m) = self.members.iter().chain(&self.former).find(|m| m.id == t) {
            return Ok(m);
        }
        self.member_by_handle(text)
    }

    fn local_date(&self, ms: i64) -> jiff::civil::Date {
        crate::time::local_date(ms, &self.tz)
            .or_else(|| crate::time::local_date(ms, "UTC"))
            .unwrap_or_default()
    }

    /// The members who count in the team's figures (reach, nudges, badges, the digest), each
    /// with the local date (in the team's zone) they count from, in the order of
    /// [`TeamState::members`]. A member who joined counts from then; a placeholder from when
    /// they arrived or first acted in `acts` (every act of the team), whichever came first, and
    /// not at all before either.
    pub fn joined_dates(&self, acts: &[crate::goals::Act]) -> Vec<(String, jiff::civil::Date)> {
        // Placeholders' first acts; acts come in the order they were written, not by date (a
        // late log), so every one is read.
        let mut first: std::collections::HashMap<&str, Option<jiff::civil::Date>> = self
            .members
            .iter()
            .filter(|m| m.placeholder)
            .map(|m| (m.id.as_str(), None))
            .collect();
        if !first.is_empty() {
            for a in acts {
                if let Some(d) = first.get_mut(a.author.as_str()) {
                    *d = Some(d.map_or(a.date, |d| d.min(a.date)));
                }
            }
        }
        self.members
            .iter()
            .filter_map(|m| {
                let arrived = m.arrived().map(|ms| self.local_date(ms));
                let acted = first.get(m.id.as_str()).copied().flatten();
                let from = match (arrived, acted) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b)?,
                };
                Some((m.id.clone(), from))
            })
            .collect()
    }

    /// The ids of the members who count in the team's figures: [`TeamState::joined_dates`]
    /// without the dates.
    pub fn counted(&self, acts: &[crate::goals::Act]) -> Vec<String> {
        self.joined_dates(acts)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// Everyone who has been on the team (placeholders merged away aside), with when they
    /// joined (or arrived) and left: what the team streak's quorum counts, period by period.
    pub fn tenures(&self) -> Vec<Tenure> {
        self.members
            .iter()
            .chain(self.former.iter().filter(|m| m.merged_into.is_none()))
            .map(|m| Tenure {
                id: m.id.clone(),
                joined: m.arrived().map(|ms| self.local_date(ms)),
                left: m.left_ms.map(|ms| self.local_date(ms)),
            })
            .collect()
    }

    /// Whether member `id` may be named in chat: what a relay asks before it posts a recognition
    /// from or to them one by one (when it says no, the recognition is only counted, in the
    /// digest). Yes unless they turned it off themselves ([`set_named_in_chat`]). A person
    /// who is several members merged into one (a placeholder and the member who joined, merged
    /// either way round) is named only while none of those members says no: each writes their
    /// setting under the member id of their own devices. A member this team document does not
    /// hold (yet) is not named: nobody can say they agreed.
    pub fn named_in_chat(&self, id: &str) -> bool {
        let Some(person) = self.member(id) else {
            return false;
        };
        self.members
            .iter()
            .chain(&self.former)
            .filter(|m| m.id == person.id || self.canonical(&m.id) == person.id)
            .all(|m| m.chat != Some(false))
    }

    /// The member with this id; a placeholder merged away gives the member it became.
    pub fn member(&self, id: &str) -> Option<&Member> {
        let id = self.canonical(id);
        self.members.iter().chain(&self.former).find(|m| m.id == id)
    }

    /// The id that `id` counts under: itself, or the member a placeholder was merged into.
    pub fn canonical<'a>(&'a self, id: &'a str) -> &'a str {
        let mut now = id;
        // Merges chain rarely; a cycle (two merges made at once, each the other way) is broken
        // by `place_members`, which leaves one of them unmerged.
        for _ in 0..8 {
            match self
                .former
                .iter()
                .find(|m| m.id == now)
                .and_then(|m| m.merged_into.as_deref())
            {
                Some(next) => now = next,
                None => return now,
            }
        }
        now
    }

    /// Sorts `all` members into [`TeamState::members`] and [`TeamState::former`]. Merges that
    /// loop (A into B here, B into A there) keep the member with the smallest id, so every
    /// replica picks the same one.
    pub fn place_members(&mut self, mut all: Vec<Member>) {
        let target: std::collections::HashMap<String, String> = all
            .iter()
            .filter_map(|m| Some((m.id.clone(), m.merged_into.clone()?)))
            .collect();
        let mut unmerge = Vec::new();
        for start in target.keys() {
            let mut seen = vec![start.as_str()];
            let mut now = start.as_str();
            while let Some(next) = target.get(now) {
                if let Some(at) = seen.iter().position(|s| *s == next) {
                    // A cycle: the smallest id in it stays a member.
                    if let Some(keep) = seen[at..].iter().min() {
                        unmerge.push((*keep).to_owned());
                    }
                    break;
                }
                seen.push(next);
                now = next;
            }
        }
        // A merge into nobody known here is ignored until that member arrives.
        let known: std::collections::HashSet<String> = all.iter().map(|m| m.id.clone()).collect();
        for m in &mut all {
            if unmerge.contains(&m.id) || m.merged_into.as_ref().is_some_and(|t| !known.contains(t))
            {
                m.merged_into = None;
            }
        }
        let (members, former): (Vec<Member>, Vec<Member>) = all
            .into_iter()
            .partition(|m| m.left_ms.is_none() && m.merged_into.is_none());
        self.members = members;
        self.former = former;
        self.members
            .sort_by(|a, b| (&a.handle, &a.id).cmp(&(&b.handle, &b.id)));
        self.former
            .sort_by(|a, b| (&a.handle, &a.id).cmp(&(&b.handle, &b.id)));
    }

    /// The handle of member `id`, or the id itself when the member is not known (yet).
    pub fn handle_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.member(id).map_or(id, |m| m.handle.as_str())
    }

    /// The pillar named by `name` (its id or its name, case-insensitive).
    pub fn pillar(&self, name: &str) -> Result<&Pillar> {
        let wanted = ids::pillar_id(name);
        self.pillars
            .iter()
            .find(|p| {
                (!wanted.is_empty() && p.id == wanted) || p.name.eq_ignore_ascii_case(name.trim())
            })
            .ok_or_else(|| Error::UnknownPillar {
                name: name.trim().to_owned(),
                near: self.near_pillars(name),
            })
    }

    /// Up to three pillar names close to `typed`: holding it or held by it, or a slip of the
    /// keyboard away (a letter wrong, missing, added, or two swapped).
    fn near_pillars(&self, typed: &str) -> Vec<String> {
        let key = ids::pillar_id(typed);
        if key.chars().count() < 2 {
            return Vec::new();
        }
        let mut near: Vec<(usize, &Pillar)> = self
            .pillars
            .iter()
            .filter_map(|p| {
                let slips = ids::typo_distance(&key, &p.id);
                let close = slips <= if key.chars().count() <= 4 { 1 } else { 2 };
                (close || p.id.contains(&key) || key.contains(p.id.as_str())).then_some((slips, p))
            })
            .collect();
        near.sort_by_key(|(slips, p)| (*slips, p.name.len()));
        near.into_iter()
            .take(3)
            .map(|(_, p)| p.name.clone())
            .collect()
    }
}

fn check_name(name: &str) -> Result<String> {
    check_text(name, MAX_NAME_CHARS)
}

/// Writes a new team into an empty document, with its first member; returns that member's id.
#[allow(clippy::too_many_arguments)]
pub fn init(
    doc: &mut automerge::Automerge,
    team_name: &str,
    tz: &str,
    member_name: &str,
    handle: &str,
    member_id: &str,
    at_ms: i64,
) -> Result<String> {
    let team_name = check_name(team_name)?;
    let member_name = check_name(member_name)?;
    if !ids::is_valid_handle(handle) {
        return Err(Error::BadHandle(handle.to_owned()));
    }
    doc.transact::<_, _, Error>(|tx| {
        tx.put(ROOT, "schema", SCHEMA)?;
        tx.put(ROOT, "name", team_name.as_str())?;
        tx.put(ROOT, "tz", tz)?;
        for (id, about) in DEFAULT_PILLARS {
            put_pillar(tx, id, id, Some(about), at_ms)?;
        }
        put_member(tx, member_id, &member_name, handle, at_ms, false)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(member_id.to_owned())
}

fn put_pillar(
    tx: &mut impl Transactable,
    id: &str,
    name: &str,
    about: Option<&str>,
    at_ms: i64,
) -> Result<()> {
    tx.put(ROOT, format!("pillar/{id}/name"), name)?;
    if let Some(a) = about {
        tx.put(ROOT, format!("pillar/{id}/about"), a)?;
    }
    tx.put(ROOT, format!("pillar/{id}/at"), at_ms)?;
    Ok(())
}

fn put_member(
    tx: &mut impl Transactable,
    id: &str,
    name: &str,
    handle: &str,
    at_ms: i64,
    placeholder: bool,
) -> Result<()> {
    let m = tx.put_object(ROOT, format!("member/{id}"), ObjType::Map)?;
    tx.put(&m, "name", name)?;
    tx.put(&m, "handle", handle)?;
    tx.put(&m, "joined", at_ms)?;
    if placeholder {
        tx.put(&m, "placeholder", true)?;
    }
    Ok(())
}

/// Adds a member who joins by themselves (a device of theirs joined with a general invite);
/// returns their handle. They count in the team's figures from now on.
pub fn add_member(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    member_id: &str,
    name: &str,
    handle: Option<&str>,
    at_ms: i64,
) -> Result<String> {
    put_new_member(doc, state, member_id, name, handle, at_ms, false)
}

/// Adds a placeholder: a teammate named by someone else before they joined; returns their
/// handle. They can be thanked and named at once, but count in the team's figures (quorum,
/// reach, nudges, badges, the digest) only from when they arrive ([`arrive`]) or first act.
pub fn add_placeholder(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    member_id: &str,
    name: &str,
    handle: Option<&str>,
    at_ms: i64,
) -> Result<String> {
    put_new_member(doc, state, member_id, name, handle, at_ms, true)
}

fn put_new_member(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    member_id: &str,
    name: &str,
    handle: Option<&str>,
    at_ms: i64,
    placeholder: bool,
) -> Result<String> {
    let name = check_name(name)?;
    let handle = match handle {
        Some(h) => {
            let h = h.trim().trim_start_matches('@').to_owned();
            if !ids::is_valid_handle(&h) {
                return Err(Error::BadHandle(h));
            }
            h
        }
        None => ids::handle_from_name(&name).ok_or_else(|| Error::BadHandle(name.clone()))?,
    };
    if state.members.iter().any(|m| m.handle == handle) {
        return Err(Error::HandleTaken(handle));
    }
    doc.transact::<_, _, Error>(|tx| put_member(tx, member_id, &name, &handle, at_ms, placeholder))
        .map_err(|f| f.error)?;
    Ok(handle)
}

/// Placeholder `id` has arrived: a device of theirs joined and synced. Returns whether that was
/// news (a member who joined by themselves, or a placeholder already arrived, is left as is).
/// Two devices arriving at once keep one of the two instants, the same on every replica.
pub fn arrive(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    id: &str,
    at_ms: i64,
) -> Result<bool> {
    let Some(m) = state.members.iter().find(|m| m.id == id) else {
        return Ok(false);
    };
    if !m.placeholder || m.arrived_ms.is_some() {
        return Ok(false);
    }
    let missing = Error::UnknownMember(id.to_owned());
    change_map(doc, &format!("member/{id}"), missing, |tx, obj| {
        tx.put(obj, "arrived", at_ms)?;
        Ok(())
    })?;
    Ok(true)
}

/// The field of a member's map that holds whether they may be named in chat.
pub const CHAT_FIELD: &str = "chat";

/// Says whether member `id` may be named in chat (a relay's post of a recognition from or to
/// them); returns whether that changed what the document said. A member's own setting: only
/// their own devices write it (the server refuses it from anyone else's, see
/// [`chat_settings_written`]). Written even when it reads the same already, so the last word of
/// each device counts; two devices that set it at once keep one value, the same everywhere, and
/// it merges apart from every other field of the member.
pub fn set_named_in_chat(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    id: &str,
    named: bool,
) -> Result<bool> {
    // A member merged into another (either way round) keeps their own map: their devices
    // still write as them.
    let Some(m) = state
        .members
        .iter()
        .chain(&state.former)
        .find(|m| m.id == id)
    else {
        return Err(Error::UnknownMember(id.to_owned()));
    };
    let news = m.chat.unwrap_or(true) != named;
    let missing = Error::UnknownMember(id.to_owned());
    change_map(doc, &format!("member/{id}"), missing, |tx, obj| {
        tx.put(obj, CHAT_FIELD, named)?;
        Ok(())
    })?;
    Ok(news)
}

/// The members whose chat setting `change` would write, applied to `doc` (the team document as
/// it stands before it): a put or a deletion of the field in any map that ever stood at their
/// `member/<id>` key and still shows there (conflicting values included), or in one the change
/// itself makes there, and a replacement or deletion of their whole entry while it holds the
/// setting. What a server asks to keep each member's setting their own. A change that does not
/// decode writes nobody's (applying it fails anyway).
pub fn chat_settings_written(
    doc: &automerge::Automerge,
    change: &automerge::Change,
) -> Vec<String> {
    use automerge::legacy::{Key, ObjectId, OpType};
    let Ok(expanded) = crate::change::quietly(|| change.decode()) else {
        return Vec::new();
    };
    // Most changes to the team document touch no member's setting: nothing more to read.
    let touches = expanded
        .operations
        .iter()
        .any(|op| match (&op.obj, &op.key) {
            (ObjectId::Root, Key::Map(k)) => k.starts_with("member/"),
            (ObjectId::Id(_), Key::Map(k)) => k.as_str() == CHAT_FIELD,
            _ => false,
        });
    if !touches {
        return Vec::new();
    }
    // The member maps as the document holds them: (counter, actor) -> member id.
    let mut maps: std::collections::HashMap<(u64, automerge::ActorId), String> =
        std::collections::HashMap::new();
    let mut holds_setting = std::collections::HashSet::new();
    for key in doc.keys(ROOT) {
        let Some(id) = key.strip_prefix("member/") else {
            continue;
        };
        for (value, obj) in doc.get_all(ROOT, key.as_str()).unwrap_or_default() {
            if let (automerge::Value::Object(_), automerge::ObjId::Id(counter, actor, _)) =
                (&value, &obj)
            {
                maps.insert((*counter, actor.clone()), id.to_owned());
                if doc.get(&obj, CHAT_FIELD).ok().flatten().is_some() {
                    holds_setting.insert(id.to_owned());
                }
            }
        }
    }
    let start = expanded.start_op.get();
    let mut written: Vec<String> = Vec::new();
    let mut note = |id: &str| {
        if !written.iter().any(|w| w == id) {
            written.push(id.to_owned());
        }
    };
    for (i, op) in expanded.operations.iter().enumerate() {
        match (&op.obj, &op.key) {
            (ObjectId::Root, Key::Map(k)) => {
                let Some(id) = k.strip_prefix("member/") else {
                    continue;
                };
                if matches!(op.action, OpType::Make(_)) {
                    maps.insert((start + i as u64, expanded.actor_id.clone()), id.to_owned());
                }
                if holds_setting.contains(id) {
                    note(id);
                }
            }
            (ObjectId::Id(obj), Key::Map(k)) if k.as_str() == CHAT_FIELD => {
                if let Some(id) = maps.get(&(obj.0, obj.1.clone())) {
                    note(id);
                }
            }
            _ => {}
        }
    }
    written
}

/// Renames member `id`: a new name, a new handle, or both. Each field merges on its own, so a
/// rename made on two devices at once keeps one name and one handle, the same everywhere.
pub fn rename_member(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    id: &str,
    name: Option<&str>,
    handle: Option<&str>,
) -> Result<()> {
    let name = name.map(check_name).transpose()?;
    let handle = match handle {
        Some(h) => {
            let h = h.trim().trim_start_matches('@').to_lowercase();
            if !ids::is_valid_handle(&h) {
                return Err(Error::BadHandle(h));
            }
            if state.members.iter().any(|m| m.handle == h && m.id != id) {
                return Err(Error::HandleTaken(h));
            }
            Some(h)
        }
        None => None,
    };
    if name.is_none() && handle.is_none() {
        return Err(Error::NothingToEdit);
    }
    let missing = Error::UnknownMember(id.to_owned());
    change_map(doc, &format!("member/{id}"), missing, |tx, obj| {
        if let Some(n) = &name {
            tx.put(obj, "name", n.as_str())?;
        }
        if let Some(h) = &handle {
            tx.put(obj, "handle", h.as_str())?;
        }
        Ok(())
    })
}

/// Member `id` leaves the team (or is removed): they stop counting in quorums, reach, nudges
/// and new badges from the next period; what they logged and received stays theirs.
pub fn remove_member(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    id: &str,
    at_ms: i64,
) -> Result<()> {
    if !state.members.iter().any(|m| m.id == id) {
        return Err(Error::UnknownMember(id.to_owned()));
    }
    let missing = Error::UnknownMember(id.to_owned());
    change_map(doc, &format!("member/{id}"), missing, |tx, obj| {
        tx.put(obj, "left", at_ms)?;
        Ok(())
    })
}

/// Merges member `from` (a placeholder added before the person joined) into `into` (who they
/// are): everything that named `from` counts for `into`, on every replica, whatever the order
/// the merge and the events arrive in.
pub fn merge_member(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    from: &str,
    into: &str,
) -> Result<()> {
    if from == into {
        return Err(Error::MergeSelf);
    }
    for id in [from, into] {
        if !state.members.iter().any(|m| m.id == id) {
            return Err(Error::UnknownMember(id.to_owned()));
        }
    }
    let missing = Error::UnknownMember(from.to_owned());
    change_map(doc, &format!("member/{from}"), missing, |tx, obj| {
        tx.put(obj, "merged_into", into)?;
        Ok(())
    })?;
    // Merged the other way round (the member who joined into the placeholder), the
    // placeholder takes over their arrival.
    let arrived = state
        .members
        .iter()
        .find(|m| m.id == from)
        .and_then(Member::arrived);
    if let Some(at_ms) = arrived {
        arrive(doc, state, into, at_ms)?;
    }
    Ok(())
}

/// Adds a pillar; returns its id.
pub fn add_pillar(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    name: &str,
    about: Option<&str>,
    at_ms: i64,
) -> Result<String> {
    let name = check_name(name)?;
    let id = ids::pillar_id(&name);
    if id.is_empty() {
        return Err(Error::BadName(name));
    }
    if state.pillar(&name).is_ok() || state.pillars.iter().any(|p| p.id == id) {
        return Err(Error::PillarExists(name));
    }
    let about = about
        .map(|a| check_text(a, crate::MAX_TEXT_CHARS))
        .transpose()?;
    doc.transact::<_, _, Error>(|tx| put_pillar(tx, &id, &name, about.as_deref(), at_ms))
        .map_err(|f| f.error)?;
    Ok(id)
}

/// Changes the streak rules given; the others stay as they are.
pub fn set_rules(
    doc: &mut automerge::Automerge,
    rest_days: Option<&[jiff::civil::Weekday]>,
    cadence: Option<Cadence>,
    quorum: Option<Quorum>,
    late_days: Option<u32>,
) -> Result<()> {
    doc.transact::<_, _, Error>(|tx| {
        if let Some(n) = late_days {
            tx.put(ROOT, "rule/late_days", n.to_string())?;
        }
        if let Some(days) = rest_days {
            tx.put(ROOT, "rule/rest_days", format_rest_days(days))?;
        }
        if let Some(c) = cadence {
            tx.put(ROOT, "rule/cadence", c.to_string())?;
        }
        if let Some(q) = quorum {
            tx.put(ROOT, "rule/quorum", q.to_string())?;
        }
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Adds a challenge: a team goal with a metric, a target and an end.
pub fn add_challenge(
    doc: &mut automerge::Automerge,
    c: &crate::goals::Challenge,
    by: &str,
    at_ms: i64,
) -> Result<()> {
    let title = check_text(&c.title, 120)?;
    if c.target == 0 {
        return Err(Error::BadRule(
            "a challenge needs a target above zero".into(),
        ));
    }
    if c.until < c.start {
        return Err(Error::BadRule(format!(
            "it would end ({}) before it starts ({})",
            c.until, c.start
        )));
    }
    doc.transact::<_, _, Error>(|tx| {
        let o = tx.put_object(ROOT, format!("challenge/{}", c.id), ObjType::Map)?;
        tx.put(&o, "title", title.as_str())?;
        tx.put(&o, "metric", c.metric.as_str())?;
        tx.put(&o, "target", i64::from(c.target))?;
        tx.put(&o, "start", c.start.to_string())?;
        tx.put(&o, "until", c.until.to_string())?;
        tx.put(&o, "by", by)?;
        tx.put(&o, "at", at_ms)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Adds a commitment with its why, made by member `by`.
pub fn add_commitment(
    doc: &mut automerge::Automerge,
    id: &str,
    text: &str,
    why: &str,
    by: &str,
    at_ms: i64,
) -> Result<()> {
    let text = check_text(text, crate::MAX_TEXT_CHARS)?;
    let why = check_text(why, crate::MAX_TEXT_CHARS)?;
    doc.transact::<_, _, Error>(|tx| {
        let c = tx.put_object(ROOT, format!("commitment/{id}"), ObjType::Map)?;
        tx.put(&c, "text", text.as_str())?;
        tx.put(&c, "why", why.as_str())?;
        tx.put(&c, "by", by)?;
        tx.put(&c, "at", at_ms)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Writes into the map at `key` of the team document (which must be there, else `missing`) in
/// one transaction.
fn change_map(
    doc: &mut automerge::Automerge,
    key: &str,
    missing: Error,
    write: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &automerge::ObjId) -> Result<()>,
) -> Result<()> {
    let obj = match doc.get(ROOT, key)? {
        Some((automerge::Value::Object(ObjType::Map), obj)) => obj,
        _ => return Err(missing),
    };
    doc.transact::<_, _, Error>(|tx| write(tx, &obj))
        .map_err(|f| f.error)?;
    Ok(())
}

/// Renames a pillar or says anew what it means. Events keep pointing at it (by its id).
pub fn edit_pillar(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    id: &str,
    name: Option<&str>,
    about: Option<&str>,
) -> Result<()> {
    let name = name.map(check_name).transpose()?;
    if let Some(n) = name.as_ref().filter(|n| {
        state
            .pillars
            .iter()
            .any(|p| p.id != id && p.name.eq_ignore_ascii_case(n))
    }) {
        return Err(Error::PillarExists(n.clone()));
    }
    let about = about
        .map(|a| check_text(a, crate::MAX_TEXT_CHARS))
        .transpose()?;
    if name.is_none() && about.is_none() {
        return Err(Error::NothingToEdit);
    }
    doc.transact::<_, _, Error>(|tx| {
        if let Some(n) = &name {
            tx.put(ROOT, format!("pillar/{id}/name"), n.as_str())?;
        }
        if let Some(a) = &about {
            tx.put(ROOT, format!("pillar/{id}/about"), a.as_str())?;
        }
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Retires a pillar: it leaves the team's list; events that named it keep it in their history
/// (the digest counts them under "other"). The last pillar stays.
pub fn retire_pillar(doc: &mut automerge::Automerge, state: &TeamState, id: &str) -> Result<()> {
    if state.pillars.len() <= 1 {
        return Err(Error::BadRule("a team keeps at least one pillar".into()));
    }
    doc.transact::<_, _, Error>(|tx| {
        tx.put(ROOT, format!("pillar/{id}/archived"), true)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// Rewords a commitment or its why.
pub fn edit_commitment(
    doc: &mut automerge::Automerge,
    id: &str,
    text: Option<&str>,
    why: Option<&str>,
) -> Result<()> {
    let text = text
        .map(|t| check_text(t, crate::MAX_TEXT_CHARS))
        .transpose()?;
    let why = why
        .map(|w| check_text(w, crate::MAX_TEXT_CHARS))
        .transpose()?;
    if text.is_none() && why.is_none() {
        return Err(Error::NothingToEdit);
    }
    let missing = Error::NoSuchSetting(id.to_owned());
    change_map(doc, &format!("commitment/{id}"), missing, |tx, obj| {
        if let Some(t) = &text {
            tx.put(obj, "text", t.as_str())?;
        }
        if let Some(w) = &why {
            tx.put(obj, "why", w.as_str())?;
        }
        Ok(())
    })
}

/// Retires a commitment: it leaves the team's list (the feed keeps the note of it).
pub fn retire_commitment(doc: &mut automerge::Automerge, id: &str) -> Result<()> {
    let missing = Error::NoSuchSetting(id.to_owned());
    change_map(doc, &format!("commitment/{id}"), missing, |tx, obj| {
        tx.put(obj, "retracted", true)?;
        Ok(())
    })
}

/// Changes a challenge's title, target or last day.
pub fn edit_challenge(
    doc: &mut automerge::Automerge,
    state: &TeamState,
    id: &str,
    title: Option<&str>,
    target: Option<u32>,
    until: Option<jiff::civil::Date>,
) -> Result<()> {
    let Some(c) = state.challenges.iter().find(|c| c.id == id) else {
        return Err(Error::NoSuchSetting(id.to_owned()));
    };
    let title = title.map(|t| check_text(t, 120)).transpose()?;
    if target == Some(0) {
        return Err(Error::BadRule(
            "a challenge needs a target above zero".into(),
        ));
    }
    if let Some(u) = until.filter(|u| *u < c.start) {
        return Err(Error::BadRule(format!(
            "it would end ({u}) before it starts ({})",
            c.start
        )));
    }
    if title.is_none() && target.is_none() && until.is_none() {
        return Err(Error::NothingToEdit);
    }
    let missing = Error::NoSuchSetting(id.to_owned());
    change_map(doc, &format!("challenge/{id}"), missing, |tx, obj| {
        if let Some(t) = &title {
            tx.put(obj, "title", t.as_str())?;
        }
        if let Some(n) = target {
            tx.put(obj, "target", i64::from(n))?;
        }
        if let Some(u) = until {
            tx.put(obj, "until", u.to_string())?;
        }
        Ok(())
    })
}

/// Retires a challenge: it leaves every list, ended or not (the feed keeps the note of it).
pub fn retire_challenge(doc: &mut automerge::Automerge, id: &str) -> Result<()> {
    let missing = Error::NoSuchSetting(id.to_owned());
    change_map(doc, &format!("challenge/{id}"), missing, |tx, obj| {
        tx.put(obj, "retired", true)?;
        Ok(())
    })
}

/// Reads the team document into a [`TeamState`], each collection in a stable order.
pub fn read<D: ReadDoc>(doc: &D) -> Result<TeamState> {
    let mut state = TeamState {
        name: one_line(get_str(doc, &ROOT, "name")?.unwrap_or_default()),
        tz: one_line(get_str(doc, &ROOT, "tz")?.unwrap_or_else(|| "UTC".to_owned())),
        ..TeamState::default()
    };
    let mut pillars: Vec<(i64, Pillar)> = Vec::new();
    let mut archived = Vec::new();
    for key in doc.keys(ROOT) {
        let Some((id, field)) = key.strip_prefix("pillar/").and_then(|k| k.rsplit_once('/')) else {
            continue;
        };
        let Some((value, _)) = doc.get(ROOT, key.as_str())? else {
            continue;
        };
        // (A pillar's id is shown where its name is missing.)
        let id = one_line(id.to_owned());
        let id = id.as_str();
        let i = match pillars.iter().position(|(_, p)| p.id == id) {
            Some(i) => i,
            None => {
                let p = Pillar {
                    id: id.to_owned(),
                    name: id.to_owned(),
                    about: None,
                };
                pillars.push((0, p));
                pillars.len() - 1
            }
        };
        let entry = &mut pillars[i];
        match field {
            "name" => entry.1.name = one_line(value.as_str().unwrap_or(id).to_owned()),
            "about" => entry.1.about = value.as_str().map(str::to_owned),
            "at" => entry.0 = value.as_i64().unwrap_or(0),
            "archived" if value.as_bool() == Some(true) => archived.push(id.to_owned()),
            _ => {}
        }
    }
    pillars.retain(|(_, p)| !archived.contains(&p.id));
    // Defaults first, in their own order; then the team's own pillars by creation.
    pillars.sort_by_key(|(at, p)| {
        let default_rank = DEFAULT_PILLARS.iter().position(|(d, _)| *d == p.id);
        (default_rank.is_none(), default_rank, *at, p.id.clone())
    });
    state.pillars = pillars.into_iter().map(|(_, p)| p).collect();
    for (id, obj) in children(doc, "commitment/")? {
        if get_bool(doc, &obj, "retracted")? {
            continue;
        }
        let Ok(text) = req_str(doc, &obj, "text") else {
            continue;
        };
        state.commitments.push(Commitment {
            text,
            why: get_str(doc, &obj, "why")?.unwrap_or_default(),
            by: get_str(doc, &obj, "by")?.unwrap_or_default(),
            at_ms: get_i64(doc, &obj, "at")?.unwrap_or(0),
            id,
        });
    }
    state
        .commitments
        .sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    let mut members = Vec::new();
    for (id, obj) in children(doc, "member/")? {
        // A malformed entry from a faulty peer is skipped rather than hiding the whole team.
        let (Ok(name), Ok(handle)) = (req_str(doc, &obj, "name"), req_str(doc, &obj, "handle"))
        else {
            continue;
        };
        members.push(Member {
            name: one_line(name),
            handle: one_line(handle),
            joined_ms: get_i64(doc, &obj, "joined")?.unwrap_or(0),
            left_ms: get_i64(doc, &obj, "left")?,
            merged_into: get_str(doc, &obj, "merged_into")?.filter(|t| *t != id),
            placeholder: get_bool(doc, &obj, "placeholder")?,
            arrived_ms: get_i64(doc, &obj, "arrived")?,
            chat: doc.get(&obj, CHAT_FIELD)?.and_then(|(v, _)| v.as_bool()),
            id,
        });
    }
    state.place_members(members);
    let rule = |k: &str| get_str(doc, &ROOT, &format!("rule/{k}"));
    state.rules = Rules::from_texts(
        rule("rest_days")?.as_deref(),
        rule("cadence")?.as_deref(),
        rule("quorum")?.as_deref(),
        rule("late_days")?.as_deref(),
    );
    let mut challenges = Vec::new();
    for (id, obj) in children(doc, "challenge/")? {
        if get_bool(doc, &obj, "retired")? {
            continue;
        }
        let field = |k: &str| get_str(doc, &obj, k);
        let (Some(title), Some(metric), Some(start), Some(until)) = (
            field("title")?,
            field("metric")?,
            field("start")?,
            field("until")?,
        ) else {
            continue;
        };
        let target = get_i64(doc, &obj, "target")?
            .unwrap_or(0)
            .clamp(0, i64::from(u32::MAX)) as u32;
        let at = get_i64(doc, &obj, "at")?.unwrap_or(0);
        if let Some(c) = crate::goals::Challenge::from_texts(
            id,
            one_line(title),
            &metric,
            target,
            &start,
            &until,
        ) {
            challenges.push((at, c));
        }
    }
    challenges.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    state.challenges = challenges.into_iter().map(|(_, c)| c).collect();
    Ok(state)
}

/// The root key of what the team shares with its organisation ([`Share`]).
const SHARE_KEY: &str = "share_up";

/// What a team shares upward with its organisation: nothing (the default), or its weekly
/// figures ([`crate::figures`]). Never anything about one member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Share {
    /// Nothing: the organisation sees that the team shares nothing.
    #[default]
    Nothing,
    /// The team's figures of each week once it is over.
    Weekly,
}

impl Share {
    pub fn as_str(self) -> &'static str {
        match self {
            Share::Nothing => "nothing",
            Share::Weekly => "weekly",
        }
    }

    pub fn parse(text: &str) -> Result<Share> {
        match text.trim().to_lowercase().as_str() {
            "nothing" => Ok(Share::Nothing),
            "weekly" => Ok(Share::Weekly),
            other => Err(Error::BadRule(format!(
                "`{other}` is not what a team can share (nothing or weekly)"
            ))),
        }
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the team shares with its organisation. [`Share::Nothing`] when the document does not
/// say (a team from before the setting, or one that never chose) or says something this
/// version does not know: sharing less is the safe reading.
///
/// A function of the document rather than a field of [`TeamState`]: the replica's index builds
/// a `TeamState` of its own, and a field it does not fill would read "nothing" there.
pub fn share<D: ReadDoc>(doc: &D) -> Share {
    match get_str(doc, &ROOT, SHARE_KEY) {
        Ok(Some(text)) => Share::parse(&text).unwrap_or_default(),
        _ => Share::Nothing,
    }
}

/// Sets what the team shares with its organisation; returns whether that changed what the
/// document said. A root scalar any member writes: of two members who choose at once, one
/// choice holds, the same on every replica. Choosing what the document already says writes
/// nothing.
pub fn set_share(doc: &mut automerge::Automerge, share: Share) -> Result<bool> {
    if self::share(doc) == share {
        return Ok(false);
    }
    doc.transact::<_, _, Error>(|tx| {
        tx.put(ROOT, SHARE_KEY, share.as_str())?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(true)
}

/// The root key prefix of a team's practices: `practice/<org commitment id>/<field>`.
const PRACTICE: &str = "practice/";

/// How the team lives one of its organisation's non-negotiables: its own words, with who
/// wrote them last and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Practice {
    pub text: String,
    pub by: String,
    pub at_ms: i64,
}

/// Writes how the team lives the organisation's non-negotiable `org_commitment_id` (one in
/// force in `org`), by member `by`: the team's own words, editable by the team like its own
/// commitments. Its fields are root scalars (two members may write the first words at once),
/// written in one transaction in a fixed order, so of two concurrent writes one wins whole,
/// text, author and instant together, the same on every replica.
pub fn set_practice(
    doc: &mut automerge::Automerge,
    org: &crate::org::OrgState,
    org_commitment_id: &str,
    text: &str,
    by: &str,
    at_ms: i64,
) -> Result<()> {
    let text = check_text(text, crate::MAX_TEXT_CHARS)?;
    let Some(c) = org.commitment(org_commitment_id) else {
        return Err(Error::NoSuchSetting(org_commitment_id.to_owned()));
    };
    if c.retired.is_some() {
        return Err(Error::BadRule(format!(
            "the non-negotiable “{}” is retired",
            c.title
        )));
    }
    let id = &c.id;
    doc.transact::<_, _, Error>(|tx| {
        tx.put(ROOT, format!("{PRACTICE}{id}/text"), text.as_str())?;
        tx.put(ROOT, format!("{PRACTICE}{id}/by"), by)?;
        tx.put(ROOT, format!("{PRACTICE}{id}/at"), at_ms)?;
        Ok(())
    })
    .map_err(|f| f.error)?;
    Ok(())
}

/// The team's practices, by organisation commitment id. An entry without a valid text (a
/// hostile or faulty write) is left out; its commitment may be retired since (the words stay).
pub fn practices<D: ReadDoc>(doc: &D) -> Result<std::collections::BTreeMap<String, Practice>> {
    let mut out = std::collections::BTreeMap::new();
    let mut by = std::collections::BTreeMap::new();
    let mut at = std::collections::BTreeMap::new();
    for key in doc.keys(ROOT) {
        let Some((id, field)) = key.strip_prefix(PRACTICE).and_then(|k| k.rsplit_once('/')) else {
            continue;
        };
        if !ids::is_id_text(id) || id.len() > 32 {
            continue;
        }
        let Some((value, _)) = doc.get(ROOT, key.as_str())? else {
            continue;
        };
        match field {
            "text" => {
                let text = value.as_str().map(str::to_owned);
                if let Some(t) = crate::org::valid(text, crate::MAX_TEXT_CHARS, false) {
                    out.insert(id.to_owned(), t);
                }
            }
            "by" => {
                let name = value.as_str().map(str::to_owned);
                if let Some(b) = crate::org::valid(name, MAX_NAME_CHARS, true) {
                    by.insert(id.to_owned(), b);
                }
            }
            "at" => {
                if let Some(ms) = value.as_i64() {
                    at.insert(id.to_owned(), ms);
                }
            }
            _ => {}
        }
    }
    Ok(out
        .into_iter()
        .map(|(id, text)| {
            let p = Practice {
                text,
                by: by.remove(&id).unwrap_or_default(),
                at_ms: at.remove(&id).unwrap_or(0),
            };
            (id, p)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{ActorId, Automerge};

    fn team() -> (Automerge, TeamState) {
        let mut doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        init(
            &mut doc,
            "Otters",
            "Europe/Paris",
            "Ana",
            "ana",
            "m-ana",
            10,
        )
        .unwrap();
        let state = read(&doc).unwrap();
        (doc, state)
    }

    #[test]
    fn a_team_shares_nothing_until_it_chooses_otherwise() {
        let (mut doc, _) = team();
        assert_eq!(share(&doc), Share::Nothing);
        let changes = doc.get_changes(&[]).len();
        assert!(!set_share(&mut doc, Share::Nothing).unwrap());
        assert_eq!(
            doc.get_changes(&[]).len(),
            changes,
            "nothing new, nothing written"
        );
        assert!(set_share(&mut doc, Share::Weekly).unwrap());
        assert_eq!(share(&doc), Share::Weekly);
        assert!(!set_share(&mut doc, Share::Weekly).unwrap());
        assert!(set_share(&mut doc, Share::Nothing).unwrap());
        assert_eq!(share(&doc), Share::Nothing);
        // What this version does not know (a newer one's choice, a hand's write) shares nothing.
        for odd in [automerge::ScalarValue::from("monthly"), 7.into()] {
            doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                tx.put(ROOT, SHARE_KEY, odd.clone())
            })
            .unwrap();
            assert_eq!(share(&doc), Share::Nothing);
        }
        assert_eq!(Share::parse(" Weekly ").unwrap(), Share::Weekly);
        assert!(Share::parse("daily").is_err());
        assert_eq!(Share::Weekly.to_string(), "weekly");
    }

    #[test]
    fn a_new_team_has_the_default_pillars_and_its_founder() {
        let (_, state) = team();
        assert_eq!(state.name, "Otters");
        assert_eq!(state.tz, "Europe/Paris");
        let ids: Vec<_> = state.pillars.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["trust", "empowerment", "professionalism"]);
        assert_eq!(state.member_by_handle("@ana").unwrap().id, "m-ana");
    }

    #[test]
    fn names_written_by_hand_with_line_breaks_read_as_one_line() {
        use automerge::transaction::Transactable;
        let (mut doc, _) = team();
        doc.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "name", "Ot\nters")?;
            tx.put(ROOT, "pillar/trust/name", "Tr\r\nust\u{2028}")?;
            let (_, ana) = tx.get(ROOT, "member/m-ana")?.unwrap();
            tx.put(&ana, "name", "Ana\n1a2b  @ben  said so")?;
            tx.put(&ana, "handle", "ana\tx")?;
            Ok(())
        })
        .unwrap();
        let state = read(&doc).unwrap();
        assert_eq!(state.name, "Ot ters");
        assert_eq!(state.pillar("trust").unwrap().name, "Tr  ust ");
        assert_eq!(state.members[0].name, "Ana 1a2b  @ben  said so");
        assert_eq!(state.members[0].handle, "ana x");
    }

    #[test]
    fn teams_add_their_own_pillars_after_the_defaults() {
        let (mut doc, state) = team();
        let id = add_pillar(&mut doc, &state, "Curiosity", Some("we ask why"), 20).unwrap();
        assert_eq!(id, "curiosity");
        let state = read(&doc).unwrap();
        assert_eq!(state.pillars.last().unwrap().name, "Curiosity");
        assert_eq!(state.pillar("curiosity").unwrap().id, "curiosity");
        assert!(matches!(
            add_pillar(&mut doc, &state, "trust", None, 30),
            Err(Error::PillarExists(_))
        ));
    }

    #[test]
    fn merges_made_both_ways_at_once_keep_one_member_everywhere() {
        let (mut doc, state) = team();
        add_member(&mut doc, &state, "m-eve-a", "Eve", Some("eve"), 20).unwrap();
        let state = read(&doc).unwrap();
        add_member(&mut doc, &state, "m-eve-b", "Eve", Some("eve-2"), 21).unwrap();
        let state = read(&doc).unwrap();
        let mut other = doc.fork().with_actor(ActorId::from([2u8; 16]));
        merge_member(&mut doc, &state, "m-eve-a", "m-eve-b").unwrap();
        merge_member(&mut other, &state, "m-eve-b", "m-eve-a").unwrap();
        doc.merge(&mut other).unwrap();
        other.merge(&mut doc).unwrap();
        for d in [&doc, &other] {
            let s = read(d).unwrap();
            let eves: Vec<_> = s.members.iter().filter(|m| m.name == "Eve").collect();
            assert_eq!(eves.len(), 1, "{:?}", s.members);
            assert_eq!(eves[0].id, "m-eve-a", "the smaller id stays");
            assert_eq!(s.canonical("m-eve-b"), "m-eve-a");
            assert_eq!(s.handle_of("m-eve-b"), "eve");
            assert_eq!(s.member_by_handle("@eve-2").unwrap().id, "m-eve-a");
        }
        assert!(matches!(
            merge_member(&mut doc, &read(&other).unwrap(), "m-ana", "m-ana"),
            Err(Error::MergeSelf)
        ));
    }

    #[test]
    fn a_member_who_left_is_named_but_not_counted() {
        let (mut doc, state) = team();
        add_member(&mut doc, &state, "m-cy", "Cy", None, 20).unwrap();
        let state = read(&doc).unwrap();
        remove_member(&mut doc, &state, "m-cy", 86_400_000 * 30).unwrap();
        let s = read(&doc).unwrap();
        assert_eq!(s.members.len(), 1);
        assert_eq!(s.handle_of("m-cy"), "cy");
        assert!(matches!(
            s.member_by_handle("@cy"),
            Err(Error::MemberLeft(_))
        ));
        let t = s.tenures();
        assert_eq!(t.len(), 2);
        assert!(t.iter().any(|t| t.id == "m-cy" && t.left.is_some()));
        assert!(matches!(
            remove_member(&mut doc, &s, "m-cy", 1),
            Err(Error::UnknownMember(_))
        ));
    }

    #[test]
    fn a_placeholder_counts_once_arrived_and_older_members_count_as_they_did() {
        let (mut doc, state) = team();
        add_placeholder(&mut doc, &state, "m-ben", "Ben", None, 20).unwrap();
        // A member written by an older cairn: no placeholder field, so a member who counts.
        doc.transact::<_, _, Error>(|tx| {
            let m = tx.put_object(ROOT, "member/m-old", ObjType::Map)?;
            tx.put(&m, "name", "Old")?;
            tx.put(&m, "handle", "old")?;
            tx.put(&m, "joined", 30)?;
            Ok(())
        })
        .map_err(|f| f.error)
        .unwrap();
        let state = read(&doc).unwrap();
        assert_eq!(state.members.len(), 3);
        let ben = state.member("m-ben").unwrap();
        assert!(ben.placeholder && ben.arrived().is_none());
        assert_eq!(state.counted(&[]), ["m-ana", "m-old"]);
        let tenures = state.tenures();
        let joined = |id: &str| tenures.iter().find(|t| t.id == id).unwrap().joined;
        assert_eq!(joined("m-ben"), None);
        assert!(joined("m-old").is_some());
        // A day later Ben's device joins: he counts from then, once however often it says so.
        let day = 86_400_000;
        assert!(arrive(&mut doc, &state, "m-ben", day).unwrap());
        let state = read(&doc).unwrap();
        assert!(!arrive(&mut doc, &state, "m-ben", 2 * day).unwrap());
        assert!(!arrive(&mut doc, &state, "m-ana", 2 * day).unwrap());
        let state = read(&doc).unwrap();
        assert_eq!(state.member("m-ben").unwrap().arrived(), Some(day));
        let dates = state.joined_dates(&[]);
        let ben = dates.iter().find(|(id, _)| id == "m-ben").unwrap().1;
        assert_eq!(ben, jiff::civil::date(1970, 1, 2));

        // Merged the wrong way round (the member who joined into the placeholder), the
        // placeholder takes over their arrival.
        add_placeholder(&mut doc, &state, "m-cy", "Cy", None, 40).unwrap();
        let state = read(&doc).unwrap();
        add_member(&mut doc, &state, "m-cy-2", "Cy", Some("cy-2"), 3 * day).unwrap();
        let state = read(&doc).unwrap();
        merge_member(&mut doc, &state, "m-cy-2", "m-cy").unwrap();
        let state = read(&doc).unwrap();
        assert_eq!(state.member("m-cy").unwrap().arrived(), Some(3 * day));
    }

    #[test]
    fn members_need_free_valid_handles() {
        let (mut doc, state) = team();
        let h = add_member(&mut doc, &state, "m-ben", "Ben Okafor", None, 20).unwrap();
        assert_eq!(h, "ben-okafor");
        let state = read(&doc).unwrap();
        assert!(matches!(
            add_member(
                &mut doc,
                &state,
                "m-x",
                "Other Ben",
                Some("@ben-okafor"),
                30
            ),
            Err(Error::HandleTaken(_))
        ));
        assert!(matches!(
            add_member(&mut doc, &state, "m-x", "X", Some("Bad Handle"), 30),
            Err(Error::BadHandle(_))
        ));
        assert!(matches!(
            state.member_by_handle("@zed"),
            Err(Error::UnknownHandle { .. })
        ));
    }

    #[test]
    fn handles_match_whatever_the_case_and_accents_and_unknown_ones_come_with_near_ones() {
        let (mut doc, state) = team();
        let h = add_member(&mut doc, &state, "m-chloe", "Chloé Martin", None, 10).unwrap();
        assert_eq!(h, "chloe-martin");
        let state = read(&doc).unwrap();
        // A member whose handle was made before names were read.
        let state = {
            let mut s = state;
            s.members.push(Member {
                id: "m-soren".into(),
                name: "Søren Kirk".into(),
                handle: "sren-kirk".into(),
                joined_ms: 10,
                ..Member::default()
            });
            s
        };
        for typed in [
            "@chloe-martin",
            "Chloé-Martin",
            "@CHLOE-MARTIN",
            " @chloé-martin ",
        ] {
            assert_eq!(
                state.member_by_handle(typed).unwrap().id,
                "m-chloe",
                "{typed}"
            );
        }
        assert_eq!(state.member_by_handle("@sren-kirk").unwrap().id, "m-soren");
        assert_eq!(state.member_by_handle("@soren-kirk").unwrap().id, "m-soren");
        let err = state.member_by_handle("@chloe").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown member `@chloe`; did you mean @chloe-martin?"
        );
        let err = state.member_by_handle("@zed").unwrap_err();
        assert_eq!(err.to_string(), "unknown member `@zed`");
    }

    #[test]
    fn unknown_pillars_say_which_were_meant() {
        let mut state = TeamState::default();
        for (id, name) in [
            ("trust", "Trust"),
            ("curiosity", "Curiosity"),
            ("care", "Care"),
        ] {
            state.pillars.push(Pillar {
                id: id.into(),
                name: name.into(),
                about: None,
            });
        }
        let said = |typed: &str| state.pillar(typed).unwrap_err().to_string();
        assert_eq!(
            said("trsut"),
            "unknown pillar `trsut`; did you mean #Trust?"
        );
        assert_eq!(
            said("curiosty"),
            "unknown pillar `curiosty`; did you mean #Curiosity?"
        );
        assert_eq!(
            said("cur"),
            "unknown pillar `cur`; did you mean #Curiosity?"
        );
        assert_eq!(said("car"), "unknown pillar `car`; did you mean #Care?");
        assert_eq!(said("speed"), "unknown pillar `speed`");
        assert_eq!(said("x"), "unknown pillar `x`");
        assert_eq!(ids::typo_distance("trust", "trust"), 0);
        assert_eq!(ids::typo_distance("trsut", "trust"), 1);
        assert_eq!(ids::typo_distance("tust", "trust"), 1);
        assert_eq!(ids::typo_distance("", "ab"), 2);
    }

    #[test]
    fn the_same_pillar_added_on_two_replicas_keeps_both_sides_fields() {
        let (mut a, state) = team();
        let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
        add_pillar(&mut a, &state, "Curiosity", Some("we ask why"), 20).unwrap();
        add_pillar(&mut b, &state, "curiosity", None, 21).unwrap();
        a.merge(&mut b).unwrap();
        let merged = read(&a).unwrap();
        let p = merged.pillar("curiosity").unwrap();
        assert_eq!(p.about.as_deref(), Some("we ask why"));
        assert_eq!(merged.pillars.len(), 4);
    }

    #[test]
    fn a_handle_two_members_picked_offline_is_ambiguous() {
        let (mut a, state) = team();
        let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
        add_member(&mut a, &state, "m-1", "Ben", None, 20).unwrap();
        add_member(&mut b, &state, "m-2", "Ben", None, 21).unwrap();
        a.merge(&mut b).unwrap();
        let merged = read(&a).unwrap();
        assert!(matches!(
            merged.member_by_handle("@ben"),
            Err(Error::AmbiguousHandle(_))
        ));
        // A name in another script is read: its handle is its reading.
        assert_eq!(
            add_member(&mut a, &merged, "m-3", "信頼", None, 22).unwrap(),
            "xin-lai"
        );
        assert!(matches!(
            add_pillar(&mut a, &merged, "!!!", None, 22),
            Err(Error::BadName(_))
        ));
    }

    #[test]
    fn everyone_is_named_in_chat_until_they_turn_it_off() {
        let (mut doc, state) = team();
        add_placeholder(&mut doc, &state, "m-ben", "Ben", None, 20).unwrap();
        let state = read(&doc).unwrap();
        // A member written by an older cairn, and the founder: no setting, so named.
        assert_eq!(state.member("m-ana").unwrap().chat, None);
        assert!(state.named_in_chat("m-ana"));
        assert!(state.named_in_chat("m-ben"));
        // Nobody the document holds: nobody agreed.
        assert!(!state.named_in_chat("m-zed"));

        assert!(set_named_in_chat(&mut doc, &state, "m-ana", false).unwrap());
        let off = read(&doc).unwrap();
        assert!(!off.named_in_chat("m-ana"));
        assert_eq!(off.member("m-ana").unwrap().chat, Some(false));
        assert!(
            off.named_in_chat("m-ben"),
            "one member's setting is theirs alone"
        );
        // Said again, it is no news; turned back on, she is named again.
        assert!(!set_named_in_chat(&mut doc, &off, "m-ana", false).unwrap());
        assert!(set_named_in_chat(&mut doc, &off, "m-ana", true).unwrap());
        let on = read(&doc).unwrap();
        assert!(on.named_in_chat("m-ana"));
        assert_eq!(on.member("m-ana").unwrap().chat, Some(true));
        assert!(matches!(
            set_named_in_chat(&mut doc, &on, "m-zed", false),
            Err(Error::UnknownMember(_))
        ));

        // A placeholder merged into the member who joined answers as that member.
        set_named_in_chat(&mut doc, &on, "m-ana", false).unwrap();
        let state = read(&doc).unwrap();
        merge_member(&mut doc, &state, "m-ben", "m-ana").unwrap();
        let merged = read(&doc).unwrap();
        assert!(!merged.named_in_chat("m-ben"));

        // Merged the wrong way round (the member who joined into the placeholder), the person
        // still sets it under the id their devices write as, and is read so under either id.
        add_placeholder(&mut doc, &merged, "m-cy", "Cy", None, 30).unwrap();
        let state = read(&doc).unwrap();
        add_member(&mut doc, &state, "m-cy-2", "Cy", Some("cy-2"), 40).unwrap();
        let state = read(&doc).unwrap();
        merge_member(&mut doc, &state, "m-cy-2", "m-cy").unwrap();
        let state = read(&doc).unwrap();
        assert!(state.named_in_chat("m-cy") && state.named_in_chat("m-cy-2"));
        assert!(set_named_in_chat(&mut doc, &state, "m-cy-2", false).unwrap());
        let state = read(&doc).unwrap();
        assert!(!state.named_in_chat("m-cy") && !state.named_in_chat("m-cy-2"));
        set_named_in_chat(&mut doc, &state, "m-cy-2", true).unwrap();
        let state = read(&doc).unwrap();
        assert!(state.named_in_chat("m-cy") && state.named_in_chat("m-cy-2"));
    }

    #[test]
    fn the_chat_setting_merges_apart_from_the_other_fields() {
        let (mut a, state) = team();
        let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
        // Ana turns it off on one device while a teammate renames her on another.
        set_named_in_chat(&mut a, &state, "m-ana", false).unwrap();
        rename_member(&mut b, &state, "m-ana", Some("Ana Lima"), None).unwrap();
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        for doc in [&a, &b] {
            let s = read(doc).unwrap();
            assert!(!s.named_in_chat("m-ana"));
            assert_eq!(s.member("m-ana").unwrap().name, "Ana Lima");
        }
        // Her two devices set it at once, each its own way: both replicas keep the same one.
        let state = read(&a).unwrap();
        let mut c = a.fork().with_actor(ActorId::from([3u8; 16]));
        set_named_in_chat(&mut a, &state, "m-ana", true).unwrap();
        set_named_in_chat(&mut c, &state, "m-ana", false).unwrap();
        a.merge(&mut c).unwrap();
        c.merge(&mut a).unwrap();
        let (x, y) = (read(&a).unwrap(), read(&c).unwrap());
        assert_eq!(
            x.member("m-ana").unwrap().chat,
            y.member("m-ana").unwrap().chat
        );
        assert!(x.member("m-ana").unwrap().chat.is_some());
        assert_eq!(x.named_in_chat("m-ana"), y.named_in_chat("m-ana"));
    }

    #[test]
    fn a_change_says_whose_chat_setting_it_writes() {
        let (mut doc, state) = team();
        add_member(&mut doc, &state, "m-ben", "Ben", None, 20).unwrap();
        let state = read(&doc).unwrap();
        let last = |d: &mut Automerge| d.get_last_local_change().unwrap().clone();
        let written =
            |before: &Automerge, change: &automerge::Change| chat_settings_written(before, change);

        let mut after = doc.fork();
        set_named_in_chat(&mut after, &state, "m-ben", false).unwrap();
        assert_eq!(written(&doc, &last(&mut after)), ["m-ben"]);

        // Other fields of a member, and new members, write nobody's setting.
        let mut after = doc.fork();
        rename_member(&mut after, &state, "m-ben", Some("Benjamin"), None).unwrap();
        assert!(written(&doc, &last(&mut after)).is_empty());
        let mut after = doc.fork();
        add_placeholder(&mut after, &state, "m-cy", "Cy", None, 30).unwrap();
        assert!(written(&doc, &last(&mut after)).is_empty());

        // A new entry made in place of Ana's, once she holds a setting, writes hers; so does a
        // new map at a member's key with the field in it.
        set_named_in_chat(&mut doc, &state, "m-ana", false).unwrap();
        let mut after = doc.fork();
        after
            .transact::<_, _, Error>(|tx| {
                let m = tx.put_object(ROOT, "member/m-ana", ObjType::Map)?;
                tx.put(&m, "name", "Ana")?;
                tx.put(&m, "handle", "ana")?;
                Ok(())
            })
            .map_err(|f| f.error)
            .unwrap();
        assert_eq!(written(&doc, &last(&mut after)), ["m-ana"]);
        let mut after = doc.fork();
        after
            .transact::<_, _, Error>(|tx| {
                let m = tx.put_object(ROOT, "member/m-new", ObjType::Map)?;
                tx.put(&m, CHAT_FIELD, false)?;
                Ok(())
            })
            .map_err(|f| f.error)
            .unwrap();
        assert_eq!(written(&doc, &last(&mut after)), ["m-new"]);
        // Deleting the field is writing it.
        let mut after = doc.fork();
        let (_, ana) = after.get(ROOT, "member/m-ana").unwrap().unwrap();
        after
            .transact::<_, _, automerge::AutomergeError>(|tx| tx.delete(&ana, CHAT_FIELD))
            .map_err(|f| f.error)
            .unwrap();
        assert_eq!(written(&doc, &last(&mut after)), ["m-ana"]);
    }

    #[test]
    fn commitments_keep_their_why() {
        let (mut doc, _) = team();
        add_commitment(
            &mut doc,
            "c1",
            "Reviews within a day",
            "nobody waits",
            "m-ana",
            5,
        )
        .unwrap();
        let state = read(&doc).unwrap();
        assert_eq!(state.commitments[0].why, "nobody waits");
        assert!(add_commitment(&mut doc, "c2", "  ", "x", "m-ana", 5).is_err());
    }

    #[test]
    fn a_team_writes_its_own_how_of_each_non_negotiable() {
        let mut o = Automerge::new().with_actor(ActorId::from([9u8; 16]));
        crate::org::init(&mut o, "Acme", 0).unwrap();
        let os = crate::org::read(&o).unwrap();
        let nn = crate::org::add_commitment(&mut o, &os, "Demo often", "show", "Sam", 1).unwrap();
        let gone = crate::org::add_commitment(&mut o, &os, "Old way", "was", "Sam", 2).unwrap();
        let os = crate::org::read(&o).unwrap();
        crate::org::retire_commitment(&mut o, &os, &gone, "Sam", 3).unwrap();
        let os = crate::org::read(&o).unwrap();

        let (mut a, _) = team();
        set_practice(&mut a, &os, &nn, "we demo on Fridays", "m-ana", 10).unwrap();
        assert!(matches!(
            set_practice(&mut a, &os, &gone, "x", "m-ana", 10),
            Err(Error::BadRule(_))
        ));
        assert!(matches!(
            set_practice(&mut a, &os, "nope", "x", "m-ana", 10),
            Err(Error::NoSuchSetting(_))
        ));
        assert!(set_practice(&mut a, &os, &nn, "  ", "m-ana", 10).is_err());
        let p = practices(&a).unwrap();
        assert_eq!(
            p[&nn],
            Practice {
                text: "we demo on Fridays".into(),
                by: "m-ana".into(),
                at_ms: 10
            }
        );
        // The team document reads as it did.
        assert_eq!(read(&a).unwrap().name, "Otters");

        // Two members rewrite it at once: one version wins whole, the same everywhere.
        let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
        set_practice(&mut a, &os, &nn, "a demo every sprint", "m-ana", 20).unwrap();
        set_practice(&mut b, &os, &nn, "we demo to another team", "m-ben", 21).unwrap();
        a.merge(&mut b).unwrap();
        b.merge(&mut a).unwrap();
        let (pa, pb) = (practices(&a).unwrap(), practices(&b).unwrap());
        assert_eq!(pa, pb);
        let won = &pa[&nn];
        assert!(
            (won.text.as_str(), won.by.as_str(), won.at_ms) == ("a demo every sprint", "m-ana", 20)
                || (won.text.as_str(), won.by.as_str(), won.at_ms)
                    == ("we demo to another team", "m-ben", 21),
            "{won:?}"
        );

        // Whatever else is written there is left out.
        a.transact::<_, _, Error>(|tx| {
            tx.put(ROOT, "practice/zz/text", 5)?;
            tx.put(ROOT, "practice/Bad Id/text", "x")?;
            tx.put(ROOT, "practice/yy/text", "y".repeat(100_000))?;
            tx.put(ROOT, "practice/xx/by", "only a name")?;
            tx.put(ROOT, "practice/", "x")?;
            tx.put_object(ROOT, "practice/ww/text", ObjType::Map)?;
            Ok(())
        })
        .map_err(|f| f.error)
        .unwrap();
        assert_eq!(practices(&a).unwrap().keys().collect::<Vec<_>>(), [&nn]);
    }
}
