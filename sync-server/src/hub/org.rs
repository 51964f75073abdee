//! Organisations: a set of teams with stewards, whose shared documents every member of its teams
//! holds.
//!
//! The architecture's one natural reading, taken as it is: an organisation is a team-like log
//! of its own on the server. It has its own id (from the same alphabet as a team's), its own
//! change log numbered 1, 2, 3, ..., its own documents and snapshots, stored as a row of `teams`
//! that `orgs` marks (so pushing, pulling, catching up by whole documents, pruning, waiting and
//! copying are the very code a team's log goes through; nothing about logs was written twice).
//! What differs is who may do what, decided here:
//! - **readers**: every device (members' and relays') of every team attached to it, through the
//!   device's own token: an organisation has no devices, invites or joins of its own;
//! - **writers**: the devices of its stewards only (a steward is a member of one of its teams,
//!   named by the server's admin), and only to the organisation's document
//!   ([`cairn_protocol::ORG_DOC`], the document id `team` of its log, which holds its
//!   stewards' non-negotiables); every other device's push is refused 403, whole;
//! - a device of a team attached to no organisation, or to another one, is refused 403.
//!
//! Why this reading rather than, say, organisation documents inside each team's log: a
//! steward's change is stored once and numbered once for every team, a device of a team that
//! leaves the organisation simply stops reading a log it never wrote into (nothing of the
//! organisation's is left to take out of the team's history), and a team's log keeps holding
//! only what its own members wrote, so nothing crosses from one team to another but what was
//! given across. The cost is a second cursor per device, and a second request per sync when
//! the team belongs to an organisation (none otherwise).
//!
//! The organisation's document is that log's `team` document ([`cairn_protocol::ORG_DOC`]):
//! the one document id every replica store already keeps, so a client holds the
//! organisation's replica with the code that holds a team's. What it contains (the
//! non-negotiables, each with its why) is `cairn-core`'s to define; the server checks only that
//! a change applies to it. The stewards are the server's record (named by the admin, said to
//! each device by `GET /v1/org`), not written into the document.
//!
//! The admin names an organisation like a team (`org list`, by name or id); its log is pruned
//! (`org prune`) and withdrawn from (`change withdraw --org`) as a team's. An organisation has
//! no devices, invites or joins of its own: `--team` never names one.
//!
//! The checks a team's push goes through all hold too (each change signed by one of the
//! device's actors, numbered right, applying to its document), so nothing stored can stop a
//! replica of the organisation either.
//!
//! ## What a client does (the next step, in `crates/client`)
//! 1. Learn the organisation: [`cairn_protocol::JoinResponse::org`] on joining, and
//!    `GET /v1/org` (the device's token; [`cairn_protocol::OrgResponse`]) at each `cairn sync`,
//!    since the admin attaches and detaches teams at any time. An older server answers 404:
//!    no organisations there.
//! 2. Keep the organisation's replica beside the team's in the home: one more replica file
//!    keyed by the organisation's id, with its own cursor and outbox (the org's log is numbered
//!    on its own; its cursor is never the team's).
//! 3. Sync it with the same exchange and the same token: `POST /v1/sync?org=ID` with a
//!    [`cairn_protocol::SyncRequest`] whose cursor is the organisation replica's, `snapshots`
//!    set for a catch-up by whole documents as for a team. Push only as a steward
//!    ([`cairn_protocol::OrgRef::steward`]) and only to `team` of that log; anything else comes
//!    back 403.
//! 4. Wait for its news with `GET /v1/wait?org=ID&after=N` (the same answers as for a team).
//!    A device has two waits pending at most ([`crate::Limits::max_device_waiters`]): one for
//!    its team and one for its organisation fill them, so a client waiting on both must not
//!    start a third (a wait answering for both logs at once would be a server addition).
//! 5. When `GET /v1/org` names no organisation any more (or another), or a sync answers 403
//!    for it, stop syncing the old one and keep its replica read-only (what was given stays).

use std::collections::HashMap;

use std::sync::Arc;

use cairn_core::ids;
use cairn_protocol::{
    ORG_DOC, OrgPeople, OrgPeopleTeam, OrgPerson, OrgRef, SyncRequest, SyncResponse,
};

