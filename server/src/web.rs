//! The web service (role `web`): the Leptos pages and their backend, the read model of the
//! catalog's products, and the web database's outbox.

mod backend;
mod catalog_client;
pub mod read_model;

pub use backend::WebBackend;
pub use catalog_client::CatalogClient;
pub use read_model::ReadModelHandler;
