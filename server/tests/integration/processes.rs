//! The production shape: catalog and two web instances as separate processes of the real binary,
//! on RabbitMQ and PostgreSQL, the web instances sharing one database. Likes through both
//! instances end in exact counts, both instances' sockets see them, and `/metrics` moves (freshness
//! included: from a like's commit to its count on the sockets).

use crate::process::{metric, Deployment};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// `GET url` as JSON, with an optional bearer token.
async fn get_json(client: &reqwest::Client, url: String, token: Option<&str>) -> Value {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request reaches the process");
    response.json().await.expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_two_web_processes_keep_exact_counts_and_live_sockets() {
    let deployment = Deployment::start(2, &[("log-format", "json")]).await;
    let (catalog, webs, token) = (
        &deployment.catalog,
        &deployment.webs,
        &deployment.admin_token,
    );
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("http://{}/api/admin/products", catalog.address))
        .bearer_auth(token)
        .json(&json!({"title": "Delta", "image": "https://images.example.com/delta.jpg"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();

    // Sockets on both instances, opened before the likes.
    let mut sockets = Vec::new();
    for web in webs.iter() {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", web.address))
            .await
            .expect("ws");
        sockets.push(socket);
    }

    // Ten visitors on each instance like the product.
    let mut visitors = Vec::new();
    for web in webs.iter() {
        for _ in 0..10 {
            let page = client
                .get(format!("http://{}/", web.address))
                .send()
                .await
                .unwrap();
            let cookie = crate::helpers::set_cookie(&page, "lg_visitor").expect("a visitor cookie");
            visitors.push((web.address, cookie.split(';').next().unwrap().to_owned()));
        }
    }
    crate::helpers::wait_until("the product on both web instances", || async {
        let list = get_json(
            &client,
            format!("http://{}/api/products?limit=200", webs[1].address),
            None,
        )
        .await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id)
    })
    .await;
    for (address, cookie) in &visitors {
        let liked = client
            .post(format!("http://{address}/api/products/{id}/like"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(liked.status(), 200);
    }

    crate::helpers::wait_until("20 likes in the catalog", || async {
        let list = get_json(
            &client,
            format!("http://{}/api/admin/products", catalog.address),
            Some(token),
        )
        .await;
        list[0]["likes"] == 20
    })
    .await;
    for web in webs.iter() {
        crate::helpers::wait_until("20 likes in each web instance", || async {
            let list = get_json(
                &client,
                format!("http://{}/api/products?limit=200", web.address),
                None,
            )
            .await;
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == id && p["likes"] == 20)
        })
        .await;
    }
    for socket in &mut sockets {
        let final_count = async {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    let counts = message["counts"].as_array().cloned().unwrap_or_default();
                    if counts.iter().any(|pair| pair[0] == id && pair[1] == 20) {
                        return;
                    }
                }
            }
            panic!("socket closed");
        };
        tokio::time::timeout(Duration::from_secs(30), final_count)
            .await
            .expect("the final count reaches every socket");
    }

    let metrics = |address: SocketAddr| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{address}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let catalog_metrics = metrics(catalog.address).await;
    assert!(
        metric(
            &catalog_metrics,
            "live_gallery_events_consumed_total",
            "consumer=\"likes\""
        ) >= 1.0,
        "the catalog took the web database's counts: {catalog_metrics}"
    );
    assert!(
        metric(
            &catalog_metrics,
            "live_gallery_events_published_total",
            "routing_key=\"product."
        ) >= 1.0,
        "the creation: {catalog_metrics}"
    );
    // Each part of a process has its gauge: 1 while it runs (a process of its own here, so the
    // gauges are this process's alone).
    for part in ["consumer:likes", "consumer:resync", "relay:catalog"] {
        assert_eq!(
            metric(
                &catalog_metrics,
                "live_gallery_part_up",
                &format!("part=\"{part}\"")
            ),
            1.0,
            "{part}: {catalog_metrics}"
        );
    }
    let mut likes_accepted = 0.0;
    for web in webs.iter() {
        let text = metrics(web.address).await;
        likes_accepted += metric(&text, "live_gallery_likes_total", "action=\"like\"");
        assert!(
            metric(
                &text,
                "live_gallery_http_requests_total",
                "route=\"/api/products/{id}/like\""
            ) >= 10.0,
            "{text}"
        );
        assert_eq!(metric(&text, "live_gallery_websockets_open", ""), 1.0);
        // Both instances pushed the counts of likes committed on either: each measured how long
        // that took, from the like's commit to the frame (seconds, with fixed buckets).
        let measured = metric(&text, "live_gallery_like_to_socket_seconds_count", "");
        assert!(measured >= 1.0, "{text}");
        assert_eq!(
            metric(
                &text,
                "live_gallery_like_to_socket_seconds_bucket",
                "le=\"+Inf\""
            ),
            measured,
            "{text}"
        );
        let total = metric(&text, "live_gallery_like_to_socket_seconds_sum", "");
        assert!(total > 0.0 && total / measured < 30.0, "{text}");
    }
    assert_eq!(likes_accepted, 20.0);

    // The catalog logged JSON lines, and a request's lines carry its request id.
    let log = catalog.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let created = lines
        .iter()
        .find(|line| line["fields"]["message"] == "product created")
        .unwrap_or_else(|| panic!("no product created line in {log}"));
    let spans = created["spans"].as_array().expect("the spans of the line");
    assert!(
        spans
            .iter()
            .any(|span| span["request_id"].as_str().is_some_and(|id| id.len() == 32)),
        "{created}"
    );
}

/// The benchmark's own correctness checks hold on a small run (its figures mean nothing in a
/// debug build; `.ci/bench` measures a release build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_and_its_checks_hold() {
    let (amqp, postgres) = (
        crate::helpers::amqp_url(),
        crate::helpers::postgres_admin_url(),
    );
    let args = [
        "--server",
        env!("CARGO_BIN_EXE_server"),
        "--amqp",
        amqp.as_str(),
        "--postgres",
        postgres.as_str(),
        "--only",
        "storm-sockets,fanout,embedded,first-visit",
        "--duration",
        "2",
        "--products",
        "5",
        "--visitors",
        "40",
        "--concurrency",
        "4",
        "--sockets",
        "20",
        "--fanout-sockets",
        "50",
        "--fanout-rate",
        "10",
    ]
    .map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(args)
            .output()
    })
    .await
    .expect("joined")
    .expect("the load generator runs");
    let table = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{table}\n{log}");
    let rows: Vec<&str> = table
        .lines()
        .filter(|line| line.contains("| ok: "))
        .collect();
    assert!(rows.len() >= 8, "every figure checked:\n{table}");
    assert!(!table.contains("FAILED"), "{table}");
}

