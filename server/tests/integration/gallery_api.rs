//! `GET /api/products` a page at a time: both orders followed to the end by cursor, and bad
//! queries refused with the field named.

use crate::helpers::{spawn_app_with, wait_until, TestOptions};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_comes_in_pages_of_either_order_and_refuses_bad_queries() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(app.create_visible_product(&format!("Picture {n}")).await);
    }
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(ids[3]).await.status(), 200);
    wait_until("the like in the gallery", || async {
        visitor
            .products()
            .await
            .iter()
            .any(|p| p["id"] == ids[3] && p["likes"] == 1)
    })
    .await;

    // Two at a time, each order to the end.
    let scroll = |sort: &'static str| {
        let visitor = &visitor;
        async move {
            let mut seen = Vec::new();
            let mut query = format!("sort={sort}&limit=2");
            loop {
                let page = visitor.products_page(&query).await;
                let items = page["items"].as_array().expect("items");
                assert!(items.len() <= 2, "{page}");
                seen.extend(items.iter().map(|item| item["id"].as_i64().unwrap()));
                match page["next"].as_str() {
                    Some(next) => query = format!("sort={sort}&limit=2&after={next}"),
                    None => return seen,
                }
            }
        }
    };
    let newest: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(scroll("newest").await, newest);
    assert_eq!(
        scroll("likes").await,
        [ids[3], ids[0], ids[1], ids[2], ids[4]],
        "most liked first, ties by id"
    );
    let first = visitor.products_page("").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 5);
    assert_eq!(first["next"], Value::Null);
    assert_eq!(first["items"][0]["id"], ids[4], "newest first by default");

    for (query, field) in [
        ("sort=oldest", "sort"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("after=zzz", "after"),
        ("sort=likes&after=n.3", "after"),
    ] {
        let response = visitor.products_response(query).await;
        assert_eq!(response.status(), 422, "{query}");
        let body: Value = response.json().await.expect("a JSON error");
        assert_eq!(body["error"], "validation", "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    app.stop().await;
}
