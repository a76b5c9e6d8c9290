//! live-gallery's user interface: a Leptos app rendered on the server, its islands hydrated in the
//! browser.
//!
//! Layout:
//! - `domain`: validated input types (`ProductTitle`, `ImageUrl`, `ProductId`) shared with the server
//! - `wire`: what crosses the wire (`Product`, `AppError`)
//! - `paging`: the gallery's orders and pages (`GalleryOrder`, `Cursor`, `PageRequest`)
//! - `live`: the messages pushed to browsers over `/ws` (`LiveMessage`) and the browser's
//!   connection (`Live`, `LiveIndicator`)
//! - `api`: server functions; each one authorises, parses and delegates to the `Backend`
//! - `backend` (ssr only): the trait the `server` crate implements for the pages
//! - `pages`: one module per page (`GalleryPage`, `AdminPage`, `NotFoundPage`)
//! - `islands`: how the browser tells that every interactive part of a page is ready
//!
//! Pages are rendered on the server; only islands (`#[island]`: the gallery's cards, the live
//! indicator, the admin form's enhancements) are hydrated, so the browser's bundle holds them and
//! nothing else: no client-side router, no page-level views.
//!
//! Build with feature `ssr` for the server and `hydrate` for the browser; never both.

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod domain;
pub mod islands;
pub mod live;
pub mod pages;
pub mod paging;
pub mod wire;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};
use pages::{AdminPage, GalleryPage, NotFoundPage};

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
                <HydrationScripts options islands=true/>
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
                    <Route path=path!("admin") view=AdminPage ssr=SsrMode::Async/>
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

/// Entry point of the wasm bundle, called before the islands hydrate: sets up what they share
/// (the live connection) under the root owner every island is made in.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
    let live = live::provide_live();
    islands::when_hydrated(move || live::connect(live));
}
