//! The writer context and a member's writes: log, kudos, react, edit, retract, with the rules
//! every client applies the same way (the late-log window, who a kudos names, who may write as
//! whom); a steward's changes to the organisation's non-negotiables, in its replica in this
//! home, and a team's own how of each, in the team's document.

use cairn_core::ids::EventId;
use cairn_core::{Edit, Event, NewEvent, OrgCommitment, OrgState, Stamp, TeamState};
use cairn_store::{Reacted, Replica};
use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// A failure of a member's write.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What was given as a day is not one.
    #[error("`{0}` is not a day")]
    BadDay(String),
    /// A late log for a day still to come.
    #[error("{0} has not happened yet")]
    NotYet(Date),
    /// A late log for a day before the team's late window.
    #[error("{day} is further back than the team logs late (from {earliest})")]
    TooLate { day: Date, earliest: Date },
    /// A kudos that names nobody.
    #[error("name at least one teammate")]
    NoRecipients,
    /// Writing as another member of a team that lives on a server (the server takes from a
    /// device only its own member's writes).
    #[error("writing as another member works only while the team lives on this device alone")]
    ActingOnServer,
    /// A member's own setting asked of a device of someone else's (the server takes a member's
    /// settings from their own devices alone).
    #[error("only @{0} says whether they are named in chat: it is their own setting")]
    NotYourSetting(String),
    /// The start of an id that more than one non-negotiable's id starts with.
    #[error("`{0}` starts more than one non-negotiable's id")]
    Ambiguous(String),
    /// An act that names a non-negotiable, in a team of no organisation.
    #[error("this team belongs to no organisation: it has no non-negotiable to honour")]
    NoOrganisation,
    /// An id that none of the organisation's non-negotiables has or starts with.
    #[error("the organisation has no non-negotiable `{0}`")]
    NoSuchNonNegotiable(String),
    /// A non-negotiable its stewards retired: no act honours it any more.
    #[error("“{title}” is retired: no act honours it any more")]
    RetiredNonNegotiable { id: String, title: String },
    /// A recognition across teams names someone without their team (`@ben@platform`).
    #[error("`{0}` names nobody of another team: write it as @handle@team, like @ben@platform")]
    NotAcross(String),
    /// A team of the organisation `@handle@team` does not name.
    #[error("no team of the organisation is called `{typed}`{}", if known.is_empty() { " (this device has not heard the organisation's people yet: run `cairn sync`)".to_owned() } else { format!("; its teams: {}", known.join(", ")) })]
    UnknownTeam { typed: String, known: Vec<String> },
    /// Nobody of that team has the handle.
    #[error(
        "nobody of team {team} is `{typed}`; `cairn sync` brings the organisation's people up to date"
    )]
    UnknownPerson { typed: String, team: String },
    /// The operating system gave no random bytes.
    #[error("the system gave no randomness: {0}")]
    Random(#[source] getrandom::Error),
    /// A rule of the domain refused the write (an unknown member or pillar, empty text, ...).
    #[error(transparent)]
    Core(#[from] cairn_core::Error),
    /// The replica failed.
    #[error(transparent)]
    Store(#[from] cairn_store::Error),
}

/// The writes' result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When and where a person writes: the instant, and the zone they are in.
#[derive(Clone, Debug)]
pub struct Clock {
    pub now: Timestamp,
    /// The person's zone (the system's, for a person at their own machine).
    pub tz: TimeZone,
}

impl Clock {
    pub fn new(now: Timestamp, tz: TimeZone) -> Clock {
        Clock { now, tz }
    }

    pub fn now_ms(&self) -> i64 {
        self.now.as_millisecond()
    }

    /// The person's zone and its IANA name. A zone without one (a bare /etc/localtime, a POSIX
    /// `TZ`, a misspelt `TZ`) gives way to `fallback`, so an event's recorded zone and its local
    /// date always agree.
    pub fn zone(&self, fallback: &str) -> (String, TimeZone) {
        match self.tz.iana_name() {
            Some(name) if !name.is_empty() && name != "Etc/Unknown" => {
                (name.to_owned(), self.tz.clone())
            }
            _ => match TimeZone::get(fallback) {
                Ok(tz) => (fallback.to_owned(), tz),
                Err(_) => ("UTC".to_owned(), TimeZone::UTC),
            },
        }
    }

    /// The IANA name of the person's zone; `fallback` when it has none.
    pub fn zone_name(&self, fallback: &str) -> String {
        self.zone(fallback).0
    }

    /// Today's date where the person is.
    pub fn today(&self, team_tz: &str) -> Date {
        self.now.to_zoned(self.zone(team_tz).1).date()
    }

    /// When and where an event happens now; `late` counts it for yesterday.
    pub fn stamp(&self, team_tz: &str, late: bool) -> Stamp {
        let (zone, tz) = self.zone(team_tz);
        cairn_core::time::stamp(self.now_ms(), &zone, &tz, late)
    }

    /// When and where an event happens now, counted for `on` when given (a late log).
    pub fn stamp_on(&self, team_tz: &str, on: Option<Date>) -> Stamp {
        let (zone, tz) = self.zone(team_tz);
        cairn_core::time::stamp_on(self.now_ms(), &zone, &tz, on)
    }

    /// A fresh event id for now.
    pub fn new_event_id(&self) -> Result<EventId> {
        Ok(EventId::new(self.now_ms(), random_bytes()?))
    }
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(Error::Random)?;
    Ok(buf)
}

/// The member a write acts as: `acting_as` (a handle) when given, else the device's owner. A
/// team on a server takes from a device only its own member's writes.
pub fn actor(replica: &Replica, team: &TeamState, acting_as: Option<&str>) -> Result<String> {
    let me = replica.me()?;
    let Some(h) = acting_as else {
        return Ok(me);
    };
    let id = team.member_by_handle(h)?.id.clone();
    if id != me && replica.remote()?.is_some() {
        return Err(Error::ActingOnServer);
    }
    Ok(id)
}

/// Refuses, before anything is written, a member's own setting (whether they are named in chat)
/// set for member `acting_as` (a handle) by a device of someone else's, on a team that lives on
/// a server: the server would refuse it, and the device could send nothing else until then.
/// While the team lives on this device alone, its one person writes for everyone, as
/// [`actor`] allows.
pub fn own_setting(replica: &Replica, team: &TeamState, acting_as: Option<&str>) -> Result<()> {
    let Some(h) = acting_as else {
        return Ok(());
    };
    let m = team.member_by_handle(h)?;
    if m.id != replica.me()? && replica.remote()?.is_some() {
        return Err(Error::NotYourSetting(m.handle.clone()));
    }
    Ok(())
}

/// A writing command's replica, with the member it acts as, the team as it was when it began,
/// and the clock it writes by.
#[derive(Debug)]
pub struct Writer<'r> {
    pub replica: &'r mut Replica,
    /// The member who writes.
    pub me: String,
    pub team: TeamState,
    pub clock: Clock,
    outbox_at: i64,
    /// The non-negotiable the next act honours ([`Writer::honouring`]).
    honours: Option<String>,
}

impl<'r> Writer<'r> {
    /// A writer on `replica` acting as `acting_as` (see [`actor`]), the team read once.
    pub fn new(replica: &'r mut Replica, clock: Clock, acting_as: Option<&str>) -> Result<Self> {
        let team = replica.team()?;
        let me = actor(replica, &team, acting_as)?;
        let outbox_at = replica.outbox_head()?;
        Ok(Writer {
            replica,
            me,
            team,
            clock,
            outbox_at,
            honours: None,
        })
    }

    /// Whether this writer left changes for the server, so far.
    pub fn wrote(&self) -> Result<bool> {
        Ok(self.replica.outbox_head()? > self.outbox_at)
    }

    /// Logs a micro-action, counted for the day `on` names (see [`parse_day`]) when given: a
    /// day within the team's late window, never one to come.
    pub fn log(
        &mut self,
        text: &str,
        pillar: Option<String>,
        why: Option<String>,
        on: Option<&str>,
    ) -> Result<(EventId, Stamp)> {
        let team = &self.team;
        let on = match on {
            Some(text) => Some(late_day(team, self.clock.today(&team.tz), text)?),
            None => None,
        };
        let stamp = self.clock.stamp_on(&team.tz, on);
        let id = self.clock.new_event_id()?;
        let new = NewEvent::action(text, pillar, why).honouring(self.honours.take());
        self.replica.add_event(&self.me, &id, &stamp, &new)?;
        Ok((id, stamp))
    }

    /// Recognises the members `who` names (see [`recipients`]) for `text`.
    pub fn kudos(&mut self, who: &[&str], text: &str, pillar: Option<String>) -> Result<EventId> {
        let to = recipients(&self.team, who)?;
        let stamp = self.clock.stamp(&self.team.tz, false);
        let id = self.clock.new_event_id()?;
        let new = NewEvent::kudos(to, text, pillar).honouring(self.honours.take());
        self.replica.add_event(&self.me, &id, &stamp, &new)?;
        Ok(id)
    }

    /// Names the organisation's non-negotiable that the next act this writer logs or gives
    /// ([`Writer::log`], [`Writer::kudos`]) honours: `id` as [`honoured`] reads it in `org`,
    /// the organisation's document (`None` for a team of none). Returns it.
    pub fn honouring(&mut self, org: Option<&OrgState>, id: &str) -> Result<OrgCommitment> {
        let c = honoured(org, id)?.clone();
        self.honours = Some(c.id.clone());
        Ok(c)
    }

    /// Adds this member's `emoji` to the event `id` names (a prefix will do), or takes it back.
    pub fn react(&mut self, id: &str, emoji: &str) -> Result<(Event, Reacted)> {
        let target = self.replica.resolve(id, &self.me)?;
        let stamp = self.clock.stamp(&self.team.tz, false);
        let new_id = self.clock.new_event_id()?;
        let outcome = self
            .replica
            .react(&self.me, &target.id, emoji, &new_id, &stamp)?;
        Ok((target, outcome))
    }

    /// Says whether this member may be named in chat: a relay posts a recognition from or to
    /// a member who said no only as a count in the digest, never one by one. Returns whether
    /// that changed what the team document said (it is written either way, so this device's
    /// last word counts). The setting is in the team document: every teammate's replica holds
    /// it.
    pub fn set_named_in_chat(&mut self, named: bool) -> Result<bool> {
        let me = self.me.clone();
        let news = self.replica.change_team(&me, |doc, state| {
            cairn_core::team::set_named_in_chat(doc, state, &me, named)
        })?;
        self.team = self.replica.team()?;
        Ok(news)
    }

    /// Changes this member's event `id` names.
    pub fn edit(&mut self, id: &str, edit: &Edit) -> Result<Event> {
        let event = self.replica.resolve(id, &self.me)?;
        self.replica
            .edit_event(&self.me, &event.id, edit, self.clock.now_ms())?;
        Ok(event)
    }

    /// Takes back this member's event `id` names; it leaves the feed on every replica.
    pub fn retract(&mut self, id: &str) -> Result<Event> {
        let event = self.replica.resolve(id, &self.me)?;
        self.replica
            .retract_event(&self.me, &event.id, self.clock.now_ms())?;
        Ok(event)
    }

    /// Writes how this team lives the organisation's non-negotiable `id` (see
    /// [`org_commitment`]) in the team's own document, noted in the team's feed as its other
    /// changes are. Any member of the team writes it.
    pub fn set_practice(&mut self, org: &OrgState, id: &str, text: &str) -> Result<String> {
        let c = org_commitment(org, id)?.clone();
        let stamp = self.clock.stamp(&self.team.tz, false);
        let note = self.clock.new_event_id()?;
        let at = self.clock.now_ms();
        let me = self.me.clone();
        self.replica
            .change_team_noted(&me, &note, &stamp, |doc, _| {
                cairn_core::team::set_practice(doc, org, &c.id, text, &me, at)?;
                Ok(((), format!("wrote its how of “{}”", c.title)))
            })?;
        Ok(c.id)
    }
}

/// The day a late log counts for: `text` as [`parse_day`] reads it, within the team's late
/// window (from [`cairn_core::rules::Rules::earliest_late`] to `today`).
pub fn late_day(team: &TeamState, today: Date, text: &str) -> Result<Date> {
    let day = parse_day(text, today)?;
    let earliest = team.rules.earliest_late(today);
    if day > today {
        return Err(Error::NotYet(day));
    }
    if day < earliest {
        return Err(Error::TooLate { day, earliest });
    }
    Ok(day)
}

/// The members a kudos names: handles, alone or split by commas or spaces, each once, in the
/// order given; at least one.
pub fn recipients(team: &TeamState, who: &[&str]) -> Result<Vec<String>> {
    let mut to = Vec::new();
    for h in who
        .iter()
        .flat_map(|w| w.split([',', ' ']))
        .filter(|h| !h.trim().is_empty())
    {
        let id = team.member_by_handle(h)?.id.clone();
        if !to.contains(&id) {
            to.push(id);
        }
    }
    if to.is_empty() {
        return Err(Error::NoRecipients);
    }
    Ok(to)
}

/// A kudos typed as words (`@ana @ben thanks for the calm write-up`): the handles (the first
/// word, and the words after it that start with `@`) and the text (the rest, joined by
/// spaces; never empty when there are two words or more: the last word is always text).
pub fn split_kudos_words(words: &[String]) -> (Vec<&str>, String) {
    let mut n = 1.min(words.len());
    while n + 1 < words.len() && words[n].trim_start().starts_with('@') {
        n += 1;
    }
    let who = words[..n].iter().map(String::as_str).collect();
    (who, words[n..].join(" "))
}

/// Reads a day relative to `today`: `YYYY-MM-DD`, `today`, `yesterday`, a weekday (`friday`:
/// the last one, today included), or days or weeks ago (`7d`, `2w`).
pub fn parse_day(text: &str, today: Date) -> Result<Date> {
    let lower = text.trim().to_ascii_lowercase();
    let t = lower.as_str();
    let bad = || Error::BadDay(t.to_owned());
    if let Some(day) = weekday(t) {
        // The last such day: today, or up to six days back.
        let back =
            (today.weekday().to_monday_zero_offset() - day.to_monday_zero_offset()).rem_euclid(7);
        return today
            .checked_sub(jiff::Span::new().days(i64::from(back)))
            .map_err(|_| bad());
    }
    match t {
        "today" => Ok(today),
        "yesterday" => today.yesterday().map_err(|_| bad()),
        _ => {
            let days = |n: &str, per: i64| -> Result<i64> {
                let n: i64 = n.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Err(bad());
                }
                n.checked_mul(per).ok_or_else(bad)
            };
            let ago = if let Some(n) = t.strip_suffix('d') {
                Some(days(n, 1)?)
            } else if let Some(n) = t.strip_suffix('w') {
                Some(days(n, 7)?)
            } else {
                None
            };
            if let Some(n) = ago {
                let span = jiff::Span::new().try_days(n).map_err(|_| bad())?;
                today.checked_sub(span).map_err(|_| bad())
            } else {
                t.parse::<Date>().map_err(|_| bad())
            }
        }
    }
}

