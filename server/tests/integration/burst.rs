//! Load that keeps going through a fault: visitors liking products and an administrator renaming
//! them, each request retried until the service gives a definite answer. A like answered 200
//! (or 409, "already liked", after an answer was lost) is settled, so once a burst ends the
//! exact counts are known and a test can demand them everywhere, sockets included.

use app::domain::ProductId;
use app::live::{Count, LiveMessage};
use app::pages::gallery::arrange::{arrange, Known};
use app::paging::{GalleryOrder, GalleryPage};
use app::wire::{GalleryItem, Product};
use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a burst's requests were answered, counted over every attempt.
#[derive(Debug, Default)]
pub struct Tally {
    /// Settled attempts (200, or 409 for a like that an earlier lost answer had saved).
    pub settled: AtomicUsize,
    /// 503 with the JSON `unavailable` error: the service said "retry".
    pub unavailable: AtomicUsize,
    /// No connection: the process was down.
    pub refused: AtomicUsize,
    /// The connection broke after the request was sent.
    pub dropped: AtomicUsize,
}

impl Tally {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }

    /// Files one attempt; `Some(status)` once the service answered anything but 503.
    async fn record(&self, sent: reqwest::Result<reqwest::Response>) -> Option<u16> {
        match sent {
            Ok(response) if response.status() == 503 => {
                let body: Value = response.json().await.expect("a 503 carries a JSON error");
                assert_eq!(body["error"], "unavailable", "{body}");
                self.unavailable.fetch_add(1, Ordering::SeqCst);
                None
            }
            Ok(response) => Some(response.status().as_u16()),
            Err(err) if err.is_connect() => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                None
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::SeqCst);
                None
            }
        }
    }
}

/// A client that opens a connection per request, so no request is sent on a connection the
/// server already chose to close.
pub fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client builds")
}

