//! The digest: a summary of a week or a month for a retrospective, the same on every replica.

use std::collections::{BTreeMap, HashSet};

use jiff::civil::Date;
use serde::Serialize;

use crate::goals::{Act, Badge, team_badges};
use crate::rules::{Rules, TeamStreak, team_streak};
use crate::{Event, Kind, TeamState};

/// A recognition quoted in the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub from: String,
    pub to: Vec<String>,
    pub text: String,
}

/// The member in the spotlight, chosen in turn so everyone gets a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Spotlight {
    pub member: String,
    /// Their acts in the period.
    pub acts: u32,
    /// Recognitions they received in the period.
    pub thanked: u32,
    /// One of those recognitions, if any.
    pub quote: Option<Quote>,
}

/// What a period held.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Digest {
    pub start: String,
    pub end: String,
    pub actions: u32,
    pub kudos: u32,
    pub active_members: u32,
    /// Members on the team by the period's end (placeholders from when they arrived or acted).
    pub members: u32,
    pub team_streak: TeamStreak,
    /// Acts per pillar (pillar id), the team's pillars in order, then none.
    pub pillars: Vec<(String, u32)>,
    pub quotes: Vec<Quote>,
    pub new_badges: Vec<Badge>,
    pub spotlight: Option<Spotlight>,
    pub commitments: Vec<String>,
    /// The team's acts of the period that honoured each of the organisation's non-negotiables,
    /// by its id: the team's, never a number about one member. An act of someone of another
    /// team (a recognition across teams they gave) is their team's, not counted here.
    pub honoured: BTreeMap<String, u32>,
}

