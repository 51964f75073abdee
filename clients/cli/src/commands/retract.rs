//! `cairn retract`: take back one of your events.

use serde_json::json;

use crate::context::{Ctx, Outcome};
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
    crate::render::refuse_outside(w.replica, &w.me, &args.id, "retracted")?;
    let event = w.retract(&args.id)?;
    ctx.out.say(
        format!("retracted {}", event.id.short()),
        json!({ "id": event.id.as_str(), "retracted": true }),
    )?;
    Outcome::of(&w)
}
