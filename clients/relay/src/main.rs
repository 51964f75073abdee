//! `cairn-relay`: posts what a cairn team shares to its chat.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cairn_relay::config::{self, Config, Overrides};
use cairn_relay::deliver;
use cairn_relay::deliver::Report;
use cairn_relay::queue::{Outcome, Queue, Taken};
use cairn_relay::relay::{self, News, Relay};
use clap::{Parser, Subcommand};
use serde_json::json;

/// How long a pass waits for a message that comes due soon (a short `Retry-After`, the first
/// retry, the one-second spacing) before it leaves it to the next pass.
const LINGER: Duration = Duration::from_secs(30);

/// Posts a cairn team's recognitions to its chat: Slack, Mattermost, Discord, Microsoft Teams,
/// Matrix or a signed webhook.
///
/// The relay reads the team's replica, keeps a queue of its own in its home (relay.sqlite3),
/// and posts each new recognition once per destination, in order. On its first start it posts
/// nothing from history. Secrets stay in the environment or in files the config points to.
///
/// Start with `cairn-relay example > relay.toml`, edit it, then `cairn-relay --config
/// relay.toml check` (each problem named by its field, then a test message to each
/// destination), then `cairn-relay --config relay.toml run`.
#[derive(Parser, Debug)]
#[command(name = "cairn-relay", version = env!("CAIRN_VERSION"), max_term_width = 100)]
struct Cli {
    /// The config file (TOML). Default: the platform's config directory,
    /// cairn-relay/config.toml.
    #[arg(
        long,
        short,
        global = true,
        env = "CAIRN_RELAY_CONFIG",
        value_name = "PATH"
    )]
    config: Option<PathBuf>,
    /// Where the relay keeps its queue; overrides the config's `home`.
    #[arg(long, global = true, env = "CAIRN_RELAY_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// The team's replica the relay reads; overrides the config's `replica`.
    #[arg(long, global = true, env = "CAIRN_RELAY_REPLICA", value_name = "PATH")]
    replica: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checks the config (each problem with its field) and sends a test message to each
    /// destination.
    Check {
        /// Only check the config; send nothing.
        #[arg(long)]
        no_send: bool,
    },
    /// Shows each destination's latest deliveries, its failures, and whether it is disabled
    /// and why.
    Status {
        /// As JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// How many of each destination's latest deliveries to show.
        #[arg(long, default_value_t = 5, value_name = "N")]
        last: usize,
    },
    /// Takes in what is new in the replica and delivers what is due, until stopped.
    ///
    /// Each destination has its own worker: it delivers in order, at most one message a second,
    /// and sleeps until its next retry is due or something new is queued. The replica is
    /// looked at every poll_interval_secs (60 s by default). With --once: one look, then what
    /// is due delivered (waiting up to 30 s for what comes due soon, like a short Retry-After
    /// or the first retry), then exit. Stopping it at any moment is safe: see the README for
    /// what a message in flight becomes.
    Run {
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics (like 127.0.0.1:9464; port 0 picks
        /// a free port, printed at the start).
        #[arg(long, env = "CAIRN_RELAY_METRICS", value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Enables a destination the relay disabled (after a 410, a deleted Discord webhook or
    /// days of failures); its waiting messages go on from where they stopped.
    Enable {
        /// The destination's name.
        name: String,
    },
    /// Joins a team as its relay: a read-only device that pulls and never writes, and is no
    /// member (not in member lists, quorum or reach).
    ///
    /// The invite comes from the server's admin: `cairn-server invite create --team T --relay`.
    /// The relay's replica goes where the config's `replica` says (by default in its home);
    /// `run` then keeps it up to date, waiting at the server for news.
    Join {
        /// The team's server (`https://cairn.example.org`).
        url: String,
        /// The relay's invite.
        #[arg(long, value_name = "CODE")]
        invite: String,
        /// The name the server's admin sees for this device.
        #[arg(long, default_value = "cairn-relay", value_name = "NAME")]
        name: String,
    },
    /// Shows the weekly digest of the last whole week as it would be posted; with
    /// --send-now, posts it to each destination that asks for the digest, through the queue.
    ///
    /// Still once per destination and week: a digest already posted or queued (at its time or
    /// by an earlier --send-now) is not sent again. With a relay running on this home, that
    /// relay posts it; otherwise this command does, then exits.
    Digest {
        /// Post it now (otherwise only shown).
        #[arg(long)]
        send_now: bool,
        /// Another week: any date in it (YYYY-MM-DD); default: the last whole week.
        #[arg(long, value_name = "DATE")]
        week: Option<jiff::civil::Date>,
    },
    /// Prints an example config with every platform.
    Example,
}

fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| {
            t.round(jiff::Unit::Second)
                .map_or_else(|_| t.to_string(), |t| t.to_string())
        },
    )
}

