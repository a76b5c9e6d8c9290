//! The `Backend` the pages' server functions call: the read model for the gallery, the catalog
//! for admin commands.

use super::{read_model, CatalogClient};
use crate::auth::AdminToken;
use crate::db::Database;
use crate::error::Error;
use app::backend::{Backend, BoxFuture};
use app::domain::{ProductDraft, ProductId};
use app::wire::{AppError, Product};

/// The web role's implementation of the UI's port.
pub struct WebBackend {
    pub db: Database,
    pub admin_token: AdminToken,
    pub catalog: CatalogClient,
}

impl Backend for WebBackend {
    fn list_products(&self) -> BoxFuture<'_, Result<Vec<Product>, AppError>> {
        Box::pin(async move { Ok(read_model::list(&self.db).await.map_err(Error::from)?) })
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
}
