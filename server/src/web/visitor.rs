//! Anonymous visitor identity: a random id in a signed, HttpOnly, SameSite=Lax cookie (`Secure`
//! when the site is HTTPS), issued on the first request without a valid one. The signing key lives in the web database, so every web
//! instance on that database and every restart accept the same cookies. A cookie whose signature
//! does not match is ignored: its bearer becomes a new visitor.

use crate::db::sql::text;
use crate::db::{Database, Sql};
use crate::edge::limits::{self, RateLimiter};
use app::api::session::CookiePolicy;
use app::domain::VisitorId;
use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt::Write;
use std::sync::Arc;

/// Name of the visitor cookie.
pub const VISITOR_COOKIE: &str = "lg_visitor";
/// How long a visitor cookie lives, in seconds (a year).
const MAX_AGE: u32 = 365 * 24 * 3600;

/// Stores a fresh signing key unless the database has one already.
const KEEP_FIRST_KEY: Sql = Sql::each(
    "insert into web_setting (name, value) values ('visitor_cookie_key', $1) \
     on conflict (name) do nothing",
    "insert into web_setting (name, value) values ('visitor_cookie_key', $1) \
     on conflict (name) do nothing",
    "insert ignore into web_setting (name, value) values ('visitor_cookie_key', ?)",
);

/// Signs and checks visitor cookies.
pub struct VisitorKeys {
    key: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

impl VisitorKeys {
    /// The database's signing key, made on first use (instances racing agree on one).
    pub async fn load_or_create(db: &Database) -> Result<Arc<Self>, sqlx::Error> {
        let fresh = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        sqlx::query(db.sql(&KEEP_FIRST_KEY))
            .bind(fresh)
            .execute(db.writer())
            .await?;
        let row = sqlx::query("select value from web_setting where name = 'visitor_cookie_key'")
            .fetch_one(db.pool())
            .await?;
        let key = text(&row, "value")?;
        Ok(Arc::new(Self {
            key: key.into_bytes(),
        }))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// `id.signature`, the cookie's value.
    pub fn cookie_value(&self, visitor: &VisitorId) -> String {
        let mut mac = self.mac();
        mac.update(visitor.as_str().as_bytes());
        format!("{}.{}", visitor.as_str(), hex(&mac.finalize().into_bytes()))
    }

    /// The visitor a cookie value names, if its signature is ours.
    pub fn verify(&self, value: &str) -> Option<VisitorId> {
        let (id, signature) = value.split_once('.')?;
        let visitor = VisitorId::parse(id).ok()?;
        let signature: Vec<u8> = (0..signature.len())
            .step_by(2)
            .map(|i| {
                signature
                    .get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<_>>()?;
        let mut mac = self.mac();
        mac.update(visitor.as_str().as_bytes());
        mac.verify_slice(&signature).ok()?;
        Some(visitor)
    }
}

/// What the visitor middleware needs.
#[derive(Clone)]
pub struct Visitors {
    pub keys: Arc<VisitorKeys>,
    /// New visitors per address.
    pub limiter: Arc<RateLimiter>,
}

/// Middleware: puts the request's `VisitorId` in its extensions, issuing a cookie for a new one
/// (within the address's allowance of new visitors; beyond it, 429).
pub async fn identify(
    State(visitors): State<Visitors>,
    mut request: Request,
    next: Next,
) -> Response {
    let keys = &visitors.keys;
    let known = app::api::session::cookie_in(request.headers(), VISITOR_COOKIE)
        .and_then(|value| keys.verify(value));
    let (visitor, is_new) = match known {
        Some(visitor) => (visitor, false),
        None => {
            if !limits::admit(&visitors.limiter, &request, "new-visitor") {
                return limits::too_many();
            }
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            (VisitorId::parse(&id).expect("a UUID is a visitor id"), true)
        }
    };
    let secure = request
        .extensions()
        .get::<CookiePolicy>()
        .is_some_and(|policy| policy.secure);
    request.extensions_mut().insert(visitor.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if is_new {
        let cookie = format!(
            "{VISITOR_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={MAX_AGE}{}",
            keys.cookie_value(&visitor),
            if secure { "; Secure" } else { "" }
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    // Pages and JSON show this visitor's likes (and a new visitor's answer carries its cookie):
    // no shared cache may keep them.
    if is_new || is_personal(headers) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    }
    response
}

/// Whether an answer is a page or JSON, which show per-visitor state (files do not).
fn is_personal(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.starts_with("text/html") || value.starts_with("application/json")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(key: &str) -> VisitorKeys {
        VisitorKeys {
            key: key.as_bytes().to_vec(),
        }
    }

    fn visitor() -> VisitorId {
        VisitorId::parse("6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b").unwrap()
    }

    #[test]
    fn a_signed_cookie_names_its_visitor() {
        let keys = keys("k1");
        assert_eq!(keys.verify(&keys.cookie_value(&visitor())), Some(visitor()));
    }

    #[test]
    fn a_tampered_or_foreign_cookie_is_rejected() {
        let value = keys("k1").cookie_value(&visitor());
        assert_eq!(keys("k2").verify(&value), None, "signed with another key");
        let other = VisitorId::parse("00000000-8f1e-4c1e-9a51-8e0b8f1f2a3b").unwrap();
        let swapped = value.replacen(visitor().as_str(), other.as_str(), 1);
        assert_eq!(
            keys("k1").verify(&swapped),
            None,
            "id changed, signature kept"
        );
        for junk in [
            "",
            ".",
            "abc",
            "6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b",
            "6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b.zz",
        ] {
            assert_eq!(keys("k1").verify(junk), None, "{junk}");
        }
    }
}
