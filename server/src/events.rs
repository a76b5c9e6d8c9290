//! The event families the services exchange, one serde enum each, decoded once at the
//! consumer's edge. Their `type` tags are the routing keys.

use crate::bus::Event;
use app::domain::{ImageUrl, ProductId, ProductTitle};
use app::wire::Product;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod legacy;
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

/// A product as the catalog has it after a change, with the stamp of that change: its face
/// (title and image), never its like count, which the web service owns (`likes.counted`).
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
}

impl ProductSnapshot {
    /// The product as shown, with the like count `likes` (at `likes_version`) from elsewhere.
    pub fn product(&self, likes: i64, likes_version: i64) -> Product {
        Product {
            id: self.id,
            title: self.title.clone(),
            image: self.image.clone(),
            likes,
            likes_version,
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
    /// A like count changed: published by catalogs before v2 of the events, when the catalog
    /// owned the counts. Still read from a queue that holds some at an upgrade, as a change of
    /// the product's face (its count is ignored); never published.
    #[serde(rename = "product.likes_changed", skip_serializing)]
    #[schemars(skip)]
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
/// gallery (its own included): the newest event of each product in one applied batch. Each
/// gallery's queue also carries every `likes.counted`, read here as the second variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum GalleryEvent {
    #[serde(rename = "gallery.changed")]
    Changed { products: Vec<CatalogEvent> },
    /// Like counts the web database committed (the `likes` family, published as
    /// [`LikesEvent::Counted`]).
    #[serde(rename = "likes.counted", skip_serializing)]
    #[schemars(skip)]
    Counted(LikeCounts),
}

impl Event for GalleryEvent {
    fn routing_key(&self) -> &'static str {
        match self {
            GalleryEvent::Changed { .. } => "gallery.changed",
            GalleryEvent::Counted(_) => "likes.counted",
        }
    }
}

/// One product's like count as the web database committed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LikeCount {
    #[serde(deserialize_with = "positive_id")]
    #[schemars(with = "i64", range(min = 1))]
    pub id: ProductId,
    /// Visitors liking the product at that commit.
    #[serde(deserialize_with = "not_negative")]
    #[schemars(with = "i64", range(min = 0))]
    pub likes: i64,
    /// Grows with every change of this product's count and never goes back, across restarts
    /// and restores of the web database (it is at least the commit's time in µs): keep the
    /// count with the highest version.
    pub version: i64,
    /// The catalog epoch of the product counted: a catalog with other data (a database made
    /// anew) ignores the count.
    pub epoch: i64,
}

/// A product id of an event: 1 or more, as the databases give them out.
fn positive_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ProductId, D::Error> {
    let id = i64::deserialize(deserializer)?;
    if id < 1 {
        return Err(serde::de::Error::custom(format!(
            "product id {id} is below 1"
        )));
    }
    Ok(ProductId::from_stored(id))
}

/// A count of visitors: 0 or more.
fn not_negative<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let count = i64::deserialize(deserializer)?;
    if count < 0 {
        return Err(serde::de::Error::custom(format!(
            "count {count} is below 0"
        )));
    }
    Ok(count)
}

impl LikeCount {
    /// The next version after `version` at the time `now_us`: higher than both, so a web
    /// database restored from a backup still numbers its counts above every one it had
    /// published before the restore.
    pub fn next_version(version: i64, now_us: i64) -> i64 {
        version.saturating_add(1).max(now_us)
    }
}

/// Every count one transaction of the web database changed, and when it committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LikeCounts {
    /// When the transaction committed, in Unix milliseconds: each web instance measures from
    /// it how long a like takes to reach its sockets.
    pub counted_at_ms: i64,
    pub counts: Vec<LikeCount>,
}

/// Published by the web service on `<namespace>.web`: one event per committed batch of likes,
/// for every web instance's gallery and for the catalog's copy of the counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum LikesEvent {
    #[serde(rename = "likes.counted")]
    Counted(LikeCounts),
    /// One visitor's like, as web services before v2 of the events published it: read from a
    /// queue that still holds some at an upgrade and dropped, since the web database that
    /// committed it counts it and publishes the count (see `legacy`); never published.
    #[serde(rename = "like.added", skip_serializing)]
    #[schemars(skip)]
    Added(legacy::LikeChange),
    /// As `Added`, for an unlike.
    #[serde(rename = "like.removed", skip_serializing)]
    #[schemars(skip)]
    Removed(legacy::LikeChange),
}

