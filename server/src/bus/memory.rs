//! The in-process bus: a small broker with the same semantics as the RabbitMQ one, for the
//! embedded single-process run. A publish is confirmed once every durable queue it reached has
//! acked (or dead-lettered) it, so the publisher's outbox keeps a message until it has taken
//! effect: nothing is lost if the process dies with messages still in memory. A message published
//! again while its first copy still waits in a queue (a relay retrying after a confirm timed out
//! because a consumer stalls) is not queued twice: the retry waits for the copy already there.
//! Dead letters can be kept in a service's database (`keep_dead_letters_in`, as the embedded
//! default does), so that they outlive a restart as RabbitMQ's durable queues make them.

use super::{
    topic, BusError, Delivery, OutgoingMessage, QueueKind, QueueSpec, Settle as DeliverySettle,
    DEAD_LETTER_REASON, ORIGINAL_ROUTING_KEY,
};
use crate::db::sql::{optional_text, text};
use crate::db::{Database, Sql};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// An in-process broker. Cheap to clone; clones share the same queues.
#[derive(Clone)]
pub struct MemoryBus {
    broker: Arc<Mutex<Broker>>,
    confirm_timeout: Duration,
    /// The database each dead-letter queue is kept in, by queue name.
    stores: Arc<Mutex<HashMap<String, Database>>>,
}

#[derive(Default)]
struct Broker {
    queues: HashMap<String, Arc<Queue>>,
    bindings: Vec<Binding>,
}

struct Binding {
    exchange: String,
    pattern: String,
    queue: String,
}

struct Queue {
    durable: bool,
    ready: Mutex<VecDeque<Message>>,
    notify: Notify,
    /// The confirm of each message id this durable queue holds and has not settled yet (ready
    /// or in a consumer's hands): a publish of the same message again (a relay retrying after
    /// a confirm timeout) waits for that copy instead of queueing another, so a stalled
    /// consumer cannot make the queue grow by a batch per retry.
    pending: Mutex<HashMap<String, Arc<Confirm>>>,
}

#[derive(Clone)]
struct Message {
    routing_key: String,
    payload: Vec<u8>,
    message_id: Option<String>,
    headers: BTreeMap<String, String>,
    redelivered: bool,
    confirm: Option<Arc<Confirm>>,
    /// The row keeping this dead letter in its queue's store, if it has one.
    stored: Option<i64>,
}

impl Message {
    /// A fresh copy of `outgoing` for one queue, counted by `confirm` if the queue is durable.
    fn published(outgoing: &OutgoingMessage, confirm: Option<Arc<Confirm>>) -> Self {
        Self {
            routing_key: outgoing.routing_key.clone(),
            payload: outgoing.payload.clone(),
            message_id: Some(outgoing.message_id.clone()),
            headers: BTreeMap::new(),
            redelivered: false,
            confirm,
            stored: None,
        }
    }
}

/// Counts the durable copies of one published message not yet settled (one per queue).
struct Confirm {
    remaining: AtomicUsize,
    done: Notify,
}

impl Confirm {
    fn settle_one(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_waiters();
        }
    }

    async fn wait(&self) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.remaining.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The dead letters kept for one queue, oldest first.
const KEPT: Sql = crate::shared!(
    "select id, routing_key, message_id, payload, headers from dead_letter \
     where queue = $1 order by id"
);

/// Keeps a dead letter; `db::inserted_id` gives its id on every engine.
const KEEP: Sql = Sql::each(
    "insert into dead_letter (queue, routing_key, message_id, payload, headers, \
     created_at_ms) values ($1, $2, $3, $4, $5, $6) returning id",
    "insert into dead_letter (queue, routing_key, message_id, payload, headers, \
     created_at_ms) values ($1, $2, $3, $4, $5, $6) returning id",
    "insert into dead_letter (queue, routing_key, message_id, payload, headers, \
     created_at_ms) values (?, ?, ?, ?, ?, ?)",
);

