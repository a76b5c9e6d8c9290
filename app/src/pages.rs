//! The routed pages, one module each.

mod admin;
pub mod gallery;
mod not_found;

pub use admin::AdminPage;
pub use gallery::GalleryPage;
pub use not_found::NotFoundPage;
