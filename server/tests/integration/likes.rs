//! Likes: once per visitor, unlike, conflicts, exact counts through the catalog and back, and
//! events that arrive twice, out of order or broken.

use crate::helpers::{
    publish_events, rabbitmq_bus, spawn_app, spawn_app_with, wait_until, TestApp, TestOptions,
};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use server::bus::{Envelope, OutgoingMessage, Topology, DEAD_LETTER_REASON};
use server::events::{LikeChange, LikeEvent};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_likes_a_product_once_and_can_take_it_back() {
    let app = spawn_app().await;
    let id = app.create_visible_product("Fjord").await;
    let (ann, bob) = (app.new_visitor().await, app.new_visitor().await);

    let liked = ann.like(id).await;
    assert_eq!(liked.status(), 200);
    assert_eq!(
        liked.json::<Value>().await.unwrap(),
        json!({"id": id, "likes": 1, "liked": true})
    );
    let twice = ann.like(id).await;
    assert_eq!(twice.status(), 409);
    assert_eq!(
        twice.json::<Value>().await.unwrap()["message"],
        "You already like this picture."
    );
    assert_eq!(
        bob.like(id).await.json::<Value>().await.unwrap()["likes"],
        2
    );

    let taken_back = ann.unlike(id).await;
    assert_eq!(taken_back.status(), 200);
    assert_eq!(
        taken_back.json::<Value>().await.unwrap(),
        json!({"id": id, "likes": 1, "liked": false})
    );
    assert_eq!(ann.unlike(id).await.status(), 409);
    assert_eq!(ann.like(999_999).await.status(), 404);
    assert_eq!(ann.unlike(999_999).await.status(), 404);
    assert_eq!(ann.like(0).await.status(), 404);

    wait_until("the catalog's count", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;
    wait_until("the read model's count", || async {
        ann.products()
            .await
            .iter()
            .any(|p| p["id"] == id && p["likes"] == 1)
    })
    .await;
    let as_ann = ann.products().await;
    let as_bob = bob.products().await;
    assert_eq!(
        as_ann.iter().find(|p| p["id"] == id).unwrap()["liked"],
        false
    );
    assert_eq!(
        as_bob.iter().find(|p| p["id"] == id).unwrap()["liked"],
        true
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_visitor_cookie_makes_a_new_visitor() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let id = app.create_visible_product("Glacier").await;
    let ann = app.new_visitor().await;
    assert_eq!(ann.like(id).await.status(), 200);

    let mut forged = ann.clone();
    forged.cookie = format!("{}0", ann.cookie);
    let as_forged = forged.like(id).await;
    assert_eq!(
        as_forged.status(),
        200,
        "not refused as Ann's second like: a new visitor"
    );
    let cookie = crate::helpers::set_cookie(&as_forged, "lg_visitor").expect("a new cookie");
    assert!(
        cookie.starts_with("lg_visitor=") && !cookie.starts_with(&ann.cookie),
        "a new cookie is issued"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    app.stop().await;
}

/// Publishes like events onto the app's web exchange, as the web service would.
async fn publish_like_events(app: &TestApp, events: &[Envelope<LikeEvent>]) {
    publish_events(&format!("{}.web", app.namespace), events).await;
}

fn like_change(product: i64, visitor: &str, seq: i64) -> LikeChange {
    LikeChange {
        product_id: app::domain::ProductId::from_stored(product),
        visitor_id: app::domain::VisitorId::parse(visitor).unwrap(),
        seq,
        epoch: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_out_of_order_like_events_are_counted_once() {
    // One delivery at a time, so the marker published last is also counted last.
    let app = spawn_app_with(TestOptions {
        extra_args: vec!["--bus-prefetch=1".to_owned()],
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Moor").await;
    let ann = "11111111-1111-4111-8111-111111111111";
    let bob = "22222222-2222-4222-8222-222222222222";

    // The same event delivered twice counts once.
    let ann_likes = Envelope::new(LikeEvent::Added(like_change(id, ann, 1)));
    publish_like_events(&app, &[ann_likes.clone(), ann_likes]).await;
    // Bob liked (seq 1) then unliked (seq 2), but the unlike arrives first.
    let bob_unlikes = Envelope::new(LikeEvent::Removed(like_change(id, bob, 2)));
    let bob_likes = Envelope::new(LikeEvent::Added(like_change(id, bob, 1)));
    publish_like_events(&app, &[bob_unlikes, bob_likes]).await;
    // A marker event that lands last: once it counts, everything before it was applied.
    let carl = "33333333-3333-4333-8333-333333333333";
    publish_like_events(
        &app,
        &[Envelope::new(LikeEvent::Added(like_change(id, carl, 1)))],
    )
    .await;

    wait_until("Carl's like in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&2)
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if app.catalog_likes().await.get(&id) != Some(&2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        quiet.is_err(),
        "the count stays at 2: Ann once, Carl once, Bob not at all"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_like_message_is_dead_lettered_and_the_next_one_counts() {
    let app = spawn_app().await;
    let id = app.create_visible_product("Heath").await;
    let dead_letters = Topology::new(app.namespace.as_str())
        .catalog_likes(10)
        .dead_letters();
    let mut dead = rabbitmq_bus()
        .subscribe(&dead_letters)
        .await
        .expect("subscribe");

    let exchange = format!("{}.web", app.namespace);
    let broken = OutgoingMessage {
        routing_key: "like.added".to_owned(),
        message_id: "broken-1".to_owned(),
        payload: br#"{"id": "not a uuid", "type": "like.added"}"#.to_vec(),
    };
    rabbitmq_bus()
        .publish(&exchange, &[broken])
        .await
        .expect("published");
    let good = Envelope::new(LikeEvent::Added(like_change(
        id,
        "44444444-4444-4444-8444-444444444444",
        1,
    )));
    publish_like_events(&app, &[good]).await;

    wait_until("the good like in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;
    let refused = tokio::time::timeout(Duration::from_secs(10), dead.next())
        .await
        .expect("dead-lettered in time")
        .expect("subscription open");
    assert_eq!(refused.message_id.as_deref(), Some("broken-1"));
    assert!(refused.headers[DEAD_LETTER_REASON].starts_with("undecodable message"));
    refused.ack().await.expect("ack");
    app.stop().await;
}

/// 200 visitors make 1,000 likes and unlikes at once across five products; once quiet, every
/// count in the catalog and in the read model equals the visitors liking the product.
async fn counts_stay_exact_under_concurrent_likes(app: TestApp) {
    let mut products = Vec::new();
    for n in 0..5 {
        products.push(app.create_visible_product(&format!("Storm {n}")).await);
    }
    let mut visitors = Vec::new();
    for _ in 0..200 {
        visitors.push(app.new_visitor().await);
    }

    // Each visitor toggles five pseudo-randomly chosen products in turn; visitors run together.
    let outcomes: Vec<BTreeMap<i64, bool>> = stream::iter(visitors.iter().enumerate())
        .map(|(n, visitor)| {
            let products = products.clone();
            async move {
                let mut state: BTreeMap<i64, bool> = BTreeMap::new();
                let mut seed = n as u64 * 2_654_435_761 + 1;
                for _ in 0..5 {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let id = products[(seed >> 33) as usize % products.len()];
                    let liked = state.get(&id).copied().unwrap_or(false);
                    let response = if liked {
                        visitor.unlike(id).await
                    } else {
                        visitor.like(id).await
                    };
                    assert_eq!(response.status(), 200);
                    state.insert(id, !liked);
                }
                state
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let mut expected: BTreeMap<i64, i64> = products.iter().map(|id| (*id, 0)).collect();
    for state in &outcomes {
        for (id, liked) in state {
            *expected.get_mut(id).unwrap() += i64::from(*liked);
        }
    }
    wait_until("exact counts in the catalog", || async {
        app.catalog_likes().await == expected
    })
    .await;
    let reader = app.new_visitor().await;
    wait_until("exact counts in the read model", || async {
        let seen: BTreeMap<i64, i64> = reader
            .products()
            .await
            .iter()
            .map(|p| (p["id"].as_i64().unwrap(), p["likes"].as_i64().unwrap()))
            .collect();
        seen == expected
    })
    .await;
    assert_eq!(app.miscounted().await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_on_postgres_and_rabbitmq() {
    counts_stay_exact_under_concurrent_likes(spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_on_sqlite_and_the_in_process_bus() {
    counts_stay_exact_under_concurrent_likes(spawn_app_with(TestOptions::embedded()).await).await;
}
