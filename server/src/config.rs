//! Process configuration: one struct filled from environment variables or matching flags. Every
//! variable is listed in `.env.example`.

use clap::{Parser, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Which service(s) this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Catalog and web in one process (the embedded default).
    All,
    /// The catalog service only: products, like counts, admin API.
    Catalog,
    /// The web service only: pages, likes, read model, live updates.
    Web,
}

impl Role {
    pub fn runs_catalog(self) -> bool {
        matches!(self, Role::All | Role::Catalog)
    }

    pub fn runs_web(self) -> bool {
        matches!(self, Role::All | Role::Web)
    }
}

/// The kind of the dead-letter queues the services declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeadLetterQueues {
    /// Replicated on the cluster's nodes, like the queues they serve: a node's loss leaves them
    /// usable. The default.
    Quorum,
    /// On the node that declared them: enough for a single-node broker, lighter for it.
    Classic,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Everything a live-gallery process needs to start.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "live-gallery",
    version,
    about = "Real-time image gallery: catalog and web services"
)]
pub struct Config {
    /// Which service(s) to run.
    #[arg(long, env = "ROLE", value_enum, default_value = "all")]
    pub role: Role,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub site_addr: SocketAddr,

    /// The catalog's database: `sqlite://path`, `postgres://…` or `mysql://…` (TLS settings go in
    /// the URL: `sslmode`/`sslrootcert` for PostgreSQL, `ssl-mode`/`ssl-ca` for MySQL).
    #[arg(
        long,
        env = "CATALOG_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://data/catalog.db"
    )]
    pub catalog_database_url: Secret,

    /// The web service's database: `sqlite://path`, `postgres://…` or `mysql://…`.
    #[arg(
        long,
        env = "WEB_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://data/web.db"
    )]
    pub web_database_url: Secret,

    /// RabbitMQ address, `amqp://…` or `amqps://…` (TLS); several (a cluster's nodes) separated
    /// by commas, tried in turn. Unset: an in-process bus (only sensible with `--role all`).
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<Secret>,

    /// PEM certificates trusted for `amqps://` besides the system's roots (a private CA).
    #[arg(long, env = "AMQP_CA_FILE")]
    pub amqp_ca_file: Option<std::path::PathBuf>,

    /// PEM client certificate for `amqps://`, for brokers that ask for one (with the key below).
    #[arg(long, env = "AMQP_CLIENT_CERT_FILE")]
    pub amqp_client_cert_file: Option<std::path::PathBuf>,

    /// PEM private key of `AMQP_CLIENT_CERT_FILE`.
    #[arg(long, env = "AMQP_CLIENT_KEY_FILE")]
    pub amqp_client_key_file: Option<std::path::PathBuf>,

    /// Where the web role reaches the catalog's HTTP API (`http://…` or `https://…`). Unset with
    /// `--role all`: in-process.
    #[arg(long, env = "CATALOG_URL")]
    pub catalog_url: Option<String>,

    /// PEM certificates trusted for an `https://` `CATALOG_URL` besides the system's roots.
    #[arg(long, env = "CATALOG_CA_FILE")]
    pub catalog_ca_file: Option<std::path::PathBuf>,

    /// Bearer token for admin actions, at least 32 characters. Unset: the catalog role keeps a
    /// random one in `ADMIN_TOKEN_FILE`; a web role alone has no admin pages.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Where the administrator token is kept when `ADMIN_TOKEN` is not set (made on first start,
    /// readable by its owner only).
    #[arg(long, env = "ADMIN_TOKEN_FILE", default_value = "data/admin-token")]
    pub admin_token_file: std::path::PathBuf,

    /// Prefix of every exchange and queue name, so deployments and tests can share a broker.
    #[arg(long, env = "BUS_NAMESPACE", default_value = "live-gallery")]
    pub bus_namespace: String,

    /// How many unacknowledged messages a consumer may hold; also the largest batch a batching
    /// consumer (catalog likes, web read model) applies in one transaction.
    #[arg(long, env = "BUS_PREFETCH", default_value_t = 500)]
    pub bus_prefetch: u16,

    /// Longest wait for a broker operation (connect, publish confirm) before it counts as failed.
    #[arg(long, env = "BUS_TIMEOUT_MS", default_value = "5000", value_parser = parse_millis)]
    pub bus_timeout: MillisArg,

    /// The kind of the dead-letter queues: `quorum` (replicated; needed on a cluster) or
    /// `classic` (on one node). Queues that exist keep their kind.
    #[arg(long, env = "DEAD_LETTER_QUEUES", value_enum, default_value = "quorum")]
    pub dead_letter_queues: DeadLetterQueues,

    /// Most WebSockets one web instance keeps open; more are refused with 503.
    #[arg(long, env = "LIVE_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub live_max_connections: usize,

    /// Most WebSockets open at once from one address (0: no limit).
    #[arg(long, env = "LIVE_MAX_PER_ADDRESS", default_value_t = 50)]
    pub live_max_per_address: usize,

    /// Longest wait for a socket to take a frame; a peer that reads nothing for this long is
    /// disconnected.
    #[arg(long, env = "LIVE_SEND_TIMEOUT_MS", default_value = "10000", value_parser = parse_millis)]
    pub live_send_timeout: MillisArg,

    /// The origins this site is served from (`https://gallery.example`, comma-separated): a
    /// state-changing request or a WebSocket handshake from a page of any other origin is
    /// refused, and cookies are `Secure` when every one is HTTPS. Empty: the request's own scheme
    /// and host.
    #[arg(
        long,
        env = "PUBLIC_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub public_origins: Vec<String>,

    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed: addresses or
    /// networks (`10.0.0.0/8`), comma-separated. Empty: none, every client is its TCP peer.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub trusted_proxies: Vec<String>,

    /// A second address that serves `/metrics` and `/readyz` (and `/healthz`); when set, the
    /// public listener does not answer them. Unset: the public listener does.
    #[arg(long, env = "INTERNAL_ADDR")]
    pub internal_addr: Option<SocketAddr>,

    /// Longest wait for a request's head; a client that trickles or stalls it is disconnected.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value = "10000", value_parser = parse_millis)]
    pub header_timeout: MillisArg,

    /// Longest wait for a request's body and the answer (408 beyond).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value = "30000", value_parser = parse_millis)]
    pub request_timeout: MillisArg,

    /// On shutdown, longest wait for requests in flight before their connections are closed.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value = "10000", value_parser = parse_millis)]
    pub shutdown_timeout: MillisArg,

    /// Live messages a slow socket may fall behind before it is told to resync.
    #[arg(long, env = "LIVE_BUFFER", default_value_t = 256)]
    pub live_buffer: usize,

    /// Under load, like counts go to browsers in at most one frame per this many milliseconds
    /// (at once when idle).
    #[arg(long, env = "LIVE_TICK_MS", default_value = "50", value_parser = parse_millis)]
    pub live_tick: MillisArg,

    /// Likes and unlikes one address may make per minute (0: no limit, as for benchmarks).
    #[arg(long, env = "RATE_LIMIT_LIKES_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_likes_per_minute: u32,

    /// New visitors one address may create per minute (0: no limit).
    #[arg(long, env = "RATE_LIMIT_VISITORS_PER_MINUTE", default_value_t = 120)]
    pub rate_limit_visitors_per_minute: u32,

    /// Administrator sign-in attempts one address may make per minute (0: no limit).
    #[arg(long, env = "RATE_LIMIT_SIGN_INS_PER_MINUTE", default_value_t = 10)]
    pub rate_limit_sign_ins_per_minute: u32,

    /// Log lines as readable text or as JSON objects.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Connections in each database pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10)]
    pub database_pool_size: u32,

    /// Longest wait of a request for a connection of an exhausted pool; 503 beyond.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value = "2000", value_parser = parse_millis)]
    pub database_acquire_timeout: MillisArg,
}

/// A duration given in milliseconds on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MillisArg(pub Duration);

impl fmt::Display for MillisArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_millis())
    }
}

fn parse_millis(raw: &str) -> Result<MillisArg, String> {
    raw.parse::<u64>()
        .map(|ms| MillisArg(Duration::from_millis(ms)))
        .map_err(|_| format!("`{raw}` is not a number of milliseconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(…)");
    }

    #[test]
    fn flags_override_defaults() {
        let config = Config::try_parse_from([
            "live-gallery",
            "--role",
            "web",
            "--site-addr",
            "127.0.0.1:0",
            "--bus-timeout",
            "250",
        ])
        .unwrap();
        assert_eq!(config.role, Role::Web);
        assert_eq!(config.site_addr.port(), 0);
        assert_eq!(config.bus_timeout.0, Duration::from_millis(250));
    }
}
