//! The organisation rows: one `cairn-server` holding an organisation of many teams, each with
//! two years of history, and what that costs a member, a newcomer, a steward and the server.
//!
//! Seeding, the fastest honest way: each team's replica is seeded through the store's own write
//! path ([`crate::seed`], as the single-team rows do) under a name of its own, then brought onto
//! the server with a real `cairn publish` into a team the admin attached to the organisation.
//! The founder of the first team is named steward and writes a few non-negotiables with
//! `cairn org add`. Every team's founder gives kudos across teams spread over the two years
//! (through [`cairn_client::across::give`], the call `cairn kudos @ben@team-02` makes, the clock
//! set to each day), and every other team shares its weekly figures (`cairn team share weekly`,
//! then the figures of the whole two years written as the team's syncs over that time would
//! have, with [`cairn_client::shared::publish`]); a real `cairn sync` sends it all. One more team
//! of the same size, attached to no organisation, is the single team to compare with.
//!
//! Then, on a server started again on that database: a newcomer's catch-up (`cairn join` and
//! `cairn sync`, whole processes) in a team of the organisation and in the single team; `cairn
//! log`, `kudos`, `feed` and `streaks` on both newcomers' homes (the same timing as the
//! single-team rows); `cairn org figures --json` on the steward's home; and every team active
//! at once: devices of every team doing no-op syncs of their team's log and of the
//! organisation's, then pushes, flat out, with the server's resident memory after the seeding
//! and its peak.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn_client::across;
use cairn_client::write::Clock;
use cairn_core::across::Person;
use cairn_protocol::{JoinRequest, JoinResponse};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::load::{Client, agent, percentile, phase, post, rss_now_mb, rss_peak_mb};
use crate::sync::{admin, cairn_json, cairn_json_now, server_bin, start_server};
use crate::{Failure, NOW, Rng, Timing};

/// How big an organisation to seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub name: &'static str,
    pub teams: usize,
    pub people: usize,
    pub events: usize,
}

/// Issue 27's organisation: 50 teams, 2,000 people, two years, 3 million events.
pub const FULL: Scale = Scale {
    name: "full",
    teams: 50,
    people: 2_000,
    events: 3_000_000,
};
/// A tenth of it in people and events, five teams.
pub const TENTH: Scale = Scale {
    name: "tenth",
    teams: 5,
    people: 200,
    events: 300_000,
};
/// For `--quick`: three teams of five, a few hundred events each.
pub const TINY: Scale = Scale {
    name: "tiny",
    teams: 3,
    people: 15,
    events: 900,
};

impl Scale {
    /// `full`, `tenth` or `tiny`.
    pub fn parse(text: &str) -> Option<Scale> {
        [FULL, TENTH, TINY]
            .into_iter()
            .find(|s| s.name == text.trim())
    }

    fn members(&self) -> usize {
        (self.people / self.teams).max(2)
    }

    fn events_each(&self) -> usize {
        (self.events / self.teams).max(1)
    }

    /// Kudos across teams each team's founder gives over the two years: about one in two
    /// hundred of the team's events, at least a few.
    fn across_each(&self) -> usize {
        (self.events_each() / 200).clamp(4, 300)
    }
}

/// A newcomer's catch-up: `cairn join` (the team's history and the organisation's log), then
/// `cairn sync`; medians of [`NEWCOMERS`], what came down the first one's.
#[derive(Debug, Default)]
pub struct CatchUp {
    pub join_secs: f64,
    pub sync_secs: f64,
    pub total_secs: f64,
    pub docs: u64,
    pub bytes_down: u64,
}

/// Every team active at once.
#[derive(Debug, Default)]
pub struct OrgLoad {
    /// Devices, spread over the teams; each syncs its team's log and the organisation's.
    pub devices: usize,
    pub seconds: f64,
    pub noop_per_s: f64,
    pub noop_p50_ms: f64,
    pub noop_p99_ms: f64,
    pub push_per_s: f64,
    pub push_p50_ms: f64,
    pub push_p99_ms: f64,
    pub errors: usize,
}

