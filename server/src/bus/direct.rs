//! Publishing outbox rows from the process that committed them, as soon as the commit returns:
//! the event reaches the broker without waiting for a relay round and that round's transaction.
//! The rows stay in the outbox marked to wait `GRACE` before a relay may take them, so the relay
//! is only the safety net (a publish that failed, a process that died before its publish).
//! Once the broker has confirmed them, the committer deletes them in its next transaction, or,
//! when none comes soon, in one delete of their own. A row published twice (the relay took it
//! after a publish that was slow to confirm) is harmless: consumers keep the newest version.
//!
//! After a quiet `FRAME` a commit goes out at once; under load the publisher sends at most once
//! per `FRAME`, the events of every transaction committed meanwhile merged into as few as say
//! the same (`Coalesce`): a storm of small transactions costs the broker and each consumer a
//! message per frame, not one per transaction.

use super::outbox::{self, Pending};
use super::{Bus, Envelope, Event, OutgoingMessage};
use crate::db::{Database, Engine};
use crate::shutdown::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a relay leaves a directly published row alone.
pub const GRACE: Duration = Duration::from_secs(3);
/// Under load, the shortest time between two publishes: what a commit may wait, at most, for
/// the commits after it to go out with it.
pub const FRAME: Duration = Duration::from_millis(16);
/// How long confirmed rows wait for the committer's next transaction before their own delete.
const IDLE: Duration = Duration::from_millis(200);
/// Committed transactions waiting for their publish; beyond that the relay publishes them.
const WAITING: usize = 1024;

/// An event family whose events from several transactions can go out as fewer events.
pub trait Coalesce: Event + Sized + Send + Sync + 'static {
    /// `events`, in commit order, as fewer events (or the same) that leave every consumer as the
    /// whole sequence would.
    fn coalesce(events: Vec<Envelope<Self>>) -> Vec<Envelope<Self>>;
}

/// Publishes what its committers hand it to one exchange. Cheap to clone.
pub struct Publisher<E> {
    waiting: mpsc::Sender<Pending<E>>,
    confirmed: Arc<Mutex<Vec<i64>>>,
}

impl<E> Clone for Publisher<E> {
    fn clone(&self) -> Self {
        Self {
            waiting: self.waiting.clone(),
            confirmed: self.confirmed.clone(),
        }
    }
}

impl<E: Coalesce> Publisher<E> {
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
}

impl<E> Publisher<E> {
    /// Publishes `pending`, whose transaction has committed. Never waits: when too many wait
    /// already, the relay publishes these after `GRACE`.
    pub fn publish(&self, pending: Pending<E>) {
        if pending.ids.is_empty() {
            return;
        }
        if self.waiting.try_send(pending).is_err() {
            tracing::warn!("direct publisher full; the outbox relay publishes these events");
        }
    }

    /// The rows the broker has confirmed, for a caller that deletes them in a statement of its
    /// own inside its transaction (and hands them to `give_back` if that transaction fails).
    pub fn take_confirmed(&self) -> Vec<i64> {
        std::mem::take(&mut *self.confirmed.lock().expect("confirmed ids"))
    }

    /// Confirmed rows a failed transaction did not delete after all.
    pub fn give_back(&self, ids: Vec<i64>) {
        self.confirmed.lock().expect("confirmed ids").extend(ids);
    }
}

/// When the next publish may start: at once after a quiet frame, else a frame after the last.
#[derive(Debug, Default)]
struct Pace {
    last: Option<Instant>,
}

impl Pace {
    fn next(&self, now: Instant) -> Instant {
        self.last.map_or(now, |last| now.max(last + FRAME))
    }

    fn published(&mut self, at: Instant) {
        self.last = Some(at);
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
    async fn run<E: Coalesce>(self, mut queue: mpsc::Receiver<Pending<E>>, mut shutdown: Shutdown) {
        let mut batch = Vec::new();
        let mut pace = Pace::default();
        loop {
            let idle = !self.confirmed.lock().expect("confirmed ids").is_empty();
            tokio::select! {
                taken = queue.recv_many(&mut batch, WAITING) => {
                    if taken == 0 {
                        break;
                    }
                }
                _ = tokio::time::sleep(IDLE), if idle => {
                    self.delete_alone().await;
                    continue;
                }
                _ = shutdown.wait() => break,
            }
            let now = Instant::now();
            let due = pace.next(now);
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = shutdown.wait() => break,
                }
            }
            while let Ok(pending) = queue.try_recv() {
                batch.push(pending);
            }
            pace.published(Instant::now());
            self.publish(&mut batch).await;
        }
        // Shutting down: what waits goes out now, in one publish.
        while let Ok(pending) = queue.try_recv() {
            batch.push(pending);
        }
        self.publish(&mut batch).await;
        self.delete_alone().await;
    }

    /// Publishes `batch`'s events, merged, with one wait for confirms, and empties it.
    async fn publish<E: Coalesce>(&self, batch: &mut Vec<Pending<E>>) {
        if batch.is_empty() {
            return;
        }
        let ids: Vec<i64> = batch.iter().flat_map(|p| p.ids.iter().copied()).collect();
        let events = E::coalesce(batch.drain(..).flat_map(|p| p.envelopes).collect());
        let messages: Vec<OutgoingMessage> = events.iter().map(Envelope::to_message).collect();
        match self.bus.publish(&self.exchange, &messages).await {
            Ok(()) => {
                outbox::count_published(&self.exchange, &messages);
                self.confirmed.lock().expect("confirmed ids").extend(ids);
            }
            Err(err) => {
                tracing::warn!(exchange = %self.exchange, error = %crate::error::chain(&err), events = messages.len(), "direct publish failed; the outbox relay publishes these events");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_publish_and_one_after_a_quiet_frame_go_at_once() {
        let start = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(pace.next(start), start);
        pace.published(start);
        let quiet = start + FRAME + Duration::from_millis(1);
        assert_eq!(pace.next(quiet), quiet);
    }

    #[test]
    fn under_load_a_publish_waits_for_the_end_of_the_frame() {
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.published(start);
        assert_eq!(pace.next(start + Duration::from_millis(3)), start + FRAME);
        assert_eq!(pace.next(start + FRAME), start + FRAME);
    }
}
