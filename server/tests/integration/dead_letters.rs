//! Errors that retrying cannot fix (a constraint the data breaks, a read-only database) are told
//! from passing ones: the event is tried a few times, then dead-lettered with its reason, and the
//! queue moves on; a passing error is retried in place until it passes.

use crate::helpers::{
    publish_events, rabbitmq_bus, spawn_app_with, wait_until, Engine, TestOptions,
};
use server::bus::{Envelope, Topology, DEAD_LETTER_REASON};
use server::events::{LikeChange, LikeEvent};
use std::time::Duration;

const GOOD: [&str; 2] = [
    "51111111-1111-4111-8111-111111111111",
    "52222222-2222-4222-8222-222222222222",
];
/// A visitor whose like the catalog's database refuses for good.
const REFUSED: &str = "5fffffff-ffff-4fff-8fff-ffffffffffff";

fn like(product: i64, visitor: &str) -> Envelope<LikeEvent> {
    Envelope::new(LikeEvent::Added(LikeChange {
        product_id: app::domain::ProductId::from_stored(product),
        visitor_id: app::domain::VisitorId::parse(visitor).unwrap(),
        seq: 1,
        epoch: 0,
    }))
}

/// Runs `sql` on the app's catalog database.
async fn alter_catalog(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("the test reaches the catalog's database");
    sqlx::query(sql)
        .execute(&pool)
        .await
        .expect("the catalog's database takes the change");
    pool.close().await;
}

/// A like the catalog's database refuses for good sits between two good ones: the good ones are
/// counted, the refused one reaches the dead-letter queue with the database's reason.
async fn a_lasting_error_is_dead_lettered_and_the_queue_moves_on(engine: Engine, refusal: &str) {
    let app = spawn_app_with(TestOptions {
        engine,
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Tarn").await;
    alter_catalog(
        &app.catalog_database,
        &refusal.replace("{visitor}", REFUSED),
    )
    .await;
    let dead_letters = Topology::new(app.namespace.as_str())
        .catalog_likes(10)
        .dead_letters();
    let mut dead = rabbitmq_bus()
        .subscribe(&dead_letters)
        .await
        .expect("subscribe");

    publish_events(
        &format!("{}.web", app.namespace),
        &[like(id, GOOD[0]), like(id, REFUSED), like(id, GOOD[1])],
    )
    .await;
    wait_until("both good likes counted", || async {
        app.catalog_likes().await.get(&id) == Some(&2)
    })
    .await;
    let refused = tokio::time::timeout(Duration::from_secs(30), dead.next())
        .await
        .expect("dead-lettered in time")
        .expect("subscription open");
    let reason = &refused.headers[DEAD_LETTER_REASON];
    assert!(
        reason.starts_with("lasting database error after 5 tries"),
        "{reason}"
    );
    let envelope: serde_json::Value = serde_json::from_slice(&refused.payload).unwrap();
    assert_eq!(envelope["data"]["visitor_id"], REFUSED);
    refused.ack().await.expect("ack");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_violation_on_postgresql_is_dead_lettered_and_the_queue_moves_on() {
    a_lasting_error_is_dead_lettered_and_the_queue_moves_on(
        Engine::Postgres,
        "alter table product_like add constraint refused check (visitor_id <> '{visitor}')",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_error_on_sqlite_is_dead_lettered_and_the_queue_moves_on() {
    a_lasting_error_is_dead_lettered_and_the_queue_moves_on(
        Engine::Sqlite,
        "create trigger refused before insert on product_like when new.visitor_id = '{visitor}' \
         begin select raise(abort, 'refused'); end",
    )
    .await;
}
