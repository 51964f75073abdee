//! The gamification rules: personal and team streaks and the activity heatmap, as pure functions
//! of who was active on which local date. Every replica that holds the same events computes the
//! same numbers.
//!
//! A member's day is the local date in the zone they logged from (the event's `date`), so clock
//! changes and travel never split or double a day: a day is a date, not 24 hours. Micro-actions
//! and recognitions count as activity; reactions and retracted events do not.
//!
//! ```
//! use std::collections::BTreeSet;
//! use cairn_core::rules::{Rules, personal_streak};
//! use jiff::civil::date;
//! // Monday to Wednesday active; today is Thursday and not over yet.
//! let active: BTreeSet<_> = [date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)].into();
//! let s = personal_streak(&active, date(2026, 11, 19), &Rules::default());
//! assert_eq!((s.current, s.best), (3, 3));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use serde::Serialize;

use crate::{Error, Result};

/// Consecutive active workdays that earn one freeze.
pub const FREEZE_EVERY: u32 = 5;
/// The most freezes a member holds at once.
pub const MAX_FREEZES: u32 = 2;

/// How often the team streak counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    Weekly,
    Daily,
}

impl std::fmt::Display for Cadence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cadence::Weekly => "weekly",
            Cadence::Daily => "daily",
        })
    }
}

/// How many members make a period count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// Half the team (rounded up), at least one.
    Half,
    /// At least this many (but never more than the team has).
    AtLeast(u32),
}

impl Serialize for Quorum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl std::fmt::Display for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quorum::Half => f.write_str("half"),
            Quorum::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

impl Quorum {
    /// Members needed in a team of `size`.
    pub fn needed(self, size: u32) -> u32 {
        match self {
            Quorum::Half => size.div_ceil(2).max(1),
            Quorum::AtLeast(n) => n.min(size).max(1),
        }
    }
}

/// The team's streak rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// Days that neither count nor break a personal streak.
    #[serde(serialize_with = "ser_days")]
    pub rest_days: Vec<Weekday>,
    pub cadence: Cadence,
    pub quorum: Quorum,
    /// Workdays back that can still be logged late (`cairn log --on DATE`): 1, the last workday,
    /// by default; at most [`MAX_LATE_DAYS`], and never more than a week.
    pub late_days: u32,
}

/// The most workdays back a team can allow to be logged late.
pub const MAX_LATE_DAYS: u32 = 5;

fn ser_date<S: serde::Serializer>(d: &Date, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(d)
}

fn ser_days<S: serde::Serializer>(days: &[Weekday], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(days.iter().map(|d| day_name(*d)))
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            rest_days: vec![Weekday::Saturday, Weekday::Sunday],
            cadence: Cadence::Weekly,
            quorum: Quorum::Half,
            late_days: 1,
        }
    }
}

const DAYS: [(Weekday, &str); 7] = [
    (Weekday::Monday, "mon"),
    (Weekday::Tuesday, "tue"),
    (Weekday::Wednesday, "wed"),
    (Weekday::Thursday, "thu"),
    (Weekday::Friday, "fri"),
    (Weekday::Saturday, "sat"),
    (Weekday::Sunday, "sun"),
];

fn day_name(d: Weekday) -> &'static str {
    DAYS.iter().find(|(w, _)| *w == d).map_or("?", |(_, n)| n)
}

/// Parses rest days: `sat,sun`, `fri,sat`, full names too, or `none`.
pub fn parse_rest_days(text: &str) -> Result<Vec<Weekday>> {
    let text = text.trim().to_lowercase();
    if text == "none" {
        return Ok(Vec::new());
    }
    if text.is_empty() {
        return Err(Error::BadRule(
            "give rest days like sat,sun, or none".into(),
        ));
    }
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let mut days = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let day = FULL
            .iter()
            .position(|f| part.len() >= 3 && f.starts_with(part))
            .map(|i| DAYS[i].0)
            .ok_or_else(|| Error::BadRule(format!("`{part}` is not a day of the week")))?;
        if !days.contains(&day) {
            days.push(day);
        }
    }
    if days.len() == 7 {
        return Err(Error::BadRule("a week needs at least one workday".into()));
    }
    days.sort_by_key(|d| d.to_monday_zero_offset());
    Ok(days)
}

