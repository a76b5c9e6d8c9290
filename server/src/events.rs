//! The event families the services exchange, one serde enum each, decoded once at the
//! consumer's edge. Their `type` tags are the routing keys.

use crate::bus::Event;
use app::domain::{ImageUrl, ProductId, ProductTitle, VisitorId};
use app::wire::Product;
use serde::{Deserialize, Serialize};

/// A product as the catalog has it after a change, with the version that change produced.
/// Every product event carries the whole snapshot, so "highest version wins" is always right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductSnapshot {
    pub id: ProductId,
    pub title: ProductTitle,
    pub image: ImageUrl,
    pub likes: i64,
    /// Grows by one with every change to the product.
    pub version: i64,
    /// In a count change: when the earliest like it counts was committed on a web instance
    /// (Unix milliseconds), so each instance can measure how long likes take to reach browsers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liked_at_ms: Option<i64>,
}

impl ProductSnapshot {
    pub fn product(&self) -> Product {
        Product {
            id: self.id,
            title: self.title.clone(),
            image: self.image.clone(),
            likes: self.likes,
        }
    }
}

/// Published by the catalog on `<namespace>.catalog`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CatalogEvent {
    #[serde(rename = "product.created")]
    ProductCreated(ProductSnapshot),
    #[serde(rename = "product.updated")]
    ProductUpdated(ProductSnapshot),
    /// The like count changed; carries the whole product like the others.
    #[serde(rename = "product.likes_changed")]
    LikesChanged(ProductSnapshot),
    #[serde(rename = "product.deleted")]
    ProductDeleted { id: ProductId, version: i64 },
}

impl CatalogEvent {
    /// The product this event is about and the catalog's version of it.
    pub fn product_version(&self) -> (ProductId, i64) {
        match self {
            CatalogEvent::ProductCreated(p)
            | CatalogEvent::ProductUpdated(p)
            | CatalogEvent::LikesChanged(p) => (p.id, p.version),
            CatalogEvent::ProductDeleted { id, version } => (*id, *version),
        }
    }

    /// When the earliest like counted in this event was committed, if it carries that.
    pub fn liked_at_ms(&self) -> Option<i64> {
        match self {
            CatalogEvent::ProductCreated(p)
            | CatalogEvent::ProductUpdated(p)
            | CatalogEvent::LikesChanged(p) => p.liked_at_ms,
            CatalogEvent::ProductDeleted { .. } => None,
        }
    }
}

impl Event for CatalogEvent {
    fn routing_key(&self) -> &'static str {
        match self {
            CatalogEvent::ProductCreated(_) => "product.created",
            CatalogEvent::ProductUpdated(_) => "product.updated",
            CatalogEvent::LikesChanged(_) => "product.likes_changed",
            CatalogEvent::ProductDeleted { .. } => "product.deleted",
        }
    }
}

/// What a web instance's read model committed, told to every web instance's in-memory
/// gallery (its own included): the newest event of each product in one applied batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum GalleryEvent {
    #[serde(rename = "gallery.changed")]
    Changed { products: Vec<CatalogEvent> },
}

impl Event for GalleryEvent {
    fn routing_key(&self) -> &'static str {
        "gallery.changed"
    }
}

/// A visitor's like of a product changed. `seq` grows with every change of this visitor's like
/// of this product, so the catalog can apply the changes in order whatever order they arrive in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LikeChange {
    pub product_id: ProductId,
    pub visitor_id: VisitorId,
    pub seq: i64,
}

/// What either service stores of one visitor's like of one product: whether they like it now,
/// and the `seq` of its last change (0 before any). A like event applies only over a lower `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredLike {
    pub liked: bool,
    pub seq: i64,
}

/// Published by the web service on `<namespace>.web`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum LikeEvent {
    #[serde(rename = "like.added")]
    Added(LikeChange),
    #[serde(rename = "like.removed")]
    Removed(LikeChange),
}

impl LikeEvent {
    pub fn change(&self) -> &LikeChange {
        match self {
            LikeEvent::Added(change) | LikeEvent::Removed(change) => change,
        }
    }

    /// Whether the visitor likes the product after this change.
    pub fn liked(&self) -> bool {
        matches!(self, LikeEvent::Added(_))
    }
}

impl Event for LikeEvent {
    fn routing_key(&self) -> &'static str {
        match self {
            LikeEvent::Added(_) => "like.added",
            LikeEvent::Removed(_) => "like.removed",
        }
    }
}

/// Published by the web service on `<namespace>.web` when its read model is empty (a fresh
/// database): the catalog answers by publishing every product's snapshot again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ResyncEvent {
    #[serde(rename = "resync.requested")]
    Requested {},
}

impl Event for ResyncEvent {
    fn routing_key(&self) -> &'static str {
        "resync.requested"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Envelope;

    fn snapshot() -> ProductSnapshot {
        ProductSnapshot {
            id: ProductId::from_stored(3),
            title: ProductTitle::parse("Dunes").unwrap(),
            image: ImageUrl::parse("https://example.com/dunes.jpg").unwrap(),
            likes: 2,
            version: 5,
            liked_at_ms: None,
        }
    }

    #[test]
    fn routing_keys_equal_the_type_tags() {
        for event in [
            CatalogEvent::ProductCreated(snapshot()),
            CatalogEvent::ProductUpdated(snapshot()),
            CatalogEvent::LikesChanged(snapshot()),
            CatalogEvent::ProductDeleted {
                id: ProductId::from_stored(3),
                version: 6,
            },
        ] {
            let json: serde_json::Value =
                serde_json::from_str(&Envelope::new(event.clone()).to_json()).unwrap();
            assert_eq!(json["type"], event.routing_key());
        }
    }

    #[test]
    fn a_product_event_carries_the_whole_snapshot() {
        let json: serde_json::Value = serde_json::from_str(
            &Envelope::new(CatalogEvent::ProductUpdated(snapshot())).to_json(),
        )
        .unwrap();
        assert_eq!(
            json["data"],
            serde_json::json!({"id": 3, "title": "Dunes", "image": "https://example.com/dunes.jpg", "likes": 2, "version": 5})
        );
    }

    #[test]
    fn an_event_with_an_invalid_image_does_not_decode() {
        let raw = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"product.created","data":{"id":1,"title":"x","image":"javascript:alert(1)","likes":0,"version":1}}"#;
        assert!(serde_json::from_str::<Envelope<CatalogEvent>>(raw).is_err());
    }
}
