//! `cairn kudos`: recognise teammates.

use serde_json::json;

use cairn_client::across;
use cairn_core::across::Person;

use crate::context::{Ctx, Outcome};
use crate::error::{CliError, Result};
use crate::output::{ID, paint};

/// Recognise one or more teammates for something they did.
///
/// Name them first, then say what they did: `cairn kudos @ana @ben "Calm incident call"`
/// (`@ana,@ben` works too; the words after the last handle are the text, quoted or not).
///
/// In a team of an organisation, thank people of its other teams as `@handle@team`:
/// `cairn kudos @ben@platform "Unblocked our release"`. It shows in your team's feed, in
/// theirs and in the organisation's (`cairn org feed`); it never writes into their team.
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
    /// The organisation's non-negotiable it honours: its id in `cairn org`, or the start of
    /// it. The digest counts the team's acts per non-negotiable.
    #[arg(long, value_name = "ID")]
    honours: Option<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let mut replica = ctx.open()?;
    let words: Vec<String> = std::iter::once(args.who).chain(args.text).collect();
    let (who, text) = cairn_client::write::split_kudos_words(&words);
    let named: Vec<&str> = who
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if named
        .iter()
        .any(|h| h.trim_start_matches('@').contains('@'))
    {
        return across(
            ctx,
            &mut replica,
            &named,
            &text,
            args.pillar.is_some(),
            args.honours.as_deref(),
        );
    }
    let mut w = ctx.writer(&mut replica)?;
    let honours = match &args.honours {
        Some(h) => {
            let held = super::org::held(ctx, w.replica)?;
            Some(w.honouring(held.as_ref().map(|h| &h.state), h)?)
        }
        None => None,
    };
    let id = w.kudos(&who, &text, args.pillar)?;
    ctx.out.say(
        format!(
            "recognised {}{}",
            paint(ID, id.short()),
            super::log::honouring(honours.as_ref())
        ),
        json!({ "id": id.as_str(), "short": id.short(), "honours": honours.map(|c| c.id) }),
    )?;
    Outcome::of(&w)
}

/// Kudos naming people of other teams of the organisation (`@ben@platform`), teammates
/// perhaps among them: written into this member's journal across teams in the organisation's
/// replica, sent by the next sync.
fn across(
    ctx: &mut Ctx,
    replica: &mut cairn_store::Replica,
    who: &[&str],
    text: &str,
    pillar: bool,
    honours: Option<&str>,
) -> Result<Outcome> {
    let Some(held) = cairn_client::sync::org::org(replica, &ctx.home)? else {
        return Err(CliError::new(format!(
            "`{}` names someone of another team, but this team belongs to no organisation",
            who.iter()
                .find(|h| h.trim_start_matches('@').contains('@'))
                .unwrap_or(&"")
        ))
        .hint("thank a teammate by their handle alone, like `cairn kudos @ana \"...\"`"));
    };
    if pillar {
        return Err(CliError::new(
            "a recognition across teams takes no pillar: each team names its pillars its own way",
        ));
    }
    if !held.path.exists() {
        return Err(
            CliError::new(format!("this device has not synced {} yet", held.org.name))
                .hint("run `cairn sync`, then give it again"),
        );
    }
    let team = replica.team()?;
    // The team's id on the server names it in the organisation's documents: known once a sync
    // of this version asked (a published team's founder holds another one).
    let Some(team_id) = cairn_client::sync::org::state(replica)?.team else {
        return Err(CliError::new(format!(
            "this device has not synced {} since cairn was updated",
            held.org.name
        ))
        .hint("run `cairn sync`, then give it again"));
    };
    let me = ctx.actor(replica, &team)?;
    let mut org = held.open()?;
    let honours = match honours {
        Some(h) => {
            let state = cairn_client::write::org_state(&mut org)?;
            Some(cairn_client::write::honoured(Some(&state), h)?.clone())
        }
        None => None,
    };
    let people = across::people(&org)?;
    let mut to: Vec<Person> = Vec::new();
    for h in who {
        let person = if h.trim_start_matches('@').contains('@') {
            people.person(h)?
        } else {
            let m = team.member_by_handle(h)?;
            Person::new(&team_id, &m.id, &m.handle, &team.name)
        };
        if !to.contains(&person) {
            to.push(person);
        }
    }
    let from = across::me_in(&people, &team_id, &me, (team.handle_of(&me), &team.name));
    let clock = ctx.clock();
    let id = across::give(
        &mut org,
        &clock,
        &team.tz,
        &from,
        &to,
        text,
        honours.as_ref().map(|c| c.id.as_str()),
    )?;
    // Shown in this team's feed at once, as the other teams will show it once synced.
    across::show(replica, &org, &held.org.id, &team_id)?;
    let names: Vec<String> = to.iter().map(Person::label).collect();
    ctx.out.say(
        format!(
            "recognised {} across teams: {}{}",
            paint(ID, id.short()),
            names.join(", "),
            super::log::honouring(honours.as_ref())
        ),
        json!({
            "id": id.as_str(),
            "short": id.short(),
            "to": names,
            "org": held.org.id,
            "honours": honours.map(|c| c.id),
        }),
    )?;
    Ok(Outcome::Wrote)
}
