//! What operators see: Prometheus metrics on `GET /metrics`, and a request id on every request
//! (taken from `x-request-id` when the caller sent a sensible one), carried by the request's log
//! span and echoed in the response.

use crate::bus::Bus;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;
use tracing::Instrument;

/// Header that carries the request id.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The process-wide metrics recorder, installed on first use.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(crate::web::gallery::LIKE_TO_SOCKET.to_owned()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .expect("buckets are given")
                .install_recorder()
                .expect("the metrics recorder is installed once per process")
        })
        .clone()
}

#[derive(Clone)]
struct MetricsState {
    handle: PrometheusHandle,
    bus: Bus,
}

/// `GET /metrics` in the Prometheus text format.
pub fn router(bus: Bus) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(MetricsState {
            handle: recorder(),
            bus,
        })
}

async fn render(State(state): State<MetricsState>) -> impl IntoResponse {
    metrics::counter!("live_gallery_bus_reconnects_total").absolute(state.bus.reconnects());
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.handle.render(),
    )
}

/// An id for the request: the caller's `x-request-id` if it is short and plain, else a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .filter(|id| {
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Counts a request in `live_gallery_http_requests_in_flight` until dropped, also when the
/// client goes away mid-request and the handler's future is dropped.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn begin(route: &str) -> Self {
        let gauge =
            metrics::gauge!("live_gallery_http_requests_in_flight", "route" => route.to_owned());
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Middleware for every route: request id, log span, requests in flight, request count and
/// latency by route and status.
pub async fn observe(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), route = %route);
    let started = Instant::now();
    let in_flight = InFlight::begin(&route);
    span.in_scope(|| tracing::debug!("request received"));
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request answered"
        )
    });
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    metrics::counter!("live_gallery_http_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("live_gallery_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn with_header(value: &str) -> Request {
        Request::builder()
            .header("x-request-id", value)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn a_plain_caller_id_is_kept_and_anything_else_replaced() {
        assert_eq!(request_id(&with_header("abc-123_x")), "abc-123_x");
        for odd in ["", "has space", "<script>", &"x".repeat(65)] {
            let id = request_id(&with_header(odd));
            assert_ne!(id, odd);
            assert_eq!(id.len(), 32);
        }
    }
}
