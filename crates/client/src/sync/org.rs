//! The organisation a team belongs to: its replica beside the team's, synced in the same run.
//!
//! An organisation is a log of its own on the server (see `cairn-server`'s `hub::org`), read
//! by every device of its teams with the device's own token through `/v1/sync?org=ID`, and
//! written by its stewards' devices only, in its document `team`
//! ([`cairn_protocol::ORG_DOC`]). A device keeps it in a replica of its own,
//! `<dir>/orgs/<org id>/replica.sqlite3` ([`path`]), with its own cursor and outbox; this
//! module holds and syncs its bytes, and reads of them only the notes of the stewards' changes,
//! which each sync puts in the team's feed ([`show_notes`]).
//!
//! What the device knows of its team's organisation ([`State`]) is a setting of the team's
//! replica: learned from the join's answer ([`learned`]) and from `GET /v1/org`, which
//! [`sync`] asks at each sync of a team of an organisation (the admin attaches and detaches
//! teams at any time), and at most once a day for a team of none, so a home without an
//! organisation makes the requests it made before. When the answer changes, or the server
//! refuses the organisation's log (403), syncing it stops, its replica stays as it was
//! (read-only: what was given stays), and the stop is told once ([`tell_once`]), as a sync
//! refused for good is ([`super::problem`]).
//!
//! A home holding several teams of one organisation keeps one replica of it, made by the
//! first of them to sync (its member writes there as that team's member).
//!
//! # Example
//! A headless device (a relay, say) syncs its team, then its organisation, and waits for the
//! organisation's news with the same token:
//! ```no_run
//! use cairn_client::sync::{Device, Options, TIMEOUT, org};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let home = std::path::Path::new("/var/lib/relay");
//! let mut device = Device::open(&home.join("replica.sqlite3"), TIMEOUT)?;
//! let now_ms = 1_764_000_000_000;
//! device.sync(now_ms, Options::ASKED, &mut |_| {})?;
//! let client = device.client.clone();
//! match org::sync(&mut device.replica, &client, home, now_ms, Options::ASKED, &mut |_| {})? {
//!     org::Outcome::Synced { org, report, .. } => {
//!         println!("{}: {} new", org.name, report.received);
//!         let held = org::org(&device.replica, home)?.expect("it syncs");
//!         let cursor = held.open()?.cursor()?;
//!         // At most 50 s; then sync again.
//!         if client.for_org(&org.id).wait(cursor, 50)?.is_some() {
//!             org::sync(&mut device.replica, &client, home, now_ms, Options::ASKED, &mut |_| {})?;
//!         }
//!     }
//!     org::Outcome::Stopped(s) => println!("no longer syncs {}: {}", s.name, s.why),
//!     org::Outcome::None => {}
//! }
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use cairn_protocol::OrgRef;
use cairn_store::{Remote, Replica};
use serde::{Deserialize, Serialize};

use super::{Client, Options, Report, Result, Step, exchange};

/// The folder of a home's organisations, beside its teams.
pub const ORGS_DIR: &str = "orgs";
/// The file name of an organisation's replica.
const REPLICA_FILE: &str = "replica.sqlite3";
/// The setting of the team's replica that holds its [`State`].
const STATE: &str = "org";
/// What the source of an organisation's notes in a team's feed starts with ([`notes_source`]).
const NOTES: &str = "org:";
/// The setting of the team's replica saying at which place of which organisation's log the
/// kudos across teams were last put in its feed.
const ACROSS_SHOWN: &str = "across_shown";
/// How often a team of no organisation asks whether it joined one.
const DAY_MS: i64 = 24 * 3600 * 1000;
/// How soon after one `GET /v1/org` a team of an organisation asks again (a join that just
/// learned it does not ask at once).
const AGAIN_MS: i64 = 60 * 1000;

/// What a device knows of its team's organisation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The organisation synced, if any.
    #[serde(default)]
    pub org: Option<OrgRef>,
    /// When the server was last asked (or the join told), in ms since the epoch.
    #[serde(default)]
    pub checked_ms: Option<i64>,
    /// When the organisation's replica last synced.
    #[serde(default)]
    pub synced_ms: Option<i64>,
    /// The organisation no longer synced, and why.
    #[serde(default)]
    pub stopped: Option<Stopped>,
    /// The team's id on the server, as `GET /v1/org` said it: what names it in the
    /// organisation's documents ([`team_on_server`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// An organisation this device stopped syncing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    pub id: String,
    pub name: String,
    /// Why, in words a person reads.
    pub why: String,
    pub at_ms: i64,
    /// Whether it was told already.
    #[serde(default)]
    pub told: bool,
}

