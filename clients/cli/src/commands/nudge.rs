//! `cairn nudge`: a private suggestion of teammates you have not recognised lately.

use cairn_core::goals;
use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{DIM, HANDLE, paint};

/// Suggest teammates you have not recognised lately (for your eyes only; nobody is told).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many to suggest.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    count: u32,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let super::Acts {
        team,
        me,
        acts,
        today,
    } = super::Acts::load(ctx)?;
    // Placeholders who have not joined are nobody to thank yet.
    let members = team.counted(&acts);
    let list: Vec<_> = goals::nudge(&acts, &me, &members, today)
        .into_iter()
        .take(args.count as usize)
        .collect();
    if ctx.out.json {
        let v: Vec<_> = list
            .iter()
            .map(|(m, d)| json!({ "handle": team.handle_of(m), "last": d.map(|d| d.to_string()) }))
            .collect();
        return ctx.out.json(&json!(v));
    }
    if list.is_empty() {
        return ctx.out.line(if members.len() > 1 {
            "you have thanked everyone on the team this week"
        } else {
            "nobody else is on the team yet"
        });
    }
    ctx.out.line("Teammates you have not thanked lately:")?;
    for (m, d) in &list {
        let when = d.map_or_else(|| "never".to_owned(), |d| format!("last on {d}"));
        ctx.out.line(format!(
            "  {} {}",
            paint(HANDLE, format!("@{:<16}", team.handle_of(m))),
            paint(DIM, when)
        ))?;
    }
    ctx.out
        .line(paint(DIM, "cairn kudos @handle \"what they did\""))
}
