//! Publishing outbox rows from the process that committed them, as soon as the commit returns:
//! the event reaches the broker without waiting for a relay round and that round's transaction.
//! The rows stay in the outbox marked to wait `GRACE` before a relay may take them, so the relay
//! is only the safety net (a publish that failed, a process that died before its publish).
//! Once the broker has confirmed them, the committer deletes them in its next transaction, or,
//! when none comes soon, in one delete of their own. A row published twice (the relay took it
//! after a publish that was slow to confirm) is harmless: consumers keep the newest version.

use super::outbox::{self, Pending};
use super::{Bus, OutgoingMessage};
use crate::db::{Database, Engine};
use crate::shutdown::Shutdown;
use sqlx::AnyConnection;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a relay leaves a directly published row alone.
pub const GRACE: Duration = Duration::from_secs(3);
/// How long confirmed rows wait for the committer's next transaction before their own delete.
const IDLE: Duration = Duration::from_millis(200);
/// Committed transactions waiting for their publish; beyond that the relay publishes them.
const WAITING: usize = 1024;
/// Most committed transactions published together, with one wait for confirms.
const TOGETHER: usize = 64;

/// Publishes what its committers hand it to one exchange. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    waiting: mpsc::Sender<Pending>,
    confirmed: Arc<Mutex<Vec<i64>>>,
}

impl Publisher {
    /// A publisher of `db`'s outbox rows to `exchange`, and the task that publishes, to run
    /// until `shutdown` (it publishes what is waiting then before it ends).
    pub fn new(
        db: Database,
        bus: Bus,
        exchange: String,
        shutdown: Shutdown,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (waiting, queue) = mpsc::channel(WAITING);
        let publisher = Self {
            waiting,
            confirmed: Arc::default(),
        };
        let task = Task {
            db,
            bus,
            exchange,
            confirmed: publisher.confirmed.clone(),
        };
        (publisher, task.run(queue, shutdown))
    }

    /// Publishes `pending`, whose transaction has committed. Never waits: when too many wait
    /// already, the relay publishes these after `GRACE`.
    pub fn publish(&self, pending: Pending) {
        if pending.ids.is_empty() {
            return;
        }
        if self.waiting.try_send(pending).is_err() {
            tracing::warn!("direct publisher full; the outbox relay publishes these events");
        }
    }

    /// Deletes the rows the broker has confirmed, inside the caller's transaction; returns
    /// them, for `give_back` if that transaction fails.
    pub async fn delete_confirmed(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Vec<i64>, sqlx::Error> {
        let ids = std::mem::take(&mut *self.confirmed.lock().expect("confirmed ids"));
        if !ids.is_empty() {
            if let Err(err) = outbox::delete(Engine::of(conn), &ids).execute(conn).await {
                self.give_back(ids);
                return Err(err);
            }
        }
        Ok(ids)
    }

    /// Confirmed rows a failed transaction did not delete after all.
    pub fn give_back(&self, ids: Vec<i64>) {
        self.confirmed.lock().expect("confirmed ids").extend(ids);
    }
}

/// The publishing side.
struct Task {
    db: Database,
    bus: Bus,
    exchange: String,
    confirmed: Arc<Mutex<Vec<i64>>>,
}

impl Task {
    async fn run(self, mut queue: mpsc::Receiver<Pending>, mut shutdown: Shutdown) {
        let mut batch = Vec::with_capacity(TOGETHER);
        loop {
            let idle = !self.confirmed.lock().expect("confirmed ids").is_empty();
            tokio::select! {
                taken = queue.recv_many(&mut batch, TOGETHER) => {
                    if taken == 0 {
                        break;
                    }
                }
                _ = tokio::time::sleep(IDLE), if idle => {
                    self.delete_alone().await;
                    continue;
                }
                _ = shutdown.wait() => {
                    while let Ok(pending) = queue.try_recv() {
                        batch.push(pending);
                    }
                    self.publish(&mut batch).await;
                    self.delete_alone().await;
                    break;
                }
            }
            self.publish(&mut batch).await;
        }
    }

    /// Publishes `batch` with one wait for confirms and empties it.
    async fn publish(&self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let messages: Vec<OutgoingMessage> = batch
            .iter()
            .flat_map(|pending| pending.messages.iter().cloned())
            .collect();
        match self.bus.publish(&self.exchange, &messages).await {
            Ok(()) => {
                outbox::count_published(&self.exchange, &messages);
                let mut confirmed = self.confirmed.lock().expect("confirmed ids");
                for pending in batch.iter() {
                    confirmed.extend_from_slice(&pending.ids);
                }
            }
            Err(err) => {
                tracing::warn!(exchange = %self.exchange, error = %crate::error::chain(&err), events = messages.len(), "direct publish failed; the outbox relay publishes these events");
            }
        }
        batch.clear();
    }

    /// Deletes the confirmed rows no transaction took along.
    async fn delete_alone(&self) {
        let ids = std::mem::take(&mut *self.confirmed.lock().expect("confirmed ids"));
        if ids.is_empty() {
            return;
        }
        let deleted = match self.db.engine() {
            Engine::Sqlite => {
                outbox::delete(Engine::Sqlite, &ids)
                    .execute(self.db.writer())
                    .await
            }
            engine => outbox::delete(engine, &ids).execute(self.db.pool()).await,
        };
        if let Err(err) = deleted {
            // The rows stay; the relay publishes them once more and deletes them.
            tracing::warn!(exchange = %self.exchange, error = %crate::error::chain(&err), "published outbox rows not deleted");
        }
    }
}
