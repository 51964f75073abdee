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
    /// Show what the organisation's teams share: each team's figures of a week, and the
    /// organisation's (stewards).
    ///
    /// Only what each team chose to share (`cairn team share weekly`): counts of a week once
    /// it is over, never a number about one person. Teams are listed by name, never ranked;
    /// a team that shares nothing shows as such.
    Figures {
        /// The ISO week, like `2026-W49`; by default the latest week any team shared.
        #[arg(long, value_name = "YYYY-Www")]
        week: Option<String>,
    },
    /// A week of the organisation for a leadership meeting: the teams' shared figures, the
    /// changes to the non-negotiables and the recognitions across teams (stewards).
    Digest {
        /// The ISO week, like `2026-W49`; by default the latest week any team shared.
        #[arg(long, value_name = "YYYY-Www")]
        week: Option<String>,
    },
    /// The organisation's feed: the stewards' changes to the non-negotiables and the
    /// recognitions across its teams, newest first.
    Feed {
        /// Show N items.
        #[arg(long, short = 'n', default_value_t = 20, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
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
    match &action {
        Action::Figures { week } => return figures(ctx, &held, week.as_deref(), false),
        Action::Digest { week } => return figures(ctx, &held, week.as_deref(), true),
        Action::Feed { limit } => return org_feed(ctx, &held, *limit as usize),
        _ => {}
    }
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
        Action::Practice { .. }
        | Action::Figures { .. }
        | Action::Digest { .. }
        | Action::Feed { .. } => unreachable!("answered above"),
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

/// `cairn org figures` and `cairn org digest`: what the teams share, for stewards.
fn figures(ctx: &mut Ctx, held: &Held, week: Option<&str>, digest: bool) -> Result<Outcome> {
    let o = &held.org.org;
    if !o.steward {
        return Err(CliError::new(format!(
            "the figures the teams of {} share are for its stewards",
            o.name
        ))
        .hint(
            "your own team's figures are in `cairn digest`; what it shares, in `cairn team share`",
        ));
    }
    if let Some(w) = week
        && cairn_core::figures::parse_week(w).is_none()
    {
        return Err(CliError::new(format!(
            "`{w}` is not an ISO week: write it like 2026-W49"
        )));
    }
    let org = if held.org.path.exists() {
        Some(held.org.open()?)
    } else {
        None
    };
    let Some(org) = org else {
        return Err(
            CliError::new(format!("this device has not synced {} yet", o.name))
                .hint("run `cairn sync`"),
        );
    };
    let view = cairn_client::shared::view(&org, &cairn_client::orgview::teams(&org)?, week)?;
    // The week's notes and recognitions across teams, for the digest.
    let extras = match (&view.week, digest) {
        (Some(w), true) => cairn_client::orgview::digest_extras(&held.state, &org, w)?,
        _ => cairn_client::orgview::Extras::default(),
    };
    let (notes, across) = (extras.notes, extras.across);
    if ctx.out.json {
        let mut v = json!({ "org": { "id": o.id, "name": o.name }, "figures": view });
        if digest {
            v["notes"] = json!(notes);
            v["across"] = json!(across);
        }
        return ctx.out.json(&v).map(|()| Outcome::Read);
    }
    let out = &mut ctx.out;
    out.page();
    let Some(week) = &view.week else {
        out.line(format!(
            "{}: no team shares its figures yet",
            paint(BOLD, &o.name)
        ))?;
        for t in &view.teams {
            out.line(format!("  {}  {}", t.name, paint(DIM, "shares nothing")))?;
        }
        return Ok(Outcome::Read);
    };
    let title = if digest { "Digest of" } else { "Figures of" };
    out.line(format!(
        "{} {} {}",
        title,
        paint(BOLD, &o.name),
        paint(DIM, format!("week {week}"))
    ))?;
    out.line("")?;
    for t in &view.teams {
        match &t.shared {
            Some(f) => out.line(format!("  {}  {}", paint(BOLD, &t.name), week_line(f)))?,
            None if t.share == cairn_core::Share::Nothing => out.line(format!(
                "  {}  {}",
                paint(BOLD, &t.name),
                paint(DIM, "shares nothing")
            ))?,
            None => out.line(format!(
                "  {}  {}",
                paint(BOLD, &t.name),
                paint(DIM, "shared nothing for that week")
            ))?,
        }
    }
    if let Some(total) = &view.total {
        out.line("")?;
        out.line(format!(
            "  {}  {}",
            paint(
                BOLD,
                if total.teams == 1 {
                    "1 team sharing".to_owned()
                } else {
                    format!("{} teams sharing", total.teams)
                }
            ),
            week_line(&total.figures)
        ))?;
        if !total.figures.pillars.is_empty() {
            let p: Vec<String> = total
                .figures
                .pillars
                .iter()
                .map(|(name, n)| format!("#{name} {n}"))
                .collect();
            out.line(format!(
                "  {}",
                paint(DIM, format!("per pillar: {}", p.join(", ")))
            ))?;
        }
        if !total.figures.non_negotiables.is_empty() {
            for (id, n) in &total.figures.non_negotiables {
                let title = held
                    .state
                    .commitment(id)
                    .map_or(id.as_str(), |c| c.title.as_str());
                out.line(format!("  {}", paint(DIM, format!("“{title}”: {n} acts"))))?;
            }
        }
    }
    if digest {
        out.line("")?;
        out.line(format!("Recognitions across teams: {across}"))?;
        if !notes.is_empty() {
            out.line("Changes to the non-negotiables:")?;
            for n in &notes {
                out.wrapped(n, "  ", "    ")?;
            }
        }
    }
    Ok(Outcome::Read)
}

/// A week's figures on one line, in words.
fn week_line(f: &cairn_core::WeekFigures) -> String {
    let n = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{} of {} active, {}, {} ({}), {} recognised within the team, {} across teams",
        f.active,
        n(f.members, "member", "members"),
        n(f.consistency, "active day", "active days"),
        n(f.acts, "act", "acts"),
        n(f.kudos, "kudos", "kudos"),
        n(f.reach_within, "member", "members"),
        n(f.reach_across, "recognition", "recognitions"),
    )
}

