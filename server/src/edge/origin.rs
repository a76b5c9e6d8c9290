//! Requests from other sites. A browser names the page that sent a request in `Origin` (or, on
//! some requests, only in `Sec-Fetch-Site`); a state-changing request that another site's page
//! sent is refused, cookies or not, before anything runs. A request with neither header is not a
//! browser's (curl, the load generator, the web role calling the catalog) and goes on.

use super::{Client, Site};
use crate::error::Error;
use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Whether a request with these headers, from `client`, was sent by a page of another site.
pub fn is_foreign(site: &Site, headers: &HeaderMap, client: Client) -> bool {
    if let Some(origin) = headers.get(ORIGIN) {
        let host = headers.get(HOST).and_then(|value| value.to_str().ok());
        return origin
            .to_str()
            .map_or(true, |origin| !site.is_own_origin(origin, host, client));
    }
    match headers.get("sec-fetch-site").map(|value| value.to_str()) {
        None => false,
        // `none`: the person typed the address or used a bookmark.
        Some(Ok(site)) => !matches!(site, "same-origin" | "none"),
        Some(Err(_)) => true,
    }
}

/// Middleware: a state-changing request from another site's page is refused with 403.
pub async fn refuse_cross_site(
    State(site): State<Arc<Site>>,
    request: Request,
    next: Next,
) -> Response {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state {
        let client = Client::of(&request).unwrap_or(Client {
            address: std::net::Ipv4Addr::UNSPECIFIED.into(),
            https: false,
        });
        if is_foreign(&site, request.headers(), client) {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), origin = ?request.headers().get(ORIGIN), "cross-site request refused");
            return Error::Forbidden("requests from other sites are refused").into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn client(https: bool) -> Client {
        Client {
            address: "192.0.2.1".parse().unwrap(),
            https,
        }
    }

    #[test]
    fn without_public_origins_the_requests_own_scheme_and_host_are_the_site() {
        let site = Site::default();
        let own = headers(&[
            ("host", "gallery.example"),
            ("origin", "http://gallery.example"),
        ]);
        assert!(!is_foreign(&site, &own, client(false)));
        assert!(is_foreign(&site, &own, client(true)), "scheme differs");
        for origin in [
            "https://evil.example",
            "null",
            "http://shop.gallery.example",
        ] {
            let foreign = headers(&[("host", "gallery.example"), ("origin", origin)]);
            assert!(is_foreign(&site, &foreign, client(false)), "{origin}");
        }
    }

    #[test]
    fn a_sibling_subdomain_is_another_site_whatever_sec_fetch_site_says() {
        let site = Site::new(Default::default(), &["https://gallery.example/".to_owned()]);
        let sibling = headers(&[
            ("origin", "https://shop.gallery.example"),
            ("sec-fetch-site", "same-site"),
        ]);
        assert!(is_foreign(&site, &sibling, client(true)));
        let own = headers(&[("origin", "https://Gallery.example")]);
        assert!(!is_foreign(&site, &own, client(false)));
    }

    #[test]
    fn without_origin_sec_fetch_site_decides_and_without_both_it_is_not_a_browser() {
        let site = Site::default();
        for (value, foreign) in [
            ("same-origin", false),
            ("none", false),
            ("same-site", true),
            ("cross-site", true),
        ] {
            let sent = headers(&[("sec-fetch-site", value)]);
            assert_eq!(is_foreign(&site, &sent, client(false)), foreign, "{value}");
        }
        assert!(!is_foreign(&site, &HeaderMap::new(), client(false)));
    }
}
