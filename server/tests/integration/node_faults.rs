//! Faults of RabbitMQ nodes, on a three-node cluster of each test's own (`broker_cluster`), with
//! the roles as separate processes given every node's address: `kill -9` of the node that leads
//! the likes queue (and holds every service's connections) mid-storm, and two of the three
//! nodes stopped, leaving no quorum. Each ends exact with nothing dead-lettered.

use crate::broker_cluster::BrokerCluster;
use crate::burst::{self, Tally};
use crate::helpers::wait_until;
use crate::process::Deployment;
use crate::storm::Storm;
use std::sync::atomic::AtomicUsize;

/// The default of a deployment, which the other tests change for the single machine broker.
const QUORUM_DEAD_LETTERS: &[(&str, &str)] = &[("dead-letter-queues", "quorum")];

/// Where the clusters' nodes keep their data: under the cargo target.
const CLUSTERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/broker-clusters");

async fn cluster() -> BrokerCluster {
    BrokerCluster::start(CLUSTERS)
        .await
        .unwrap_or_else(|err| panic!("a three-node cluster: {err}"))
}

/// Every durable queue the services declared (all but each web instance's own gallery queue,
/// which goes with it) is a quorum queue with a member on each of the three nodes.
async fn assert_replicated_on_every_node(cluster: &BrokerCluster) {
    let queues = cluster
        .queues(&["name", "type", "members"])
        .await
        .expect("the queues");
    let durable: Vec<_> = queues
        .iter()
        .filter(|q| !q[0].contains(".web.gallery.") || q[0].ends_with(".dead-letter"))
        .collect();
    assert!(
        durable.iter().any(|q| q[0].ends_with(".catalog.likes")),
        "the likes queue is there: {queues:?}"
    );
    for queue in durable {
        assert_eq!(queue[1], "quorum", "{queue:?}");
        for node in &cluster.nodes {
            assert!(
                queue[2].contains(&node.name),
                "{} has a member on {}: {queue:?}",
                queue[0],
                node.name
            );
        }
    }
}

/// No queue holds a dead letter.
async fn assert_nothing_dead_lettered(cluster: &BrokerCluster) {
    let queues = cluster
        .queues(&["name", "messages"])
        .await
        .expect("the queues");
    let dead: Vec<_> = queues
        .iter()
        .filter(|q| q[0].ends_with(".dead-letter"))
        .collect();
    assert!(!dead.is_empty(), "the dead-letter queues exist: {queues:?}");
    for queue in dead {
        assert_eq!(queue[1], "0", "{} is empty", queue[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_likes_queue_leader_mid_storm_loses_and_doubles_nothing() {
    let cluster = cluster().await;
    let deployment = Deployment::start_on(&cluster.url(&[0, 1, 2]), 2, QUORUM_DEAD_LETTERS).await;
    assert_replicated_on_every_node(&cluster).await;
    let storm = Storm::start(&deployment).await;
    storm.reached(0.3).await;

    // The likes queue's leader: the first address, where every service's connections are.
    let leader = cluster
        .leader_of(".catalog.likes")
        .await
        .expect("the likes queue has a leader");
    cluster.kill(leader).await;
    wait_until("a new leader of the likes queue on a node left", || async {
        cluster
            .leader_of(".catalog.likes")
            .await
            .is_some_and(|n| n != leader)
    })
    .await;

    // Exact everywhere, sockets included, then one more like through each web instance: the
    // consumers resumed on the nodes left.
    storm.settle(&deployment, "Picture 0").await;
    assert_nothing_dead_lettered(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_likes_wait_in_the_outbox_and_all_flow_when_a_node_returns() {
    let cluster = cluster().await;
    let deployment = Deployment::start_on(&cluster.url(&[0, 1, 2]), 1, QUORUM_DEAD_LETTERS).await;
    let catalog = deployment.catalog.address;
    let web = deployment.webs[0].address;
    let token = &deployment.admin_token;
    let products = burst::create_products(catalog, token, 2).await;
    wait_until("the products in the gallery", || async {
        burst::gallery(web)
            .await
            .is_some_and(|seen| seen.len() == 2)
    })
    .await;
    let tally = Tally::default();
    let before = burst::visitors(web, 10).await;
    let progress = AtomicUsize::new(0);
    burst::like_all(&before, &products, 4, &tally, &progress).await;
    wait_until("the first likes counted", || async {
        burst::catalog_view(catalog, token)
            .await
            .is_some_and(|seen| seen.values().all(|(_, likes)| *likes == 10))
    })
    .await;

    // Two of three nodes stop: the one left has no quorum for any queue.
    cluster.stop(1).await.expect("node 2 stops");
    cluster.stop(2).await.expect("node 3 stops");
    let during = burst::visitors(web, 20).await;
    burst::like_all(&during, &products[..1], 4, &tally, &progress).await;
    assert_eq!(
        Tally::get(&tally.settled),
        40,
        "every like answered 200 without a quorum"
    );
    let web_db = crate::helpers::database(&deployment.web_database).await;
    let outbox = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from outbox")
            .fetch_one(&web_db)
            .await
            .expect("the outbox counted")
    };
    // The relay's publishes go unconfirmed and time out: the events stay in the outbox.
    wait_until("a relay round timed out", || async {
        deployment.webs[0]
            .log()
            .contains("outbox relay round failed")
    })
    .await;
    // One `likes.counted` per committed batch: at most one per like, at least one.
    let waiting = outbox().await;
    assert!(
        (1..=20).contains(&waiting),
        "the counts of the 20 likes wait in the web's outbox: {waiting} events"
    );
    let seen = burst::catalog_view(catalog, token)
        .await
        .expect("the catalog answers");
    assert_eq!(seen[&products[0]].1, 10, "nothing reached the catalog");

    // One node back: a quorum again, and everything flows (copies dropped by the consumers).
    cluster.restart(1).await.expect("node 2 starts again");
    wait_until("the outbox empty", || async { outbox().await == 0 }).await;
    let want = burst::expected(
        &[(products[0], 30), (products[1], 10)].into(),
        &[
            (products[0], "Picture 0".to_owned()),
            (products[1], "Picture 1".to_owned()),
        ]
        .into(),
    );
    burst::wait_for_everywhere(catalog, token, &[web], &want).await;
    let miscounted =
        crate::helpers::miscounted(&deployment.catalog_database, &deployment.web_database).await;
    assert_eq!(miscounted, Vec::<String>::new(), "every counter recounts");
    assert_nothing_dead_lettered(&cluster).await;
}
