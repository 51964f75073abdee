//! `cairn-bench`: measures every row of "Numbers we must reach" in ARCHITECTURE.md with the real
//! `cairn` and `cairn-server` binaries, and prints target, measured figure and verdict.
//!
//! 1. **Seeding.** For each size (1,000, 10,000 and 150,000 events by default) it seeds a fresh
//!    replica in a temporary `CAIRN_HOME`, deterministically from `--seed`: a team of `--members`
//!    (200) who join over the first eighteen months and work from six time zones, two years of
//!    events before a fixed "now" (weekdays ten times as busy as weekends, office hours in each
//!    member's zone; about 70% micro-actions, 25% kudos to one or two teammates, 5% reactions),
//!    written through the store's own write path ([`Replica::add_events`]).
//! 2. **Latency.** Whole-process runs of `cairn log`, `cairn kudos` and `cairn feed --limit 50`
//!    on that replica (`CAIRN_NOW` pinned): median, min and max of `--runs` after `--warmup`.
//! 3. **Sync.** The seeded replica is published to a `cairn-server` on loopback; then a sync with
//!    nothing new, syncs of 1, 10 and 100 new events (bytes sent against the changes' own size),
//!    and a new device joining and catching up on the whole history (time, bytes, requests).
//! 4. **Server load.** `--clients` simulated devices, each a thread with its own token and
//!    automerge actor: `--load-seconds` of no-op syncs, then as long of one-change pushes;
//!    requests per second, p50 and p99 latency, the server's peak RSS.
//! 5. **Convergence.** `--replicas` real homes join one server, each logs `--each` events
//!    offline, all sync twice round in a seeded random order; feeds and teams must be identical.
//! 6. **The relay.** `cairn-relay` joined to a team on its own server, posting to a chat endpoint
//!    inside the bench: the time from a member's sync to their kudos' arrival there (20 kudos),
//!    then the requests the idle relay makes to the server over three minutes (counted by a
//!    proxy at the server's door), while the rest of the bench runs.
//! 7. **The organisation.** One server holding an organisation of `--org-scale` (by default 50
//!    teams, 2,000 people, 3 million events over two years), with a steward, non-negotiables,
//!    kudos across teams and half the teams sharing their weekly figures; the server's memory,
//!    a newcomer's catch-up, a member's commands against a single team of the same size, the
//!    steward's `cairn org figures`, and every team active at once (see `org.rs`).
//!
//! `--quick` makes it small enough for CI, which runs it so it never rots; its figures are not
//! judged. `--json` prints the results as JSON on stdout (the table then goes to stderr).
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p cairn-bench               # the full run
//! cargo run --release -p cairn-bench -- --quick    # a minute or so
//! ```

mod converge;
mod flood;
mod load;
mod org;
mod relay;
mod sync;
mod web;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use cairn_core::ids::{EventId, random_text};
use cairn_core::{NewEvent, Stamp, team};
use cairn_store::{NewTeam, Replica};
use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// The file name of the replica inside a home (the CLI's `context::REPLICA_FILE`).
pub(crate) const REPLICA_FILE: &str = "replica.sqlite3";
/// The instant every seeded replica and every timed run take as "now": a Monday morning.
pub(crate) const NOW: &str = "2026-11-23T09:30:00Z";
/// How far back the seeded events go.
const DAYS: i64 = 730;
/// Members of the seeded team, the founder (who owns the device) first.
pub(crate) const NAMES: [&str; 20] = [
    "Ana", "Ben", "Chiara", "Dmitri", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Lars", "Mei", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sami", "Tove",
];
pub(crate) const PILLARS: [&str; 3] = ["trust", "empowerment", "professionalism"];
pub(crate) const ACTIONS: [&str; 12] = [
    "Paired with a new teammate on their first review",
    "Explained the why behind the release checklist",
    "Handed the incident lead to someone who had never done it",
    "Tidied the shared board before stand-up",
    "Wrote down the decision from the hallway chat",
    "Checked in on a teammate after a rough on-call night",
    "Reviewed a pull request within the hour",
    "Owned up to a broken build and fixed it",
    "Delegated the demo instead of doing it myself",
    "Fixed a flaky test nobody had asked about",
    "Asked the quiet person in the meeting what they thought",
    "Updated the onboarding notes with what tripped me up",
];
const WHYS: [&str; 4] = [
    "nobody should wait a day for feedback",
    "knowledge shared is risk halved",
    "small things done well add up",
    "people grow when they own things",
];
pub(crate) const KUDOS: [&str; 8] = [
    "Thanks for the calm incident write-up",
    "Thanks for covering my on-call shift",
    "Great pairing session, I learned a lot",
    "Thanks for the patient code review",
    "Thanks for unblocking the release",
    "Lovely demo, clear and honest",
    "Thanks for taking the awkward customer call",
    "Thanks for cleaning up the test suite",
];
const EMOJI: [&str; 5] = ["🎉", "👏", "🙌", "💯", "🚀"];

const USAGE: &str = "\
cairn-bench: measure every number of ARCHITECTURE.md with the real cairn and cairn-server

Usage: cairn-bench [OPTIONS]

