//! live-gallery as separate processes of the real binary, the production shape: a catalog and web
//! instances on RabbitMQ and PostgreSQL. A process can be killed (SIGKILL), stopped (SIGTERM) and
//! started again on the same address, so clients keep their URLs across a restart.

use crate::helpers::{amqp_url, fresh_database, unique, wait_until, Engine, SqliteDir};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// One `server` process, killed on drop.
pub struct ServerProcess {
    pub name: String,
    pub address: SocketAddr,
    args: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound")
}

impl ServerProcess {
    /// Starts `server --flag=value…` on a free port, logging to `<dir>/<name>.log`, and waits
    /// until `/readyz` says ready.
    pub async fn start(name: &str, args: Vec<(String, String)>, dir: &SqliteDir) -> Self {
        let mut process = Self {
            name: name.to_owned(),
            address: free_address(),
            args,
            log: dir.0.join(format!("{name}.log")),
            child: None,
        };
        process.spawn().await;
        process
    }

    /// `http://address{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Everything the process (in all its lives) has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,sqlx=warn")
            .arg(format!("--site-addr={}", self.address))
            .stdout(Stdio::null())
            .stderr(log);
        for (flag, value) in &self.args {
            command.arg(format!("--{flag}={value}"));
        }
        self.child = Some(command.spawn().expect("the server binary starts"));
        let client = reqwest::Client::new();
        let ready = async {
            loop {
                if let Ok(response) = client.get(self.url("/readyz")).send().await {
                    if response.status() == 200 {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .is_err()
        {
            panic!(
                "{} was not ready within 30 s; its log:\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process runs").id()
    }

    /// SIGKILL: the process ends at once, holding whatever it held.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL delivered");
            child.wait().expect("the process is reaped");
        }
    }

    /// Sends SIGTERM and returns without waiting.
    pub fn terminate(&self) {
        let child = self.child.as_ref().expect("the process runs");
        let sent = Command::new("kill")
            .args(["-s", "TERM", &child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(sent.success(), "SIGTERM delivered");
    }

    /// Waits for the process to exit (after `terminate`), failing after `limit`.
    pub async fn exited(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the process runs");
        let exit = async {
            loop {
                if let Some(status) = child.try_wait().expect("the process can be waited on") {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        match tokio::time::timeout(limit, exit).await {
            Ok(status) => status,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{} did not exit within {limit:?}; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
        }
    }

    /// Starts the process again with the same flags on the same address.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop {} first", self.name);
        self.spawn().await;
    }

    /// Waits until the process's `/metrics` has `name{…label…}` at `value` or more.
    pub async fn wait_for_metric(&self, name: &str, label: &str, value: f64) {
        let client = reqwest::Client::new();
        wait_until(
            &format!("{name} {label} >= {value} on {}", self.name),
            || async {
                let Ok(response) = client.get(self.url("/metrics")).send().await else {
                    return false;
                };
                metric(&response.text().await.unwrap_or_default(), name, label) >= value
            },
        )
        .await;
    }

    /// Waits until the process has logged `text` (e.g. that it began stopping).
    pub async fn wait_for_log(&self, text: &str) {
        wait_until(&format!("{} to log {text:?}", self.name), || async {
            self.log().contains(text)
        })
        .await;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The sum of a Prometheus text exposition's samples of `name` whose labels contain `label`.
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A catalog and web instances sharing one web database, on RabbitMQ and PostgreSQL.
pub struct Deployment {
    pub catalog: ServerProcess,
    pub webs: Vec<ServerProcess>,
    pub admin_token: String,
    /// The bus namespace every process uses.
    pub namespace: String,
    /// Database names, for tests that take PostgreSQL away.
    pub databases: Vec<String>,
    /// The catalog's and the web instances' database URLs.
    pub catalog_database: String,
    pub web_database: String,
    /// Holds the processes' logs; removed last.
    _dir: SqliteDir,
}

impl Deployment {
    /// Starts the catalog, then `webs` web instances; `extra` flags go to every process.
    pub async fn start(webs: usize, extra: &[(&str, &str)]) -> Self {
        Self::start_on(&amqp_url(), webs, extra).await
    }

    /// `start`, on the broker (or virtual host) at `amqp`.
    pub async fn start_on(amqp: &str, webs: usize, extra: &[(&str, &str)]) -> Self {
        crate::helpers::init_logs();
        let dir = SqliteDir::new();
        let namespace = unique("lg_test");
        let admin_token = unique("token");
        let mut shared = vec![
            ("amqp-url".to_owned(), amqp.to_owned()),
            ("bus-namespace".to_owned(), namespace.clone()),
            ("admin-token".to_owned(), admin_token.clone()),
            ("bus-timeout".to_owned(), "5000".to_owned()),
            (
                "dead-letter-queues".to_owned(),
                crate::helpers::CLASSIC_DEAD_LETTERS.to_owned(),
            ),
            // Every request of a test comes from one address, as in the benchmark: the
            // per-address limits (tested on their own in `security`) would refuse the test's
            // visitors once its polling had made 120 of them in a minute.
            ("rate-limit-visitors-per-minute".to_owned(), "0".to_owned()),
            ("rate-limit-likes-per-minute".to_owned(), "0".to_owned()),
        ];
        // `extra` adds flags or replaces the ones above.
        for (flag, value) in extra {
            shared.retain(|(kept, _)| kept != flag);
            shared.push(((*flag).to_owned(), (*value).to_owned()));
        }
        let namespace = shared
            .iter()
            .find(|(flag, _)| flag == "bus-namespace")
            .map(|(_, value)| value.clone())
            .expect("a namespace");

        let catalog_db = fresh_database(Engine::Postgres, &dir).await;
        let mut args = shared.clone();
        args.push(("role".to_owned(), "catalog".to_owned()));
        args.push(("catalog-database-url".to_owned(), catalog_db.clone()));
        let catalog = ServerProcess::start("catalog", args, &dir).await;

        let web_db = fresh_database(Engine::Postgres, &dir).await;
        let mut args = shared;
        args.push(("role".to_owned(), "web".to_owned()));
        args.push(("web-database-url".to_owned(), web_db.clone()));
        args.push(("catalog-url".to_owned(), catalog.url("")));
        let mut instances = Vec::new();
        for n in 1..=webs {
            instances.push(ServerProcess::start(&format!("web-{n}"), args.clone(), &dir).await);
        }
        let name = |url: &str| crate::helpers::database_name(url).to_owned();
        Self {
            catalog,
            webs: instances,
            admin_token,
            namespace,
            databases: vec![name(&catalog_db), name(&web_db)],
            catalog_database: catalog_db,
            web_database: web_db,
            _dir: dir,
        }
    }
}
