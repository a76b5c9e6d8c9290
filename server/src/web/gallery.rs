//! One web instance's gallery in memory: every product of the read model at the newest version
//! this instance knows, the single source of `GET /api/products`, the server-rendered page and
//! the live pushes. A change is applied to the state and pushed to this instance's sockets in one
//! step, so a browser that refetches at any moment reads a state at least as new as every push
//! it has received.
//!
//! How it stays in step with the durable read model: it is loaded from the read model when the
//! instance starts, after its own queue exists; every batch the read model commits (on any
//! instance sharing the web database) is published through the outbox as `gallery.changed` to
//! every instance's queue; and when that queue had to be made anew after a lost connection, the
//! state is loaded again. Each product only ever moves to a higher version, so repeats, reorders
//! and overlaps between those sources are harmless.

use crate::bus::consumer::{HandleError, Handler};
use crate::bus::Envelope;
use crate::db::sql::text;
use crate::db::Database;
use crate::events::{CatalogEvent, GalleryEvent, ProductSnapshot, Stamp};
use crate::live::LiveHub;
use crate::shutdown::Shutdown;
use app::domain::{ImageUrl, ProductId, ProductTitle};
use app::live::LiveMessage;
use app::paging::{Cursor, GalleryOrder, GalleryPage, PageRequest, DEFAULT_LIMIT};
use app::wire::{GalleryItem, Product};
use axum::body::Bytes;
use sqlx::Row;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// One product as this instance knows it.
#[derive(Debug)]
struct Entry {
    product: Product,
    /// The stamp of the catalog event this entry reflects; only a newer one replaces it.
    stamp: Stamp,
    /// A tombstone (`stamp.deleted`): kept so that an older event cannot bring the product back.
    deleted: bool,
    /// The product's JSON object in the list, open after `"liked":`, made once per version.
    fragment: Box<str>,
}

impl Entry {
    fn new(product: Product, stamp: Stamp) -> Self {
        let mut fragment = serde_json::to_string(&product).expect("products serialise to JSON");
        fragment.pop(); // the closing brace
        fragment.push_str(",\"liked\":");
        Self {
            product,
            stamp,
            deleted: stamp.deleted,
            fragment: fragment.into_boxed_str(),
        }
    }

    /// The product as a visitor's gallery lists it.
    fn item(&self, liked: &HashSet<ProductId>) -> GalleryItem {
        GalleryItem {
            product: self.product.clone(),
            liked: liked.contains(&self.product.id),
        }
    }

    /// The product's count and id, as the orders compare them.
    fn key(&self) -> (i64, ProductId) {
        (self.product.likes, self.product.id)
    }

    /// The entry a product event makes; `None` for a resync marker.
    fn from_event(event: CatalogEvent, old: Option<&Entry>) -> Option<Self> {
        let (id, stamp) = event.product_stamp()?;
        Some(match event {
            CatalogEvent::ProductCreated(p)
            | CatalogEvent::ProductUpdated(p)
            | CatalogEvent::LikesChanged(p) => Self::new(p.product(), stamp),
            _ => {
                // What the tombstone shows is never sent; keep what was known.
                let product = old.map(|entry| entry.product.clone()).unwrap_or(Product {
                    id,
                    title: ProductTitle::parse("deleted").expect("a valid title"),
                    image: ImageUrl::parse("https://invalid.example/").expect("a valid URL"),
                    likes: 0,
                });
                Self::new(product, stamp)
            }
        })
    }
}

/// The gallery at one moment. Immutable: a change makes a new snapshot sharing the entries it
/// did not touch.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every product seen, tombstones included, ordered by id.
    entries: Vec<Arc<Entry>>,
    /// The shown products most liked first, sorted on first use.
    by_likes: OnceLock<Vec<Arc<Entry>>>,
    /// The first page of each order as JSON with no product liked, made on first use.
    first_pages: [OnceLock<Bytes>; 2],
}

impl Snapshot {
    fn new(entries: Vec<Arc<Entry>>) -> Self {
        Self {
            entries,
            ..Self::default()
        }
    }

