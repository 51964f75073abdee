//! Access: teams, invites, joining (which invite joins whom), device tokens and link codes.

use cairn_core::ids;
use cairn_protocol::{DeviceKind, JoinRequest, JoinResponse, LinkResponse, Token};

use super::{Hub, hash, hex, random_code};
use crate::store::Device;
use crate::store::{DeviceInfo, InviteInfo, NewInvite, Registration, Seen, StoreError, TeamInfo};
use crate::{Error, Result};

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

impl Hub {
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
        let mut relay = false;
        let member = match whom {
            Whom::Anyone => None,
            Whom::Relay => {
                relay = true;
                None
            }
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
                relay,
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
        let relay = req.device_kind == DeviceKind::Relay;
        match (invite.relay, relay) {
            (true, false) => {
                return Err(Error::WrongKind(
                    "this invite is for a relay: use it with `cairn-relay`, not `cairn join`; \
                     ask the server's admin for a member's invite to join the team yourself"
                        .into(),
                ));
            }
            (false, true) => {
                return Err(Error::WrongKind(format!(
                    "this invite is for members, not a relay: ask the server's admin for a \
                     relay's invite (`cairn-server invite create --team {} --relay`)",
                    invite.team
                )));
            }
            _ => {}
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
        let publish = invite.founder && !relay;
        let member = if relay {
            if req.publish.is_some() || req.claim.is_some() || req.found {
                return Err(Error::BadRequest(
                    "a relay is no member: it cannot publish, claim a member or found a team"
                        .into(),
                ));
            }
            if log.head == 0 || importing_devices > 0 {
                return Err(Error::NoHistory(format!(
                    "team `{name}` has no history yet: a relay joins once its founder has \
                     started it"
                )));
            }
            // No member: the device belongs to nobody's journals and counts in no member list.
            String::new()
        } else if invite.founder {
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
                return Err(Error::Conflict(StoreError::Published.to_string()));
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
        } else if let Some(id) = &req.rejoin {
            // A device whose member this server knows nothing of (restored from a backup made
            // before they joined) takes its place back, and then sends again all it wrote. Only
            // a member the server knows nothing of: anyone else is taken with an invite made for
            // them, or `cairn device link`.
            if !valid_member_id(id) {
                return Err(Error::BadRequest(
                    "the member id to rejoin as is not valid".into(),
                ));
            }
            if log.head == 0 {
                return Err(Error::NoHistory(format!(
                    "team `{name}` has no history yet: nobody rejoins it"
                )));
            }
            let state = self.team_state(&team).await?;
            let known = state
                .members
                .iter()
                .chain(&state.former)
                .any(|m| m.id == *id)
                || self
                    .store
                    .devices(Some(&team))
                    .await?
                    .iter()
                    .any(|d| d.member == *id);
            if known {
                return Err(Error::Forbidden(format!(
                    "team `{name}` has this member on this server already: a device of theirs \
                     joins with an invite made for them (`cairn-server invite create --team \
                     {team} --member @HANDLE`) or a code from `cairn device link`"
                )));
            }
            id.clone()
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
            admit,
            relay,
        };
        match self.store.register(&registration).await {
            Ok(()) => {}
            // A team has at most as many relays as a member has devices.
            Err(StoreError::DeviceCap { active }) if relay => {
                return Err(Error::Forbidden(format!(
                    "this team has {active} relays already; the server's admin can revoke one \
                     (`cairn-server device list`)"
                )));
            }
            // The member has their devices.
            Err(e @ StoreError::DeviceCap { .. }) => {
                return Err(Error::Forbidden(format!(
                    "{e}; the server's admin can revoke one (`cairn-server device list`)"
                )));
            }
            Err(e @ StoreError::Published) => return Err(Error::Conflict(e.to_string())),
            // The invite's last use went to someone else; or a row collided.
            Err(e @ (StoreError::InviteSpent | StoreError::Collided(_))) => {
                return Err(Error::Forbidden(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        // The organisation the team belongs to, so the new device syncs its log too.
        let org = self
            .store
            .org_access(&team, &member)
            .await?
            .map(|a| cairn_protocol::OrgRef {
                id: a.org,
                name: a.name,
                steward: a.steward && !relay,
            });
        Ok(JoinResponse {
            team_id: team,
            member_id: member,
            device_id,
            token: Token(token),
            team_name: Some(name),
            founder: publish,
            device_kind: req.device_kind,
            org,
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
        if device.relay {
            return Err(read_only());
        }
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
                relay: false,
            })
            .await?;
        Ok(LinkResponse {
            invite: code,
            expires_at_ms,
        })
    }
}

/// Whether a registration goes, on what its own transaction read (the team's row locked): the
/// invite has a use left and has not expired, a publication finds the team's log still empty, and
/// the member stays within their devices (a publication revokes every active device of the team
/// first). Both backends ask this, once, in [`crate::store::Store::register`].
pub fn admit(reg: &Registration, seen: &Seen) -> crate::store::Result<()> {
    if !seen
        .invite
        .is_some_and(|(uses_left, expires_ms)| uses_left > 0 && expires_ms > reg.now_ms)
    {
        return Err(StoreError::InviteSpent);
    }
    if reg.publish && seen.head > 0 {
        return Err(StoreError::Published);
    }
    let active = if reg.publish { 0 } else { seen.active };
    if active >= reg.max_devices {
        return Err(StoreError::DeviceCap { active });
    }
    Ok(())
}

/// The refusal of anything a relay would write.
pub(super) fn read_only() -> Error {
    Error::ReadOnly(
        "this device is a relay: it reads the team and cannot write (no pushes, no link codes)"
            .into(),
    )
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
    /// A relay (`cairn-relay`): each use registers a read-only device of no member.
    Relay,
}

/// A team's name as given, trimmed, when it has 1 to 100 characters.
pub(super) fn team_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty() && name.chars().count() <= 100).then_some(name)
}

/// Two team names that an admin would take for one.
pub(super) fn same_name(a: &str, b: &str) -> bool {
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
pub(super) fn near_teams(teams: &[(String, String)], typed: &str) -> String {
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
}
