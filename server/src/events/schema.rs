//! The published contract of the bus: a JSON Schema per event family, made from the Rust types
//! the services serialise, for consumers written in other languages. Committed under
//! `docs/schemas/v2/`; a test keeps them equal to the types (`UPDATE_SCHEMAS=1` rewrites them),
//! and the integration tests check every event the services enqueue against the committed files.

use super::{CatalogEvent, GalleryEvent, LikesEvent, ResyncEvent};
use crate::bus::Envelope;
use schemars::{JsonSchema, SchemaGenerator};

/// The version in every schema's `$id` and directory; a change that breaks consumers makes the
/// next one. v2: like counts are the web service's (`likes.counted`, one event per committed
/// batch); the catalog's product events no longer carry a count, and `product.likes_changed`
/// and the per-like `like.added`/`like.removed` of v1 are no longer published.
pub const VERSION: &str = "v2";

/// Where the schemas are committed, from the workspace root.
pub const DIRECTORY: &str = "docs/schemas/v2";

/// One event family: its file name, what it covers and its schema.
pub struct Family {
    pub name: &'static str,
    pub routing_keys: &'static str,
    pub schema: serde_json::Value,
}

fn family<E: JsonSchema>(name: &'static str, routing_keys: &'static str, title: &str) -> Family {
    let mut schema = SchemaGenerator::default()
        .into_root_schema_for::<Envelope<E>>()
        .to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".to_owned(),
            format!("urn:live-gallery:events:{VERSION}:{name}").into(),
        );
        object.insert("title".to_owned(), title.into());
    }
    Family {
        name,
        routing_keys,
        schema,
    }
}

/// Every family the services publish.
pub fn families() -> Vec<Family> {
    vec![
        family::<CatalogEvent>(
            "catalog",
            "product.*, resync.started, resync.finished on <namespace>.catalog",
            "An event the catalog publishes",
        ),
        family::<LikesEvent>(
            "likes",
            "likes.counted on <namespace>.web",
            "Like counts the web database committed",
        ),
        family::<ResyncEvent>(
            "resync-request",
            "resync.requested on <namespace>.web",
            "A web service asks the catalog for an authoritative resync",
        ),
        family::<GalleryEvent>(
            "gallery",
            "gallery.changed on <namespace>.web",
            "What a web read model committed, for every web instance's gallery",
        ),
    ]
}

/// The family an event with `routing_key` belongs to.
pub fn family_of(routing_key: &str) -> Option<&'static str> {
    Some(match routing_key {
        "resync.requested" => "resync-request",
        "gallery.changed" => "gallery",
        key if key.starts_with("product.") || key.starts_with("resync.") => "catalog",
        "likes.counted" => "likes",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(DIRECTORY)
            .join(format!("{name}.json"))
    }

    #[test]
    fn the_committed_schemas_are_those_of_the_rust_types() {
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        for family in families() {
            let text = serde_json::to_string_pretty(&family.schema).unwrap() + "\n";
            let path = file(family.name);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{} differs from the Rust types: run `UPDATE_SCHEMAS=1 cargo test -p server --lib schema` and commit it",
                path.display()
            );
        }
    }

    #[test]
    fn every_routing_key_has_a_family() {
        for key in [
            "product.created",
            "product.updated",
            "product.deleted",
            "resync.started",
            "resync.finished",
            "likes.counted",
            "resync.requested",
            "gallery.changed",
        ] {
            assert!(family_of(key).is_some(), "{key}");
        }
    }
}
