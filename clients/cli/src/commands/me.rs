//! `cairn me`: your own numbers, for your eyes.

use cairn_client::views::numbers;
use serde_json::json;

use cairn_client::write;

use crate::context::{Ctx, Outcome};
use crate::error::Result;
use crate::output::{BOLD, DIM, count, paint};

/// Show your own numbers, for your eyes only, and your own settings.
///
/// Your streak, what you logged and gave this week and month, the thanks you received, your
/// pillar mix and your badges. Shown to you alone; there is no ranking.
///
/// `cairn me chat off` keeps you out of the team's chat: kudos from or to you are then not
/// posted one by one, and the weekly digest only counts them. That setting is yours alone to
/// change; it sits in the team document, so your teammates' replicas hold it too.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Show or say whether the team's relay may name you in chat (on by default).
    ///
    /// Off: a recognition you give or receive is not posted to chat by itself; the weekly
    /// digest only counts it. Yours alone to set, from your own devices; your teammates'
    /// replicas hold the setting (it is in the team document), never your numbers.
    /// Example: cairn me chat off
    Chat {
        /// `on` (you may be named, the default) or `off`; leave it out to see the setting.
        #[arg(value_enum)]
        setting: Option<Switch>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    if let Some(Action::Chat { setting }) = args.action {
        return chat(ctx, setting);
    }
    show(ctx).map(|()| Outcome::Read)
}

/// Shows or changes whether the acting member may be named in chat.
fn chat(ctx: &mut Ctx, setting: Option<Switch>) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let Some(setting) = setting else {
        let team = replica.team()?;
        let me = ctx.actor(&replica, &team)?;
        let named = team.named_in_chat(&me);
        ctx.out
            .say(chat_words(named), json!({ "named_in_chat": named }))?;
        return Ok(Outcome::Read);
    };
    // Someone else's setting is refused here, before the server would.
    let team = replica.team()?;
    write::own_setting(&replica, &team, ctx.as_member.as_deref())?;
    let mut w = ctx.writer(&mut replica)?;
    let named = setting == Switch::On;
    let news = w.set_named_in_chat(named)?;
    let said = match (named, news) {
        (true, true) => {
            "you may be named in chat again: kudos from or to you are posted one by one"
        }
        (true, false) => "you may be named in chat, as before: kudos from or to you are posted",
        (false, true) => "you are out of chat now: kudos from or to you only count in the digest",
        (false, false) => {
            "you were out of chat already: kudos from or to you only count in the digest"
        }
    };
    ctx.out
        .say(said, json!({ "named_in_chat": named, "changed": news }))?;
    Outcome::of(&w)
}

/// The setting in words, with the command that changes it.
fn chat_words(named: bool) -> &'static str {
    if named {
        "you may be named in chat: kudos from or to you are posted one by one (`cairn me chat \
         off` keeps you out)"
    } else {
        "you are out of chat: kudos from or to you only count in the digest (`cairn me chat on` \
         names you again)"
    }
}

fn show(ctx: &mut Ctx) -> Result<()> {
    let a = super::Acts::load(ctx)?;
    let skipped = ctx.open()?.travel_skips(&a.me)?;
    let n = numbers(&a.team, &a.me, a.today, &a.acts, &skipped);
    let named = a.team.named_in_chat(&a.me);
    if ctx.out.json {
        let mut v = json!(n);
        v["named_in_chat"] = json!(named);
        return ctx.out.json(&v);
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
    // A setting, not a number: the team document holds it, so teammates' replicas do too.
    out.line(format!(
        "chat        {} {}",
        if named {
            "named in chat posts"
        } else {
            "not named in chat posts"
        },
        paint(
            DIM,
            if named {
                "(cairn me chat off; your teammates see this setting)"
            } else {
                "(cairn me chat on; your teammates see this setting)"
            }
        )
    ))?;
    Ok(())
}
