//! The transactional outbox: events are inserted in the same transaction as the change they
//! describe, and a relay publishes them in order with confirms, deleting each only after the
//! broker confirmed it. A change is thus never published without being stored, nor lost when
//! the broker is down: the relay catches up when it returns. Rows a committer publishes itself
//! (`direct`) wait a grace period before the relay takes them.

use super::{Bus, Envelope, Event, OutgoingMessage};
use crate::db::sql::text;
use crate::db::{now_millis, Database, Engine, Sql};
use crate::shutdown::Shutdown;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Rows published per round.
const BATCH: i64 = 500;
/// Rounds of one relay that may wait for their confirms at once while a backlog lasts
/// (PostgreSQL, MariaDB).
const ROUNDS_IN_FLIGHT: usize = 3;
/// How often the relay looks for rows when nobody woke it (another process may have written).
const POLL: Duration = Duration::from_millis(500);
/// Longest pause after a failed round.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Adds a batch of events, given as one JSON array parameter, in the array's order, with the
/// time now and the time a relay may take them (`relay_after_ms`); returns their ids. MariaDB's
/// `?` take the values in the order they are bound, array then times, so there the times ride in
/// a one-row table joined after the array.
const INSERT: Sql = Sql::each(
    "insert into outbox (event_id, routing_key, payload, created_at_ms, relay_after_ms) \
     select e, k, p, $2, $3 from jsonb_to_recordset($1::jsonb) as t(e text, k text, p text) \
     returning id",
    "insert into outbox (event_id, routing_key, payload, created_at_ms, relay_after_ms) \
     select json_extract(value, '$.e'), json_extract(value, '$.k'), json_extract(value, '$.p'), \
     $2, $3 from json_each($1) where true returning id",
    "insert into outbox (event_id, routing_key, payload, created_at_ms, relay_after_ms) \
     select t.e, t.k, t.p, c.at, c.after from json_table(?, '$[*]' columns(n for ordinality, \
     e varchar(64) collate utf8mb4_bin path '$.e', k varchar(255) collate utf8mb4_bin path '$.k', \
     p longtext collate utf8mb4_bin path '$.p')) t cross join (select ? as at, ? as after) c \
     order by t.n returning id",
);

/// The oldest rows a relay may take now (`$1`, ms) that no other relay is publishing, at most
/// `$2`. On PostgreSQL and MariaDB the rows stay locked until the round's transaction ends, so
/// relays of several instances on one database never publish the same row; SQLite has one
/// process and one relay per file.
const TAKE: Sql = Sql::each(
    "select id, event_id, routing_key, payload from outbox where relay_after_ms <= $1 \
     order by id limit $2 for update skip locked",
    "select id, event_id, routing_key, payload from outbox where relay_after_ms <= $1 \
     order by id limit $2",
    "select id, event_id, routing_key, payload from outbox where relay_after_ms <= ? \
     order by id limit ? for update skip locked",
);

/// Deletes the rows of a round by primary key, touching no other row: `= any` keeps PostgreSQL
/// on the index rather than hashing a scan of the table and its dead rows. MariaDB, when its
/// statistics say the outbox is nearly empty (its steady state), would scan the outbox and lock
/// every row, waiting on the rows another catalog's relay holds while that relay waits on these:
/// a deadlock, and the round rolled back would publish its rows a second time. `straight_join`
/// fixes the plan to the keys first, then the primary key, so only this round's rows are locked.
const DELETE: Sql = Sql::each(
    "delete from outbox where id = any(cast($1 as text)::bigint[])",
    "delete from outbox where id in (select value from json_each($1))",
    "delete outbox from json_table(?, '$[*]' columns(id bigint path '$')) t \
     straight_join outbox on outbox.id = t.id",
);

/// A check an event's JSON must pass before it is enqueued: `(routing key, envelope)`, the
/// problem if it does not.
pub type EventCheck = fn(&str, &str) -> Result<(), String>;

static EVENT_CHECK: std::sync::OnceLock<EventCheck> = std::sync::OnceLock::new();

/// Makes every later enqueue check its events with `check`, failing the transaction of an event
/// that does not pass. The integration tests install the event schemas this way, so every
/// event any test makes the services publish is checked against the published contract.
pub fn check_every_event_with(check: EventCheck) {
    let _ = EVENT_CHECK.set(check);
}

/// Adds `envelope` to the outbox inside the caller's transaction.
pub async fn enqueue<E: Event>(
    conn: &mut AnyConnection,
    envelope: &Envelope<E>,
) -> Result<(), sqlx::Error> {
    enqueue_all(conn, std::slice::from_ref(envelope)).await
}

