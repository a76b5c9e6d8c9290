//! Three RabbitMQ nodes clustered among themselves on this machine, for the fault tests and the
//! benchmark's cluster scenario. Each node has its own name, ports and directories under
//! `target/broker-clusters/`, owned by the `rabbitmq` user the server drops to; they are never
//! joined to the machine's own broker, which the other tests use. Dropping the cluster kills its
//! nodes and removes their directories.
//!
//! Shared by the integration tests and the load generator (`#[path]`): std and tokio only.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to start (about 8 s on an idle 2-core machine).
const STARTUP: Duration = Duration::from_secs(120);

/// One node of the cluster.
pub struct Node {
    /// Erlang node name, `lg…n1@localhost`.
    pub name: String,
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    dist_port: u16,
    dir: PathBuf,
}

impl Node {
    fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }

    /// The node's Erlang VM, if it runs.
    fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Starts the node's server in a session of its own (so a test's Ctrl-C does not reach it)
    /// and returns once it answers.
    fn start(&self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.pid_file());
        let log = std::fs::File::create(self.dir.join("server.out")).map_err(|e| e.to_string())?;
        Command::new("setsid")
            .arg("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run rabbitmq-server: {e}"))?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if ctl(&self.name, &["await_startup", "--timeout", "10"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {} did not start within {STARTUP:?}; see {}",
                    self.name,
                    self.dir.join("server.out").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `rabbitmqctl -q -n node args…`; its output, or why it failed.
fn ctl(node: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new("rabbitmqctl")
        .args(["-q", "-n", node])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl -n {node} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A port nothing listens on now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Three clustered nodes.
pub struct BrokerCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl BrokerCluster {
    /// Starts three nodes under `base` (a directory of the cargo target) and clusters the
    /// second and third with the first.
    pub async fn start(base: impl Into<PathBuf>) -> Result<Self, String> {
        let base = base.into();
        tokio::task::spawn_blocking(move || Self::start_blocking(&base))
            .await
            .map_err(|e| e.to_string())?
    }

    fn start_blocking(base: &Path) -> Result<Self, String> {
        let id = format!(
            "lg{}x{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| t.as_nanos() % 1_000_000_000)
        );
        std::fs::create_dir_all(base).map_err(|e| e.to_string())?;
        // A plain path, so that a clean-up can find the nodes by their directories.
        let dir = base.canonicalize().map_err(|e| e.to_string())?.join(&id);
        let mut nodes = Vec::new();
        for n in 1..=3 {
            let node_dir = dir.join(format!("n{n}"));
            for sub in ["mnesia", "log"] {
                std::fs::create_dir_all(node_dir.join(sub)).map_err(|e| e.to_string())?;
            }
            let port = free_port()?;
            std::fs::write(
                node_dir.join("rabbitmq.conf"),
                format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
            )
            .map_err(|e| e.to_string())?;
            std::fs::write(node_dir.join("enabled_plugins"), "[].\n").map_err(|e| e.to_string())?;
            nodes.push(Node {
                name: format!("{id}n{n}@localhost"),
                port,
                dist_port: free_port()?,
                dir: node_dir,
            });
        }
        let status = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!(
                "cannot give {} to the rabbitmq user",
                dir.display()
            ));
        }
        // From here on a failure drops the cluster, which stops what did start.
        let cluster = Self { nodes, dir };
        std::thread::scope(|scope| {
            let starts: Vec<_> = cluster
                .nodes
                .iter()
                .map(|node| scope.spawn(|| node.start()))
                .collect();
            starts
                .into_iter()
                .try_for_each(|start| start.join().expect("a start thread"))
        })?;
        let first = cluster.nodes[0].name.clone();
        for node in &cluster.nodes[1..] {
            ctl(&node.name, &["stop_app"])?;
            ctl(&node.name, &["join_cluster", &first])?;
            ctl(&node.name, &["start_app"])?;
        }
        Ok(cluster)
    }

    /// An `AMQP_URL` naming the nodes in `order` (indexes into `nodes`), comma-separated.
    pub fn url(&self, order: &[usize]) -> String {
        order
            .iter()
            .map(|n| format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.nodes[*n].port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills node `n`'s VM with SIGKILL: a crash, nothing said to its peers or clients.
    pub async fn kill(&self, n: usize) {
        if let Some(pid) = self.nodes[n].pid() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let node = &self.nodes[n];
        while node.pid().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops node `n` as an operator would (`rabbitmqctl stop`), returning once it is down.
    pub async fn stop(&self, n: usize) -> Result<(), String> {
        let name = self.nodes[n].name.clone();
        tokio::task::spawn_blocking(move || ctl(&name, &["stop"]).map(drop))
            .await
            .map_err(|e| e.to_string())??;
        while self.nodes[n].pid().is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Starts node `n` again on its data; it rejoins the cluster.
    pub async fn restart(&self, n: usize) -> Result<(), String> {
        let node = &self.nodes[n];
        let node = Node {
            name: node.name.clone(),
            port: node.port,
            dist_port: node.dist_port,
            dir: node.dir.clone(),
        };
        tokio::task::spawn_blocking(move || node.start())
            .await
            .map_err(|e| e.to_string())?
    }

    /// `list_queues` columns for every queue, asked of a running node: one row of `columns`
    /// per queue, split on tabs.
    pub async fn queues(&self, columns: &[&str]) -> Result<Vec<Vec<String>>, String> {
        let Some(node) = self.nodes.iter().find(|node| node.pid().is_some()) else {
            return Err("no node is running".to_owned());
        };
        let mut args = vec!["list_queues".to_owned(), "--no-table-headers".to_owned()];
        args.extend(columns.iter().map(|c| (*c).to_owned()));
        let name = node.name.clone();
        let listing = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ctl(&name, &args)
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(listing
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect())
    }

    /// The index of the node leading the quorum queue whose name ends with `suffix`, when it
    /// has a leader that runs.
    pub async fn leader_of(&self, suffix: &str) -> Option<usize> {
        let rows = self.queues(&["name", "leader"]).await.ok()?;
        let leader = rows
            .iter()
            .find(|row| row[0].ends_with(suffix))?
            .get(1)?
            .clone();
        let n = self.nodes.iter().position(|node| node.name == leader)?;
        self.nodes[n].pid().is_some().then_some(n)
    }
}

impl Drop for BrokerCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        // `KEEP_TEST_DIRS=1` keeps the nodes' logs and data to look at after a run.
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
