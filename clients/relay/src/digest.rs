//! The weekly digest in chat: when it is due, what it says, and the events held for it.
//!
//! Each destination whose `post` asks for `digest` gets, once a week at its `digest` time in
//! the team's zone (Monday 09:00 unless the config says otherwise), the digest of the last
//! whole week (Monday to Sunday) before that time: the figures and quoted recognitions of
//! `cairn digest --last`, built from the same model (`cairn_client::views::digest` and
//! [`DigestView`]), never from the CLI's output.
//!
//! What a team channel never gets from it: the spotlight (one member picked in turn). In the
//! CLI and the web it is read by members who know it passes from one to the next; in a channel
//! it reads as "member of the week", a ranking by another name, and it names someone whether
//! or not they had anything to show that week. So the digest in chat carries the team's
//! figures and the words members shared with the team, and nothing about one person.
//!
//! Events that reached the relay too late to be posted alone (the queue's `held` table) are
//! quoted in the digest of their week, or in the next one built after they arrived, and are
//! marked as used by that week so they are not quoted twice.
//!
//! Posted once per (destination, week): the digest is a row of the delivery queue keyed by
//! its week (`digest:2026-11-23`, the Monday of the week it sums up), so a restart or a crash
//! neither repeats nor loses it (see the queue for a message in flight). A relay that was not
//! running at the digest's time posts it when it starts again within the same week; after
//! that week it is skipped (`status` says so). A week that ended before the relay's first
//! start is history: never posted.

use std::fmt;

use cairn_client::views::{self, DigestView, Period};
use cairn_core::{Kind as EventKind, TeamState};
use cairn_store::Replica;
use jiff::ToSpan as _;
use jiff::Zoned;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::post::{Post, PostKind, name_of};
use crate::queue::Queue;
use crate::{Error, Result};

/// When a destination's weekly digest is due: a weekday and a local time in the team's zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub weekday: Weekday,
    pub hour: i8,
    pub minute: i8,
}

impl Default for Schedule {
    /// Monday 09:00.
    fn default() -> Schedule {
        Schedule {
            weekday: Weekday::Monday,
            hour: 9,
            minute: 0,
        }
    }
}

const DAYS: [(Weekday, &str); 7] = [
    (Weekday::Monday, "monday"),
    (Weekday::Tuesday, "tuesday"),
    (Weekday::Wednesday, "wednesday"),
    (Weekday::Thursday, "thursday"),
    (Weekday::Friday, "friday"),
    (Weekday::Saturday, "saturday"),
    (Weekday::Sunday, "sunday"),
];