/// Adds `envelopes` to the outbox, in order, with one statement inside the caller's transaction.
pub async fn enqueue_all<E: Event>(
    conn: &mut AnyConnection,
    envelopes: &[Envelope<E>],
) -> Result<(), sqlx::Error> {
    insert(conn, envelopes, 0).await.map(drop)
}

/// Adds `envelopes` to the outbox inside the caller's transaction, for the caller to hand to its
/// `Publisher` once the transaction commits: relays leave the rows alone for `direct::GRACE`,
/// taking them only if that publish fails or the process dies first.
pub async fn enqueue_direct<E: Event>(
    conn: &mut AnyConnection,
    envelopes: Vec<Envelope<E>>,
) -> Result<Pending<E>, sqlx::Error> {
    let ids = insert(conn, &envelopes, direct_relay_after_ms()).await?;
    Ok(Pending { ids, envelopes })
}

/// Outbox rows of a transaction and the events they hold, for its committer to publish.
#[derive(Debug)]
pub struct Pending<E> {
    pub ids: Vec<i64>,
    pub envelopes: Vec<Envelope<E>>,
}

/// Inserts `envelopes`, each checked against its schema when a check is installed; their ids.
async fn insert<E: Event>(
    conn: &mut AnyConnection,
    envelopes: &[Envelope<E>],
    relay_after_ms: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    if envelopes.is_empty() {
        return Ok(Vec::new());
    }
    let sql = INSERT.on(conn);
    sqlx::query_scalar(sql)
        .bind(rows(envelopes)?)
        .bind(now_millis())
        .bind(relay_after_ms)
        .fetch_all(conn)
        .await
}

/// `envelopes` as the JSON array parameter the outbox's inserts take (`e`, `k`, `p` per row),
/// each checked against its schema when a check is installed.
pub(crate) fn rows<E: Event>(envelopes: &[Envelope<E>]) -> Result<String, sqlx::Error> {
    let check = EVENT_CHECK.get();
    let rows = envelopes
        .iter()
        .map(|envelope| {
            let (key, payload) = (envelope.routing_key(), envelope.to_json());
            if let Some(check) = check {
                check(key, &payload).map_err(|problem| {
                    sqlx::Error::Protocol(format!("event {key} breaks its schema: {problem}"))
                })?;
            }
            Ok(serde_json::json!({ "e": envelope.id.to_string(), "k": key, "p": payload }))
        })
        .collect::<Result<Vec<serde_json::Value>, sqlx::Error>>()?;
    Ok(serde_json::Value::Array(rows).to_string())
}

/// When rows a committer publishes itself may go to a relay: `direct::GRACE` from now.
pub(crate) fn direct_relay_after_ms() -> i64 {
    now_millis() + super::direct::GRACE.as_millis() as i64
}

/// The statement deleting the rows `ids` of an `engine`'s outbox, and nothing else.
pub(crate) fn delete(
    engine: Engine,
    ids: &[i64],
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments<'static>> {
    sqlx::query(DELETE.of(engine)).bind(ids_param(engine, ids))
}

/// Outbox ids as `engine`'s delete takes them: an array literal, `{1,2,3}`, on PostgreSQL, a
/// JSON array elsewhere.
pub(crate) fn ids_param(engine: Engine, ids: &[i64]) -> String {
    match engine {
        Engine::Postgres => format!(
            "{{{}}}",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        ),
        Engine::Sqlite | Engine::MySql => serde_json::to_string(ids).expect("ids serialise"),
    }
}

/// Counts `messages` as published to `exchange`: one counter update per routing key, not per
/// message.
pub(crate) fn count_published(exchange: &str, messages: &[OutgoingMessage]) {
    let mut by_key: std::collections::BTreeMap<&str, u64> = Default::default();
    for message in messages {
        *by_key.entry(&message.routing_key).or_default() += 1;
    }
    for (routing_key, count) in by_key {
        metrics::counter!(
            "live_gallery_events_published_total",
            "exchange" => exchange.to_owned(),
            "routing_key" => routing_key.to_owned()
        )
        .increment(count);
    }
}

