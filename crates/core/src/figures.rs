//! A team's weekly figures, shared upward with its organisation when the team chooses to, and
//! the organisation's view of them.
//!
//! Nothing is shared by default ([`crate::team::share`]). A team that shares weekly writes, in
//! its organisation's log, one document `s/<team id>` ([`doc_id`]) holding the figures of each
//! week once it is over ([`closed_weeks`]): members, active members, active days, acts per kind,
//! per pillar and per non-negotiable, recognitions within and across teams. Never a number about
//! one member. The figures are a pure function of the team's data ([`compute`]), so every member's
//! replica computes the same ones, and [`write()`] writes only what differs: N members writing the
//! same figures make one change, not N.
//!
//! Layout, everything at the root as in the other documents:
//! - `schema`, `team` (the team's id), `name` (the team's name), `share` (`nothing` or `weekly`),
//!   `at` (the instant of the last write that changed something): root scalars;
//! - `w/<YYYY-Www>` (an ISO week, `w/2026-W49`): a map per week of figures, its counts as
//!   integers, `pillars` (pillar name to acts) and `nn` (non-negotiable id to acts) as nested
//!   maps. At most [`MAX_WEEKS`] weeks: the oldest go first.
//!
//! Anything else (another key, a week with a field it should not hold, a number out of
//! bounds or that contradicts another) is read as nothing and listed in [`Shared::ignored`]
//! with why, and [`check_change`], which the server and every replica ask of a change, refuses
//! a change that adds it, writes another team's figures, or figures while the team shares
//! nothing. The server checks by document id that the writer is a member of that team;
//! [`check_change`] checks that the content says the same.
//!
//! [`org_view`] puts the teams' documents side by side for one week, sorted by name, never
//! ranked, with the teams that share nothing shown as such.
//!
//! ```
//! use automerge::{ActorId, Automerge};
//! use cairn_core::{figures, team, Share};
//! use jiff::civil::date;
//!
//! let mut team_doc = Automerge::new().with_actor(ActorId::from([1u8; 16]));
//! team::init(&mut team_doc, "Otters", "UTC", "Ana", "ana", "m-ana", 0).unwrap();
//! let state = team::read(&team_doc).unwrap();
//! // Ana logged a micro-action on Tuesday 2026-11-17; the figures of that week, once it is over:
//! let acts = [cairn_core::goals::Act {
//!     author: "m-ana".into(),
//!     date: date(2026, 11, 17),
//!     kind: cairn_core::Kind::Action,
//!     pillar: Some("trust".into()),
//!     to: vec![],
//! }];
//! let monday = figures::closed_weeks(date(2026, 11, 25), 1)[0];
//! let week = figures::compute(&state, &acts, &[], &[], monday);
//! assert_eq!((week.week.as_str(), week.members, week.active, week.acts), ("2026-W47", 1, 1, 1));
//!
//! let mut shared = Automerge::new().with_actor(ActorId::from([1u8; 16]));
//! assert!(figures::write(&mut shared, "t0", "Otters", Share::Weekly, &[week.clone()], 5).unwrap());
//! assert!(!figures::write(&mut shared, "t0", "Otters", Share::Weekly, &[week], 6).unwrap());
//! let read = figures::read(&shared).unwrap();
//! assert!(figures::check_change("t0", &figures::Shared::default(), &read).is_ok());
//! let view = figures::org_view(&[("t0".into(), "Otters".into())], &[read], None);
//! assert_eq!(view.teams[0].shared.as_ref().unwrap().pillars["trust"], 1);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::{ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value, transaction::Transactable};
use jiff::ToSpan as _;
use jiff::civil::{Date, ISOWeekDate, Weekday};
use serde::Serialize;

use crate::event::{check_text, one_line};
use crate::goals::{Act, reach};
use crate::org::{MAX_NAME_CHARS, valid};
use crate::team::Share;
use crate::{Error, Kind, Result, TeamState, ids};

/// The schema version written into new shared documents.
pub const SCHEMA: i64 = 1;
/// The most weeks a shared document keeps (two years).
pub const MAX_WEEKS: usize = 104;
/// The most members a team's week may count.
pub const MAX_MEMBERS: u32 = 100_000;
/// The most acts (or recognitions across teams) a team's week may count.
pub const MAX_COUNT: u32 = 10_000_000;
/// The most pillars, and the most non-negotiables, a week may name.
pub const MAX_KEYS: usize = 64;
const WEEK: &str = "w/";
const PILLARS: &str = "pillars";
const NN: &str = "nn";
/// Acts that named a pillar the team no longer has (archived, or not known here yet).
pub const OTHER_PILLAR: &str = "other";

/// One week of a team's figures: counts only, never a number about one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WeekFigures {
    /// The ISO week, `2026-W49`.
    pub week: String,
    /// Its Monday.
    #[serde(serialize_with = "ser_date")]
    pub start: Date,
    /// Members on the team that week, as the team streak's quorum counts them: joined (or, for
    /// a placeholder, arrived or first active) by its Sunday, and not left before its Monday.
    pub members: u32,
    /// Those of them with at least one act that week.
    pub active: u32,
    /// The team's active days: days of the week (0 to 7, rest days included) on which the
    /// team had at least one act.
    pub consistency: u32,
    /// Acts (micro-actions and recognitions, not retracted) dated in the week by their
    /// authors' local dates.
    pub acts: u32,
    pub actions: u32,
    pub kudos: u32,
    /// Acts per pillar, by the pillar's name as the team names it; acts naming a pillar the
    /// team no longer has count under [`OTHER_PILLAR`], acts naming none in no pillar. At most
    /// [`MAX_KEYS`] pillars (the first by name).
    pub pillars: BTreeMap<String, u32>,
    /// Acts that named each of the organisation's non-negotiables, by its id. At most
    /// [`MAX_KEYS`] (the first by id).
    pub non_negotiables: BTreeMap<String, u32>,
    /// Reach within the team: members of the week recognised at least once in it (the
    /// team's reach, [`crate::goals::reach`], over the week).
    pub reach_within: u32,
    /// Recognitions that crossed teams that week: given to or received from another team.
    pub reach_across: u32,
}

fn ser_date<S: serde::Serializer>(d: &Date, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(d)
}

impl WeekFigures {
    /// Active members out of members; `None` for a week without members.
    pub fn active_share(&self) -> Option<f64> {
        (self.members > 0).then(|| f64::from(self.active) / f64::from(self.members))
    }

