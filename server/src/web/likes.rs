//! Likes as the web service records them: one per visitor per product. One writer task per
//! instance takes every like and unlike waiting at that moment and commits them together (group
//! commit): the like rows, each product's count and the `like.*` events in one transaction.

use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::sql::text;
use crate::db::{Database, Sql};
use crate::error::{Error, Result};
use crate::events::{LikeChange, LikeEvent, StoredLike};
use app::domain::{ProductId, VisitorId};
use app::wire::LikeState;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};

/// Most likes and unlikes committed in one transaction.
const BATCH: usize = 256;
/// Likes waiting for the writer before callers wait to hand theirs over.
const QUEUE: usize = 4096;

/// The batch's products that can be liked, with their counts, locked in id order: every like
/// and unlike holds its product's row until commit, so instances sharing the database apply a
/// product's likes one batch at a time and never deadlock.
const LOCK_PRODUCTS: Sql = Sql::each(
    "select id, visitor_likes, epoch from product where deleted = 0 and id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb)) order by id for update",
    "select id, visitor_likes, epoch from product where deleted = 0 and id in \
     (select value from json_each($1)) order by id",
    "select id, visitor_likes, epoch from product where deleted = 0 and id in \
     (select p from json_table(?, '$[*]' columns(p bigint path '$')) t) order by id for update",
);

const CURRENT: Sql = Sql::each(
    // Lateral: one primary-key lookup per pair, never a scan of every like.
    "select l.visitor_id, l.product_id, l.liked, l.seq \
     from jsonb_to_recordset($1::jsonb) as t(v text, p bigint), lateral \
     (select visitor_id, product_id, liked, seq from visitor_like \
     where visitor_id = t.v and product_id = t.p limit 1) as l",
    "select l.visitor_id, l.product_id, l.liked, l.seq from json_each($1) j \
     join visitor_like l on l.visitor_id = json_extract(j.value, '$.v') \
     and l.product_id = json_extract(j.value, '$.p')",
    // `json_table` text takes the database's default collation unless told: binary, as the key.
    "select l.visitor_id, l.product_id, l.liked, l.seq from json_table(?, '$[*]' \
     columns(v varchar(64) collate utf8mb4_bin path '$.v', p bigint path '$.p')) t \
     join visitor_like l on l.visitor_id = t.v and l.product_id = t.p",
);

const STORE: Sql = Sql::each(
    "insert into visitor_like (visitor_id, product_id, liked, seq) \
     select v, p, l, s from jsonb_to_recordset($1::jsonb) as t(v text, p bigint, l bigint, s bigint) \
     on conflict (visitor_id, product_id) do update set liked = excluded.liked, seq = excluded.seq",
    "insert into visitor_like (visitor_id, product_id, liked, seq) \
     select json_extract(value, '$.v'), json_extract(value, '$.p'), json_extract(value, '$.l'), \
     json_extract(value, '$.s') from json_each($1) where true \
     on conflict (visitor_id, product_id) do update set liked = excluded.liked, seq = excluded.seq",
    "insert into visitor_like (visitor_id, product_id, liked, seq) \
     select v, p, l, s from json_table(?, '$[*]' columns(v varchar(64) collate utf8mb4_bin \
     path '$.v', p bigint path '$.p', l bigint path '$.l', s bigint path '$.s')) t \
     on duplicate key update liked = values(liked), seq = values(seq)",
);

const COUNT: Sql = Sql::each(
    "update product set visitor_likes = t.n \
     from jsonb_to_recordset($1::jsonb) as t(id bigint, n bigint) where product.id = t.id",
    "update product set visitor_likes = t.n \
     from (select json_extract(value, '$.id') as id, json_extract(value, '$.n') as n from json_each($1)) as t \
     where product.id = t.id",
    "update product join json_table(?, '$[*]' columns(id bigint path '$.id', n bigint path '$.n')) t \
     on product.id = t.id set product.visitor_likes = t.n",
);

const LIKED_BY: Sql =
    crate::shared!("select product_id from visitor_like where visitor_id = $1 and liked = 1");

/// A like or unlike waiting for the writer.
struct Command {
    visitor: VisitorId,
    id: ProductId,
    like: bool,
    answer: oneshot::Sender<Result<LikeState>>,
}

