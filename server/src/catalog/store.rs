//! Products in the catalog database. Every change writes the product and its event in one
//! transaction; the outbox relay publishes the event afterwards.

use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::sql::text;
use crate::db::{Database, Engine, Sql};
use crate::error::{Error, Result};
use crate::events::{CatalogEra, CatalogEvent, ProductSnapshot, ResyncEnd, ResyncStart};
use app::domain::{ImageUrl, ProductDraft, ProductId, ProductTitle};
use app::wire::Product;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// Reads and changes the catalog's products.
#[derive(Clone)]
pub struct CatalogStore {
    db: Database,
    relay: RelayWaker,
}

pub(super) fn snapshot(row: &AnyRow, era: CatalogEra) -> Result<ProductSnapshot, sqlx::Error> {
    let invalid = |err| sqlx::Error::Decode(Box::new(err));
    Ok(ProductSnapshot {
        id: ProductId::from_stored(row.try_get("id")?),
        title: ProductTitle::parse(&text(row, "title")?).map_err(invalid)?,
        image: ImageUrl::parse(&text(row, "image")?).map_err(invalid)?,
        version: row.try_get("version")?,
        epoch: era.epoch,
        generation: era.generation,
    })
}

/// A product as the admin API shows it: its face and the catalog's copy of its count.
fn product(row: &AnyRow) -> Result<Product, sqlx::Error> {
    let face = snapshot(row, CatalogEra::default())?;
    Ok(face.product(row.try_get("likes")?, row.try_get("likes_version")?))
}

/// The catalog's epoch and generation, read inside a transaction after its first statement on
/// `product`: on PostgreSQL and MariaDB that statement waits for a resync in progress (which
/// locks the products), so the generation read here is never older than the products the
/// transaction sees. (MariaDB takes a transaction's snapshot at its first plain read, which
/// thus comes after that wait too.)
pub(super) async fn era(conn: &mut AnyConnection) -> Result<CatalogEra, sqlx::Error> {
    let row = sqlx::query("select epoch, generation from catalog_epoch")
        .fetch_one(conn)
        .await?;
    Ok(CatalogEra {
        epoch: row.try_get("epoch")?,
        generation: row.try_get("generation")?,
    })
}

/// Starts a new generation: the later of the last one plus one and the time now in ms.
const NEXT_GENERATION: Sql = Sql::each(
    "update catalog_epoch set generation = \
     greatest(generation + 1, (extract(epoch from clock_timestamp()) * 1000)::bigint)",
    "update catalog_epoch set generation = \
     max(generation + 1, cast((julianday('now') - 2440587.5) * 86400000.0 as integer))",
    "update catalog_epoch set generation = \
     greatest(generation + 1, cast(unix_timestamp(now(3)) * 1000 as signed))",
);

/// Holds off every write to the products while a resync reads them (on SQLite the one writer
/// already does). MariaDB's `lock tables` would commit the transaction, so there every product
/// row is locked instead: under REPEATABLE READ (its default) the scan's next-key locks also
/// hold off inserts, up to the end of the table.
const LOCK_ALL_PRODUCTS: Sql = Sql::each(
    "lock table product in exclusive mode",
    "select 1",
    "select id from product for update",
);

const GET: Sql = crate::shared!(
    "select id, title, image, likes, likes_version, version from product where id = $1"
);

/// Adds a product; `db::inserted_id` gives its id on every engine.
const CREATE: Sql = Sql::each(
    "insert into product (title, image, likes, version) values ($1, $2, 0, 1) returning id",
    "insert into product (title, image, likes, version) values ($1, $2, 0, 1) returning id",
    "insert into product (title, image, likes, version) values (?, ?, 0, 1)",
);

/// Replaces a product's title and image. MariaDB has no `update … returning`: there the
/// statement only changes the row, and `update` reads it back.
const UPDATE: Sql = Sql::each(
    "update product set title = $1, image = $2, version = version + 1 where id = $3 \
     returning id, title, image, likes, likes_version, version",
    "update product set title = $1, image = $2, version = version + 1 where id = $3 \
     returning id, title, image, likes, likes_version, version",
    "update product set title = ?, image = ?, version = version + 1 where id = ?",
);

/// The version of a product about to be deleted, locked until the deletion commits.
const LOCK_FOR_DELETE: Sql = Sql::each(
    "select version from product where id = $1 for update",
    "select version from product where id = $1",
    "select version from product where id = ? for update",
);

const DELETE: Sql = crate::shared!("delete from product where id = $1");

