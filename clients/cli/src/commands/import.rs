//! `cairn import`: bring your own events from an export, as a device that can no longer sync
//! (revoked, broken, left behind) held them.

use std::io::Read;
use std::path::PathBuf;

use cairn_core::ids::EventId;
use cairn_core::{Edit, Kind, NewEvent, Stamp, TeamState};
use serde_json::{Value, json};

use crate::context::{Ctx, Outcome, Writer};
use crate::error::{CliError, Kind as ErrorKind, Result};

/// Bring your own events from a `cairn export` into this team.
///
/// For the events a device held but could not send (its token was revoked, it broke, it was left
/// behind): run `cairn export > mine.json` on it, then `cairn import mine.json` on a device of
/// yours that syncs. Only events you wrote are taken, never a teammate's; an event already here
/// is left as it is, unless the export holds a later edit or its retraction. Running it twice
/// adds nothing the second time. Changes to the team itself (pillars, members, ...) are not in
/// an export: make them again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file `cairn export` (JSON, the default format) wrote; `-` reads standard input.
    file: PathBuf,
    /// Say what would be imported, and write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// What an import did (or, with --dry-run, would do).
#[derive(Debug, Default, serde::Serialize)]
struct Done {
    added: usize,
    edited: usize,
    retracted: usize,
    /// Yours, already here as the export has them.
    already: usize,
    /// Written by teammates: left alone.
    others: usize,
    /// Yours, but not brought: notes of team changes, retracted events never sent, events the
    /// team can no longer take (a pillar or member gone), with why.
    skipped: Vec<String>,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<Outcome> {
    let items = read_export(&args.file)?;
    let mut replica = ctx.open()?;
    let mut w = ctx.writer(&mut replica)?;
    let my_handle = w.team.handle_of(&w.me).to_owned();
    let mut done = Done::default();
    // (A member's id is their own in one team: an export of another team, or of a teammate,
    // holds none of this member's events. An older cairn's export names authors by handle only,
    // which another team's member may share: it is refused, not guessed at.)
    if !items.is_empty() && items.iter().all(|i| i["author_id"].is_null()) {
        return Err(CliError::new(format!(
            "{} was made by an older cairn: its events name their authors by handle only",
            args.file.display()
        ))
        .hint("export again with this cairn (`cairn export > mine.json` on the device that holds them), then import that"));
    }
    let mut new = Vec::new();
    for item in &items {
        if item["author_id"].as_str() != Some(w.me.as_str()) {
            done.others += 1;
            continue;
        }
        if let Err(why) = take(ctx, &mut w, item, args.dry_run, &mut done, &mut new) {
            let id = crate::remote::printable(item["short"].as_str().unwrap_or("?"));
            done.skipped.push(format!("{id}: {}", why.said()));
        }
    }
    // New events go in as one write, a change per month's journal.
    if !args.dry_run && !new.is_empty() {
        w.replica.add_events(&w.me, &new)?;
    }
    if done.added + done.edited + done.retracted + done.already == 0 && done.skipped.is_empty() {
        return Err(CliError::new(format!(
            "none of the {} events in {} are yours (@{my_handle})",
            items.len(),
            args.file.display()
        ))
        .hint(
            "import an export on a device of the member who wrote it: their own device, or one \
             that joined with an invite made for them (`cairn-server invite create --member \
             @HANDLE`)",
        ));
    }
    let verb = if args.dry_run {
        "would import"
    } else {
        "imported"
    };
    let mut text = format!(
        "{verb} {} new, {} edited, {} retracted; {} already here; {} of teammates left alone",
        done.added, done.edited, done.retracted, done.already, done.others
    );
    for s in done.skipped.iter().take(10) {
        text.push_str(&format!("\nskipped {s}"));
    }
    if done.skipped.len() > 10 {
        text.push_str(&format!(
            "\nand {} more skipped (--json lists all)",
            done.skipped.len() - 10
        ));
    }
    ctx.out.say(text, json!(done))?;
    Outcome::of(&w)
}

/// The events of an export file.
fn read_export(file: &std::path::Path) -> Result<Vec<Value>> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| {
        CliError::new(format!("cannot read {}", file.display()))
            .hint("give the file `cairn export` wrote")
            .kind(ErrorKind::Failure)
            .because(e)
    })?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(items)) => Ok(items),
        _ => Err(
            CliError::new(format!("{} is not a cairn export", file.display()))
                .hint("make one with `cairn export > mine.json` (JSON, the default format)"),
        ),
    }
}

