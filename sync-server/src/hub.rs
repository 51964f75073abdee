//! The rules of who may write what, once, above any storage: joining (which invite joins whom),
//! tokens, link codes, what a device may push (its own actors, its own member's journals, every
//! change numbered right and applying to its document) and withdrawals. Storage ([`Store`])
//! only keeps what the hub decided; the hub never speaks SQL and the store never decides.
//!
//! A push is planned on the team's head as read, then appended in one write that names that
//! head; when another writer (another server process) got there first, the hub reads again and
//! plans again. Within one process, pushes to one team take turns, so that happens only between
//! processes.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use automerge::{Automerge, Change};
use cairn_core::change::{self, Shape};
use cairn_core::ids::{self, TEAM_DOC};
use cairn_protocol::{
    Bytes, CatchUp, DocState, JoinRequest, JoinResponse, LinkResponse, Pulled, SyncRequest,
    SyncResponse, Token,
};
use sha2::{Digest, Sha256};

use crate::docs::{self, Compactor, DocCache, Loaded};
use crate::store::{
    Append, Device, DeviceInfo, DocsQuery, Entry, Facts, FactsQuery, InviteInfo, Kind, Logged,
    NewInvite, Page, PullQuery, Registration, Store, StoreError, TeamInfo, TeamLog,
};
use crate::{Error, Limits, Result};

/// Documents kept in memory by default: a team's document and the journals its devices write
/// this month, for a few teams.
pub const DOC_CACHE: usize = 512;

/// How often a push is planned again when other server processes keep writing the same team.
const MAX_ATTEMPTS: usize = 16;

/// Pushes to one team take turns in a process: this many turn-keepers, a team hashed to one.
const TURNS: usize = 64;

/// The server's rules over a store.
#[derive(Debug)]
pub struct Hub {
    store: Arc<dyn Store>,
    docs: Arc<DocCache>,
    compactor: Arc<Compactor>,
    turns: Vec<tokio::sync::Mutex<()>>,
    /// Pushes waiting for their team's turn, by team: whoever gets the turn appends them all in
    /// one write (a group commit), so a busy team costs one transaction per turn, not per push.
    waiting: std::sync::Mutex<HashMap<String, Vec<Waiting>>>,
}

/// A push waiting for its team's turn.
#[derive(Debug)]
struct Waiting {
    device: Device,
    docs: Pushed,
    cursor: u64,
    done: tokio::sync::oneshot::Sender<Result<usize>>,
}

/// Pushes one write takes at most.
const MAX_GROUP: usize = 128;

/// Why a group's write did not happen.
enum GroupError {
    /// Another writer came first: plan again.
    Moved,
    /// One push of the group is refused; the others can go.
    One(usize, Error),
    /// Storage failed for all of them.
    All(Error),
}

/// What one sync moved, for the metrics.
#[derive(Clone, Debug, Default)]
pub struct SyncCounts {
    pub stored: usize,
    pub pulled: usize,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `n` random characters of the id alphabet (5 bits each).
pub fn random_code(n: usize) -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(ids::random_text(&bytes, n))
}

/// A device token: 256 random bits.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(format!("cairn_{}", hex(&bytes)))
}

/// An invite code people can type: 20 characters (100 bits) in groups of five.
fn new_invite() -> Result<String> {
    let raw = random_code(20)?;
    Ok(format!(
        "{}-{}-{}-{}",
        &raw[0..5],
        &raw[5..10],
        &raw[10..15],
        &raw[15..20]
    ))
}

fn normalise_invite(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

fn valid_member_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// How long a link code stays good.
const LINK_CODE_MS: i64 = 15 * 60 * 1000;
/// How long a spent or expired invite is kept, so joining with it says why it failed.
const DEAD_INVITE_MS: i64 = 7 * 24 * 3600 * 1000;
/// How often a device's last-seen time is written, so a no-op sync stays a read.
const LAST_SEEN_EVERY_MS: i64 = 60_000;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the blocking pool: automerge work a request causes stays off the runtime.
async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a worker failed: {e}")))
}

