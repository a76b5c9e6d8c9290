//! Messages a consumer held when its connection went away go back to the queue, and RabbitMQ
//! counts every such return against the queue's delivery limit. Healthy messages must never
//! reach that limit through lost connections: the catalog's consumer connection closed 25 times
//! under a backlog leaves the newest count applied and nothing dead-lettered.

use crate::helpers::{
    catalog_era, connection_named, messages_in, publish_events, rabbitmqctl, spawn_app, wait_until,
    ABOVE_ANY_CLOCK,
};
use server::bus::Envelope;
use server::events::{LikeCount, LikeCounts, LikesEvent};
use std::time::Duration;

/// The `n`th count of `product`, numbered from 1, with versions that grow with it above any the
/// web database gives.
fn count_of(product: i64, epoch: i64, n: usize) -> Envelope<LikesEvent> {
    let n = n as i64 + 1;
    Envelope::new(LikesEvent::Counted(LikeCounts {
        counted_at_ms: 1_764_633_600_000,
        counts: vec![LikeCount {
            id: app::domain::ProductId::from_stored(product),
            likes: n,
            version: ABOVE_ANY_CLOCK + n,
            epoch,
        }],
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
    let (epoch, _) = catalog_era(&app.catalog_database).await;

    let mut pace = tokio::time::interval(Duration::from_secs(1));
    for round in 0..ROUNDS {
        pace.tick().await;
        // A backlog the consumer cannot have taken in before the connection goes.
        let counts: Vec<_> = (0..BACKLOG)
            .map(|n| count_of(id, epoch, round * BACKLOG + n))
            .collect();
        publish_events(&exchange, &counts).await;
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
    wait_until("the newest count in the catalog", || async {
        app.catalog_likes().await.get(&id) == Some(&total)
    })
    .await;
    assert_eq!(
        messages_in(&format!("{queue}.dead-letter")).await,
        0,
        "no healthy count was dead-lettered"
    );
    app.stop().await;
}