/// What the organisation rows measured.
#[derive(Debug)]
pub struct OrgFigures {
    pub storage: String,
    pub scale: Scale,
    pub teams: usize,
    pub people: usize,
    pub events: usize,
    pub across: usize,
    pub sharing: usize,
    pub non_negotiables: usize,
    /// The whole seeding (generation, publications, the organisation's documents).
    pub seed_secs: f64,
    /// Of it, the `cairn publish` processes together.
    pub publish_secs: f64,
    /// The organisation's log: entries; the server's database file (SQLite only).
    pub org_changes: u64,
    pub db_bytes: Option<u64>,
    /// Peak resident memory of the server that took the seeding.
    pub rss_seeding_mb: Option<f64>,
    /// The server started again on the seeded database: resident memory once the steward
    /// and the newcomers have synced.
    pub rss_rest_mb: Option<f64>,
    /// Its peak, at the end of every phase (the load included).
    pub rss_peak_mb: Option<f64>,
    pub catch_up: CatchUp,
    pub solo_catch_up: CatchUp,
    /// `log`, `kudos`, `feed`, `streaks` on a newcomer's home in the organisation, and in the
    /// single team of the same size.
    pub member: Vec<Timing>,
    pub solo: Vec<Timing>,
    /// `cairn org figures --json` on the steward's home: median, min, max in ms.
    pub figures_ms: (f64, f64, f64),
    /// Teams that view lists, and of them those whose figures of its week it shows.
    pub figures_teams: usize,
    pub figures_shared: usize,
    pub load: Option<OrgLoad>,
}

impl OrgFigures {
    /// The median of `command` on the member's home over the single team's.
    pub fn ratio(&self, command: &str) -> Option<(f64, f64, f64)> {
        let m = self.member.iter().find(|t| t.command == command)?;
        let s = self.solo.iter().find(|t| t.command == command)?;
        Some((m.median, s.median, m.median / s.median))
    }
}

/// Newcomers timed in each catch-up row.
pub const NEWCOMERS: usize = 3;
/// Non-negotiables the steward writes.
const NON_NEGOTIABLES: [(&str, &str); 3] = [
    (
        "Nobody is blamed for an incident",
        "people tell the truth only when it is safe to",
    ),
    (
        "Every change is reviewed by someone else",
        "two pairs of eyes catch what one misses",
    ),
    (
        "Decisions are written down where the team can find them",
        "a decision nobody can find is made again",
    ),
];
/// Eight weeks, the window each sync of a sharing team writes.
const EIGHT_WEEKS_MS: i64 = 56 * 86_400_000;

/// A seeded team of the organisation.
struct Team {
    name: String,
    home: PathBuf,
    shares: bool,
}

fn mkdir(path: &Path) -> Result<(), Failure> {
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path)
        .map_err(|e| Failure::run(format!("cannot create {}: {e}", path.display())))
}

/// Where the server keeps its data: a SQLite file in `work`, or a PostgreSQL URL.
fn database(work: &Path, postgres: Option<&str>) -> std::ffi::OsString {
    match postgres {
        Some(url) => url.into(),
        None => work.join("org.sqlite3").into_os_string(),
    }
}

