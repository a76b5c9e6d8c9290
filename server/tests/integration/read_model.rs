//! The web service's read model: events applied in any order and any number of times leave it
//! right, and a fresh web database catches up with the catalog.

use crate::helpers::{publish_events, spawn_app_with, wait_until, TestOptions};
use app::domain::{ImageUrl, ProductId, ProductTitle};
use serde_json::json;
use server::bus::Envelope;
use server::events::{CatalogEvent, ProductSnapshot};

fn snapshot(id: i64, title: &str, version: i64) -> ProductSnapshot {
    ProductSnapshot {
        id: ProductId::from_stored(id),
        title: ProductTitle::parse(title).unwrap(),
        image: ImageUrl::parse("https://images.example.com/x.jpg").unwrap(),
        version,
        epoch: 1,
        generation: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_repeated_and_reordered_product_events_never_regress_the_read_model() {
    // One delivery at a time, so the marker published last is also applied last.
    let web = spawn_app_with(TestOptions {
        role: "web",
        extra_args: vec!["--bus-prefetch=1".to_owned()],
        ..TestOptions::default()
    })
    .await;
    let updated = Envelope::new(CatalogEvent::ProductUpdated(snapshot(
        101,
        "Second title",
        2,
    )));
    let events = [
        // 101: the update overtakes the creation, then a newer update, then a repeat.
        updated.clone(),
        Envelope::new(CatalogEvent::ProductCreated(snapshot(
            101,
            "First title",
            1,
        ))),
        Envelope::new(CatalogEvent::ProductUpdated(snapshot(
            101,
            "Third title",
            3,
        ))),
        updated,
        // 102: the deletion overtakes the creation; it must not come back.
        Envelope::new(CatalogEvent::ProductDeleted {
            id: ProductId::from_stored(102),
            version: 2,
            epoch: 1,
            generation: 0,
        }),
        Envelope::new(CatalogEvent::ProductCreated(snapshot(102, "Gone", 1))),
        // 103: published last; once it shows, everything before it was applied.
        Envelope::new(CatalogEvent::ProductCreated(snapshot(103, "Marker", 1))),
    ];
    publish_events(&format!("{}.catalog", web.namespace), &events).await;

    let visitor = web.new_visitor().await;
    wait_until("the marker product", || async {
        visitor.products().await.iter().any(|p| p["id"] == 103)
    })
    .await;
    let products = visitor.products().await;
    let ids: Vec<_> = products.iter().map(|p| p["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![json!(103), json!(101)],
        "newest first; 102 stays deleted"
    );
    assert_eq!(products[1]["title"], "Third title");
    assert_eq!(
        products[1]["likes"], 0,
        "counts are the web database's, not the catalog's"
    );
    web.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_web_database_catches_up_with_the_catalog() {
    let catalog = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let first_web = spawn_app_with(catalog.sibling("web")).await;
    for title in ["Atoll", "Bay"] {
        let created = catalog
            .create_product(&json!({"title": title, "image": "https://images.example.com/x.jpg"}))
            .await;
        assert_eq!(created.status(), 201);
    }
    let early = first_web.new_visitor().await;
    wait_until("both products in the first web database", || async {
        early.products().await.len() == 2
    })
    .await;
    first_web.stop().await;

    // The events were consumed long ago; a web service on a new, empty database must still see
    // every product.
    let second_web = spawn_app_with(catalog.sibling("web")).await;
    let late = second_web.new_visitor().await;
    wait_until("both products in the new web database", || async {
        let titles: Vec<_> = late
            .products()
            .await
            .iter()
            .map(|p| p["title"].clone())
            .collect();
        titles == vec![json!("Bay"), json!("Atoll")]
    })
    .await;
    second_web.stop().await;
    catalog.stop().await;
}
