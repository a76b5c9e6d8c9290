//! The test harness: `spawn_app` starts a whole live-gallery process in this test's runtime on
//! port 0, with fresh databases and a unique bus namespace, and returns a `TestApp` with one
//! helper per endpoint.

use server::bus::amqp::AmqpBus;
use server::bus::memory::MemoryBus;
use server::bus::Bus;
use server::config::Config;
use server::live::LiveHub;
use server::shutdown::{self, ShutdownTrigger};
use server::startup::Application;
use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A count version above any the web database gives (those follow the clock in µs, which
/// reaches 2^60 in some 36,000 years): a test's own `likes.counted` at this version is not
/// replaced by anything the services announce meanwhile.
pub const ABOVE_ANY_CLOCK: i64 = 1 << 60;

/// The broker tests use (override with `TEST_AMQP_URL`).
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The dead-letter queues of the tests on the machine's single broker node. Quorum queues (the
/// default, for clusters) would gain nothing there, and the suite declares thousands of queues:
/// with four more Raft groups per instance, RabbitMQ 3.10 on two cores stopped answering new
/// connections for minutes in the middle of a run. The node-fault tests, on a cluster, use the
/// default; `probes` checks both kinds.
pub const CLASSIC_DEAD_LETTERS: &str = "classic";

/// The virtual host of the tests' broker URL, decoded.
pub fn vhost() -> String {
    let url = amqp_url();
    match url.rsplit('/').next().unwrap_or_default() {
        "" | "%2f" | "%2F" => "/".to_owned(),
        other => other.to_owned(),
    }
}

/// A PostgreSQL database tests may create databases from (override with `TEST_POSTGRES_URL`).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Logs from the app under test, shown for failing tests (`RUST_LOG` to change the level).
pub fn init_logs() {
    static LOGS: Once = Once::new();
    LOGS.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A MySQL/MariaDB account that may create databases named `lg_test_…` (override with
/// `TEST_MYSQL_URL`; `.ci/run` makes it).
pub fn mysql_admin_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| {
        "mysql://live_gallery_test:live_gallery_test@127.0.0.1:3306/".to_owned()
    })
}

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
    MySql,
}

impl Engine {
    /// The server database the suite runs on: PostgreSQL, or MariaDB with
    /// `TEST_DATABASE=mariadb` (`.ci/test` runs the database tests once on each).
    pub fn server() -> Self {
        match std::env::var("TEST_DATABASE").as_deref() {
            Ok("mariadb" | "mysql") => Self::MySql,
            _ => Self::Postgres,
        }
    }
}

/// `admin_url` with its database replaced by `name`, keeping its query (TLS settings).
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, last) = admin_url
        .rsplit_once('/')
        .expect("admin URL names a database");
    let query = last.find('?').map_or("", |at| &last[at..]);
    format!("{base}/{name}{query}")
}

/// A fresh, empty database URL for one service of one test.
pub async fn fresh_database(engine: Engine, dir: &SqliteDir) -> String {
    match engine {
        Engine::Postgres => {
            let name = unique("lg_test");
            let admin_url = postgres_admin_url();
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect(&admin_url)
                .await
                .expect("PostgreSQL is running on 127.0.0.1:5432 (see README)");
            admin
                .execute(format!(r#"create database "{name}""#).as_str())
                .await
                .expect("can create a test database");
            admin.close().await;
            with_database(&admin_url, &name)
        }
        Engine::MySql => {
            let name = unique("lg_test");
            let admin_url = mysql_admin_url();
            let mut admin = <sqlx::MySqlConnection as sqlx::Connection>::connect(&admin_url)
                .await
                .expect("MariaDB is running on 127.0.0.1:3306 with the test user (see .ci/test)");
            admin
                .execute(
                    format!("create database `{name}` character set utf8mb4 collate utf8mb4_bin")
                        .as_str(),
                )
                .await
                .expect("can create a test database");
            let _ = sqlx::Connection::close(admin).await;
            with_database(&admin_url, &name)
        }
        Engine::Sqlite => format!("sqlite://{}/{}.db", dir.0.display(), unique("db")),
    }
}

/// A temporary directory for SQLite files, removed on drop.
pub struct SqliteDir(pub PathBuf);

impl SqliteDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("live-gallery-test"));
        std::fs::create_dir_all(&path).expect("can create a temporary directory");
        Self(path)
    }
}

