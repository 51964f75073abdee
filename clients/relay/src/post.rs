//! What the relay posts, before any platform's format: who did what, in words for everyone.
//!
//! A post names people by their display name and carries the member's own words as they typed
//! them; each platform's format ([`crate::format`]) decides how to show them safely. Never an
//! individual's numbers, a ranking, a nudge or anything meant for one person alone: the only
//! posts are the events members chose to share with the team.

use cairn_core::{Event, Kind as EventKind, TeamState};
use serde::{Deserialize, Serialize};

use crate::config::Part;

/// What a post is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PostKind {
    /// A recognition: someone thanked teammates.
    Recognition,
    /// A micro-action someone did.
    MicroAction,
    /// A change to the team, as the team's feed notes it.
    TeamNote,
    /// The team reached one of its challenges.
    Celebration,
    /// The weekly digest of the team.
    Digest,
    /// The test message `cairn-relay check` sends.
    Test,
}

impl PostKind {
    /// The part of the config that switches this kind on.
    pub fn part(self) -> Option<Part> {
        match self {
            PostKind::Recognition => Some(Part::Recognitions),
            PostKind::MicroAction => Some(Part::MicroActions),
            PostKind::TeamNote => Some(Part::TeamNotes),
            PostKind::Celebration => Some(Part::Celebrations),
            PostKind::Digest => Some(Part::Digest),
            PostKind::Test => None,
        }
    }

    /// The event type a generic webhook receives.
    pub fn webhook_type(self) -> &'static str {
        match self {
            PostKind::Recognition => "cairn.recognition",
            PostKind::MicroAction => "cairn.micro_action",
            PostKind::TeamNote => "cairn.team_note",
            PostKind::Celebration => "cairn.celebration",
            PostKind::Digest => "cairn.digest",
            PostKind::Test => "cairn.test",
        }
    }
}

/// One message to post, as stored in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub kind: PostKind,
    /// The event's id (empty for a test message).
    pub event: String,
    /// The team's name.
    pub team: String,
    /// The author's display name.
    pub author: String,
    /// The recognised members' display names.
    pub to: Vec<String>,
    /// The member's words.
    pub text: String,
    pub why: Option<String>,
    /// The pillar's name, shown as a tag.
    pub pillar: Option<String>,
    /// When it happened, in UTC milliseconds.
    pub at_ms: i64,
    /// A digest's figures, sections and quotes (its week is in `event`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<crate::digest::DigestBody>,
}

/// A member as a post names them: their display name, their handle if the name is empty.
pub(crate) fn name_of(team: &TeamState, id: &str) -> String {
    let id = team.canonical(id);
    match team
        .member(id)
        .or_else(|| team.former.iter().find(|m| m.id == id))
    {
        Some(m) if !m.name.trim().is_empty() => m.name.trim().to_owned(),
        Some(m) => m.handle.clone(),
        None => "a former teammate".to_owned(),
    }
}

impl Post {
    /// The post for event `e`, or `None` for what is never posted alone (reactions, retracted
    /// events).
    pub fn of_event(e: &Event, team: &TeamState) -> Option<Post> {
        if e.retracted {
            return None;
        }
        // Someone who said they are not named in chat (`cairn me chat off`) is never posted
        // one by one: the digest counts what they wrote or were thanked for.
        if !team.named_in_chat(&e.author) || e.to.iter().any(|m| !team.named_in_chat(m)) {
            return None;
        }
        let kind = match e.kind {
            EventKind::Kudos => PostKind::Recognition,
            EventKind::Action => PostKind::MicroAction,
            EventKind::Team => PostKind::TeamNote,
            EventKind::Reaction => return None,
        };
        let pillar = e
            .pillar
            .as_ref()
            .map(|p| team.pillar(p).map_or(p.clone(), |p| p.name.clone()));
        Some(Post {
            kind,
            event: e.id.as_str().to_owned(),
            team: team.name.clone(),
            author: name_of(team, &e.author),
            to: e.to.iter().map(|m| name_of(team, m)).collect(),
            text: e.text.clone(),
            why: e.why.clone(),
            pillar,
            at_ms: e.at_ms,
            digest: None,
        })
    }

    /// The team reached challenge `c` (`value` of its target): the team's figure, nobody's own.
    /// `text` holds the challenge's title, `why` its figures (`12 of 10 kudos`).
    pub fn challenge_reached(
        team: &TeamState,
        c: &cairn_core::goals::Challenge,
        value: u32,
        at_ms: i64,
    ) -> Post {
        Post {
            kind: PostKind::Celebration,
            event: format!("challenge:{}", c.id),
            team: team.name.clone(),
            author: String::new(),
            to: Vec::new(),
            text: c.title.clone(),
            why: Some(format!("{value} of {} {}", c.target, c.metric.as_str())),
            pillar: None,
            at_ms,
            digest: None,
        }
    }

    /// The team streak reached `n` `unit` (weeks or days) in a row: the team's figure.
    pub fn streak(team: &TeamState, n: u32, unit: &str, at_ms: i64) -> Post {
        Post {
            kind: PostKind::Celebration,
            event: format!("streak:{n}"),
            team: team.name.clone(),
            author: String::new(),
            to: Vec::new(),
            text: String::new(),
            why: Some(format!("{n} {unit} in a row")),
            pillar: None,
            at_ms,
            digest: None,
        }
    }

    /// The test message `check` sends.
    pub fn test(team: &str, at_ms: i64) -> Post {
        Post {
            kind: PostKind::Test,
            event: String::new(),
            team: team.to_owned(),
            author: String::new(),
            to: Vec::new(),
            text: String::new(),
            why: None,
            pillar: None,
            at_ms,
            digest: None,
        }
    }
}

/// `Ben`, `Ben and Cy`, `Ben, Cy and Dee`.
pub fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
