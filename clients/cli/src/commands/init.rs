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
///
/// Give the team's name with --team (`cairn init --team "Otters" --name "Ana"`). A home that
/// holds a team already holds this one beside it: `cairn team list` shows them, --team picks
/// one for a command.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    let Some(team_name) = ctx.team.clone().filter(|_| ctx.team_named) else {
        return Err(CliError::new("name the new team with --team")
            .hint("cairn init --team \"Otters\" --name \"YOUR NAME\"")
            .kind(crate::error::Kind::Usage));
    };
    if let Some(same) = crate::home::list(&ctx.home)?
        .into_iter()
        .find(|t| cairn_core::ids::handle_key(&t.name) == cairn_core::ids::handle_key(&team_name))
    {
        return Err(CliError::new(format!(
            "this home already holds a team named {} ({})",
            same.name, same.id
        ))
        .hint("give the new team another name, or start it in another home (--home DIR)"));
    }
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
    let team_id = random_id(16)?;
    let path = crate::home::new_team_path(&ctx.home, &team_id)?;
    let new = NewTeam {
        team_id: team_id.clone(),
        team_name,
        tz: tz.clone(),
        member_id: random_id(12)?,
        member_name: args.name.clone(),
        handle: handle.clone(),
        at_ms: ctx.now_ms(),
    };
    let replica = Replica::create(&path, &new)?;
    let team = replica.team()?;
    drop(replica);
    beside_others(ctx, &team_id, &team.name)?;
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

/// After a team was added to a home that holds others: the team commands acted on so far stays
/// the default (set in the config, if nothing was), and the person is told how to reach the new
/// one.
pub fn beside_others(ctx: &mut Ctx, id: &str, name: &str) -> Result<()> {
    let teams = crate::home::list(&ctx.home)?;
    if teams.len() < 2 {
        return Ok(());
    }
    if ctx.config.get("team").is_none()
        && let Some(first) = teams.iter().find(|t| t.id != id)
    {
        ctx.config.set("team", Some(&first.id))?;
    }
    let default = crate::home::select(&ctx.home, ctx.config.get("team"))
        .ok()
        .and_then(|p| teams.iter().find(|t| t.path == p))
        .map_or_else(|| "the default team".to_owned(), |t| t.name.clone());
    crate::output::note!(
        "note: this home holds {} teams now; commands act on {default} unless --team names \
         another (`cairn team switch \"{name}\"` makes it the default; `cairn team list` shows \
         them)",
        teams.len(),
    );
    Ok(())
}
