//! `cairn react`: react to an event.

use cairn_store::Reacted;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;

/// React to an event in the feed; the same reaction again takes it back.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event's id, as shown at the left of `cairn feed` (a prefix is enough).
    id: String,
    /// The emoji.
    #[arg(default_value = "👏")]
    emoji: String,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    let me = ctx.actor(&replica)?;
    let target = replica.resolve(&args.id, &me)?;
    let team = replica.team()?;
    let stamp = ctx.stamp(&team.tz, false);
    let id = ctx.new_event_id()?;
    let emoji = args.emoji.trim();
    let outcome = replica.react(&me, &target.id, emoji, &id, &stamp)?;
    let (text, done) = match outcome {
        Reacted::Added => (format!("{emoji} on {}", target.id.short()), "added"),
        Reacted::Removed => (
            format!("took back {emoji} on {}", target.id.short()),
            "removed",
        ),
    };
    ctx.out.say(
        text,
        json!({ "target": target.id.as_str(), "emoji": emoji, "reaction": done }),
    )
}
