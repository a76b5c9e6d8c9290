//! Likes as the web service records them: one per visitor per product, and each product's
//! count, which the web database alone decides. One writer task per instance takes every like
//! and unlike waiting at that moment and commits them together (group commit): the like rows,
//! each product's count with its new version, and one `likes.counted` event for the lot, which
//! the writer hands to its publisher as soon as the commit returns (the outbox relay is only the
//! safety net). After the commit the counts go into this instance's gallery before anyone is
//! answered, so nothing this instance serves later shows a count from before the answer.

use super::counts::{self, now_micros};
use super::gallery::Gallery;
use crate::bus::direct::Publisher;
use crate::bus::outbox::{self, Pending};
use crate::bus::Envelope;
use crate::db::sql::text;
use crate::db::{now_millis, Database, Engine, Sql};
use crate::error::{Error, Result};
use crate::events::{LikeCount, LikesEvent};
use app::domain::{ProductId, VisitorId};
use app::wire::LikeState;
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most likes and unlikes committed in one transaction.
const BATCH: usize = 256;
/// Likes waiting for the writer before callers wait to hand theirs over.
const QUEUE: usize = 4096;

/// The batch's products that can be liked, with their counts, locked in id order: every like
/// and unlike holds its product's row until commit, so instances sharing the database apply a
/// product's likes one batch at a time and never deadlock. A product of a catalog older than
/// the one followed (its data was made anew; a resync is replacing it) cannot be liked.
const LOCK_PRODUCTS: Sql = Sql::each(
    "select id, likes, likes_version, epoch from product where deleted = 0 and id in \
     (select value::bigint from jsonb_array_elements_text($1::jsonb)) \
     and epoch >= (select epoch from known_epoch) order by id for update",
    "select id, likes, likes_version, epoch from product where deleted = 0 and id in \
     (select value from json_each($1)) and epoch >= (select epoch from known_epoch) order by id",
    "select id, likes, likes_version, epoch from product where deleted = 0 and id in \
     (select p from json_table(?, '$[*]' columns(p bigint path '$')) t) \
     and epoch >= (select epoch from known_epoch) order by id for update",
);

const CURRENT: Sql = Sql::each(
    // Lateral: one primary-key lookup per pair, never a scan of every like.
    "select l.visitor_id, l.product_id, l.liked \
     from jsonb_to_recordset($1::jsonb) as t(v text, p bigint), lateral \
     (select visitor_id, product_id, liked from visitor_like \
     where visitor_id = t.v and product_id = t.p limit 1) as l",
    "select l.visitor_id, l.product_id, l.liked from json_each($1) j \
     join visitor_like l on l.visitor_id = json_extract(j.value, '$.v') \
     and l.product_id = json_extract(j.value, '$.p')",
    // `json_table` text takes the database's default collation unless told: binary, as the key.
    "select l.visitor_id, l.product_id, l.liked from json_table(?, '$[*]' \
     columns(v varchar(64) collate utf8mb4_bin path '$.v', p bigint path '$.p')) t \
     join visitor_like l on l.visitor_id = t.v and l.product_id = t.p",
);

/// The batch's writes in one statement, one round trip: the like rows, each changed product's
/// count and version (`$1`, `$2`), the outbox rows the broker has confirmed deleted (`$3`) and
/// the batch's event added (`$4`, created at `$5`, for a relay after `$6`), returning its ids.
/// PostgreSQL chains them as data-modifying CTEs; SQLite runs them as one multi-statement query
/// whose `$n` number the parameters across statements.
const WRITE_POSTGRES: &str = "with stored as (\
     insert into visitor_like (visitor_id, product_id, liked) \
     select v, p, l from jsonb_to_recordset($1::jsonb) as t(v text, p bigint, l bigint) \
     on conflict (visitor_id, product_id) do update set liked = excluded.liked), \
     counted as (update product set likes = t.n, likes_version = t.v \
     from jsonb_to_recordset($2::jsonb) as t(id bigint, n bigint, v bigint) where product.id = t.id), \
     confirmed as (delete from outbox where id = any(cast($3 as text)::bigint[])) \
     insert into outbox (event_id, routing_key, payload, created_at_ms, relay_after_ms) \
     select e, k, p, $5, $6 from jsonb_to_recordset($4::jsonb) as t(e text, k text, p text) \
     returning id";