/// Sends `request` until the service settles it; gives up after a minute.
async fn until_settled(
    tally: &Tally,
    what: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = tally.record(request().send().await).await {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not settled in a minute: {tally:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A visitor: which web instance they use and their signed cookie.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub web: SocketAddr,
    pub cookie: String,
}

/// `count` new visitors of the web instance at `web`.
pub async fn visitors(web: SocketAddr, count: usize) -> Vec<Visitor> {
    let client = fresh_client();
    let mut visitors = Vec::new();
    for _ in 0..count {
        let response = client
            .get(format!("http://{web}/api/products"))
            .send()
            .await
            .expect("the web instance answers");
        assert_eq!(response.status(), 200, "a first visit is answered");
        let cookie = crate::helpers::set_cookie(&response, "lg_visitor").expect("a visitor cookie");
        visitors.push(Visitor {
            web,
            cookie: cookie.split(';').next().expect("name=value").to_owned(),
        });
    }
    visitors
}

/// Every visitor likes every product, `concurrency` requests at a time. Returns the count each
/// product must end with. `progress` counts settled likes, so a test can strike mid-burst.
pub async fn like_all(
    visitors: &[Visitor],
    products: &[i64],
    concurrency: usize,
    tally: &Tally,
    progress: &AtomicUsize,
) -> BTreeMap<i64, i64> {
    let client = fresh_client();
    let pairs: Vec<(&Visitor, i64)> = visitors
        .iter()
        .flat_map(|visitor| products.iter().map(move |&id| (visitor, id)))
        .collect();
    stream::iter(pairs)
        .for_each_concurrent(concurrency, |(visitor, id)| {
            let client = client.clone();
            async move {
                let url = format!("http://{}/api/products/{id}/like", visitor.web);
                let status = until_settled(tally, "a like", || {
                    client.post(&url).header("cookie", &visitor.cookie)
                })
                .await;
                assert!(status == 200 || status == 409, "a like answered {status}");
                tally.settled.fetch_add(1, Ordering::SeqCst);
                progress.fetch_add(1, Ordering::SeqCst);
            }
        })
        .await;
    products
        .iter()
        .map(|&id| (id, visitors.len() as i64))
        .collect()
}

/// Renames every product `rounds` times through the catalog's admin API, one product after the
/// other. Returns the title each product must end with.
pub async fn rename_all(
    catalog: SocketAddr,
    token: &str,
    products: &[i64],
    rounds: usize,
    tally: &Tally,
) -> BTreeMap<i64, String> {
    let client = fresh_client();
    let mut titles = BTreeMap::new();
    for round in 0..rounds {
        for &id in products {
            let title = format!("Picture {id} v{round}");
            let body = json!({"title": title, "image": "https://images.example.com/p.jpg"});
            let status = until_settled(tally, "a rename", || {
                client
                    .put(format!("http://{catalog}/api/admin/products/{id}"))
                    .bearer_auth(token)
                    .json(&body)
            })
            .await;
            assert_eq!(status, 200, "a rename answered {status}");
            tally.settled.fetch_add(1, Ordering::SeqCst);
            titles.insert(id, title);
        }
    }
    titles
}

/// Creates `count` products through the catalog and returns their ids.
pub async fn create_products(catalog: SocketAddr, token: &str, count: usize) -> Vec<i64> {
    let client = fresh_client();
    let mut ids = Vec::new();
    for n in 0..count {
        let created = client
            .post(format!("http://{catalog}/api/admin/products"))
            .bearer_auth(token)
            .json(&json!({"title": format!("Picture {n}"), "image": "https://images.example.com/p.jpg"}))
            .send()
            .await
            .expect("the catalog answers");
        assert_eq!(created.status(), 201);
        let body: Value = created.json().await.expect("JSON");
        ids.push(body["id"].as_i64().expect("an id"));
    }
    ids
}

/// What one product looks like from somewhere: its title and like count.
pub type Seen = BTreeMap<i64, (String, i64)>;

/// The gallery as `GET /api/products` on `web` shows it.
pub async fn gallery(web: SocketAddr) -> Option<Seen> {
    list(fresh_client().get(format!("http://{web}/api/products?limit=200"))).await
}

/// The catalog's own view, through the admin API.
pub async fn catalog_view(catalog: SocketAddr, token: &str) -> Option<Seen> {
    let request = fresh_client()
        .get(format!("http://{catalog}/api/admin/products"))
        .bearer_auth(token);
    list(request).await
}

/// A product list fetched with `request`; `None` while the service does not answer.
async fn list(request: reqwest::RequestBuilder) -> Option<Seen> {
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    // The gallery answers a page (`{"items": …}`, all of a test's products in one), the catalog
    // a plain list.
    let list = body.get("items").unwrap_or(&body);
    list.is_array().then(|| seen(list))
}

fn seen(list: &Value) -> Seen {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let product = item.get("product").unwrap_or(item);
                    let id = product["id"].as_i64().unwrap_or_default();
                    let title = product["title"].as_str().unwrap_or_default().to_owned();
                    (id, (title, product["likes"].as_i64().unwrap_or_default()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a burst must end with, from its like counts and titles.
pub fn expected(likes: &BTreeMap<i64, i64>, titles: &BTreeMap<i64, String>) -> Seen {
    likes
        .iter()
        .map(|(id, count)| (*id, (titles[id].clone(), *count)))
        .collect()
}

/// Waits until the catalog and every web instance show exactly `want`.
pub async fn wait_for_everywhere(
    catalog: SocketAddr,
    token: &str,
    webs: &[SocketAddr],
    want: &Seen,
) {
    crate::helpers::wait_until("exact counts and titles in the catalog", || async {
        catalog_view(catalog, token).await.as_ref() == Some(want)
    })
    .await;
    for &web in webs {
        crate::helpers::wait_until(&format!("exact counts and titles on {web}"), || async {
            gallery(web).await.as_ref() == Some(want)
        })
        .await;
    }
}

/// A browser's live page, reduced to what it would show, arranged by the page's own code
/// (`app::pages::gallery::arrange`): the list it fetched last (the newest request's answer
/// wins) with the products and counts pushed since over it. On `resync` it forgets what was
/// pushed and fetches again, as the page does; it also fetches again at random moments, 10 to
/// 150 ms apart, so that fetches land anywhere among the pushes.
pub struct LiveWatch {
    shown: Arc<Mutex<Page>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Page {
    fetched: Vec<GalleryItem>,
    products: HashMap<ProductId, Option<Product>>,
    counts: HashMap<ProductId, Count>,
}

impl Page {
    fn shown(&self) -> Seen {
        let arranged = arrange(&Known {
            order: GalleryOrder::Newest,
            fetched: &self.fetched,
            next: None,
            pushed: &self.products,
            counts: &self.counts,
            liked: &HashMap::new(),
        });
        arranged
            .items
            .into_values()
            .map(|item| {
                let product = item.product;
                let title = product.title.as_str().to_owned();
                (product.id.get(), (title, product.likes))
            })
            .collect()
    }
}

/// Every product of the gallery as `visitor` fetches it (one page: tests hold fewer than 200).
async fn fetch_page(visitor: &Visitor) -> Option<Vec<GalleryItem>> {
    let response = fresh_client()
        .get(format!("http://{}/api/products?limit=200", visitor.web))
        .header("cookie", &visitor.cookie)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let page: GalleryPage = response.json().await.ok()?;
    assert!(
        page.next.is_none(),
        "one page holds every product of a test"
    );
    Some(page.items)
}

impl LiveWatch {
    /// Opens `ws://web/ws`, then loads the gallery as it is now.
    pub async fn open(web: SocketAddr) -> Self {
        use tokio_tungstenite::tungstenite::Message;
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{web}/ws"))
            .await
            .expect("a live socket opens");
        // One visitor, as one browser is: refetches do not make new ones.
        let visitor = Arc::new(visitors(web, 1).await.remove(0));
        let page = Page {
            fetched: fetch_page(&visitor).await.expect("the gallery loads"),
            ..Page::default()
        };
        let shown = Arc::new(Mutex::new(page));
        let writer = shown.clone();
        let task = tokio::spawn(async move {
            let (answers, mut answered) =
                tokio::sync::mpsc::unbounded_channel::<(u64, Vec<GalleryItem>)>();
            let (mut asked, mut applied) = (0_u64, 0_u64);
            let refetch = |asked: &mut u64| {
                *asked += 1;
                let (seq, answers, visitor) = (*asked, answers.clone(), visitor.clone());
                tokio::spawn(async move {
                    if let Some(list) = fetch_page(&visitor).await {
                        let _ = answers.send((seq, list));
                    }
                });
            };
            let mut random = uuid::Uuid::new_v4().as_u128() as u64 | 1;
            let mut pause = move || {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                Duration::from_millis(10 + random % 140)
            };
            let timer = tokio::time::sleep(pause());
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    message = socket.next() => {
                        let Some(Ok(message)) = message else { break };
                        let Message::Text(text) = message else { continue };
                        let message: LiveMessage =
                            serde_json::from_str(&text).expect("live messages parse");
                        let mut page = writer.lock().unwrap();
                        match message {
                            LiveMessage::Counts { counts } => {
                                for (id, likes, version) in counts {
                                    let known = page.counts.get(&id);
                                    let count = app::live::newer(known, likes, version);
                                    page.counts.insert(id, count);
                                }
                            }
                            LiveMessage::Product { product } => {
                                page.products.insert(product.id, Some(product));
                            }
                            LiveMessage::Deleted { id } => {
                                page.products.insert(id, None);
                            }
                            LiveMessage::Resync => {
                                page.products.clear();
                                page.counts.clear();
                                refetch(&mut asked);
                            }
                            LiveMessage::Hello { .. } => {}
                        }
                    }
                    Some((seq, list)) = answered.recv() => {
                        if seq > applied {
                            applied = seq;
                            writer.lock().unwrap().fetched = list;
                        }
                    }
                    _ = &mut timer => {
                        refetch(&mut asked);
                        timer.as_mut().reset(tokio::time::Instant::now() + pause());
                    }
                }
            }
        });
        Self { shown, task }
    }

    /// Waits until the socket has delivered `want`; fails if the socket closed first.
    pub async fn wait_for(&self, want: &Seen) {
        let poll = async {
            while self.shown.lock().unwrap().shown() != *want {
                assert!(!self.task.is_finished(), "the live socket closed");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), poll)
            .await
            .is_err()
        {
            let shown = self.shown.lock().unwrap().shown();
            panic!("the live page shows {shown:?}, not {want:?}");
        }
    }
}

impl Drop for LiveWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
