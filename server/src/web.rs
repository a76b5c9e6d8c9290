//! The web service (role `web`): the Leptos pages and their backend, the read model of the
//! catalog's products, and the web database's outbox.

mod backend;
mod read_model;

pub use backend::WebBackend;