    /// The integer figures, by the name each has in the document.
    fn counts(&self) -> [(&'static str, u32); 8] {
        [
            ("members", self.members),
            ("active", self.active),
            ("consistency", self.consistency),
            ("acts", self.acts),
            ("actions", self.actions),
            ("kudos", self.kudos),
            ("reach_within", self.reach_within),
            ("reach_across", self.reach_across),
        ]
    }

    fn counts_mut(&mut self) -> [(&'static str, &mut u32); 8] {
        [
            ("members", &mut self.members),
            ("active", &mut self.active),
            ("consistency", &mut self.consistency),
            ("acts", &mut self.acts),
            ("actions", &mut self.actions),
            ("kudos", &mut self.kudos),
            ("reach_within", &mut self.reach_within),
            ("reach_across", &mut self.reach_across),
        ]
    }
}

/// The ISO week of `d`, as the shared document names it: `2026-W49`.
pub fn week_label(d: Date) -> String {
    let w = d.iso_week_date();
    format!("{:04}-W{:02}", w.year(), w.week())
}

/// The Monday of the ISO week `text` (`2026-W49`), written exactly as [`week_label`] writes it.
pub fn parse_week(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 8 || &b[4..6] != b"-W" {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i16> {
        b[r].iter().try_fold(0i16, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i16::from(c - b'0'))
        })
    };
    let week = i8::try_from(digits(6..8)?).ok()?;
    let monday = ISOWeekDate::new(digits(0..4)?, week, Weekday::Monday)
        .ok()?
        .date();
    (week_label(monday) == text).then_some(monday)
}

/// The Monday of each of the last `n` weeks that are over on `today`, oldest first. The week
/// of `today` is never one: its figures still change.
pub fn closed_weeks(today: Date, n: usize) -> Vec<Date> {
    let this = crate::time::week_start(today);
    (1..=n as i64)
        .rev()
        .filter_map(|i| this.checked_sub((7 * i).days()).ok())
        .collect()
}

/// The figures of the week starting on the Monday of `week_start`, from the team's state and
/// data: `acts` every act of the team (any order; only those dated in the week count, but a
/// placeholder's first act tells when they began to count), `honoured` the date and
/// non-negotiable id of each act that named one, `across` the date and number of recognitions
/// that crossed teams. The same inputs give the same figures on every replica.
pub fn compute(
    team: &TeamState,
    acts: &[Act],
    honoured: &[(Date, String)],
    across: &[(Date, u32)],
    week_start: Date,
) -> WeekFigures {
    let start = crate::time::week_start(week_start);
    let end = start.checked_add(6.days()).unwrap_or(start);
    let within = |d: Date| d >= start && d <= end;
    // Who was on the team that week, by the team streak's rule: from when they joined, or
    // their first act if that came earlier (a placeholder who has not arrived: only then),
    // up to the week they left in.
    let mut first: HashMap<&str, Date> = HashMap::new();
    for a in acts {
        let d = first.entry(team.canonical(&a.author)).or_insert(a.date);
        *d = (*d).min(a.date);
    }
    let on_team: Vec<String> = team
        .tenures()
        .into_iter()
        .filter(|t| {
            let from = match (t.joined, first.get(t.id.as_str())) {
                (Some(j), Some(a)) => Some(j.min(*a)),
                (j, a) => j.or(a.copied()),
            };
            from.is_some_and(|f| f <= end) && t.left.is_none_or(|l| l >= start)
        })
        .map(|t| t.id)
        .collect();
    let on: HashSet<&str> = on_team.iter().map(String::as_str).collect();
    let week: Vec<Act> = acts
        .iter()
        .filter(|a| a.kind.is_act() && within(a.date))
        .cloned()
        .collect();
    let active: HashSet<&str> = week
        .iter()
        .map(|a| team.canonical(&a.author))
        .filter(|m| on.contains(m))
        .collect();
    let days: BTreeSet<Date> = week.iter().map(|a| a.date).collect();
    let names: HashMap<&str, String> = team
        .pillars
        .iter()
        .map(|p| {
            let name = valid(Some(p.name.clone()), MAX_NAME_CHARS, true)
                .or_else(|| valid(Some(p.id.clone()), MAX_NAME_CHARS, true))
                .unwrap_or_else(|| OTHER_PILLAR.to_owned());
            (p.id.as_str(), name)
        })
        .collect();
    let mut pillars: BTreeMap<String, u32> = BTreeMap::new();
    for p in week.iter().filter_map(|a| a.pillar.as_deref()) {
        let name = names.get(p).map_or(OTHER_PILLAR, String::as_str);
        *pillars.entry(name.to_owned()).or_default() += 1;
    }
    let mut non_negotiables: BTreeMap<String, u32> = BTreeMap::new();
    for (_, id) in honoured.iter().filter(|(d, id)| within(*d) && is_nn_id(id)) {
        *non_negotiables.entry(id.clone()).or_default() += 1;
    }
    let count = |n: usize, max: u32| u32::try_from(n).unwrap_or(u32::MAX).min(max);
    let kind = |k: Kind| count(week.iter().filter(|a| a.kind == k).count(), MAX_COUNT);
    let acts_in_week = count(week.len(), MAX_COUNT);
    let bound = |m: BTreeMap<String, u32>| -> BTreeMap<String, u32> {
        m.into_iter()
            .take(MAX_KEYS)
            .map(|(k, n)| (k, n.min(acts_in_week)))
            .collect()
    };
    WeekFigures {
        week: week_label(start),
        start,
        members: count(on_team.len(), MAX_MEMBERS),
        active: count(active.len(), MAX_MEMBERS),
        consistency: count(days.len(), 7),
        acts: acts_in_week,
        actions: kind(Kind::Action),
        kudos: kind(Kind::Kudos),
        pillars: bound(pillars),
        non_negotiables: bound(non_negotiables),
        reach_within: count(
            reach(&week, &on_team, end, 7).recognised as usize,
            MAX_MEMBERS,
        ),
        reach_across: across
            .iter()
            .filter(|(d, _)| within(*d))
            .fold(0u32, |n, (_, k)| n.saturating_add(*k))
            .min(MAX_COUNT),
    }
}

/// Whether `id` can be an organisation non-negotiable's id (see [`crate::org`]).
fn is_nn_id(id: &str) -> bool {
    ids::is_id_text(id) && id.len() <= 32
}

/// What is wrong with a week's figures, if anything: a number out of bounds, or two that
/// contradict each other.
fn check_week(w: &WeekFigures) -> std::result::Result<(), &'static str> {
    let problems: [(bool, &'static str); 12] = [
        (
            parse_week(&w.week) != Some(w.start),
            "names a week that does not start on its Monday",
        ),
        (w.members > MAX_MEMBERS, "counts more than 100000 members"),
        (
            w.active > w.members,
            "counts more active members than members",
        ),
        (w.consistency > 7, "counts more than seven active days"),
        (w.acts > MAX_COUNT, "counts more acts than a week can hold"),
        (
            w.actions > w.acts || w.kudos > w.acts,
            "counts more micro-actions or recognitions than acts",
        ),
        (
            w.active > w.acts || w.consistency > w.acts,
            "counts more active members or days than acts",
        ),
        (
            w.reach_within > w.members,
            "counts more members recognised than members",
        ),
        (
            w.reach_across > MAX_COUNT,
            "counts more recognitions across teams than a week can hold",
        ),
        (
            w.pillars.len() > MAX_KEYS || w.non_negotiables.len() > MAX_KEYS,
            "names more than 64 pillars or non-negotiables",
        ),
        (
            w.pillars.iter().any(|(k, n)| {
                *n > w.acts || valid(Some(k.clone()), MAX_NAME_CHARS, true).as_ref() != Some(k)
            }),
            "counts a pillar that is no name, or more of its acts than acts",
        ),
        (
            w.non_negotiables
                .iter()
                .any(|(k, n)| *n > w.acts || !is_nn_id(k)),
            "counts a non-negotiable that is no id, or more of its acts than acts",
        ),
    ];
    match problems.iter().find(|(wrong, _)| *wrong) {
        Some((_, why)) => Err(why),
        None => Ok(()),
    }
}

/// The id of the document holding what team `team_id` shares: `s/<team id>`.
pub fn doc_id(team_id: &str) -> String {
    ids::shared_doc(team_id)
}

/// The team whose shared figures `doc_id` holds, if it names such a document (`s/` and a team
/// id: lowercase Crockford base32, at most 64 characters).
pub fn doc_team(doc_id: &str) -> Option<&str> {
    ids::shared_owner(doc_id)
}

fn is_team_id(t: &str) -> bool {
    doc_team(&doc_id(t)).is_some()
}

/// A team's shared document read into plain values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Shared {
    /// The team whose figures these are (empty in a document not written yet).
    pub team: String,
    pub name: String,
    pub share: Share,
    /// When a write last changed something.
    pub at_ms: i64,
    /// The weeks of figures, oldest first.
    pub weeks: Vec<WeekFigures>,
    /// Root keys read as nothing, with why.
    pub ignored: BTreeMap<String, &'static str>,
}