    /// The products of one page in order, and the cursor of the next page if there is one.
    fn page(&self, request: &PageRequest) -> (Vec<&Entry>, Option<Cursor>) {
        let (taken, more): (Vec<&Entry>, bool) = match request.order {
            GalleryOrder::Newest => {
                let end = request.after.map_or(self.entries.len(), |cursor| {
                    self.entries
                        .partition_point(|entry| entry.product.id < cursor.id)
                });
                let mut shown = self.entries[..end]
                    .iter()
                    .rev()
                    .map(|entry| &**entry)
                    .filter(|entry| !entry.deleted);
                let taken = shown.by_ref().take(request.limit).collect();
                (taken, shown.next().is_some())
            }
            GalleryOrder::Likes => {
                let sorted = self.by_likes.get_or_init(|| {
                    let mut shown: Vec<_> = self
                        .entries
                        .iter()
                        .filter(|entry| !entry.deleted)
                        .cloned()
                        .collect();
                    shown.sort_unstable_by(|a, b| GalleryOrder::Likes.compare(a.key(), b.key()));
                    shown
                });
                let start = request.after.map_or(0, |cursor| {
                    sorted.partition_point(|entry| {
                        cursor.passes(entry.product.likes, entry.product.id)
                    })
                });
                let rest = &sorted[start..];
                let taken = rest.iter().take(request.limit).map(|e| &**e).collect();
                (taken, rest.len() > request.limit)
            }
        };
        let next = taken
            .last()
            .filter(|_| more)
            .map(|last| Cursor::after(request.order, last.product.likes, last.product.id));
        (taken, next)
    }

    /// One page of the gallery, with whether the visitor likes each product.
    pub fn items(&self, request: &PageRequest, liked: &HashSet<ProductId>) -> GalleryPage {
        let (taken, next) = self.page(request);
        GalleryPage {
            items: taken.into_iter().map(|entry| entry.item(liked)).collect(),
            next: next.map(|cursor| cursor.to_string()),
        }
    }

    /// The shown products among `ids`, in the order asked, with the visitor's flags.
    pub fn chosen(&self, ids: &[ProductId], liked: &HashSet<ProductId>) -> Vec<GalleryItem> {
        ids.iter()
            .filter_map(|id| {
                let at = self
                    .entries
                    .binary_search_by_key(id, |entry| entry.product.id)
                    .ok()?;
                let entry = &self.entries[at];
                (!entry.deleted).then(|| entry.item(liked))
            })
            .collect()
    }

    /// The same page as JSON. A first page without likes is the same shared bytes for every
    /// visitor; otherwise only the flags and the page's own products are written per request.
    pub fn json(&self, request: &PageRequest, liked: &HashSet<ProductId>) -> Bytes {
        if liked.is_empty() && request.after.is_none() && request.limit == DEFAULT_LIMIT {
            let slot = match request.order {
                GalleryOrder::Newest => &self.first_pages[0],
                GalleryOrder::Likes => &self.first_pages[1],
            };
            return slot.get_or_init(|| self.write_json(request, liked)).clone();
        }
        self.write_json(request, liked)
    }

    fn write_json(&self, request: &PageRequest, liked: &HashSet<ProductId>) -> Bytes {
        let (taken, next) = self.page(request);
        let size: usize = taken.iter().map(|e| e.fragment.len() + 7).sum();
        let mut out = Vec::with_capacity(size + 48);
        out.extend_from_slice(b"{\"items\":[");
        for (n, entry) in taken.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(entry.fragment.as_bytes());
            let flag: &[u8] = if liked.contains(&entry.product.id) {
                b"true}"
            } else {
                b"false}"
            };
            out.extend_from_slice(flag);
        }
        out.extend_from_slice(b"],\"next\":");
        match next {
            // A cursor is letters, digits, dots and minus signs: nothing to escape.
            Some(cursor) => out.extend_from_slice(format!("\"{cursor}\"}}").as_bytes()),
            None => out.extend_from_slice(b"null}"),
        }
        Bytes::from(out)
    }
}

/// Counts waiting for the next tick, by product, and when the earliest like among them was
/// committed.
#[derive(Default)]
struct Outgoing {
    counts: BTreeMap<ProductId, i64>,
    liked_at_ms: BTreeMap<ProductId, i64>,
}

