//! The server's one error type: what went wrong, as a status and a small JSON body for the
//! client, with the detail kept for the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_protocol::ErrorBody;

/// Why a request or an admin command failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid device token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A join to a team that has no history yet, or whose founder is bringing it now: the
    /// joiner comes back once the founder has.
    #[error("{0}")]
    NoHistory(String),
    /// A publication with an invite that was not made for the team's founder.
    #[error("{0}")]
    NotFounder(String),
    /// A pushed change reuses its actor's number with other content: the device's replica was
    /// copied or restored. The client writes it again under a fresh actor.
    #[error("{message}")]
    ActorReused {
        message: String,
        doc: String,
        /// The refused change's hash, in hex.
        change: String,
    },
    /// A write by a relay, which only reads.
    #[error("{0}")]
    ReadOnly(String),
    /// A cursor past the log's head: the server lost history (a restore). The client sends
    /// again what it wrote and reads the log from its start.
    #[error("{0}")]
    PastHead(String),
    /// A pushed change depends on a change the server does not hold (lost in a restore, say,
    /// and not sent again by its author yet). The client holds it back for a later sync.
    #[error("{message}")]
    MissingDeps { message: String, doc: String },
    /// A join whose invite was made for another kind of device (a relay's, a member's).
    #[error("{0}")]
    WrongKind(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(m) => Error::NotFound(m),
            // A full disk or a database restarting is the operator's to fix and passes: the
            // client tries again later, after as long as its cause needs.
            StoreError::Unavailable(cause) => Error::Unavailable {
                message: format!("{cause}; try again later"),
                retry_after: cause.retry_after(),
            },
            StoreError::Other(m) => Error::Internal(m),
            e @ (StoreError::HeadMoved
            | StoreError::ActorTaken
            | StoreError::Collided(_)
            | StoreError::InviteSpent
            | StoreError::DeviceCap { .. }
            | StoreError::Published
            | StoreError::NotEmpty
            | StoreError::CopyDiffers { .. }) => Error::Conflict(e.to_string()),
        }
    }
}

/// The refusal a response carries for the request log (untrusted text: log it escaped).
#[derive(Clone, Debug)]
pub struct Refused(pub String);

impl Error {
    /// A 503 that asks the client to come back in a second.
    pub fn busy(message: impl Into<String>) -> Error {
        Error::Unavailable {
            message: message.into(),
            retry_after: std::time::Duration::from_secs(1),
        }
    }

    /// The HTTP status and the stable machine code of this error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::NoHistory(_) => (StatusCode::CONFLICT, cairn_protocol::NO_HISTORY),
            Error::NotFounder(_) => (StatusCode::FORBIDDEN, cairn_protocol::NOT_FOUNDER),
            Error::ActorReused { .. } => (StatusCode::CONFLICT, cairn_protocol::ACTOR_REUSED),
            Error::ReadOnly(_) => (StatusCode::FORBIDDEN, cairn_protocol::READ_ONLY),
            Error::PastHead(_) => (StatusCode::CONFLICT, cairn_protocol::PAST_HEAD),
            Error::MissingDeps { .. } => (StatusCode::BAD_REQUEST, cairn_protocol::MISSING_DEPS),
            Error::WrongKind(_) => (StatusCode::FORBIDDEN, cairn_protocol::WRONG_KIND),
            Error::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Error::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Error::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        // The request log writes one line per refusal from what the response carries (see
        // `crate::observe`); the client never sees the inside of a server failure.
        let detail = self.to_string();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "the server failed; its log says why".to_owned()
        } else {
            detail.clone()
        };
        let retry_after = match &self {
            Error::TooManyRequests { retry_after, .. } | Error::Unavailable { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        };
        let (doc, change) = match &self {
            Error::ActorReused { doc, change, .. } => (Some(doc.clone()), Some(change.clone())),
            Error::MissingDeps { doc, .. } => (Some(doc.clone()), None),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: code.to_owned(),
            message,
            doc,
            change,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp.extensions_mut().insert(Refused(detail));
        resp
    }
}

/// The result of a server operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
