//! The JSON envelope every event travels in: `{"id", "type", "occurred_at", "data"}`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event family: a serde enum tagged `type` with its payload under `data`
/// (`#[serde(tag = "type", content = "data")]`), whose tags double as routing keys.
pub trait Event: Serialize {
    /// The routing key, equal to the `type` tag (`product.created`, `like.added`…).
    fn routing_key(&self) -> &'static str;
}

/// An event with its identity and time. `id` is unique per event and is how consumers drop
/// duplicates; `occurred_at` is RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope<E> {
    pub id: Uuid,
    #[schemars(extend("format" = "date-time"))]
    pub occurred_at: String,
    #[serde(flatten)]
    pub event: E,
}

impl<E: Event> Envelope<E> {
    /// Wraps `event` with a fresh id and the current time.
    pub fn new(event: E) -> Self {
        let occurred_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            id: Uuid::new_v4(),
            occurred_at,
            event,
        }
    }

    pub fn routing_key(&self) -> &'static str {
        self.event.routing_key()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise to JSON")
    }

    /// The envelope as the bus publishes it: its routing key, its id as the message id.
    pub fn to_message(&self) -> super::OutgoingMessage {
        super::OutgoingMessage {
            routing_key: self.routing_key().to_owned(),
            message_id: self.id.to_string(),
            payload: self.to_json().into_bytes(),
        }
    }

    /// `occurred_at` as Unix milliseconds, if it reads as RFC 3339.
    pub fn occurred_at_ms(&self) -> Option<i64> {
        let at = time::OffsetDateTime::parse(
            &self.occurred_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Sample {
        #[serde(rename = "sample.happened")]
        Happened { n: i64 },
    }

    impl Event for Sample {
        fn routing_key(&self) -> &'static str {
            "sample.happened"
        }
    }

    #[test]
    fn an_envelope_has_id_type_time_and_data_at_the_top_level() {
        let envelope = Envelope::new(Sample::Happened { n: 3 });
        let json: serde_json::Value = serde_json::from_str(&envelope.to_json()).unwrap();
        assert_eq!(json["type"], "sample.happened");
        assert_eq!(json["data"]["n"], 3);
        assert_eq!(json["id"], envelope.id.to_string());
        assert!(json["occurred_at"].as_str().unwrap().ends_with('Z'));
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let at = envelope.occurred_at_ms().unwrap();
        assert!(
            (now_ms - 2000..=now_ms + 1000).contains(&at),
            "{at} near {now_ms}"
        );
    }

    #[test]
    fn an_envelope_decodes_back_to_the_same_event() {
        let envelope = Envelope::new(Sample::Happened { n: 9 });
        let back: Envelope<Sample> = serde_json::from_str(&envelope.to_json()).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn an_unknown_type_does_not_decode() {
        let raw = r#"{"id":"6f1c1e8e-8f1e-4c1e-9a51-8e0b8f1f2a3b","occurred_at":"2026-01-01T00:00:00Z","type":"sample.other","data":{}}"#;
        assert!(serde_json::from_str::<Envelope<Sample>>(raw).is_err());
    }
}
