//! The live hub of one web instance: `GET /ws` upgrades to a WebSocket that receives every
//! `LiveMessage` published to the hub (by the instance's gallery, `web::gallery`). One broadcast channel per instance; each socket has a send
//! task and a receive task, and when one ends the other is stopped. A client too slow to keep up
//! loses its place in the channel and is told to `resync` rather than silently missing updates.

use crate::edge::origin::is_foreign;
use crate::edge::Client;
use crate::shutdown::Shutdown;
use app::live::LiveMessage;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// Read and write buffer of each socket, and the largest message a browser may send.
const SOCKET_BUFFER: usize = 4096;

/// How often the server pings each socket, so idle connections stay open through proxies and
/// dead peers are noticed: one silent for two intervals is closed.
const PING_INTERVAL: Duration = Duration::from_secs(20);

/// The first message on every socket (`LiveMessage::Hello` of `app::live::PROTOCOL`).
const HELLO: &str = r#"{"type":"hello","protocol":3}"#;
/// What a socket that fell behind is sent (`LiveMessage::Resync`).
const RESYNC: &str = r#"{"type":"resync"}"#;

/// Fans live messages out to every open socket of this instance.
pub struct LiveHub {
    sender: broadcast::Sender<Utf8Bytes>,
    open: AtomicUsize,
    max_connections: usize,
}

impl LiveHub {
    /// A hub that accepts up to `max_connections` sockets, each allowed to fall `buffer`
    /// messages behind before it is told to resync.
    pub fn new(max_connections: usize, buffer: usize) -> Arc<Self> {
        let (sender, _) = broadcast::channel(buffer.max(1));
        Arc::new(Self {
            sender,
            open: AtomicUsize::new(0),
            max_connections,
        })
    }

    /// Sends `message` to every open socket.
    pub fn publish(&self, message: &LiveMessage) {
        let text = serde_json::to_string(message).expect("live messages serialise to JSON");
        // An error only means nobody is connected.
        let _ = self.sender.send(Utf8Bytes::from(text));
    }

    /// A receiver of everything published from now on, as a socket gets.
    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.sender.subscribe()
    }

    /// Sockets open right now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn reserve(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .ok()
            .map(|_| {
                metrics::gauge!("live_gallery_websockets_open").increment(1.0);
                Slot(self.clone())
            })
    }
}

/// One place among the hub's connections, given back on drop.
struct Slot(Arc<LiveHub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("live_gallery_websockets_open").decrement(1.0);
    }
}

/// What a socket must meet, beyond the hub's overall cap.
#[derive(Debug, Clone)]
pub struct SocketPolicy {
    /// Most sockets open at once from one address (0: no limit).
    pub max_per_address: usize,
    /// Longest wait for a socket to take a frame before it is closed.
    pub send_timeout: Duration,
    /// The site a browser's handshake must come from.
    pub site: Arc<crate::edge::Site>,
}

#[derive(Clone)]
struct LiveState {
    hub: Arc<LiveHub>,
    policy: Arc<SocketPolicy>,
    per_address: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    shutdown: Shutdown,
}

/// `GET /ws`.
pub fn router(hub: Arc<LiveHub>, policy: SocketPolicy, shutdown: Shutdown) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(LiveState {
            hub,
            policy: Arc::new(policy),
            per_address: Arc::default(),
            shutdown,
        })
}

/// A refusal of the handshake, as JSON.
fn refuse(status: StatusCode, error: &str, message: &str) -> Response {
    let body = json!({ "error": error, "message": message });
    (status, Json(body)).into_response()
}

/// One address's share of the sockets, given back on drop.
struct AddressSlot {
    counts: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = counts.get_mut(&self.address) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

fn reserve_address(state: &LiveState, address: IpAddr) -> Option<Option<AddressSlot>> {
    let limit = state.policy.max_per_address;
    if limit == 0 {
        return Some(None);
    }
    let mut counts = state.per_address.lock().unwrap_or_else(|p| p.into_inner());
    let open = counts.entry(address).or_default();
    if *open >= limit {
        return None;
    }
    *open += 1;
    Some(Some(AddressSlot {
        counts: state.per_address.clone(),
        address,
    }))
}

async fn upgrade(
    State(state): State<LiveState>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A handshake without `Origin` is not a browser page's (a load generator, a test).
    if headers.contains_key(ORIGIN) && is_foreign(&state.policy.site, &headers, client) {
        tracing::warn!(origin = ?headers.get(ORIGIN), "live connection refused: another site's page");
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "live updates are only for this site's pages",
        );
    }
    let Some(address_slot) = reserve_address(&state, client.address) else {
        tracing::info!(address = %client.address, "live connection refused: too many from one address");
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many live connections from your address; close some tabs and try again",
        );
    };
    let Some(slot) = state.hub.reserve() else {
        tracing::warn!(
            max = state.hub.max_connections,
            "live connection refused: instance full"
        );
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many live connections on this server; try again shortly",
        );
    };
    // Subscribe before answering, so nothing published after the handshake is missed.
    let updates = state.hub.sender.subscribe();
    // Small buffers: a socket carries short JSON messages out and only control frames in, and
    // the 128 KiB defaults would cost over a gigabyte per ten thousand sockets. A browser sends
    // nothing but control frames, so nothing bigger is read.
    ws.read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(SOCKET_BUFFER)
        .max_frame_size(SOCKET_BUFFER)
        .on_upgrade(move |socket| serve(socket, state, (slot, address_slot), updates))
}

async fn serve(
    socket: WebSocket,
    state: LiveState,
    slots: (Slot, Option<AddressSlot>),
    mut updates: broadcast::Receiver<Utf8Bytes>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = state.shutdown;
    let send_timeout = state.policy.send_timeout;
    let resync = Utf8Bytes::from_static(RESYNC);
    let hello = Utf8Bytes::from_static(HELLO);
    // When the peer was last heard from (any frame, pongs included), in ms since `started`.
    let started = tokio::time::Instant::now();
    let heard = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let heard_by_reader = heard.clone();

    let mut send = tokio::spawn(async move {
        let mut outgoing = Message::Text(hello);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            // A peer that takes nothing for this long is gone or will not read: let it go.
            match tokio::time::timeout(send_timeout, sink.send(outgoing)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::info!("live client took no frame in time; closing its socket");
                    break;
                }
            }
            outgoing = tokio::select! {
                update = updates.recv() => match update {
                    Ok(text) => Message::Text(text),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "live client fell behind; asking it to resync");
                        Message::Text(resync.clone())
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = ping.tick() => {
                    let silent = (started.elapsed().as_millis() as u64)
                        .saturating_sub(heard.load(Ordering::Relaxed));
                    if Duration::from_millis(silent) > 2 * PING_INTERVAL {
                        tracing::info!("live client answered no ping; closing its socket");
                        break;
                    }
                    Message::Ping(Default::default())
                }
                _ = shutdown.wait() => {
                    let _ = tokio::time::timeout(send_timeout, sink.send(Message::Close(None))).await;
                    break;
                }
            };
        }
    });
    // Browsers send nothing but control frames; reading keeps pongs and close frames flowing.
    let mut receive = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            heard_by_reader.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    });
    tokio::select! {
        _ = &mut send => receive.abort(),
        _ = &mut receive => send.abort(),
    }
    drop(slots);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_messages_are_what_the_types_serialise_to() {
        let hello = LiveMessage::Hello {
            protocol: app::live::PROTOCOL,
        };
        assert_eq!(serde_json::to_string(&hello).unwrap(), HELLO);
        assert_eq!(serde_json::to_string(&LiveMessage::Resync).unwrap(), RESYNC);
    }
}
