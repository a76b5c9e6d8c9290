//! The catalog's consumer of like events: applies each visitor's like changes in order, a batch
//! at a time, keeps every product's count equal to the visitors liking it, and publishes one new
//! count per changed product per batch.

use super::store::{era, snapshot};
use crate::bus::consumer::{HandleError, Handler};
use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::sql::text;
use crate::db::{Database, Engine, Sql};
use crate::events::{CatalogEvent, LikeEvent, StoredLike};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

/// The products of a batch that exist, locked in id order: every change to a product's likes
/// holds its row lock until commit, so the like rows read next stay as read, and two batches
/// (of two catalog instances) lock in the same order and never deadlock.
const LOCK_PRODUCTS: Sql = Sql::each(
    "select id from product where id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb)) order by id for update",
    "select id from product where id in (select value from json_each($1)) order by id",
    "select id from product where id in \
     (select p from json_table(?, '$[*]' columns(p bigint path '$')) t) order by id for update",
);

/// What the catalog knows of each (product, visitor) pair of a batch.
const CURRENT: Sql = Sql::each(
    // Lateral: one primary-key lookup per pair, never a scan of every like.
    "select l.product_id, l.visitor_id, l.liked, l.seq \
     from jsonb_to_recordset($1::jsonb) as t(p bigint, v text), lateral \
     (select product_id, visitor_id, liked, seq from product_like \
     where product_id = t.p and visitor_id = t.v limit 1) as l",
    "select l.product_id, l.visitor_id, l.liked, l.seq from json_each($1) j \
     join product_like l on l.product_id = json_extract(j.value, '$.p') \
     and l.visitor_id = json_extract(j.value, '$.v')",
    // `json_table` text takes the database's default collation unless told: binary, as the key.
    "select l.product_id, l.visitor_id, l.liked, l.seq from json_table(?, '$[*]' \
     columns(p bigint path '$.p', v varchar(64) collate utf8mb4_bin path '$.v')) t \
     join product_like l on l.product_id = t.p and l.visitor_id = t.v",
);

const STORE: Sql = Sql::each(
    "insert into product_like (product_id, visitor_id, liked, seq) \
     select p, v, l, s from jsonb_to_recordset($1::jsonb) as t(p bigint, v text, l bigint, s bigint) \
     on conflict (product_id, visitor_id) do update set liked = excluded.liked, seq = excluded.seq",
    "insert into product_like (product_id, visitor_id, liked, seq) \
     select json_extract(value, '$.p'), json_extract(value, '$.v'), json_extract(value, '$.l'), \
     json_extract(value, '$.s') from json_each($1) where true \
     on conflict (product_id, visitor_id) do update set liked = excluded.liked, seq = excluded.seq",
    "insert into product_like (product_id, visitor_id, liked, seq) \
     select p, v, l, s from json_table(?, '$[*]' columns(p bigint path '$.p', \
     v varchar(64) collate utf8mb4_bin path '$.v', l bigint path '$.l', s bigint path '$.s')) t \
     on duplicate key update liked = values(liked), seq = values(seq)",
);

/// Adds each product's delta to its count and bumps its version. MariaDB has no
/// `update … returning`: there the statement only updates, and `COUNTED` reads the rows back.
const COUNT: Sql = Sql::each(
    "update product set likes = product.likes + t.d, version = product.version + 1 \
     from jsonb_to_recordset($1::jsonb) as t(id bigint, d bigint) where product.id = t.id \
     returning product.id, product.title, product.image, product.likes, product.version",
    "update product set likes = product.likes + t.d, version = product.version + 1 \
     from (select json_extract(value, '$.id') as id, json_extract(value, '$.d') as d from json_each($1)) as t \
     where product.id = t.id returning id, title, image, likes, version",
    "update product join json_table(?, '$[*]' columns(id bigint path '$.id', d bigint path '$.d')) t \
     on product.id = t.id set product.likes = product.likes + t.d, product.version = product.version + 1",
);

/// The products `COUNT` changed, by the same JSON array (MariaDB).
const COUNTED: &str = "select id, title, image, likes, version from product where id in \
     (select t.id from json_table(?, '$[*]' columns(id bigint path '$.id')) t) order by id";

/// The newest change of one visitor's like of one product that a batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Newest {
    pub seq: i64,
    pub liked: bool,
    /// The epoch of the catalog data the visitor liked the product in (0: not said).
    pub epoch: i64,
}

/// One visitor's like of one product: (product id, visitor id).
type Pair = (i64, String);