use super::access::{near_teams, same_name, team_name};
use super::{Hub, SyncCounts, random_code};
use crate::store::{Device, OrgWriter};
use crate::{Error, Limits, Result};

/// An organisation as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    /// Entries in its log.
    pub changes: i64,
    /// Its teams, by name.
    pub teams: Vec<OrgTeam>,
    /// Its stewards, by team and handle.
    pub stewards: Vec<Steward>,
}

/// A team of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrgTeam {
    pub id: String,
    pub name: String,
}

/// A steward: a member of one of the organisation's teams.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Steward {
    pub team: String,
    pub team_name: String,
    pub member: String,
    /// Their handle as their team's document says.
    pub handle: Option<String>,
}

impl Hub {
    /// Creates an organisation with no team and no steward yet. Its name is unique among
    /// organisations, in any case.
    pub async fn create_org(&self, name: &str, now_ms: i64) -> Result<OrgView> {
        let Some(name) = team_name(name) else {
            return Err(Error::BadRequest(
                "an organisation's name has 1 to 100 characters".into(),
            ));
        };
        if let Some((id, other)) = self
            .org_names()
            .await?
            .into_iter()
            .find(|(_, n)| same_name(n, name))
        {
            return Err(Error::Conflict(format!(
                "an organisation is named `{other}` already (its id is {id}); give this one \
                 another name"
            )));
        }
        let id = random_code(12)?;
        self.store.create_org(&id, name, now_ms).await?;
        Ok(OrgView {
            id,
            name: name.to_owned(),
            created_ms: now_ms,
            changes: 0,
            teams: Vec::new(),
            stewards: Vec::new(),
        })
    }

    /// Every organisation's id and name, oldest first.
    async fn org_names(&self) -> Result<Vec<(String, String)>> {
        let rows = self.store.org_rows().await?;
        Ok(rows
            .orgs
            .into_iter()
            .map(|(id, name, _)| (id, name))
            .collect())
    }

    /// Every organisation with its teams and stewards, oldest first.
    pub async fn orgs(&self) -> Result<Vec<OrgView>> {
        let rows = self.store.org_rows().await?;
        let teams: HashMap<String, String> = self.store.team_names().await?.into_iter().collect();
        let name_of = |team: &str| teams.get(team).cloned().unwrap_or_default();
        let mut out = Vec::with_capacity(rows.orgs.len());
        for (id, name, created_ms) in &rows.orgs {
            let log = self.store.team_log(id).await?;
            let mut its_teams: Vec<OrgTeam> = rows
                .teams
                .iter()
                .filter(|(_, org)| org == id)
                .map(|(team, _)| OrgTeam {
                    id: team.clone(),
                    name: name_of(team),
                })
                .collect();
            its_teams.sort_by_key(|t| (t.name.to_lowercase(), t.id.clone()));
            let mut stewards = Vec::new();
            for (_, team, member) in rows.stewards.iter().filter(|(org, _, _)| org == id) {
                let handle = self
                    .team_state(team)
                    .await
                    .ok()
                    .and_then(|s| s.member(member).map(|m| m.handle.clone()));
                stewards.push(Steward {
                    team: team.clone(),
                    team_name: name_of(team),
                    member: member.clone(),
                    handle,
                });
            }
            out.push(OrgView {
                id: id.clone(),
                name: name.clone(),
                created_ms: *created_ms,
                changes: log.head,
                teams: its_teams,
                stewards,
            });
        }
        Ok(out)
    }

    /// The organisation `text` names, as (id, name): its id, or its name in any case; a near
    /// miss is asked about.
    pub async fn find_org(&self, text: &str) -> Result<(String, String)> {
        let text = text.trim();
        let orgs = self.org_names().await?;
        if let Some(o) = orgs.iter().find(|(id, _)| id == text) {
            return Ok(o.clone());
        }
        match orgs.iter().find(|(_, n)| same_name(n, text)) {
            Some(o) => Ok(o.clone()),
            None if orgs.is_empty() => Err(Error::NotFound(format!(
                "no organisation is named `{text}`: there is none yet; create one with \
                 `cairn-server org create NAME`"
            ))),
            None => Err(Error::NotFound(format!(
                "no organisation is named `{text}` or has it as its id{}; see `cairn-server \
                 org list`",
                near_teams(&orgs, text)
            ))),
        }
    }

