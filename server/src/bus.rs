//! The message bus between the services: topic exchanges, durable queues, persistent messages,
//! publisher confirms, manual acks and dead-letter queues, over RabbitMQ (`amqp`) or in-process
//! (`memory`) with the same semantics.
//!
//! - `envelope`: the JSON envelope every event travels in
//! - `topic`: AMQP topic pattern matching (used by the in-process broker)
//! - `amqp`, `memory`: the two implementations
//! - `consumer`: the loop that decodes, handles and acks deliveries
//! - `outbox`: the transactional outbox and the relay that publishes it
//! - `direct`: publishing a transaction's outbox rows from its committer, the relay as safety net

pub mod amqp;
pub mod consumer;
pub mod direct;
pub mod envelope;
pub mod memory;
pub mod outbox;
pub mod topic;

use std::collections::BTreeMap;
use std::time::Duration;

pub use envelope::{Envelope, Event};

/// Header that carries the reason a message was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// Header that carries the routing key a dead-lettered message was first published with.
pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";

/// Why a bus operation failed. All of these are transient from the caller's point of view:
/// the outbox keeps the message and the relay tries again.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the message")]
    Nacked,
    #[error("no queue is bound for routing key `{0}`")]
    Unroutable(String),
    #[error("broker connection failed")]
    Amqp(#[from] lapin::Error),
    /// The in-process bus could not keep or remove a dead letter in its database.
    #[error("the dead-letter store failed")]
    Store(#[source] sqlx::Error),
}

impl BusError {
    /// Whether the broker answered and refused (a queue declared elsewhere with other
    /// arguments, missing permissions, an unknown virtual host): waiting will not fix it. A
    /// queue still held by a connection that is going away, an exchange its owner has not
    /// declared yet, or a broker shutting down, passes.
    pub fn is_refusal(&self) -> bool {
        use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
        let BusError::Amqp(err) = self else {
            return false;
        };
        let lapin::ErrorKind::ProtocolError(amqp) = err.kind() else {
            return false;
        };
        // NOT_FOUND: the other service has not declared its exchange yet.
        !matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED | AMQPSoftError::NOTFOUND)
                | AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED)
        )
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub routing_key: String,
    /// The envelope's id, sent as the AMQP message id.
    pub message_id: String,
    /// The JSON envelope.
    pub payload: Vec<u8>,
}

/// What kind of queue a consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Survives broker restarts; messages it cannot process go to its dead-letter queue.
    Durable,
    /// One per process, deleted when the process goes away: for live fan-out. Named
    /// `<shared name>.<instance>`; what its consumer refuses goes to the shared name's
    /// dead-letter queue.
    Live,
    /// A dead-letter queue, read to inspect or replay what was refused.
    DeadLetter,
}

/// A queue, the exchange it reads from and the routing patterns that fill it.
///
/// What a consumer refuses goes through an exchange of the queue's own, named like its
/// dead-letter queue (`<queue>.dead-letter`), to that queue; replays go back through it to the
/// queue (bound with its own name). So each service writes only to exchanges and queues under its
/// own names, never to the default exchange, which reaches every queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub queue: String,
    pub exchange: String,
    /// Whether the subscriber declares `exchange` (its own service's); another service's is
    /// declared by its publisher and only bound to here.
    pub declares_exchange: bool,
    /// Topic patterns (`product.*`, `like.#`).
    pub bindings: Vec<String>,
    pub kind: QueueKind,
    /// Most unacknowledged deliveries held at once.
    pub prefetch: u16,
}

impl QueueSpec {
    /// The queue that receives what this one's consumer refuses, if it has one. The live
    /// queues of all web instances share one (`….web.gallery.dead-letter`): theirs come and go.
    pub fn dead_letter_queue(&self) -> Option<String> {
        match self.kind {
            QueueKind::Durable => Some(dead_letter_queue_of(&self.queue)),
            QueueKind::Live => {
                let shared = self
                    .queue
                    .rsplit_once('.')
                    .map_or(&*self.queue, |(base, _)| base);
                Some(dead_letter_queue_of(shared))
            }
            QueueKind::DeadLetter => None,
        }
    }

    /// The spec for reading this queue's dead letters.
    pub fn dead_letters(&self) -> QueueSpec {
        QueueSpec {
            queue: self
                .dead_letter_queue()
                .unwrap_or_else(|| dead_letter_queue_of(&self.queue)),
            exchange: String::new(),
            declares_exchange: false,
            bindings: Vec::new(),
            kind: QueueKind::DeadLetter,
            prefetch: self.prefetch,
        }
    }
}

fn dead_letter_queue_of(queue: &str) -> String {
    format!("{queue}.dead-letter")
}

/// Exchange and queue names for one deployment, all under one namespace so that tests and
/// deployments can share a broker without meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
}

impl Topology {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    /// Where the catalog publishes product events.
    pub fn catalog_exchange(&self) -> String {
        format!("{}.catalog", self.namespace)
    }

    /// Where the web service publishes like counts, gallery changes and resync requests.
    pub fn web_exchange(&self) -> String {
        format!("{}.web", self.namespace)
    }