/// Seeds and measures the organisation at `scale` in `work` (on PostgreSQL at `postgres` if
/// given, which keeps what it stores: names carry this run's id).
pub fn measure(
    cairn: &Path,
    work: &Path,
    scale: Scale,
    opts: &crate::Opts,
    postgres: Option<&str>,
) -> Result<OrgFigures, Failure> {
    let bin = server_bin(cairn);
    if !bin.is_file() {
        return Err(Failure::run(format!(
            "no cairn-server at {}; build it with `cargo build --release -p cairn-server`",
            bin.display()
        )));
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::run(format!("{what}: {e}"));
    let db = database(work, postgres);
    let tag = if postgres.is_some() {
        format!(" {}", std::process::id())
    } else {
        String::new()
    };
    let now: Timestamp = NOW.parse().expect("NOW is a valid instant");
    let started = Instant::now();
    let (server, url) = start_server(&bin, &db)?;
    let org = admin(&bin, &db, &["org", "create", &format!("Bench Org{tag}")])?;

    // Every team: seeded, then published into a team the admin attached to the organisation.
    let mut teams: Vec<Team> = Vec::with_capacity(scale.teams);
    let mut publish_secs = 0.0;
    for i in 0..scale.teams {
        let name = format!("Team {:02}{tag}", i + 1);
        let home = work.join(format!("team-{i}"));
        mkdir(&home)?;
        eprintln!(
            "organisation: seeding {name} ({}/{}), {} events, {} members",
            i + 1,
            scale.teams,
            scale.events_each(),
            scale.members()
        );
        // The team on the server first, so that the seeded replica carries the server's id
        // (a team brought on with `cairn publish` keeps the id `cairn init` gave it, and the
        // server then refuses what it writes into the organisation's log: see the README).
        let created: serde_json::Value = serde_json::from_str(&admin(
            &bin,
            &db,
            &["team", "create", &name, "--org", &org, "--json"],
        )?)
        .map_err(|e| fail("`team create --json` printed no JSON", &e))?;
        crate::seed(
            &home,
            scale.events_each(),
            scale.members(),
            opts.seed.wrapping_add(i as u64),
            now,
            &name,
            created["id"].as_str(),
        )?;
        // No sync started in the background after a write: the bench runs the syncs.
        cairn_json(cairn, &home, &["config", "set", "auto-sync", "false"])?;
        let founder = created["founder_invite"].as_str().unwrap_or_default();
        let at = Instant::now();
        // The steward's team a little earlier, so that its next sync asks the server again
        // what its device may do in the organisation (the clock is pinned).
        let when = if i == 0 {
            (now - jiff::SignedDuration::from_hours(1)).to_string()
        } else {
            NOW.to_owned()
        };
        cairn_json_now(cairn, &home, &when, &["publish", &url, "--invite", founder])?;
        publish_secs += at.elapsed().as_secs_f64();
        if i == 0 {
            let handle = crate::NAMES[0].to_lowercase();
            admin(
                &bin,
                &db,
                &[
                    "org",
                    "steward",
                    "add",
                    &org,
                    "--member",
                    &format!("{name}:@{handle}"),
                ],
            )?;
        }
        let shares = i % 2 == 1;
        if shares {
            cairn_json(cairn, &home, &["team", "share", "weekly"])?;
        }
        teams.push(Team { name, home, shares });
    }

    // Then what each team puts in the organisation's log, everyone being on the server now.
    let mut rng = Rng(opts.seed ^ 0x0126);
    let mut across_given = 0;
    for (i, team) in teams.iter().enumerate() {
        // Hears of everyone (an asked sync refreshes the organisation's people).
        cairn_json(cairn, &team.home, &["sync"])?;
        if i == 0 {
            for (title, why) in NON_NEGOTIABLES {
                cairn_json(cairn, &team.home, &["org", "add", title, "--why", why])?;
            }
        }
        across_given += give_across(&team.home, scale, &mut rng, now)?;
        if team.shares {
            share_two_years(&team.home, now)?;
        }
        let synced = cairn_json(cairn, &team.home, &["sync"])?;
        if let Some(why) = synced["org"]["refused"].as_str() {
            return Err(Failure::run(format!(
                "the server refused what {} wrote into the organisation's log: {why}",
                team.name
            )));
        }
        if i > 0 && !opts.keep {
            let _ = std::fs::remove_dir_all(&team.home);
        }
        eprintln!(
            "organisation: {} wrote its part ({:.0} s so far)",
            team.name,
            started.elapsed().as_secs_f64()
        );
    }

    // The single team of the same size, in no organisation.
    let solo_home = work.join("solo");
    mkdir(&solo_home)?;
    let solo_name = format!("Solo{tag}");
    eprintln!("organisation: seeding the single team to compare with");
    let created: serde_json::Value = serde_json::from_str(&admin(
        &bin,
        &db,
        &["team", "create", &solo_name, "--json"],
    )?)
    .map_err(|e| fail("`team create --json` printed no JSON", &e))?;
    crate::seed(
        &solo_home,
        scale.events_each(),
        scale.members(),
        opts.seed.wrapping_add(scale.teams as u64),
        now,
        &solo_name,
        created["id"].as_str(),
    )?;
    let solo_team = created["id"].as_str().unwrap_or_default().to_owned();
    cairn_json(
        cairn,
        &solo_home,
        &[
            "publish",
            &url,
            "--invite",
            created["founder_invite"].as_str().unwrap_or_default(),
        ],
    )?;
    let _ = std::fs::remove_dir_all(&solo_home);
    let seed_secs = started.elapsed().as_secs_f64();
    let rss_seeding_mb = rss_peak_mb(server.pid());
    drop(server);
    eprintln!("organisation: seeded in {seed_secs:.0} s");

    // The seeded server, started again: what it holds at rest, then the measurements.
    let (server, url) = start_server(&bin, &db)?;
    let steward = &teams[0];
    // (The server listens on another port now.)
    cairn_json(cairn, &steward.home, &["remote", "set-url", &url])?;
    cairn_json(cairn, &steward.home, &["sync"])?;
    let figures_ms = crate::time_runs(cairn, &steward.home, opts.runs, opts.warmup, |_| {
        vec!["org".into(), "figures".into(), "--json".into()]
    })?;
    let view = cairn_json(cairn, &steward.home, &["org", "figures"])?;
    let figures_teams = view["figures"]["teams"].as_array().map_or(0, Vec::len);
    let figures_shared = view["figures"]["total"]["teams"].as_u64().unwrap_or(0) as usize;
    eprintln!(
        "organisation: `cairn org figures` median {:.2} ms ({figures_teams} teams, \
         {figures_shared} shared their week)",
        figures_ms.0
    );

    let team0 = team_id(&bin, &db, &steward.name)?;
    let (catch_up, member_home) = newcomers(cairn, &bin, &db, &url, &team0, work, "org")?;
    let (solo_catch_up, solo_member) = newcomers(cairn, &bin, &db, &url, &solo_team, work, "solo")?;
    let rss_rest_mb = rss_now_mb(server.pid());
    let kudos_to = crate::NAMES[1].to_lowercase();
    let mut member = Vec::new();
    let mut solo = Vec::new();
    for (home, out) in [(&member_home, &mut member), (&solo_member, &mut solo)] {
        // Timed as the single-team rows are: the command alone, no sync started after it.
        cairn_json(cairn, home, &["config", "set", "auto-sync", "false"])?;
        let seeded = crate::Seeded {
            events: scale.events_each(),
            seconds: 0.0,
            replica_bytes: 0,
            kudos_to: kudos_to.clone(),
        };
        *out = crate::time_commands(cairn, home, &seeded, opts)?;
    }

    let load = if opts.load {
        Some(all_teams_active(
            &bin,
            &db,
            &url,
            &org,
            &teams,
            opts.clients,
            opts.load_seconds,
        )?)
    } else {
        None
    };
    let rss_peak = rss_peak_mb(server.pid());
    drop(server);
    let org_changes =
        serde_json::from_str::<serde_json::Value>(&admin(&bin, &db, &["org", "list", "--json"])?)
            .ok()
            .and_then(|v| {
                v.as_array()?
                    .iter()
                    .find(|o| o["id"] == org.as_str())
                    .and_then(|o| o["changes"].as_u64())
            })
            .unwrap_or(0);
    let db_bytes = postgres
        .is_none()
        .then(|| std::fs::metadata(&db).map(|m| m.len()).ok())
        .flatten();
    Ok(OrgFigures {
        storage: if postgres.is_some() {
            "PostgreSQL".into()
        } else {
            "SQLite".into()
        },
        scale,
        teams: scale.teams,
        people: scale.members() * scale.teams,
        events: scale.events_each() * scale.teams,
        across: across_given,
        sharing: teams.iter().filter(|t| t.shares).count(),
        non_negotiables: NON_NEGOTIABLES.len(),
        seed_secs,
        publish_secs,
        org_changes,
        db_bytes,
        rss_seeding_mb,
        rss_rest_mb,
        rss_peak_mb: rss_peak,
        catch_up,
        solo_catch_up,
        member,
        solo,
        figures_ms,
        figures_teams,
        figures_shared,
        load,
    })
}

/// The server's id of the team named `name`.
fn team_id(bin: &Path, db: &std::ffi::OsStr, name: &str) -> Result<String, Failure> {
    let teams: serde_json::Value =
        serde_json::from_str(&admin(bin, db, &["team", "list", "--json"])?)
            .map_err(|e| Failure::run(format!("`team list --json` printed no JSON: {e}")))?;
    teams
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .and_then(|t| t["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| Failure::run(format!("the server lists no team `{name}`")))
}

/// The seeded team's replica in `home`, its organisation as the replica knows it, and the
/// organisation's replica.
fn seeded_with_org(
    home: &Path,
) -> Result<
    (
        cairn_store::Replica,
        cairn_client::sync::org::Org,
        cairn_store::Replica,
    ),
    Failure,
> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::run(format!("{what}: {e}"));
    let replica = cairn_store::Replica::open(&home.join(crate::REPLICA_FILE))
        .map_err(|e| fail("cannot open a seeded replica", &e))?;
    let held = cairn_client::sync::org::org(&replica, home)
        .map_err(|e| fail("cannot read the team's organisation", &e))?
        .ok_or_else(|| Failure::run("a seeded team learned no organisation at its publication"))?;
    let org = held
        .open()
        .map_err(|e| fail("cannot open the organisation's replica", &e))?;
    Ok((replica, held, org))
}

/// The founder of the team in `home` gives kudos across teams over the two years before `now`,
/// each to someone of another team of the organisation, as `cairn kudos @handle@team` does;
/// the next sync sends them. Returns how many.
fn give_across(home: &Path, scale: Scale, rng: &mut Rng, now: Timestamp) -> Result<usize, Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::run(format!("{what}: {e}"));
    let (mut replica, held, mut org) = seeded_with_org(home)?;
    let team = replica
        .team()
        .map_err(|e| fail("cannot read the team", &e))?;
    let team_id = replica
        .team_id()
        .map_err(|e| fail("cannot read the team", &e))?;
    let me = replica.me().map_err(|e| fail("cannot read the team", &e))?;
    let people = across::people(&org).map_err(|e| fail("cannot read the people", &e))?;
    let from = across::me_in(&people, &team_id, &me, (team.handle_of(&me), &team.name));
    let others: Vec<Person> = people
        .people
        .teams
        .iter()
        .filter(|t| t.id != team_id)
        .flat_map(|t| {
            t.people
                .iter()
                .map(|p| Person::new(&t.id, &p.member, &p.handle, &t.name))
        })
        .collect();
    if others.is_empty() {
        return Ok(0);
    }
    let n = scale.across_each();
    let span_ms = 730 * 86_400_000i64;
    for k in 0..n {
        // Spread over the two years, in office hours, oldest first.
        let at = now.as_millisecond() - span_ms
            + span_ms * k as i64 / n as i64
            + rng.index(8 * 3_600_000) as i64;
        let clock = Clock::new(
            Timestamp::from_millisecond(at.min(now.as_millisecond()))
                .map_err(|e| fail("a bad instant", &e))?,
            TimeZone::UTC,
        );
        let to = [others[rng.index(others.len())].clone()];
        across::give(
            &mut org,
            &clock,
            &team.tz,
            &from,
            &to,
            crate::KUDOS[rng.index(crate::KUDOS.len())],
            None,
        )
        .map_err(|e| fail("cannot give kudos across teams", &e))?;
    }
    // Shown in the team's own feed, as `cairn kudos` does at once.
    across::show(&mut replica, &org, &held.org.id, &team_id)
        .map_err(|e| fail("cannot show kudos across teams", &e))?;
    Ok(n)
}

/// A team that shares its weekly figures writes those of the whole two years before `now`,
/// eight weeks at a time, as its syncs over that time would have (the next sync sends them).
fn share_two_years(home: &Path, now: Timestamp) -> Result<(), Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::run(format!("{what}: {e}"));
    let (mut replica, _, mut org) = seeded_with_org(home)?;
    let team_id = replica
        .team_id()
        .map_err(|e| fail("cannot read the team", &e))?;
    for k in (1..=12).rev() {
        let at = now.as_millisecond() - k * EIGHT_WEEKS_MS;
        cairn_client::shared::publish(&mut replica, &mut org, &team_id, at, true)
            .map_err(|e| fail("cannot write the team's figures", &e))?;
    }
    Ok(())
}