    /// Attaches the team `team` (its id) to the organisation `org` (its id). A team belongs to
    /// one organisation at most: one attached elsewhere is detached first by the admin.
    pub async fn attach(&self, team: &str, org: &str) -> Result<()> {
        let (_, team_name) = self.find_team(team).await?;
        let org_name = self.store.team_name(org).await?;
        if let Some(now) = self.store.org_access(team, "").await? {
            if now.org == org {
                return Ok(());
            }
            return Err(Error::Conflict(format!(
                "team `{team_name}` belongs to organisation `{}` already; detach it first: \
                 `cairn-server team detach {team}`, then attach it to `{org_name}`",
                now.name
            )));
        }
        Ok(self.store.set_team_org(team, Some(org)).await?)
    }

    /// Detaches the team `team` (its id) from its organisation, whose stewards from that team
    /// are stewards no more; the organisation's (id, name) it left, or `None` when it belonged
    /// to none.
    pub async fn detach(&self, team: &str) -> Result<Option<(String, String)>> {
        let Some(now) = self.store.org_access(team, "").await? else {
            return Ok(None);
        };
        self.store.set_team_org(team, None).await?;
        Ok(Some((now.org, now.name)))
    }

    /// Names (`add`) or no longer names a steward of `org` (its id): `who` is
    /// `TEAM:@handle` or `TEAM:MEMBER-ID`, the team one of the organisation's. Returns the
    /// steward and whether anything changed.
    pub async fn set_steward(&self, org: &str, who: &str, add: bool) -> Result<(Steward, bool)> {
        let Some((team_text, member_text)) = who.rsplit_once(':') else {
            return Err(Error::BadRequest(format!(
                "name the steward as TEAM:@handle (a member of one of the organisation's \
                 teams), like `--member Platform:@ana`, not `{who}`"
            )));
        };
        let (team, team_name) = self.find_team(team_text).await?;
        let org_name = self.store.team_name(org).await?;
        match self.store.org_access(&team, "").await? {
            Some(a) if a.org == org => {}
            _ if !add => {}
            _ => {
                return Err(Error::Conflict(format!(
                    "team `{team_name}` is not in organisation `{org_name}`: a steward is a \
                     member of one of its teams; attach it first with `cairn-server team \
                     attach {team} --org {org}`"
                )));
            }
        }
        let state = self.team_state(&team).await?;
        let typed = member_text.trim();
        let member = match state.members.iter().find(|m| m.id == typed) {
            Some(m) => m,
            None => state
                .member_by_handle(typed)
                .map_err(|e| Error::NotFound(format!("{e} (in team `{team_name}`)")))?,
        };
        let steward = Steward {
            team: team.clone(),
            team_name,
            member: member.id.clone(),
            handle: Some(member.handle.clone()),
        };
        let changed = self.store.set_steward(org, &team, &member.id, add).await?;
        Ok((steward, changed))
    }

    /// The organisation `device`'s team belongs to now, if any.
    pub async fn org_of(&self, device: &Device) -> Result<Option<OrgRef>> {
        Ok(self
            .store
            .org_access(&device.team, &device.member)
            .await?
            .map(|a| OrgRef {
                id: a.org,
                name: a.name,
                steward: a.steward && !device.relay,
            }))
    }

    /// `device` as a reader (or, a steward's, a writer) of the log of the organisation `org`
    /// names: its team must be attached to that organisation. The device returned has the
    /// organisation's id as its team and reads as a relay unless it is a steward's.
    pub async fn org_device(&self, device: &Device, org: &str) -> Result<(Device, bool)> {
        let access = self.store.org_access(&device.team, &device.member).await?;
        let access = match access {
            Some(a) if a.org == org => a,
            Some(a) => {
                return Err(Error::Forbidden(format!(
                    "this device's team belongs to organisation `{}` ({}), not {org}: ask \
                     GET /v1/org which one it is",
                    a.name, a.org
                )));
            }
            None => {
                return Err(Error::Forbidden(format!(
                    "this device's team belongs to no organisation now, so not to {org}: the \
                     server's admin attaches it (`cairn-server team attach TEAM --org ORG`)"
                )));
            }
        };
        let steward = access.steward && !device.relay;
        Ok((
            Device {
                id: device.id.clone(),
                team: access.org,
                member: device.member.clone(),
                importing: false,
                last_seen_ms: device.last_seen_ms,
                revoked: device.revoked,
                team_head: access.head,
                team_pruned: access.pruned,
                relay: device.relay,
                org: Some(Arc::new(OrgWriter {
                    team: device.team.clone(),
                    people: Default::default(),
                })),
            },
            steward,
        ))
    }

