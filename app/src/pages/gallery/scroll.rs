//! Infinite scroll: watches the "more" link and loads the next page when it comes within a
//! screen of view. A new link (after each page) is watched anew, so a page shorter than the
//! window keeps loading until it fills it.

use leptos::prelude::*;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use web_sys::{IntersectionObserver, IntersectionObserverEntry, IntersectionObserverInit};

/// The observer and its callback, kept together; replacing them stops the old one.
struct Watch {
    observer: IntersectionObserver,
    _callback: Closure<dyn FnMut(js_sys::Array)>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

/// Calls `load` whenever the element in `link` comes near the viewport.
pub(super) fn load_when_seen(
    link: NodeRef<leptos::html::A>,
    load: impl Fn() + Clone + Send + Sync + 'static,
) {
    Effect::new(move |_| {
        let Some(element) = link.get() else {
            return;
        };
        let load = load.clone();
        let callback = Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
            let seen = entries.iter().any(|entry| {
                entry
                    .unchecked_into::<IntersectionObserverEntry>()
                    .is_intersecting()
            });
            if seen {
                load();
            }
        });
        let options = IntersectionObserverInit::new();
        options.set_root_margin("100% 0px");
        let Ok(observer) =
            IntersectionObserver::new_with_options(callback.as_ref().unchecked_ref(), &options)
        else {
            return;
        };
        observer.observe(&element);
        WATCH.with(|slot| {
            *slot.borrow_mut() = Some(Watch {
                observer,
                _callback: callback,
            })
        });
    });
}
