//! The live hub behind `GET /ws`: every socket receives what the hub publishes; the caps, the
//! `Origin` check and the send timeout keep sockets from hurting the instance; the in-memory
//! gallery behind it catches up by itself after its queue was lost.

use crate::helpers::{
    connection_named, database, fresh_database, rabbitmqctl, spawn_app, spawn_app_with, wait_until,
    Engine, SqliteDir, TestOptions,
};
use app::domain::ProductId;
use app::live::LiveMessage;
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_open_socket_receives_a_published_message() {
    let app = spawn_app_with(TestOptions::embedded()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(app.connect_live().await.expect("the socket opens"));
    }
    let hub = app.live.clone().expect("the web role has a live hub");
    assert_eq!(hub.open_connections(), 3);

    hub.publish(&LiveMessage::Counts {
        counts: vec![(ProductId::from_stored(7), 42, 3)],
    });
    for client in &mut clients {
        assert_eq!(
            client.next_message().await,
            json!({"type": "counts", "counts": [[7, 42, 3]]})
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_beyond_the_cap_are_refused_with_503() {
    let app = spawn_app_with(TestOptions {
        extra_args: vec!["--live-max-connections=2".to_owned()],
        ..TestOptions::embedded()
    })
    .await;
    let _first = app.connect_live().await.expect("first socket opens");
    let _second = app.connect_live().await.expect("second socket opens");
    match app.connect_live().await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("a third socket must be refused"),
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_like_through_one_web_instance_reaches_sockets_on_both() {
    let catalog = spawn_app_with(TestOptions {
        role: "catalog",
        ..TestOptions::default()
    })
    .await;
    let shared = fresh_database(Engine::Postgres, &SqliteDir::new()).await;
    let web_options = TestOptions {
        web_database: Some(shared),
        ..catalog.sibling("web")
    };
    let web_a = spawn_app_with(web_options.clone()).await;
    let web_b = spawn_app_with(web_options).await;

    let created = catalog
        .create_product(
            &json!({"title": "Aurora", "image": "https://images.example.com/aurora.jpg"}),
        )
        .await;
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let visitor = web_a.new_visitor().await;
    crate::helpers::wait_until("the product in the shared read model", || async {
        visitor.products().await.iter().any(|p| p["id"] == id)
    })
    .await;

    let mut clients = Vec::new();
    for web in [&web_a, &web_b] {
        for _ in 0..3 {
            clients.push(web.connect_live().await.expect("the socket opens"));
        }
    }
    assert_eq!(visitor.like(id).await.status(), 200);
    for client in &mut clients {
        // The creation may still be passing through an instance with its count of 0.
        loop {
            match client.next_count_of(id).await {
                1 => break,
                0 => continue,
                other => panic!("unexpected count {other}"),
            }
        }
    }

    // A product change reaches them too.
    let renamed = catalog
        .admin(reqwest::Method::PUT, &format!("/{id}"))
        .json(
            &json!({"title": "Aurora borealis", "image": "https://images.example.com/aurora.jpg"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    for client in &mut clients {
        // The creation may still be on its way to an instance that did not write the read model.
        let renamed = loop {
            let message = client.next_of_type("product").await;
            if message["product"]["title"] == "Aurora borealis" {
                break message;
            }
        };
        assert_eq!(renamed["product"]["likes"], 1);
    }
    web_a.stop().await;
    web_b.stop().await;
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_delay_others_and_is_told_to_resync() {
    let app = spawn_app_with(TestOptions {
        // Long enough a send timeout for the slow client to come back before it is let go.
        extra_args: vec![
            "--live-buffer=1024".to_owned(),
            "--live-send-timeout=300000".to_owned(),
        ],
        ..TestOptions::embedded()
    })
    .await;
    let hub = app.live.clone().expect("a live hub");
    let mut slow = app.connect_live().await.expect("the socket opens");
    let mut fast = app.connect_live().await.expect("the socket opens");

    // Publish in batches, each time waiting for the fast client to read the batch's last message:
    // it never falls behind, while the slow one, reading nothing, fills its socket and then its
    // place in the channel.
    let batches = 600;
    let batch = 500;
    for n in 0..batches {
        for k in 0..batch {
            hub.publish(&LiveMessage::Counts {
                counts: vec![(ProductId::from_stored(1), n * batch + k, n * batch + k)],
            });
        }
        let last = n * batch + batch - 1;
        loop {
            let message = fast.next_message().await;
            assert_ne!(message["type"], "resync", "the reading client never lags");
            if message["counts"][0][1] == last {
                break;
            }
        }
    }

    // The slow client now reads what was buffered for it, then learns it missed messages.
    loop {
        let message = slow.next_message().await;
        if message["type"] == "resync" {
            break;
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_after_the_send_timeout() {
    let app = spawn_app_with(TestOptions {
        extra_args: vec![
            "--live-buffer=16".to_owned(),
            "--live-send-timeout=300".to_owned(),
        ],
        ..TestOptions::embedded()
    })
    .await;
    let hub = app.live.clone().expect("a live hub");
    let _silent = app.connect_live().await.expect("the socket opens");
    assert_eq!(hub.open_connections(), 1);
    // Big frames, until the peer's buffers are full and a send waits out the timeout.
    let frame = LiveMessage::Counts {
        counts: (1..=1000)
            .map(|id| (ProductId::from_stored(id), id, id))
            .collect(),
    };
    let gone = async {
        while hub.open_connections() > 0 {
            for _ in 0..10 {
                hub.publish(&frame);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), gone)
        .await
        .expect("the socket that reads nothing is closed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_beyond_the_per_address_cap_are_refused_with_429() {
    let app = spawn_app_with(TestOptions {
        extra_args: vec!["--live-max-per-address=2".to_owned()],
        ..TestOptions::embedded()
    })
    .await;
    let first = app.connect_live().await.expect("first socket opens");
    let _second = app.connect_live().await.expect("second socket opens");
    match app.connect_live().await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 429),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("a third socket from one address must be refused"),
    }
    // A closed socket gives its place back.
    drop(first);
    wait_until("the first socket's place is free", || async {
        app.connect_live().await.is_ok()
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_from_another_sites_page_is_refused_with_403() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app_with(TestOptions::embedded()).await;
    let handshake = |origin: Option<String>| {
        let mut request = format!("ws://{}/ws", app.address)
            .into_client_request()
            .expect("a request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("a header value"));
        }
        tokio_tungstenite::connect_async(request)
    };
    match handshake(Some("https://evil.example".to_owned())).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("another site's page must be refused"),
    }
    handshake(Some(format!("http://{}", app.address)))
        .await
        .expect("this site's own page is let in");
    handshake(None)
        .await
        .expect("a client that is not a browser's page is let in");
    app.stop().await;
}

/// An instance's gallery queue is made anew after a lost connection, and what the read model
/// committed in between never reached it: the gallery loads the read model again and pushes
/// the difference. Here the missed commit is written straight into the read model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_queue_is_made_anew_the_gallery_loads_what_it_missed() {
    let app = spawn_app().await;
    let id = app.create_visible_product("Before").await;
    let mut live = app.connect_live().await.expect("a live socket");

    let web = database(&app.web_database).await;
    sqlx::query(&format!(
        "update product set title = 'Missed', version = version + 1000 where id = {id}"
    ))
    .execute(&web)
    .await
    .expect("updated");
    // Nothing polls the read model: the gallery shows what it was told.
    let listed = app.get("/api/products").await.text().await.expect("a body");
    assert!(
        listed.contains("Before") && !listed.contains("Missed"),
        "{listed}"
    );

    let name = format!("live-gallery consumer of {}.web.gallery.*", app.namespace);
    let pid = connection_named(&name)
        .await
        .expect("the gallery's consumer connection is open");
    rabbitmqctl(&[
        "close_connection",
        &pid,
        "test: the gallery queue goes away",
    ])
    .await;

    loop {
        let message = live.next_of_type("product").await;
        if message["product"]["title"] == "Missed" {
            break;
        }
    }
    wait_until("the list shows the missed rename", || async {
        let listed = app
            .get("/api/products")
            .await
            .text()
            .await
            .unwrap_or_default();
        listed.contains("Missed")
    })
    .await;
    web.close().await;
    app.stop().await;
}
