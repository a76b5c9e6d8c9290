//! Product management on `/admin`: the create form, the table, inline editing and deletion with
//! confirmation. Editing and confirming are addressed by the query (`?edit=7`, `?delete=7`), so
//! everything works as plain forms and links without JavaScript, and without a reload with it.

use crate::api::{admin_products, CreateProduct, DeleteProduct, UpdateProduct};
use crate::domain::{ProductId, ValidationError};
use crate::live::use_live;
use crate::wire::{AppError, Product};
use leptos::html::Form;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

/// How long typing must pause before the image preview follows the field.
const PREVIEW_PAUSE: std::time::Duration = std::time::Duration::from_millis(400);

/// An error to show, and which field it belongs to (`form` for the form as a whole).
#[derive(Clone, Debug, PartialEq)]
struct FieldError {
    field: String,
    message: String,
}

impl From<AppError> for FieldError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Validation(ValidationError { field, reason }) => Self {
                field,
                message: reason,
            },
            other => Self {
                field: "form".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// The product list of the admin page: `None` for a visitor who is not signed in.
pub type AdminProducts = Resource<Result<Option<Vec<Product>>, AppError>>;

/// The admin page's actions on products, and the list they change.
#[derive(Clone, Copy)]
pub struct ProductState {
    pub create: ServerAction<CreateProduct>,
    pub update: ServerAction<UpdateProduct>,
    pub delete: ServerAction<DeleteProduct>,
    pub products: AdminProducts,
}

impl ProductState {
    /// Made once per page, outside any `Suspend`: the server runs a suspended view's body more
    /// than once while resolving it, and a resource made in there would be fetched once per run
    /// under ids the browser does not share, so the browser could hydrate another run's answer
    /// than the one rendered. The list follows the session: fetched only when signed in.
    ///
    /// `signed` counts sign-ins and sign-outs, so that the list is fetched again after either
    /// (awaiting `session` alone does not make the list follow it).
    pub fn new(
        session: Resource<Result<bool, AppError>>,
        signed: impl Fn() -> (usize, usize) + Send + Sync + 'static,
    ) -> Self {
        let create = ServerAction::<CreateProduct>::new();
        let update = ServerAction::<UpdateProduct>::new();
        let delete = ServerAction::<DeleteProduct>::new();
        let products = Resource::new(
            move || {
                (
                    signed(),
                    create.version().get(),
                    update.version().get(),
                    delete.version().get(),
                )
            },
            move |_| async move {
                match session.await {
                    Ok(true) => admin_products().await.map(Some),
                    Ok(false) => Ok(None),
                    Err(err) => Err(err),
                }
            },
        );
        Self {
            create,
            update,
            delete,
            products,
        }
    }
}

#[component]
pub fn ProductManager(state: ProductState) -> impl IntoView {
    let ProductState {
        create,
        update,
        delete,
        products,
    } = state;
    let query = use_query_map();
    let query_id = move |key: &str| {
        query
            .read()
            .get(key)
            .and_then(|raw| ProductId::parse(&raw).ok())
    };
    // Without JavaScript, a refused form comes back with `?field=…&reason=…`.
    let redirected_error = move || {
        let query = query.read();
        Some(FieldError {
            field: query.get("field")?,
            message: query.get("reason")?,
        })
    };

    // With JavaScript, leave edit or delete mode once the change went through.
    let navigate = use_navigate();
    Effect::new(move |_| {
        let saved = update.value().with(|value| matches!(value, Some(Ok(_))));
        let deleted = delete.value().with(|value| matches!(value, Some(Ok(_))));
        if saved || deleted {
            navigate("/admin", Default::default());
        }
    });

    let create_error = Signal::derive(move || {
        let from_action = create
            .value()
            .get()
            .and_then(Result::err)
            .map(FieldError::from);
        let from_redirect = (query_id("edit").is_none())
            .then(redirected_error)
            .flatten();
        from_action.or(from_redirect)
    });
    let row_error = Signal::derive(move || {
        let from_update = update
            .value()
            .get()
            .and_then(Result::err)
            .map(FieldError::from);
        let from_delete = delete
            .value()
            .get()
            .and_then(Result::err)
            .map(FieldError::from);
        let from_redirect = query_id("edit").and(redirected_error());
        from_update.or(from_delete).or(from_redirect)
    });

    let create_form = NodeRef::<Form>::new();
    Effect::new(move |_| {
        if create.value().with(|value| matches!(value, Some(Ok(_)))) {
            if let Some(form) = create_form.get() {
                form.reset();
            }
        }
    });

    view! {
        <section class="panel" aria-labelledby="new-product">
            <h2 id="new-product">"Add a product"</h2>
            <ActionForm action=create node_ref=create_form attr:aria-labelledby="new-product" attr:class="product-form">
                <ProductFields prefix="new".to_owned() title=String::new() image=String::new() error=create_error/>
                <button type="submit">"Add product"</button>
            </ActionForm>
        </section>
        <section class="panel" aria-labelledby="product-list">
            <h2 id="product-list">"Products"</h2>
            <Suspense fallback=|| view! { <p class="status">"Loading products…"</p> }>
                {move || Suspend::new(async move {
                    match products.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(list)) if list.is_empty() => {
                            view! { <p class="empty">"No products yet: add the first one above."</p> }.into_any()
                        }
                        Ok(Some(list)) => {
                            let editing = query_id("edit");
                            let deleting = query_id("delete");
                            view! {
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
                                                view! { <ProductRow product mode update delete error=row_error/> }
                                            })
                                            .collect_view()}
                                    </tbody>
                                </table>
                            }
                                .into_any()
                        }
                        Err(err) => view! { <p role="alert" class="error">{err.to_string()}</p> }.into_any(),
                    }
                })}
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
fn ProductRow(
    product: Product,
    mode: RowMode,
    update: ServerAction<UpdateProduct>,
    delete: ServerAction<DeleteProduct>,
    error: Signal<Option<FieldError>>,
) -> impl IntoView {
    let id = product.id.to_string();
    let title = product.title.as_str().to_owned();
    let image = product.image.as_str().to_owned();
    let live = use_live();
    let (product_id, initial_likes) = (product.id, product.likes);
    let likes = move || {
        live.counts
            .with(|counts| counts.get(&product_id).copied())
            .unwrap_or(initial_likes)
    };
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
                <td class="likes">{likes}</td>
                <td class="actions">
                    <a href=format!("/admin?edit={id}") aria-label=format!("Edit {title}")>"Edit"</a>
                    <a href=format!("/admin?delete={id}") aria-label=format!("Delete {title}")>"Delete"</a>
                </td>
            </tr>
        }
        .into_any()
        }
        RowMode::Edit => {
            // Component children are closures that take what they use: prepare it first.
            let label = format!("Edit {title}");
            let prefix = format!("edit-{id}");
            let hidden_id = id.clone();
            view! {
                <tr data-product-id=id class="editing">
                    {thumbnail}
                    <td colspan="3">
                        <ActionForm action=update attr:aria-label=label attr:class="product-form">
                            <input type="hidden" name="id" value=hidden_id/>
                            <ProductFields prefix title image error/>
                            <div class="buttons">
                                <button type="submit">"Save"</button>
                                <a href="/admin">"Cancel"</a>
                            </div>
                        </ActionForm>
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
                        <ActionForm action=delete attr:aria-label=label attr:class="confirm">
                            <input type="hidden" name="id" value=hidden_id/>
                            <p>"Delete “" {title} "”? Its likes go with it."</p>
                            <div class="buttons">
                                <button type="submit" class="danger">"Delete"</button>
                                <a href="/admin">"Cancel"</a>
                            </div>
                            <FormError error/>
                        </ActionForm>
                    </td>
                </tr>
            }
            .into_any()
        }
    }
}

