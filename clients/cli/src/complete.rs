//! Completions of what lives in the replica: members' handles, pillars and recent event ids,
//! offered by the shell through clap_complete's dynamic completion (`COMPLETE=bash cairn`, which
//! `cairn completions bash` prints the registration of).
//!
//! Each reads the replica named by `CAIRN_HOME` (or the default home) and offers nothing when
//! there is none: a completion never prints an error into someone's prompt.

use cairn_core::feed::FeedQuery;
use cairn_store::Replica;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

/// The home in the environment, when it is one cairn works in (see [`crate::home::check`]).
fn home() -> Option<std::path::PathBuf> {
    let home = crate::context::home(std::env::var_os("CAIRN_HOME").map(Into::into)).ok()?;
    crate::home::check(&home).ok()?;
    Some(home)
}

/// The replica of the team in the environment (`CAIRN_TEAM`, else the config's default), if one
/// opens.
fn replica() -> Option<Replica> {
    let home = home()?;
    let team = std::env::var("CAIRN_TEAM").ok().or_else(|| {
        crate::config::Config::load(&home)
            .ok()?
            .get("team")
            .map(str::to_owned)
    });
    let path = crate::home::select(&home, team.as_deref()).ok()?;
    crate::home::check_within(&home, &path).ok()?;
    Replica::open(&path).ok()
}

/// `text` from a document as a shell may show it, beside what is typed: one line, made safe for
/// a terminal as all output is.
fn shown(text: &str) -> String {
    cairn_core::event::one_line(crate::output::neutral(text, false).into_owned())
}

/// The teams of the home, by name, with their ids beside.
pub fn teams() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(teams) = home().and_then(|h| crate::home::list(&h).ok()) else {
            return Vec::new();
        };
        teams
            .into_iter()
            .filter(|t| !t.name.is_empty())
            .map(|t| CompletionCandidate::new(shown(&t.name)).help(Some(shown(&t.id).into())))
            .collect()
    })
}

/// The team of that replica, if one opens.
fn team() -> Option<cairn_core::TeamState> {
    replica()?.team().ok()
}

/// `@handle` of every member, with their name beside it; in a team of an organisation, then
/// `@handle@team` of everyone of its other teams (kudos across teams), as this home last heard
/// them.
pub fn handles() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(replica) = replica() else {
            return Vec::new();
        };
        let Ok(team) = replica.team() else {
            return Vec::new();
        };
        let mut out: Vec<CompletionCandidate> = team
            .members
            .iter()
            .map(|m| {
                CompletionCandidate::new(shown(&format!("@{}", m.handle)))
                    .help(Some(shown(&m.name).into()))
            })
            .collect();
        let team_id = cairn_client::sync::org::team_on_server(&replica).unwrap_or_default();
        let org = home().and_then(|h| cairn_client::sync::org::org(&replica, &h).ok().flatten());
        if let Some(org) = org.filter(|o| o.path.exists())
            && let Ok(org) = org.open()
            && let Ok(people) = cairn_client::across::people(&org)
        {
            for t in people.people.teams.iter().filter(|t| t.id != team_id) {
                for p in &t.people {
                    let label =
                        cairn_core::across::Person::new(&t.id, &p.member, &p.handle, &t.name)
                            .label();
                    out.push(
                        CompletionCandidate::new(shown(&label))
                            .help(Some(shown(&format!("{} ({})", p.name, t.name)).into())),
                    );
                }
            }
        }
        out
    })
}

/// The team's pillars, with what each is about.
pub fn pillars() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(team) = team() else {
            return Vec::new();
        };
        team.pillars
            .iter()
            .map(|p| {
                CompletionCandidate::new(shown(&p.id))
                    .help(p.about.as_deref().map(|a| shown(a).into()))
            })
            .collect()
    })
}

/// The short ids of the latest events, with the start of their text.
pub fn events() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(replica) = replica() else {
            return Vec::new();
        };
        let query = FeedQuery {
            limit: Some(50),
            ..FeedQuery::default()
        };
        let Ok(items) = replica.feed(&query) else {
            return Vec::new();
        };
        items
            .iter()
            .map(|i| {
                let text: String = i.event.text.chars().take(50).collect();
                CompletionCandidate::new(i.event.id.short()).help(Some(shown(&text).into()))
            })
            .collect()
    })
}
