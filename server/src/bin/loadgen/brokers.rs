//! The broker-cluster scenario: the production shape on a three-node RabbitMQ cluster of its own
//! (every service given the three addresses), a like storm on it as a ratio of the single-node
//! storm's rate, and the time from `kill -9` of the node leading the likes queue to a like made
//! after it being counted by the catalog.

use crate::broker_cluster::BrokerCluster;
use crate::cluster::{Cluster, Services};
use crate::report::{Figure, Goal};
use crate::{figure, say, seed, storm, traffic, views, Args};
use std::time::{Duration, Instant};

/// Where the nodes keep their data, relative to the repository (the benchmark's directory).
const NODES: &str = "target/broker-clusters";
/// Longest wait for likes to flow again after a node's death.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);

pub async fn scenario(
    args: &Args,
    services: &Services,
    single_node: Option<f64>,
) -> Result<Vec<Figure>, String> {
    say("starting three RabbitMQ nodes, clustered");
    let brokers = BrokerCluster::start(NODES).await?;
    let on_cluster = Services {
        amqp: brokers.url(&[0, 1, 2]),
        ..services.clone()
    };
    say("starting a catalog and two web instances on the cluster");
    let cluster = Cluster::production(&on_cluster, 2).await?;
    let result = async {
        let products = seed(args, &cluster).await?;
        let scenario = "like storm, 3-node RabbitMQ cluster";
        let mut figures = storm(args, &cluster, &products, 0, scenario).await?;
        let rate = figures
            .iter()
            .find(|f| f.figure.starts_with("end-to-end"))
            .map(|f| (f.value, f.verified));
        if let (Some((rate, verified)), Some(single)) = (rate, single_node) {
            figures.push(
                figure(
                    scenario,
                    "end-to-end rate / single node",
                    rate / single,
                    "×",
                )
                .target(Goal::AtLeast, 0.5)
                .checked(
                    verified,
                    format!("{rate:.0} likes/s here, {single:.0} likes/s on one node"),
                ),
            );
        }
        figures.push(recovery(&cluster, &brokers, &products).await?);
        Ok(figures)
    }
    .await;
    cluster.stop().await;
    drop(brokers);
    result
}

/// Kills the likes queue's leader, then likes a product once every 100 ms from new visitors;
/// the figure is the time from the kill until the first of those likes is counted by the
/// catalog. Checked: every like answered 200 and, in the end, counted exactly everywhere.
async fn recovery(
    cluster: &Cluster,
    brokers: &BrokerCluster,
    products: &[i64],
) -> Result<Figure, String> {
    let scenario = "3-node RabbitMQ cluster, kill -9 of the likes queue's leader";
    let client = traffic::client();
    let views = views(cluster);
    let web = cluster.webs[0].url("");
    let product = products[0];
    let base = traffic::counts(&client, &views[0].0, views[0].1.as_deref()).await;
    let before = base.get(&product).copied().unwrap_or_default();
    let leader = brokers
        .leader_of(".catalog.likes")
        .await
        .ok_or("the likes queue has no leader")?;
    say(&format!("{scenario}: killing node {}", leader + 1));
    brokers.kill(leader).await;
    let killed = Instant::now();

    let mut liked = 0i64;
    let mut errors = 0u64;
    let mut recovered = None;
    let mut next_like = Instant::now();
    while recovered.is_none() && killed.elapsed() < RECOVERY_LIMIT {
        if Instant::now() >= next_like {
            let cookie = traffic::visitors(&client, &web, 1).await.remove(0);
            let answer = client
                .post(format!("{web}/api/products/{product}/like"))
                .header("cookie", &cookie)
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == 200 => liked += 1,
                _ => errors += 1,
            }
            next_like += Duration::from_millis(100);
        }
        let counted = traffic::counts(&client, &views[0].0, views[0].1.as_deref()).await;
        if counted.get(&product).copied().unwrap_or_default() > before {
            recovered = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut want = base;
    want.insert(product, before + liked);
    let exact = traffic::wait_for_counts(&client, &views, &want, Duration::from_secs(120)).await;
    let ok = recovered.is_some() && errors == 0 && exact;
    let check = format!(
        "{liked} likes answered 200 after the kill, {errors} other answers; counts exact in the catalog and both web instances: {}",
        if exact { "yes" } else { "NO (not within 120 s)" }
    );
    Ok(figure(
        scenario,
        "node death → a new like counted",
        recovered.unwrap_or(RECOVERY_LIMIT).as_secs_f64() * 1000.0,
        "ms",
    )
    .target(Goal::AtMost, 10_000.0)
    .checked(ok, check))
}
