//! `cairn kudos`: recognise teammates.

use cairn_core::NewEvent;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{ID, paint};

/// Recognise one or more teammates for something they did.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Who: one handle or several, comma-separated (`@ana,@ben`).
    #[arg(value_name = "@HANDLE[,@HANDLE...]")]
    to: String,
    /// What they did, in a sentence.
    text: String,
    /// The pillar it serves (see `cairn team`).
    #[arg(long, short)]
    pillar: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    let me = ctx.actor(&replica)?;
    let team = replica.team()?;
    let mut to = Vec::new();
    for h in args.to.split([',', ' ']).filter(|h| !h.trim().is_empty()) {
        to.push(team.member_by_handle(h)?.id.clone());
    }
    if to.is_empty() {
        return Err(CliError::new("name at least one teammate").hint("cairn kudos @ana \"...\""));
    }
    let stamp = ctx.stamp(&team.tz, false);
    let id = ctx.new_event_id()?;
    replica.add_event(
        &me,
        &id,
        &stamp,
        &NewEvent::kudos(to, &args.text, args.pillar),
    )?;
    ctx.out.say(
        format!("recognised {}", paint(ID, id.short())),
        json!({ "id": id.as_str(), "short": id.short() }),
    )
}
