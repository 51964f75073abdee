//! `cairn digest`: a week or a month summed up, for a retrospective.

use cairn_client::views::{self, DigestView, Period};
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;

/// Sum up this week (or month) for a retrospective.
///
/// The team streak, the pillar mix, the commitments (and, for a team of an organisation, its
/// non-negotiables with the team's how of each), recognitions quoted, new team badges, and a
/// spotlight that passes from member to member, one period each. The same on every replica that
/// holds the same events. A non-negotiable shows how many of the team's acts of the period
/// honoured it (`cairn log --honours`, `cairn kudos --honours`). With `--json`, the
/// organisation's non-negotiables are under `org` (absent for a team of none), each with its
/// `acts`.
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
    let mut replica = ctx.open()?;
    let team = replica.team()?;
    let org = views::org(&mut replica, &ctx.home)?;
    let today = ctx.today(&team.tz);
    let acts = replica.acts()?;
    let period = Period {
        month: args.month,
        last: args.last,
    };
    let d = views::digest(&replica, &team, today, period, &acts)?;
    if ctx.out.json {
        let mut value = json!(d);
        if let Some(org) = &org {
            // Each non-negotiable with the team's acts of the period that honoured it.
            value["org"] = json!(org.clone().counted(&d));
        }
        return ctx.out.json(&value);
    }
    let md = args.format == "md";
    ctx.out.page();
    for line in render(&DigestView::new(&d, &team).with_org(org.as_ref()), md) {
        // A list item's later lines hang under its text; Markdown stays one line per item.
        match line.strip_prefix("  ") {
            Some(text) if !md => ctx.out.wrapped(text, "  ", "    ")?,
            _ => ctx.out.line(line)?,
        }
    }
    Ok(())
}

/// The digest in words as lines of plain text or Markdown.
pub fn render(v: &DigestView, md: bool) -> Vec<String> {
    let mut out = Vec::new();
    out.push(if md {
        format!("# {}", v.title)
    } else {
        v.title.clone()
    });
    out.push(v.summary.clone());
    for s in &v.sections {
        out.push(if md {
            format!("\n## {}", s.title)
        } else {
            format!("\n{}", s.title)
        });
        for i in &s.items {
            out.push(if md {
                format!("- {i}")
            } else {
                format!("  {i}")
            });
        }
    }
    out
}