fn load(cli: &Cli) -> Result<Config, String> {
    let path = cli.config.clone().unwrap_or_else(config::default_path);
    let overrides = Overrides {
        home: cli.home.clone(),
        replica: cli.replica.clone(),
    };
    Config::load(&path, &overrides).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn-relay: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    relay::check_clock().map_err(|e| e.to_string())?;
    match &cli.command {
        Command::Example => {
            print!("{}", config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { no_send } => check(&load(cli)?, *no_send),
        Command::Status { json, last } => status(&load(cli)?, *json, *last),
        Command::Enable { name } => {
            let cfg = load(cli)?;
            let mut q = Queue::open(&relay::queue_path(&cfg.home)).map_err(|e| e.to_string())?;
            if q.enable(name).map_err(|e| e.to_string())? {
                println!("{name}: enabled again");
            } else {
                println!("{name}: was not disabled");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Join { url, invite, name } => {
            let cfg = load(cli)?;
            let team = relay::join(&cfg, url, invite, name).map_err(|e| e.to_string())?;
            println!(
                "joined {team} as its relay (read-only, no member); replica at {}",
                cfg.replica.display()
            );
            println!("next: cairn-relay check, then cairn-relay run");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { once, metrics } => run_relay(load(cli)?, *once, *metrics),
        Command::Digest { send_now, week } => digest(load(cli)?, *send_now, *week),
    }
}

fn print_problems(cfg: &Config) -> bool {
    let problems = cfg.problems();
    for (field, what) in &problems.warnings {
        eprintln!("warning: {field}: {what}");
    }
    for (field, what) in &problems.errors {
        eprintln!("error: {field}: {what}");
    }
    problems.errors.is_empty()
}

fn check(cfg: &Config, no_send: bool) -> Result<ExitCode, String> {
    if !print_problems(cfg) {
        return Ok(ExitCode::from(1));
    }
    println!(
        "config: {} destination(s), no problem",
        cfg.destinations.len()
    );
    if !cfg.replica.exists() {
        eprintln!(
            "warning: replica: nothing at {} yet (the relay reads the team's replica there)",
            cfg.replica.display()
        );
    }
    if no_send {
        return Ok(ExitCode::SUCCESS);
    }
    let team = Some(&cfg.replica)
        .filter(|p| p.exists())
        .and_then(|p| cairn_store::Replica::open(p).ok())
        .and_then(|r| r.team().ok())
        .map_or_else(|| "the team".to_owned(), |t| t.name);
    let mut ok = true;
    for d in &cfg.destinations {
        match deliver::send_test(cfg, d, &team) {
            Outcome::Done { status } => println!("{}: test message posted ({status})", d.name),
            Outcome::Retry { error, .. }
            | Outcome::Failed { error, .. }
            | Outcome::Disable { error, .. } => {
                ok = false;
                println!("{}: test message failed: {error}", d.name);
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn status(cfg: &Config, as_json: bool, last: usize) -> Result<ExitCode, String> {
    let path = relay::queue_path(&cfg.home);
    if !path.exists() {
        return Err(format!(
            "no queue at {} yet: `cairn-relay run` creates it",
            path.display()
        ));
    }
    let q = Queue::open(&path).map_err(|e| e.to_string())?;
    let err = |e: cairn_relay::Error| e.to_string();
    let mut all = Vec::new();
    for d in &cfg.destinations {
        let state = q.destination(&d.name).map_err(err)?;
        let counts = q.counts(&d.name).map_err(err)?;
        let latest = q.latest(&d.name, last).map_err(err)?;
        all.push((d, state, counts, latest));
    }
    let held = q.held().map_err(err)?.len();
    // The digest goes by the team's zone, which the replica holds.
    let team_tz = Some(&cfg.replica)
        .filter(|p| p.exists())
        .and_then(|p| cairn_store::Replica::open(p).ok())
        .and_then(|r| r.team().ok())
        .map(|t| t.tz);
    let tz = cairn_relay::digest::zone(team_tz.as_deref().unwrap_or("UTC"));
    let now = relay::now_ms();
    let mut digests = Vec::new();
    for d in &cfg.destinations {
        if d.parts.contains(&config::Part::Digest) {
            let o = cairn_relay::digest::outlook(&q, d, &tz, now).map_err(err)?;
            digests.push((d.name.clone(), d.digest, o));
        }
    }
    let digest_of = |name: &str| digests.iter().find(|(n, _, _)| n == name);
    if as_json {
        let v = json!({
            "destinations": all.iter().map(|(d, state, counts, latest)| json!({
                "name": d.name,
                "kind": d.kind.as_str(),
                "disabled": state.disabled_ms.is_some(),
                "disabled_why": state.disabled_why,
                "disabled_at": state.disabled_ms.map(when),
                "failing_since": state.failing_since_ms.map(when),
                "last_sent": state.last_sent_ms.map(when),
                "counts": counts
                    .iter()
                    .map(|(s, n)| (s.clone(), json!(n)))
                    .collect::<serde_json::Map<_, _>>(),
                "latest": latest.iter().map(|l| json!({
                    "event": l.event,
                    "state": l.state,
                    "attempts": l.attempts,
                    "at": when(l.updated_ms),
                    "next_attempt": (l.state == "pending").then(|| when(l.next_ms)),
                    "status": l.last_status,
                    "error": l.last_error,
                })).collect::<Vec<_>>(),
                "digest": digest_of(&d.name).map(|(_, schedule, o)| json!({
                    "schedule": schedule.to_string(),
                    "zone": tz.iana_name(),
                    "next_due": o.next_due,
                    "last_week": o.last_week,
                    "last": o.last,
                })),
            })).collect::<Vec<_>>(),
            "held_for_digest": held,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (d, state, counts, latest) in &all {
        let health = match (&state.disabled_why, state.failing_since_ms) {
            (Some(why), _) => format!("DISABLED: {why}"),
            (None, Some(since)) => format!("failing since {}", when(since)),
            (None, None) => "ok".to_owned(),
        };
        println!("{} ({}): {health}", d.name, d.kind.as_str());
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
        if counts.is_empty() {
            println!("  nothing queued yet");
        } else {
            println!("  {}", counts.join(", "));
        }
        for l in latest {
            let mut line = format!("  {}  {:<8} {}", when(l.updated_ms), l.state, l.event);
            if let Some(s) = l.last_status {
                line.push_str(&format!("  {s}"));
            }
            if l.state == "pending" && l.attempts > 0 {
                line.push_str(&format!("  next attempt {}", when(l.next_ms)));
            }
            if let Some(e) = &l.last_error {
                line.push_str(&format!("  ({e})"));
            }
            println!("{line}");
        }
        if let Some((_, schedule, o)) = digest_of(&d.name) {
            println!(
                "  digest ({schedule}, {}): next due {}",
                tz.iana_name().unwrap_or("UTC"),
                o.next_due.as_deref().unwrap_or("never")
            );
            if let Some(week) = &o.last_week {
                println!("  digest of the week of {week}: {}", o.last);
            }
        }
    }
    if team_tz.is_none() && !digests.is_empty() {
        println!("(no replica to read the team's zone from: digest times shown in UTC)");
    }
    println!("held for the digest (arrived too late to post alone): {held}");
    Ok(ExitCode::SUCCESS)
}

fn run_relay(
    cfg: Config,
    once: bool,
    metrics: Option<std::net::SocketAddr>,
) -> Result<ExitCode, String> {
    if !print_problems(&cfg) {
        return Ok(ExitCode::from(1));
    }
    if let Some(addr) = metrics {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot serve metrics at {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        println!("metrics at http://{bound}/metrics");
        cairn_relay::metrics::serve(cfg.clone(), relay::queue_path(&cfg.home), listener);
    }
    let mut relay = Relay::start(cfg).map_err(|e| e.to_string())?;
    let (resent, doubt) = relay.recovered();
    if resent + doubt > 0 {
        eprintln!(
            "cairn-relay: a previous run stopped mid-request: {resent} message(s) sent again \
             with their idempotency key, {doubt} left in doubt (see `status`)"
        );
    }
    if once {
        let report = relay.pass(LINGER).map_err(|e| e.to_string())?;
        if let Some(n) = report.history {
            say_history(n);
        }
        say_taken(&report.taken);
        for (destination, week) in &report.digests {
            say_digest(destination, week);
        }
        for r in &report.deliveries {
            say_delivered(r);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(chat) = relay.config().chat.clone() {
        start_chat(relay.config(), &chat)?;
    }
    relay.run(|news| match news {
        News::Taken { history, taken } => {
            if let Some(n) = history {
                say_history(n);
            }
            say_taken(&taken);
        }
        News::Delivered(r) => say_delivered(&r),
        News::Digest { destination, week } => say_digest(&destination, week),
        News::Failed(e) => eprintln!("cairn-relay: {e}"),
    });
    Ok(ExitCode::SUCCESS)
}

fn digest(
    cfg: Config,
    send_now: bool,
    week: Option<jiff::civil::Date>,
) -> Result<ExitCode, String> {
    use cairn_relay::digest;
    let asking: Vec<&str> = cfg
        .destinations
        .iter()
        .filter(|d| d.parts.contains(&config::Part::Digest))
        .map(|d| d.name.as_str())
        .collect();
    if !send_now {
        let replica = cairn_store::Replica::open(&cfg.replica).map_err(|e| e.to_string())?;
        let team = replica.team().map_err(|e| e.to_string())?;
        let tz = digest::zone(&team.tz);
        let week = match week {
            Some(w) => cairn_core::time::week_start(w),
            None => digest::last_week(relay::now_ms(), &tz)
                .ok_or("the relay's clock is out of range")?,
        };
        let (post, _) = digest::build(&replica, &team, week, relay::now_ms(), &[])
            .map_err(|e| e.to_string())?;
        println!("{}", cairn_relay::format::plain(&post));
        println!();
        if asking.is_empty() {
            println!("(no destination lists \"digest\" in its post)");
        } else {
            println!(
                "(a preview, without what is held for it; `--send-now` posts it to: {})",
                asking.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if asking.is_empty() {
        return Err("no destination lists \"digest\" in its post".into());
    }
    let digest::SentNow { post, queued } =
        digest::send_now(&cfg, week, relay::now_ms()).map_err(|e| e.to_string())?;
    for (name, queued) in &queued {
        match queued {
            Some(true) => println!("{name}: {} queued", post.event),
            Some(false) => println!(
                "{name}: {} was queued or posted already (once per week)",
                post.event
            ),
            None => println!("{name}: disabled, nothing queued (`cairn-relay enable {name}`)"),
        }
    }
    match Relay::start(cfg.clone()) {
        Ok(_relay) => {
            for r in deliver::deliver_all(&cfg, &relay::queue_path(&cfg.home), LINGER)
                .map_err(|e| e.to_string())?
            {
                say_delivered(&r);
            }
        }
        Err(cairn_relay::Error::Locked(_)) => println!(
            "a relay is running on this home: it posts what was queued within {} s",
            cfg.poll_interval.as_secs()
        ),
        Err(e) => return Err(e.to_string()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Answers slash commands at `[chat] listen` for as long as the relay runs.
fn start_chat(cfg: &Config, chat: &cairn_relay::chat::ChatConfig) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(chat.listen)
        .map_err(|e| format!("cannot answer slash commands at {}: {e}", chat.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    cairn_relay::chat::serve(cfg, chat, listener, say_chat).map_err(|e| e.to_string())?;
    println!("slash commands at http://{bound}/slack and http://{bound}/mattermost");
    Ok(())
}

fn say_chat(news: cairn_relay::chat::News) {
    use cairn_relay::chat::News;
    match news {
        News::Failed(e) => eprintln!("cairn-relay: chat: {e}"),
        other => println!("chat: {other}"),
    }
}

fn say_history(n: usize) {
    println!("first start: {n} event(s) of history recorded, none posted; new ones will be");
}

fn say_taken(t: &Taken) {
    if t.new > 0 {
        println!(
            "{} new event(s): {} message(s) queued, {} held for the digest (late)",
            t.new, t.queued, t.held
        );
    }
}

fn say_digest(destination: &str, week: impl std::fmt::Display) {
    println!("{destination}: the digest of the week of {week} queued");
}

fn say_delivered(r: &Report) {
    if r.posted + r.failed > 0 {
        println!(
            "{}: {} posted, {} failed",
            r.destination, r.posted, r.failed
        );
    }
    if let Some(why) = &r.disabled {
        println!("{}: disabled: {why}", r.destination);
    }
    if let Some(e) = &r.error {
        eprintln!("{}: {e}", r.destination);
    }
}
