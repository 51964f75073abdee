//! `cairn log`: log a micro-action.

use cairn_core::ids::EventId;
use cairn_core::{NewEvent, Stamp};
use serde_json::json;

use crate::context::{Ctx, Outcome, Writer};
use crate::error::{CliError, Result};
use crate::output::{ID, paint};

/// Log a micro-action: a small thing you did for the team.
///
/// Examples: checked in on a teammate, explained the why, delegated instead of doing it yourself,
/// picked up litter nobody asked you to.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What you did, in a sentence.
    text: String,
    /// The pillar it serves (see `cairn team`).
    #[arg(long, short, add = crate::complete::pillars())]
    pillar: Option<String>,
    /// Why it mattered.
    #[arg(long, short)]
    why: Option<String>,
    /// It happened yesterday: count it for yesterday's date.
    #[arg(long, conflicts_with = "on")]
    yesterday: bool,
    /// It happened on an earlier day: YYYY-MM-DD, `yesterday`, a weekday (`friday`: the last
    /// one) or `3d`, within the team's late window (the last workday, by default; see `cairn
    /// team rules`). It counts for that day.
    #[arg(long, value_name = "DATE")]
    on: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    let on = if args.yesterday {
        Some("yesterday".to_owned())
    } else {
        args.on
    };
    let (id, stamp) = add(
        ctx,
        &mut w,
        &args.text,
        args.pillar,
        args.why,
        on.as_deref(),
    )?;
    let when = if stamp.late {
        format!(" for {}", stamp.date)
    } else {
        String::new()
    };
    ctx.out.say(
        format!("logged {}{when}", paint(ID, id.short())),
        json!({ "id": id.as_str(), "short": id.short(), "date": stamp.date }),
    )?;
    w.outcome()
}

/// Logs a micro-action as the acting member: what `cairn log` and the web form both do.
pub fn add(
    ctx: &Ctx,
    w: &mut Writer<'_>,
    text: &str,
    pillar: Option<String>,
    why: Option<String>,
    on: Option<&str>,
) -> Result<(EventId, Stamp)> {
    let team = &w.team;
    let today = ctx.today(&team.tz);
    let on = match on {
        Some(text) => {
            let day = crate::commands::feed::parse_day(text, today)?;
            let earliest = team.rules.earliest_late(today);
            if day > today {
                return Err(CliError::new(format!("{day} has not happened yet"))
                    .hint("log it on the day, or today"));
            }
            if day < earliest {
                return Err(CliError::new(format!(
                    "{day} is further back than the team logs late (from {earliest})"
                ))
                .hint("`cairn team rules --late-days N` widens the window, up to 5 workdays"));
            }
            Some(day)
        }
        None => None,
    };
    let stamp = ctx.stamp_on(&team.tz, on);
    let id = ctx.new_event_id()?;
    w.replica
        .add_event(&w.me, &id, &stamp, &NewEvent::action(text, pillar, why))?;
    Ok((id, stamp))
}
