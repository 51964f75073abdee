//! What a team shares upward with its organisation, as a home writes and reads it.
//!
//! A team chooses (`cairn team share weekly`, [`cairn_core::team::set_share`]); nothing by
//! default. Then at each sync every member's device computes the team's figures of the weeks
//! that are over ([`cairn_core::figures::compute`], the same on every replica) and writes what
//! differs into the team's shared document `s/<team>` of the organisation's replica
//! ([`publish`]), which the same sync sends. Members computing the same figures write nothing
//! more: only a difference makes a change. A team that stops sharing takes its figures back.
//!
//! The organisation's view ([`view`]) reads every team's shared document from the
//! organisation's replica: what each team chose to share, and nothing else.

use cairn_core::figures::{self, OrgFigures, Shared, WeekFigures};
use cairn_core::ids;
use cairn_core::team::Share;
use cairn_store::Replica;
use jiff::civil::Date;

use crate::write::Result;

/// How many weeks back each write looks (a late log changes a week that is over).
const WEEKS: usize = 8;
/// The setting of the team's replica holding when it last wrote its figures.
const WRITTEN: &str = "shared_ms";
/// How long after one write the next sync writes again (unless asked).
const AGAIN_MS: i64 = 3600 * 1000;

/// What the team whose replica is `team` shares now.
pub fn share(team: &mut Replica) -> Result<Share> {
    let me = team.me()?;
    // The store reads a document only to change it; a change that writes nothing stores
    // nothing, so this reads.
    Ok(team.change_team(&me, |doc, _| Ok(cairn_core::team::share(&*doc)))?)
}

/// The figures of the team whose replica is `team` for the weeks over by `today` (the last
/// eight of them), as every replica computes them.
pub fn weeks(
    team: &Replica,
    org: &Replica,
    team_id: &str,
    today: Date,
) -> Result<Vec<WeekFigures>> {
    let state = team.team()?;
    // The team's own acts: a recognition from someone of another team (`@cy@mobile`, shown in
    // this team's feed) is that team's act, counted here only in `reach_across`.
    let mut acts = team.acts()?;
    acts.retain(|a| !a.author.starts_with('@'));
    // Each act of the team's people that honoured a non-negotiable, by its day.
    let honoured = team.honoured()?;
    // Recognitions that crossed teams, by the day they were given.
    let mut across: Vec<(Date, u32)> = Vec::new();
    for (_, c) in crate::across::all(org)? {
        if c.retracted_ms.is_none()
            && c.crosses()
            && c.touches(team_id)
            && let Some(d) = cairn_core::time::parse_date(&c.date)
        {
            across.push((d, 1));
        }
    }
    Ok(figures::closed_weeks(today, WEEKS)
        .into_iter()
        .map(|monday| figures::compute(&state, &acts, &honoured, &across, monday))
        .collect())
}

/// Writes what the team whose replica is `team` (of id `team_id`) shares into its shared
/// document in the organisation's replica `org`, when it is time (hourly) or `asked`: its
/// weekly figures when it shares them, their withdrawal when it stopped. Returns whether a
/// change was written (the sync then sends it). A team that never shared writes nothing.
pub fn publish(
    team: &mut Replica,
    org: &mut Replica,
    team_id: &str,
    now_ms: i64,
    asked: bool,
) -> Result<bool> {
    let last: Option<i64> = team.setting(WRITTEN)?.and_then(|t| t.parse().ok());
    if !asked && last.is_some_and(|at| at <= now_ms && now_ms - at < AGAIN_MS) {
        return Ok(false);
    }
    let share = share(team)?;
    let doc_id = ids::shared_doc(team_id);
    let held = !org.doc_ids(&doc_id)?.is_empty();
    if share == Share::Nothing && !held {
        return Ok(false);
    }
    let state = team.team()?;
    let today = cairn_core::time::local_date(now_ms, &state.tz).unwrap_or_default();
    let weeks = match share {
        Share::Weekly => weeks(team, org, team_id, today)?,
        Share::Nothing => Vec::new(),
    };
    let me = org.me()?;
    let wrote = org.change_doc(&doc_id, &me, |doc| {
        figures::write(doc, team_id, &state.name, share, &weeks, now_ms)
    })?;
    team.set_setting(WRITTEN, Some(&now_ms.to_string()))?;
    Ok(wrote)
}

/// Every team's shared document the organisation's replica `org` holds, with the weeks `keep`
/// keeps (by label) read, and the labels of all the weeks each holds.
pub fn all_with(org: &Replica, keep: impl Fn(&str) -> bool) -> Result<Vec<(Shared, Vec<String>)>> {
    let mut out = Vec::new();
    for doc_id in org.doc_ids("s/")? {
        if ids::shared_owner(&doc_id).is_none() {
            continue;
        }
        let doc = org.read_doc(&doc_id)?;
        out.push((
            figures::read_weeks(&doc, &keep)?,
            figures::week_labels(&doc),
        ));
    }
    Ok(out)
}

/// Every team's shared document the organisation's replica `org` holds, every week read.
pub fn all(org: &Replica) -> Result<Vec<Shared>> {
    Ok(all_with(org, |_| true)?
        .into_iter()
        .map(|(s, _)| s)
        .collect())
}

/// The organisation's view of `week` (by default the latest any team shares): every team of
/// `teams` (id and name, sorted by name by the view), with what it shares. Each team's
/// document is loaded once and only that week of it read, so the view costs the same however
/// many weeks they hold.
pub fn view(org: &Replica, teams: &[(String, String)], week: Option<&str>) -> Result<OrgFigures> {
    let mut docs = Vec::new();
    for doc_id in org.doc_ids("s/")? {
        if ids::shared_owner(&doc_id).is_some() {
            docs.push(org.read_doc(&doc_id)?);
        }
    }
    let week = match week {
        Some(w) => Some(w.to_owned()),
        // The latest week a team that shares holds (as the view's own default).
        None => {
            let mut latest: Option<String> = None;
            for doc in &docs {
                let s = figures::read_weeks(doc, |_| false)?;
                if s.share != Share::Weekly || !teams.iter().any(|(id, _)| *id == s.team) {
                    continue;
                }
                let last = figures::week_labels(doc)
                    .into_iter()
                    .rev()
                    .find(|l| figures::parse_week(l).is_some());
                latest = latest.max(last);
            }
            latest
        }
    };
    let mut shared = Vec::with_capacity(docs.len());
    for doc in &docs {
        shared.push(figures::read_weeks(doc, |label| {
            Some(label) == week.as_deref()
        })?);
    }
    Ok(figures::org_view(teams, &shared, week.as_deref()))
}
