//! `cairn streaks`: the team's streak, your own, and the team's activity of the last weeks.

use std::collections::BTreeSet;

use cairn_core::rules::{self, Cadence, Heatmap};
use jiff::civil::Date;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{BOLD, DIM, paint};

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
    let me = ctx.actor(&replica)?;
    let today = ctx.today(&team.tz);
    let activity = replica.activity()?;
    let members = team.tenures();
    let mine: BTreeSet<Date> = activity
        .iter()
        .filter(|(m, _)| **m == *me)
        .map(|(_, d)| *d)
        .collect();
    let team_streak = rules::team_streak(&activity, &members, today, &team.rules);
    let skipped = replica.travel_skips(&me)?;
    let personal = rules::personal_streak_with(&mine, &skipped, today, &team.rules);
    let map = rules::heatmap(&activity, today, args.weeks);
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
                "consistency {:.0}% ({} of {} {unit}s)",
                c * 100.0,
                team_streak.counted,
                team_streak.periods
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
            "this {unit}: {} of the {} members it needs so far",
            team_streak.active_now, team_streak.needed_now
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
    let mut lines = vec![format!(
        "Team activity, members per day, {} weeks from {}",
        map.weeks, map.start
    )];
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
    let legend = if colour {
        format!(
            "less {} more (max {} members)",
            SHADES
                .iter()
                .map(|c| paint(
                    anstyle::Style::new().fg_color(Some(anstyle::Ansi256Color(*c).into())),
                    "■"
                ))
                .collect::<Vec<_>>()
                .join(" "),
            map.max
        )
    } else {
        format!("less . - + * # more (max {} members)", map.max)
    };
    lines.push(legend);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_heatmap_has_a_row_per_weekday_and_no_escape_codes() {
        let today: Date = "2026-11-18".parse().unwrap();
        let activity = vec![("a".to_owned(), today), ("b".to_owned(), today)];
        let map = rules::heatmap(&activity, today, 3);
        let lines = draw(&map, false);
        assert_eq!(lines.len(), 9);
        assert!(lines[3].starts_with("Wed . . #"), "{lines:?}");
        assert_eq!(lines[4], "Thu . .", "after today nothing is drawn");
        assert!(lines.iter().all(|l| !l.contains('\x1b')));
        let coloured = draw(&map, true);
        assert!(coloured[3].contains('■'));
    }
}