impl Shared {
    /// The figures of ISO week `week` (`2026-W49`), if the document holds them.
    pub fn week(&self, week: &str) -> Option<&WeekFigures> {
        self.weeks.iter().find(|w| w.week == week)
    }
}

/// Writes what team `team_id` (named `name`) shares into its shared document: `share`, and
/// when it is [`Share::Weekly`] the figures of `weeks` (of [`compute`]; the latest
/// [`MAX_WEEKS`] of them). Only what differs is written, so a write of what the document
/// already says makes no change; returns whether it made one. Weeks it holds that `weeks`
/// leaves out stay, the oldest dropped beyond [`MAX_WEEKS`]; [`Share::Nothing`] takes every
/// week back.
pub fn write(
    doc: &mut automerge::Automerge,
    team_id: &str,
    name: &str,
    share: Share,
    weeks: &[WeekFigures],
    at_ms: i64,
) -> Result<bool> {
    if !is_team_id(team_id) {
        return Err(Error::BadRule(format!("`{team_id}` is no team id")));
    }
    let name = one_line(check_text(name, MAX_NAME_CHARS)?);
    let mut wanted: BTreeMap<String, &WeekFigures> = BTreeMap::new();
    if share == Share::Weekly {
        for w in weeks {
            check_week(w)
                .map_err(|why| Error::BadRule(format!("the figures of week {} {why}", w.week)))?;
            wanted.insert(format!("{WEEK}{}", w.week), w);
        }
    }
    // The weeks kept: the latest of those there and those written; none when the team shares
    // nothing (then even a week key this version cannot read goes).
    let present: Vec<String> = doc.keys(ROOT).filter(|k| k.starts_with(WEEK)).collect();
    let mut kept: BTreeSet<String> = BTreeSet::new();
    let mut dropped: Vec<&String> = present.iter().collect();
    if share == Share::Weekly {
        dropped.clear();
        kept.extend(
            present
                .iter()
                .filter(|k| k.strip_prefix(WEEK).and_then(parse_week).is_some())
                .cloned(),
        );
        kept.extend(wanted.keys().cloned());
        while kept.len() > MAX_WEEKS {
            if let Some(old) = kept.pop_first() {
                dropped.extend(present.iter().filter(|k| **k == old));
            }
        }
    }
    doc.transact::<_, _, Error>(|tx| {
        let mut changed = false;
        changed |= put_if(tx, &ROOT, "schema", SCHEMA.into())?;
        changed |= put_if(tx, &ROOT, "team", team_id.into())?;
        changed |= put_if(tx, &ROOT, "name", name.as_str().into())?;
        changed |= put_if(tx, &ROOT, "share", share.as_str().into())?;
        for key in &dropped {
            tx.delete(ROOT, key.as_str())?;
            changed = true;
        }
        for (key, w) in wanted.iter().filter(|(k, _)| kept.contains(*k)) {
            changed |= put_week(tx, key, w)?;
        }
        if changed {
            tx.put(ROOT, "at", at_ms)?;
        }
        Ok(changed)
    })
    .map(|s| s.result)
    .map_err(|f| f.error)
}

/// Puts `value` at `key` of `obj` unless it is there already; returns whether it wrote.
fn put_if(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    key: &str,
    value: ScalarValue,
) -> Result<bool> {
    if let Some((Value::Scalar(now), _)) = tx.get(obj, key)?
        && *now == value
    {
        return Ok(false);
    }
    tx.put(obj, key, value)?;
    Ok(true)
}

/// The map at `key` of `obj`, made when there is none; whether it was made.
fn map_at(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    key: &str,
) -> Result<(ObjId, bool)> {
    Ok(match tx.get(obj, key)? {
        Some((Value::Object(ObjType::Map), map)) => (map, false),
        _ => (tx.put_object(obj, key, ObjType::Map)?, true),
    })
}

/// Makes the map at `key` of `obj` hold exactly `counts` (none at all when they are empty);
/// returns whether it wrote.
fn put_counts(
    tx: &mut automerge::transaction::Transaction<'_>,
    obj: &ObjId,
    key: &str,
    counts: &BTreeMap<String, u32>,
) -> Result<bool> {
    if counts.is_empty() {
        let there = tx.get(obj, key)?.is_some();
        if there {
            tx.delete(obj, key)?;
        }
        return Ok(there);
    }
    let (map, mut changed) = map_at(tx, obj, key)?;
    for (k, n) in counts {
        changed |= put_if(tx, &map, k, i64::from(*n).into())?;
    }
    let stale: Vec<String> = tx.keys(&map).filter(|k| !counts.contains_key(k)).collect();
    for k in stale {
        tx.delete(&map, k.as_str())?;
        changed = true;
    }
    Ok(changed)
}

/// Makes the week map at root `key` hold exactly the figures of `w`; returns whether it wrote.
fn put_week(
    tx: &mut automerge::transaction::Transaction<'_>,
    key: &str,
    w: &WeekFigures,
) -> Result<bool> {
    let (obj, mut changed) = map_at(tx, &ROOT, key)?;
    for (field, n) in w.counts() {
        changed |= put_if(tx, &obj, field, i64::from(n).into())?;
    }
    changed |= put_counts(tx, &obj, PILLARS, &w.pillars)?;
    changed |= put_counts(tx, &obj, NN, &w.non_negotiables)?;
    let stale: Vec<String> = tx
        .keys(&obj)
        .filter(|k| ![PILLARS, NN].contains(&k.as_str()) && !w.counts().iter().any(|(f, _)| f == k))
        .collect();
    for k in stale {
        tx.delete(&obj, k.as_str())?;
        changed = true;
    }
    Ok(changed)
}

