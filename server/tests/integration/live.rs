//! The live hub behind `GET /ws`: every socket receives what the hub publishes, and the
//! connection cap refuses extra sockets clearly.

use crate::helpers::{spawn_app_with, TestOptions};
use app::domain::ProductId;
use app::live::LiveMessage;
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

#[tokio::test]
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

#[tokio::test]
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
