//! `cairn init`: start a team on this machine.

use cairn_core::ids;
use cairn_store::{NewTeam, Replica};
use jiff::tz::TimeZone;
use serde_json::json;

use crate::context::{Ctx, random_id};
use crate::error::{CliError, Result};
use crate::output::{BOLD, HANDLE, paint};

/// Start a team on this machine, with you as its first member.
///
/// The team lives in a local replica (see --home); other members join later through sync.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The team's name.
    #[arg(long, value_name = "NAME")]
    team: String,
    /// Your name as teammates will see it.
    #[arg(long, value_name = "YOUR_NAME")]
    name: String,
    /// Your handle, as in `@ana` [default: from your name].
    #[arg(long, value_name = "HANDLE")]
    handle: Option<String>,
    /// The team's IANA time zone, like Europe/Paris [default: this machine's].
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let tz = match &args.tz {
        Some(name) => {
            TimeZone::get(name).map_err(|_| {
                CliError::new(format!("unknown time zone `{name}`"))
                    .hint("use an IANA name such as Europe/Paris, America/New_York or UTC")
            })?;
            name.clone()
        }
        None => ctx.zone_name("UTC"),
    };
    let handle = match &args.handle {
        Some(h) => h.trim().trim_start_matches('@').to_owned(),
        None => ids::handle_from_name(&args.name).ok_or_else(|| {
            CliError::new(format!("cannot make a handle from `{}`", args.name))
                .hint("give one with --handle, like --handle ana")
        })?,
    };
    let new = NewTeam {
        team_id: random_id(16)?,
        team_name: args.team.clone(),
        tz: tz.clone(),
        member_id: random_id(12)?,
        member_name: args.name.clone(),
        handle: handle.clone(),
        at_ms: ctx.now_ms(),
    };
    let replica = Replica::create(&ctx.replica_path(), &new)?;
    let team = replica.team()?;
    ctx.out.say(
        format!(
            "Started {} ({tz}) as {}{}.\nLog your first stone: cairn log \"what you did\" --pillar {}",
            paint(BOLD, &team.name),
            paint(HANDLE, format!("@{handle}")),
            if args.handle.is_none() {
                super::team::cut_note(&args.name)
            } else {
                ""
            },
            team.pillars.first().map_or("trust", |p| p.id.as_str()),
        ),
        json!({ "team": team.name, "tz": tz, "handle": handle, "home": ctx.home }),
    )
}