/// The integer at `key` of `obj`, when it is one from 0 to `max`.
fn count_at<D: ReadDoc>(doc: &D, obj: &ObjId, key: &str, max: u32) -> Option<u32> {
    let (v, _) = doc.get(obj, key).ok().flatten()?;
    let n = match v.as_scalar()? {
        ScalarValue::Int(n) => u32::try_from(*n).ok()?,
        ScalarValue::Uint(n) => u32::try_from(*n).ok()?,
        // A counter would add up concurrent increments, a float is no count: neither is ours.
        _ => return None,
    };
    (n <= max).then_some(n)
}

/// The counts of the nested map of a week: each key accepted by `key_ok`, each value a count.
fn read_counts<D: ReadDoc>(
    doc: &D,
    obj: &ObjId,
    key_ok: impl Fn(&str) -> bool,
) -> std::result::Result<BTreeMap<String, u32>, &'static str> {
    let mut out = BTreeMap::new();
    for k in doc.keys(obj) {
        if out.len() == MAX_KEYS {
            return Err("names more than 64 pillars or non-negotiables");
        }
        if !key_ok(&k) {
            return Err("counts a pillar or non-negotiable by no valid name");
        }
        let n = count_at(doc, obj, &k, MAX_COUNT).ok_or("holds a count that is no count")?;
        out.insert(k, n);
    }
    Ok(out)
}

fn read_week<D: ReadDoc>(
    doc: &D,
    label: &str,
    obj: &ObjId,
) -> std::result::Result<WeekFigures, &'static str> {
    let start = parse_week(label).ok_or("names no ISO week")?;
    let mut w = WeekFigures {
        week: label.to_owned(),
        start,
        ..WeekFigures::default()
    };
    let mut seen = 0;
    for k in doc.keys(obj) {
        match doc.get(obj, k.as_str()).ok().flatten() {
            Some((Value::Object(ObjType::Map), map)) if k == PILLARS => {
                w.pillars = read_counts(doc, &map, |p| {
                    valid(Some(p.to_owned()), MAX_NAME_CHARS, true).as_deref() == Some(p)
                })?;
            }
            Some((Value::Object(ObjType::Map), map)) if k == NN => {
                w.non_negotiables = read_counts(doc, &map, is_nn_id)?;
            }
            _ => {
                let Some((_, slot)) = w.counts_mut().into_iter().find(|(f, _)| *f == k) else {
                    return Err("holds a field that is no figure");
                };
                *slot =
                    count_at(doc, obj, &k, MAX_COUNT).ok_or("holds a figure that is no count")?;
                seen += 1;
            }
        }
    }
    if seen < w.counts().len() {
        return Err("lacks a figure");
    }
    check_week(&w)?;
    Ok(w)
}

/// Reads a team's shared document into a [`Shared`]. Whatever it does not understand is left
/// out (and listed in [`Shared::ignored`], with why); nothing in a document makes it fail or
/// panic.
pub fn read<D: ReadDoc>(doc: &D) -> Result<Shared> {
    read_weeks(doc, |_| true)
}

/// The ISO weeks a shared document holds figures of, by their keys alone (cheap: no week is
/// read), oldest first. A malformed week is among them; [`read`] leaves it out.
pub fn week_labels<D: ReadDoc>(doc: &D) -> Vec<String> {
    let mut out: Vec<String> = doc
        .keys(ROOT)
        .filter_map(|k| k.strip_prefix(WEEK).map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// Reads a team's shared document as [`read`] does, with only the weeks `keep` keeps (by their
/// label, `2026-W49`): the team, its name and what it shares cost a few reads, and each week
/// kept a few more, however many weeks it holds. The others are not read (nor listed as
/// ignored).
pub fn read_weeks<D: ReadDoc>(doc: &D, keep: impl Fn(&str) -> bool) -> Result<Shared> {
    let mut s = Shared::default();
    for key in doc.keys(ROOT) {
        if key.strip_prefix(WEEK).is_some_and(|label| !keep(label)) {
            continue;
        }
        let got = doc.get(ROOT, key.as_str()).ok().flatten();
        let scalar: Option<ScalarValue> = match &got {
            Some((Value::Scalar(v), _)) => Some(v.clone().into_owned()),
            _ => None,
        };
        let text = scalar.as_ref().and_then(|v| v.as_str()).map(str::to_owned);
        let outcome: std::result::Result<(), &'static str> = match key.as_str() {
            "schema" | "at" => match scalar.as_ref().and_then(ScalarValue::as_i64) {
                Some(n) => {
                    if key == "at" {
                        s.at_ms = n;
                    }
                    Ok(())
                }
                None => Err("is not a number"),
            },
            "team" => match text {
                Some(t) if is_team_id(&t) => {
                    s.team = t;
                    Ok(())
                }
                _ => Err("names no team id"),
            },
            "name" => match valid(text, MAX_NAME_CHARS, true) {
                Some(n) => {
                    s.name = n;
                    Ok(())
                }
                None => Err("is no name: not text, empty or too long"),
            },
            "share" => match text.as_deref() {
                Some("nothing") => Ok(()),
                Some("weekly") => {
                    s.share = Share::Weekly;
                    Ok(())
                }
                _ => Err("is neither `nothing` nor `weekly`"),
            },
            k => match (k.strip_prefix(WEEK), got) {
                (Some(label), Some((Value::Object(ObjType::Map), obj))) => {
                    read_week(doc, label, &obj).map(|w| s.weeks.push(w))
                }
                (Some(_), _) => Err("is not a map of figures"),
                (None, _) => Err("is not part of a team's shared figures"),
            },
        };
        if let Err(why) = outcome {
            s.ignored.insert(key, why);
        }
    }
    s.weeks.sort_by_key(|w| w.start);
    Ok(s)
}

/// Why a change to a team's shared document is refused ([`check_change`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the document holds the figures of team `{holds}`; a device of team `{writer}` may not write them"
    )]
    OtherTeam { holds: String, writer: String },
    #[error("the change writes `{key}`, which {why}")]
    Unreadable { key: String, why: &'static str },
    #[error("the change keeps {0} weeks of figures; the most is 104")]
    TooManyWeeks(usize),
    #[error("the change writes the figures of week {0} while the team shares nothing")]
    NotShared(String),
}

/// Checks what a change may do to a team's shared document, from the document read before it
/// and after it, for a change written by a device of team `team_id`: the document names that
/// team; the change adds no key read as nothing (an unknown key, a malformed week, a number
/// out of bounds or contradicting another); it keeps no more than [`MAX_WEEKS`] weeks (unless
/// it keeps fewer than before); and it writes no week's figures while the team shares nothing.
pub fn check_change(
    team_id: &str,
    before: &Shared,
    after: &Shared,
) -> std::result::Result<(), Refusal> {
    if after.team != team_id {
        return Err(Refusal::OtherTeam {
            holds: after.team.clone(),
            writer: team_id.to_owned(),
        });
    }
    if let Some((key, why)) = after
        .ignored
        .iter()
        .find(|(k, _)| !before.ignored.contains_key(*k))
    {
        return Err(Refusal::Unreadable {
            key: key.clone(),
            why,
        });
    }
    let n = after.weeks.len();
    if n > MAX_WEEKS && n > before.weeks.len() {
        return Err(Refusal::TooManyWeeks(n));
    }
    if after.share == Share::Nothing
        && let Some(w) = after
            .weeks
            .iter()
            .find(|w| before.week(&w.week) != Some(*w))
    {
        return Err(Refusal::NotShared(w.week.clone()));
    }
    Ok(())
}

