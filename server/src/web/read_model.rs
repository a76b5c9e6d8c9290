//! The web service's copy of the catalog's products, fed only by catalog events. Applying an
//! event is idempotent and order-safe: each carries the product's version, a row only ever moves
//! to a higher version, and a deleted product leaves a tombstone so a late update cannot revive it.

use crate::bus::consumer::{HandleError, Handler};
use crate::bus::Envelope;
use crate::db::{now_millis, Database};
use crate::events::{CatalogEvent, ProductSnapshot};
use app::domain::{ImageUrl, ProductId, ProductTitle};
use app::wire::Product;
use sqlx::{AnyConnection, Row};

/// Every product not deleted, ordered by id.
pub async fn list(db: &Database) -> Result<Vec<Product>, sqlx::Error> {
    let rows =
        sqlx::query("select id, title, image, likes from product where deleted = 0 order by id")
            .fetch_all(db.pool())
            .await?;
    let invalid = |err| sqlx::Error::Decode(Box::new(err));
    rows.into_iter()
        .map(|row| {
            Ok(Product {
                id: ProductId::from_stored(row.try_get("id")?),
                title: ProductTitle::parse(row.try_get("title")?).map_err(invalid)?,
                image: ImageUrl::parse(row.try_get("image")?).map_err(invalid)?,
                likes: row.try_get("likes")?,
            })
        })
        .collect()
}

/// Records `event_id` as applied; false if it already was.
pub async fn first_time(conn: &mut AnyConnection, event_id: &str) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into processed_event (event_id, processed_at_ms) values ($1, $2) on conflict (event_id) do nothing",
    )
    .bind(event_id)
    .bind(now_millis())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

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

/// Applies catalog events to the read model, each in one transaction with its dedupe record.
pub struct ReadModelHandler {
    pub db: Database,
}

impl Handler for ReadModelHandler {
    type Event = CatalogEvent;

    #[tracing::instrument(name = "apply_catalog_event", skip_all, fields(event_id = %envelope.id))]
    async fn handle(&self, envelope: Envelope<CatalogEvent>) -> Result<(), HandleError> {
        let mut tx = self.db.pool().begin().await?;
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
        Ok(())
    }
}
