//! The admin REST API under `/api/admin/products` and `/api/admin/resync` (dead-letter replays
//! are `crate::replay`'s). Every route needs
//! `Authorization: Bearer <ADMIN_TOKEN>`; bodies are JSON, at most 64 KiB, parsed into validated
//! types before anything else happens.

use super::CatalogStore;
use crate::auth::{Admin, AdminToken};
use crate::error::{Error, Result};
use app::domain::{ProductDraft, ProductId, ValidationError};
use app::wire::Product;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024;

/// What the catalog's routes need.
#[derive(Clone)]
pub struct CatalogState {
    pub store: CatalogStore,
    pub admin_token: AdminToken,
}

impl FromRef<CatalogState> for AdminToken {
    fn from_ref(state: &CatalogState) -> Self {
        state.admin_token.clone()
    }
}

pub fn router(state: CatalogState) -> Router {
    Router::new()
        .route("/api/admin/products", get(list).post(create))
        .route(
            "/api/admin/products/{id}",
            get(show).put(replace).delete(remove),
        )
        .route("/api/admin/resync", post(resync))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// A JSON body whose every failure is answered in JSON: 415 without a JSON content type, 413
/// when too large, 400 when not JSON at all.
struct JsonBody(Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Error::UnsupportedMediaType),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Error::PayloadTooLarge)
            }
            Err(rejection) if timed_out(&rejection) => Err(Error::Timeout),
            Err(_) => Err(Error::BadRequest("the body is not valid JSON")),
        }
    }
}

/// Whether the body stopped arriving for longer than the edge's body timeout.
fn timed_out(rejection: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Parses `{"title": "…", "image": "…"}`; other fields are ignored.
fn draft(body: &Value) -> Result<ProductDraft, ValidationError> {
    let object = body.as_object().ok_or_else(|| {
        ValidationError::new("body", "must be a JSON object with title and image")
    })?;
    let text = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| ValidationError::new(field, "is required and must be a string"))
    };
    let title = text("title")?;
    let image = text("image")?;
    ProductDraft::parse(title, image)
}

/// A path id that is not a positive integer names no product.
fn product_id(raw: &str) -> Result<ProductId> {
    ProductId::parse(raw).map_err(|_| Error::NotFound)
}

#[tracing::instrument(skip_all)]
async fn list(_: Admin, State(state): State<CatalogState>) -> Result<Json<Vec<Product>>> {
    Ok(Json(state.store.list().await?))
}

#[tracing::instrument(skip_all)]
async fn create(
    _: Admin,
    State(state): State<CatalogState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Product>)> {
    let draft = draft(&body)?;
    Ok((StatusCode::CREATED, Json(state.store.create(&draft).await?)))
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn show(
    _: Admin,
    State(state): State<CatalogState>,
    Path(id): Path<String>,
) -> Result<Json<Product>> {
    Ok(Json(state.store.get(product_id(&id)?).await?))
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn replace(
    _: Admin,
    State(state): State<CatalogState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Product>> {
    let id = product_id(&id)?;
    let draft = draft(&body)?;
    Ok(Json(state.store.update(id, &draft).await?))
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn remove(
    _: Admin,
    State(state): State<CatalogState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state.store.delete(product_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts an authoritative resync: every web read model ends with exactly the catalog's
/// products. 202 with the resync's generation and how many products it sends.
#[tracing::instrument(skip_all)]
async fn resync(_: Admin, State(state): State<CatalogState>) -> Result<(StatusCode, Json<Value>)> {
    let marker = state.store.resync().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "generation": marker.generation,
            "products": marker.products,
        })),
    ))
}
