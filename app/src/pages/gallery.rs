//! `/`: the gallery, rendered on the server from the web instance's gallery, a page of pictures
//! at a time in the order the visitor picks (newest first or most liked), more as they scroll
//! (a "more" link without JavaScript). The cards are one island: every card reads its state, what
//! was fetched and what was pushed since, arranged by `arrange`. Without JavaScript a like button
//! posts a plain form; with it the count changes at once and is put back, with a message, if the
//! server refuses.

pub mod arrange;
#[cfg(feature = "hydrate")]
mod scroll;

use crate::api::{chosen_products, list_products, set_like};
use crate::domain::ProductId;
use crate::live::{use_live, Count, Live};
use crate::paging::{Cursor, GalleryOrder, GalleryPage as Fetch, MAX_LIMIT};
use crate::wire::{AppError, GalleryItem};
use arrange::{arrange, Arranged, Known};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_query_map;
use std::collections::{HashMap, HashSet};

/// What the page fetched since it started: every product, page after page, and where the next
/// page starts. `generation` changes when the page starts over, so late answers are dropped.
#[derive(Debug, Clone, Default)]
struct Fetched {
    generation: u64,
    items: Vec<GalleryItem>,
    next: Option<Cursor>,
}

/// The gallery page's one state, shared by every card.
#[derive(Clone, Copy)]
struct Page {
    live: Live,
    fetched: RwSignal<Fetched>,
    /// Whether the visitor likes a product, as their own clicks say.
    liked: RwSignal<HashMap<ProductId, bool>>,
    /// A refused click's message, by product.
    problems: RwSignal<HashMap<ProductId, String>>,
    /// A page that would not load.
    trouble: RwSignal<Option<String>>,
    loading: RwSignal<bool>,
    /// Products already fetched by id, so each is asked for once.
    asked: StoredValue<HashSet<ProductId>>,
    /// Counts the requests to start over: only the latest one's answer is used.
    restarts: StoredValue<u64>,
    shown: Memo<Arranged>,
}

impl Page {
    fn new(live: Live, order: GalleryOrder) -> Self {
        let fetched = RwSignal::new(Fetched::default());
        let liked = RwSignal::new(HashMap::new());
        let shown = Memo::new(move |_| {
            fetched.with(|fetched| {
                live.products.with(|pushed| {
                    live.counts.with(|counts| {
                        liked.with(|liked| {
                            arrange(&Known {
                                order,
                                fetched: &fetched.items,
                                next: fetched.next,
                                pushed,
                                counts,
                                liked,
                            })
                        })
                    })
                })
            })
        });
        Self {
            live,
            fetched,
            liked,
            problems: RwSignal::new(HashMap::new()),
            trouble: RwSignal::new(None),
            loading: RwSignal::new(false),
            asked: StoredValue::new(HashSet::new()),
            restarts: StoredValue::new(0),
            shown,
        }
    }

    /// Fetches the page it started from again and starts over from it, keeping the cards
    /// shown until the answer: the connection came back or the server asked for a resync.
    fn restart(self, order: GalleryOrder, after: Option<String>) {
        let restart = self.restarts.get_value() + 1;
        self.restarts.set_value(restart);
        spawn_local(async move {
            let answer = list_products(Some(order.as_str().to_owned()), after).await;
            if self.restarts.get_value() != restart {
                return;
            }
            match answer {
                Ok(first) => self.start(first, order),
                Err(err) => self
                    .trouble
                    .set(Some(format!("The pictures did not reload: {err}"))),
            }
        });
    }

    /// Starts over from a first page.
    fn start(self, first: Fetch, order: GalleryOrder) {
        let generation = self.fetched.with_untracked(|f| f.generation) + 1;
        self.fetched.set(Fetched {
            generation,
            items: first.items,
            next: parse_next(first.next, order),
        });
        self.liked.set(HashMap::new());
        self.problems.set(HashMap::new());
        self.trouble.set(None);
        self.asked.set_value(HashSet::new());
    }

