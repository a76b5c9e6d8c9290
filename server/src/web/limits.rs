//! Per-IP rate limits on the web service: how many likes and how many new visitors one address
//! may make per minute (0 turns a limit off, as benchmarks do). Beyond it: 429 with Retry-After.

use crate::error::Error;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Addresses remembered before full buckets are forgotten.
const MAX_TRACKED: usize = 10_000;

/// A token bucket per address: `per_minute` requests, refilled evenly over a minute.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Arc<Self> {
        Arc::new(Self {
            per_minute,
            buckets: Mutex::default(),
        })
    }

    /// Takes one request from `address`'s allowance; false when it has none left.
    pub fn allow(&self, address: IpAddr) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let capacity = f64::from(self.per_minute);
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED {
            let refill = capacity / 60.0;
            buckets.retain(|_, (tokens, since)| {
                *tokens + since.elapsed().as_secs_f64() * refill < capacity
            });
        }
        let (tokens, since) = buckets.entry(address).or_insert((capacity, now));
        *tokens =
            (*tokens + now.duration_since(*since).as_secs_f64() * capacity / 60.0).min(capacity);
        *since = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The 429 answer.
pub fn too_many() -> Response {
    let mut response = Error::RateLimited.into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

/// The peer address of a request (the proxy's, behind one).
pub fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

fn is_like(request: &Request) -> bool {
    let path = request.uri().path();
    let method = request.method();
    (path == "/api/set_like" && method == Method::POST)
        || (path.starts_with("/api/products/")
            && path.ends_with("/like")
            && (method == Method::POST || method == Method::DELETE))
}

/// Middleware: limits likes and unlikes per address.
pub async fn limit_likes(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if is_like(&request) {
        if let Some(address) = peer(&request) {
            if !limiter.allow(address) {
                tracing::info!(%address, "like rate limit reached");
                return too_many();
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_and_no_more() {
        let limiter = RateLimiter::new(3);
        let here: IpAddr = "10.0.0.1".parse().unwrap();
        let there: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(here)));
        assert!(!limiter.allow(here));
        assert!(limiter.allow(there), "each address has its own allowance");
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0);
        let here: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..10_000).all(|_| limiter.allow(here)));
    }
}
