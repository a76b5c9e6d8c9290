//! One web instance's gallery in memory: every product of the read model at the newest version
//! this instance knows, with its like count at the newest version, the single source of
//! `GET /api/products`, the server-rendered page and the live pushes. A change is applied to the
//! state and pushed to this instance's sockets in one step, so a browser that refetches at any
//! moment reads a state at least as new as every push it has received.
//!
//! Two things feed it, each ordered by a version of its own. A product's face (title, image,
//! deletion) comes from the catalog through the read model: every batch the read model commits
//! (on any instance sharing the web database) is published as `gallery.changed` to every
//! instance's queue. A product's like count comes straight from the web database that owns it:
//! every commit of likes is published as `likes.counted` to the same queues (and the committing
//! instance applies it at once). When the instance starts, and when its queue had to be made anew
//! after a lost connection, it loads both from the web database. Each only ever moves to a higher
//! version, so repeats, reorders and overlaps between those sources are harmless.

use crate::bus::consumer::{HandleError, Handler};
use crate::bus::Envelope;
use crate::db::sql::text;
use crate::db::Database;
use crate::events::{CatalogEvent, GalleryEvent, LikeCount, Stamp};
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
    /// Its face and its count (`likes`, `likes_version`).
    product: Product,
    /// The stamp of the catalog event its face reflects; only a newer one replaces it. All
    /// zeros while only its count is known.
    stamp: Stamp,
    /// Whether visitors see it: its face is known and it is not deleted. A tombstone is kept
    /// so that an older event cannot bring the product back; a count that arrived before the
    /// face waits in a hidden entry.
    shown: bool,
    /// The product's JSON object in the list, open after `"liked":`, made once per version.
    fragment: Box<str>,
}