    /// A queue name in this namespace.
    pub fn queue(&self, name: &str) -> String {
        format!("{}.{name}", self.namespace)
    }

    /// A durable queue of one service bound to the other service's `exchange`.
    fn durable(&self, name: &str, exchange: String, bindings: &[&str], prefetch: u16) -> QueueSpec {
        QueueSpec {
            queue: self.queue(name),
            exchange,
            declares_exchange: false,
            bindings: bindings.iter().map(|b| (*b).to_owned()).collect(),
            kind: QueueKind::Durable,
            prefetch,
        }
    }

    /// The like counts every web instance commits, for the catalog's copy of them. (Queues
    /// made by versions before v2 of the events are also bound to `like.*`, whose events no
    /// one publishes any more.)
    pub fn catalog_likes(&self, prefetch: u16) -> QueueSpec {
        self.durable(
            "catalog.likes",
            self.web_exchange(),
            &["likes.counted"],
            prefetch,
        )
    }

    /// Resync requests from web services (a fresh database, a new catalog epoch); one at a time
    /// is plenty.
    pub fn catalog_resync(&self) -> QueueSpec {
        self.durable(
            "catalog.resync",
            self.web_exchange(),
            &["resync.requested"],
            1,
        )
    }

    /// Product events and resync markers for the web read model, shared by the web instances on
    /// one database.
    pub fn web_read_model(&self, prefetch: u16) -> QueueSpec {
        self.durable(
            "web.read-model",
            self.catalog_exchange(),
            &["product.#", "resync.*"],
            prefetch,
        )
    }

    /// What the read model committed and every count the web database committed, for one web
    /// instance's in-memory gallery: a queue of its own, so every instance hears every change
    /// that any instance applied, gone when the instance goes.
    pub fn web_gallery(&self, prefetch: u16) -> QueueSpec {
        QueueSpec {
            queue: self.queue(&format!("web.gallery.{}", uuid::Uuid::new_v4().simple())),
            exchange: self.web_exchange(),
            declares_exchange: true,
            bindings: vec!["gallery.changed".to_owned(), "likes.counted".to_owned()],
            kind: QueueKind::Live,
            prefetch,
        }
    }
}

/// The bus a process uses: RabbitMQ when `AMQP_URL` is set, otherwise in-process.
#[derive(Clone)]
pub enum Bus {
    Amqp(amqp::AmqpBus),
    Memory(memory::MemoryBus),
}

impl Bus {
    /// Publishes `messages` to `exchange` and returns once the broker confirmed every one of
    /// them; on error some may have been delivered, so callers retry and consumers dedupe.
    pub async fn publish(
        &self,
        exchange: &str,
        messages: &[OutgoingMessage],
    ) -> Result<(), BusError> {
        match self {
            Bus::Amqp(bus) => bus.publish(exchange, messages).await,
            Bus::Memory(bus) => bus.publish(exchange, messages).await,
        }
    }

    /// Declares `exchange` (this service's own), so that the other service can bind to it
    /// before anything is published there.
    pub async fn declare_exchange(&self, exchange: &str) -> Result<(), BusError> {
        match self {
            Bus::Amqp(bus) => bus.declare_exchange(exchange).await,
            Bus::Memory(_) => Ok(()),
        }
    }

    /// Declares the queue (and its bindings and dead-letter queue) and starts reading it.
    pub async fn subscribe(&self, spec: &QueueSpec) -> Result<Subscription, BusError> {
        Ok(match self {
            Bus::Amqp(bus) => Subscription::Amqp(Box::new(bus.subscribe(spec).await?)),
            Bus::Memory(bus) => Subscription::Memory(bus.subscribe(spec)),
        })
    }

    /// Messages ready in `queue`, waiting for a consumer to take them.
    pub async fn waiting(&self, queue: &str) -> Result<u64, BusError> {
        match self {
            Bus::Amqp(bus) => bus.waiting(queue).await,
            Bus::Memory(bus) => Ok(bus.waiting(queue)),
        }
    }

    /// Moves every dead letter of the durable queue `spec` back into it, once its cause is
    /// fixed; returns how many. Handlers are idempotent, so a letter whose event has meanwhile
    /// been applied some other way changes nothing.
    pub async fn replay_dead_letters(&self, spec: &QueueSpec) -> Result<u64, BusError> {
        let (QueueKind::Durable, Some(dead_letters)) = (spec.kind, spec.dead_letter_queue()) else {
            return Ok(0);
        };
        match self {
            Bus::Amqp(bus) => bus.replay_dead_letters(&spec.queue, &dead_letters).await,
            Bus::Memory(bus) => bus
                .replay_dead_letters(&spec.queue, &dead_letters)
                .await
                .map_err(BusError::Store),
        }
    }

    /// Whether the broker is reachable now.
    pub async fn is_ready(&self) -> bool {
        match self {
            Bus::Amqp(bus) => bus.is_ready().await,
            Bus::Memory(_) => true,
        }
    }

    /// How many times a broker connection was rebuilt after a failure (0 in-process).
    pub fn reconnects(&self) -> u64 {
        match self {
            Bus::Amqp(bus) => bus.reconnects(),
            Bus::Memory(_) => 0,
        }
    }