/// The digest of `start..=end`. `events` are the period's events (any order); `acts` all the
/// team's acts in time order (for the streak and badges); `today` bounds the streak (a period
/// not over yet breaks nothing); `period_index` numbers the period (weeks or months since some
/// origin) and picks the spotlight in turn among the members who had joined by its end.
#[allow(clippy::too_many_arguments)]
pub fn digest(
    team: &TeamState,
    events: &[Event],
    acts: &[Act],
    start: Date,
    end: Date,
    today: Date,
    period_index: i64,
    rules: &Rules,
) -> Digest {
    // The team's own acts: a recognition from someone of another team (`@cy@mobile`) shows in
    // its feed but is that team's act, not this one's.
    let within: Vec<&Event> = events
        .iter()
        .filter(|e| e.counts() && !e.author.starts_with('@'))
        .filter(|e| e.date.parse::<Date>().is_ok_and(|d| d >= start && d <= end))
        .collect();
    let mut pillars: BTreeMap<&str, u32> = BTreeMap::new();
    for e in &within {
        *pillars
            .entry(e.pillar.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    let mut pillar_rows: Vec<(String, u32)> = team
        .pillars
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                pillars.get(p.id.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    // Pillars archived or unknown here still add up: they go under "other", then none.
    let other: u32 = pillars
        .iter()
        .filter(|(p, _)| !p.is_empty() && !team.pillars.iter().any(|x| x.id == **p))
        .map(|(_, n)| *n)
        .sum();
    if other > 0 {
        pillar_rows.push(("other".to_owned(), other));
    }
    if let Some(n) = pillars.get("") {
        pillar_rows.push((String::new(), *n));
    }
    let mut kudos: Vec<&&Event> = within.iter().filter(|e| e.kind == Kind::Kudos).collect();
    kudos.sort_by(|a, b| b.id.cmp(&a.id));
    let quote = |e: &Event| Quote {
        from: e.author.clone(),
        to: e.to.clone(),
        text: e.text.clone(),
    };
    // Placeholders count from when they arrived or first acted, never before.
    let members = team.joined_dates(acts);
    let activity: Vec<(String, Date)> = acts.iter().map(|a| (a.author.clone(), a.date)).collect();
    let streak = team_streak(&activity, &team.tenures(), end.min(today), rules);
    let new_badges = team_badges(acts, &members)
        .into_iter()
        .filter(|b| b.earned >= start && b.earned <= end)
        .collect();
    // In turn: members by when they joined (a placeholder: arrived), one per period.
    let mut order: Vec<(Date, i64, &crate::Member)> = team
        .members
        .iter()
        .filter_map(|m| {
            let (_, from) = members.iter().find(|(id, _)| *id == m.id)?;
            (*from <= end).then(|| (*from, m.arrived().unwrap_or(i64::MAX), m))
        })
        .collect();
    order.sort_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
    let spotlight = (!order.is_empty()).then(|| {
        let m = order[period_index.rem_euclid(order.len() as i64) as usize].2;
        let thanks: Vec<&&&Event> = kudos.iter().filter(|e| e.to.contains(&m.id)).collect();
        Spotlight {
            member: m.id.clone(),
            acts: within.iter().filter(|e| e.author == m.id).count() as u32,
            thanked: thanks.len() as u32,
            quote: thanks.first().map(|e| quote(e)),
        }
    });
    let mut honoured: BTreeMap<String, u32> = BTreeMap::new();
    for e in &within {
        if let Some(h) = &e.honours {
            *honoured.entry(h.clone()).or_default() += 1;
        }
    }
    let active: HashSet<&str> = within.iter().map(|e| e.author.as_str()).collect();
    Digest {
        start: start.to_string(),
        end: end.to_string(),
        actions: within.iter().filter(|e| e.kind == Kind::Action).count() as u32,
        kudos: kudos.len() as u32,
        active_members: active.len() as u32,
        members: order.len() as u32,
        team_streak: streak,
        pillars: pillar_rows,
        quotes: kudos.iter().take(5).map(|e| quote(e)).collect(),
        new_badges,
        spotlight,
        commitments: team.commitments.iter().map(|c| c.text.clone()).collect(),
        honoured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EventId;
    use crate::team::Member;
    use jiff::civil::date;

    fn ev(n: u8, author: &str, d: &str, kind: Kind, to: &[&str], text: &str) -> Event {
        Event {
            id: EventId::new(1_795_000_000_000 + i64::from(n), [n; 5]),
            kind,
            author: author.into(),
            at_ms: 0,
            tz: "UTC".into(),
            date: d.into(),
            late: false,
            pillar: (kind == Kind::Action).then(|| "trust".to_owned()),
            text: text.into(),
            why: None,
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            target: None,
            emoji: None,
            retracted: false,
            edited_ms: None,
            honours: None,
        }
    }

    #[test]
    fn a_week_in_one_page_and_the_spotlight_takes_turns() {
        let mut team = TeamState {
            name: "Otters".into(),
            tz: "UTC".into(),
            ..TeamState::default()
        };
        for (i, m) in ["ana", "bo", "cy"].iter().enumerate() {
            team.members.push(Member {
                id: (*m).into(),
                name: (*m).into(),
                handle: (*m).into(),
                joined_ms: i as i64,
                ..Member::default()
            });
        }
        team.pillars.push(crate::team::Pillar {
            id: "trust".into(),
            name: "trust".into(),
            about: None,
        });
        let events = vec![
            ev(1, "ana", "2026-11-16", Kind::Action, &[], "tidied"),
            ev(2, "bo", "2026-11-17", Kind::Kudos, &["ana"], "thanks ana"),
            ev(3, "cy", "2026-11-18", Kind::Kudos, &["bo"], "thanks bo"),
            ev(4, "cy", "2026-11-09", Kind::Action, &[], "last week"),
        ];
        let acts: Vec<Act> = events
            .iter()
            .map(|e| Act {
                author: e.author.clone(),
                date: e.date.parse().unwrap(),
                kind: e.kind,
                pillar: e.pillar.clone(),
                to: e.to.clone(),
            })
            .collect();
        let (start, end) = (date(2026, 11, 16), date(2026, 11, 22));
        let d = digest(&team, &events, &acts, start, end, end, 0, &Rules::default());
        assert_eq!(
            (d.actions, d.kudos, d.active_members, d.members),
            (1, 2, 3, 3)
        );
        assert_eq!(d.pillars, [("trust".to_owned(), 1), (String::new(), 2)]);
        assert_eq!(d.quotes[0].text, "thanks bo", "newest first");
        let s = d.spotlight.unwrap();
        assert_eq!((s.member.as_str(), s.acts, s.thanked), ("ana", 1, 1));
        assert_eq!(s.quote.unwrap().text, "thanks ana");
        // The next period, the next member.
        let d = digest(&team, &events, &acts, start, end, end, 1, &Rules::default());
        assert_eq!(d.spotlight.unwrap().member, "bo");
        let d = digest(&team, &events, &acts, start, end, end, 5, &Rules::default());
        assert_eq!(d.spotlight.unwrap().member, "cy");
    }

    #[test]
    fn acts_honouring_a_non_negotiable_are_counted_per_non_negotiable() {
        let team = TeamState {
            name: "Otters".into(),
            tz: "UTC".into(),
            ..TeamState::default()
        };
        let honouring = |e: Event, id: &str| Event {
            honours: Some(id.into()),
            ..e
        };
        let mut retracted = honouring(ev(3, "ana", "2026-11-18", Kind::Action, &[], "x"), "nn1");
        retracted.retracted = true;
        let events = vec![
            honouring(ev(1, "ana", "2026-11-16", Kind::Action, &[], "x"), "nn1"),
            honouring(ev(2, "bo", "2026-11-17", Kind::Kudos, &["ana"], "x"), "nn1"),
            retracted,
            honouring(ev(4, "cy", "2026-11-09", Kind::Action, &[], "x"), "nn1"),
            honouring(ev(5, "cy", "2026-11-19", Kind::Action, &[], "x"), "nn2"),
            // Given from another team: theirs to count.
            honouring(
                ev(6, "@di@mobile", "2026-11-19", Kind::Kudos, &["cy"], "x"),
                "nn2",
            ),
            ev(7, "cy", "2026-11-20", Kind::Action, &[], "x"),
        ];
        let (start, end) = (date(2026, 11, 16), date(2026, 11, 22));
        let d = digest(&team, &events, &[], start, end, end, 0, &Rules::default());
        assert_eq!(
            d.honoured,
            BTreeMap::from([("nn1".to_owned(), 2), ("nn2".to_owned(), 1)])
        );
    }

    #[test]
    fn placeholders_change_no_figure_until_they_arrive_or_act() {
        use crate::goals::{nudge, reach};
        use crate::team;
        // Monday 2026-11-09, 09:00 UTC: Ana founds the team, Bo joins.
        let t0 = 1_794_214_800_000;
        let mut doc = automerge::Automerge::new();
        team::init(&mut doc, "Otters", "UTC", "Ana", "ana", "ana", t0).unwrap();
        let state = team::read(&doc).unwrap();
        team::add_member(&mut doc, &state, "bo", "Bo", None, t0 + 1).unwrap();
        let without = team::read(&doc).unwrap();
        for p in ["cy", "di", "ed", "fa"] {
            let state = team::read(&doc).unwrap();
            team::add_placeholder(&mut doc, &state, p, p, None, t0 + 2).unwrap();
        }
        let with = team::read(&doc).unwrap();
        assert_eq!(with.members.len(), 6);
        let events = vec![
            ev(1, "ana", "2026-11-09", Kind::Action, &[], "tidied"),
            ev(2, "ana", "2026-11-16", Kind::Action, &[], "tidied again"),
            ev(3, "bo", "2026-11-17", Kind::Kudos, &["ana"], "thanks ana"),
            ev(4, "ana", "2026-11-18", Kind::Kudos, &["cy"], "welcome, cy"),
        ];
        let acts_of = |events: &[Event]| -> Vec<Act> {
            events
                .iter()
                .map(|e| Act {
                    author: e.author.clone(),
                    date: e.date.parse().unwrap(),
                    kind: e.kind,
                    pillar: e.pillar.clone(),
                    to: e.to.clone(),
                })
                .collect()
        };
        let acts = acts_of(&events);
        let (start, end) = (date(2026, 11, 16), date(2026, 11, 22));
        let rules = Rules::default();
        for index in 0..6 {
            let a = digest(&with, &events, &acts, start, end, end, index, &rules);
            let b = digest(&without, &events, &acts, start, end, end, index, &rules);
            assert_eq!(a, b, "period {index}");
            assert_eq!((a.members, a.team_streak.needed_now), (2, 1));
        }
        assert_eq!(with.counted(&acts), without.counted(&acts));
        assert_eq!(
            reach(&acts, &with.counted(&acts), end, 30),
            reach(&acts, &without.counted(&acts), end, 30)
        );
        // Ana is nudged toward Bo alone, not toward teammates who never joined.
        assert_eq!(
            nudge(&acts, "ana", &with.counted(&acts), end),
            [("bo".to_owned(), None)]
        );

        // Cy's device joins on Wednesday: Cy counts from then, in turn for the spotlight too.
        team::arrive(&mut doc, &with, "cy", t0 + 9 * 86_400_000).unwrap();
        // Di logs on Thursday from a device that never said it arrived: Di counts from then.
        let mut events = events;
        events.push(ev(5, "di", "2026-11-19", Kind::Action, &[], "first stone"));
        let acts = acts_of(&events);
        let now = team::read(&doc).unwrap();
        assert_eq!(now.counted(&acts), ["ana", "bo", "cy", "di"]);
        let spotlit: Vec<String> = (0..4)
            .map(|i| {
                digest(&now, &events, &acts, start, end, end, i, &rules)
                    .spotlight
                    .unwrap()
                    .member
            })
            .collect();
        assert_eq!(spotlit, ["ana", "bo", "cy", "di"], "newcomers come last");
        let d = digest(&now, &events, &acts, start, end, end, 0, &rules);
        assert_eq!((d.members, d.team_streak.needed_now), (4, 2));
        // Last week they were not there yet: only Ana and Bo, in turn.
        let (s, e) = (date(2026, 11, 9), date(2026, 11, 15));
        let last: Vec<String> = (0..4)
            .map(|i| {
                digest(&now, &events, &acts, s, e, end, i, &rules)
                    .spotlight
                    .unwrap()
                    .member
            })
            .collect();
        assert_eq!(last, ["ana", "bo", "ana", "bo"]);
        assert_eq!(
            digest(&now, &events, &acts, s, e, end, 0, &rules).members,
            2
        );
    }
}