/// Records likes in the web database. Cheap to clone; clones share the writer.
#[derive(Clone)]
pub struct Likes {
    db: Database,
    commands: mpsc::Sender<Command>,
}

impl Likes {
    /// Starts the writer on `db`; it wakes `relay` after each commit and ends once every clone
    /// is dropped.
    pub fn start(db: Database, relay: RelayWaker) -> Self {
        let (commands, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write(db.clone(), relay, queue));
        Self { db, commands }
    }

    /// The products `visitor` likes now: one lookup in the like table's primary key, so a like
    /// made through any instance on this database shows everywhere at once.
    pub async fn liked_by(&self, visitor: &VisitorId) -> Result<HashSet<ProductId>> {
        let ids: Vec<i64> = sqlx::query_scalar(self.db.sql(&LIKED_BY))
            .bind(visitor.as_str())
            .fetch_all(self.db.pool())
            .await?;
        Ok(ids.into_iter().map(ProductId::from_stored).collect())
    }

    /// `visitor` likes `id`. 409 if they already do, 404 for an unknown product.
    pub async fn like(&self, visitor: &VisitorId, id: ProductId) -> Result<LikeState> {
        self.change(visitor, id, true).await
    }

    /// `visitor` takes back their like of `id`. 409 if they do not like it, 404 for an unknown
    /// product.
    pub async fn unlike(&self, visitor: &VisitorId, id: ProductId) -> Result<LikeState> {
        self.change(visitor, id, false).await
    }

    /// Hands the change to the writer and waits for its commit.
    async fn change(&self, visitor: &VisitorId, id: ProductId, like: bool) -> Result<LikeState> {
        let (answer, answered) = oneshot::channel();
        let command = Command {
            visitor: visitor.clone(),
            id,
            like,
            answer,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Unavailable)?;
        answered.await.map_err(|_| Error::Unavailable)?
    }
}

/// The writer: takes what is waiting, up to a batch, and commits it in one transaction.
async fn write(db: Database, relay: RelayWaker, mut queue: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        match apply(&db, &batch).await {
            Ok(answers) => {
                relay.wake();
                for (command, answer) in batch.drain(..).zip(answers) {
                    let _ = command.answer.send(answer);
                }
            }
            Err(err) => {
                let err = Error::from(err);
                tracing::error!(error = %crate::error::chain(&err), likes = batch.len(), "likes not recorded");
                let unavailable = err.is_unavailable();
                for command in batch.drain(..) {
                    let failed = if unavailable {
                        Error::Unavailable
                    } else {
                        Error::Internal
                    };
                    let _ = command.answer.send(Err(failed));
                }
            }
        }
    }
}

/// What a batch decides, in command order: each command's answer, the like rows and counts to
/// store, and the events to publish.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decision {
    pub answers: Vec<Result<LikeState, Refusal>>,
    pub likes: BTreeMap<(String, i64), StoredLike>,
    pub counts: BTreeMap<i64, i64>,
    pub events: Vec<LikeEvent>,
}

/// Why one command of a batch changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownProduct,
    AlreadyLiked,
    NotLiked,
}

/// Applies `commands` in order to the stored likes and counts, as if one at a time. A change's
/// `seq` is one more than the stored one, or `seq_floor` if that is higher: with the time as the
/// floor, a web database restored from a backup still numbers new changes above every change the
/// catalog applied before the restore.
pub(crate) fn decide(
    commands: &[(VisitorId, ProductId, bool)],
    mut counts: BTreeMap<i64, i64>,
    stored: HashMap<(String, i64), StoredLike>,
    seq_floor: i64,
) -> Decision {
    let mut decision = Decision::default();
    let mut likes = stored;
    for (visitor, id, like) in commands {
        let Some(count) = counts.get_mut(&id.get()) else {
            decision.answers.push(Err(Refusal::UnknownProduct));
            continue;
        };
        let key = (visitor.as_str().to_owned(), id.get());
        let before = likes.get(&key).copied().unwrap_or_default();
        if before.liked == *like {
            let refusal = if *like {
                Refusal::AlreadyLiked
            } else {
                Refusal::NotLiked
            };
            decision.answers.push(Err(refusal));
            continue;
        }
        let after = StoredLike {
            liked: *like,
            seq: (before.seq + 1).max(seq_floor),
        };
        *count += if *like { 1 } else { -1 };
        likes.insert(key.clone(), after);
        decision.likes.insert(key, after);
        decision.counts.insert(id.get(), *count);
        let change = LikeChange {
            product_id: *id,
            visitor_id: visitor.clone(),
            seq: after.seq,
            epoch: 0,
        };
        decision.events.push(if *like {
            LikeEvent::Added(change)
        } else {
            LikeEvent::Removed(change)
        });
        decision.answers.push(Ok(LikeState {
            id: *id,
            likes: *count,
            liked: *like,
        }));
    }
    decision
}

