//! What every command shares: the home, the clock, the zone, the acting member, the output.

use std::path::PathBuf;

use cairn_client::write::Clock;
use cairn_core::ids::EventId;
use cairn_core::{Stamp, TeamState};
use cairn_store::Replica;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::config::Config;
use crate::error::{CliError, Result};
use crate::output::Out;

/// The home given (`--home`, `CAIRN_HOME`), else the platform's data directory's `cairn`.
pub fn home(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(h) if !h.as_os_str().is_empty() => Ok(h),
        _ => dirs::data_dir().map(|d| d.join("cairn")).ok_or_else(|| {
            CliError::new("cannot tell where to keep the replica")
                .hint("set CAIRN_HOME to a directory")
        }),
    }
}

/// What a command did to the replica: whether it left changes for the server (then a sync
/// starts in the background).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Read,
    Wrote,
}

/// A writing command's replica, with the member it acts as, the team as they were when it
/// began and its clock (see [`Ctx::writer`]).
pub use cairn_client::write::Writer;

impl Outcome {
    /// Whether `w` left changes for the server, so far.
    pub fn of(w: &Writer<'_>) -> Result<Outcome> {
        Ok(if w.wrote()? {
            Outcome::Wrote
        } else {
            Outcome::Read
        })
    }
}

#[derive(Debug)]
pub struct Ctx {
    pub home: PathBuf,
    /// The team the command acts on: `--team`, else `CAIRN_TEAM`, else the config's `team`;
    /// `None`: the home's only team.
    pub team: Option<String>,
    /// Whether a team was named for this command (`--team` or `CAIRN_TEAM`), not only by the
    /// config's default: `cairn sync` then syncs that team alone.
    pub team_named: bool,
    /// The home's settings (see [`crate::config`]).
    pub config: Config,
    pub out: Out,
    /// Act as this member (a handle) instead of the device's owner.
    pub as_member: Option<String>,
    pub now: Timestamp,
    /// The zone of the person typing: `TZ`, else the system's.
    pub tz: TimeZone,
    /// Whether this process has said (or need not say) that the device can no longer sync.
    pub told: std::cell::Cell<bool>,
}

impl Ctx {
    pub fn new(home: Option<PathBuf>, json: bool, as_member: Option<String>) -> Result<Ctx> {
        let home = self::home(home)?;
        // CAIRN_NOW pins the clock, for tests and reproducible demos.
        let now = match std::env::var("CAIRN_NOW") {
            Ok(s) if !s.is_empty() => s.parse::<Timestamp>().map_err(|e| {
                CliError::new(format!("CAIRN_NOW `{s}` is not an instant: {e}"))
                    .hint("use RFC 3339, like 2026-11-23T09:30:00Z")
            })?,
            _ => Timestamp::now(),
        };
        // Before anything in it is read: the settings name a pager to run.
        crate::home::check(&home)?;
        let config = Config::load(&home)?;
        let env_team = std::env::var("CAIRN_TEAM")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let team_named = env_team.is_some();
        let team = env_team.or_else(|| config.get("team").map(str::to_owned));
        let mut out = Out::new(json);
        out.pager_command = config.get("pager").map(str::to_owned);
        Ok(Ctx {
            home,
            team,
            team_named,
            config,
            out,
            as_member,
            now,
            tz: TimeZone::system(),
            told: std::cell::Cell::new(false),
        })
    }

    /// The replica of the team this command acts on.
    pub fn replica_path(&self) -> Result<PathBuf> {
        let path = self.select()?;
        crate::home::check_within(&self.home, &path)?;
        Ok(path)
    }

    fn select(&self) -> Result<PathBuf> {
        crate::home::select(&self.home, self.team.as_deref()).map_err(|e| {
            if self.team_named || self.team.is_none() {
                return e;
            }
            // The default the config names is gone (a team folder moved away, say).
            CliError::new(format!(
                "{}, the default team of {}",
                e.message,
                self.config.path.display()
            ))
            .hint("pick another with `cairn team switch NAME` (`cairn team list` shows them), or `cairn config unset team`")
        })
    }

    /// Acts on the team `team` names (an id or a name) from now on, as `--team` does.
    pub fn with_team(mut self, team: Option<String>) -> Ctx {
        if team.is_some() {
            self.team_named = true;
            self.team = team;
        }
        self
    }

    /// How long a sync waits for a silent server: `CAIRN_SYNC_TIMEOUT`, else the config's
    /// `sync-timeout`, else [`crate::remote::TIMEOUT`].
    pub fn patience(&self) -> std::time::Duration {
        self.config.sync_timeout().unwrap_or(crate::remote::TIMEOUT)
    }

    pub fn open(&self) -> Result<Replica> {
        let mut replica = Replica::open(&self.replica_path()?)?;
        // A device that can no longer sync says so once, on the first command after a sync
        // found out (commands that show it themselves set `told` first).
        if !self.told.replace(true) {
            crate::commands::sync::tell_once(&mut replica);
        }
        Ok(replica)
    }

    /// When and where the person writes: the command's clock and their zone.
    pub fn clock(&self) -> Clock {
        Clock::new(self.now, self.tz.clone())
    }

    /// What a writing command works with: the replica, the member it acts as and the team,
    /// each read once.
    pub fn writer<'r>(&self, replica: &'r mut Replica) -> Result<Writer<'r>> {
        Ok(Writer::new(
            replica,
            self.clock(),
            self.as_member.as_deref(),
        )?)
    }

    /// The member this command acts as: `--as`, else the device's owner.
    pub fn actor(&self, replica: &Replica, team: &TeamState) -> Result<String> {
        Ok(cairn_client::write::actor(
            replica,
            team,
            self.as_member.as_deref(),
        )?)
    }

    pub fn now_ms(&self) -> i64 {
        self.now.as_millisecond()
    }

    /// The IANA name of the zone the person is in; `fallback` when the system names none.
    pub fn zone_name(&self, fallback: &str) -> String {
        self.clock().zone_name(fallback)
    }

    /// Today's date where the person is.
    pub fn today(&self, team_tz: &str) -> jiff::civil::Date {
        self.clock().today(team_tz)
    }

    /// When and where an event happens now; `late` counts it for yesterday.
    pub fn stamp(&self, team_tz: &str, late: bool) -> Stamp {
        self.clock().stamp(team_tz, late)
    }

    /// A fresh event id for now.
    pub fn new_event_id(&self) -> Result<EventId> {
        Ok(self.clock().new_event_id()?)
    }
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    Ok(cairn_client::write::random_bytes()?)
}

/// A random id of `chars` characters, for teams, members and commitments.
pub fn random_id(chars: usize) -> Result<String> {
    Ok(cairn_core::ids::random_text(&random_bytes::<16>()?, chars))
}
