//! Server functions: the browser's way into the services. Each one is a public HTTP endpoint, so
//! admin ones authorise on their first line; then they parse input and delegate to the `Backend`.

#[cfg(feature = "ssr")]
use crate::domain::{ProductDraft, ProductId};
use crate::paging::GalleryPage;
#[cfg(feature = "ssr")]
use crate::paging::PageRequest;
use crate::wire::{AppError, GalleryItem, LikeState, Product};
use leptos::prelude::*;

/// Name of the cookie that holds the administrator's session id on a plain-HTTP site.
pub const ADMIN_COOKIE: &str = "lg_admin";

/// Its name on an HTTPS site: with the `__Host-` prefix a browser keeps it only when it is
/// `Secure`, for the whole site and this host alone (no `Domain`), so a sibling subdomain
/// cannot plant or overwrite it.
pub const SECURE_ADMIN_COOKIE: &str = "__Host-lg_admin";

/// How long an administrator session lasts, in seconds (12 hours).
pub const ADMIN_SESSION_SECONDS: u32 = 12 * 3600;

/// Where a refused sign-in without JavaScript lands.
pub const SIGN_IN_FAILED_PATH: &str = "/admin?sign_in=failed";

/// One page of the gallery for this visitor, in the order `sort` names (`newest` or `likes`),
/// starting after the cursor `after`; whether they like each product.
#[server(endpoint = "list_products")]
pub async fn list_products(
    sort: Option<String>,
    after: Option<String>,
) -> Result<GalleryPage, AppError> {
    let visitor = session::visitor()?;
    let request = PageRequest::parse(sort.as_deref(), after.as_deref(), None)?;
    crate::backend::backend()?.gallery(visitor, request).await
}

/// The products among `ids` (comma-separated, at most `MAX_LIMIT`) that the gallery shows: a
/// page that learns of a product it has not loaded yet fetches it this way.
#[server(endpoint = "chosen_products")]
pub async fn chosen_products(ids: String) -> Result<Vec<GalleryItem>, AppError> {
    let visitor = session::visitor()?;
    let ids = ids
        .split(',')
        .filter(|raw| !raw.trim().is_empty())
        .map(ProductId::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > crate::paging::MAX_LIMIT {
        return Err(crate::domain::ValidationError::new(
            "ids",
            format!("at most {} at once", crate::paging::MAX_LIMIT),
        )
        .into());
    }
    crate::backend::backend()?.chosen(visitor, ids).await
}

/// This visitor likes (`like = true`) or stops liking a product. Liking twice is refused.
#[server(endpoint = "set_like")]
pub async fn set_like(id: String, like: bool) -> Result<LikeState, AppError> {
    let back = session::gallery_back();
    let back = back.as_str();
    let visitor = session::visitor()?;
    let id = ProductId::parse(&id).map_err(|err| session::fail(back, err.into()))?;
    let state = crate::backend::backend()?
        .set_like(visitor, id, like)
        .await
        .map_err(|err| session::fail(back, err))?;
    session::done(back);
    Ok(state)
}

/// Whether this browser holds an administrator session.
#[server(endpoint = "admin_session")]
pub async fn admin_session() -> Result<bool, AppError> {
    Ok(session::is_admin().await)
}

/// Checks the administrator token and, if it is right, starts a session whose random id goes in
/// an HttpOnly, SameSite=Strict cookie: the token itself is never kept by the browser.
#[server(endpoint = "sign_in")]
pub async fn sign_in(token: String) -> Result<(), AppError> {
    let back = "/admin";
    let session = crate::backend::backend()?
        .sign_in(token.trim().to_owned())
        .await
        .map_err(|err| session::fail(back, err))?;
    let Some(session) = session else {
        tracing::info!("admin sign-in refused");
        if session::is_plain_form_post() {
            // Without JavaScript the browser shows whatever we answer: send it back to the
            // form, which explains what went wrong.
            leptos_axum::redirect(SIGN_IN_FAILED_PATH);
        } else {
            session::set_status(http::StatusCode::UNAUTHORIZED);
        }
        return Err(AppError::Unauthorized);
    };
    session::set_cookie(&session::admin_cookie(&session, ADMIN_SESSION_SECONDS));
    leptos_axum::redirect(back);
    Ok(())
}

/// Ends the administrator session: on the server, so a copy of the cookie signs nobody in.
#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    let back = "/admin";
    session::set_cookie(&session::admin_cookie("", 0));
    if let Some(session) = session::cookie(session::admin_cookie_name()) {
        crate::backend::backend()?
            .sign_out(session)
            .await
            .map_err(|err| session::fail(back, err))?;
    }
    leptos_axum::redirect(back);
    Ok(())
}

