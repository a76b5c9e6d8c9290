//! Hostile input. A thousand malformed messages on each service's queue end in dead-letter
//! queues while the consumers keep processing the good messages between them; and generated
//! bad requests to the JSON APIs all get a 4xx with a JSON error, store nothing and break nothing.

use crate::helpers::{catalog_era, publish_events, rabbitmq_bus, spawn_app, unique, wait_until};
use app::domain::{ImageUrl, ProductId, ProductTitle, IMAGE_URL_MAX_CHARS, TITLE_MAX_CHARS};
use serde_json::{json, Value};
use server::bus::{
    Envelope, OutgoingMessage, QueueKind, QueueSpec, Subscription, Topology, DEAD_LETTER_REASON,
};
use server::events::{CatalogEvent, ProductSnapshot, ResyncEvent};
use std::time::Duration;

/// A small deterministic generator (xorshift64*): the same cases on every run.
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The `n`th malformed message body: random bytes, broken or wrong JSON, unknown event types,
/// invalid fields, and now and then a payload of a megabyte.
fn malformed(cases: &mut Cases, n: usize) -> Vec<u8> {
    let id = uuid::Uuid::new_v4();
    let envelope = |kind: &str, data: Value| {
        json!({"id": id, "occurred_at": "2026-01-01T00:00:00Z", "type": kind, "data": data})
            .to_string()
            .into_bytes()
    };
    match n % 10 {
        0 if n.is_multiple_of(100) => envelope(
            "product.updated",
            json!({"id": 1, "title": "x".repeat(1 << 20), "image": "https://e.example/a.png", "likes": 0, "version": 1}),
        ),
        0 | 1 => {
            let len = 1 + cases.below(300);
            cases.bytes(len)
        }
        2 => cases
            .pick(&[
                &b"{"[..],
                b"{\"id\":",
                b"null",
                b"[]",
                b"42",
                b"\"text\"",
                b"",
                b"{}",
            ])
            .to_vec(),
        3 => envelope("product.exploded", json!({"id": 1})),
        4 => envelope(
            "likes.counted",
            json!({"counted_at_ms": "now", "counts": [{"id": "seven", "likes": 1, "version": 1}]}),
        ),
        5 => envelope(
            "product.created",
            json!({"id": 1, "title": "ok", "image": "javascript:alert(1)", "likes": 0, "version": 1}),
        ),
        6 => envelope("resync.requested", json!([1, 2, 3])),
        7 => json!({"id": "not a uuid", "type": "likes.counted", "data": {}})
            .to_string()
            .into_bytes(),
        8 => envelope(
            "likes.counted",
            json!({"counted_at_ms": 1, "counts": [{"id": -1, "likes": 1, "version": 1, "epoch": 1}]}),
        ),
        _ => {
            let mut bytes = envelope("product.deleted", json!({"id": 1, "version": 2}));
            bytes.truncate(bytes.len() / 2);
            bytes
        }
    }
}

fn malformed_batch(cases: &mut Cases, routing_keys: &[&str], count: usize) -> Vec<OutgoingMessage> {
    (0..count)
        .map(|n| OutgoingMessage {
            routing_key: (*cases.pick(routing_keys)).to_owned(),
            message_id: format!("malformed-{n}"),
            payload: malformed(cases, n),
        })
        .collect()
}