impl Entry {
    fn new(product: Product, stamp: Stamp, shown: bool) -> Self {
        let mut fragment = serde_json::to_string(&product).expect("products serialise to JSON");
        fragment.pop(); // the closing brace
        fragment.push_str(",\"liked\":");
        Self {
            product,
            stamp,
            shown,
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

    /// The entry a product event makes of `old` (the count stays); `None` for a resync marker.
    fn with_face(event: CatalogEvent, old: Option<&Entry>) -> Option<Self> {
        let (id, stamp) = event.product_stamp()?;
        let (likes, likes_version) =
            old.map_or((0, 0), |old| (old.product.likes, old.product.likes_version));
        Some(match event {
            CatalogEvent::ProductCreated(p)
            | CatalogEvent::ProductUpdated(p)
            | CatalogEvent::LikesChanged(p) => {
                Self::new(p.product(likes, likes_version), stamp, true)
            }
            _ => {
                // What the tombstone shows is never sent; keep what was known.
                let product = old.map_or_else(|| unknown(id), |entry| entry.product.clone());
                Self::new(product, stamp, false)
            }
        })
    }

    /// The entry `count` makes of `old` (the face stays).
    fn with_count(count: &LikeCount, old: Option<&Entry>) -> Self {
        let (mut product, stamp, shown) = old.map_or_else(
            || (unknown(count.id), Stamp::default(), false),
            |old| (old.product.clone(), old.stamp, old.shown),
        );
        product.likes = count.likes;
        product.likes_version = count.version;
        Self::new(product, stamp, shown)
    }
}

/// The face of a product known only by its id: never shown.
fn unknown(id: ProductId) -> Product {
    Product {
        id,
        title: ProductTitle::parse("unknown").expect("a valid title"),
        image: ImageUrl::parse("https://invalid.example/").expect("a valid URL"),
        likes: 0,
        likes_version: 0,
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
                    .filter(|entry| entry.shown);
                let taken = shown.by_ref().take(request.limit).collect();
                (taken, shown.next().is_some())
            }
            GalleryOrder::Likes => {
                let sorted = self.by_likes.get_or_init(|| {
                    let mut shown: Vec<_> = self
                        .entries
                        .iter()
                        .filter(|entry| entry.shown)
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
                entry.shown.then(|| entry.item(liked))
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

/// Counts waiting for the next tick, by product (each with its version), and when the earliest
/// commit among them was made.
#[derive(Default)]
struct Outgoing {
    counts: BTreeMap<ProductId, (i64, i64)>,
    counted_at_ms: BTreeMap<ProductId, i64>,
}

impl Outgoing {
    fn count(&mut self, product: &Product, counted_at_ms: Option<i64>) {
        let id = product.id;
        self.counts
            .insert(id, (product.likes, product.likes_version));
        if let Some(at) = counted_at_ms {
            let earliest = self.counted_at_ms.entry(id).or_insert(at);
            *earliest = (*earliest).min(at);
        }
    }

    fn forget(&mut self, id: ProductId) {
        self.counts.remove(&id);
        self.counted_at_ms.remove(&id);
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

/// One change for the gallery: a product's face, or its count.
enum Change<'a> {
    Face(CatalogEvent),
    Count(&'a LikeCount, Option<i64>),
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

    /// Applies catalog events, each only over an older stamp of its product's face, and tells
    /// the sockets what changed: a new or changed product and a deletion at once.
    pub fn apply(&self, events: impl IntoIterator<Item = CatalogEvent>) {
        self.change(events.into_iter().map(Change::Face));
    }

    /// Applies like counts, each only over an older version of its product's count, committed
    /// at `counted_at_ms` when known; they go to the sockets in the next `counts` frame (only
    /// the latest count of each product).
    pub fn count(&self, counts: &[LikeCount], counted_at_ms: Option<i64>) {
        self.change(
            counts
                .iter()
                .map(|count| Change::Count(count, counted_at_ms)),
        );
    }

    fn change<'a>(&self, changes: impl Iterator<Item = Change<'a>>) {
        let mut outgoing = self.lock();
        let mut entries = self.snapshot().entries.clone();
        let mut announce = Vec::new();
        let mut changed = false;
        for change in changes {
            let id = match &change {
                Change::Face(event) => match event.product_stamp() {
                    Some((id, _)) => id,
                    None => continue,
                },
                Change::Count(count, _) => count.id,
            };
            let at = entries.binary_search_by_key(&id, |entry| entry.product.id);
            let old = at.ok().map(|i| entries[i].clone());
            let entry = match change {
                Change::Face(event) => {
                    let newer = event
                        .product_stamp()
                        .is_some_and(|(_, stamp)| old.as_ref().is_none_or(|old| old.stamp < stamp));
                    let Some(entry) = newer
                        .then(|| Entry::with_face(event, old.as_deref()))
                        .flatten()
                    else {
                        continue;
                    };
                    let shown_before = old.as_ref().filter(|old| old.shown);
                    match (shown_before, entry.shown) {
                        (Some(_), false) => {
                            outgoing.forget(id);
                            announce.push(LiveMessage::Deleted { id });
                        }
                        (Some(old), true)
                            if old.product.title == entry.product.title
                                && old.product.image == entry.product.image => {}
                        (_, true) => announce.push(LiveMessage::Product {
                            product: entry.product.clone(),
                        }),
                        (None, false) => {}
                    }
                    entry
                }
                Change::Count(count, counted_at_ms) => {
                    if old
                        .as_ref()
                        .is_some_and(|old| old.product.likes_version >= count.version)
                    {
                        continue;
                    }
                    let entry = Entry::with_count(count, old.as_deref());
                    if entry.shown {
                        outgoing.count(&entry.product, counted_at_ms);
                    }
                    entry
                }
            };
            changed = true;
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
        let counts = std::mem::take(&mut outgoing.counts)
            .into_iter()
            .map(|(id, (likes, version))| (id, likes, version))
            .collect();
        self.hub.publish(&LiveMessage::Counts { counts });
        let now_ms = crate::db::now_millis();
        for at in std::mem::take(&mut outgoing.counted_at_ms).into_values() {
            let seconds = (now_ms - at).max(0) as f64 / 1000.0;
            metrics::histogram!(LIKE_TO_SOCKET).record(seconds);
        }
    }

    /// Merges the web database into the state: every face and count it holds newer than this
    /// instance (changes published while this instance's queue did not exist) is applied and
    /// pushed.
    pub async fn reload(&self, db: &Database) -> Result<usize, sqlx::Error> {
        let rows = sqlx::query(
            "select id, title, image, likes, likes_version, version, epoch, generation, deleted \
             from product",
        )
        .fetch_all(db.pool())
        .await?;
        let mut faces = Vec::with_capacity(rows.len());
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = ProductId::from_stored(row.try_get("id")?);
            let version: i64 = row.try_get("version")?;
            let era = crate::events::CatalogEra {
                epoch: row.try_get("epoch")?,
                generation: row.try_get("generation")?,
            };
            counts.push(LikeCount {
                id,
                likes: row.try_get("likes")?,
                version: row.try_get("likes_version")?,
                epoch: era.epoch,
            });
            if row.try_get::<i64, _>("deleted")? == 1 {
                faces.push(CatalogEvent::deleted(id, era, version));
                continue;
            }
            // Rows come from validated events; one that no longer parses is left out, loudly.
            let title = ProductTitle::parse(&text(row, "title")?);
            let image = ImageUrl::parse(&text(row, "image")?);
            let (Ok(title), Ok(image)) = (title, image) else {
                tracing::error!(product_id = %id, "read model row does not validate; not shown");
                continue;
            };
            faces.push(CatalogEvent::ProductUpdated(
                crate::events::ProductSnapshot {
                    id,
                    title,
                    image,
                    version,
                    epoch: era.epoch,
                    generation: era.generation,
                },
            ));
        }
        let loaded = faces.len();
        self.change(
            faces
                .into_iter()
                .map(Change::Face)
                .chain(counts.iter().map(|count| Change::Count(count, None))),
        );
        Ok(loaded)
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

/// The consumer side: what any instance's read model committed and every count any instance
/// committed, applied to this instance.
pub struct GalleryHandler(pub Arc<Gallery>);

impl Handler for GalleryHandler {
    type Event = GalleryEvent;
    const NAME: &'static str = "gallery";
    const BATCH: usize = 64;

    async fn handle(&self, envelope: Envelope<GalleryEvent>) -> Result<(), HandleError> {
        self.handle_batch(vec![envelope]).await
    }

    async fn handle_batch(&self, batch: Vec<Envelope<GalleryEvent>>) -> Result<(), HandleError> {
        let mut faces = Vec::new();
        for envelope in batch {
            match envelope.event {
                GalleryEvent::Changed { products } => faces.extend(products),
                GalleryEvent::Counted(counted) => {
                    self.0.count(&counted.counts, Some(counted.counted_at_ms));
                }
            }
        }
        self.0.apply(faces);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ProductSnapshot;
    use tokio::sync::broadcast;

    fn face(id: i64, title: &str, version: i64) -> CatalogEvent {
        CatalogEvent::ProductUpdated(ProductSnapshot {
            id: ProductId::from_stored(id),
            title: ProductTitle::parse(title).unwrap(),
            image: ImageUrl::parse("https://example.com/x.jpg").unwrap(),
            version,
            epoch: 1,
            generation: 0,
        })
    }

    fn count(id: i64, likes: i64, version: i64) -> LikeCount {
        LikeCount {
            id: ProductId::from_stored(id),
            likes,
            version,
            epoch: 1,
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

    /// One change of either feed.
    #[derive(Clone)]
    enum Fed {
        Face(CatalogEvent),
        Count(LikeCount),
    }

    fn feed(gallery: &Gallery, fed: &Fed) {
        match fed {
            Fed::Face(event) => gallery.apply([event.clone()]),
            Fed::Count(counted) => gallery.count(&[*counted], None),
        }
    }

    #[test]
    fn the_newest_face_and_the_newest_count_win_whatever_order_they_come_in() {
        let changes = [
            Fed::Face(face(1, "First", 1)),
            Fed::Face(face(1, "Renamed", 2)),
            Fed::Count(count(1, 2, 10)),
            Fed::Count(count(1, 3, 11)),
            Fed::Face(face(2, "Gone", 1)),
            Fed::Count(count(2, 4, 10)),
            Fed::Face(deleted(2, 2)),
            // A count that arrives before the product's face waits for it.
            Fed::Count(count(3, 5, 10)),
            Fed::Face(face(3, "Late", 1)),
        ];
        for order in [
            [0, 1, 2, 3, 4, 5, 6, 7, 8],
            [8, 7, 6, 5, 4, 3, 2, 1, 0],
            [3, 0, 6, 2, 8, 4, 1, 5, 7],
        ] {
            let (gallery, _socket) = gallery();
            for n in order {
                feed(&gallery, &changes[n]);
            }
            // Repeats change nothing.
            for change in &changes {
                feed(&gallery, change);
            }
            assert_eq!(
                titles(&gallery),
                vec![(3, "Late".to_owned(), 5), (1, "Renamed".to_owned(), 3)]
            );
        }
    }

    #[test]
    fn a_new_epoch_replaces_any_version_and_a_resync_removal_yields_only_to_its_generation() {
        let (gallery, _socket) = gallery();
        let stamped = |title: &str, version: i64, epoch: i64, generation: i64| {
            CatalogEvent::ProductUpdated(ProductSnapshot {
                id: ProductId::from_stored(1),
                title: ProductTitle::parse(title).unwrap(),
                image: ImageUrl::parse("https://example.com/x.jpg").unwrap(),
                version,
                epoch,
                generation,
            })
        };
        gallery.apply([stamped("Old", 9, 1, 0)]);
        gallery.apply([stamped("New", 1, 2, 0)]);
        assert_eq!(titles(&gallery), vec![(1, "New".to_owned(), 0)]);

        // A resync of generation 7 did not list it: removed, stamped (2, 7, 0).
        let era = crate::events::CatalogEra {
            epoch: 2,
            generation: 7,
        };
        gallery.apply([CatalogEvent::deleted(ProductId::from_stored(1), era, 0)]);
        assert!(titles(&gallery).is_empty());
        // Nothing from before the resync brings it back; an event of its generation does.
        gallery.apply([stamped("Late", 3, 2, 0)]);
        assert!(titles(&gallery).is_empty());
        gallery.apply([stamped("Back", 1, 2, 7)]);
        assert_eq!(titles(&gallery), vec![(1, "Back".to_owned(), 0)]);
    }

    #[test]
    fn changes_are_pushed_once_and_counts_go_out_together_in_one_frame() {
        let (gallery, mut socket) = gallery();
        gallery.apply([face(7, "Dunes", 1)]);
        let first = sent(&mut socket);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["type"], "product");

        gallery.count(&[count(7, 1, 10), count(7, 2, 11)], Some(1));
        assert!(sent(&mut socket).is_empty(), "counts wait for the frame");
        gallery.apply([face(8, "Sea", 1)]);
        gallery.count(&[count(8, 5, 10)], None);
        sent(&mut socket);
        gallery.flush();
        let frames = sent(&mut socket);
        assert_eq!(frames.len(), 1, "one frame per tick: {frames:?}");
        assert_eq!(
            frames[0],
            serde_json::json!({"type": "counts", "counts": [[7, 2, 11], [8, 5, 10]]}),
            "the latest count of each product, with its version"
        );

        // A stale copy says nothing; a deletion goes out at once and drops its waiting count.
        gallery.apply([face(7, "Old", 1)]);
        gallery.count(&[count(7, 1, 10)], None);
        gallery.count(&[count(7, 3, 12)], None);
        gallery.apply([deleted(7, 5)]);
        gallery.flush();
        let last = sent(&mut socket);
        assert_eq!(last.len(), 1, "{last:?}");
        assert_eq!(last[0]["type"], "deleted");
    }

    #[test]
    fn a_renamed_product_is_pushed_with_its_count_and_a_count_of_a_hidden_one_is_not() {
        let (gallery, mut socket) = gallery();
        gallery.apply([face(7, "Dunes", 1)]);
        gallery.count(&[count(7, 4, 10)], None);
        gallery.flush();
        sent(&mut socket);
        gallery.apply([face(7, "Dunes at dusk", 2)]);
        let pushed = sent(&mut socket);
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0]["product"]["title"], "Dunes at dusk");
        assert_eq!(
            (
                &pushed[0]["product"]["likes"],
                &pushed[0]["product"]["likes_version"]
            ),
            (&serde_json::json!(4), &serde_json::json!(10))
        );
        // Nobody shows a product the gallery has not been told of yet.
        gallery.count(&[count(9, 1, 10)], None);
        gallery.flush();
        assert!(sent(&mut socket).is_empty());
    }

    #[test]
    fn the_json_pages_carry_each_visitors_own_flags() {
        let (gallery, _socket) = gallery();
        gallery.apply([
            face(1, "One", 1),
            face(2, "Two \"quoted\"", 1),
            face(3, "Three", 1),
        ]);
        gallery.count(&[count(1, 4, 10), count(3, 9, 10)], None);
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
        gallery.apply((1..=10).map(|id| face(id, "Picture", 1)));
        let counts: Vec<LikeCount> = (1..=10).map(|id| count(id, (id * 7) % 4, 10)).collect();
        gallery.count(&counts, None);
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
