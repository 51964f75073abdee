//! `cairn sync`: send this device's changes to the server and bring everyone else's.

use cairn_client::sync::{org, problem};
use cairn_store::Replica;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Kind, Result};
use crate::remote::{self, Client, Report};

/// Send this device's changes to the team's server and bring everyone else's.
///
/// Safe to run any time and as often as you like: a sync with nothing new is one small request,
/// and an interrupted one loses nothing (run it again). After each write, cairn also syncs quietly
/// in the background when a server is known; set CAIRN_AUTO_SYNC=0 to turn that off. A server
/// that goes silent (sends nothing) is given 15 s (CAIRN_SYNC_TIMEOUT=SECONDS changes it); a
/// large answer that keeps coming is waited for. On a terminal, cairn says it is still waiting.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
    /// Run as the quiet background sync after a write: short timeout, no output, no progress.
    #[arg(long, hide = true)]
    background: bool,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    // A team named (--team, CAIRN_TEAM) syncs alone, and so does a home's only team; otherwise
    // every team of the home syncs, one after another, each said on a line of its own.
    let teams = if ctx.team_named || args.background {
        Vec::new()
    } else {
        crate::home::list(&ctx.home)?
    };
    if teams.len() < 2 {
        let (report, org) = sync_one(&args, ctx)?;
        if args.quiet || args.background {
            return Ok(());
        }
        return ctx.out.say(said(&report), with_org(json!(report), org));
    }
    let mut lines = Vec::new();
    let mut all = Vec::new();
    let mut failed = Vec::new();
    let chosen = ctx.team.take();
    for t in &teams {
        let label = if t.name.is_empty() {
            t.id.clone()
        } else {
            t.name.clone()
        };
        ctx.team = Some(t.id.clone());
        match sync_one(&args, ctx) {
            Ok((report, org)) => {
                lines.push(format!("{label}: {}", said(&report)));
                let mut v = with_org(json!(report), org);
                v["team"] = json!(label);
                v["team_id"] = json!(t.id);
                all.push(v);
            }
            Err(e) => {
                crate::output::note!("{label}:");
                let _ = e.report();
                failed.push(label);
            }
        }
    }
    ctx.team = chosen;
    if !args.quiet {
        ctx.out.say(lines.join("\n"), json!(all))?;
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(CliError::new(format!(
        "{} of {} teams did not sync: {}",
        failed.len(),
        teams.len(),
        failed.join(", ")
    ))
    .hint("see why above; nothing is lost, run `cairn sync` again (--team NAME syncs one)")
    .kind(Kind::Failure))
}

/// A sync's JSON with what its organisation's sync did, under `org`, when the team has one.
fn with_org(mut value: serde_json::Value, org: Option<serde_json::Value>) -> serde_json::Value {
    if let Some(org) = org {
        value["org"] = org;
    }
    value
}

/// What a sync did, in a line.
fn said(report: &Report) -> String {
    if report.sent == 0 && report.received == 0 && report.docs == 0 {
        "up to date".to_owned()
    } else {
        format!(
            "sent {} change{}, received {} ({} request{}, {} up, {} down)",
            report.sent,
            plural(report.sent),
            received(report),
            report.requests,
            plural(report.requests),
            size(report.bytes_up),
            size(report.bytes_down),
        )
    }
}

/// Syncs the team `ctx` acts on; says on stderr what needs saying besides the report.
fn sync_one(args: &Args, ctx: &mut Ctx) -> Result<(Report, Option<serde_json::Value>)> {
    // One sync at a time per replica: a background sync finding another one under way leaves
    // (that one, or the next, takes its changes: they wait in the outbox); a sync by hand waits
    // its turn.
    let lock = crate::home::open_lock(&crate::home::sync_lock(&ctx.replica_path()?))?;
    let _turn = match lock {
        Some(file) if args.background => match file.try_lock() {
            Ok(()) => Some(file),
            Err(_) => return Ok((Report::default(), None)),
        },
        Some(file) => file.lock().ok().map(|()| file),
        // A home we cannot write a lock into syncs anyway: the replica has its own guard.
        None => None,
    };
    let mut replica = ctx.open()?;
    let timeout = if args.background {
        remote::QUIET_TIMEOUT
    } else {
        ctx.patience()
    };
    let (report, org) = match exchange_with_org(ctx, &mut replica, timeout, !args.background) {
        Ok(done) => done,
        Err(e) => {
            remember(&mut replica, &e, ctx.now_ms());
            return Err(e);
        }
    };
    if report.set_aside > 0 && !args.background {
        crate::output::note!(
            "warning: set aside {} change{} from the server that do{} not apply; the rest synced \
             (`cairn doctor` lists them; tell the server's admin)",
            report.set_aside,
            plural(report.set_aside),
            if report.set_aside == 1 { "es" } else { "" },
        );
    }
    if !args.background {
        tell_withdrawals(&report);
    }
    if report.resent > 0 && !args.background {
        crate::output::note!(
            "note: the server was restored from a backup; this device sent again the {} it \
             wrote, so the server lost none of them, and read the team's log again",
            crate::output::count(report.resent as u64, "change", "changes"),
        );
    }
    if report.held_back > 0 && !args.background {
        crate::output::note!(
            "note: {} wait{} for changes of others that the restored server lost; they go up \
             once their authors' devices sync",
            crate::output::count(report.held_back as u64, "change", "changes"),
            if report.held_back == 1 { "s" } else { "" },
        );
    }
    if report.rebased > 0 && !args.background {
        crate::output::note!(
            "note: this replica was copied or restored from a backup (another copy used its \
             numbers); its unsent changes to {} document{} were written again under a fresh \
             actor and sent: nothing was lost",
            report.rebased,
            plural(report.rebased),
        );
    }
    Ok((report, org))
}

