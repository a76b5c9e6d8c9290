//! The like counts the web database owns, as the rest of the system hears of them: every change
//! of a product's count gives it a new version and goes out in one `likes.counted` event of its
//! transaction, through the outbox. This module announces counts that change other than by a
//! like (a catalog made anew, a resync's removals) and every count at once when consumers may
//! hold newer-looking versions than the database (a start after a restore from a backup).

use crate::bus::direct::Coalesce;
use crate::bus::outbox;
use crate::bus::Envelope;
use crate::db::Sql;
use crate::events::{LikeCount, LikeCounts, LikesEvent};
use app::domain::ProductId;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// Most counts one `likes.counted` event carries; more go out in several events of the same
/// transaction.
const PER_EVENT: usize = 2_000;

/// Which products' counts to announce.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every product, tombstones included: a product a catalog gives out again must not come
    /// back with the count of the one it replaces.
    All,
    /// These products.
    Only(&'a [i64]),
}

/// The products of the scope, locked in id order, as every writer of counts locks them: no
/// deadlock with a batch of likes on another instance.
const LOCK_ALL: Sql = Sql::each(
    "select id from product order by id for update",
    "select id from product order by id",
    "select id from product order by id for update",
);
const LOCK_ONLY: Sql = Sql::each(
    "select id from product where id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb)) order by id for update",
    "select id from product where id in (select value from json_each($1)) order by id",
    "select id from product where id in \
     (select p from json_table(?, '$[*]' columns(p bigint path '$')) t) order by id for update",
);

/// Gives each locked product the next version of its count (`LikeCount::next_version`, in SQL):
/// the JSON array of ids, then the time in µs. MariaDB binds `?` in order, so there the time
/// rides in a one-row table.
const BUMP: Sql = Sql::each(
    "update product set likes_version = greatest(likes_version + 1, $2) where id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb))",
    "update product set likes_version = max(likes_version + 1, $2) where id in \
     (select value from json_each($1))",
    "update product join json_table(?, '$[*]' columns(p bigint path '$')) t on product.id = t.p \
     join (select ? as now_us) n set product.likes_version = greatest(product.likes_version + 1, n.now_us)",
);

const READ: Sql = Sql::each(
    "select id, likes, likes_version, epoch from product where id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb)) order by id",
    "select id, likes, likes_version, epoch from product where id in \
     (select value from json_each($1)) order by id",
    "select id, likes, likes_version, epoch from product where id in \
     (select p from json_table(?, '$[*]' columns(p bigint path '$')) t) order by id",
);

/// The time now in µs since the Unix epoch: the floor of every new version.
pub fn now_micros() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(0)
}

