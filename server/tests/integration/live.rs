//! The live hub behind `GET /ws`: every socket receives what the hub publishes, and the
//! connection cap refuses extra sockets clearly.

use crate::helpers::{fresh_database, spawn_app_with, Engine, SqliteDir, TestOptions};
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

    hub.publish(&LiveMessage::Likes {
        id: ProductId::from_stored(7),
        likes: 42,
    });
    for client in &mut clients {
        assert_eq!(
            client.next_message().await,
            json!({"type": "likes", "id": 7, "likes": 42})
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
            let likes = client.next_of_type("likes").await;
            assert_eq!(likes["id"], id);
            match likes["likes"].as_i64() {
                Some(1) => break,
                Some(0) => continue,
                other => panic!("unexpected count {other:?}"),
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
        extra_args: vec!["--live-buffer=1024".to_owned()],
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
            hub.publish(&LiveMessage::Likes {
                id: ProductId::from_stored(1),
                likes: n * batch + k,
            });
        }
        let last = n * batch + batch - 1;
        loop {
            let message = fast.next_message().await;
            assert_ne!(message["type"], "resync", "the reading client never lags");
            if message["likes"] == last {
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