impl Hub {
    /// The rules over `store`, keeping up to `cached` documents in memory.
    pub fn new(store: Arc<dyn Store>, cached: usize) -> Hub {
        Hub {
            store,
            docs: Arc::new(DocCache::new(cached)),
            compactor: Arc::default(),
            turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            waiting: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The storage underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How many documents are held in memory.
    pub fn cached_docs(&self) -> usize {
        self.docs.held()
    }

    /// How many documents wait for their snapshot to be kept.
    pub fn compactions_pending(&self) -> usize {
        self.compactor.pending()
    }

    /// The readiness check: a write, so a full disk or a read-only database shows.
    pub async fn ready(&self, now_ms: i64) -> Result<()> {
        Ok(self.store.ready(now_ms).await?)
    }

    async fn turn(&self, team: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        team.hash(&mut h);
        self.turns[h.finish() as usize % TURNS].lock().await
    }

    /// Creates a team with no history yet. Admin commands name teams by name as well as by id,
    /// so a name another team has already (in any case) is refused.
    pub async fn create_team(&self, name: &str, now_ms: i64) -> Result<TeamInfo> {
        let Some(name) = team_name(name) else {
            return Err(Error::BadRequest(
                "a team name has 1 to 100 characters".into(),
            ));
        };
        if let Some((id, other)) = self
            .store
            .team_names()
            .await?
            .into_iter()
            .find(|(_, n)| same_name(n, name))
        {
            return Err(Error::Conflict(format!(
                "a team is named `{other}` already (its id is {id}); give this one another name"
            )));
        }
        let id = random_code(12)?;
        self.store.create_team(&id, name, now_ms).await?;
        Ok(TeamInfo {
            id,
            name: name.to_owned(),
            created_ms: now_ms,
            changes: 0,
            devices: 0,
            log_bytes: 0,
            snapshot_bytes: 0,
            pruned_changes: 0,
            pruned_bytes: 0,
        })
    }

    /// Every team, oldest first.
    pub async fn teams(&self) -> Result<Vec<TeamInfo>> {
        Ok(self.store.teams().await?)
    }

    /// The team `text` names, as (id, name): its id, or its name in any case (a name two teams
    /// share needs the id). A near miss is asked about: `Oters` is not found, and did you mean
    /// `Otters`?
    pub async fn find_team(&self, text: &str) -> Result<(String, String)> {
        let text = text.trim();
        let teams = self.store.team_names().await?;
        if let Some(t) = teams.iter().find(|(id, _)| id == text) {
            return Ok(t.clone());
        }
        let mut named: Vec<&(String, String)> = teams.iter().filter(|(_, n)| n == text).collect();
        if named.is_empty() {
            named = teams.iter().filter(|(_, n)| same_name(n, text)).collect();
        }
        match named.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(format!(
                "no team is named `{text}` or has it as its id{}",
                near_teams(&teams, text)
            ))),
            many => Err(Error::BadRequest(format!(
                "{} teams are named `{text}`; give the id of the one you mean: {}",
                many.len(),
                many.iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Devices, of one team or all, oldest first.
    pub async fn devices(&self, team: Option<&str>) -> Result<Vec<DeviceInfo>> {
        Ok(self.store.devices(team).await?)
    }

    /// Devices as [`Hub::devices`] lists them, each with its member's handle and name as the
    /// team document says (empty before the team's history arrives).
    pub async fn named_devices(&self, team: Option<&str>) -> Result<Vec<NamedDevice>> {
        let devices = self.store.devices(team).await?;
        let mut states: std::collections::HashMap<String, Option<cairn_core::TeamState>> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(devices.len());
        for d in devices {
            if !states.contains_key(&d.team) {
                let state = self.team_state(&d.team).await.ok();
                states.insert(d.team.clone(), state);
            }
            let member = states
                .get(&d.team)
                .and_then(Option::as_ref)
                .and_then(|s| s.member(&d.member));
            out.push(NamedDevice {
                handle: member.map(|m| m.handle.clone()),
                member_name: member.map(|m| m.name.clone()),
                device: d,
            });
        }
        Ok(out)
    }

    /// The invites that can still be used, of one team or all.
    pub async fn invites(&self, team: Option<&str>, now_ms: i64) -> Result<Vec<InviteInfo>> {
        Ok(self.store.invites(team, now_ms).await?)
    }

    /// Takes back an invite named by its code, or by its id (the start of its hash, as
    /// `invite list` shows it, 8 hex digits or more); returns its id.
    pub async fn revoke_invite(&self, code_or_id: &str, now_ms: i64) -> Result<String> {
        let text = code_or_id.trim();
        let by_code = hash(text);
        let live = self.store.invites(None, now_ms).await?;
        let wanted = text.to_lowercase();
        let matches: Vec<&InviteInfo> = live
            .iter()
            .filter(|i| {
                i.code_hash == by_code
                    || (wanted.len() >= 8 && invite_id(&i.code_hash).starts_with(&wanted))
            })
            .collect();
        match matches.as_slice() {
            [one] => {
                self.store.remove_invite(&one.code_hash).await?;
                Ok(invite_id(&one.code_hash))
            }
            [] => Err(Error::NotFound(format!(
                "no live invite has the code or id `{text}` (`cairn-server invite list` shows them)"
            ))),
            _ => Err(Error::BadRequest(format!(
                "`{text}` names {} invites; give more of the id",
                matches.len()
            ))),
        }
    }

    /// Revokes a device: its token stops working with the next request, on every server.
    pub async fn revoke(&self, device: &str, now_ms: i64) -> Result<()> {
        Ok(self.store.revoke(device, now_ms).await?)
    }

    /// Creates an invite to `team` (its id) good for `uses` joins until `expires_ms`, made for
    /// `whom`: anyone, one member (the only way to take over a member who already exists), or
    /// the team's founder (the only way to bring a team its first history).
    pub async fn create_invite(
        &self,
        team: &str,
        uses: u32,
        expires_ms: i64,
        now_ms: i64,
        whom: Whom<'_>,
    ) -> Result<String> {
        if uses == 0 {
            return Err(Error::BadRequest("an invite needs at least one use".into()));
        }
        let log = self.store.team_log(team).await?;
        let mut founder = false;
        let member = match whom {
            Whom::Anyone => None,
            Whom::Founder => {
                if uses != 1 {
                    return Err(Error::BadRequest(
                        "a founder's invite is good for one device".into(),
                    ));
                }
                if log.head > 0 {
                    return Err(Error::Conflict(format!(
                        "team {team} has its history already: its founder brought it; invite \
                         members with `cairn-server invite create --team {team}`"
                    )));
                }
                founder = true;
                None
            }
            Whom::Member(who) => {
                let state = self.team_state(team).await?;
                if state.members.is_empty() {
                    return Err(Error::Conflict(format!(
                        "team {team} has no history yet, so no member to make an invite for: \
                         its founder brings it first, with the founder's invite \
                         (`cairn-server invite create --team {team} --founder`)"
                    )));
                }
                let who = who.trim();
                let found = match state.member(who) {
                    Some(m) => m.id.clone(),
                    None => state
                        .member_by_handle(who.trim_start_matches('@'))
                        .map_err(|e| Error::NotFound(e.to_string()))?
                        .id
                        .clone(),
                };
                Some(found)
            }
        };
        let code = new_invite()?;
        self.store
            .add_invite(&NewInvite {
                code_hash: hash(&code),
                team: team.to_owned(),
                member,
                founder,
                uses: i64::from(uses),
                expires_ms,
                created_ms: now_ms,
                created_by: None,
            })
            .await?;
        Ok(code)
    }

    /// Spends an invite: registers a device and returns its token.
    pub async fn join(
        &self,
        req: &JoinRequest,
        now_ms: i64,
        max_devices: u32,
    ) -> Result<JoinResponse> {
        let device_name = req.device_name.trim();
        if device_name.is_empty() || device_name.chars().count() > 100 {
            return Err(Error::BadRequest(
                "a device name has 1 to 100 characters".into(),
            ));
        }
        let invite_hash = hash(&normalise_invite(&req.invite));
        let Some(invite) = self.store.invite(&invite_hash).await? else {
            return Err(Error::Forbidden("this invite code is not valid".into()));
        };
        if invite.expires_ms <= now_ms {
            return Err(Error::Forbidden("this invite code has expired".into()));
        }
        if invite.uses_left <= 0 {
            return Err(Error::Forbidden("this invite code has been used up".into()));
        }
        let team = invite.team;
        let log = self.store.team_log(&team).await?;
        let members = self.store.member_devices(&team).await?;
        let devices: i64 = members.iter().map(|m| m.active).sum();
        let importing_devices: i64 = members.iter().map(|m| m.importing).sum();
        let name = self.store.team_name(&team).await?;
        let mut rename = None;
        // Only the founder's invite brings a team its first history: started here (the device
        // writes the team's first document) or offline (`cairn publish`). An earlier start that
        // never sent anything (its answer lost, say) gives way to it, with any link code it made.
        let publish = invite.founder;
        let member = if invite.founder {
            if log.head > 0 || devices > importing_devices {
                return Err(Error::Forbidden(format!(
                    "this is the founder's invite of team `{name}`, which has its history \
                     already: ask the server's admin for an invite to join it \
                     (`cairn-server invite create --team {team}`)"
                )));
            }
            if req.claim.is_some() {
                return Err(Error::BadRequest(
                    "a founder's invite starts the team: there is nobody in it to claim yet".into(),
                ));
            }
            match &req.publish {
                Some(member) => {
                    if !valid_member_id(member) {
                        return Err(Error::BadRequest(
                            "the member id to publish is not valid".into(),
                        ));
                    }
                    // The team is what its founder made of it: the server's record takes the
                    // name the team's document has.
                    rename = req
                        .team_name
                        .as_deref()
                        .and_then(team_name)
                        .filter(|n| *n != name)
                        .map(str::to_owned);
                    member.clone()
                }
                None if !req.found => {
                    return Err(Error::BadRequest(format!(
                        "this is the founder's invite of team `{name}`, and this cairn is too \
                         old to start a team on the server: upgrade it, or start the team with \
                         `cairn init` and bring it here with `cairn publish URL --invite CODE`"
                    )));
                }
                None => {
                    check_new_name(req)?;
                    random_code(16)?
                }
            }
        } else if req.publish.is_some() {
            if log.head > 0 || devices > importing_devices {
                return Err(Error::Conflict(crate::store::PUBLISHED.into()));
            }
            return Err(Error::NotFounder(format!(
                "only the invite made for the founder of team `{name}` brings it its first \
                 history, and this is not it: ask the server's admin for the founder's invite \
                 (`cairn-server invite create --team {team} --founder`)"
            )));
        } else if importing_devices > 0 {
            return Err(Error::NoHistory(format!(
                "team `{name}` is being started by its founder right now; try again once they \
                 have (a start that will never finish: the server's admin revokes the founder's \
                 device, which `cairn-server device list --team {team}` shows)"
            )));
        } else if let Some(member) = invite.member {
            // An invite made for one member (by the admin, or a link code): the device joins as
            // them. A claim, if given, must name the same member.
            if let Some(handle) = &req.claim {
                let state = self.team_state(&team).await?;
                let claimed = state
                    .member_by_handle(handle.trim().trim_start_matches('@'))
                    .ok()
                    .map(|m| m.id.clone());
                if claimed.as_deref() != Some(member.as_str()) {
                    return Err(Error::Forbidden(format!(
                        "this invite was made for @{}, not for {}",
                        state.handle_of(&member),
                        handle.trim()
                    )));
                }
            }
            member
        } else if let Some(handle) = &req.claim {
            // A general invite never takes over a member who exists: anyone holding it could
            // then post as them. Taking a place needs an invite made for that member.
            return Err(Error::Forbidden(format!(
                "a general invite cannot claim {h}; ask the server's admin for an invite made \
                 for them (`cairn-server invite create --team {team} --member {h}`)",
                h = format_args!("@{}", handle.trim().trim_start_matches('@')),
            )));
        } else {
            if log.head == 0 {
                return Err(Error::NoHistory(format!(
                    "team `{name}` has no history yet: its founder starts it first, with the \
                     founder's invite (`cairn-server team create` printed it; \
                     `cairn-server invite create --team {team} --founder` makes another)"
                )));
            }
            check_new_name(req)?;
            random_code(16)?
        };
        let device_id = random_code(12)?;
        let token = new_token()?;
        let registration = Registration {
            invite_hash,
            team: team.clone(),
            member: member.clone(),
            device_id: device_id.clone(),
            name: device_name.to_owned(),
            token_hash: hash(&token),
            now_ms,
            publish,
            rename,
            max_devices: i64::from(max_devices),
            forget_before_ms: now_ms - DEAD_INVITE_MS,
        };
        match self.store.register(&registration).await {
            Ok(()) => {}
            // The invite's last use went to someone else, or the member has their devices.
            Err(StoreError::Conflict(why)) if why.contains("devices") => {
                return Err(Error::Forbidden(format!(
                    "{why}; the server's admin can revoke one (`cairn-server device list`)"
                )));
            }
            Err(StoreError::Conflict(why)) if why == crate::store::PUBLISHED => {
                return Err(Error::Conflict(why));
            }
            Err(StoreError::Conflict(why)) => return Err(Error::Forbidden(why)),
            Err(e) => return Err(e.into()),
        }
        Ok(JoinResponse {
            team_id: team,
            member_id: member,
            device_id,
            token: Token(token),
            team_name: Some(name),
            founder: publish,
        })
    }

    /// The device holding `token`, if it is known and not revoked.
    pub async fn authenticate(&self, token: &str) -> Result<Device> {
        match self.store.device_by_token(&hash(token)).await? {
            Some(device) if !device.revoked => Ok(device),
            _ => Err(Error::Unauthorized),
        }
    }

    /// A one-time invite that adds another device of `device`'s member; a device holds at most
    /// `max_live` codes that are neither used nor expired.
    pub async fn link(&self, device: &Device, now_ms: i64, max_live: u32) -> Result<LinkResponse> {
        let live = self.store.live_links(&device.id, now_ms).await?;
        if live >= i64::from(max_live) {
            return Err(Error::TooManyRequests {
                message: format!(
                    "this device has {live} link codes waiting; use one or let them expire"
                ),
                retry_after: std::time::Duration::from_secs(15 * 60),
            });
        }
        let code = new_invite()?;
        let expires_at_ms = now_ms + LINK_CODE_MS;
        self.store
            .add_invite(&NewInvite {
                code_hash: hash(&code),
                team: device.team.clone(),
                member: Some(device.member.clone()),
                founder: false,
                uses: 1,
                expires_ms: expires_at_ms,
                created_ms: now_ms,
                created_by: Some(device.id.clone()),
            })
            .await?;
        Ok(LinkResponse {
            invite: code,
            expires_at_ms,
        })
    }

    /// Withdraws stored changes of `team` by their hashes (hex, a unique prefix of 8 or more
    /// digits), with every stored change that depends on them: their content is dropped, they
    /// are never sent again, and one notice per document in the log tells devices to drop them
    /// too. Returns what was withdrawn: (document, hash in hex), the named changes first.
    pub async fn withdraw(
        &self,
        team: &str,
        hashes: &[String],
        now_ms: i64,
    ) -> Result<Vec<(String, String)>> {
        let _turn = self.turn(team).await;
        let store_turn = self.store.turn(team).await?;
        let mut out = Err(Error::busy("the team's log kept moving; try again"));
        for _ in 0..MAX_ATTEMPTS {
            match self.withdraw_once(team, hashes, now_ms).await {
                Err(Error::Conflict(why)) if why == MOVED => continue,
                other => {
                    out = other;
                    break;
                }
            }
        }
        store_turn.release().await;
        out
    }

    async fn withdraw_once(
        &self,
        team: &str,
        hashes: &[String],
        now_ms: i64,
    ) -> Result<Vec<(String, String)>> {
        let log = self.store.team_log(team).await?;
        let mut wanted = HashSet::new();
        let mut docs: Vec<String> = Vec::new();
        for h in hashes {
            let h = h.trim().to_ascii_lowercase();
            if h.len() < 8 || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::BadRequest(format!(
                    "`{h}` is not a change hash (8 to 64 hex digits)"
                )));
            }
            let found = self.store.find_changes(team, &h, 2).await?;
            match found.as_slice() {
                [] => {
                    return Err(Error::NotFound(format!("team {team} holds no change {h}")));
                }
                [_, _, ..] => {
                    return Err(Error::BadRequest(format!(
                        "`{h}` names more than one change; give more of it"
                    )));
                }
                [f] if f.withdrawn => {}
                [f] => {
                    wanted.insert(f.hash.clone());
                    if !docs.contains(&f.doc) {
                        docs.push(f.doc.clone());
                    }
                }
            }
        }
        let mut append = Append {
            base_head: log.head,
            withdrawn_ms: now_ms,
            stored_ms: now_ms,
            ..Append::default()
        };
        let mut out = Vec::new();
        for doc in &docs {
            // Every change of the document (its snapshot holds those pruned from the log), in
            // an order where each comes after its dependencies: a change goes if it is named
            // or depends on one that goes. The document without them is its new snapshot.
            // First the document, which holds everything (what was pruned from the log too), in
            // an order where each change comes after its dependencies: a change goes if it is
            // named or depends on one that goes. The document without them is its new snapshot.
            let loaded = self
                .docs
                .take(team, doc, log.withdrawals)
                .catch_up(&*self.store, team, doc)
                .await?;
            let named = wanted.clone();
            let (gone, rebuilt) = cpu(move || -> Result<(Vec<Vec<u8>>, Vec<u8>)> {
                let broken = |p: &str| Error::Internal(format!("cannot rebuild a document: {p}"));
                let all = change::quietly(|| loaded.doc.get_changes(&[])).map_err(broken)?;
                let mut gone_set: HashSet<Vec<u8>> = HashSet::new();
                let mut gone = Vec::new();
                let mut keep = Vec::with_capacity(all.len());
                for c in all {
                    let h = c.hash().0.to_vec();
                    if named.contains(&h) || c.deps().iter().any(|d| gone_set.contains(&d.0[..])) {
                        gone_set.insert(h.clone());
                        gone.push(h);
                    } else {
                        keep.push(c);
                    }
                }
                let mut doc = Automerge::new();
                change::quietly(|| doc.apply_changes(keep))
                    .map_err(broken)?
                    .map_err(|e| broken(&e.to_string()))?;
                let saved = change::quietly(|| doc.save()).map_err(broken)?;
                Ok((gone, saved))
            })
            .await??;
            // Then the log, in its order: every entry of what goes loses its content, and so
            // does a change stored by an older server that never applied to the document (only
            // the log has it) with what was made on it.
            let mut named: HashSet<Vec<u8>> = wanted.clone();
            named.extend(gone.iter().cloned());
            let mut noticed: HashSet<Vec<u8>> = gone.iter().cloned().collect();
            let mut all_gone = gone;
            for (seq, data) in self.store.doc_changes(team, doc, 0).await? {
                let Ok(change) = Change::from_bytes(data) else {
                    continue;
                };
                let h = change.hash().0.to_vec();
                if named.contains(&h) || change.deps().iter().any(|d| named.contains(&d.0[..])) {
                    append.withdraw.push(seq);
                    named.insert(h.clone());
                    if noticed.insert(h.clone()) {
                        all_gone.push(h);
                    }
                }
            }
            let mut notice = Vec::with_capacity(all_gone.len() * 32);
            for h in &all_gone {
                notice.extend_from_slice(h);
                out.push((doc.clone(), hex(h)));
            }
            let seq = log.head + 1 + append.entries.len() as i64;
            append.entries.push(Entry {
                doc: doc.clone(),
                hash: Sha256::digest([b"withdraw:".as_slice(), &notice].concat()).to_vec(),
                actor: Vec::new(),
                actor_seq: seq,
                device: String::new(),
                data: notice,
                withdrawn_ms: None,
                kind: Kind::Notice,
            });
            append.snapshots.push((doc.clone(), rebuilt));
        }
        append.withdrawals = out.len() as i64;
        if !append.entries.is_empty() {
            self.store
                .append(team, &append)
                .await
                .map_err(moved_or_error)?;
        }
        for doc in &docs {
            self.docs.forget(team, doc);
        }
        out.sort_by_key(|(_, h)| !wanted.contains(&unhex(h).unwrap_or_default()));
        Ok(out)
    }

    /// One exchange: stores what `device` pushed (checked, applied to its document, once), then
    /// pages out the change log after the request's cursor. Either the whole push is stored or
    /// none of it.
    pub async fn sync(
        &self,
        device: &Device,
        req: SyncRequest,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(SyncResponse, SyncCounts)> {
        let mut counts = SyncCounts {
            bytes_in: req
                .push
                .iter()
                .flat_map(|d| d.changes.iter())
                .map(|c| c.0.len())
                .sum(),
            ..SyncCounts::default()
        };
        let pushed: usize = req.push.iter().map(|d| d.changes.len()).sum();
        let SyncRequest {
            cursor,
            push,
            max_pull,
            import_done,
            withdrawals,
            snapshots,
            catch_up,
        } = req;
        // Inspect and decode every change first, on the blocking pool: the work a client can
        // cause is bounded by what it sent and decided before storage is asked anything.
        let docs = {
            let (device, limits) = (device.clone(), limits.clone());
            cpu(move || decode_push(&device, push, &limits)).await??
        };
        let mut acked = 0u32;
        // What the device pushed it holds: not sent back in this exchange's page.
        let skip: HashSet<Vec<u8>> = docs
            .iter()
            .flat_map(|(_, changes)| changes.iter().map(|(c, _)| c.hash().0.to_vec()))
            .collect();
        if !docs.is_empty() {
            counts.stored = self.push(device, docs, cursor).await?;
            acked = pushed as u32;
        }
        let behind = u64::try_from(device.team_head)
            .unwrap_or(0)
            .saturating_sub(cursor);
        // Entries up to the last one pruned are gone from the log: a device behind it can only
        // catch up from whole documents.
        let pruned = cursor < u64::try_from(device.team_pruned).unwrap_or(0);
        // A request that pulls nothing (`max_pull: 0`, as `cairn doctor` asks) is answered with
        // the head alone, whatever the device's place.
        let pulls = max_pull != Some(0);
        let gone = || {
            Error::Conflict(
                "this server pruned the part of the team's history this device still needs; an \
                 up-to-date cairn catches up from whole documents: update cairn, then sync"
                    .into(),
            )
        };
        if pruned && pulls && !snapshots {
            return Err(gone());
        }
        let by_docs =
            snapshots && pulls && (pruned || catch_up.is_some() || behind > limits.catch_up_after);
        let mut resp = if by_docs {
            self.pull_docs(device, cursor, catch_up, limits, &mut counts)
                .await?
        } else {
            let page = self
                .pull(
                    device,
                    cursor,
                    skip,
                    max_pull,
                    withdrawals,
                    limits,
                    &mut counts,
                )
                .await?;
            match page {
                Some(resp) => resp,
                // Pruned since the token was read: the log has holes before the cursor.
                None if snapshots => {
                    self.pull_docs(device, cursor, None, limits, &mut counts)
                        .await?
                }
                None => return Err(gone()),
            }
        };
        resp.acked = acked;

        let stale = device
            .last_seen_ms
            .is_none_or(|t| now_ms - t > LAST_SEEN_EVERY_MS);
        let finishing = import_done && device.importing;
        if finishing || stale {
            self.store.touch(&device.id, now_ms, finishing).await?;
        }
        Ok((resp, counts))
    }

    /// The log after `cursor`, one change at a time.
    #[allow(clippy::too_many_arguments)]
    async fn pull(
        &self,
        device: &Device,
        cursor: u64,
        skip: HashSet<Vec<u8>>,
        max_pull: Option<u32>,
        withdrawals: bool,
        limits: &Limits,
        counts: &mut SyncCounts,
    ) -> Result<Option<SyncResponse>> {
        let max = max_pull
            .unwrap_or(limits.max_page_changes)
            .min(limits.max_page_changes);
        let page = if skip.is_empty() && cursor == device.team_head as u64 {
            // Nothing pushed, nothing new as of the token's check: the most common sync.
            Page {
                head: device.team_head,
                entries: Vec::new(),
                more: false,
                pruned: device.team_pruned,
            }
        } else {
            self.store
                .pull(&PullQuery {
                    team: device.team.clone(),
                    skip,
                    after: i64::try_from(cursor).unwrap_or(i64::MAX),
                    max,
                    max_bytes: limits.max_page_bytes,
                    notices: withdrawals,
                })
                .await?
        };
        let head = page.head as u64;
        if cursor > head {
            return Err(past_head(cursor, head));
        }
        if max > 0 && cursor < u64::try_from(page.pruned).unwrap_or(0) {
            return Ok(None);
        }
        let pulled: Vec<Pulled> = page.entries.into_iter().map(pulled_entry).collect();
        let (cursor, more) = if max == 0 {
            (cursor, cursor < head)
        } else if page.more {
            let at = pulled.last().map_or(cursor, |p| p.seq);
            (at, at < head)
        } else {
            (head, false)
        };
        counts.pulled = pulled.len();
        counts.bytes_out = pulled.iter().map(|p| p.change.0.len()).sum();
        Ok(Some(SyncResponse {
            pulled,
            cursor,
            more,
            head,
            ..SyncResponse::default()
        }))
    }

    /// A page of whole documents for a device far behind: each document changed after its
    /// cursor, as its snapshot and the changes after it, in the order of their ids. The cursor
    /// moves to the head as of the first page once the last document has gone.
    async fn pull_docs(
        &self,
        device: &Device,
        cursor: u64,
        going: Option<CatchUp>,
        limits: &Limits,
        counts: &mut SyncCounts,
    ) -> Result<SyncResponse> {
        let team = device.team.as_str();
        // A catch-up goes on where it stood, unless that cannot be right (a server restored
        // from an older backup, a state that was never this server's): then it starts again.
        let going = going.filter(|c| {
            c.through > cursor
                && c.through <= u64::try_from(device.team_head).unwrap_or(0)
                && c.after_doc.len() <= MAX_DOC_ID
        });
        let page = self
            .store
            .pull_docs(&DocsQuery {
                team: team.to_owned(),
                after: i64::try_from(cursor).unwrap_or(i64::MAX),
                after_doc: going
                    .as_ref()
                    .map(|c| c.after_doc.clone())
                    .unwrap_or_default(),
                max_docs: MAX_PAGE_DOCS,
                max_bytes: limits.max_page_bytes,
                // The first page says what was withdrawn meanwhile.
                notices_through: going.is_none().then_some(i64::MAX),
            })
            .await?;
        let head = page.head as u64;
        if cursor > head {
            return Err(past_head(cursor, head));
        }
        let through = going.as_ref().map_or(head, |c| c.through);
        let mut docs = Vec::with_capacity(page.docs.len());
        let mut left = page.left as u64;
        let mut compacted = 0;
        let total = page.docs.len();
        for (i, read) in page.docs.into_iter().enumerate() {
            let tail_bytes = read.tail.iter().map(|(_, d)| d.len()).sum();
            // Known only when the device lacks part of what it holds.
            let snapshot_bytes = read.snapshot.as_ref().map_or(0, |(_, d)| d.len());
            let compact = (read.snapshot.is_some() || cursor == 0)
                && docs::snapshot_due(read.tail.len(), tail_bytes, snapshot_bytes);
            if compact && compacted == MAX_COMPACT_PER_PAGE {
                // Enough work for one request: the rest come on the next page.
                left += (total - i) as u64;
                break;
            }
            let mut state = None;
            if compact {
                compacted += 1;
                state = self.compact(team, &read.doc, page.withdrawals).await?;
            }
            let state = state.unwrap_or_else(|| DocState {
                doc: read.doc.clone(),
                snapshot: Bytes(read.snapshot.map(|(_, d)| d).unwrap_or_default()),
                changes: read.tail.into_iter().map(|(_, d)| Bytes(d)).collect(),
            });
            counts.pulled += state.changes.len() + usize::from(!state.snapshot.is_empty());
            counts.bytes_out +=
                state.snapshot.0.len() + state.changes.iter().map(|c| c.0.len()).sum::<usize>();
            docs.push(state);
        }
        let pulled = page.notices.into_iter().map(pulled_entry).collect();
        let catch_up = (left > 0).then(|| CatchUp {
            through,
            after_doc: docs.last().map(|d| d.doc.clone()).unwrap_or_default(),
        });
        let cursor = if left > 0 { cursor } else { through };
        Ok(SyncResponse {
            pulled,
            cursor,
            more: left > 0 || cursor < head,
            head,
            docs,
            catch_up,
            docs_left: left,
            ..SyncResponse::default()
        })
    }

    /// Compacts `doc` into a snapshot as of the latest committed entry, keeps it, and gives it
    /// whole; `None` when it could not be kept (a withdrawal came meanwhile).
    async fn compact(&self, team: &str, doc: &str, withdrawals: i64) -> Result<Option<DocState>> {
        let loaded = self
            .docs
            .take(team, doc, withdrawals)
            .catch_up(&*self.store, team, doc)
            .await?;
        let (loaded, kept) = docs::keep_snapshot(&*self.store, team, doc, loaded).await;
        // Only committed entries were folded in: the document can go back as it is.
        self.docs.put(team, doc, loaded);
        Ok(kept.map(|data| DocState {
            doc: doc.to_owned(),
            snapshot: Bytes(data),
            changes: Vec::new(),
        }))
    }

    /// Stores a push, grouped with the other pushes to its team waiting meanwhile; the number of
    /// its changes newly stored.
    async fn push(&self, device: &Device, docs: Pushed, cursor: u64) -> Result<usize> {
        let team = device.team.clone();
        let (done, mut result) = tokio::sync::oneshot::channel();
        lock(&self.waiting)
            .entry(team.clone())
            .or_default()
            .push(Waiting {
                device: device.clone(),
                docs,
                cursor,
                done,
            });
        let _turn = self.turn(&team).await;
        // Appended by whoever had the turn before?
        if let Ok(done) = result.try_recv() {
            return done;
        }
        let group = {
            let mut waiting = lock(&self.waiting);
            let queue = waiting.entry(team.clone()).or_default();
            let group: Vec<Waiting> = queue.drain(..queue.len().min(MAX_GROUP)).collect();
            if queue.is_empty() {
                waiting.remove(&team);
            }
            group
        };
        self.append_group(&team, group).await;
        result
            .await
            .unwrap_or_else(|_| Err(Error::Internal("a push was dropped unanswered".into())))
    }

    /// Appends a group of pushes in one write, answering each. A push refused leaves the group
    /// and the rest is planned again; so is everything when another writer came first.
    async fn append_group(&self, team: &str, group: Vec<Waiting>) {
        // The team's turn among every server process on the database, for the whole group.
        let turn = match self.store.turn(team).await {
            Ok(turn) => turn,
            Err(e) => {
                let e = Error::from(e);
                for w in group {
                    let _ = w.done.send(Err(e.clone()));
                }
                return;
            }
        };
        self.answer_group(team, group).await;
        turn.release().await;
    }

    /// Appends a group (the team's turn held), answering each of its pushes.
    async fn answer_group(&self, team: &str, mut group: Vec<Waiting>) {
        let mut moved = 0;
        while !group.is_empty() {
            match self.try_group(team, &group).await {
                Ok(stored) => {
                    for (w, n) in group.into_iter().zip(stored) {
                        let _ = w.done.send(Ok(n));
                    }
                    return;
                }
                Err(GroupError::One(i, e)) => {
                    let _ = group.remove(i).done.send(Err(e));
                }
                Err(GroupError::Moved) if moved < MAX_ATTEMPTS => moved += 1,
                Err(GroupError::Moved) => {
                    for w in group {
                        let _ = w
                            .done
                            .send(Err(Error::busy("the team's log kept moving; try again")));
                    }
                    return;
                }
                Err(GroupError::All(e)) => {
                    for w in group {
                        let _ = w.done.send(Err(e.clone()));
                    }
                    return;
                }
            }
        }
    }

    /// Plans a group on the team's log as it stands and appends it: how many changes of each
    /// push were new.
    async fn try_group(
        &self,
        team: &str,
        group: &[Waiting],
    ) -> std::result::Result<Vec<usize>, GroupError> {
        let all = |e: StoreError| GroupError::All(e.into());
        let mut query = FactsQuery::default();
        let mut seen = HashSet::new();
        // Sets beside the lists: a group can name thousands of documents and actors.
        let mut names: Vec<String> = Vec::new();
        let mut named = HashSet::new();
        let mut actors = HashSet::new();
        for w in group {
            for (doc, changes) in &w.docs {
                if named.insert(doc.as_str()) {
                    names.push(doc.clone());
                }
                for (c, _) in changes {
                    let actor = c.actor_id().to_bytes().to_vec();
                    if seen.insert((doc.clone(), actor.clone())) {
                        query.tips.push((doc.clone(), actor.clone()));
                        if actors.insert(actor.clone()) {
                            query.actors.push(actor);
                        }
                    }
                    query.hashes.push(c.hash().0.to_vec());
                    // Whether it was made on a withdrawn change.
                    query.hashes.extend(c.deps().iter().map(|d| d.0.to_vec()));
                }
            }
        }
        let facts = self.store.facts(team, &query).await.map_err(all)?;
        let log = facts.log;
        if let Some(i) = group.iter().position(|w| w.cursor > log.head as u64) {
            return Err(GroupError::One(
                i,
                past_head(group[i].cursor, log.head as u64),
            ));
        }
        // The group's documents, caught up with the log: their tails in one read.
        let mut taken = Vec::with_capacity(names.len());
        for doc in &names {
            let l = self.docs.take(team, doc, log.withdrawals);
            match l.start_from_snapshot(&*self.store, team, doc).await {
                Ok(l) => taken.push(l),
                Err(e) => {
                    self.put_back(team, &names, taken);
                    return Err(GroupError::All(e));
                }
            }
        }
        let after: Vec<(String, i64)> = names
            .iter()
            .zip(&taken)
            .map(|(doc, l)| (doc.clone(), l.seq))
            .collect();
        let rows = match self.store.docs_changes(team, &after).await {
            Ok(rows) => rows,
            Err(e) => {
                self.put_back(team, &names, taken);
                return Err(all(e));
            }
        };
        let loaded = {
            let (team, names) = (team.to_owned(), names.clone());
            cpu(move || {
                let mut tails: HashMap<String, Vec<(i64, Vec<u8>)>> = HashMap::new();
                for (doc, seq, data) in rows {
                    tails.entry(doc).or_default().push((seq, data));
                }
                names
                    .iter()
                    .zip(taken)
                    .map(|(doc, l)| l.fold(&team, doc, tails.remove(doc).unwrap_or_default()))
                    .collect::<Vec<Loaded>>()
            })
            .await
            .map_err(GroupError::All)?
        };
        let pushes: Vec<(Device, Pushed)> = group
            .iter()
            .map(|w| (w.device.clone(), w.docs.clone()))
            .collect();
        let planned = {
            let names = names.clone();
            cpu(move || plan(&pushes, &names, loaded, &facts, log))
                .await
                .map_err(GroupError::All)?
        };
        let (mut append, loaded, stored) = match planned {
            Ok(plan) => plan,
            Err((i, e, loaded)) => {
                self.put_back(team, &names, loaded);
                return Err(GroupError::One(i, e));
            }
        };
        if append.entries.is_empty() {
            self.put_back(team, &names, loaded);
            return Ok(stored);
        }
        append.stored_ms = crate::store::now_ms();
        match self.store.append(team, &append).await {
            Ok(_) => {
                for (doc, l) in names.iter().zip(loaded) {
                    let due = l.snapshot_due();
                    self.docs.put(team, doc, l);
                    if due {
                        self.compactor.due(&self.store, &self.docs, team, doc);
                    }
                }
                Ok(stored)
            }
            Err(e) => {
                // Documents a failed write applied changes to are ahead of the log: dropped.
                self.put_back(team, &names, loaded);
                match e {
                    StoreError::Conflict(_) => Err(GroupError::Moved),
                    e => Err(all(e)),
                }
            }
        }
    }

    /// Puts back in the cache the documents a request did not change.
    fn put_back(&self, team: &str, names: &[String], loaded: Vec<Loaded>) {
        for (doc, l) in names.iter().zip(loaded) {
            if !l.dirty {
                self.docs.put(team, doc, l);
            }
        }
    }

    /// The team as its team document says (for claiming a member by handle).
    async fn team_state(&self, team: &str) -> Result<cairn_core::TeamState> {
        let log = self.store.team_log(team).await?;
        let loaded = self
            .docs
            .take(team, TEAM_DOC, log.withdrawals)
            .catch_up(&*self.store, team, TEAM_DOC)
            .await?;
        let state = cairn_core::team::read(&loaded.doc).map_err(|e| Error::Internal(e.to_string()));
        // Only committed entries were read, so the document can go back as it is.
        self.docs.put(team, TEAM_DOC, loaded);
        state
    }
}

/// A device with its member's handle and name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NamedDevice {
    #[serde(flatten)]
    pub device: DeviceInfo,
    pub handle: Option<String>,
    pub member_name: Option<String>,
}

/// An invite's id: the first 12 hex digits of its code's hash (the code itself is never kept).
pub fn invite_id(code_hash: &[u8]) -> String {
    code_hash
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whom an invite is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whom<'a> {
    /// Anyone: each use adds a new member.
    Anyone,
    /// One member (a handle, `@ana` or `ana`, or a member id): it joins a device as them.
    Member(&'a str),
    /// The team's founder: one device that brings the team its first history, started on the
    /// server (`cairn join`) or offline (`cairn publish`).
    Founder,
}

/// A team's name as given, trimmed, when it has 1 to 100 characters.
fn team_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty() && name.chars().count() <= 100).then_some(name)
}

/// Two team names that an admin would take for one.
fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// A new member says who they are.
fn check_new_name(req: &JoinRequest) -> Result<()> {
    match req.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => Ok(()),
        _ => Err(Error::BadRequest("a new member needs a name".into())),
    }
}

/// "; did you mean `Otters`?" for the teams whose name (or id) is a slip of the keyboard away
/// from `typed`, holds it or is held by it; "" for none.
fn near_teams(teams: &[(String, String)], typed: &str) -> String {
    let key = typed.trim().to_lowercase();
    if key.chars().count() < 2 {
        return String::new();
    }
    let slips_allowed = if key.chars().count() <= 4 { 1 } else { 2 };
    let mut near: Vec<(usize, &str)> = teams
        .iter()
        .filter_map(|(id, name)| {
            let lower = name.to_lowercase();
            let slips = ids::typo_distance(&key, &lower).min(ids::typo_distance(&key, id));
            let close = slips <= slips_allowed
                || (key.chars().count() >= 3 && (lower.contains(&key) || key.contains(&lower)));
            close.then_some((slips, name.as_str()))
        })
        .collect();
    near.sort_by_key(|(slips, name)| (*slips, name.len()));
    near.dedup_by_key(|(_, name)| *name);
    let names: Vec<String> = near.iter().take(3).map(|(_, n)| format!("`{n}`")).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        [first @ .., last] => format!("; did you mean {} or {last}?", first.join(", ")),
    }
}

