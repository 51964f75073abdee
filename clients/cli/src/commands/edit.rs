//! `cairn edit`: change one of your events.

use cairn_core::Edit;
use serde_json::json;

use crate::context::{Ctx, Outcome};
use crate::error::Result;

/// Change the text, pillar or why of one of your own events.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event's id, as shown at the left of `cairn feed` (a prefix is enough).
    #[arg(add = crate::complete::events())]
    id: String,
    /// The new text.
    text: Option<String>,
    /// The new pillar.
    #[arg(long, short, add = crate::complete::pillars())]
    pillar: Option<String>,
    /// The new why.
    #[arg(long, short)]
    why: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    let edit = Edit {
        text: args.text,
        pillar: args.pillar,
        why: args.why,
    };
    crate::render::refuse_outside(w.replica, &w.me, &args.id, "edited")?;
    let event = w.edit(&args.id, &edit)?;
    ctx.out.say(
        format!("edited {}", event.id.short()),
        json!({ "id": event.id.as_str(), "edited": true }),
    )?;
    Outcome::of(&w)
}
