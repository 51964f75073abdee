//! What every client shows of a team, as models an interface renders in its own way: the
//! streaks, the digest of a week or a month, a member's own numbers ("me"), the badges and the
//! reach of the team's thanks. Each is computed once here, by the same rules, whether a
//! terminal, a web page or a chat message shows it.

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::digest::{Digest, Quote};
use cairn_core::feed::FeedQuery;
use cairn_core::rules::{self, Cadence, Heatmap, PersonalStreak, TeamStreak};
use cairn_core::{Kind, TeamState, goals};
use cairn_store::Replica;
use jiff::ToSpan;
use jiff::civil::Date;

/// The team's streak, the member's own and the heatmap of the team's last weeks.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Streaks {
    pub team: TeamStreak,
    /// The member's own, for their eyes only.
    pub personal: PersonalStreak,
    pub heatmap: Heatmap,
}

/// The streaks as seen by `me` on `today`, with `weeks` of heatmap. Each figure reads only the
/// days it needs: a weekly streak counts members per week (a row per member and week, the same
/// streak as from every day), the heatmap its last weeks, the member's own streak their days.
pub fn streaks(
    replica: &Replica,
    team: &TeamState,
    me: &str,
    today: Date,
    weeks: u32,
) -> cairn_store::Result<Streaks> {
    let activity = match team.rules.cadence {
        Cadence::Weekly => replica.activity_by_week()?,
        Cadence::Daily => replica.activity()?,
    };
    let mine = replica.active_days(me)?;
    let skipped = replica.travel_skips(me)?;
    let recent = replica.activity_since(rules::heatmap_start(today, weeks))?;
    Ok(Streaks {
        team: rules::team_streak(&activity, &team.tenures(), today, &team.rules),
        personal: rules::personal_streak_with(&mine, &skipped, today, &team.rules),
        heatmap: rules::heatmap(&recent, today, weeks),
    })
}

/// A member's own numbers: what they are shown, to them alone.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Numbers {
    pub handle: String,
    pub streak: PersonalStreak,
    pub week: Counts,
    pub month: Counts,
    /// Their acts by pillar id.
    pub pillars: BTreeMap<String, usize>,
    pub badges: Vec<goals::Badge>,
}

/// Micro-actions logged and recognitions given (and received) in a period.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Counts {
    pub actions: usize,
    pub kudos_given: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kudos_received: Option<usize>,
}

/// The numbers of `me` in `acts` (every act, in time order), seen on `today`; `skipped` are the
/// dates their travels skipped ([`Replica::travel_skips`]).
pub fn numbers(
    team: &TeamState,
    me: &str,
    today: Date,
    acts: &[goals::Act],
    skipped: &BTreeSet<Date>,
) -> Numbers {
    let monday = cairn_core::time::week_start(today);
    let month = today.first_of_month();
    let mine: Vec<&goals::Act> = acts.iter().filter(|a| a.author == me).collect();
    let days: BTreeSet<_> = mine.iter().map(|a| a.date).collect();
    let count = |from, kind| {
        mine.iter()
            .filter(|a| a.date >= from && a.kind == kind)
            .count()
    };
    let received = acts
        .iter()
        .filter(|a| a.kind == Kind::Kudos && a.date >= month && a.to.iter().any(|m| m == me))
        .count();
    let mut pillars: BTreeMap<String, usize> = BTreeMap::new();
    for a in &mine {
        if let Some(p) = &a.pillar {
            *pillars.entry(p.clone()).or_default() += 1;
        }
    }
    let pillar_ids: Vec<String> = team.pillars.iter().map(|p| p.id.clone()).collect();
    Numbers {
        handle: team.handle_of(me).to_owned(),
        streak: rules::personal_streak_with(&days, skipped, today, &team.rules),
        week: Counts {
            actions: count(monday, Kind::Action),
            kudos_given: count(monday, Kind::Kudos),
            kudos_received: None,
        },
        month: Counts {
            actions: count(month, Kind::Action),
            kudos_given: count(month, Kind::Kudos),
            kudos_received: Some(received),
        },
        pillars,
        badges: goals::member_badges(acts, me, &pillar_ids, &team.rules),
    }
}

/// What the team earned together, how widely it spreads its thanks, and (for a member's own
/// eyes) what they earned.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Badges {
    pub team: Vec<goals::Badge>,
    /// The member's own, when asked for.
    pub mine: Option<Vec<goals::Badge>>,
    /// Over the last 30 days.
    pub reach: goals::Reach,
}

/// The badges and reach in `acts` (every act, in time order) on `today`, with `me`'s own
/// badges when `me` is given. Placeholders count from when they join or first act.
pub fn badges(team: &TeamState, me: Option<&str>, acts: &[goals::Act], today: Date) -> Badges {
    let joined = team.joined_dates(acts);
    let members: Vec<String> = joined.iter().map(|(id, _)| id.clone()).collect();
    let pillar_ids: Vec<String> = team.pillars.iter().map(|p| p.id.clone()).collect();
    Badges {
        team: goals::team_badges(acts, &joined),
        mine: me.map(|me| goals::member_badges(acts, me, &pillar_ids, &team.rules)),
        reach: goals::reach(acts, &members, today, 30),
    }
}

