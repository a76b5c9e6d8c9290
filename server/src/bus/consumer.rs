//! The consumer loop: takes deliveries from a subscription, decodes each envelope once, hands
//! them to a handler, one at a time or in batches, and settles them by the outcome. It never dies
//! on one bad message.

use super::{Delivery, Envelope, Subscription};
use crate::shutdown::Shutdown;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The event can never be applied (it contradicts the schema or the data): dead-letter it.
    #[error("refused: {0}")]
    Poison(String),
    /// The event failed in a way that trying again will not fix (the data breaks a constraint,
    /// the database is read-only): it is tried [`LASTING_TRIES`] times, then dead-lettered with
    /// the reason.
    #[error("failed for good")]
    Lasting(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The event could be applied later (database down, row locked…): try again.
    #[error("failed for now")]
    Retry(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for HandleError {
    fn from(err: sqlx::Error) -> Self {
        if crate::db::is_lasting(&err) {
            HandleError::Lasting(Box::new(err))
        } else {
            HandleError::Retry(Box::new(err))
        }
    }
}

/// How many times an event whose handler fails for good is tried before it is dead-lettered:
/// more than once, in case the failure was in fact the state of the moment.
pub const LASTING_TRIES: u32 = 5;

/// Applies one family of events. Must be idempotent: delivery is at least once. Deliveries are
/// acked only after the handler returns `Ok`, so a handler commits its transaction first.
pub trait Handler: Send + Sync + 'static {
    type Event: DeserializeOwned + Clone + Send + Sync;

    /// A short, stable name for logs and metrics (`read_model`, `likes`…).
    const NAME: &'static str;

    /// Most events handed to `handle_batch` at once. 1: events go to `handle` one by one (up to
    /// the consumer's concurrency at once). More: the consumer takes whatever is ready, up to
    /// this many, hands it over in one call and settles the lot with one multiple ack.
    const BATCH: usize = 1;

    /// How long a batching handler lets deliveries gather after the first before it takes
    /// what has come (up to `BATCH`). Zero takes only what is ready at once. A copy kept for a
    /// view that no frame waits on (the catalog's counts) gathers a little, so a storm of small
    /// events costs it one commit per window rather than one per event.
    const GATHER: Duration = Duration::ZERO;

    fn handle(
        &self,
        envelope: Envelope<Self::Event>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;

    /// Applies a batch all or nothing (one transaction), in delivery order. `Poison` means some
    /// event in it can never be applied: the consumer then tries each event alone to find it.
    fn handle_batch(
        &self,
        batch: Vec<Envelope<Self::Event>>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send {
        async move {
            for envelope in batch {
                self.handle(envelope).await?;
            }
            Ok(())
        }
    }
}

/// Shortest and longest pause before a failed delivery is tried again.
const RETRY_PAUSE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Runs until `shutdown`: every delivery is acked or dead-lettered. A delivery (or batch) whose
/// handler fails for now is tried again in place, with growing pauses, rather than handed back
/// to the broker: a long database outage then never counts against the queue's delivery limit.
/// Deliveries held when it stops are requeued; it returns once all are settled.
///
/// Handlers with `BATCH` = 1 get up to `concurrency` deliveries at once (handlers are
/// order-insensitive: events carry versions and sequences). Batching handlers get one batch at a
/// time: everything ready, up to `BATCH`, so the batch grows with the load.
pub async fn run<H: Handler>(
    subscription: Subscription,
    handler: H,
    shutdown: Shutdown,
    concurrency: usize,
) {
    if H::BATCH > 1 {
        run_batches(subscription, handler, shutdown).await
    } else {
        run_each(subscription, handler, shutdown, concurrency).await
    }
    tracing::info!(consumer = H::NAME, "consumer stopped");
}

async fn run_each<H: Handler>(
    mut subscription: Subscription,
    handler: H,
    mut shutdown: Shutdown,
    concurrency: usize,
) {
    let handler = Arc::new(handler);
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
        in_flight.spawn(async move {
            let Some(decoded) = decode::<H>(delivery, &mut true).await else {
                return;
            };
            process(&*handler, vec![decoded], &mut stop, false).await
        });
    }
    while in_flight.join_next().await.is_some() {}
}

async fn run_batches<H: Handler>(
    mut subscription: Subscription,
    handler: H,
    mut shutdown: Shutdown,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => break,
            delivery = subscription.next() => match delivery {
                Some(delivery) => delivery,
                None => break,
            },
        };
        let mut batch = Vec::with_capacity(H::BATCH.min(256));
        // A `multiple` ack would also settle a refused delivery whose dead-lettering failed
        // half-way (its requeue unconfirmed): then each is acked alone.
        let mut clean = true;
        batch.extend(decode::<H>(first, &mut clean).await);
        take_ready::<H>(&mut subscription, &mut batch, &mut clean).await;
        if !H::GATHER.is_zero() && batch.len() < H::BATCH {
            // A plain pause, then what is in hand: nothing to cancel half-way, so no delivery
            // is ever taken from the subscription and dropped.
            tokio::select! {
                _ = tokio::time::sleep(H::GATHER) => {},
                _ = shutdown.wait() => {},
            }
            take_ready::<H>(&mut subscription, &mut batch, &mut clean).await;
        }
        if !batch.is_empty() {
            process(&handler, batch, &mut shutdown, clean).await;
        }
    }
}

