//! The administrator's credential: the configured token (at least 32 characters), or one made
//! and kept in a file only its owner can read; compared in constant time; and the `Admin`
//! extractor that guards the admin API.

use crate::config::Secret;
use crate::error::Error;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::io::Write;
use std::path::Path;

/// Fewest characters an administrator token may have.
pub const MIN_TOKEN_LENGTH: usize = 32;

/// The token that admin requests must present.
#[derive(Clone)]
pub struct AdminToken(Secret);

impl AdminToken {
    /// A configured token: refused when shorter than `MIN_TOKEN_LENGTH`.
    pub fn configured(token: &Secret) -> Result<Self, String> {
        let token = token.expose().trim();
        if token.chars().count() < MIN_TOKEN_LENGTH {
            return Err(format!(
                "ADMIN_TOKEN has {} characters; it needs at least {MIN_TOKEN_LENGTH} (make one with `openssl rand -hex 32`)",
                token.chars().count()
            ));
        }
        Ok(Self(Secret::new(token)))
    }

    /// The token kept in `path`, made there (readable by its owner only) when the file does not
    /// exist yet, so that a process started without `ADMIN_TOKEN` stays usable and keeps its
    /// token across restarts. The token itself is never logged.
    pub fn kept_in(path: &Path) -> Result<Self, String> {
        let named = |err: std::io::Error| format!("ADMIN_TOKEN_FILE {}: {err}", path.display());
        match std::fs::read_to_string(path) {
            Ok(kept) => {
                return Self::configured(&Secret::new(kept))
                    .map_err(|err| format!("{}: {err}", path.display()))
            }
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(named(err)),
            Err(_) => {}
        }
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(named)?;
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut file = owner_only(path).map_err(named)?;
        file.write_all(token.as_bytes()).map_err(named)?;
        file.sync_all().map_err(named)?;
        tracing::warn!(
            file = %path.display(),
            "ADMIN_TOKEN is not set: made an administrator token, kept in the file (readable by its owner only)"
        );
        Ok(Self(Secret::new(token)))
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

/// A new file at `path` that only its owner may read or write.
fn owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
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

    const TOKEN: &str = "0123456789abcdef0123456789abcdef-s3cret";

    #[test]
    fn only_the_exact_token_matches() {
        let token = AdminToken::configured(&Secret::new(TOKEN)).unwrap();
        assert!(token.matches(TOKEN));
        assert!(!token.matches(&TOKEN.replace('s', "S")));
        assert!(!token.matches(&format!("{TOKEN} ")));
        assert!(!token.matches(&TOKEN[..32]));
        assert!(!token.matches(""));
    }

    #[test]
    fn a_short_token_is_refused_with_the_setting_named() {
        let err = AdminToken::configured(&Secret::new("change-me"))
            .err()
            .unwrap();
        assert!(err.contains("ADMIN_TOKEN has 9 characters"), "{err}");
        assert!(AdminToken::configured(&Secret::new(&TOKEN[..32])).is_ok());
    }

    #[test]
    fn a_made_token_is_kept_for_its_owner_only_and_found_again() {
        let dir = std::env::temp_dir().join(format!("lg-token-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("data").join("admin-token");
        let made = AdminToken::kept_in(&path).unwrap();
        assert_eq!(made.expose().len(), 64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), made.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let again = AdminToken::kept_in(&path).unwrap();
        assert!(again.matches(made.expose()), "a restart keeps the token");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