const FORGET: Sql = crate::shared!("delete from dead_letter where id = $1");

/// Removes a kept dead letter from its store.
async fn forget(db: &Database, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(db.sql(&FORGET))
        .bind(id)
        .execute(db.writer())
        .await?;
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; carry on with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Queue {
    fn push_back(&self, message: Message) {
        lock(&self.ready).push_back(message);
        self.notify.notify_one();
    }

    fn push_front(&self, message: Message) {
        lock(&self.ready).push_front(message);
        self.notify.notify_one();
    }

    /// Settles a durable copy: its publisher's confirm counts it, and the id may be queued again.
    fn settled(&self, message: &Message) {
        let Some(confirm) = &message.confirm else {
            return;
        };
        if let Some(id) = &message.message_id {
            let mut pending = lock(&self.pending);
            if pending
                .get(id)
                .is_some_and(|held| Arc::ptr_eq(held, confirm))
            {
                pending.remove(id);
            }
        }
        confirm.settle_one();
    }
}

impl MemoryBus {
    /// Messages ready in `queue` (0 for a queue it does not have).
    pub fn waiting(&self, queue: &str) -> u64 {
        let queue = lock(&self.broker).queues.get(queue).cloned();
        queue.map_or(0, |queue| lock(&queue.ready).len() as u64)
    }

    /// Keeps the dead letters of `dead_letters` in `db`'s `dead_letter` table from now on, and
    /// brings back the ones kept there before (by an earlier process).
    pub async fn keep_dead_letters_in(
        &self,
        dead_letters: &str,
        db: Database,
    ) -> Result<(), sqlx::Error> {
        if lock(&self.stores).contains_key(dead_letters) {
            return Ok(());
        }
        let rows = sqlx::query(db.sql(&KEPT))
            .bind(dead_letters)
            .fetch_all(db.pool())
            .await?;
        let queue = self.declare(dead_letters, true);
        for row in rows {
            let headers = text(&row, "headers")?;
            queue.push_back(Message {
                routing_key: text(&row, "routing_key")?,
                payload: row.try_get("payload")?,
                message_id: optional_text(&row, "message_id")?,
                headers: serde_json::from_str(&headers).unwrap_or_default(),
                redelivered: false,
                confirm: None,
                stored: Some(row.try_get("id")?),
            });
        }
        lock(&self.stores).insert(dead_letters.to_owned(), db);
        Ok(())
    }

    fn store_of(&self, dead_letters: &str) -> Option<Database> {
        lock(&self.stores).get(dead_letters).cloned()
    }

    /// Moves every message of `queue`'s dead-letter queue back to `queue`, with its original
    /// routing key and without the reason (and out of the store); returns how many.
    pub async fn replay_dead_letters(
        &self,
        queue: &str,
        dead_letters: &str,
    ) -> Result<u64, sqlx::Error> {
        let target = self.declare(queue, true);
        let source = self.declare(dead_letters, true);
        let moved: Vec<Message> = lock(&source.ready).drain(..).collect();
        let count = moved.len() as u64;
        let store = self.store_of(dead_letters);
        for mut message in moved {
            if let (Some(db), Some(id)) = (&store, message.stored.take()) {
                forget(db, id).await?;
            }
            message.routing_key = message
                .headers
                .remove(ORIGINAL_ROUTING_KEY)
                .unwrap_or_else(|| queue.to_owned());
            message.headers.remove(DEAD_LETTER_REASON);
            message.redelivered = false;
            target.push_back(message);
        }
        Ok(count)
    }

    /// A new, empty broker. A publish that is not confirmed within `confirm_timeout` fails.
    pub fn new(confirm_timeout: Duration) -> Self {
        Self {
            broker: Arc::default(),
            confirm_timeout,
            stores: Arc::default(),
        }
    }

    fn declare(&self, name: &str, durable: bool) -> Arc<Queue> {
        lock(&self.broker)
            .queues
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Queue {
                    durable,
                    ready: Mutex::default(),
                    notify: Notify::new(),
                    pending: Mutex::default(),
                })
            })
            .clone()
    }

    pub async fn publish(
        &self,
        exchange: &str,
        messages: &[OutgoingMessage],
    ) -> Result<(), BusError> {
        let mut confirms = Vec::with_capacity(messages.len());
        {
            let broker = lock(&self.broker);
            for outgoing in messages {
                let mut targets: Vec<&Arc<Queue>> = Vec::new();
                for binding in &broker.bindings {
                    if binding.exchange == exchange
                        && topic::matches(&binding.pattern, &outgoing.routing_key)
                    {
                        if let Some(queue) = broker.queues.get(&binding.queue) {
                            if !targets.iter().any(|t| Arc::ptr_eq(t, queue)) {
                                targets.push(queue);
                            }
                        }
                    }
                }
                if targets.is_empty() {
                    return Err(BusError::Unroutable(outgoing.routing_key.clone()));
                }
                for queue in targets {
                    if !queue.durable {
                        queue.push_back(Message::published(outgoing, None));
                        continue;
                    }
                    let mut pending = lock(&queue.pending);
                    if let Some(waiting) = pending.get(&outgoing.message_id) {
                        confirms.push(waiting.clone());
                        continue;
                    }
                    let confirm = Arc::new(Confirm {
                        remaining: AtomicUsize::new(1),
                        done: Notify::new(),
                    });
                    pending.insert(outgoing.message_id.clone(), confirm.clone());
                    drop(pending);
                    queue.push_back(Message::published(outgoing, Some(confirm.clone())));
                    confirms.push(confirm);
                }
            }
        }
        let all_settled = async {
            for confirm in &confirms {
                confirm.wait().await;
            }
        };
        tokio::time::timeout(self.confirm_timeout, all_settled)
            .await
            .map_err(|_| BusError::Timeout(self.confirm_timeout))
    }

    pub fn subscribe(&self, spec: &QueueSpec) -> MemorySubscription {
        let durable = spec.kind != QueueKind::Live;
        let queue = self.declare(&spec.queue, durable);
        let dead_letter_queue = spec.dead_letter_queue();
        if let Some(name) = &dead_letter_queue {
            self.declare(name, true);
        }
        {
            let mut broker = lock(&self.broker);
            for pattern in &spec.bindings {
                let exists = broker.bindings.iter().any(|b| {
                    b.exchange == spec.exchange && b.pattern == *pattern && b.queue == spec.queue
                });
                if !exists {
                    broker.bindings.push(Binding {
                        exchange: spec.exchange.clone(),
                        pattern: pattern.clone(),
                        queue: spec.queue.clone(),
                    });
                }
            }
        }
        MemorySubscription {
            bus: self.clone(),
            name: spec.queue.clone(),
            live: spec.kind == QueueKind::Live,
            queue,
            dead_letter_queue,
            permits: Arc::new(Semaphore::new(usize::from(spec.prefetch.max(1)))),
        }
    }
}

