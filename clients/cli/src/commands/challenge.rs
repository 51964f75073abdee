//! `cairn challenge add` and `cairn challenges`: team goals with a target and an end.

use cairn_core::goals::{self, Challenge, Metric};
use cairn_core::team;
use jiff::civil::Date;
use serde_json::json;

use crate::context::{Ctx, Outcome, Writer, random_id};
use crate::error::{CliError, Result};
use crate::output::{BOLD, DIM, GOOD, count, pad, paint, widest};

/// Set the team a goal: a metric, a target and an end date.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Change a challenge's title, target or last day.
    Edit {
        /// The challenge: its title (or the start of it) or its id.
        challenge: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        target: Option<u32>,
        /// Its last day, YYYY-MM-DD.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
    },
    /// Retire a challenge: it leaves every list (the feed keeps the note of it).
    Retire {
        /// The challenge: its title (or the start of it) or its id.
        challenge: String,
    },
    /// Add a challenge, e.g. cairn challenge add "30 kudos in December" --metric kudos --target 30 --until 2026-12-31
    Add {
        /// What the team is going for.
        title: String,
        /// What counts: kudos (recognitions), actions (micro-actions), stones (both), or reach
        /// (different members recognised).
        #[arg(long)]
        metric: String,
        /// How many it takes.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        target: u32,
        /// Its last day: YYYY-MM-DD, days or weeks ahead (`30d`, `4w`), a weekday (`friday`) or
        /// `month-end`.
        #[arg(long, value_name = "DATE")]
        until: String,
        /// Its first day, in the same forms [default: today].
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
    },
}

/// Show the team's challenges and how far each has come: the running ones, and with --all the
/// ended ones too.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Also the challenges that ended.
    #[arg(long)]
    all: bool,
}

/// A day of a challenge, counted forward from `today`: YYYY-MM-DD, `today`, `tomorrow`, days or
/// weeks ahead (`30d`, `4w`), a weekday (the next one, today included) or `month-end`.
fn parse_date(text: &str, flag: &str, today: Date) -> Result<Date> {
    let t = text.trim().to_ascii_lowercase();
    let bad = || {
        CliError::new(format!("{flag} `{text}` is not a date"))
            .hint("use YYYY-MM-DD (like 2026-12-31), days or weeks ahead (`30d`, `4w`), a weekday (`friday`) or `month-end`")
    };
    let ahead = |days: i64| {
        today
            .checked_add(jiff::Span::new().days(days))
            .map_err(|_| bad())
    };
    if let Some(day) = super::feed::weekday(&t) {
        let n =
            (day.to_monday_zero_offset() - today.weekday().to_monday_zero_offset()).rem_euclid(7);
        return ahead(i64::from(n));
    }
    let count = |n: &str| n.parse::<i64>().ok().filter(|n| (0..=3660).contains(n));
    match t.as_str() {
        "today" => Ok(today),
        "tomorrow" => ahead(1),
        "month-end" | "end-of-month" => Ok(today.last_of_month()),
        _ => match (t.strip_suffix('d'), t.strip_suffix('w')) {
            (Some(n), _) if count(n).is_some() => ahead(count(n).unwrap_or(0)),
            (_, Some(n)) if count(n).is_some() => ahead(count(n).unwrap_or(0) * 7),
            _ => t.parse().map_err(|_| bad()),
        },
    }
}

/// The challenge named by its title (or the start of it, any case) or its id.
fn named(team: &cairn_core::TeamState, text: &str) -> Result<Challenge> {
    let t = text.trim().to_lowercase();
    let exact: Vec<&Challenge> = team
        .challenges
        .iter()
        .filter(|c| c.id == t || c.title.to_lowercase() == t)
        .collect();
    let found = if exact.is_empty() {
        team.challenges
            .iter()
            .filter(|c| c.title.to_lowercase().starts_with(&t))
            .collect()
    } else {
        exact
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(cairn_core::Error::NoSuchSetting(text.trim().to_owned()).into()),
        _ => Err(
            CliError::new(format!("`{}` names more than one challenge", text.trim()))
                .hint("give more of its title"),
        ),
    }
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    change(ctx, &mut w, args.action)?;
    Outcome::of(&w)
}

