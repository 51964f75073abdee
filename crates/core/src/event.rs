//! Events: micro-actions, recognitions and reactions.

use serde::Serialize;

use crate::ids::EventId;
use crate::team::TeamState;
use crate::{Error, Result};

/// The longest text an event may carry, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
const MAX_EMOJI_CHARS: usize = 8;

/// What kind of event this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A micro-action someone did.
    Action,
    /// A recognition of one or more teammates.
    Kudos,
    /// A reaction to another event.
    Reaction,
    /// A note of a change to the team (its rules, pillars, commitments, members, challenges):
    /// who changed what, in the feed for everyone to see. Not an act: it counts for nothing.
    Team,
}

impl Kind {
    /// Whether an event of this kind is an act: a micro-action or a recognition (what streaks,
    /// badges, challenges and the digest count, unless retracted; see [`Event::counts`]).
    pub fn is_act(self) -> bool {
        matches!(self, Kind::Action | Kind::Kudos)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Action => "action",
            Kind::Kudos => "kudos",
            Kind::Reaction => "reaction",
            Kind::Team => "team",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "action" => Some(Kind::Action),
            "kudos" => Some(Kind::Kudos),
            "reaction" => Some(Kind::Reaction),
            "team" => Some(Kind::Team),
            _ => None,
        }
    }
}

/// When and where an event happened, as its author's device saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// The instant, in UTC milliseconds since the epoch.
    pub at_ms: i64,
    /// The author's IANA time zone at that instant.
    pub tz: String,
    /// The local date the event counts for (`YYYY-MM-DD`); yesterday's when logged late.
    pub date: String,
    /// Logged after its day had ended.
    pub late: bool,
}

/// An event as stored in a journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: EventId,
    pub kind: Kind,
    pub author: String,
    pub at_ms: i64,
    pub tz: String,
    pub date: String,
    pub late: bool,
    pub pillar: Option<String>,
    pub text: String,
    pub why: Option<String>,
    /// The recognised members of a recognition.
    pub to: Vec<String>,
    /// The event a reaction answers.
    pub target: Option<EventId>,
    pub emoji: Option<String>,
    pub retracted: bool,
    pub edited_ms: Option<i64>,
    /// The id of the organisation's non-negotiable an act honours, if its author named one.
    /// Kept in the event's map as a field older readers skip (see [`crate::journal`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub honours: Option<String>,
}

impl Event {
    /// Whether this event counts as an act: a micro-action or a recognition, not retracted. The
    /// replica's SQL says the same in `counts_as_act!`.
    pub fn counts(&self) -> bool {
        self.kind.is_act() && !self.retracted
    }
}

/// The content of an event about to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: Kind,
    pub pillar: Option<String>,
    pub text: String,
    pub why: Option<String>,
    pub to: Vec<String>,
    pub target: Option<EventId>,
    pub emoji: Option<String>,
    /// The organisation's non-negotiable an act honours (its id): see [`NewEvent::honouring`].
    pub honours: Option<String>,
}

impl NewEvent {
    /// A micro-action.
    pub fn action(text: &str, pillar: Option<String>, why: Option<String>) -> Self {
        NewEvent {
            kind: Kind::Action,
            pillar,
            text: text.to_owned(),
            why,
            to: Vec::new(),
            target: None,
            emoji: None,
            honours: None,
        }
    }

    /// A recognition of the members `to` (their ids).
    pub fn kudos(to: Vec<String>, text: &str, pillar: Option<String>) -> Self {
        NewEvent {
            kind: Kind::Kudos,
            pillar,
            text: text.to_owned(),
            why: None,
            to,
            target: None,
            emoji: None,
            honours: None,
        }
    }

    /// A note of a change to the team, in words.
    pub fn team(text: &str) -> Self {
        NewEvent {
            kind: Kind::Team,
            pillar: None,
            text: text.to_owned(),
            why: None,
            to: Vec::new(),
            target: None,
            emoji: None,
            honours: None,
        }
    }

    /// A reaction to event `target`.
    pub fn reaction(target: EventId, emoji: &str) -> Self {
        NewEvent {
            kind: Kind::Reaction,
            pillar: None,
            text: String::new(),
            why: None,
            to: Vec::new(),
            target: Some(target),
            emoji: Some(emoji.to_owned()),
            honours: None,
        }
    }

    /// The same act, naming the organisation's non-negotiable `id` it honours (an id as the
    /// organisation's document holds it; which ones are in force is the writer's to check,
    /// since the team's journal knows nothing of the organisation).
    pub fn honouring(mut self, id: Option<String>) -> Self {
        self.honours = id;
        self
    }

    /// Checks the event against the team and its author; returns it with its texts trimmed and
    /// its pillar resolved to an id.
    pub fn validate(mut self, team: &TeamState, author: &str) -> Result<Self> {
        if team.member(author).is_none() {
            return Err(Error::UnknownMember(author.to_owned()));
        }
        if let Some(p) = &self.pillar {
            self.pillar = Some(team.pillar(p)?.id.clone());
        }
        self.why = self
            .why
            .as_deref()
            .map(|w| check_text(w, MAX_TEXT_CHARS))
            .transpose()?;
        match self.kind {
            Kind::Action => self.text = check_text(&self.text, MAX_TEXT_CHARS)?,
            Kind::Kudos => {
                self.text = check_text(&self.text, MAX_TEXT_CHARS)?;
                if self.to.is_empty() {
                    return Err(Error::NoRecipients);
                }
                let mut seen = Vec::with_capacity(self.to.len());
                for to in &self.to {
                    if team.member(to).is_none() {
                        return Err(Error::UnknownMember(to.clone()));
                    }
                    if to == author {
                        return Err(Error::SelfKudos);
                    }
                    if !seen.contains(to) {
                        seen.push(to.clone());
                    }
                }
                self.to = seen;
            }
            Kind::Team => {
                self.text = check_text(&self.text, MAX_TEXT_CHARS)?;
                self.pillar = None;
                self.to.clear();
            }
            Kind::Reaction => {
                self.emoji = Some(check_emoji(self.emoji.as_deref().unwrap_or(""))?);
                if self.target.is_none() {
                    return Err(Error::NoSuchEvent(String::new()));
                }
            }
        }
        if !self.kind.is_act() {
            // Only an act honours anything.
            self.honours = None;
        }
        if let Some(h) = &self.honours
            && !is_honours_id(h)
        {
            return Err(Error::Malformed(format!("`{h}` is no non-negotiable's id")));
        }
        Ok(self)
    }
}

