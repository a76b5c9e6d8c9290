//! Protections every response and every state-changing request gets: security headers, and the
//! refusal of cookie-carrying requests sent from another site (cross-site request forgery).

use crate::error::Error;
use axum::extract::Request;
use axum::http::header::{
    HeaderValue, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HOST, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The policy of a page that came without its own: this site's files only and no inline
/// script at all (its hydration scripts do not run; the page still reads and its forms work).
const PAGE_WITHOUT_NONCE: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' http: https:; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Middleware: headers on every response. Pages set their own Content-Security-Policy (with
/// their script nonce); an HTML page that did not gets the strict page policy above, anything
/// else one that allows nothing.
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        let html = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        let policy = if html {
            PAGE_WITHOUT_NONCE
        } else {
            "default-src 'none'; frame-ancestors 'none'"
        };
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    }
    response
}

/// Whether a request that changes state was sent by a page of another site.
fn is_cross_site(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "cross-site";
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Browsers send Origin on cross-origin POSTs; without it the request is not a browser's
        // cross-site one.
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, host)| host);
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

/// Middleware: a state-changing request that carries cookies and comes from another site is
/// refused with 403 before anything runs.
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state && request.headers().contains_key(COOKIE) && is_cross_site(&request) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), "cross-site request refused");
        return Error::Forbidden("requests from other sites are refused").into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn post(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method("POST").uri("/api/set_like");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn same_site_requests_pass() {
        assert!(!is_cross_site(&post(&[
            ("host", "gallery.example"),
            ("origin", "https://gallery.example")
        ])));
        assert!(!is_cross_site(&post(&[("sec-fetch-site", "same-origin")])));
        assert!(
            !is_cross_site(&post(&[("host", "gallery.example")])),
            "no Origin: not a browser's cross-site post"
        );
    }

    #[test]
    fn other_sites_are_recognised() {
        assert!(is_cross_site(&post(&[
            ("host", "gallery.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(is_cross_site(&post(&[
            ("host", "gallery.example"),
            ("origin", "null")
        ])));
        assert!(is_cross_site(&post(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://gallery.example")
        ])));
    }
}
