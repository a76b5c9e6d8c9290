//! `loadgen`, live-gallery's benchmark: starts the services itself (release `server` processes
//! on PostgreSQL and RabbitMQ, and the embedded set-up), drives each scenario, checks that the
//! results are exact (counts everywhere, every socket showing every change), and prints every
//! figure next to its target. `--json FILE` also writes them as JSON.
//!
//! Layout: `cluster` (the processes and their databases), `traffic` (HTTP load), `sockets`
//! (live sockets and latency probes), `cpu` (where the time goes), `report` (table and JSON),
//! `brokers` (the scenario on a three-node RabbitMQ cluster, whose nodes `broker_cluster` runs:
//! the integration tests' harness, shared), `first_visit` (a first visit in Chromium).

// Stopping and restarting nodes is for the tests; the benchmark only kills one.
#[allow(dead_code)]
#[path = "../../../tests/integration/broker_cluster.rs"]
mod broker_cluster;
mod brokers;
mod cluster;
mod cpu;
mod first_visit;
mod report;
mod sockets;
mod traffic;

use app::paging::DEFAULT_LIMIT;
use clap::Parser;
use cluster::{Cluster, Services};
use report::{Figure, Goal};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(about = "live-gallery's benchmark: load, correctness checks and figures")]
struct Args {
    /// The `server` binary to run (default: the one next to this binary).
    #[arg(long)]
    server: Option<PathBuf>,
    /// A PostgreSQL database from which the benchmark creates (and drops) its own.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    #[arg(
        long,
        env = "BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp: String,
    /// Seconds each like storm and the fan-out run.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds each read flood runs.
    #[arg(long, default_value_t = 10)]
    read_duration: u64,
    /// Visitors in a like storm.
    #[arg(long, default_value_t = 2000)]
    visitors: usize,
    /// Requests in flight in storms and read floods.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Products in the gallery.
    #[arg(long, default_value_t = 100)]
    products: usize,
    /// Open sockets during the second like storm.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Open sockets on one web instance in the fan-out.
    #[arg(long, default_value_t = 10_000)]
    fanout_sockets: usize,
    /// Like-count changes per second in the fan-out.
    #[arg(long, default_value_t = 100.0)]
    fanout_rate: f64,
    /// The release wasm bundle to weigh (`.ci/bench` passes its hashed name).
    #[arg(long, default_value = "target/site/pkg/live-gallery.wasm")]
    wasm: PathBuf,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Products the big gallery grows to.
    #[arg(long, default_value_t = 10_000)]
    big_gallery: usize,
    /// Run only these scenarios: reads, storm, storm-sockets, idle, fanout, big-gallery,
    /// embedded, first-visit, broker-cluster, wasm.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(figures) => {
            println!("{}", report::table(&figures));
            if let Some(path) = &args.json {
                let json = serde_json::to_string_pretty(&figures).expect("figures serialise");
                if let Err(err) = std::fs::write(path, json) {
                    eprintln!("cannot write {}: {err}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if figures.iter().all(|figure| figure.verified) {
                ExitCode::SUCCESS
            } else {
                eprintln!("some correctness checks failed (see the table)");
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("benchmark failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn say(message: &str) {
    eprintln!("==> {message}");
}

fn figure(scenario: &str, name: &str, value: f64, unit: &str) -> Figure {
    Figure {
        scenario: scenario.to_owned(),
        figure: name.to_owned(),
        value,
        unit: unit.to_owned(),
        target: None,
        goal: Goal::AtLeast,
        verified: true,
        check: String::new(),
    }
}

impl Figure {
    fn target(mut self, goal: Goal, target: f64) -> Self {
        self.goal = goal;
        self.target = Some(target);
        self
    }

    fn checked(mut self, verified: bool, check: impl Into<String>) -> Self {
        self.verified = verified;
        self.check = check.into();
        self
    }
}

/// The CPU used between `before` and now, by part, as a figure without a target.
fn cpu_figure(scenario: &str, cluster: &Cluster, before: &cpu::Sample) -> Figure {
    cores_figure(scenario, before, &cluster.cpu_sample())
}

/// The CPU used between two samples, by part, as a figure without a target.
fn cores_figure(scenario: &str, before: &cpu::Sample, after: &cpu::Sample) -> Figure {
    let (total, breakdown) = cpu::cores_between(before, after);
    figure(scenario, "CPU in use (of 2 cores)", total, "cores").checked(true, breakdown)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn run(args: &Args) -> Result<Vec<Figure>, String> {
    let server = match &args.server {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|err| err.to_string())?
            .with_file_name("server"),
    };
    let work_dir = std::env::temp_dir().join(format!("live-gallery-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).map_err(|err| err.to_string())?;
    let services = Services {
        server,
        postgres: args.postgres.clone(),
        amqp: args.amqp.clone(),
        work_dir,
    };
    let mut figures = Vec::new();

    if [
        "reads",
        "storm",
        "storm-sockets",
        "idle",
        "fanout",
        "big-gallery",
    ]
    .iter()
    .any(|s| args.wants(s))
    {
        say("starting a catalog and two web instances (PostgreSQL, RabbitMQ)");
        let cluster = Cluster::production(&services, 2).await?;
        let result = production_scenarios(args, &cluster).await;
        cluster.stop().await;
        figures.extend(result?);
    }
    if args.wants("embedded") {
        say("starting the embedded set-up (SQLite, in-process bus)");
        let cluster = Cluster::embedded(&services).await?;
        let result = async {
            let products = seed(args, &cluster).await?;
            storm(args, &cluster, &products, 0, "embedded like storm").await
        }
        .await;
        cluster.stop().await;
        figures.extend(result?);
    }
    if args.wants("first-visit") {
        say("starting the embedded set-up for a first visit in Chromium");
        let cluster = Cluster::embedded(&services).await?;
        let result = async {
            seed(args, &cluster).await?;
            first_visit::measure(&cluster.webs[0].url("/"), args.products).await
        }
        .await;
        cluster.stop().await;
        figures.extend(result?);
    }
    if args.wants("broker-cluster") {
        // Compared with the single-node storm of this run, when it ran.
        let single_node = figures
            .iter()
            .find(|f| f.scenario == "like storm" && f.figure.starts_with("end-to-end"))
            .map(|f| f.value);
        figures.extend(brokers::scenario(args, &services, single_node).await?);
    }
    if args.wants("wasm") {
        figures.push(wasm_size(&args.wasm)?);
    }
    let _ = std::fs::remove_dir_all(&services.work_dir);
    Ok(figures)
}

async fn production_scenarios(args: &Args, cluster: &Cluster) -> Result<Vec<Figure>, String> {
    let products = seed(args, cluster).await?;
    let mut figures = Vec::new();
    let mut small = ReadP99::default();
    if args.wants("reads") {
        let (read, p99) = reads(args, cluster).await;
        figures.extend(read);
        small = p99;
    }
    if args.wants("storm") {
        figures.extend(storm(args, cluster, &products, 0, "like storm").await?);
    }
    if args.wants("storm-sockets") {
        let label = format!("like storm + {} sockets", args.sockets);
        figures.extend(storm(args, cluster, &products, args.sockets, &label).await?);
    }
    if args.wants("idle") {
        figures.extend(idle(args, cluster, &products).await?);
    }
    if args.wants("fanout") {
        figures.extend(fanout(args, cluster, &products).await?);
    }
    // Last: it grows the gallery the other scenarios measure at `products`.
    if args.wants("big-gallery") {
        figures.extend(big_gallery(args, cluster, small).await?);
    }
    Ok(figures)
}

/// Views that must agree once quiet: the catalog's list and every web instance's gallery.
fn views(cluster: &Cluster) -> Vec<(String, Option<String>)> {
    let mut views = Vec::new();
    if let Some(catalog) = &cluster.catalog {
        views.push((
            catalog.url("/api/admin/products"),
            Some(cluster.admin_token.clone()),
        ));
    }
    for web in &cluster.webs {
        views.push((web.url("/api/products"), None));
    }
    views
}

/// Creates the gallery's products and waits until every web instance has them.
async fn seed(args: &Args, cluster: &Cluster) -> Result<Vec<i64>, String> {
    say(&format!("creating {} products", args.products));
    seed_more(cluster, args.products, "Picture").await
}

async fn seed_more(cluster: &Cluster, count: usize, prefix: &str) -> Result<Vec<i64>, String> {
    let client = traffic::client();
    let admin = cluster.admin_api().url("");
    let ids = traffic::seed_products(&client, &admin, &cluster.admin_token, count, prefix).await?;
    let zero: BTreeMap<i64, i64> = ids.iter().map(|id| (*id, 0)).collect();
    if !traffic::wait_for_counts(&client, &views(cluster), &zero, Duration::from_secs(60)).await {
        return Err("the products did not reach every web instance within 60 s".to_owned());
    }
    Ok(ids)
}

/// The p99s of the 100-product first pages, which the big gallery's must stay within 2× of.
#[derive(Default, Clone, Copy)]
struct ReadP99 {
    json: Option<f64>,
    page: Option<f64>,
}

async fn reads(args: &Args, cluster: &Cluster) -> (Vec<Figure>, ReadP99) {
    let client = traffic::client();
    let web = &cluster.webs[0];
    let cookie = traffic::visitors(&client, &web.url(""), 1).await.remove(0);
    let products = args.products;
    let shown = products.min(DEFAULT_LIMIT);

    say("read flood: GET /api/products (the first page)");
    let (mut figures, json_p99) = json_flood(
        cluster,
        &web.url("/api/products"),
        &cookie,
        args,
        shown,
        products,
    )
    .await;

    say("read flood: GET / (server-rendered gallery, first page)");
    let (page, page_p99) = page_flood(cluster, &web.url("/"), &cookie, args, shown, products).await;
    figures.extend(page);
    (
        figures,
        ReadP99 {
            json: Some(json_p99),
            page: Some(page_p99),
        },
    )
}

/// Floods a JSON first page that must equal what it answered first (`shown` items); returns
/// the figures and the p99 in ms.
async fn json_flood(
    cluster: &Cluster,
    url: &str,
    cookie: &str,
    args: &Args,
    shown: usize,
    products: usize,
) -> (Vec<Figure>, f64) {
    let client = traffic::client();
    let reference = client.get(url).header("cookie", cookie).send().await.ok();
    let reference = match reference {
        Some(response) => response.bytes().await.unwrap_or_default(),
        None => Default::default(),
    };
    let listed = serde_json::from_slice::<serde_json::Value>(&reference)
        .ok()
        .and_then(|page| page["items"].as_array().map(Vec::len))
        .unwrap_or(0);
    let path = url.split_once("/api").map_or(url, |(_, path)| path);
    let name = format!("GET /api{path}");
    let (json, json_cpu) = measured_flood(cluster, &name, url, cookie, args, |body| {
        body == reference.as_ref()
    })
    .await;
    let scenario = format!(
        "gallery read: GET /api{path}, {products} products, {} connections",
        args.concurrency
    );
    let check = format!(
        "{} responses, {} not the first page ({listed} items, {shown} expected)",
        json.requests, json.failures
    );
    let ok = json.failures == 0 && listed == shown;
    let mut figures = flood_figures(&scenario, &json, 20_000.0, ok, check);
    figures.push(json_cpu);
    let p99 = ms(traffic::quantile(&json.latencies, 0.99));
    (figures, p99)
}

/// Floods a server-rendered gallery page that must show `shown` cards.
async fn page_flood(
    cluster: &Cluster,
    url: &str,
    cookie: &str,
    args: &Args,
    shown: usize,
    products: usize,
) -> (Vec<Figure>, f64) {
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    let name = format!("SSR /{path}");
    let (page, page_cpu) = measured_flood(cluster, &name, url, cookie, args, |body| {
        std::str::from_utf8(body)
            .is_ok_and(|html| html.matches("data-product-id=").count() == shown)
    })
    .await;
    let scenario = format!(
        "SSR gallery page /{path}, {products} products, {} connections",
        args.concurrency
    );
    let check = format!(
        "{} pages, {} without {shown} cards",
        page.requests, page.failures
    );
    let ok = page.failures == 0 && page.requests > 0;
    let mut figures = flood_figures(&scenario, &page, 3_000.0, ok, check);
    figures.push(page_cpu);
    (figures, ms(traffic::quantile(&page.latencies, 0.99)))
}

/// A gallery grown to `big_gallery` products: the first page of each order, JSON and
/// server-rendered, each p99 against 2× the 100-product one.
async fn big_gallery(
    args: &Args,
    cluster: &Cluster,
    small: ReadP99,
) -> Result<Vec<Figure>, String> {
    let more = args.big_gallery.saturating_sub(args.products);
    say(&format!(
        "growing the gallery to {} products",
        args.big_gallery
    ));
    seed_more(cluster, more, "More").await?;
    let client = traffic::client();
    let web = &cluster.webs[0];
    let cookie = traffic::visitors(&client, &web.url(""), 1).await.remove(0);
    let products = args.big_gallery;
    let shown = products.min(DEFAULT_LIMIT);
    let mut figures = Vec::new();
    for sort in ["newest", "likes"] {
        say(&format!(
            "read flood: {products} products, first page by {sort}"
        ));
        let url = web.url(&format!("/api/products?sort={sort}"));
        let (mut json, _) = json_flood(cluster, &url, &cookie, args, shown, products).await;
        if let (Some(p99), Some(figure)) = (small.json, json.get_mut(1)) {
            *figure = figure.clone().target(Goal::AtMost, 2.0 * p99);
        }
        figures.extend(json);
        let url = web.url(&format!("/?sort={sort}"));
        let (mut page, _) = page_flood(cluster, &url, &cookie, args, shown, products).await;
        if let (Some(p99), Some(figure)) = (small.page, page.get_mut(1)) {
            *figure = figure.clone().target(Goal::AtMost, 2.0 * p99);
        }
        figures.extend(page);
    }
    Ok(figures)
}

/// Floods `url` for the read duration; returns the result and the CPU the cluster used meanwhile.
async fn measured_flood(
    cluster: &Cluster,
    name: &str,
    url: &str,
    cookie: &str,
    args: &Args,
    valid: impl Fn(&[u8]) -> bool + Sync,
) -> (traffic::ReadResult, Figure) {
    let before = cluster.cpu_sample();
    let duration = Duration::from_secs(args.read_duration);
    let flood = traffic::read_flood(url, cookie, args.concurrency, duration, valid).await;
    (flood, cpu_figure(name, cluster, &before))
}

/// Requests per second (against `target`) and p99 of a read flood.
fn flood_figures(
    scenario: &str,
    flood: &traffic::ReadResult,
    target: f64,
    ok: bool,
    check: String,
) -> Vec<Figure> {
    let rate = flood.requests as f64 / flood.elapsed.as_secs_f64();
    let p99 = ms(traffic::quantile(&flood.latencies, 0.99));
    vec![
        figure(scenario, "requests/s", rate, "req/s")
            .target(Goal::AtLeast, target)
            .checked(ok, check.clone()),
        figure(scenario, "p99", p99, "ms").checked(ok, check),
    ]
}

/// A like storm, with `sockets` open sockets and a latency probe when `sockets` > 0.
async fn storm(
    args: &Args,
    cluster: &Cluster,
    products: &[i64],
    sockets: usize,
    scenario: &str,
) -> Result<Vec<Figure>, String> {
    let client = traffic::client();
    let duration = Duration::from_secs(args.duration);
    say(&format!("{scenario}: {} visitors", args.visitors));
    let per_web = args.visitors.div_ceil(cluster.webs.len());
    let mut visitors = Vec::new();
    for web in &cluster.webs {
        let base = web.url("");
        for cookie in traffic::visitors(&client, &base, per_web).await {
            visitors.push((cookie, base.clone()));
        }
    }
    let views = views(cluster);
    let base = traffic::counts(&client, &views[0].0, views[0].1.as_deref()).await;

    // Sockets spread over the web instances, and a probe clicking one product of its own.
    let mut live = None;
    if sockets > 0 {
        let probe = seed_more(cluster, 1, "Probe").await?[0];
        let web = &cluster.webs[0];
        let initial = traffic::counts(&client, &web.url("/api/products"), None).await;
        let rate = 20.0;
        let clicks = sockets::Clicks::new(
            HashMap::from([(probe, 0)]),
            (rate * duration.as_secs_f64()) as usize + 10,
        );
        let addresses: Vec<_> = cluster.webs.iter().map(|web| web.address).collect();
        say(&format!("{scenario}: opening {sockets} sockets"));
        let watches =
            sockets::open_many(&addresses, sockets, &initial, Some(clicks.clone())).await?;
        let cookies = traffic::visitors(
            &client,
            &web.url(""),
            (rate * duration.as_secs_f64()) as usize + 10,
        )
        .await;
        let probes = tokio::spawn(sockets::run_probes(
            clicks.clone(),
            cookies,
            web.url(""),
            rate,
            duration,
        ));
        live = Some((watches, probes, clicks, rate * duration.as_secs_f64()));
    }

    let (commits_before, published_before) = (cluster.commits().await, cluster.published().await);
    say(&format!("{scenario}: {} s of likes", args.duration));
    let before = cluster.cpu_sample();
    let result = traffic::like_storm(
        &visitors,
        products,
        &base,
        args.concurrency,
        duration,
        &views,
    )
    .await;
    let after = cluster.cpu_sample();
    let storm_cpu = cores_figure(scenario, &before, &after);
    let (per_like, per_part) = cpu::micros_per_operation(&before, &after, result.answered);
    let e2e = result.settled_elapsed.map_or(0.0, |elapsed| {
        result.answered as f64 / elapsed.as_secs_f64()
    });
    let settled = result.settled_elapsed.is_some();
    let check = format!(
        "{} likes/unlikes answered 200, {} other answers; counts exact in the catalog and both web instances: {}",
        result.answered,
        result.errors,
        if settled { "yes" } else { "NO (not within 120 s)" }
    );
    let ok = settled && result.errors == 0;
    let embedded = cluster.catalog.is_none();
    let mut figures = vec![
        figure(
            scenario,
            "end-to-end likes/s (200 → catalog → galleries)",
            e2e,
            "likes/s",
        )
        .target(Goal::AtLeast, if embedded { 15_000.0 } else { 6_000.0 })
        .checked(ok, check.clone()),
        figure(
            scenario,
            "HTTP likes/s (answered)",
            result.answered as f64 / result.http_elapsed.as_secs_f64(),
            "likes/s",
        )
        .checked(ok, check.clone()),
        figure(
            scenario,
            "HTTP answer p99 (like or unlike)",
            ms(traffic::quantile(&result.latencies, 0.99)),
            "ms",
        )
        .target(Goal::AtMost, 25.0)
        .checked(ok, check),
        storm_cpu,
        figure(scenario, "CPU per like (all parts)", per_like, "µs")
            .target(Goal::AtMost, 300.0)
            .checked(true, per_part),
    ];
    // What each like costs the broker and the databases, from their own counts: messages the
    // services published, and transactions each database committed (PostgreSQL only).
    let likes = result.answered.max(1) as f64;
    let published = cluster.published().await.saturating_sub(published_before);
    figures.push(
        figure(
            scenario,
            "bus messages published per like",
            published as f64 / likes,
            "",
        )
        .target(Goal::AtMost, 0.05)
        .checked(
            true,
            format!("{published} messages published (live_gallery_events_published_total)"),
        ),
    );
    let commits_after = cluster.commits().await;
    for (database, after) in &commits_after {
        let committed = after - commits_before.get(database).copied().unwrap_or(0);
        figures.push(
            figure(
                scenario,
                &format!("{database} database commits per like"),
                committed as f64 / likes,
                "",
            )
            .target(Goal::AtMost, 0.05)
            .checked(
                true,
                format!("{committed} transactions committed (pg_stat_database)"),
            ),
        );
    }

    if let Some((watches, probes, clicks, planned)) = live {
        let (done, failures) = probes.await.map_err(|err| err.to_string())?;
        let mut want = result.want.clone();
        want.extend(sockets::probe_counts(&clicks, &done));
        let agreeing = sockets::wait_for_sockets(&watches, &want, Duration::from_secs(30)).await;
        figures.extend(latency_figures(
            scenario, watches, agreeing, &done, failures, planned, 100.0,
        ));
    }
    Ok(figures)
}

/// p50 and p99 of click → socket over every socket, with the socket checks.
fn latency_figures(
    scenario: &str,
    watches: Vec<sockets::Watch>,
    agreeing: usize,
    done: &HashMap<i64, i64>,
    failures: u64,
    planned: f64,
    p99_target_ms: f64,
) -> Vec<Figure> {
    let total = watches.len();
    let reports: Vec<sockets::SocketReport> =
        watches.into_iter().map(|watch| watch.finish()).collect();
    let resyncs: u64 = reports.iter().map(|report| report.resyncs).sum();
    let messages: u64 = reports.iter().map(|report| report.messages).sum();
    let mut latencies: Vec<Duration> = reports
        .iter()
        .flat_map(|report| {
            report
                .latencies_us
                .iter()
                .map(|us| Duration::from_micros(*us))
        })
        .collect();
    latencies.sort_unstable();
    let clicks: i64 = done.values().sum();
    let expected = clicks as usize * total;
    let check = format!(
        "{agreeing}/{total} sockets show every final count; {} of {expected} click deliveries timed; \
         {clicks} clicks ({failures} failed), {messages} messages, {resyncs} resyncs",
        latencies.len()
    );
    let ok = agreeing == total && failures == 0 && clicks > 0;
    // A generator that falls behind its plan measures a lighter load than it claims.
    let sent = clicks as f64 + failures as f64;
    let plan = format!("{planned:.0} clicks planned at a steady rate, {sent:.0} sent");
    vec![
        figure(
            scenario,
            "clicks sent of planned",
            100.0 * sent / planned.max(1.0),
            "%",
        )
        .target(Goal::AtLeast, 95.0)
        .checked(ok, plan),
        figure(
            scenario,
            "click → every socket p50",
            ms(traffic::quantile(&latencies, 0.5)),
            "ms",
        )
        .checked(ok, check.clone()),
        figure(
            scenario,
            "click → every socket p99",
            ms(traffic::quantile(&latencies, 0.99)),
            "ms",
        )
        .target(Goal::AtMost, p99_target_ms)
        .checked(ok, check),
    ]
}

/// Many sockets on one web instance, like counts changing at a steady rate.
async fn fanout(args: &Args, cluster: &Cluster, products: &[i64]) -> Result<Vec<Figure>, String> {
    let scenario = format!(
        "fan-out: {} sockets on one web instance, {} changes/s",
        args.fanout_sockets, args.fanout_rate
    );
    let watched = Watched {
        webs: &cluster.webs[..1],
        sockets: args.fanout_sockets,
        rate: args.fanout_rate,
        p99_target_ms: 100.0,
    };
    live_changes(args, cluster, products, &scenario, watched).await
}

/// Sockets spread over every web instance, and one like at a time through the first, with
/// nothing else going on: how long a single like takes to reach every browser.
async fn idle(args: &Args, cluster: &Cluster, products: &[i64]) -> Result<Vec<Figure>, String> {
    let scenario = format!(
        "idle: one like at a time → {} sockets on {} web instances",
        args.sockets,
        cluster.webs.len()
    );
    let watched = Watched {
        webs: &cluster.webs,
        sockets: args.sockets,
        rate: 10.0,
        p99_target_ms: 30.0,
    };
    live_changes(args, cluster, products, &scenario, watched).await
}

/// Who watches like counts change, and how fast they change.
struct Watched<'a> {
    /// The web instances the sockets are spread over; likes go through the first.
    webs: &'a [cluster::Process],
    sockets: usize,
    /// Like-count changes per second.
    rate: f64,
    p99_target_ms: f64,
}

/// Like counts changing at a steady rate while sockets watch them.
async fn live_changes(
    args: &Args,
    cluster: &Cluster,
    products: &[i64],
    scenario: &str,
    watched: Watched<'_>,
) -> Result<Vec<Figure>, String> {
    let client = traffic::client();
    let web = &watched.webs[0];
    let duration = Duration::from_secs(args.duration);
    let initial = traffic::counts(&client, &web.url("/api/products"), None).await;
    let base: HashMap<i64, i64> = products
        .iter()
        .map(|id| (*id, initial.get(id).copied().unwrap_or(0)))
        .collect();
    let per_product = watched.rate / products.len() as f64 * duration.as_secs_f64();
    let clicks = sockets::Clicks::new(base, per_product.ceil() as usize + 5);
    let needed = (watched.rate * duration.as_secs_f64()) as usize + products.len() * 6;
    say(&format!("{scenario}: {needed} visitors, opening sockets"));
    let cookies = traffic::visitors(&client, &web.url(""), needed).await;
    let addresses: Vec<_> = watched.webs.iter().map(|web| web.address).collect();
    let watches =
        sockets::open_many(&addresses, watched.sockets, &initial, Some(clicks.clone())).await?;
    let rss_before = web.rss_bytes().unwrap_or(0);
    say(&format!("{scenario}: {} s of changes", args.duration));
    let before = cluster.cpu_sample();
    let (done, failures) =
        sockets::run_probes(clicks.clone(), cookies, web.url(""), watched.rate, duration).await;
    let mut want = initial.clone();
    want.extend(sockets::probe_counts(&clicks, &done));
    let agreeing = sockets::wait_for_sockets(&watches, &want, Duration::from_secs(60)).await;
    let rss = web.rss_bytes().unwrap_or(0);
    let live_cpu = cpu_figure(scenario, cluster, &before);
    let changes: i64 = done.values().sum();
    let planned = watched.rate * duration.as_secs_f64();
    let mut figures = latency_figures(
        scenario,
        watches,
        agreeing,
        &done,
        failures,
        planned,
        watched.p99_target_ms,
    );
    let rate = changes as f64 / duration.as_secs_f64();
    figures.push(
        figure(scenario, "changes/s achieved", rate, "changes/s").checked(
            failures == 0,
            format!("{changes} clicks answered 200, {failures} failed"),
        ),
    );
    figures.push(
        figure(
            scenario,
            "web instance RSS with the sockets open",
            rss as f64 / 1e6,
            "MB",
        )
        .target(Goal::AtMost, 500.0)
        .checked(
            rss > 0,
            format!("{:.0} MB before the changes", rss_before as f64 / 1e6),
        ),
    );
    figures.push(live_cpu);
    Ok(figures)
}

/// The release wasm bundle, gzipped (`gzip -9`): the site's only one, loaded by every page.
fn wasm_size(path: &std::path::Path) -> Result<Figure, String> {
    let output = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .ok()
        .filter(|output| output.status.success());
    let raw = std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0);
    let found = output.is_some();
    let gzipped = output.map_or(0, |output| output.stdout.len());
    Ok(figure(
        "wasm bundle (release)",
        "gzipped size",
        gzipped as f64 / 1000.0,
        "kB",
    )
    .target(Goal::AtMost, 250.0)
    .checked(
        found,
        if found {
            format!(
                "{} ({:.0} kB before gzip)",
                path.display(),
                raw as f64 / 1000.0
            )
        } else {
            format!(
                "{} not found: build with `cargo leptos build --release`",
                path.display()
            )
        },
    ))
}
