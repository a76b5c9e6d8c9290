//! The port between the UI and the services: what server functions need, implemented by the
//! `server` crate and provided as context, so no SQL or AMQP lives in `app`.

use crate::domain::{ProductDraft, ProductId, VisitorId};
use crate::paging::{GalleryPage, PageRequest};
use crate::wire::{AppError, GalleryItem, LikeState, Product};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, so `Backend` stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the pages need from the services behind them.
pub trait Backend: Send + Sync + 'static {
    /// One page of the gallery for `visitor`: products in the order asked, and whether this
    /// visitor likes each.
    fn gallery(
        &self,
        visitor: VisitorId,
        request: PageRequest,
    ) -> BoxFuture<'_, Result<GalleryPage, AppError>>;

    /// The products among `ids` the gallery shows, with the visitor's flags.
    fn chosen(
        &self,
        visitor: VisitorId,
        ids: Vec<ProductId>,
    ) -> BoxFuture<'_, Result<Vec<GalleryItem>, AppError>>;

    /// Records that `visitor` likes (`like`) or no longer likes a product.
    fn set_like(
        &self,
        visitor: VisitorId,
        id: ProductId,
        like: bool,
    ) -> BoxFuture<'_, Result<LikeState, AppError>>;

    /// Signs an administrator in: a new session's id when `token` is the administrator token
    /// (compared in constant time), `None` when it is not.
    fn sign_in(&self, token: String) -> BoxFuture<'_, Result<Option<String>, AppError>>;

    /// Whether `session` is an administrator session that has not ended.
    fn is_admin_session(&self, session: String) -> BoxFuture<'_, bool>;

    /// Ends the administrator session `session`, for every instance.
    fn sign_out(&self, session: String) -> BoxFuture<'_, Result<(), AppError>>;

    /// The catalog's products (admin view, straight from the source of truth).
    fn admin_products(&self) -> BoxFuture<'_, Result<Vec<Product>, AppError>>;

    fn create_product(&self, draft: ProductDraft) -> BoxFuture<'_, Result<Product, AppError>>;

    fn update_product(
        &self,
        id: ProductId,
        draft: ProductDraft,
    ) -> BoxFuture<'_, Result<Product, AppError>>;

    fn delete_product(&self, id: ProductId) -> BoxFuture<'_, Result<(), AppError>>;

    /// Asks the catalog for an authoritative resync; how many products it sends.
    fn resync(&self) -> BoxFuture<'_, Result<u64, AppError>>;
}

/// The backend as held in Leptos context.
#[derive(Clone)]
pub struct BackendHandle(pub Arc<dyn Backend>);

/// The backend provided by the server for this request.
pub fn backend() -> Result<Arc<dyn Backend>, AppError> {
    leptos::prelude::use_context::<BackendHandle>()
        .map(|handle| handle.0)
        .ok_or_else(|| {
            tracing::error!(
                "no Backend in context: routes must be built with leptos_routes_with_context"
            );
            AppError::Internal
        })
}
