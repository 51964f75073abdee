//! `cairn log`: log a micro-action.

use cairn_core::NewEvent;
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
    let me = ctx.actor(&replica)?;
    let team = replica.team()?;
    let stamp = ctx.stamp(&team.tz, args.yesterday);
    let id = ctx.new_event_id()?;
    let new = NewEvent::action(&args.text, args.pillar, args.why);
    replica.add_event(&me, &id, &stamp, &new)?;
    let when = if args.yesterday { " for yesterday" } else { "" };
    ctx.out.say(
        format!("logged {}{when}", paint(ID, id.short())),
        json!({ "id": id.as_str(), "short": id.short(), "date": stamp.date }),
    )
}
