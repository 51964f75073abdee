//! `cairn retract`: take back one of your events.

use cairn_core::Event;
use serde_json::json;

use crate::context::{Ctx, Outcome, Writer};
use crate::error::Result;

/// Take back one of your own events; it leaves the feed on every replica.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event's id, as shown at the left of `cairn feed` (a prefix is enough).
    #[arg(add = crate::complete::events())]
    id: String,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    let event = take_back(ctx, &mut w, &args.id)?;
    ctx.out.say(
        format!("retracted {}", event.id.short()),
        json!({ "id": event.id.as_str(), "retracted": true }),
    )?;
    w.outcome()
}

/// Retracts the acting member's event named by `id`: what `cairn retract` and the web both do.
pub fn take_back(ctx: &Ctx, w: &mut Writer<'_>, id: &str) -> Result<Event> {
    let event = w.replica.resolve(id, &w.me)?;
    w.replica.retract_event(&w.me, &event.id, ctx.now_ms())?;
    Ok(event)
}
