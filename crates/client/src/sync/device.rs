//! What a device does with a server: the sync it runs (which also finishes a join or a
//! publication left half done), joining a team and publishing one.

use std::path::Path;
use std::time::Duration;

use cairn_core::team;
use cairn_protocol::{JoinRequest, JoinResponse};
use cairn_store::{Remote, Replica};

use super::{Caps, Client, Error, QUIET_TIMEOUT, Report, Result, Step, exchange, problem};

/// How a device syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// What one sync takes from the server at most.
    pub caps: Caps,
    /// Bring what is new and send nothing (a read-only device).
    pub pull_only: bool,
}

impl Options {
    /// A sync asked for: long catch-ups go to their end (within [`Caps::ASKED`]).
    pub const ASKED: Options = Options {
        caps: Caps::ASKED,
        pull_only: false,
    };
    /// The quiet sync after a write ([`Caps::QUIET`]).
    pub const QUIET: Options = Options {
        caps: Caps::QUIET,
        pull_only: false,
    };

    /// The options of a sync that waits `timeout` for a silent server: a timeout as short as
    /// the quiet one's is the quiet sync after a write.
    pub fn for_timeout(timeout: Duration) -> Options {
        if timeout <= QUIET_TIMEOUT {
            Options::QUIET
        } else {
            Options::ASKED
        }
    }
}

/// The server client of this replica, with its token; [`Error::NotOnServer`] when it has
/// none. A timeout as short as the quiet sync's gives way at once to a busy server: the next
/// sync catches up.
pub fn client_for(replica: &Replica, timeout: Duration) -> Result<Client> {
    let Some(r) = replica.remote()? else {
        return Err(Error::NotOnServer);
    };
    let client = Client::new(&r.url, Some(r.token), timeout);
    Ok(if timeout <= QUIET_TIMEOUT {
        client.impatient()
    } else {
        client
    })
}

/// A headless device: its replica and the client of its server, for a program that syncs
/// without a person watching (a relay, a service).
#[derive(Debug)]
pub struct Device {
    pub replica: Replica,
    pub client: Client,
}

impl Device {
    /// Opens the replica at `path` and makes the client of its server, which waits `timeout`
    /// for a silent server ([`client_for`]).
    pub fn open(path: &Path, timeout: Duration) -> Result<Device> {
        let replica = Replica::open(path)?;
        let client = client_for(&replica, timeout)?;
        Ok(Device { replica, client })
    }

    /// Syncs once ([`sync_once`]); what happens is told to `steps`.
    pub fn sync(
        &mut self,
        now_ms: i64,
        options: Options,
        steps: &mut dyn FnMut(Step),
    ) -> Result<Report> {
        sync_once(&mut self.replica, &self.client, now_ms, options, steps)
    }

    /// Waits up to `timeout_s` seconds for news after this replica's cursor ([`Client::wait`]):
    /// the team's head when there is some, then [`Device::sync`] brings it.
    pub fn wait(&self, timeout_s: u64) -> Result<Option<u64>> {
        self.client.wait(self.replica.cursor()?, timeout_s)
    }
}

/// Whether a quiet sync after a write has work: a server is known and changes wait to go.
/// Cheap, for it runs after every write; a replica that cannot tell has none.
pub fn has_work(replica: &Replica) -> bool {
    matches!(replica.remote(), Ok(Some(_))) && replica.outbox_waiting().unwrap_or(false)
}

/// Syncs until level, finishing a publication or a join left half done: a member who joined
/// adds themselves to the team document once it has arrived, a placeholder's own device says
/// they arrived. A sync that goes through forgets a [`problem`] remembered before.
pub fn sync_once(
    replica: &mut Replica,
    client: &Client,
    now_ms: i64,
    options: Options,
    steps: &mut dyn FnMut(Step),
) -> Result<Report> {
    let importing = replica.setting("importing")?.is_some();
    let mut report = exchange(
        replica,
        client,
        now_ms,
        importing,
        options.caps,
        options.pull_only,
        steps,
    )?;
    if importing {
        replica.set_setting("importing", None)?;
    }
    // The rounds that send what finishing wrote report no progress of their own.
    let mut answered = |s: Step| {
        if let Step::Answered { .. } = s {
            steps(s);
        }
    };
    let again = |replica: &mut Replica, answered: &mut dyn FnMut(Step)| {
        exchange(replica, client, now_ms, false, Caps::ASKED, false, answered)
    };
    // A member who joined adds themselves to the team document once it has arrived.
    if let Some(name) = replica.setting("join_name")? {
        let me = replica.me()?;
        let state = replica.team()?;
        if state.name.is_empty() {
            return Err(Error::NoTeamYet);
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
            // Joining is not a change someone made to the team: no note in the feed (the
            // member list shows the newcomer).
            replica.change_team(&me, |doc, state| {
                team::add_member(doc, state, &me, &name, Some(&handle), now_ms)
            })?;
            report.add(&again(replica, &mut answered)?);
        }
        replica.set_setting("join_name", None)?;
        replica.set_setting("join_handle", None)?;
    }
    // A placeholder's own device (it joined with an invite made for them) says they arrived:
    // they count in the team's figures from now on, on every replica.
    if arrive(replica, now_ms)? {
        report.add(&again(replica, &mut answered)?);
    }
    problem::forget(replica)?;
    Ok(report)
}

