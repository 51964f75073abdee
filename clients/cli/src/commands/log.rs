//! `cairn log`: log a micro-action.

use serde_json::json;

use crate::context::{Ctx, Outcome};
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
    /// The organisation's non-negotiable it honours: its id in `cairn org`, or the start of
    /// it. The digest counts the team's acts per non-negotiable.
    #[arg(long, value_name = "ID")]
    honours: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    let on = if args.yesterday {
        Some("yesterday".to_owned())
    } else {
        args.on
    };
    let honours = match &args.honours {
        Some(h) => {
            let held = super::org::held(ctx, w.replica)?;
            Some(w.honouring(held.as_ref().map(|h| &h.state), h)?)
        }
        None => None,
    };
    let (id, stamp) = w.log(&args.text, args.pillar, args.why, on.as_deref())?;
    let when = if stamp.late {
        format!(" for {}", stamp.date)
    } else {
        String::new()
    };
    ctx.out.say(
        format!(
            "logged {}{when}{}",
            paint(ID, id.short()),
            honouring(honours.as_ref())
        ),
        json!({
            "id": id.as_str(),
            "short": id.short(),
            "date": stamp.date,
            "honours": honours.map(|c| c.id),
        }),
    )?;
    Outcome::of(&w)
}

/// `, honouring “TITLE”`, for the line that says an act was written.
pub fn honouring(c: Option<&cairn_core::OrgCommitment>) -> String {
    c.map(|c| format!(", honouring “{}”", c.title))
        .unwrap_or_default()
}
