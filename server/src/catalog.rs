//! The catalog service (role `catalog`): the products, a copy of their like counts (which the
//! web service owns), the admin REST API and the product events it publishes through its outbox.

mod counts;
mod resync;
mod routes;
mod store;

pub use counts::CountsHandler;
pub use resync::ResyncHandler;
pub use routes::{router, CatalogState};
pub use store::CatalogStore;
