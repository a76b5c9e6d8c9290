//! The live hub of one web instance: `GET /ws` upgrades to a WebSocket that receives every
//! `LiveMessage` published to the hub. One broadcast channel per instance; each socket has a send
//! task and a receive task, and when one ends the other is stopped. A client too slow to keep up
//! loses its place in the channel and is told to `resync` rather than silently missing updates.

use crate::shutdown::Shutdown;
use app::live::LiveMessage;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// Read and write buffer of each socket, and the largest message a browser may send.
const SOCKET_BUFFER: usize = 4096;

/// How often the server pings each socket, so idle connections stay open through proxies and
/// dead peers are noticed.
const PING_INTERVAL: Duration = Duration::from_secs(20);

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

#[derive(Clone)]
struct LiveState {
    hub: Arc<LiveHub>,
    shutdown: Shutdown,
}

/// `GET /ws`.
pub fn router(hub: Arc<LiveHub>, shutdown: Shutdown) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(LiveState { hub, shutdown })
}

async fn upgrade(State(state): State<LiveState>, ws: WebSocketUpgrade) -> Response {
    let Some(slot) = state.hub.reserve() else {
        tracing::warn!(
            max = state.hub.max_connections,
            "live connection refused: instance full"
        );
        let body = json!({
            "error": "unavailable",
            "message": "too many live connections on this server; try again shortly",
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    // Subscribe before answering, so nothing published after the handshake is missed.
    let updates = state.hub.sender.subscribe();
    // Small buffers: a socket carries short JSON messages out and only control frames in, and
    // the 128 KiB defaults would cost over a gigabyte per ten thousand sockets.
    ws.read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(SOCKET_BUFFER)
        .on_upgrade(move |socket| serve(socket, state, slot, updates))
}

async fn serve(
    socket: WebSocket,
    state: LiveState,
    slot: Slot,
    mut updates: broadcast::Receiver<Utf8Bytes>,
) {
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = state.shutdown;
    let resync = Utf8Bytes::from(serde_json::to_string(&LiveMessage::Resync).expect("serialises"));

    let mut send = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            let outgoing = tokio::select! {
                update = updates.recv() => match update {
                    Ok(text) => Message::Text(text),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "live client fell behind; asking it to resync");
                        Message::Text(resync.clone())
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = ping.tick() => Message::Ping(Default::default()),
                _ = shutdown.wait() => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            };
            if sink.send(outgoing).await.is_err() {
                break;
            }
        }
    });
    // Browsers send nothing but control frames; reading keeps pongs and close frames flowing.
    let mut receive = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    });
    tokio::select! {
        _ = &mut send => receive.abort(),
        _ = &mut receive => send.abort(),
    }
    drop(slot);
}

/// Feeds this instance's hub from two sources: its own exclusive queue on the catalog's exchange,
/// so every web instance hears every change, and the read model as it applies events here, so
/// changes made while the instance was down (never on its new queue) still reach browsers.
/// Events no newer than one already passed on for the same product are dropped, which also
/// makes the two sources agree; the read model may repeat the newest product change, because
/// browsers refetch from it and only its copy is sure to be there. Like counts are coalesced:
/// at most one `likes` message per product per tick, carrying the latest count.
pub struct LiveFeed {
    hub: Arc<LiveHub>,
    /// The web database, whose read model pages refetch from.
    db: crate::db::Database,
    state: std::sync::Mutex<FeedState>,
}

#[derive(Default)]
struct FeedState {
    /// Highest version passed on, per product, and the resync round it was passed on in.
    seen: std::collections::HashMap<app::domain::ProductId, (i64, u64)>,
    /// Version of the last product change (created, updated, deleted) passed on, per product.
    announced: std::collections::HashMap<app::domain::ProductId, i64>,
    /// Latest count waiting for the next tick, per product.
    pending: std::collections::BTreeMap<app::domain::ProductId, i64>,
    /// Grows each time browsers are told to resync after a reconnect.
    resyncs: u64,
}

