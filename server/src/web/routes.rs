//! The web service's JSON API for visitors: the gallery and likes. The visitor comes from the
//! signed cookie (see `visitor`).

use super::gallery::Gallery;
use super::likes::Likes;
use crate::error::{Error, Result};
use app::domain::{ProductId, VisitorId};
use app::paging::PageRequest;
use app::wire::LikeState;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
struct Visitors {
    likes: Likes,
    gallery: Arc<Gallery>,
}

/// `GET /api/products`, `POST` and `DELETE /api/products/{id}/like`.
pub fn router(likes: Likes, gallery: Arc<Gallery>) -> Router {
    Router::new()
        .route("/api/products", get(list))
        .route("/api/products/{id}/like", post(like).delete(unlike))
        .with_state(Visitors { likes, gallery })
}

fn product_id(raw: &str) -> Result<ProductId> {
    ProductId::parse(raw).map_err(|_| Error::NotFound)
}

/// One page of the gallery as this instance holds it, with this visitor's liked flags:
/// `{"items": [GalleryItem…], "next": cursor or null}`.
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<Visitors>,
    Extension(visitor): Extension<VisitorId>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    // A map cannot be refused, so every bad query gets the JSON error of `PageRequest`.
    let field = |name: &str| query.get(name).map(String::as_str);
    let request = PageRequest::parse(field("sort"), field("after"), field("limit"))?;
    let liked = state.likes.liked_by(&visitor).await?;
    let body = state.gallery.snapshot().json(&request, &liked);
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn like(
    State(state): State<Visitors>,
    Extension(visitor): Extension<VisitorId>,
    Path(id): Path<String>,
) -> Result<Json<LikeState>> {
    Ok(Json(state.likes.like(&visitor, product_id(&id)?).await?))
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn unlike(
    State(state): State<Visitors>,
    Extension(visitor): Extension<VisitorId>,
    Path(id): Path<String>,
) -> Result<Json<LikeState>> {
    Ok(Json(state.likes.unlike(&visitor, product_id(&id)?).await?))
}
