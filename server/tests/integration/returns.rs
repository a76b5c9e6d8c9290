//! Messages a consumer held when its connection went away go back to the queue, and RabbitMQ
//! counts every such return against the queue's delivery limit. Healthy messages must never
//! reach that limit through lost connections: the catalog's consumer connection closed 25 times
//! under a backlog leaves every like counted and nothing dead-lettered.

use crate::helpers::{connection_named, publish_events, rabbitmqctl, spawn_app, wait_until};
use server::bus::Envelope;
use server::events::{LikeChange, LikeEvent};
use std::time::Duration;

/// Ready and unacknowledged messages in `queue`, summed over virtual hosts.
async fn messages_in(queue: &str) -> u64 {
    let mut total = 0;
    for vhost in rabbitmqctl(&["list_vhosts", "--no-table-headers", "name"])
        .await
        .lines()
    {
        let listing = rabbitmqctl(&[
            "list_queues",
            "-p",
            vhost,
            "--no-table-headers",
            "name",
            "messages",
        ])
        .await;
        total += listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(name, _)| *name == queue)
            .filter_map(|(_, count)| count.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

fn like_of(product: i64, round: usize, n: usize) -> Envelope<LikeEvent> {
    let visitor = format!("{round:08x}-{n:04x}-4111-8111-111111111111");
    Envelope::new(LikeEvent::Added(LikeChange {
        product_id: app::domain::ProductId::from_stored(product),
        visitor_id: app::domain::VisitorId::parse(&visitor).expect("a visitor id"),
        seq: 1,
        epoch: 0,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_catalogs_consumer_connection_25_times_under_a_backlog_dead_letters_nothing() {
    const ROUNDS: usize = 25;
    const BACKLOG: usize = 1000;
    let app = spawn_app().await;
    let id = app.create_visible_product("Tide").await;
    let queue = format!("{}.catalog.likes", app.namespace);
    let connection = format!("live-gallery consumer of {queue}");
    let exchange = format!("{}.web", app.namespace);

    let mut pace = tokio::time::interval(Duration::from_secs(1));
    for round in 0..ROUNDS {
        pace.tick().await;
        // A backlog the consumer cannot have taken in before the connection goes.
        let likes: Vec<_> = (0..BACKLOG).map(|n| like_of(id, round, n)).collect();
        publish_events(&exchange, &likes).await;
        let pid = std::sync::Mutex::new(None);
        wait_until("the catalog's consumer connected", || async {
            let found = connection_named(&connection).await;
            let open = found.is_some();
            *pid.lock().unwrap() = found;
            open
        })
        .await;
        let pid = pid.into_inner().unwrap().expect("a connection");
        rabbitmqctl(&[
            "close_connection",
            &pid,
            "test: connection closed under a backlog",
        ])
        .await;
    }

    let total = (ROUNDS * BACKLOG) as i64;
    wait_until("every like counted in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&total)
    })
    .await;
    assert_eq!(
        messages_in(&format!("{queue}.dead-letter")).await,
        0,
        "no healthy like was dead-lettered"
    );
    // The likes came straight onto the bus, so only the catalog's recount applies.
    let miscounted: Vec<String> = app
        .miscounted()
        .await
        .into_iter()
        .filter(|wrong| wrong.starts_with("catalog"))
        .collect();
    assert_eq!(miscounted, Vec::<String>::new());
    app.stop().await;
}
