//! Badges, challenges, reach and nudges: pure functions of the team's acts (micro-actions and
//! recognitions that were not retracted). Team results carry no names; a member's own results
//! are for that member's eyes.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use jiff::ToSpan;
use jiff::civil::Date;
use serde::Serialize;

use crate::Kind;
use crate::rules::{Rules, personal_streak};
use crate::time::week_start;
use crate::{Error, Result};

/// One act that counts: a micro-action or a recognition, not retracted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Act {
    pub author: String,
    /// The author's local date.
    pub date: Date,
    pub kind: Kind,
    pub pillar: Option<String>,
    /// Recipients of a recognition.
    pub to: Vec<String>,
}

/// A badge and the day it was earned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Badge {
    pub id: &'static str,
    pub name: &'static str,
    pub about: &'static str,
    #[serde(serialize_with = "ser_date")]
    pub earned: Date,
}

fn ser_date<S: serde::Serializer>(d: &Date, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(d)
}

fn badge(id: &'static str, name: &'static str, about: &'static str, earned: Date) -> Badge {
    Badge {
        id,
        name,
        about,
        earned,
    }
}

/// The badges `member` has earned, oldest first. `acts` must be in time order.
pub fn member_badges(acts: &[Act], member: &str, pillars: &[String], rules: &Rules) -> Vec<Badge> {
    let mut out = Vec::new();
    let mine: Vec<&Act> = acts.iter().filter(|a| a.author == member).collect();
    if let Some(a) = mine.iter().find(|a| a.kind == Kind::Kudos) {
        out.push(badge(
            "first-kudos",
            "First thanks",
            "gave a first recognition",
            a.date,
        ));
    }
    let mut thanked = HashSet::new();
    if let Some(a) = mine.iter().find(|a| {
        thanked.extend(a.to.iter().filter(|m| *m != member).cloned());
        thanked.len() >= 5
    }) {
        out.push(badge(
            "wide-thanks",
            "Wide thanks",
            "recognised five different teammates",
            a.date,
        ));
    }
    if let Some(a) = mine.iter().filter(|a| a.kind == Kind::Action).nth(9) {
        out.push(badge(
            "ten-stones",
            "Ten stones",
            "logged ten small actions",
            a.date,
        ));
    }
    // A week whose acts touched every pillar the team has.
    if !pillars.is_empty() {
        let mut weeks: BTreeMap<Date, BTreeSet<&str>> = BTreeMap::new();
        for a in &mine {
            if let Some(p) = &a.pillar {
                let set = weeks.entry(week_start(a.date)).or_default();
                set.insert(p.as_str());
                if pillars.iter().all(|p| set.contains(p.as_str())) {
                    out.push(badge(
                        "all-pillars",
                        "Every pillar",
                        "touched every pillar in one week",
                        a.date,
                    ));
                    break;
                }
            }
        }
    }
    // A personal streak of seven: the first day the streak reached it.
    let mut days = BTreeSet::new();
    for a in &mine {
        days.insert(a.date);
        if personal_streak(&days, a.date, rules).best >= 7 {
            out.push(badge(
                "streak-7",
                "Seven in a row",
                "a seven-day streak",
                a.date,
            ));
            break;
        }
    }
    out.sort_by_key(|b| b.earned);
    out
}

/// The badges the team has earned together, oldest first. `acts` must be in time order;
/// `members` are the members and the day each joined (so a later member never takes back a badge
/// already earned).
pub fn team_badges(acts: &[Act], members: &[(String, Date)]) -> Vec<Badge> {
    let mut out = Vec::new();
    if let Some(a) = acts.first() {
        out.push(badge(
            "first-stone",
            "First stone",
            "the team's first logged act",
            a.date,
        ));
    }
    if let Some(a) = acts.iter().filter(|a| a.kind == Kind::Kudos).nth(99) {
        out.push(badge(
            "hundred-kudos",
            "A hundred thanks",
            "the team's 100th recognition",
            a.date,
        ));
    }
    if let Some(a) = acts.get(999) {
        out.push(badge(
            "thousand-stones",
            "A thousand stones",
            "the team's 1,000th act",
            a.date,
        ));
    }
    if !members.is_empty() {
        let mut seen: HashSet<&str> = HashSet::new();
        for a in acts {
            seen.extend(a.to.iter().map(String::as_str));
            // Members who had joined by then; none (an act logged late for a day before the
            // team began) is not everyone.
            let mut due = members
                .iter()
                .filter(|(_, joined)| *joined <= a.date)
                .peekable();
            if due.peek().is_some() && due.all(|(m, _)| seen.contains(m.as_str())) {
                out.push(badge(
                    "everyone-thanked",
                    "Nobody left out",
                    "every member has been recognised at least once",
                    a.date,
                ));
                break;
            }
        }
    }
    out.sort_by_key(|b| b.earned);
    out
}

/// What a challenge counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Recognitions given.
    Kudos,
    /// Micro-actions logged.
    Actions,
    /// Both.
    Stones,
    /// Different members recognised.
    Reach,
}

