//! `cairn streaks`: the team's streak, your own, and the team's activity of the last weeks.

use cairn_client::views;
use cairn_core::rules::{Cadence, Heatmap};
use jiff::civil::Date;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{BOLD, DIM, count, paint};

/// Show the team streak, your own streak, and a heatmap of the team's activity.
///
/// The team streak counts weeks (or days, see `cairn team rules`) in which enough members logged
/// something; it never names who did not. Your own streak counts your active workdays in a row,
/// skipping rest days, spending a freeze (earned every 5 active workdays in a row, 2 at most) on
/// a missed day; it is shown to you alone. Logging yesterday late (`cairn log --yesterday`) still
/// counts for yesterday.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Weeks of activity in the heatmap.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=104))]
    weeks: u32,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let replica = ctx.open()?;
    let team = replica.team()?;
    let me = ctx.actor(&replica, &team)?;
    let today = ctx.today(&team.tz);
    let views::Streaks {
        team: team_streak,
        personal,
        heatmap: map,
    } = views::streaks(&replica, &team, &me, today, args.weeks)?;
    if ctx.out.json {
        return ctx.out.json(&json!({
            "today": today.to_string(),
            "rules": team.rules,
            "team": team_streak,
            "you": personal,
            "heatmap": map,
        }));
    }
    let unit = match team_streak.cadence {
        Cadence::Weekly => "week",
        Cadence::Daily => "day",
    };
    let plural = |n: u32, w: &str| {
        if n == 1 {
            format!("{n} {w}")
        } else {
            format!("{n} {w}s")
        }
    };
    let consistency = team_streak.consistency.map_or_else(
        || "its first period is not over yet".to_owned(),
        |c| {
            format!(
                "consistency {:.0}% ({} of {})",
                c * 100.0,
                team_streak.counted,
                plural(team_streak.periods, unit)
            )
        },
    );
    let out = &mut ctx.out;
    out.line(format!(
        "{}  {} · best {} · {consistency}",
        paint(BOLD, "Team streak"),
        plural(team_streak.current, unit),
        team_streak.best,
    ))?;
    let now = if team_streak.needed_now == 0 {
        format!("no {unit} to count today")
    } else if team_streak.active_now >= team_streak.needed_now {
        format!("this {unit} already counts")
    } else {
        format!(
            "this {unit}: {} of the {} it needs so far",
            team_streak.active_now,
            count(team_streak.needed_now, "member", "members")
        )
    };
    out.line(paint(DIM, format!("             {now}")))?;
    out.line(format!(
        "{}  {} · best {} · {} left{}",
        paint(BOLD, "Your streak"),
        plural(personal.current, "day"),
        personal.best,
        plural(personal.freezes_left, "freeze"),
        if personal.active_today {
            ""
        } else {
            " · nothing logged today yet"
        }
    ))?;
    out.line(paint(
        DIM,
        "             (yours alone: nobody else sees it)",
    ))?;
    out.line("")?;
    for line in draw(&map, colour_on()) {
        out.line(line)?;
    }
    Ok(())
}

