//! The web service's copy of the catalog's products, fed only by catalog events. Applying an
//! event is idempotent and order-safe: each carries the product's version, a row only ever moves
//! to a higher version, and a deleted product leaves a tombstone so a late update cannot revive it.

use crate::bus::consumer::{HandleError, Handler};
use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::{Database, Sql};
use crate::events::{CatalogEvent, ResyncEvent};
use std::collections::BTreeMap;

/// Upserts a batch of products, each only over an older version. A deletion (`x` = 1) keeps the
/// row as a tombstone with its version and is never undone.
const APPLY: Sql = Sql {
    postgres: "insert into product (id, title, image, likes, version, deleted) \
               select id, t, i, l, v, x from jsonb_to_recordset($1::jsonb) \
               as r(id bigint, t text, i text, l bigint, v bigint, x bigint) \
               on conflict (id) do update set \
               title = case when excluded.deleted = 1 then product.title else excluded.title end, \
               image = case when excluded.deleted = 1 then product.image else excluded.image end, \
               likes = case when excluded.deleted = 1 then product.likes else excluded.likes end, \
               version = excluded.version, \
               deleted = case when excluded.deleted = 1 then 1 else product.deleted end \
               where product.version < excluded.version",
    sqlite: "insert into product (id, title, image, likes, version, deleted) \
             select json_extract(value, '$.id'), json_extract(value, '$.t'), json_extract(value, '$.i'), \
             json_extract(value, '$.l'), json_extract(value, '$.v'), json_extract(value, '$.x') \
             from json_each($1) where true \
             on conflict (id) do update set \
             title = case when excluded.deleted = 1 then product.title else excluded.title end, \
             image = case when excluded.deleted = 1 then product.image else excluded.image end, \
             likes = case when excluded.deleted = 1 then product.likes else excluded.likes end, \
             version = excluded.version, \
             deleted = case when excluded.deleted = 1 then 1 else product.deleted end \
             where product.version < excluded.version",
};

/// The product id and version an event is about.
fn key(event: &CatalogEvent) -> (i64, i64) {
    match event {
        CatalogEvent::ProductCreated(p)
        | CatalogEvent::ProductUpdated(p)
        | CatalogEvent::LikesChanged(p) => (p.id.get(), p.version),
        CatalogEvent::ProductDeleted { id, version } => (id.get(), *version),
    }
}

/// What a batch holds for one product: its newest event, and its newest product change
/// (created, updated, deleted).
#[derive(Debug, Clone, PartialEq)]
struct Newest {
    event: CatalogEvent,
    change: Option<CatalogEvent>,
}

impl Newest {
    /// The events to announce to this instance's browsers, oldest first: a rename that a newer
    /// count overtook in the batch still has to reach pages that never saw it.
    fn announcements(self) -> impl Iterator<Item = CatalogEvent> {
        let newest = key(&self.event).1;
        let overtaken = self.change.filter(|change| key(change).1 < newest);
        overtaken.into_iter().chain(std::iter::once(self.event))
    }
}

/// The newest event of each product in `events`, by product id (the order rows are locked in).
fn newest_per_product(events: Vec<CatalogEvent>) -> BTreeMap<i64, Newest> {
    let mut newest: BTreeMap<i64, Newest> = BTreeMap::new();
    for event in events {
        let (id, version) = key(&event);
        let change = (!matches!(event, CatalogEvent::LikesChanged(_))).then(|| event.clone());
        match newest.entry(id) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Newest { event, change });
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let kept = slot.get_mut();
                if change.is_some()
                    && kept
                        .change
                        .as_ref()
                        .is_none_or(|older| key(older).1 < version)
                {
                    kept.change = change;
                }
                if key(&kept.event).1 < version {
                    kept.event = event;
                }
            }
        }
    }
    newest
}

fn row(event: &CatalogEvent) -> serde_json::Value {
    match event {
        CatalogEvent::ProductCreated(p)
        | CatalogEvent::ProductUpdated(p)
        | CatalogEvent::LikesChanged(p) => serde_json::json!({
            "id": p.id.get(), "t": p.title.as_str(), "i": p.image.as_str(),
            "l": p.likes, "v": p.version, "x": 0,
        }),
        CatalogEvent::ProductDeleted { id, version } => serde_json::json!({
            "id": id.get(), "t": "", "i": "", "l": 0, "v": version, "x": 1,
        }),
    }
}

