//! RabbitMQ restarted (`rabbitmqctl stop_app`, then `start_app`) in the middle of a burst of likes
//! and renames, with the catalog and two web instances as separate processes. Stopping the broker
//! stops it for every client on this machine, so this test is a binary of its own: cargo runs
//! test binaries one after another, never beside the other integration tests.

#[allow(dead_code)]
#[path = "integration/burst.rs"]
mod burst;
#[allow(dead_code)]
#[path = "integration/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "integration/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "integration/storm.rs"]
mod storm;

use process::Deployment;
use std::process::Command;
use storm::Storm;

/// The broker's application stopped; started again when dropped, even if the test fails.
struct BrokerOutage;

fn rabbitmqctl(action: &str) {
    let status = Command::new("rabbitmqctl")
        .args(["-q", action])
        .status()
        .expect("rabbitmqctl runs (this test needs the RabbitMQ on this machine)");
    assert!(status.success(), "rabbitmqctl {action}");
}

impl BrokerOutage {
    fn begin() -> Self {
        rabbitmqctl("stop_app");
        Self
    }

    fn end(self) {}
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_mid_burst_loses_and_doubles_nothing() {
    let deployment = Deployment::start(2, &[]).await;
    let storm = Storm::start(&deployment).await;
    storm.reached(0.3).await;

    let outage = BrokerOutage::begin();
    // Every process notices: readiness reports the bus down.
    for process in std::iter::once(&deployment.catalog).chain(&deployment.webs) {
        helpers::wait_until("readiness to report the broker down", || async {
            reqwest::get(process.url("/readyz"))
                .await
                .is_ok_and(|response| response.status() == 503)
        })
        .await;
    }
    storm.reached(0.6).await;
    outage.end();

    // Counts, titles and sockets exact everywhere, and every consumer back.
    storm.settle(&deployment, "Picture 0").await;
}
