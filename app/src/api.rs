//! Server functions: the browser's way into the services. Each one is a public HTTP endpoint, so
//! admin ones authorise on their first line; then they parse input and delegate to the `Backend`.

use crate::wire::{AppError, Product};
use leptos::prelude::*;

/// Name of the cookie that holds the administrator's session.
pub const ADMIN_COOKIE: &str = "lg_admin";

/// Where a refused sign-in without JavaScript lands.
pub const SIGN_IN_FAILED_PATH: &str = "/admin?sign_in=failed";

/// Products in the gallery, ordered by id.
#[server(endpoint = "list_products")]
pub async fn list_products() -> Result<Vec<Product>, AppError> {
    crate::backend::backend()?.list_products().await
}

/// Whether this browser holds an administrator session.
#[server(endpoint = "admin_session")]
pub async fn admin_session() -> Result<bool, AppError> {
    Ok(session::is_admin().await)
}

/// Checks the administrator token and, if it is right, keeps it in an HttpOnly, SameSite=Strict
/// cookie so the page never has to hold it again.
#[server(endpoint = "sign_in")]
pub async fn sign_in(token: String) -> Result<(), AppError> {
    let backend = crate::backend::backend()?;
    if !backend.is_admin_token(token.trim()) {
        tracing::info!("admin sign-in refused");
        if session::is_plain_form_post() {
            // Without JavaScript the browser shows whatever we answer: send it back to the
            // form, which explains what went wrong.
            leptos_axum::redirect(SIGN_IN_FAILED_PATH);
        } else {
            session::set_status(http::StatusCode::UNAUTHORIZED);
        }
        return Err(AppError::Unauthorized);
    }
    session::set_cookie(&format!(
        "{ADMIN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200",
        token.trim()
    ));
    leptos_axum::redirect("/admin");
    Ok(())
}

/// Ends the administrator session.
#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    session::set_cookie(&format!(
        "{ADMIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ));
    leptos_axum::redirect("/admin");
    Ok(())
}

/// Reading and writing the session cookie of the current request.
#[cfg(feature = "ssr")]
pub(crate) mod session {
    use super::ADMIN_COOKIE;
    use http::header::{HeaderValue, COOKIE, SET_COOKIE};
    use leptos::prelude::*;

    /// The value of cookie `name` in the current request, if any.
    pub(crate) fn cookie(name: &str) -> Option<String> {
        let parts = use_context::<http::request::Parts>()?;
        parts
            .headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    /// Whether the request carries the administrator token in its session cookie.
    pub(crate) async fn is_admin() -> bool {
        let Some(token) = cookie(ADMIN_COOKIE) else {
            return false;
        };
        crate::backend::backend().is_ok_and(|backend| backend.is_admin_token(&token))
    }

    /// Whether the request is a browser's form post without JavaScript (it accepts HTML).
    pub(crate) fn is_plain_form_post() -> bool {
        use_context::<http::request::Parts>().is_some_and(|parts| {
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|accept| accept.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"))
        })
    }

    pub(crate) fn set_status(status: http::StatusCode) {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
    }

    pub(crate) fn set_cookie(cookie: &str) {
        if let (Some(response), Ok(value)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            HeaderValue::from_str(cookie),
        ) {
            response.append_header(SET_COOKIE, value);
        }
    }
}
