//! The event families the services exchange, one serde enum each, decoded once at the
//! consumer's edge. Their `type` tags are the routing keys.

use crate::bus::Event;
use app::domain::{ImageUrl, ProductId, ProductTitle, VisitorId};
use app::wire::Product;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod schema;

/// Where a product event stands among all the catalog's events about that product: the newer
/// stamp wins, compared field by field in this order. `epoch` names the catalog's data (made when
/// its database is created: a recreated catalog starts a higher one), `generation` grows with each
/// authoritative resync (so a resync beats whatever came before it, even a bogus version), and
/// `version` grows by one with every change of the product. A deletion beats a copy of the same
/// version. Events from before epochs existed have epoch and generation 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Stamp {
    pub epoch: i64,
    pub generation: i64,
    pub version: i64,
    pub deleted: bool,
}

/// A product as the catalog has it after a change, with the stamp of that change.
/// Every product event carries the whole snapshot, so "newest stamp wins" is always right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductSnapshot {
    #[schemars(with = "i64", range(min = 1))]
    pub id: ProductId,
    /// Trimmed, 1–200 characters, no control characters.
    #[schemars(with = "String", length(min = 1, max = 200))]
    pub title: ProductTitle,
    /// An absolute http(s) URL of at most 2,000 characters.
    #[schemars(with = "String", url, length(max = 2000))]
    pub image: ImageUrl,
    pub likes: i64,
    /// Grows by one with every change to the product.
    pub version: i64,
    /// The catalog data's identity, made when the catalog's database was created: an event of
    /// a higher epoch replaces whatever a lower one said about the product.
    #[serde(default)]
    pub epoch: i64,
    /// The catalog's resync generation when the change was made: within an epoch, a higher
    /// generation wins over any version.
    #[serde(default)]
    pub generation: i64,
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

    pub fn stamp(&self) -> Stamp {
        Stamp {
            epoch: self.epoch,
            generation: self.generation,
            version: self.version,
            deleted: false,
        }
    }
}

/// The catalog's data identity and resync generation, as every event it publishes carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CatalogEra {
    pub epoch: i64,
    pub generation: i64,
}

/// Opens an authoritative resync: after `resync.started` the catalog publishes every product it
/// has, stamped with the resync's new generation, then `resync.finished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResyncStart {
    pub epoch: i64,
    pub generation: i64,
    /// How many products the resync sends.
    pub products: u64,
}

/// Closes an authoritative resync with the ids of every product the catalog had: each read model
/// removes any other product it holds from before the resync's generation (with its likes),
/// whether or not the products' own events have arrived yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResyncEnd {
    pub epoch: i64,
    pub generation: i64,
    /// Every product id the catalog had, ascending.
    pub ids: Vec<i64>,
}

/// Published by the catalog on `<namespace>.catalog`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    ProductDeleted {
        #[schemars(with = "i64", range(min = 1))]
        id: ProductId,
        version: i64,
        #[serde(default)]
        epoch: i64,
        #[serde(default)]
        generation: i64,
    },
    #[serde(rename = "resync.started")]
    ResyncStarted(ResyncStart),
    #[serde(rename = "resync.finished")]
    ResyncFinished(ResyncEnd),
}

impl CatalogEvent {
    /// A deletion of `id` with the stamp `era` and `version`.
    pub fn deleted(id: ProductId, era: CatalogEra, version: i64) -> Self {
        CatalogEvent::ProductDeleted {
            id,
            version,
            epoch: era.epoch,
            generation: era.generation,
        }
    }

    /// The product this event is about and its stamp; `None` for the resync markers.
    pub fn product_stamp(&self) -> Option<(ProductId, Stamp)> {
        match self {
            CatalogEvent::ProductCreated(p)
            | CatalogEvent::ProductUpdated(p)
            | CatalogEvent::LikesChanged(p) => Some((p.id, p.stamp())),
            CatalogEvent::ProductDeleted {
                id,
                version,
                epoch,
                generation,
            } => Some((
                *id,
                Stamp {
                    epoch: *epoch,
                    generation: *generation,
                    version: *version,
                    deleted: true,
                },
            )),
            CatalogEvent::ResyncStarted(_) | CatalogEvent::ResyncFinished(_) => None,
        }
    }

