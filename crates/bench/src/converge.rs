//! Convergence: R replicas (real `cairn` homes) join one server, each logs E events offline, then
//! they sync in a seeded random order, twice round; every replica's feed and team must be
//! identical.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sync::{admin, cairn_json, server_bin, start_server};
use crate::{ACTIONS, Failure, KUDOS, PILLARS, Rng};

/// What the convergence row found.
#[derive(Debug)]
pub struct ConvergeFigures {
    pub replicas: usize,
    pub events_each: usize,
    /// Events in every replica's feed after the syncs.
    pub events_seen: usize,
    pub identical: bool,
    /// Seconds for the two rounds of syncs.
    pub sync_seconds: f64,
}

/// Runs the convergence scenario under `work`.
pub fn measure(
    cairn: &Path,
    work: &Path,
    replicas: usize,
    each: usize,
    seed: u64,
) -> Result<ConvergeFigures, Failure> {
    let bin = server_bin(cairn);
    let db = work.join("converge.sqlite3");
    let (_server, url) = start_server(&bin, &db)?;
    let team = admin(&bin, &db, &["team", "create", "Converge"])?;
    let uses = (replicas + 1).to_string();
    let invite = admin(
        &bin,
        &db,
        &["invite", "create", "--team", &team, "--uses", &uses],
    )?;
    let homes: Vec<PathBuf> = (0..replicas).map(|i| work.join(format!("r{i}"))).collect();
    cairn_json(
        cairn,
        &homes[0],
        &[
            "init",
            "--team",
            "Converge",
            "--name",
            "Member 0",
            "--tz",
            "Europe/Paris",
        ],
    )?;
    let founder = admin(
        &bin,
        &db,
        &["invite", "create", "--team", &team, "--founder"],
    )?;
    cairn_json(cairn, &homes[0], &["publish", &url, "--invite", &founder])?;
    for (i, home) in homes.iter().enumerate().skip(1) {
        let name = format!("Member {i}");
        cairn_json(
            cairn,
            home,
            &["join", &url, "--invite", &invite, "--name", &name],
        )?;
    }
    // Offline: everyone logs; the ones who joined also thank the founder now and then.
    let mut rng = Rng(seed);
    for (i, home) in homes.iter().enumerate() {
        for n in 0..each {
            let pillar = PILLARS[rng.index(PILLARS.len())];
            if i > 0 && rng.chance(0.25) {
                let text = format!("{} ({i}/{n})", KUDOS[rng.index(KUDOS.len())]);
                cairn_json(
                    cairn,
                    home,
                    &["kudos", "@member-0", &text, "--pillar", pillar],
                )?;
            } else {
                let text = format!("{} ({i}/{n})", ACTIONS[rng.index(ACTIONS.len())]);
                cairn_json(cairn, home, &["log", &text, "--pillar", pillar])?;
            }
        }
    }
    let started = Instant::now();
    for _round in 0..2 {
        let mut order: Vec<usize> = (0..replicas).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.index(i + 1));
        }
        for i in order {
            cairn_json(cairn, &homes[i], &["sync"])?;
        }
    }
    let sync_seconds = started.elapsed().as_secs_f64();
    let mut first = None;
    let mut identical = true;
    let mut events_seen = 0;
    for home in &homes {
        // Every event, not a page of the feed: extras or duplicates would show.
        let feed = cairn_json(cairn, home, &["export", "--format", "json"])?;
        let mut team = cairn_json(cairn, home, &["team"])?;
        team["you"] = serde_json::Value::Null;
        events_seen = feed.as_array().map_or(0, Vec::len);
        match &first {
            None => first = Some((feed, team)),
            Some((f, t)) => identical &= *f == feed && *t == team,
        }
    }
    Ok(ConvergeFigures {
        replicas,
        events_each: each,
        events_seen,
        identical,
        sync_seconds,
    })
}