/// One team in the organisation's view of a week.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamFigures {
    pub team: String,
    pub name: String,
    /// What the team shares.
    pub share: Share,
    /// Its figures of the week; `None` when it shares nothing, or nothing for that week.
    pub shared: Option<WeekFigures>,
}

/// The organisation's figures of a week: the sums over the teams that shared it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrgTotals {
    /// How many teams shared the week.
    pub teams: u32,
    /// Each figure summed over them (`consistency`: their active days together; pillars by
    /// name, non-negotiables by id); [`WeekFigures::active_share`] is the organisation's.
    #[serde(flatten)]
    pub figures: WeekFigures,
}

/// The organisation's view of one week.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrgFigures {
    /// The ISO week shown; `None` when none was asked and no team shared any.
    pub week: Option<String>,
    /// Every team of the organisation, sorted by name (regardless of case), then id: never
    /// ranked.
    pub teams: Vec<TeamFigures>,
    /// The sums over the teams that shared the week; `None` when none did.
    pub total: Option<OrgTotals>,
}

/// The organisation's view of `week` (an ISO week, `2026-W49`; by default the latest week any
/// team shared): every team of `teams` (id, and its name as the organisation knows it, which
/// the team's document overrides), with its figures from `shared` (the teams' shared
/// documents; one of a team not in `teams`, which left the organisation, is not shown), and
/// their sums. A team that shares nothing is listed as such.
pub fn org_view(teams: &[(String, String)], shared: &[Shared], week: Option<&str>) -> OrgFigures {
    let mut listed: Vec<&(String, String)> = Vec::new();
    for t in teams {
        if !listed.iter().any(|l| l.0 == t.0) {
            listed.push(t);
        }
    }
    let doc_of = |id: &str| shared.iter().find(|s| s.team == id);
    let sharing = || {
        listed
            .iter()
            .filter_map(|(id, _)| doc_of(id))
            .filter(|s| s.share == Share::Weekly)
    };
    let week: Option<String> = week.map(str::to_owned).or_else(|| {
        sharing()
            .flat_map(|s| &s.weeks)
            .map(|w| &w.week)
            .max()
            .cloned()
    });
    let mut rows: Vec<TeamFigures> = listed
        .iter()
        .map(|(id, known)| {
            let doc = doc_of(id);
            let share = doc.map_or(Share::Nothing, |d| d.share);
            let shared = match (doc, &week) {
                (Some(d), Some(w)) if share == Share::Weekly => d.week(w).cloned(),
                _ => None,
            };
            TeamFigures {
                team: id.clone(),
                name: doc
                    .map(|d| d.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| known.clone()),
                share,
                shared,
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.name.to_lowercase(), &a.team).cmp(&(b.name.to_lowercase(), &b.team)));
    let mut total: Option<OrgTotals> = None;
    for w in rows.iter().filter_map(|r| r.shared.as_ref()) {
        let t = total.get_or_insert_with(|| OrgTotals {
            teams: 0,
            figures: WeekFigures {
                week: w.week.clone(),
                start: w.start,
                ..WeekFigures::default()
            },
        });
        t.teams += 1;
        let sum = &mut t.figures;
        for ((_, s), (_, n)) in sum.counts_mut().into_iter().zip(w.counts()) {
            *s = s.saturating_add(n);
        }
        for (k, n) in &w.pillars {
            let s = sum.pillars.entry(k.clone()).or_default();
            *s = s.saturating_add(*n);
        }
        for (k, n) in &w.non_negotiables {
            let s = sum.non_negotiables.entry(k.clone()).or_default();
            *s = s.saturating_add(*n);
        }
    }
    OrgFigures {
        week,
        teams: rows,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EventId;
    use crate::{Event, team};
    use automerge::{ActorId, Automerge};
    use jiff::civil::date;

    /// Monday 2026-11-09, 09:00 UTC.
    const T0: i64 = 1_794_214_800_000;
    const NN_ID: &str = "k3j9x0aa";

    fn otters() -> TeamState {
        let mut doc = Automerge::new();
        team::init(&mut doc, "Otters", "UTC", "Ana", "ana", "ana", T0).unwrap();
        for (id, name) in [("bo", "Bo"), ("cy", "Cy")] {
            let state = team::read(&doc).unwrap();
            team::add_member(&mut doc, &state, id, name, None, T0 + 1).unwrap();
        }
        let state = team::read(&doc).unwrap();
        team::add_placeholder(&mut doc, &state, "di", "Di", None, T0 + 2).unwrap();
        team::read(&doc).unwrap()
    }

    fn ev(n: u8, author: &str, d: &str, kind: Kind, pillar: Option<&str>, to: &[&str]) -> Event {
        Event {
            id: EventId::new(T0 + i64::from(n), [n; 5]),
            kind,
            author: author.into(),
            at_ms: T0,
            tz: "UTC".into(),
            date: d.into(),
            late: false,
            pillar: pillar.map(str::to_owned),
            text: "t".into(),
            why: None,
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            target: None,
            emoji: None,
            retracted: false,
            edited_ms: None,
            honours: None,
        }
    }

    /// The acts of `events` as the replica lists them: those that count, nothing else.
    fn acts_of(events: &[Event]) -> Vec<Act> {
        events
            .iter()
            .filter(|e| e.counts())
            .map(|e| Act {
                author: e.author.clone(),
                date: e.date.parse().unwrap(),
                kind: e.kind,
                pillar: e.pillar.clone(),
                to: e.to.clone(),
            })
            .collect()
    }

    fn week_of_otters() -> WeekFigures {
        let mut retracted = ev(6, "bo", "2026-11-19", Kind::Action, Some("trust"), &[]);
        retracted.retracted = true;
        let events = [
            ev(1, "ana", "2026-11-16", Kind::Action, Some("trust"), &[]),
            ev(2, "bo", "2026-11-17", Kind::Kudos, None, &["ana"]),
            ev(
                3,
                "ana",
                "2026-11-17",
                Kind::Action,
                Some("empowerment"),
                &[],
            ),
            ev(4, "ana", "2026-11-18", Kind::Action, Some("archived"), &[]),
            ev(5, "cy", "2026-11-09", Kind::Action, Some("trust"), &[]),
            retracted,
            ev(7, "cy", "2026-11-20", Kind::Reaction, None, &[]),
        ];
        let honoured = [
            (date(2026, 11, 16), NN_ID.to_owned()),
            (date(2026, 11, 23), NN_ID.to_owned()),
            (date(2026, 11, 17), "Not An Id".to_owned()),
        ];
        let across = [(date(2026, 11, 18), 2), (date(2026, 11, 10), 5)];
        let team = otters();
        let acts = acts_of(&events);
        let week = compute(&team, &acts, &honoured, &across, date(2026, 11, 19));
        let mut reversed = acts.clone();
        reversed.reverse();
        assert_eq!(
            compute(&team, &reversed, &honoured, &across, date(2026, 11, 16)),
            week,
            "the same figures whatever the order and the day of the week asked"
        );
        week
    }

    #[test]
    fn a_small_teams_week_counts_right() {
        let w = week_of_otters();
        assert_eq!((w.week.as_str(), w.start), ("2026-W47", date(2026, 11, 16)));
        // Di, a placeholder who neither arrived nor acted, is not counted; Cy acted only the
        // week before; Bo's micro-action was retracted, a reaction is no act.
        assert_eq!((w.members, w.active, w.consistency), (3, 2, 3));
        assert_eq!((w.acts, w.actions, w.kudos), (4, 3, 1));
        let pillars: Vec<(&str, u32)> = w.pillars.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(pillars, [("empowerment", 1), ("other", 1), ("trust", 1)]);
        assert_eq!(w.non_negotiables, BTreeMap::from([(NN_ID.to_owned(), 1)]));
        assert_eq!((w.reach_within, w.reach_across), (1, 2));
        assert_eq!(w.active_share(), Some(2.0 / 3.0));
        assert_eq!(check_week(&w), Ok(()));
        // The week before: Cy alone, and the team had not begun the week before that.
        let team = otters();
        let acts = acts_of(&[ev(5, "cy", "2026-11-09", Kind::Action, None, &[])]);
        let before = compute(&team, &acts, &[], &[], date(2026, 11, 9));
        assert_eq!((before.members, before.active, before.acts), (3, 1, 1));
        let none = compute(&team, &acts, &[], &[], date(2026, 11, 2));
        assert_eq!((none.members, none.active, none.acts), (0, 0, 0));
    }

    #[test]
    fn weeks_are_iso_weeks_and_only_closed_ones_are_shared() {
        assert_eq!(
            closed_weeks(date(2026, 11, 22), 2),
            [date(2026, 11, 2), date(2026, 11, 9)]
        );
        assert_eq!(closed_weeks(date(2026, 11, 23), 1), [date(2026, 11, 16)]);
        assert!(closed_weeks(date(2026, 11, 23), 0).is_empty());
        assert_eq!(week_label(date(2026, 1, 1)), "2026-W01");
        assert_eq!(week_label(date(2027, 1, 3)), "2026-W53");
        assert_eq!(parse_week("2026-W53"), Some(date(2026, 12, 28)));
        assert_eq!(parse_week("2026-W01"), Some(date(2025, 12, 29)));
        for bad in [
            "2025-W53", "2026-W1", "2026-w47", "2026-W00", "2026W047", "x",
        ] {
            assert_eq!(parse_week(bad), None, "{bad}");
        }
        assert_eq!(doc_id("t0"), "s/t0");
        assert_eq!(doc_team("s/t0"), Some("t0"));
        for bad in ["s/", "s/T0", "s/t0/x", "t0", "x/t0"] {
            assert_eq!(doc_team(bad), None, "{bad}");
        }
    }

    fn doc(actor: u8) -> Automerge {
        Automerge::new().with_actor(ActorId::from([actor; 16]))
    }

    fn weeks(n: usize) -> Vec<WeekFigures> {
        closed_weeks(date(2026, 11, 25), n)
            .into_iter()
            .map(|start| WeekFigures {
                week: week_label(start),
                start,
                members: 4,
                active: 1,
                consistency: 1,
                acts: 2,
                actions: 2,
                ..WeekFigures::default()
            })
            .collect()
    }

    #[test]
    fn the_same_figures_written_twice_make_one_change() {
        let w = week_of_otters();
        let weekly = |d: &mut Automerge, weeks: &[WeekFigures], at: i64| {
            write(d, "t0", "Otters", Share::Weekly, weeks, at)
        };
        let mut a = doc(1);
        assert!(weekly(&mut a, std::slice::from_ref(&w), 10).unwrap());
        assert_eq!(a.get_changes(&[]).len(), 1);
        assert!(!weekly(&mut a, std::slice::from_ref(&w), 20).unwrap());
        assert_eq!(a.get_changes(&[]).len(), 1);
        // Another member's replica computes the same: nothing to write either.
        let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
        assert!(!weekly(&mut b, std::slice::from_ref(&w), 30).unwrap());
        assert_eq!(b.get_changes(&[]).len(), 1);
        let s = read(&a).unwrap();
        assert_eq!(
            (s.team.as_str(), s.name.as_str(), s.share, s.at_ms),
            ("t0", "Otters", Share::Weekly, 10)
        );
        assert_eq!(s.weeks, std::slice::from_ref(&w));
        assert!(s.ignored.is_empty(), "{:?}", s.ignored);
        assert_eq!(check_change("t0", &Shared::default(), &s), Ok(()));
        // A figure that moved (an act synced late) and one pillar fewer: only that is written.
        let mut moved = w.clone();
        moved.acts += 1;
        moved.kudos += 1;
        moved.pillars.remove("other");
        moved.non_negotiables.clear();
        assert!(weekly(&mut a, std::slice::from_ref(&moved), 40).unwrap());
        assert_eq!(a.get_changes(&[]).len(), 2);
        let now = read(&a).unwrap();
        assert_eq!((now.weeks.as_slice(), now.at_ms), ([moved].as_slice(), 40));
        assert_eq!(check_change("t0", &s, &now), Ok(()));
        // Figures no check would let through are not written.
        let mut wrong = w;
        wrong.active = wrong.members + 1;
        assert!(matches!(
            weekly(&mut a, &[wrong], 50),
            Err(Error::BadRule(_))
        ));
        assert!(write(&mut a, "T0!", "Otters", Share::Weekly, &[], 50).is_err());
        assert_eq!(a.get_changes(&[]).len(), 2);
    }

    #[test]
    fn one_week_reads_as_the_whole_document_says_it() {
        let mut d = doc(1);
        let all = weeks(12);
        write(&mut d, "t0", "Otters", Share::Weekly, &all, 5).unwrap();
        let whole = read(&d).unwrap();
        let labels = week_labels(&d);
        assert_eq!(labels.len(), 12);
        assert!(labels.windows(2).all(|w| w[0] < w[1]), "{labels:?}");
        let third = &labels[2];
        let one = read_weeks(&d, |l| l == third).unwrap();
        assert_eq!(one.weeks, vec![whole.week(third).unwrap().clone()]);
        assert_eq!(
            (&one.team, &one.name, one.share),
            (&whole.team, &whole.name, whole.share)
        );
        assert!(one.ignored.is_empty());
        assert!(read_weeks(&d, |_| false).unwrap().weeks.is_empty());
    }

    #[test]
    fn a_team_that_stops_sharing_takes_its_weeks_back() {
        let mut d = doc(1);
        write(&mut d, "t0", "Otters", Share::Weekly, &weeks(3), 10).unwrap();
        let before = read(&d).unwrap();
        assert_eq!(before.weeks.len(), 3);
        hand(&mut d, |tx| tx.put(ROOT, "w/someday", 1));
        assert!(write(&mut d, "t0", "Otters", Share::Nothing, &weeks(3), 20).unwrap());
        let after = read(&d).unwrap();
        assert_eq!((after.share, after.weeks.len()), (Share::Nothing, 0));
        assert!(d.keys(ROOT).all(|k| !k.starts_with(WEEK)));
        assert_eq!(check_change("t0", &before, &after), Ok(()));
        assert!(!write(&mut d, "t0", "Otters", Share::Nothing, &[], 30).unwrap());
        // A team that never shared says so too.
        let mut fresh = doc(2);
        assert!(write(&mut fresh, "t1", "Ants", Share::Nothing, &weeks(2), 10).unwrap());
        let s = read(&fresh).unwrap();
        assert!(s.weeks.is_empty() && s.share == Share::Nothing && s.ignored.is_empty());
    }

    #[test]
    fn at_most_two_years_are_kept_the_oldest_go_first() {
        let all = weeks(MAX_WEEKS + 6);
        let mut d = doc(1);
        write(&mut d, "t0", "Otters", Share::Weekly, &all, 10).unwrap();
        let s = read(&d).unwrap();
        assert_eq!(s.weeks.len(), MAX_WEEKS);
        assert_eq!(s.weeks[0], all[6]);
        assert_eq!(s.weeks.last(), all.last());
        // A week older than those kept is not written (and dropped at once).
        assert!(!write(&mut d, "t0", "Otters", Share::Weekly, &all[..1], 20).unwrap());
        // A new week pushes the oldest out.
        let next = compute(&TeamState::default(), &[], &[], &[], date(2026, 11, 23));
        assert!(
            write(
                &mut d,
                "t0",
                "Otters",
                Share::Weekly,
                std::slice::from_ref(&next),
                30
            )
            .unwrap()
        );
        let now = read(&d).unwrap();
        assert_eq!((now.weeks.len(), &now.weeks[0]), (MAX_WEEKS, &all[7]));
        assert_eq!(now.weeks.last(), Some(&next));
        assert_eq!(check_change("t0", &s, &now), Ok(()));
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
        let mut d = doc(1);
        write(&mut d, "t0", "Otters", Share::Weekly, &weeks(2), 10).unwrap();
        let label = weeks(2)[1].week.clone();
        hand(&mut d, |tx| {
            tx.put(ROOT, "member/ana", "active every day")?;
            tx.put(ROOT, "w/2026-W99", 3)?;
            let m = tx.put_object(ROOT, "w/2025-W53", ObjType::Map)?;
            tx.put(&m, "acts", 1)?;
            let m = tx.put_object(ROOT, "w/2026-W30", ObjType::Map)?;
            for (f, n) in weeks(1)[0].counts() {
                tx.put(&m, f, i64::from(n))?;
            }
            tx.put(&m, "ana", 5)?;
            let m = tx.put_object(ROOT, "w/2026-W31", ObjType::Map)?;
            for (f, n) in weeks(1)[0].counts() {
                tx.put(&m, f, i64::from(n))?;
            }
            tx.put(&m, "active", ScalarValue::F64(1.5))?;
            let (_, w) = tx.get(ROOT, format!("w/{label}").as_str())?.unwrap();
            let p = tx.put_object(&w, PILLARS, ObjType::Map)?;
            tx.put(&p, "trust", -1)?;
            Ok(())
        });
        let s = read(&d).unwrap();
        assert_eq!(s.weeks, weeks(2)[..1]);
        let ignored: Vec<&str> = s.ignored.keys().map(String::as_str).collect();
        let bad = format!("w/{label}");
        assert_eq!(
            ignored,
            [
                "member/ana",
                "w/2025-W53",
                "w/2026-W30",
                "w/2026-W31",
                bad.as_str(),
                "w/2026-W99"
            ]
        );
        assert_eq!(s.ignored["w/2026-W30"], "holds a field that is no figure");
        assert_eq!(
            s.ignored["member/ana"],
            "is not part of a team's shared figures"
        );
        // A write puts right what it writes, and leaves what is not its own alone.
        write(&mut d, "t0", "Otters", Share::Weekly, &weeks(2), 20).unwrap();
        let s = read(&d).unwrap();
        assert_eq!(s.weeks, weeks(2));
        assert!(!s.ignored.contains_key(&bad));
        // Empty and hostile documents read without failing.
        assert_eq!(read(&Automerge::new()).unwrap(), Shared::default());
        let mut odd = doc(3);
        hand(&mut odd, |tx| {
            tx.put(ROOT, "team", "Not A Team")?;
            tx.put(ROOT, "name", "")?;
            tx.put(ROOT, "share", "monthly")?;
            tx.put(ROOT, "at", "now")?;
            Ok(())
        });
        let s = read(&odd).unwrap();
        assert_eq!(s.ignored.len(), 4);
        assert_eq!((s.team.as_str(), s.share), ("", Share::Nothing));
    }

    #[test]
    fn the_check_refuses_what_a_team_may_not_write() {
        let mut d = doc(1);
        write(&mut d, "t0", "Otters", Share::Weekly, &weeks(2), 10).unwrap();
        let good = read(&d).unwrap();
        let empty = Shared::default();

        // Another team's figures, or a document that names another team.
        assert_eq!(
            check_change("t1", &empty, &good),
            Err(Refusal::OtherTeam {
                holds: "t0".into(),
                writer: "t1".into()
            })
        );
        let mut f = d.fork();
        hand(&mut f, |tx| tx.put(ROOT, "team", "t1"));
        assert!(matches!(
            check_change("t0", &good, &read(&f).unwrap()),
            Err(Refusal::OtherTeam { .. })
        ));

        // A key that is not the document's.
        let mut f = d.fork();
        hand(&mut f, |tx| tx.put(ROOT, "who/ana", "idle"));
        assert_eq!(
            check_change("t0", &good, &read(&f).unwrap()),
            Err(Refusal::Unreadable {
                key: "who/ana".into(),
                why: "is not part of a team's shared figures"
            })
        );

        // A number past its bounds.
        let label = format!("w/{}", good.weeks[0].week);
        let (_, w) = d.get(ROOT, label.as_str()).unwrap().unwrap();
        for (field, n, why) in [
            ("members", 100_001, "counts more than 100000 members"),
            ("active", 5, "counts more active members than members"),
            ("consistency", 8, "counts more than seven active days"),
            (
                "acts",
                1,
                "counts more micro-actions or recognitions than acts",
            ),
        ] {
            let mut f = d.fork();
            hand(&mut f, |tx| {
                let m = tx.put_object(ROOT, "w/2026-W30", ObjType::Map)?;
                for (f, v) in weeks(1)[0].counts() {
                    tx.put(&m, f, i64::from(v))?;
                }
                tx.put(&m, field, n)
            });
            let refusal = check_change("t0", &good, &read(&f).unwrap()).unwrap_err();
            assert_eq!(
                refusal,
                Refusal::Unreadable {
                    key: "w/2026-W30".into(),
                    why
                },
                "{field}"
            );
            assert!(
                refusal
                    .to_string()
                    .starts_with("the change writes `w/2026-W30`, which ")
            );
        }
        let mut f = d.fork();
        hand(&mut f, |tx| {
            tx.put(&w, "members", i64::from(MAX_MEMBERS) + 1)
        });
        assert!(matches!(
            check_change("t0", &good, &read(&f).unwrap()),
            Err(Refusal::Unreadable { .. })
        ));

        // Too many weeks.
        let mut f = d.fork();
        hand(&mut f, |tx| {
            for start in closed_weeks(date(2024, 6, 1), MAX_WEEKS - 1) {
                let m =
                    tx.put_object(ROOT, format!("{WEEK}{}", week_label(start)), ObjType::Map)?;
                for (f, v) in weeks(1)[0].counts() {
                    tx.put(&m, f, i64::from(v))?;
                }
            }
            Ok(())
        });
        let many = read(&f).unwrap();
        assert_eq!(
            check_change("t0", &good, &many),
            Err(Refusal::TooManyWeeks(MAX_WEEKS + 1))
        );
        assert_eq!(
            Refusal::TooManyWeeks(105).to_string(),
            "the change keeps 105 weeks of figures; the most is 104"
        );

        // Figures while the team shares nothing.
        let mut f = d.fork();
        write(&mut f, "t0", "Otters", Share::Nothing, &[], 20).unwrap();
        let stopped = read(&f).unwrap();
        let mut g = f.fork();
        hand(&mut g, |tx| {
            let m = tx.put_object(ROOT, "w/2026-W30", ObjType::Map)?;
            for (f, v) in weeks(1)[0].counts() {
                tx.put(&m, f, i64::from(v))?;
            }
            Ok(())
        });
        assert_eq!(
            check_change("t0", &stopped, &read(&g).unwrap()),
            Err(Refusal::NotShared("2026-W30".into()))
        );
    }

    fn shared(team_id: &str, name: &str, share: Share, weeks: &[WeekFigures]) -> Shared {
        let mut d = doc(1);
        write(&mut d, team_id, name, share, weeks, 10).unwrap();
        read(&d).unwrap()
    }

    #[test]
    fn the_organisation_sees_teams_by_name_and_those_that_share_nothing() {
        let two = weeks(2);
        let (w46, w47) = (&two[0], &two[1]);
        let mut other = w46.clone();
        other.members = 10;
        other.active = 2;
        other.pillars.insert("trust".into(), 2);
        let docs = [
            shared("t0", "Otters", Share::Weekly, &two),
            shared("t1", "ants", Share::Nothing, &[]),
            shared("t2", "Zebras", Share::Weekly, &[other.clone()]),
        ];
        let teams = [
            ("t2".to_owned(), "zebras".to_owned()),
            ("t0".to_owned(), "otters, before they renamed".to_owned()),
            ("t1".to_owned(), "Ants".to_owned()),
            ("t3".to_owned(), "Badgers".to_owned()),
        ];
        let v = org_view(&teams, &docs, None);
        assert_eq!(v.week.as_deref(), Some(w47.week.as_str()));
        let rows: Vec<(&str, Share, bool)> = v
            .teams
            .iter()
            .map(|t| (t.name.as_str(), t.share, t.shared.is_some()))
            .collect();
        assert_eq!(
            rows,
            [
                ("ants", Share::Nothing, false),
                ("Badgers", Share::Nothing, false),
                ("Otters", Share::Weekly, true),
                ("Zebras", Share::Weekly, false),
            ]
        );
        let total = v.total.unwrap();
        assert_eq!((total.teams, total.figures.members), (1, 4));

        let v = org_view(&teams, &docs, Some(&w46.week));
        let total = v.total.unwrap();
        assert_eq!(total.teams, 2);
        let f = &total.figures;
        assert_eq!((f.members, f.active, f.acts), (14, 3, 4));
        assert_eq!(f.active_share(), Some(3.0 / 14.0));
        assert_eq!(f.pillars["trust"], 2);
        // Nobody shared: every team is listed, and there is nothing to sum.
        let v = org_view(&teams, &docs[1..2], None);
        assert_eq!((v.week, v.total, v.teams.len()), (None, None, 4));
        // A team that left the organisation is not shown, whatever its document says.
        let v = org_view(&teams[..1], &docs, None);
        assert_eq!(v.teams.len(), 1);
        assert_eq!(v.week.as_deref(), Some(other.week.as_str()));
    }

    #[test]
    fn whatever_is_written_reads_without_panicking() {
        use proptest::prelude::*;
        const KEYS: [&str; 10] = [
            "team",
            "share",
            "name",
            "at",
            "w/2026-W46",
            "w/2026-W47",
            "active",
            "members",
            "pillars",
            "trust",
        ];
        let scalar = prop_oneof![
            (-2i64..200_000).prop_map(ScalarValue::Int),
            any::<bool>().prop_map(ScalarValue::Boolean),
            "[a-z0-9 \n]{0,12}".prop_map(|t| ScalarValue::Str(t.into())),
            Just(ScalarValue::Null),
            any::<f64>().prop_map(ScalarValue::F64),
        ];
        let cfg = ProptestConfig {
            cases: 64,
            ..ProptestConfig::default()
        };
        proptest!(cfg, |(writes in proptest::collection::vec((0..KEYS.len(), 0..KEYS.len(), 0..4u8, scalar), 0..24))| {
            let mut d = doc(1);
            write(&mut d, "t0", "Otters", Share::Weekly, &weeks(2), 10).unwrap();
            let good = read(&d).unwrap();
            for (k, inner, how, value) in writes {
                let key = KEYS[k];
                let _ = d.transact::<_, _, automerge::AutomergeError>(|tx| {
                    let target = match tx.get(ROOT, key)? {
                        Some((Value::Object(_), obj)) if how > 0 => obj,
                        _ => ROOT,
                    };
                    match (how, target == ROOT) {
                        (0, _) | (_, true) => tx.put(&target, key, value.clone())?,
                        (1, false) => tx.put(&target, KEYS[inner], value.clone())?,
                        (2, false) => tx.delete(&target, KEYS[inner])?,
                        _ => {
                            tx.put_object(&target, KEYS[inner], ObjType::Map)?;
                        }
                    }
                    Ok(())
                });
                let now = read(&d).unwrap();
                let _ = check_change("t0", &good, &now);
                prop_assert!(now.weeks.iter().all(|w| check_week(w).is_ok()));
                // Whatever it holds, a write puts the team's figures right.
                let mut fixed = d.fork();
                write(&mut fixed, "t0", "Otters", Share::Weekly, &weeks(2), 20).unwrap();
                let f = read(&fixed).unwrap();
                prop_assert_eq!(&f.weeks, &weeks(2));
                prop_assert_eq!(f.team.as_str(), "t0");
                prop_assert_eq!(f.share, Share::Weekly);
            }
        });
    }
}
