//! `POST /api/admin/dead-letters/{queue}/replay`: puts a durable queue's dead letters back in
//! it, once their cause is fixed. Each role offers its own queues (`catalog.likes`,
//! `catalog.resync`; `web.read-model`), since only it may read and write them on the broker.

use crate::auth::{Admin, AdminToken};
use crate::bus::{Bus, QueueSpec, Topology};
use crate::error::{Error, Result};
use axum::extract::{FromRef, Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

/// What the route needs.
#[derive(Clone)]
struct Replay {
    bus: Bus,
    admin_token: AdminToken,
    /// The queues this process may replay, by the name the route takes.
    queues: Arc<Vec<(&'static str, QueueSpec)>>,
}

impl FromRef<Replay> for AdminToken {
    fn from_ref(state: &Replay) -> Self {
        state.admin_token.clone()
    }
}

/// The durable queues of the roles this process runs, by the name the route takes.
pub fn queues(topology: &Topology, catalog: bool, web: bool) -> Vec<(&'static str, QueueSpec)> {
    let mut queues = Vec::new();
    if catalog {
        queues.push(("catalog.likes", topology.catalog_likes(1)));
        queues.push(("catalog.resync", topology.catalog_resync()));
    }
    if web {
        queues.push(("web.read-model", topology.web_read_model(1)));
    }
    queues
}

pub fn router(bus: Bus, admin_token: AdminToken, queues: Vec<(&'static str, QueueSpec)>) -> Router {
    Router::new()
        .route("/api/admin/dead-letters/{queue}/replay", post(replay))
        .with_state(Replay {
            bus,
            admin_token,
            queues: Arc::new(queues),
        })
}

/// 200 `{"queue", "replayed"}`; 404 for a queue this process does not own.
#[tracing::instrument(skip_all, fields(queue = %queue))]
async fn replay(
    _: Admin,
    State(state): State<Replay>,
    Path(queue): Path<String>,
) -> Result<Json<Value>> {
    let Some((_, spec)) = state.queues.iter().find(|(name, _)| *name == queue) else {
        return Err(Error::NotFound);
    };
    let replayed = state.bus.replay_dead_letters(spec).await.map_err(|err| {
        tracing::error!(error = %crate::error::chain(&err), "cannot replay dead letters");
        Error::Unavailable
    })?;
    tracing::info!(replayed, "dead letters replayed");
    Ok(Json(
        serde_json::json!({ "queue": queue, "replayed": replayed }),
    ))
}
