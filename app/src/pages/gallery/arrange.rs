//! What a gallery page shows, as a pure function of what it fetched and what was pushed to it
//! since: the order of the cards, each card's product, and the products it must still fetch.
//! Nothing depends on which arrived first, so a page fetched while pushes arrive ends the same.

use crate::domain::ProductId;
use crate::live::{newer, Count};
use crate::paging::{Cursor, GalleryOrder};
use crate::wire::{GalleryItem, Product};
use std::collections::HashMap;

/// Everything a page has been told, by fetching and by pushes.
pub struct Known<'a> {
    pub order: GalleryOrder,
    /// Every product fetched, page after page; a later copy of a product replaces an earlier.
    pub fetched: &'a [GalleryItem],
    /// Where the next page starts; `None` once the last page is in.
    pub next: Option<Cursor>,
    /// Products pushed since the page started: changed (`Some`) or deleted (`None`).
    pub pushed: &'a HashMap<ProductId, Option<Product>>,
    /// Counts pushed since the page started, and those this visitor's own likes returned: each
    /// wins over a fetched count unless that one is newer.
    pub counts: &'a HashMap<ProductId, Count>,
    /// Whether this visitor likes a product, as their own clicks since the page started say.
    pub liked: &'a HashMap<ProductId, bool>,
}

/// The page as shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arranged {
    /// The cards in order, each product once.
    pub order: Vec<ProductId>,
    pub items: HashMap<ProductId, GalleryItem>,
    /// Products the page learnt of only by a pushed count that belong among those shown (they
    /// climbed past the end of the pages fetched): fetch them, or they would be skipped.
    pub missing: Vec<ProductId>,
}