    /// One exchange with the log of the organisation `org` (its id) for `device` of one of its
    /// teams: anyone of them pulls; only a steward's device pushes, and only to the
    /// organisation's document.
    pub async fn sync_org(
        &self,
        device: &Device,
        org: &str,
        req: SyncRequest,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(SyncResponse, SyncCounts)> {
        let (mut org_device, steward) = self.org_device(device, org).await?;
        let pushing: Vec<&str> = req
            .push
            .iter()
            .filter(|d| !d.changes.is_empty())
            .map(|d| d.doc.as_str())
            .collect();
        let mut across = false;
        for doc in &pushing {
            let shown: String = doc.chars().take(80).collect();
            if *doc == ORG_DOC {
                if !steward {
                    return Err(Error::Forbidden(
                        "only the organisation's stewards write its non-negotiables, and this \
                         device is not a steward's; the server's admin names stewards \
                         (`cairn-server org steward add ORG --member TEAM:@handle`)"
                            .into(),
                    ));
                }
            } else if let Some((team, member)) = ids::across_owner(doc) {
                if device.relay || team != device.team || member != device.member {
                    return Err(Error::Forbidden(format!(
                        "a device writes only its own member's kudos across teams, not `{shown}`"
                    )));
                }
                across = true;
            } else if let Some(team) = ids::shared_owner(doc) {
                if device.relay || team != device.team {
                    return Err(Error::Forbidden(format!(
                        "a device writes only what its own team shares, not `{shown}`"
                    )));
                }
            } else {
                return Err(Error::Forbidden(format!(
                    "an organisation's log holds no document `{shown}`"
                )));
            }
        }
        if device.relay && !pushing.is_empty() {
            return Err(super::access::read_only());
        }
        // Kudos across teams name only people of the organisation's teams, as they are now.
        if across {
            let people = self.org_people(org).await?;
            org_device.org = Some(Arc::new(OrgWriter {
                team: device.team.clone(),
                people: people
                    .teams
                    .iter()
                    .flat_map(|t| t.people.iter().map(|p| (t.id.clone(), p.member.clone())))
                    .collect(),
            }));
        }
        let org_docs = req.org_docs;
        let (mut resp, counts) = self.sync(&org_device, req, limits, now_ms).await?;
        // An older client holds the organisation's own document only (its store refuses any
        // other): the rest of the log passes it by, its cursor moving on all the same.
        if !org_docs {
            resp.pulled.retain(|p| p.doc == ORG_DOC);
            resp.docs.retain(|d| d.doc == ORG_DOC);
        }
        Ok((resp, counts))
    }

    /// Everyone of the teams of organisation `org` (its id), by team (sorted by name): who may
    /// be given kudos across teams, and how (`GET /v1/org/people`). Members who left are not
    /// there; placeholders are.
    pub async fn org_people(&self, org: &str) -> Result<OrgPeople> {
        let rows = self.store.org_rows().await?;
        let names: HashMap<String, String> = self.store.team_names().await?.into_iter().collect();
        let mut teams = Vec::new();
        for (team, _) in rows.teams.iter().filter(|(_, o)| o == org) {
            let state = self.team_state(team).await?;
            let mut people: Vec<OrgPerson> = state
                .members
                .iter()
                .filter(|m| m.left_ms.is_none() && m.merged_into.is_none())
                .map(|m| OrgPerson {
                    member: m.id.clone(),
                    handle: m.handle.clone(),
                    name: m.name.clone(),
                })
                .collect();
            people.sort_by(|a, b| a.handle.cmp(&b.handle));
            teams.push(OrgPeopleTeam {
                id: team.clone(),
                name: names
                    .get(team)
                    .cloned()
                    .unwrap_or_else(|| state.name.clone()),
                people,
            });
        }
        teams.sort_by_key(|t| (t.name.to_lowercase(), t.id.clone()));
        Ok(OrgPeople { teams })
    }
}
