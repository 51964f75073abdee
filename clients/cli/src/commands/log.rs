//! `cairn log`: log a micro-action.

use cairn_core::ids::EventId;
use cairn_core::{NewEvent, Stamp};
use cairn_store::Replica;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
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
    #[arg(long, short)]
    pillar: Option<String>,
    /// Why it mattered.
    #[arg(long, short)]
    why: Option<String>,
    /// It happened yesterday: count it for yesterday's date.
    #[arg(long)]
    yesterday: bool,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    let (id, stamp) = add(
        ctx,
        &mut replica,
        &args.text,
        args.pillar,
        args.why,
        args.yesterday,
    )?;
    let when = if args.yesterday { " for yesterday" } else { "" };
    ctx.out.say(
        format!("logged {}{when}", paint(ID, id.short())),
        json!({ "id": id.as_str(), "short": id.short(), "date": stamp.date }),
    )
}

/// Logs a micro-action as the acting member: what `cairn log` and the web form both do.
pub fn add(
    ctx: &Ctx,
    replica: &mut Replica,
    text: &str,
    pillar: Option<String>,
    why: Option<String>,
    yesterday: bool,
) -> Result<(EventId, Stamp)> {
    let me = ctx.actor(replica)?;
    let team = replica.team()?;
    let stamp = ctx.stamp(&team.tz, yesterday);
    let id = ctx.new_event_id()?;
    replica.add_event(&me, &id, &stamp, &NewEvent::action(text, pillar, why))?;
    Ok((id, stamp))
}
