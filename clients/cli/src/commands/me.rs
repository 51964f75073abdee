//! `cairn me`: your own numbers, for your eyes.

use std::collections::{BTreeMap, BTreeSet};

use cairn_core::{Kind, TeamState, goals, rules};
use jiff::civil::Date;
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

/// A member's own numbers: what `cairn me` and the web's "me" page show.
#[derive(Debug, serde::Serialize)]
pub struct Numbers {
    pub handle: String,
    pub streak: rules::PersonalStreak,
    pub week: Counts,
    pub month: Counts,
    pub pillars: BTreeMap<String, usize>,
    pub badges: Vec<goals::Badge>,
}

/// Micro-actions logged and recognitions given (and received) in a period.
#[derive(Debug, serde::Serialize)]
pub struct Counts {
    pub actions: usize,
    pub kudos_given: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kudos_received: Option<usize>,
}

/// The numbers of `me` in `acts` (every act, in time order), seen on `today`; `skipped` are the
/// dates their travels skipped.
pub fn numbers(
    team: &TeamState,
    me: &str,
    today: Date,
    acts: &[goals::Act],
    skipped: &BTreeSet<Date>,
) -> Numbers {
    let monday = cairn_core::time::week_start(today);
    let month = today.first_of_month();
    let mine: Vec<&goals::Act> = acts.iter().filter(|a| a.author == me).collect();
    let days: BTreeSet<_> = mine.iter().map(|a| a.date).collect();
    let count = |from, kind| {
        mine.iter()
            .filter(|a| a.date >= from && a.kind == kind)
            .count()
    };
    let received = acts
        .iter()
        .filter(|a| a.kind == Kind::Kudos && a.date >= month && a.to.iter().any(|m| m == me))
        .count();
    let mut pillars: BTreeMap<String, usize> = BTreeMap::new();
    for a in &mine {
        if let Some(p) = &a.pillar {
            *pillars.entry(p.clone()).or_default() += 1;
        }
    }
    let pillar_ids: Vec<String> = team.pillars.iter().map(|p| p.id.clone()).collect();
    Numbers {
        handle: team.handle_of(me).to_owned(),
        streak: rules::personal_streak_with(&days, skipped, today, &team.rules),
        week: Counts {
            actions: count(monday, Kind::Action),
            kudos_given: count(monday, Kind::Kudos),
            kudos_received: None,
        },
        month: Counts {
            actions: count(month, Kind::Action),
            kudos_given: count(month, Kind::Kudos),
            kudos_received: Some(received),
        },
        pillars,
        badges: goals::member_badges(acts, me, &pillar_ids, &team.rules),
    }
}

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
