//! Errors of the replica.

use std::path::PathBuf;

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no replica at {0}")]
    Missing(PathBuf),
    #[error("a replica already exists at {0}")]
    Exists(PathBuf),
    #[error("the replica at {path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the replica at {path} was written by a newer cairn (schema {found}, this one knows {known})"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("no event matches `{0}`")]
    NoSuchEvent(String),
    #[error("`{prefix}` matches several events: {candidates}")]
    AmbiguousEvent { prefix: String, candidates: String },
    #[error("the replica is busy: another cairn is writing to it")]
    Busy,
    #[error(transparent)]
    Core(#[from] cairn_core::Error),
    #[error("document {doc} cannot be loaded: {detail}")]
    Document { doc: String, detail: String },
    #[error("the server sent a change this replica cannot use: {0}")]
    BadChange(String),
    #[error(
        "the server named a change to {0} that this device cannot write again (not one of its unsent changes)"
    )]
    NotUnsent(String),
    /// A file of the replica (or its journal) that is a symbolic link or no plain file: never
    /// followed, never changed.
    #[error("{} is {what}, where the replica keeps a file of its own", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    /// A page from the server that brought more changes this replica cannot use than a page
    /// may ([`crate::MAX_UNUSABLE`]): nothing of it was kept.
    #[error(
        "the server sent {changes} changes ({bytes} bytes) in one page that this replica cannot use; none of the page was kept"
    )]
    Unusable { changes: usize, bytes: usize },
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy
            }
            _ => Error::Sqlite(e),
        }
    }
}

/// The result of a replica operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
