//! The HTTP error type: domain failures map to clear 4xx answers, anything unexpected to one
//! opaque 500 (or 503 while a dependency is down) whose cause chain goes to the log only.

use app::domain::ValidationError;
use app::wire::AppError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::fmt::Write;

/// What a request handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong credentials")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("too many requests")]
    RateLimited,
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the body is too large")]
    PayloadTooLarge,
    #[error("the request took too long to arrive")]
    Timeout,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("message bus error")]
    Bus(#[from] crate::bus::BusError),
    /// A dependency is down or overloaded; the cause was logged where it happened.
    #[error("temporarily unavailable")]
    Unavailable,
    /// Something failed unexpectedly; the cause was logged where it happened.
    #[error("internal error")]
    Internal,
}

/// `Result` with this crate's `Error`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Timeout => StatusCode::REQUEST_TIMEOUT,
            Error::Database(err) if is_unavailable(err) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Bus(_) | Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this is "down or overloaded" (503) rather than a bug (500).
    pub fn is_unavailable(&self) -> bool {
        self.status() == StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Whether a database error means "down or overloaded" rather than "bug".
fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    ) || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| is_unavailable_code(&code)))
}

/// PostgreSQL SQLSTATEs of a server that is going away or turning connections down: operator
/// intervention (57P01 terminated, 57P03 starting up…), connection exceptions (08…), too many
/// connections (53300) and a database not accepting connections (55000).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("57P") || code.starts_with("08") || code == "53300" || code == "55000"
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Error::Validation(err) => json!({
                "error": "validation",
                "field": err.field,
                "message": err.reason,
            }),
            Error::NotFound => json!({ "error": "not_found", "message": "no such resource" }),
            Error::Conflict(message) => json!({ "error": "conflict", "message": message }),
            Error::Unauthorized => json!({
                "error": "unauthorized",
                "message": "missing or wrong credentials",
            }),
            Error::BadRequest(message) => json!({ "error": "bad_request", "message": message }),
            Error::Forbidden(message) => json!({ "error": "forbidden", "message": message }),
            Error::RateLimited => json!({
                "error": "rate_limited",
                "message": "too many requests from your address; try again in a minute",
            }),
            Error::UnsupportedMediaType => {
                json!({ "error": "unsupported_media_type", "message": self.to_string() })
            }
            Error::PayloadTooLarge => {
                json!({ "error": "payload_too_large", "message": "the body is larger than 64 KiB" })
            }
            Error::Timeout => json!({ "error": "timeout", "message": self.to_string() }),
            Error::Database(_) | Error::Bus(_) => {
                tracing::error!(error = %chain(&self), "request failed");
                opaque(status)
            }
            // Their cause was logged where it happened.
            Error::Unavailable | Error::Internal => opaque(status),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        match err {
            Error::Validation(err) => AppError::Validation(err),
            Error::NotFound => AppError::NotFound,
            Error::Conflict(message) => AppError::Conflict(message),
            Error::Unauthorized => AppError::Unauthorized,
            Error::Forbidden(_) => AppError::Unauthorized,
            Error::RateLimited => {
                AppError::Conflict("Too many likes at once; try again in a minute.".to_owned())
            }
            Error::BadRequest(_)
            | Error::UnsupportedMediaType
            | Error::PayloadTooLarge
            | Error::Timeout => AppError::Transport("the request was malformed".to_owned()),
            other => {
                tracing::error!(error = %chain(&other), "server function failed");
                if other.status() == StatusCode::SERVICE_UNAVAILABLE {
                    AppError::Unavailable
                } else {
                    AppError::Internal
                }
            }
        }
    }
}

/// The body of a 503 or 500: what to do, and nothing of the cause.
fn opaque(status: StatusCode) -> serde_json::Value {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        json!({ "error": "unavailable", "message": "temporarily unavailable; please retry" })
    } else {
        json!({ "error": "internal", "message": "something went wrong on our side" })
    }
}

/// An error and all its sources on one line, for logs: `a: b: c`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_lists_every_cause() {
        let inner = std::io::Error::other("disk on fire");
        let outer = crate::db::DbError::CreateDir(inner);
        assert_eq!(
            chain(&outer),
            "cannot create the directory for the SQLite file: disk on fire"
        );
    }

    #[test]
    fn pool_timeouts_are_unavailable_not_internal() {
        assert_eq!(
            Error::Database(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            Error::Database(sqlx::Error::RowNotFound).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
