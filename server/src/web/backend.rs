//! The `Backend` the pages' server functions call, backed by the web database.

use super::read_model;
use crate::auth::AdminToken;
use crate::db::Database;
use crate::error::Error;
use app::backend::{Backend, BoxFuture};
use app::wire::{AppError, Product};

/// The web role's implementation of the UI's port.
pub struct WebBackend {
    pub db: Database,
    pub admin_token: AdminToken,
}

impl Backend for WebBackend {
    fn list_products(&self) -> BoxFuture<'_, Result<Vec<Product>, AppError>> {
        Box::pin(async move { Ok(read_model::list(&self.db).await.map_err(Error::from)?) })
    }

    fn is_admin_token(&self, candidate: &str) -> bool {
        self.admin_token.matches(candidate)
    }
}
