//! The catalog service (role `catalog`): the products and their like counts, the admin REST API
//! and the product events it publishes through its outbox.

mod routes;
mod store;

pub use routes::{router, CatalogState};
pub use store::CatalogStore;
