//! The outbox relay publishes what a transaction stored, with confirms, and empties the outbox
//! only after the broker took it; a committer's own publish goes out at once and the relay takes
//! its rows only if they are left past the grace period: on PostgreSQL + RabbitMQ and on
//! SQLite + the in-process bus.

use crate::helpers::{
    fresh_database, init_logs, memory_bus, rabbitmq_bus, unique, Engine, SqliteDir,
};
use app::domain::{ProductId, VisitorId};
use server::bus::direct::{Publisher, GRACE};
use server::bus::outbox::{self, Relay, RelayWaker};
use server::bus::{Bus, Envelope, QueueKind, QueueSpec};
use server::config::Secret;
use server::db::{Database, Service};
use server::events::{LikeCount, LikeCounts, LikesEvent};
use server::live::LiveHub;
use server::web::{Gallery, Likes};
use std::time::Duration;

fn liked(product: i64) -> LikesEvent {
    counted(&[(product, 1, 1)])
}

/// Shuts down and waits for `tasks` to end, failing if one does not within 10 s or panics.
async fn stops<const N: usize>(
    stop: server::shutdown::ShutdownTrigger,
    tasks: [tokio::task::JoinHandle<()>; N],
) {
    stop.trigger();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops on shutdown")
            .expect("does not panic");
    }
}

/// Waits until `db`'s outbox holds nothing, failing with `what` after 10 s.
async fn outbox_empties(db: &Database, what: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while outbox::backlog(db).await.expect("count") != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect(what);
}