impl CatalogStore {
    /// A store over `db` that wakes `relay` after each change.
    pub fn new(db: Database, relay: RelayWaker) -> Self {
        Self { db, relay }
    }

    /// Every product, ordered by id.
    pub async fn list(&self) -> Result<Vec<Product>> {
        let rows = sqlx::query(
            "select id, title, image, likes, likes_version, version from product order by id",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(|row| Ok(product(row)?)).collect()
    }

    /// An authoritative resync: starts a new generation and publishes, between `resync.started`
    /// and `resync.finished`, every product stamped with it. Each read model ends with exactly
    /// these products, whatever it held before (stale versions, products deleted meanwhile, a
    /// bogus version from elsewhere). Writes to the products wait while it reads them, so every
    /// change after it carries the new generation and a higher version.
    pub async fn resync(&self) -> Result<ResyncStart> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(self.db.sql(&LOCK_ALL_PRODUCTS))
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.db.sql(&NEXT_GENERATION))
            .execute(&mut *tx)
            .await?;
        let era = era(&mut tx).await?;
        let rows = sqlx::query("select id, title, image, version from product order by id")
            .fetch_all(&mut *tx)
            .await?;
        let marker = ResyncStart {
            epoch: era.epoch,
            generation: era.generation,
            products: rows.len() as u64,
        };
        let mut events = Vec::with_capacity(rows.len() + 2);
        let mut ids = Vec::with_capacity(rows.len());
        events.push(Envelope::new(CatalogEvent::ResyncStarted(marker)));
        for row in &rows {
            let product = snapshot(row, era)?;
            ids.push(product.id.get());
            events.push(Envelope::new(CatalogEvent::ProductUpdated(product)));
        }
        events.push(Envelope::new(CatalogEvent::ResyncFinished(ResyncEnd {
            epoch: era.epoch,
            generation: era.generation,
            ids,
        })));
        outbox::enqueue_all(&mut tx, &events).await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(
            products = marker.products,
            generation = marker.generation,
            "authoritative resync published"
        );
        Ok(marker)
    }

    pub async fn get(&self, id: ProductId) -> Result<Product> {
        let row = sqlx::query(self.db.sql(&GET))
            .bind(id.get())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(Error::NotFound)?;
        Ok(product(&row)?)
    }

    pub async fn create(&self, draft: &ProductDraft) -> Result<Product> {
        let mut tx = self.db.begin_write().await?;
        let insert = sqlx::query(self.db.sql(&CREATE))
            .bind(draft.title.as_str())
            .bind(draft.image.as_str());
        let id = crate::db::inserted_id(self.db.engine(), insert, &mut *tx).await?;
        let row = sqlx::query(self.db.sql(&GET))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let created = snapshot(&row, era(&mut tx).await?)?;
        let shown = product(&row)?;
        outbox::enqueue(
            &mut tx,
            &Envelope::new(CatalogEvent::ProductCreated(created.clone())),
        )
        .await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(product_id = %created.id, "product created");
        Ok(shown)
    }

    /// Replaces the title and image.
    pub async fn update(&self, id: ProductId, draft: &ProductDraft) -> Result<Product> {
        let mut tx = self.db.begin_write().await?;
        let update = sqlx::query(self.db.sql(&UPDATE))
            .bind(draft.title.as_str())
            .bind(draft.image.as_str())
            .bind(id.get());
        let row = if self.db.engine() == Engine::MySql {
            // No `update … returning` on MariaDB: read the row back, still locked by this
            // transaction.
            update.execute(&mut *tx).await?;
            sqlx::query(self.db.sql(&GET))
                .bind(id.get())
                .fetch_optional(&mut *tx)
                .await?
        } else {
            update.fetch_optional(&mut *tx).await?
        }
        .ok_or(Error::NotFound)?;
        let updated = snapshot(&row, era(&mut tx).await?)?;
        let shown = product(&row)?;
        outbox::enqueue(
            &mut tx,
            &Envelope::new(CatalogEvent::ProductUpdated(updated.clone())),
        )
        .await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(product_id = %id, version = updated.version, "product updated");
        Ok(shown)
    }

    pub async fn delete(&self, id: ProductId) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let version: i64 = sqlx::query_scalar(self.db.sql(&LOCK_FOR_DELETE))
            .bind(id.get())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
        sqlx::query(self.db.sql(&DELETE))
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
        let event = CatalogEvent::deleted(id, era(&mut tx).await?, version + 1);
        outbox::enqueue(&mut tx, &Envelope::new(event)).await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(product_id = %id, "product deleted");
        Ok(())
    }
}
