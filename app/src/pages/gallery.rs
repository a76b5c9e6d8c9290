//! `/`: the gallery, rendered on the server from the web role's read model, with a like button
//! on every picture. Without JavaScript the button posts a plain form; with it the count changes
//! at once and is put back, with a message, if the server refuses.

use crate::api::{list_products, SetLike};
use crate::live::use_live;
use crate::wire::{AppError, GalleryItem};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn GalleryPage() -> impl IntoView {
    let live = use_live();
    let products = Resource::new(move || live.refresh.get(), |_| list_products());
    // A like refused without JavaScript comes back as `?reason=…`.
    let query = use_query_map();
    let redirected_error = move || query.read().get("reason");
    view! {
        <h1>"Gallery"</h1>
        {move || redirected_error().map(|reason| view! { <p role="alert" class="error">{reason}</p> })}
        <Suspense fallback=|| view! { <p class="status">"Loading pictures…"</p> }>
            {move || Suspend::new(async move {
                match products.await {
                    Ok(list) if list.is_empty() => {
                        view! {
                            <p class="empty">
                                "No pictures yet. An administrator can add some on the "
                                <a href="/admin">"admin page"</a> "."
                            </p>
                        }
                            .into_any()
                    }
                    Ok(list) => {
                        view! {
                            <ul class="grid" aria-label="Pictures">
                                {list.into_iter().map(|item| view! { <ProductCard item/> }).collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                    Err(err) => view! { <p role="alert" class="error">{err.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// One picture with its title, like count and like button.
#[component]
fn ProductCard(item: GalleryItem) -> impl IntoView {
    let GalleryItem { product, liked } = item;
    let id = product.id.to_string();
    let title = product.title.as_str().to_owned();
    let (likes, set_likes) = signal(product.likes);
    let initially_liked = liked;
    let (liked, set_liked) = signal(liked);
    let (problem, set_problem) = signal(None::<String>);
    let action = ServerAction::<SetLike>::new();

    // Counts pushed live by the server replace what the page showed.
    let live = use_live();
    let product_id = product.id;
    Effect::new(move |_| {
        if let Some(count) = live.counts.with(|counts| counts.get(&product_id).copied()) {
            set_likes.set(count);
        }
    });

    // What the server says wins: its count on success, the state before the click on failure.
    let before = StoredValue::new((product.likes, initially_liked));
    Effect::new(move |_| match action.value().get() {
        Some(Ok(state)) => {
            set_likes.set(state.likes);
            set_liked.set(state.liked);
        }
        Some(Err(err)) => {
            let (count, was_liked) = before.get_value();
            set_likes.set(count);
            set_liked.set(was_liked);
            set_problem.set(Some(match err {
                AppError::Conflict(message) => message,
                other => format!("Your like was not saved: {other}"),
            }));
        }
        None => {}
    });

    let click_id = id.clone();
    let card_id = id.clone();
    let alt = title.clone();
    let label = format!("Like {title}");
    let on_click = move |ev: leptos::ev::MouseEvent| {
        // With JavaScript: answer at once, then tell the server. The form is the fallback.
        ev.prevent_default();
        let want = !liked.get_untracked();
        before.set_value((likes.get_untracked(), liked.get_untracked()));
        set_problem.set(None);
        set_liked.set(want);
        set_likes.update(|count| *count += if want { 1 } else { -1 });
        action.dispatch(SetLike {
            id: click_id.clone(),
            like: want,
        });
    };

    view! {
        <li class="card" data-product-id=card_id>
            <img
                src=product.image.as_str().to_owned()
                alt=alt
                loading="lazy"
                width="320"
                height="240"
            />
            <h2>{title}</h2>
            <form class="like" method="post" action="/api/set_like">
                <input type="hidden" name="id" value=id/>
                <input type="hidden" name="like" value=move || (!liked.get()).to_string()/>
                <button
                    type="submit"
                    aria-pressed=move || liked.get().to_string()
                    aria-label=label
                    on:click=on_click
                >
                    <span aria-hidden="true">{move || if liked.get() { "♥" } else { "♡" }}</span>
                </button>
                <span class="count">{likes}</span>
                <span>{move || if likes.get() == 1 { " like" } else { " likes" }}</span>
            </form>
            {move || problem.get().map(|message| view! { <p role="alert" class="error">{message}</p> })}
        </li>
    }
}
