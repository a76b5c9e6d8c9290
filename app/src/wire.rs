//! Shapes that cross the wire between the server and the browser: server-function results and
//! the errors they carry.

use crate::domain::{ImageUrl, ProductId, ProductTitle, ValidationError};
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// A product as the gallery and the admin table show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: ProductId,
    pub title: ProductTitle,
    pub image: ImageUrl,
    /// How many visitors like it right now.
    pub likes: i64,
    /// The version of `likes`: it grows with every change of the count, so of two counts of a
    /// product, the one with the higher version is the newer (0: not known).
    #[serde(default)]
    pub likes_version: i64,
}

/// A product in the gallery, with whether this visitor likes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    #[serde(flatten)]
    pub product: Product,
    pub liked: bool,
}

/// The outcome of a like or unlike: the product's count and this visitor's state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LikeState {
    pub id: ProductId,
    pub likes: i64,
    /// The version of `likes`, as in [`Product::likes_version`].
    pub likes_version: i64,
    pub liked: bool,
}

/// The error every server function returns. Each variant is something a person can understand;
/// internal causes stay in the server log and never reach the browser. On the wire it is the
/// JSON error shape every `/api/` error has: `{"error": code, "message": text}`, with `field`
/// for a validation error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(into = "ErrorBody", from = "ErrorBody")]
pub enum AppError {
    #[error("{0}")]
    Validation(ValidationError),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("sign in as an administrator first")]
    Unauthorized,
    #[error("the service is busy or restarting; please try again in a moment")]
    Unavailable,
    #[error("something went wrong on our side; please try again")]
    Internal,
    /// The call itself failed: the network, or a request the server could not read.
    #[error("could not complete the request: {0}")]
    Transport(String),
}

/// `AppError` as it crosses the wire.
#[derive(Serialize, Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl From<AppError> for ErrorBody {
    fn from(err: AppError) -> Self {
        let (error, message, field) = match err {
            AppError::Validation(invalid) => ("validation", invalid.reason, Some(invalid.field)),
            AppError::Transport(reason) => ("bad_request", reason, None),
            AppError::NotFound => ("not_found", err.to_string(), None),
            AppError::Conflict(message) => ("conflict", message, None),
            AppError::Unauthorized => ("unauthorized", err.to_string(), None),
            AppError::Unavailable => ("unavailable", err.to_string(), None),
            AppError::Internal => ("internal", err.to_string(), None),
        };
        Self {
            error: error.to_owned(),
            message,
            field,
        }
    }
}

impl From<ErrorBody> for AppError {
    fn from(body: ErrorBody) -> Self {
        match body.error.as_str() {
            "validation" => Self::Validation(ValidationError {
                field: body.field.unwrap_or_default(),
                reason: body.message,
            }),
            "not_found" => Self::NotFound,
            "conflict" | "rate_limited" => Self::Conflict(body.message),
            "unauthorized" | "forbidden" => Self::Unauthorized,
            "unavailable" => Self::Unavailable,
            "internal" => Self::Internal,
            _ => Self::Transport(body.message),
        }
    }
}

impl From<ValidationError> for AppError {
    fn from(err: ValidationError) -> Self {
        Self::Validation(err)
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let reason = match value {
            ServerFnErrorErr::Request(_) => "the server could not be reached",
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => {
                "the request was malformed"
            }
            _ => "unexpected response",
        };
        Self::Transport(reason.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_the_wire_in_the_json_error_shape_and_back() {
        let invalid = AppError::Validation(ValidationError::new("title", "must not be empty"));
        let json = serde_json::to_value(&invalid).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "validation", "field": "title", "message": "must not be empty"})
        );
        for err in [
            invalid,
            AppError::NotFound,
            AppError::Conflict("already liked".to_owned()),
            AppError::Unauthorized,
            AppError::Unavailable,
            AppError::Internal,
            AppError::Transport("the request was malformed".to_owned()),
        ] {
            let json = serde_json::to_string(&err).unwrap();
            assert_eq!(
                serde_json::from_str::<AppError>(&json).unwrap(),
                err,
                "{json}"
            );
        }
    }
}