impl Metric {
    pub fn parse(text: &str) -> Result<Metric> {
        match text.trim().to_lowercase().as_str() {
            "kudos" => Ok(Metric::Kudos),
            "actions" => Ok(Metric::Actions),
            "stones" => Ok(Metric::Stones),
            "reach" => Ok(Metric::Reach),
            other => Err(Error::BadRule(format!(
                "`{other}` is not a metric (kudos, actions, stones or reach)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Kudos => "kudos",
            Metric::Actions => "actions",
            Metric::Stones => "stones",
            Metric::Reach => "reach",
        }
    }
}

/// A team goal with a metric, a target and an end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Challenge {
    pub id: String,
    pub title: String,
    pub metric: Metric,
    pub target: u32,
    #[serde(serialize_with = "ser_date")]
    pub start: Date,
    #[serde(serialize_with = "ser_date")]
    pub until: Date,
}

impl Challenge {
    /// A challenge from its stored texts; `None` when a field is unreadable or the target is zero
    /// (only a faulty peer writes those).
    pub fn from_texts(
        id: String,
        title: String,
        metric: &str,
        target: u32,
        start: &str,
        until: &str,
    ) -> Option<Challenge> {
        Some(Challenge {
            id,
            title,
            metric: Metric::parse(metric).ok()?,
            target: (target > 0).then_some(target)?,
            start: start.parse().ok()?,
            until: until.parse().ok()?,
        })
    }
}

/// How far a challenge has come.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub value: u32,
    pub target: u32,
    pub done: bool,
    /// Its end date has passed.
    pub ended: bool,
}

/// The progress of `c`: acts dated from its start to its end, seen on `today`.
pub fn progress(acts: &[Act], c: &Challenge, today: Date) -> Progress {
    let within = acts
        .iter()
        .filter(|a| a.date >= c.start && a.date <= c.until);
    let value = match c.metric {
        Metric::Kudos => within.filter(|a| a.kind == Kind::Kudos).count() as u32,
        Metric::Actions => within.filter(|a| a.kind == Kind::Action).count() as u32,
        Metric::Stones => within.count() as u32,
        Metric::Reach => within
            .flat_map(|a| a.to.iter())
            .collect::<HashSet<_>>()
            .len() as u32,
    };
    Progress {
        value,
        target: c.target,
        done: value >= c.target,
        ended: today > c.until,
    }
}

/// How widely the team spread its thanks over the `days` up to `today`: members recognised,
/// out of how many. No names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reach {
    pub days: u32,
    pub recognised: u32,
    pub members: u32,
    pub share: f64,
}

pub fn reach(acts: &[Act], members: &[String], today: Date, days: u32) -> Reach {
    let from = today
        .checked_sub((i64::from(days) - 1).days())
        .unwrap_or(today);
    let got: HashSet<&str> = acts
        .iter()
        .filter(|a| a.kind == Kind::Kudos && a.date >= from && a.date <= today)
        .flat_map(|a| a.to.iter().map(String::as_str))
        .filter(|m| members.iter().any(|x| x == m))
        .collect();
    let n = members.len() as u32;
    Reach {
        days,
        recognised: got.len() as u32,
        members: n,
        share: if n == 0 {
            0.0
        } else {
            got.len() as f64 / f64::from(n)
        },
    }
}

