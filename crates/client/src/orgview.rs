//! What every client shows of a team's organisation besides its non-negotiables
//! ([`crate::views::org`]): the organisation's feed ([`feed`]), and for its stewards the weeks
//! its teams share ([`teams`], [`weeks`]) and a week's lines of the digest for a leadership
//! meeting ([`digest_extras`]). `cairn org` and `cairn web`'s organisation page render them
//! their own ways.
//!
//! Never a number about one person: the figures are those each team chose to share
//! ([`crate::shared`]), and the digest counts recognitions across teams without naming who gave
//! them.
//!
//! # Example
//! The organisation's newest recognitions and notes, and the latest week's digest lines:
//! ```no_run
//! use cairn_client::{orgview, shared, write};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut org = cairn_store::Replica::open(std::path::Path::new("orgs/acme/replica.sqlite3"))?;
//! let state = write::org_state(&mut org)?;
//! for item in orgview::feed(&state, Some(&org), None, 30)?.items {
//!     println!("{} {}", item.id().short(), item.at_ms());
//! }
//! let figures = shared::view(&org, &orgview::teams(&org)?, None)?;
//! if let Some(week) = &figures.week {
//!     let extras = orgview::digest_extras(&state, &org, week)?;
//!     println!("{week}: {} recognitions across teams", extras.across);
//! }
//! # Ok(())
//! # }
//! ```

use cairn_core::across::Crossing;
use cairn_core::figures;
use cairn_core::ids::EventId;
use cairn_core::{OrgNote, OrgState, Share};
use cairn_store::Replica;
use jiff::civil::Date;

use crate::write::Result;

/// The teams of the organisation as this home knows them (id, name): its people as the server
/// last said them, and any team whose shared document its replica `org` holds.
pub fn teams(org: &Replica) -> Result<Vec<(String, String)>> {
    let mut teams: Vec<(String, String)> = crate::across::people(org)?
        .people
        .teams
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    for (s, _) in crate::shared::all_with(org, |_| false)? {
        if !teams.iter().any(|(id, _)| *id == s.team) && !s.team.is_empty() {
            teams.push((s.team.clone(), s.name.clone()));
        }
    }
    Ok(teams)
}

/// The weeks any of `teams` (as [`teams`] lists them) shares figures of in the organisation's
/// replica `org`, newest first: those a client offers to choose from.
pub fn weeks(org: &Replica, teams: &[(String, String)]) -> Result<Vec<String>> {
    let mut weeks: Vec<String> = crate::shared::all_with(org, |_| false)?
        .into_iter()
        .filter(|(s, _)| s.share == Share::Weekly && teams.iter().any(|(id, _)| *id == s.team))
        .flat_map(|(_, labels)| labels)
        .filter(|l| figures::parse_week(l).is_some())
        .collect();
    weeks.sort_unstable_by(|a, b| b.cmp(a));
    weeks.dedup();
    Ok(weeks)
}

/// A week's lines of the organisation's digest besides the teams' figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Extras {
    /// The notes of the stewards' changes to the non-negotiables made that week (UTC), in
    /// words, oldest first.
    pub notes: Vec<String>,
    /// How many recognitions across teams were given that week (by their givers' dates), not
    /// retracted.
    pub across: usize,
}

/// The lines of the digest of `week` (an ISO week, `2026-W49`): the changes to the
/// non-negotiables `state` notes, and the recognitions across teams the organisation's replica
/// `org` holds. A week that is none has no line.
pub fn digest_extras(state: &OrgState, org: &Replica, week: &str) -> Result<Extras> {
    let Some(monday) = figures::parse_week(week) else {
        return Ok(Extras::default());
    };
    let end = monday.checked_add(jiff::ToSpan::days(7)).unwrap_or(monday);
    let in_week = |date: Date| date >= monday && date < end;
    let notes = state
        .notes
        .iter()
        .filter(|n| cairn_core::time::local_date(n.at_ms, "UTC").is_some_and(in_week))
        .map(OrgNote::text)
        .collect();
    let across = crate::across::all(org)?
        .into_iter()
        .filter(|(_, c)| c.retracted_ms.is_none())
        .filter(|(_, c)| cairn_core::time::parse_date(&c.date).is_some_and(in_week))
        .count();
    Ok(Extras { notes, across })
}

/// One item of the organisation's feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A steward's change to the non-negotiables.
    Note(OrgNote),
    /// A recognition across teams.
    Kudos(Crossing),
}

impl Item {
    pub fn id(&self) -> &EventId {
        match self {
            Item::Note(n) => &n.id,
            Item::Kudos(c) => &c.id,
        }
    }

    /// When it was written, in ms since the epoch.
    pub fn at_ms(&self) -> i64 {
        match self {
            Item::Note(n) => n.at_ms,
            Item::Kudos(c) => c.at_ms,
        }
    }
}

/// A page of the organisation's feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Feed {
    /// Newest first.
    pub items: Vec<Item>,
    /// Whether older items follow the last one.
    pub more: bool,
}

/// The organisation's feed, newest first: the notes of `state` and the recognitions across
/// teams of its replica `org` (none before its first sync), those retracted left out; at most
/// `limit` of them older than the item of id `before`, when given.
pub fn feed(
    state: &OrgState,
    org: Option<&Replica>,
    before: Option<&str>,
    limit: usize,
) -> Result<Feed> {
    let mut items: Vec<Item> = state.notes.iter().cloned().map(Item::Note).collect();
    if let Some(org) = org {
        items.extend(
            crate::across::all(org)?
                .into_iter()
                .filter(|(_, c)| c.retracted_ms.is_none())
                .map(|(_, c)| Item::Kudos(c)),
        );
    }
    items.retain(|i| before.is_none_or(|b| i.id().as_str() < b));
    items.sort_by(|a, b| b.id().cmp(a.id()));
    let more = items.len() > limit;
    items.truncate(limit);
    Ok(Feed { items, more })
}