impl Schedule {
    /// Reads `monday 09:00` (a weekday, whole or its first three letters, and a 24-hour time).
    pub fn parse(text: &str) -> std::result::Result<Schedule, String> {
        let bad = || format!("{text:?} is not a weekday and a time, like \"monday 09:00\"");
        let lower = text.trim().to_ascii_lowercase();
        let mut words = lower.split_whitespace();
        let (Some(day), Some(time), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let weekday = DAYS
            .iter()
            .find(|(_, name)| *name == day || (day.len() == 3 && name.starts_with(day)))
            .map(|(w, _)| *w)
            .ok_or_else(bad)?;
        let (h, m) = time.split_once(':').ok_or_else(bad)?;
        let hour = h.parse::<i8>().ok().filter(|h| (0..24).contains(h));
        let minute = m
            .parse::<i8>()
            .ok()
            .filter(|n| (0..60).contains(n) && m.len() == 2);
        match (hour, minute) {
            (Some(hour), Some(minute)) => Ok(Schedule {
                weekday,
                hour,
                minute,
            }),
            _ => Err(format!(
                "{text:?}: the time must be HH:MM on a 24-hour clock, like 09:00"
            )),
        }
    }

    /// This schedule's time in the week that starts on `monday`.
    fn in_week(&self, monday: Date, tz: &TimeZone) -> Option<Zoned> {
        let day = monday
            .checked_add(i64::from(self.weekday.to_monday_zero_offset()).days())
            .ok()?;
        // A time a clock change skips is taken as the time after the gap (jiff's rule).
        day.at(self.hour, self.minute, 0, 0)
            .to_zoned(tz.clone())
            .ok()
    }

    /// The latest time at or before `now_ms` that this schedule came due in zone `tz`.
    pub fn last_due(&self, now_ms: i64, tz: &TimeZone) -> Option<Zoned> {
        let now = jiff::Timestamp::from_millisecond(now_ms).ok()?;
        let monday = cairn_core::time::week_start(now.to_zoned(tz.clone()).date());
        let this = self.in_week(monday, tz)?;
        if this.timestamp() <= now {
            Some(this)
        } else {
            self.in_week(monday.checked_sub(7.days()).ok()?, tz)
        }
    }

    /// The first time after `now_ms` that this schedule comes due in zone `tz`.
    pub fn next_due(&self, now_ms: i64, tz: &TimeZone) -> Option<Zoned> {
        let last = self.last_due(now_ms, tz)?;
        let monday = cairn_core::time::week_start(last.date());
        self.in_week(monday.checked_add(7.days()).ok()?, tz)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = DAYS
            .iter()
            .find(|(w, _)| *w == self.weekday)
            .map_or("monday", |(_, n)| n);
        write!(f, "{day} {:02}:{:02}", self.hour, self.minute)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The team's zone, UTC when the team's is unknown here.
pub fn zone(tz: &str) -> TimeZone {
    TimeZone::get(tz).unwrap_or(TimeZone::UTC)
}

/// The queue's key of the digest of the week that starts on `week` (a Monday).
pub fn key(week: Date) -> String {
    format!("digest:{week}")
}

/// Whether a digest that came due is to be posted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueState {
    /// Due this week, and its week did not end before the relay's first start.
    Now,
    /// Its time came in an earlier week and the relay was not running since: skipped.
    Missed,
    /// Its week ended before the relay's first start: history, never posted.
    History,
}

/// The digest that came due last for a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The Monday of the week it sums up.
    pub week: Date,
    /// When it came due.
    pub at: Zoned,
    pub state: DueState,
}

/// The digest of `schedule` that came due last by `now_ms` in zone `tz`, for a relay that first
/// started at `started_ms`.
pub fn due(schedule: &Schedule, tz: &TimeZone, now_ms: i64, started_ms: i64) -> Option<Due> {
    let at = schedule.last_due(now_ms, tz)?;
    let due_week = cairn_core::time::week_start(at.date());
    let week = due_week.checked_sub(7.days()).ok()?;
    let ended_ms = week_end_ms(week, tz)?;
    let now_week = cairn_core::time::week_start(
        jiff::Timestamp::from_millisecond(now_ms)
            .ok()?
            .to_zoned(tz.clone())
            .date(),
    );
    let state = if started_ms >= ended_ms {
        DueState::History
    } else if now_week != due_week {
        DueState::Missed
    } else {
        DueState::Now
    };
    Some(Due { week, at, state })
}

/// When the week that starts on `week` ends in zone `tz` (the next Monday's midnight), in UTC
/// milliseconds.
pub fn week_end_ms(week: Date, tz: &TimeZone) -> Option<i64> {
    let next = week.checked_add(7.days()).ok()?;
    Some(next.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond())
}

/// A digest as the queue keeps it: the week, the team's figures and the quoted recognitions,
/// before any platform's format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestBody {
    /// The week's first and last day (`2026-11-23`, `2026-11-29`).
    pub start: String,
    pub end: String,
    /// The team's figures in a sentence: `5 micro-actions and 2 recognitions from 3 of 4
    /// members.`
    pub summary: String,
    pub sections: Vec<Section>,
}

/// A titled part of a digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

/// One line of a digest's section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Item {
    /// Words the team chose (a commitment, a pillar's name and its count, a team badge).
    Line { text: String },
    /// The relay's own words and figures (`and 3 more recognitions in the feed`).
    Note { text: String },
    /// A recognition quoted: the giver's and the recipients' display names, the giver's words,
    /// and, for one that arrived late, the day it happened.
    Quote {
        from: String,
        to: Vec<String>,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<String>,
    },
}

/// An event held for the digest: its key in the queue (`id/author`) and when it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    pub at_ms: i64,
}