/// Asks the catalog for every product when the read model has never held one (a fresh
/// database). The request goes through the outbox, so it waits for the broker if need be.
pub async fn request_resync_if_empty(
    db: &Database,
    relay: &RelayWaker,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let known: i64 = sqlx::query_scalar("select count(*) from product")
        .fetch_one(&mut *tx)
        .await?;
    if known > 0 {
        return Ok(false);
    }
    outbox::enqueue(&mut tx, &Envelope::new(ResyncEvent::Requested {})).await?;
    tx.commit().await?;
    relay.wake();
    tracing::info!("read model empty: asked the catalog for every product");
    Ok(true)
}

/// Applies catalog events to the read model, a batch per transaction: the newest event of each
/// product, over an older version only. That makes repeats and reordering harmless without a
/// record of applied events.
pub struct ReadModelHandler {
    pub db: Database,
    /// This instance's browsers hear of every change applied here, including changes made
    /// while the instance was down, which its own live queue never saw.
    pub live: std::sync::Arc<crate::live::LiveFeed>,
}

impl Handler for ReadModelHandler {
    type Event = CatalogEvent;
    const NAME: &'static str = "read_model";
    const BATCH: usize = 1000;

    async fn handle(&self, envelope: Envelope<CatalogEvent>) -> Result<(), HandleError> {
        self.handle_batch(vec![envelope]).await
    }

    #[tracing::instrument(name = "apply_catalog_events", skip_all, fields(events = batch.len()))]
    async fn handle_batch(&self, batch: Vec<Envelope<CatalogEvent>>) -> Result<(), HandleError> {
        let newest = newest_per_product(batch.into_iter().map(|e| e.event).collect());
        let rows: Vec<serde_json::Value> = newest.values().map(|kept| row(&kept.event)).collect();
        let mut tx = self.db.begin_write().await?;
        sqlx::query(self.db.sql(&APPLY))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        for event in newest.into_values().flat_map(Newest::announcements) {
            self.live.applied_to_read_model(event);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ProductSnapshot;
    use app::domain::{ImageUrl, ProductId, ProductTitle};

    fn updated(id: i64, title: &str, version: i64) -> CatalogEvent {
        CatalogEvent::ProductUpdated(ProductSnapshot {
            id: ProductId::from_stored(id),
            title: ProductTitle::parse(title).unwrap(),
            image: ImageUrl::parse("https://example.com/x.jpg").unwrap(),
            likes: 0,
            version,
        })
    }

    #[test]
    fn a_batch_keeps_the_newest_event_of_each_product_whatever_the_order() {
        let deleted = CatalogEvent::ProductDeleted {
            id: ProductId::from_stored(2),
            version: 4,
        };
        let newest = newest_per_product(vec![
            updated(1, "Second", 2),
            updated(2, "Gone", 3),
            updated(1, "First", 1),
            deleted.clone(),
            updated(1, "Second", 2),
        ]);
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[&1].event, updated(1, "Second", 2));
        assert_eq!(newest[&2].event, deleted);
        assert_eq!(
            newest[&1].clone().announcements().count(),
            1,
            "the newest event is itself the change"
        );
    }

    #[test]
    fn a_rename_overtaken_by_a_newer_count_is_still_announced() {
        let count = |version| {
            let CatalogEvent::ProductUpdated(mut product) = updated(7, "Renamed", version) else {
                unreachable!()
            };
            product.likes = 3;
            CatalogEvent::LikesChanged(product)
        };
        for events in [
            vec![updated(7, "First", 1), updated(7, "Renamed", 5), count(6)],
            vec![count(6), updated(7, "Renamed", 5), updated(7, "First", 1)],
        ] {
            let newest = newest_per_product(events);
            let announced: Vec<CatalogEvent> = newest
                .into_values()
                .flat_map(Newest::announcements)
                .collect();
            assert_eq!(announced, vec![updated(7, "Renamed", 5), count(6)]);
        }
    }
}