Options:
  --quick           small and fast, for CI: sizes 300,3000, 3 runs, 20 members, 20 clients
                    for 1 s, 4 replicas of 10 events (figures then say little)
  --sizes N,N,...   event counts to seed, e.g. 1k,10k,150k [default: 1000,10000,150000]
  --members M       members of the seeded team [default: 200]
  --runs R          timed runs of each command at each size [default: 30]
  --warmup W        untimed runs before them [default: 3]
  --seed S          seed of the generated data [default: 42]
  --cairn PATH      the cairn binary to time [default: the `cairn` next to this program]
  --json            print the results as JSON on stdout (the table goes to stderr)
  --no-sync         skip the sync rows (they need `cairn-server` next to `cairn`)
  --clients C       concurrent simulated clients in the server load rows [default: 200]
  --load-seconds S  seconds of each load phase (no-op syncs, then pushes) [default: 5]
  --no-load         skip the server load rows
  --postgres URL    also measure the server on this PostgreSQL database (postgres://...), with
                    one and with two server processes, beside SQLite; the database is shared by
                    both runs and keeps their teams
  --replicas R      replicas in the convergence row [default: 50]
  --each E          offline events each replica logs there [default: 200]
  --no-converge     skip the convergence row
  --no-web          skip the web rows (`cairn web`'s pages, rendered on the seeded replica)
  --no-relay        skip the relay rows (they need `cairn-relay` and `cairn-server` next to
                    `cairn`): kudos to chat, and an idle relay's requests over 3 minutes, which
                    are watched while the rest runs (--quick: 3 kudos, 5 s, not judged)
  --org-scale S     the organisation rows' size: full (50 teams, 2,000 people, 3 million
                    events: seeding takes a while), tenth (5 teams, 200 people, 300,000
                    events) or tiny (3 teams of 5, 300 events each; --quick) [default: full]
  --no-org          skip the organisation rows (a server holding an organisation's teams: its
                    memory, a newcomer's catch-up, a member's commands against a single team
                    of the same size, the steward's `cairn org figures`, every team active);
                    with --postgres they run on PostgreSQL too
  --keep            keep the seeded homes (their paths are printed) instead of deleting them
  -h, --help        print this help

Build the binaries first, in release mode:
  cargo build --release --workspace
  cargo run --release -p cairn-bench
";

/// The command-line options.
#[derive(Debug)]
struct Opts {
    sizes: Vec<usize>,
    runs: usize,
    warmup: usize,
    seed: u64,
    cairn: Option<PathBuf>,
    json: bool,
    keep: bool,
    sync: bool,
    members: usize,
    clients: usize,
    load_seconds: f64,
    load: bool,
    postgres: Option<String>,
    replicas: usize,
    each: usize,
    converge: bool,
    web: bool,
    relay: bool,
    /// Kudos timed to chat, and the idle relay's window (judged only when long enough).
    relay_kudos: usize,
    relay_idle: Duration,
    relay_judged: bool,
    org: bool,
    org_scale: org::Scale,
}

/// A bad command line or a failed step, with a message for the person running the bench.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            usage: true,
        }
    }
    pub(crate) fn run(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            usage: false,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let outcome = parse_args(&args).and_then(|opts| run(&opts));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("cairn-bench: {}", f.message);
            if f.usage {
                eprintln!("try `cairn-bench --help`");
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn parse_args(args: &[String]) -> Result<Opts, Failure> {
    let mut opts = Opts {
        sizes: vec![1_000, 10_000, 150_000],
        runs: 30,
        warmup: 3,
        seed: 42,
        cairn: None,
        json: false,
        keep: false,
        sync: true,
        members: 200,
        clients: 200,
        load_seconds: 5.0,
        load: true,
        postgres: None,
        replicas: 50,
        each: 200,
        converge: true,
        web: true,
        relay: true,
        relay_kudos: 20,
        relay_idle: Duration::from_secs(180),
        relay_judged: true,
        org: true,
        org_scale: org::FULL,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, Failure> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) => Ok(v),
                None => Err(Failure::usage(format!("{flag} needs a value"))),
            }
        };
        match flag {
            "--sizes" => {
                let v = value()?;
                opts.sizes = v
                    .split(',')
                    .map(|s| parse_count(s, "--sizes"))
                    .collect::<Result<_, _>>()?;
                if opts.sizes.is_empty() {
                    return Err(Failure::usage("--sizes needs at least one size"));
                }
            }
            "--runs" => opts.runs = parse_count(&value()?, "--runs")?,
            "--warmup" => {
                let v = value()?;
                opts.warmup = if v.trim() == "0" {
                    0
                } else {
                    parse_count(&v, "--warmup")?
                };
            }
            "--seed" => {
                let v = value()?;
                opts.seed = v.trim().parse().map_err(|_| {
                    Failure::usage(format!("--seed wants a whole number, not `{v}`"))
                })?;
            }
            "--cairn" => opts.cairn = Some(PathBuf::from(value()?)),
            "--org-scale" => {
                let v = value()?;
                opts.org_scale = org::Scale::parse(&v).ok_or_else(|| {
                    Failure::usage(format!("--org-scale wants full, tenth or tiny, not `{v}`"))
                })?;
            }
            "--postgres" => {
                let v = value()?;
                if !v.starts_with("postgres://") && !v.starts_with("postgresql://") {
                    return Err(Failure::usage(format!(
                        "--postgres wants a postgres:// URL, not `{v}`"
                    )));
                }
                opts.postgres = Some(v);
            }
            "--members" => opts.members = parse_count(&value()?, "--members")?.max(2),
            "--clients" => opts.clients = parse_count(&value()?, "--clients")?,
            "--replicas" => opts.replicas = parse_count(&value()?, "--replicas")?.max(2),
            "--each" => opts.each = parse_count(&value()?, "--each")?,
            "--load-seconds" => {
                let v = value()?;
                opts.load_seconds = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && *s <= 600.0)
                    .ok_or_else(|| {
                        Failure::usage(format!("--load-seconds wants 0 < S <= 600, not `{v}`"))
                    })?;
            }
            "--quick" if inline.is_none() => {
                opts.sizes = vec![300, 3_000];
                opts.runs = 3;
                opts.warmup = 1;
                opts.members = 20;
                opts.clients = 20;
                opts.load_seconds = 1.0;
                opts.replicas = 4;
                opts.each = 10;
                opts.relay_kudos = 3;
                opts.relay_idle = Duration::from_secs(5);
                opts.relay_judged = false;
                opts.org_scale = org::TINY;
            }
            "--no-org" if inline.is_none() => opts.org = false,
            "--no-load" if inline.is_none() => opts.load = false,
            "--no-converge" if inline.is_none() => opts.converge = false,
            "--no-web" if inline.is_none() => opts.web = false,
            "--no-relay" if inline.is_none() => opts.relay = false,
            "--json" if inline.is_none() => opts.json = true,
            "--keep" if inline.is_none() => opts.keep = true,
            "--no-sync" if inline.is_none() => opts.sync = false,
            "--json" | "--keep" | "--no-sync" | "--quick" | "--no-load" | "--no-converge"
            | "--no-web" | "--no-relay" | "--no-org" => {
                return Err(Failure::usage(format!("{flag} takes no value")));
            }
            other => return Err(Failure::usage(format!("unknown argument `{other}`"))),
        }
    }
    Ok(opts)
}

/// Parses a positive count such as `1000`, `100_000`, `100k` or `1m`.
fn parse_count(text: &str, flag: &str) -> Result<usize, Failure> {
    let t = text.trim().replace('_', "").to_lowercase();
    let (digits, scale) = if let Some(d) = t.strip_suffix('k') {
        (d, 1_000)
    } else if let Some(d) = t.strip_suffix('m') {
        (d, 1_000_000)
    } else {
        (t.as_str(), 1)
    };
    match digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(n) if n > 0 => Ok(n),
        _ => Err(Failure::usage(format!(
            "{flag} wants a positive whole number (like 1000 or 100k), not `{text}`"
        ))),
    }
}

/// What one size's seeding produced.
#[derive(Debug)]
struct Seeded {
    events: usize,
    seconds: f64,
    replica_bytes: u64,
    /// The handle `kudos` recognises.
    kudos_to: String,
}

/// The timings of one command at one size, in milliseconds.
#[derive(Debug)]
struct Timing {
    events: usize,
    command: &'static str,
    median: f64,
    min: f64,
    max: f64,
}

