//! The CLI's one error boundary: every failure becomes one line with a hint and an exit code.

use std::process::ExitCode;

/// A failure the user sees.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
    /// The part of the input at fault, when one is: the web shows the error beside that field.
    pub input: Option<Input>,
}

/// A part of a command's input that an error can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The text (or the why) of an event.
    Text,
    Pillar,
    /// The members named.
    Members,
    /// The event acted on.
    Event,
    Emoji,
}

/// Exit codes, fixed so scripts can tell failures apart.
pub mod code {
    /// Bad input: unknown member or pillar, empty text, someone else's event, ...
    pub const INPUT: u8 = 1;
    /// The command line itself was wrong (clap's own exit code).
    pub const USAGE: u8 = 2;
    /// The replica is missing, damaged, or from a newer cairn.
    pub const REPLICA: u8 = 3;
    /// Anything else: the disk, a busy replica, a bug.
    pub const OTHER: u8 = 4;
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: code::INPUT,
            input: None,
        }
    }

    /// Says which part of the input the error is about.
    pub fn about(mut self, input: Input) -> Self {
        self.input = Some(input);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// Prints the error as one line on stderr and returns its exit code.
    pub fn report(&self) -> ExitCode {
        let mut line = format!("error: {}", self.message);
        if let Some(h) = &self.hint {
            line.push_str(&format!(" (hint: {h})"));
        }
        eprintln!("{}", line.replace('\n', " "));
        ExitCode::from(self.code)
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl From<cairn_core::Error> for CliError {
    fn from(e: cairn_core::Error) -> Self {
        use cairn_core::Error as E;
        let hint = match &e {
            E::EmptyText => Some("say in a sentence what happened"),
            E::BadRule(_) => Some("`cairn team rules --help` shows the choices"),
            E::TextTooLong { .. } => Some("keep it short; the details can live elsewhere"),
            E::UnknownPillar(_) => {
                Some("`cairn team` lists the pillars; `cairn team pillar add NAME` adds one")
            }
            E::UnknownMember(_) | E::UnknownHandle { .. } => Some(
                "`cairn team` lists the members; one who joined lately arrives with `cairn sync`; \
                 `cairn team member add NAME` is for someone who has not joined",
            ),
            E::NotYours(_) => Some("only an event's author can change it"),
            E::NoSuchEvent(_) => Some("ids are shown at the left of `cairn feed`"),
            E::HandleTaken(_) => Some("pick another with --handle"),
            E::PillarExists(_) => Some("`cairn team` lists the pillars"),
            E::SelfKudos => Some("log what you did with `cairn log` instead"),
            E::NothingToEdit => Some("give a new TEXT, --pillar or --why"),
            E::BadHandle(_) => {
                Some("give one with --handle, like --handle ana or --handle ana-lopez")
            }
            E::AmbiguousHandle(_) => Some(
                "name one by id (`cairn team --json` shows them); `cairn team member merge` joins \
                 a placeholder to the member who joined, `cairn team member rename` gives another \
                 handle",
            ),
            E::MemberLeft(_) => Some("their history stays; `cairn team` lists who is on the team"),
            E::MergeSelf => Some("name the placeholder first, then the member it stands for"),
            E::NoSuchSetting(_) => {
                Some("`cairn team` and `cairn challenges --all` list what the team has")
            }
            E::EditTeamNote => Some("it says what changed; change the team again instead"),
            E::BadName(_) => Some("use a name with letters, like curiosity"),
            E::ControlCharacters => Some("type plain text; new lines and tabs are fine"),
            E::EditReaction => Some("retract it and react again"),
            E::EventExists(_) => Some("an event id is used once; this is a bug worth reporting"),
            E::NoRecipients => Some("cairn kudos @ana \"...\""),
            E::Retracted(_) => Some("it no longer shows in the feed"),
            E::ReactToReaction => Some("react to the event itself"),
            E::BadEmoji(_) => Some("use one emoji, like 🎉"),
            E::Automerge(_) | E::Malformed(_) => {
                Some("run `cairn doctor`; this may be a bug worth reporting")
            }
        };
        let input = match &e {
            E::EmptyText | E::TextTooLong { .. } | E::ControlCharacters | E::NothingToEdit => {
                Some(Input::Text)
            }
            E::UnknownPillar(_) => Some(Input::Pillar),
            E::UnknownMember(_)
            | E::UnknownHandle { .. }
            | E::AmbiguousHandle(_)
            | E::MemberLeft(_)
            | E::MergeSelf
            | E::SelfKudos
            | E::NoRecipients => Some(Input::Members),
            E::NotYours(_)
            | E::NoSuchEvent(_)
            | E::Retracted(_)
            | E::EditReaction
            | E::EditTeamNote
            | E::ReactToReaction => Some(Input::Event),
            E::BadEmoji(_) => Some(Input::Emoji),
            _ => None,
        };
        let mut err = match e {
            E::Automerge(_) | E::Malformed(_) => CliError::new(e.to_string()).code(code::OTHER),
            _ => CliError::new(e.to_string()),
        };
        err.input = input;
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

impl From<cairn_store::Error> for CliError {
    fn from(e: cairn_store::Error) -> Self {
        use cairn_store::Error as E;
        match e {
            E::Core(e) => e.into(),
            E::Missing(_) => CliError::new("no team here yet")
                .hint("start one with `cairn init --team NAME --name YOUR_NAME`, or point CAIRN_HOME at an existing home")
                .code(code::REPLICA),
            E::Exists(_) => CliError::new(e.to_string())
                .hint("this home already holds a team; set CAIRN_HOME to start another elsewhere")
                .code(code::INPUT),
            E::Corrupt { .. } | E::Document { .. } => CliError::new(e.to_string())
                .hint("cairn will not write to it; move replica.sqlite3 and its -wal and -shm files aside together, then restore a backup")
                .code(code::REPLICA),
            E::TooNew { .. } => CliError::new(e.to_string())
                .hint("upgrade cairn to use this replica")
                .code(code::REPLICA),
            E::NoSuchEvent(ref typed)
                if typed.len() < 4 && typed.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                CliError::new(format!("`{typed}` is too short to name an event"))
                    .hint("type at least 4 characters of its id, from the left of `cairn feed`")
                    .about(Input::Event)
            }
            E::NoSuchEvent(_) => CliError::new(e.to_string())
                .hint("ids are shown at the left of `cairn feed`")
                .about(Input::Event),
            E::AmbiguousEvent { .. } => CliError::new(e.to_string())
                .hint("type more characters of the id")
                .about(Input::Event),
            E::Busy => CliError::new(e.to_string())
                .hint("try again in a moment")
                .code(code::OTHER),
            E::BadChange(_) => CliError::new(e.to_string())
                .hint("nothing was applied; this may be a bug worth reporting")
                .code(code::OTHER),
            E::Sqlite(_) => CliError::new(e.to_string()).code(code::OTHER),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string()).code(code::OTHER).with_io(e)
    }
}

impl CliError {
    fn with_io(mut self, e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            self.code = 0;
        }
        self
    }

    /// True for a closed pipe (`cairn feed | head`), which ends the command quietly.
    pub fn is_broken_pipe(&self) -> bool {
        self.code == 0
    }
}
