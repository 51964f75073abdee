//! The CLI's one error boundary: every failure becomes an `error:` line, the chain of what
//! caused it (`caused by:`), a hint true for the situation, and an exit code of its kind.
//!
//! Modelled on jj's `command_error.rs`: the kind decides the exit code, the message says what
//! failed in the person's words, the source keeps the lower-level error (an I/O error, SQLite's,
//! the network's) instead of flattening it into a string.

use std::process::ExitCode;

/// What kind of failure, which decides the exit code scripts see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad input: unknown member or pillar, empty text, someone else's event, ... (exit 1)
    Input,
    /// The command line itself was wrong (clap's own exit code, 2).
    Usage,
    /// The replica is missing, damaged, or from a newer cairn (exit 3).
    Replica,
    /// The world failed: the disk, the network, the server, a busy replica (exit 4).
    Failure,
    /// cairn itself went wrong: worth a report (exit 4).
    Bug,
    /// The reader went away (`cairn feed | head`): not a failure (exit 0, silent).
    BrokenPipe,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Input => 1,
            Kind::Usage => 2,
            Kind::Replica => 3,
            Kind::Failure | Kind::Bug => 4,
            Kind::BrokenPipe => 0,
        }
    }
}

/// A failure the user sees.
#[derive(Debug)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
    /// What caused it, kept whole: its own sources are printed too.
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    pub hint: Option<String>,
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

impl CliError {
    /// A failure of the input (exit 1); `.kind()` says otherwise.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            kind: Kind::Input,
            message: message.into(),
            source: None,
            hint: None,
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

    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// The server's refusal behind this failure, if it is one.
    pub fn refusal(&self) -> Option<&cairn_client::sync::Refusal> {
        self.source.as_deref()?.downcast_ref()
    }

    /// Keeps `cause` as what caused this failure.
    pub fn because(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(cause));
        self
    }

    /// The lines a person reads: the error, each cause not already said, the hint.
    pub fn lines(&self) -> Vec<String> {
        let one_line = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut lines = vec![format!("error: {}", one_line(self.message.clone()))];
        let mut said = self.message.clone();
        let mut cause: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as _);
        while let Some(e) = cause {
            let text = one_line(e.to_string());
            if !text.is_empty() && !said.contains(&text) {
                lines.push(format!("caused by: {text}"));
                said.push_str(&text);
            }
            cause = e.source();
        }
        if let Some(h) = &self.hint {
            lines.push(format!("hint: {}", one_line(h.clone())));
        }
        lines
    }

    /// Prints the error on stderr and returns its exit code.
    pub fn report(&self) -> ExitCode {
        // (A message may hold a name from a document or words from a server.)
        for line in self.lines() {
            crate::output::write_note(line);
        }
        ExitCode::from(self.kind.exit_code())
    }

    /// The message and its first cause, when that says more.
    pub fn said(&self) -> String {
        let mut text = self.message.clone();
        if let Some(cause) = &self.source {
            let cause = cause.to_string();
            if !text.contains(&cause) {
                text.push_str(&format!(": {cause}"));
            }
        }
        text
    }

    /// The message, its first cause and the hint in one sentence, for a page beside a form.
    pub fn sentence(&self) -> String {
        match &self.hint {
            Some(h) => format!("{} ({h})", self.said()),
            None => self.said(),
        }
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
            E::UnknownPillar { .. } => {
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
            E::UnknownPillar { .. } => Some(Input::Pillar),
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
            E::Automerge(_) | E::Malformed(_) => CliError::new(e.to_string()).kind(Kind::Bug),
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
                .kind(Kind::Replica),
            E::Exists(_) => CliError::new(e.to_string())
                .hint("this home already holds a team; set CAIRN_HOME to start another elsewhere")
                .kind(Kind::Input),
            E::Corrupt { .. } => CliError::new(e.to_string())
                .hint("cairn will not write to it; move replica.sqlite3 and its -wal and -shm files aside together, then restore a backup")
                .kind(Kind::Replica),
            E::Document { .. } => CliError::new(e.to_string())
                .hint("run `cairn doctor --repair`: it sets aside what cannot load, rebuilds the document from the rest, and the next `cairn sync` brings the rest again")
                .kind(Kind::Replica),
            E::TooNew { .. } => CliError::new(e.to_string())
                .hint("upgrade cairn to use this replica")
                .kind(Kind::Replica),
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
                .kind(Kind::Failure),
            E::BadChange(_) => CliError::new(e.to_string())
                .hint("nothing was applied; this may be a bug worth reporting")
                .kind(Kind::Failure),
            E::NotUnsent(_) => CliError::new(e.to_string())
                .hint("nothing was changed; keep what this device holds with `cairn export`, and tell the server's admin")
                .kind(Kind::Failure),
            E::Unusable { .. } => CliError::new(e.to_string())
                .hint("the server may be damaged or hostile: tell its admin (`cairn doctor` lists what was set aside before)")
                .kind(Kind::Failure),
            E::NotAFile { .. } => CliError::new(e.to_string())
                .hint("cairn follows no link in its home: if you made it, put the file itself in its place; if you did not, remove it and see who else can write to the home")
                .kind(Kind::Failure),
            E::Sqlite(e) => sqlite(e),
        }
    }
}

