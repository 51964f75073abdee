//! Errors of the domain.

/// Why a domain operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the text is empty")]
    EmptyText,
    #[error("{0}")]
    BadRule(String),
    #[error("the text is {len} characters long; the most is {max}")]
    TextTooLong { len: usize, max: usize },
    /// A pillar typed that the team does not have, with the names it comes close to.
    #[error("unknown pillar `{name}`{}", near_pillars_text(near))]
    UnknownPillar { name: String, near: Vec<String> },
    #[error("a pillar named `{0}` already exists")]
    PillarExists(String),
    #[error("unknown member `{0}`")]
    UnknownMember(String),
    /// A handle typed that no member holds, with the handles it comes close to.
    #[error("unknown member `@{handle}`{}", near_text(near))]
    UnknownHandle { handle: String, near: Vec<String> },
    #[error("the handle `@{0}` is already taken")]
    HandleTaken(String),
    #[error("invalid handle `{0}`: use 1 to 32 lowercase letters, digits, `-` or `_`")]
    BadHandle(String),
    #[error("`@{0}` names more than one member")]
    AmbiguousHandle(String),
    #[error("`@{0}` has left the team")]
    MemberLeft(String),
    #[error("a member cannot be merged into themselves")]
    MergeSelf,
    #[error("nothing of the team is called `{0}`")]
    NoSuchSetting(String),
    #[error("a note of a change to the team cannot be edited")]
    EditTeamNote,
    #[error("`{0}` has no letter or digit to make a name from")]
    BadName(String),
    #[error("the text holds control characters")]
    ControlCharacters,
    #[error("a reaction cannot be edited")]
    EditReaction,
    #[error("event `{0}` already exists")]
    EventExists(String),
    #[error("a recognition needs at least one recipient")]
    NoRecipients,
    #[error("you cannot give kudos to yourself")]
    SelfKudos,
    #[error("no event `{0}`")]
    NoSuchEvent(String),
    #[error("event `{0}` belongs to someone else")]
    NotYours(String),
    #[error("event `{0}` has been retracted")]
    Retracted(String),
    #[error("cannot react to a reaction")]
    ReactToReaction,
    #[error("invalid emoji `{0}`")]
    BadEmoji(String),
    #[error("nothing to change")]
    NothingToEdit,
    #[error("malformed document: {0}")]
    Malformed(String),
    #[error(transparent)]
    Automerge(Box<automerge::AutomergeError>),
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Automerge(Box::new(e))
    }
}

/// The result of a domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn near_pillars_text(near: &[String]) -> String {
    match near {
        [] => String::new(),
        [one] => format!("; did you mean #{one}?"),
        [init @ .., last] => format!(
            "; did you mean {} or #{last}?",
            init.iter()
                .map(|p| format!("#{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn near_text(near: &[String]) -> String {
    match near {
        [] => String::new(),
        [one] => format!("; did you mean @{one}?"),
        [init @ .., last] => format!(
            "; did you mean {} or @{last}?",
            init.iter()
                .map(|h| format!("@{h}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
