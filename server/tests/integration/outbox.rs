//! The outbox relay publishes what a transaction stored, with confirms, and empties the outbox
//! only after the broker took it: on PostgreSQL + RabbitMQ and on SQLite + the in-process bus.

use crate::helpers::{
    fresh_database, init_logs, memory_bus, rabbitmq_bus, unique, Engine, SqliteDir,
};
use app::domain::ProductId;
use server::bus::outbox::{self, Relay, RelayWaker};
use server::bus::{Bus, Envelope, QueueKind, QueueSpec};
use server::config::Secret;
use server::db::{Database, Service};
use server::events::{LikeCount, LikeCounts, LikesEvent};
use std::time::Duration;

fn liked(product: i64) -> LikesEvent {
    LikesEvent::Counted(LikeCounts {
        counted_at_ms: 1_764_633_600_000,
        counts: vec![LikeCount {
            id: ProductId::from_stored(product),
            likes: 1,
            version: 1,
            epoch: 0,
        }],
    })
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

    tokio::time::timeout(Duration::from_secs(10), async {
        while outbox::backlog(&db).await.expect("count") != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the outbox empties once the broker confirmed");

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