/// What a person is told of a sync stopped because the server broke a rule of the exchange.
const STOPPED: &str = "what came before was kept and nothing is lost; if it goes on, the server \
                       may be damaged or hostile: tell its admin (`cairn doctor` shows what this \
                       device holds)";

impl From<cairn_client::sync::Error> for CliError {
    fn from(e: cairn_client::sync::Error) -> Self {
        use cairn_client::sync::{Error as E, Unreachable as U};
        match e {
            E::BadUrl(url) => CliError::new(format!("`{url}` is not a server address"))
                .hint("give it as http://HOST:PORT or https://HOST"),
            E::Silent {
                base,
                timeout,
                device,
                source,
            } => {
                // The request may have reached the server: an invite may be spent, a team made.
                let again = if device {
                    "nothing is lost, `cairn sync` tries again later"
                } else {
                    "run the command again later; if the invite was used up meanwhile, ask for a new one"
                };
                CliError::new(format!(
                    "the server at {base} went silent for {} s",
                    timeout.as_secs()
                ))
                .hint(format!(
                    "it may be overloaded or stalled; {again} (CAIRN_SYNC_TIMEOUT=SECONDS waits longer)"
                ))
                .kind(Kind::Failure)
                .because(source)
            }
            E::Unreachable {
                base,
                why,
                device,
                source,
            } => {
                // Nothing reached the server: a device of a team keeps its changes to send; a
                // join or a publish has done nothing yet.
                let again = if device {
                    "nothing is lost, `cairn sync` tries again"
                } else {
                    "nothing was changed; run the command again"
                };
                let what = match why {
                    U::HostNotFound => "check the host name".to_owned(),
                    U::NotListening => {
                        "is cairn-server running there? check the address and the port".to_owned()
                    }
                    U::Certificate => "the server's certificate is not trusted here (expired, \
                                       self-signed or for another name); fix it on the server, \
                                       or trust its issuer on this machine"
                        .to_owned(),
                    U::NotHttps => format!(
                        "the server does not speak HTTPS; if it is meant to be reached without \
                         it, use {}",
                        base.replacen("https://", "http://", 1)
                    ),
                    U::Other => "check the address and the network".to_owned(),
                };
                CliError::new(format!("cannot reach the server at {base}"))
                    .hint(format!("{what}; {again}"))
                    .kind(Kind::Failure)
                    .because(source)
            }
            E::Encode(e) => CliError::new("cannot encode a request")
                .kind(Kind::Bug)
                .because(e),
            E::Unreadable { base, source } => CliError::new(format!(
                "the server at {base} answered something cairn cannot read"
            ))
            .hint("is this address a cairn-server?")
            .kind(Kind::Failure)
            .because(source),
            E::Refused {
                refusal,
                base,
                path,
                posted,
                retry_after,
            } => {
                let status = refusal.status;
                // An answer that is not a cairn-server's error body: another kind of server.
                let not_cairn = refusal.body.is_none();
                let err = CliError::new(format!("the server refused: {refusal}"))
                    .kind(Kind::Failure)
                    .because(*refusal);
                match status {
                    429 | 503 => err.hint(format!(
                        "the server asked to wait {} s; nothing is lost, run `cairn sync` then",
                        retry_after.as_secs().max(1)
                    )),
                    401 => err.hint(format!(
                        "this device's token was refused: if the server was restored from a \
                         backup made before this device joined, take your place back with an \
                         invite from its admin: `cairn join {base} --invite CODE --again` \
                         (everything this device wrote goes up again); if the device was \
                         revoked, keep what it holds with `cairn export > mine.json`, join again \
                         from a new home (CAIRN_HOME=DIR cairn join ...) and bring your events \
                         there with `cairn import mine.json`"
                    )),
                    404 if posted || not_cairn => {
                        err.hint(format!("is {base} a cairn-server? it has no {path}"))
                    }
                    409 => err.hint("see `cairn doctor`"),
                    _ => err,
                }
            }
            E::Protocol { server } => CliError::new(format!(
                "the server speaks protocol {server}, this cairn speaks {}",
                cairn_protocol::PROTOCOL_VERSION
            ))
            .hint("upgrade the older of the two")
            .kind(Kind::Failure),
            E::Stopped {
                base,
                what,
                resumable,
                source,
            } => {
                let err = CliError::new(format!("the server at {base} {what}"))
                    .hint(if resumable {
                        "what came was kept; run `cairn sync` again to go on"
                    } else {
                        STOPPED
                    })
                    .kind(Kind::Failure);
                match source {
                    Some(s) => err.because(s),
                    None => err,
                }
            }
            E::Worker => CliError::new("a sync worker failed").kind(Kind::Failure),
            E::Partial => CliError::new("the server took only part of what was sent")
                .hint("run `cairn sync` again")
                .kind(Kind::Failure),
            E::Rebase(e) => CliError::from(e).hint(
                "this replica was copied or restored and cairn could not write its unsent \
                 changes again; keep them with `cairn export`, then tell the server's admin",
            ),
            E::NotOnServer => CliError::new("this team is not on a server").hint(
                "join one with `cairn join URL --invite CODE --name NAME`, or bring this team to \
                 one with `cairn publish URL --invite CODE`",
            ),
            E::AlreadyOnServer(url) => CliError::new(format!("this team is already on {url}"))
                .hint("`cairn sync` sends what is new"),
            E::NoTeamYet => CliError::new("the server sent no team document yet")
                .hint("its founder starts the team on the server first; then run `cairn sync`")
                .kind(Kind::Failure),
            e @ E::Org(_) => CliError::new(e.to_string())
                .hint("`cairn doctor` checks this home's replicas")
                .kind(Kind::Failure),
            E::Store(e) => e.into(),
        }
    }
}

