//! Serving HTTP/1.1 with the timeouts a public site needs. A client has `header` to send a
//! request's head (a connection that trickles or stalls is closed), then `request` for the body
//! and the answer (408 beyond). On shutdown the listener closes at once and requests in flight get
//! up to `shutdown` to finish; connections still open then are dropped.

use crate::shutdown::Shutdown;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Longest wait for a request's head, from the first byte of the request (or of the
    /// connection).
    pub header: Duration,
    /// Longest wait for a request's body and its answer's head.
    pub request: Duration,
    /// Longest wait, after shutdown, for requests in flight.
    pub shutdown: Duration,
}

/// The layers that put `timeouts.request` on every route of `router`: the answer's head, and
/// each wait for a piece of the body.
pub fn with_request_timeouts(router: Router, timeouts: Timeouts) -> Router {
    router
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            timeouts.request,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeouts.request,
        ))
}

/// Serves `router` on `listener` until `stop` fires, then drains as described above.
pub async fn serve(listener: TcpListener, router: Router, timeouts: Timeouts, mut stop: Shutdown) {
    let mut http = Builder::new(TokioExecutor::new()).http1_only();
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pass, rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.wait() => break,
        };
        while connections.try_join_next().is_some() {}
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = http
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(timeouts.shutdown, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {:?}: their connections are closed",
            timeouts.shutdown
        );
    }
    connections.shutdown().await;
}
