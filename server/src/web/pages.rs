//! The Leptos side of the web service as an axum router: server-rendered pages, server
//! functions and the site's files, each request under a reactive owner of its own.

use app::backend::BackendHandle;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos::reactive::computed::ScopedFuture;
use leptos::reactive::owner::Owner;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use std::sync::OnceLock;

/// The pages and server functions, with the web backend in their context; anything else is a
/// file of the site or the not-found page.
pub fn router(options: LeptosOptions, backend: BackendHandle) -> Router {
    let routes = route_list();
    Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            move || provide_context(backend.clone()),
            {
                let options = options.clone();
                move || app::shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(app::shell))
        .with_state(options)
        .layer(axum::middleware::from_fn(own_reactive_owner))
}

/// The app's routes, worked out once per process. Working them out runs the app with resource
/// loading suppressed through a flag global to the process: a page of another router rendered
/// meanwhile (several web roles in one process, as in the tests) would wait for its resource
/// forever. Once per process, every router waits for the list before it serves anything.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// Middleware: runs the request under a fresh root reactive owner. Some Leptos handlers (the
/// site's files, server functions) create a child of whatever owner is current on the worker
/// thread, which can be the root of another request's page still being rendered; a file served
/// that way takes that page's pending response headers (its Content-Security-Policy, its
/// cookies) for itself.
async fn own_reactive_owner(request: Request, next: Next) -> Response {
    ScopedFuture {
        owner: Owner::new_root(None),
        observer: None,
        fut: next.run(request),
    }
    .await
}