impl Event for LikesEvent {
    fn routing_key(&self) -> &'static str {
        match self {
            LikesEvent::Counted(_) => "likes.counted",
            LikesEvent::Added(_) => "like.added",
            LikesEvent::Removed(_) => "like.removed",
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
            version: 5,
            epoch: 1_700_000_000_000,
            generation: 2,
        }
    }

    #[test]
    fn routing_keys_equal_the_type_tags() {
        for event in [
            CatalogEvent::ProductCreated(snapshot()),
            CatalogEvent::ProductUpdated(snapshot()),
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
            serde_json::json!({"id": 3, "title": "Dunes", "image": "https://example.com/dunes.jpg", "version": 5, "epoch": 1_700_000_000_000_i64, "generation": 2})
        );
    }

    #[test]
    fn a_batch_of_counts_is_one_event_with_every_count_it_changed() {
        let event = LikesEvent::Counted(LikeCounts {
            counted_at_ms: 1_700_000_000_123,
            counts: vec![LikeCount {
                id: ProductId::from_stored(3),
                likes: 2,
                version: 1_700_000_000_123_456,
                epoch: 7,
            }],
        });
        let json: serde_json::Value =
            serde_json::from_str(&Envelope::new(event.clone()).to_json()).unwrap();
        assert_eq!(json["type"], "likes.counted");
        assert_eq!(
            json["data"],
            serde_json::json!({"counted_at_ms": 1_700_000_000_123_i64, "counts": [{"id": 3, "likes": 2, "version": 1_700_000_000_123_456_i64, "epoch": 7}]})
        );
        // Every gallery queue reads the same message as a gallery event.
        let fed: Envelope<GalleryEvent> =
            serde_json::from_value(json).expect("a gallery queue reads likes.counted");
        let LikesEvent::Counted(counts) = event else {
            unreachable!()
        };
        assert_eq!(fed.event, GalleryEvent::Counted(counts));
    }

    #[test]
    fn a_count_of_no_product_or_below_zero_does_not_decode() {
        let good = r#"{"counted_at_ms":1,"counts":[{"id":3,"likes":2,"version":9,"epoch":1}]}"#;
        assert!(serde_json::from_str::<LikeCounts>(good).is_ok());
        for bad in [
            good.replace(r#""id":3"#, r#""id":0"#),
            good.replace(r#""likes":2"#, r#""likes":-1"#),
        ] {
            assert!(serde_json::from_str::<LikeCounts>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_version_only_grows_and_follows_the_clock() {
        assert_eq!(LikeCount::next_version(0, 1_000), 1_000);
        assert_eq!(LikeCount::next_version(5_000, 1_000), 5_001);
        assert_eq!(LikeCount::next_version(i64::MAX, 1_000), i64::MAX);
    }

    #[test]
    fn events_of_v1_still_waiting_in_a_queue_decode_and_are_never_published() {
        let like = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"like.added","data":{"product_id":3,"visitor_id":"00000001-1111-4111-8111-111111111111","seq":4,"epoch":7}}"#;
        let decoded: Envelope<LikesEvent> = serde_json::from_str(like).unwrap();
        assert!(matches!(decoded.event, LikesEvent::Added(_)));
        assert!(
            serde_json::to_string(&decoded).is_err(),
            "a v1 like is never published again"
        );
        let count = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"product.likes_changed","data":{"id":3,"title":"Dunes","image":"https://example.com/d.jpg","likes":9,"version":7,"epoch":1,"generation":0,"liked_at_ms":1}}"#;
        let decoded: Envelope<CatalogEvent> = serde_json::from_str(count).unwrap();
        let Some((id, stamp)) = decoded.event.product_stamp() else {
            panic!("a product event")
        };
        assert_eq!((id.get(), stamp.version), (3, 7));
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
        let raw = r#"{"id":3,"title":"Dunes","image":"https://example.com/d.jpg","version":7}"#;
        let old: ProductSnapshot = serde_json::from_str(raw).unwrap();
        assert!(old.stamp() < stamp(1, 0, 1, false));
    }

    #[test]
    fn an_event_with_an_invalid_image_does_not_decode() {
        let raw = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"product.created","data":{"id":1,"title":"x","image":"javascript:alert(1)","version":1}}"#;
        assert!(serde_json::from_str::<Envelope<CatalogEvent>>(raw).is_err());
    }
}