/// Which digest: this week (Monday to Sunday) or this calendar month, or the one before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Period {
    pub month: bool,
    pub last: bool,
}

/// The digest of `period` as seen on `today`; `acts` are all the team's acts in time order.
/// The same on every replica that holds the same events.
pub fn digest(
    replica: &Replica,
    team: &TeamState,
    today: Date,
    period: Period,
    acts: &[goals::Act],
) -> cairn_store::Result<Digest> {
    let (start, end, index) = if period.month {
        let first = today.first_of_month();
        let first = if period.last {
            first.checked_sub(1.month()).unwrap_or(first)
        } else {
            first
        };
        let index = i64::from(first.year()) * 12 + i64::from(first.month());
        (first, first.last_of_month(), index)
    } else {
        let monday = cairn_core::time::week_start(today);
        let monday = if period.last {
            monday.checked_sub(7.days()).unwrap_or(monday)
        } else {
            monday
        };
        let origin: Date = jiff::civil::date(1970, 1, 5); // a Monday
        let index = (monday - origin).get_days() as i64 / 7;
        (
            monday,
            monday.checked_add(6.days()).unwrap_or(monday),
            index,
        )
    };
    let items = replica.feed(&FeedQuery {
        since: Some(start.to_string()),
        ..FeedQuery::default()
    })?;
    let events: Vec<_> = items.into_iter().map(|i| i.event).collect();
    Ok(cairn_core::digest::digest(
        team,
        &events,
        acts,
        start,
        end,
        today,
        index,
        &team.rules,
    ))
}

/// A team's organisation as the team's pages show it, read-only: its name and its
/// non-negotiables in force, each with this team's own how.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrgView {
    pub name: String,
    pub non_negotiables: Vec<NonNegotiable>,
}

/// One of the organisation's non-negotiables, with this team's how (`None` until the team
/// writes it with `cairn org practice`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NonNegotiable {
    pub id: String,
    pub title: String,
    pub why: String,
    pub how: Option<String>,
    /// The team's acts of a digest's period that honoured it, once counted
    /// ([`OrgView::counted`]); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acts: Option<u32>,
}

impl OrgView {
    /// The same, each non-negotiable with the team's acts of the digest `d`'s period that
    /// honoured it (none: 0). The team's count, never one member's.
    pub fn counted(mut self, d: &Digest) -> OrgView {
        for n in &mut self.non_negotiables {
            n.acts = Some(d.honoured.get(&n.id).copied().unwrap_or(0));
        }
        self
    }
}

/// The organisation of the team whose replica is `team`, as its replica under `dir` (the
/// home) holds it; `None` for a team of no organisation. Before its first sync it has no
/// non-negotiable.
pub fn org(team: &mut Replica, dir: &std::path::Path) -> crate::sync::Result<Option<OrgView>> {
    let Some(held) = crate::sync::org::org(team, dir)? else {
        return Ok(None);
    };
    let state = if held.path.exists() {
        let mut org = held.open()?;
        let me = org.me()?;
        // The store reads a document only to change it; a change that writes nothing stores
        // nothing, so these read.
        org.change_team(&me, |doc, _| cairn_core::org::read(&*doc))?
    } else {
        cairn_core::OrgState::default()
    };
    let me = team.me()?;
    let practices = team.change_team(&me, |doc, _| cairn_core::team::practices(&*doc))?;
    Ok(Some(OrgView {
        name: held.org.name,
        non_negotiables: state
            .live()
            .map(|c| NonNegotiable {
                id: c.id.clone(),
                title: c.title.clone(),
                why: c.why.clone(),
                how: practices.get(&c.id).map(|p| p.text.clone()),
                acts: None,
            })
            .collect(),
    }))
}

/// A digest in words, as every client shows it: a title, a summary sentence, and sections of
/// one-line items (members by handle, pillars by name). Never a number about one person.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DigestView {
    /// `Otters — 2026-11-23 to 2026-11-29`.
    pub title: String,
    /// `5 micro-actions and 2 recognitions from 3 of 4 members.`
    pub summary: String,
    pub sections: Vec<Section>,
    /// The team's acts of the period per non-negotiable it honoured, by id (the digest's
    /// [`Digest::honoured`]): what [`DigestView::with_org`] counts by each.
    #[serde(skip)]
    pub honoured: BTreeMap<String, u32>,
}

/// A titled part of a [`DigestView`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Section {
    pub title: String,
    /// One line each.
    pub items: Vec<String>,
}

/// The title of the digest's section of the team's own commitments.
const COMMITMENTS: &str = "Our commitments";

