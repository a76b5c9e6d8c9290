//! HTTP load: seeding products and visitors, the like storm (visitors toggling likes on random
//! products, then waiting until the catalog and every read model agree with what was answered),
//! and read floods of the gallery JSON and the server-rendered page.

use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A client for many concurrent requests to few hosts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// Creates `count` products through the admin API; returns their ids.
pub async fn seed_products(
    client: &reqwest::Client,
    admin: &str,
    token: &str,
    count: usize,
    prefix: &str,
) -> Result<Vec<i64>, String> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let body = json!({"title": format!("{prefix} {n}"), "image": format!("https://images.example.com/{n}.jpg")});
        let response = client
            .post(format!("{admin}/api/admin/products"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|err| format!("create product: {err}"))?;
        if response.status() != 201 {
            return Err(format!("create product: {}", response.status()));
        }
        let created: Value = response.json().await.map_err(|err| err.to_string())?;
        ids.push(created["id"].as_i64().ok_or("a product id")?);
    }
    Ok(ids)
}

/// `count` visitors of `web` (base URL), each with their signed cookie.
pub async fn visitors(client: &reqwest::Client, web: &str, count: usize) -> Vec<String> {
    stream::iter(0..count)
        .map(|_| async move {
            let response = client
                .get(format!("{web}/api/products"))
                .send()
                .await
                .expect("the web instance answers");
            let cookie = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .find(|value| value.starts_with("lg_visitor="))
                .expect("a visitor cookie")
                .split(';')
                .next()
                .expect("name=value")
                .to_owned();
            cookie
        })
        .buffer_unordered(32)
        .collect()
        .await
}

