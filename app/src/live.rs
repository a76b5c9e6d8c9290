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
pub const PROTOCOL: u32 = 2;

/// A change a browser should apply to what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// The first message on every socket: the protocol the server speaks.
    Hello { protocol: u32 },
    /// Like counts that changed since the last frame, as `[id, count]` pairs.
    Counts { counts: Vec<(ProductId, i64)> },
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

/// What pages read from the live connection.
#[derive(Clone, Copy)]
pub struct Live {
    pub state: RwSignal<LinkState>,
    /// The latest like count pushed for each product since the list was last fetched after a
    /// gap (a reconnect or a resync); it wins over the list's own count.
    pub counts: RwSignal<HashMap<ProductId, i64>>,
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
                counts.extend(changed);
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

    /// Some pushes were missed: what was pushed may be stale, so it gives way to a fresh list.
    pub fn start_over(&self) {
        self.counts.update(HashMap::clear);
        self.products.update(HashMap::clear);
        self.refresh.update(|n| *n += 1);
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
                (ProductId::from_stored(7), 42),
                (ProductId::from_stored(9), 3),
            ],
        };
        assert_eq!(
            serde_json::to_string(&counts).unwrap(),
            r#"{"type":"counts","counts":[[7,42],[9,3]]}"#
        );
        assert_eq!(
            serde_json::to_string(&LiveMessage::Hello { protocol: PROTOCOL }).unwrap(),
            r#"{"type":"hello","protocol":2}"#
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
}
