//! One contract, two buses: every test here runs against RabbitMQ and against the in-process bus.
//!
//! The in-process bus confirms a publish only once a durable queue's consumer has settled it, so
//! tests publish from a spawned task and check its result after settling.

use crate::helpers::{memory_bus, rabbitmq_bus, unique};
use serde::{Deserialize, Serialize};
use server::bus::consumer::{self, HandleError, Handler};
use server::bus::{
    Bus, BusError, Delivery, Envelope, Event, OutgoingMessage, QueueKind, QueueSpec, Subscription,
    DEAD_LETTER_REASON, ORIGINAL_ROUTING_KEY,
};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Long enough for anything that should happen.
const WAIT: Duration = Duration::from_secs(10);
/// How long we watch to be sure something does not happen.
const QUIET: Duration = Duration::from_millis(400);

fn spec(prefetch: u16) -> QueueSpec {
    QueueSpec {
        queue: unique("lg_test_queue"),
        exchange: unique("lg_test_exchange"),
        declares_exchange: true,
        bindings: vec!["product.*".to_owned()],
        kind: QueueKind::Durable,
        prefetch,
    }
}

fn message(routing_key: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage {
        routing_key: routing_key.to_owned(),
        message_id: uuid::Uuid::new_v4().to_string(),
        payload: body.as_bytes().to_vec(),
    }
}

fn publish_in_background(
    bus: &Bus,
    exchange: &str,
    messages: Vec<OutgoingMessage>,
) -> JoinHandle<Result<(), BusError>> {
    let bus = bus.clone();
    let exchange = exchange.to_owned();
    tokio::spawn(async move { bus.publish(&exchange, &messages).await })
}

async fn next(subscription: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("a delivery arrives in time")
        .expect("the subscription stays open")
}

async fn assert_quiet(subscription: &mut Subscription) {
    let extra = tokio::time::timeout(QUIET, subscription.next()).await;
    assert!(extra.is_err(), "no further delivery was expected");
}

async fn confirmed(publishing: JoinHandle<Result<(), BusError>>) {
    tokio::time::timeout(WAIT, publishing)
        .await
        .expect("the publish is confirmed in time")
        .expect("the publishing task does not panic")
        .expect("the broker confirms the publish");
}

async fn a_published_message_is_delivered_once_and_acked(bus: Bus) {
    let spec = spec(10);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    let sent = message("product.created", r#"{"n":1}"#);
    let publishing = publish_in_background(&bus, &spec.exchange, vec![sent.clone()]);

    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.routing_key, "product.created");
    assert_eq!(delivery.payload, sent.payload);
    assert_eq!(
        delivery.message_id.as_deref(),
        Some(sent.message_id.as_str())
    );
    assert!(!delivery.redelivered);
    delivery.ack().await.expect("ack");

    confirmed(publishing).await;
    assert_quiet(&mut subscription).await;
}

async fn a_message_held_by_a_crashed_handler_is_redelivered(bus: Bus) {
    let spec = spec(10);
    let mut first = bus.subscribe(&spec).await.expect("subscribe");
    let sent = message("product.updated", "{}");
    let publishing = publish_in_background(&bus, &spec.exchange, vec![sent.clone()]);

    // The handler takes the message and panics before acking: its task dies holding the
    // delivery and the whole subscription, as a crashed consumer process would.
    let crashed = tokio::spawn(async move {
        let delivery = next(&mut first).await;
        assert_eq!(delivery.routing_key, "product.updated");
        panic!("handler crashed");
    });
    assert!(crashed
        .await
        .expect_err("the handler task panics")
        .is_panic());

    let mut second = bus.subscribe(&spec).await.expect("subscribe again");
    let again = next(&mut second).await;
    assert_eq!(again.message_id.as_deref(), Some(sent.message_id.as_str()));
    assert!(again.redelivered, "the broker marks it as a redelivery");
    again.ack().await.expect("ack");
    confirmed(publishing).await;
    assert_quiet(&mut second).await;
}

