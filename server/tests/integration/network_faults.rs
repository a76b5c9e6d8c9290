//! Faults of the network between the services and the broker or a database, made by a fault
//! proxy: latency with jitter during a storm, a broker connection left half-open that only the
//! heartbeat can notice, the catalog cut off from the broker, a web instance cut off from its
//! database. Each ends exact.

use crate::fault_proxy::FaultProxy;
use crate::helpers::*;
use std::time::Duration;

const RABBITMQ: &str = "127.0.0.1:5672";
const POSTGRESQL: &str = "127.0.0.1:5432";

/// Waits until every counter of the two services equals a recount.
async fn recounted(catalog: &TestApp, web: &TestApp) {
    wait_until("every counter equals a recount", || async {
        miscounted(&catalog.catalog_database, &web.web_database)
            .await
            .is_empty()
    })
    .await;
}

/// Creates `count` products through the catalog's API and waits until `web`'s gallery has them.
async fn products(catalog: &TestApp, web: &TestApp, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..count {
        let created = catalog
            .create_product(&serde_json::json!({
                "title": format!("Picture {n}"),
                "image": "https://images.example.com/p.jpg"
            }))
            .await;
        assert_eq!(created.status(), 201);
        ids.push(
            created.json::<serde_json::Value>().await.unwrap()["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let viewer = web.new_visitor().await;
    wait_until("every product in the gallery", || async {
        let shown = viewer.products().await;
        ids.iter().all(|id| shown.iter().any(|p| p["id"] == *id))
    })
    .await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_through_50_ms_of_jittery_latency_between_web_and_broker_ends_exact() {
    let proxy = FaultProxy::start(RABBITMQ.parse().unwrap()).await;
    proxy.delay(Duration::from_millis(50), Duration::from_millis(20));
    let catalog = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let web = spawn_app_with(TestOptions {
        amqp_url: Some(proxy.url(&amqp_url(), RABBITMQ)),
        extra_args: vec![format!("--catalog-url=http://{}", catalog.address)],
        ..catalog.sibling("web")
    })
    .await;
    let ids = products(&catalog, &web, 3).await;

    // 30 visitors like every picture at once; every third takes the first one back.
    let visitors: Vec<_> = futures_util::future::join_all((0..30).map(|_| web.new_visitor())).await;
    let likes = visitors
        .iter()
        .flat_map(|visitor| ids.iter().map(move |id| visitor.like(*id)));
    for answer in futures_util::future::join_all(likes).await {
        assert_eq!(answer.status(), 200);
    }
    for answer in
        futures_util::future::join_all(visitors.iter().step_by(3).map(|v| v.unlike(ids[0]))).await
    {
        assert_eq!(answer.status(), 200);
    }
    wait_until("the catalog's counts exact", || async {
        let counts = catalog.catalog_likes().await;
        counts.get(&ids[0]) == Some(&20) && ids[1..].iter().all(|id| counts.get(id) == Some(&30))
    })
    .await;
    recounted(&catalog, &web).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_broker_connection_is_noticed_and_nothing_is_lost() {
    let proxy = FaultProxy::start(RABBITMQ.parse().unwrap()).await;
    // A 2 s heartbeat, so the silence is noticed within seconds.
    let url = format!("{}?heartbeat=2", proxy.url(&amqp_url(), RABBITMQ));
    let app = spawn_app_with(TestOptions {
        amqp_url: Some(url),
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Half-open").await;
    let first = app.new_visitor().await;
    assert_eq!(first.like(id).await.status(), 200);
    wait_until("the first like counted", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;

    // Every open connection to the broker goes silent without closing; new ones go through.
    proxy.silence_open_connections();
    let others: Vec<_> = futures_util::future::join_all((0..10).map(|_| app.new_visitor())).await;
    for visitor in &others {
        assert_eq!(
            visitor.like(id).await.status(),
            200,
            "likes are answered meanwhile"
        );
    }
    wait_until("every like counted over new connections", || async {
        app.catalog_likes().await.get(&id) == Some(&11)
    })
    .await;
    wait_until("every counter equals a recount", || async {
        app.miscounted().await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_cut_off_from_the_broker_for_30_s_catches_up_exact() {
    let proxy = FaultProxy::start(RABBITMQ.parse().unwrap()).await;
    let catalog = spawn_app_with(TestOptions {
        role: "catalog",
        amqp_url: Some(proxy.url(&amqp_url(), RABBITMQ)),
        ..TestOptions::default()
    })
    .await;
    let web = spawn_app_with(TestOptions {
        extra_args: vec![format!("--catalog-url=http://{}", catalog.address)],
        ..catalog.sibling("web")
    })
    .await;
    let ids = products(&catalog, &web, 2).await;

    proxy.cut();
    wait_until("the catalog sees the broker gone", || async {
        let ready: serde_json::Value = catalog.readyz().await.json().await.unwrap();
        ready["checks"]["bus"] == "unavailable"
    })
    .await;
    // While the catalog is cut off, the web keeps answering likes (they wait in the catalog's
    // queue) and the catalog keeps taking admin changes (they wait in its outbox).
    let visitors: Vec<_> = futures_util::future::join_all((0..20).map(|_| web.new_visitor())).await;
    for visitor in &visitors {
        for id in &ids {
            assert_eq!(visitor.like(*id).await.status(), 200);
        }
    }
    let during = catalog
        .create_product(&serde_json::json!({"title": "Made while cut off", "image": "https://images.example.com/c.jpg"}))
        .await;
    assert_eq!(during.status(), 201);
    let during = during.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    // The outage lasts 30 s: what is modelled here, not a wait for something to happen.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        catalog.catalog_likes().await.values().all(|n| *n == 0),
        "nothing reached the catalog while it was cut off"
    );

    proxy.restore();
    wait_until("every like counted once the link is back", || async {
        let counts = catalog.catalog_likes().await;
        ids.iter().all(|id| counts.get(id) == Some(&20))
    })
    .await;
    let viewer = web.new_visitor().await;
    wait_until("the product made while cut off in the gallery", || async {
        viewer.products().await.iter().any(|p| p["id"] == during)
    })
    .await;
    recounted(&catalog, &web).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_instance_cut_off_from_its_database_answers_503_then_catches_up_exact() {
    let proxy = FaultProxy::start(POSTGRESQL.parse().unwrap()).await;
    let dir = SqliteDir::new();
    let web_database = fresh_database(Engine::Postgres, &dir).await;
    let catalog = spawn_app_with(TestOptions {
        engine: Engine::Postgres,
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let web = spawn_app_with(TestOptions {
        engine: Engine::Postgres,
        web_database: Some(proxy.url(&web_database, POSTGRESQL)),
        extra_args: vec![format!("--catalog-url=http://{}", catalog.address)],
        ..catalog.sibling("web")
    })
    .await;
    let ids = products(&catalog, &web, 2).await;
    let visitors: Vec<_> = futures_util::future::join_all((0..10).map(|_| web.new_visitor())).await;
    for visitor in &visitors {
        assert_eq!(visitor.like(ids[0]).await.status(), 200);
    }

    proxy.cut();
    // Cut off: a like answers 503 JSON and is not taken; the instance leaves the load balancer.
    let refused = visitors[0].like(ids[1]).await;
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    let ready = web.readyz().await;
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["web_database"], "unavailable", "{ready}");
    // The catalog's changes meanwhile wait in the read model's queue.
    let renamed = catalog
        .admin(reqwest::Method::PUT, &format!("/{}", ids[1]))
        .json(&serde_json::json!({"title": "Renamed while cut off", "image": "https://images.example.com/p.jpg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);

    proxy.restore();
    wait_until("the web instance ready again", || async {
        web.readyz().await.status() == 200
    })
    .await;
    for visitor in &visitors {
        assert_eq!(visitor.like(ids[1]).await.status(), 200);
    }
    let viewer = web.new_visitor().await;
    wait_until("every like counted and the rename shown", || async {
        let counts = catalog.catalog_likes().await;
        let shown = viewer.products().await;
        ids.iter().all(|id| counts.get(id) == Some(&10))
            && shown
                .iter()
                .any(|p| p["id"] == ids[1] && p["title"] == "Renamed while cut off")
    })
    .await;
    recounted(&catalog, &web).await;
}
