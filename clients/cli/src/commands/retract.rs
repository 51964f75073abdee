//! `cairn retract`: take back one of your events.

use cairn_core::Event;
use cairn_store::Replica;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;

/// Take back one of your own events; it leaves the feed on every replica.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event's id, as shown at the left of `cairn feed` (a prefix is enough).
    #[arg(add = crate::complete::events())]
    id: String,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    let event = take_back(ctx, &mut replica, &args.id)?;
    ctx.out.say(
        format!("retracted {}", event.id.short()),
        json!({ "id": event.id.as_str(), "retracted": true }),
    )
}

/// Retracts the acting member's event named by `id`: what `cairn retract` and the web both do.
pub fn take_back(ctx: &Ctx, replica: &mut Replica, id: &str) -> Result<Event> {
    let me = ctx.actor(replica)?;
    let event = replica.resolve(id, &me)?;
    replica.retract_event(&me, &event.id, ctx.now_ms())?;
    Ok(event)
}