/// A push's changes, grouped by document in the order they came, each with where it was in the
/// request (for messages).
type Pushed = Vec<(String, Vec<(Change, String)>)>;

/// What a write that found the log moved on says to the hub (never to a client).
const MOVED: &str = "the team's log moved on";

/// A log entry as a device receives it.
fn pulled_entry(e: Logged) -> Pulled {
    let (change, withdrawn) = match e.kind {
        Kind::Notice => (Bytes(Vec::new()), e.data.chunks(32).map(hex).collect()),
        Kind::Change => (Bytes(e.data), Vec::new()),
    };
    Pulled {
        seq: e.seq as u64,
        doc: e.doc,
        change,
        withdrawn,
    }
}

/// Documents one catch-up page holds at most (and bytes: [`Limits::max_page_bytes`], which
/// bounds a page first once documents are larger than a kilobyte). A small team's journals hold a
/// few events each: 4,000 of them to a page let a device take a team of 10,000 events in one
/// page (0.96x the time of pages of 1,000 in paired runs).
const MAX_PAGE_DOCS: u32 = 4_000;
/// Documents one catch-up page compacts at most (the rest come on the next page).
const MAX_COMPACT_PER_PAGE: usize = 32;
/// The longest document id a catch-up state may name.
const MAX_DOC_ID: usize = 256;