const WRITE_SQLITE: &str = "insert into visitor_like (visitor_id, product_id, liked) \
     select json_extract(value, '$.v'), json_extract(value, '$.p'), json_extract(value, '$.l') \
     from json_each($1) where true \
     on conflict (visitor_id, product_id) do update set liked = excluded.liked; \
     update product set likes = t.n, likes_version = t.v \
     from (select json_extract(value, '$.id') as id, json_extract(value, '$.n') as n, \
     json_extract(value, '$.v') as v from json_each($2)) as t where product.id = t.id; \
     delete from outbox where id in (select value from json_each($3)); \
     insert into outbox (event_id, routing_key, payload, created_at_ms, relay_after_ms) \
     select json_extract(value, '$.e'), json_extract(value, '$.k'), json_extract(value, '$.p'), \
     $5, $6 from json_each($4) where true returning id";

/// MariaDB has neither data-modifying CTEs nor several statements in one prepared statement:
/// there the writes are a statement each.
const STORE_MYSQL: &str = "insert into visitor_like (visitor_id, product_id, liked) \
     select v, p, l from json_table(?, '$[*]' columns(v varchar(64) collate utf8mb4_bin \
     path '$.v', p bigint path '$.p', l bigint path '$.l')) t \
     on duplicate key update liked = values(liked)";

const COUNT_MYSQL: &str =
    "update product join json_table(?, '$[*]' columns(id bigint path '$.id', \
     n bigint path '$.n', v bigint path '$.v')) t on product.id = t.id \
     set product.likes = t.n, product.likes_version = t.v";

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
    /// Starts the writer on `db`; after each commit it hands the batch's event to `publisher`
    /// and puts the counts in `gallery`. It ends once every clone is dropped.
    pub fn start(db: Database, publisher: Publisher<LikesEvent>, gallery: Arc<Gallery>) -> Self {
        let (commands, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write(db.clone(), publisher, gallery, queue));
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
async fn write(
    db: Database,
    publisher: Publisher<LikesEvent>,
    gallery: Arc<Gallery>,
    mut queue: mpsc::Receiver<Command>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        match apply(&db, &publisher, &batch).await {
            Ok((answers, counted)) => {
                if let Some((counts, counted_at_ms)) = counted {
                    gallery.count(&counts, Some(counted_at_ms));
                }
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

/// A product's count as the writer found it locked, and the catalog data it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Locked {
    pub likes: i64,
    pub version: i64,
    pub epoch: i64,
}

/// What a batch decides, in command order: each command's answer, the like rows to store, and
/// each changed product's new count.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decision {
    pub answers: Vec<Result<LikeState, Refusal>>,
    pub likes: BTreeMap<(String, i64), bool>,
    pub counts: Vec<LikeCount>,
}

/// Why one command of a batch changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownProduct,
    AlreadyLiked,
    NotLiked,
}

/// Applies `commands` in order to the stored likes and counts, as if one at a time. Each
/// changed product gets one new version, `LikeCount::next_version` of its stored one at
/// `now_us`, and every answer about it carries the count the batch commits with that version.
pub(crate) fn decide(
    commands: &[(VisitorId, ProductId, bool)],
    products: &BTreeMap<i64, Locked>,
    stored: HashMap<(String, i64), bool>,
    now_us: i64,
) -> Decision {
    let mut likes = stored;
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    let mut changed = Vec::with_capacity(commands.len());
    let mut decision = Decision::default();
    for (visitor, id, like) in commands {
        let Some(locked) = products.get(&id.get()) else {
            changed.push(Err(Refusal::UnknownProduct));
            continue;
        };
        let key = (visitor.as_str().to_owned(), id.get());
        if likes.get(&key).copied().unwrap_or(false) == *like {
            changed.push(Err(if *like {
                Refusal::AlreadyLiked
            } else {
                Refusal::NotLiked
            }));
            continue;
        }
        let count = counts.entry(id.get()).or_insert(locked.likes);
        *count += if *like { 1 } else { -1 };
        likes.insert(key.clone(), *like);
        decision.likes.insert(key, *like);
        changed.push(Ok((*id, *like)));
    }
    for (id, likes) in &counts {
        let locked = products[id];
        decision.counts.push(LikeCount {
            id: ProductId::from_stored(*id),
            likes: *likes,
            version: LikeCount::next_version(locked.version, now_us),
            epoch: locked.epoch,
        });
    }
    let committed: HashMap<ProductId, LikeCount> = decision
        .counts
        .iter()
        .map(|count| (count.id, *count))
        .collect();
    decision.answers = changed
        .into_iter()
        .map(|change| {
            change.map(|(id, liked)| {
                let count = committed[&id];
                LikeState {
                    id,
                    likes: count.likes,
                    likes_version: count.version,
                    liked,
                }
            })
        })
        .collect();
    decision
}

/// What a batch writes once it is decided, as the JSON parameters its statements take.
struct Writes {
    likes: String,
    counts: String,
    /// Outbox rows the broker has confirmed, deleted in the same transaction.
    confirmed: Vec<i64>,
}

impl Writes {
    /// Writes the batch and its `events` inside `conn`'s transaction; the events' outbox rows,
    /// for the publisher once the transaction commits.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: Vec<Envelope<LikesEvent>>,
    ) -> Result<Pending<LikesEvent>, sqlx::Error> {
        let engine = Engine::of(conn);
        let one_statement = match engine {
            Engine::Postgres => WRITE_POSTGRES,
            Engine::Sqlite => WRITE_SQLITE,
            Engine::MySql => {
                sqlx::query(STORE_MYSQL)
                    .bind(&self.likes)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(COUNT_MYSQL)
                    .bind(&self.counts)
                    .execute(&mut *conn)
                    .await?;
                if !self.confirmed.is_empty() {
                    outbox::delete(engine, &self.confirmed)
                        .execute(&mut *conn)
                        .await?;
                }
                return outbox::enqueue_direct(conn, events).await;
            }
        };
        let ids = sqlx::query_scalar(one_statement)
            .bind(&self.likes)
            .bind(&self.counts)
            .bind(outbox::ids_param(engine, &self.confirmed))
            .bind(outbox::rows(&events)?)
            .bind(now_millis())
            .bind(outbox::direct_relay_after_ms())
            .fetch_all(conn)
            .await?;
        Ok(Pending {
            ids,
            envelopes: events,
        })
    }
}

