//! The edge of the service: what every request meets before a handler runs. Who the client is
//! (behind trusted proxies), which site it came from, how often it may act, how long it may
//! take, and how its errors look.
//!
//! - `client`: the client's address and scheme, believed from trusted proxies only
//! - `origin`: "this site" (`PUBLIC_ORIGINS`) and the refusal of requests from other sites
//! - `limits`: per-client rate limits, bounded in memory
//! - `api_errors`: every error under `/api/` in the JSON error shape
//! - `serve`: HTTP serving with header, request and body timeouts and a bounded shutdown

pub mod api_errors;
pub mod client;
pub mod limits;
pub mod origin;
pub mod serve;

pub use client::{Client, TrustedProxies};

/// What the edge knows of the deployment: the proxies it trusts and the origins it serves.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub trusted_proxies: TrustedProxies,
    /// Normalised (`scheme://host[:port]`, lowercase); empty: the request's own.
    public_origins: Vec<String>,
}

impl Site {
    pub fn new(trusted_proxies: TrustedProxies, public_origins: &[String]) -> Self {
        let public_origins = public_origins
            .iter()
            .map(|origin| normalise(origin))
            .filter(|origin| !origin.is_empty())
            .collect();
        Self {
            trusted_proxies,
            public_origins,
        }
    }

    /// Whether the site is served over HTTPS to `client`: every public origin is `https://`,
    /// or, with none configured, the client's own connection is.
    pub fn is_https(&self, client: Client) -> bool {
        if self.public_origins.is_empty() {
            client.https
        } else {
            self.public_origins
                .iter()
                .all(|origin| origin.starts_with("https://"))
        }
    }

    /// Whether `origin` (an `Origin` header) names this site, for a request to `host` from
    /// `client`.
    pub fn is_own_origin(&self, origin: &str, host: Option<&str>, client: Client) -> bool {
        let origin = normalise(origin);
        if self.public_origins.is_empty() {
            let scheme = if client.https { "https" } else { "http" };
            host.is_some_and(|host| origin == format!("{scheme}://{}", host.to_ascii_lowercase()))
        } else {
            self.public_origins.contains(&origin)
        }
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}