fn moved_or_error(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(_) => Error::Conflict(MOVED.into()),
        e => e.into(),
    }
}

fn past_head(cursor: u64, head: u64) -> Error {
    Error::Conflict(format!(
        "the cursor {cursor} is past the team's last change {head}: this server lost history \
         or the replica came from elsewhere"
    ))
}

/// Checks a push's shape and decodes its changes, grouped by document in the order they came.
fn decode_push(
    device: &Device,
    push: Vec<cairn_protocol::DocChanges>,
    limits: &Limits,
) -> Result<Pushed> {
    let pushed: usize = push.iter().map(|d| d.changes.len()).sum();
    if pushed > limits.max_push_changes {
        return Err(Error::TooLarge(format!(
            "a sync pushes at most {} changes; this one had {pushed}",
            limits.max_push_changes
        )));
    }
    // As many lists as changes at most (an empty list costs nothing but the parsing).
    if push.len() > limits.max_push_changes {
        return Err(Error::TooLarge(format!(
            "a sync pushes at most {} lists of changes; this one had {}",
            limits.max_push_changes,
            push.len()
        )));
    }
    let mut docs: Pushed = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut ops = 0u64;
    for dc in push.into_iter().filter(|dc| !dc.changes.is_empty()) {
        check_doc(device, &dc.doc)?;
        let mut decoded = Vec::with_capacity(dc.changes.len());
        for (i, bytes) in dc.changes.iter().enumerate() {
            let at = format!("change {} of {}", i + 1, dc.doc);
            let (c, shape) = decode(&bytes.0, limits, &at)?;
            ops += shape.ops;
            if ops > limits.max_push_ops {
                return Err(Error::TooLarge(format!(
                    "a sync pushes at most {} operations; send fewer changes at once",
                    limits.max_push_ops
                )));
            }
            decoded.push((c, at));
        }
        match index.get(&dc.doc) {
            Some(&i) => docs[i].1.extend(decoded),
            None => {
                index.insert(dc.doc.clone(), docs.len());
                docs.push((dc.doc, decoded));
            }
        }
    }
    Ok(docs)
}