fn run(opts: &Opts) -> Result<(), Failure> {
    let cairn = match &opts.cairn {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| Failure::run(format!("cannot tell where this program is: {e}")))?
            .with_file_name(format!("cairn{}", std::env::consts::EXE_SUFFIX)),
    };
    if !cairn.is_file() {
        return Err(Failure::run(format!(
            "no cairn binary at {}; build it with `cargo build --release -p cairn-cli` or pass --cairn PATH",
            cairn.display()
        )));
    }
    let now: Timestamp = NOW.parse().expect("NOW is a valid instant");

    // The relay first, on a quiet machine; then it idles, watched, while the rest runs.
    let relay_work = Scratch {
        path: std::env::temp_dir().join(format!("cairn-bench-{}-relay", std::process::id())),
        keep: opts.keep,
    };
    let idle = if opts.relay {
        let _ = std::fs::remove_dir_all(&relay_work.path);
        std::fs::create_dir_all(&relay_work.path).map_err(|e| {
            Failure::run(format!("cannot create {}: {e}", relay_work.path.display()))
        })?;
        eprintln!(
            "relay: {} kudos to chat through a local cairn-relay, then {} s idle while the rest \
             runs",
            opts.relay_kudos,
            opts.relay_idle.as_secs()
        );
        let idle = relay::start(
            &cairn,
            &relay_work.path,
            opts.relay_kudos,
            opts.relay_idle,
            opts.relay_judged,
        )?;
        Some(idle)
    } else {
        None
    };

    let mut seeded = Vec::new();
    let mut timings = Vec::new();
    let mut syncs = Vec::new();
    let mut webs = Vec::new();
    for &size in &opts.sizes {
        let home = std::env::temp_dir().join(format!(
            "cairn-bench-{}-{size}-{}",
            std::process::id(),
            opts.seed
        ));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home)
            .map_err(|e| Failure::run(format!("cannot create {}: {e}", home.display())))?;
        let work = home.with_extension("sync");
        let result = seed(
            &home,
            size,
            opts.members,
            opts.seed,
            now,
            "Bench Otters",
            None,
        )
        .and_then(|s| {
            let mut t = time_commands(&cairn, &home, &s, opts)?;
            if opts.web {
                let w = web::measure(&cairn, &home, s.events, opts.runs, opts.warmup)?;
                t.extend(w.pages.iter().map(|p| Timing {
                    events: w.events,
                    command: p.label,
                    median: p.median,
                    min: p.min,
                    max: p.max,
                }));
                webs.push(w);
            }
            let y = if opts.sync {
                let _ = std::fs::remove_dir_all(&work);
                std::fs::create_dir_all(&work)
                    .map_err(|e| Failure::run(format!("cannot create {}: {e}", work.display())))?;
                eprintln!("{size:>7} events  sync: publishing to a local cairn-server");
                Some(sync::measure(&cairn, &home, &work, size)?)
            } else {
                None
            };
            Ok((s, t, y))
        })
        .map(|(s, t, y)| {
            seeded.push(s);
            timings.extend(t);
            syncs.extend(y);
        });
        if opts.keep {
            eprintln!("kept the seeded home at {}", home.display());
        } else {
            let _ = std::fs::remove_dir_all(&home);
            let _ = std::fs::remove_dir_all(&work);
        }
        result?;
    }

    let work = std::env::temp_dir().join(format!("cairn-bench-{}-extra", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| Failure::run(format!("cannot create {}: {e}", work.display())))?;
    let extra = (|| {
        let mut load = Vec::new();
        if opts.load {
            let mut storages = vec![load::Storage::Sqlite];
            if let Some(url) = &opts.postgres {
                for instances in [1, 2] {
                    storages.push(load::Storage::Postgres {
                        url: url.clone(),
                        instances,
                    });
                }
            }
            for storage in &storages {
                eprintln!(
                    "server load: {} clients, {} s per phase, {storage:?}",
                    opts.clients, opts.load_seconds
                );
                load.push(load::measure(
                    &cairn,
                    &work,
                    opts.clients,
                    opts.load_seconds,
                    storage,
                )?);
            }
        }
        let flood = if opts.load {
            eprintln!(
                "a member's flood: 10 devices, 4 gzip bombs in flight each, a teammate beside, \
                 {} s",
                opts.load_seconds
            );
            Some(flood::measure(&cairn, &work, opts.load_seconds)?)
        } else {
            None
        };
        let conv = if opts.converge {
            eprintln!(
                "convergence: {} replicas, {} offline events each",
                opts.replicas, opts.each
            );
            Some(converge::measure(
                &cairn,
                &work,
                opts.replicas,
                opts.each,
                opts.seed,
            )?)
        } else {
            None
        };
        Ok::<_, Failure>((load, flood, conv))
    })();
    if opts.keep {
        eprintln!("kept the load and convergence files at {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    let (load, flood, conv) = extra?;
    let mut orgs = Vec::new();
    if opts.org {
        let work = std::env::temp_dir().join(format!("cairn-bench-{}-org", std::process::id()));
        let storages: Vec<Option<&str>> = std::iter::once(None)
            .chain(opts.postgres.as_deref().map(Some))
            .collect();
        for postgres in storages {
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)
                .map_err(|e| Failure::run(format!("cannot create {}: {e}", work.display())))?;
            let measured = org::measure(&cairn, &work, opts.org_scale, opts, postgres);
            if opts.keep {
                eprintln!("kept the organisation's files at {}", work.display());
            } else {
                let _ = std::fs::remove_dir_all(&work);
            }
            orgs.push(measured?);
        }
    }
    let relay = match idle {
        Some(idle) => {
            eprintln!(
                "relay: {:.0} s left of the idle window",
                idle.left().as_secs_f64()
            );
            Some(idle.finish()?)
        }
        None => None,
    };
    drop(relay_work);
    let diverged = conv
        .as_ref()
        .is_some_and(|c| !c.identical || c.events_seen != c.replicas * c.events_each);
    let mut table = render_table(&seeded, &timings);
    table.push_str(&render_web_table(&webs));
    table.push_str(&render_sync_table(&syncs));
    table.push_str(&render_extra_table(&load, flood.as_ref(), conv.as_ref()));
    table.push_str(&org::render_table(&orgs));
    table.push_str(&render_relay_table(relay.as_ref()));
    if opts.json {
        eprint!("{table}");
        let mut json = render_json(opts, &seeded, &timings, &syncs);
        json.truncate(json.trim_end().len() - 1); // reopen the object
        json.push_str(&render_extra_json(&load, flood.as_ref(), conv.as_ref()));
        json.truncate(json.trim_end().len() - 1); // reopen the object
        json.push_str(&org::render_json(&orgs));
        json.truncate(json.trim_end().len() - 1); // reopen the object
        json.push_str(&render_relay_json(relay.as_ref()));
        print!("{json}");
    } else {
        print!("{table}");
    }
    // Timings are only reported; replicas that disagree are a bug, and fail the run.
    if diverged {
        return Err(Failure::run(
            "the replicas did not converge (see the table)",
        ));
    }
    Ok(())
}

/// A scratch directory, deleted when dropped unless `--keep` said otherwise.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.path.exists() {
            return;
        }
        if self.keep {
            eprintln!("kept the relay's files at {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// splitmix64: tiny, fast and good enough to make test data from a seed.
#[derive(Debug)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0); the bias is negligible for the small `n` used here.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }
}

/// One day of the seeded period.
#[derive(Debug)]
struct Day {
    #[cfg_attr(not(test), allow(dead_code))] // the tests check the calendar by it
    date: String,
    start_ms: i64,
    weekend: bool,
}

fn days_before(now: Timestamp) -> Vec<Day> {
    let today = now.to_zoned(TimeZone::UTC).date();
    let first: Date = today
        .checked_sub(jiff::Span::new().days(DAYS))
        .expect("two years back is a valid date");
    let mut out = Vec::with_capacity(DAYS as usize + 1);
    let mut d = first;
    while d <= today {
        let start_ms = d
            .to_zoned(TimeZone::UTC)
            .expect("midnight UTC exists")
            .timestamp()
            .as_millisecond();
        out.push(Day {
            date: d.to_string(),
            start_ms,
            weekend: matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday),
        });
        d = d.tomorrow().expect("dates before 9999 have a tomorrow");
    }
    out
}

