//! The browser's WebSocket to `/ws`: applies each message to `Live`, and after a drop reconnects
//! with growing pauses (0.5 s doubling to 10 s), asking pages to refetch once back, each at a
//! random moment within 3 s so that a restarted server is not met by every page at once.

use super::{LinkState, Live, LiveMessage};
use leptos::prelude::*;
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, WebSocket};

/// The open socket and the callbacks it calls, kept together so the callbacks live exactly as
/// long as the socket: replaced (and so dropped) only when the next connection starts.
struct Connection {
    _socket: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut()>,
}

thread_local! {
    static CONNECTION: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

fn url() -> Option<String> {
    let location = window().location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", location.host().ok()?))
}

/// Opens the socket; `attempt` counts the failures before this one.
pub(super) fn connect(live: Live, attempt: u32) {
    live.state.set(if attempt == 0 {
        LinkState::Connecting
    } else {
        LinkState::Reconnecting
    });
    let Some(socket) = url().and_then(|url| WebSocket::new(&url).ok()) else {
        retry(live, attempt);
        return;
    };
    let opened = std::rc::Rc::new(std::cell::Cell::new(false));
    let opened_here = opened.clone();
    let on_open = Closure::<dyn FnMut()>::new(move || {
        opened_here.set(true);
        live.state.set(LinkState::Live);
        live.opened.update(|n| *n += 1);
        if attempt > 0 {
            // Changes made while we were away were missed, and pushed counts may be stale. After
            // a restart every page comes back at once: spread their refetches over 3 s.
            let jitter = Duration::from_millis((js_sys::Math::random() * 3000.0) as u64);
            set_timeout(move || live.start_over(), jitter);
        }
    });
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string() {
            match serde_json::from_str::<LiveMessage>(&text) {
                Ok(LiveMessage::Hello { protocol }) if protocol != super::PROTOCOL => {
                    // The server was upgraded under this page: load the new bundle.
                    let _ = window().location().reload();
                }
                Ok(message) => live.apply(message),
                Err(_) => {}
            }
        }
    });
    let on_close = Closure::<dyn FnMut()>::new(move || {
        live.state.set(LinkState::Reconnecting);
        // A connection that worked starts the pauses afresh.
        retry(live, if opened.get() { 0 } else { attempt });
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    CONNECTION.with(|slot| {
        *slot.borrow_mut() = Some(Connection {
            _socket: socket,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    });
}

fn retry(live: Live, attempt: u32) {
    let pause = Duration::from_millis(500 * 2u64.pow(attempt.min(5))).min(Duration::from_secs(10));
    // Later, not now: the closure that called us belongs to the connection being replaced.
    set_timeout(move || connect(live, attempt + 1), pause);
}