async fn a_requeued_message_is_delivered_again(bus: Bus) {
    let spec = spec(10);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    let sent = message("product.deleted", "{}");
    let publishing = publish_in_background(&bus, &spec.exchange, vec![sent.clone()]);

    next(&mut subscription)
        .await
        .requeue()
        .await
        .expect("requeue");
    let again = next(&mut subscription).await;
    assert_eq!(again.message_id.as_deref(), Some(sent.message_id.as_str()));
    assert!(again.redelivered);
    again.ack().await.expect("ack");
    confirmed(publishing).await;
}

async fn a_message_nobody_is_bound_for_is_refused_not_lost(bus: Bus) {
    let spec = spec(10);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    let result = bus
        .publish(&spec.exchange, &[message("nobody.listens", "{}")])
        .await;
    assert!(
        matches!(result, Err(BusError::Unroutable(ref key)) if key == "nobody.listens"),
        "{result:?}"
    );
    assert_quiet(&mut subscription).await;
}

async fn prefetch_caps_unacknowledged_deliveries(bus: Bus) {
    let spec = spec(2);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    let sent: Vec<_> = (0..3)
        .map(|n| message("product.created", &n.to_string()))
        .collect();
    let publishing = publish_in_background(&bus, &spec.exchange, sent);

    let first = next(&mut subscription).await;
    let second = next(&mut subscription).await;
    assert_quiet(&mut subscription).await;
    first.ack().await.expect("ack");
    let third = next(&mut subscription).await;
    second.ack().await.expect("ack");
    third.ack().await.expect("ack");
    confirmed(publishing).await;
}

async fn a_dead_lettered_message_keeps_its_body_and_reason(bus: Bus) {
    let spec = spec(10);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    let mut dead_letters = bus
        .subscribe(&spec.dead_letters())
        .await
        .expect("subscribe dead letters");
    let sent = message("product.created", "not json");
    let publishing = publish_in_background(&bus, &spec.exchange, vec![sent.clone()]);

    next(&mut subscription)
        .await
        .dead_letter("bad input")
        .await
        .expect("dead-letter");
    confirmed(publishing).await;
    assert_quiet(&mut subscription).await;

    let dead = next(&mut dead_letters).await;
    assert_eq!(dead.payload, sent.payload);
    assert_eq!(dead.message_id.as_deref(), Some(sent.message_id.as_str()));
    assert_eq!(
        dead.headers.get(DEAD_LETTER_REASON).map(String::as_str),
        Some("bad input")
    );
    assert_eq!(
        dead.headers.get(ORIGINAL_ROUTING_KEY).map(String::as_str),
        Some("product.created")
    );
    dead.ack().await.expect("ack");
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum Sample {
    #[serde(rename = "product.created")]
    Created { n: i64 },
}

impl Event for Sample {
    fn routing_key(&self) -> &'static str {
        "product.created"
    }
}

/// Applies samples with a non-negative `n`; refuses the rest as poison.
struct Recorder(mpsc::UnboundedSender<i64>);

impl Handler for Recorder {
    type Event = Sample;
    const NAME: &'static str = "recorder";

    async fn handle(&self, envelope: Envelope<Sample>) -> Result<(), HandleError> {
        let Sample::Created { n } = envelope.event;
        if n < 0 {
            return Err(HandleError::Poison(format!("negative n: {n}")));
        }
        self.0.send(n).expect("the test is listening");
        Ok(())
    }
}

fn sample(n: i64) -> OutgoingMessage {
    let envelope = Envelope::new(Sample::Created { n });
    OutgoingMessage {
        routing_key: envelope.routing_key().to_owned(),
        message_id: envelope.id.to_string(),
        payload: envelope.to_json().into_bytes(),
    }
}

