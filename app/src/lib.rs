//! live-gallery's user interface: a Leptos app rendered on the server and hydrated in the browser.
//!
//! Layout:
//! - `domain`: validated input types (`ProductTitle`, `ImageUrl`, `ProductId`) shared with the server
//! - `wire`: what crosses the wire (`Product`, `AppError`)
//! - `paging`: the gallery's orders and pages (`GalleryOrder`, `Cursor`, `PageRequest`)
//! - `live`: the messages pushed to browsers over `/ws` (`LiveMessage`) and the browser's
//!   connection (`Live`, `LiveIndicator`)
//! - `api`: server functions; each one authorises, parses and delegates to the `Backend`
//! - `backend` (ssr only): the trait the `server` crate implements for the pages
//! - `pages`: one module per page (`GalleryPage`, `AdminRoute`, `NotFoundPage`)
//!
//! Build with feature `ssr` for the server and `hydrate` for the browser; never both.

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod domain;
pub mod live;
pub mod pages;
pub mod paging;
pub mod wire;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, Lazy, SsrMode};
use pages::{AdminRoute, GalleryPage, NotFoundPage};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: navigation and the routed pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    live::provide_live();
    #[cfg(feature = "ssr")]
    set_content_security_policy();

    view! {
        <Title text="live-gallery"/>
        <Router>
            <header class="site-header">
                <A href="/" attr:class="brand">"live-gallery"</A>
                <nav aria-label="Main">
                    <live::LiveIndicator/>
                    <A href="/">"Gallery"</A>
                    <A href="/admin">"Admin"</A>
                </nav>
            </header>
            <main>
                <Routes fallback=NotFoundPage>
                    // Async rendering sends complete HTML: pages read and work without JavaScript.
                    <Route path=path!("") view=GalleryPage ssr=SsrMode::Async/>
                    <Route path=path!("admin") view={Lazy::<AdminRoute>::new()} ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// Sends this page's Content-Security-Policy: scripts only from this site or with this
/// response's nonce (the hydration scripts carry it), wasm compilation allowed, images from any
/// http(s) host (product images live elsewhere), nothing framing the page.
#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' http: https:; connect-src 'self'; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Entry point of the wasm bundle: attaches the app to the server-rendered page. Hydration is
/// asynchronous (on `/admin` it waits for the admin bundle); `data-hydrated` on `<body>` tells
/// tests (and curious people) that all of the page, lazily loaded parts included, is interactive.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    let Some(body) = document().body() else {
        return;
    };
    wasm_bindgen_futures::spawn_local(async move {
        leptos::mount::hydrate_from_async(body.clone(), App)
            .await
            .forget();
        let _ = body.set_attribute("data-hydrated", "true");
    });
}