    /// Fetches the next page and adds it to the ones shown.
    fn load_more(self) {
        let Some(cursor) = self.fetched.with_untracked(|f| f.next) else {
            return;
        };
        if self.loading.get_untracked() {
            return;
        }
        self.loading.set(true);
        let generation = self.fetched.with_untracked(|f| f.generation);
        spawn_local(async move {
            let answer = list_products(
                Some(cursor.order.as_str().to_owned()),
                Some(cursor.to_string()),
            )
            .await;
            self.loading.set(false);
            match answer {
                Ok(page) => self.fetched.update(|fetched| {
                    if fetched.generation == generation && fetched.next == Some(cursor) {
                        fetched.items.extend(page.items);
                        fetched.next = parse_next(page.next, cursor.order);
                    }
                }),
                // Unless the page started over meanwhile: then the failure is of no concern.
                Err(err) => {
                    if self.fetched.with_untracked(|f| f.generation) == generation {
                        self.trouble
                            .set(Some(format!("More pictures did not load: {err}")));
                    }
                }
            }
        });
    }

    /// Fetches the page it started from once more and adds it to what was fetched (a later
    /// copy of a product replaces an earlier): for what changed before the socket opened.
    fn catch_up(self, order: GalleryOrder, after: Option<String>) {
        let generation = self.fetched.with_untracked(|f| f.generation);
        spawn_local(async move {
            if let Ok(page) = list_products(Some(order.as_str().to_owned()), after).await {
                self.fetched.update(|fetched| {
                    if fetched.generation == generation {
                        fetched.items.extend(page.items);
                    }
                });
            }
        });
    }

    /// Fetches products that climbed into the part of the gallery shown.
    fn fetch_missing(self) {
        let fresh: Vec<ProductId> = self.shown.with(|shown| {
            self.asked.with_value(|asked| {
                shown
                    .missing
                    .iter()
                    .filter(|id| !asked.contains(id))
                    .take(MAX_LIMIT)
                    .copied()
                    .collect()
            })
        });
        if fresh.is_empty() {
            return;
        }
        self.asked.update_value(|asked| asked.extend(&fresh));
        let generation = self.fetched.with_untracked(|f| f.generation);
        let ids = fresh.iter().map(ToString::to_string).collect::<Vec<_>>();
        spawn_local(async move {
            match chosen_products(ids.join(",")).await {
                Ok(items) => self.fetched.update(|fetched| {
                    if fetched.generation == generation {
                        fetched.items.extend(items);
                    }
                }),
                // Asked again at the next change.
                Err(_) => self.asked.update_value(|asked| {
                    for id in &fresh {
                        asked.remove(id);
                    }
                }),
            }
        });
    }

    /// The visitor clicked a like button: the card answers at once, the server decides. The
    /// answer's count is newer than any the page had before the click, so from then on no
    /// push or refetch that arrives late can show an older one.
    fn toggle(self, id: ProductId) {
        let Some((before, liked)) = self.shown.with_untracked(|shown| {
            shown.items.get(&id).map(|item| {
                let count = Count {
                    likes: item.product.likes,
                    version: item.product.likes_version,
                };
                (count, item.liked)
            })
        }) else {
            return;
        };
        let want = !liked;
        let live = self.live;
        let set_liked = move |liked: bool| {
            self.liked.update(|flags| {
                flags.insert(id, liked);
            });
        };
        self.problems.update(|problems| {
            problems.remove(&id);
        });
        // At once, as the count it was: anything newer that arrives meanwhile replaces it.
        let guess = Count {
            likes: before.likes + if want { 1 } else { -1 },
            version: before.version,
        };
        live.counts.update(|counts| {
            counts.insert(id, guess);
        });
        set_liked(want);
        spawn_local(async move {
            match set_like(id.to_string(), want).await {
                Ok(state) => {
                    let count = Count {
                        likes: state.likes,
                        version: state.likes_version,
                    };
                    live.take_count(id, count);
                    set_liked(state.liked);
                }
                Err(err) => {
                    // Back to the count it was, unless a newer one came meanwhile.
                    live.counts.update(|counts| {
                        if counts.get(&id) == Some(&guess) {
                            counts.insert(id, before);
                        }
                    });
                    set_liked(liked);
                    let message = match err {
                        AppError::Conflict(message) => message,
                        other => format!("Your like was not saved: {other}"),
                    };
                    self.problems.update(|problems| {
                        problems.insert(id, message);
                    });
                }
            }
        });
    }
}