/// Wakes a relay after a commit, so events go out at once rather than at the next poll.
#[derive(Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Publishes one database's outbox to one exchange.
pub struct Relay {
    pub db: Database,
    pub bus: Bus,
    pub exchange: String,
    pub waker: RelayWaker,
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("cannot read or clear the outbox")]
    Database(#[from] sqlx::Error),
    #[error("cannot publish")]
    Bus(#[from] super::BusError),
}

/// A relay and what brings its extra rounds in.
struct Rounds {
    relay: Relay,
    /// Notified when a round found a full batch: more rows wait than one round takes.
    backlog: Notify,
}

impl Relay {
    /// Publishes until `shutdown`; a round in progress finishes first. One loop of rounds
    /// follows the commits; on PostgreSQL and MariaDB, where rounds take disjoint rows (`skip
    /// locked`), further loops join in while a backlog lasts (after a broker outage, say), so
    /// several rounds wait for their confirms at once then. In steady state one round at a time
    /// lets the rows that commit meanwhile gather into the next, larger round.
    pub async fn run(self, shutdown: Shutdown) {
        let loops = match self.db.engine() {
            Engine::Postgres | Engine::MySql => ROUNDS_IN_FLIGHT,
            Engine::Sqlite => 1,
        };
        let rounds = Arc::new(Rounds {
            relay: self,
            backlog: Notify::new(),
        });
        futures_util::future::join_all(
            (0..loops).map(|n| rounds.clone().run_rounds(n == 0, shutdown.clone())),
        )
        .await;
        tracing::info!(exchange = %rounds.relay.exchange, "outbox relay stopped");
    }
}

impl Rounds {
    /// One loop of rounds: the first follows commits (and polls), the others a backlog.
    async fn run_rounds(self: Arc<Self>, follows_commits: bool, mut shutdown: Shutdown) {
        let relay = &self.relay;
        let mut backoff = Duration::from_millis(100);
        let mut idle = !follows_commits;
        while !shutdown.is_triggered() {
            if idle {
                tokio::select! {
                    _ = relay.waker.0.notified(), if follows_commits => {},
                    _ = tokio::time::sleep(POLL), if follows_commits => {},
                    _ = self.backlog.notified(), if !follows_commits => {},
                    _ = shutdown.wait() => continue,
                }
            }
            let round = relay.publish_batch().await;
            // An empty or partial batch means the outbox is drained; count it only when rows
            // may be left (a full batch, or a failed round while the broker is away).
            let backlog = match &round {
                Ok(published) if (*published as i64) < BATCH => Ok(0),
                _ => backlog(&relay.db).await,
            };
            if let Ok(backlog) = backlog {
                metrics::gauge!("live_gallery_outbox_backlog", "exchange" => relay.exchange.clone())
                    .set(backlog as f64);
            }
            idle = match round {
                Ok(published) => {
                    backoff = Duration::from_millis(100);
                    let full = published as i64 == BATCH;
                    if full {
                        // More wait than one round takes: bring another loop in.
                        self.backlog.notify_one();
                    }
                    // The commits' loop goes on while it finds rows; the others only while
                    // the backlog lasts.
                    if follows_commits {
                        published == 0
                    } else {
                        !full
                    }
                }
                Err(err) => {
                    tracing::warn!(exchange = %relay.exchange, error = %crate::error::chain(&err), "outbox relay round failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = shutdown.wait() => {},
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    !follows_commits
                }
            };
        }
    }
}

impl Relay {
    /// Publishes the oldest waiting rows; returns how many went out. The rows are deleted in
    /// the transaction that took them, once the broker confirmed them.
    async fn publish_batch(&self) -> Result<usize, RelayError> {
        // On SQLite a read transaction: the delete below goes through the writer.
        let mut tx = self.db.pool().begin().await?;
        let rows = sqlx::query(self.db.sql(&TAKE))
            .bind(now_millis())
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            // Nothing to send: the exchange still exists, for the other service to bind to
            // (once per broker connection; a lookup after that).
            tx.rollback().await?;
            self.bus.declare_exchange(&self.exchange).await?;
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(row.try_get::<i64, _>("id")?);
            messages.push(OutgoingMessage {
                message_id: text(&row, "event_id")?,
                routing_key: text(&row, "routing_key")?,
                payload: text(&row, "payload")?.into_bytes(),
            });
        }
        self.bus.publish(&self.exchange, &messages).await?;
        count_published(&self.exchange, &messages);
        // Delete exactly what was published: a transaction that commits late may have added a
        // row with a lower id in the meantime, and it must stay.
        let delete = delete(self.db.engine(), &ids);
        match self.db.engine() {
            Engine::Postgres | Engine::MySql => {
                delete.execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Engine::Sqlite => {
                tx.rollback().await?;
                delete.execute(self.db.writer()).await?;
            }
        }
        Ok(messages.len())
    }
}

/// How many events wait in a database's outbox.
pub async fn backlog(db: &Database) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(db.pool())
        .await
}
