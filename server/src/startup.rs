//! Assembles a process from its `Config`: databases, bus, background loops and the HTTP router
//! for the chosen role(s); then serves until asked to stop and winds everything down in order.

use crate::auth::AdminToken;
use crate::bus::amqp::AmqpBus;
use crate::bus::consumer::{self, Handler};
use crate::bus::direct::Publisher;
use crate::bus::memory::MemoryBus;
use crate::bus::outbox::{Relay, RelayWaker};
use crate::bus::{Bus, BusError, QueueSpec, Topology};
use crate::catalog::{self, CatalogState, CatalogStore, CountsHandler, ResyncHandler};
use crate::config::{Config, Role};
use crate::db::{Database, DbError, Service};
use crate::edge::limits::{self, RateLimiter};
use crate::edge::serve::{self, Timeouts};
use crate::edge::{Site, TrustedProxies};
use crate::health::{self, Health};
use crate::live::{self, LiveHub};
use crate::parts::Parts;
use crate::shutdown::Shutdown;
use crate::web::{
    self, visitor, AdminSessions, CatalogClient, Gallery, GalleryHandler, Likes, ReadModelHandler,
    VisitorKeys, WebBackend,
};
use app::backend::BackendHandle;
use axum::http::{Extensions, HeaderMap, StatusCode, Version};
use axum::Router;
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

