//! Completions of what lives in the replica: members' handles, pillars and recent event ids,
//! offered by the shell through clap_complete's dynamic completion (`COMPLETE=bash cairn`, which
//! `cairn completions bash` prints the registration of).
//!
//! Each reads the replica named by `CAIRN_HOME` (or the default home) and offers nothing when
//! there is none: a completion never prints an error into someone's prompt.

use cairn_core::feed::FeedQuery;
use cairn_store::Replica;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

/// The replica of the home in the environment, if one opens.
fn replica() -> Option<Replica> {
    let home = crate::context::home(std::env::var_os("CAIRN_HOME").map(Into::into)).ok()?;
    Replica::open(&home.join(crate::context::REPLICA_FILE)).ok()
}

/// The team of that replica, if one opens.
fn team() -> Option<cairn_core::TeamState> {
    replica()?.team().ok()
}

/// `@handle` of every member, with their name beside it.
pub fn handles() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let Some(team) = team() else {
            return Vec::new();
        };
        team.members
            .iter()
            .map(|m| {
                CompletionCandidate::new(format!("@{}", m.handle)).help(Some(m.name.clone().into()))
            })
            .collect()
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
            .map(|p| CompletionCandidate::new(&p.id).help(p.about.clone().map(Into::into)))
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
                CompletionCandidate::new(i.event.id.short()).help(Some(text.into()))
            })
            .collect()
    })
}