/// A member of the seeded team.
struct Member {
    id: String,
    handle: String,
    name: String,
    tz: &'static str,
    /// The index of the day they joined.
    joined: usize,
}

/// The zones the seeded members work from.
const ZONES: [&str; 6] = [
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "UTC",
];

/// Seeds a new replica of team `team_name` in `home` with `size` events, deterministically from
/// `seed`; the team's id is `team_id` (one the server gave it), else a random one.
pub(crate) fn seed(
    home: &Path,
    size: usize,
    members_n: usize,
    seed: u64,
    now: Timestamp,
    team_name: &str,
    team_id: Option<&str>,
) -> Result<Seeded, Failure> {
    let started = Instant::now();
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::run(format!("{what}: {e}"));
    let mut rng = Rng(seed);
    let now_ms = now.as_millisecond();
    let days = days_before(now);
    let team_start = days[0].start_ms - 86_400_000;

    // The team: the founder owns the device; the others join through `change_team`, a third of
    // them at the start and the rest over the first eighteen months, each in a zone of their own.
    let members: Vec<Member> = (0..members_n)
        .map(|i| {
            let name = if i < NAMES.len() {
                NAMES[i].to_owned()
            } else {
                format!("{} {}", NAMES[i % NAMES.len()], i / NAMES.len() + 1)
            };
            let handle = name.to_lowercase().replace(' ', "-");
            let joined = if i < members_n.div_ceil(3) {
                0
            } else {
                rng.index(days.len() * 3 / 4)
            };
            Member {
                id: random_text(&rng.bytes::<16>(), 12),
                handle,
                name,
                tz: ZONES[rng.index(ZONES.len())],
                joined,
            }
        })
        .collect();
    let zones: Vec<TimeZone> = members
        .iter()
        .map(|m| TimeZone::get(m.tz).map_err(|e| fail("unknown zone", &e)))
        .collect::<Result<_, _>>()?;
    let path = home.join(REPLICA_FILE);
    let new_team = NewTeam {
        team_id: {
            let random = random_text(&rng.bytes::<16>(), 16);
            team_id.map_or(random, str::to_owned)
        },
        team_name: team_name.into(),
        tz: "UTC".into(),
        member_id: members[0].id.clone(),
        member_name: members[0].name.clone(),
        handle: members[0].handle.clone(),
        at_ms: team_start,
    };
    let mut replica =
        Replica::create(&path, &new_team).map_err(|e| fail("cannot create the replica", &e))?;
    let mut by_join: Vec<usize> = (1..members.len()).collect();
    by_join.sort_by_key(|&i| members[i].joined);
    for i in by_join {
        let m = &members[i];
        let at = days[m.joined].start_ms;
        replica
            .change_team(&members[0].id, |doc, state| {
                team::add_member(doc, state, &m.id, &m.name, Some(&m.handle), at)
            })
            .map_err(|e| fail("cannot add a member", &e))?;
    }

    // When and by whom: weekdays ten times as busy as weekends, office hours where the member
    // is, only after they joined, never after now.
    let mut slots: Vec<(i64, usize)> = Vec::with_capacity(size);
    while slots.len() < size {
        let author = rng.index(members.len());
        let day = members[author].joined + rng.index(days.len() - members[author].joined);
        if days[day].weekend && !rng.chance(0.1) {
            continue;
        }
        // 08:00-18:00 local, roughly: the zone's offset at noon UTC that day.
        let noon = days[day].start_ms + 12 * 3_600_000;
        let offset_ms = jiff::Timestamp::from_millisecond(noon)
            .map(|t| i64::from(zones[author].to_offset(t).seconds()) * 1000)
            .unwrap_or(0);
        let at = days[day].start_ms - offset_ms + 8 * 3_600_000 + rng.below(10 * 3_600_000) as i64;
        if at >= now_ms || at < days[members[author].joined].start_ms {
            continue;
        }
        slots.push((at, author));
    }
    slots.sort_unstable();

    // What: in time order, so reactions answer earlier events.
    let mut per_member: Vec<Vec<(EventId, Stamp, NewEvent)>> = vec![Vec::new(); members.len()];
    let mut reactable: Vec<(EventId, usize)> = Vec::new();
    for (at, author) in slots {
        let id = EventId::new(at, rng.bytes::<5>());
        let roll = rng.below(100);
        let pillar = |rng: &mut Rng, p: f64| {
            rng.chance(p)
                .then(|| PILLARS[rng.index(PILLARS.len())].to_owned())
        };
        let new = if roll < 5 && !reactable.is_empty() {
            // React to one of the last 200 events by someone else, if any.
            let window = reactable.len().min(200);
            let (target, target_author) = &reactable[reactable.len() - 1 - rng.index(window)];
            if *target_author == author {
                NewEvent::action(
                    ACTIONS[rng.index(ACTIONS.len())],
                    pillar(&mut rng, 0.9),
                    None,
                )
            } else {
                NewEvent::reaction(target.clone(), EMOJI[rng.index(EMOJI.len())])
            }
        } else if roll < 30 {
            // Recipients among those who had joined by then.
            let present: Vec<usize> = (0..members.len())
                .filter(|&m| m != author && days[members[m].joined].start_ms <= at)
                .collect();
            let wanted = if rng.chance(0.3) { 2 } else { 1 };
            let mut to = Vec::with_capacity(2);
            while to.len() < wanted.min(present.len()) {
                let m = present[rng.index(present.len())];
                if !to.contains(&members[m].id) {
                    to.push(members[m].id.clone());
                }
            }
            if to.is_empty() {
                // Nobody else around yet: the founder.
                to.push(members[if author == 0 { 1 } else { 0 }].id.clone());
            }
            NewEvent::kudos(to, KUDOS[rng.index(KUDOS.len())], pillar(&mut rng, 0.5))
        } else {
            let why = rng
                .chance(0.2)
                .then(|| WHYS[rng.index(WHYS.len())].to_owned());
            NewEvent::action(
                ACTIONS[rng.index(ACTIONS.len())],
                pillar(&mut rng, 0.9),
                why,
            )
        };
        if new.target.is_none() {
            reactable.push((id.clone(), author));
        }
        let local = jiff::Timestamp::from_millisecond(at)
            .map(|t| t.to_zoned(zones[author].clone()).date().to_string())
            .unwrap_or_default();
        let stamp = Stamp {
            at_ms: at,
            tz: members[author].tz.to_owned(),
            date: local,
            late: false,
        };
        per_member[author].push((id, stamp, new));
    }
    let generated = started.elapsed();

    let progress = std::io::stderr().is_terminal();
    let mut written = 0;
    for (i, batch) in per_member.iter().enumerate() {
        replica
            .add_events(&members[i].id, batch)
            .map_err(|e| fail("cannot add events", &e))?;
        written += batch.len();
        let line = format!(
            "seeding {size} events: {written} written, member {}/{} ({:.1} s)",
            i + 1,
            members.len(),
            started.elapsed().as_secs_f64()
        );
        if progress {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else if (i + 1) % 5 == 0 || i + 1 == members.len() {
            eprintln!("{line}");
        }
    }
    if progress {
        eprintln!();
    }
    let stats = replica
        .stats()
        .map_err(|e| fail("cannot read the replica's stats", &e))?;
    drop(replica);
    let seconds = started.elapsed().as_secs_f64();
    let replica_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "seeded {size} events in {seconds:.1} s (generating {:.1} s): {} events, {} docs, \
         {} outbox entries, {:.1} MB",
        generated.as_secs_f64(),
        stats.events,
        stats.docs,
        stats.outbox,
        replica_bytes as f64 / 1e6,
    );
    Ok(Seeded {
        events: size,
        seconds,
        replica_bytes,
        kudos_to: members[1].handle.clone(),
    })
}

