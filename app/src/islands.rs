//! When a page is interactive: each island reports once it has hydrated, and when every island on
//! the page has, `<body>` gets `data-hydrated="true"` (what tests, and curious people, wait for)
//! and what was waiting for it starts (the live connection: so no pushed change can reach an
//! island before it has hydrated what the server rendered). Islands hydrate one by one after the
//! bundle loads, so no single call knows when all are done.

use leptos::prelude::*;

/// Called first thing in every island's body: counts the island as hydrated once its view is. An
/// island that does not call it keeps its page from ever counting as interactive (and the
/// end-to-end tests, which wait for that, from passing).
pub fn ready() {
    // An effect runs after the island's view has hydrated (its listeners are attached), and only
    // in the browser.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        browser::count_one();
    });
}

/// Runs `then` once every island on the page has hydrated.
#[cfg(feature = "hydrate")]
pub fn when_hydrated(then: impl FnOnce() + 'static) {
    browser::THEN.with(|slot| *slot.borrow_mut() = Some(Box::new(then)));
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::cell::{Cell, RefCell};

    thread_local! {
        static HYDRATED: Cell<u32> = const { Cell::new(0) };
        pub(super) static THEN: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    }

    pub(super) fn count_one() {
        let hydrated = HYDRATED.with(|count| {
            count.set(count.get() + 1);
            count.get()
        });
        let document = leptos::prelude::document();
        let on_page = document
            .query_selector_all("leptos-island")
            .map_or(0, |islands| islands.length());
        if hydrated != on_page {
            return;
        }
        if let Some(body) = document.body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
        if let Some(then) = THEN.with(|slot| slot.borrow_mut().take()) {
            then();
        }
    }
}
