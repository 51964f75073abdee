//! `cairn kudos`: recognise teammates.

use cairn_core::NewEvent;
use cairn_core::ids::EventId;
use serde_json::json;

use crate::context::{Ctx, Outcome, Writer};
use crate::error::{CliError, Input, Result};
use crate::output::{ID, paint};

/// Recognise one or more teammates for something they did.
///
/// Name them first, then say what they did: `cairn kudos @ana @ben "Calm incident call"`
/// (`@ana,@ben` works too; the words after the last handle are the text, quoted or not).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Who: a teammate's handle (more may follow, as words or joined by commas).
    #[arg(value_name = "@HANDLE", add = crate::complete::handles())]
    who: String,
    /// What they did, in a sentence, quoted or not.
    #[arg(required = true, num_args = 1.., value_name = "TEXT", add = crate::complete::handles())]
    text: Vec<String>,
    /// The pillar it serves (see `cairn team`).
    #[arg(long, short, add = crate::complete::pillars())]
    pillar: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    let words: Vec<String> = std::iter::once(args.who).chain(args.text).collect();
    let (who, text) = split_words(&words);
    let id = give(ctx, &mut w, &who, &text, args.pillar)?;
    ctx.out.say(
        format!("recognised {}", paint(ID, id.short())),
        json!({ "id": id.as_str(), "short": id.short() }),
    )?;
    w.outcome()
}

/// Recognises the members named by `who` (handles, alone or split by commas or spaces) as the
/// acting member: what `cairn kudos` and the web form both do.
pub fn give(
    ctx: &Ctx,
    w: &mut Writer<'_>,
    who: &[&str],
    text: &str,
    pillar: Option<String>,
) -> Result<EventId> {
    let team = &w.team;
    let mut to = Vec::new();
    for h in who
        .iter()
        .flat_map(|w| w.split([',', ' ']))
        .filter(|h| !h.trim().is_empty())
    {
        let id = team.member_by_handle(h)?.id.clone();
        if !to.contains(&id) {
            to.push(id);
        }
    }
    if to.is_empty() {
        return Err(CliError::new("name at least one teammate")
            .hint("cairn kudos @ana \"...\"")
            .about(Input::Members));
    }
    let stamp = ctx.stamp(&team.tz, false);
    let id = ctx.new_event_id()?;
    w.replica
        .add_event(&w.me, &id, &stamp, &NewEvent::kudos(to, text, pillar))?;
    Ok(id)
}

/// The handles (the first word, and the words after it that start with `@`) and the text (the
/// rest, joined by spaces; never empty: the last word is always text).
fn split_words(words: &[String]) -> (Vec<&str>, String) {
    let mut n = 1.min(words.len());
    while n + 1 < words.len() && words[n].trim_start().starts_with('@') {
        n += 1;
    }
    let who = words[..n].iter().map(String::as_str).collect();
    (who, words[n..].join(" "))
}

#[cfg(test)]
mod tests {
    use super::split_words;

    fn split(words: &[&str]) -> (Vec<String>, String) {
        let owned: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let (who, text) = split_words(&owned);
        (who.into_iter().map(str::to_owned).collect(), text)
    }

    #[test]
    fn handles_come_first_and_the_rest_is_the_text() {
        assert_eq!(
            split(&["@ben", "Thanks"]),
            (vec!["@ben".into()], "Thanks".into())
        );
        assert_eq!(
            split(&["@ben", "@chloe", "Great pairing"]),
            (vec!["@ben".into(), "@chloe".into()], "Great pairing".into())
        );
        assert_eq!(
            split(&["@ben,@chloe", "great", "pairing"]),
            (vec!["@ben,@chloe".into()], "great pairing".into())
        );
        // The last word is the text even when it looks like a handle.
        assert_eq!(
            split(&["@ben", "@chloe"]),
            (vec!["@ben".into()], "@chloe".into())
        );
        assert_eq!(
            split(&["ben", "Thanks"]),
            (vec!["ben".into()], "Thanks".into())
        );
    }
}