/// Times `log`, `kudos` and `feed` on the replica in `home`.
fn time_commands(
    cairn: &Path,
    home: &Path,
    seeded: &Seeded,
    opts: &Opts,
) -> Result<Vec<Timing>, Failure> {
    let kudos_to = format!("@{}", seeded.kudos_to);
    let mut out = Vec::new();
    for name in ["log", "kudos", "feed", "streaks"] {
        let (median, min, max) = time_runs(cairn, home, opts.runs, opts.warmup, |n| match name {
            "log" => vec![
                "log".into(),
                format!("bench action {n}"),
                "--pillar".into(),
                "trust".into(),
            ],
            "kudos" => vec!["kudos".into(), kudos_to.clone(), format!("thanks {n}")],
            "feed" => vec!["feed".into(), "--limit".into(), "50".into()],
            _ => vec!["streaks".into()],
        })?;
        eprintln!(
            "{:>7} events  {name:<5}  median {median:.2} ms",
            seeded.events
        );
        out.push(Timing {
            events: seeded.events,
            command: name,
            median,
            min,
            max,
        });
    }
    Ok(out)
}

/// Times whole-process runs of `cairn` in `home` (`CAIRN_NOW` pinned), `args(n)` giving the
/// arguments of run `n`: median, min and max of `runs` after `warmup`, in milliseconds.
pub(crate) fn time_runs(
    cairn: &Path,
    home: &Path,
    runs: usize,
    warmup: usize,
    args: impl Fn(usize) -> Vec<String>,
) -> Result<(f64, f64, f64), Failure> {
    let mut samples = Vec::with_capacity(runs);
    for n in 0..warmup + runs {
        let args = args(n);
        let started = Instant::now();
        let status = Command::new(cairn)
            .args(&args)
            .env("CAIRN_HOME", home)
            .env("CAIRN_NOW", NOW)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| Failure::run(format!("cannot run {}: {e}", cairn.display())))?;
        let took = started.elapsed();
        if !status.success() {
            return Err(Failure::run(format!(
                "`cairn {}` failed ({status}) in {}",
                args.join(" "),
                home.display()
            )));
        }
        if n >= warmup {
            samples.push(took);
        }
    }
    Ok(summarize(&mut samples))
}

/// Median, min and max of `samples`, in milliseconds.
pub(crate) fn summarize(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = samples.len();
    let median = if n % 2 == 1 {
        ms(samples[n / 2])
    } else {
        (ms(samples[n / 2 - 1]) + ms(samples[n / 2])) / 2.0
    };
    (median, ms(samples[0]), ms(samples[n - 1]))
}

/// The `log` medians at the smallest and the largest size, and their ratio.
fn log_ratio(timings: &[Timing]) -> Option<(f64, f64, f64)> {
    let logs: Vec<&Timing> = timings.iter().filter(|t| t.command == "log").collect();
    let small = logs.iter().min_by_key(|t| t.events)?;
    let large = logs.iter().max_by_key(|t| t.events)?;
    if small.events == large.events {
        return None;
    }
    Some((small.median, large.median, large.median / small.median))
}

