//! The catalog service (role `catalog`): the products and their like counts, the admin REST API
//! and the product events it publishes through its outbox.

mod likes;
mod routes;
mod store;

pub use likes::{LikesHandler, ResyncHandler};
pub use routes::{router, CatalogState};
pub use store::CatalogStore;