/// Inspects and decodes one pushed change with work bounded by its size, refusing what no
/// honest client sends: oversize, compressed, damaged or too costly changes, trailing bytes,
/// counters past 32 bits, author footers.
fn decode(bytes: &[u8], limits: &Limits, at: &str) -> Result<(Change, Shape)> {
    change::decode(bytes, &limits.change).map_err(|e| match e {
        change::Refusal::TooLarge { .. } => Error::TooLarge(format!("{at}: {e}")),
        _ => Error::BadRequest(format!("{at}: {e}")),
    })
}

/// A device writes the team document and its own member's journals; a publishing device brings
/// the whole offline history, every member's journals included.
fn check_doc(device: &Device, doc: &str) -> Result<()> {
    if !ids::is_doc_id(doc) {
        return Err(Error::BadRequest(format!("`{doc}` names no document")));
    }
    if doc == TEAM_DOC || device.importing || ids::journal_owner(doc) == Some(&device.member) {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "a device writes only its own member's journals, not {doc}"
    )))
}

/// What a group of pushes comes to: the write, the documents (in `names` order) with its changes
/// applied, how many changes of each push are new. On a refusal, which push, why, and the
/// documents (those it changed are dirty).
type Plan = std::result::Result<(Append, Vec<Loaded>, Vec<usize>), (usize, Error, Vec<Loaded>)>;

