//! `/healthz` and `/readyz` on every role, on both database engines.

use crate::helpers::{
    amqp_url, spawn_app, spawn_app_with, unique, wait_until, Engine, TestOptions,
};
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
async fn an_instance_stays_ready_while_the_broker_is_unreachable_and_says_so() {
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
    // Pages come from memory and changes wait in the outbox: no reason to leave the balancer.
    let ready = app.readyz().await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["bus"], "unavailable");
    assert_eq!(body["checks"]["web_database"], "ok");
    for consumer in ["likes", "resync", "read_model", "gallery"] {
        assert_eq!(
            body["checks"][format!("consumer:{consumer}")],
            "waiting for the broker"
        );
    }
    for relay in ["catalog", "web"] {
        assert_eq!(body["checks"][format!("relay:{relay}")], "running");
    }
    app.stop().await;
}

/// Declares durable classic queue `name` by hand, as an operator (or an earlier version) would;
/// the connection and channel stay open for the test's later steps.
async fn declare_classic_queue(name: &str) -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .expect("the broker is up");
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("a classic queue");
    (connection, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_the_broker_refuses_takes_the_instance_out_until_it_is_fixed() {
    // Someone declared the catalog's like queue by hand, as a classic queue: the catalog's
    // declaration (a quorum queue) is refused with PRECONDITION_FAILED.
    let (namespace, token) = (unique("lg_test"), unique("token"));
    let queue = format!("{namespace}.catalog.likes");
    let (connection, channel) = declare_classic_queue(&queue).await;
    let app = spawn_app_with(TestOptions {
        join: Some((namespace, token)),
        ..TestOptions::default()
    })
    .await;
    let ready = app.readyz().await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    let likes = body["checks"]["consumer:likes"].as_str().unwrap();
    assert!(
        likes.starts_with("refused:") && likes.contains("PRECONDITION_FAILED"),
        "{likes}"
    );
    assert_eq!(body["checks"]["consumer:read_model"], "running");

    // The operator removes the stray queue: the consumer declares its own and the instance is
    // ready again, by itself.
    channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await
        .expect("deleted");
    wait_until(
        "the instance ready again, its like consumer running",
        || async {
            let ready = app.readyz().await;
            let status = ready.status();
            let body: Value = ready.json().await.unwrap_or_default();
            status == 200 && body["checks"]["consumer:likes"] == "running"
        },
    )
    .await;
    let id = app.create_visible_product("Cairn").await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(id).await.status(), 200);
    wait_until("the like counted", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_dead_letter_queue_left_by_an_earlier_version_is_used_as_it_is() {
    // Dead-letter queues were classic queues before they became quorum queues: a broker that
    // still holds one refuses the new declaration, and the instance must start anyway.
    let (namespace, token) = (unique("lg_test"), unique("token"));
    let dead_letters = format!("{namespace}.catalog.likes.dead-letter");
    let (connection, _channel) = declare_classic_queue(&dead_letters).await;
    let app = spawn_app_with(TestOptions {
        join: Some((namespace.clone(), token)),
        extra_args: vec!["--dead-letter-queues=quorum".to_owned()],
        ..TestOptions::default()
    })
    .await;
    wait_until("the instance ready, its like consumer running", || async {
        let ready = app.readyz().await;
        let status = ready.status();
        let body: Value = ready.json().await.unwrap_or_default();
        status == 200 && body["checks"]["consumer:likes"] == "running"
    })
    .await;
    let id = app.create_visible_product("Tarn").await;
    assert_eq!(app.new_visitor().await.like(id).await.status(), 200);
    wait_until("the like counted", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;

    // The old queue is kept as it was; the others of the namespace are quorum queues.
    let listing = crate::helpers::rabbitmqctl(&[
        "list_queues",
        "-p",
        &crate::helpers::vhost(),
        "--no-table-headers",
        "name",
        "type",
    ])
    .await;
    let types: std::collections::BTreeMap<&str, &str> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(name, _)| name.starts_with(&namespace))
        .collect();
    assert_eq!(types[dead_letters.as_str()], "classic", "{types:?}");
    let resync_dead_letters = format!("{namespace}.catalog.resync.dead-letter");
    assert_eq!(types[resync_dead_letters.as_str()], "quorum", "{types:?}");
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}