/// What a batch changes: the like rows to store and each product's count delta. Only a change
/// newer than the stored one takes effect, so a repeated or stale event changes nothing; and
/// within the batch only the newest change of each pair counts.
pub(crate) fn decide(
    newest: &BTreeMap<Pair, Newest>,
    stored: &HashMap<Pair, StoredLike>,
) -> (Vec<(Pair, Newest)>, BTreeMap<i64, i64>) {
    let mut rows = Vec::new();
    let mut deltas = BTreeMap::new();
    for (pair, change) in newest {
        let before = stored.get(pair).copied().unwrap_or_default();
        if change.seq <= before.seq {
            continue;
        }
        rows.push((pair.clone(), *change));
        let delta = i64::from(change.liked) - i64::from(before.liked);
        if delta != 0 {
            *deltas.entry(pair.0).or_insert(0) += delta;
        }
    }
    deltas.retain(|_, delta| *delta != 0);
    (rows, deltas)
}

/// Applies `like.added` and `like.removed` in batches, each in one transaction with the
/// `product.likes_changed` events it causes: one per product whose count changed.
pub struct LikesHandler {
    pub db: Database,
    pub relay: RelayWaker,
}

impl Handler for LikesHandler {
    type Event = LikeEvent;
    const NAME: &'static str = "likes";
    const BATCH: usize = 1000;

    async fn handle(&self, envelope: Envelope<LikeEvent>) -> Result<(), HandleError> {
        self.handle_batch(vec![envelope]).await
    }

    #[tracing::instrument(name = "apply_like_events", skip_all, fields(events = batch.len()))]
    async fn handle_batch(&self, batch: Vec<Envelope<LikeEvent>>) -> Result<(), HandleError> {
        let mut newest: BTreeMap<Pair, Newest> = BTreeMap::new();
        // When the earliest like of each product in the batch was committed, for the count
        // events: each web instance measures from it how long likes take to reach browsers.
        let mut liked_at: HashMap<i64, i64> = HashMap::new();
        for envelope in &batch {
            if let Some(at) = envelope.occurred_at_ms() {
                let product = envelope.event.change().product_id.get();
                liked_at
                    .entry(product)
                    .and_modify(|earliest| *earliest = (*earliest).min(at))
                    .or_insert(at);
            }
            tracing::debug!(event_id = %envelope.id, "like event");
            let change = envelope.event.change();
            let pair = (
                change.product_id.get(),
                change.visitor_id.as_str().to_owned(),
            );
            let candidate = Newest {
                seq: change.seq,
                liked: envelope.event.liked(),
                epoch: change.epoch,
            };
            newest
                .entry(pair)
                .and_modify(|kept| {
                    if candidate.seq > kept.seq {
                        *kept = candidate
                    }
                })
                .or_insert(candidate);
        }
        let products: Vec<i64> = {
            let mut ids: Vec<i64> = newest.keys().map(|(product, _)| *product).collect();
            ids.dedup();
            ids
        };

        let mut tx = self.db.begin_write().await?;
        let known: Vec<i64> = sqlx::query_scalar(self.db.sql(&LOCK_PRODUCTS))
            .bind(serde_json::to_string(&products).expect("ids serialise"))
            .fetch_all(&mut *tx)
            .await?;
        let era = era(&mut tx).await?;
        // Likes of products deleted since: nothing left to count. Likes of another catalog's
        // products (this database was made anew after the visitor saw them): not these.
        newest.retain(|(product, _), change| {
            known.binary_search(product).is_ok() && (change.epoch == 0 || change.epoch == era.epoch)
        });
        if newest.is_empty() {
            return Ok(());
        }
        let pairs: Vec<serde_json::Value> = newest
            .keys()
            .map(|(product, visitor)| serde_json::json!({"p": product, "v": visitor}))
            .collect();
        let mut stored = HashMap::with_capacity(pairs.len());
        for row in sqlx::query(self.db.sql(&CURRENT))
            .bind(serde_json::Value::Array(pairs).to_string())
            .fetch_all(&mut *tx)
            .await?
        {
            stored.insert(
                (row.try_get("product_id")?, text(&row, "visitor_id")?),
                StoredLike {
                    liked: row.try_get::<i64, _>("liked")? == 1,
                    seq: row.try_get("seq")?,
                },
            );
        }
        let (rows, deltas) = decide(&newest, &stored);
        if rows.is_empty() {
            tracing::debug!("nothing newer than what was applied");
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|((product, visitor), change)| {
                serde_json::json!({"p": product, "v": visitor, "l": i64::from(change.liked), "s": change.seq})
            })
            .collect();
        sqlx::query(self.db.sql(&STORE))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *tx)
            .await?;
        if !deltas.is_empty() {
            let deltas: Vec<serde_json::Value> = deltas
                .iter()
                .map(|(id, delta)| serde_json::json!({"id": id, "d": delta}))
                .collect();
            let deltas = serde_json::Value::Array(deltas).to_string();
            let count = sqlx::query(self.db.sql(&COUNT)).bind(deltas.clone());
            let changed = if self.db.engine() == Engine::MySql {
                // No `update … returning` on MariaDB: read the rows back, still locked by this
                // transaction.
                count.execute(&mut *tx).await?;
                sqlx::query(COUNTED)
                    .bind(deltas)
                    .fetch_all(&mut *tx)
                    .await?
            } else {
                count.fetch_all(&mut *tx).await?
            };
            let events = changed
                .iter()
                .map(|row| {
                    let mut product = snapshot(row, era)?;
                    product.liked_at_ms = liked_at.get(&product.id.get()).copied();
                    Ok(Envelope::new(CatalogEvent::LikesChanged(product)))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            outbox::enqueue_all(&mut tx, &events).await?;
        }
        tx.commit().await?;
        self.relay.wake();
        Ok(())
    }
}

/// Answers `resync.requested` with an authoritative resync.
pub struct ResyncHandler {
    pub store: super::CatalogStore,
}

impl Handler for ResyncHandler {
    type Event = crate::events::ResyncEvent;
    const NAME: &'static str = "resync";

