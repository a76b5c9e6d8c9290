//! The consumer loop: takes deliveries from a subscription, decodes each envelope once, hands it
//! to a handler and settles it by the outcome. It never dies on one bad message.

use super::{Delivery, Envelope, Subscription};
use crate::shutdown::Shutdown;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The event can never be applied (it contradicts the schema or the data): dead-letter it.
    #[error("refused: {0}")]
    Poison(String),
    /// The event could be applied later (database down, row locked…): requeue it.
    #[error("failed for now")]
    Retry(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for HandleError {
    fn from(err: sqlx::Error) -> Self {
        HandleError::Retry(Box::new(err))
    }
}

/// Applies one family of events. Must be idempotent: delivery is at least once. The delivery is
/// acked only after `handle` returns `Ok`, so a handler commits its transaction first.
pub trait Handler: Send + Sync + 'static {
    type Event: DeserializeOwned + Send;

    fn handle(
        &self,
        envelope: Envelope<Self::Event>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// Shortest and longest pause before a failed delivery is retried.
const RETRY_PAUSE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Runs until `shutdown`: every delivery is acked, requeued or dead-lettered. Deliveries held
/// when it stops are requeued by the broker.
pub async fn run<H: Handler>(mut subscription: Subscription, handler: H, mut shutdown: Shutdown) {
    let mut pause = RETRY_PAUSE.0;
    loop {
        let delivery = tokio::select! {
            _ = shutdown.wait() => break,
            delivery = subscription.next() => match delivery {
                Some(delivery) => delivery,
                None => break,
            },
        };
        match process(&handler, delivery).await {
            None => pause = RETRY_PAUSE.0,
            Some(delivery) => {
                // Back off so a database outage is not turned into a hot loop, then let the
                // broker deliver it again.
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {},
                    _ = shutdown.wait() => {},
                }
                pause = (pause * 2).min(RETRY_PAUSE.1);
                if let Err(err) = delivery.requeue().await {
                    tracing::warn!(error = %err, "requeue failed; the broker redelivers on reconnect");
                }
            }
        }
    }
    tracing::info!("consumer stopped");
}

/// Handles and settles one delivery; gives it back if it should be retried.
async fn process<H: Handler>(handler: &H, delivery: Delivery) -> Option<Delivery> {
    let envelope: Envelope<H::Event> = match serde_json::from_slice(&delivery.payload) {
        Ok(envelope) => envelope,
        Err(err) => {
            let reason = format!("undecodable message: {err}");
            tracing::warn!(routing_key = %delivery.routing_key, %reason, "dead-lettering");
            settle(delivery.dead_letter(&reason).await);
            return None;
        }
    };
    let event_id = envelope.id;
    match handler.handle(envelope).await {
        Ok(()) => {
            settle(delivery.ack().await);
            None
        }
        Err(HandleError::Poison(reason)) => {
            tracing::warn!(%event_id, %reason, "dead-lettering");
            settle(delivery.dead_letter(&reason).await);
            None
        }
        Err(err @ HandleError::Retry(_)) => {
            tracing::warn!(%event_id, error = %crate::error::chain(&err), "event not applied; will retry");
            Some(delivery)
        }
    }
}

fn settle(result: Result<(), super::BusError>) {
    if let Err(err) = result {
        // The broker will deliver it again; handlers are idempotent.
        tracing::warn!(error = %crate::error::chain(&err), "could not settle a delivery");
    }
}