/// A weekday named in full or by its first three letters or more (`fri`, `friday`).
pub fn weekday(text: &str) -> Option<Weekday> {
    use jiff::civil::Weekday as W;
    let t = text.trim().to_ascii_lowercase();
    let days = [
        (W::Monday, "monday"),
        (W::Tuesday, "tuesday"),
        (W::Wednesday, "wednesday"),
        (W::Thursday, "thursday"),
        (W::Friday, "friday"),
        (W::Saturday, "saturday"),
        (W::Sunday, "sunday"),
    ];
    days.into_iter()
        .find(|(_, name)| t.len() >= 3 && name.starts_with(t.as_str()))
        .map(|(d, _)| d)
}

/// The organisation's document as `org` (its replica in this home) holds it: empty (no name,
/// no non-negotiable) before a steward first writes it.
pub fn org_state(org: &mut Replica) -> Result<OrgState> {
    // The store reads a document only to change it; a change that writes nothing stores
    // nothing, so this reads.
    let me = org.me()?;
    Ok(org.change_team(&me, |doc, _| cairn_core::org::read(&*doc))?)
}

/// This team's own how of each of its organisation's non-negotiables, by id, as `replica`
/// (the team's) holds them.
pub fn practices(
    replica: &mut Replica,
) -> Result<std::collections::BTreeMap<String, cairn_core::Practice>> {
    let me = replica.me()?;
    Ok(replica.change_team(&me, |doc, _| cairn_core::team::practices(&*doc))?)
}