/// Arranges what `known` says.
pub fn arrange(known: &Known<'_>) -> Arranged {
    let belongs = |likes: i64, id: ProductId| known.next.is_none_or(|next| next.passes(likes, id));
    let count = |product: &Product| {
        newer(
            known.counts.get(&product.id),
            product.likes,
            product.likes_version,
        )
    };

    let mut items: HashMap<ProductId, GalleryItem> = HashMap::new();
    for item in known.fetched {
        items.insert(item.product.id, item.clone());
    }
    for (id, change) in known.pushed {
        match change {
            None => {
                items.remove(id);
            }
            Some(product) => match items.get_mut(id) {
                Some(item) => item.product = product.clone(),
                // A product not fetched yet joins when it belongs to the part fetched; further
                // down it comes with its page.
                None if belongs(count(product).likes, *id) => {
                    let item = GalleryItem {
                        product: product.clone(),
                        liked: false,
                    };
                    items.insert(*id, item);
                }
                None => {}
            },
        }
    }
    for item in items.values_mut() {
        let shown = count(&item.product);
        item.product.likes = shown.likes;
        item.product.likes_version = shown.version;
        if let Some(liked) = known.liked.get(&item.product.id) {
            item.liked = *liked;
        }
    }

    let mut order: Vec<ProductId> = items.keys().copied().collect();
    order.sort_unstable_by(|a, b| {
        known
            .order
            .compare((items[a].product.likes, *a), (items[b].product.likes, *b))
    });

    let mut missing: Vec<ProductId> = known
        .counts
        .iter()
        .filter(|(id, count)| {
            let deleted = matches!(known.pushed.get(id), Some(None));
            !items.contains_key(id) && !deleted && belongs(count.likes, **id)
        })
        .map(|(id, _)| *id)
        .collect();
    missing.sort_unstable();

    Arranged {
        order,
        items,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ImageUrl, ProductTitle};

    fn product(id: i64, likes: i64) -> Product {
        Product {
            id: ProductId::from_stored(id),
            title: ProductTitle::parse(&format!("Picture {id}")).unwrap(),
            image: ImageUrl::parse("https://example.com/p.jpg").unwrap(),
            likes,
            likes_version: 0,
        }
    }

    /// A tiny gallery server: counts and their versions by id, paged like the real one.
    struct Server {
        likes: Vec<i64>,
        versions: Vec<i64>,
    }

    impl Server {
        fn product(&self, id: i64) -> Product {
            let n = id as usize - 1;
            Product {
                likes_version: self.versions[n],
                ..product(id, self.likes[n])
            }
        }
    }

    impl Server {
        fn page(
            &self,
            order: GalleryOrder,
            after: Option<Cursor>,
            limit: usize,
        ) -> (Vec<GalleryItem>, Option<Cursor>) {
            let mut all: Vec<Product> = (0..self.likes.len())
                .map(|n| self.product(n as i64 + 1))
                .collect();
            all.sort_by(|a, b| order.compare((a.likes, a.id), (b.likes, b.id)));
            let rest: Vec<Product> = all
                .into_iter()
                .filter(|p| after.is_none_or(|cursor| !cursor.passes(p.likes, p.id)))
                .collect();
            let page: Vec<GalleryItem> = rest
                .iter()
                .take(limit)
                .map(|product| GalleryItem {
                    product: product.clone(),
                    liked: false,
                })
                .collect();
            let next = (rest.len() > limit).then(|| {
                let last = &page.last().unwrap().product;
                Cursor::after(order, last.likes, last.id)
            });
            (page, next)
        }
    }

    /// What a page shows that was told only counts since it started.
    fn arrange_counts(
        order: GalleryOrder,
        fetched: &[GalleryItem],
        next: Option<Cursor>,
        counts: &HashMap<ProductId, Count>,
    ) -> Arranged {
        arrange(&Known {
            order,
            fetched,
            next,
            pushed: &HashMap::new(),
            counts,
            liked: &HashMap::new(),
        })
    }

    #[test]
    fn a_scroll_under_changing_counts_shows_every_product_once() {
        // A small deterministic generator: the same storm every run.
        let mut seed = 0x2545_f491_u64;
        let mut random = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for order in [GalleryOrder::Likes, GalleryOrder::Newest] {
            for _ in 0..200 {
                let mut server = Server {
                    likes: (0..30).map(|_| random(5) as i64).collect(),
                    versions: vec![1; 30],
                };
                let mut fetched = Vec::new();
                let mut counts = HashMap::new();
                let (page, mut next) = server.page(order, None, 4);
                fetched.extend(page);
                loop {
                    // Between two pages, counts change and are pushed.
                    for _ in 0..random(6) {
                        let n = random(30) as usize;
                        let change = if random(2) == 0 { 3 } else { -1 };
                        server.likes[n] = (server.likes[n] + change).max(0);
                        server.versions[n] += 1;
                        let count = Count {
                            likes: server.likes[n],
                            version: server.versions[n],
                        };
                        counts.insert(ProductId::from_stored(n as i64 + 1), count);
                    }
                    let missing = arrange_counts(order, &fetched, next, &counts).missing;
                    // What the page fetches by id, the server answers as it is now.
                    fetched.extend(missing.iter().map(|id| GalleryItem {
                        product: server.product(id.get()),
                        liked: false,
                    }));
                    let Some(cursor) = next else { break };
                    let (page, after) = server.page(order, Some(cursor), 4);
                    fetched.extend(page);
                    next = after;
                }
                let shown = arrange_counts(order, &fetched, next, &counts);
                let mut ids: Vec<i64> = shown.order.iter().map(|id| id.get()).collect();
                let in_order = ids.clone();
                ids.sort_unstable();
                assert_eq!(
                    ids,
                    (1..=30).collect::<Vec<_>>(),
                    "each product once: {in_order:?}"
                );
                let likes: Vec<i64> = in_order
                    .iter()
                    .map(|id| shown.items[&ProductId::from_stored(*id)].product.likes)
                    .collect();
                assert_eq!(
                    likes,
                    in_order
                        .iter()
                        .map(|id| server.likes[*id as usize - 1])
                        .collect::<Vec<_>>(),
                    "the newest counts"
                );
            }
        }
    }

    #[test]
    fn pushed_products_join_replace_or_leave_whatever_came_first() {
        let fetched = vec![
            GalleryItem {
                product: product(5, 2),
                liked: true,
            },
            GalleryItem {
                product: product(3, 1),
                liked: false,
            },
        ];
        let next = Some(Cursor::after(
            GalleryOrder::Newest,
            0,
            ProductId::from_stored(3),
        ));
        let mut renamed = product(5, 2);
        renamed.title = ProductTitle::parse("Dunes").unwrap();
        let pushed = HashMap::from([
            (ProductId::from_stored(9), Some(product(9, 0))), // new: joins at the top
            (ProductId::from_stored(5), Some(renamed)),       // renamed: keeps its flag
            (ProductId::from_stored(3), None),                // deleted
            (ProductId::from_stored(1), Some(product(1, 0))), // on a later page: waits for it
        ]);
        let counts = HashMap::from([(
            ProductId::from_stored(5),
            Count {
                likes: 4,
                version: 1,
            },
        )]);
        let liked = HashMap::new();
        let shown = arrange(&Known {
            order: GalleryOrder::Newest,
            fetched: &fetched,
            next,
            pushed: &pushed,
            counts: &counts,
            liked: &liked,
        });
        assert_eq!(shown.order, [9, 5].map(ProductId::from_stored));
        let dunes = &shown.items[&ProductId::from_stored(5)];
        assert_eq!(
            (
                dunes.product.title.as_str(),
                dunes.product.likes,
                dunes.liked
            ),
            ("Dunes", 4, true)
        );
        assert!(shown.missing.is_empty());
    }
}