/// A change to an event's content; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    pub text: Option<String>,
    pub pillar: Option<String>,
    pub why: Option<String>,
}

impl Edit {
    /// Checks the edit against the team; resolves the pillar to its id.
    pub fn validate(mut self, team: &TeamState) -> Result<Self> {
        if self.text.is_none() && self.pillar.is_none() && self.why.is_none() {
            return Err(Error::NothingToEdit);
        }
        self.text = self
            .text
            .as_deref()
            .map(|t| check_text(t, MAX_TEXT_CHARS))
            .transpose()?;
        self.why = self
            .why
            .as_deref()
            .map(|t| check_text(t, MAX_TEXT_CHARS))
            .transpose()?;
        if let Some(p) = &self.pillar {
            self.pillar = Some(team.pillar(p)?.id.clone());
        }
        Ok(self)
    }
}

/// Whether `id` can be the id of an organisation's non-negotiable an act honours: id text, at
/// most 32 characters (as a recognition across teams holds it, [`crate::across`]).
pub fn is_honours_id(id: &str) -> bool {
    crate::ids::is_id_text(id) && id.len() <= 32
}

/// Trims `text` and checks it is neither empty nor longer than `max` characters.
pub fn check_text(text: &str, max: usize) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::EmptyText);
    }
    let len = t.chars().count();
    if len > max {
        return Err(Error::TextTooLong { len, max });
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::ControlCharacters);
    }
    Ok(t.to_owned())
}

/// `text` as one line: each new line, carriage return, tab or other line break becomes a space.
///
/// For a field a person reads as one line (a name, a handle, a pillar, an emoji), applied where
/// a document is read: cairn writes no line break there, but a change made by hand can, and a
/// name that breaks the line could forge a line of the feed. (Every other control character
/// is left to whatever shows the text: a terminal's writer neutralises them, a page escapes.)
pub fn one_line(text: String) -> String {
    if !text.contains(is_break) {
        return text;
    }
    text.replace(is_break, " ")
}

fn is_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\t' | '\x0b' | '\x0c' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn check_emoji(e: &str) -> Result<String> {
    let e = e.trim();
    let n = e.chars().count();
    if n == 0 || n > MAX_EMOJI_CHARS || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::BadEmoji(e.to_owned()));
    }
    Ok(e.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::{Member, Pillar};

    fn team() -> TeamState {
        let m = |id: &str| Member {
            id: id.into(),
            name: id.into(),
            handle: id.into(),
            joined_ms: 0,
            ..Member::default()
        };
        TeamState {
            name: "t".into(),
            tz: "UTC".into(),
            pillars: vec![Pillar {
                id: "trust".into(),
                name: "trust".into(),
                about: None,
            }],
            commitments: vec![],
            members: vec![m("ana"), m("ben")],
            former: vec![],
            rules: Default::default(),
            challenges: vec![],
        }
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(check_text("  hi ", 10).unwrap(), "hi");
        assert!(matches!(check_text(" \n ", 10), Err(Error::EmptyText)));
        assert!(matches!(
            check_text(&"x".repeat(11), 10),
            Err(Error::TextTooLong { len: 11, max: 10 })
        ));
    }

    #[test]
    fn kudos_need_known_other_members() {
        let t = team();
        let ok = NewEvent::kudos(vec!["ben".into(), "ben".into()], "thanks", None)
            .validate(&t, "ana")
            .unwrap();
        assert_eq!(ok.to, ["ben"]);
        assert!(matches!(
            NewEvent::kudos(vec!["ana".into()], "me", None).validate(&t, "ana"),
            Err(Error::SelfKudos)
        ));
        assert!(matches!(
            NewEvent::kudos(vec!["zed".into()], "x", None).validate(&t, "ana"),
            Err(Error::UnknownMember(_))
        ));
        assert!(matches!(
            NewEvent::kudos(vec![], "x", None).validate(&t, "ana"),
            Err(Error::NoRecipients)
        ));
    }

    #[test]
    fn pillars_resolve_to_ids() {
        let t = team();
        let e = NewEvent::action("x", Some("Trust".into()), None)
            .validate(&t, "ana")
            .unwrap();
        assert_eq!(e.pillar.as_deref(), Some("trust"));
        assert!(matches!(
            NewEvent::action("x", Some("speed".into()), None).validate(&t, "ana"),
            Err(Error::UnknownPillar { .. })
        ));
    }

    #[test]
    fn emoji_are_short_and_whole() {
        assert!(check_emoji("🎉").is_ok());
        assert!(check_emoji("a b").is_err());
        assert!(check_emoji("").is_err());
        assert!(check_emoji(&"🎉".repeat(9)).is_err());
        assert!(matches!(
            Edit::default().validate(&team()),
            Err(Error::NothingToEdit)
        ));
    }
}
