//! Event shapes of v1 that are no longer published but may still wait in a queue when a
//! deployment is upgraded: they are decoded so that they can be settled, not dead-lettered.

use app::domain::{ProductId, VisitorId};
use serde::{Deserialize, Serialize};

/// A visitor's like of a product changed (`like.added`, `like.removed` of v1). The web database
/// that committed it already counts it and publishes the count, so a consumer drops it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LikeChange {
    pub product_id: ProductId,
    pub visitor_id: VisitorId,
    pub seq: i64,
    #[serde(default)]
    pub epoch: i64,
}