/// Adds the deliveries ready now to `batch`, up to `H::BATCH`.
async fn take_ready<H: Handler>(
    subscription: &mut Subscription,
    batch: &mut Vec<Decoded<H::Event>>,
    clean: &mut bool,
) {
    while batch.len() < H::BATCH {
        let Some(delivery) = subscription.try_next() else {
            break;
        };
        batch.extend(decode::<H>(delivery, clean).await);
    }
}

/// A delivery and the envelope decoded from it.
type Decoded<E> = (Delivery, Envelope<E>);

/// Decodes a delivery's envelope; dead-letters (and returns `None` for) one that does not decode,
/// clearing `clean` if that could not be settled.
async fn decode<H: Handler>(delivery: Delivery, clean: &mut bool) -> Option<Decoded<H::Event>> {
    match serde_json::from_slice(&delivery.payload) {
        Ok(envelope) => Some((delivery, envelope)),
        Err(err) => {
            let reason = format!("undecodable message: {err}");
            tracing::warn!(consumer = H::NAME, routing_key = %delivery.routing_key, %reason, "dead-lettering");
            metrics::counter!("live_gallery_events_dead_lettered_total", "consumer" => H::NAME)
                .increment(1);
            *clean &= settle(delivery.dead_letter(&reason).await);
            None
        }
    }
}

/// Handles a batch until it is settled (or the process stops, which requeues it). A batch the
/// handler refuses as poison is split, so only the poisoned events are dead-lettered. `multiple`:
/// whether the batch may be settled with one `multiple` ack (only the batch loop, which holds
/// nothing else unsettled, may).
async fn process<H: Handler>(
    handler: &H,
    batch: Vec<Decoded<H::Event>>,
    shutdown: &mut Shutdown,
    multiple: bool,
) {
    let mut pause = RETRY_PAUSE.0;
    let mut lasting_failures = 0;
    loop {
        let envelopes: Vec<Envelope<H::Event>> = batch.iter().map(|(_, e)| e.clone()).collect();
        let first_id = envelopes.first().map(|e| e.id);
        match handler.handle_batch(envelopes).await {
            Ok(()) => {
                metrics::counter!("live_gallery_events_consumed_total", "consumer" => H::NAME)
                    .increment(batch.len() as u64);
                let deliveries: Vec<Delivery> =
                    batch.into_iter().map(|(delivery, _)| delivery).collect();
                if multiple && deliveries.len() > 1 {
                    settle(Delivery::ack_all(deliveries).await);
                } else {
                    for delivery in deliveries {
                        settle(delivery.ack().await);
                    }
                }
                return;
            }
            Err(HandleError::Poison(reason)) if batch.len() == 1 => {
                let (delivery, envelope) = batch.into_iter().next().expect("one delivery");
                tracing::warn!(consumer = H::NAME, event_id = %envelope.id, %reason, "dead-lettering");
                metrics::counter!("live_gallery_events_dead_lettered_total", "consumer" => H::NAME)
                    .increment(1);
                settle(delivery.dead_letter(&reason).await);
                return;
            }
            Err(HandleError::Poison(_) | HandleError::Lasting(_)) if batch.len() > 1 => {
                // Somewhere in the batch is an event that can never apply: find it alone.
                for single in batch {
                    Box::pin(process(handler, vec![single], shutdown, false)).await;
                }
                return;
            }
            Err(err @ HandleError::Lasting(_)) if lasting_failures + 1 >= LASTING_TRIES => {
                let (delivery, envelope) = batch.into_iter().next().expect("one delivery");
                let reason = format!(
                    "lasting database error after {LASTING_TRIES} tries: {}",
                    crate::error::chain(&err)
                );
                tracing::warn!(consumer = H::NAME, event_id = %envelope.id, %reason, "dead-lettering");
                metrics::counter!("live_gallery_events_dead_lettered_total", "consumer" => H::NAME)
                    .increment(1);
                settle(delivery.dead_letter(&reason).await);
                return;
            }
            Err(err) => {
                if matches!(err, HandleError::Lasting(_)) {
                    lasting_failures += 1;
                }
                tracing::warn!(consumer = H::NAME, event_id = ?first_id, events = batch.len(), error = %crate::error::chain(&err), "events not applied; retrying");
                metrics::counter!("live_gallery_events_retried_total", "consumer" => H::NAME)
                    .increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {},
                    _ = shutdown.wait() => {
                        for (delivery, _) in batch {
                            settle(delivery.requeue().await);
                        }
                        return;
                    }
                }
                pause = (pause * 2).min(RETRY_PAUSE.1);
            }
        }
    }
}

/// Logs a failed settle; true if it went through.
fn settle(result: Result<(), super::BusError>) -> bool {
    if let Err(err) = &result {
        // The broker will deliver it again; handlers are idempotent.
        tracing::warn!(error = %crate::error::chain(err), "could not settle a delivery");
    }
    result.is_ok()
}
