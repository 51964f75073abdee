//! The server's one error type: what went wrong, as a status and a small JSON body for the
//! client, with the detail kept for the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_protocol::ErrorBody;

/// Why a request or an admin command failed.
#[derive(Debug, thiserror::Error)]
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
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the database is busy, try again")]
    Busy,
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    #[error("{0}")]
    Internal(String),
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

impl Error {
    /// The HTTP status and the stable machine code of this error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Error::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Error::Sqlite(_) | Error::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %self, "request refused");
        }
        // The client never sees the inside of a server failure, only that it happened.
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "the server failed; its log says why".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: code.to_owned(),
            message,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response()
    }
}

/// The result of a server operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