/// Says on stderr what withdrawal notices did: what left this replica, what this device kept
/// and why. (Notes are made safe for a terminal: these hold words from documents.)
fn tell_withdrawals(report: &Report) {
    use crate::output::{count, note};
    if report.withdrawn > 0 {
        note!(
            "note: the server's admin withdrew {}; {} left this replica:",
            count(report.withdrawn as u64, "change", "changes"),
            if report.withdrawn == 1 { "it" } else { "they" },
        );
        for line in &report.gone {
            note!("  {line}");
        }
    }
    if report.redone > 0 {
        note!(
            "note: {} of this device not yet sent had been made on withdrawn ones: what {} was \
             written again and sent; nothing of yours was lost",
            count(report.redone as u64, "change", "changes"),
            if report.redone == 1 {
                "it did"
            } else {
                "they did"
            },
        );
    }
    if report.kept > 0 {
        note!(
            "warning: a withdrawal notice named {} of this device that the server never \
             acknowledged; this replica kept {} (no server can withdraw what it never took)",
            count(report.kept as u64, "change", "changes"),
            if report.kept == 1 { "it" } else { "them" },
        );
    }
    for held in &report.held {
        note!(
            "warning: the server asked to withdraw {held}; this replica kept it all (a \
             withdrawal never removes the team's founding or a membership): tell the server's \
             admin"
        );
    }
    if report.withdrawn > 0 || !report.held.is_empty() {
        note!("(`cairn doctor` lists every withdrawal)");
    }
}

/// Why this device can no longer sync, when its last sync was refused for good.
pub use cairn_client::sync::problem::Problem;

/// Remembers `e` when it is a refusal that trying again will not cure (not a network failure,
/// a busy server or a timeout: those pass by themselves), in the words the command reports:
/// the next command says so once, `cairn status` every time, and the next sync that goes
/// through forgets it.
fn remember(replica: &mut Replica, e: &CliError, now_ms: i64) {
    if !e
        .refusal()
        .is_some_and(cairn_client::sync::Refusal::is_for_good)
    {
        return;
    }
    let problem = Problem {
        message: e.message.clone(),
        hint: e.hint.clone(),
        at_ms: now_ms,
    };
    problem::remember(replica, &problem);
}

/// Why this device's last sync was refused for good, if it was.
pub fn problem(replica: &Replica) -> Result<Option<Problem>> {
    Ok(problem::problem(replica)?)
}

/// Says once, on stderr, that this device can no longer sync (a command's output stays as it
/// is): the first command after the background sync that found out.
pub fn tell_once(replica: &mut Replica) {
    tell_org_stop(replica);
    let Some(p) = problem::tell_once(replica) else {
        return;
    };
    let waiting = replica.outbox_size().map_or(0, |(n, _)| n);
    crate::output::note!(
        "warning: this device's last sync was refused ({}); {} wait{} here unsent; `cairn status` \
         says more",
        p.message.trim_start_matches("the server refused: "),
        crate::output::count(waiting as u64, "change", "changes"),
        if waiting == 1 { "s" } else { "" },
    );
}

/// Says once, on stderr, that this device stopped syncing its team's organisation (the team
/// left it, or the server refused its log), the first time a command runs after a sync found
/// out.
fn tell_org_stop(replica: &mut Replica) {
    let Some(s) = org::tell_once(replica) else {
        return;
    };
    crate::output::note!(
        "note: stopped syncing the organisation `{}`: {}; what it gave stays here, read-only",
        s.name,
        s.why,
    );
}

