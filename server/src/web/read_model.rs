//! The web service's copy of the catalog's products, fed only by catalog events. Applying an
//! event is idempotent and order-safe: each carries the product's version, a row only ever moves
//! to a higher version, and a deleted product leaves a tombstone so a late update cannot revive it.

use crate::bus::consumer::{HandleError, Handler};
use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::{first_time, Database};
use crate::events::{CatalogEvent, ProductSnapshot, ResyncEvent};
use app::domain::ProductId;
use sqlx::AnyConnection;

async fn upsert(conn: &mut AnyConnection, product: &ProductSnapshot) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into product (id, title, image, likes, version, deleted) values ($1, $2, $3, $4, $5, 0) \
         on conflict (id) do update set title = excluded.title, image = excluded.image, \
         likes = excluded.likes, version = excluded.version \
         where product.version < excluded.version",
    )
    .bind(product.id.get())
    .bind(product.title.as_str())
    .bind(product.image.as_str())
    .bind(product.likes)
    .bind(product.version)
    .execute(conn)
    .await?;
    Ok(())
}

async fn tombstone(
    conn: &mut AnyConnection,
    id: ProductId,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into product (id, title, image, likes, version, deleted) values ($1, '', '', 0, $2, 1) \
         on conflict (id) do update set deleted = 1, version = excluded.version \
         where product.version < excluded.version",
    )
    .bind(id.get())
    .bind(version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Asks the catalog for every product when the read model has never held one (a fresh
/// database). The request goes through the outbox, so it waits for the broker if need be.
pub async fn request_resync_if_empty(
    db: &Database,
    relay: &RelayWaker,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let known: i64 = sqlx::query_scalar("select count(*) from product")
        .fetch_one(&mut *tx)
        .await?;
    if known > 0 {
        return Ok(false);
    }
    outbox::enqueue(&mut tx, &Envelope::new(ResyncEvent::Requested {})).await?;
    tx.commit().await?;
    relay.wake();
    tracing::info!("read model empty: asked the catalog for every product");
    Ok(true)
}

/// Applies catalog events to the read model, each in one transaction with its dedupe record.
pub struct ReadModelHandler {
    pub db: Database,
    /// This instance's browsers hear of every change applied here, including changes made
    /// while the instance was down, which its own live queue never saw.
    pub live: std::sync::Arc<crate::live::LiveFeed>,
}

impl Handler for ReadModelHandler {
    type Event = CatalogEvent;
    const NAME: &'static str = "read_model";

    #[tracing::instrument(name = "apply_catalog_event", skip_all, fields(event_id = %envelope.id))]
    async fn handle(&self, envelope: Envelope<CatalogEvent>) -> Result<(), HandleError> {
        let mut tx = self.db.begin_write().await?;
        if !first_time(&mut tx, &envelope.id.to_string()).await? {
            tracing::debug!("already applied");
            return Ok(());
        }
        match &envelope.event {
            CatalogEvent::ProductCreated(product)
            | CatalogEvent::ProductUpdated(product)
            | CatalogEvent::LikesChanged(product) => upsert(&mut tx, product).await?,
            CatalogEvent::ProductDeleted { id, version } => {
                tombstone(&mut tx, *id, *version).await?
            }
        }
        tx.commit().await?;
        self.live.applied_to_read_model(envelope.event);
        Ok(())
    }
}