async fn stored_events_are_published_in_order_and_cleared(engine: Engine, bus: Bus) {
    init_logs();
    let dir = SqliteDir::new();
    let url = fresh_database(engine, &dir).await;
    let db = Database::connect(&Secret::new(url), Service::Web, 4)
        .await
        .expect("database opens");
    let spec = QueueSpec {
        queue: unique("lg_test_queue"),
        exchange: unique("lg_test_exchange"),
        declares_exchange: true,
        bindings: vec!["likes.*".to_owned()],
        kind: QueueKind::Durable,
        prefetch: 10,
    };
    let mut subscription = bus.subscribe(&spec).await.expect("subscribe");

    let envelopes: Vec<_> = (1..=3).map(|id| Envelope::new(liked(id))).collect();
    let mut tx = db.pool().begin().await.expect("begin");
    for envelope in &envelopes {
        outbox::enqueue(&mut tx, envelope).await.expect("enqueue");
    }
    tx.commit().await.expect("commit");
    assert_eq!(outbox::backlog(&db).await.expect("count"), 3);

    let waker = RelayWaker::default();
    let (stop, shutdown) = server::shutdown::channel();
    let relay = Relay {
        db: db.clone(),
        bus: bus.clone(),
        exchange: spec.exchange.clone(),
        waker: waker.clone(),
    };
    let relaying = tokio::spawn(relay.run(shutdown));
    waker.wake();

    for sent in &envelopes {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("published in time")
            .expect("subscription open");
        let received: Envelope<LikesEvent> =
            serde_json::from_slice(&delivery.payload).expect("an envelope");
        assert_eq!(&received, sent);
        assert_eq!(delivery.message_id, Some(sent.id.to_string()));
        delivery.ack().await.expect("ack");
    }

    outbox_empties(&db, "the outbox empties once the broker confirmed").await;

    stop.trigger();
    tokio::time::timeout(Duration::from_secs(10), relaying)
        .await
        .expect("the relay stops on shutdown")
        .expect("the relay does not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_from_postgres_to_rabbitmq() {
    stored_events_are_published_in_order_and_cleared(Engine::Postgres, rabbitmq_bus()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_from_sqlite_to_the_in_process_bus() {
    stored_events_are_published_in_order_and_cleared(Engine::Sqlite, memory_bus()).await;
}

/// A database, a queue bound to a fresh exchange, and a relay of the database's outbox to it
/// that runs until the returned trigger fires.
async fn relayed(
    engine: Engine,
    bus: &Bus,
    dir: &SqliteDir,
) -> (
    Database,
    QueueSpec,
    server::bus::Subscription,
    server::shutdown::ShutdownTrigger,
    server::shutdown::Shutdown,
    tokio::task::JoinHandle<()>,
) {
    init_logs();
    let url = fresh_database(engine, dir).await;
    let db = Database::connect(&Secret::new(url), Service::Web, 4)
        .await
        .expect("database opens");
    let spec = QueueSpec {
        queue: unique("lg_test_queue"),
        exchange: unique("lg_test_exchange"),
        declares_exchange: true,
        bindings: vec!["likes.*".to_owned()],
        kind: QueueKind::Durable,
        prefetch: 10,
    };
    let subscription = bus.subscribe(&spec).await.expect("subscribe");
    let (stop, shutdown) = server::shutdown::channel();
    let waker = RelayWaker::default();
    let relay = Relay {
        db: db.clone(),
        bus: bus.clone(),
        exchange: spec.exchange.clone(),
        waker: waker.clone(),
    };
    let relaying = tokio::spawn(relay.run(shutdown.clone()));
    waker.wake();
    (db, spec, subscription, stop, shutdown, relaying)
}

/// Commits `envelopes` to the outbox for a direct publish; what to hand to the publisher.
async fn commit_direct(
    db: &Database,
    envelopes: &[Envelope<LikesEvent>],
) -> outbox::Pending<LikesEvent> {
    let mut tx = db.begin_write().await.expect("begin");
    let pending = outbox::enqueue_direct(&mut tx, envelopes.to_vec())
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    pending
}

/// Receives `sent`, in order, acking each; returns when the last arrived (ms since the epoch).
async fn receive(
    subscription: &mut server::bus::Subscription,
    sent: &[Envelope<LikesEvent>],
) -> i64 {
    for sent in sent {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("published in time")
            .expect("subscription open");
        let received: Envelope<LikesEvent> =
            serde_json::from_slice(&delivery.payload).expect("an envelope");
        assert_eq!(&received, sent);
        delivery.ack().await.expect("ack");
    }
    server::db::now_millis()
}

/// Receives one event, acking it: it must be `expected` (under any envelope id).
async fn receive_event(subscription: &mut server::bus::Subscription, expected: &LikesEvent) {
    let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("published in time")
        .expect("subscription open");
    let received: Envelope<LikesEvent> =
        serde_json::from_slice(&delivery.payload).expect("an envelope");
    assert_eq!(&received.event, expected);
    delivery.ack().await.expect("ack");
}

/// `counts` of `(product, likes, version)` as one event.
fn counted(counts: &[(i64, i64, i64)]) -> LikesEvent {
    LikesEvent::Counted(LikeCounts {
        counted_at_ms: 1_764_633_600_000,
        counts: counts
            .iter()
            .map(|&(id, likes, version)| LikeCount {
                id: ProductId::from_stored(id),
                likes,
                version,
                epoch: 0,
            })
            .collect(),
    })
}

async fn a_direct_publish_goes_out_before_any_relay_would_and_its_rows_go(
    engine: Engine,
    bus: Bus,
) {
    let dir = SqliteDir::new();
    let (db, spec, mut subscription, stop, shutdown, relaying) = relayed(engine, &bus, &dir).await;
    let (publisher, publishing) =
        Publisher::new(db.clone(), bus.clone(), spec.exchange.clone(), shutdown);
    let publishing = tokio::spawn(publishing);

    // One transaction's three events go out as the one event that says the same.
    let envelopes: Vec<_> = (1..=3).map(|id| Envelope::new(liked(id))).collect();
    let committed_ms = server::db::now_millis();
    publisher.publish(commit_direct(&db, &envelopes).await);
    receive_event(
        &mut subscription,
        &counted(&[(1, 1, 1), (2, 1, 1), (3, 1, 1)]),
    )
    .await;
    let received_ms = server::db::now_millis();
    assert!(
        received_ms < committed_ms + GRACE.as_millis() as i64,
        "the committer's publish, not the relay's: {} ms after the commit",
        received_ms - committed_ms
    );
    // No transaction follows here: the publisher deletes the confirmed rows itself, and a
    // relay has nothing left to publish a second time.
    outbox_empties(&db, "the confirmed rows are deleted").await;

    // The like writer's next batch takes the confirmed rows' delete along in its one statement
    // (a publisher whose task never runs, so no delete of its own can come first): what is left
    // is the batch's own event.
    let (quiet, _never_run) = Publisher::<LikesEvent>::new(
        db.clone(),
        bus.clone(),
        spec.exchange.clone(),
        server::shutdown::channel().1,
    );
    let pending = commit_direct(&db, &[Envelope::new(liked(4))]).await;
    quiet.give_back(pending.ids);
    sqlx::query(
        "insert into product (id, title, image, version) \
         values (1, 'A product', 'https://images.example.com/1.jpg', 1)",
    )
    .execute(db.writer())
    .await
    .expect("a product to like");
    let likes = Likes::start(db.clone(), quiet, Gallery::new(LiveHub::new(1, 16)));
    let visitor = VisitorId::parse("6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b").expect("an id");
    let state = likes
        .like(&visitor, ProductId::from_stored(1))
        .await
        .expect("like");
    assert_eq!((state.likes, state.liked), (1, true));
    assert_eq!(
        outbox::backlog(&db).await.expect("count"),
        1,
        "the confirmed row went with the batch's writes"
    );

    stops(stop, [relaying, publishing]).await;
}

async fn transactions_committed_within_a_frame_go_out_as_one_event_of_the_newest_counts(
    engine: Engine,
    bus: Bus,
) {
    let dir = SqliteDir::new();
    let (db, spec, mut subscription, stop, shutdown, relaying) = relayed(engine, &bus, &dir).await;
    let (publisher, publishing) =
        Publisher::new(db.clone(), bus.clone(), spec.exchange.clone(), shutdown);
    // Three transactions wait for the publisher before its task runs, as under load three
    // commits land while a publish is under way: product 1 changes twice.
    for counts in [[(1, 1, 1)], [(2, 4, 3)], [(1, 2, 2)]] {
        let pending = commit_direct(&db, &[Envelope::new(counted(&counts))]).await;
        publisher.publish(pending);
    }
    let publishing = tokio::spawn(publishing);
    receive_event(&mut subscription, &counted(&[(1, 2, 2), (2, 4, 3)])).await;
    // The next message is the next transaction's: the three went out as that one alone.
    publisher.publish(commit_direct(&db, &[Envelope::new(counted(&[(3, 1, 5)]))]).await);
    receive_event(&mut subscription, &counted(&[(3, 1, 5)])).await;
    outbox_empties(&db, "every merged transaction's rows are deleted").await;

    stops(stop, [relaying, publishing]).await;
}

async fn rows_never_published_by_their_committer_go_out_through_the_relay_after_the_grace(
    engine: Engine,
    bus: Bus,
) {
    let dir = SqliteDir::new();
    let (db, _spec, mut subscription, stop, _shutdown, relaying) =
        relayed(engine, &bus, &dir).await;
    // Committed, but the committer died before its publish: only the relay can send them.
    let envelopes: Vec<_> = (1..=2).map(|id| Envelope::new(liked(id))).collect();
    let committed_ms = server::db::now_millis();
    commit_direct(&db, &envelopes).await;
    let received_ms = receive(&mut subscription, &envelopes).await;
    assert!(
        received_ms >= committed_ms + GRACE.as_millis() as i64,
        "the relay leaves a committer's rows alone for the grace period: {} ms",
        received_ms - committed_ms
    );
    outbox_empties(&db, "the relay deletes what it published").await;
    stops(stop, [relaying]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_publish_from_postgres_goes_out_at_once_and_its_rows_are_deleted() {
    a_direct_publish_goes_out_before_any_relay_would_and_its_rows_go(
        Engine::Postgres,
        rabbitmq_bus(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_publish_from_sqlite_goes_out_at_once_and_its_rows_are_deleted() {
    a_direct_publish_goes_out_before_any_relay_would_and_its_rows_go(Engine::Sqlite, memory_bus())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_transactions_committed_within_a_frame_go_out_as_one_event() {
    transactions_committed_within_a_frame_go_out_as_one_event_of_the_newest_counts(
        Engine::Postgres,
        rabbitmq_bus(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_transactions_committed_within_a_frame_go_out_as_one_event() {
    transactions_committed_within_a_frame_go_out_as_one_event_of_the_newest_counts(
        Engine::Sqlite,
        memory_bus(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_left_by_a_dead_committer_go_out_through_the_relay_after_the_grace() {
    rows_never_published_by_their_committer_go_out_through_the_relay_after_the_grace(
        Engine::Postgres,
        rabbitmq_bus(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rows_left_by_a_dead_committer_go_out_through_the_relay_after_the_grace() {
    rows_never_published_by_their_committer_go_out_through_the_relay_after_the_grace(
        Engine::Sqlite,
        memory_bus(),
    )
    .await;
}