/// Brings one of the member's own events: edited or retracted as the export has it, or, when
/// new here, checked and put in `new` to be added with the others.
fn take(
    ctx: &Ctx,
    w: &mut Writer<'_>,
    item: &Value,
    dry_run: bool,
    done: &mut Done,
    new: &mut Vec<(EventId, Stamp, NewEvent)>,
) -> Result<()> {
    let text = |k: &str| item[k].as_str().map(str::to_owned);
    let id = text("id")
        .as_deref()
        .and_then(EventId::parse)
        .ok_or_else(|| CliError::new("it has no event id"))?;
    let kind = text("kind")
        .as_deref()
        .and_then(Kind::parse)
        .ok_or_else(|| CliError::new("it has no kind cairn knows"))?;
    let retracted = item["retracted"].as_bool().unwrap_or(false);
    let at = |k: &str| {
        text(k)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_millisecond())
    };
    let here = w
        .replica
        .resolve(id.as_str(), &w.me)
        .ok()
        .filter(|e| e.author == w.me);
    if let Some(here) = here {
        if retracted && !here.retracted {
            if !dry_run {
                w.replica.retract_event(&w.me, &id, ctx.now_ms())?;
            }
            done.retracted += 1;
            return Ok(());
        }
        let edit = Edit {
            text: text("text").filter(|t| *t != here.text && kind.is_act()),
            pillar: text("pillar").filter(|p| Some(p) != here.pillar.as_ref()),
            why: text("why").filter(|y| Some(y) != here.why.as_ref()),
        };
        let later = at("edited").unwrap_or(0) > here.edited_ms.unwrap_or(0);
        if here.retracted || !later || edit == Edit::default() {
            done.already += 1;
            return Ok(());
        }
        let edit = edit.validate(&w.team)?;
        if !dry_run {
            let when = at("edited").unwrap_or(i64::MAX).min(ctx.now_ms());
            w.replica.edit_event(&w.me, &id, &edit, when)?;
        }
        done.edited += 1;
        return Ok(());
    }
    if retracted {
        return Err(CliError::new("retracted before it was ever sent"));
    }
    let at_ms = at("at").ok_or_else(|| CliError::new("it has no instant"))?;
    // (Two devices' clocks may disagree by minutes, never by a day.)
    if at_ms > ctx.now_ms() + 24 * 3_600_000 {
        return Err(CliError::new("it happened later than tomorrow"));
    }
    let tz = text("tz").unwrap_or_else(|| "UTC".into());
    if jiff::tz::TimeZone::get(&tz).is_err() {
        return Err(CliError::new(format!(
            "its zone `{}` is no time zone",
            crate::remote::printable(&tz)
        )));
    }
    let stamp = Stamp {
        at_ms,
        tz,
        date: text("date").ok_or_else(|| CliError::new("it has no date"))?,
        late: item["late"].as_bool().unwrap_or(false),
    };
    let event = match kind {
        Kind::Action => NewEvent::action(
            &text("text").unwrap_or_default(),
            text("pillar"),
            text("why"),
        ),
        Kind::Kudos => NewEvent::kudos(
            recipients(item, &w.team)?,
            &text("text").unwrap_or_default(),
            text("pillar"),
        ),
        Kind::Reaction => NewEvent::reaction(
            text("target")
                .as_deref()
                .and_then(EventId::parse)
                .ok_or_else(|| CliError::new("a reaction to no event"))?,
            &text("emoji").unwrap_or_default(),
        ),
        Kind::Team => {
            return Err(CliError::new(
                "a note of a change to the team (make the change again)",
            ));
        }
    };
    // Checked now, so that one the team can no longer take is skipped with why, and a dry run
    // says what a real one would do.
    let event = event.validate(&w.team, &w.me)?;
    if new.iter().any(|(n, _, _)| *n == id) {
        return Err(CliError::new("it is in the file twice"));
    }
    new.push((id, stamp, event));
    done.added += 1;
    Ok(())
}

/// The member ids a recognition names (`to_ids`), each one of this team's.
fn recipients(item: &Value, team: &TeamState) -> Result<Vec<String>> {
    let ids: Vec<String> = item["to_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(stranger) = ids.iter().find(|id| team.member(id).is_none()) {
        return Err(CliError::new(format!(
            "it thanks `{}`, who is no member of this team",
            crate::remote::printable(stranger)
        )));
    }
    Ok(ids)
}
