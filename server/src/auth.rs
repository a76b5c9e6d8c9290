//! The administrator's credential: the configured (or generated) token, compared in constant
//! time, and the `Admin` extractor that guards the admin API.

use crate::config::Secret;
use crate::error::Error;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// The token that admin requests must present.
#[derive(Clone)]
pub struct AdminToken(Secret);

impl AdminToken {
    /// The configured token, or a random one (logged once, so the embedded run stays usable).
    pub fn from_config(configured: Option<Secret>) -> Self {
        match configured.filter(|token| !token.expose().trim().is_empty()) {
            Some(token) => Self(token),
            None => {
                let token = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                tracing::warn!(admin_token = %token, "ADMIN_TOKEN is not set: generated one for this run");
                Self(Secret::new(token))
            }
        }
    }

    /// The token itself, for calls this service makes to the catalog.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Whether `candidate` is the token. Takes the same time wherever the first difference is.
    pub fn matches(&self, candidate: &str) -> bool {
        let expected = self.0.expose().as_bytes();
        let candidate = candidate.as_bytes();
        let mut difference = u8::from(expected.len() != candidate.len());
        for (index, byte) in expected.iter().enumerate() {
            difference |= byte ^ candidate.get(index).copied().unwrap_or(!byte);
        }
        difference == 0
    }
}

/// Proof that a request carried `Authorization: Bearer <ADMIN_TOKEN>`. Put it first in a
/// handler's arguments so nothing else runs for an unauthorised request.
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    AdminToken: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = AdminToken::from_ref(state);
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(candidate) if token.matches(candidate) => Ok(Admin),
            _ => Err(Error::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_matches() {
        let token = AdminToken::from_config(Some(Secret::new("s3cret-token")));
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-tokeN"));
        assert!(!token.matches("s3cret-token "));
        assert!(!token.matches("s3cret"));
        assert!(!token.matches(""));
    }

    #[test]
    fn a_missing_or_blank_token_is_replaced_by_a_long_random_one() {
        let first = AdminToken::from_config(None);
        let second = AdminToken::from_config(Some(Secret::new("  ")));
        assert_eq!(first.0.expose().len(), 64);
        assert!(!first.matches(second.0.expose()));
        assert!(!first.matches(""));
    }
}