/// Formats rest days as `sat,sun` (or `none`).
pub fn format_rest_days(days: &[Weekday]) -> String {
    if days.is_empty() {
        return "none".into();
    }
    days.iter()
        .map(|d| day_name(*d))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a cadence: `weekly` or `daily`.
pub fn parse_cadence(text: &str) -> Result<Cadence> {
    match text.trim().to_lowercase().as_str() {
        "weekly" | "week" => Ok(Cadence::Weekly),
        "daily" | "day" => Ok(Cadence::Daily),
        other => Err(Error::BadRule(format!(
            "`{other}` is not a cadence (weekly or daily)"
        ))),
    }
}

/// Parses a quorum: `half` or a number of members from 1 to 1000.
pub fn parse_quorum(text: &str) -> Result<Quorum> {
    let t = text.trim().to_lowercase();
    if t == "half" {
        return Ok(Quorum::Half);
    }
    match t.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(Quorum::AtLeast(n)),
        _ => Err(Error::BadRule(format!(
            "`{text}` is not a quorum (half, or a number of members from 1 to 1000)"
        ))),
    }
}

/// Parses the late window: how many workdays back can be logged late, 1 to [`MAX_LATE_DAYS`].
pub fn parse_late_days(text: &str) -> Result<u32> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_LATE_DAYS).contains(&n) => Ok(n),
        _ => Err(Error::BadRule(format!(
            "`{text}` is not a late window (1 to {MAX_LATE_DAYS} workdays)"
        ))),
    }
}

impl Rules {
    /// Rules from their stored texts; anything unreadable keeps its default, so a newer
    /// replica's setting never breaks an older one.
    pub fn from_texts(
        rest: Option<&str>,
        cadence: Option<&str>,
        quorum: Option<&str>,
        late: Option<&str>,
    ) -> Rules {
        let d = Rules::default();
        Rules {
            late_days: late
                .and_then(|t| parse_late_days(t).ok())
                .unwrap_or(d.late_days),
            rest_days: rest
                .and_then(|t| parse_rest_days(t).ok())
                .unwrap_or(d.rest_days),
            cadence: cadence
                .and_then(|t| parse_cadence(t).ok())
                .unwrap_or(d.cadence),
            quorum: quorum
                .and_then(|t| parse_quorum(t).ok())
                .unwrap_or(d.quorum),
        }
    }

    pub fn is_rest(&self, d: Date) -> bool {
        self.rest_days.contains(&d.weekday())
    }

    /// The earliest date that can still be logged late on `today`: the last `late_days`
    /// workdays before it (and the rest days between), never more than a week back.
    pub fn earliest_late(&self, today: Date) -> Date {
        let floor = today.checked_sub(7.days()).unwrap_or(today);
        let mut d = today;
        let mut workdays = 0;
        while workdays < self.late_days.max(1) {
            match d.yesterday() {
                Ok(y) if y >= floor => d = y,
                _ => break,
            }
            if !self.is_rest(d) {
                workdays += 1;
            }
        }
        d
    }
}

/// The dates a member's calendar skipped by travel: between two acts logged at the time (at
/// `(at_ms, local date)`, late ones left out), the dates in between when fewer hours passed than
/// those dates hold. Flying east across the date line (Los Angeles on Monday evening, Tokyo on
/// Wednesday morning) skips Tuesday: that member never lived it, so it is never a miss.
pub fn travel_skips(stamps: &[(i64, Date)]) -> BTreeSet<Date> {
    let mut sorted = stamps.to_vec();
    sorted.sort_unstable();
    let mut out = BTreeSet::new();
    for pair in sorted.windows(2) {
        let ((t1, d1), (t2, d2)) = (pair[0], pair[1]);
        let between = (d2 - d1).get_days() as i64 - 1;
        if between < 1 {
            continue;
        }
        if t2 - t1 < between * 86_400_000 {
            let mut d = d1;
            while let Ok(next) = d.tomorrow() {
                if next >= d2 {
                    break;
                }
                out.insert(next);
                d = next;
            }
        }
    }
    out
}

/// A member's own streak: for their eyes only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PersonalStreak {
    /// Active workdays in a row (rest days and frozen days skipped), up to today.
    pub current: u32,
    pub best: u32,
    pub freezes_left: u32,
    /// Freezes spent on missed workdays within the current streak.
    pub freezes_used: u32,
    pub active_today: bool,
}

/// The streak of a member active on `active` dates, seen on `today` (their local date).
///
/// Rest days neither count nor break it. Every [`FREEZE_EVERY`] active workdays in a row earn a
/// freeze (at most [`MAX_FREEZES`]), spent by itself on a missed workday. Today is still open,
/// and so are the days that can still be logged late (the last workday, by default): none of
/// them breaks anything yet. Dates after today (a member who flew west across the date line)
/// count as they are.
pub fn personal_streak(active: &BTreeSet<Date>, today: Date, rules: &Rules) -> PersonalStreak {
    personal_streak_with(active, &BTreeSet::new(), today, rules)
}

