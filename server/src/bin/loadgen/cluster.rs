//! The system under load: `server` processes started by the load generator, either the
//! production shape (a catalog and web instances on PostgreSQL and RabbitMQ, fresh databases and
//! a bus namespace of their own) or the embedded one (one process, SQLite, in-process bus).

use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where the load generator finds its services.
#[derive(Debug, Clone)]
pub struct Services {
    pub server: PathBuf,
    pub postgres: String,
    pub amqp: String,
    pub work_dir: PathBuf,
}

/// One running `server` process, killed on drop.
pub struct Process {
    pub address: SocketAddr,
    child: Child,
}

impl Process {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in bytes (Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes of one deployment and the databases they own.
pub struct Cluster {
    pub catalog: Option<Process>,
    pub webs: Vec<Process>,
    pub admin_token: String,
    databases: Vec<String>,
    services: Services,
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound")
}

/// Settings every process gets: no rate limits (this is a benchmark), room for many sockets.
fn common_args(token: &str) -> Vec<String> {
    vec![
        format!("--admin-token={token}"),
        "--rate-limit-likes-per-minute=0".to_owned(),
        "--rate-limit-visitors-per-minute=0".to_owned(),
        "--live-max-connections=20000".to_owned(),
        // Every socket of the benchmark comes from this one address.
        "--live-max-per-address=0".to_owned(),
    ]
}

async fn start(services: &Services, name: &str, args: Vec<String>) -> Result<Process, String> {
    let address = free_address();
    let log_path = services.work_dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).map_err(|err| format!("{name} log: {err}"))?;
    let child = Command::new(&services.server)
        // From the repository, whatever the caller's directory: the site's files are there.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("RUST_LOG", "warn")
        .arg(format!("--site-addr={address}"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", services.server.display()))?;
    let process = Process { address, child };
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(response) = client.get(process.url("/readyz")).send().await {
            if response.status() == 200 {
                return Ok(process);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "{name} was not ready within 30 s; see {}",
        log_path.display()
    ))
}

async fn admin_pool(services: &Services) -> Result<sqlx::PgPool, String> {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&services.postgres)
        .await
        .map_err(|err| format!("PostgreSQL at {}: {err}", services.postgres))
}

/// `postgres://…/name` for a database on the same server as `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, _) = admin_url.rsplit_once('/').unwrap_or((admin_url, ""));
    format!("{base}/{name}")
}

impl Cluster {
    /// A catalog and `webs` web instances sharing one web database.
    pub async fn production(services: &Services, webs: usize) -> Result<Self, String> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let token = format!("bench-{run}");
        let admin = admin_pool(services).await?;
        let databases = vec![
            format!("lg_bench_catalog_{run}"),
            format!("lg_bench_web_{run}"),
        ];
        for name in &databases {
            admin
                .execute(format!(r#"create database "{name}""#).as_str())
                .await
                .map_err(|err| format!("create database {name}: {err}"))?;
        }
        admin.close().await;
        let mut cluster = Self {
            catalog: None,
            webs: Vec::new(),
            admin_token: token.clone(),
            databases,
            services: services.clone(),
        };
        let mut shared = common_args(&token);
        shared.push(format!("--amqp-url={}", services.amqp));
        shared.push(format!("--bus-namespace=lg_bench_{run}"));

        let mut args = shared.clone();
        args.push("--role=catalog".to_owned());
        args.push(format!(
            "--catalog-database-url={}",
            database_url(&services.postgres, &cluster.databases[0])
        ));
        let catalog = start(services, "catalog", args).await?;
        let mut args = shared;
        args.push("--role=web".to_owned());
        args.push(format!(
            "--web-database-url={}",
            database_url(&services.postgres, &cluster.databases[1])
        ));
        args.push(format!("--catalog-url={}", catalog.url("")));
        cluster.catalog = Some(catalog);
        for n in 1..=webs {
            let web = start(services, &format!("web-{n}"), args.clone()).await?;
            cluster.webs.push(web);
        }
        Ok(cluster)
    }

    /// One process in the embedded set-up: SQLite files and the in-process bus.
    pub async fn embedded(services: &Services) -> Result<Self, String> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let token = format!("bench-{run}");
        let dir = services.work_dir.join(format!("embedded-{run}"));
        std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let sqlite = |name: &str| format!("sqlite://{}", Path::new(&dir).join(name).display());
        let mut args = common_args(&token);
        args.push("--role=all".to_owned());
        args.push(format!("--catalog-database-url={}", sqlite("catalog.db")));
        args.push(format!("--web-database-url={}", sqlite("web.db")));
        let process = start(services, "embedded", args).await?;
        Ok(Self {
            catalog: None,
            webs: vec![process],
            admin_token: token,
            databases: Vec::new(),
            services: services.clone(),
        })
    }

    /// Where the admin API is: the catalog, or the all-in-one process.
    pub fn admin_api(&self) -> &Process {
        self.catalog.as_ref().unwrap_or(&self.webs[0])
    }

    /// A CPU sample of the system now (see `cpu`).
    pub fn cpu_sample(&self) -> crate::cpu::Sample {
        let webs: Vec<u32> = self.webs.iter().map(Process::pid).collect();
        crate::cpu::sample(&webs, self.catalog.as_ref().map(Process::pid))
    }

    /// Transactions committed so far in each service's database (`catalog`, `web`), from
    /// PostgreSQL's own statistics; empty for the embedded set-up. PostgreSQL flushes a
    /// backend's counts at most 10 s after it goes idle, so this waits until they stay still for
    /// longer than that.
    pub async fn commits(&self) -> BTreeMap<&'static str, i64> {
        let mut counts = BTreeMap::new();
        if self.databases.is_empty() {
            return counts;
        }
        let Ok(admin) = admin_pool(&self.services).await else {
            return counts;
        };
        let read = || async {
            let mut now = BTreeMap::new();
            for (label, name) in ["catalog", "web"].into_iter().zip(&self.databases) {
                let commits: Option<i64> = sqlx::query_scalar(
                    "select xact_commit from pg_stat_database where datname = $1",
                )
                .bind(name)
                .fetch_optional(&admin)
                .await
                .ok()
                .flatten();
                now.insert(label, commits.unwrap_or(0));
            }
            now
        };
        let mut last = read().await;
        let mut steady = 0;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = read().await;
            steady = if now == last { steady + 1 } else { 0 };
            last = now;
            if steady > 10 {
                break;
            }
        }
        admin.close().await;
        counts.extend(last);
        counts
    }

    /// Messages every process of the deployment has published to the bus so far, summed from
    /// their `/metrics` (`live_gallery_events_published_total`).
    pub async fn published(&self) -> u64 {
        let client = reqwest::Client::new();
        let mut total = 0.0;
        for process in self.catalog.iter().chain(&self.webs) {
            let Ok(response) = client.get(process.url("/metrics")).send().await else {
                continue;
            };
            let text = response.text().await.unwrap_or_default();
            total += text
                .lines()
                .filter(|line| line.starts_with("live_gallery_events_published_total{"))
                .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum::<f64>();
        }
        total as u64
    }

    /// Stops every process and drops the databases.
    pub async fn stop(mut self) {
        self.webs.clear();
        self.catalog = None;
        if self.databases.is_empty() {
            return;
        }
        if let Ok(admin) = admin_pool(&self.services).await {
            for name in &self.databases {
                let _ = admin
                    .execute(format!(r#"drop database if exists "{name}" with (force)"#).as_str())
                    .await;
            }
            admin.close().await;
        }
    }
}
