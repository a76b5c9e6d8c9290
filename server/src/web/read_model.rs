//! The web service's copy of the catalog's products' faces (title, image, deletion), fed only by
//! catalog events, in the same table as the like counts the web database owns. Applying an event
//! is idempotent and order-safe: each carries the product's version, a row only ever moves to a
//! higher version, and a deleted product leaves a tombstone so a late update cannot revive it.
//! Each applied batch is told to every web instance's in-memory gallery (`gallery.changed`,
//! through the outbox, in the same transaction), so no instance misses what a sibling applied.
//! Where a batch changes counts (another catalog's data replaces a product, a resync removes
//! one), it announces them in the same transaction (`likes.counted`).

use super::counts::{self, Scope};
use crate::bus::consumer::{HandleError, Handler};
use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::{Database, Engine, Sql};
use crate::events::{CatalogEra, CatalogEvent, GalleryEvent, ResyncEvent};
use app::domain::ProductId;
use sqlx::Row;
use std::collections::BTreeMap;

/// Upserts a batch of products, each only over an older stamp (epoch, generation, version,
/// deleted). A deletion (`x` = 1) keeps the row as a tombstone with its stamp, so only a newer
/// stamp (a later epoch or resync) brings the id back. The count is the web database's own and
/// is left alone (a row that moves to another catalog's data has its likes cleared first).
///
/// MariaDB's upsert has no `where`, so each column tests the stamp itself; and its assignments
/// run left to right, each seeing the ones before. So the other columns come first, tested on
/// the whole stamp, then the stamp's own columns, least significant first, each tested on itself
/// and the more significant ones, still unchanged: when the whole stamp was older but those are
/// equal, the column already holds the new value.
const APPLY: Sql = Sql::each(
    "insert into product (id, title, image, version, epoch, generation, deleted) \
     select id, t, i, v, e, g, x from jsonb_to_recordset($1::jsonb) \
     as r(id bigint, t text, i text, v bigint, e bigint, g bigint, x bigint) \
     on conflict (id) do update set \
     title = case when excluded.deleted = 1 then product.title else excluded.title end, \
     image = case when excluded.deleted = 1 then product.image else excluded.image end, \
     version = excluded.version, epoch = excluded.epoch, \
     generation = excluded.generation, deleted = excluded.deleted \
     where (product.epoch, product.generation, product.version, product.deleted) \
     < (excluded.epoch, excluded.generation, excluded.version, excluded.deleted)",
    "insert into product (id, title, image, version, epoch, generation, deleted) \
     select json_extract(value, '$.id'), json_extract(value, '$.t'), json_extract(value, '$.i'), \
     json_extract(value, '$.v'), json_extract(value, '$.e'), \
     json_extract(value, '$.g'), json_extract(value, '$.x') \
     from json_each($1) where true \
     on conflict (id) do update set \
     title = case when excluded.deleted = 1 then product.title else excluded.title end, \
     image = case when excluded.deleted = 1 then product.image else excluded.image end, \
     version = excluded.version, epoch = excluded.epoch, \
     generation = excluded.generation, deleted = excluded.deleted \
     where (product.epoch, product.generation, product.version, product.deleted) \
     < (excluded.epoch, excluded.generation, excluded.version, excluded.deleted)",
    "insert into product (id, title, image, version, epoch, generation, deleted) \
     select id, t, i, v, e, g, x from json_table(?, '$[*]' columns(id bigint path '$.id', \
     t text collate utf8mb4_bin path '$.t', i text collate utf8mb4_bin path '$.i', \
     v bigint path '$.v', e bigint path '$.e', g bigint path '$.g', \
     x bigint path '$.x')) as r \
     on duplicate key update \
     title = if((epoch, generation, version, deleted) < (values(epoch), values(generation), \
     values(version), values(deleted)) and values(deleted) = 0, values(title), title), \
     image = if((epoch, generation, version, deleted) < (values(epoch), values(generation), \
     values(version), values(deleted)) and values(deleted) = 0, values(image), image), \
     deleted = if((epoch, generation, version, deleted) < (values(epoch), values(generation), \
     values(version), values(deleted)), values(deleted), deleted), \
     version = if((epoch, generation, version) < (values(epoch), values(generation), \
     values(version)), values(version), version), \
     generation = if((epoch, generation) < (values(epoch), values(generation)), \
     values(generation), generation), \
     epoch = greatest(epoch, values(epoch))",
);