/// Like counts as a web instance's gallery (every page, followed by cursor) or the catalog's
/// list shows them.
pub async fn counts(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> BTreeMap<i64, i64> {
    let mut seen = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let mut request = client.get(url);
        if token.is_none() {
            request = request.query(&[("limit", "200")]);
        }
        if let Some(after) = &next {
            request = request.query(&[("after", after)]);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let Ok(response) = request.send().await else {
            return seen;
        };
        let body: Value = response.json().await.unwrap_or_default();
        // The gallery answers pages (`{"items": …, "next": …}`), the catalog one plain list.
        let items = body.get("items").unwrap_or(&body);
        for item in items.as_array().into_iter().flatten() {
            let product = item.get("product").unwrap_or(item);
            seen.insert(
                product["id"].as_i64().unwrap_or_default(),
                product["likes"].as_i64().unwrap_or_default(),
            );
        }
        match body.get("next").and_then(Value::as_str) {
            Some(after) => next = Some(after.to_owned()),
            None => return seen,
        }
    }
}

/// Waits until every `(url, token)` shows `want` for the products in it; false after `limit`.
pub async fn wait_for_counts(
    client: &reqwest::Client,
    views: &[(String, Option<String>)],
    want: &BTreeMap<i64, i64>,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    for (url, token) in views {
        loop {
            let seen = counts(client, url, token.as_deref()).await;
            if want.iter().all(|(id, count)| seen.get(id) == Some(count)) {
                break;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    true
}

/// What a like storm did.
pub struct StormResult {
    /// Likes and unlikes answered 200.
    pub answered: u64,
    /// Answers other than 200 (a failure of the run).
    pub errors: u64,
    pub http_elapsed: Duration,
    /// From the first request until every view showed the exact counts.
    pub settled_elapsed: Option<Duration>,
    /// How long each like or unlike answered 200 took, sorted.
    pub latencies: Vec<Duration>,
    /// The counts the storm must end with.
    pub want: BTreeMap<i64, i64>,
}

/// `visitors` (cookie, web base URL) toggle likes on random `products` with `concurrency`
/// requests in flight for `duration`; each worker owns its visitors, so it knows their state.
/// Then waits until every view in `views` shows the resulting counts, starting from `base`.
pub async fn like_storm(
    visitors: &[(String, String)],
    products: &[i64],
    base: &BTreeMap<i64, i64>,
    concurrency: usize,
    duration: Duration,
    views: &[(String, Option<String>)],
) -> StormResult {
    let client = client();
    let answered = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + duration;
    let per_worker: Vec<(BTreeMap<i64, i64>, Vec<Duration>)> = stream::iter(0..concurrency)
        .map(|worker| {
            let (client, answered, errors) = (&client, &answered, &errors);
            async move {
                let mine: Vec<&(String, String)> =
                    visitors.iter().skip(worker).step_by(concurrency).collect();
                let mut liked: std::collections::HashSet<(usize, i64)> = Default::default();
                let mut delta: BTreeMap<i64, i64> = BTreeMap::new();
                let mut latencies = Vec::new();
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (worker as u64 + 1);
                while Instant::now() < deadline && !mine.is_empty() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let who = (seed % mine.len() as u64) as usize;
                    let id = products[((seed >> 32) % products.len() as u64) as usize];
                    let (cookie, web) = mine[who];
                    let like = !liked.contains(&(who, id));
                    let url = format!("{web}/api/products/{id}/like");
                    let request = if like {
                        client.post(url)
                    } else {
                        client.delete(url)
                    };
                    let sent = Instant::now();
                    match request.header("cookie", cookie).send().await {
                        Ok(response) if response.status() == 200 => {
                            latencies.push(sent.elapsed());
                            answered.fetch_add(1, Ordering::Relaxed);
                            if like {
                                liked.insert((who, id));
                            } else {
                                liked.remove(&(who, id));
                            }
                            *delta.entry(id).or_default() += if like { 1 } else { -1 };
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (delta, latencies)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let http_elapsed = started.elapsed();
    let mut want = base.clone();
    let mut latencies = Vec::new();
    for (delta, mine) in per_worker {
        latencies.extend(mine);
        for (id, change) in delta {
            *want.entry(id).or_default() += change;
        }
    }
    let settled = wait_for_counts(&client, views, &want, Duration::from_secs(120)).await;
    StormResult {
        answered: answered.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        http_elapsed,
        settled_elapsed: settled.then(|| started.elapsed()),
        want,
        latencies: {
            latencies.sort_unstable();
            latencies
        },
    }
}

/// What a read flood measured.
pub struct ReadResult {
    pub requests: u64,
    pub failures: u64,
    pub elapsed: Duration,
    /// Per-request latencies, sorted.
    pub latencies: Vec<Duration>,
}

/// `concurrency` connections GET `url` back to back for `duration`, as one visitor; `valid`
/// checks each body.
pub async fn read_flood(
    url: &str,
    cookie: &str,
    concurrency: usize,
    duration: Duration,
    valid: impl Fn(&[u8]) -> bool + Sync,
) -> ReadResult {
    let client = client();
    let started = Instant::now();
    let deadline = started + duration;
    let per_worker: Vec<(u64, Vec<Duration>)> = stream::iter(0..concurrency)
        .map(|_| {
            let (client, valid) = (&client, &valid);
            async move {
                let mut failures = 0;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let ok = match client.get(url).header("cookie", cookie).send().await {
                        Ok(response) if response.status() == 200 => {
                            response.bytes().await.is_ok_and(|body| valid(&body))
                        }
                        _ => false,
                    };
                    latencies.push(sent.elapsed());
                    if !ok {
                        failures += 1;
                    }
                }
                (failures, latencies)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let failures = per_worker.iter().map(|(failures, _)| failures).sum();
    let mut latencies: Vec<Duration> = per_worker.into_iter().flat_map(|(_, l)| l).collect();
    latencies.sort_unstable();
    ReadResult {
        requests: latencies.len() as u64,
        failures,
        elapsed,
        latencies,
    }
}

/// The `q` quantile (0–1) of sorted `values`.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index]
}
