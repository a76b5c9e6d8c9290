//! live-gallery's server: one binary that runs the catalog service, the web service, or both.
//!
//! Layout:
//! - `config`: the `Config` struct (environment variables and flags)
//! - `startup`: builds a process for its role(s) and serves it until stopped
//! - `db`: pools, engines (SQLite, PostgreSQL) and per-service migrations
//! - `bus`: envelope, RabbitMQ and in-process buses, consumer loop, outbox relay
//! - `web`: the web service: page backend, read model
//! - `live`: the WebSocket hub behind `GET /ws`
//! - `health`: `/healthz` and `/readyz`
//! - `auth`: the administrator token
//! - `error`: the HTTP error type
//! - `shutdown`: the process-wide stop signal
//! - `telemetry`: logging

pub mod auth;
pub mod bus;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod live;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod web;
