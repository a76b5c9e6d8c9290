//! Per-client rate limits: how many likes, new visitors and admin sign-ins one client may make
//! per minute (0 turns a limit off, as benchmarks do). Beyond it: 429 with Retry-After.
//!
//! A client is its address (see `client`), and an IPv6 client its /64: one host is routinely
//! given a whole /64. Each limit is a keyed GCRA limiter from `governor`: one lookup per request
//! however many clients it has seen, and a timer forgets the clients whose allowance is full
//! again, so memory holds only the clients of the last minute.

use super::Client;
use crate::error::Error;
use crate::shutdown::Shutdown;
use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Gcra};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// How often clients whose allowance is full again are forgotten.
const FORGET_INTERVAL: Duration = Duration::from_secs(30);

/// What a limit counts by: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(address: IpAddr) -> Self {
        match super::client::canonical(address) {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => Self(v4),
        }
    }
}

/// A keyed GCRA limiter over clients, on clock `C`.
type Keyed<C> =
    Gcra<ClientKey, DefaultKeyedStateStore<ClientKey>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// `per_minute` actions per client, refilled evenly over a minute; none when 0.
pub struct RateLimiter<C: Clock = DefaultClock> {
    gcra: Option<Keyed<C>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Arc<Self> {
        Arc::new(Self::with_clock(per_minute, &DefaultClock::default()))
    }

    /// Forgets clients whose allowance is full again, every `FORGET_INTERVAL` until `shutdown`.
    pub fn forget_idle_until(self: &Arc<Self>, mut shutdown: Shutdown) {
        if self.gcra.is_none() {
            return;
        }
        let limiter = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FORGET_INTERVAL);
            loop {
                tokio::select! {
                    _ = ticks.tick() => limiter.forget_idle(),
                    _ = shutdown.wait() => break,
                }
            }
        });
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    pub fn with_clock(per_minute: u32, clock: &C) -> Self {
        let gcra = NonZeroU32::new(per_minute)
            .map(|n| Gcra::dashmap_with_clock(Quota::per_minute(n), C::clone(clock)));
        Self { gcra }
    }

    /// Takes one action from `address`'s allowance; false when it has none left.
    pub fn allow(&self, address: IpAddr) -> bool {
        self.gcra
            .as_ref()
            .is_none_or(|gcra| gcra.check_key(&ClientKey::of(address)).is_ok())
    }

    /// Forgets the clients whose allowance is full again (they are as good as never seen).
    pub fn forget_idle(&self) {
        if let Some(gcra) = &self.gcra {
            gcra.retain_recent();
            gcra.shrink_to_fit();
        }
    }

    /// How many clients the limiter remembers.
    pub fn remembered(&self) -> usize {
        self.gcra.as_ref().map_or(0, |gcra| gcra.len())
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

/// Whether `client` may act once more under `limiter`; logs `what` when not.
pub fn admit(limiter: &RateLimiter, request: &Request, what: &str) -> bool {
    let Some(client) = Client::of(request) else {
        return true;
    };
    let allowed = limiter.allow(client.address);
    if !allowed {
        tracing::info!(address = %client.address, "{what} rate limit reached");
    }
    allowed
}

fn is_like(request: &Request) -> bool {
    let path = request.uri().path();
    let method = request.method();
    (path == "/api/set_like" && method == Method::POST)
        || (path.starts_with("/api/products/")
            && path.ends_with("/like")
            && (method == Method::POST || method == Method::DELETE))
}

/// Middleware: limits likes and unlikes per client.
pub async fn limit_likes(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if is_like(&request) && !admit(&limiter, &request, "like") {
        return too_many();
    }
    next.run(request).await
}

/// Middleware: limits administrator sign-in attempts per client.
pub async fn limit_sign_ins(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let signing_in = request.uri().path() == "/api/sign_in" && request.method() == Method::POST;
    if signing_in && !admit(&limiter, &request, "sign-in") {
        return too_many();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_allowance_and_no_more() {
        let limiter = RateLimiter::new(3);
        assert!((0..3).all(|_| limiter.allow(ip("10.0.0.1"))));
        assert!(!limiter.allow(ip("10.0.0.1")));
        assert!(limiter.allow(ip("10.0.0.2")), "each address has its own");
        assert!(
            !limiter.allow(ip("::ffff:10.0.0.1")),
            "an IPv4 address written as IPv6 is the same client"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let limiter = RateLimiter::new(2);
        assert!(limiter.allow(ip("2001:db8:1:2::1")));
        assert!(limiter.allow(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert!(!limiter.allow(ip("2001:db8:1:2::77")), "same /64");
        assert!(limiter.allow(ip("2001:db8:1:3::1")), "the next /64");
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0);
        assert!((0..10_000).all(|_| limiter.allow(ip("10.0.0.1"))));
        assert_eq!(limiter.remembered(), 0);
    }

    #[test]
    fn clients_whose_allowance_refilled_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(60, &clock);
        for n in 0..50_000u32 {
            assert!(limiter.allow(IpAddr::from(n.to_be_bytes())));
        }
        assert_eq!(limiter.remembered(), 50_000);
        limiter.forget_idle();
        assert_eq!(limiter.remembered(), 50_000, "all acted within the minute");
        clock.advance(Duration::from_secs(61));
        assert!(limiter.allow(ip("192.0.2.1")));
        limiter.forget_idle();
        assert_eq!(limiter.remembered(), 1, "only the recent client is kept");
    }
}