impl Drop for SqliteDir {
    fn drop(&mut self) {
        // `KEEP_TEST_DIRS=1` keeps the files (and the processes' logs) to look at after a run.
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to run the app under test.
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub engine: Engine,
    /// RabbitMQ (true) or the in-process bus (false).
    pub rabbitmq: bool,
    /// Overrides `AMQP_URL` (e.g. an unreachable broker).
    pub amqp_url: Option<String>,
    pub role: &'static str,
    /// More flags, as on the command line.
    pub extra_args: Vec<String>,
    /// Join another app's deployment: its bus namespace and admin token.
    pub join: Option<(String, String)>,
    /// Use this web database instead of a fresh one (web instances sharing a database).
    pub web_database: Option<String>,
    /// Use this catalog database instead of a fresh one (a restart on the same data).
    pub catalog_database: Option<String>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            engine: Engine::server(),
            rabbitmq: true,
            amqp_url: None,
            role: "all",
            extra_args: Vec::new(),
            join: None,
            web_database: None,
            catalog_database: None,
        }
    }
}

impl TestOptions {
    /// The embedded set-up a newcomer gets: SQLite files and the in-process bus.
    pub fn embedded() -> Self {
        Self {
            engine: Engine::Sqlite,
            rabbitmq: false,
            ..Self::default()
        }
    }
}

/// A running app and a client for it. Stops the app when dropped.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub admin_token: String,
    /// Prefix of every exchange and queue this app uses.
    pub namespace: String,
    /// The web role's live hub, to push messages in hub tests.
    pub live: Option<Arc<LiveHub>>,
    /// The databases the app runs on.
    pub catalog_database: String,
    pub web_database: String,
    trigger: ShutdownTrigger,
    server: Option<JoinHandle<()>>,
    _sqlite: SqliteDir,
}

/// Starts the app on PostgreSQL and RabbitMQ.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    try_spawn_app_with(options).await.expect("the app starts")
}

