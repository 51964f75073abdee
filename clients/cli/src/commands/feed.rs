//! `cairn feed`: the team's culture feed.

use cairn_core::feed::FeedQuery;
use jiff::civil::Date;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{DIM, paint};
use crate::render::{Origin, item_json, item_text};

/// Show the culture feed, newest first: who did what, for which pillar, and the reactions.
///
/// A team of an organisation sees its stewards' changes to the non-negotiables here too, by
/// the steward (`@ana@Platform changed the organisation`; `"org": true` with `--json`).
///
/// A page at a time: the latest N events, then the ones before them with `--before ID` (the
/// line under a page gives the ID), and so on back to the first. With `--json`, an object:
/// `{"items": [...], "more": true, "next_before": "ID"}`, where `more` says whether older events
/// match too and `next_before` is the id to pass to `--before` for them (null when none).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show N events (a page).
    #[arg(long, short = 'n', default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
    /// Only events older than this one: a full id, or its tag as the feed shows it. The next
    /// page starts before the last event shown.
    #[arg(long, value_name = "ID", add = crate::complete::events())]
    before: Option<String>,
    /// Only events on or before this day: YYYY-MM-DD, `today`, `yesterday` or `7d` (days ago).
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// Only events of this pillar.
    #[arg(long, short, add = crate::complete::pillars())]
    pillar: Option<String>,
    /// Only events by or recognising this member.
    #[arg(long, short, value_name = "@HANDLE", add = crate::complete::handles())]
    member: Option<String>,
    /// Only events on or after this day: YYYY-MM-DD, `today`, `yesterday` or `7d` (days ago).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
}

/// Parses `YYYY-MM-DD`, `today`, `yesterday`, a weekday or `Nd`/`Nw`, relative to `today`.
pub fn parse_day(text: &str, today: Date) -> Result<Date> {
    Ok(cairn_client::write::parse_day(text, today)?)
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let replica = ctx.open()?;
    let team = replica.team()?;
    let today = ctx.today(&team.tz);
    let query = FeedQuery {
        limit: Some(args.limit as usize),
        pillar: args
            .pillar
            .map(|p| team.pillar(&p).map(|p| p.id.clone()))
            .transpose()?,
        member: args
            .member
            .map(|h| team.member_by_handle(&h).map(|m| m.id.clone()))
            .transpose()?,
        since: args
            .since
            .map(|s| parse_day(&s, today).map(|d| d.to_string()))
            .transpose()?,
        until: args
            .until
            .map(|s| parse_day(&s, today).map(|d| d.to_string()))
            .transpose()?,
        before: args
            .before
            .as_deref()
            .map(|b| replica.resolve_id(b))
            .transpose()?,
    };
    let filtered = query.pillar.is_some() || query.member.is_some() || query.since.is_some();
    let page = replica.feed_page(&query)?;
    let next = page.next_before().map(|id| id.as_str().to_owned());
    let origins = Origin::of_items(&replica, &page.items)?;
    if ctx.out.json {
        return ctx.out.json(&json!({
            "items": page.items.iter().zip(&origins)
                .map(|(i, o)| item_json(i, *o, &team))
                .collect::<Vec<_>>(),
            "more": page.more,
            "next_before": next,
        }));
    }
    let items = page.items;
    // The titles of what acts honour, read from the organisation's replica only when a page
    // names one (a team of none, or an organisation not synced yet, names it by its id).
    let titles = if items.iter().any(|i| i.event.honours.is_some()) {
        let held = super::org::held(ctx, &replica)?;
        crate::render::non_negotiable_titles(held.as_ref().map(|h| &h.state))
    } else {
        Default::default()
    };
    ctx.out.page();
    if items.is_empty() {
        return ctx.out.line(paint(
            DIM,
            if filtered {
                "Nothing matches these filters; without them, `cairn feed` shows everything."
            } else if query.before.is_some() || query.until.is_some() {
                "Nothing before that: this is where the feed begins."
            } else {
                "Nothing here yet. Add the first stone: cairn log \"what you did\""
            },
        ));
    }
    let now = ctx.now_ms();
    for (i, (item, origin)) in items.iter().zip(origins).enumerate() {
        if i > 0 {
            ctx.out.line("")?;
        }
        ctx.out
            .line(item_text(item, origin, &team, &titles, now, ctx.out.width))?;
    }
    if let Some(next) = next {
        let shown = if query.before.is_some() || query.until.is_some() {
            format!("{} shown", items.len())
        } else {
            format!("The latest {} shown", items.len())
        };
        ctx.out.line("")?;
        ctx.out.line(paint(
            DIM,
            format!("{shown}; older ones with `--before {next}`."),
        ))?;
    }
    Ok(())
}

pub use cairn_client::write::weekday;