/// The non-negotiable of `org` that `id` names: its id, or the start of it when only one
/// starts so (retired ones too, for what reads them; a write refuses them).
pub fn org_commitment<'o>(org: &'o OrgState, id: &str) -> Result<&'o OrgCommitment> {
    let t = id.trim().to_lowercase();
    if let Some(c) = org.commitment(id.trim()) {
        return Ok(c);
    }
    let found: Vec<_> = org
        .commitments
        .iter()
        .filter(|c| !t.is_empty() && c.id.to_lowercase().starts_with(&t))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(cairn_core::Error::NoSuchSetting(id.trim().to_owned()).into()),
        _ => Err(Error::Ambiguous(id.trim().to_owned())),
    }
}

/// The non-negotiable of `org` (the organisation's document; `None` for a team of none) an act
/// honours: `id` as [`org_commitment`] reads it, in force (a retired one is refused).
pub fn honoured<'o>(org: Option<&'o OrgState>, id: &str) -> Result<&'o OrgCommitment> {
    let org = org.ok_or(Error::NoOrganisation)?;
    let c = match org_commitment(org, id) {
        Err(Error::Core(cairn_core::Error::NoSuchSetting(_))) => {
            return Err(Error::NoSuchNonNegotiable(id.trim().to_owned()));
        }
        other => other?,
    };
    if c.retired.is_some() {
        return Err(Error::RetiredNonNegotiable {
            id: c.id.clone(),
            title: c.title.clone(),
        });
    }
    Ok(c)
}