    /// What this bus is, for the start-up log.
    pub fn description(&self) -> String {
        match self {
            Bus::Amqp(bus) => bus.description(),
            Bus::Memory(_) => "in-process bus (no AMQP_URL set)".to_owned(),
        }
    }
}

/// A stream of deliveries from one queue.
pub enum Subscription {
    // Boxed: the AMQP side holds a whole connection's worth of state.
    Amqp(Box<amqp::AmqpSubscription>),
    Memory(memory::MemorySubscription),
}

impl Subscription {
    /// The next delivery. Waits through broker outages (reconnecting as needed), so it only
    /// returns `None` once the bus is gone for good.
    pub async fn next(&mut self) -> Option<Delivery> {
        match self {
            Subscription::Amqp(sub) => sub.next().await,
            Subscription::Memory(sub) => sub.next().await,
        }
    }

    /// A delivery that is ready now, without waiting; `None` if there is none (or the
    /// connection is down: `next` deals with that).
    pub fn try_next(&mut self) -> Option<Delivery> {
        match self {
            Subscription::Amqp(sub) => sub.try_next(),
            Subscription::Memory(sub) => sub.try_next(),
        }
    }

    /// Grows each time the subscription declared its queue after `subscribe` returned (after a
    /// lost connection, or because the broker was unreachable at first). A `Live` queue is made
    /// anew then, so whatever was published before never reached it. The in-process bus never
    /// loses its queues: its count stays at 0.
    pub fn reopened(&self) -> tokio::sync::watch::Receiver<u64> {
        match self {
            Subscription::Amqp(sub) => sub.reopened(),
            Subscription::Memory(_) => tokio::sync::watch::channel(0).1,
        }
    }

    /// Tells `part` whether the subscription is consuming, waiting for the broker or refused
    /// by it, from now on. The in-process bus always consumes.
    pub fn report_to(&mut self, part: crate::parts::Part) {
        match self {
            Subscription::Amqp(sub) => sub.report_to(part),
            Subscription::Memory(_) => part.set(crate::parts::PartState::Running),
        }
    }
}

/// One message handed to a consumer. It must be settled with `ack`, `requeue` or
/// `dead_letter`; one dropped unsettled (a handler that panicked) is requeued.
pub struct Delivery {
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// Whether the broker delivered it before without an ack.
    pub redelivered: bool,
    pub message_id: Option<String>,
    /// String-valued headers.
    pub headers: BTreeMap<String, String>,
    settle: Settle,
}

enum Settle {
    Amqp(amqp::Settle),
    Memory(memory::Settle),
}

impl Delivery {
    /// Done with it: the broker forgets it.
    pub async fn ack(self) -> Result<(), BusError> {
        match self.settle {
            Settle::Amqp(settle) => settle.ack().await,
            Settle::Memory(settle) => {
                settle.ack();
                Ok(())
            }
        }
    }

    /// Acks every one of `deliveries`: on RabbitMQ one `multiple` ack per channel, for the
    /// highest delivery tag, which settles every earlier one still held on that channel. The
    /// consumer loop holds nothing else unsettled while it acks a batch.
    pub async fn ack_all(deliveries: Vec<Delivery>) -> Result<(), BusError> {
        let mut amqp = Vec::new();
        for delivery in deliveries {
            match delivery.settle {
                Settle::Amqp(settle) => amqp.push(settle),
                Settle::Memory(settle) => settle.ack(),
            }
        }
        amqp::Settle::ack_all(amqp).await
    }

    /// Not now: the broker delivers it again (to this or another consumer).
    pub async fn requeue(self) -> Result<(), BusError> {
        match self.settle {
            Settle::Amqp(settle) => settle.requeue().await,
            Settle::Memory(settle) => {
                settle.requeue();
                Ok(())
            }
        }
    }

    /// Never: moves it to the queue's dead-letter queue with `reason` in a header.
    pub async fn dead_letter(self, reason: &str) -> Result<(), BusError> {
        let Delivery {
            routing_key,
            payload,
            message_id,
            settle,
            ..
        } = self;
        match settle {
            Settle::Amqp(settle) => {
                settle
                    .dead_letter(&routing_key, payload, message_id, reason)
                    .await
            }
            Settle::Memory(settle) => {
                settle
                    .dead_letter(&routing_key, payload, message_id, reason)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_durable_queue_has_its_own_dead_letter_queue_and_live_queues_share_one() {
        let topology = Topology::new("ns");
        assert_eq!(
            topology.catalog_likes(10).dead_letter_queue().as_deref(),
            Some("ns.catalog.likes.dead-letter")
        );
        let (one, two) = (topology.web_gallery(10), topology.web_gallery(10));
        assert_ne!(one.queue, two.queue);
        assert_eq!(
            one.dead_letter_queue().as_deref(),
            Some("ns.web.gallery.dead-letter")
        );
        assert_eq!(one.dead_letters().queue, "ns.web.gallery.dead-letter");
        assert_eq!(one.dead_letter_queue(), two.dead_letter_queue());
        assert_eq!(one.dead_letters().dead_letter_queue(), None);
    }
}