/// Decides, change by change, what of a group of pushes the log takes: each change must be
/// signed by one of its device's actors, be new (a change the log holds is acknowledged again),
/// come next in its actor's numbering, and apply to its document as the log has it. Nothing
/// that fails here is stored, so nothing stored can stop a replica.
fn plan(
    pushes: &[(Device, Pushed)],
    names: &[String],
    mut loaded: Vec<Loaded>,
    facts: &Facts,
    log: TeamLog,
) -> Plan {
    let mut planner = Planner {
        facts,
        log,
        append: Append {
            base_head: log.head,
            ..Append::default()
        },
        owned: HashMap::new(),
        known: HashMap::new(),
        tips: HashMap::new(),
        stored: 0,
    };
    let at: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut stored = Vec::with_capacity(pushes.len());
    for (i, (device, docs)) in pushes.iter().enumerate() {
        let before = planner.stored;
        for (doc, changes) in docs {
            let Some(&at_doc) = at.get(doc.as_str()) else {
                continue;
            };
            for (change, at) in changes {
                if let Err(e) = planner.take(device, doc, &mut loaded[at_doc], change.clone(), at) {
                    return Err((i, e, loaded));
                }
            }
        }
        stored.push(planner.stored - before);
    }
    Ok((planner.append, loaded, stored))
}

