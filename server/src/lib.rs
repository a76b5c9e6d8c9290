//! live-gallery's server: one binary that runs the catalog service, the web service, or both.
//!
//! Layout:
//! - `config`: the `Config` struct (environment variables and flags)
//! - `startup`: builds a process for its role(s) and serves it until stopped
//! - `db`: pools, engines (SQLite, PostgreSQL, MySQL/MariaDB), the per-engine SQL layer and
//!   per-service migrations
//! - `tls`: TLS to the broker, databases and catalog: one crypto provider, CA files
//! - `bus`: envelope, RabbitMQ and in-process buses, consumer loop, outbox relay
//! - `events`: the event families the services exchange (`CatalogEvent`, `LikesEvent`)
//! - `catalog`: the catalog service: product store, admin REST API, its copy of the like counts
//! - `web`: the web service: page backend, likes and the like counts it owns, read model,
//!   in-memory gallery, client of the catalog
//! - `live`: the WebSocket hub behind `GET /ws`
//! - `edge`: what every request meets first: client behind trusted proxies, other sites,
//!   rate limits, JSON errors, timeouts
//! - `health`: `/healthz` and `/readyz`
//! - `replay`: the admin route that puts dead letters back in their queue
//! - `parts`: what each consumer and outbox relay is doing, for readiness and metrics
//! - `observability`: `/metrics`, request ids and per-route request metrics
//! - `auth`: the administrator token
//! - `security`: security headers
//! - `error`: the HTTP error type
//! - `shutdown`: the process-wide stop signal
//! - `telemetry`: logging

pub mod auth;
pub mod bus;
pub mod catalog;
pub mod config;
pub mod db;
pub mod edge;
pub mod error;
pub mod events;
pub mod health;
pub mod live;
pub mod observability;
pub mod parts;
pub mod replay;
pub mod security;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod web;
