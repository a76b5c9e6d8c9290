//! Product management on `/admin`: the create form, the table, inline editing and deletion with
//! confirmation. Editing and confirming are addressed by the query (`?edit=7`, `?delete=7`), and a
//! refused form comes back with `?field=…&reason=…`, shown next to the field it names.

use crate::api::{CreateProduct, DeleteProduct, UpdateProduct};
use crate::domain::ProductId;
use crate::live::{newer, use_live};
use crate::wire::{AppError, Product};
use leptos::html::Input;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

/// How long typing must pause before the image preview follows the field.
const PREVIEW_PAUSE: std::time::Duration = std::time::Duration::from_millis(400);

/// An error to show, and which field it belongs to (`form` for the form as a whole).
#[derive(Clone, Debug, PartialEq)]
struct FieldError {
    field: String,
    message: String,
}

impl FieldError {
    /// Its message when it belongs to `field`.
    fn about(error: &Option<FieldError>, field: &str) -> Option<String> {
        error
            .as_ref()
            .filter(|err| err.field == field)
            .map(|err| err.message.clone())
    }
}

/// The product list of the admin page: `None` for a visitor who is not signed in.
pub type AdminProducts = OnceResource<Result<Option<Vec<Product>>, AppError>>;

#[component]
pub fn ProductManager(products: AdminProducts) -> impl IntoView {
    let (editing, deleting, error) = {
        let query = use_query_map();
        let query = query.read_untracked();
        let query_id = |key: &str| query.get(key).and_then(|raw| ProductId::parse(&raw).ok());
        let error = query
            .get("field")
            .zip(query.get("reason"))
            .map(|(field, message)| FieldError { field, message });
        (query_id("edit"), query_id("delete"), error)
    };
    // The error belongs to the row being edited or deleted, if any, and otherwise to the create
    // form.
    let (create_error, row_error) = if editing.is_some() || deleting.is_some() {
        (None, error)
    } else {
        (error, None)
    };

    view! {
        <section class="panel" aria-labelledby="new-product">
            <h2 id="new-product">"Add a product"</h2>
            <form method="post" action=CreateProduct::PATH aria-labelledby="new-product" class="product-form">
                <ProductFields prefix="new".to_owned() title=String::new() image=String::new() error=create_error/>
                <button type="submit">"Add product"</button>
            </form>
        </section>
        <section class="panel" aria-labelledby="product-list">
            <h2 id="product-list">"Products"</h2>
            <Suspense fallback=|| view! { <p class="status">"Loading products…"</p> }>
                {move || {
                    let row_error = row_error.clone();
                    Suspend::new(async move {
                        match products.await {
                            Ok(None) => ().into_any(),
                            Ok(Some(list)) if list.is_empty() => {
                                view! { <p class="empty">"No products yet: add the first one above."</p> }.into_any()
                            }
                            Ok(Some(list)) => view! {
                                <table class="products">
                                    <thead>
                                        <tr>
                                            <th scope="col">"Image"</th>
                                            <th scope="col">"Title"</th>
                                            <th scope="col">"Likes"</th>
                                            <th scope="col">"Actions"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {list
                                            .into_iter()
                                            .map(|product| {
                                                let mode = if editing == Some(product.id) {
                                                    RowMode::Edit
                                                } else if deleting == Some(product.id) {
                                                    RowMode::ConfirmDelete
                                                } else {
                                                    RowMode::Show
                                                };
                                                view! { <ProductRow product mode error=row_error.clone()/> }
                                            })
                                            .collect_view()}
                                    </tbody>
                                </table>
                            }
                            .into_any(),
                            Err(err) => view! { <p role="alert" class="error">{err.to_string()}</p> }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

#[derive(Clone, Copy, PartialEq)]
enum RowMode {
    Show,
    Edit,
    ConfirmDelete,
}

#[component]
fn ProductRow(product: Product, mode: RowMode, error: Option<FieldError>) -> impl IntoView {
    let id = product.id.to_string();
    let title = product.title.as_str().to_owned();
    let image = product.image.as_str().to_owned();
    let thumbnail = view! {
        <td>
            <img class="thumb" src=image.clone() alt="" width="64" height="48" loading="lazy"/>
        </td>
    };
    match mode {
        RowMode::Show => {
            view! {
            <tr data-product-id=id.clone()>
                {thumbnail}
                <td class="title">{title.clone()}</td>
                <td class="likes">
                    <LiveLikes id=product.id likes=product.likes version=product.likes_version/>
                </td>
                <td class="actions">
                    <a href=format!("/admin?edit={id}") aria-label=format!("Edit {title}")>"Edit"</a>
                    <a href=format!("/admin?delete={id}") aria-label=format!("Delete {title}")>"Delete"</a>
                </td>
            </tr>
        }
        .into_any()
        }
        RowMode::Edit => {
            let label = format!("Edit {title}");
            let prefix = format!("edit-{id}");
            let hidden_id = id.clone();
            view! {
                <tr data-product-id=id class="editing">
                    {thumbnail}
                    <td colspan="3">
                        <form method="post" action=UpdateProduct::PATH aria-label=label class="product-form">
                            <input type="hidden" name="id" value=hidden_id/>
                            <ProductFields prefix title image error/>
                            <div class="buttons">
                                <button type="submit">"Save"</button>
                                <a href="/admin">"Cancel"</a>
                            </div>
                        </form>
                    </td>
                </tr>
            }
            .into_any()
        }
        RowMode::ConfirmDelete => {
            let label = format!("Delete {title}");
            let hidden_id = id.clone();
            view! {
                <tr data-product-id=id class="confirming">
                    {thumbnail}
                    <td colspan="3">
                        <form method="post" action=DeleteProduct::PATH aria-label=label class="confirm">
                            <input type="hidden" name="id" value=hidden_id/>
                            <p>"Delete “" {title} "”? Its likes go with it."</p>
                            <div class="buttons">
                                <button type="submit" class="danger">"Delete"</button>
                                <a href="/admin">"Cancel"</a>
                            </div>
                            <FormError error/>
                        </form>
                    </td>
                </tr>
            }
            .into_any()
        }
    }
}

/// A product's like count in the table (the catalog's copy, at `version`), following the live
/// feed once the page is interactive: the newer of the two shows.
#[island]
fn LiveLikes(id: ProductId, likes: i64, version: i64) -> impl IntoView {
    crate::islands::ready();
    let live = use_live();
    move || {
        live.counts
            .with(|counts| newer(counts.get(&id), likes, version).likes)
    }
}

/// Title and image inputs, each with its error underneath, and an error that names neither.
#[component]
fn ProductFields(
    /// Makes the inputs' ids unique on the page (`new`, `edit-7`).
    prefix: String,
    title: String,
    image: String,
    error: Option<FieldError>,
) -> AnyView {
    view! {
        <Field
            id=format!("{prefix}-title")
            name="title"
            label="Title"
            kind="text"
            value=title
            error=FieldError::about(&error, "title")
        />
        <ImageField id=format!("{prefix}-image") value=image error=FieldError::about(&error, "image")/>
        <FormError error/>
    }
    // Erased: nested in a table row's type, the fields' full type is deeper than the compiler
    // follows in a release build.
    .into_any()
}

/// The image address and, once typing pauses, a preview of the picture beside it: a picture is
/// not fetched for every half-typed address.
#[island]
fn ImageField(id: String, value: String, error: Option<String>) -> impl IntoView {
    crate::islands::ready();
    let typed = RwSignal::new(value.clone());
    let preview = move || {
        typed
            .with(|raw| crate::domain::ImageUrl::parse(raw).ok())
            .map(|url| {
                view! {
                    <figure class="preview">
                        <img src=url.as_str().to_owned() alt="" width="160" height="120"/>
                        <figcaption>"Preview"</figcaption>
                    </figure>
                }
            })
    };
    view! {
        <Field id name="image" label="Image URL" kind="url" value error typed/>
        {preview}
    }
}

#[component]
fn Field(
    id: String,
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    value: String,
    /// This field's error, if the form was refused because of it.
    error: Option<String>,
    /// Kept up to date with what is typed, when given: from hydration on (what was typed before
    /// counts too), then each time typing pauses.
    #[prop(optional)]
    typed: Option<RwSignal<String>>,
) -> impl IntoView {
    let error_id = format!("{id}-error");
    let input = NodeRef::<Input>::new();
    // Counts the edits, so that only the last one of a burst of typing reaches `typed`.
    let edits = StoredValue::new(0u64);
    if let Some(typed) = typed {
        Effect::new(move |_| {
            if let Some(input) = input.get() {
                typed.set(input.value());
            }
        });
    }
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input
                node_ref=input
                id=id
                name=name
                type=kind
                value=value
                required
                aria-invalid=error.is_some().to_string()
                aria-describedby=error_id.clone()
                on:input=move |ev| {
                    if let Some(typed) = typed {
                        let value = event_target_value(&ev);
                        let this_edit = edits.get_value() + 1;
                        edits.set_value(this_edit);
                        set_timeout(
                            move || {
                                if edits.get_value() == this_edit {
                                    typed.set(value);
                                }
                            },
                            PREVIEW_PAUSE,
                        );
                    }
                }
            />
            <p class="field-error" id=error_id>{error}</p>
        </div>
    }
}

/// An error that belongs to no single field (the session ended, the catalog is down…).
#[component]
fn FormError(error: Option<FieldError>) -> impl IntoView {
    error
        .filter(|err| err.field != "title" && err.field != "image")
        .map(|err| view! { <p role="alert" class="error">{err.message}</p> })
}
