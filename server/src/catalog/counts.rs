//! The catalog's copy of the like counts, which the web database owns: each product's newest
//! count, taken from `likes.counted` by its version (an older or repeated count changes
//! nothing), for the admin API and the admin page. No visitor is recorded here.

use super::store::era;
use crate::bus::consumer::{HandleError, Handler};
use crate::bus::Envelope;
use crate::db::{Database, Sql};
use crate::events::{LikeCount, LikesEvent};
use std::collections::BTreeMap;
use std::time::Duration;

/// The batch's products that exist, locked in id order: two catalog instances sharing a
/// database apply their batches one after the other and never deadlock.
const LOCK_PRODUCTS: Sql = Sql::each(
    "select id from product where id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb)) order by id for update",
    "select id from product where id in (select value from json_each($1)) order by id",
    "select id from product where id in \
     (select p from json_table(?, '$[*]' columns(p bigint path '$')) t) order by id for update",
);

/// Takes each count over an older version only.
const TAKE: Sql = Sql::each(
    "update product set likes = t.n, likes_version = t.v \
     from jsonb_to_recordset($1::jsonb) as t(id bigint, n bigint, v bigint) \
     where product.id = t.id and product.likes_version < t.v",
    "update product set likes = t.n, likes_version = t.v \
     from (select json_extract(value, '$.id') as id, json_extract(value, '$.n') as n, \
     json_extract(value, '$.v') as v from json_each($1)) as t \
     where product.id = t.id and product.likes_version < t.v",
    "update product join json_table(?, '$[*]' columns(id bigint path '$.id', n bigint path '$.n', \
     v bigint path '$.v')) t on product.id = t.id \
     set product.likes = t.n, product.likes_version = t.v where product.likes_version < t.v",
);

/// The newest count of each product among `counts`.
pub(crate) fn newest(counts: impl IntoIterator<Item = LikeCount>) -> BTreeMap<i64, LikeCount> {
    let mut newest: BTreeMap<i64, LikeCount> = BTreeMap::new();
    for count in counts {
        let slot = newest.entry(count.id.get()).or_insert(count);
        if count.version > slot.version {
            *slot = count;
        }
    }
    newest
}

/// Applies `likes.counted` in batches, each in one transaction: the newest count of each
/// product, over an older one only. Per-like events of an earlier version, still in the queue
/// at an upgrade, are settled without effect: the web database that committed them counts them,
/// and its counts (announced again by every web instance when it starts) carry them here.
pub struct CountsHandler {
    pub db: Database,
}

impl Handler for CountsHandler {
    type Event = LikesEvent;
    const NAME: &'static str = "likes";
    const BATCH: usize = 1000;
    /// The admin API and page read this copy; the galleries take counts from the event itself.
    /// A 50 ms window costs the admin view nothing visible and makes a like storm's many small
    /// events one commit per window.
    const GATHER: Duration = Duration::from_millis(50);

    async fn handle(&self, envelope: Envelope<LikesEvent>) -> Result<(), HandleError> {
        self.handle_batch(vec![envelope]).await
    }

    #[tracing::instrument(name = "take_like_counts", skip_all, fields(events = batch.len()))]
    async fn handle_batch(&self, batch: Vec<Envelope<LikesEvent>>) -> Result<(), HandleError> {
        let mut earlier = 0;
        let counts = batch.into_iter().flat_map(|envelope| match envelope.event {
            LikesEvent::Counted(counted) => counted.counts,
            LikesEvent::Added(_) | LikesEvent::Removed(_) => {
                earlier += 1;
                Vec::new()
            }
        });
        let mut newest = newest(counts.collect::<Vec<_>>());
        if earlier > 0 {
            tracing::info!(
                events = earlier,
                "per-like events of an earlier version settled: the web database counts them"
            );
        }
        if newest.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = newest.keys().copied().collect();
        let mut tx = self.db.begin_write().await?;
        let known: Vec<i64> = sqlx::query_scalar(self.db.sql(&LOCK_PRODUCTS))
            .bind(serde_json::to_string(&ids).expect("ids serialise"))
            .fetch_all(&mut *tx)
            .await?;
        let era = era(&mut tx).await?;
        // Counts of another catalog's products (this database was made anew since the web
        // service counted them) are not these products' counts.
        newest.retain(|id, count| {
            known.binary_search(id).is_ok() && (count.epoch == 0 || count.epoch == era.epoch)
        });
        if newest.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = newest
            .values()
            .map(|count| serde_json::json!({"id": count.id.get(), "n": count.likes, "v": count.version}))
            .collect();
        sqlx::query(self.db.sql(&TAKE))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::domain::ProductId;

    fn count(id: i64, likes: i64, version: i64) -> LikeCount {
        LikeCount {
            id: ProductId::from_stored(id),
            likes,
            version,
            epoch: 1,
        }
    }

    #[test]
    fn the_newest_count_of_each_product_wins_whatever_the_order() {
        let counts = [
            count(1, 3, 10),
            count(2, 1, 4),
            count(1, 5, 12),
            count(1, 4, 11),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let newest = newest(order.map(|n| counts[n]));
            assert_eq!(newest[&1], count(1, 5, 12));
            assert_eq!(newest[&2], count(2, 1, 4));
        }
    }
}
