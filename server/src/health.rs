//! `GET /healthz` (the process answers) and `GET /readyz` (its databases and bus answer too),
//! served by every role.

use crate::bus::Bus;
use crate::db::Database;
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
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
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
    ready &= bus_ok;
    checks.insert(
        "bus".to_owned(),
        json!(if bus_ok { "ok" } else { "unavailable" }),
    );
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks });
    (status, Json(body))
}