async fn the_consumer_loop_dead_letters_bad_messages_and_keeps_going(bus: Bus) {
    let spec = spec(10);
    let subscription = bus.subscribe(&spec).await.expect("subscribe");
    let mut dead_letters = bus
        .subscribe(&spec.dead_letters())
        .await
        .expect("subscribe dead letters");
    let (applied, mut applied_rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = server::shutdown::channel();
    let consuming = tokio::spawn(consumer::run(subscription, Recorder(applied), shutdown, 1));

    let unknown_type = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"product.exploded","data":{}}"#;
    let batch = vec![
        sample(1),
        message("product.created", "\u{0}\u{1} random bytes"),
        message("product.created", unknown_type),
        sample(-5),
        sample(2),
    ];
    let publishing = publish_in_background(&bus, &spec.exchange, batch);

    for expected in [1, 2] {
        let n = tokio::time::timeout(WAIT, applied_rx.recv())
            .await
            .expect("applied in time");
        assert_eq!(n, Some(expected));
    }
    confirmed(publishing).await;

    let mut reasons = Vec::new();
    for _ in 0..3 {
        let dead = next(&mut dead_letters).await;
        reasons.push(
            dead.headers
                .get(DEAD_LETTER_REASON)
                .cloned()
                .unwrap_or_default(),
        );
        dead.ack().await.expect("ack");
    }
    assert!(reasons[0].starts_with("undecodable message"), "{reasons:?}");
    assert!(reasons[1].starts_with("undecodable message"), "{reasons:?}");
    assert_eq!(reasons[2], "negative n: -5");

    stop.trigger();
    tokio::time::timeout(WAIT, consuming)
        .await
        .expect("the consumer stops on shutdown")
        .expect("the consumer does not panic");
}

/// Applies batches of samples all or nothing: a batch with a negative `n` is refused whole.
struct BatchRecorder(mpsc::UnboundedSender<Vec<i64>>);

impl Handler for BatchRecorder {
    type Event = Sample;
    const NAME: &'static str = "batch_recorder";
    const BATCH: usize = 100;

    async fn handle(&self, envelope: Envelope<Sample>) -> Result<(), HandleError> {
        self.handle_batch(vec![envelope]).await
    }

    async fn handle_batch(&self, batch: Vec<Envelope<Sample>>) -> Result<(), HandleError> {
        let ns: Vec<i64> = batch
            .into_iter()
            .map(|envelope| {
                let Sample::Created { n } = envelope.event;
                n
            })
            .collect();
        if let Some(n) = ns.iter().find(|n| **n < 0) {
            return Err(HandleError::Poison(format!("negative n: {n}")));
        }
        self.0.send(ns).expect("the test is listening");
        Ok(())
    }
}

