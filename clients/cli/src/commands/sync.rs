//! `cairn sync`: send this device's changes to the server and bring everyone else's.

use cairn_core::team;
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
        let report = sync_one(&args, ctx)?;
        if args.quiet || args.background {
            return Ok(());
        }
        return ctx.out.say(said(&report), json!(report));
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
            Ok(report) => {
                lines.push(format!("{label}: {}", said(&report)));
                let mut v = json!(report);
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
fn sync_one(args: &Args, ctx: &mut Ctx) -> Result<Report> {
    // One sync at a time per replica: a background sync finding another one under way leaves
    // (that one, or the next, takes its changes: they wait in the outbox); a sync by hand waits
    // its turn.
    let lock = crate::home::open_lock(&crate::home::sync_lock(&ctx.replica_path()?))?;
    let _turn = match lock {
        Some(file) if args.background => match file.try_lock() {
            Ok(()) => Some(file),
            Err(_) => return Ok(Report::default()),
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
    let report = match exchange(ctx, &mut replica, timeout, !args.background) {
        Ok(report) => report,
        Err(e) => {
            remember(&mut replica, &e, ctx.now_ms());
            return Err(e);
        }
    };
    if replica.setting(PROBLEM)?.is_some() {
        replica.set_setting(PROBLEM, None)?;
        replica.set_setting(PROBLEM_TOLD, None)?;
    }
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
    if report.rebased > 0 && !args.background {
        crate::output::note!(
            "note: this replica was copied or restored from a backup (another copy used its \
             numbers); its unsent changes to {} document{} were written again under a fresh \
             actor and sent: nothing was lost",
            report.rebased,
            plural(report.rebased),
        );
    }
    Ok(report)
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

/// The setting that remembers why this device's last sync was refused for good (a token
/// revoked, a team gone, a change the server will never take): the next command says so once,
/// `cairn status` every time, and the next sync that goes through forgets it.
const PROBLEM: &str = "sync_problem";
/// Set once the problem was said by a command other than `sync`, `status` or `doctor`.
const PROBLEM_TOLD: &str = "sync_problem_told";

/// Why this device can no longer sync, when its last sync was refused for good.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub message: String,
    pub hint: Option<String>,
    pub at_ms: i64,
}

/// Remembers `e` when it is a refusal that trying again will not cure (not a network failure,
/// a busy server or a timeout: those pass by themselves). Best effort: the error itself is what
/// the command reports.
fn remember(replica: &mut Replica, e: &CliError, now_ms: i64) {
    let for_good = e
        .refusal()
        .is_some_and(|r| (400..500).contains(&r.status) && !matches!(r.status, 408 | 429));
    if !for_good {
        return;
    }
    let problem = Problem {
        message: e.message.clone(),
        hint: e.hint.clone(),
        at_ms: now_ms,
    };
    if let Ok(text) = serde_json::to_string(&problem) {
        let _ = replica.set_setting(PROBLEM, Some(&text));
        let _ = replica.set_setting(PROBLEM_TOLD, None);
    }
}

/// Why this device's last sync was refused for good, if it was.
pub fn problem(replica: &Replica) -> Result<Option<Problem>> {
    Ok(replica
        .setting(PROBLEM)?
        .and_then(|text| serde_json::from_str(&text).ok()))
}

/// Says once, on stderr, that this device can no longer sync (a command's output stays as it
/// is): the first command after the background sync that found out.
pub fn tell_once(replica: &mut Replica) {
    let Ok(Some(p)) = problem(replica) else {
        return;
    };
    if !matches!(replica.setting(PROBLEM_TOLD), Ok(None)) {
        return;
    }
    let waiting = replica.outbox_size().map_or(0, |(n, _)| n);
    crate::output::note!(
        "warning: this device's last sync was refused ({}); {} wait{} here unsent; `cairn status` \
         says more",
        p.message.trim_start_matches("the server refused: "),
        crate::output::count(waiting as u64, "change", "changes"),
        if waiting == 1 { "s" } else { "" },
    );
    let _ = replica.set_setting(PROBLEM_TOLD, Some("1"));
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
    match bytes {
        b if b < 1_000 => format!("{b} B"),
        b if b < 1_000_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// The server client of this replica; an error with a hint when none is set up.
pub fn client(replica: &Replica, timeout: std::time::Duration) -> Result<Client> {
    let Some(r) = replica.remote()? else {
        return Err(CliError::new("this team is not on a server")
            .hint("join one with `cairn join URL --invite CODE --name NAME`, or bring this team to one with `cairn publish URL --invite CODE`"));
    };
    let client = Client::new(&r.url, Some(r.token), timeout);
    // A quiet sync after a write gives way at once to a busy server: the next one catches up.
    Ok(if timeout <= remote::QUIET_TIMEOUT {
        client.impatient()
    } else {
        client
    })
}

/// Syncs until level, finishing a publication or a join left half done.
pub fn exchange(
    ctx: &Ctx,
    replica: &mut Replica,
    timeout: std::time::Duration,
    progress: bool,
) -> Result<Report> {
    let mut client = client(replica, timeout)?;
    if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        client = client.chatty();
    }
    let importing = replica.setting("importing")?.is_some();
    // The quiet sync after a write takes less of a server than one asked for.
    let caps = if timeout <= remote::QUIET_TIMEOUT {
        remote::Caps::QUIET
    } else {
        remote::Caps::ASKED
    };
    let mut report =
        remote::sync_within(replica, &client, ctx.now_ms(), importing, progress, caps)?;
    if importing {
        replica.set_setting("importing", None)?;
    }
    // A member who joined adds themselves to the team document once it has arrived.
    if let Some(name) = replica.setting("join_name")? {
        let me = replica.me()?;
        let state = replica.team()?;
        if state.name.is_empty() {
            return Err(CliError::new("the server sent no team document yet")
                .hint("its founder starts the team on the server first; then run `cairn sync`")
                .kind(Kind::Failure));
        }
        if state.member(&me).is_none() {
            let wanted = match replica.setting("join_handle")? {
                Some(h) => h,
                None => cairn_core::ids::handle_from_name(&name).unwrap_or_else(|| "member".into()),
            };
            // A handle someone already has gets a number: ana, ana-2, ana-3, ...
            let handle = (1..)
                .map(|n| {
                    if n == 1 {
                        wanted.clone()
                    } else {
                        // Still 32 characters at most with the number.
                        let suffix = format!("-{n}");
                        let room = 32usize.saturating_sub(suffix.len());
                        let stem: String = wanted.chars().take(room).collect();
                        format!("{}{suffix}", stem.trim_end_matches('-'))
                    }
                })
                .find(|h| state.members.iter().all(|m| &m.handle != h))
                .unwrap_or(wanted);
            let at = ctx.now_ms();
            // Joining is not a change someone made to the team: no note in the feed (the
            // member list shows the newcomer).
            replica.change_team(&me, |doc, state| {
                team::add_member(doc, state, &me, &name, Some(&handle), at)
            })?;
            let more = remote::sync(replica, &client, ctx.now_ms(), false, false)?;
            add(&mut report, &more);
        }
        replica.set_setting("join_name", None)?;
        replica.set_setting("join_handle", None)?;
    }
    // A placeholder's own device (it joined with an invite made for them) says they arrived:
    // they count in the team's figures from now on, on every replica.
    if arrive(ctx, replica)? {
        let more = remote::sync(replica, &client, ctx.now_ms(), false, false)?;
        add(&mut report, &more);
    }
    Ok(report)
}

/// Marks this device's member arrived when they are a placeholder who had not; returns whether
/// it wrote. Arriving is not a change someone made to the team: no note in the feed.
fn arrive(ctx: &Ctx, replica: &mut Replica) -> Result<bool> {
    let me = replica.me()?;
    let state = replica.team()?;
    if state
        .member(&me)
        .is_none_or(|m| m.id != me || m.arrived().is_some())
    {
        return Ok(false);
    }
    let at = ctx.now_ms();
    Ok(replica.change_team(&me, |doc, state| team::arrive(doc, state, &me, at))?)
}

/// Adds what a further round of sync did to `report`.
fn add(report: &mut Report, more: &Report) {
    report.sent += more.sent;
    report.received += more.received;
    report.docs += more.docs;
    report.set_aside += more.set_aside;
    report.withdrawn += more.withdrawn;
    report.gone.extend(more.gone.iter().cloned());
    report.kept += more.kept;
    report.redone += more.redone;
    report.held.extend(more.held.iter().cloned());
    report.rebased += more.rebased;
    report.requests += more.requests;
    report.bytes_up += more.bytes_up;
    report.bytes_down += more.bytes_down;
    report.cursor = more.cursor;
}

/// Starts a quiet sync in the background after a write, when a server is known and something
/// waits to go; the write itself never waits on the network.
pub fn after_write(ctx: &Ctx) {
    if !ctx.config.auto_sync() {
        return;
    }
    let Ok(replica) = ctx.open() else { return };
    // Cheap checks only: this runs after every write.
    if !matches!(replica.remote(), Ok(Some(_))) || !replica.outbox_waiting().unwrap_or(false) {
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
