//! The gallery's orders and pages: what `?sort=`, `?after=` and `?limit=` mean, parsed at the
//! boundary into `PageRequest`, and where a product stands in each order.

use crate::domain::{ProductId, ValidationError};
use crate::wire::GalleryItem;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// How many products a page holds when the request does not say.
pub const DEFAULT_LIMIT: usize = 48;
/// The most products one page may hold.
pub const MAX_LIMIT: usize = 200;

/// The order of the gallery, as `?sort=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GalleryOrder {
    /// The most recently added first (`?sort=newest`, the default).
    #[default]
    Newest,
    /// The most liked first, ties by id (`?sort=likes`).
    Likes,
}

impl GalleryOrder {
    /// Parses `?sort=`; absent or empty means the default.
    pub fn parse(raw: Option<&str>) -> Result<Self, ValidationError> {
        match raw.map(str::trim).unwrap_or_default() {
            "" | "newest" => Ok(Self::Newest),
            "likes" => Ok(Self::Likes),
            _ => Err(ValidationError::new("sort", "must be newest or likes")),
        }
    }

    /// The value of `?sort=` that names this order.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Likes => "likes",
        }
    }

    /// Where a product with `likes` and `id` stands: the first of two in this order is `Less`.
    pub fn compare(self, a: (i64, ProductId), b: (i64, ProductId)) -> Ordering {
        match self {
            Self::Newest => b.1.cmp(&a.1),
            Self::Likes => b.0.cmp(&a.0).then(a.1.cmp(&b.1)),
        }
    }
}

/// Where the next page starts: just after the last product of the page before, in one order.
/// Sent to clients as an opaque string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub order: GalleryOrder,
    /// The last product's count (only meaningful in `Likes`) and id.
    pub likes: i64,
    pub id: ProductId,
}

impl Cursor {
    /// The cursor just after `item` in `order`.
    pub fn after(order: GalleryOrder, likes: i64, id: ProductId) -> Self {
        let likes = if order == GalleryOrder::Likes {
            likes
        } else {
            0
        };
        Self { order, likes, id }
    }

    /// Whether a product with `likes` and `id` comes before this cursor (on a page already
    /// passed) rather than after it.
    pub fn passes(&self, likes: i64, id: ProductId) -> bool {
        self.order.compare((likes, id), (self.likes, self.id)) != Ordering::Greater
    }

    /// Parses `?after=` for `order`; a cursor of another order is refused.
    pub fn parse(raw: &str, order: GalleryOrder) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("after", "is not a cursor this gallery gave out");
        let mut parts = raw.trim().split('.');
        let kind = parts.next().ok_or_else(invalid)?;
        let number = |part: Option<&str>| part.and_then(|p| p.parse::<i64>().ok());
        let cursor = match kind {
            "n" => Self {
                order: GalleryOrder::Newest,
                likes: 0,
                id: ProductId::parse(parts.next().ok_or_else(invalid)?).map_err(|_| invalid())?,
            },
            "l" => Self {
                order: GalleryOrder::Likes,
                likes: number(parts.next()).ok_or_else(invalid)?,
                id: ProductId::parse(parts.next().ok_or_else(invalid)?).map_err(|_| invalid())?,
            },
            _ => return Err(invalid()),
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        if cursor.order != order {
            return Err(ValidationError::new(
                "after",
                "belongs to another order; start again without it",
            ));
        }
        Ok(cursor)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.order {
            GalleryOrder::Newest => write!(f, "n.{}", self.id),
            GalleryOrder::Likes => write!(f, "l.{}.{}", self.likes, self.id),
        }
    }
}

/// One page of the gallery asked for: its order, where it starts and how long it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub order: GalleryOrder,
    pub after: Option<Cursor>,
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            order: GalleryOrder::Newest,
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl PageRequest {
    /// Parses the query's `sort`, `after` and `limit` (1 to `MAX_LIMIT`).
    pub fn parse(
        sort: Option<&str>,
        after: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Self, ValidationError> {
        let order = GalleryOrder::parse(sort)?;
        let after = match after.map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(Cursor::parse(raw, order)?),
        };
        let limit = match limit.map(str::trim) {
            None | Some("") => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ValidationError::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
        };
        Ok(Self {
            order,
            after,
            limit,
        })
    }
}

/// One page of the gallery: its products in order and where the next page starts (none after
/// the last page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryPage {
    pub items: Vec<GalleryItem>,
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: i64) -> ProductId {
        ProductId::from_stored(n)
    }

    #[test]
    fn cursors_read_back_as_written_and_only_in_their_order() {
        for cursor in [
            Cursor::after(GalleryOrder::Newest, 5, id(17)),
            Cursor::after(GalleryOrder::Likes, 42, id(9)),
            Cursor::after(GalleryOrder::Likes, 0, id(1)),
        ] {
            assert_eq!(Cursor::parse(&cursor.to_string(), cursor.order), Ok(cursor));
        }
        assert!(Cursor::parse("n.17", GalleryOrder::Likes).is_err());
        for bad in [
            "", "n", "n.0", "n.x", "l.4", "l.4.5.6", "x.1", "n.-3", "l.a.1",
        ] {
            assert!(Cursor::parse(bad, GalleryOrder::Newest).is_err(), "{bad}");
            assert!(Cursor::parse(bad, GalleryOrder::Likes).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_are_parsed_with_defaults_and_bounds() {
        assert_eq!(
            PageRequest::parse(None, None, None),
            Ok(PageRequest::default())
        );
        let request = PageRequest::parse(Some("likes"), Some("l.3.4"), Some("200")).unwrap();
        assert_eq!(request.order, GalleryOrder::Likes);
        assert_eq!(request.limit, MAX_LIMIT);
        for limit in ["0", "201", "-1", "many"] {
            let err = PageRequest::parse(None, None, Some(limit)).unwrap_err();
            assert_eq!(err.field, "limit");
        }
        assert_eq!(
            PageRequest::parse(Some("oldest"), None, None)
                .unwrap_err()
                .field,
            "sort"
        );
    }

    #[test]
    fn the_orders_put_newest_or_most_liked_first_ties_by_id() {
        let mut products = vec![(3, id(1)), (5, id(2)), (3, id(3)), (0, id(4))];
        products.sort_by(|a, b| GalleryOrder::Likes.compare(*a, *b));
        assert_eq!(
            products,
            vec![(5, id(2)), (3, id(1)), (3, id(3)), (0, id(4))]
        );
        products.sort_by(|a, b| GalleryOrder::Newest.compare(*a, *b));
        assert_eq!(
            products.iter().map(|p| p.1.get()).collect::<Vec<_>>(),
            [4, 3, 2, 1]
        );
        let cursor = Cursor::after(GalleryOrder::Likes, 3, id(1));
        assert!(cursor.passes(5, id(2)) && cursor.passes(3, id(1)));
        assert!(!cursor.passes(3, id(3)) && !cursor.passes(0, id(4)));
    }
}