/// Adds, edits or retires a challenge as `action` says, and tells what it did.
fn change(ctx: &mut Ctx, w: &mut Writer<'_>, action: Action) -> Result<()> {
    let (title, metric, target, until, from) = match action {
        Action::Add {
            title,
            metric,
            target,
            until,
            from,
        } => (title, metric, target, until, from),
        Action::Edit {
            challenge,
            title,
            target,
            until,
        } => {
            let c = named(&w.team, &challenge)?;
            let today = ctx.today(&w.team.tz);
            let until = until
                .map(|u| parse_date(&u, "--until", today))
                .transpose()?;
            super::team::noted(ctx, w, |doc, state| {
                team::edit_challenge(doc, state, &c.id, title.as_deref(), target, until)?;
                Ok(((), format!("changed the challenge “{}”", c.title)))
            })?;
            return ctx.out.say(
                format!("changed {}", paint(BOLD, &c.title)),
                json!({ "challenge": c.id }),
            );
        }
        Action::Retire { challenge } => {
            let c = named(&w.team, &challenge)?;
            super::team::noted(ctx, w, |doc, _| {
                team::retire_challenge(doc, &c.id)?;
                Ok(((), format!("retired the challenge “{}”", c.title)))
            })?;
            return ctx.out.say(
                format!("retired {}", paint(BOLD, &c.title)),
                json!({ "challenge": c.id, "retired": true }),
            );
        }
    };
    let (me, tz) = (w.me.clone(), w.team.tz.clone());
    let today = ctx.today(&tz);
    let c = Challenge {
        id: random_id(10)?,
        title,
        metric: Metric::parse(&metric)?,
        target,
        start: match from {
            Some(f) => parse_date(&f, "--from", today)?,
            None => today,
        },
        until: parse_date(&until, "--until", today)?,
    };
    let at = ctx.now_ms();
    super::team::noted(ctx, w, |doc, _| {
        team::add_challenge(doc, &c, &me, at)?;
        Ok((
            (),
            format!(
                "set the challenge “{}”: {} {} by {}",
                c.title.trim(),
                c.target,
                c.metric.as_str(),
                c.until
            ),
        ))
    })?;
    ctx.out.say(
        format!("added the challenge {}", paint(BOLD, &c.title)),
        json!({ "challenge": c }),
    )
}

pub fn list(args: ListArgs, ctx: &mut Ctx) -> Result<()> {
    let super::Acts {
        team, today, acts, ..
    } = super::Acts::load(ctx)?;
    let rows: Vec<(Challenge, goals::Progress)> = team
        .challenges
        .iter()
        .filter(|c| args.all || c.until >= today)
        .map(|c| (c.clone(), goals::progress(&acts, c, today)))
        .collect();
    if ctx.out.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(c, p)| json!({ "challenge": c, "progress": p }))
            .collect();
        return ctx.out.json(&json!(v));
    }
    if rows.is_empty() {
        let ended = team.challenges.iter().filter(|c| c.until < today).count();
        return ctx.out.line(paint(
            DIM,
            if ended > 0 && !args.all {
                "no challenge is running; `cairn challenges --all` shows the ended ones"
            } else {
                "no challenges yet: cairn challenge add \"30 kudos in December\" --metric kudos --target 30 --until 2026-12-31"
            },
        ));
    }
    for line in lines(&rows, today) {
        ctx.out.line(line)?;
    }
    Ok(())
}

/// One line per challenge with a progress bar, in aligned columns; also used by `cairn team`.
pub fn lines(rows: &[(Challenge, goals::Progress)], today: Date) -> Vec<String> {
    let counts: Vec<String> = rows
        .iter()
        .map(|(c, p)| format!("{}/{} {}", p.value, p.target, c.metric.as_str()))
        .collect();
    let counts_width = widest(counts.iter().map(String::as_str));
    let titles_width = widest(rows.iter().map(|(c, _)| c.title.as_str()));
    rows.iter()
        .zip(&counts)
        .map(|((c, p), counted)| {
            let width = 20u32;
            let filled = (p.value.min(p.target) * width / p.target.max(1)) as usize;
            let bar = format!(
                "[{}{}]",
                "#".repeat(filled),
                "-".repeat(width as usize - filled)
            );
            let left = match (p.done, p.ended) {
                (true, _) => paint(GOOD, "done"),
                (false, true) => paint(DIM, format!("ended {}", c.until)),
                (false, false) if today < c.start => format!("starts {}", c.start),
                (false, false) => {
                    let days = (c.until - today).get_days() + 1;
                    count(days.max(0) as u64, "day left", "days left")
                }
            };
            format!(
                "{bar} {}  {}  {}",
                pad(counted, counts_width),
                paint(BOLD, pad(&c.title, titles_width)),
                left
            )
        })
        .collect()
}