/// `n` and its noun.
fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `@handle` of a member; someone of another team as a kudos across teams names them
/// (`@cy@mobile`, which no member id can be).
fn at(team: &TeamState, id: &str) -> String {
    if id.starts_with('@') {
        return id.to_owned();
    }
    format!("@{}", team.handle_of(id))
}

fn handles(team: &TeamState, ids: &[String]) -> String {
    ids.iter()
        .map(|m| at(team, m))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quote_line(team: &TeamState, q: &Quote) -> String {
    // One line, whatever the text holds: a new line would break a list.
    let text = q.text.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{} → {}: “{text}”", at(team, &q.from), handles(team, &q.to))
}

impl DigestView {
    /// The digest with its team's organisation's non-negotiables (titles, each with the team's
    /// acts of the period that honoured it and the team's how where written) after the team's
    /// own commitments; as it was for a team of none.
    pub fn with_org(mut self, org: Option<&OrgView>) -> DigestView {
        let Some(org) = org else { return self };
        let mut items: Vec<String> = org
            .non_negotiables
            .iter()
            .map(|n| {
                // One line each, whatever the texts hold: a new line would break a list.
                let line = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
                let acts = count(
                    self.honoured.get(&n.id).copied().unwrap_or(0),
                    "act",
                    "acts",
                );
                // (The count comes last, so the line begins as it did before acts were counted.)
                match &n.how {
                    Some(how) => format!(
                        "{} — our how: {}; honoured by {acts}",
                        line(&n.title),
                        line(how)
                    ),
                    None => format!(
                        "{} — our how is not written yet; honoured by {acts}",
                        line(&n.title)
                    ),
                }
            })
            .collect();
        if items.is_empty() {
            items.push("none yet".to_owned());
        }
        let at = self
            .sections
            .iter()
            .position(|s| s.title == COMMITMENTS)
            .map_or(self.sections.len(), |i| i + 1);
        self.sections.insert(
            at,
            Section {
                title: format!("Non-negotiables of {}", org.name),
                items,
            },
        );
        self
    }

    /// The digest `d` of `team` in words.
    pub fn new(d: &Digest, team: &TeamState) -> DigestView {
        let section = |title: &str, items: Vec<String>| Section {
            title: title.to_owned(),
            items,
        };
        let mut sections = Vec::new();
        let (one, many) = match d.team_streak.cadence {
            Cadence::Weekly => ("week", "weeks"),
            Cadence::Daily => ("day", "days"),
        };
        sections.push(section(
            "Team streak",
            vec![format!(
                "{} in a row, best {}{}",
                count(d.team_streak.current, one, many),
                d.team_streak.best,
                d.team_streak
                    .consistency
                    .map(|c| format!(", consistency {:.0}%", c * 100.0))
                    .unwrap_or_default()
            )],
        ));
        let pillars = d
            .pillars
            .iter()
            .map(|(p, n)| {
                // By the name the team gave it (`#Curiosity`), not its id.
                let name = match team.pillars.iter().find(|x| x.id == *p) {
                    Some(pillar) => format!("#{}", pillar.name),
                    None if p.is_empty() => "no pillar".to_owned(),
                    None => format!("#{p}"),
                };
                format!("{name}: {n}")
            })
            .collect();
        sections.push(section("Pillar mix", pillars));
        let commitments = if d.commitments.is_empty() {
            vec!["none yet".to_owned()]
        } else {
            d.commitments.clone()
        };
        sections.push(section(COMMITMENTS, commitments));
        let mut quotes: Vec<String> = d.quotes.iter().map(|q| quote_line(team, q)).collect();
        if quotes.is_empty() {
            quotes.push("none this time".into());
        }
        let unquoted = (d.kudos as usize).saturating_sub(d.quotes.len());
        if unquoted > 0 {
            let noun = if unquoted == 1 {
                "recognition"
            } else {
                "recognitions"
            };
            quotes.push(format!("and {unquoted} more {noun} in the feed"));
        }
        sections.push(section("Recognitions", quotes));
        if !d.new_badges.is_empty() {
            sections.push(section(
                "New team badges",
                d.new_badges
                    .iter()
                    .map(|b| format!("{}: {}", b.name, b.about))
                    .collect(),
            ));
        }
        if let Some(s) = &d.spotlight {
            // A quiet period is nobody's fault: no zeros in a shared page. Celebrated with
            // their own words, never with counts: a team page carries no numbers about one
            // person.
            let mut items = vec![format!(
                "@{}: the spotlight is theirs this time",
                team.handle_of(&s.member)
            )];
            if let Some(q) = &s.quote {
                items.push(quote_line(team, q));
            }
            sections.push(section("Spotlight", items));
        }
        DigestView {
            title: format!("{} — {} to {}", team.name, d.start, d.end),
            summary: format!(
                "{} and {} from {} of {}.",
                count(d.actions as u64, "micro-action", "micro-actions"),
                count(d.kudos as u64, "recognition", "recognitions"),
                d.active_members,
                count(d.members as u64, "member", "members"),
            ),
            sections,
            honoured: d.honoured.clone(),
        }
    }
}
