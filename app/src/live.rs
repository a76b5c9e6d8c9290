//! Live updates pushed from the web service to browsers over `GET /ws`: one JSON object per
//! WebSocket text message, tagged by `type`.

use crate::domain::ProductId;
use crate::wire::Product;
use serde::{Deserialize, Serialize};

/// A change a browser should apply to what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// A product's like count is now `likes`.
    Likes { id: ProductId, likes: i64 },
    /// A product was created or changed.
    Product { product: Product },
    /// A product was deleted.
    Deleted { id: ProductId },
    /// Updates were missed: fetch the whole list again.
    Resync,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_shape() {
        let likes = LiveMessage::Likes {
            id: ProductId::from_stored(7),
            likes: 42,
        };
        assert_eq!(
            serde_json::to_string(&likes).unwrap(),
            r#"{"type":"likes","id":7,"likes":42}"#
        );
        assert_eq!(
            serde_json::to_string(&LiveMessage::Deleted {
                id: ProductId::from_stored(7)
            })
            .unwrap(),
            r#"{"type":"deleted","id":7}"#
        );
        assert_eq!(
            serde_json::to_string(&LiveMessage::Resync).unwrap(),
            r#"{"type":"resync"}"#
        );
    }
}
