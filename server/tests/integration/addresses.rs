//! `AMQP_URL` with several addresses (the nodes of a cluster): an address that does not answer is
//! passed over, and connections lost with one node are made again through the next.

use crate::helpers::*;

/// A port on 127.0.0.1 where nothing listens.
async fn dead_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
    // Dropped here: connections to it are refused.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_does_not_answer_is_passed_over() {
    let dead = amqp_url().replacen(
        "127.0.0.1:5672",
        &format!("127.0.0.1:{}", dead_port().await),
        1,
    );
    let app = spawn_app_with(TestOptions {
        amqp_url: Some(format!("{dead},{}", amqp_url())),
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Second address").await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(id).await.status(), 200);
    wait_until("the catalog counts the like", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;
    let ready: serde_json::Value = app.readyz().await.json().await.unwrap();
    assert_eq!(ready["checks"]["bus"], "ok", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_lost_with_one_address_are_made_again_through_the_next() {
    let first = BrokerProxy::start().await;
    let second = BrokerProxy::start().await;
    let app = spawn_app_with(TestOptions {
        amqp_url: Some(format!("{},{}", first.url, second.url)),
        ..TestOptions::default()
    })
    .await;
    let id = app.create_visible_product("Before the cut").await;
    let visitor = app.new_visitor().await;
    assert_eq!(visitor.like(id).await.status(), 200);
    wait_until("the catalog counts the first like", || async {
        app.catalog_likes().await.get(&id) == Some(&1)
    })
    .await;

    // The first node goes away for good: its connections drop and it refuses new ones.
    first.cut();
    let later = app.create_visible_product("After the cut").await;
    let others: Vec<_> = futures_util::future::join_all((0..5).map(|_| app.new_visitor())).await;
    for other in &others {
        assert_eq!(other.like(later).await.status(), 200);
        assert_eq!(other.like(id).await.status(), 200);
    }
    wait_until("every like counted through the second address", || async {
        let likes = app.catalog_likes().await;
        likes.get(&id) == Some(&6) && likes.get(&later) == Some(&5)
    })
    .await;
    wait_until("every counter settled", || async {
        app.miscounted().await.is_empty()
    })
    .await;
    let ready: serde_json::Value = app.readyz().await.json().await.unwrap();
    assert_eq!(ready["checks"]["bus"], "ok", "{ready}");
}