/// The batch's products already known, locked in id order (as the likes writer locks them, so
/// the two never deadlock), with the catalog data each belongs to.
const LOCK: Sql = Sql::each(
    "select id, epoch from product where id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb)) order by id for update",
    "select id, epoch from product where id in (select value from json_each($1)) order by id",
    "select id, epoch from product where id in \
     (select p from json_table(?, '$[*]' columns(p bigint path '$')) t) order by id for update",
);

/// Clears the counts of the products in `$1` (a JSON array of ids), whose likes went with them.
const CLEAR_COUNTS: Sql = Sql::each(
    "update product set likes = 0 where likes <> 0 and id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb))",
    "update product set likes = 0 where likes <> 0 and id in (select value from json_each($1))",
    "update product join json_table(?, '$[*]' columns(id bigint path '$')) t \
     on product.id = t.id set product.likes = 0 where product.likes <> 0",
);

/// At the end of a resync: every shown product from before the resync's generation that the
/// catalog did not have (`$3`, a JSON array of ids) becomes a tombstone stamped with that
/// generation and version 0, so nothing older brings it back, and its likes go: if the catalog
/// gives the id out again, it is another product. MariaDB has no `update … returning`: there
/// the statement only picks the rows (and locks them), and `MARK_REMOVED` changes them.
const REMOVE_UNKNOWN: Sql = Sql::each(
    "update product set deleted = 1, epoch = $1, generation = $2, version = 0, \
     likes = 0 where deleted = 0 and (epoch, generation) < ($1, $2) \
     and id not in (select value::bigint from jsonb_array_elements_text($3::jsonb)) \
     returning id",
    "update product set deleted = 1, epoch = $1, generation = $2, version = 0, \
     likes = 0 where deleted = 0 and (epoch, generation) < ($1, $2) \
     and id not in (select value from json_each($3)) returning id",
    "select id from product where deleted = 0 and (epoch, generation) < (?, ?) \
     and id not in (select t.id from json_table(?, '$[*]' columns(id bigint path '$')) t) \
     for update",
);

/// Makes tombstones of the rows `REMOVE_UNKNOWN` picked (MariaDB): the JSON array of their ids,
/// then the epoch and generation.
const MARK_REMOVED: &str = "update product \
     join json_table(?, '$[*]' columns(id bigint path '$')) t on product.id = t.id \
     set product.deleted = 1, product.epoch = ?, product.generation = ?, product.version = 0, \
     product.likes = 0";

/// The likes of products a resync removed, or that another catalog's data replaced (`$1`, a
/// JSON array of ids).
const FORGET_LIKES: Sql = Sql::each(
    "update visitor_like set liked = 0 where liked = 1 and product_id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb))",
    "update visitor_like set liked = 0 where liked = 1 and product_id in \
     (select value from json_each($1))",
    "update visitor_like join json_table(?, '$[*]' columns(id bigint path '$')) t \
     on visitor_like.product_id = t.id set visitor_like.liked = 0 where visitor_like.liked = 1",
);

/// Takes `$1` as the known epoch if it is newer. MariaDB's `?` is bound once, so there the
/// epoch comes in a one-row table.
const ADOPT_EPOCH: Sql = Sql::each(
    "update known_epoch set epoch = $1 where epoch < $1",
    "update known_epoch set epoch = $1 where epoch < $1",
    "update known_epoch join (select ? as epoch) n on known_epoch.epoch < n.epoch \
     set known_epoch.epoch = n.epoch",
);

/// The newest event of each product in `events`, by product id (the order rows are locked in).
/// Resync markers are left out.
fn newest_per_product(events: Vec<CatalogEvent>) -> BTreeMap<i64, CatalogEvent> {
    let mut newest: BTreeMap<i64, CatalogEvent> = BTreeMap::new();
    for event in events {
        let Some((id, stamp)) = event.product_stamp() else {
            continue;
        };
        match newest.entry(id.get()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(event);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                if slot.get().product_stamp().map(|(_, kept)| kept) < Some(stamp) {
                    slot.insert(event);
                }
            }
        }
    }
    newest
}

fn row(event: &CatalogEvent) -> serde_json::Value {
    let Some((id, stamp)) = event.product_stamp() else {
        unreachable!("only product events are kept");
    };
    let (title, image) = match event {
        CatalogEvent::ProductCreated(p)
        | CatalogEvent::ProductUpdated(p)
        | CatalogEvent::LikesChanged(p) => (p.title.as_str(), p.image.as_str()),
        _ => ("", ""),
    };
    serde_json::json!({
        "id": id.get(), "t": title, "i": image,
        "v": stamp.version, "e": stamp.epoch, "g": stamp.generation, "x": i64::from(stamp.deleted),
    })
}