/// Title and image inputs, each with its error underneath.
#[component]
fn ProductFields(
    /// Makes the inputs' ids unique on the page (`new`, `edit-7`).
    prefix: String,
    title: String,
    image: String,
    error: Signal<Option<FieldError>>,
) -> impl IntoView {
    // What the image field holds once typing pauses, for the preview beside it: a picture is
    // not fetched for every half-typed address.
    let typed = RwSignal::new(image.clone());
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
        <Field id=format!("{prefix}-title") name="title" label="Title" kind="text" value=title error/>
        <Field
            id=format!("{prefix}-image")
            name="image"
            label="Image URL"
            kind="url"
            value=image
            error
            typed
        />
        {preview}
        <FormError error/>
    }
}

#[component]
fn Field(
    id: String,
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    value: String,
    /// The form's error; shown here when it names this field. Read through closures only, so
    /// nothing reactive is owned by this row (the table re-renders it freely).
    error: Signal<Option<FieldError>>,
    /// Kept up to date with what is typed, when given.
    #[prop(optional)]
    typed: Option<RwSignal<String>>,
) -> impl IntoView {
    let error_id = format!("{id}-error");
    // Counts the edits, so that only the last one of a burst of typing reaches `typed`.
    let edits = StoredValue::new(0u64);
    let message = move || {
        error
            .get()
            .filter(|err| err.field == name)
            .map(|err| err.message)
    };
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                value=value
                required
                aria-invalid=move || message().is_some().to_string()
                aria-describedby=error_id.clone()
                on:input=move |ev| {
                    if let Some(typed) = typed {
                        let value = event_target_value(&ev);
                        let this_edit = edits.get_value() + 1;
                        edits.set_value(this_edit);
                        // The form may be gone by then (saved, cancelled): `try_` leaves it be.
                        set_timeout(
                            move || {
                                if edits.try_get_value() == Some(this_edit) {
                                    let _ = typed.try_set(value);
                                }
                            },
                            PREVIEW_PAUSE,
                        );
                    }
                }
            />
            <p class="field-error" id=error_id>{message}</p>
        </div>
    }
}

/// An error that belongs to no single field (the session ended, the catalog is down…).
#[component]
fn FormError(error: Signal<Option<FieldError>>) -> impl IntoView {
    move || {
        error
            .get()
            .filter(|err| err.field != "title" && err.field != "image")
            .map(|err| view! { <p role="alert" class="error">{err.message}</p> })
    }
}