/// Reads `count` messages from the dead-letter queue of `queue`, each with a refusal reason,
/// and acks them.
async fn drain_dead_letters(queue: QueueSpec, count: usize) {
    let spec = queue.dead_letters();
    let mut subscription = rabbitmq_bus().subscribe(&spec).await.expect("subscribe");
    let read = async {
        for _ in 0..count {
            let delivery = subscription
                .next()
                .await
                .expect("the subscription stays open");
            assert!(delivery.headers.contains_key(DEAD_LETTER_REASON));
            delivery.ack().await.expect("acked");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("{count} dead letters in {} within a minute", spec.queue));
}

/// A product event of the catalog's epoch, stamped with a generation above any resync's (each
/// round asks for one), so that the last one stays in the read model.
fn snapshot(id: i64, title: &str, epoch: i64, version: i64) -> ProductSnapshot {
    ProductSnapshot {
        id: ProductId::from_stored(id),
        title: ProductTitle::parse(title).expect("a title"),
        image: ImageUrl::parse("https://images.example.com/p.jpg").expect("a URL"),
        version,
        epoch,
        generation: i64::MAX,
    }
}

/// Waits for `at_least` of the catalog's republished snapshots of `title` on a queue of our own.
async fn snapshots_of(observer: &mut Subscription, title: &str, at_least: usize) {
    let mut seen = 0;
    let read = async {
        while seen < at_least {
            let delivery = observer.next().await.expect("the observer stays open");
            let body: Value = serde_json::from_slice(&delivery.payload).unwrap_or_default();
            // Like counts carry the title too; only republished snapshots answer a resync.
            if body["type"] == "product.updated" && body["data"]["title"] == title {
                seen += 1;
            }
            delivery.ack().await.expect("acked");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the resync requests between the malformed ones were answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_malformed_messages_per_queue_are_dead_lettered_and_good_ones_still_count() {
    let app = spawn_app().await;
    let id = app.create_visible_product("Original").await;
    let (epoch, _) = catalog_era(&app.catalog_database).await;
    let mut live = app.connect_live().await.expect("a live socket");
    let catalog_exchange = format!("{}.catalog", app.namespace);
    let web_exchange = format!("{}.web", app.namespace);
    let mut observer = rabbitmq_bus()
        .subscribe(&QueueSpec {
            queue: unique(&format!("{}.observer", app.namespace)),
            exchange: catalog_exchange.clone(),
            declares_exchange: true,
            bindings: vec!["product.#".to_owned()],
            kind: QueueKind::Live,
            prefetch: 500,
        })
        .await
        .expect("an observer queue");

    // Ten rounds of 100 malformed messages per queue, each followed by good ones.
    let mut cases = Cases(0x5eed_1234_abcd_ef01);
    for round in 0..10_i64 {
        // Counts go to the catalog's queue and to every gallery queue alike.
        let counts = malformed_batch(&mut cases, &["likes.counted"], 100);
        rabbitmq_bus()
            .publish(&web_exchange, &counts)
            .await
            .expect("published");
        let galleries = malformed_batch(&mut cases, &["gallery.changed"], 100);
        rabbitmq_bus()
            .publish(&web_exchange, &galleries)
            .await
            .expect("published");
        let resyncs = malformed_batch(&mut cases, &["resync.requested"], 100);
        rabbitmq_bus()
            .publish(&web_exchange, &resyncs)
            .await
            .expect("published");
        let products = malformed_batch(&mut cases, &["product.created", "product.updated"], 100);
        rabbitmq_bus()
            .publish(&catalog_exchange, &products)
            .await
            .expect("published");

        assert_eq!(app.new_visitor().await.like(id).await.status(), 200);
        publish_events(&web_exchange, &[Envelope::new(ResyncEvent::Requested {})]).await;
        let renamed = CatalogEvent::ProductUpdated(snapshot(
            id,
            &format!("Good {round}"),
            epoch,
            100 + round,
        ));
        publish_events(&catalog_exchange, &[Envelope::new(renamed)]).await;
    }

    // Every malformed message is in its queue's dead-letter queue…
    let topology = Topology::new(app.namespace.as_str());
    drain_dead_letters(topology.catalog_likes(200), 1000).await;
    drain_dead_letters(topology.catalog_resync(), 1000).await;
    drain_dead_letters(topology.web_read_model(200), 1000).await;
    drain_dead_letters(topology.web_gallery(200), 2000).await;

    // …and every good one was applied: ten likes counted, in the catalog and on the socket, the
    // last rename in the read model and on the socket, ten resyncs answered with the catalog's
    // own snapshot.
    wait_until("ten likes in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&10)
    })
    .await;
    app.wait_for_gallery("the last good rename", |html| html.contains("Good 9"))
        .await;
    let (mut renamed, mut counted) = (false, false);
    while !(renamed && counted) {
        let message = live.next_message().await;
        match message["type"].as_str() {
            Some("product") => renamed |= message["product"]["title"] == "Good 9",
            Some("counts") => {
                counted |= message["counts"]
                    .as_array()
                    .expect("counts")
                    .iter()
                    .any(|count| count[0] == id && count[1] == 10);
            }
            _ => {}
        }
    }
    snapshots_of(&mut observer, "Original", 10).await;
    assert_eq!(app.healthz().await.status(), 200);
    app.stop().await;
}

/// A title that `ProductTitle` refuses, or a value that is not a string at all.
fn bad_title(cases: &mut Cases) -> Option<Value> {
    let long = "é".repeat(TITLE_MAX_CHARS + 1 + cases.below(1000));
    let choices = [
        json!(""),
        json!("   \t\n "),
        json!(long),
        json!("nul\u{0}byte"),
        json!("bell\u{7}"),
        json!("\u{1b}[31mred"),
        json!("line\u{85}break"),
        json!(42),
        json!(null),
        json!(true),
        json!(["Sunset"]),
        json!({"text": "Sunset"}),
    ];
    (cases.below(10) > 0).then(|| cases.pick(&choices).clone())
}

/// An image URL that `ImageUrl` refuses, or not a string.
fn bad_image(cases: &mut Cases) -> Option<Value> {
    let long = format!("https://e.example/{}", "a".repeat(IMAGE_URL_MAX_CHARS));
    let choices = [
        json!("javascript:alert(1)"),
        json!("JaVaScRiPt:alert(document.cookie)"),
        json!("  javascript:alert(1)"),
        json!("java\tscript:alert(1)"),
        json!("data:image/png;base64,iVBORw0KGgo="),
        json!("data:text/html,<script>alert(1)</script>"),
        json!("vbscript:msgbox(1)"),
        json!("file:///etc/passwd"),
        json!("ftp://e.example/a.png"),
        json!("//e.example/a.png"),
        json!("/relative.png"),
        json!("https://"),
        json!("https://e xample.com/a.png"),
        json!("https://e.example/a.png\"onerror=\"alert(1)"),
        json!("https://e.example/<script>"),
        json!("https://user:pw@e.example/a.png"),
        json!(long),
        json!(""),
        json!(7),
        json!(null),
        json!(["https://e.example/a.png"]),
    ];
    (cases.below(10) > 0).then(|| cases.pick(&choices).clone())
}

/// Valid values, to pair with a bad one: the request is refused for the other field.
fn good_title(cases: &mut Cases) -> Value {
    json!(cases.pick(&[
        "Sunset",
        "<script>alert(1)</script>",
        "Zürich ☃ 🌅",
        "\u{202e}evil",
        "a\u{301}",
        "' or 1=1 --"
    ]))
}

fn good_image(cases: &mut Cases) -> Value {
    json!(cases.pick(&[
        "https://images.example.com/a.png",
        "http://e.example/b.jpg?x=1#y"
    ]))
}

/// One generated body that must be refused: a JSON object with at least one bad field, or
/// something that is not a product object at all.
fn bad_body(cases: &mut Cases) -> (String, &'static str) {
    let json_type = "application/json";
    match cases.below(12) {
        0 => (
            (*cases.pick(&["{", "{\"title\":", "nope", "{'title': 'x'}", "\u{feff}{}"])).to_owned(),
            json_type,
        ),
        1 => (
            (*cases.pick(&["[]", "null", "42", "\"title\"", "true"])).to_owned(),
            json_type,
        ),
        2 => (
            r#"{"title": "\ud800", "image": "https://e.example/a.png"}"#.to_owned(),
            json_type,
        ),
        3 => (
            json!({"title": "Sunset", "image": "https://e.example/a.png"}).to_string(),
            *cases.pick(&["text/plain", "application/x-www-form-urlencoded", ""]),
        ),
        4 => (
            json!({"title": "x".repeat(70_000), "image": "https://e.example/a.png"}).to_string(),
            json_type,
        ),
        _ => {
            // Every branch below leaves at least one field bad or missing.
            let (title, image) = (bad_title(cases), bad_image(cases));
            let mut body = serde_json::Map::new();
            match title {
                Some(title) => drop(body.insert("title".to_owned(), title)),
                None if cases.below(2) == 0 => {}
                None => drop(body.insert("title".to_owned(), good_title(cases))),
            }
            match image {
                Some(image) => drop(body.insert("image".to_owned(), image)),
                None if body.get("title").is_some_and(|t| t.is_string()) && !body.is_empty() => {}
                None => drop(body.insert("image".to_owned(), good_image(cases))),
            }
            (Value::Object(body).to_string(), json_type)
        }
    }
}

/// Sends one bad request and checks the answer: a 4xx whose body is a JSON error.
async fn refused(request: reqwest::RequestBuilder, what: &str) {
    let response = request.send().await.expect("the app answers (no panic)");
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert!(status.is_client_error(), "{what}: {status} {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{what}: {status} with a body that is not JSON: {text}"));
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{what}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_bad_requests_get_json_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let id = app.create_visible_product("Kept as it is").await;
    let before = app.admin_products_unversioned().await;

    let mut cases = Cases(0x0fee_dbee_f0dd_c0de);
    for n in 0..400 {
        let (body, content_type) = bad_body(&mut cases);
        let (method, path) = if n % 2 == 0 {
            (reqwest::Method::POST, String::new())
        } else {
            (reqwest::Method::PUT, format!("/{id}"))
        };
        let mut request = app.admin(method.clone(), &path).body(body.clone());
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let shown: String = body.chars().take(120).collect();
        refused(request, &format!("{method} {path} {content_type} {shown}")).await;
    }

    // Ids that name no product, on every route that takes one.
    let ids = [
        "0",
        "-1",
        "abc",
        "1.5",
        "1e3",
        "99999999999999999999",
        "%00",
        "%F0%9F%98%80",
        "1;drop",
    ];
    let visitor = app.new_visitor().await;
    for raw in ids {
        refused(app.admin(reqwest::Method::GET, &format!("/{raw}")), raw).await;
        refused(app.admin(reqwest::Method::DELETE, &format!("/{raw}")), raw).await;
        let like = app
            .client
            .post(app.url(&format!("/api/products/{raw}/like")))
            .header("cookie", &visitor.cookie);
        refused(like, raw).await;
    }

    // Nothing was stored or changed, and the app still serves.
    assert_eq!(app.admin_products_unversioned().await, before);
    assert_eq!(visitor.products().await.len(), 1);
    assert_eq!(app.healthz().await.status(), 200);
    app.stop().await;
}
