//! A database pool that is exhausted answers at once: a request that cannot get a connection
//! within `DATABASE_ACQUIRE_TIMEOUT_MS` gets a 503 JSON error instead of queueing without bound.

use crate::helpers::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_503_quickly_and_recovers() {
    let app = spawn_app_with(TestOptions {
        engine: Engine::Postgres,
        extra_args: vec![
            "--database-pool-size=2".to_owned(),
            "--database-acquire-timeout=300".to_owned(),
        ],
        ..TestOptions::default()
    })
    .await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.products_response("").await.status(), 200);

    // Another client takes the visitors' likes table: every page of the gallery, which reads the
    // visitor's likes, now waits inside the database, holding a pooled connection.
    // Two connections: one holds the lock, the other watches the waiting sessions.
    let holder = PgPoolOptions::new()
        .max_connections(2)
        .connect(&app.web_database)
        .await
        .expect("the web database");
    let mut lock = holder.begin().await.expect("a transaction");
    lock.execute("lock table visitor_like in access exclusive mode")
        .await
        .expect("locked");
    let stuck: Vec<_> = (0..2)
        .map(|_| {
            let visitor = visitor.clone();
            tokio::spawn(async move { visitor.products_response("").await.status() })
        })
        .collect();
    let name = database_name(&app.web_database).to_owned();
    wait_until("both pooled connections wait for the lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'",
        )
        .bind(&name)
        .fetch_one(&holder)
        .await
        .expect("pg_stat_activity");
        waiting >= 2
    })
    .await;

    // The pool is exhausted: the next request is turned away at once, in JSON.
    let started = Instant::now();
    let refused = visitor.products_response("").await;
    let waited = started.elapsed();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("a JSON error");
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(waited < Duration::from_secs(2), "answered after {waited:?}");

    // Once the table is free, the waiting requests are answered and the pool serves again.
    lock.rollback().await.expect("released");
    for request in stuck {
        assert_eq!(request.await.expect("joined"), 200);
    }
    assert_eq!(visitor.products_response("").await.status(), 200);
}