    #[tracing::instrument(name = "answer_resync", skip_all, fields(event_id = %envelope.id))]
    async fn handle(&self, envelope: Envelope<Self::Event>) -> Result<(), HandleError> {
        // Repeating this is harmless (a later generation only confirms the same products), so
        // no dedupe record.
        self.store
            .resync()
            .await
            .map_err(|err| HandleError::Retry(Box::new(err)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(product: i64, visitor: &str) -> (i64, String) {
        (product, visitor.to_owned())
    }

    #[test]
    fn only_changes_newer_than_the_stored_one_count() {
        let newest = BTreeMap::from([
            (
                pair(1, "ann"),
                Newest {
                    seq: 3,
                    liked: true,
                    epoch: 0,
                },
            ),
            (
                pair(1, "bob"),
                Newest {
                    seq: 2,
                    liked: false,
                    epoch: 0,
                },
            ),
            (
                pair(2, "ann"),
                Newest {
                    seq: 1,
                    liked: true,
                    epoch: 0,
                },
            ),
        ]);
        let stored = HashMap::from([
            // Ann's like of 1 is already at seq 3: a repeat.
            (
                pair(1, "ann"),
                StoredLike {
                    liked: true,
                    seq: 3,
                },
            ),
            // Bob liked 1 at seq 1 and now takes it back.
            (
                pair(1, "bob"),
                StoredLike {
                    liked: true,
                    seq: 1,
                },
            ),
        ]);
        let (rows, deltas) = decide(&newest, &stored);
        assert_eq!(
            rows,
            vec![
                (
                    pair(1, "bob"),
                    Newest {
                        seq: 2,
                        liked: false,
                        epoch: 0
                    }
                ),
                (
                    pair(2, "ann"),
                    Newest {
                        seq: 1,
                        liked: true,
                        epoch: 0
                    }
                ),
            ]
        );
        assert_eq!(deltas, BTreeMap::from([(1, -1), (2, 1)]));
    }

    #[test]
    fn an_unlike_that_overtook_its_like_counts_nothing() {
        let newest = BTreeMap::from([(
            pair(4, "carl"),
            Newest {
                seq: 2,
                liked: false,
                epoch: 0,
            },
        )]);
        let (rows, deltas) = decide(&newest, &HashMap::new());
        assert_eq!(
            rows.len(),
            1,
            "the unlike is stored so the late like stays out"
        );
        assert!(deltas.is_empty());
    }

    #[test]
    fn changes_that_cancel_out_leave_the_count_and_version_alone() {
        let newest = BTreeMap::from([
            (
                pair(5, "ann"),
                Newest {
                    seq: 1,
                    liked: true,
                    epoch: 0,
                },
            ),
            (
                pair(5, "bob"),
                Newest {
                    seq: 2,
                    liked: false,
                    epoch: 0,
                },
            ),
        ]);
        let stored = HashMap::from([(
            pair(5, "bob"),
            StoredLike {
                liked: true,
                seq: 1,
            },
        )]);
        let (rows, deltas) = decide(&newest, &stored);
        assert_eq!(rows.len(), 2);
        assert!(deltas.is_empty(), "{deltas:?}");
    }
}
