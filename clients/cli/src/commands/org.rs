//! `cairn org`: the organisation the team belongs to, its non-negotiables and this team's how
//! of each; a steward's changes to them.

use cairn_client::sync::org::{self as synced, Org};
use cairn_client::write::{self, OrgChange};
use cairn_core::{OrgState, Practice};
use clap::Subcommand;
use serde_json::json;

use crate::context::{Ctx, Outcome};
use crate::error::{CliError, Result};
use crate::output::{BOLD, DIM, ID, paint};

/// Show the organisation this team belongs to: its non-negotiables, each with its why, and
/// this team's own how of each.
///
/// Reads only this device (the organisation's replica, brought by `cairn sync`): it works
/// offline. Its stewards change the non-negotiables; each team writes its own how.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show retired non-negotiables too.
    #[arg(long)]
    all: bool,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Add a non-negotiable, with its why (stewards only).
    Add {
        /// The non-negotiable, in a sentence.
        title: String,
        /// Why it holds for every team.
        #[arg(long, short)]
        why: String,
    },
    /// Reword a non-negotiable or its why (stewards only).
    Edit {
        /// Its id in `cairn org`, or the start of it.
        id: String,
        /// The new wording.
        #[arg(long)]
        title: Option<String>,
        /// The new why.
        #[arg(long, short)]
        why: Option<String>,
    },
    /// Retire a non-negotiable: it leaves every team's list (stewards only).
    Retire {
        /// Its id in `cairn org`, or the start of it.
        id: String,
    },
    /// Write how this team lives a non-negotiable, in its own words (any member of the team).
    Practice {
        /// Its id in `cairn org`, or the start of it.
        id: String,
        /// How the team lives it.
        text: String,
    },
}

/// The organisation of the team `replica` holds, as this home keeps it, with its document.
pub struct Held {
    pub org: Org,
    pub state: OrgState,
}

/// The team's organisation as this home holds it; `None` for a team of none. A replica not
/// made yet (the organisation not synced yet) reads as an empty document.
pub fn held(ctx: &Ctx, replica: &cairn_store::Replica) -> Result<Option<Held>> {
    let Some(org) = synced::org(replica, &ctx.home)? else {
        return Ok(None);
    };
    let state = if org.path.exists() {
        write::org_state(&mut org.open()?)?
    } else {
        OrgState::default()
    };
    Ok(Some(Held { org, state }))
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let Some(held) = held(ctx, &replica)? else {
        let none = "this team belongs to no organisation: ask the server's admin to attach it \
                    to one (`cairn-server team attach TEAM --org ORG`)";
        if args.action.is_some() {
            return Err(CliError::new(none));
        }
        ctx.out.say(none, json!({ "org": null }))?;
        return Ok(Outcome::Read);
    };
    let Some(action) = args.action else {
        let practices = write::practices(&mut replica)?;
        show(ctx, &held, &practices, args.all)?;
        return Ok(Outcome::Read);
    };
    if let Action::Practice { id, text } = &action {
        let mut w = ctx.writer(&mut replica)?;
        let id = w.set_practice(&held.state, id, text)?;
        ctx.out
            .say("wrote this team's how", json!({ "commitment": id }))?;
        return Outcome::of(&w);
    }
    let name = &held.org.org.name;
    if !held.org.org.steward {
        return Err(CliError::new(format!(
            "only a steward of {name} changes its non-negotiables"
        ))
        .hint(format!(
            "your team writes its own how of each (`cairn org practice ID \"...\"`); the \
             server's admin names stewards (`cairn-server org steward add {name} ...`)"
        )));
    }
    let team = replica.team()?;
    let me = ctx.actor(&replica, &team)?;
    let by = format!("@{}@{}", team.handle_of(&me), team.name);
    let change = match &action {
        Action::Add { title, why } => OrgChange::Add { title, why },
        Action::Edit { id, title, why } => OrgChange::Edit {
            id,
            title: title.as_deref(),
            why: why.as_deref(),
        },
        Action::Retire { id } => OrgChange::Retire { id },
        Action::Practice { .. } => unreachable!("written above"),
    };
    let mut org = held.org.open()?;
    let id = write::write_org(&mut org, name, &change, &by, ctx.now_ms())?;
    let said = match change {
        OrgChange::Add { .. } => "added the non-negotiable",
        OrgChange::Edit { .. } => "changed the non-negotiable",
        OrgChange::Retire { .. } => "retired the non-negotiable",
    };
    ctx.out.say(
        format!("{said} {}", paint(ID, &id)),
        json!({ "commitment": id, "org": held.org.org.id }),
    )?;
    Ok(Outcome::Wrote)
}

/// The words for a non-negotiable this team has written no how of yet.
pub fn no_practice(id: &str) -> String {
    format!("(this team has not written its how yet: `cairn org practice {id} \"...\"`)")
}

fn show(
    ctx: &mut Ctx,
    held: &Held,
    practices: &std::collections::BTreeMap<String, Practice>,
    all: bool,
) -> Result<()> {
    let o = &held.org.org;
    let shown: Vec<_> = held
        .state
        .commitments
        .iter()
        .filter(|c| all || c.retired.is_none())
        .collect();
    if ctx.out.json {
        return ctx.out.json(&json!({
            "org": {
                "id": o.id,
                "name": o.name,
                "steward": o.steward,
                "last_sync_ms": held.org.synced_ms,
            },
            "non_negotiables": shown.iter().map(|c| json!({
                "id": c.id,
                "title": c.title,
                "why": c.why,
                "by": c.by,
                "retired": c.retired.is_some(),
                "practice": practices.get(&c.id).map(|p| &p.text),
            })).collect::<Vec<_>>(),
        }));
    }
    let out = &mut ctx.out;
    out.page();
    let steward = if o.steward {
        paint(DIM, "  (you are a steward)")
    } else {
        String::new()
    };
    out.line(format!("{}{steward}", paint(BOLD, &o.name)))?;
    out.line("")?;
    out.line(paint(BOLD, "Non-negotiables"))?;
    if shown.is_empty() {
        out.line(paint(DIM, "  none yet"))?;
    }
    for c in shown {
        let retired = if c.retired.is_some() {
            paint(DIM, "  (retired)")
        } else {
            String::new()
        };
        out.line(format!("  {}  {}{retired}", paint(ID, &c.id), c.title))?;
        out.wrapped(&format!("why: {}", c.why), "    ", "    ")?;
        match practices.get(&c.id) {
            Some(p) => out.wrapped(&format!("our how: {}", p.text), "    ", "    ")?,
            None if c.retired.is_none() => {
                out.line(paint(DIM, format!("    {}", no_practice(&c.id))))?
            }
            None => {}
        }
    }
    Ok(())
}