/// Deliveries from one in-process queue.
pub struct MemorySubscription {
    bus: MemoryBus,
    name: String,
    live: bool,
    queue: Arc<Queue>,
    dead_letter_queue: Option<String>,
    /// One permit per unsettled delivery: the prefetch limit.
    permits: Arc<Semaphore>,
}

impl MemorySubscription {
    pub async fn next(&mut self) -> Option<Delivery> {
        let mut permit = self.permits.clone().acquire_owned().await.ok()?;
        loop {
            let notified = self.queue.notify.notified();
            match self.pop(permit) {
                Ok(delivery) => return Some(delivery),
                Err(unused) => permit = unused,
            }
            notified.await;
        }
    }

    /// A ready message within the prefetch limit, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        self.pop(permit).ok()
    }

    /// The first ready message as a delivery holding `permit`, or the permit back if none is.
    fn pop(&self, permit: OwnedSemaphorePermit) -> Result<Delivery, OwnedSemaphorePermit> {
        let popped = {
            let mut ready = lock(&self.queue.ready);
            let popped = ready.pop_front();
            if popped.is_some() && !ready.is_empty() {
                // Wake another consumer of the same queue for the rest.
                self.queue.notify.notify_one();
            }
            popped
        };
        let Some(message) = popped else {
            return Err(permit);
        };
        Ok(Delivery {
            routing_key: message.routing_key.clone(),
            payload: message.payload.clone(),
            redelivered: message.redelivered,
            message_id: message.message_id.clone(),
            headers: message.headers.clone(),
            settle: DeliverySettle::Memory(Settle {
                bus: self.bus.clone(),
                queue: self.queue.clone(),
                dead_letter_queue: self.dead_letter_queue.clone(),
                store: self.bus.store_of(&self.name),
                message: Some(message),
                _permit: permit,
            }),
        })
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        if self.live {
            // Like an exclusive, auto-delete AMQP queue: it goes away with its consumer.
            let mut broker = lock(&self.bus.broker);
            broker.queues.remove(&self.name);
            broker.bindings.retain(|b| b.queue != self.name);
        }
    }
}

