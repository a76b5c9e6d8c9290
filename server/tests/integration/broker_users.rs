//! The services on broker users of their own, made by `deploy/rabbitmq/users.sh` (the script
//! compose applies) on the RabbitMQ of this machine: each does all its work — products, likes,
//! live counts, dead letters and their replay — with its own rights, and is refused the rest.

use crate::helpers::{
    amqp_url, rabbitmqctl, spawn_app_with, unique, vhost, wait_until, TestApp, TestOptions,
};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ExchangeKind};
use serde_json::json;

/// The tests' broker URL with another user.
fn as_user(user: &str, password: &str) -> String {
    let url = amqp_url();
    let (_, rest) = url.split_once('@').expect("a user in the test URL");
    format!("amqp://{user}:{password}@{rest}")
}

/// The users of one deployment, deleted on drop.
struct Users {
    prefix: String,
}

impl Users {
    async fn make(namespace: &str) -> Self {
        let prefix = unique("lgu");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/rabbitmq/users.sh");
        let (vhost, namespace, prefix2) = (vhost(), namespace.to_owned(), prefix.clone());
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh")
                .args([script, &vhost, &namespace, &prefix2, "catalog-pw", "web-pw"])
                .output()
                .expect("sh runs")
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "users.sh: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { prefix }
    }

    fn catalog(&self) -> String {
        as_user(&format!("{}-catalog", self.prefix), "catalog-pw")
    }

    fn web(&self) -> String {
        as_user(&format!("{}-web", self.prefix), "web-pw")
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for user in ["catalog", "web"] {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["-q", "delete_user", &format!("{}-{user}", self.prefix)])
                .output();
        }
    }
}

/// Messages in queue `name` of the tests' virtual host.
async fn messages_in(name: &str) -> u64 {
    let listing = rabbitmqctl(&[
        "list_queues",
        "-p",
        &vhost(),
        "--no-table-headers",
        "name",
        "messages",
    ])
    .await;
    listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(queue, _)| *queue == name)
        .and_then(|(_, count)| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Publishes `body` to `exchange` as the holder of `url`, with confirms; the broker's answer.
async fn publish_as(url: &str, exchange: &str, key: &str, body: &[u8]) -> Result<(), String> {
    let connection = Connection::connect(url, Default::default())
        .await
        .map_err(|err| err.to_string())?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|err| err.to_string())?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|err| err.to_string())?;
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .map_err(|err| err.to_string())?;
    let answer = confirm.await.map(|_| ()).map_err(|err| err.to_string());
    let _ = connection.close(200, "done".into()).await;
    answer
}

/// Declares exchange `name` as the holder of `url`; the broker's answer.
async fn declare_as(url: &str, name: &str) -> Result<(), String> {
    let connection = Connection::connect(url, Default::default())
        .await
        .map_err(|err| err.to_string())?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|err| err.to_string())?;
    let answer = channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|err| err.to_string());
    let _ = connection.close(200, "done".into()).await;
    answer
}

fn refused(answer: Result<(), String>, what: &str) {
    match answer {
        Err(err) => assert!(err.contains("ACCESS_REFUSED"), "{what}: {err}"),
        Ok(()) => panic!("{what} was allowed"),
    }
}

async fn start(
    role: &'static str,
    url: String,
    join: (String, String),
    extra: Vec<String>,
) -> TestApp {
    spawn_app_with(TestOptions {
        role,
        amqp_url: Some(url),
        join: Some(join),
        extra_args: extra,
        ..TestOptions::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_works_with_only_its_own_broker_rights() {
    let (namespace, token) = (unique("lg_test"), unique("token"));
    let users = Users::make(&namespace).await;
    let join = (namespace.clone(), token.clone());
    let catalog = start("catalog", users.catalog(), join.clone(), Vec::new()).await;
    let catalog_url = format!("--catalog-url=http://{}", catalog.address);
    let web = start("web", users.web(), join, vec![catalog_url]).await;

    // Products reach the web service, its counts reach the catalog and the gallery.
    let created = catalog
        .create_product(
            &json!({"title": "Own rights", "image": "https://images.example.com/o.jpg"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    web.wait_for_gallery("the product", |html| html.contains("Own rights"))
        .await;
    let visitor = web.new_visitor().await;
    assert_eq!(visitor.like(id).await.status(), 200);
    wait_until("the like in the catalog and in the gallery", || async {
        catalog.catalog_likes().await.get(&id) == Some(&1)
            && visitor
                .products()
                .await
                .iter()
                .any(|p| p["id"] == id && p["likes"] == 1)
    })
    .await;

    // A count event the catalog refuses goes to its dead letters through its own exchange, and
    // its replay goes back through it.
    let likes_dead_letters = format!("{namespace}.catalog.likes.dead-letter");
    publish_as(
        &users.web(),
        &format!("{namespace}.web"),
        "likes.counted",
        b"not json",
    )
    .await
    .expect("the web service writes its own exchange");
    wait_until("the refused event in the dead letters", || async {
        messages_in(&likes_dead_letters).await == 1
    })
    .await;
    let replay = catalog
        .client
        .post(catalog.url("/api/admin/dead-letters/catalog.likes/replay"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay.json::<serde_json::Value>().await.unwrap()["replayed"],
        1
    );
    wait_until("the replayed event refused again", || async {
        messages_in(&likes_dead_letters).await == 1
    })
    .await;

    // And nothing else.
    let (catalog_exchange, web_exchange) =
        (format!("{namespace}.catalog"), format!("{namespace}.web"));
    let likes_queue = format!("{namespace}.catalog.likes");
    refused(
        publish_as(&users.web(), "", &likes_queue, b"{}").await,
        "the web user writing to the default exchange",
    );
    refused(
        publish_as(&users.web(), &catalog_exchange, "product.updated", b"{}").await,
        "the web user writing to the catalog's exchange",
    );
    refused(
        declare_as(&users.web(), &catalog_exchange).await,
        "the web user declaring the catalog's exchange",
    );
    refused(
        publish_as(&users.catalog(), &web_exchange, "likes.counted", b"{}").await,
        "the catalog user writing to the web service's exchange",
    );
    refused(
        publish_as(
            &users.catalog(),
            "",
            &format!("{namespace}.web.read-model"),
            b"{}",
        )
        .await,
        "the catalog user writing to the default exchange",
    );
    web.stop().await;
    catalog.stop().await;
}