/// [`personal_streak`] for a member whose calendar skipped the `skipped` dates (see
/// [`travel_skips`]): those neither count nor break, like rest days.
pub fn personal_streak_with(
    active: &BTreeSet<Date>,
    skipped: &BTreeSet<Date>,
    today: Date,
    rules: &Rules,
) -> PersonalStreak {
    let mut s = PersonalStreak {
        active_today: active.contains(&today),
        ..PersonalStreak::default()
    };
    let (Some(&first), Some(&last)) = (active.first(), active.last()) else {
        return s;
    };
    let end = last.max(today);
    // Dates that can still be logged late are still open.
    let open_from = rules.earliest_late(today);
    let mut run = 0;
    let mut d = first;
    while d <= end {
        if rules.is_rest(d) || (skipped.contains(&d) && !active.contains(&d)) {
            // neither counts nor breaks
        } else if active.contains(&d) {
            s.current += 1;
            run += 1;
            if run % FREEZE_EVERY == 0 && s.freezes_left < MAX_FREEZES {
                s.freezes_left += 1;
            }
        } else if d >= open_from {
            // still open: today is not over, and the last workdays can still be logged late
        } else if s.freezes_left > 0 {
            s.freezes_left -= 1;
            s.freezes_used += 1;
            run = 0;
        } else {
            s.current = 0;
            s.freezes_used = 0;
            run = 0;
        }
        s.best = s.best.max(s.current);
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    s
}

/// The team's streak: never anyone's blame, so it carries no names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TeamStreak {
    pub cadence: Cadence,
    /// Periods in a row that counted, the current one included once it counts.
    pub current: u32,
    pub best: u32,
    /// Complete periods since the team began, and how many of them counted.
    pub periods: u32,
    pub counted: u32,
    /// `counted / periods`; `None` before the first period ends.
    pub consistency: Option<f64>,
    /// The current period: members active so far, and how many it needs.
    pub active_now: u32,
    pub needed_now: u32,
}

/// The first day of the period holding `d`.
fn period_start(d: Date, cadence: Cadence) -> Date {
    match cadence {
        Cadence::Daily => d,
        Cadence::Weekly => crate::time::week_start(d),
    }
}

fn next_period(d: Date, cadence: Cadence) -> Option<Date> {
    match cadence {
        Cadence::Daily => d.tomorrow().ok(),
        Cadence::Weekly => d.checked_add(7.days()).ok(),
    }
}

/// The team streak from who was active when (`activity`: member and local date), the members
/// and the day they joined, seen on `today`. A period counts when enough of the members who had
/// joined by its end were active in it ([`Quorum`]); with a daily cadence, rest days are skipped.
pub fn team_streak<M: AsRef<str>, T: OnTeam>(
    activity: &[(M, Date)],
    members: &[T],
    today: Date,
    rules: &Rules,
) -> TeamStreak {
    let cadence = rules.cadence;
    // Members by number, so the (member, day) pairs below cost no string work. Only members
    // count: a journal that arrived before its author's member entry adds nothing.
    let number: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id(), i))
        .collect();
    // A member counts from the day they joined, or from their first activity if that came
    // earlier (history brought from elsewhere, a clock that was wrong).
    let mut first_active: Vec<Option<Date>> = vec![None; members.len()];
    // Each active (period, member) once; a day's period is worked out once per distinct day.
    let mut starts: HashMap<Date, Date> = HashMap::new();
    let mut active_in: Vec<(Date, usize)> = Vec::with_capacity(activity.len());
    for (m, d) in activity {
        let Some(&i) = number.get(m.as_ref()) else {
            continue;
        };
        let p = *starts
            .entry(*d)
            .or_insert_with(|| period_start(*d, cadence));
        active_in.push((p, i));
        first_active[i] = Some(first_active[i].map_or(*d, |a| a.min(*d)));
    }
    active_in.sort_unstable();
    active_in.dedup();
    let mut by_period: BTreeMap<Date, u32> = BTreeMap::new();
    for (p, _) in &active_in {
        *by_period.entry(*p).or_default() += 1;
    }
    let mut s = TeamStreak {
        cadence,
        current: 0,
        best: 0,
        periods: 0,
        counted: 0,
        consistency: None,
        active_now: 0,
        needed_now: 0,
    };
    // A placeholder who has not arrived counts from their first activity, and not at all
    // without one.
    let spans: Vec<(Date, Option<Date>)> = members
        .iter()
        .filter_map(|m| {
            let first = number.get(m.id()).and_then(|i| first_active[*i]);
            let from = match (m.joined(), first) {
                (Some(j), Some(a)) => j.min(a),
                (j, a) => j.or(a)?,
            };
            Some((from, m.left()))
        })
        .collect();
    let Some(first) = spans.iter().map(|(j, _)| *j).min() else {
        return s;
    };
    let this = period_start(today, cadence);
    let mut p = period_start(first, cadence);
    while p <= this {
        if cadence == Cadence::Daily && rules.is_rest(p) {
            match next_period(p, cadence) {
                Some(n) => p = n,
                None => break,
            }
            continue;
        }
        let end = match cadence {
            Cadence::Daily => p,
            Cadence::Weekly => p.checked_add(6.days()).unwrap_or(p),
        };
        // A member who left counts up to the period they left in, not after it.
        let size = spans
            .iter()
            .filter(|(j, left)| *j <= end && left.is_none_or(|l| l >= p))
            .count() as u32;
        let needed = rules.quorum.needed(size);
        let active = by_period.get(&p).copied().unwrap_or(0);
        let counts = active >= needed;
        if p == this {
            s.active_now = active;
            s.needed_now = needed;
            if counts {
                s.current += 1;
            }
        } else {
            s.periods += 1;
            if counts {
                s.counted += 1;
                s.current += 1;
            } else {
                s.current = 0;
            }
        }
        s.best = s.best.max(s.current);
        match next_period(p, cadence) {
            Some(n) => p = n,
            None => break,
        }
    }
    if s.periods > 0 {
        s.consistency = Some(f64::from(s.counted) / f64::from(s.periods));
    }
    s
}