    /// The catalog data this event comes from.
    pub fn epoch(&self) -> i64 {
        match self {
            CatalogEvent::ResyncStarted(start) => start.epoch,
            CatalogEvent::ResyncFinished(end) => end.epoch,
            _ => self.product_stamp().map_or(0, |(_, stamp)| stamp.epoch),
        }
    }

    /// When the earliest like counted in this event was committed, if it carries that.
    pub fn liked_at_ms(&self) -> Option<i64> {
        match self {
            CatalogEvent::ProductCreated(p)
            | CatalogEvent::ProductUpdated(p)
            | CatalogEvent::LikesChanged(p) => p.liked_at_ms,
            _ => None,
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
            CatalogEvent::ResyncStarted(_) => "resync.started",
            CatalogEvent::ResyncFinished(_) => "resync.finished",
        }
    }
}

/// What a web instance's read model committed, told to every web instance's in-memory
/// gallery (its own included): the newest event of each product in one applied batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LikeChange {
    #[schemars(with = "i64", range(min = 1))]
    pub product_id: ProductId,
    /// The visitor's id: a lowercase, hyphenated UUID.
    #[schemars(
        with = "String",
        regex(pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    )]
    pub visitor_id: VisitorId,
    pub seq: i64,
    /// The epoch of the catalog data the product came from: a catalog with other data (a
    /// recreated database) ignores the like. 0 in events from before epochs existed.
    #[serde(default)]
    pub epoch: i64,
}

/// What either service stores of one visitor's like of one product: whether they like it now,
/// and the `seq` of its last change (0 before any). A like event applies only over a lower `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredLike {
    pub liked: bool,
    pub seq: i64,
}

/// Published by the web service on `<namespace>.web`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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

    pub fn change_mut(&mut self) -> &mut LikeChange {
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
/// database) or it meets an epoch it does not know: the catalog answers with an authoritative
/// resync (`resync.started`, every product, `resync.finished`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
            epoch: 1_700_000_000_000,
            generation: 2,
            liked_at_ms: None,
        }
    }

    #[test]
    fn routing_keys_equal_the_type_tags() {
        for event in [
            CatalogEvent::ProductCreated(snapshot()),
            CatalogEvent::ProductUpdated(snapshot()),
            CatalogEvent::LikesChanged(snapshot()),
            CatalogEvent::deleted(
                ProductId::from_stored(3),
                CatalogEra {
                    epoch: 1,
                    generation: 0,
                },
                6,
            ),
            CatalogEvent::ResyncStarted(ResyncStart {
                epoch: 1,
                generation: 3,
                products: 2,
            }),
            CatalogEvent::ResyncFinished(ResyncEnd {
                epoch: 1,
                generation: 3,
                ids: vec![3, 4],
            }),
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
            serde_json::json!({"id": 3, "title": "Dunes", "image": "https://example.com/dunes.jpg", "likes": 2, "version": 5, "epoch": 1_700_000_000_000_i64, "generation": 2})
        );
    }

    #[test]
    fn a_newer_epoch_beats_any_version_and_a_resync_beats_any_older_generation() {
        let stamp = |epoch, generation, version, deleted| Stamp {
            epoch,
            generation,
            version,
            deleted,
        };
        assert!(stamp(2, 0, 1, false) > stamp(1, 9, i64::MAX, false));
        assert!(stamp(1, 3, 1, false) > stamp(1, 2, i64::MAX, true));
        assert!(stamp(1, 3, 2, false) > stamp(1, 3, 1, false));
        assert!(
            stamp(1, 3, 2, true) > stamp(1, 3, 2, false),
            "a deletion of the same version"
        );
        // An event from before epochs decodes with epoch and generation 0 and loses to any other.
        let raw =
            r#"{"id":3,"title":"Dunes","image":"https://example.com/d.jpg","likes":0,"version":7}"#;
        let old: ProductSnapshot = serde_json::from_str(raw).unwrap();
        assert!(old.stamp() < stamp(1, 0, 1, false));
    }

    #[test]
    fn an_event_with_an_invalid_image_does_not_decode() {
        let raw = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"product.created","data":{"id":1,"title":"x","image":"javascript:alert(1)","likes":0,"version":1}}"#;
        assert!(serde_json::from_str::<Envelope<CatalogEvent>>(raw).is_err());
    }
}