/// The catalog's products, for the admin table.
#[server(endpoint = "admin_products")]
pub async fn admin_products() -> Result<Vec<Product>, AppError> {
    let backend = crate::backend::backend()?;
    session::require_admin("/admin").await?;
    backend.admin_products().await
}

/// Creates a product from the admin form.
#[server(endpoint = "create_product")]
pub async fn create_product(title: String, image: String) -> Result<Product, AppError> {
    let back = "/admin";
    let backend = crate::backend::backend()?;
    session::require_admin(back).await?;
    let draft =
        ProductDraft::parse(&title, &image).map_err(|err| session::fail(back, err.into()))?;
    let created = backend
        .create_product(draft)
        .await
        .map_err(|err| session::fail(back, err))?;
    session::done(back);
    Ok(created)
}

/// Replaces a product's title and image.
#[server(endpoint = "update_product")]
pub async fn update_product(id: String, title: String, image: String) -> Result<Product, AppError> {
    let back = format!("/admin?edit={}", session::query_value(&id));
    let backend = crate::backend::backend()?;
    session::require_admin(&back).await?;
    let id = ProductId::parse(&id).map_err(|err| session::fail(&back, err.into()))?;
    let draft =
        ProductDraft::parse(&title, &image).map_err(|err| session::fail(&back, err.into()))?;
    let updated = backend
        .update_product(id, draft)
        .await
        .map_err(|err| session::fail(&back, err))?;
    session::done("/admin");
    Ok(updated)
}

/// Deletes a product (the page asks for confirmation first).
#[server(endpoint = "delete_product")]
pub async fn delete_product(id: String) -> Result<(), AppError> {
    let back = format!("/admin?delete={}", session::query_value(&id));
    let backend = crate::backend::backend()?;
    session::require_admin(&back).await?;
    let id = ProductId::parse(&id).map_err(|err| session::fail(&back, err.into()))?;
    backend
        .delete_product(id)
        .await
        .map_err(|err| session::fail(&back, err))?;
    session::done("/admin");
    Ok(())
}

/// Asks the catalog for an authoritative resync: every web read model and gallery ends with
/// exactly the catalog's products. Returns how many products it sends.
#[server(endpoint = "resync_gallery")]
pub async fn resync_gallery() -> Result<u64, AppError> {
    let back = "/admin";
    let backend = crate::backend::backend()?;
    session::require_admin(back).await?;
    let products = backend
        .resync()
        .await
        .map_err(|err| session::fail(back, err))?;
    session::done(&format!("/admin?resynced={products}"));
    Ok(products)
}

/// Reading and writing the session cookie of the current request.
#[cfg(feature = "ssr")]
pub mod session {
    use super::{ADMIN_COOKIE, SECURE_ADMIN_COOKIE};
    use crate::wire::AppError;
    use http::header::{HeaderValue, COOKIE, SET_COOKIE};
    use leptos::prelude::*;

