//! `GET /healthz` (the process answers) and `GET /readyz` (whether it should take traffic),
//! served by every role. With `INTERNAL_ADDR` set, `/readyz` is served there only and
//! `/healthz`, which tells nothing, on both.
//!
//! Ready means: every database of the process answers, and every consumer and outbox relay is
//! running or waiting for the broker. A part the broker refuses (a queue declared elsewhere with
//! other arguments, missing permissions) or whose task ended takes the instance out. A broker
//! outage alone does not: pages come from memory, and likes and admin changes wait in the outbox
//! until it returns; `/readyz` still shows it (`bus`, and each consumer's state).

use crate::bus::Bus;
use crate::db::Database;
use crate::parts::Parts;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// What readiness depends on.
#[derive(Clone)]
pub struct Health {
    /// Each database this process owns, by service name.
    pub databases: Vec<(&'static str, Database)>,
    pub bus: Bus,
    /// The consumers and relays.
    pub parts: Parts,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// `/healthz` alone, for the public listener when the probes have their own address.
pub fn liveness_router() -> Router {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let mut checks = Map::new();
    let mut ready = true;
    for (name, db) in &health.databases {
        let ok = db.ping().await;
        ready &= ok;
        checks.insert(
            format!("{name}_database"),
            json!(if ok { "ok" } else { "unavailable" }),
        );
    }
    let bus_ok = health.bus.is_ready().await;
    checks.insert(
        "bus".to_owned(),
        json!(if bus_ok { "ok" } else { "unavailable" }),
    );
    for (name, state) in health.parts.states() {
        ready &= state.is_ready();
        checks.insert(name, json!(state.describe()));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks });
    (status, Json(body))
}