/// A steward's change to the organisation's non-negotiables.
#[derive(Clone, Debug)]
pub enum OrgChange<'a> {
    /// A new non-negotiable with its why.
    Add { title: &'a str, why: &'a str },
    /// A new wording or why (`None` leaves it) of the one `id` names ([`org_commitment`]).
    Edit {
        id: &'a str,
        title: Option<&'a str>,
        why: Option<&'a str>,
    },
    /// Retires the one `id` names: it leaves every team's list, its history stays.
    Retire { id: &'a str },
}

/// Writes a steward's `change` into `org`, the organisation's replica in this home (the next
/// sync sends it), as `by` (the steward as every team reads them: `@handle@team`). The first
/// write of a document no steward started yet starts it with the organisation's `name`.
/// Returns the id of the non-negotiable changed. Whether this member is a steward is the
/// caller's to know (the server refuses anyone else's change).
pub fn write_org(
    org: &mut Replica,
    name: &str,
    change: &OrgChange<'_>,
    by: &str,
    at_ms: i64,
) -> Result<String> {
    use cairn_core::org;
    let me = org.me()?;
    let before = org_state(org)?;
    let id = match change {
        OrgChange::Add { .. } => None,
        OrgChange::Edit { id, .. } | OrgChange::Retire { id } => {
            Some(org_commitment(&before, id)?.id.clone())
        }
    };
    Ok(org.change_team(&me, |doc, _| {
        if org::read(&*doc)?.name.is_empty() {
            org::init(doc, name, at_ms)?;
        }
        let state = org::read(&*doc)?;
        match (change, id) {
            (OrgChange::Add { title, why }, _) => {
                org::add_commitment(doc, &state, title, why, by, at_ms)
            }
            (OrgChange::Edit { title, why, .. }, Some(id)) => {
                org::edit_commitment(doc, &state, &id, *title, *why, by, at_ms).map(|()| id)
            }
            (OrgChange::Retire { .. }, Some(id)) => {
                org::retire_commitment(doc, &state, &id, by, at_ms).map(|()| id)
            }
            (_, None) => unreachable!("an edit or a retirement names its non-negotiable"),
        }
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_negotiable_is_named_by_its_id_or_the_start_of_it() {
        use cairn_core::org;
        let mut doc = cairn_core::Automerge::new();
        org::init(&mut doc, "Acme", 0).unwrap();
        let s = org::read(&doc).unwrap();
        let a = org::add_commitment(&mut doc, &s, "One", "why", "Ana", 1).unwrap();
        let s = org::read(&doc).unwrap();
        let b = org::add_commitment(&mut doc, &s, "Two", "why", "Ana", 2).unwrap();
        let s = org::read(&doc).unwrap();
        assert_eq!(org_commitment(&s, &a).unwrap().id, a);
        assert_eq!(org_commitment(&s, &format!(" {b} ")).unwrap().id, b);
        let shared = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        assert_eq!(org_commitment(&s, &a[..=shared]).unwrap().id, a);
        if shared > 0 {
            assert!(matches!(
                org_commitment(&s, &a[..shared]),
                Err(Error::Ambiguous(_))
            ));
        }
        assert!(matches!(
            org_commitment(&s, ""),
            Err(Error::Core(cairn_core::Error::NoSuchSetting(_)))
        ));
        assert!(org_commitment(&s, "zzzz-none").is_err());
    }

    #[test]
    fn an_act_honours_a_non_negotiable_in_force_of_its_teams_organisation() {
        use cairn_core::org;
        let mut doc = cairn_core::Automerge::new();
        org::init(&mut doc, "Acme", 0).unwrap();
        let s = org::read(&doc).unwrap();
        let a = org::add_commitment(&mut doc, &s, "One", "why", "Ana", 1).unwrap();
        let s = org::read(&doc).unwrap();
        let b = org::add_commitment(&mut doc, &s, "Two", "why", "Ana", 2).unwrap();
        let s = org::read(&doc).unwrap();
        org::retire_commitment(&mut doc, &s, &b, "Ana", 3).unwrap();
        let s = org::read(&doc).unwrap();
        assert_eq!(honoured(Some(&s), &a).unwrap().id, a);
        assert!(matches!(
            honoured(Some(&s), &b),
            Err(Error::RetiredNonNegotiable { title, .. }) if title == "Two"
        ));
        assert!(matches!(
            honoured(Some(&s), "zzzz-none"),
            Err(Error::NoSuchNonNegotiable(id)) if id == "zzzz-none"
        ));
        assert!(matches!(honoured(None, &a), Err(Error::NoOrganisation)));
    }

    fn split(words: &[&str]) -> (Vec<String>, String) {
        let owned: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let (who, text) = split_kudos_words(&owned);
        (who.into_iter().map(str::to_owned).collect(), text)
    }

    #[test]
    fn handles_come_first_and_the_rest_is_the_text() {
        assert_eq!(
            split(&["@ben", "Thanks"]),
            (vec!["@ben".into()], "Thanks".into())
        );
        assert_eq!(
            split(&["@ben", "@chloe", "Great pairing"]),
            (vec!["@ben".into(), "@chloe".into()], "Great pairing".into())
        );
        assert_eq!(
            split(&["@ben,@chloe", "great", "pairing"]),
            (vec!["@ben,@chloe".into()], "great pairing".into())
        );
        // The last word is the text even when it looks like a handle.
        assert_eq!(
            split(&["@ben", "@chloe"]),
            (vec!["@ben".into()], "@chloe".into())
        );
        assert_eq!(
            split(&["ben", "Thanks"]),
            (vec!["ben".into()], "Thanks".into())
        );
        assert_eq!(split(&[]), (vec![], String::new()));
    }

    #[test]
    fn days_parse_in_every_form() {
        let today: Date = "2026-11-23".parse().unwrap();
        assert_eq!(parse_day("today", today).unwrap(), today);
        assert_eq!(
            parse_day("yesterday", today).unwrap().to_string(),
            "2026-11-22"
        );
        assert_eq!(parse_day("7d", today).unwrap().to_string(), "2026-11-16");
        assert_eq!(parse_day("1w", today).unwrap().to_string(), "2026-11-16");
        assert_eq!(parse_day("2w", today).unwrap().to_string(), "2026-11-09");
        assert!(parse_day("99999999999w", today).is_err());
        assert_eq!(
            parse_day("2026-01-02", today).unwrap().to_string(),
            "2026-01-02"
        );
        assert!(matches!(parse_day(" Soon ", today), Err(Error::BadDay(t)) if t == "soon"));
        assert!(parse_day("2026-13-01", today).is_err());
        assert!(parse_day("99999999d", today).is_err());
        assert!(parse_day("-5d", today).is_err());
        // 2026-11-23 is a Monday: the last Friday is three days back; a Monday is today.
        for friday in ["friday", "Fri", "FRIDAY"] {
            assert_eq!(parse_day(friday, today).unwrap().to_string(), "2026-11-20");
        }
        assert_eq!(parse_day("monday", today).unwrap(), today);
        assert_eq!(parse_day("sun", today).unwrap().to_string(), "2026-11-22");
        assert!(parse_day("fr", today).is_err(), "two letters name no day");
    }
}