/// `cairn org feed`: the organisation's own feed.
fn org_feed(ctx: &mut Ctx, held: &Held, limit: usize) -> Result<Outcome> {
    use cairn_client::orgview::{self, Item};
    let org = if held.org.path.exists() {
        Some(held.org.open()?)
    } else {
        None
    };
    let feed = orgview::feed(&held.state, org.as_ref(), None, limit)?;
    let items: Vec<(String, serde_json::Value)> = feed
        .items
        .iter()
        .map(|item| match item {
            Item::Note(n) => (
                format!("{}  {}", paint(ID, n.id.short()), n.text()),
                json!({ "id": n.id, "kind": "note", "by": n.by, "text": n.text(),
                        "at_ms": n.at_ms }),
            ),
            Item::Kudos(c) => {
                let to: Vec<String> = c.to.iter().map(|p| p.label()).collect();
                (
                    format!(
                        "{}  {} 👏 {}\n        {}",
                        paint(ID, c.id.short()),
                        c.from.label(),
                        to.join(", "),
                        c.text
                    ),
                    json!({ "id": c.id, "kind": "kudos", "from": c.from.label(), "to": to,
                            "text": c.text, "at_ms": c.at_ms }),
                )
            }
        })
        .collect();
    if ctx.out.json {
        let list: Vec<_> = items.into_iter().map(|i| i.1).collect();
        return ctx
            .out
            .json(&json!({ "items": list }))
            .map(|()| Outcome::Read);
    }
    ctx.out.page();
    if items.is_empty() {
        ctx.out.line(paint(
            DIM,
            "Nothing in the organisation's feed yet: thank someone of another team with \
             `cairn kudos @handle@team \"...\"`",
        ))?;
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            ctx.out.line("")?;
        }
        ctx.out.line(&item.0)?;
    }
    Ok(Outcome::Read)
}
