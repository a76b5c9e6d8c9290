//! The web service (role `web`): the Leptos pages (`pages`) and their backend, visitors and
//! their likes and the like counts it alone owns (`likes`, `counts`), the read model of the
//! catalog's products and the in-memory gallery fed from both (`gallery`), the administrators'
//! sessions and the client it uses for admin commands, and the site's files (`files`).

pub mod admin_sessions;
mod backend;
mod catalog_client;
pub mod counts;
pub mod files;
pub mod gallery;
mod likes;
pub mod pages;
pub mod read_model;
mod routes;
pub mod visitor;

pub use admin_sessions::AdminSessions;
pub use backend::WebBackend;
pub use catalog_client::CatalogClient;
pub use gallery::{Gallery, GalleryHandler};
pub use likes::Likes;
pub use read_model::ReadModelHandler;
pub use routes::router;
pub use visitor::VisitorKeys;