struct Planner<'a> {
    facts: &'a Facts,
    log: TeamLog,
    append: Append,
    /// Actors this group claims, and for which device.
    owned: HashMap<Vec<u8>, String>,
    /// Hashes this group appends: (document, dropped).
    known: HashMap<Vec<u8>, (String, bool)>,
    /// (document, actor) -> (sequence, hash) of the last change this group appends.
    tips: HashMap<(String, Vec<u8>), (i64, Vec<u8>)>,
    stored: usize,
}

impl Planner<'_> {
    fn known(&self, hash: &[u8]) -> Option<(&str, bool)> {
        self.known
            .get(hash)
            .or_else(|| self.facts.known.get(hash))
            .map(|(d, w)| (d.as_str(), *w))
    }

    fn take(
        &mut self,
        device: &Device,
        doc: &str,
        loaded: &mut Loaded,
        change: Change,
        at: &str,
    ) -> Result<()> {
        let actor = change.actor_id().to_bytes().to_vec();
        match self
            .facts
            .owners
            .get(&actor)
            .or_else(|| self.owned.get(&actor))
        {
            Some(d) if *d != device.id => {
                return Err(Error::Forbidden(format!(
                    "{at} is signed by another device's actor"
                )));
            }
            Some(_) => {}
            None => {
                self.owned.insert(actor.clone(), device.id.clone());
                self.append.claims.push((actor.clone(), device.id.clone()));
            }
        }
        let hash = change.hash().0.to_vec();
        // A change the admin withdrew, or one made on top of one, is taken and dropped: the
        // device drops it too once it reads the notice, and must not be stuck pushing it
        // meanwhile.
        if let Some((known_doc, withdrawn)) = self.known(&hash) {
            if withdrawn {
                return Ok(());
            }
            if known_doc != doc {
                return Err(Error::BadRequest(format!(
                    "{at} is already stored in another document"
                )));
            }
            return Ok(());
        }
        // Held by the document but no longer in the log (pruned): acknowledged again.
        if change::quietly(|| loaded.doc.get_change_meta_by_hash(&change.hash()).is_some())
            .unwrap_or(false)
        {
            return Ok(());
        }
        let on_withdrawn = self.log.withdrawals > 0
            && change
                .deps()
                .iter()
                .any(|d| self.known(&d.0).is_some_and(|(_, w)| w));
        // An actor's changes to a document are numbered 1, 2, 3, ... and automerge refuses any
        // other order, so the log takes them only that way: one gap or reuse would stop every
        // replica.
        let key = (doc.to_owned(), actor.clone());
        let (last, prev) = self
            .tips
            .get(&key)
            .or_else(|| self.facts.tips.get(&key))
            .map_or((0, None), |(s, h)| (*s, Some(h.clone())));
        let seq = change.seq() as i64;
        if seq <= last {
            return Err(Error::ActorReused {
                message: format!(
                    "{at} reuses sequence number {seq} of its actor with other content: the \
                     replica was restored or copied"
                ),
                doc: doc.to_owned(),
                change: hash.iter().map(|b| format!("{b:02x}")).collect(),
            });
        }
        if seq != last + 1 {
            return Err(Error::BadRequest(format!(
                "{at} is number {seq} of its actor, but the server holds {last} before it"
            )));
        }
        // Made on top of a withdrawn change: taken and dropped at once, and kept as withdrawn
        // (with no content), so what was made on top of it in turn is dropped too and the
        // actor's numbering holds.
        let (data, withdrawn_ms) = if on_withdrawn {
            self.append.withdrawals += 1;
            (Vec::new(), Some(0))
        } else {
            // Its operations come after those of its actor's previous change: an actor numbers
            // its operations once, and two operations with one number would break every replica.
            let prev_end = prev
                .and_then(|h| automerge::ChangeHash::try_from(h.as_slice()).ok())
                .and_then(|h| {
                    change::quietly(|| loaded.doc.get_change_meta_by_hash(&h).map(|m| m.max_op))
                        .ok()
                        .flatten()
                });
            if prev_end.is_some_and(|end| change.start_op().get() <= end) {
                return Err(Error::BadRequest(format!(
                    "{at} numbers its operations again from before its actor's previous change"
                )));
            }
            for dep in change.deps() {
                let missing = change::quietly(|| loaded.doc.get_change_meta_by_hash(dep).is_none());
                if missing.unwrap_or(true) {
                    return Err(Error::BadRequest(format!(
                        "{at} depends on a change of {doc} the server does not have"
                    )));
                }
            }
            // The one check that matters most: the change applies to the document as every
            // replica will hold it.
            let raw = change.raw_bytes().to_vec();
            loaded.dirty = true;
            loaded.folded(raw.len());
            if let Err(e) = change::apply(&mut loaded.doc, vec![change]) {
                return Err(Error::BadRequest(format!("{at}: {e}")));
            }
            (raw, None)
        };
        let number = self.append.base_head + 1 + self.append.entries.len() as i64;
        self.append.entries.push(Entry {
            doc: doc.to_owned(),
            hash: hash.clone(),
            actor,
            actor_seq: seq,
            device: device.id.clone(),
            data,
            withdrawn_ms,
            kind: Kind::Change,
        });
        self.known
            .insert(hash.clone(), (doc.to_owned(), on_withdrawn));
        self.tips.insert(key, (seq, hash));
        if !on_withdrawn {
            loaded.seq = number;
            self.stored += 1;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_team_name_is_asked_about() {
        let teams = vec![
            ("k3x9q2m7p4ab".to_owned(), "Otters".to_owned()),
            ("z8y7x6w5v4ut".to_owned(), "Guild of Rustaceans".to_owned()),
        ];
        assert_eq!(near_teams(&teams, "Oters"), "; did you mean `Otters`?");
        assert_eq!(near_teams(&teams, "otetrs"), "; did you mean `Otters`?");
        assert_eq!(
            near_teams(&teams, "guild"),
            "; did you mean `Guild of Rustaceans`?"
        );
        // An id with a slip in it.
        assert_eq!(
            near_teams(&teams, "k3x9q2m7p4ba"),
            "; did you mean `Otters`?"
        );
        assert_eq!(near_teams(&teams, "Badgers"), "");
        assert_eq!(near_teams(&teams, "o"), "");
    }

    #[test]
    fn team_names_are_trimmed_and_bounded() {
        assert_eq!(team_name("  Otters "), Some("Otters"));
        assert_eq!(team_name("   "), None);
        assert_eq!(team_name(&"x".repeat(101)), None);
        assert!(same_name("otters", " OTTERS"));
        assert!(!same_name("Otters", "Otter"));
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