fn render_table(seeded: &[Seeded], timings: &[Timing]) -> String {
    let mut s = String::new();
    for sd in seeded {
        let _ = writeln!(
            s,
            "seeded {} events in {:.1} s ({:.1} MB)",
            sd.events,
            sd.seconds,
            sd.replica_bytes as f64 / 1e6
        );
    }
    let _ = writeln!(
        s,
        "\n{:>8}  {:<11}  {:>9}  {:>8}  {:>8}",
        "events", "command", "median ms", "min ms", "max ms"
    );
    for t in timings {
        let _ = writeln!(
            s,
            "{:>8}  {:<11}  {:>9.2}  {:>8.2}  {:>8.2}",
            t.events, t.command, t.median, t.min, t.max
        );
    }
    let worst_log = timings
        .iter()
        .filter(|t| t.command == "log")
        .map(|t| t.median)
        .fold(0.0, f64::max);
    let _ = writeln!(s);
    match log_ratio(timings) {
        Some((small, large, ratio)) => {
            let _ = writeln!(
                s,
                "log median, largest / smallest size: {large:.2} / {small:.2} ms = {ratio:.2}x \
                 (target: within 1.5x) {}",
                verdict(ratio <= 1.5)
            );
        }
        None => {
            let _ = writeln!(s, "log ratio: needs two different sizes");
        }
    }
    let _ = writeln!(
        s,
        "log median, slowest size: {worst_log:.2} ms (target: under 15 ms) {}",
        verdict(worst_log < 15.0)
    );
    // feed and streaks, at the largest size.
    let largest = timings.iter().map(|t| t.events).max().unwrap_or(0);
    for (cmd, target) in [("kudos", 15.0), ("feed", 20.0), ("streaks", 50.0)] {
        if let Some(t) = timings
            .iter()
            .find(|t| t.command == cmd && t.events == largest)
        {
            let _ = writeln!(
                s,
                "{cmd} median at {largest} events: {:.2} ms (target: under {target} ms) {}",
                t.median,
                verdict(t.median < target)
            );
        }
    }
    s
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// The results as JSON, written by hand: every value is a number or a plain ASCII word.
fn render_json(
    opts: &Opts,
    seeded: &[Seeded],
    timings: &[Timing],
    syncs: &[sync::SyncFigures],
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\n  \"now\": \"{NOW}\",\n  \"seed\": {},\n  \"runs\": {},\n  \"warmup\": {},\n  \"seeded\": [",
        opts.seed, opts.runs, opts.warmup
    );
    for (i, sd) in seeded.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            s,
            "{sep}\n    {{\"events\": {}, \"seconds\": {:.3}, \"replica_bytes\": {}}}",
            sd.events, sd.seconds, sd.replica_bytes
        );
    }
    s.push_str("\n  ],\n  \"results\": [");
    for (i, t) in timings.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            s,
            "{sep}\n    {{\"events\": {}, \"command\": \"{}\", \"median_ms\": {:.3}, \
             \"min_ms\": {:.3}, \"max_ms\": {:.3}}}",
            t.events, t.command, t.median, t.min, t.max
        );
    }
    s.push_str("\n  ],\n");
    match log_ratio(timings) {
        Some((_, _, ratio)) => {
            let _ = writeln!(s, "  \"log_ratio\": {ratio:.3},");
        }
        None => s.push_str("  \"log_ratio\": null,\n"),
    }
    s.push_str("  \"sync\": [");
    for (i, y) in syncs.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let new: Vec<String> = y
            .new_events
            .iter()
            .map(|(k, own, up, req)| {
                format!("{{\"k\": {k}, \"change_bytes\": {own}, \"bytes_up\": {up}, \"requests\": {req}}}")
            })
            .collect();
        let _ = write!(
            s,
            "{sep}\n    {{\"events\": {}, \"publish_seconds\": {:.3}, \"publish_changes\": {}, \
             \"publish_bytes\": {}, \"noop_requests\": {}, \"noop_bytes\": {}, \"new_events\": [{}], \
             \"join_seconds\": {:.3}, \"join_changes\": {}, \"join_bytes\": {}, \"join_requests\": {}, \
             \"join_docs\": {}, \"join_wire_bytes\": {}, \"compact_seconds\": {:.3}, \
             \"log_bytes\": {}, \"snapshot_bytes\": {}, \"pruned_log_bytes\": {}, \
             \"pruned_snapshot_bytes\": {}, \"behind\": {}}}",
            y.events,
            y.publish_secs,
            y.publish_changes,
            y.publish_bytes,
            y.noop_requests,
            y.noop_bytes,
            new.join(", "),
            y.join_secs,
            y.join_changes,
            y.join_bytes,
            y.join_requests,
            y.join_docs,
            y.join_wire,
            y.compact_secs,
            y.log_bytes,
            y.snapshot_bytes,
            y.pruned_log_bytes,
            y.pruned_snapshot_bytes,
            y.behind.as_ref().map_or("null".to_owned(), |b| format!(
                "{{\"entries\": {}, \"seconds\": {:.3}, \"docs\": {}, \"changes\": {}, \
                 \"wire_bytes\": {}}}",
                b.entries, b.secs, b.docs, b.changes, b.wire
            )),
        );
    }
    s.push_str("\n  ],\n");
    s.push_str(
        "  \"targets\": {\"log_ratio_max\": 1.5, \"log_median_ms_max\": 15, \"noop_sync_bytes_max\": 2000, \
         \"new_events_bytes_ratio_max\": 2, \"join_seconds_max\": 10}\n}\n",
    );
    s
}

/// The web pages at the largest size: the slowest render and the feed page's size.
fn render_web_table(webs: &[web::WebFigures]) -> String {
    let mut s = String::new();
    let Some(w) = webs.iter().max_by_key(|w| w.events) else {
        return s;
    };
    let Some(slowest) = w.pages.iter().max_by(|a, b| a.median.total_cmp(&b.median)) else {
        return s;
    };
    let coldest = w
        .pages
        .iter()
        .max_by(|a, b| a.cold.total_cmp(&b.cold))
        .unwrap_or(slowest);
    let _ = writeln!(
        s,
        "web pages at {} events, rendered by the server (median of each page): slowest {} {:.2} ms \
         (target: every page under 50 ms) {}; right after another process wrote: slowest {} \
         {:.2} ms {}",
        w.events,
        slowest.path,
        slowest.median,
        verdict(slowest.median < 50.0),
        coldest.path,
        coldest.cold,
        verdict(coldest.cold < 50.0)
    );
    if let Some(feed) = w.pages.iter().find(|p| p.path == "/feed") {
        let _ = writeln!(
            s,
            "web feed page at {} events: {:.1} KB (target: under 100 KB) {}",
            w.events,
            feed.bytes as f64 / 1e3,
            verdict(feed.bytes < 100_000)
        );
    }
    s
}

