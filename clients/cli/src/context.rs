//! What every command shares: the home, the clock, the zone, the acting member, the output.

use std::path::PathBuf;

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

/// A writing command's replica, with the member it acts as and the team as they were when it
/// began (see [`Ctx::writer`]).
#[derive(Debug)]
pub struct Writer<'r> {
    pub replica: &'r mut Replica,
    /// The member who writes: `--as`, else the device's owner.
    pub me: String,
    pub team: TeamState,
    outbox_at: i64,
}

impl Writer<'_> {
    /// Whether this writer left changes for the server, so far.
    pub fn outcome(&self) -> Result<Outcome> {
        Ok(if self.replica.outbox_head()? > self.outbox_at {
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

    /// What a writing command works with: the replica, the member it acts as and the team,
    /// each read once.
    pub fn writer<'r>(&self, replica: &'r mut Replica) -> Result<Writer<'r>> {
        let team = replica.team()?;
        let me = self.actor(replica, &team)?;
        let outbox_at = replica.outbox_head()?;
        Ok(Writer {
            replica,
            me,
            team,
            outbox_at,
        })
    }

    /// The member this command acts as: `--as`, else the device's owner.
    pub fn actor(&self, replica: &Replica, team: &TeamState) -> Result<String> {
        let me = replica.me()?;
        let Some(h) = &self.as_member else {
            return Ok(me);
        };
        let id = team.member_by_handle(h)?.id.clone();
        // The server takes from a device only its own member's writes.
        if id != me && replica.remote()?.is_some() {
            return Err(
                CliError::new("--as works only while the team lives on this device alone")
                    .hint("this team is on a server: each member writes from their own device"),
            );
        }
        Ok(id)
    }

    pub fn now_ms(&self) -> i64 {
        self.now.as_millisecond()
    }

    /// The IANA name of the zone the person is in; `fallback` when the system names none.
    pub fn zone_name(&self, fallback: &str) -> String {
        self.zone(fallback).0
    }

    /// The person's zone and its IANA name. A system zone without one (a bare /etc/localtime, a
    /// POSIX `TZ`, a misspelt `TZ`) gives way to `fallback`, so an event's recorded zone and its
    /// local date always agree.
    fn zone(&self, fallback: &str) -> (String, TimeZone) {
        match self.tz.iana_name() {
            Some(name) if !name.is_empty() && name != "Etc/Unknown" => {
                (name.to_owned(), self.tz.clone())
            }
            _ => match TimeZone::get(fallback) {
                Ok(tz) => (fallback.to_owned(), tz),
                Err(_) => ("UTC".to_owned(), TimeZone::UTC),
            },
        }
    }

    /// Today's date where the person is.
    pub fn today(&self, team_tz: &str) -> jiff::civil::Date {
        self.now.to_zoned(self.zone(team_tz).1).date()
    }

    /// When and where an event happens now; `late` counts it for yesterday.
    pub fn stamp(&self, team_tz: &str, late: bool) -> Stamp {
        let (zone, tz) = self.zone(team_tz);
        cairn_core::time::stamp(self.now_ms(), &zone, &tz, late)
    }

    /// When and where an event happens now, counted for `on` when given (a late log).
    pub fn stamp_on(&self, team_tz: &str, on: Option<jiff::civil::Date>) -> Stamp {
        let (zone, tz) = self.zone(team_tz);
        cairn_core::time::stamp_on(self.now_ms(), &zone, &tz, on)
    }

    /// A fresh event id for now.
    pub fn new_event_id(&self) -> Result<EventId> {
        Ok(EventId::new(self.now_ms(), random_bytes()?))
    }
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)
        .map_err(|e| CliError::new(format!("the system gave no randomness: {e}")))?;
    Ok(buf)
}

/// A random id of `chars` characters, for teams, members and commitments.
pub fn random_id(chars: usize) -> Result<String> {
    Ok(cairn_core::ids::random_text(&random_bytes::<16>()?, chars))
}