impl Outgoing {
    fn count(&mut self, id: ProductId, likes: i64, liked_at_ms: Option<i64>) {
        self.counts.insert(id, likes);
        if let Some(at) = liked_at_ms {
            let earliest = self.liked_at_ms.entry(id).or_insert(at);
            *earliest = (*earliest).min(at);
        }
    }

    fn forget(&mut self, id: ProductId) {
        self.counts.remove(&id);
        self.liked_at_ms.remove(&id);
    }
}

/// The histogram of the time from a like's commit to its count going out to this instance's
/// sockets.
pub const LIKE_TO_SOCKET: &str = "live_gallery_like_to_socket_seconds";

/// The in-memory gallery of one web instance and the pushes to its sockets.
pub struct Gallery {
    current: RwLock<Arc<Snapshot>>,
    /// Held while a change is applied and pushed, so changes reach sockets in the order they
    /// reached the state.
    writer: Mutex<Outgoing>,
    /// Told when counts start waiting, so that an idle gallery sends them at once.
    counts_waiting: tokio::sync::Notify,
    hub: Arc<LiveHub>,
}

impl Gallery {
    /// An empty gallery pushing to `hub`.
    pub fn new(hub: Arc<LiveHub>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::default(),
            writer: Mutex::default(),
            counts_waiting: tokio::sync::Notify::new(),
            hub,
        })
    }

    /// The gallery as it is now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Outgoing> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies catalog events, each only over an older version of its product, and tells the
    /// sockets what changed: a new or changed product and a deletion at once, counts in the
    /// next `counts` frame (only the latest count of each product goes out).
    pub fn apply(&self, events: impl IntoIterator<Item = CatalogEvent>) {
        let mut outgoing = self.lock();
        let mut entries = self.snapshot().entries.clone();
        let mut announce = Vec::new();
        let mut changed = false;
        for event in events {
            let Some((id, stamp)) = event.product_stamp() else {
                continue;
            };
            let liked_at_ms = event.liked_at_ms();
            let at = entries.binary_search_by_key(&id.get(), |entry| entry.product.id.get());
            let old = at.ok().map(|i| entries[i].clone());
            if old.as_ref().is_some_and(|old| old.stamp >= stamp) {
                continue;
            }
            let Some(entry) = Entry::from_event(event, old.as_deref()) else {
                continue;
            };
            changed = true;
            let shown_before = old.as_ref().filter(|old| !old.deleted);
            if entry.deleted {
                if shown_before.is_some() {
                    outgoing.forget(id);
                    announce.push(LiveMessage::Deleted { id });
                }
            } else {
                let same_face = shown_before.is_some_and(|old| {
                    old.product.title == entry.product.title
                        && old.product.image == entry.product.image
                });
                if !same_face {
                    announce.push(LiveMessage::Product {
                        product: entry.product.clone(),
                    });
                }
                // Pages keep pushed counts over refetched ones: a changed product's count goes
                // out too, so an older pushed count cannot stay on the page.
                if !same_face
                    || shown_before.is_none_or(|old| old.product.likes != entry.product.likes)
                {
                    outgoing.count(id, entry.product.likes, liked_at_ms);
                }
            }
            match at {
                Ok(i) => entries[i] = Arc::new(entry),
                Err(i) => entries.insert(i, Arc::new(entry)),
            }
        }
        if !changed {
            return;
        }
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(Snapshot::new(entries));
        for message in &announce {
            self.hub.publish(message);
        }
        if !outgoing.counts.is_empty() {
            self.counts_waiting.notify_one();
        }
    }

    /// Sends the counts that changed since the last frame, all in one frame.
    pub fn flush(&self) {
        let mut outgoing = self.lock();
        if outgoing.counts.is_empty() {
            return;
        }
        let counts = std::mem::take(&mut outgoing.counts).into_iter().collect();
        self.hub.publish(&LiveMessage::Counts { counts });
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        for at in std::mem::take(&mut outgoing.liked_at_ms).into_values() {
            let seconds = (now_ms - i128::from(at)).max(0) as f64 / 1000.0;
            metrics::histogram!(LIKE_TO_SOCKET).record(seconds);
        }
    }

    /// Merges the read model into the state: whatever it holds newer than this instance
    /// (changes published while this instance's queue did not exist) is applied and pushed.
    pub async fn reload(&self, db: &Database) -> Result<usize, sqlx::Error> {
        let rows = sqlx::query(
            "select id, title, image, likes, version, epoch, generation, deleted from product",
        )
        .fetch_all(db.pool())
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = ProductId::from_stored(row.try_get("id")?);
            let version: i64 = row.try_get("version")?;
            let era = crate::events::CatalogEra {
                epoch: row.try_get("epoch")?,
                generation: row.try_get("generation")?,
            };
            if row.try_get::<i64, _>("deleted")? == 1 {
                events.push(CatalogEvent::deleted(id, era, version));
                continue;
            }
            // Rows come from validated events; one that no longer parses is left out, loudly.
            let title = ProductTitle::parse(&text(row, "title")?);
            let image = ImageUrl::parse(&text(row, "image")?);
            let (Ok(title), Ok(image)) = (title, image) else {
                tracing::error!(product_id = %id, "read model row does not validate; not shown");
                continue;
            };
            events.push(CatalogEvent::ProductUpdated(ProductSnapshot {
                id,
                title,
                image,
                likes: row.try_get("likes")?,
                version,
                epoch: era.epoch,
                generation: era.generation,
                liked_at_ms: None,
            }));
        }
        let count = events.len();
        self.apply(events);
        Ok(count)
    }

    /// Sends waiting counts, at once when idle and at most one frame per `tick` under load;
    /// loads the read model again each time `reopened` says this instance's queue was made anew;
    /// until `shutdown`.
    pub fn start(
        self: &Arc<Self>,
        db: Database,
        mut reopened: watch::Receiver<u64>,
        tick: Duration,
        mut shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let gallery = self.clone();
        tokio::spawn(async move {
            let mut watching = true;
            loop {
                tokio::select! {
                    _ = gallery.counts_waiting.notified() => {
                        gallery.flush();
                        // Whatever changes meanwhile waits for the next frame.
                        tokio::select! {
                            _ = tokio::time::sleep(tick) => {}
                            _ = shutdown.wait() => break,
                        }
                    }
                    changed = reopened.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                            continue;
                        }
                        gallery.reload_until_done(&db, &mut shutdown).await;
                    }
                    _ = shutdown.wait() => break,
                }
            }
        })
    }

    async fn reload_until_done(&self, db: &Database, shutdown: &mut Shutdown) {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.reload(db).await {
                Ok(products) => {
                    tracing::info!(
                        products,
                        "queue made anew: gallery reloaded from the read model"
                    );
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot reload the gallery yet; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// The consumer side: what any instance's read model committed, applied to this instance.
pub struct GalleryHandler(pub Arc<Gallery>);

impl Handler for GalleryHandler {
    type Event = GalleryEvent;
    const NAME: &'static str = "gallery";
    const BATCH: usize = 64;

    async fn handle(&self, envelope: Envelope<GalleryEvent>) -> Result<(), HandleError> {
        self.handle_batch(vec![envelope]).await
    }

    async fn handle_batch(&self, batch: Vec<Envelope<GalleryEvent>>) -> Result<(), HandleError> {
        self.0.apply(batch.into_iter().flat_map(|envelope| {
            let GalleryEvent::Changed { products } = envelope.event;
            products
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast;

    fn snapshot(id: i64, title: &str, likes: i64, version: i64) -> ProductSnapshot {
        ProductSnapshot {
            id: ProductId::from_stored(id),
            title: ProductTitle::parse(title).unwrap(),
            image: ImageUrl::parse("https://example.com/x.jpg").unwrap(),
            likes,
            version,
            epoch: 1,
            generation: 0,
            liked_at_ms: None,
        }
    }

    fn deleted(id: i64, version: i64) -> CatalogEvent {
        CatalogEvent::deleted(
            ProductId::from_stored(id),
            crate::events::CatalogEra {
                epoch: 1,
                generation: 0,
            },
            version,
        )
    }

    fn gallery() -> (
        Arc<Gallery>,
        broadcast::Receiver<axum::extract::ws::Utf8Bytes>,
    ) {
        let hub = LiveHub::new(10, 64);
        let socket = hub.subscribe();
        (Gallery::new(hub), socket)
    }

    fn sent(
        socket: &mut broadcast::Receiver<axum::extract::ws::Utf8Bytes>,
    ) -> Vec<serde_json::Value> {
        std::iter::from_fn(|| socket.try_recv().ok())
            .map(|text| serde_json::from_str(text.as_str()).unwrap())
            .collect()
    }

    fn titles(gallery: &Gallery) -> Vec<(i64, String, i64)> {
        gallery
            .snapshot()
            .items(&PageRequest::default(), &HashSet::new())
            .items
            .into_iter()
            .map(|item| {
                let p = item.product;
                (p.id.get(), p.title.as_str().to_owned(), p.likes)
            })
            .collect()
    }

    #[test]
    fn the_newest_version_wins_whatever_order_events_come_in() {
        let events = [
            CatalogEvent::ProductCreated(snapshot(1, "First", 0, 1)),
            CatalogEvent::ProductUpdated(snapshot(1, "Renamed", 0, 2)),
            CatalogEvent::LikesChanged(snapshot(1, "Renamed", 3, 3)),
            CatalogEvent::ProductCreated(snapshot(2, "Gone", 0, 1)),
            deleted(2, 2),
        ];
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]] {
            let (gallery, _socket) = gallery();
            for n in order {
                gallery.apply([events[n].clone()]);
            }
            // Repeats change nothing.
            gallery.apply(events.clone());
            assert_eq!(titles(&gallery), vec![(1, "Renamed".to_owned(), 3)]);
        }
    }

    #[test]
    fn a_new_epoch_replaces_any_version_and_a_resync_removal_yields_only_to_its_generation() {
        let (gallery, _socket) = gallery();
        gallery.apply([CatalogEvent::ProductCreated(snapshot(1, "Old", 5, 9))]);
        let stamped = |title: &str, version: i64, epoch: i64, generation: i64| ProductSnapshot {
            epoch,
            generation,
            ..snapshot(1, title, 0, version)
        };
        gallery.apply([CatalogEvent::ProductCreated(stamped("New", 1, 2, 0))]);
        assert_eq!(titles(&gallery), vec![(1, "New".to_owned(), 0)]);

        // A resync of generation 7 did not list it: removed, stamped (2, 7, 0).
        let era = crate::events::CatalogEra {
            epoch: 2,
            generation: 7,
        };
        gallery.apply([CatalogEvent::deleted(ProductId::from_stored(1), era, 0)]);
        assert!(titles(&gallery).is_empty());
        // Nothing from before the resync brings it back; an event of its generation does.
        gallery.apply([CatalogEvent::ProductUpdated(stamped("Late", 3, 2, 0))]);
        assert!(titles(&gallery).is_empty());
        gallery.apply([CatalogEvent::ProductUpdated(stamped("Back", 1, 2, 7))]);
        assert_eq!(titles(&gallery), vec![(1, "Back".to_owned(), 0)]);
    }

    #[test]
    fn changes_are_pushed_once_and_counts_go_out_together_in_one_frame() {
        let (gallery, mut socket) = gallery();
        gallery.apply([CatalogEvent::ProductCreated(snapshot(7, "Dunes", 0, 1))]);
        let first = sent(&mut socket);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["type"], "product");

        gallery.apply([
            CatalogEvent::LikesChanged(snapshot(7, "Dunes", 1, 2)),
            CatalogEvent::LikesChanged(snapshot(7, "Dunes", 2, 3)),
        ]);
        assert!(sent(&mut socket).is_empty(), "counts wait for the frame");
        gallery.apply([CatalogEvent::LikesChanged(snapshot(8, "Sea", 5, 1))]);
        sent(&mut socket);
        gallery.flush();
        let frames = sent(&mut socket);
        assert_eq!(frames.len(), 1, "one frame per tick: {frames:?}");
        assert_eq!(
            frames[0],
            serde_json::json!({"type": "counts", "counts": [[7, 2], [8, 5]]}),
            "the latest count of each product"
        );

        // A stale copy says nothing; a deletion goes out at once and drops its waiting count.
        gallery.apply([CatalogEvent::ProductUpdated(snapshot(7, "Old", 0, 1))]);
        gallery.apply([CatalogEvent::LikesChanged(snapshot(7, "Dunes", 3, 4))]);
        gallery.apply([deleted(7, 5)]);
        gallery.flush();
        let last = sent(&mut socket);
        assert_eq!(last.len(), 1, "{last:?}");
        assert_eq!(last[0]["type"], "deleted");
    }

    #[test]
    fn a_rename_overtaken_by_a_newer_count_in_one_batch_is_still_pushed() {
        let (gallery, mut socket) = gallery();
        gallery.apply([CatalogEvent::ProductCreated(snapshot(7, "Dunes", 0, 1))]);
        sent(&mut socket);
        // Only the count of version 3 arrives; it carries the title of the rename of version 2.
        gallery.apply([CatalogEvent::LikesChanged(snapshot(
            7,
            "Dunes at dusk",
            1,
            3,
        ))]);
        let pushed = sent(&mut socket);
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0]["product"]["title"], "Dunes at dusk");
    }

    #[test]
    fn the_json_pages_carry_each_visitors_own_flags() {
        let (gallery, _socket) = gallery();
        gallery.apply([
            CatalogEvent::ProductCreated(snapshot(1, "One", 4, 1)),
            CatalogEvent::ProductCreated(snapshot(2, "Two \"quoted\"", 0, 1)),
            CatalogEvent::ProductCreated(snapshot(3, "Three", 9, 1)),
        ]);
        let snapshot = gallery.snapshot();
        let liked = HashSet::from([ProductId::from_stored(2)]);
        for order in [GalleryOrder::Newest, GalleryOrder::Likes] {
            for limit in [1, 2, DEFAULT_LIMIT] {
                for flags in [HashSet::new(), liked.clone()] {
                    let request = PageRequest {
                        order,
                        after: None,
                        limit,
                    };
                    let json: GalleryPage =
                        serde_json::from_slice(&snapshot.json(&request, &flags)).unwrap();
                    assert_eq!(json, snapshot.items(&request, &flags));
                }
            }
        }
        let first = PageRequest::default();
        assert_eq!(
            snapshot.json(&first, &HashSet::new()).as_ptr(),
            snapshot.json(&first, &HashSet::new()).as_ptr(),
            "the first page without likes is made once per state"
        );
    }

    /// Every page of `order`, `limit` at a time, as ids.
    fn scroll(gallery: &Gallery, order: GalleryOrder, limit: usize) -> Vec<i64> {
        let mut request = PageRequest {
            order,
            after: None,
            limit,
        };
        let mut seen = Vec::new();
        loop {
            let page = gallery.snapshot().items(&request, &HashSet::new());
            assert!(page.items.len() <= limit);
            seen.extend(page.items.iter().map(|item| item.product.id.get()));
            let Some(next) = page.next else { return seen };
            request.after = Some(Cursor::parse(&next, order).unwrap());
        }
    }

    #[test]
    fn pages_follow_each_order_to_the_end_without_repeats_or_gaps() {
        let (gallery, _socket) = gallery();
        gallery.apply(
            (1..=10)
                .map(|id| CatalogEvent::ProductCreated(snapshot(id, "Picture", (id * 7) % 4, 1))),
        );
        gallery.apply([deleted(5, 2)]);
        for limit in [1, 3, 9, 200] {
            assert_eq!(
                scroll(&gallery, GalleryOrder::Newest, limit),
                [10, 9, 8, 7, 6, 4, 3, 2, 1]
            );
            // Counts: 1→3 2→2 3→1 4→0 6→2 7→1 8→0 9→3 10→2.
            assert_eq!(
                scroll(&gallery, GalleryOrder::Likes, limit),
                [1, 9, 2, 6, 10, 3, 7, 4, 8]
            );
        }
        let chosen = gallery
            .snapshot()
            .chosen(&[3, 5, 99].map(ProductId::from_stored), &HashSet::new());
        assert_eq!(chosen.len(), 1, "deleted and unknown products are left out");
    }
}