fn parse_next(next: Option<String>, order: GalleryOrder) -> Option<Cursor> {
    next.and_then(|raw| Cursor::parse(&raw, order).ok())
}

#[component]
pub fn GalleryPage() -> impl IntoView {
    // Rendered once per request, on the server: the query is read once. A like refused without
    // JavaScript comes back as `?reason=…`.
    let (order, after, redirected_error) = {
        let query = use_query_map();
        let query = query.read_untracked();
        let order = GalleryOrder::parse(query.get("sort").as_deref()).unwrap_or_default();
        (order, query.get("after"), query.get("reason"))
    };
    let first = OnceResource::new(list_products(
        Some(order.as_str().to_owned()),
        after.clone(),
    ));
    let from_start = after.is_some().then(|| {
        let href = format!("/?sort={}", order.as_str());
        view! { <p class="from-start"><a href=href>"Back to the first pictures"</a></p> }
    });

    view! {
        <h1>"Gallery"</h1>
        <OrderControl order/>
        {redirected_error.map(|reason| view! { <p role="alert" class="error">{reason}</p> })}
        <Suspense fallback=|| view! { <p class="status">"Loading pictures…"</p> }>
            {move || {
                let after = after.clone();
                Suspend::new(async move {
                    match first.await {
                        Ok(first) => view! { <GalleryCards first order after/> }.into_any(),
                        Err(err) => view! { <p role="alert" class="error">{err.to_string()}</p> }.into_any(),
                    }
                })
            }}
        </Suspense>
        {from_start}
    }
}

/// The cards and the way to more: the part of the gallery that lives in the browser, starting
/// from the first page the server rendered.
#[island]
fn GalleryCards(first: Fetch, order: GalleryOrder, after: Option<String>) -> impl IntoView {
    crate::islands::ready();
    let live = use_live();
    let page = Page::new(live, order);
    page.start(first, order);
    Effect::new(move |_| page.fetch_missing());
    // The socket opens after the page was fetched: what changed in between was pushed to no one.
    // Later opens (reconnects) and resyncs start over instead.
    let caught_up = after.clone();
    Effect::new(move |_| {
        if live.opened.get() == 1 {
            page.catch_up(order, caught_up.clone());
        }
    });
    Effect::watch(
        move || live.refresh.get(),
        move |_, _, _| page.restart(order, after.clone()),
        false,
    );
    view! { <Cards page/> }
}

/// The two orders, as links: they work without JavaScript and keep the order in the URL.
#[component]
fn OrderControl(order: GalleryOrder) -> impl IntoView {
    let current = |which: GalleryOrder| (order == which).then_some("true");
    view! {
        <nav class="order" aria-label="Order of the pictures">
            <a href="/?sort=newest" aria-current=current(GalleryOrder::Newest)>"Newest"</a>
            <a href="/?sort=likes" aria-current=current(GalleryOrder::Likes)>"Most liked"</a>
        </nav>
    }
}

/// The cards in order, or what to do when there are none, and the way to more.
#[component]
fn Cards(page: Page) -> impl IntoView {
    let empty = move || page.shown.with(|shown| shown.order.is_empty());
    view! {
        <Show
            when=move || !empty()
            fallback=|| view! {
                <p class="empty">
                    "No pictures yet. An administrator can add some on the "
                    <a href="/admin">"admin page"</a> "."
                </p>
            }
        >
            <ul class="grid" aria-label="Pictures">
                <For
                    each=move || page.shown.with(|shown| shown.order.clone())
                    key=|id| *id
                    let:id
                >
                    <ProductCard id page/>
                </For>
            </ul>
        </Show>
        {move || page.trouble.get().map(|message| view! { <p role="alert" class="error">{message}</p> })}
        <MoreLink page/>
    }
}