/// An organisation as this device holds it: where its replica lives, and its last sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub org: OrgRef,
    pub path: PathBuf,
    pub synced_ms: Option<i64>,
}

impl Org {
    /// Opens the organisation's replica (a steward writes its document there; the next sync
    /// sends it).
    pub fn open(&self) -> Result<Replica> {
        Ok(Replica::open(&self.path)?)
    }
}

/// What a [`sync`] did about the organisation.
#[derive(Debug)]
pub enum Outcome {
    /// The team belongs to no organisation (none was synced).
    None,
    /// The organisation synced. `refused` says why the server refused this steward's
    /// changes (403, whole): they wait here unsent, and what the others wrote came down.
    Synced {
        org: OrgRef,
        report: Report,
        refused: Option<String>,
    },
    /// The organisation stopped being synced now.
    Stopped(Stopped),
}

/// The replica of organisation `id` under `dir` (a home); `None` for an id that is no plain
/// name of a folder (a server's word is never a path).
pub fn path(dir: &Path, id: &str) -> Option<PathBuf> {
    let plain = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plain.then(|| dir.join(ORGS_DIR).join(id).join(REPLICA_FILE))
}

/// What this team's replica knows of its organisation.
pub fn state(team: &Replica) -> Result<State> {
    Ok(team
        .setting(STATE)?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

fn save(team: &mut Replica, state: &State) -> Result<()> {
    let text = serde_json::to_string(state).map_err(super::Error::Encode)?;
    team.set_setting(STATE, Some(&text))?;
    Ok(())
}

/// The organisation this team's replica syncs, with its replica under `dir`, if any.
pub fn org(team: &Replica, dir: &Path) -> Result<Option<Org>> {
    let state = state(team)?;
    Ok(state.org.and_then(|org| {
        Some(Org {
            path: path(dir, &org.id)?,
            org,
            synced_ms: state.synced_ms,
        })
    }))
}

/// Whether a steward's changes wait in the organisation's replica under `dir` of the team
/// whose replica is `team` (a server known), for the quiet sync after a write, as
/// [`super::has_work`] tells of the team's. Cheap; a replica that cannot tell has none.
pub fn has_work(team: &Replica, dir: &Path) -> bool {
    let Ok(Some(org)) = org(team, dir) else {
        return false;
    };
    matches!(team.remote(), Ok(Some(_)))
        && org.path.exists()
        && org
            .open()
            .ok()
            .and_then(|r| r.outbox_waiting().ok())
            .unwrap_or(false)
}

/// The source under which a team's replica holds the notes of organisation `id` among its
/// events ([`Replica::set_outside_events`]).
pub fn notes_source(id: &str) -> String {
    format!("{NOTES}{id}")
}

/// Whether rows given to a team's feed from outside by `source` ([`Replica::outside_source`])
/// are an organisation's notes.
pub fn is_notes_source(source: &str) -> bool {
    source.starts_with(NOTES)
}

/// Puts the notes of every change of organisation `id`'s non-negotiables, as its replica `org`
/// holds them, into the feed of the team whose replica is `team`, dated in the team's zone:
/// events of kind team, counting for nothing, by the steward as the note names them. Returns
/// how many rows changed; none, and nothing written, when the notes are those shown already.
/// A team that stops syncing its organisation keeps the notes it was shown.
pub fn show_notes(team: &mut Replica, org: &mut Replica, id: &str) -> Result<usize> {
    // The store reads a document only to change it; a change that writes nothing stores
    // nothing, so this reads.
    let me = org.me()?;
    let state = org.change_team(&me, |doc, _| cairn_core::org::read(&*doc))?;
    let tz = team.team()?.tz;
    let events: Vec<_> = state.notes.iter().map(|n| n.event(&tz)).collect();
    Ok(team.set_outside_events(&notes_source(id), &events)?)
}

/// The id that names the team whose replica is `team` in its organisation's documents: the
/// server's id for it, as `GET /v1/org` said it; the replica's own until then (the same, but
/// for a team begun offline and published, whose founder's replica keeps its first id).
pub fn team_on_server(team: &Replica) -> Result<String> {
    match state(team)?.team {
        Some(id) => Ok(id),
        None => Ok(team.team_id()?),
    }
}

/// Remembers what a join's answer said of the team's organisation (`None`: the team belongs
/// to none), so that the first sync neither asks again nor, for a team of none, at all.
pub fn learned(team: &mut Replica, org: Option<&OrgRef>, now_ms: i64) -> Result<()> {
    let mut state = state(team)?;
    state.org = org.cloned();
    state.checked_ms = Some(now_ms);
    save(team, &state)
}

/// The organisation stopped and not told yet, marking it told. Best effort: a replica that
/// cannot be read or written tells nothing.
pub fn tell_once(team: &mut Replica) -> Option<Stopped> {
    let mut state = state(team).ok()?;
    let stopped = state.stopped.as_mut().filter(|s| !s.told)?;
    stopped.told = true;
    let told = stopped.clone();
    save(team, &state).ok()?;
    Some(told)
}

/// Syncs the organisation of the team whose replica is `team` (just synced through `client`,
/// the team's), keeping its replica under `dir`: asks the server which organisation the team
/// belongs to when it is time ([`State`]), then runs the exchange for its log with the same
/// token, pull-only unless this device is a steward's (or `options` say so). A steward's
/// changes the server refuses (403) wait unsent while the rest comes down
/// ([`Outcome::Synced`]'s `refused`). Once it synced, the notes of the stewards' changes are
/// in the team's feed ([`show_notes`]). Stops syncing it, once, when the server names no
/// organisation or another, or refuses to let this device read its log (403).
pub fn sync(
    team: &mut Replica,
    client: &Client,
    dir: &Path,
    now_ms: i64,
    options: Options,
    steps: &mut dyn FnMut(Step),
) -> Result<Outcome> {
    let mut state = state(team)?;
    let asked = options.caps == super::Caps::ASKED;
    let due = match (state.checked_ms, &state.org) {
        (None, _) => true,
        // (A clock set back asks again; so does a sync its person asked for, which may follow
        // the admin's naming a steward.)
        // (And a state from before the team's id on the server was kept asks once.)
        (Some(at), Some(_)) => {
            asked || state.team.is_none() || now_ms < at || now_ms - at >= AGAIN_MS
        }
        (Some(at), None) => now_ms < at || now_ms - at >= DAY_MS,
    };
    let mut stopped_now = None;
    if due {
        let answer = client.org_of_team()?;
        let seen = answer.org;
        if answer.team.is_some() {
            state.team = answer.team;
        }
        state.checked_ms = Some(now_ms);
        if let Some(was) = &state.org
            && seen.as_ref().is_none_or(|s| s.id != was.id)
        {
            let why = match &seen {
                None => "the team left it".to_owned(),
                Some(other) => format!("the team now belongs to `{}`", other.name),
            };
            stopped_now = Some(stop(was, why, now_ms));
        }
        if seen
            .as_ref()
            .zip(state.stopped.as_ref())
            .is_some_and(|(s, st)| s.id == st.id)
        {
            // Attached again: it syncs again.
            state.stopped = None;
        }
        if seen.as_ref().map(|s| &s.id) != state.org.as_ref().map(|o| &o.id) {
            // Another organisation's replica has its own last sync.
            state.synced_ms = None;
        }
        state.org = seen;
    }
    if let Some(s) = &stopped_now {
        state.stopped = Some(s.clone());
    }
    let Some(org) = state.org.clone() else {
        save(team, &state)?;
        return Ok(stopped_now.map_or(Outcome::None, Outcome::Stopped));
    };
    let Some(at) = path(dir, &org.id) else {
        save(team, &state)?;
        return Err(client.stopped(
            "named an organisation whose id cairn cannot keep a replica for".to_owned(),
            false,
        ));
    };
    // Saved before the exchange: what the server said holds whatever the exchange meets.
    save(team, &state)?;
    let mut replica = open_or_create(team, &at, &org.id)?;
    let org_client = client.for_org(&org.id);
    let team_id = team_on_server(team)?;
    // What the team shares, written before the exchange so that it goes with it (once the
    // server said the team's id: a published team's founder holds another).
    if !options.pull_only && state.team.is_some() {
        crate::shared::publish(team, &mut replica, &team_id, now_ms, asked)
            .map_err(|e| super::Error::Org(e.to_string()))?;
    }
    // Every member writes into the organisation's log: a steward its document, anyone their
    // own kudos across teams and their team's shared figures.
    let pull_only = options.pull_only;
    let mut run = |pull_only: bool, steps: &mut dyn FnMut(Step)| {
        exchange(
            &mut replica,
            &org_client,
            now_ms,
            false,
            options.caps,
            pull_only,
            steps,
        )
    };
    let mut refused = None;
    let mut ran = run(pull_only, steps);
    if !pull_only && let Err(e) = &ran {
        // A steward's change the server will not take (403): what the others wrote still
        // comes down, and the organisation goes on syncing.
        if let Some(r) = e.refusal().filter(|r| r.status == 403) {
            refused = Some(r.to_string());
            ran = run(true, steps);
        }
    }
    match ran {
        Ok(report) => {
            state.synced_ms = Some(now_ms);
            save(team, &state)?;
            show_notes(team, &mut replica, &org.id)?;
            // The organisation's people, for kudos across teams (hourly, or when asked); an
            // older server that does not say them leaves those held.
            if crate::across::stale(&replica, now_ms, asked)
                && let Some(people) = client.org_people()?
            {
                crate::across::keep(&mut replica, people, now_ms)
                    .map_err(|e| super::Error::Org(e.to_string()))?;
            }
            // Kudos across teams into the team's feed: read again only when the organisation's
            // log brought something (all its journals are read to find them), or never was.
            let shown_at = format!("{}@{}", org.id, replica.cursor()?);
            if team.setting(ACROSS_SHOWN)?.as_deref() != Some(shown_at.as_str()) {
                crate::across::show(team, &replica, &org.id, &team_id)
                    .map_err(|e| super::Error::Org(e.to_string()))?;
                team.set_setting(ACROSS_SHOWN, Some(&shown_at))?;
            }
            Ok(match stopped_now {
                // Another organisation took the old one's place: the stop is what to tell.
                Some(s) => Outcome::Stopped(s),
                None => Outcome::Synced {
                    org,
                    report,
                    refused,
                },
            })
        }
        Err(e) if e.refusal().is_some_and(|r| r.status == 403) => {
            let refusal = e.refusal().map(ToString::to_string).unwrap_or_default();
            let s = stop(&org, format!("the server refused it: {refusal}"), now_ms);
            state.org = None;
            state.synced_ms = None;
            state.stopped = Some(s.clone());
            save(team, &state)?;
            Ok(Outcome::Stopped(s))
        }
        Err(e) => Err(e),
    }
}

fn stop(org: &OrgRef, why: String, now_ms: i64) -> Stopped {
    Stopped {
        id: org.id.clone(),
        name: org.name.clone(),
        why,
        at_ms: now_ms,
        told: false,
    }
}

/// The organisation's replica at `at`, made the first time (private to its owner, as every
/// replica is) for this device's member. It names the team's server and device but holds no
/// token: the token stays in the team's replica, and the organisation syncs with the team's
/// client.
fn open_or_create(team: &Replica, at: &Path, id: &str) -> Result<Replica> {
    if at.exists() {
        return Ok(Replica::open(at)?);
    }
    let remote = team.remote()?.ok_or(super::Error::NotOnServer)?;
    let remote = Remote {
        token: String::new(),
        ..remote
    };
    match Replica::create_joined(at, id, &team.me()?, &remote) {
        Ok(r) => Ok(r),
        // Another team of this home made it meanwhile.
        Err(cairn_store::Error::Exists(_)) => Ok(Replica::open(at)?),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_word_is_never_a_path() {
        let home = Path::new("/home/ana/.cairn");
        assert_eq!(
            path(home, "a1B2c3"),
            Some(home.join("orgs/a1B2c3/replica.sqlite3"))
        );
        for bad in ["", "..", "a/b", "../../etc", "a b", &"x".repeat(65)] {
            assert_eq!(path(home, bad), None, "{bad}");
        }
    }

    #[test]
    fn an_older_state_or_none_reads_as_no_organisation() {
        let state: State = serde_json::from_str("{}").unwrap();
        assert_eq!(state, State::default());
    }
}
