//! Validated domain types shared by the browser and the server: raw input becomes one of these at
//! the boundary, and inner code only ever sees the parsed form.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a piece of user input was refused, naming the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The input field, as named in forms and JSON bodies (`title`, `image`, …).
    pub field: String,
    /// A sentence a person can act on.
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A product's identifier as assigned by the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(i64);

impl ProductId {
    /// Parses an id from a path segment or form field: a positive integer.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(Self(id)),
            _ => Err(ValidationError::new(
                "id",
                "must be a positive whole number",
            )),
        }
    }

    /// Wraps an id that came from our own storage, where it is known to be valid.
    pub fn from_stored(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An anonymous visitor, identified by the random id in their signed cookie (a UUID in its
/// hyphenated form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VisitorId(String);

impl VisitorId {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let well_formed = raw.len() == 36
            && raw.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
            });
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new("visitor", "is not a visitor id"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VisitorId {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<VisitorId> for String {
    fn from(id: VisitorId) -> Self {
        id.0
    }
}

/// Longest title accepted, in characters.
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest image URL accepted, in characters.
pub const IMAGE_URL_MAX_CHARS: usize = 2_000;

/// A product title: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductTitle(String);

impl ProductTitle {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let title = raw.trim();
        let chars = title.chars().count();
        if chars == 0 {
            return Err(ValidationError::new("title", "must not be empty"));
        }
        if chars > TITLE_MAX_CHARS {
            return Err(ValidationError::new(
                "title",
                format!("must be at most {TITLE_MAX_CHARS} characters"),
            ));
        }
        if title.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "title",
                "must not contain control characters",
            ));
        }
        Ok(Self(title.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProductTitle {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ProductTitle> for String {
    fn from(title: ProductTitle) -> Self {
        title.0
    }
}

/// An image address: an absolute `http` or `https` URL with a host, at most 2,000 characters.
/// Every other scheme (`javascript:`, `data:`, `file:`…) and every relative reference is refused,
/// so a stored image can never run script or reach the local disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageUrl(String);

impl ImageUrl {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ValidationError::new("image", "must not be empty"));
        }
        if raw.chars().count() > IMAGE_URL_MAX_CHARS {
            return Err(ValidationError::new(
                "image",
                format!("must be at most {IMAGE_URL_MAX_CHARS} characters"),
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"<>\\^`{|}".contains(c))
        {
            return Err(ValidationError::new(
                "image",
                "must not contain spaces, quotes or angle brackets (percent-encode them)",
            ));
        }
        let not_web =
            || ValidationError::new("image", "must be an absolute http:// or https:// URL");
        let (scheme, rest) = raw.split_once("://").ok_or_else(not_web)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(not_web());
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(ValidationError::new(
                "image",
                "must not contain a user name or password",
            ));
        }
        let (host, port) = if authority.starts_with('[') {
            // An IPv6 literal: `[::1]` or `[::1]:8080`.
            let end = authority.find(']').ok_or_else(not_web)?;
            let after = &authority[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(not_web()),
            };
            (&authority[..=end], port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
        if host.is_empty() || !port_ok {
            return Err(not_web());
        }
        Ok(Self(format!("{scheme}://{rest}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImageUrl {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ImageUrl> for String {
    fn from(url: ImageUrl) -> Self {
        url.0
    }
}

/// What an administrator submits to create or replace a product, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDraft {
    pub title: ProductTitle,
    pub image: ImageUrl,
}

impl ProductDraft {
    /// Parses both fields; the first invalid one is reported.
    pub fn parse(title: &str, image: &str) -> Result<Self, ValidationError> {
        Ok(Self {
            title: ProductTitle::parse(title)?,
            image: ImageUrl::parse(image)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_trimmed() {
        assert_eq!(
            ProductTitle::parse("  Sunset  ").unwrap().as_str(),
            "Sunset"
        );
    }

    #[test]
    fn an_empty_or_blank_title_is_refused() {
        for raw in ["", "   ", "\t\n"] {
            assert_eq!(ProductTitle::parse(raw).unwrap_err().field, "title");
        }
    }

    #[test]
    fn a_title_of_200_characters_is_accepted_and_201_refused() {
        assert!(ProductTitle::parse(&"é".repeat(200)).is_ok());
        assert!(ProductTitle::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn a_title_with_control_characters_is_refused() {
        assert!(ProductTitle::parse("bell\u{7}").is_err());
        assert!(ProductTitle::parse("line\nbreak").is_err());
    }

    #[test]
    fn markup_in_a_title_is_kept_as_text() {
        let title = ProductTitle::parse("<script>alert(1)</script>").unwrap();
        assert_eq!(title.as_str(), "<script>alert(1)</script>");
    }

    #[test]
    fn http_and_https_image_urls_are_accepted() {
        for raw in [
            "http://example.com/a.png",
            "https://img.example.org/x/y.jpg?w=10",
            "HTTPS://example.com:8443/a.png",
            "http://[::1]:8080/a.png",
        ] {
            assert!(ImageUrl::parse(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn other_schemes_and_relative_urls_are_refused() {
        for raw in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:image/png;base64,AAAA",
            "file:///etc/passwd",
            "ftp://example.com/a.png",
            "/relative/path.png",
            "example.com/a.png",
            "https://",
            "http://user:pass@example.com/a.png",
            "https://example.com:99999/a.png",
            "https://exa mple.com/a.png",
            "https://example.com/\"onerror=\"alert(1)",
        ] {
            let err = ImageUrl::parse(raw).unwrap_err();
            assert_eq!(err.field, "image", "{raw}");
        }
    }

    #[test]
    fn an_overlong_image_url_is_refused() {
        let raw = format!("https://example.com/{}", "a".repeat(IMAGE_URL_MAX_CHARS));
        assert!(ImageUrl::parse(&raw).is_err());
    }

    #[test]
    fn product_ids_must_be_positive_integers() {
        assert_eq!(ProductId::parse("7").unwrap().get(), 7);
        for raw in ["0", "-1", "x", "", "1.5"] {
            assert!(ProductId::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn visitor_ids_are_lowercase_hyphenated_uuids() {
        assert!(VisitorId::parse("6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b").is_ok());
        for raw in [
            "",
            "6f1c1e8e8f1e4c1e9a518e0b8f1f2a3b",
            "6F1C1E8E-8F1E-4C1E-9A51-8E0B8F1F2A3B",
            "6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3g",
        ] {
            assert!(VisitorId::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn deserialising_runs_the_same_rules() {
        let bad: Result<ImageUrl, _> = serde_json::from_str("\"javascript:alert(1)\"");
        assert!(bad.is_err());
        let good: ProductTitle = serde_json::from_str("\" Lake \"").unwrap();
        assert_eq!(good.as_str(), "Lake");
    }
}
