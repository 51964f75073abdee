//! The sync client: HTTP to a `cairn-server` ([`Client`]), the exchange loop that moves the
//! outbox up and the team's change log down until both sides are level ([`exchange`]), the
//! sync a device runs, which also finishes a join or a publication ([`sync_once`]), joining
//! and publishing ([`join`], [`register`], [`begin`], [`publish`]), what a device remembers
//! of a sync refused for good ([`problem`]), and the replica of the organisation a team
//! belongs to, synced in the same run as the team's ([`org`]).

mod client;
mod device;
mod exchange;
pub mod org;
pub mod problem;

use std::time::Duration;

pub use client::{Client, Notice, Refusal, normalise_url, printable};
pub use device::{
    Device, Join, Joined, Options, begin, client_for, has_work, join, publish, register, sync_once,
};
pub use exchange::{Caps, Report, Step, Unit, exchange, group_outbox, size};

/// How long a quiet sync after a write waits for a silent server (it never holds the write).
pub const QUIET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an asked-for sync waits for a silent server (one that sends no byte).
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a server could not be reached, as far as the network layer tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// The host name does not resolve.
    HostNotFound,
    /// Nothing listens there (refused, or the connection failed).
    NotListening,
    /// The server's TLS certificate is not trusted here.
    Certificate,
    /// An `https://` address whose server does not speak TLS.
    NotHttps,
    /// Anything else of the network.
    Other,
}

/// A failure of the sync area: reaching a server, an exchange, a join or a publication.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What was given as a server's address is not one.
    #[error("`{0}` is not a server address")]
    BadUrl(String),
    /// The server sent nothing for the whole timeout; the request may have reached it.
    #[error("the server at {base} went silent for {} s", timeout.as_secs())]
    Silent {
        base: String,
        timeout: Duration,
        /// Whether the request was a device's (with a token), not a join or publication.
        device: bool,
        #[source]
        source: ureq::Error,
    },
    /// The server could not be reached: nothing reached it.
    #[error("cannot reach the server at {base}")]
    Unreachable {
        base: String,
        why: Unreachable,
        /// Whether the request was a device's (with a token), not a join or publication.
        device: bool,
        #[source]
        source: ureq::Error,
    },
    /// A request could not be encoded (a bug).
    #[error("cannot encode a request")]
    Encode(#[source] serde_json::Error),
    /// The answer is not one a cairn-server gives.
    #[error("the server at {base} answered something cairn cannot read")]
    Unreadable {
        base: String,
        #[source]
        source: serde_json::Error,
    },
    /// The server refused the request, with its reason.
    #[error("the server refused: {refusal}")]
    Refused {
        #[source]
        refusal: Box<Refusal>,
        /// The server's base URL.
        base: String,
        /// The path asked for (`/v1/sync`).
        path: String,
        /// Whether the request had a body (a POST).
        posted: bool,
        /// How long the server asked to wait (429, 503).
        retry_after: Duration,
    },
    /// The server speaks another protocol version.
    #[error(
        "the server speaks protocol {server}, this cairn speaks {}",
        cairn_protocol::PROTOCOL_VERSION
    )]
    Protocol { server: u32 },
    /// The server broke a rule of the exchange or passed a cap of one sync; what came before
    /// was kept.
    #[error("the server at {base} {what}")]
    Stopped {
        base: String,
        what: String,
        /// A cap was reached with an honest-looking server: the next sync goes on from there.
        resumable: bool,
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A thread that fetched the next page ahead ended abnormally.
    #[error("a sync worker failed")]
    Worker,
    /// The server acknowledged only part of a push and said nothing more was coming.
    #[error("the server took only part of what was sent")]
    Partial,
    /// A replica copied or restored could not write its unsent changes again.
    #[error("cannot write this replica's unsent changes again under a fresh actor")]
    Rebase(#[source] cairn_store::Error),
    /// The replica has no server to sync with.
    #[error("this team is not on a server")]
    NotOnServer,
    /// A publication of a team that is on a server already.
    #[error("this team is already on {0}")]
    AlreadyOnServer(String),
    /// A join whose server sent no team document to add the member to.
    #[error("the server sent no team document yet")]
    NoTeamYet,
    /// The replica failed.
    #[error(transparent)]
    Store(#[from] cairn_store::Error),
    /// What a sync writes besides the exchange (a team's shared figures, the kudos across teams
    /// shown in its feed) could not be written.
    #[error("the organisation's replica: {0}")]
    Org(String),
}

/// The sync area's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The server's refusal behind this error, if it is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Error::Refused { refusal, .. } => Some(refusal.as_ref()),
            _ => None,
        }
    }

    /// Whether trying again will not cure it: a refusal (4xx) that is not a timeout or a
    /// request to slow down. A device remembers these ([`problem::remember`]).
    pub fn is_for_good(&self) -> bool {
        self.refusal().is_some_and(Refusal::is_for_good)
    }
}
