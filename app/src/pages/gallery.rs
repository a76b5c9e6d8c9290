//! `/`: the gallery of products, rendered on the server from the web role's read model.

use crate::api::list_products;
use crate::wire::Product;
use leptos::prelude::*;

#[component]
pub fn GalleryPage() -> impl IntoView {
    let products = Resource::new(|| (), |_| list_products());
    view! {
        <h1>"Gallery"</h1>
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
                                {list
                                    .into_iter()
                                    .map(|product| view! { <ProductCard product/> })
                                    .collect_view()}
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

/// One picture with its title and like count.
#[component]
fn ProductCard(product: Product) -> impl IntoView {
    view! {
        <li class="card" data-product-id=product.id.get()>
            <img
                src=product.image.as_str().to_owned()
                alt=product.title.as_str().to_owned()
                loading="lazy"
                width="320"
                height="240"
            />
            <h2>{product.title.as_str().to_owned()}</h2>
            <p class="likes">
                <span class="count">{product.likes}</span>
                {if product.likes == 1 { " like" } else { " likes" }}
            </p>
        </li>
    }
}
