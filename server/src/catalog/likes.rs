//! The catalog's consumer of like events: applies each visitor's like changes in order, keeps
//! every product's count equal to the visitors liking it, and publishes the new count.

use super::store::snapshot;
use crate::bus::consumer::{HandleError, Handler};
use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::{first_time, Database};
use crate::events::{CatalogEvent, LikeEvent};

/// Applies `like.added` and `like.removed`, each in one transaction with its dedupe record and
/// the `product.likes_changed` event it causes.
pub struct LikesHandler {
    pub db: Database,
    pub relay: RelayWaker,
}

impl Handler for LikesHandler {
    type Event = LikeEvent;
    const NAME: &'static str = "likes";

    #[tracing::instrument(name = "apply_like_event", skip_all, fields(event_id = %envelope.id))]
    async fn handle(&self, envelope: Envelope<LikeEvent>) -> Result<(), HandleError> {
        let change = envelope.event.change();
        let mut tx = self.db.begin_write().await?;
        if !first_time(&mut tx, &envelope.id.to_string()).await? {
            tracing::debug!("already applied");
            return Ok(());
        }
        // Lock the product's row before anything else: likes of one product then apply one at
        // a time even when deliveries are handled concurrently, so the recount below sees every
        // like committed before it.
        let known = sqlx::query("update product set version = version where id = $1")
            .bind(change.product_id.get())
            .execute(&mut *tx)
            .await?;
        if known.rows_affected() == 0 {
            // The product was deleted after the like: nothing left to count.
            tracing::debug!(product_id = %change.product_id, "like for a deleted product ignored");
            tx.commit().await?;
            return Ok(());
        }
        // Only a newer change of this visitor's like takes effect, whatever the arrival order.
        let applied = sqlx::query(
            "insert into product_like (product_id, visitor_id, liked, seq) values ($1, $2, $3, $4) \
             on conflict (product_id, visitor_id) do update set liked = excluded.liked, seq = excluded.seq \
             where product_like.seq < excluded.seq",
        )
        .bind(change.product_id.get())
        .bind(change.visitor_id.as_str())
        .bind(i64::from(envelope.event.liked()))
        .bind(change.seq)
        .execute(&mut *tx)
        .await?;
        if applied.rows_affected() == 0 {
            tracing::debug!("older than what was applied; ignored");
            tx.commit().await?;
            return Ok(());
        }
        // Recount rather than add one: the count can never drift from the rows.
        let row = sqlx::query(
            "update product set likes = (select count(*) from product_like where product_id = $1 and liked = 1), \
             version = version + 1 where id = $1 returning id, title, image, likes, version",
        )
        .bind(change.product_id.get())
        .fetch_one(&mut *tx)
        .await?;
        let product = snapshot(&row)?;
        outbox::enqueue(&mut tx, &Envelope::new(CatalogEvent::LikesChanged(product))).await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(())
    }
}

/// Answers `resync.requested` by publishing every product again.
pub struct ResyncHandler {
    pub store: super::CatalogStore,
}

impl Handler for ResyncHandler {
    type Event = crate::events::ResyncEvent;
    const NAME: &'static str = "resync";

    #[tracing::instrument(name = "answer_resync", skip_all, fields(event_id = %envelope.id))]
    async fn handle(&self, envelope: Envelope<Self::Event>) -> Result<(), HandleError> {
        // Repeating this is harmless (consumers keep the highest version), so no dedupe record.
        let count = self
            .store
            .republish_all()
            .await
            .map_err(|err| HandleError::Retry(Box::new(err)))?;
        tracing::info!(products = count, "resync answered");
        Ok(())
    }
}
