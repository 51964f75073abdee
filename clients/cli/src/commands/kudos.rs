//! `cairn kudos`: recognise teammates.

use serde_json::json;

use crate::context::{Ctx, Outcome};
use crate::error::Result;
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
    let (who, text) = cairn_client::write::split_kudos_words(&words);
    let id = w.kudos(&who, &text, args.pillar)?;
    ctx.out.say(
        format!("recognised {}", paint(ID, id.short())),
        json!({ "id": id.as_str(), "short": id.short() }),
    )?;
    Outcome::of(&w)
}