/// Commits `batch`; returns each command's answer, in order.
async fn apply(db: &Database, batch: &[Command]) -> Result<Vec<Result<LikeState>>, sqlx::Error> {
    let commands: Vec<(VisitorId, ProductId, bool)> = batch
        .iter()
        .map(|command| (command.visitor.clone(), command.id, command.like))
        .collect();
    let mut products: Vec<i64> = commands.iter().map(|(_, id, _)| id.get()).collect();
    products.sort_unstable();
    products.dedup();

    let mut tx = db.begin_write().await?;
    let mut counts = BTreeMap::new();
    let mut epochs = HashMap::new();
    for row in sqlx::query(db.sql(&LOCK_PRODUCTS))
        .bind(serde_json::to_string(&products).expect("ids serialise"))
        .fetch_all(&mut *tx)
        .await?
    {
        let id: i64 = row.try_get("id")?;
        counts.insert(id, row.try_get("visitor_likes")?);
        epochs.insert(id, row.try_get::<i64, _>("epoch")?);
    }
    let pairs: Vec<serde_json::Value> = commands
        .iter()
        .filter(|(_, id, _)| counts.contains_key(&id.get()))
        .map(|(visitor, id, _)| serde_json::json!({"v": visitor.as_str(), "p": id.get()}))
        .collect();
    let mut stored = HashMap::with_capacity(pairs.len());
    if !pairs.is_empty() {
        for row in sqlx::query(db.sql(&CURRENT))
            .bind(serde_json::Value::Array(pairs).to_string())
            .fetch_all(&mut *tx)
            .await?
        {
            stored.insert(
                (text(&row, "visitor_id")?, row.try_get("product_id")?),
                StoredLike {
                    liked: row.try_get::<i64, _>("liked")? == 1,
                    seq: row.try_get("seq")?,
                },
            );
        }
    }
    let now_us = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000;
    let seq_floor = i64::try_from(now_us).unwrap_or(0);
    let mut decision = decide(&commands, counts, stored, seq_floor);
    // Each like names the catalog data its product came from, so another catalog ignores it.
    for event in &mut decision.events {
        let change = event.change_mut();
        change.epoch = epochs.get(&change.product_id.get()).copied().unwrap_or(0);
    }
    if !decision.events.is_empty() {
        let likes: Vec<serde_json::Value> = decision
            .likes
            .iter()
            .map(|((visitor, id), like)| {
                serde_json::json!({"v": visitor, "p": id, "l": i64::from(like.liked), "s": like.seq})
            })
            .collect();
        sqlx::query(db.sql(&STORE))
            .bind(serde_json::Value::Array(likes).to_string())
            .execute(&mut *tx)
            .await?;
        let counts: Vec<serde_json::Value> = decision
            .counts
            .iter()
            .map(|(id, count)| serde_json::json!({"id": id, "n": count}))
            .collect();
        sqlx::query(db.sql(&COUNT))
            .bind(serde_json::Value::Array(counts).to_string())
            .execute(&mut *tx)
            .await?;
        let envelopes: Vec<Envelope<LikeEvent>> =
            decision.events.into_iter().map(Envelope::new).collect();
        outbox::enqueue_all(&mut tx, &envelopes).await?;
        tx.commit().await?;
        // One line per commit at info, one per like at debug: a log write per like would cost
        // as much as the like itself under load.
        tracing::info!(likes = envelopes.len(), "likes recorded");
        for envelope in &envelopes {
            let change = envelope.event.change();
            tracing::debug!(event_id = %envelope.id, product_id = %change.product_id, liked = envelope.event.liked(), "like recorded");
            let action = if envelope.event.liked() {
                "like"
            } else {
                "unlike"
            };
            metrics::counter!("live_gallery_likes_total", "action" => action).increment(1);
        }
    }
    Ok(decision
        .answers
        .into_iter()
        .map(|answer| {
            answer.map_err(|refusal| match refusal {
                Refusal::UnknownProduct => Error::NotFound,
                Refusal::AlreadyLiked => {
                    Error::Conflict("You already like this picture.".to_owned())
                }
                Refusal::NotLiked => {
                    Error::Conflict("You do not like this picture yet.".to_owned())
                }
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visitor(n: u8) -> VisitorId {
        VisitorId::parse(&format!("{n:08}-1111-4111-8111-111111111111")).unwrap()
    }

    fn id(n: i64) -> ProductId {
        ProductId::from_stored(n)
    }

    #[test]
    fn commands_apply_in_order_as_if_one_at_a_time() {
        let commands = vec![
            (visitor(1), id(7), true),
            (visitor(2), id(7), true),
            (visitor(1), id(7), true),
            (visitor(1), id(7), false),
            (visitor(1), id(9), true),
        ];
        let decision = decide(&commands, BTreeMap::from([(7, 4)]), HashMap::new(), 0);
        let likes: Vec<_> = decision
            .answers
            .iter()
            .map(|answer| answer.map(|state| state.likes))
            .collect();
        assert_eq!(
            likes,
            vec![
                Ok(5),
                Ok(6),
                Err(Refusal::AlreadyLiked),
                Ok(5),
                Err(Refusal::UnknownProduct)
            ]
        );
        assert_eq!(decision.counts, BTreeMap::from([(7, 5)]));
        let first = (visitor(1).as_str().to_owned(), 7);
        assert_eq!(
            decision.likes[&first],
            StoredLike {
                liked: false,
                seq: 2
            },
            "the like and its undoing both count as changes"
        );
        assert_eq!(decision.events.len(), 3);
    }

    #[test]
    fn a_stored_like_continues_its_sequence() {
        let key = (visitor(3).as_str().to_owned(), 7);
        let stored = HashMap::from([(
            key.clone(),
            StoredLike {
                liked: true,
                seq: 4,
            },
        )]);
        let decision = decide(
            &[(visitor(3), id(7), false)],
            BTreeMap::from([(7, 1)]),
            stored,
            0,
        );
        assert_eq!(
            decision.likes[&key],
            StoredLike {
                liked: false,
                seq: 5
            }
        );
        assert_eq!(decision.counts[&7], 0);
        assert_eq!(
            decision.events,
            vec![LikeEvent::Removed(LikeChange {
                product_id: id(7),
                visitor_id: visitor(3),
                seq: 5,
                epoch: 0
            })]
        );
    }

    #[test]
    fn taking_back_a_like_never_made_is_refused() {
        let decision = decide(
            &[(visitor(4), id(7), false)],
            BTreeMap::from([(7, 0)]),
            HashMap::new(),
            0,
        );
        assert_eq!(decision.answers, vec![Err(Refusal::NotLiked)]);
        assert!(decision.events.is_empty());
    }

    #[test]
    fn after_a_restore_new_changes_are_numbered_above_the_floor() {
        let key = (visitor(5).as_str().to_owned(), 7);
        let stored = HashMap::from([(
            key.clone(),
            StoredLike {
                liked: false,
                seq: 2,
            },
        )]);
        let floor = 1_800_000_000_000_000;
        let decision = decide(
            &[(visitor(5), id(7), true), (visitor(5), id(7), false)],
            BTreeMap::from([(7, 0)]),
            stored,
            floor,
        );
        // Both changes of the batch stay in order: the second one is above the first.
        assert_eq!(
            decision.likes[&key],
            StoredLike {
                liked: false,
                seq: floor + 1
            }
        );
        assert_eq!(decision.events[0].change().seq, floor);
    }
}
