//! `cairn me`: your own numbers, for your eyes.

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::{Kind, goals, rules};
use jiff::ToSpan;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{BOLD, DIM, paint};

/// Show your own numbers, for your eyes only.
///
/// Your streak, what you logged and gave this week and month, the thanks you received, your
/// pillar mix and your badges. Shown to you alone; there is no ranking.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, ctx: &mut Ctx) -> Result<()> {
    let super::Acts {
        team,
        me,
        today,
        acts,
    } = super::Acts::load(ctx)?;
    let monday = today
        .checked_sub((today.weekday().to_monday_zero_offset() as i64).days())
        .unwrap_or(today);
    let month = today.first_of_month();
    let mine: Vec<&goals::Act> = acts.iter().filter(|a| a.author == me).collect();
    let days: BTreeSet<_> = mine.iter().map(|a| a.date).collect();
    let streak = rules::personal_streak(&days, today, &team.rules);
    let count = |from, kind| {
        mine.iter()
            .filter(|a| a.date >= from && a.kind == kind)
            .count()
    };
    let received = acts
        .iter()
        .filter(|a| a.kind == Kind::Kudos && a.date >= month && a.to.contains(&me))
        .count();
    let mut pillars: BTreeMap<String, usize> = BTreeMap::new();
    for a in &mine {
        if let Some(p) = &a.pillar {
            *pillars.entry(p.clone()).or_default() += 1;
        }
    }
    let pillars_ids: Vec<String> = team.pillars.iter().map(|p| p.id.clone()).collect();
    let badges = goals::member_badges(&acts, &me, &pillars_ids, &team.rules);
    let numbers = json!({
        "handle": team.handle_of(&me),
        "streak": streak,
        "week": { "actions": count(monday, Kind::Action), "kudos_given": count(monday, Kind::Kudos) },
        "month": {
            "actions": count(month, Kind::Action),
            "kudos_given": count(month, Kind::Kudos),
            "kudos_received": received,
        },
        "pillars": pillars,
        "badges": badges,
    });
    if ctx.out.json {
        return ctx.out.json(&numbers);
    }
    let out = &mut ctx.out;
    out.line(format!(
        "{} {}",
        paint(BOLD, format!("@{}", team.handle_of(&me))),
        paint(DIM, "(only you see this)")
    ))?;
    out.line(format!(
        "streak      {} day(s), best {}, {} freeze(s) left",
        streak.current, streak.best, streak.freezes_left
    ))?;
    out.line(format!(
        "this week   {} micro-action(s), {} recognition(s) given",
        count(monday, Kind::Action),
        count(monday, Kind::Kudos)
    ))?;
    out.line(format!(
        "this month  {} micro-action(s), {} given, {received} received",
        count(month, Kind::Action),
        count(month, Kind::Kudos)
    ))?;
    let mix = pillars
        .iter()
        .map(|(p, n)| format!("#{p} {n}"))
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
    let names = badges.iter().map(|b| b.name).collect::<Vec<_>>().join(", ");
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