/// The most late arrivals one digest quotes (the others are counted).
pub const MAX_LATE: usize = 20;

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The digest of the week that starts on `week` (a Monday), due at `due_ms`, with the events
/// `held` for it. Returns the post and the keys of the held events it used (every one given:
/// one retracted since, or already among the week's quotes, is used up too).
pub fn build(
    replica: &Replica,
    team: &TeamState,
    week: Date,
    due_ms: i64,
    held: &[Held],
) -> Result<(Post, Vec<String>)> {
    let acts = replica.acts()?;
    // Any day of the week after: `last` makes the digest that of `week`.
    let after = week
        .checked_add(7.days())
        .map_err(|e| Error::Queue(format!("no week after {week}: {e}")))?;
    let period = Period {
        month: false,
        last: true,
    };
    let mut d = views::digest(replica, team, after, period, &acts)?;
    // Not in a team channel: see the module's docs.
    d.spotlight = None;
    let view = DigestView::new(&d, team);
    let names = |ids: &[String]| -> Vec<String> { ids.iter().map(|m| name_of(team, m)).collect() };
    let mut sections = Vec::new();
    for s in &view.sections {
        let items = if s.title == "Recognitions" {
            // By display name, as the relay names people everywhere else.
            // Someone who said they are not named in chat is counted, never quoted.
            let mut items: Vec<Item> = d
                .quotes
                .iter()
                .filter(|q| {
                    team.named_in_chat(&q.from) && q.to.iter().all(|m| team.named_in_chat(m))
                })
                .map(|q| Item::Quote {
                    from: name_of(team, &q.from),
                    to: names(&q.to),
                    text: q.text.clone(),
                    date: None,
                })
                .collect();
            let shown = items.len();
            if items.is_empty() && d.kudos == 0 {
                items.push(Item::Note {
                    text: "none this time".into(),
                });
            }
            let unquoted = (d.kudos as usize).saturating_sub(shown);
            if unquoted > 0 {
                items.push(Item::Note {
                    text: format!(
                        "and {} in the feed",
                        count(unquoted, "more recognition", "more recognitions")
                    ),
                });
            }
            items
        } else {
            s.items
                .iter()
                .map(|i| Item::Line { text: i.clone() })
                .collect()
        };
        sections.push(Section {
            title: s.title.clone(),
            items,
        });
    }
    // What arrived too late to be posted alone.
    let quoted = |e: &cairn_core::Event| {
        d.quotes.iter().any(|q| {
            team.canonical(&q.from) == team.canonical(&e.author) && q.text == e.text && q.to == e.to
        })
    };
    let (mut late, mut actions, mut used) = (Vec::new(), 0usize, Vec::new());
    for h in held {
        used.push(h.key.clone());
        let Some((id, author)) = h.key.split_once('/') else {
            continue;
        };
        let e = match replica.resolve(id, author) {
            Ok(e) if !e.retracted => e,
            Ok(_) | Err(cairn_store::Error::NoSuchEvent(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        match e.kind {
            EventKind::Kudos
                if !quoted(&e)
                    && team.named_in_chat(&e.author)
                    && e.to.iter().all(|m| team.named_in_chat(m)) =>
            {
                late.push(Item::Quote {
                    from: name_of(team, &e.author),
                    to: names(&e.to),
                    text: e.text.clone(),
                    date: Some(e.date.clone()),
                })
            }
            EventKind::Action => actions += 1,
            _ => {}
        }
    }
    let more = late.len().saturating_sub(MAX_LATE);
    late.truncate(MAX_LATE);
    if more > 0 {
        late.push(Item::Note {
            text: format!("and {more} more that arrived late"),
        });
    }
    if actions > 0 {
        late.push(Item::Note {
            text: format!(
                "{} logged late",
                count(actions, "micro-action", "micro-actions")
            ),
        });
    }
    if !late.is_empty() {
        sections.push(Section {
            title: "Arrived late".into(),
            items: late,
        });
    }
    let post = Post {
        kind: PostKind::Digest,
        event: key(week),
        team: team.name.clone(),
        author: String::new(),
        to: Vec::new(),
        text: String::new(),
        why: None,
        pillar: None,
        at_ms: due_ms,
        digest: Some(DigestBody {
            start: d.start,
            end: d.end,
            summary: view.summary,
            sections,
        }),
    };
    Ok((post, used))
}

/// The Monday of the last whole week before `now_ms` in zone `tz`.
pub fn last_week(now_ms: i64, tz: &TimeZone) -> Option<Date> {
    let today = jiff::Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned(tz.clone())
        .date();
    cairn_core::time::week_start(today)
        .checked_sub(7.days())
        .ok()
}

/// What [`send_now`] did.
#[derive(Clone, Debug)]
pub struct SentNow {
    pub post: Post,
    /// Per destination that asks for the digest: whether it was queued now (false: it was
    /// already; `None`: the destination is disabled).
    pub queued: Vec<(String, Option<bool>)>,
}

/// Builds the digest of the week that starts on `week` (default: the last whole week) from
/// the config's replica and queues it for every destination that asks for the digest, at
/// `now_ms`, whatever its time: for an operator. Still once per (destination, week), and
/// nothing for a disabled destination.
pub fn send_now(cfg: &crate::config::Config, week: Option<Date>, now_ms: i64) -> Result<SentNow> {
    if !cfg.replica.exists() {
        return Err(Error::NoReplica(cfg.replica.clone()));
    }
    let replica = Replica::open(&cfg.replica)?;
    let team = replica.team()?;
    let tz = zone(&team.tz);
    let week = match week {
        Some(w) => cairn_core::time::week_start(w),
        None => last_week(now_ms, &tz)
            .ok_or_else(|| Error::Config("the relay's clock is out of range".into()))?,
    };
    let key = key(week);
    let mut queue = Queue::open(&crate::relay::queue_path(&cfg.home))?;
    let end = week_end_ms(week, &tz).unwrap_or(now_ms);
    let held = queue.held_for(&key, end)?;
    let (post, used) = build(&replica, &team, week, now_ms, &held)?;
    let mut out = Vec::new();
    for d in &cfg.destinations {
        if !d.parts.contains(&crate::config::Part::Digest) {
            continue;
        }
        let queued = if queue.destination(&d.name)?.disabled_ms.is_some() {
            None
        } else {
            Some(queue.queue_digest(&d.name, &key, &post, &used, now_ms)?)
        };
        out.push((d.name.clone(), queued));
    }
    Ok(SentNow { post, queued: out })
}

/// What `status` says of a destination's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outlook {
    /// When the next one is due (RFC 3339, in the team's zone).
    pub next_due: Option<String>,
    /// The Monday of the week the last one due sums up.
    pub last_week: Option<String>,
    /// What became of the last one due, in words.
    pub last: String,
}

/// What became of `dest`'s last digest and when its next is due, at `now_ms` in zone `tz`.
pub fn outlook(
    queue: &Queue,
    dest: &crate::config::Destination,
    tz: &TimeZone,
    now_ms: i64,
) -> Result<Outlook> {
    let next_due = dest
        .digest
        .next_due(now_ms, tz)
        .map(|z| z.round(jiff::Unit::Second).unwrap_or(z).to_string());
    let Some(started) = queue.started_ms()? else {
        return Ok(Outlook {
            next_due,
            last_week: None,
            last: "none yet: the relay has not started".into(),
        });
    };
    let Some(due) = due(&dest.digest, tz, now_ms, started) else {
        return Ok(Outlook {
            next_due,
            last_week: None,
            last: "none yet".into(),
        });
    };
    let at = due.at.round(jiff::Unit::Second).unwrap_or(due.at.clone());
    let last = match (queue.delivery_state(&dest.name, &key(due.week))?, due.state) {
        (Some(state), _) => match state.as_str() {
            "done" => "posted".to_owned(),
            "pending" | "sending" => "queued".to_owned(),
            other => other.replace('_', " "),
        },
        (None, DueState::Now) => "due: the relay posts it at its next look".into(),
        (None, DueState::Missed) => format!(
            "skipped: it came due at {at} and the relay did not run again until that week was \
             over"
        ),
        (None, DueState::History) => {
            "none: that week ended before the relay's first start (history)".into()
        }
    };
    Ok(Outlook {
        next_due,
        last_week: Some(due.week.to_string()),
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn schedules_parse_and_refuse_nonsense() {
        assert_eq!(
            Schedule::parse("Monday 09:00").unwrap(),
            Schedule::default()
        );
        let s = Schedule::parse(" fri  17:30 ").unwrap();
        assert_eq!((s.weekday, s.hour, s.minute), (Weekday::Friday, 17, 30));
        assert_eq!(s.to_string(), "friday 17:30");
        for bad in [
            "",
            "monday",
            "moonday 09:00",
            "monday 24:00",
            "monday 9:5",
            "mo 09:00",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn due_times_are_in_the_teams_zone() {
        let tokyo = zone("Asia/Tokyo");
        let s = Schedule::default();
        // Monday 2026-11-30 09:00 in Tokyo is 00:00 UTC.
        let before = ms("2026-11-29T23:59:59Z");
        let at = ms("2026-11-30T00:00:00Z");
        assert_eq!(
            s.last_due(before, &tokyo)
                .unwrap()
                .timestamp()
                .as_millisecond(),
            ms("2026-11-23T00:00:00Z")
        );
        assert_eq!(
            s.last_due(at, &tokyo).unwrap().timestamp().as_millisecond(),
            at
        );
        assert_eq!(
            s.next_due(before, &tokyo)
                .unwrap()
                .timestamp()
                .as_millisecond(),
            at
        );
        // Started in the week summed up: due. Started after it ended: history. Back in a
        // later week: missed.
        let started = ms("2026-11-25T00:00:00Z");
        let d = due(&s, &tokyo, at, started).unwrap();
        assert_eq!(
            (d.week.to_string(), d.state),
            ("2026-11-23".into(), DueState::Now)
        );
        let d = due(&s, &tokyo, at, ms("2026-11-29T16:00:00Z")).unwrap();
        assert_eq!(d.state, DueState::History);
        let d = due(&s, &tokyo, ms("2026-12-06T14:59:00Z"), started).unwrap();
        assert_eq!(
            d.state,
            DueState::Now,
            "Sunday 23:59 in Tokyo is the same week"
        );
        let d = due(&s, &tokyo, ms("2026-12-06T15:00:00Z"), started).unwrap();
        assert_eq!(
            d.state,
            DueState::Missed,
            "Monday 00:00 in Tokyo: the week is over"
        );
    }
}
