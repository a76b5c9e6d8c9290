//! The web service's copy of the catalog's products, fed by catalog events.

use crate::db::Database;
use app::domain::{ImageUrl, ProductId, ProductTitle};
use app::wire::Product;
use sqlx::Row;

/// Every product, ordered by id.
pub async fn list(db: &Database) -> Result<Vec<Product>, sqlx::Error> {
    let rows = sqlx::query("select id, title, image, likes from product order by id")
        .fetch_all(db.pool())
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Product {
                id: ProductId::from_stored(row.try_get("id")?),
                title: ProductTitle::parse(row.try_get("title")?)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                image: ImageUrl::parse(row.try_get("image")?)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                likes: row.try_get("likes")?,
            })
        })
        .collect()
}