impl From<cairn_client::write::Error> for CliError {
    fn from(e: cairn_client::write::Error) -> Self {
        use cairn_client::write::Error as E;
        match e {
            E::BadDay(t) => CliError::new(format!("`{t}` is not a day")).hint(
                "use YYYY-MM-DD, `today`, `yesterday`, a weekday like `friday` (the last one), or \
                 days or weeks ago like `7d` or `2w`",
            ),
            E::NotYet(day) => CliError::new(format!("{day} has not happened yet"))
                .hint("log it on the day, or today"),
            E::TooLate { day, earliest } => CliError::new(format!(
                "{day} is further back than the team logs late (from {earliest})"
            ))
            .hint("`cairn team rules --late-days N` widens the window, up to 5 workdays"),
            E::NoRecipients => CliError::new("name at least one teammate")
                .hint("cairn kudos @ana \"...\"")
                .about(Input::Members),
            E::ActingOnServer => {
                CliError::new("--as works only while the team lives on this device alone")
                    .hint("this team is on a server: each member writes from their own device")
            }
            E::NotYourSetting(handle) => CliError::new(format!(
                "only @{handle} says whether they are named in chat: it is their own setting"
            ))
            .hint(format!(
                "@{handle} turns it on or off from a device of theirs (`cairn me chat off`); the \
                 server refuses it from anyone else's"
            )),
            E::Ambiguous(t) => {
                CliError::new(format!("`{t}` starts more than one non-negotiable's id"))
                    .hint("give more of its id (`cairn org` shows them)")
            }
            e @ E::NoOrganisation => CliError::new(e.to_string()).hint(
                "--honours names one of an organisation's non-negotiables; the server's admin \
                 attaches a team to one (`cairn-server team attach TEAM --org ORG`)",
            ),
            e @ E::NoSuchNonNegotiable(_) => CliError::new(e.to_string()).hint(
                "`cairn org` lists the non-negotiables with their ids; `cairn sync` brings the \
                 latest",
            ),
            e @ E::RetiredNonNegotiable { .. } => {
                CliError::new(e.to_string()).hint("`cairn org` lists the non-negotiables in force")
            }
            e @ E::NotAcross(_) => CliError::new(e.to_string())
                .hint("cairn kudos @ben@platform \"...\" (`cairn org feed` shows who was thanked)"),
            e @ (E::UnknownTeam { .. } | E::UnknownPerson { .. }) => CliError::new(e.to_string())
                .hint("`cairn sync` brings the organisation's people; completion offers them"),
            E::Random(e) => CliError::new(format!("the system gave no randomness: {e}")),
            E::Core(e) => e.into(),
            E::Store(e) => e.into(),
        }
    }
}