fn render_extra_table(
    load: &[load::LoadFigures],
    flood: Option<&flood::FloodFigures>,
    conv: Option<&converge::ConvergeFigures>,
) -> String {
    let mut s = String::new();
    for l in load {
        let rss = l
            .rss_peak_mb
            .map_or_else(|| "unknown".to_owned(), |m| format!("{m:.0} MB"));
        // A phase with failed requests proves nothing about speed.
        let clean = l.errors == 0;
        let _ = writeln!(
            s,
            "\nserver on {}, {} concurrent clients on loopback, {} s per phase ({} errors):",
            l.label, l.clients, l.seconds, l.errors
        );
        let _ = writeln!(
            s,
            "  capacity, every client flat out: {:.0} no-op syncs/s (target: 2,000) {}, \
             {:.0} pushes/s (target: 500) {}",
            l.noop_per_s,
            verdict(clean && l.noop_per_s >= 2_000.0),
            l.push_per_s,
            verdict(clean && l.push_per_s >= 500.0)
        );
        let _ = writeln!(
            s,
            "  at {:.0} no-op syncs/s: p50 {:.1} ms, p99 {:.1} ms (target: p99 under 50 ms) {}",
            l.noop_rate,
            l.noop_p50_ms,
            l.noop_p99_ms,
            verdict(clean && l.noop_rate > 0.0 && l.noop_p99_ms < 50.0)
        );
        let _ = writeln!(
            s,
            "  at {:.0} pushes/s:      p50 {:.1} ms, p99 {:.1} ms (target: p99 under 50 ms) {}",
            l.push_rate,
            l.push_p50_ms,
            l.push_p99_ms,
            verdict(clean && l.push_rate > 0.0 && l.push_p99_ms < 50.0)
        );
        let _ = writeln!(
            s,
            "  server peak RSS: {rss} (target: under 200 MB) {}",
            verdict(l.rss_peak_mb.is_some_and(|m| m < 200.0))
        );
    }
    if let Some(f) = flood {
        let answers: Vec<String> = f
            .answers
            .iter()
            .map(|(status, n)| format!("{n} x {status}"))
            .collect();
        let _ = writeln!(
            s,
            "\na member's flood, server at its defaults ({} s; {} bombs of {} B, answered {}):",
            f.seconds,
            f.bombs,
            f.bomb_bytes,
            answers.join(", ")
        );
        let _ = writeln!(
            s,
            "  a teammate's no-op sync, nobody else on: p50 {:.1} ms, p99 {:.1} ms",
            f.quiet_p50_ms, f.quiet_p99_ms
        );
        let _ = writeln!(
            s,
            "  through the flood ({} syncs, {} errors): p50 {:.1} ms, p99 {:.1} ms \
             (target: p99 under 50 ms) {}",
            f.flood_syncs,
            f.errors,
            f.flood_p50_ms,
            f.flood_p99_ms,
            verdict(f.errors == 0 && f.flood_syncs > 0 && f.flood_p99_ms < 50.0)
        );
        let cpu = f
            .cpu_cores
            .map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2} cores"));
        let rss = f
            .rss_peak_mb
            .map_or_else(|| "unknown".to_owned(), |m| format!("{m:.0} MB"));
        let _ = writeln!(s, "  server during the flood: {cpu}, peak RSS {rss}");
    }
    if let Some(c) = conv {
        let _ = writeln!(
            s,
            "\nconvergence: {} replicas x {} offline events, two rounds of syncs in a random order \
             ({:.1} s): {} events in every feed, feeds and teams {} (target: identical) {}",
            c.replicas,
            c.events_each,
            c.sync_seconds,
            c.events_seen,
            if c.identical { "identical" } else { "DIFFER" },
            verdict(c.identical && c.events_seen == c.replicas * c.events_each)
        );
    }
    s
}

fn render_extra_json(
    load: &[load::LoadFigures],
    flood: Option<&flood::FloodFigures>,
    conv: Option<&converge::ConvergeFigures>,
) -> String {
    let mut s = String::new();
    s.push_str(",\n  \"load\": [");
    for (i, l) in load.iter().enumerate() {
        {
            let rss = l
                .rss_peak_mb
                .map_or_else(|| "null".to_owned(), |m| format!("{m:.1}"));
            let _ = write!(
                s,
                "{}\n    {{\"storage\": {:?}, \"clients\": {}, \"seconds\": {}, \"noop_per_s\": {:.1}, \
                 \"push_per_s\": {:.1}, \"noop_rate\": {:.1}, \"noop_p50_ms\": {:.3}, \
                 \"noop_p99_ms\": {:.3}, \"push_rate\": {:.1}, \"push_p50_ms\": {:.3}, \
                 \"push_p99_ms\": {:.3}, \"errors\": {}, \"rss_peak_mb\": {rss}}}",
                if i == 0 { "" } else { "," },
                l.label,
                l.clients,
                l.seconds,
                l.noop_per_s,
                l.push_per_s,
                l.noop_rate,
                l.noop_p50_ms,
                l.noop_p99_ms,
                l.push_rate,
                l.push_p50_ms,
                l.push_p99_ms,
                l.errors
            );
        }
    }
    s.push_str("\n  ]");
    match flood {
        Some(f) => {
            let _ = write!(
                s,
                ",\n  \"flood\": {{\"seconds\": {}, \"bombs\": {}, \"bomb_bytes\": {}, \
                 \"quiet_p50_ms\": {:.3}, \"quiet_p99_ms\": {:.3}, \"flood_p50_ms\": {:.3}, \
                 \"flood_p99_ms\": {:.3}, \"flood_syncs\": {}, \"errors\": {}, \
                 \"cpu_cores\": {}, \"rss_peak_mb\": {}}}",
                f.seconds,
                f.bombs,
                f.bomb_bytes,
                f.quiet_p50_ms,
                f.quiet_p99_ms,
                f.flood_p50_ms,
                f.flood_p99_ms,
                f.flood_syncs,
                f.errors,
                f.cpu_cores
                    .map_or_else(|| "null".to_owned(), |c| format!("{c:.3}")),
                f.rss_peak_mb
                    .map_or_else(|| "null".to_owned(), |m| format!("{m:.1}"))
            );
        }
        None => s.push_str(",\n  \"flood\": null"),
    }
    match conv {
        Some(c) => {
            let _ = write!(
                s,
                ",\n  \"convergence\": {{\"replicas\": {}, \"events_each\": {}, \"events_seen\": {}, \
                 \"identical\": {}, \"sync_seconds\": {:.3}}}",
                c.replicas, c.events_each, c.events_seen, c.identical, c.sync_seconds
            );
        }
        None => s.push_str(",\n  \"convergence\": null"),
    }
    s.push_str("\n}\n");
    s
}

/// The relay rows: kudos to chat, and the idle relay's requests to the server.
fn render_relay_table(relay: Option<&relay::RelayFigures>) -> String {
    let mut s = String::new();
    let Some(r) = relay else {
        return s;
    };
    // Below zero: the relay had posted before the author's `cairn sync` process had exited.
    let early = if r.latencies_ms.iter().any(|ms| *ms < 0.0) {
        "; below zero: posted before the author's `cairn sync` had exited"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "\nkudos to chat (cairn-relay waiting at a local cairn-server, posting to a local webhook): \
         median {:.1} ms, max {:.1} ms over {} kudos, from the end of the author's sync to the \
         post's arrival{early} (target: under 5 s) {}",
        r.median_ms,
        r.max_ms,
        r.latencies_ms.len(),
        verdict(!r.latencies_ms.is_empty() && r.max_ms < 5_000.0)
    );
    let by: Vec<String> = r
        .idle_requests
        .iter()
        .map(|(line, n)| format!("{n} x {line}"))
        .collect();
    let mut what = if by.is_empty() {
        "none".to_owned()
    } else {
        by.join(", ")
    };
    if let Some(gap) = r.idle_spacing_s {
        let _ = write!(what, ", {gap:.1} s apart");
    }
    if r.judged {
        let _ = writeln!(
            s,
            "idle relay: {:.1} requests/min to the server over {:.0} s ({what}) (target: at most \
             1) {}",
            r.idle_per_minute(),
            r.idle_seconds,
            verdict(r.idle_per_minute() <= 1.0)
        );
    } else {
        let _ = writeln!(
            s,
            "idle relay: {} request(s) to the server in {:.0} s ({what}) (not judged: too short a \
             window; a full run watches 180 s)",
            r.idle_total(),
            r.idle_seconds
        );
    }
    s
}