/// The products of `newest` whose stored row belongs to older catalog data than the event's:
/// another catalog gave the id out, so the row's likes are not the new product's.
fn moved_to_other_data(
    newest: &BTreeMap<i64, CatalogEvent>,
    stored: &BTreeMap<i64, i64>,
) -> Vec<i64> {
    newest
        .iter()
        .filter(|(id, event)| stored.get(id).is_some_and(|epoch| event.epoch() > *epoch))
        .map(|(id, _)| *id)
        .collect()
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
/// product, over an older stamp only. That makes repeats and reordering harmless without a
/// record of applied events. An event of a newer catalog epoch (the catalog's database was made
/// anew) clears the likes recorded here and asks for an authoritative resync; the end of a
/// resync removes what the catalog no longer has.
pub struct ReadModelHandler {
    pub db: Database,
    /// Woken after each commit, to publish the batch to the instances' galleries.
    pub relay: RelayWaker,
}

/// Every product row, locked in id order before a change to all of them.
const LOCK_ALL: Sql = Sql::each(
    "select id from product order by id for update",
    "select id from product order by id",
    "select id from product order by id for update",
);

impl ReadModelHandler {
    /// Takes `epoch` as the catalog data this read model follows if it is newer than the one it
    /// knew; returns the epoch known after, and whether every like was cleared. Meeting a new
    /// catalog (not the first one ever) clears every like, which belonged to the old catalog's
    /// products, and asks for a resync.
    async fn adopt_epoch(
        &self,
        tx: &mut sqlx::AnyConnection,
        epoch: i64,
    ) -> Result<(i64, bool), sqlx::Error> {
        let known: i64 = sqlx::query_scalar("select epoch from known_epoch")
            .fetch_one(&mut *tx)
            .await?;
        if epoch <= known {
            return Ok((known, false));
        }
        let adopted = sqlx::query(self.db.sql(&ADOPT_EPOCH))
            .bind(epoch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if adopted == 0 || known == 0 {
            return Ok((epoch, false));
        }
        sqlx::query(self.db.sql(&LOCK_ALL))
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("update visitor_like set liked = 0 where liked = 1")
            .execute(&mut *tx)
            .await?;
        sqlx::query("update product set likes = 0 where likes <> 0")
            .execute(&mut *tx)
            .await?;
        outbox::enqueue(&mut *tx, &Envelope::new(ResyncEvent::Requested {})).await?;
        tracing::warn!(
            known,
            epoch,
            "the catalog's data is new (its database was made anew): likes cleared, resync asked for"
        );
        Ok((epoch, true))
    }

    /// Locks the rows of `newest` that exist and returns those another catalog's data replaces,
    /// after clearing their likes and counts.
    async fn clear_moved(
        &self,
        tx: &mut sqlx::AnyConnection,
        newest: &BTreeMap<i64, CatalogEvent>,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let ids: Vec<i64> = newest.keys().copied().collect();
        let mut stored = BTreeMap::new();
        for row in sqlx::query(self.db.sql(&LOCK))
            .bind(serde_json::to_string(&ids).expect("ids serialise"))
            .fetch_all(&mut *tx)
            .await?
        {
            stored.insert(
                row.try_get::<i64, _>("id")?,
                row.try_get::<i64, _>("epoch")?,
            );
        }
        let moved = moved_to_other_data(newest, &stored);
        if !moved.is_empty() {
            self.clear_likes(tx, &moved).await?;
        }
        Ok(moved)
    }

    /// Takes back every like of the products `ids` and clears their counts.
    async fn clear_likes(
        &self,
        tx: &mut sqlx::AnyConnection,
        ids: &[i64],
    ) -> Result<(), sqlx::Error> {
        let ids = serde_json::to_string(ids).expect("ids serialise");
        sqlx::query(self.db.sql(&FORGET_LIKES))
            .bind(ids.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.db.sql(&CLEAR_COUNTS))
            .bind(ids)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
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
        let events: Vec<CatalogEvent> = batch.into_iter().map(|e| e.event).collect();
        let newest_epoch = events.iter().map(CatalogEvent::epoch).max().unwrap_or(0);
        let mut finished = Vec::new();
        for event in &events {
            match event {
                CatalogEvent::ResyncStarted(marker) => {
                    tracing::info!(
                        generation = marker.generation,
                        products = marker.products,
                        "resync started"
                    );
                }
                CatalogEvent::ResyncFinished(end) => finished.push(end.clone()),
                _ => {}
            }
        }
        let mut tx = self.db.begin_write().await?;
        let (known, cleared_all) = self.adopt_epoch(&mut tx, newest_epoch).await?;
        // Events of an older catalog than the one followed are of no use; those from before
        // epochs existed (0) still compare by version among themselves.
        let newest = newest_per_product(
            events
                .into_iter()
                .filter(|event| event.epoch() == 0 || event.epoch() >= known)
                .collect(),
        );
        // Counts that change here, announced with the batch.
        let mut recounted = Vec::new();
        if !newest.is_empty() {
            recounted = self.clear_moved(&mut tx, &newest).await?;
            let rows: Vec<serde_json::Value> = newest.values().map(row).collect();
            sqlx::query(self.db.sql(&APPLY))
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
        }
        let mut products: Vec<CatalogEvent> = newest.into_values().collect();
        finished.sort_by_key(|marker| (marker.epoch, marker.generation));
        let resynced = !finished.is_empty();
        for marker in finished.into_iter().filter(|m| m.epoch >= known) {
            let era = CatalogEra {
                epoch: marker.epoch,
                generation: marker.generation,
            };
            let removed: Vec<i64> = sqlx::query_scalar(self.db.sql(&REMOVE_UNKNOWN))
                .bind(era.epoch)
                .bind(era.generation)
                .bind(serde_json::to_string(&marker.ids).expect("ids serialise"))
                .fetch_all(&mut *tx)
                .await?;
            if !removed.is_empty() {
                if self.db.engine() == Engine::MySql {
                    // No `update … returning` on MariaDB: the rows were only picked and locked.
                    sqlx::query(MARK_REMOVED)
                        .bind(serde_json::to_string(&removed).expect("ids serialise"))
                        .bind(era.epoch)
                        .bind(era.generation)
                        .execute(&mut *tx)
                        .await?;
                }
                self.clear_likes(&mut tx, &removed).await?;
                recounted.extend(&removed);
            }
            tracing::info!(
                generation = marker.generation,
                products = marker.ids.len(),
                removed = removed.len(),
                "resync finished"
            );
            products.extend(
                removed
                    .into_iter()
                    .map(|id| CatalogEvent::deleted(ProductId::from_stored(id), era, 0)),
            );
        }
        // After a resync (asked for by a web database made anew, or after a restore) the catalog
        // and every gallery may hold counts this database does not: they all get every count.
        let scope = if cleared_all || resynced {
            Scope::All
        } else {
            recounted.sort_unstable();
            recounted.dedup();
            Scope::Only(&recounted)
        };
        let announced = counts::announce(&mut tx, scope).await?;
        let enqueued = !products.is_empty();
        if enqueued {
            // Every instance's gallery takes each product's newest event over an older one
            // only, so sending what the batch held (even if the row already had something
            // newer) is safe.
            let changed = GalleryEvent::Changed { products };
            outbox::enqueue(&mut tx, &Envelope::new(changed)).await?;
        }
        tx.commit().await?;
        if !announced.is_empty() || enqueued {
            self.relay.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ProductSnapshot;
    use app::domain::{ImageUrl, ProductTitle};

    fn updated(id: i64, title: &str, version: i64) -> CatalogEvent {
        CatalogEvent::ProductUpdated(ProductSnapshot {
            id: ProductId::from_stored(id),
            title: ProductTitle::parse(title).unwrap(),
            image: ImageUrl::parse("https://example.com/x.jpg").unwrap(),
            version,
            epoch: 1,
            generation: 0,
        })
    }

    #[test]
    fn a_batch_keeps_the_newest_event_of_each_product_whatever_the_order() {
        let deleted = CatalogEvent::deleted(
            ProductId::from_stored(2),
            CatalogEra {
                epoch: 1,
                generation: 0,
            },
            4,
        );
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

    #[test]
    fn only_a_row_of_older_catalog_data_loses_its_likes() {
        let event = |id: i64, epoch: i64| {
            CatalogEvent::ProductUpdated(ProductSnapshot {
                epoch,
                ..match updated(id, "x", 1) {
                    CatalogEvent::ProductUpdated(p) => p,
                    _ => unreachable!(),
                }
            })
        };
        let newest = BTreeMap::from([(1, event(1, 2)), (2, event(2, 2)), (3, event(3, 2))]);
        // 1 was of epoch 1: another product now; 2 is of the same data; 3 is new here.
        let stored = BTreeMap::from([(1, 1), (2, 2)]);
        assert_eq!(moved_to_other_data(&newest, &stored), vec![1]);
    }
}