/// What a committed batch counted, and when.
type Counted = Option<(Vec<LikeCount>, i64)>;

/// Commits `batch`, deleting the outbox rows `publisher` has had confirmed, and hands its event
/// to `publisher`; returns each command's answer, in order, and the counts it committed.
async fn apply(
    db: &Database,
    publisher: &Publisher<LikesEvent>,
    batch: &[Command],
) -> Result<(Vec<Result<LikeState>>, Counted), sqlx::Error> {
    let commands: Vec<(VisitorId, ProductId, bool)> = batch
        .iter()
        .map(|command| (command.visitor.clone(), command.id, command.like))
        .collect();
    let mut products: Vec<i64> = commands.iter().map(|(_, id, _)| id.get()).collect();
    products.sort_unstable();
    products.dedup();

    let mut tx = db.begin_write().await?;
    let mut locked = BTreeMap::new();
    for row in sqlx::query(db.sql(&LOCK_PRODUCTS))
        .bind(serde_json::to_string(&products).expect("ids serialise"))
        .fetch_all(&mut *tx)
        .await?
    {
        let product = Locked {
            likes: row.try_get("likes")?,
            version: row.try_get("likes_version")?,
            epoch: row.try_get("epoch")?,
        };
        locked.insert(row.try_get::<i64, _>("id")?, product);
    }
    let pairs: Vec<serde_json::Value> = commands
        .iter()
        .filter(|(_, id, _)| locked.contains_key(&id.get()))
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
                row.try_get::<i64, _>("liked")? == 1,
            );
        }
    }
    let decision = decide(&commands, &locked, stored, now_micros());
    let mut counted = None;
    if !decision.counts.is_empty() {
        let likes: Vec<serde_json::Value> = decision
            .likes
            .iter()
            .map(|((visitor, id), liked)| {
                serde_json::json!({"v": visitor, "p": id, "l": i64::from(*liked)})
            })
            .collect();
        let rows: Vec<serde_json::Value> = decision
            .counts
            .iter()
            .map(|count| serde_json::json!({"id": count.id.get(), "n": count.likes, "v": count.version}))
            .collect();
        let writes = Writes {
            likes: serde_json::Value::Array(likes).to_string(),
            counts: serde_json::Value::Array(rows).to_string(),
            confirmed: publisher.take_confirmed(),
        };
        let (events, counted_at_ms) = counts::events(&decision.counts);
        let committed = match writes.apply(&mut tx, events).await {
            Ok(pending) => tx.commit().await.map(|()| pending),
            Err(err) => Err(err),
        };
        let confirmed = writes.confirmed;
        let pending = committed.inspect_err(|_| publisher.give_back(confirmed))?;
        publisher.publish(pending);
        // One line per commit at info: a log write per like would cost as much as the like
        // itself under load.
        let changes = decision.likes.len();
        tracing::info!(
            likes = changes,
            products = decision.counts.len(),
            "likes recorded"
        );
        for liked in decision.likes.values() {
            let action = if *liked { "like" } else { "unlike" };
            metrics::counter!("live_gallery_likes_total", "action" => action).increment(1);
        }
        counted = Some((decision.counts, counted_at_ms));
    }
    let answers = decision
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
        .collect();
    Ok((answers, counted))
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

    fn locked(likes: i64, version: i64) -> Locked {
        Locked {
            likes,
            version,
            epoch: 3,
        }
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
        let products = BTreeMap::from([(7, locked(4, 10))]);
        let decision = decide(&commands, &products, HashMap::new(), 0);
        let answers: Vec<_> = decision
            .answers
            .iter()
            .map(|answer| answer.map(|state| (state.likes, state.likes_version, state.liked)))
            .collect();
        // Every answer about 7 carries the count the batch commits, with its one new version.
        assert_eq!(
            answers,
            vec![
                Ok((5, 11, true)),
                Ok((5, 11, true)),
                Err(Refusal::AlreadyLiked),
                Ok((5, 11, false)),
                Err(Refusal::UnknownProduct)
            ]
        );
        assert_eq!(
            decision.counts,
            vec![LikeCount {
                id: id(7),
                likes: 5,
                version: 11,
                epoch: 3
            }]
        );
        let first = (visitor(1).as_str().to_owned(), 7);
        assert!(
            !decision.likes[&first],
            "the like and its undoing leave it not liked"
        );
    }

    #[test]
    fn a_stored_like_can_be_taken_back_once() {
        let key = (visitor(3).as_str().to_owned(), 7);
        let stored = HashMap::from([(key.clone(), true)]);
        let decision = decide(
            &[(visitor(3), id(7), false), (visitor(3), id(7), false)],
            &BTreeMap::from([(7, locked(1, 2))]),
            stored,
            0,
        );
        assert_eq!(decision.answers[1], Err(Refusal::NotLiked));
        assert!(!decision.likes[&key]);
        assert_eq!(decision.counts[0].likes, 0);
    }

    #[test]
    fn taking_back_a_like_never_made_is_refused_and_counts_nothing() {
        let decision = decide(
            &[(visitor(4), id(7), false)],
            &BTreeMap::from([(7, locked(0, 2))]),
            HashMap::new(),
            0,
        );
        assert_eq!(decision.answers, vec![Err(Refusal::NotLiked)]);
        assert!(
            decision.counts.is_empty(),
            "no new version without a change"
        );
    }

    #[test]
    fn versions_follow_the_clock_so_a_restored_database_still_counts_above_what_it_published() {
        // A database restored from a backup holds version 2, though it had published far
        // higher ones since: the next count is numbered from the clock, above them.
        let now_us = 1_800_000_000_000_000;
        let decision = decide(
            &[(visitor(5), id(7), true)],
            &BTreeMap::from([(7, locked(0, 2))]),
            HashMap::new(),
            now_us,
        );
        assert_eq!(decision.counts[0].version, now_us);
        let later = decide(
            &[(visitor(6), id(7), true)],
            &BTreeMap::from([(7, locked(1, now_us))]),
            HashMap::new(),
            now_us,
        );
        assert_eq!(
            later.counts[0].version,
            now_us + 1,
            "within one µs, still higher"
        );
    }
}
