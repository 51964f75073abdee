//! `cairn digest`: a week or a month summed up, for a retrospective.

use cairn_core::TeamState;
use cairn_core::digest::{Digest, Quote, digest};
use cairn_core::feed::FeedQuery;
use cairn_store::Replica;
use jiff::ToSpan;
use jiff::civil::Date;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::count;

/// Sum up this week (or month) for a retrospective.
///
/// The team streak, the pillar mix, the commitments, recognitions quoted, new team badges, and a
/// spotlight that passes from member to member, one period each. The same on every replica that
/// holds the same events.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// This week, Monday to Sunday (the default).
    #[arg(long, conflicts_with = "month")]
    week: bool,
    /// This calendar month.
    #[arg(long)]
    month: bool,
    /// The period before this one (last week, last month).
    #[arg(long)]
    last: bool,
    /// `text` for the terminal, `md` to paste into notes.
    #[arg(long, default_value = "text", value_parser = ["text", "md"])]
    format: String,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let replica = ctx.open()?;
    let team = replica.team()?;
    let today = ctx.today(&team.tz);
    let acts = replica.acts()?;
    let d = build(&replica, &team, today, args.month, args.last, &acts)?;
    if ctx.out.json {
        return ctx.out.json(&json!(d));
    }
    let md = args.format == "md";
    ctx.out.page();
    for line in render(&d, &team, md) {
        // A list item's later lines hang under its text; Markdown stays one line per item.
        match line.strip_prefix("  ") {
            Some(text) if !md => ctx.out.wrapped(text, "  ", "    ")?,
            _ => ctx.out.line(line)?,
        }
    }
    Ok(())
}

/// The digest of this week (or month, or the one before), as seen on `today`; `acts` are all the
/// team's acts in time order.
pub fn build(
    replica: &Replica,
    team: &TeamState,
    today: Date,
    month: bool,
    last: bool,
    acts: &[cairn_core::goals::Act],
) -> Result<Digest> {
    let (start, end, index) = if month {
        let first = today.first_of_month();
        let first = if last {
            first.checked_sub(1.month()).unwrap_or(first)
        } else {
            first
        };
        let index = i64::from(first.year()) * 12 + i64::from(first.month());
        (first, first.last_of_month(), index)
    } else {
        let monday = cairn_core::time::week_start(today);
        let monday = if last {
            monday.checked_sub(7.days()).unwrap_or(monday)
        } else {
            monday
        };
        let origin: Date = jiff::civil::date(1970, 1, 5); // a Monday
        let index = (monday - origin).get_days() as i64 / 7;
        (
            monday,
            monday.checked_add(6.days()).unwrap_or(monday),
            index,
        )
    };
    let items = replica.feed(&FeedQuery {
        since: Some(start.to_string()),
        ..FeedQuery::default()
    })?;
    let events: Vec<_> = items.into_iter().map(|i| i.event).collect();
    Ok(digest(
        team,
        &events,
        acts,
        start,
        end,
        today,
        index,
        &team.rules,
    ))
}

fn handles(team: &TeamState, ids: &[String]) -> String {
    ids.iter()
        .map(|m| format!("@{}", team.handle_of(m)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quote_line(team: &TeamState, q: &Quote) -> String {
    // One line, whatever the text holds: a new line would break a Markdown list.
    let text = q.text.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "@{} → {}: “{text}”",
        team.handle_of(&q.from),
        handles(team, &q.to),
    )
}

/// The digest as lines of plain text or Markdown.
pub fn render(d: &Digest, team: &TeamState, md: bool) -> Vec<String> {
    let h = |title: &str| {
        if md {
            format!("\n## {title}")
        } else {
            format!("\n{title}")
        }
    };
    let item = |text: String| {
        if md {
            format!("- {text}")
        } else {
            format!("  {text}")
        }
    };
    let mut out = Vec::new();
    let title = format!("{} — {} to {}", team.name, d.start, d.end);
    out.push(if md { format!("# {title}") } else { title });
    out.push(format!(
        "{} and {} from {} of {}.",
        count(d.actions as u64, "micro-action", "micro-actions"),
        count(d.kudos as u64, "recognition", "recognitions"),
        d.active_members,
        count(d.members as u64, "member", "members"),
    ));
    let (one, many) = match d.team_streak.cadence {
        cairn_core::rules::Cadence::Weekly => ("week", "weeks"),
        cairn_core::rules::Cadence::Daily => ("day", "days"),
    };
    out.push(h("Team streak"));
    out.push(item(format!(
        "{} in a row, best {}{}",
        count(d.team_streak.current as u64, one, many),
        d.team_streak.best,
        d.team_streak
            .consistency
            .map(|c| format!(", consistency {:.0}%", c * 100.0))
            .unwrap_or_default()
    )));
    out.push(h("Pillar mix"));
    for (p, n) in &d.pillars {
        // By the name the team gave it (`#Curiosity`), not its id.
        let name = match team.pillars.iter().find(|x| x.id == *p) {
            Some(pillar) => format!("#{}", pillar.name),
            None if p.is_empty() => "no pillar".to_owned(),
            None => format!("#{p}"),
        };
        out.push(item(format!("{name}: {n}")));
    }
    out.push(h("Our commitments"));
    if d.commitments.is_empty() {
        out.push(item("none yet".into()));
    }
    for c in &d.commitments {
        out.push(item(c.clone()));
    }
    out.push(h("Recognitions"));
    if d.quotes.is_empty() {
        out.push(item("none this time".into()));
    }
    for q in &d.quotes {
        out.push(item(quote_line(team, q)));
    }
    let unquoted = (d.kudos as usize).saturating_sub(d.quotes.len());
    if unquoted > 0 {
        let noun = if unquoted == 1 {
            "recognition"
        } else {
            "recognitions"
        };
        out.push(item(format!("and {unquoted} more {noun} in the feed")));
    }
    if !d.new_badges.is_empty() {
        out.push(h("New team badges"));
        for b in &d.new_badges {
            out.push(item(format!("{}: {}", b.name, b.about)));
        }
    }
    if let Some(s) = &d.spotlight {
        out.push(h("Spotlight"));
        // A quiet period is nobody's fault: no zeros in a shared page.
        // Celebrated with their own words, never with counts: a team page carries no numbers
        // about one person.
        out.push(item(format!(
            "@{}: the spotlight is theirs this time",
            team.handle_of(&s.member)
        )));
        if let Some(q) = &s.quote {
            out.push(item(quote_line(team, q)));
        }
    }
    out
}