impl LiveFeed {
    /// A feed for `hub` that flushes coalesced counts every `tick` until `shutdown`. When `bus`
    /// had to reconnect, this instance's queue was made anew and may have missed changes: the
    /// next tick tells every browser to resync.
    pub fn start(
        hub: Arc<LiveHub>,
        db: crate::db::Database,
        bus: crate::bus::Bus,
        tick: Duration,
        mut shutdown: Shutdown,
    ) -> Arc<Self> {
        let feed = Arc::new(Self {
            hub,
            db,
            state: std::sync::Mutex::default(),
        });
        let flusher = feed.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reconnects = bus.reconnects();
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        flusher.flush();
                        let now = bus.reconnects();
                        if now != reconnects {
                            reconnects = now;
                            // Browsers refetch now, maybe before the read model has caught
                            // up: its copy of what was already passed on goes out again.
                            flusher.lock().resyncs += 1;
                            flusher.hub.publish(&LiveMessage::Resync);
                        }
                    }
                    _ = shutdown.wait() => break,
                }
            }
        });
        feed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn flush(&self) {
        let pending = std::mem::take(&mut self.lock().pending);
        for (id, likes) in pending {
            self.hub.publish(&LiveMessage::Likes { id, likes });
        }
    }

    /// Passes on an event from this instance's live queue.
    pub fn apply(&self, event: crate::events::CatalogEvent) {
        self.pass_on(event, false);
    }

    /// Passes on an event the read model has just committed.
    pub fn applied_to_read_model(&self, event: crate::events::CatalogEvent) {
        self.pass_on(event, true);
    }

    /// Passes a catalog event on to the browsers unless one as new was passed on already. The
    /// read model's copy of the newest event goes out again when browsers may have refetched
    /// before it was there: always for a product change (the live queue's copy waits only so
    /// long for the read model), and for a count passed on before the last reconnect resync.
    fn pass_on(&self, event: crate::events::CatalogEvent, from_read_model: bool) {
        use crate::events::CatalogEvent;
        let (id, version) = match &event {
            CatalogEvent::ProductCreated(p)
            | CatalogEvent::ProductUpdated(p)
            | CatalogEvent::LikesChanged(p) => (p.id, p.version),
            CatalogEvent::ProductDeleted { id, version } => (*id, *version),
        };
        let mut state = self.lock();
        let (newest, passed_in) = state.seen.get(&id).copied().unwrap_or((0, 0));
        let announced = state.announced.get(&id).copied().unwrap_or(0);
        let resyncs = state.resyncs;
        let fresh =
            version > newest || (from_read_model && version == newest && passed_in < resyncs);
        // A product change older than the newest like count still matters if no later product
        // change was announced: after a restart the read model may apply, late, a rename that
        // this instance's queue never carried, while counts already arrived newer.
        let late_change = !matches!(event, CatalogEvent::LikesChanged(_))
            && (version > announced || (from_read_model && version == announced));
        if !fresh && !late_change {
            return;
        }
        if fresh {
            state.seen.insert(id, (version, resyncs));
        }
        match event {
            CatalogEvent::LikesChanged(product) => {
                state.pending.insert(id, product.likes);
            }
            CatalogEvent::ProductCreated(product) | CatalogEvent::ProductUpdated(product) => {
                state.announced.insert(id, version);
                if fresh {
                    // The newest version carries the newest count; pages keep pushed counts
                    // over refetched ones, so it goes out as a count too.
                    state.pending.insert(id, product.likes);
                }
                drop(state);
                self.hub.publish(&LiveMessage::Product {
                    product: product.product(),
                });
            }
            CatalogEvent::ProductDeleted { .. } => {
                state.announced.insert(id, version);
                state.pending.remove(&id);
                drop(state);
                self.hub.publish(&LiveMessage::Deleted { id });
            }
        }
    }
}

/// Longest wait for the read model to catch up with a product change before browsers are told.
const READ_MODEL_WAIT: Duration = Duration::from_secs(3);

