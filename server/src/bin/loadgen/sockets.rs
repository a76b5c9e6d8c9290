//! Live sockets under load. Each socket keeps the counts a browser would show (and refetches
//! on `resync`, as the page does). Probes like products at a steady rate, one fresh visitor per
//! click and one click at a time per product, so a product's count `n` belongs to exactly one
//! click; a socket's delivery latency for that click is when it first shows a count of at least
//! `n`, minus when the click was sent.

use app::live::LiveMessage;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Click times of the probe products: `clicks[product][n - 1]` is when the click that took the
/// product from `base + n - 1` to `base + n` was sent, in µs since `epoch` (0 = not yet).
pub struct Clicks {
    epoch: Instant,
    base: HashMap<i64, i64>,
    times: HashMap<i64, Vec<AtomicU64>>,
}

impl Clicks {
    pub fn new(base: HashMap<i64, i64>, max_clicks: usize) -> Arc<Self> {
        let times = base
            .keys()
            .map(|&id| (id, (0..max_clicks).map(|_| AtomicU64::new(0)).collect()))
            .collect();
        Arc::new(Self {
            epoch: Instant::now(),
            base,
            times,
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// What one socket saw.
pub struct SocketReport {
    pub shown: BTreeMap<i64, i64>,
    pub latencies_us: Vec<u64>,
    pub messages: u64,
    pub resyncs: u64,
}

/// A socket being read in the background.
pub struct Watch {
    state: Arc<Mutex<SocketReport>>,
    task: JoinHandle<()>,
}

impl Watch {
    /// Opens `ws://web/ws`; `initial` is the gallery as it was just before; `client` refetches
    /// it on `resync`.
    pub async fn open(
        web: std::net::SocketAddr,
        initial: BTreeMap<i64, i64>,
        clicks: Option<Arc<Clicks>>,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{web}/ws"))
            .await
            .map_err(|err| format!("socket: {err}"))?;
        let state = Arc::new(Mutex::new(SocketReport {
            shown: initial,
            latencies_us: Vec::new(),
            messages: 0,
            resyncs: 0,
        }));
        let writer = state.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                // Stamped on read, before parsing, so the figure is the wire's and not ours.
                let received = clicks.as_ref().map(|clicks| clicks.now());
                let Ok(message) = serde_json::from_str::<LiveMessage>(&text) else {
                    continue;
                };
                match message {
                    LiveMessage::Counts { counts } => {
                        let mut state = writer.lock().expect("not poisoned");
                        state.messages += 1;
                        // One socket's frames come in the order of their versions.
                        for (id, likes, _version) in counts {
                            let id = id.get();
                            let before = state.shown.insert(id, likes).unwrap_or(0);
                            if let (Some(clicks), Some(received)) = (&clicks, received) {
                                record(
                                    clicks,
                                    &mut state.latencies_us,
                                    id,
                                    before,
                                    likes,
                                    received,
                                );
                            }
                        }
                    }
                    LiveMessage::Resync => {
                        let fresh = crate::traffic::counts(
                            &client,
                            &format!("http://{web}/api/products"),
                            None,
                        )
                        .await;
                        let mut state = writer.lock().expect("not poisoned");
                        state.resyncs += 1;
                        state.shown.extend(fresh);
                    }
                    _ => writer.lock().expect("not poisoned").messages += 1,
                }
            }
        });
        Ok(Self { state, task })
    }

    /// Whether the socket shows `want` for every product in it.
    pub fn shows(&self, want: &BTreeMap<i64, i64>) -> bool {
        let state = self.state.lock().expect("not poisoned");
        want.iter()
            .all(|(id, count)| state.shown.get(id) == Some(count))
    }

    /// Closes the socket and returns what it saw.
    pub fn finish(self) -> SocketReport {
        self.task.abort();
        let mut state = self.state.lock().expect("not poisoned");
        SocketReport {
            shown: std::mem::take(&mut state.shown),
            latencies_us: std::mem::take(&mut state.latencies_us),
            messages: state.messages,
            resyncs: state.resyncs,
        }
    }
}

/// Latencies for the clicks that took `id` from `before` to `now` (counts above the base).
fn record(clicks: &Clicks, out: &mut Vec<u64>, id: i64, before: i64, now: i64, received: u64) {
    let (Some(base), Some(times)) = (clicks.base.get(&id), clicks.times.get(&id)) else {
        return;
    };
    let from = (before.max(*base) - base) as usize;
    let to = (now - base).max(0) as usize;
    for time in times.iter().take(to).skip(from) {
        let sent = time.load(Ordering::Acquire);
        if sent != 0 {
            out.push(received.saturating_sub(sent));
        }
    }
}

/// Opens `count` sockets to `webs` (round robin), `parallel` handshakes at a time.
pub async fn open_many(
    webs: &[std::net::SocketAddr],
    count: usize,
    initial: &BTreeMap<i64, i64>,
    clicks: Option<Arc<Clicks>>,
) -> Result<Vec<Watch>, String> {
    let client = crate::traffic::client();
    futures_util::stream::iter(0..count)
        .map(|n| {
            let web = webs[n % webs.len()];
            Watch::open(web, initial.clone(), clicks.clone(), client.clone())
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Clicks on every probe product, `per_second` clicks in total spread evenly over the products,
/// until `duration` is over. Each click is a new visitor's like. Returns the clicks answered
/// 200 per product, and the failures.
pub async fn run_probes(
    clicks: Arc<Clicks>,
    cookies: Vec<String>,
    web: String,
    per_second: f64,
    duration: Duration,
) -> (HashMap<i64, i64>, u64) {
    let client = crate::traffic::client();
    let cookies = Arc::new(Mutex::new(cookies));
    let failures = Arc::new(AtomicUsize::new(0));
    let products: Vec<i64> = clicks.base.keys().copied().collect();
    let interval = Duration::from_secs_f64(products.len() as f64 / per_second);
    let deadline = Instant::now() + duration;
    let tasks: Vec<JoinHandle<(i64, i64)>> = products
        .into_iter()
        .enumerate()
        .map(|(n, id)| {
            let (client, cookies, failures, clicks, web) = (
                client.clone(),
                cookies.clone(),
                failures.clone(),
                clicks.clone(),
                web.clone(),
            );
            tokio::spawn(async move {
                // Stagger the products so clicks spread over the interval.
                let offset = interval.mul_f64(n as f64 / clicks.base.len() as f64);
                tokio::time::sleep(offset).await;
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let times = &clicks.times[&id];
                let mut done = 0_usize;
                while Instant::now() < deadline && done < times.len() {
                    ticks.tick().await;
                    let Some(cookie) = cookies.lock().expect("not poisoned").pop() else {
                        break;
                    };
                    times[done].store(clicks.now().max(1), Ordering::Release);
                    let answered = client
                        .post(format!("{web}/api/products/{id}/like"))
                        .header("cookie", cookie)
                        .send()
                        .await;
                    if answered.is_ok_and(|response| response.status() == 200) {
                        done += 1;
                    } else {
                        times[done].store(0, Ordering::Release);
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                (id, done as i64)
            })
        })
        .collect();
    let mut done = HashMap::new();
    for task in tasks {
        if let Ok((id, count)) = task.await {
            done.insert(id, count);
        }
    }
    (done, failures.load(Ordering::Relaxed) as u64)
}

/// The expected final counts of the probe products.
pub fn probe_counts(clicks: &Clicks, done: &HashMap<i64, i64>) -> BTreeMap<i64, i64> {
    clicks
        .base
        .iter()
        .map(|(id, base)| (*id, base + done.get(id).copied().unwrap_or(0)))
        .collect()
}

/// Waits until every socket shows `want`; returns how many do.
pub async fn wait_for_sockets(
    watches: &[Watch],
    want: &BTreeMap<i64, i64>,
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let agreeing = watches.iter().filter(|watch| watch.shows(want)).count();
        if agreeing == watches.len() || Instant::now() > deadline {
            return agreeing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