/// A member as the team streak sees them: who, since when, and until when.
pub trait OnTeam {
    fn id(&self) -> &str;
    /// The day they joined; `None` for a placeholder who has not arrived (they count from
    /// their first activity).
    fn joined(&self) -> Option<Date>;
    /// The day they left, if they did.
    fn left(&self) -> Option<Date> {
        None
    }
}

impl OnTeam for (String, Date) {
    fn id(&self) -> &str {
        &self.0
    }
    fn joined(&self) -> Option<Date> {
        Some(self.1)
    }
}

impl OnTeam for crate::team::Tenure {
    fn id(&self) -> &str {
        &self.id
    }
    fn joined(&self) -> Option<Date> {
        self.joined
    }
    fn left(&self) -> Option<Date> {
        self.left
    }
}

/// The team's activity of the last weeks: members active per day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Heatmap {
    /// The Monday of the first week shown.
    #[serde(serialize_with = "ser_date")]
    pub start: Date,
    pub weeks: u32,
    /// `weeks * 7` cells, week by week, Monday first; `None` after today.
    pub cells: Vec<Option<u32>>,
    pub max: u32,
}

/// The first day a heatmap of `weeks` weeks ending with today's shows: a Monday. Activity before
/// it is not drawn, so a caller may leave it out.
pub fn heatmap_start(today: Date, weeks: u32) -> Date {
    let this_monday = period_start(today, Cadence::Weekly);
    this_monday
        .checked_sub((7 * (i64::from(weeks.clamp(1, 104)) - 1)).days())
        .unwrap_or(this_monday)
}

