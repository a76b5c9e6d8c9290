//! The site's files (`/pkg/…` and everything from `public/`), served beside the pages but
//! outside the visitor middleware: a request for the stylesheet makes no visitor and sets no
//! cookie, so shared caches may keep it. Precompressed `.br`/`.gz` copies are preferred when the
//! build wrote them. Files whose names carry a hash of their content (the build's `/pkg/…`) may
//! be kept for a year without asking again (`immutable`); the others (`public/`, whose names do
//! not change with the content) carry `Last-Modified` and are revalidated (`no-cache`).

use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::Router;
use std::path::Path;
use tower::Layer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// For files whose names change with their content.
const KEEP_FOR_A_YEAR: &str = "public, max-age=31536000, immutable";
/// For the others: kept, but asked about again before each use.
const REVALIDATE: &str = "public, no-cache";

/// A route for each entry at the top of `site_root`: a directory's files under its name, a
/// file at its own path. `pkg_dir` names the build's directory (script, bundle, stylesheet),
/// whose file names carry hashes when `hashed`. The pages router answers every other path.
pub fn router(site_root: &Path, pkg_dir: &str, hashed: bool) -> Router {
    let mut router = Router::new();
    let Ok(entries) = std::fs::read_dir(site_root) else {
        tracing::warn!(site_root = %site_root.display(), "the site's files are missing: run `cargo leptos build`");
        return router;
    };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = entry.path();
        if path.is_dir() {
            let files = ServeDir::new(&path).precompressed_br().precompressed_gzip();
            let caching = if hashed && name == pkg_dir {
                KEEP_FOR_A_YEAR
            } else {
                REVALIDATE
            };
            let files = SetResponseHeaderLayer::if_not_present(
                CACHE_CONTROL,
                HeaderValue::from_static(caching),
            )
            .layer(files);
            router = router.nest_service(&format!("/{name}"), files);
        } else if !name.ends_with(".br") && !name.ends_with(".gz") {
            let file = ServeFile::new(&path)
                .precompressed_br()
                .precompressed_gzip();
            router = router.route_service(&format!("/{name}"), file);
        }
    }
    router.layer(SetResponseHeaderLayer::if_not_present(
        CACHE_CONTROL,
        HeaderValue::from_static(REVALIDATE),
    ))
}