/// A failure of SQLite under the replica, told by what a person can do about it.
fn sqlite(e: rusqlite::Error) -> CliError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseCorrupt | C::NotADatabase) => CliError::new("the replica is damaged")
            .hint("cairn will not write to it; move replica.sqlite3 and its -wal and -shm files aside together, then restore a backup")
            .kind(Kind::Replica),
        Some(C::ReadOnly) => {
            CliError::new("the replica cannot be written: it or its directory is read-only")
                .hint("give your user write access to the home (CAIRN_HOME) and the files in it")
                .kind(Kind::Failure)
        }
        Some(C::CannotOpen | C::PermissionDenied) => CliError::new("the replica cannot be opened")
            .hint(
                "check that your user may read and write the home (CAIRN_HOME) and the files in it",
            )
            .kind(Kind::Failure),
        Some(C::DiskFull) => CliError::new("the disk is full: nothing was written")
            .hint("free some space and run the command again")
            .kind(Kind::Failure),
        Some(C::SystemIoFailure) => CliError::new("the replica could not be read or written")
            .hint("the disk reported an error; `cairn doctor` checks the replica")
            .kind(Kind::Failure),
        _ => CliError::new("the replica's database failed")
            .hint("`cairn doctor` checks the replica; this may be a bug worth reporting")
            .kind(Kind::Bug),
    }
    .because(e)
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        let kind = if e.kind() == std::io::ErrorKind::BrokenPipe {
            Kind::BrokenPipe
        } else {
            Kind::Failure
        };
        CliError::new(e.to_string()).kind(kind)
    }
}

impl CliError {
    /// True for a closed pipe (`cairn feed | head`), which ends the command quietly.
    pub fn is_broken_pipe(&self) -> bool {
        self.kind == Kind::BrokenPipe
    }
}
