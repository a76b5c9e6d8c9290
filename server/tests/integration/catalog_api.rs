//! The catalog's admin API: every route, every validation rule, authorisation, and the product
//! events it publishes through its outbox, including while the broker is unreachable.

use crate::helpers::{
    rabbitmq_bus, spawn_app, spawn_app_with, unique, unversioned, BrokerProxy, TestApp, TestOptions,
};
use reqwest::Method;
use serde_json::{json, Value};
use server::bus::{QueueKind, QueueSpec, Subscription};
use std::time::Duration;

fn sunset() -> Value {
    json!({ "title": "Sunset", "image": "https://images.example.com/sunset.jpg" })
}

async fn every_route_works(app: TestApp) {
    let created = app.create_product(&sunset()).await;
    assert_eq!(created.status(), 201);
    let product: Value = created.json().await.unwrap();
    let id = product["id"].as_i64().expect("an id");
    assert_eq!(
        product,
        json!({"id": id, "title": "Sunset", "image": "https://images.example.com/sunset.jpg", "likes": 0, "likes_version": 0})
    );

    let fetched = app
        .admin(Method::GET, &format!("/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    let product = unversioned(product);
    assert_eq!(unversioned(fetched.json::<Value>().await.unwrap()), product);
    assert_eq!(app.admin_products_unversioned().await, vec![product]);

    let replaced = app
        .admin(Method::PUT, &format!("/{id}"))
        .json(&json!({"title": "  Dusk ", "image": "http://images.example.com/dusk.png"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["title"], "Dusk", "titles are trimmed");
    assert_eq!(replaced["image"], "http://images.example.com/dusk.png");

    let deleted = app
        .admin(Method::DELETE, &format!("/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    for method in [Method::GET, Method::DELETE] {
        let gone = app.admin(method, &format!("/{id}")).send().await.unwrap();
        assert_eq!(gone.status(), 404);
        assert_eq!(gone.json::<Value>().await.unwrap()["error"], "not_found");
    }
    let missing = app
        .admin(Method::PUT, &format!("/{id}"))
        .json(&sunset())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(app.admin_products().await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_works_on_postgres_and_rabbitmq() {
    every_route_works(spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_works_on_sqlite_and_the_in_process_bus() {
    every_route_works(spawn_app_with(TestOptions::embedded()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_created_through_the_api_reaches_the_gallery() {
    let app = spawn_app().await;
    let title = unique("Harbour");
    let created = app
        .create_product(&json!({"title": title, "image": "https://images.example.com/harbour.jpg"}))
        .await;
    assert_eq!(created.status(), 201);
    app.wait_for_gallery("the new product", |html| html.contains(&title))
        .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_missing_or_wrong_credentials_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app
        .create_product(&sunset())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .clone();
    let routes = [
        (Method::GET, String::new()),
        (Method::POST, String::new()),
        (Method::GET, format!("/{id}")),
        (Method::PUT, format!("/{id}")),
        (Method::DELETE, format!("/{id}")),
    ];
    for (method, path) in routes {
        let url = app.url(&format!("/api/admin/products{path}"));
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic Zm9vOmJhcg=="),
            Some("Bearer "),
        ] {
            let mut request = app
                .client
                .request(method.clone(), &url)
                .json(&json!({"title": "Hacked", "image": "https://evil.example.com/x.png"}));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            assert_eq!(
                response.json::<Value>().await.unwrap()["error"],
                "unauthorized"
            );
        }
    }
    let products = app.admin_products().await;
    assert_eq!(products.len(), 1);
    assert_eq!(products[0]["title"], "Sunset");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_products_are_refused_with_the_field_and_the_reason() {
    let app = spawn_app().await;
    let long_title = "x".repeat(201);
    let long_image = format!("https://example.com/{}", "a".repeat(2_000));
    let cases = [
        (json!({"image": "https://example.com/a.png"}), "title"),
        (
            json!({"title": 5, "image": "https://example.com/a.png"}),
            "title",
        ),
        (
            json!({"title": "", "image": "https://example.com/a.png"}),
            "title",
        ),
        (
            json!({"title": "   ", "image": "https://example.com/a.png"}),
            "title",
        ),
        (
            json!({"title": long_title, "image": "https://example.com/a.png"}),
            "title",
        ),
        (
            json!({"title": "tab\there", "image": "https://example.com/a.png"}),
            "title",
        ),
        (json!({"title": "ok"}), "image"),
        (json!({"title": "ok", "image": null}), "image"),
        (
            json!({"title": "ok", "image": "javascript:alert(1)"}),
            "image",
        ),
        (
            json!({"title": "ok", "image": "data:image/png;base64,AAAA"}),
            "image",
        ),
        (
            json!({"title": "ok", "image": "ftp://example.com/a.png"}),
            "image",
        ),
        (json!({"title": "ok", "image": "/relative.png"}), "image"),
        (json!({"title": "ok", "image": long_image}), "image"),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (body, field) in cases {
        let response = app.create_product(&body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "validation", "{body}");
        assert_eq!(error["field"], field, "{body}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let id = app
        .create_product(&sunset())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .clone();
    let bad_update = app
        .admin(Method::PUT, &format!("/{id}"))
        .json(&json!({"title": "ok", "image": "javascript:alert(1)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_update.status(), 422);
    let products = app.admin_products().await;
    assert_eq!(products.len(), 1, "nothing invalid was stored");
    assert_eq!(
        products[0]["image"],
        "https://images.example.com/sunset.jpg"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_wrongly_typed_and_oversized_bodies_are_refused_in_json() {
    let app = spawn_app().await;
    let post = || app.admin(Method::POST, "");

    let malformed = post()
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["error"],
        "bad_request"
    );

    let wrong_type = post()
        .header("content-type", "text/plain")
        .body(sunset().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(
        wrong_type.json::<Value>().await.unwrap()["error"],
        "unsupported_media_type"
    );

    let huge = json!({"title": "x".repeat(70 * 1024), "image": "https://example.com/a.png"});
    let too_large = post().json(&huge).send().await.unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(
        too_large.json::<Value>().await.unwrap()["error"],
        "payload_too_large"
    );

    let bad_id = app
        .admin(Method::GET, "/not-a-number")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 404);
    assert!(app.admin_products().await.is_empty());
    app.stop().await;
}

/// A queue of our own on the app's catalog exchange, to watch what it publishes.
async fn watch_catalog_events(app: &TestApp) -> Subscription {
    let spec = QueueSpec {
        queue: unique("lg_test_watch"),
        exchange: format!("{}.catalog", app.namespace),
        declares_exchange: true,
        bindings: vec!["product.#".to_owned()],
        kind: QueueKind::Durable,
        prefetch: 10,
    };
    rabbitmq_bus().subscribe(&spec).await.expect("subscribe")
}

async fn next_event(events: &mut Subscription, within: Duration) -> Value {
    let delivery = tokio::time::timeout(within, events.next())
        .await
        .expect("an event arrives in time")
        .expect("subscription open");
    let event: Value = serde_json::from_slice(&delivery.payload).expect("a JSON envelope");
    assert_eq!(delivery.routing_key, event["type"].as_str().unwrap());
    assert_eq!(delivery.message_id.as_deref(), event["id"].as_str());
    delivery.ack().await.expect("ack");
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_publishes_one_event_with_a_growing_version() {
    let app = spawn_app().await;
    let mut events = watch_catalog_events(&app).await;
    let id = app
        .create_product(&sunset())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let changed = json!({"title": "Dusk", "image": "https://images.example.com/dusk.jpg"});
    assert_eq!(
        app.admin(Method::PUT, &format!("/{id}"))
            .json(&changed)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.admin(Method::DELETE, &format!("/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );

    let wait = Duration::from_secs(10);
    let created = next_event(&mut events, wait).await;
    assert_eq!(created["type"], "product.created");
    let mut data = created["data"].clone();
    let epoch = data["epoch"].take();
    let generation = data["generation"].take();
    assert!(epoch.as_i64().unwrap() > 0, "the catalog's epoch: {epoch}");
    assert!(generation.as_i64().is_some(), "the catalog's generation");
    data.as_object_mut()
        .unwrap()
        .retain(|_, value| !value.is_null());
    assert_eq!(
        data,
        json!({"id": id, "title": "Sunset", "image": "https://images.example.com/sunset.jpg", "version": 1})
    );
    let updated = next_event(&mut events, wait).await;
    assert_eq!(updated["type"], "product.updated");
    assert_eq!(updated["data"]["title"], "Dusk");
    assert_eq!(updated["data"]["version"], 2);
    let deleted = next_event(&mut events, wait).await;
    assert_eq!(deleted["type"], "product.deleted");
    assert_eq!(
        deleted["data"],
        json!({"id": id, "version": 3, "epoch": epoch, "generation": generation}),
        "every event of the catalog carries its epoch and generation"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_created_while_the_broker_is_unreachable_is_published_once_it_returns() {
    let proxy = BrokerProxy::start().await;
    let app = spawn_app_with(TestOptions {
        amqp_url: Some(proxy.url.clone()),
        ..TestOptions::default()
    })
    .await;
    let mut events = watch_catalog_events(&app).await;

    proxy.cut();
    let created = app.create_product(&sunset()).await;
    assert_eq!(
        created.status(),
        201,
        "the change is stored even though it cannot be published yet"
    );
    let id = created.json::<Value>().await.unwrap()["id"].clone();
    let early = tokio::time::timeout(Duration::from_millis(1500), events.next()).await;
    assert!(
        early.is_err(),
        "nothing can be published while the broker is unreachable"
    );
    let ready = app.readyz().await;
    assert_eq!(
        ready.status(),
        200,
        "the change waits in the outbox: still ready"
    );
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["bus"],
        "unavailable"
    );

    proxy.restore();
    let event = next_event(&mut events, Duration::from_secs(20)).await;
    assert_eq!(event["type"], "product.created");
    assert_eq!(event["data"]["id"], id);
    app.wait_for_gallery("the product after the outage", |html| {
        html.contains("Sunset")
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_web_process_manages_products_through_the_catalog_api() {
    let catalog = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let web = spawn_app_with(TestOptions {
        extra_args: vec![format!("--catalog-url=http://{}", catalog.address)],
        ..catalog.sibling("web")
    })
    .await;
    let session = web.admin_session().await;
    let title = unique("Remote");
    let created = web
        .client
        .post(web.url("/api/create_product"))
        .header("cookie", &session)
        .form(&[
            ("title", title.as_str()),
            ("image", "https://images.example.com/remote.jpg"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let products = catalog.admin_products().await;
    assert_eq!(products.len(), 1);
    assert_eq!(products[0]["title"], title.as_str());

    let refused = web
        .client
        .post(web.url("/api/create_product"))
        .header("cookie", &session)
        .form(&[("title", "ok"), ("image", "javascript:alert(1)")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        422,
        "the catalog's validation error comes back as such"
    );

    web.wait_for_gallery("the product, carried by RabbitMQ", |html| {
        html.contains(&title)
    })
    .await;
    web.stop().await;
    catalog.stop().await;
}

/// Emoji (four bytes in UTF-8), scripts of every plane, right-to-left text and combining marks
/// are stored and given back unchanged by both databases: the catalog's (admin API) and the
/// web's read model (gallery API), created and then renamed. On MariaDB this is what utf8mb4
/// is for; a three-byte `utf8` column refuses or mangles emoji.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unicode_title_round_trips_through_both_databases() {
    let app = spawn_app().await;
    let titles = [
        "Sunset 🌅 over the sea 🌊",
        "東京の夜景",
        "שקיעה בים",
        "Ελληνικά · Кириллица · ქართული",
        "a\u{301} e\u{301} n\u{303}",
        "𝕬𝖑𝖕𝖍𝖆 𓀀 🀄 𝄞",
        "👩🏽‍💻👨‍👩‍👧‍👦🏳️‍🌈",
    ];
    let longest = "😀".repeat(app::domain::TITLE_MAX_CHARS);
    let visitor = app.new_visitor().await;
    for title in titles.iter().copied().chain([longest.as_str()]) {
        let created = app
            .create_product(&json!({"title": title, "image": "https://images.example.com/u.png"}))
            .await;
        assert_eq!(created.status(), 201, "{title}");
        let body: Value = created.json().await.unwrap();
        assert_eq!(body["title"], title, "the answer to the create");
        let id = body["id"].as_i64().unwrap();
        let renamed = format!("{title} ✓");
        let updated = app
            .admin(Method::PUT, &format!("/{id}"))
            .json(&json!({"title": renamed, "image": "https://images.example.com/u.png"}))
            .send()
            .await
            .unwrap();
        if title.chars().count() < app::domain::TITLE_MAX_CHARS - 1 {
            assert_eq!(updated.status(), 200, "{renamed}");
        } else {
            assert_eq!(updated.status(), 422, "one character too many");
        }
        let expected = if updated.status() == 200 {
            renamed
        } else {
            title.to_owned()
        };
        let stored = app.admin_products().await;
        let stored = stored.iter().find(|p| p["id"] == id).expect("listed");
        assert_eq!(stored["title"], expected.as_str(), "the catalog's database");
        crate::helpers::wait_until("the read model has the title", || async {
            visitor
                .products()
                .await
                .iter()
                .any(|p| p["id"] == id && p["title"] == expected.as_str())
        })
        .await;
    }
}