/// The way to the next page: a plain link without JavaScript; with it, a button-like link
/// that also loads by itself as it comes into view.
#[component]
fn MoreLink(page: Page) -> impl IntoView {
    let link = NodeRef::<leptos::html::A>::new();
    #[cfg(feature = "hydrate")]
    scroll::load_when_seen(link, move || page.load_more());
    move || {
        page.fetched.with(|fetched| fetched.next).map(|next| {
            let href = format!("/?sort={}&after={next}", next.order.as_str());
            let on_click = move |ev: leptos::ev::MouseEvent| {
                ev.prevent_default();
                page.load_more();
            };
            view! {
                <p class="more">
                    <a node_ref=link href=href on:click=on_click>
                        {move || if page.loading.get() { "Loading more pictures…" } else { "More pictures" }}
                    </a>
                </p>
            }
        })
    }
}

/// A like count that people notice change: announced politely to screen readers, and flashed
/// briefly (a highlight that `prefers-reduced-motion` keeps still) each time it changes after the
/// first view. Two identical animations take turns so that every change starts one afresh.
#[component]
fn LikeCount(likes: impl Fn() -> i64 + Copy + Send + Sync + 'static) -> impl IntoView {
    let changes = RwSignal::new(0u32);
    let first = StoredValue::new(None::<i64>);
    Effect::new(move |_| {
        let now = likes();
        match first.get_value() {
            Some(before) if before != now => changes.update(|n| *n += 1),
            _ => {}
        }
        first.set_value(Some(now));
    });
    let class = move || match changes.get() {
        0 => "count",
        n if n % 2 == 1 => "count changed-a",
        _ => "count changed-b",
    };
    view! {
        <span class="likes-live" aria-live="polite" aria-atomic="true">
            <span class=class>{likes}</span>
            <span>{move || if likes() == 1 { " like" } else { " likes" }}</span>
        </span>
    }
}

/// One picture with its title, like count and like button, read from the page's state.
#[component]
fn ProductCard(id: ProductId, page: Page) -> AnyView {
    let item = Memo::new(move |_| page.shown.with(|shown| shown.items.get(&id).cloned()));
    let read = move |f: fn(&GalleryItem) -> String| {
        item.with(|item| item.as_ref().map(f).unwrap_or_default())
    };
    let title = move || read(|item| item.product.title.as_str().to_owned());
    let likes = move || item.with(|item| item.as_ref().map_or(0, |item| item.product.likes));
    let liked = move || item.with(|item| item.as_ref().is_some_and(|item| item.liked));
    let on_click = move |ev: leptos::ev::MouseEvent| {
        // With JavaScript: answer at once, then tell the server. The form is the fallback.
        ev.prevent_default();
        page.toggle(id);
    };
    let problem = move || page.problems.with(|problems| problems.get(&id).cloned());

    view! {
        <li class="card" data-product-id=id.to_string()>
            // Where the picture cannot be loaded, its placeholder shows the title (`data-title`,
            // see the stylesheet); the card's heading names the picture for everyone.
            <div class="picture" aria-hidden="true">
                <img
                    src=move || read(|item| item.product.image.as_str().to_owned())
                    data-title=title
                    alt=""
                    loading="lazy"
                    width="320"
                    height="240"
                />
            </div>
            <h2>{title}</h2>
            <form class="like" method="post" action="/api/set_like">
                <input type="hidden" name="id" value=id.to_string()/>
                <input type="hidden" name="like" value=move || (!liked()).to_string()/>
                <button
                    type="submit"
                    aria-pressed=move || liked().to_string()
                    aria-label=move || format!("Like {}", title())
                    on:click=on_click
                >
                    // The glyph is checked for contrast like any text; the label names the button.
                    <span class="heart">{move || if liked() { "♥" } else { "♡" }}</span>
                </button>
                <LikeCount likes/>
            </form>
            {move || problem().map(|message| view! { <p role="alert" class="error">{message}</p> })}
        </li>
    }
    // Erased: the card's full type nested in the list's is deeper than the compiler follows.
    .into_any()
}
