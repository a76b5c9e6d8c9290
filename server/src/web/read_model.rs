//! The web service's copy of the catalog's products, fed only by catalog events. Applying an
//! event is idempotent and order-safe: each carries the product's version, a row only ever moves
//! to a higher version, and a deleted product leaves a tombstone so a late update cannot revive it.
//! Each applied batch is told to every web instance's in-memory gallery (`gallery.changed`,
//! through the outbox, in the same transaction), so no instance misses what a sibling applied.

use crate::bus::consumer::{HandleError, Handler};
use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::{Database, Sql};
use crate::events::{CatalogEvent, GalleryEvent, ResyncEvent};
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

/// The newest event of each product in `events`, by product id (the order rows are locked in).
fn newest_per_product(events: Vec<CatalogEvent>) -> BTreeMap<i64, CatalogEvent> {
    let mut newest: BTreeMap<i64, CatalogEvent> = BTreeMap::new();
    for event in events {
        let (id, version) = event.product_version();
        let id = id.get();
        match newest.entry(id) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(event);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                // The earliest like time of the batch stays, whichever event is kept.
                let earliest = [slot.get().liked_at_ms(), event.liked_at_ms()]
                    .into_iter()
                    .flatten()
                    .min();
                if slot.get().product_version().1 < version {
                    slot.insert(event);
                }
                if let CatalogEvent::ProductCreated(kept)
                | CatalogEvent::ProductUpdated(kept)
                | CatalogEvent::LikesChanged(kept) = slot.get_mut()
                {
                    kept.liked_at_ms = earliest;
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
    /// Woken after each commit, to publish the batch to the instances' galleries.
    pub relay: RelayWaker,
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
        let rows: Vec<serde_json::Value> = newest.values().map(row).collect();
        let mut tx = self.db.begin_write().await?;
        sqlx::query(self.db.sql(&APPLY))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *tx)
            .await?;
        // Every instance's gallery takes each product's newest event over an older one only,
        // so sending what the batch held (even if the row already had something newer) is safe.
        let changed = GalleryEvent::Changed {
            products: newest.into_values().collect(),
        };
        outbox::enqueue(&mut tx, &Envelope::new(changed)).await?;
        tx.commit().await?;
        self.relay.wake();
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
            liked_at_ms: None,
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
        assert_eq!(newest[&1], updated(1, "Second", 2));
        assert_eq!(newest[&2], deleted);
    }
}