/// Teammates `me` has not recognised lately, longest ago (or never) first: a private nudge.
/// Someone thanked in the last week (seen on `today`) is never suggested.
pub fn nudge(
    acts: &[Act],
    me: &str,
    members: &[String],
    today: Date,
) -> Vec<(String, Option<Date>)> {
    let week_ago = today.checked_sub(6.days()).unwrap_or(today);
    let mut last: BTreeMap<&str, Date> = BTreeMap::new();
    for a in acts
        .iter()
        .filter(|a| a.author == me && a.kind == Kind::Kudos)
    {
        for m in &a.to {
            let e = last.entry(m.as_str()).or_insert(a.date);
            *e = (*e).max(a.date);
        }
    }
    let mut out: Vec<(String, Option<Date>)> = members
        .iter()
        .filter(|m| *m != me)
        .map(|m| (m.clone(), last.get(m.as_str()).copied()))
        .filter(|(_, d)| d.is_none_or(|d| d < week_ago))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn act(author: &str, d: Date, kind: Kind, pillar: Option<&str>, to: &[&str]) -> Act {
        Act {
            author: author.into(),
            date: d,
            kind,
            pillar: pillar.map(str::to_owned),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn day(n: i64) -> Date {
        date(2026, 11, 16).checked_add(n.days()).unwrap()
    }

    #[test]
    fn member_badges_are_earned_once_on_the_right_day() {
        let pillars = vec!["trust".to_owned(), "care".to_owned()];
        let mut acts = vec![
            act("ana", day(0), Kind::Action, Some("trust"), &[]),
            act("ana", day(1), Kind::Kudos, Some("care"), &["bo"]),
        ];
        for (i, m) in ["cy", "di", "ed", "fa"].iter().enumerate() {
            acts.push(act("ana", day(2 + i as i64), Kind::Kudos, None, &[m]));
        }
        let b = member_badges(&acts, "ana", &pillars, &Rules::default());
        let ids: Vec<(&str, Date)> = b.iter().map(|b| (b.id, b.earned)).collect();
        assert_eq!(
            ids,
            [
                ("first-kudos", day(1)),
                ("all-pillars", day(1)),
                ("wide-thanks", day(5))
            ]
        );
        // Bo earned nothing: badges are per member.
        assert!(member_badges(&acts, "bo", &pillars, &Rules::default()).is_empty());
    }

    #[test]
    fn a_seven_day_streak_and_ten_stones() {
        let acts: Vec<Act> = (0..12)
            .map(day)
            .filter(|d| !Rules::default().is_rest(*d))
            .map(|d| act("ana", d, Kind::Action, None, &[]))
            .collect();
        let b = member_badges(&acts, "ana", &[], &Rules::default());
        let streak = b.iter().find(|b| b.id == "streak-7").unwrap();
        assert_eq!(
            streak.earned,
            day(8),
            "Mon-Fri, Mon, Tue: the seventh workday"
        );
        assert_eq!(acts.len(), 10);
        assert!(
            b.iter()
                .any(|b| b.id == "ten-stones" && b.earned == day(11))
        );
    }

    #[test]
    fn a_late_log_from_before_the_team_began_thanks_nobody() {
        // The team began on day 1; its first act is logged late for day 0.
        let members = vec![("a".to_owned(), day(1)), ("b".to_owned(), day(1))];
        let acts = vec![
            act("a", day(0), Kind::Action, None, &[]),
            act("a", day(1), Kind::Kudos, None, &["b"]),
        ];
        let badges = team_badges(&acts, &members);
        assert!(
            badges.iter().all(|b| b.id != "everyone-thanked"),
            "{badges:?}"
        );
    }

    #[test]
    fn team_badges_and_challenges() {
        let mut acts = Vec::new();
        for i in 0..120 {
            let to = if i % 2 == 0 { "bo" } else { "ana" };
            let from = if i % 2 == 0 { "ana" } else { "bo" };
            acts.push(act(from, day(i / 10), Kind::Kudos, None, &[to]));
        }
        let members = vec![("ana".to_owned(), day(0)), ("bo".to_owned(), day(0))];
        let b = team_badges(&acts, &members);
        // Someone who joins later does not take the badge back.
        let mut more = members.clone();
        more.push(("cy".to_owned(), day(50)));
        assert_eq!(team_badges(&acts, &more), b);
        let ids: Vec<&str> = b.iter().map(|b| b.id).collect();
        assert_eq!(ids, ["first-stone", "everyone-thanked", "hundred-kudos"]);
        assert_eq!(b[2].earned, day(9));
        let c = Challenge {
            id: "c".into(),
            title: "30 kudos in a week".into(),
            metric: Metric::Kudos,
            target: 30,
            start: day(0),
            until: day(2),
        };
        assert_eq!(
            progress(&acts, &c, day(1)),
            Progress {
                value: 30,
                target: 30,
                done: true,
                ended: false
            }
        );
        let reach_c = Challenge {
            metric: Metric::Reach,
            target: 3,
            ..c
        };
        let p = progress(&acts, &reach_c, day(5));
        assert_eq!((p.value, p.done, p.ended), (2, false, true));
    }

    #[test]
    fn reach_has_no_names_and_nudges_put_the_longest_ago_first() {
        let acts = vec![
            act("ana", day(0), Kind::Kudos, None, &["bo"]),
            act("ana", day(20), Kind::Kudos, None, &["cy"]),
            act("bo", day(25), Kind::Kudos, None, &["cy"]),
        ];
        let members: Vec<String> = ["ana", "bo", "cy", "di"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let r = reach(&acts, &members, day(30), 31);
        assert_eq!((r.recognised, r.members), (2, 4));
        assert_eq!(r.share, 0.5);
        let r = reach(&acts, &members, day(30), 10);
        assert_eq!(r.recognised, 1);
        let n = nudge(&acts, "ana", &members, day(30));
        assert_eq!(
            n,
            vec![
                ("di".to_owned(), None),
                ("bo".to_owned(), Some(day(0))),
                ("cy".to_owned(), Some(day(20)))
            ]
        );
        // Cy, thanked six days ago, is not suggested; a week later, Cy is again.
        let names =
            |n: Vec<(String, Option<Date>)>| n.into_iter().map(|(m, _)| m).collect::<Vec<_>>();
        assert_eq!(names(nudge(&acts, "ana", &members, day(26))), ["di", "bo"]);
        assert_eq!(
            names(nudge(&acts, "ana", &members, day(27))),
            ["di", "bo", "cy"]
        );
        assert_eq!(names(nudge(&acts, "ana", &members, day(20))), ["di", "bo"]);
    }
}
