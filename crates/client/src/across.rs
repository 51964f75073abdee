//! Kudos across the teams of an organisation, as a home gives, holds and shows them.
//!
//! A recognition across teams goes into the giver's own journal in the organisation's replica
//! (`x/<team>/<member>/<YYYY-MM>`, see [`cairn_core::across`]); the next sync sends it with the
//! organisation's log. Each team of the organisation shows, in its own feed, those its members
//! gave or received ([`show`]): rows given from outside its documents, by the source
//! [`source`], so nothing of one team is ever written into another's.
//!
//! Whom a member may name is the organisation's people, as the server says them
//! (`GET /v1/org/people`), kept in the organisation's replica ([`people`], [`keep`], [`stale`]) so
//! completion and `cairn kudos @ben@platform` work offline.

use cairn_core::across::{self, Crossing, Person};
use cairn_core::ids::{self, EventId};
use cairn_protocol::{OrgPeople, OrgPeopleTeam};
use cairn_store::Replica;
use serde::{Deserialize, Serialize};

use crate::write::{Clock, Error, Result};

/// The setting of an organisation's replica that holds its people.
const PEOPLE: &str = "people";
/// The setting of an organisation's replica that holds when its people were last heard.
const PEOPLE_AT: &str = "people_at";
/// How old the people held may grow before a sync asks again.
const PEOPLE_TTL_MS: i64 = 3600 * 1000;
/// The prefix of the sources of kudos across teams among a team's events.
const ACROSS: &str = "across:";

/// The organisation's people as this home last heard them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct People {
    pub people: OrgPeople,
    /// When the server said them, in ms since the epoch.
    pub fetched_ms: i64,
}

impl People {
    /// The team `text` names: its id, its name in any case, or its name as a handle
    /// (`platform-team` for "Platform team").
    pub fn team(&self, text: &str) -> Option<&OrgPeopleTeam> {
        let t = text.trim().trim_start_matches('@');
        let handle = ids::handle_key(t);
        self.people.teams.iter().find(|team| {
            team.id == t
                || team.name.eq_ignore_ascii_case(t)
                || ids::handle_from_name(&team.name).is_some_and(|h| h == handle)
        })
    }

    /// The person `typed` names: `@handle@team`.
    pub fn person(&self, typed: &str) -> Result<Person> {
        let t = typed.trim().trim_start_matches('@');
        let Some((handle, team)) = t.split_once('@') else {
            return Err(Error::NotAcross(typed.to_owned()));
        };
        let Some(found) = self.team(team) else {
            let known: Vec<String> = self
                .people
                .teams
                .iter()
                .filter_map(|t| ids::handle_from_name(&t.name))
                .collect();
            return Err(Error::UnknownTeam {
                typed: team.to_owned(),
                known,
            });
        };
        let h = ids::handle_key(handle);
        let Some(p) = found.people.iter().find(|p| p.handle == h) else {
            return Err(Error::UnknownPerson {
                typed: typed.to_owned(),
                team: found.name.clone(),
            });
        };
        Ok(Person::new(&found.id, &p.member, &p.handle, &found.name))
    }

    /// Every person as `@handle@team`, for completion.
    pub fn labels(&self) -> Vec<String> {
        self.people
            .teams
            .iter()
            .flat_map(|t| {
                t.people
                    .iter()
                    .map(|p| Person::new(&t.id, &p.member, &p.handle, &t.name).label())
            })
            .collect()
    }
}

