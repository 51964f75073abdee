//! `cairn team`: the team's members, pillars and commitments, and changes to them.

use cairn_core::team;
use clap::Subcommand;
use serde_json::json;

use crate::context::{Ctx, random_id};
use crate::error::Result;
use crate::output::{BOLD, DIM, HANDLE, PILLAR, paint};

/// Show the team: members, pillars and commitments. Subcommands change them.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Add a pillar the team wants to grow.
    #[command(subcommand)]
    Pillar(PillarAction),
    /// Add a commitment: one of the team's non-negotiables, with its why.
    Commit {
        /// The commitment, in a sentence.
        text: String,
        /// Why it matters to the team.
        #[arg(long, short)]
        why: String,
    },
    /// Add a member who has not joined yet.
    #[command(subcommand)]
    Member(MemberAction),
}

#[derive(Debug, Subcommand)]
enum PillarAction {
    /// Add a pillar.
    Add {
        /// Its name, like `curiosity`.
        name: String,
        /// What it means for the team.
        #[arg(long)]
        about: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum MemberAction {
    /// Add a member by name; they can claim it when they join.
    Add {
        /// Their name.
        name: String,
        /// Their handle [default: from the name].
        #[arg(long)]
        handle: Option<String>,
    },
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    let at = ctx.now_ms();
    match args.action {
        None => show(ctx, &replica),
        Some(Action::Pillar(PillarAction::Add { name, about })) => {
            let me = ctx.actor(&replica)?;
            let id = replica.change_team(&me, |doc, state| {
                team::add_pillar(doc, state, &name, about.as_deref(), at)
            })?;
            ctx.out.say(
                format!("added pillar {}", paint(PILLAR, format!("#{id}"))),
                json!({ "pillar": id }),
            )
        }
        Some(Action::Commit { text, why }) => {
            let me = ctx.actor(&replica)?;
            let id = random_id(10)?;
            replica.change_team(&me, |doc, _| {
                team::add_commitment(doc, &id, &text, &why, &me, at)
            })?;
            ctx.out
                .say("added the commitment", json!({ "commitment": id }))
        }
        Some(Action::Member(MemberAction::Add { name, handle })) => {
            let me = ctx.actor(&replica)?;
            let id = random_id(12)?;
            let handle = replica.change_team(&me, |doc, state| {
                team::add_member(doc, state, &id, &name, handle.as_deref(), at)
            })?;
            ctx.out.say(
                format!("added {}", paint(HANDLE, format!("@{handle}"))),
                json!({ "member": handle }),
            )
        }
    }
}

fn show(ctx: &mut Ctx, replica: &cairn_store::Replica) -> Result<()> {
    let team = replica.team()?;
    let me = ctx.actor(replica)?;
    if ctx.out.json {
        return ctx.out.json(&json!({
            "name": team.name,
            "tz": team.tz,
            "you": team.handle_of(&me),
            "members": team.members.iter().map(|m| json!({"handle": m.handle, "name": m.name})).collect::<Vec<_>>(),
            "pillars": team.pillars,
            "commitments": team.commitments.iter().map(|c| json!({
                "text": c.text, "why": c.why, "by": team.handle_of(&c.by),
            })).collect::<Vec<_>>(),
        }));
    }
    let out = &mut ctx.out;
    out.line(format!(
        "{}  {}",
        paint(BOLD, &team.name),
        paint(DIM, &team.tz)
    ))?;
    out.line("")?;
    out.line(paint(BOLD, format!("Members ({})", team.members.len())))?;
    for m in &team.members {
        let you = if m.id == me {
            paint(DIM, "  (you)")
        } else {
            String::new()
        };
        let handle = format!("{:<16}", format!("@{}", m.handle));
        out.line(format!("  {} {}{you}", paint(HANDLE, handle), m.name))?;
    }
    out.line("")?;
    out.line(paint(BOLD, "Pillars"))?;
    for p in &team.pillars {
        let about = p.about.as_deref().unwrap_or("");
        let name = format!("{:<18}", format!("#{}", p.name));
        out.line(format!("  {} {}", paint(PILLAR, name), paint(DIM, about)))?;
    }
    out.line("")?;
    out.line(paint(BOLD, "Commitments"))?;
    if team.commitments.is_empty() {
        out.line(paint(
            DIM,
            "  none yet: cairn team commit \"TEXT\" --why \"WHY\"",
        ))?;
    }
    for c in &team.commitments {
        out.line(format!("  • {}", c.text))?;
        out.line(format!("    {}", paint(DIM, format!("why: {}", c.why))))?;
    }
    Ok(())
}