/// How an in-process delivery is settled; unsettled on drop means requeued.
pub struct Settle {
    bus: MemoryBus,
    queue: Arc<Queue>,
    dead_letter_queue: Option<String>,
    /// The store of the queue the message came from, when it is a kept dead-letter queue.
    store: Option<Database>,
    message: Option<Message>,
    _permit: OwnedSemaphorePermit,
}

impl Settle {
    pub fn ack(mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        self.queue.settled(&message);
        // A dead letter read and acked is gone from its store too.
        if let (Some(id), Some(db)) = (message.stored, self.store.clone()) {
            tokio::spawn(async move {
                if let Err(err) = forget(&db, id).await {
                    tracing::warn!(error = %err, "cannot remove an acked dead letter from its store");
                }
            });
        }
    }

    pub fn requeue(mut self) {
        self.put_back();
    }

    /// Moves the message to the dead-letter queue (and its store, first, if it has one); if the
    /// store refuses it, the message is put back instead: refused is never lost.
    pub async fn dead_letter(
        mut self,
        routing_key: &str,
        payload: Vec<u8>,
        message_id: Option<String>,
        reason: &str,
    ) -> Result<(), BusError> {
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        let Some(name) = self.dead_letter_queue.clone() else {
            tracing::warn!(
                reason,
                "message refused on a queue without a dead-letter queue; dropped"
            );
            self.queue.settled(&message);
            return Ok(());
        };
        let mut headers = message.headers.clone();
        headers.insert(DEAD_LETTER_REASON.to_owned(), reason.to_owned());
        headers.insert(ORIGINAL_ROUTING_KEY.to_owned(), routing_key.to_owned());
        let mut stored = None;
        if let Some(db) = self.bus.store_of(&name) {
            let insert = sqlx::query(db.sql(&KEEP))
                .bind(&name)
                .bind(routing_key)
                .bind(message_id.clone())
                .bind(payload.clone())
                .bind(serde_json::to_string(&headers).expect("headers serialise"))
                .bind(crate::db::now_millis());
            let kept = crate::db::inserted_id(db.engine(), insert, db.writer()).await;
            match kept {
                Ok(id) => stored = Some(id),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot keep a dead letter; putting the message back");
                    self.message = Some(message);
                    self.put_back();
                    return Err(BusError::Nacked);
                }
            }
        }
        self.bus.declare(&name, true).push_back(Message {
            routing_key: name.clone(),
            payload,
            message_id,
            headers,
            redelivered: false,
            confirm: None,
            stored,
        });
        self.queue.settled(&message);
        Ok(())
    }

    fn put_back(&mut self) {
        if let Some(mut message) = self.message.take() {
            message.redelivered = true;
            self.queue.push_front(message);
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        self.put_back();
    }
}
