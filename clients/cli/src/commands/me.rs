//! `cairn me`: your own numbers, for your eyes.

use cairn_client::views::numbers;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{BOLD, DIM, count, paint};

/// Show your own numbers, for your eyes only.
///
/// Your streak, what you logged and gave this week and month, the thanks you received, your
/// pillar mix and your badges. Shown to you alone; there is no ranking.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, ctx: &mut Ctx) -> Result<()> {
    let a = super::Acts::load(ctx)?;
    let skipped = ctx.open()?.travel_skips(&a.me)?;
    let n = numbers(&a.team, &a.me, a.today, &a.acts, &skipped);
    if ctx.out.json {
        return ctx.out.json(&json!(n));
    }
    let out = &mut ctx.out;
    out.line(format!(
        "{} {}",
        paint(BOLD, format!("@{}", n.handle)),
        paint(DIM, "(only you see this)")
    ))?;
    out.line(format!(
        "streak      {}, best {}, {} left",
        count(n.streak.current, "day", "days"),
        n.streak.best,
        count(n.streak.freezes_left, "freeze", "freezes")
    ))?;
    out.line(format!(
        "this week   {}, {} given",
        count(n.week.actions as u64, "micro-action", "micro-actions"),
        count(n.week.kudos_given as u64, "recognition", "recognitions")
    ))?;
    out.line(format!(
        "this month  {}, {} given, {} received",
        count(n.month.actions as u64, "micro-action", "micro-actions"),
        n.month.kudos_given,
        n.month.kudos_received.unwrap_or(0)
    ))?;
    let mix = n
        .pillars
        .iter()
        .map(|(p, c)| {
            let name = a
                .team
                .pillars
                .iter()
                .find(|x| x.id == *p)
                .map_or(p, |x| &x.name);
            format!("#{name} {c}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    out.line(format!(
        "pillars     {}",
        if mix.is_empty() {
            "none yet".into()
        } else {
            mix
        }
    ))?;
    let names = n
        .badges
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ");
    out.line(format!(
        "badges      {}",
        if names.is_empty() {
            "none yet".into()
        } else {
            names
        }
    ))?;
    Ok(())
}
