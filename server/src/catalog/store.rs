//! Products in the catalog database. Every change writes the product and its event in one
//! transaction; the outbox relay publishes the event afterwards.

use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::events::{CatalogEvent, ProductSnapshot};
use app::domain::{ImageUrl, ProductDraft, ProductId, ProductTitle};
use app::wire::Product;
use sqlx::any::AnyRow;
use sqlx::Row;

/// Reads and changes the catalog's products.
#[derive(Clone)]
pub struct CatalogStore {
    db: Database,
    relay: RelayWaker,
}

pub(super) fn snapshot(row: &AnyRow) -> Result<ProductSnapshot, sqlx::Error> {
    let invalid = |err| sqlx::Error::Decode(Box::new(err));
    Ok(ProductSnapshot {
        id: ProductId::from_stored(row.try_get("id")?),
        title: ProductTitle::parse(row.try_get("title")?).map_err(invalid)?,
        image: ImageUrl::parse(row.try_get("image")?).map_err(invalid)?,
        likes: row.try_get("likes")?,
        version: row.try_get("version")?,
        liked_at_ms: None,
    })
}

impl CatalogStore {
    /// A store over `db` that wakes `relay` after each change.
    pub fn new(db: Database, relay: RelayWaker) -> Self {
        Self { db, relay }
    }

    /// Every product, ordered by id.
    pub async fn list(&self) -> Result<Vec<Product>> {
        let rows = sqlx::query("select id, title, image, likes, version from product order by id")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| Ok(snapshot(row)?.product()))
            .collect()
    }

    /// Publishes every product's current snapshot again (as `product.updated`), for a web
    /// service whose read model starts empty. Consumers ignore what they already have.
    pub async fn republish_all(&self) -> Result<usize> {
        let mut tx = self.db.begin_write().await?;
        let rows = sqlx::query("select id, title, image, likes, version from product order by id")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let event = CatalogEvent::ProductUpdated(snapshot(row)?);
            outbox::enqueue(&mut tx, &Envelope::new(event)).await?;
        }
        tx.commit().await?;
        self.relay.wake();
        Ok(rows.len())
    }

    pub async fn get(&self, id: ProductId) -> Result<Product> {
        let row = sqlx::query("select id, title, image, likes, version from product where id = $1")
            .bind(id.get())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(Error::NotFound)?;
        Ok(snapshot(&row)?.product())
    }

    pub async fn create(&self, draft: &ProductDraft) -> Result<Product> {
        let mut tx = self.db.begin_write().await?;
        let row = sqlx::query(
            "insert into product (title, image, likes, version) values ($1, $2, 0, 1) \
             returning id, title, image, likes, version",
        )
        .bind(draft.title.as_str())
        .bind(draft.image.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let created = snapshot(&row)?;
        outbox::enqueue(
            &mut tx,
            &Envelope::new(CatalogEvent::ProductCreated(created.clone())),
        )
        .await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(product_id = %created.id, "product created");
        Ok(created.product())
    }

    /// Replaces the title and image.
    pub async fn update(&self, id: ProductId, draft: &ProductDraft) -> Result<Product> {
        let mut tx = self.db.begin_write().await?;
        let row = sqlx::query(
            "update product set title = $1, image = $2, version = version + 1 where id = $3 \
             returning id, title, image, likes, version",
        )
        .bind(draft.title.as_str())
        .bind(draft.image.as_str())
        .bind(id.get())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
        let updated = snapshot(&row)?;
        outbox::enqueue(
            &mut tx,
            &Envelope::new(CatalogEvent::ProductUpdated(updated.clone())),
        )
        .await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(product_id = %id, version = updated.version, "product updated");
        Ok(updated.product())
    }

    pub async fn delete(&self, id: ProductId) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let version: i64 =
            sqlx::query_scalar("delete from product where id = $1 returning version")
                .bind(id.get())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound)?;
        sqlx::query("delete from product_like where product_id = $1")
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
        let event = CatalogEvent::ProductDeleted {
            id,
            version: version + 1,
        };
        outbox::enqueue(&mut tx, &Envelope::new(event)).await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(product_id = %id, "product deleted");
        Ok(())
    }
}
