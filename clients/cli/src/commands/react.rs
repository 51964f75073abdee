//! `cairn react`: react to an event.

use cairn_store::Reacted;
use serde_json::json;

use crate::context::{Ctx, Outcome};
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
    crate::render::refuse_outside(w.replica, &w.me, &args.id, "reacted to")?;
    let (target, outcome) = w.react(&args.id, emoji)?;
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
    Outcome::of(&w)
}