/// Longest wait for background loops to finish after the server stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the process could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    /// The database of the setting named (`CATALOG_DATABASE_URL`, `WEB_DATABASE_URL`).
    #[error("{0}")]
    Database(&'static str, #[source] DbError),
    #[error("cannot subscribe to the bus")]
    Bus(#[source] BusError),
    #[error("cannot listen on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

/// Longest wait for an answer from the catalog's HTTP API.
const CATALOG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A built process, bound to its port, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics` and `/readyz` on their own address, when configured.
    internal: Option<(TcpListener, Router)>,
    timeouts: Timeouts,
    tasks: Vec<JoinHandle<()>>,
    databases: Vec<Database>,
    shutdown: Shutdown,
    live: Option<Arc<LiveHub>>,
}

impl Application {
    /// Opens databases (running migrations), picks the bus, starts background loops and binds
    /// the listener. Every loop stops when `shutdown` fires.
    pub async fn build(
        config: Config,
        leptos_options: LeptosOptions,
        shutdown: Shutdown,
    ) -> Result<Self, StartError> {
        crate::tls::install_crypto_provider();
        let topology = Topology::new(&config.bus_namespace);
        let prefetch = config.bus_prefetch;
        // An empty AMQP_URL means "not set", so a blank line in an env file keeps the embedded bus.
        let bus = match config
            .amqp_url
            .as_ref()
            .filter(|url| !url.expose().trim().is_empty())
        {
            Some(url) => {
                let tls = crate::tls::amqp_tls(
                    config.amqp_ca_file.as_deref(),
                    config.amqp_client_cert_file.as_deref(),
                    config.amqp_client_key_file.as_deref(),
                )
                .map_err(StartError::Config)?;
                Bus::Amqp(
                    AmqpBus::with_tls(url.expose(), config.bus_timeout.0, tls)
                        .with_dead_letter_queues(config.dead_letter_queues),
                )
            }
            None => {
                if config.role != Role::All {
                    tracing::warn!(
                        "no AMQP_URL: the in-process bus cannot reach services in other processes"
                    );
                }
                Bus::Memory(MemoryBus::new(config.bus_timeout.0))
            }
        };
        let admin_token = admin_token(&config).map_err(StartError::Config)?;
        let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies)
            .map_err(|err| StartError::Config(format!("TRUSTED_PROXIES: {err}")))?;
        let site = Arc::new(Site::new(trusted_proxies, &config.public_origins));
        let timeouts = Timeouts {
            header: config.header_timeout.0,
            request: config.request_timeout.0,
            shutdown: config.shutdown_timeout.0,
        };

        let mut tasks = Vec::new();
        // The metrics recorder before anything records: what is recorded earlier goes nowhere.
        crate::observability::recorder();
        let parts = Parts::default();
        let mut databases = Vec::new();
        let mut checks = Vec::new();
        let mut router = Router::new();
        let mut live = None;

        // Each service's own exchange before anything binds to it, so that the other service's
        // queues (in this process or elsewhere) can bind at once. With the broker away, the
        // outbox relays declare them once it is back.
        for (runs, exchange) in [
            (config.role.runs_catalog(), topology.catalog_exchange()),
            (config.role.runs_web(), topology.web_exchange()),
        ] {
            if let (true, Err(err)) = (runs, bus.declare_exchange(&exchange).await) {
                // A broker that is away is waited for; one whose TLS fails will not get better.
                if let Some(cause) = crate::tls::failure(&err) {
                    return Err(StartError::Config(format!(
                        "AMQP_URL: TLS to the broker failed: {cause} (check the port is the broker's TLS port, and AMQP_CA_FILE)"
                    )));
                }
                tracing::info!(%exchange, error = %crate::error::chain(&err), "cannot declare the exchange yet; its outbox relay will");
            }
        }

        let mut catalog_store = None;
        if config.role.runs_catalog() {
            let db = Database::connect_with(
                &config.catalog_database_url,
                Service::Catalog,
                config.database_pool_size,
                config.database_acquire_timeout.0,
            )
            .await
            .map_err(|err| StartError::Database("CATALOG_DATABASE_URL", err))?;
            tracing::info!(
                database = db.description(),
                "catalog service: database ready"
            );
            let waker = RelayWaker::default();
            let store = CatalogStore::new(db.clone(), waker.clone());
            router = router.merge(catalog::router(CatalogState {
                store: store.clone(),
                admin_token: admin_token
                    .clone()
                    .expect("a process running the catalog has an admin token"),
            }));
            let counts = CountsHandler { db: db.clone() };
            tasks.push(
                consume(
                    &bus,
                    topology.catalog_likes(prefetch),
                    counts,
                    &parts,
                    &db,
                    &shutdown,
                )
                .await?,
            );
            let resync = ResyncHandler {
                store: store.clone(),
            };
            tasks.push(
                consume(
                    &bus,
                    topology.catalog_resync(),
                    resync,
                    &parts,
                    &db,
                    &shutdown,
                )
                .await?,
            );
            let relay = Relay {
                db: db.clone(),
                bus: bus.clone(),
                exchange: topology.catalog_exchange(),
                waker,
            };
            tasks.push(spawn_part(
                &parts,
                "relay:catalog",
                relay.run(shutdown.clone()),
            ));
            catalog_store = Some(store);
            checks.push(("catalog", db.clone()));
            databases.push(db);
        }

        if config.role.runs_web() {
            let db = Database::connect_with(
                &config.web_database_url,
                Service::Web,
                config.database_pool_size,
                config.database_acquire_timeout.0,
            )
            .await
            .map_err(|err| StartError::Database("WEB_DATABASE_URL", err))?;
            tracing::info!(database = db.description(), "web service: database ready");
            let waker = RelayWaker::default();
            web::read_model::request_resync_if_empty(&db, &waker)
                .await
                .map_err(|err| StartError::Database("WEB_DATABASE_URL", DbError::Connect(err)))?;
            // The gallery's own queue exists before the gallery is loaded, so nothing committed
            // to the read model after the load can be missed.
            let hub = LiveHub::new(config.live_max_connections, config.live_buffer);
            let gallery = Gallery::new(hub.clone());
            let gallery_spec = topology.web_gallery(prefetch);
            let gallery_queue = bus
                .subscribe(&gallery_spec)
                .await
                .map_err(StartError::Bus)?;
            tasks.push(gallery.start(
                db.clone(),
                gallery_queue.reopened(),
                config.live_tick.0,
                shutdown.clone(),
            ));
            let products = gallery
                .reload(&db)
                .await
                .map_err(|err| StartError::Database("WEB_DATABASE_URL", DbError::Connect(err)))?;
            tracing::info!(products, "gallery loaded from the web database");
            // Every count with a new version, for consumers that hold versions this database no
            // longer has (it was restored from a backup) or missed counts (an upgrade).
            let announced = web::counts::announce_all(&db)
                .await
                .map_err(|err| StartError::Database("WEB_DATABASE_URL", DbError::Connect(err)))?;
            tracing::info!(products = announced, "like counts announced");
            // Only now: a `gallery.changed` left in the outbox needs a gallery queue to go to.
            let relay = Relay {
                db: db.clone(),
                bus: bus.clone(),
                exchange: topology.web_exchange(),
                waker: waker.clone(),
            };
            tasks.push(spawn_part(&parts, "relay:web", relay.run(shutdown.clone())));
            // The like writer publishes each batch's event itself; the relay is its safety net.
            let (publisher, publishing) = Publisher::new(
                db.clone(),
                bus.clone(),
                topology.web_exchange(),
                shutdown.clone(),
            );
            tasks.push(spawn_part(&parts, "publisher:web", publishing));
            tasks.push(run_consumer(
                &bus,
                &gallery_spec,
                gallery_queue,
                GalleryHandler(gallery.clone()),
                &parts,
                &db,
                &shutdown,
            ));
            let read_model = ReadModelHandler {
                db: db.clone(),
                relay: waker.clone(),
            };
            tasks.push(
                consume(
                    &bus,
                    topology.web_read_model(prefetch),
                    read_model,
                    &parts,
                    &db,
                    &shutdown,
                )
                .await?,
            );

            let catalog = match (&catalog_store, &config.catalog_url, &admin_token) {
                (_, Some(url), Some(token)) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(StartError::Config(format!(
                            "CATALOG_URL: `{url}` is not an http:// or https:// URL"
                        )));
                    }
                    let http = crate::tls::catalog_http_client(
                        config.catalog_ca_file.as_deref(),
                        CATALOG_TIMEOUT,
                    )
                    .map_err(StartError::Config)?;
                    CatalogClient::remote(url, token.clone(), http)
                }
                (_, Some(_), None) => {
                    tracing::error!("ADMIN_TOKEN is not set: this web instance cannot reach the catalog's admin API at CATALOG_URL, so its admin pages are off; give it the catalog's ADMIN_TOKEN");
                    CatalogClient::Missing
                }
                (Some(store), None, _) => CatalogClient::Local(store.clone()),
                (None, None, _) => {
                    tracing::warn!("no CATALOG_URL: the admin pages cannot change products");
                    CatalogClient::Missing
                }
            };
            let likes = Likes::start(db.clone(), publisher, gallery.clone());
            let backend = BackendHandle(Arc::new(WebBackend {
                likes: likes.clone(),
                gallery: gallery.clone(),
                admin_token: admin_token.clone(),
                sessions: AdminSessions::new(db.clone()),
                catalog,
            }));
            let keys = VisitorKeys::load_or_create(&db)
                .await
                .map_err(|err| StartError::Database("WEB_DATABASE_URL", DbError::Connect(err)))?;
            let limiter = |per_minute| {
                let limiter = RateLimiter::new(per_minute);
                limiter.forget_idle_until(shutdown.clone());
                limiter
            };
            let files = web::files::router(
                std::path::Path::new(&*leptos_options.site_root),
                &leptos_options.site_pkg_dir,
                leptos_options.hash_files,
            );
            let visitor_pages = web::router(likes, gallery)
                .merge(web::pages::router(leptos_options, backend))
                .layer(axum::middleware::from_fn_with_state(
                    limiter(config.rate_limit_likes_per_minute),
                    limits::limit_likes,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    limiter(config.rate_limit_sign_ins_per_minute),
                    limits::limit_sign_ins,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    visitor::Visitors {
                        keys,
                        limiter: limiter(config.rate_limit_visitors_per_minute),
                    },
                    visitor::identify,
                ));
            router = router
                .merge(files)
                .merge(live::router(
                    hub.clone(),
                    live::SocketPolicy {
                        max_per_address: config.live_max_per_address,
                        send_timeout: config.live_send_timeout.0,
                        site: site.clone(),
                    },
                    shutdown.clone(),
                ))
                .merge(visitor_pages);
            live = Some(hub);
            checks.push(("web", db.clone()));
            databases.push(db);
        }

        // Dead-letter replays, for the queues of the roles this process runs (the web role's
        // only with the admin token).
        if let Some(token) = &admin_token {
            let queues = crate::replay::queues(
                &topology,
                config.role.runs_catalog(),
                config.role.runs_web(),
            );
            router = router.merge(crate::replay::router(bus.clone(), token.clone(), queues));
        }
        let probes = health::router(Health {
            databases: checks,
            bus: bus.clone(),
            parts,
        })
        .merge(crate::observability::router(bus.clone()));
        let internal = match config.internal_addr {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|err| StartError::Bind(address, err))?;
                router = router.merge(health::liveness_router());
                tracing::info!("metrics and readiness on http://{address}");
                Some((listener, edge_layers(probes, &site, timeouts)))
            }
            None => {
                router = router.merge(probes);
                None
            }
        };
        let router = edge_layers(
            router
                // A forged cross-site request is refused before anything runs.
                .layer(axum::middleware::from_fn_with_state(
                    site.clone(),
                    crate::edge::origin::refuse_cross_site,
                )),
            &site,
            timeouts,
        );

        let listener = TcpListener::bind(config.site_addr)
            .await
            .map_err(|err| StartError::Bind(config.site_addr, err))?;
        let address = listener
            .local_addr()
            .map_err(|err| StartError::Bind(config.site_addr, err))?;
        tracing::info!(
            role = ?config.role,
            bus = %bus.description(),
            "live-gallery listening on http://{address}"
        );

        Ok(Self {
            listener,
            router,
            internal,
            timeouts,
            tasks,
            databases,
            shutdown,
            live,
        })
    }

    /// The live hub, when this process runs the web role.
    pub fn live_hub(&self) -> Option<Arc<LiveHub>> {
        self.live.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until shutdown: in-flight requests finish, then the loops stop, then the pools
    /// close.
    pub async fn run(self) -> Result<(), StartError> {
        let Self {
            listener,
            router,
            internal,
            timeouts,
            tasks,
            databases,
            shutdown,
            live: _,
        } = self;
        let internal = internal.map(|(listener, router)| {
            tokio::spawn(serve::serve(listener, router, timeouts, shutdown.clone()))
        });
        serve::serve(listener, router, timeouts, shutdown.clone()).await;
        if let Some(internal) = internal {
            let _ = internal.await;
        }
        let drained =
            tokio::time::timeout(DRAIN_TIMEOUT, futures_util::future::join_all(tasks)).await;
        if drained.is_err() {
            tracing::warn!("background loops did not stop within {DRAIN_TIMEOUT:?}");
        }
        for db in databases {
            db.close().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The administrator token: `ADMIN_TOKEN`, else (for a process running the catalog) the one kept
/// in `ADMIN_TOKEN_FILE`; a web role alone has none without `ADMIN_TOKEN`.
fn admin_token(config: &Config) -> Result<Option<AdminToken>, String> {
    match config
        .admin_token
        .as_ref()
        .filter(|token| !token.expose().trim().is_empty())
    {
        Some(token) => AdminToken::configured(token).map(Some),
        None if config.role.runs_catalog() => {
            AdminToken::kept_in(&config.admin_token_file).map(Some)
        }
        None => Ok(None),
    }
}

/// What every router of the process is wrapped in, innermost first: the client found (behind
/// trusted proxies), request timeouts, JSON errors under `/api/`, security headers,
/// compression, metrics.
fn edge_layers(router: Router, site: &Arc<Site>, timeouts: Timeouts) -> Router {
    serve::with_request_timeouts(
        router.layer(axum::middleware::from_fn_with_state(
            site.clone(),
            crate::edge::client::identify,
        )),
        timeouts,
    )
    .layer(axum::middleware::from_fn(
        crate::edge::api_errors::json_errors,
    ))
    .layer(axum::middleware::from_fn(crate::security::headers))
    // Pages, JSON and files in brotli or gzip for clients that take them (not tiny answers,
    // not images, never a WebSocket handshake); `Vary: Accept-Encoding` keeps caches apart.
    .layer(
        tower_http::compression::CompressionLayer::new().compress_when(
            DefaultPredicate::new().and(
                |status: StatusCode, _: Version, _: &HeaderMap, _: &Extensions| {
                    status != StatusCode::SWITCHING_PROTOCOLS
                },
            ),
        ),
    )
    .layer(axum::middleware::from_fn(crate::observability::observe))
}

/// Subscribes to `spec` and runs `handler` on its deliveries until `shutdown`.
async fn consume<H: Handler>(
    bus: &Bus,
    spec: QueueSpec,
    handler: H,
    parts: &Parts,
    db: &Database,
    shutdown: &Shutdown,
) -> Result<JoinHandle<()>, StartError> {
    let subscription = bus.subscribe(&spec).await.map_err(StartError::Bus)?;
    Ok(run_consumer(
        bus,
        &spec,
        subscription,
        handler,
        parts,
        db,
        shutdown,
    ))
}

/// Spawns `work` as the part `name` of this process: it shows in `/readyz` and the
/// `live_gallery_part_up` gauge, and as stopped once it ends.
fn spawn_part(
    parts: &Parts,
    name: &str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let stopped = parts.register(name).stopped_on_drop();
    tokio::spawn(async move {
        let _stopped = stopped;
        work.await
    })
}

/// How often each consumer's queue is asked how many messages wait in it.
const WAITING_INTERVAL: Duration = Duration::from_secs(5);

/// Keeps the gauges `live_gallery_consumer_waiting_messages{consumer}` (messages ready in the
/// consumer's queue: its lag) and `live_gallery_dead_letters{queue}` (messages in its
/// dead-letter queue) up to date, until `shutdown`. An instance's own (exclusive) queue cannot
/// be asked about from another connection, where the broker closes the asking channel: only
/// its shared dead-letter queue is.
async fn watch_waiting(bus: Bus, spec: QueueSpec, consumer: &'static str, mut shutdown: Shutdown) {
    let queue = (spec.kind != crate::bus::QueueKind::Live).then(|| spec.queue.clone());
    let dead_letters = spec.dead_letter_queue();
    let mut ticks = tokio::time::interval(WAITING_INTERVAL);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                for (name, lag) in [(&queue, true), (&dead_letters, false)] {
                    let Some(name) = name else { continue };
                    match bus.waiting(name).await {
                        Ok(count) if lag => metrics::gauge!("live_gallery_consumer_waiting_messages", "consumer" => consumer).set(count as f64),
                        Ok(count) => metrics::gauge!("live_gallery_dead_letters", "queue" => name.clone()).set(count as f64),
                        Err(err) => tracing::debug!(queue = %name, error = %err, "cannot ask how many messages wait"),
                    }
                }
            }
            _ = shutdown.wait() => break,
        }
    }
}

/// Runs `handler` on the deliveries of `subscription` (of queue `spec`) until `shutdown`, and
/// keeps the gauge of the messages waiting in that queue.
fn run_consumer<H: Handler>(
    bus: &Bus,
    spec: &QueueSpec,
    mut subscription: crate::bus::Subscription,
    handler: H,
    parts: &Parts,
    db: &Database,
    shutdown: &Shutdown,
) -> JoinHandle<()> {
    let part = parts.register(format!("consumer:{}", H::NAME));
    subscription.report_to(part.clone());
    tokio::spawn(watch_waiting(
        bus.clone(),
        spec.clone(),
        H::NAME,
        shutdown.clone(),
    ));
    let prefetch = spec.prefetch;
    // On PostgreSQL, as many deliveries in hand at once as the queue hands over, up to a
    // handful of transactions: the consumer waits on the database, not on the CPU. SQLite has
    // one writer at a time; concurrent handlers there only queue for its lock.
    let concurrency = match db.engine() {
        crate::db::Engine::Sqlite => 1,
        crate::db::Engine::Postgres | crate::db::Engine::MySql => {
            usize::from(prefetch).clamp(1, CONSUMER_CONCURRENCY)
        }
    };
    // Batching handlers take one batch at a time, of what the prefetch lets them hold.
    let (stopped, shutdown) = (part.stopped_on_drop(), shutdown.clone());
    // The in-process bus keeps a service's dead letters in that service's database, as
    // RabbitMQ keeps them in durable queues.
    let store = match (bus, spec.dead_letter_queue()) {
        (Bus::Memory(memory), Some(dead_letters)) => {
            Some((memory.clone(), dead_letters, db.clone()))
        }
        _ => None,
    };
    tokio::spawn(async move {
        let _stopped = stopped;
        if let Some((memory, dead_letters, db)) = store {
            if let Err(err) = memory.keep_dead_letters_in(&dead_letters, db).await {
                tracing::error!(queue = %dead_letters, error = %err, "cannot load the kept dead letters");
            }
        }
        consumer::run(subscription, handler, shutdown, concurrency).await
    })
}

/// Most deliveries one consumer handles at once.
const CONSUMER_CONCURRENCY: usize = 8;