/// [`NEWCOMERS`] new members join team `team` one after another, each `cairn join` then `cairn
/// sync`, timed as whole processes; returns the medians and the first newcomer's home (kept
/// for the commands' rows).
fn newcomers(
    cairn: &Path,
    bin: &Path,
    db: &std::ffi::OsStr,
    url: &str,
    team: &str,
    work: &Path,
    label: &str,
) -> Result<(CatchUp, PathBuf), Failure> {
    let invite = admin(
        bin,
        db,
        &[
            "invite",
            "create",
            "--team",
            team,
            "--uses",
            &NEWCOMERS.to_string(),
        ],
    )?;
    let mut runs = Vec::with_capacity(NEWCOMERS);
    let mut first = None;
    for k in 0..NEWCOMERS {
        let home = work.join(format!("{label}-newcomer-{k}"));
        let _ = std::fs::remove_dir_all(&home);
        let at = Instant::now();
        let joined = cairn_json(
            cairn,
            &home,
            &[
                "join",
                url,
                "--invite",
                &invite,
                "--name",
                &format!("Newcomer {k}"),
            ],
        )?;
        let join_secs = at.elapsed().as_secs_f64();
        let at = Instant::now();
        cairn_json(cairn, &home, &["sync"])?;
        let sync_secs = at.elapsed().as_secs_f64();
        runs.push((join_secs + sync_secs, join_secs, sync_secs));
        if first.is_none() {
            first = Some((
                joined["docs"].as_u64().unwrap_or(0),
                joined["bytes_down"].as_u64().unwrap_or(0),
                home,
            ));
        } else {
            let _ = std::fs::remove_dir_all(&home);
        }
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (total_secs, join_secs, sync_secs) = runs[runs.len() / 2];
    let (docs, bytes_down, home) = first.expect("at least one newcomer");
    eprintln!("organisation: a newcomer of `{label}` caught up in {total_secs:.2} s (median)");
    Ok((
        CatchUp {
            join_secs,
            sync_secs,
            total_secs,
            docs,
            bytes_down,
        },
        home,
    ))
}

/// `devices` new devices spread over every team of the organisation, each syncing its team's
/// log and the organisation's: `secs` of no-op syncs of both, flat out, then as long of
/// one-change pushes to their own journals.
fn all_teams_active(
    bin: &Path,
    db: &std::ffi::OsStr,
    url: &str,
    org: &str,
    teams: &[Team],
    devices: usize,
    secs: f64,
) -> Result<OrgLoad, Failure> {
    let fail = |e: String| Failure::run(format!("the organisation's load failed: {e}"));
    let heads: serde_json::Value =
        serde_json::from_str(&admin(bin, db, &["team", "list", "--json"])?)
            .map_err(|e| Failure::run(format!("`team list --json` printed no JSON: {e}")))?;
    let head_of = |name: &str| -> Option<(String, u64)> {
        heads
            .as_array()?
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| {
                (
                    t["id"].as_str().unwrap_or_default().to_owned(),
                    t["changes"].as_u64().unwrap_or(0),
                )
            })
    };
    let orgs: serde_json::Value =
        serde_json::from_str(&admin(bin, db, &["org", "list", "--json"])?)
            .map_err(|e| Failure::run(format!("`org list --json` printed no JSON: {e}")))?;
    let org_head = orgs
        .as_array()
        .and_then(|o| o.iter().find(|o| o["id"] == org))
        .and_then(|o| o["changes"].as_u64())
        .unwrap_or(0);
    let a = agent();
    let per_team = devices.div_ceil(teams.len()).max(1);
    let mut team_clients = Vec::new();
    let mut org_clients = Vec::new();
    for team in teams {
        let (id, head) = head_of(&team.name)
            .ok_or_else(|| Failure::run(format!("the server lists no team `{}`", team.name)))?;
        let invite = admin(
            bin,
            db,
            &[
                "invite",
                "create",
                "--team",
                &id,
                "--uses",
                &per_team.to_string(),
            ],
        )?;
        for k in 0..per_team {
            let joined: JoinResponse = post(
                &a,
                &format!("{url}/v1/join"),
                None,
                &JoinRequest {
                    invite: invite.clone(),
                    device_name: format!("load {k}"),
                    name: Some(format!("Load {k}")),
                    ..JoinRequest::default()
                },
            )
            .map_err(fail)?;
            // From the heads on: a busy team's device has its history already.
            let mut c = Client::new(
                format!("{url}/v1/sync"),
                joined.token.0.clone(),
                format!("j/{}/2026-11", joined.member_id),
                head,
            );
            c.sync(&a, None).map_err(fail)?;
            team_clients.push(c);
            let mut o = Client::new(
                format!("{url}/v1/sync?org={org}"),
                joined.token.0,
                String::new(),
                org_head,
            );
            o.sync(&a, None).map_err(fail)?;
            org_clients.push(o);
        }
    }
    let n = team_clients.len();
    eprintln!(
        "organisation: {n} devices over {} teams, no-op syncs of team and organisation, then \
         pushes, {secs} s each",
        teams.len()
    );
    let mut both = team_clients;
    both.extend(org_clients);
    let (mut both, noop, e1) = phase(both, secs, false, None);
    both.truncate(n);
    let (_, push, e2) = phase(both, secs, true, None);
    Ok(OrgLoad {
        devices: n,
        seconds: secs,
        noop_per_s: noop.len() as f64 / secs,
        noop_p50_ms: percentile(&noop, 0.50),
        noop_p99_ms: percentile(&noop, 0.99),
        push_per_s: push.len() as f64 / secs,
        push_p50_ms: percentile(&push, 0.50),
        push_p99_ms: percentile(&push, 0.99),
        errors: e1 + e2,
    })
}