/// True when stdout takes colour (a terminal, no `NO_COLOR`).
fn colour_on() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// The heatmap as lines: a row per weekday, a column per week, darker for more members.
fn draw(map: &Heatmap, colour: bool) -> Vec<String> {
    const PLAIN: [char; 5] = ['.', '-', '+', '*', '#'];
    const SHADES: [u8; 5] = [236, 22, 28, 34, 40];
    let level = |n: u32| -> usize {
        if n == 0 || map.max == 0 {
            0
        } else {
            // 1 to 4, the busiest day of the map at 4.
            (n * 4).div_ceil(map.max).clamp(1, 4) as usize
        }
    };
    let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut lines = vec![
        format!(
            "Team activity, members per day, {} from {}",
            count(map.weeks, "week", "weeks"),
            map.start
        ),
        month_labels(map),
    ];
    for (wd, name) in names.iter().enumerate() {
        let mut row = format!("{name} ");
        for w in 0..map.weeks as usize {
            match map.cells[w * 7 + wd] {
                None => row.push_str("  "),
                Some(n) if colour => {
                    let style = anstyle::Style::new()
                        .fg_color(Some(anstyle::Ansi256Color(SHADES[level(n)]).into()));
                    row.push_str(&paint(style, "■ "));
                }
                Some(n) => {
                    row.push(PLAIN[level(n)]);
                    row.push(' ');
                }
            }
        }
        lines.push(row.trim_end().to_owned());
    }
    // Today is the last day drawn, in the last column.
    let today = map.cells.iter().rposition(Option::is_some).unwrap_or(0);
    lines.push(format!(
        "{}^ today ({})",
        " ".repeat(4 + 2 * (today / 7)),
        names[today % 7]
    ));
    let legend = if colour {
        format!(
            "less {} more (max {})",
            SHADES
                .iter()
                .map(|c| paint(
                    anstyle::Style::new().fg_color(Some(anstyle::Ansi256Color(*c).into())),
                    "■"
                ))
                .collect::<Vec<_>>()
                .join(" "),
            count(map.max, "member", "members")
        )
    } else {
        format!(
            "less . - + * # more (max {})",
            count(map.max, "member", "members")
        )
    };
    lines.push(legend);
    lines
}

/// The months' short names, each above the week that holds its first day; the first week is
/// named by its Monday's month unless the next week begins a month (the names would touch).
fn month_labels(map: &Heatmap) -> String {
    let week = |w: u32| map.start + jiff::Span::new().weeks(i64::from(w));
    let first_day = |monday: Date| {
        (0..7)
            .map(|d| monday + jiff::Span::new().days(d))
            .find(|d| d.day() == 1)
    };
    let mut line = String::new();
    for w in 0..map.weeks {
        let month = match first_day(week(w)) {
            Some(first) => first,
            None if w == 0 && (map.weeks == 1 || first_day(week(1)).is_none()) => week(0),
            None => continue,
        };
        let column = 4 + 2 * w as usize;
        if line.len() < column {
            line.push_str(&" ".repeat(column - line.len()));
            line.push_str(&month.strftime("%b").to_string());
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::rules;

    #[test]
    fn months_are_named_above_the_week_of_their_first_day() {
        let at = |today: &str, weeks| {
            month_labels(&rules::heatmap::<&str>(&[], today.parse().unwrap(), weeks))
        };
        // From Monday 2026-09-07: October 1st is in the week of 09-28, November 1st in 10-26's.
        assert_eq!(at("2026-11-27", 12), "    Sep   Oct     Nov");
        // From Monday 2026-09-28: October 1st falls in the first week.
        assert_eq!(at("2026-11-27", 9), "    Oct     Nov");
        // From Monday 2026-10-19: November begins in the next week, so the first stays unnamed.
        assert_eq!(at("2026-11-27", 6), "      Nov");
    }

    #[test]
    fn plain_heatmap_has_a_row_per_weekday_and_no_escape_codes() {
        let today: Date = "2026-11-18".parse().unwrap();
        let activity = vec![("a".to_owned(), today), ("b".to_owned(), today)];
        let map = rules::heatmap(&activity, today, 3);
        let lines = draw(&map, false);
        assert_eq!(lines.len(), 11);
        // 2026-11-02 to 2026-11-22: November's first day is in the first week.
        assert_eq!(lines[1], "    Nov");
        assert!(lines[4].starts_with("Wed . . #"), "{lines:?}");
        assert_eq!(lines[5], "Thu . .", "after today nothing is drawn");
        assert_eq!(lines[9], "        ^ today (Wed)");
        assert_eq!(lines[10], "less . - + * # more (max 2 members)");
        assert!(lines.iter().all(|l| !l.contains('\x1b')));
        let coloured = draw(&map, true);
        assert!(coloured[4].contains('■'));
    }
}