async fn a_batching_consumer_applies_each_message_once_and_dead_letters_only_the_poison(bus: Bus) {
    let spec = spec(50);
    let subscription = bus.subscribe(&spec).await.expect("subscribe");
    let mut dead_letters = bus
        .subscribe(&spec.dead_letters())
        .await
        .expect("subscribe dead letters");
    let sent: Vec<i64> = (0..200).map(|n| if n == 77 { -1 } else { n }).collect();
    let mut publishing = Some(publish_in_background(
        &bus,
        &spec.exchange,
        sent.iter().map(|n| sample(*n)).collect(),
    ));
    if matches!(bus, Bus::Amqp(_)) {
        // RabbitMQ confirms once queued: let the backlog build before the consumer starts.
        confirmed(publishing.take().expect("publishing")).await;
    }
    let (applied, mut applied_rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = server::shutdown::channel();
    let consuming = tokio::spawn(consumer::run(
        subscription,
        BatchRecorder(applied),
        shutdown,
        1,
    ));

    let mut batches = Vec::new();
    let mut seen: Vec<i64> = Vec::new();
    while seen.len() < 199 {
        let batch = tokio::time::timeout(WAIT, applied_rx.recv())
            .await
            .expect("applied in time")
            .expect("the consumer runs");
        seen.extend(&batch);
        batches.push(batch.len());
    }
    if let Some(publishing) = publishing {
        // The in-process bus confirms once the consumer settled every message.
        confirmed(publishing).await;
    }
    seen.sort_unstable();
    let mut want: Vec<i64> = sent.iter().copied().filter(|n| *n >= 0).collect();
    want.sort_unstable();
    assert_eq!(seen, want, "every good message applied exactly once");
    assert!(
        batches.len() < 199,
        "messages that were ready went in batches: {batches:?}"
    );
    let dead = next(&mut dead_letters).await;
    assert_eq!(
        dead.headers.get(DEAD_LETTER_REASON).map(String::as_str),
        Some("negative n: -1")
    );
    dead.ack().await.expect("ack");
    assert_quiet(&mut dead_letters).await;
    let extra = tokio::time::timeout(QUIET, applied_rx.recv()).await;
    assert!(extra.is_err(), "nothing applied twice: {extra:?}");

    stop.trigger();
    tokio::time::timeout(WAIT, consuming)
        .await
        .expect("the consumer stops on shutdown")
        .expect("the consumer does not panic");
}

/// Runs each contract test against both buses.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod rabbitmq {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                crate::helpers::init_logs();
                super::$name(super::rabbitmq_bus()).await
            })*
        }
        mod in_process {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                crate::helpers::init_logs();
                super::$name(super::memory_bus()).await
            })*
        }
    };
}

/// `waiting` counts the messages ready in a queue and not yet handed to its consumer: the
/// consumer's lag, as `/metrics` reports it.
async fn waiting_counts_the_messages_ready_in_a_queue(bus: Bus) {
    let spec = spec(1);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribed");
    let messages = (0..7).map(|n| message("product.created", &n.to_string()));
    let published = publish_in_background(&bus, &spec.exchange, messages.collect());
    // Prefetch 1: the consumer holds one message; six wait.
    let mut held = vec![next(&mut subscription).await];
    let counted = async {
        while bus.waiting(&spec.queue).await.expect("asked") != 6 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, counted)
        .await
        .expect("six messages counted as waiting");
    for _ in 0..6 {
        held.pop().expect("held").ack().await.expect("acked");
        held.push(next(&mut subscription).await);
    }
    held.pop().expect("held").ack().await.expect("acked");
    published.await.expect("joined").expect("confirmed");
    assert_eq!(bus.waiting(&spec.queue).await.expect("asked"), 0);
}

/// Dead letters replayed go back to their queue, with their body and message id, without the
/// reason; the dead-letter queue is left empty.
async fn replayed_dead_letters_go_back_to_their_queue(bus: Bus) {
    let spec = spec(10);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    let sent = message("product.created", "refused once");
    let publishing = publish_in_background(&bus, &spec.exchange, vec![sent.clone()]);
    next(&mut subscription)
        .await
        .dead_letter("cause fixed since")
        .await
        .expect("dead-letter");
    confirmed(publishing).await;
    let counted = async {
        while bus
            .waiting(&spec.dead_letters().queue)
            .await
            .expect("asked")
            != 1
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, counted)
        .await
        .expect("one dead letter counted");

    assert_eq!(bus.replay_dead_letters(&spec).await.expect("replayed"), 1);
    let again = next(&mut subscription).await;
    assert_eq!(again.payload, sent.payload);
    assert_eq!(again.message_id.as_deref(), Some(sent.message_id.as_str()));
    assert!(!again.headers.contains_key(DEAD_LETTER_REASON));
    again.ack().await.expect("ack");
    assert_eq!(
        bus.waiting(&spec.dead_letters().queue)
            .await
            .expect("asked"),
        0
    );
    assert_eq!(bus.replay_dead_letters(&spec).await.expect("replayed"), 0);
}