/// The heatmap of the `weeks` weeks up to and including today's.
pub fn heatmap<M: AsRef<str>>(activity: &[(M, Date)], today: Date, weeks: u32) -> Heatmap {
    let weeks = weeks.clamp(1, 104);
    let start = heatmap_start(today, weeks);
    let mut per_day: BTreeMap<Date, HashSet<&str>> = BTreeMap::new();
    for (m, d) in activity {
        if *d >= start && *d <= today {
            per_day.entry(*d).or_default().insert(m.as_ref());
        }
    }
    let mut cells = Vec::with_capacity(weeks as usize * 7);
    let mut d = start;
    for _ in 0..weeks * 7 {
        cells.push((d <= today).then(|| per_day.get(&d).map_or(0, |s| s.len() as u32)));
        d = d.tomorrow().unwrap_or(d);
    }
    let max = cells.iter().flatten().copied().max().unwrap_or(0);
    Heatmap {
        start,
        weeks,
        cells,
        max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn set(days: &[Date]) -> BTreeSet<Date> {
        days.iter().copied().collect()
    }

    // 2026-11-16 is a Monday.
    const MON: (i16, i8, i8) = (2026, 11, 16);
    fn day(offset: i64) -> Date {
        date(MON.0, MON.1, MON.2)
            .checked_add(offset.days())
            .unwrap()
    }

    #[test]
    fn rest_days_neither_count_nor_break() {
        // Mon..Fri active, weekend off, Monday active: 6, not broken.
        let active = set(&[day(0), day(1), day(2), day(3), day(4), day(7)]);
        let s = personal_streak(&active, day(7), &Rules::default());
        assert_eq!((s.current, s.best), (6, 6));
        // Active on the weekend too: it still does not count.
        let mut more = active.clone();
        more.insert(day(5));
        assert_eq!(personal_streak(&more, day(7), &Rules::default()).current, 6);
        // With no rest days, the empty weekend breaks it (after freezes run out).
        let rules = Rules {
            rest_days: vec![],
            ..Rules::default()
        };
        // Friday's fifth day earned a freeze, spent on Saturday; Sunday broke it.
        let mut on = active.clone();
        on.insert(day(8));
        let s = personal_streak(&on, day(8), &rules);
        assert_eq!((s.current, s.best, s.freezes_left), (2, 5, 0));
    }

    #[test]
    fn freezes_are_earned_by_consistency_and_spent_by_themselves() {
        // Five active workdays earn one freeze; missing the next Monday spends it.
        let active = set(&[day(0), day(1), day(2), day(3), day(4), day(8)]);
        let s = personal_streak(&active, day(9), &Rules::default());
        assert_eq!((s.current, s.freezes_left, s.freezes_used), (6, 0, 1));
        // The day after the miss, it was still open: nothing spent yet.
        let s = personal_streak(&active, day(8), &Rules::default());
        assert_eq!((s.current, s.freezes_left, s.freezes_used), (6, 1, 0));
        // Four days earn nothing: a missed day breaks.
        let active = set(&[day(0), day(1), day(2), day(3), day(7), day(8)]);
        let s = personal_streak(&active, day(8), &Rules::default());
        assert_eq!((s.current, s.best), (2, 4));
        // At most two freezes are held.
        let fifteen: Vec<Date> = (0..21)
            .map(day)
            .filter(|d| !Rules::default().is_rest(*d))
            .collect();
        let s = personal_streak(&set(&fifteen), day(20), &Rules::default());
        assert_eq!((s.current, s.freezes_left), (15, MAX_FREEZES));
    }

    #[test]
    fn today_is_open_and_yesterday_logged_late_counts() {
        // Mon, Tue active; today Wednesday with nothing yet: still 2.
        let active = set(&[day(0), day(1)]);
        let s = personal_streak(&active, day(2), &Rules::default());
        assert_eq!((s.current, s.active_today), (2, false));
        // Thursday: Wednesday can still be logged late, so nothing is broken yet.
        assert_eq!(
            personal_streak(&active, day(3), &Rules::default()).current,
            2
        );
        // Friday: Wednesday is missed for good.
        assert_eq!(
            personal_streak(&active, day(4), &Rules::default()).current,
            0
        );
        // Logged late on Thursday for Wednesday (the event's date is Wednesday): unbroken.
        let late = set(&[day(0), day(1), day(2)]);
        assert_eq!(personal_streak(&late, day(3), &Rules::default()).current, 3);
    }

    #[test]
    fn a_flight_west_over_the_date_line_never_double_counts_or_breaks() {
        // Logged Tuesday morning in Auckland, then flew to Los Angeles where it is Monday again,
        // and logged there: two events, dates Tue and Mon. Days are dates: Mon and Tue once each.
        let left_auckland = 1_794_855_600_000; // 2026-11-16T19:00Z: Tuesday 08:00 in Auckland
        let auckland = crate::time::local_date(left_auckland, "Pacific/Auckland").unwrap();
        let landed = left_auckland + 3 * 3_600_000; // Monday 14:00 in Los Angeles
        let la = crate::time::local_date(landed, "America/Los_Angeles").unwrap();
        assert_eq!(auckland, date(2026, 11, 17));
        assert_eq!(la, date(2026, 11, 16));
        let active = set(&[auckland, la]);
        // Seen from Los Angeles, where today is still Monday.
        let s = personal_streak(&active, la, &Rules::default());
        assert_eq!((s.current, s.best), (2, 2));
    }

    #[test]
    fn team_weeks_count_with_half_the_team() {
        let members: Vec<(String, Date)> = ["a", "b", "c", "d"]
            .iter()
            .map(|m| ((*m).to_owned(), day(-21)))
            .collect();
        let act = |m: &str, d: i64| (m.to_owned(), day(d));
        // Three weeks ago: a, b (2 of 4: counts). Two weeks ago: a only. Last week: a, b, c.
        let activity = vec![
            act("a", -21),
            act("b", -20),
            act("a", -14),
            act("a", -7),
            act("b", -6),
            act("c", -3),
        ];
        let s = team_streak(&activity, &members, day(1), &Rules::default());
        assert_eq!((s.periods, s.counted, s.current, s.best), (3, 2, 1, 1));
        assert_eq!(s.consistency, Some(2.0 / 3.0));
        // This week: only a so far; it does not break anything yet.
        let mut now = activity.clone();
        now.push(act("a", 0));
        let s = team_streak(&now, &members, day(1), &Rules::default());
        assert_eq!((s.current, s.active_now, s.needed_now), (1, 1, 2));
        now.push(act("d", 1));
        assert_eq!(
            team_streak(&now, &members, day(1), &Rules::default()).current,
            2
        );
        // A quorum of one: every week with anyone counts.
        let one = Rules {
            quorum: Quorum::AtLeast(1),
            ..Rules::default()
        };
        let s = team_streak(&activity, &members, day(1), &one);
        assert_eq!((s.counted, s.current, s.best), (3, 3, 3));
    }

    #[test]
    fn daily_team_cadence_skips_rest_days_and_counts_only_joined_members() {
        let rules = Rules {
            cadence: Cadence::Daily,
            ..Rules::default()
        };
        // Ana alone until Wednesday, when Ben joins (half of two is one). Ana is active Monday
        // to Friday; the weekend is skipped.
        let members = vec![("ana".to_owned(), day(0)), ("ben".to_owned(), day(2))];
        let activity: Vec<(String, Date)> = (0..5).map(|d| ("ana".to_owned(), day(d))).collect();
        let s = team_streak(&activity, &members, day(7), &rules);
        assert_eq!((s.periods, s.counted, s.current), (5, 5, 5));
        let strict = Rules {
            quorum: Quorum::AtLeast(2),
            ..rules
        };
        let s = team_streak(&activity, &members, day(7), &strict);
        // Mon and Tue need only the one member there was; from Wednesday two are needed.
        assert_eq!((s.counted, s.best, s.current), (2, 2, 0));
    }

    #[test]
    fn a_member_who_left_counts_in_the_quorum_until_the_period_they_left_in() {
        use crate::team::Tenure;
        // Four members; d leaves during the week of day(-7). Half of four is two, half of three
        // is two as well, so take a quorum of everyone.
        let all = Rules {
            quorum: Quorum::AtLeast(4),
            ..Rules::default()
        };
        let t = |id: &str, left: Option<i64>| Tenure {
            id: id.to_owned(),
            joined: Some(day(-21)),
            left: left.map(day),
        };
        let members = vec![t("a", None), t("b", None), t("c", None), t("d", Some(-6))];
        let act = |m: &str, d: i64| (m.to_owned(), day(d));
        // Week -21: everyone. Week -7 (d leaves in it): a, b, c. This week: a, b, c.
        let activity = vec![
            act("a", -21),
            act("b", -21),
            act("c", -21),
            act("d", -21),
            act("a", -7),
            act("b", -7),
            act("c", -7),
            act("a", 0),
            act("b", 0),
            act("c", 0),
        ];
        let s = team_streak(&activity, &members, day(1), &all);
        // Week -7 still needed d (four of four); this week needs only the three who stayed.
        assert_eq!((s.active_now, s.needed_now), (3, 3));
        assert_eq!(s.current, 1, "{s:?}");
        let stayed = Rules {
            quorum: Quorum::AtLeast(3),
            ..Rules::default()
        };
        assert_eq!(team_streak(&activity, &members, day(1), &stayed).current, 2);
    }

    #[test]
    fn a_placeholder_counts_from_their_first_activity_and_not_before() {
        use crate::team::Tenure;
        let t = |id: &str, joined: Option<i64>| Tenure {
            id: id.to_owned(),
            joined: joined.map(day),
            left: None,
        };
        // Ana and Bo joined three weeks ago; four placeholders never arrived, and one of them,
        // Cy, first logged last week (a device of theirs joined with an older cairn).
        let joined = vec![t("ana", Some(-21)), t("bo", Some(-21))];
        let mut with = joined.clone();
        with.extend(["cy", "di", "ed", "fa"].map(|m| t(m, None)));
        let activity: Vec<(String, Date)> = [("ana", -21), ("ana", -14), ("ana", -7), ("ana", 0)]
            .iter()
            .map(|(m, d)| ((*m).to_owned(), day(*d)))
            .collect();
        let alone = team_streak(&activity, &joined, day(1), &Rules::default());
        assert_eq!((alone.current, alone.needed_now), (4, 1));
        assert_eq!(
            team_streak(&activity, &with, day(1), &Rules::default()),
            alone,
            "placeholders who never acted change nothing"
        );
        let mut cy = activity.clone();
        cy.push(("cy".to_owned(), day(-7)));
        let s = team_streak(&cy, &with, day(1), &Rules::default());
        // Cy counts from last week on (Ana and Cy made it); this week needs two of three, and
        // Ana alone is not enough yet.
        assert_eq!((s.active_now, s.needed_now, s.current), (1, 2, 3), "{s:?}");
        assert_eq!(
            (s.periods, s.counted),
            (3, 3),
            "weeks before Cy's first act still count"
        );
    }

    #[test]
    fn activity_before_joining_counts_from_its_first_day() {
        // Added to the team today, but with a history from last week.
        let members = vec![("ana".to_owned(), day(7))];
        let activity = vec![("ana".to_owned(), day(0))];
        let s = team_streak(&activity, &members, day(7), &Rules::default());
        assert_eq!((s.periods, s.counted, s.current), (1, 1, 1));
    }

    #[test]
    fn the_heatmap_counts_members_per_day_and_stops_today() {
        let activity = vec![
            ("a".to_owned(), day(0)),
            ("a".to_owned(), day(0)),
            ("b".to_owned(), day(0)),
            ("a".to_owned(), day(-8)),
            ("a".to_owned(), day(-30)),
        ];
        let h = heatmap(&activity, day(2), 2);
        assert_eq!(h.start, day(-7));
        assert_eq!(h.cells.len(), 14);
        assert_eq!(h.cells[7], Some(2));
        assert_eq!(h.cells[9], Some(0));
        assert_eq!(h.cells[10], None);
        assert_eq!(h.max, 2);
    }

    #[test]
    fn rules_parse_and_fall_back() {
        assert_eq!(
            parse_rest_days("Fri, saturday").unwrap(),
            [Weekday::Friday, Weekday::Saturday]
        );
        assert_eq!(parse_rest_days("none").unwrap(), []);
        assert!(parse_rest_days("funday").is_err());
        assert!(parse_rest_days("mon,tue,wed,thu,fri,sat,sun").is_err());
        assert_eq!(parse_quorum("3").unwrap(), Quorum::AtLeast(3));
        assert!(parse_quorum("0").is_err());
        assert_eq!(parse_cadence("Daily").unwrap(), Cadence::Daily);
        let r = Rules::from_texts(Some("bogus"), Some("daily"), None, Some("9"));
        assert_eq!(r.rest_days, Rules::default().rest_days);
        assert_eq!(r.cadence, Cadence::Daily);
        assert_eq!(format_rest_days(&r.rest_days), "sat,sun");
        assert_eq!(Quorum::Half.needed(5), 3);
        assert_eq!(Quorum::Half.needed(0), 1);
        assert_eq!(Quorum::AtLeast(9).needed(4), 4);
        assert_eq!(r.late_days, 1, "an unreadable window keeps the default");
        assert_eq!(parse_late_days("3").unwrap(), 3);
        assert!(parse_late_days("0").is_err() && parse_late_days("6").is_err());
    }

    /// An instant, from a local wall-clock time in a zone.
    fn at(zone: &str, y: i16, m: i8, d: i8, h: i8) -> (i64, Date) {
        let z = jiff::civil::date(y, m, d)
            .at(h, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::get(zone).unwrap())
            .unwrap();
        (z.timestamp().as_millisecond(), z.date())
    }

    #[test]
    fn flying_east_across_the_date_line_skips_a_day_that_is_never_a_miss() {
        // Los Angeles, Monday 2026-11-16 at 20:00; Tokyo, Wednesday 2026-11-18 at 08:00: 19
        // hours later, and Tuesday never happened for this member.
        let la = at("America/Los_Angeles", 2026, 11, 16, 20);
        let tokyo = at("Asia/Tokyo", 2026, 11, 18, 8);
        let skipped = travel_skips(&[tokyo, la]);
        assert_eq!(skipped, set(&[day(1)]));
        let active = set(&[day(-4), day(-3), day(0), day(2)]);
        // Seen on Thursday, when Tuesday can no longer be logged late.
        let plain = personal_streak(&active, day(3), &Rules::default());
        let fair = personal_streak_with(&active, &skipped, day(3), &Rules::default());
        assert_eq!(plain.current, 1, "without the skip, Tuesday breaks it");
        assert_eq!(
            fair.current, 4,
            "Thu, Fri, Mon, Wed: Tuesday neither counts nor breaks"
        );
        assert_eq!(fair.freezes_used, 0);
        // Staying home, Monday 20:00 to Wednesday 08:00 is 36 hours: Tuesday was lived.
        let home = at("America/Los_Angeles", 2026, 11, 18, 8);
        assert!(travel_skips(&[la, home]).is_empty());
    }

    #[test]
    fn flying_west_across_the_date_line_repeats_a_day_and_skips_none() {
        // Tokyo, Wednesday 08:00; Los Angeles, Tuesday 17:00 the same instant's evening.
        let tokyo = at("Asia/Tokyo", 2026, 11, 18, 8);
        let la = at("America/Los_Angeles", 2026, 11, 17, 17);
        assert!(travel_skips(&[tokyo, la]).is_empty());
        let active = set(&[day(0), day(1), day(2)]);
        let s = personal_streak_with(&active, &BTreeSet::new(), day(1), &Rules::default());
        assert_eq!(
            (s.current, s.best),
            (3, 3),
            "a date after today counts as it is"
        );
    }

    #[test]
    fn a_trip_that_skips_a_friday_spends_no_freeze() {
        // Honolulu on Thursday 2026-11-19 at 18:00, Sydney on Saturday 2026-11-21 at 08:00.
        let honolulu = at("Pacific/Honolulu", 2026, 11, 19, 18);
        let sydney = at("Australia/Sydney", 2026, 11, 21, 8);
        let skipped = travel_skips(&[honolulu, sydney]);
        assert_eq!(skipped, set(&[day(4)]), "Friday");
        // Active Monday to Thursday and the next Monday; seen on Tuesday.
        let active = set(&[day(0), day(1), day(2), day(3), day(7)]);
        let fair = personal_streak_with(&active, &skipped, day(8), &Rules::default());
        assert_eq!((fair.current, fair.freezes_used), (5, 0));
        let plain = personal_streak(&active, day(8), &Rules::default());
        assert_eq!(plain.current, 1, "without the skip, the Friday breaks it");
    }

    #[test]
    fn the_late_window_covers_the_last_workdays() {
        let rules = Rules::default(); // sat,sun rest; the last workday
        // On Monday the last workday is Friday; on Tuesday, Monday.
        assert_eq!(rules.earliest_late(day(7)), day(4));
        assert_eq!(rules.earliest_late(day(8)), day(7));
        let three = Rules {
            late_days: 3,
            ..Rules::default()
        };
        assert_eq!(three.earliest_late(day(8)), day(3), "Mon, Fri, Thu");
        // Never more than a week back, even with rest days most of the week.
        let sparse = Rules {
            late_days: 5,
            rest_days: parse_rest_days("tue,wed,thu,fri,sat,sun").unwrap(),
            ..Rules::default()
        };
        assert_eq!(sparse.earliest_late(day(14)), day(7));
        // Friday, still open on Monday, breaks nothing yet; on Tuesday it is a miss.
        let active = set(&[day(0), day(1), day(2), day(3)]);
        assert_eq!(personal_streak(&active, day(7), &rules).current, 4);
        assert_eq!(personal_streak(&active, day(8), &rules).current, 0);
    }

    proptest::proptest! {
        /// A weekly streak read from one (member, Monday) pair per member and week, as
        /// `cairn streaks` reads it, is the streak read from every day.
        #[test]
        fn a_weekly_streak_from_weeks_is_the_streak_from_days(
            tenures in proptest::collection::vec(
                (proptest::option::of(-200i64..0), proptest::option::of(-150i64..5)),
                1..8,
            ),
            acts in proptest::collection::vec((0usize..10, -220i64..3), 0..200),
            today in -3i64..4,
            at_least in proptest::option::of(1u32..5),
        ) {
            let members: Vec<crate::team::Tenure> = tenures
                .iter()
                .enumerate()
                // A member who joined, or a placeholder who has not arrived.
                .map(|(i, (joined, left))| crate::team::Tenure {
                    id: format!("m{i}"),
                    joined: joined.map(day),
                    left: left
                        .map(day)
                        .filter(|l| joined.is_none_or(|j| *l >= day(j))),
                })
                .collect();
            // Member 9 or so may be nobody on the team: such days count for nothing.
            let days: Vec<(String, Date)> =
                acts.iter().map(|(m, d)| (format!("m{m}"), day(*d))).collect();
            let weeks: BTreeSet<(String, Date)> = days
                .iter()
                .map(|(m, d)| (m.clone(), period_start(*d, Cadence::Weekly)))
                .collect();
            let weeks: Vec<(String, Date)> = weeks.into_iter().collect();
            let rules = Rules {
                quorum: at_least.map_or(Quorum::Half, Quorum::AtLeast),
                ..Rules::default()
            };
            proptest::prop_assert_eq!(rules.cadence, Cadence::Weekly);
            proptest::prop_assert_eq!(
                team_streak(&weeks, &members, day(today), &rules),
                team_streak(&days, &members, day(today), &rules)
            );
        }
    }
}