impl LiveFeed {
    /// Waits until the read model holds `version` of product `id` (or a later one), so a browser
    /// that refetches on this message sees the change. This instance's live queue and the shared
    /// read-model queue are separate, so the message can otherwise overtake the write.
    async fn wait_for_read_model(&self, id: app::domain::ProductId, version: i64) {
        let caught_up = async {
            loop {
                let stored: Result<Option<i64>, _> =
                    sqlx::query_scalar("select version from product where id = $1")
                        .bind(id.get())
                        .fetch_optional(self.db.pool())
                        .await;
                if matches!(stored, Ok(Some(stored)) if stored >= version) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(READ_MODEL_WAIT, caught_up)
            .await
            .is_err()
        {
            tracing::warn!(product_id = %id, version, "read model behind; telling browsers anyway");
        }
    }
}

/// The consumer side of the feed.
pub struct LiveHandler(pub Arc<LiveFeed>);

impl crate::bus::consumer::Handler for LiveHandler {
    type Event = crate::events::CatalogEvent;
    const NAME: &'static str = "live";

    async fn handle(
        &self,
        envelope: crate::bus::Envelope<Self::Event>,
    ) -> Result<(), crate::bus::consumer::HandleError> {
        use crate::events::CatalogEvent;
        // Pages refetch on product changes: let the read model have them first. Like counts
        // travel in the message itself and need no wait.
        match &envelope.event {
            CatalogEvent::ProductCreated(product) | CatalogEvent::ProductUpdated(product) => {
                self.0
                    .wait_for_read_model(product.id, product.version)
                    .await
            }
            CatalogEvent::ProductDeleted { id, version } => {
                self.0.wait_for_read_model(*id, *version).await
            }
            CatalogEvent::LikesChanged(_) => {}
        }
        self.0.apply(envelope.event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CatalogEvent, ProductSnapshot};
    use app::domain::{ImageUrl, ProductId, ProductTitle};
    use tokio::sync::broadcast::error::TryRecvError;

    fn snapshot(title: &str, likes: i64, version: i64) -> ProductSnapshot {
        ProductSnapshot {
            id: ProductId::from_stored(7),
            title: ProductTitle::parse(title).unwrap(),
            image: ImageUrl::parse("https://example.com/7.jpg").unwrap(),
            likes,
            version,
        }
    }

    /// A feed on a fresh SQLite file (only its pool is needed) and a socket's view of its hub.
    async fn feed() -> (LiveFeed, broadcast::Receiver<Utf8Bytes>, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("lg-feed-{}.db", uuid::Uuid::new_v4()));
        let url = crate::config::Secret::new(format!("sqlite://{}", path.display()));
        let db = crate::db::Database::connect(&url, crate::db::Service::Web, 1)
            .await
            .unwrap();
        let hub = LiveHub::new(10, 64);
        let socket = hub.sender.subscribe();
        let feed = LiveFeed {
            hub,
            db,
            state: std::sync::Mutex::default(),
        };
        (feed, socket, path)
    }

    fn next(socket: &mut broadcast::Receiver<Utf8Bytes>) -> Option<serde_json::Value> {
        match socket.try_recv() {
            Ok(text) => Some(serde_json::from_str(text.as_str()).unwrap()),
            Err(TryRecvError::Empty) => None,
            Err(other) => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn the_read_models_copy_of_the_newest_product_change_goes_out_again() {
        let (feed, mut socket, path) = feed().await;
        feed.apply(CatalogEvent::ProductUpdated(snapshot("Renamed", 0, 2)));
        assert_eq!(next(&mut socket).unwrap()["product"]["title"], "Renamed");

        // The queue's copy went out first (it stopped waiting for the read model); a browser may
        // have refetched before the read model had it, so its commit is announced once more.
        feed.applied_to_read_model(CatalogEvent::ProductUpdated(snapshot("Renamed", 0, 2)));
        assert_eq!(next(&mut socket).unwrap()["product"]["title"], "Renamed");

        // The queue repeating itself, and anything older, stays out.
        feed.apply(CatalogEvent::ProductUpdated(snapshot("Renamed", 0, 2)));
        feed.applied_to_read_model(CatalogEvent::ProductUpdated(snapshot("First", 0, 1)));
        assert_eq!(next(&mut socket), None);
        std::fs::remove_file(path).ok();
    }

    #[tokio::test]
    async fn a_product_change_newer_than_the_last_count_sends_its_count() {
        let (feed, mut socket, path) = feed().await;
        feed.apply(CatalogEvent::LikesChanged(snapshot("Dunes", 1, 1)));
        // The like of version 2 is overtaken by a rename of version 3, which already counts it.
        feed.apply(CatalogEvent::ProductUpdated(snapshot(
            "Dunes at dusk",
            2,
            3,
        )));
        feed.apply(CatalogEvent::LikesChanged(snapshot("Dunes", 2, 2)));
        assert_eq!(next(&mut socket).unwrap()["type"], "product");
        feed.flush();
        assert_eq!(next(&mut socket).unwrap()["likes"], 2);
        assert_eq!(next(&mut socket), None);
        std::fs::remove_file(path).ok();
    }

    #[tokio::test]
    async fn after_a_reconnect_the_read_models_copy_of_the_newest_count_goes_out_again() {
        let (feed, mut socket, path) = feed().await;
        feed.apply(CatalogEvent::LikesChanged(snapshot("Dunes", 4, 9)));
        feed.flush();
        assert_eq!(next(&mut socket).unwrap()["likes"], 4);
        feed.applied_to_read_model(CatalogEvent::LikesChanged(snapshot("Dunes", 4, 9)));
        feed.flush();
        assert_eq!(
            next(&mut socket),
            None,
            "a count already passed on is not repeated"
        );

        // Browsers resync after a reconnect and may read the read model before it caught up:
        // its copy of the newest count goes out once more, anything older never.
        feed.lock().resyncs += 1;
        feed.applied_to_read_model(CatalogEvent::LikesChanged(snapshot("Dunes", 3, 8)));
        feed.flush();
        assert_eq!(next(&mut socket), None, "an older count is not passed on");
        feed.applied_to_read_model(CatalogEvent::LikesChanged(snapshot("Dunes", 4, 9)));
        feed.applied_to_read_model(CatalogEvent::LikesChanged(snapshot("Dunes", 4, 9)));
        feed.flush();
        assert_eq!(next(&mut socket).unwrap()["likes"], 4);
        assert_eq!(next(&mut socket), None, "and only once");
        std::fs::remove_file(path).ok();
    }
}