/// The organisation rows of the table.
pub fn render_table(orgs: &[OrgFigures]) -> String {
    use std::fmt::Write as _;
    let verdict = crate::verdict;
    let mb = |m: Option<f64>| m.map_or_else(|| "unknown".to_owned(), |m| format!("{m:.0} MB"));
    let mut s = String::new();
    for o in orgs {
        let _ = writeln!(
            s,
            "\norganisation on {} (scale {}): {} teams, {} people, {} events, {} kudos across \
             teams, {} teams sharing their weekly figures, {} non-negotiables; seeded in {:.0} s \
             ({:.0} s of `cairn publish`); its log {} entries{}",
            o.storage,
            o.scale.name,
            o.teams,
            o.people,
            o.events,
            o.across,
            o.sharing,
            o.non_negotiables,
            o.seed_secs,
            o.publish_secs,
            o.org_changes,
            o.db_bytes.map_or_else(String::new, |b| format!(
                ", the database {:.0} MB",
                b as f64 / 1e6
            ))
        );
        let _ = writeln!(
            s,
            "  server RSS: peak {} while seeded, {} at rest after the catch-ups, peak {} with \
             every team active (target: under 500 MB) {}",
            mb(o.rss_seeding_mb),
            mb(o.rss_rest_mb),
            mb(o.rss_peak_mb),
            verdict(
                [o.rss_seeding_mb, o.rss_peak_mb]
                    .iter()
                    .all(|m| m.is_some_and(|m| m < 500.0))
            )
        );
        for (what, c) in [
            ("a team of the organisation", &o.catch_up),
            ("the single team", &o.solo_catch_up),
        ] {
            let _ = writeln!(
                s,
                "  a newcomer of {what}: `cairn join` {:.2} s + `cairn sync` {:.2} s = {:.2} s \
                 (median of {NEWCOMERS}; {} documents, {:.1} MB down at the join)",
                c.join_secs,
                c.sync_secs,
                c.total_secs,
                c.docs,
                c.bytes_down as f64 / 1e6
            );
        }
        let ratio = o.catch_up.total_secs / o.solo_catch_up.total_secs.max(1e-9);
        let _ = writeln!(
            s,
            "  catch-up, organisation / single team: {ratio:.2}x (target: as fast, within 1.5x) {}",
            verdict(ratio <= 1.5)
        );
        for cmd in ["log", "kudos", "feed", "streaks"] {
            if let Some((m, single, r)) = o.ratio(cmd) {
                let _ = writeln!(
                    s,
                    "  `cairn {cmd}` median, member of the organisation / of the single team: \
                     {m:.2} / {single:.2} ms = {r:.2}x (target: within 1.5x) {}",
                    verdict(r <= 1.5)
                );
            }
        }
        let (median, min, max) = o.figures_ms;
        let _ = writeln!(
            s,
            "  `cairn org figures --json` on the steward's home: median {median:.2} ms (min \
             {min:.2}, max {max:.2}; {} teams listed, {} with the week's figures) (target: under \
             100 ms) {}",
            o.figures_teams,
            o.figures_shared,
            verdict(median < 100.0)
        );
        if let Some(l) = &o.load {
            let _ = writeln!(
                s,
                "  every team active, {} devices over {} teams, {} s per phase ({} errors): \
                 {:.0} no-op syncs/s of team and organisation logs (p50 {:.1} ms, p99 {:.1} ms), \
                 {:.0} pushes/s (p50 {:.1} ms, p99 {:.1} ms)",
                l.devices,
                o.teams,
                l.seconds,
                l.errors,
                l.noop_per_s,
                l.noop_p50_ms,
                l.noop_p99_ms,
                l.push_per_s,
                l.push_p50_ms,
                l.push_p99_ms
            );
        }
    }
    s
}

