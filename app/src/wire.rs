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
    pub liked: bool,
}

/// The error every server function returns. Each variant is something a person can understand;
/// internal causes stay in the server log and never reach the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
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
