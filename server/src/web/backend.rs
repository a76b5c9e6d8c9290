//! The `Backend` the pages' server functions call: the in-memory gallery for the gallery, the
//! catalog for admin commands.

use super::{AdminSessions, CatalogClient, Gallery, Likes};
use crate::auth::AdminToken;
use crate::error::Error;
use app::backend::{Backend, BoxFuture};
use app::domain::{ProductDraft, ProductId, VisitorId};
use app::paging::{GalleryPage, PageRequest};
use app::wire::{AppError, GalleryItem, LikeState, Product};

/// The web role's implementation of the UI's port.
pub struct WebBackend {
    pub likes: Likes,
    pub gallery: std::sync::Arc<Gallery>,
    /// None on a web role without `ADMIN_TOKEN`: no one can sign in.
    pub admin_token: Option<AdminToken>,
    pub sessions: AdminSessions,
    pub catalog: CatalogClient,
}

impl Backend for WebBackend {
    fn gallery(
        &self,
        visitor: VisitorId,
        request: PageRequest,
    ) -> BoxFuture<'_, Result<GalleryPage, AppError>> {
        Box::pin(async move {
            let liked = self.likes.liked_by(&visitor).await?;
            Ok(self.gallery.snapshot().items(&request, &liked))
        })
    }

    fn chosen(
        &self,
        visitor: VisitorId,
        ids: Vec<ProductId>,
    ) -> BoxFuture<'_, Result<Vec<GalleryItem>, AppError>> {
        Box::pin(async move {
            let liked = self.likes.liked_by(&visitor).await?;
            Ok(self.gallery.snapshot().chosen(&ids, &liked))
        })
    }

    fn set_like(
        &self,
        visitor: VisitorId,
        id: ProductId,
        like: bool,
    ) -> BoxFuture<'_, Result<LikeState, AppError>> {
        Box::pin(async move {
            let state = if like {
                self.likes.like(&visitor, id).await?
            } else {
                self.likes.unlike(&visitor, id).await?
            };
            Ok(state)
        })
    }

    fn sign_in(&self, token: String) -> BoxFuture<'_, Result<Option<String>, AppError>> {
        Box::pin(async move {
            let Some(admin_token) = &self.admin_token else {
                tracing::warn!("admin sign-in refused: this web instance has no ADMIN_TOKEN");
                return Err(AppError::Unavailable);
            };
            if !admin_token.matches(&token) {
                return Ok(None);
            }
            Ok(Some(self.sessions.open().await.map_err(Error::from)?))
        })
    }

    fn is_admin_session(&self, session: String) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match self.sessions.is_open(&session).await {
                Ok(open) => open,
                Err(err) => {
                    tracing::error!(error = %crate::error::chain(&err), "cannot look up an admin session");
                    false
                }
            }
        })
    }

    fn sign_out(&self, session: String) -> BoxFuture<'_, Result<(), AppError>> {
        Box::pin(async move { Ok(self.sessions.close(&session).await.map_err(Error::from)?) })
    }

    fn admin_products(&self) -> BoxFuture<'_, Result<Vec<Product>, AppError>> {
        Box::pin(self.catalog.list())
    }

    fn create_product(&self, draft: ProductDraft) -> BoxFuture<'_, Result<Product, AppError>> {
        Box::pin(async move { self.catalog.create(&draft).await })
    }

    fn update_product(
        &self,
        id: ProductId,
        draft: ProductDraft,
    ) -> BoxFuture<'_, Result<Product, AppError>> {
        Box::pin(async move { self.catalog.update(id, &draft).await })
    }

    fn delete_product(&self, id: ProductId) -> BoxFuture<'_, Result<(), AppError>> {
        Box::pin(self.catalog.delete(id))
    }

    fn resync(&self) -> BoxFuture<'_, Result<u64, AppError>> {
        Box::pin(self.catalog.resync())
    }
}
