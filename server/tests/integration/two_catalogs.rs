//! Two catalog instances on one catalog database, consuming the same queues: both answer the
//! admin API, every like is counted once, and no event is published twice (each outbox row is
//! taken by one relay: `for update skip locked`).

use crate::helpers::*;
use server::bus::{QueueKind, QueueSpec};
use std::collections::HashSet;
use std::time::Duration;

/// Events still in the catalog database's outbox, not yet published and confirmed.
async fn unpublished(catalog_database: &sqlx::AnyPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(catalog_database)
        .await
        .expect("the outbox")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_catalogs_on_one_database_count_exactly_and_publish_each_event_once() {
    let first = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    // Everything the catalogs publish, from before the first product.
    let watch = QueueSpec {
        queue: unique("lg_test_watch"),
        exchange: format!("{}.catalog", first.namespace),
        declares_exchange: true,
        bindings: vec!["#".to_owned()],
        kind: QueueKind::Durable,
        prefetch: 500,
    };
    let mut events = rabbitmq_bus().subscribe(&watch).await.expect("subscribe");
    let second = spawn_app_with(TestOptions {
        catalog_database: Some(first.catalog_database.clone()),
        ..first.sibling("catalog")
    })
    .await;
    let web = spawn_app_with(TestOptions {
        extra_args: vec![format!("--catalog-url=http://{}", first.address)],
        ..first.sibling("web")
    })
    .await;

    // The admin API answers on either catalog, over the one database.
    let mut ids = Vec::new();
    for (n, catalog) in [&first, &second, &first, &second].into_iter().enumerate() {
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
    assert_eq!(first.admin_products().await, second.admin_products().await);
    let viewer = web.new_visitor().await;
    wait_until("every product in the gallery", || async {
        let shown = viewer.products().await;
        ids.iter().all(|id| shown.iter().any(|p| p["id"] == *id))
    })
    .await;

    // A storm: 40 visitors like every product at once; every fourth takes one like back.
    let visitors: Vec<_> = futures_util::future::join_all((0..40).map(|_| web.new_visitor())).await;
    let likes = visitors
        .iter()
        .flat_map(|visitor| ids.iter().map(move |id| visitor.like(*id)));
    for answer in futures_util::future::join_all(likes).await {
        assert_eq!(answer.status(), 200);
    }
    let unlikes = visitors
        .iter()
        .step_by(4)
        .map(|visitor| visitor.unlike(ids[0]));
    for answer in futures_util::future::join_all(unlikes).await {
        assert_eq!(answer.status(), 200);
    }
    let expected: Vec<(i64, i64)> = ids
        .iter()
        .map(|id| (*id, if *id == ids[0] { 30 } else { 40 }))
        .collect();
    for catalog in [&first, &second] {
        wait_until("the catalogs' counts exact", || async {
            let counts = catalog.catalog_likes().await;
            expected.iter().all(|(id, n)| counts.get(id) == Some(n))
        })
        .await;
    }
    wait_until("every counter equals a recount", || async {
        miscounted(&first.catalog_database, &web.web_database)
            .await
            .is_empty()
    })
    .await;

    // Every event is out (published and confirmed before its row goes): read them all.
    let catalog_database = database(&first.catalog_database).await;
    wait_until("the outbox empty", || async {
        unpublished(&catalog_database).await == 0
    })
    .await;
    // A marker of our own, published after them: the queue hands everything over in order, so
    // what comes before it is everything the catalogs published.
    let marker = server::bus::OutgoingMessage {
        routing_key: "test.marker".to_owned(),
        message_id: unique("marker"),
        payload: b"{}".to_vec(),
    };
    rabbitmq_bus()
        .publish(&watch.exchange, std::slice::from_ref(&marker))
        .await
        .expect("the marker published");
    let mut seen = HashSet::new();
    let mut repeated = Vec::new();
    loop {
        let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("the events and the marker arrive")
            .expect("subscription open");
        let id = delivery.message_id.clone().expect("a message id");
        delivery.ack().await.expect("ack");
        if id == marker.message_id {
            break;
        }
        if !seen.insert(id.clone()) {
            repeated.push(id);
        }
    }
    // 4 products created, and the count changes of the storm.
    assert!(seen.len() > 4, "{} events", seen.len());
    assert!(repeated.is_empty(), "published twice: {repeated:?}");
}