/// Two web instances on one database each run an outbox relay; every `likes.counted` event
/// still goes out once: an observer of the web exchange receives each event id once, and as many
/// events as both instances' `/metrics` say they published. Batches make them fewer than the likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_web_instances_publish_each_count_event_once() {
    use crate::burst::{self, Tally};
    use server::bus::{QueueKind, QueueSpec};
    use std::sync::atomic::AtomicUsize;

    let deployment = Deployment::start(2, &[]).await;
    let (catalog, token) = (deployment.catalog.address, &deployment.admin_token);
    let mut observer = crate::helpers::rabbitmq_bus()
        .subscribe(&QueueSpec {
            queue: crate::helpers::unique(&format!("{}.observer", deployment.namespace)),
            exchange: format!("{}.web", deployment.namespace),
            declares_exchange: true,
            bindings: vec!["likes.counted".to_owned()],
            kind: QueueKind::Live,
            prefetch: 500,
        })
        .await
        .expect("an observer queue");
    let products = burst::create_products(catalog, token, 5).await;
    let webs: Vec<SocketAddr> = deployment.webs.iter().map(|web| web.address).collect();
    for &web in &webs {
        crate::helpers::wait_until("the products on every web instance", || async {
            burst::gallery(web)
                .await
                .is_some_and(|seen| seen.len() == 5)
        })
        .await;
    }
    let mut visitors = Vec::new();
    for &web in &webs {
        visitors.extend(burst::visitors(web, 40).await);
    }
    let tally = Tally::default();
    let likes = burst::like_all(&visitors, &products, 16, &tally, &AtomicUsize::new(0)).await;
    let answered = Tally::get(&tally.settled);
    let titles = (0..products.len())
        .map(|n| (products[n], format!("Picture {n}")))
        .collect();
    burst::wait_for_everywhere(catalog, token, &webs, &burst::expected(&likes, &titles)).await;

    let client = reqwest::Client::new();
    let published = || async {
        let mut sum = 0.0;
        for web in &webs {
            let text = client
                .get(format!("http://{web}/metrics"))
                .send()
                .await
                .expect("metrics answer")
                .text()
                .await
                .expect("text");
            sum += metric(
                &text,
                "live_gallery_events_published_total",
                "routing_key=\"likes.counted\"",
            );
        }
        sum as usize
    };
    // Every event published is received; the counter moves just after the broker's confirm.
    let mut received = std::collections::HashMap::<String, usize>::new();
    let read = async {
        loop {
            let total: usize = received.values().sum();
            if total > 0 && total == published().await {
                break;
            }
            let next = tokio::time::timeout(Duration::from_millis(500), observer.next()).await;
            if let Ok(Some(delivery)) = next {
                let id = delivery.message_id.clone().expect("a message id");
                *received.entry(id).or_default() += 1;
                delivery.ack().await.expect("acked");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("every published event received");
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "no event went out twice: {twice:?}");
    assert!(
        received.len() < answered,
        "{} events for {answered} likes: one per batch, not one per like",
        received.len()
    );
}
