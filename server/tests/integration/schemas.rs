//! The published event schemas (`docs/schemas/v2/`) as the tests apply them: installed in every
//! app the tests start, so each event the services enqueue is checked against the contract a
//! consumer in another language would read.

use server::events::schema::{family_of, DIRECTORY};
use std::collections::HashMap;
use std::sync::OnceLock;

fn validators() -> &'static HashMap<&'static str, jsonschema::Validator> {
    static VALIDATORS: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        ["catalog", "likes", "resync-request", "gallery"]
            .into_iter()
            .map(|name| {
                let path = format!("{}/../{DIRECTORY}/{name}.json", env!("CARGO_MANIFEST_DIR"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|err| panic!("{path} is committed: {err}"));
                let schema: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                let validator = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|err| panic!("{path} is a valid JSON Schema: {err}"));
                (name, validator)
            })
            .collect()
    })
}

/// Whether the event `json`, published with `routing_key`, matches its family's schema.
pub fn check(routing_key: &str, json: &str) -> Result<(), String> {
    let family = family_of(routing_key).ok_or_else(|| format!("no schema for {routing_key}"))?;
    let event: serde_json::Value = serde_json::from_str(json).map_err(|err| err.to_string())?;
    let problems: Vec<String> = validators()[family]
        .iter_errors(&event)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn the_schemas_accept_the_services_events_and_refuse_broken_ones() {
    let good = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"product.created","data":{"id":1,"title":"Dunes","image":"https://example.com/d.jpg","version":1,"epoch":1764633600000,"generation":0}}"#;
    assert_eq!(check("product.created", good), Ok(()));
    for broken in [
        // A product id of 0, an empty title, an unknown type.
        good.replace(r#""id":1"#, r#""id":0"#),
        good.replace("Dunes", ""),
        good.replace("product.created", "product.exploded"),
    ] {
        assert!(check("product.created", &broken).is_err(), "{broken}");
    }
    let counted = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"likes.counted","data":{"counted_at_ms":1764633600000,"counts":[{"id":3,"likes":2,"version":1764633600000123,"epoch":1}]}}"#;
    assert_eq!(check("likes.counted", counted), Ok(()));
    for broken in [
        // A negative count, a count without its version, a per-like event of v1.
        counted.replace(r#""likes":2"#, r#""likes":-1"#),
        counted.replace(r#","version":1764633600000123"#, ""),
        counted.replace("likes.counted", "like.added"),
    ] {
        assert!(check("likes.counted", &broken).is_err(), "{broken}");
    }
}
