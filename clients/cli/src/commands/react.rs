//! `cairn react`: react to an event.

use cairn_core::Event;
use cairn_store::Reacted;
use serde_json::json;

use crate::context::{Ctx, Outcome, Writer};
use crate::error::Result;

/// React to an event in the feed; the same reaction again takes it back.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event's id, as shown at the left of `cairn feed` (a prefix is enough).
    #[arg(add = crate::complete::events())]
    id: String,
    /// The emoji.
    #[arg(default_value = "👏")]
    emoji: String,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    let emoji = args.emoji.trim();
    let (target, outcome) = toggle(ctx, &mut w, &args.id, emoji)?;
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
    )?;
    w.outcome()
}

/// Adds the acting member's `emoji` to the event named by `id`, or takes it back: what
/// `cairn react` and the web's buttons both do.
pub fn toggle(ctx: &Ctx, w: &mut Writer<'_>, id: &str, emoji: &str) -> Result<(Event, Reacted)> {
    let target = w.replica.resolve(id, &w.me)?;
    let stamp = ctx.stamp(&w.team.tz, false);
    let new_id = ctx.new_event_id()?;
    let outcome = w.replica.react(&w.me, &target.id, emoji, &new_id, &stamp)?;
    Ok((target, outcome))
}
