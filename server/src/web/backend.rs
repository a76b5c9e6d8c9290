//! The `Backend` the pages' server functions call: the in-memory gallery for the gallery, the
//! catalog for admin commands.

use super::{CatalogClient, Gallery, Likes};
use crate::auth::AdminToken;
use app::backend::{Backend, BoxFuture};
use app::domain::{ProductDraft, ProductId, VisitorId};
use app::paging::{GalleryPage, PageRequest};
use app::wire::{AppError, GalleryItem, LikeState, Product};

/// The web role's implementation of the UI's port.
pub struct WebBackend {
    pub likes: Likes,
    pub gallery: std::sync::Arc<Gallery>,
    pub admin_token: AdminToken,
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

    fn is_admin_token(&self, candidate: &str) -> bool {
        self.admin_token.matches(candidate)
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
