//! The page for unknown addresses; answers 404 when rendered on the server.

use leptos::prelude::*;

#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1>"Page not found"</h1>
        <p>"There is nothing at this address. " <a href="/">"Back to the gallery"</a></p>
    }
}