/// Starts the app, or returns why it would not start.
pub async fn try_spawn_app_with(
    options: TestOptions,
) -> Result<TestApp, server::startup::StartError> {
    init_logs();
    // Every event the app enqueues must match the published schemas (`docs/schemas/`).
    server::bus::outbox::check_every_event_with(crate::schemas::check);
    let sqlite = SqliteDir::new();
    let (namespace, admin_token) = options
        .join
        .clone()
        .unwrap_or_else(|| (unique("lg_test"), unique("token")));
    let catalog_db = match options.catalog_database.clone() {
        Some(url) => url,
        None => fresh_database(options.engine, &sqlite).await,
    };
    let web_db = match options.web_database.clone() {
        Some(url) => url,
        None => fresh_database(options.engine, &sqlite).await,
    };
    let mut args = vec![
        "live-gallery".to_owned(),
        format!("--role={}", options.role),
        "--site-addr=127.0.0.1:0".to_owned(),
        format!("--catalog-database-url={catalog_db}"),
        format!("--web-database-url={web_db}"),
        format!("--admin-token={admin_token}"),
        format!("--bus-namespace={namespace}"),
        "--bus-timeout=5000".to_owned(),
    ];
    if !options
        .extra_args
        .iter()
        .any(|arg| arg.starts_with("--database-pool-size"))
    {
        args.push("--database-pool-size=10".to_owned());
    }
    // One broker node: classic dead-letter queues, unless a test asks (see `CLASSIC_DEAD_LETTERS`).
    if !options
        .extra_args
        .iter()
        .any(|arg| arg.starts_with("--dead-letter-queues"))
    {
        args.push(format!("--dead-letter-queues={CLASSIC_DEAD_LETTERS}"));
    }
    if let Some(url) = options
        .amqp_url
        .clone()
        .or_else(|| options.rabbitmq.then(amqp_url))
    {
        args.push(format!("--amqp-url={url}"));
    }
    // Tests make many visitors and likes from one address: no rate limits unless a test asks.
    for limit in [
        "--rate-limit-likes-per-minute",
        "--rate-limit-visitors-per-minute",
        "--rate-limit-sign-ins-per-minute",
    ] {
        if !options.extra_args.iter().any(|arg| arg.starts_with(limit)) {
            args.push(format!("{limit}=0"));
        }
    }
    args.extend(options.extra_args.iter().cloned());
    let mut config = <Config as clap::Parser>::try_parse_from(args).expect("test flags parse");
    if !options.rabbitmq && options.amqp_url.is_none() {
        // A developer's AMQP_URL must not leak into an embedded-mode test.
        config.amqp_url = None;
    }

    // The files `cargo leptos build` wrote, under hashed names, as the binary finds them.
    let leptos_options = leptos::config::LeptosOptions::builder()
        .output_name("live-gallery")
        .site_root(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site"))
        .hash_files(true)
        .hash_file(HASH_FILE.into())
        .build();
    let (trigger, stop) = shutdown::channel();
    let app = Application::build(config, leptos_options, stop).await?;
    let address = app.local_addr();
    let live = app.live_hub();
    let server = tokio::spawn(async move {
        app.run().await.expect("the app serves until stopped");
    });
    Ok(TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Generous: a loaded 2-core machine runs these tests beside a build.
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client builds"),
        admin_token,
        namespace,
        live,
        catalog_database: catalog_db,
        web_database: web_db,
        trigger,
        server: Some(server),
        _sqlite: sqlite,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the app")
    }

    pub async fn healthz(&self) -> reqwest::Response {
        self.get("/healthz").await
    }

    pub async fn readyz(&self) -> reqwest::Response {
        self.get("/readyz").await
    }

    /// Options for another process of this app's deployment (same bus namespace and token).
    pub fn sibling(&self, role: &'static str) -> TestOptions {
        TestOptions {
            role,
            join: Some((self.namespace.clone(), self.admin_token.clone())),
            ..TestOptions::default()
        }
    }

    /// Signs in through the `sign_in` server function and returns the session cookie.
    pub async fn admin_session(&self) -> String {
        let response = self.sign_in(&self.admin_token).await;
        let cookie = set_cookie(&response, "lg_admin").expect("a session cookie");
        cookie.split(';').next().expect("name=value").to_owned()
    }

    /// The `/admin` page's HTML for the holder of `session` (a `name=value` cookie).
    pub async fn admin_page(&self, session: &str) -> String {
        let page = self
            .client
            .get(self.url("/admin"))
            .header("cookie", session)
            .send()
            .await;
        page.expect("request reaches the app")
            .text()
            .await
            .expect("a page")
    }

    /// A request to the admin API with the right bearer token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api/admin/products{path}")))
            .bearer_auth(&self.admin_token)
    }

    /// `POST /api/admin/products` with a JSON body.
    pub async fn create_product(&self, body: &serde_json::Value) -> reqwest::Response {
        self.admin(reqwest::Method::POST, "")
            .json(body)
            .send()
            .await
            .expect("request reaches the app")
    }

    /// `GET /api/admin/products` as JSON.
    pub async fn admin_products(&self) -> Vec<serde_json::Value> {
        let response = self
            .admin(reqwest::Method::GET, "")
            .send()
            .await
            .expect("request reaches the app");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON list")
    }

    /// `admin_products`, each without its count's version (see `unversioned`).
    pub async fn admin_products_unversioned(&self) -> Vec<serde_json::Value> {
        self.admin_products()
            .await
            .into_iter()
            .map(unversioned)
            .collect()
    }

    /// Waits until the gallery page (the web read model) satisfies `check`.
    pub async fn wait_for_gallery(&self, what: &str, check: impl Fn(&str) -> bool) {
        let poll = async {
            loop {
                let html = self.gallery_page().await.text().await.expect("a page");
                if check(&html) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), poll)
            .await
            .unwrap_or_else(|_| panic!("the gallery did not show {what} within 30 s"));
    }

    /// A new visitor: the app issues its signed cookie on the first page view.
    pub async fn new_visitor(&self) -> Visitor {
        let page = self.gallery_page().await;
        let cookie = set_cookie(&page, "lg_visitor").expect("a first visit gets a visitor cookie");
        Visitor {
            client: self.client.clone(),
            base: self.url(""),
            cookie: cookie.split(';').next().expect("name=value").to_owned(),
        }
    }

    /// A visitor of this app holding `cookie` (one issued by any web instance of the deployment).
    pub fn visitor_with_cookie(&self, cookie: &str) -> Visitor {
        Visitor {
            client: self.client.clone(),
            base: self.url(""),
            cookie: cookie.to_owned(),
        }
    }

    /// Creates a product through the admin API and waits until the web read model has it.
    pub async fn create_visible_product(&self, title: &str) -> i64 {
        let created = self
            .create_product(
                &serde_json::json!({"title": title, "image": "https://images.example.com/p.jpg"}),
            )
            .await;
        assert_eq!(created.status(), 201);
        let id = created.json::<serde_json::Value>().await.expect("JSON")["id"]
            .as_i64()
            .expect("an id");
        let visitor = self.new_visitor().await;
        wait_until("the product in the read model", || async {
            visitor.products().await.iter().any(|p| p["id"] == id)
        })
        .await;
        id
    }

    /// Like counts as the catalog has them, by product id.
    pub async fn catalog_likes(&self) -> std::collections::BTreeMap<i64, i64> {
        self.admin_products()
            .await
            .iter()
            .map(|p| (p["id"].as_i64().unwrap(), p["likes"].as_i64().unwrap()))
            .collect()
    }

    /// Every stored like counter of this app that differs from a recount (see `miscounted`).
    pub async fn miscounted(&self) -> Vec<String> {
        miscounted(&self.catalog_database, &self.web_database).await
    }

    /// Calls the `sign_in` server function as a plain form post (no JavaScript).
    pub async fn sign_in(&self, token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/sign_in"))
            .header("accept", "text/html")
            .form(&[("token", token)])
            .send()
            .await
            .expect("request reaches the app")
    }

    /// Opens a WebSocket on `/ws`, as a browser would, and checks that its first message names
    /// the protocol.
    pub async fn connect_live(&self) -> Result<LiveClient, tokio_tungstenite::tungstenite::Error> {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws", self.address)).await?;
        let mut client = LiveClient(socket);
        assert_eq!(
            client.next_message().await,
            serde_json::json!({"type": "hello", "protocol": app::live::PROTOCOL}),
            "a socket's first message names the protocol"
        );
        Ok(client)
    }

    /// The gallery page's HTML.
    pub async fn gallery_page(&self) -> reqwest::Response {
        self.get("/").await
    }

    /// Asks the app to stop and waits until it has: in-flight work finishes, loops stop.
    pub async fn stop(mut self) {
        self.trigger.trigger();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(15), server)
                .await
                .expect("the app stops within 15 s")
                .expect("the app stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

/// Every stored like counter that differs from the truth: the web database's count of a product
/// against a recount of the visitors liking it there, and the catalog's copy against the web
/// database's count. Empty once everything has settled.
pub async fn miscounted(catalog_database: &str, web_database: &str) -> Vec<String> {
    use sqlx::Row;
    let mut wrong = recount(
        web_database,
        "select p.id, p.likes as stored, (select count(*) from visitor_like v \
         where v.product_id = p.id and v.liked = 1) as recount from product p where p.deleted = 0",
        "web",
    )
    .await;
    let counts = |url: &str, sql: &'static str| {
        let url = url.to_owned();
        async move {
            let pool = database(&url).await;
            let rows = sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .expect("the counts read");
            pool.close().await;
            rows.iter()
                .map(|row| (row.get::<i64, _>("id"), row.get::<i64, _>("likes")))
                .collect::<std::collections::BTreeMap<i64, i64>>()
        }
    };
    let owned = counts(
        web_database,
        "select id, likes from product where deleted = 0",
    )
    .await;
    let copied = counts(catalog_database, "select id, likes from product").await;
    for (id, likes) in &copied {
        let truth = owned.get(id).copied().unwrap_or(0);
        if *likes != truth {
            wrong.push(format!(
                "catalog: product {id} stores {likes}, the web database {truth}"
            ));
        }
    }
    wrong
}

/// Rows of `sql` (id, stored, recount) whose stored count is not the recount, described.
async fn recount(url: &str, sql: &str, what: &str) -> Vec<String> {
    use sqlx::Row;
    let pool = database(url).await;
    let rows = sqlx::query(sql)
        .fetch_all(&pool)
        .await
        .expect("the recount runs");
    pool.close().await;
    rows.iter()
        .filter_map(|row| {
            let (id, stored, recount): (i64, i64, i64) =
                (row.get("id"), row.get("stored"), row.get("recount"));
            (stored != recount)
                .then(|| format!("{what}: product {id} stores {stored}, recount {recount}"))
        })
        .collect()
}

/// A WebSocket client of `/ws`.
pub struct LiveClient(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl LiveClient {
    /// The count of product `id` in the next `counts` frame that has one, skipping the rest.
    pub async fn next_count_of(&mut self, id: i64) -> i64 {
        self.next_versioned_count_of(id).await.0
    }

    /// The count of product `id` and its version in the next `counts` frame that has one.
    pub async fn next_versioned_count_of(&mut self, id: i64) -> (i64, i64) {
        loop {
            let frame = self.next_of_type("counts").await;
            let counts = frame["counts"]
                .as_array()
                .expect("counts are [id, likes, version]");
            if let Some(count) = counts.iter().find(|count| count[0] == id) {
                return (
                    count[1].as_i64().expect("a count"),
                    count[2].as_i64().expect("a version"),
                );
            }
        }
    }

    /// The next live message of `kind` (`counts`, `product`…), skipping others.
    pub async fn next_of_type(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let message = self.next_message().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// The next live message, skipping control frames; fails the test after 10 s.
    pub async fn next_message(&mut self) -> serde_json::Value {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let read = async {
            loop {
                match self.0.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return serde_json::from_str(&text).expect("live messages are JSON")
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    other => panic!("the live socket ended: {other:?}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a live message arrives in time")
    }
}

/// `product` as the admin API shows it, without its count's version: the web service gives
/// counts new versions on its own schedule (when it starts, when a resync ends) and the catalog
/// takes them whenever they arrive, so a test of what its own requests changed compares the rest.
pub fn unversioned(mut product: serde_json::Value) -> serde_json::Value {
    if let Some(fields) = product.as_object_mut() {
        fields.remove("likes_version");
    }
    product
}

/// The `Set-Cookie` value for cookie `name` in `response`, if it sets one.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// Polls `check` until it holds; fails the test after 30 s.
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let poll = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// One visitor of the web role, holding its signed cookie.
#[derive(Clone)]
pub struct Visitor {
    client: reqwest::Client,
    base: String,
    pub cookie: String,
}

impl Visitor {
    pub async fn like(&self, id: i64) -> reqwest::Response {
        self.send(reqwest::Method::POST, id).await
    }

    pub async fn unlike(&self, id: i64) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, id).await
    }

    async fn send(&self, method: reqwest::Method, id: i64) -> reqwest::Response {
        self.client
            .request(method, format!("{}/api/products/{id}/like", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("request reaches the app")
    }

    /// `GET /api/products?limit=200` as this visitor: every product (tests hold fewer than
    /// 200), newest first.
    pub async fn products(&self) -> Vec<serde_json::Value> {
        let page = self.products_page("limit=200").await;
        assert_eq!(
            page["next"],
            serde_json::Value::Null,
            "one page holds them all"
        );
        page["items"]
            .as_array()
            .expect("a JSON list of items")
            .clone()
    }

    /// `GET /api/products?{query}` as this visitor: one page, `{"items": […], "next": …}`.
    pub async fn products_page(&self, query: &str) -> serde_json::Value {
        let response = self.products_response(query).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("a JSON page")
    }

    /// The raw answer to `GET /api/products?{query}` as this visitor.
    pub async fn products_response(&self, query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/products?{query}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("request reaches the app")
    }
}

/// A proxy in front of RabbitMQ that a test can cut and restore, so one app sees the broker
/// go away without stopping it for every other test.
pub struct BrokerProxy {
    pub url: String,
    proxy: crate::fault_proxy::FaultProxy,
}

impl BrokerProxy {
    pub async fn start() -> Self {
        let proxy =
            crate::fault_proxy::FaultProxy::start("127.0.0.1:5672".parse().expect("an address"))
                .await;
        Self {
            // The same broker and virtual host as every other test, through our port.
            url: proxy.url(&amqp_url(), "127.0.0.1:5672"),
            proxy,
        }
    }

    /// The broker becomes unreachable: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.proxy.cut();
    }

    /// The broker is reachable again.
    pub fn restore(&self) {
        self.proxy.restore();
    }
}

/// The hashes of the built site's file names, beside the debug binary (an absolute path: the
/// server looks beside its own executable, which for the tests is another directory).
const HASH_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/hash.txt");

/// The path of the built site's `live-gallery.<hash>.<kind>` (`js`, `wasm` or `css`).
pub fn built_file(kind: &str) -> String {
    let hashes = std::fs::read_to_string(HASH_FILE)
        .expect("the site is built (`cargo leptos build` writes target/debug/hash.txt)");
    let hash = hashes
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{kind}:")))
        .unwrap_or_else(|| panic!("a {kind} hash in {hashes}"))
        .trim();
    format!("/pkg/live-gallery.{hash}.{kind}")
}

/// The name of the database a URL points at (without the options after `?`).
pub fn database_name(url: &str) -> &str {
    let last = url.rsplit('/').next().expect("a database name");
    last.split('?').next().unwrap_or(last)
}

/// Publishes events straight onto an exchange of the real broker, as a service would.
pub async fn publish_events<E: server::bus::Event>(
    exchange: &str,
    events: &[server::bus::Envelope<E>],
) {
    let messages: Vec<_> = events
        .iter()
        .map(|envelope| server::bus::OutgoingMessage {
            routing_key: envelope.routing_key().to_owned(),
            message_id: envelope.id.to_string(),
            payload: envelope.to_json().into_bytes(),
        })
        .collect();
    rabbitmq_bus()
        .publish(exchange, &messages)
        .await
        .expect("published");
}

/// Ready and unacknowledged messages in `queue`, summed over virtual hosts.
pub async fn messages_in(queue: &str) -> u64 {
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

/// A bus of either kind for contract tests, with a timeout short enough to keep tests quick.
pub fn rabbitmq_bus() -> Bus {
    Bus::Amqp(AmqpBus::new(&amqp_url(), Duration::from_secs(5)))
}

pub fn memory_bus() -> Bus {
    Bus::Memory(MemoryBus::new(Duration::from_secs(5)))
}

/// `rabbitmqctl -q args…`'s standard output, run off the runtime's threads (the app under test
/// shares them).
pub async fn rabbitmqctl(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new("rabbitmqctl")
            .arg("-q")
            .args(&args)
            .output()
            .expect("rabbitmqctl runs (this test needs the RabbitMQ on this machine)");
        assert!(output.status.success(), "rabbitmqctl {args:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .expect("rabbitmqctl joined")
}

/// The broker's id of the open connection named `name`, or whose name starts with `name` when
/// it ends with `*`.
pub async fn connection_named(name: &str) -> Option<String> {
    let listing = rabbitmqctl(&[
        "list_connections",
        "--no-table-headers",
        "pid",
        "client_properties",
    ])
    .await;
    let wanted = match name.strip_suffix('*') {
        Some(prefix) => format!("\"connection_name\",\"{prefix}"),
        None => format!("\"connection_name\",\"{name}\""),
    };
    listing
        .lines()
        .find(|line| line.contains(&wanted))
        .and_then(|line| line.split('\t').next())
        .map(str::to_owned)
}

/// The catalog database's epoch and generation, as its events carry them now.
pub async fn catalog_era(url: &str) -> (i64, i64) {
    let pool = database(url).await;
    let row = sqlx::query("select epoch, generation from catalog_epoch")
        .fetch_one(&pool)
        .await
        .expect("the catalog has an epoch");
    pool.close().await;
    (
        sqlx::Row::get(&row, "epoch"),
        sqlx::Row::get(&row, "generation"),
    )
}

/// A one-connection pool on an app's database (either engine), for a test to read or change it.
pub async fn database(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("the test reaches the app's database")
}
