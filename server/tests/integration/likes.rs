//! Likes: once per visitor, unlike, conflicts, exact counts in the web database, the galleries
//! and the catalog's copy; counts that arrive twice, out of order or broken; and per-like events
//! of the version before, still queued at an upgrade.

use crate::helpers::{
    catalog_era, publish_events, rabbitmq_bus, spawn_app, spawn_app_with, wait_until, TestApp,
    TestOptions, ABOVE_ANY_CLOCK,
};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use server::bus::{Envelope, OutgoingMessage, Topology, DEAD_LETTER_REASON};
use server::events::{LikeCount, LikeCounts, LikesEvent};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_likes_a_product_once_and_can_take_it_back() {
    let app = spawn_app().await;
    let id = app.create_visible_product("Fjord").await;
    let (ann, bob) = (app.new_visitor().await, app.new_visitor().await);

    let liked = ann.like(id).await;
    assert_eq!(liked.status(), 200);
    let liked = liked.json::<Value>().await.unwrap();
    assert_eq!(
        (&liked["id"], &liked["likes"], &liked["liked"]),
        (&json!(id), &json!(1), &json!(true))
    );
    let first_version = liked["likes_version"].as_i64().expect("a version");
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
    let taken_back = taken_back.json::<Value>().await.unwrap();
    assert_eq!(
        (&taken_back["likes"], &taken_back["liked"]),
        (&json!(1), &json!(false))
    );
    assert!(
        taken_back["likes_version"].as_i64().expect("a version") > first_version,
        "every change of a count has a higher version"
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

/// Publishes counts onto the app's web exchange, as the web service would.
async fn publish_counts(app: &TestApp, counts: &[(i64, i64, i64)]) {
    let (epoch, _) = catalog_era(&app.catalog_database).await;
    let events: Vec<_> = counts
        .iter()
        .map(|(id, likes, version)| {
            Envelope::new(LikesEvent::Counted(LikeCounts {
                counted_at_ms: 1_764_633_600_000,
                counts: vec![LikeCount {
                    id: app::domain::ProductId::from_stored(*id),
                    likes: *likes,
                    version: ABOVE_ANY_CLOCK + version,
                    epoch,
                }],
            }))
        })
        .collect();
    publish_events(&format!("{}.web", app.namespace), &events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_reordered_counts_leave_the_newest_everywhere() {
    // One delivery at a time, so the marker published last is also applied last.
    let app = spawn_app_with(TestOptions {
        extra_args: vec!["--bus-prefetch=1".to_owned()],
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Moor").await;
    let marker = app.create_visible_product("Marker").await;
    let mut live = app.connect_live().await.expect("a live socket");

    // The newest count first, then older ones and repeats of each, then the marker.
    publish_counts(
        &app,
        &[
            (id, 7, 30),
            (id, 5, 10),
            (id, 7, 30),
            (id, 6, 20),
            (id, 5, 10),
            (marker, 1, 1),
        ],
    )
    .await;

    wait_until("the marker in the catalog", || async {
        app.catalog_likes().await.get(&marker) == Some(&1)
    })
    .await;
    assert_eq!(app.catalog_likes().await.get(&id), Some(&7));
    let reader = app.new_visitor().await;
    wait_until("the marker in the gallery", || async {
        reader
            .products()
            .await
            .iter()
            .any(|p| p["id"] == marker && p["likes"] == 1)
    })
    .await;
    let shown = reader.products().await;
    let moor = shown.iter().find(|p| p["id"] == id).expect("Moor is shown");
    assert_eq!(moor["likes"], 7, "older counts never replace the newest");
    assert_eq!(moor["likes_version"], ABOVE_ANY_CLOCK + 30);
    // The socket hears the newest count; none it hears after is older.
    let mut newest = (0, 0);
    while newest.0 != 7 {
        newest = live.next_versioned_count_of(id).await;
    }
    assert_eq!(newest.1, ABOVE_ANY_CLOCK + 30);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_like_events_queued_before_an_upgrade_are_counted_once() {
    let app = spawn_app().await;
    let id = app.create_visible_product("Tor").await;
    // Three likes the web database committed; a web service of the version before also sent
    // each as a per-like event, and those still wait in the catalog's queue, bound to `like.*`
    // as that version bound it.
    let visitors = [
        app.new_visitor().await,
        app.new_visitor().await,
        app.new_visitor().await,
    ];
    for visitor in &visitors {
        assert_eq!(visitor.like(id).await.status(), 200);
    }
    wait_until("the three likes in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&3)
    })
    .await;
    let topology = Topology::new(app.namespace.as_str());
    let mut earlier = topology.catalog_likes(10);
    earlier.bindings = vec!["like.*".to_owned()];
    drop(
        rabbitmq_bus()
            .subscribe(&earlier)
            .await
            .expect("the queue as v1 bound it"),
    );
    let old = |n: usize, kind: &str| {
        let visitor = format!("{n:08x}-1111-4111-8111-111111111111");
        OutgoingMessage {
            routing_key: kind.to_owned(),
            message_id: format!("v1-{n}"),
            payload: json!({
                "id": uuid::Uuid::new_v4(), "occurred_at": "2026-01-01T00:00:00Z", "type": kind,
                "data": {"product_id": id, "visitor_id": visitor, "seq": 1, "epoch": 0}
            })
            .to_string()
            .into_bytes(),
        }
    };
    let queued: Vec<_> = (0..3)
        .map(|n| old(n, "like.added"))
        .chain([old(1, "like.added"), old(3, "like.removed")])
        .collect();
    rabbitmq_bus()
        .publish(&format!("{}.web", app.namespace), &queued)
        .await
        .expect("published");

    // A like after them: once it counts, they were all read, and none counted again.
    let fourth = app.new_visitor().await;
    assert_eq!(fourth.like(id).await.status(), 200);
    wait_until("the fourth like in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&4)
    })
    .await;
    let consumed = format!("{}.catalog.likes", app.namespace);
    let dead = format!("{consumed}.dead-letter");
    wait_until(
        "the per-like events settled, none dead-lettered",
        || async {
            crate::helpers::messages_in(&consumed).await == 0
                && crate::helpers::messages_in(&dead).await == 0
        },
    )
    .await;
    assert_eq!(app.catalog_likes().await.get(&id), Some(&4));
    assert_eq!(app.miscounted().await, Vec::<String>::new());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_count_message_is_dead_lettered_and_the_next_one_counts() {
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
        routing_key: "likes.counted".to_owned(),
        message_id: "broken-1".to_owned(),
        payload: br#"{"id": "not a uuid", "type": "likes.counted"}"#.to_vec(),
    };
    rabbitmq_bus()
        .publish(&exchange, &[broken])
        .await
        .expect("published");
    assert_eq!(app.new_visitor().await.like(id).await.status(), 200);

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

/// While 40 other visitors like and unlike it together, each visitor's read right after their
/// own like's answer (through the same instance) never shows the product with an older count
/// than the answer's: the count's version is at least the answer's, 200 times.
async fn no_read_after_an_answer_shows_an_older_count(app: TestApp) {
    let id = app.create_visible_product("Answer").await;
    let visitors: Vec<_> = stream::iter(0..40)
        .then(|_| app.new_visitor())
        .collect()
        .await;
    let checked: Vec<usize> = stream::iter(visitors.iter())
        .map(|visitor| async move {
            let mut checked = 0;
            for round in 0..5 {
                let answer = if round % 2 == 0 {
                    visitor.like(id).await
                } else {
                    visitor.unlike(id).await
                };
                assert_eq!(answer.status(), 200);
                let answer: Value = answer.json().await.unwrap();
                let answered = answer["likes_version"].as_i64().expect("a version");
                let read = visitor.products().await;
                let shown = read.iter().find(|p| p["id"] == id).expect("the product");
                let version = shown["likes_version"].as_i64().expect("a version");
                assert!(
                    version >= answered,
                    "a read after the answer at version {answered} showed version {version}"
                );
                if version == answered {
                    assert_eq!(shown["likes"], answer["likes"]);
                }
                assert_eq!(shown["liked"], answer["liked"]);
                checked += 1;
            }
            checked
        })
        .buffer_unordered(40)
        .collect()
        .await;
    assert_eq!(checked.iter().sum::<usize>(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_after_an_answer_shows_an_older_count_on_postgres_and_rabbitmq() {
    no_read_after_an_answer_shows_an_older_count(spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_after_an_answer_shows_an_older_count_on_sqlite_and_the_in_process_bus() {
    no_read_after_an_answer_shows_an_older_count(spawn_app_with(TestOptions::embedded()).await)
        .await;
}

/// 200 visitors make 1,000 likes and unlikes at once across five products; once quiet, every
/// count in the web database, its gallery and the catalog's copy equals the visitors liking the
/// product.
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
    wait_until("exact counts in the gallery", || async {
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
