//! `/admin`: sign in with the administrator token, then manage the products.

mod products;

use crate::api::{admin_session, ResyncGallery, SignIn, SignOut};
use crate::wire::AppError;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use leptos_router::{lazy_route, LazyRoute};

/// The `/admin` route. Its code is a bundle of its own (`cargo leptos build --split`), loaded
/// when a visitor opens the admin pages, so a gallery visitor never downloads it.
pub struct AdminRoute;

#[lazy_route]
impl LazyRoute for AdminRoute {
    fn data() -> Self {
        AdminRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <AdminPage/> }.into_any()
    }
}

#[component]
fn AdminPage() -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let session = Resource::new(
        move || (sign_in.version().get(), sign_out.version().get()),
        |_| admin_session(),
    );
    let products = products::ProductState::new(session, move || {
        (sign_in.version().get(), sign_out.version().get())
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
                                <ActionForm action=sign_out>
                                    <button type="submit">"Sign out"</button>
                                </ActionForm>
                            </div>
                            <products::ProductManager state=products/>
                            <ResyncForm/>
                        }
                            .into_any()
                    }
                    Ok(false) => view! { <SignInForm action=sign_in/> }.into_any(),
                    Err(err) => view! { <p role="alert" class="error">{err.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The token form. The Show/Hide toggle only works once the page is interactive; without
/// JavaScript the token simply stays hidden.
#[component]
fn SignInForm(action: ServerAction<SignIn>) -> impl IntoView {
    let (revealed, set_revealed) = signal(false);
    // Without JavaScript a refused sign-in comes back as `?sign_in=failed`.
    let query = use_query_map();
    let error = move || {
        let from_redirect = query
            .read()
            .get("sign_in")
            .filter(|outcome| outcome == "failed")
            .map(|_| AppError::Unauthorized);
        let from_action = action.value().get().and_then(Result::err);
        from_action.or(from_redirect).map(|err| {
            let message = match err {
                AppError::Unauthorized => "That token is not right.".to_owned(),
                other => other.to_string(),
            };
            view! { <p role="alert" class="error">{message}</p> }
        })
    };
    view! {
        <ActionForm action attr:class="sign-in">
            <label for="admin-token">"Admin token"</label>
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
            <button type="submit">"Sign in"</button>
            {error}
        </ActionForm>
    }
}

/// Asks for an authoritative resync: every gallery ends with exactly the catalog's products
/// (after restoring a database from a backup, or to repair a read model).
#[component]
fn ResyncForm() -> impl IntoView {
    let resync = ServerAction::<ResyncGallery>::new();
    let outcome = move || {
        resync.value().get().map(|answer| match answer {
            Ok(products) => view! {
                <p role="status" class="status">
                    {format!("Resync started: {products} products on their way to every gallery.")}
                </p>
            }
            .into_any(),
            Err(err) => view! { <p role="alert" class="error">{err.to_string()}</p> }.into_any(),
        })
    };
    view! {
        <section class="resync" aria-labelledby="resync-heading">
            <h2 id="resync-heading">"Galleries"</h2>
            <p>
                "Bring every web instance's gallery to exactly the catalog's products, "
                "removing any the catalog no longer has."
            </p>
            <ActionForm action=resync>
                <button type="submit">"Resync every gallery"</button>
            </ActionForm>
            {outcome}
        </section>
    }
}
