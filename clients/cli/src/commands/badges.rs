//! `cairn badges`: what the team earned together, and what you earned (shown to you alone).

use cairn_client::views;
use cairn_core::goals;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{BOLD, DIM, count, pad, paint, widest};

/// Show the team's badges, your own, and how widely the team spreads its thanks.
///
/// Nobody else sees your badges; the team's carry no names.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, ctx: &mut Ctx) -> Result<()> {
    let super::Acts {
        team,
        me,
        today,
        acts,
    } = super::Acts::load(ctx)?;
    let views::Badges {
        team: team_badges,
        mine,
        reach,
    } = views::badges(&team, Some(&me), &acts, today);
    let mine = mine.unwrap_or_default();
    if ctx.out.json {
        return ctx.out.json(&json!({
            "team": team_badges,
            "you": mine,
            "reach": reach,
        }));
    }
    let out = &mut ctx.out;
    out.line(paint(BOLD, "Team badges"))?;
    list(out, &team_badges, "the first stone earns one")?;
    out.line("")?;
    out.line(format!(
        "{} {}",
        paint(BOLD, "Your badges"),
        paint(DIM, "(yours alone)")
    ))?;
    list(out, &mine, "a first kudos earns one")?;
    out.line("")?;
    out.line(format!(
        "{}  {} of {} recognised in the last 30 days ({:.0}%)",
        paint(BOLD, "Reach"),
        reach.recognised,
        count(reach.members, "member", "members"),
        reach.share * 100.0
    ))?;
    Ok(())
}

fn list(out: &mut crate::output::Out, badges: &[goals::Badge], first: &str) -> Result<()> {
    if badges.is_empty() {
        out.line(paint(DIM, format!("  none yet: {first}")))?;
    }
    let names = widest(badges.iter().map(|b| b.name));
    for b in badges {
        out.line(format!(
            "  {}  {} {}",
            paint(BOLD, pad(b.name, names)),
            b.about,
            paint(DIM, format!("({})", b.earned))
        ))?;
    }
    Ok(())
}
