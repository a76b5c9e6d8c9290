//! The transactional outbox: events are inserted in the same transaction as the change they
//! describe, and a relay publishes them in order with confirms, deleting each only after the
//! broker confirmed it. A change is thus never published without being stored, nor lost when
//! the broker is down: the relay catches up when it returns.

use super::{Bus, Envelope, Event, OutgoingMessage};
use crate::db::{now_millis, Database};
use crate::shutdown::Shutdown;
use sqlx::{AnyConnection, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Rows published per round.
const BATCH: i64 = 200;
/// How often the relay looks for rows when nobody woke it (another process may have written).
const POLL: Duration = Duration::from_millis(500);
/// Longest pause after a failed round.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Adds `envelope` to the outbox inside the caller's transaction.
pub async fn enqueue<E: Event>(
    conn: &mut AnyConnection,
    envelope: &Envelope<E>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into outbox (event_id, routing_key, payload, created_at_ms) values ($1, $2, $3, $4)",
    )
    .bind(envelope.id.to_string())
    .bind(envelope.routing_key())
    .bind(envelope.to_json())
    .bind(now_millis())
    .execute(conn)
    .await?;
    Ok(())
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

impl Relay {
    /// Publishes until `shutdown`; a round in progress finishes first.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_triggered() {
            let round = self.publish_batch().await;
            // An empty or partial batch means the outbox is drained; count it only when rows
            // may be left (a full batch, or a failed round while the broker is away).
            let backlog = match &round {
                Ok(published) if (*published as i64) < BATCH => Ok(0),
                _ => backlog(&self.db).await,
            };
            if let Ok(backlog) = backlog {
                metrics::gauge!("live_gallery_outbox_backlog", "exchange" => self.exchange.clone())
                    .set(backlog as f64);
            }
            match round {
                Ok(0) => {
                    tokio::select! {
                        _ = self.waker.0.notified() => {},
                        _ = tokio::time::sleep(POLL) => {},
                        _ = shutdown.wait() => {},
                    }
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(err) => {
                    tracing::warn!(exchange = %self.exchange, error = %crate::error::chain(&err), "outbox relay round failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = shutdown.wait() => {},
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tracing::info!(exchange = %self.exchange, "outbox relay stopped");
    }

    /// Publishes the oldest waiting rows; returns how many went out.
    async fn publish_batch(&self) -> Result<usize, RelayError> {
        let rows = sqlx::query(
            "select id, event_id, routing_key, payload from outbox order by id limit $1",
        )
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(row.try_get::<i64, _>("id")?);
            messages.push(OutgoingMessage {
                message_id: row.try_get("event_id")?,
                routing_key: row.try_get("routing_key")?,
                payload: row.try_get::<String, _>("payload")?.into_bytes(),
            });
        }
        self.bus.publish(&self.exchange, &messages).await?;
        metrics::counter!("live_gallery_events_published_total", "exchange" => self.exchange.clone())
            .increment(messages.len() as u64);
        // Delete exactly what was published: a transaction that commits late may have added a
        // row with a lower id in the meantime, and it must stay.
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "delete from outbox where id in ({})",
            placeholders.join(", ")
        );
        let mut delete = sqlx::query(&sql);
        for id in &ids {
            delete = delete.bind(*id);
        }
        delete.execute(self.db.pool()).await?;
        Ok(ids.len())
    }
}

/// How many events wait in a database's outbox.
pub async fn backlog(db: &Database) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(db.pool())
        .await
}
