//! The relay's errors.

use std::path::PathBuf;

/// What can go wrong in the relay's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be read or used.
    #[error("config: {0}")]
    Config(String),
    /// The delivery queue holds something this relay cannot use.
    #[error("queue: {0}")]
    Queue(String),
    #[error("queue database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("replica: {0}")]
    Store(#[from] cairn_store::Error),
    /// There is no replica where the config says.
    #[error(
        "no replica at {0} (the relay reads a team's replica: set `replica` in the config, or \
         join the team first)"
    )]
    NoReplica(PathBuf),
    /// The relay's replica is there already: it joined a team before.
    #[error(
        "this relay has joined a team already: its replica is at {0} (a relay follows one team; \
         give another relay its own `home`)"
    )]
    Joined(PathBuf),
    /// The team's server refused or could not be reached.
    #[error("sync: {0}")]
    Sync(#[from] cairn_client::sync::Error),
    /// Another relay runs with the same home.
    #[error("another cairn-relay is running with the home {0}")]
    Locked(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The relay's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