/// The organisation rows as the JSON's member `org` (a list, one per storage), closing the
/// object as the other parts do.
pub fn render_json(orgs: &[OrgFigures]) -> String {
    let num = |m: Option<f64>| m.map_or_else(|| "null".to_owned(), |m| format!("{m:.1}"));
    let catch = |c: &CatchUp| {
        format!(
            "{{\"join_seconds\": {:.3}, \"sync_seconds\": {:.3}, \"total_seconds\": {:.3}, \
             \"docs\": {}, \"bytes_down\": {}}}",
            c.join_secs, c.sync_secs, c.total_secs, c.docs, c.bytes_down
        )
    };
    let cmds = |ts: &[Timing]| {
        ts.iter()
            .map(|t| {
                format!(
                    "{{\"command\": \"{}\", \"median_ms\": {:.3}, \"min_ms\": {:.3}, \
                     \"max_ms\": {:.3}}}",
                    t.command, t.median, t.min, t.max
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let items: Vec<String> = orgs
        .iter()
        .map(|o| {
            let load = o.load.as_ref().map_or_else(
                || "null".to_owned(),
                |l| {
                    format!(
                        "{{\"devices\": {}, \"seconds\": {}, \"noop_per_s\": {:.1}, \
                         \"noop_p50_ms\": {:.3}, \"noop_p99_ms\": {:.3}, \"push_per_s\": {:.1}, \
                         \"push_p50_ms\": {:.3}, \"push_p99_ms\": {:.3}, \"errors\": {}}}",
                        l.devices,
                        l.seconds,
                        l.noop_per_s,
                        l.noop_p50_ms,
                        l.noop_p99_ms,
                        l.push_per_s,
                        l.push_p50_ms,
                        l.push_p99_ms,
                        l.errors
                    )
                },
            );
            format!(
                "\n    {{\"storage\": \"{}\", \"scale\": \"{}\", \"teams\": {}, \"people\": {}, \
                 \"events\": {}, \"across\": {}, \"sharing\": {}, \"non_negotiables\": {}, \
                 \"seed_seconds\": {:.1}, \"publish_seconds\": {:.1}, \"org_changes\": {}, \
                 \"db_bytes\": {}, \"rss_seeding_mb\": {}, \"rss_rest_mb\": {}, \
                 \"rss_peak_mb\": {}, \"catch_up\": {}, \"solo_catch_up\": {}, \"member\": [{}], \
                 \"solo\": [{}], \"figures_median_ms\": {:.3}, \"figures_min_ms\": {:.3}, \
                 \"figures_max_ms\": {:.3}, \"figures_teams\": {}, \"figures_shared\": {}, \
                 \"load\": {load}, \"targets\": {{\"rss_mb_max\": 500, \"figures_ms_max\": 100, \
                 \"member_ratio_max\": 1.5}}}}",
                o.storage,
                o.scale.name,
                o.teams,
                o.people,
                o.events,
                o.across,
                o.sharing,
                o.non_negotiables,
                o.seed_secs,
                o.publish_secs,
                o.org_changes,
                o.db_bytes
                    .map_or_else(|| "null".to_owned(), |b| b.to_string()),
                num(o.rss_seeding_mb),
                num(o.rss_rest_mb),
                num(o.rss_peak_mb),
                catch(&o.catch_up),
                catch(&o.solo_catch_up),
                cmds(&o.member),
                cmds(&o.solo),
                o.figures_ms.0,
                o.figures_ms.1,
                o.figures_ms.2,
                o.figures_teams,
                o.figures_shared
            )
        })
        .collect();
    format!(",\n  \"org\": [{}\n  ]\n}}\n", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_by_name() {
        assert_eq!(Scale::parse("full"), Some(FULL));
        assert_eq!(Scale::parse("tiny").map(|s| s.members()), Some(5));
        assert_eq!(FULL.members() * FULL.teams, 2_000);
        assert_eq!(FULL.events_each() * FULL.teams, 3_000_000);
        assert_eq!(Scale::parse("huge"), None);
    }
}
