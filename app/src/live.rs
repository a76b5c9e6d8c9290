//! Live updates pushed from the web service to browsers over `GET /ws`: one JSON object per
//! WebSocket text message, tagged by `type`; and the browser's side of it: one connection per page
//! (reconnecting with backoff) whose state and messages every island reads from context.

#[cfg(feature = "hydrate")]
mod socket;

use crate::domain::ProductId;
use crate::wire::Product;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The version of the messages below. A page whose bundle speaks another one reloads itself
/// rather than misread them (after an upgrade, an open page meets the new server).
pub const PROTOCOL: u32 = 3;

/// A change a browser should apply to what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The first message on every socket: the protocol the server speaks.
    Hello { protocol: u32 },
    /// Like counts that changed since the last frame, as `[id, count, version]` triples: of
    /// two counts of a product, the one with the higher version is the newer.
    Counts { counts: Vec<(ProductId, i64, i64)> },
    /// A product was created or changed.
    Product { product: Product },
    /// A product was deleted.
    Deleted { id: ProductId },
    /// Updates were missed: fetch the whole list again.
    Resync,
}

/// The browser's live connection, as the indicator shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not started: on the server, without JavaScript, or before hydration.
    Off,
    Connecting,
    Live,
    Reconnecting,
}

/// A product's like count and its version (see [`crate::wire::Product::likes_version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub likes: i64,
    pub version: i64,
}

/// The newer of a count known here (`known`) and a product's own (`likes` at `version`): the
/// known one on a tie, since it is the later news of the same commit (or this visitor's click).
pub fn newer(known: Option<&Count>, likes: i64, version: i64) -> Count {
    match known {
        Some(count) if count.version >= version => *count,
        _ => Count { likes, version },
    }
}

/// What pages read from the live connection.
#[derive(Clone, Copy)]
pub struct Live {
    pub state: RwSignal<LinkState>,
    /// The newest like count pushed for each product (or returned by this visitor's own like)
    /// since the list was last fetched after a gap (a reconnect or a resync); it wins over the
    /// list's own count unless that one is newer.
    pub counts: RwSignal<HashMap<ProductId, Count>>,
    /// The products pushed since then: changed or new (`Some`) or deleted (`None`); they win
    /// over the list's own copies.
    pub products: RwSignal<HashMap<ProductId, Option<Product>>>,
    /// Grows whenever lists should be fetched again: the connection came back, or the server
    /// asked for a resync.
    pub refresh: RwSignal<u64>,
    /// Grows each time the socket opens: changes made between a page's first fetch and the
    /// socket's first open were pushed to no one, so the page fetches once more then.
    pub opened: RwSignal<u64>,
}

impl Live {
    /// Applies one message from the server.
    pub fn apply(&self, message: LiveMessage) {
        match message {
            LiveMessage::Hello { .. } => {}
            LiveMessage::Counts { counts: changed } => self.counts.update(|counts| {
                for (id, likes, version) in changed {
                    take_newer(counts, id, Count { likes, version });
                }
            }),
            LiveMessage::Product { product } => self.products.update(|products| {
                products.insert(product.id, Some(product));
            }),
            LiveMessage::Deleted { id } => self.products.update(|products| {
                products.insert(id, None);
            }),
            LiveMessage::Resync => self.start_over(),
        }
    }

    /// Takes `count` as `id`'s unless a newer one is known: pushes, answers and refetches may
    /// arrive in any order, and the page ends showing the newest.
    pub fn take_count(&self, id: ProductId, count: Count) {
        self.counts.update(|counts| take_newer(counts, id, count));
    }

    /// Some pushes were missed: what was pushed may be stale, so it gives way to a fresh list.
    pub fn start_over(&self) {
        self.counts.update(HashMap::clear);
        self.products.update(HashMap::clear);
        self.refresh.update(|n| *n += 1);
    }
}

fn take_newer(counts: &mut HashMap<ProductId, Count>, id: ProductId, count: Count) {
    let slot = counts.entry(id).or_insert(count);
    if count.version > slot.version {
        *slot = count;
    }
}

/// Provides `Live`: on the server to the app being rendered, in the browser to every island (it
/// is called under their root owner, and `connect` opens the socket once they have hydrated).
pub fn provide_live() -> Live {
    let live = Live {
        state: RwSignal::new(LinkState::Off),
        counts: RwSignal::new(HashMap::new()),
        products: RwSignal::new(HashMap::new()),
        refresh: RwSignal::new(0),
        opened: RwSignal::new(0),
    };
    provide_context(live);
    live
}

/// Opens the page's live connection.
#[cfg(feature = "hydrate")]
pub fn connect(live: Live) {
    socket::connect(live, 0);
}

/// The live connection of this page.
pub fn use_live() -> Live {
    expect_context::<Live>()
}

/// A small status line: nothing until the page is interactive, then "live" or "reconnecting…".
#[island]
pub fn LiveIndicator() -> impl IntoView {
    crate::islands::ready();
    let live = use_live();
    move || {
        let (class, text) = match live.state.get() {
            LinkState::Off => return None,
            LinkState::Connecting => ("live-indicator connecting", "connecting…"),
            LinkState::Live => ("live-indicator live", "live"),
            LinkState::Reconnecting => ("live-indicator reconnecting", "reconnecting…"),
        };
        Some(view! { <span class=class role="status">{text}</span> })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_shape() {
        let counts = LiveMessage::Counts {
            counts: vec![
                (ProductId::from_stored(7), 42, 1_700_000_000_000_001),
                (ProductId::from_stored(9), 3, 12),
            ],
        };
        assert_eq!(
            serde_json::to_string(&counts).unwrap(),
            r#"{"type":"counts","counts":[[7,42,1700000000000001],[9,3,12]]}"#
        );
        assert_eq!(
            serde_json::to_string(&LiveMessage::Hello { protocol: PROTOCOL }).unwrap(),
            r#"{"type":"hello","protocol":3}"#
        );
        assert_eq!(
            serde_json::to_string(&LiveMessage::Deleted {
                id: ProductId::from_stored(7)
            })
            .unwrap(),
            r#"{"type":"deleted","id":7}"#
        );
        assert_eq!(
            serde_json::to_string(&LiveMessage::Resync).unwrap(),
            r#"{"type":"resync"}"#
        );
    }

    #[test]
    fn the_newest_count_wins_whatever_order_counts_arrive_in() {
        let id = ProductId::from_stored(7);
        let counts = [(4, 10), (6, 30), (5, 20)];
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            let mut known = HashMap::new();
            for n in order {
                let (likes, version) = counts[n];
                take_newer(&mut known, id, Count { likes, version });
            }
            assert_eq!(
                known[&id],
                Count {
                    likes: 6,
                    version: 30
                }
            );
        }
        // A list's own count wins only when it is newer.
        let known = Count {
            likes: 6,
            version: 30,
        };
        assert_eq!(newer(Some(&known), 5, 20), known);
        assert_eq!(
            newer(Some(&known), 7, 40),
            Count {
                likes: 7,
                version: 40
            }
        );
        assert_eq!(
            newer(None, 5, 20),
            Count {
                likes: 5,
                version: 20
            }
        );
    }
}