/// Marks this device's member arrived when they are a placeholder who had not; returns whether
/// it wrote. Arriving is not a change someone made to the team: no note in the feed.
fn arrive(replica: &mut Replica, now_ms: i64) -> Result<bool> {
    let me = replica.me()?;
    let state = replica.team()?;
    if state
        .member(&me)
        .is_none_or(|m| m.id != me || m.arrived().is_some())
    {
        return Ok(false);
    }
    Ok(replica.change_team(&me, |doc, state| team::arrive(doc, state, &me, now_ms))?)
}

/// Spends an invite at the server `client` reaches (made without a token): checks that the
/// server speaks this protocol, then registers this device.
pub fn register(client: &Client, request: &JoinRequest) -> Result<JoinResponse> {
    client.info()?;
    client.join(request)
}

/// Starts the replica at `path` of a device the server registered (`response`, from
/// [`register`] at `url`). A new member's `name` (and wanted `handle`) is added to the team
/// document by the first [`sync_once`] that brings it. The team's founder (the server had no
/// history for it) starts the team here: the server's name for it, the zone `founder_tz`, the
/// founder as its first member; the first sync ends the founding. Returns the replica and,
/// for a founder, the team's zone.
pub fn begin(
    path: &Path,
    url: &str,
    response: &JoinResponse,
    name: Option<&str>,
    handle: Option<&str>,
    founder_tz: &str,
    now_ms: i64,
) -> Result<(Replica, Option<String>)> {
    let remote = Remote {
        url: url.to_owned(),
        device_id: response.device_id.clone(),
        token: response.token.0.clone(),
    };
    let mut replica =
        Replica::create_joined(path, &response.team_id, &response.member_id, &remote)?;
    if response.founder {
        // The server lets a founder in only with a name.
        let name = name.map_or("", str::trim);
        let team = response.team_name.as_deref().unwrap_or("Team");
        // The invite is spent: a handle that will not do gives way to one made from the name.
        let handle = handle
            .map(|h| h.trim().trim_start_matches('@').to_lowercase())
            .filter(|h| cairn_core::ids::is_valid_handle(h))
            .or_else(|| cairn_core::ids::handle_from_name(name))
            .unwrap_or_else(|| "member".to_owned());
        replica.found(team, founder_tz, name, &handle, now_ms)?;
        replica.set_setting("importing", Some("1"))?;
        return Ok((replica, Some(founder_tz.to_owned())));
    }
    if let Some(name) = name {
        replica.set_setting("join_name", Some(name))?;
        if let Some(h) = handle {
            replica.set_setting("join_handle", Some(h.trim().trim_start_matches('@')))?;
        }
    }
    Ok((replica, None))
}

/// A device that joined a team.
#[derive(Debug)]
pub struct Joined {
    pub replica: Replica,
    /// What the server said: the team, the member and the device.
    pub response: JoinResponse,
    /// The team's zone, when this device founded the team.
    pub founded: Option<String>,
    /// What the first sync moved.
    pub report: Report,
}

/// What a device joins with.
#[derive(Clone, Debug, Default)]
pub struct Join {
    /// The invite, this device's name, and the new member's `name` (or `claim`).
    pub request: JoinRequest,
    /// The handle a new member wants (else one made from their name).
    pub handle: Option<String>,
    /// The team's zone, should this device found it (the founder's invite).
    pub founder_tz: String,
}

/// Joins a team in one call: [`register`] with the join's request, [`begin`] the replica at
/// `path`, and the first [`sync_once`].
pub fn join(
    client: &Client,
    join: &Join,
    path: &Path,
    now_ms: i64,
    options: Options,
    steps: &mut dyn FnMut(Step),
) -> Result<Joined> {
    let response = register(client, &join.request)?;
    let (mut replica, founded) = begin(
        path,
        client.base(),
        &response,
        join.request.name.as_deref(),
        join.handle.as_deref(),
        &join.founder_tz,
        now_ms,
    )?;
    let device = client_for(&replica, client.timeout())?;
    let report = sync_once(&mut replica, &device, now_ms, options, steps)?;
    Ok(Joined {
        replica,
        response,
        founded,
        report,
    })
}

/// Brings the team `replica` holds (started offline) onto the server `client` reaches (made
/// without a token), with the founder's `invite`: registers this device as publishing it and
/// marks the publication begun; the next [`sync_once`] sends the history and ends it. Returns
/// the name the server knew the team by, when it was another.
pub fn publish(
    replica: &mut Replica,
    client: &Client,
    invite: &str,
    device_name: &str,
) -> Result<Option<String>> {
    if let Some(r) = replica.remote()? {
        return Err(Error::AlreadyOnServer(r.url));
    }
    client.info()?;
    let me = replica.me()?;
    let name = replica.team()?.name;
    let resp = client.join(&JoinRequest {
        invite: invite.to_owned(),
        device_name: device_name.to_owned(),
        name: None,
        claim: None,
        publish: Some(me),
        team_name: Some(name.clone()),
        ..JoinRequest::default()
    })?;
    // The server calls the team what its founder's replica does from now on.
    let knew = resp.team_name.filter(|known| *known != name);
    replica.set_setting("importing", Some("1"))?;
    replica.set_remote(&Remote {
        url: client.base().to_owned(),
        device_id: resp.device_id.clone(),
        token: resp.token.0.clone(),
    })?;
    Ok(knew)
}