/// Syncs the organisation of the team `replica` holds, just synced through `client`, in the
/// same run (see [`cairn_client::sync::org`]); says on stderr what it moved when `loud`, and
/// returns it for `--json` (nothing for a team of no organisation). Its failure never fails
/// the team's sync: it is said, and the next sync tries again.
fn sync_org(
    ctx: &Ctx,
    replica: &mut Replica,
    client: &Client,
    options: cairn_client::sync::Options,
    loud: bool,
) -> Option<serde_json::Value> {
    let outcome = org::sync(
        replica,
        client,
        &ctx.home,
        ctx.now_ms(),
        options,
        &mut |_| {},
    );
    let value = match &outcome {
        Ok(org::Outcome::None) => None,
        Ok(org::Outcome::Synced {
            org,
            report,
            refused,
        }) => Some(json!({
            "id": org.id,
            "name": org.name,
            "steward": org.steward,
            "sent": report.sent,
            "received": report.received,
            "docs": report.docs,
            "requests": report.requests,
            "bytes_up": report.bytes_up,
            "bytes_down": report.bytes_down,
            "refused": refused,
        })),
        Ok(org::Outcome::Stopped(s)) => Some(json!({
            "id": s.id,
            "name": s.name,
            "stopped": s.why,
        })),
        Err(e) => Some(json!({ "error": e.to_string() })),
    };
    if !loud {
        return value;
    }
    match outcome {
        Ok(org::Outcome::Synced {
            org,
            report,
            refused,
        }) => {
            if report.sent > 0 || report.received > 0 || report.docs > 0 {
                crate::output::note!("organisation {}: {}", org.name, said(&report));
            }
            if let Some(why) = refused {
                crate::output::note!(
                    "warning: the server refused your changes to the organisation `{}` ({why}); \
                     they wait here unsent, and the rest of it synced",
                    org.name
                );
            }
        }
        Ok(_) => {}
        Err(e) => {
            crate::output::note!(
                "warning: the team's organisation did not sync ({}); the team did, and the next \
                 sync tries again",
                CliError::from(e).message
            );
        }
    }
    tell_org_stop(replica);
    value
}

/// What came down: changes, and documents received whole.
pub fn received(report: &remote::Report) -> String {
    let changes = format!("{} change{}", report.received, plural(report.received));
    match report.docs {
        0 => changes,
        n => format!("{n} whole document{} and {changes}", plural(n)),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A byte count for people.
pub fn size(bytes: usize) -> String {
    cairn_client::sync::size(bytes)
}

/// The server client of this replica; an error with a hint when none is set up.
pub fn client(replica: &Replica, timeout: std::time::Duration) -> Result<Client> {
    Ok(cairn_client::sync::client_for(replica, timeout)?.observe(remote::tell))
}

/// Syncs until level, finishing a publication or a join left half done, and then the team's
/// organisation, if any.
pub fn exchange(
    ctx: &Ctx,
    replica: &mut Replica,
    timeout: std::time::Duration,
    progress: bool,
) -> Result<Report> {
    Ok(exchange_with_org(ctx, replica, timeout, progress)?.0)
}

/// [`exchange`], with what the organisation's sync did for `--json`.
fn exchange_with_org(
    ctx: &Ctx,
    replica: &mut Replica,
    timeout: std::time::Duration,
    progress: bool,
) -> Result<(Report, Option<serde_json::Value>)> {
    let mut client = client(replica, timeout)?;
    if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        client = client.announce_waits();
    }
    // The quiet sync after a write takes less of a server than one asked for.
    let options = cairn_client::sync::Options::for_timeout(timeout);
    let mut steps = remote::Steps::new(progress);
    let report =
        cairn_client::sync::sync_once(replica, &client, ctx.now_ms(), options, &mut |s| {
            steps.step(s)
        })?;
    steps.finish();
    let org = sync_org(ctx, replica, &client, options, progress);
    Ok((report, org))
}

/// Starts a quiet sync in the background after a write, when a server is known and something
/// waits to go; the write itself never waits on the network. (It runs this binary again as
/// `cairn sync --background`, whose sync is the library's [`cairn_client::sync::sync_once`]
/// with its quiet options: the write's process ends at once.)
pub fn after_write(ctx: &Ctx) {
    if !ctx.config.auto_sync() {
        return;
    }
    let Ok(replica) = ctx.open() else { return };
    // Cheap checks only: this runs after every write.
    // A steward's change waits in the organisation's replica, not the team's.
    if !cairn_client::sync::has_work(&replica)
        && !cairn_client::sync::org::has_work(&replica, &ctx.home)
    {
        return;
    }
    let Ok(team) = replica.team_id() else { return };
    drop(replica);
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let _ = std::process::Command::new(exe)
        .arg("--home")
        .arg(&ctx.home)
        .args(["--team", &team, "sync", "--background"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
