//! `/healthz` and `/readyz` on every role, on both database engines.

use crate::helpers::{spawn_app, spawn_app_with, Engine, TestOptions};
use serde_json::Value;

async fn probes_answer_ok_when_everything_is_up(app: crate::helpers::TestApp) {
    let health = app.healthz().await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.readyz().await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["bus"], "ok");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_roles_are_ready_on_postgres_and_rabbitmq() {
    probes_answer_ok_when_everything_is_up(spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_roles_are_ready_on_sqlite_and_the_in_process_bus() {
    probes_answer_ok_when_everything_is_up(spawn_app_with(TestOptions::embedded()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_role_alone_checks_only_its_database() {
    let app = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let body: Value = app.readyz().await.json().await.unwrap();
    assert_eq!(body["checks"]["catalog_database"], "ok");
    assert!(body["checks"].get("web_database").is_none());
    assert_eq!(
        app.get("/").await.status(),
        404,
        "the catalog serves no pages"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_broker_is_unreachable() {
    let app = spawn_app_with(TestOptions {
        engine: Engine::Sqlite,
        // Nothing listens on port 1.
        amqp_url: Some("amqp://guest:guest@127.0.0.1:1/%2f".to_owned()),
        ..TestOptions::default()
    })
    .await;
    assert_eq!(
        app.healthz().await.status(),
        200,
        "the process itself is up"
    );
    let ready = app.readyz().await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["bus"], "unavailable");
    assert_eq!(body["checks"]["web_database"], "ok");
    app.stop().await;
}
