//! RabbitMQ restarted (`rabbitmqctl stop_app`, then `start_app`) in the middle of a burst of likes
//! and renames, with the catalog and two web instances as separate processes. Stopping the broker
//! stops it for every client on this machine, so this test is a binary of its own: cargo runs
//! test binaries one after another, never beside the other integration tests.

#[allow(dead_code)]
#[path = "integration/burst.rs"]
mod burst;
#[allow(dead_code)]
#[path = "integration/fault_proxy.rs"]
mod fault_proxy;
#[allow(dead_code)]
#[path = "integration/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "integration/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "integration/schemas.rs"]
mod schemas;
#[allow(dead_code)]
#[path = "integration/storm.rs"]
mod storm;

use process::Deployment;
use std::process::Command;
use storm::Storm;

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .status()
        .expect("rabbitmqctl runs (this test needs the RabbitMQ on this machine)");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// A virtual host of this test's own, deleted when dropped: the restart recovers only its few
/// queues, and nothing is left behind.
struct Vhost(String);

impl Vhost {
    fn create() -> Self {
        let name = helpers::unique("lg_test_restart");
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self(name)
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_vhost", &self.0]);
    }
}

/// The broker's application stopped; started again when dropped, even if the test fails, and
/// only then handed back once the broker has finished booting.
struct BrokerOutage;

impl BrokerOutage {
    fn begin() -> Self {
        rabbitmqctl(&["stop_app"]);
        Self
    }

    fn end(self) {}
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_mid_burst_loses_and_doubles_nothing() {
    let vhost = Vhost::create();
    let deployment = Deployment::start_on(&vhost.url(), 2, &[]).await;
    let storm = Storm::start(&deployment).await;
    storm.reached(0.3).await;

    let outage = BrokerOutage::begin();
    // Every process notices and says so, yet stays ready: changes wait in the outboxes.
    for process in std::iter::once(&deployment.catalog).chain(&deployment.webs) {
        helpers::wait_until("readiness to report the broker down", || async {
            let Ok(response) = reqwest::get(process.url("/readyz")).await else {
                return false;
            };
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if body["checks"]["bus"] != "unavailable" {
                return false;
            }
            assert_eq!(
                status, 200,
                "a broker outage keeps the instance ready: {body}"
            );
            true
        })
        .await;
    }
    storm.reached(0.6).await;
    outage.end();

    // Counts, titles and sockets exact everywhere, and every consumer back.
    storm.settle(&deployment, "Picture 0").await;
    drop(deployment);
    drop(vhost);
}