/// The organisation's people held by its replica `org`; empty when it never heard them.
pub fn people(org: &Replica) -> Result<People> {
    Ok(org
        .setting(PEOPLE)?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// Keeps `fresh`, the people the server just said, in the organisation's replica `org`.
pub fn keep(org: &mut Replica, fresh: OrgPeople, now_ms: i64) -> Result<()> {
    let held = People {
        people: fresh,
        fetched_ms: now_ms,
    };
    let text = serde_json::to_string(&held).unwrap_or_default();
    org.set_setting(PEOPLE, Some(&text))?;
    org.set_setting(PEOPLE_AT, Some(&now_ms.to_string()))?;
    Ok(())
}

/// Whether the people held by `org` are old enough to ask the server again (or were never
/// heard); a sync `asked` by its person always asks. Reads only when they were heard, not the
/// whole list (every sync asks this).
pub fn stale(org: &Replica, now_ms: i64, asked: bool) -> bool {
    let at: Option<i64> = org
        .setting(PEOPLE_AT)
        .ok()
        .flatten()
        .and_then(|t| t.parse().ok());
    asked || at.is_none_or(|at| now_ms - at > PEOPLE_TTL_MS || now_ms < at)
}

/// The giver as the organisation's people name them: `me` of team `team`.
pub fn me_in(people: &People, team: &str, me: &str, fallback: (&str, &str)) -> Person {
    let t = people.people.teams.iter().find(|t| t.id == team);
    let handle = t
        .and_then(|t| t.people.iter().find(|p| p.member == me))
        .map_or(fallback.0, |p| p.handle.as_str());
    let name = t.map_or(fallback.1, |t| t.name.as_str());
    Person::new(team, me, handle, name)
}

/// Gives `text` to the people `to` as `from`, into `from`'s journal across teams in the
/// organisation's replica `org`; the next sync sends it. Returns its id.
pub fn give(
    org: &mut Replica,
    clock: &Clock,
    team_tz: &str,
    from: &Person,
    to: &[Person],
    text: &str,
    honours: Option<&str>,
) -> Result<EventId> {
    let stamp = clock.stamp(team_tz, false);
    let id = clock.new_event_id()?;
    let doc = ids::across_doc(&from.team, &from.member, &ids::month_of(stamp.at_ms));
    org.change_doc(&doc, &from.member, |d| {
        across::add(d, &doc, from, to, &id, &stamp, text, honours)
    })?;
    Ok(id)
}

/// Takes back `from`'s recognition across teams that `id` names (its full id or its tag's
/// start); returns it.
pub fn retract(org: &mut Replica, from: &Person, id: &str, now_ms: i64) -> Result<Crossing> {
    let mine: Vec<(String, Crossing)> = all(org)?
        .into_iter()
        .filter(|(_, c)| c.from.team == from.team && c.from.member == from.member)
        .filter(|(_, c)| c.id.as_str() == id || (!id.is_empty() && c.id.tag().starts_with(id)))
        .collect();
    let (doc, c) = match mine.as_slice() {
        [one] => one.clone(),
        [] => return Err(cairn_core::Error::NoSuchEvent(id.to_owned()).into()),
        _ => return Err(Error::Ambiguous(id.to_owned())),
    };
    org.change_doc(&doc, &from.member, |d| across::retract(d, &c.id, now_ms))?;
    Ok(c)
}

/// Every recognition across teams the organisation's replica `org` holds, with the journal
/// holding it, oldest first.
pub fn all(org: &Replica) -> Result<Vec<(String, Crossing)>> {
    let mut out = Vec::new();
    for doc_id in org.doc_ids("x/")? {
        if ids::across_owner(&doc_id).is_none() {
            continue;
        }
        let doc = org.read_doc(&doc_id)?;
        for c in across::read(&doc_id, &doc)?.items {
            out.push((doc_id.clone(), c));
        }
    }
    out.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    Ok(out)
}

/// The source under which a team's replica holds the kudos across teams of organisation `id`.
pub fn source(id: &str) -> String {
    format!("{ACROSS}{id}")
}

/// Whether rows given to a team's feed from outside by `source` are kudos across teams.
pub fn is_source(source: &str) -> bool {
    source.starts_with(ACROSS)
}

/// Puts the kudos across teams that team `team_id`'s members gave or received, as the
/// organisation `org_id`'s replica `org` holds them, into that team's feed (its replica
/// `team`): kudos by a member of the team count as theirs, kudos to one as received. Returns how
/// many rows changed (none, and nothing written, when they are those shown already).
pub fn show(team: &mut Replica, org: &Replica, org_id: &str, team_id: &str) -> Result<usize> {
    let events: Vec<_> = all(org)?
        .iter()
        .filter_map(|(_, c)| c.event_for(team_id))
        .collect();
    Ok(team.set_outside_events(&source(org_id), &events)?)
}
