//! The web service's JSON API for visitors: the gallery and likes. The visitor comes from the
//! signed cookie (see `visitor`).

use super::likes::Likes;
use crate::error::{Error, Result};
use app::domain::{ProductId, VisitorId};
use app::wire::{GalleryItem, LikeState};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

/// `GET /api/products`, `POST` and `DELETE /api/products/{id}/like`.
pub fn router(likes: Likes) -> Router {
    Router::new()
        .route("/api/products", get(gallery))
        .route("/api/products/{id}/like", post(like).delete(unlike))
        .with_state(likes)
}

fn product_id(raw: &str) -> Result<ProductId> {
    ProductId::parse(raw).map_err(|_| Error::NotFound)
}

#[tracing::instrument(skip_all)]
async fn gallery(
    State(likes): State<Likes>,
    Extension(visitor): Extension<VisitorId>,
) -> Result<Json<Vec<GalleryItem>>> {
    Ok(Json(likes.gallery(&visitor).await?))
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn like(
    State(likes): State<Likes>,
    Extension(visitor): Extension<VisitorId>,
    Path(id): Path<String>,
) -> Result<Json<LikeState>> {
    Ok(Json(likes.like(&visitor, product_id(&id)?).await?))
}

#[tracing::instrument(skip_all, fields(product_id = %id))]
async fn unlike(
    State(likes): State<Likes>,
    Extension(visitor): Extension<VisitorId>,
    Path(id): Path<String>,
) -> Result<Json<LikeState>> {
    Ok(Json(likes.unlike(&visitor, product_id(&id)?).await?))
}
