//! Instants to local dates: a member's day is the date where they are when they log.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::Stamp;

pub use jiff::civil::Date;

/// Parses a `YYYY-MM-DD` date quickly (streaks read tens of thousands of them); any other form
/// is no date, as it is for the replica's SQL (events hold their dates in this form: see
/// `journal::checked_date`).
pub fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        b[r].iter().try_fold(0i32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i32::from(c - b'0'))
        })
    };
    Date::new(
        i16::try_from(num(0..4)?).ok()?,
        i8::try_from(num(5..7)?).ok()?,
        i8::try_from(num(8..10)?).ok()?,
    )
    .ok()
}

/// The Monday that starts the week of `d`: weeks run Monday to Sunday everywhere in cairn (the
/// weekly streak, the heatmap's columns, "this week" in the digest and `cairn me`, the weekly
/// badges; the replica's `member_days.week` is the same rule in SQL).
pub fn week_start(d: Date) -> Date {
    use jiff::ToSpan as _;
    d.checked_sub((d.weekday().to_monday_zero_offset() as i64).days())
        .unwrap_or(d)
}

/// The local date of `at_ms` in the IANA zone `tz`; `None` for an unknown zone or instant.
pub fn local_date(at_ms: i64, tz: &str) -> Option<Date> {
    let zone = TimeZone::get(tz).ok()?;
    Some(
        Timestamp::from_millisecond(at_ms)
            .ok()?
            .to_zoned(zone)
            .date(),
    )
}

/// When and where an event happens: `at_ms` in zone `tz` (named `zone`); `late` counts it for
/// the day before.
pub fn stamp(at_ms: i64, zone: &str, tz: &TimeZone, late: bool) -> Stamp {
    let today = Timestamp::from_millisecond(at_ms)
        .map(|t| t.to_zoned(tz.clone()).date())
        .unwrap_or_default();
    let date = if late {
        today.yesterday().unwrap_or(today)
    } else {
        today
    };
    Stamp {
        at_ms,
        tz: zone.to_owned(),
        date: date.to_string(),
        late,
    }
}

/// When and where an event happens, counted for `on` when given (a late log of an earlier
/// day) rather than for the local date of `at_ms`.
pub fn stamp_on(at_ms: i64, zone: &str, tz: &TimeZone, on: Option<Date>) -> Stamp {
    let mut s = stamp(at_ms, zone, tz, false);
    if let Some(d) = on {
        let d = d.to_string();
        if d != s.date {
            s.date = d;
            s.late = true;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris(at_ms: i64, late: bool) -> Stamp {
        stamp(
            at_ms,
            "Europe/Paris",
            &TimeZone::get("Europe/Paris").unwrap(),
            late,
        )
    }

    #[test]
    fn spring_forward_keeps_the_day() {
        // 2026-03-29 01:30 CET, then 03:30 CEST an hour later: the same Sunday.
        let before = 1_774_744_200_000;
        assert_eq!(paris(before, false).date, "2026-03-29");
        assert_eq!(paris(before + 3_600_000, false).date, "2026-03-29");
    }

    #[test]
    fn fall_back_counts_the_repeated_hour_once_as_one_day() {
        // 02:30 happens twice on 2026-10-25 in Paris; both instants are that one day.
        let first = paris(1_792_888_200_000, false);
        let second = paris(1_792_891_800_000, false);
        assert_eq!(
            (first.date.as_str(), second.date.as_str()),
            ("2026-10-25", "2026-10-25")
        );
    }

    #[test]
    fn just_before_and_after_midnight() {
        assert_eq!(paris(1_795_474_740_000, false).date, "2026-11-23"); // 23:59 Monday
        assert_eq!(paris(1_795_474_800_000, false).date, "2026-11-24"); // 00:00 Tuesday
        // Just after midnight, logged late: it counts for the day that just ended.
        let late = paris(1_795_474_800_000, true);
        assert_eq!((late.date.as_str(), late.late), ("2026-11-23", true));
    }

    #[test]
    fn dates_parse_quickly_and_strictly() {
        assert_eq!(
            parse_date("2026-11-23"),
            Some(jiff::civil::date(2026, 11, 23))
        );
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(parse_date("2026-1x-01"), None);
        assert_eq!(parse_date("nonsense"), None);
        // Forms jiff would take, and SQLite's date() would read otherwise, are no dates here.
        assert_eq!(parse_date("20261123"), None);
        assert_eq!(parse_date("2026-11-23T23:30-12:00"), None);
    }

    #[test]
    fn the_date_line() {
        let at = 1_794_855_600_000; // 2026-11-16T19:00Z
        assert_eq!(
            local_date(at, "Pacific/Kiritimati").unwrap().to_string(),
            "2026-11-17"
        );
        assert_eq!(
            local_date(at, "Pacific/Pago_Pago").unwrap().to_string(),
            "2026-11-16"
        );
        assert_eq!(local_date(at, "Not/AZone"), None);
    }
}