/// Gives the counts of `scope` new versions and enqueues them, inside the caller's transaction;
/// returns them, for the caller's own gallery once the transaction commits.
pub async fn announce(
    conn: &mut AnyConnection,
    scope: Scope<'_>,
) -> Result<Vec<LikeCount>, sqlx::Error> {
    let ids: Vec<i64> = match scope {
        Scope::All => {
            sqlx::query_scalar(LOCK_ALL.on(conn))
                .fetch_all(&mut *conn)
                .await?
        }
        Scope::Only(ids) => {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            sqlx::query_scalar(LOCK_ONLY.on(conn))
                .bind(serde_json::to_string(ids).expect("ids serialise"))
                .fetch_all(&mut *conn)
                .await?
        }
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(&ids).expect("ids serialise");
    sqlx::query(BUMP.on(conn))
        .bind(ids.clone())
        .bind(now_micros())
        .execute(&mut *conn)
        .await?;
    let counts = sqlx::query(READ.on(conn))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            Ok(LikeCount {
                id: ProductId::from_stored(row.try_get("id")?),
                likes: row.try_get("likes")?,
                version: row.try_get("likes_version")?,
                epoch: row.try_get("epoch")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    enqueue(conn, &counts).await?;
    Ok(counts)
}

/// Enqueues `counts` as `likes.counted` events of the caller's transaction, for the relay;
/// returns the time they are stamped with.
pub async fn enqueue(conn: &mut AnyConnection, counts: &[LikeCount]) -> Result<i64, sqlx::Error> {
    let (events, counted_at_ms) = events(counts);
    outbox::enqueue_all(conn, &events).await?;
    Ok(counted_at_ms)
}

/// `counts` as `likes.counted` events stamped with the time now (the commit follows at once),
/// and that time.
pub fn events(counts: &[LikeCount]) -> (Vec<Envelope<LikesEvent>>, i64) {
    let counted_at_ms = crate::db::now_millis();
    let events = counts
        .chunks(PER_EVENT)
        .map(|counts| {
            Envelope::new(LikesEvent::Counted(LikeCounts {
                counted_at_ms,
                counts: counts.to_vec(),
            }))
        })
        .collect();
    (events, counted_at_ms)
}

impl Coalesce for LikesEvent {
    /// The newest count of each product the events carry (a product's versions only grow), in
    /// events stamped with the oldest commit's time, so the like → socket time measured from
    /// them is never shorter than a like's own. Events of the old per-like family are never
    /// published and pass through unchanged.
    fn coalesce(events: Vec<Envelope<Self>>) -> Vec<Envelope<Self>> {
        if events.len() < 2 {
            return events;
        }
        let mut newest: BTreeMap<ProductId, LikeCount> = BTreeMap::new();
        let mut counted_at_ms = i64::MAX;
        let mut others = Vec::new();
        for envelope in events {
            let LikesEvent::Counted(counted) = envelope.event else {
                others.push(envelope);
                continue;
            };
            counted_at_ms = counted_at_ms.min(counted.counted_at_ms);
            for count in counted.counts {
                newest
                    .entry(count.id)
                    .and_modify(|held| {
                        if count.version > held.version {
                            *held = count;
                        }
                    })
                    .or_insert(count);
            }
        }
        let counts: Vec<LikeCount> = newest.into_values().collect();
        counts
            .chunks(PER_EVENT)
            .map(|counts| {
                Envelope::new(LikesEvent::Counted(LikeCounts {
                    counted_at_ms,
                    counts: counts.to_vec(),
                }))
            })
            .chain(others)
            .collect()
    }
}

/// Announces every count of `db` with a new version, in a transaction of its own: at start, so
/// that consumers holding versions this database no longer has (it was restored from a backup)
/// take its counts again, and a catalog that missed counts (an upgrade from per-like events)
/// has them all. Returns how many.
pub async fn announce_all(db: &crate::db::Database) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let counts = announce(&mut tx, Scope::All).await?;
    tx.commit().await?;
    Ok(counts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(at_ms: i64, counts: &[(i64, i64, i64)]) -> Envelope<LikesEvent> {
        Envelope::new(LikesEvent::Counted(LikeCounts {
            counted_at_ms: at_ms,
            counts: counts
                .iter()
                .map(|&(id, likes, version)| LikeCount {
                    id: ProductId::from_stored(id),
                    likes,
                    version,
                    epoch: 0,
                })
                .collect(),
        }))
    }

    #[test]
    fn one_event_goes_out_as_it_is() {
        let event = counted(10, &[(1, 3, 7)]);
        assert_eq!(LikesEvent::coalesce(vec![event.clone()]), vec![event]);
    }

    #[test]
    fn several_become_one_with_each_products_newest_count_and_the_oldest_commit_time() {
        let merged = LikesEvent::coalesce(vec![
            counted(10, &[(1, 3, 7), (2, 1, 5)]),
            counted(12, &[(2, 2, 6), (3, 9, 4)]),
            // Out of order (a slow commit): the higher version is still the count kept.
            counted(11, &[(1, 2, 6)]),
        ]);
        assert_eq!(merged.len(), 1);
        let LikesEvent::Counted(counts) = &merged[0].event else {
            panic!("a count event: {merged:?}");
        };
        assert_eq!(counts.counted_at_ms, 10);
        let kept: Vec<(i64, i64, i64)> = counts
            .counts
            .iter()
            .map(|count| (count.id.get(), count.likes, count.version))
            .collect();
        assert_eq!(kept, vec![(1, 3, 7), (2, 2, 6), (3, 9, 4)]);
    }
}