contract!(
    replayed_dead_letters_go_back_to_their_queue,
    waiting_counts_the_messages_ready_in_a_queue,
    a_published_message_is_delivered_once_and_acked,
    a_message_held_by_a_crashed_handler_is_redelivered,
    a_requeued_message_is_delivered_again,
    a_message_nobody_is_bound_for_is_refused_not_lost,
    prefetch_caps_unacknowledged_deliveries,
    a_dead_lettered_message_keeps_its_body_and_reason,
    the_consumer_loop_dead_letters_bad_messages_and_keeps_going,
    a_batching_consumer_applies_each_message_once_and_dead_letters_only_the_poison,
);

/// In-process only (RabbitMQ confirms a publish once the queue has it, so its relays never
/// retry because a consumer is slow): a publish retried after its confirm timed out, while the
/// first copy still waits for a stalled consumer, queues nothing more, however often it is
/// retried, and is confirmed with that copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_publish_retried_while_its_copy_waits_is_queued_once() {
    let bus = Bus::Memory(server::bus::memory::MemoryBus::new(Duration::from_secs(2)));
    let spec = spec(1);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    let sent = message("product.created", "stalled");
    for _ in 0..2 {
        let retried = bus
            .publish(&spec.exchange, std::slice::from_ref(&sent))
            .await;
        assert!(matches!(retried, Err(BusError::Timeout(_))), "{retried:?}");
    }
    assert_eq!(bus.waiting(&spec.queue).await.expect("asked"), 1);

    // One more retry, polled once so that it waits on the copy before the consumer settles it.
    let mut last_retry = Box::pin(bus.publish(&spec.exchange, std::slice::from_ref(&sent)));
    let waiting = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(last_retry.as_mut().poll(cx).is_pending())
    })
    .await;
    assert!(waiting, "the retry waits for the consumer");
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.payload, sent.payload);
    delivery.ack().await.expect("ack");
    last_retry
        .await
        .expect("the retry is confirmed with the copy the consumer settled");
    assert_quiet(&mut subscription).await;
    assert_eq!(bus.waiting(&spec.queue).await.expect("asked"), 0);
}

/// In-process with its dead letters kept in a database, as the embedded default runs: a dead
/// letter outlives the bus (a restart of the process) as it would in RabbitMQ's durable
/// dead-letter queue, can be read or replayed from the next bus, and leaves the store once
/// replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_dead_letters_outlive_a_restart_in_the_database() {
    crate::helpers::init_logs();
    let dir = crate::helpers::SqliteDir::new();
    let url = crate::helpers::fresh_database(crate::helpers::Engine::Sqlite, &dir).await;
    let db = server::db::Database::connect(
        &server::config::Secret::new(url),
        server::db::Service::Catalog,
        2,
    )
    .await
    .expect("the database opens");
    let spec = spec(10);
    let dead_letters = spec.dead_letters().queue;
    let restarted = || async {
        let memory = server::bus::memory::MemoryBus::new(WAIT);
        memory
            .keep_dead_letters_in(&dead_letters, db.clone())
            .await
            .expect("the kept dead letters load");
        Bus::Memory(memory)
    };

    let sent = message("product.created", "refused before the restart");
    {
        let bus = restarted().await;
        let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
        let publishing = publish_in_background(&bus, &spec.exchange, vec![sent.clone()]);
        next(&mut subscription)
            .await
            .dead_letter("kept across the restart")
            .await
            .expect("dead-letter");
        confirmed(publishing).await;
    }

    let bus = restarted().await;
    assert_eq!(bus.waiting(&dead_letters).await.expect("asked"), 1);
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");
    assert_eq!(bus.replay_dead_letters(&spec).await.expect("replayed"), 1);
    let again = next(&mut subscription).await;
    assert_eq!(again.payload, sent.payload);
    assert_eq!(again.message_id.as_deref(), Some(sent.message_id.as_str()));
    again.ack().await.expect("ack");

    let after = restarted().await;
    assert_eq!(
        after.waiting(&dead_letters).await.expect("asked"),
        0,
        "a replayed letter is gone from the store"
    );
}
