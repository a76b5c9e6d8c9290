//! `/admin`: sign in with the administrator token, then manage the products. Rendered on the
//! server with plain forms (each one posts to its server function, which sends the browser back
//! here, with the error in the query when it refuses), so it works the same with or without
//! JavaScript; islands add what only a script can: revealing the token, an image preview as it is
//! typed, like counts that change live.

mod products;

use crate::api::{admin_products, admin_session, ResyncGallery, SignIn, SignOut};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AdminPage() -> impl IntoView {
    let session = OnceResource::new(admin_session());
    // Made outside any `Suspend`: the server runs a suspended view's body more than once while
    // resolving it, and would fetch the list once per run. Fetched only when signed in.
    let products: products::AdminProducts = OnceResource::new(async move {
        match session.await {
            Ok(true) => admin_products().await.map(Some),
            Ok(false) => Ok(None),
            Err(err) => Err(err),
        }
    });
    view! {
        <h1>"Admin"</h1>
        <Suspense fallback=|| view! { <p class="status">"Checking your session…"</p> }>
            {move || Suspend::new(async move {
                match session.await {
                    Ok(true) => {
                        view! {
                            <div class="session">
                                <p class="status">"You are signed in as the administrator."</p>
                                <form method="post" action=SignOut::PATH>
                                    <button type="submit">"Sign out"</button>
                                </form>
                            </div>
                            <products::ProductManager products/>
                            <ResyncForm/>
                        }
                            .into_any()
                    }
                    Ok(false) => view! { <SignInForm/> }.into_any(),
                    Err(err) => view! { <p role="alert" class="error">{err.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The token form. A refused sign-in comes back as `?sign_in=failed`.
#[component]
fn SignInForm() -> impl IntoView {
    let query = use_query_map();
    let refused = query
        .read_untracked()
        .get("sign_in")
        .is_some_and(|outcome| outcome == "failed");
    view! {
        <form method="post" action=SignIn::PATH class="sign-in">
            <label for="admin-token">"Admin token"</label>
            <TokenField/>
            <button type="submit">"Sign in"</button>
            {refused.then(|| view! { <p role="alert" class="error">"That token is not right."</p> })}
        </form>
    }
}

/// The token input and its Show/Hide toggle, which works once the page is interactive; without
/// JavaScript the token simply stays hidden.
#[island]
fn TokenField() -> impl IntoView {
    crate::islands::ready();
    let (revealed, set_revealed) = signal(false);
    view! {
        <div class="token-field">
            <input
                id="admin-token"
                name="token"
                type=move || if revealed.get() { "text" } else { "password" }
                autocomplete="current-password"
                required
            />
            <button
                type="button"
                aria-controls="admin-token"
                aria-pressed=move || revealed.get().to_string()
                on:click=move |_| set_revealed.update(|shown| *shown = !*shown)
            >
                {move || if revealed.get() { "Hide token" } else { "Show token" }}
            </button>
        </div>
    }
}

/// Asks for an authoritative resync: every gallery ends with exactly the catalog's products
/// (after restoring a database from a backup, or to repair a read model). The answer comes back
/// as `?resynced=<products>`, or as `?field=form&reason=…`.
#[component]
fn ResyncForm() -> impl IntoView {
    let query = use_query_map();
    let resynced = query
        .read_untracked()
        .get("resynced")
        .and_then(|products| products.parse::<u64>().ok());
    view! {
        <section class="resync" aria-labelledby="resync-heading">
            <h2 id="resync-heading">"Galleries"</h2>
            <p>
                "Bring every web instance's gallery to exactly the catalog's products, "
                "removing any the catalog no longer has."
            </p>
            <form method="post" action=ResyncGallery::PATH>
                <button type="submit">"Resync every gallery"</button>
            </form>
            {resynced.map(|products| view! {
                <p role="status" class="status">
                    {format!("Resync started: {products} products on their way to every gallery.")}
                </p>
            })}
        </section>
    }
}
