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
    /// The event could be applied later (database down, row locked…): try again.
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

    /// A short, stable name for logs and metrics (`read_model`, `likes`…).
    const NAME: &'static str;

    fn handle(
        &self,
        envelope: Envelope<Self::Event>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// Shortest and longest pause before a failed delivery is tried again.
const RETRY_PAUSE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Runs until `shutdown`: every delivery is acked or dead-lettered. Up to `concurrency`
/// deliveries are handled at once (handlers are order-insensitive: events carry versions and
/// sequences, and a handler serialises what must be serialised in its transaction). A delivery
/// whose handler fails for now is tried again in place, with growing pauses, rather than handed
/// back to the broker: a long database outage then never counts against the queue's delivery
/// limit. Deliveries held when it stops are requeued; it returns once all are settled.
pub async fn run<H: Handler>(
    mut subscription: Subscription,
    handler: H,
    mut shutdown: Shutdown,
    concurrency: usize,
) {
    let handler = std::sync::Arc::new(handler);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.len() >= concurrency.max(1) {
            in_flight.join_next().await;
        }
        let delivery = tokio::select! {
            _ = shutdown.wait() => break,
            delivery = subscription.next() => match delivery {
                Some(delivery) => delivery,
                None => break,
            },
        };
        let (handler, mut stop) = (handler.clone(), shutdown.clone());
        in_flight.spawn(async move { process(&*handler, delivery, &mut stop).await });
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!(consumer = H::NAME, "consumer stopped");
}

/// Handles one delivery until it is settled (or the process stops, which requeues it).
async fn process<H: Handler>(handler: &H, delivery: Delivery, shutdown: &mut Shutdown) {
    let mut pause = RETRY_PAUSE.0;
    loop {
        let envelope: Envelope<H::Event> = match serde_json::from_slice(&delivery.payload) {
            Ok(envelope) => envelope,
            Err(err) => {
                let reason = format!("undecodable message: {err}");
                tracing::warn!(consumer = H::NAME, routing_key = %delivery.routing_key, %reason, "dead-lettering");
                metrics::counter!("live_gallery_events_dead_lettered_total", "consumer" => H::NAME)
                    .increment(1);
                settle(delivery.dead_letter(&reason).await);
                return;
            }
        };
        let event_id = envelope.id;
        match handler.handle(envelope).await {
            Ok(()) => {
                metrics::counter!("live_gallery_events_consumed_total", "consumer" => H::NAME)
                    .increment(1);
                settle(delivery.ack().await);
                return;
            }
            Err(HandleError::Poison(reason)) => {
                tracing::warn!(consumer = H::NAME, %event_id, %reason, "dead-lettering");
                metrics::counter!("live_gallery_events_dead_lettered_total", "consumer" => H::NAME)
                    .increment(1);
                settle(delivery.dead_letter(&reason).await);
                return;
            }
            Err(err @ HandleError::Retry(_)) => {
                tracing::warn!(consumer = H::NAME, %event_id, error = %crate::error::chain(&err), "event not applied; retrying");
                metrics::counter!("live_gallery_events_retried_total", "consumer" => H::NAME)
                    .increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {},
                    _ = shutdown.wait() => {
                        settle(delivery.requeue().await);
                        return;
                    }
                }
                pause = (pause * 2).min(RETRY_PAUSE.1);
            }
        }
    }
}

fn settle(result: Result<(), super::BusError>) {
    if let Err(err) = result {
        // The broker will deliver it again; handlers are idempotent.
        tracing::warn!(error = %crate::error::chain(&err), "could not settle a delivery");
    }
}