/// The relay rows as the JSON's last member, closing the object.
fn render_relay_json(relay: Option<&relay::RelayFigures>) -> String {
    let Some(r) = relay else {
        return ",\n  \"relay\": null\n}\n".to_owned();
    };
    let latencies: Vec<String> = r.latencies_ms.iter().map(|ms| format!("{ms:.1}")).collect();
    let by: Vec<String> = r
        .idle_requests
        .iter()
        .map(|(line, n)| {
            format!(
                "{}: {n}",
                serde_json::to_string(line).unwrap_or_else(|_| "\"?\"".to_owned())
            )
        })
        .collect();
    format!(
        ",\n  \"relay\": {{\"kudos\": {}, \"median_ms\": {:.1}, \"max_ms\": {:.1}, \
         \"latencies_ms\": [{}], \"idle_seconds\": {:.1}, \"idle_requests\": {}, \
         \"idle_per_minute\": {:.3}, \"idle_spacing_s\": {}, \"idle_by_request\": {{{}}}, \
         \"idle_judged\": {}, \
         \"targets\": {{\"kudos_ms_max\": 5000, \"idle_per_minute_max\": 1}}}}\n}}\n",
        r.latencies_ms.len(),
        r.median_ms,
        r.max_ms,
        latencies.join(", "),
        r.idle_seconds,
        r.idle_total(),
        r.idle_per_minute(),
        r.idle_spacing_s
            .map_or_else(|| "null".to_owned(), |g| format!("{g:.3}")),
        by.join(", "),
        r.judged
    )
}

/// The sync rows: body bytes as the client counted them (HTTP headers not included).
fn render_sync_table(syncs: &[sync::SyncFigures]) -> String {
    let mut s = String::new();
    for y in syncs {
        let _ = writeln!(
            s,
            "\nsync at {} events (a cairn-server on loopback):",
            y.events
        );
        let _ = writeln!(
            s,
            "  publish the whole history: {} changes, {:.1} MB up, {:.2} s",
            y.publish_changes,
            y.publish_bytes as f64 / 1e6,
            y.publish_secs
        );
        let _ = writeln!(
            s,
            "  nothing new: {} request(s), {} B of bodies (target: one request, under 2 KB) {}",
            y.noop_requests,
            y.noop_bytes,
            verdict(y.noop_requests == 1 && y.noop_bytes < 2_000)
        );
        for (k, own, up, req) in &y.new_events {
            let ratio = *up as f64 / (*own).max(1) as f64;
            let _ = writeln!(
                s,
                "  {k} new event(s): changes {own} B, sent {up} B in {req} request(s) = {ratio:.2}x \
                 (target: within 2x) {}",
                verdict(ratio <= 2.0)
            );
        }
        let _ = writeln!(
            s,
            "  the server kept its snapshots {:.2} s after the publication; at the end it stores \
             {:.1} MB of log and {:.1} MB of snapshots",
            y.compact_secs,
            y.log_bytes as f64 / 1e6,
            y.snapshot_bytes as f64 / 1e6,
        );
        let stored = y.pruned_log_bytes + y.pruned_snapshot_bytes;
        let ratio = stored as f64 / y.pruned_snapshot_bytes.max(1) as f64;
        let _ = writeln!(
            s,
            "  pruned: {:.1} MB of log and {:.1} MB of snapshots (the compacted documents) = \
             {ratio:.2}x (target: at most 1.5x) {}",
            y.pruned_log_bytes as f64 / 1e6,
            y.pruned_snapshot_bytes as f64 / 1e6,
            verdict(ratio <= 1.5)
        );
        if let Some(b) = &y.behind {
            let _ = writeln!(
                s,
                "  a device {} entries behind (the last eighth, ~90 days): {} documents and {} \
                 changes, {:.1} MB on the wire, {:.2} s (target: under 1 s) {}",
                b.entries,
                b.docs,
                b.changes,
                b.wire as f64 / 1e6,
                b.secs,
                verdict(b.secs < 1.0)
            );
        }
        let target = if y.events >= 100_000 { 2.0 } else { 0.3 };
        let _ = writeln!(
            s,
            "  a new device catches up: {} documents and {} changes, {:.1} MB of bodies, \
             {:.1} MB on the wire in {} requests, median {:.2} s of {} devices (target: under \
             {target} s, 12 MB) {}",
            y.join_docs,
            y.join_changes,
            y.join_bytes as f64 / 1e6,
            y.join_wire as f64 / 1e6,
            y.join_requests,
            y.join_secs,
            sync::NEW_DEVICES,
            verdict(y.join_secs < target && y.join_wire < 12_000_000)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let o = parse_args(&args(&["--sizes", "1k,100_000", "--runs=5", "--json"])).unwrap();
        assert_eq!(o.sizes, [1_000, 100_000]);
        assert_eq!(o.runs, 5);
        assert!(o.json);
        assert!(parse_args(&args(&["--runs", "0"])).is_err());
        assert!(parse_args(&args(&["--sizes", "10,x"])).is_err());
        assert!(parse_args(&args(&["--seed"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
        assert!(!parse_args(&args(&["--no-relay"])).unwrap().relay);
        assert!(parse_args(&args(&["--no-relay=1"])).is_err());
        let quick = parse_args(&args(&["--quick"])).unwrap();
        assert!(quick.relay && !quick.relay_judged);
        assert_eq!(quick.org_scale, org::TINY);
        assert!(!parse_args(&args(&["--no-org"])).unwrap().org);
        assert!(parse_args(&args(&["--org-scale", "huge"])).is_err());
    }

    #[test]
    fn the_generator_is_deterministic() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        assert_eq!(a.bytes::<16>(), b.bytes::<16>());
        assert!((0..1000).all(|_| a.below(10) < 10));
    }

    #[test]
    fn medians_of_even_and_odd_counts() {
        let ms = Duration::from_millis;
        assert_eq!(summarize(&mut [ms(3), ms(1), ms(2)]), (2.0, 1.0, 3.0));
        assert_eq!(
            summarize(&mut [ms(4), ms(1), ms(2), ms(3)]),
            (2.5, 1.0, 4.0)
        );
    }

    #[test]
    fn two_years_of_days_end_today() {
        let days = days_before(NOW.parse().unwrap());
        assert_eq!(days.len(), DAYS as usize + 1);
        assert_eq!(days.last().unwrap().date, "2026-11-23");
        assert!(!days.last().unwrap().weekend);
    }
}
