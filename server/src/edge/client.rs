//! Who sent a request: the client's address and whether it reached the site over HTTPS. Behind
//! a trusted proxy both come from the proxy's `X-Forwarded-For` and `X-Forwarded-Proto`; from
//! anyone else those headers are ignored, so a client cannot name itself someone else.

use super::Site;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The proxies whose forwarding headers are believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses and networks (`10.0.0.0/8`, `::1`, `172.18.0.2`), ignoring blanks.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{entry}` is neither an address nor a network"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// The sender of a request, as the edge middleware found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub address: IpAddr,
    /// Whether the client's connection to the site is HTTPS (told by a trusted proxy).
    pub https: bool,
}

impl Client {
    /// The client of a request with these headers that came from `peer`: the rightmost hop of
    /// `X-Forwarded-For` that is not a trusted proxy, when `peer` is one; `peer` otherwise.
    pub fn find(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let peer = canonical(peer);
        if !trusted.trusts(peer) {
            return Self {
                address: peer,
                https: false,
            };
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut address = peer;
        for hop in hops.iter().rev() {
            // Something that is not an address was not written by a proxy we trust: stop at
            // the last hop that one of them vouches for.
            let Some(hop) = parse_hop(hop) else { break };
            address = hop;
            if !trusted.trusts(hop) {
                break;
            }
        }
        let https = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .next_back()
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        Self { address, https }
    }

    /// The client of `request` as the middleware recorded it, else its TCP peer.
    pub fn of(request: &Request) -> Option<Self> {
        request.extensions().get::<Self>().copied().or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| Self {
                    address: canonical(info.0.ip()),
                    https: false,
                })
        })
    }
}

/// An address as written in `X-Forwarded-For`: bare, or `[v6]:port` / `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|socket| canonical(socket.ip()))
}

/// IPv4 addresses written as IPv6 (`::ffff:10.0.0.1`) are IPv4 addresses.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Middleware: records the request's `Client` in its extensions for everything after it, and
/// whether its cookies are to be `Secure`.
pub async fn identify(State(site): State<Arc<Site>>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if let Some(peer) = peer {
        let client = Client::find(peer, request.headers(), &site.trusted_proxies);
        request.extensions_mut().insert(client);
        request
            .extensions_mut()
            .insert(app::api::session::CookiePolicy {
                secure: site.is_https(client),
            });
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(chain: &str, proto: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(chain).unwrap());
        if let Some(proto) = proto {
            headers.insert("x-forwarded-proto", HeaderValue::from_str(proto).unwrap());
        }
        headers
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let trusted = TrustedProxies::default();
        let client = Client::find(
            ip("203.0.113.9"),
            &forwarded("198.51.100.1", Some("https")),
            &trusted,
        );
        assert_eq!(client.address, ip("203.0.113.9"));
        assert!(!client.https);
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted =
            TrustedProxies::parse(&["10.0.0.0/8".to_owned(), " 192.0.2.7 ".to_owned()]).unwrap();
        // The client forged the first entry; the proxies appended the real one and themselves.
        let headers = forwarded("1.1.1.1, 198.51.100.23, 10.1.2.3", Some("https"));
        let client = Client::find(ip("192.0.2.7"), &headers, &trusted);
        assert_eq!(client.address, ip("198.51.100.23"));
        assert!(client.https);
        let v6 = Client::find(
            ip("::ffff:10.0.0.5"),
            &forwarded("[2001:db8::1]:4711", None),
            &trusted,
        );
        assert_eq!(v6.address, ip("2001:db8::1"));
        assert!(!v6.https);
    }

    #[test]
    fn garbage_in_the_chain_stops_at_the_last_trusted_hop() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".to_owned()]).unwrap();
        let client = Client::find(
            ip("10.0.0.1"),
            &forwarded("unknown, 10.0.0.2", None),
            &trusted,
        );
        assert_eq!(client.address, ip("10.0.0.2"));
        assert!(TrustedProxies::parse(&["not-an-address".to_owned()]).is_err());
    }
}