    /// How the current request's cookies are set: `Secure` when the site is served over HTTPS.
    /// The server's edge puts it in each request's extensions.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct CookiePolicy {
        pub secure: bool,
    }

    /// The value of cookie `name` in `headers`, if any. The server's middleware uses it too.
    pub fn cookie_in<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// The value of cookie `name` in the current request, if any.
    pub(crate) fn cookie(name: &str) -> Option<String> {
        let parts = use_context::<http::request::Parts>()?;
        cookie_in(&parts.headers, name).map(str::to_owned)
    }

    /// Whether the current request came to the site over HTTPS.
    fn secure() -> bool {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<CookiePolicy>().copied())
            .is_some_and(|policy| policy.secure)
    }

    /// The administrator cookie's name on this site.
    pub(crate) fn admin_cookie_name() -> &'static str {
        if secure() {
            SECURE_ADMIN_COOKIE
        } else {
            ADMIN_COOKIE
        }
    }

    /// The `Set-Cookie` value that gives the browser session `value` for `max_age` seconds.
    pub(crate) fn admin_cookie(value: &str, max_age: u32) -> String {
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            admin_cookie_name(),
            if secure() { "; Secure" } else { "" }
        )
    }

    /// Whether the request carries an administrator session that has not ended.
    pub(crate) async fn is_admin() -> bool {
        let Some(session) = cookie(admin_cookie_name()) else {
            return false;
        };
        match crate::backend::backend() {
            Ok(backend) => backend.is_admin_session(session).await,
            Err(_) => false,
        }
    }

    /// The visitor of this request, identified by the web role's cookie middleware.
    pub(crate) fn visitor() -> Result<crate::domain::VisitorId, AppError> {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::domain::VisitorId>().cloned())
            .ok_or_else(|| {
                tracing::error!(
                    "no visitor on the request: the visitor middleware must wrap the pages"
                );
                AppError::Internal
            })
    }

    /// Refuses the call unless the request carries the administrator session.
    pub(crate) async fn require_admin(back: &str) -> Result<(), AppError> {
        if is_admin().await {
            Ok(())
        } else {
            Err(fail(back, AppError::Unauthorized))
        }
    }

    /// Reports `err`: a script gets the error and its status; a form posted without
    /// JavaScript is sent back to `back` with the error in the query, where the page shows it
    /// next to the field.
    pub(crate) fn fail(back: &str, err: AppError) -> AppError {
        if is_plain_form_post() {
            let (field, reason) = match &err {
                AppError::Validation(invalid) => (invalid.field.as_str(), invalid.reason.clone()),
                other => ("form", other.to_string()),
            };
            let separator = if back.contains('?') { '&' } else { '?' };
            leptos_axum::redirect(&format!(
                "{back}{separator}field={}&reason={}",
                query_value(field),
                query_value(&reason)
            ));
        } else {
            set_status(match err {
                AppError::Validation(_) => http::StatusCode::UNPROCESSABLE_ENTITY,
                AppError::NotFound => http::StatusCode::NOT_FOUND,
                AppError::Conflict(_) => http::StatusCode::CONFLICT,
                AppError::Unauthorized => http::StatusCode::UNAUTHORIZED,
                AppError::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
                AppError::Transport(_) => http::StatusCode::BAD_REQUEST,
                AppError::Internal => http::StatusCode::INTERNAL_SERVER_ERROR,
            });
        }
        err
    }

    /// After a change made without JavaScript, shows the page at `back` again.
    pub(crate) fn done(back: &str) {
        if is_plain_form_post() {
            leptos_axum::redirect(back);
        }
    }

    /// The gallery page a form was posted from, as its path and query on this site (only its
    /// `sort` and `after`), so that a visitor without JavaScript lands back on the same order and
    /// page; `/` for anything else.
    pub(crate) fn gallery_back() -> String {
        let headers = use_context::<http::request::Parts>().map(|parts| parts.headers);
        let header = |name| {
            headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let (Some(referer), Some(host)) =
            (header(http::header::REFERER), header(http::header::HOST))
        else {
            return "/".to_owned();
        };
        let path = referer
            .strip_prefix("https://")
            .or_else(|| referer.strip_prefix("http://"))
            .and_then(|rest| rest.strip_prefix(host.as_str()));
        let query = match path {
            Some("/") => return "/".to_owned(),
            Some(path) => match path.strip_prefix("/?") {
                Some(query) => query,
                None => return "/".to_owned(),
            },
            None => return "/".to_owned(),
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| matches!(pair.split('=').next(), Some("sort" | "after")))
            .collect();
        if kept.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{}", kept.join("&"))
        }
    }

    /// Percent-encodes `raw` for a query string.
    pub(crate) fn query_value(raw: &str) -> String {
        raw.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (byte as char).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect()
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
