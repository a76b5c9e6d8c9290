//! Faults in the middle of a burst of likes and renames, with the roles as separate processes on
//! RabbitMQ and PostgreSQL: `kill -9` of the catalog or of a web instance, PostgreSQL refusing
//! and dropping connections, SIGTERM. Afterwards every count and title is exact in the catalog,
//! in every web instance and on every live socket, and the services still consume.
//! (A RabbitMQ restart stops the broker for everyone, so it has a test binary of its own.)

use crate::burst::Tally;
use crate::process::Deployment;
use crate::storm::Storm;
use sqlx::postgres::PgPoolOptions;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_catalog_mid_burst_loses_and_doubles_nothing() {
    let mut deployment = Deployment::start(2, &[]).await;
    let storm = Storm::start(&deployment).await;
    storm.reached(0.3).await;
    deployment.catalog.kill();
    deployment.catalog.restart().await;
    storm.settle(&deployment, "Picture 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_web_instance_mid_burst_loses_no_answered_like() {
    let mut deployment = Deployment::start(2, &[]).await;
    let mut storm = Storm::start(&deployment).await;
    storm.reached(0.3).await;
    deployment.webs[0].kill();
    deployment.webs[0].restart().await;
    storm.reopen_sockets(0, deployment.webs[0].address).await;
    let refused = Tally::get(&storm.tally.refused) + Tally::get(&storm.tally.dropped);
    storm.settle(&deployment, "Picture 0").await;
    assert!(refused > 0, "the storm met the killed instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_going_away_mid_burst_answers_503_then_recovers() {
    let deployment = Deployment::start(1, &[]).await;
    let storm = Storm::start(&deployment).await;
    storm.reached(0.3).await;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&crate::helpers::postgres_admin_url())
        .await
        .expect("PostgreSQL");
    // No new connections, and every open one dropped: both services lose their databases.
    allow_connections(&admin, &deployment.databases, false).await;
    for database in &deployment.databases {
        sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
            .bind(database)
            .execute(&admin)
            .await
            .expect("backends terminated");
    }
    crate::helpers::wait_until("likes answered 503 while PostgreSQL is away", || async {
        Tally::get(&storm.tally.unavailable) >= 5
    })
    .await;
    allow_connections(&admin, &deployment.databases, true).await;
    let tally = storm.tally.clone();
    storm.settle(&deployment, "Picture 0").await;
    // Every failure was a clean 503 or a settled answer: `Tally` fails the test on anything else.
    assert_eq!(Tally::get(&tally.dropped), 0);
}

/// Lets `databases` accept new connections, or makes them refuse every one.
async fn allow_connections(admin: &sqlx::PgPool, databases: &[String], allowed: bool) {
    for database in databases {
        sqlx::query(&format!(
            r#"alter database "{database}" allow_connections {allowed}"#
        ))
        .execute(admin)
        .await
        .expect("allow_connections changed");
    }
}

/// Sends a request's head and half its body, so it is in flight until `finish`.
async fn half_sent_put(address: SocketAddr, token: &str, id: i64, body: &str) -> SlowRequest {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let head = format!(
        "PUT /api/admin/products/{id} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .expect("sent");
    SlowRequest {
        stream,
        rest: rest.to_owned(),
    }
}

struct SlowRequest {
    stream: tokio::net::TcpStream,
    rest: String,
}

impl SlowRequest {
    /// Sends the rest of the body and returns the response's status line.
    async fn finish(mut self) -> String {
        self.stream
            .write_all(self.rest.as_bytes())
            .await
            .expect("sent");
        let mut response = String::new();
        self.stream
            .read_to_string(&mut response)
            .await
            .expect("a response");
        response.lines().next().unwrap_or_default().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_and_a_restart_loses_nothing() {
    let mut deployment = Deployment::start(1, &[]).await;
    let mut storm = Storm::start(&deployment).await;
    storm.reached(0.3).await;

    // A rename in flight when the catalog is told to stop still completes.
    let title = "Renamed while stopping";
    let body = serde_json::json!({"title": title, "image": "https://images.example.com/p.jpg"});
    let slow = half_sent_put(
        deployment.catalog.address,
        &deployment.admin_token,
        storm.products[0],
        &body.to_string(),
    )
    .await;
    deployment
        .catalog
        .wait_for_metric(
            "live_gallery_http_requests_in_flight",
            "route=\"/api/admin/products/{id}\"",
            1.0,
        )
        .await;
    deployment.catalog.terminate();
    deployment
        .catalog
        .wait_for_log("SIGTERM received, stopping")
        .await;
    assert_eq!(slow.finish().await, "HTTP/1.1 200 OK");
    let status = deployment.catalog.exited(Duration::from_secs(15)).await;
    assert!(status.success(), "the catalog exits cleanly: {status}");
    let log = deployment.catalog.log();
    for line in ["consumer stopped", "outbox relay stopped", "stopped"] {
        assert!(log.contains(line), "the catalog logged {line:?}:\n{log}");
    }
    deployment.catalog.restart().await;

    // The web instance, mid-burst, the same way.
    storm.reached(0.6).await;
    deployment.webs[0].terminate();
    let status = deployment.webs[0].exited(Duration::from_secs(15)).await;
    assert!(status.success(), "the web instance exits cleanly: {status}");
    let log = deployment.webs[0].log();
    for line in ["consumer stopped", "outbox relay stopped"] {
        assert!(
            log.contains(line),
            "the web instance logged {line:?}:\n{log}"
        );
    }
    deployment.webs[0].restart().await;
    storm.reopen_sockets(0, deployment.webs[0].address).await;

    storm.settle(&deployment, title).await;
}
