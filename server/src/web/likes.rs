//! Likes as the web service records them: one per visitor per product, each change written with
//! its `like.*` event in one transaction.

use crate::bus::outbox::{self, RelayWaker};
use crate::bus::Envelope;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::events::{LikeChange, LikeEvent};
use app::domain::{ImageUrl, ProductId, ProductTitle, VisitorId};
use app::wire::{GalleryItem, LikeState, Product};
use sqlx::{AnyConnection, Row};

/// Records likes in the web database.
#[derive(Clone)]
pub struct Likes {
    pub db: Database,
    pub relay: RelayWaker,
}

impl Likes {
    /// The gallery for `visitor`: every product, and whether they like it.
    pub async fn gallery(&self, visitor: &VisitorId) -> Result<Vec<GalleryItem>> {
        let rows = sqlx::query(
            "select p.id, p.title, p.image, p.likes, coalesce(v.liked, 0) as liked from product p \
             left join visitor_like v on v.product_id = p.id and v.visitor_id = $1 \
             where p.deleted = 0 order by p.id",
        )
        .bind(visitor.as_str())
        .fetch_all(self.db.pool())
        .await?;
        let invalid = |err| sqlx::Error::Decode(Box::new(err));
        rows.iter()
            .map(|row| {
                Ok(GalleryItem {
                    product: Product {
                        id: ProductId::from_stored(row.try_get("id")?),
                        title: ProductTitle::parse(row.try_get("title")?).map_err(invalid)?,
                        image: ImageUrl::parse(row.try_get("image")?).map_err(invalid)?,
                        likes: row.try_get("likes")?,
                    },
                    liked: row.try_get::<i64, _>("liked")? == 1,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Error::from)
    }

    /// `visitor` likes `id`. 409 if they already do, 404 for an unknown product.
    pub async fn like(&self, visitor: &VisitorId, id: ProductId) -> Result<LikeState> {
        let mut tx = self.db.begin_write().await?;
        ensure_product(&mut tx, id).await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "insert into visitor_like (visitor_id, product_id, liked, seq) values ($1, $2, 1, 1) \
             on conflict (visitor_id, product_id) do update set liked = 1, seq = visitor_like.seq + 1 \
             where visitor_like.liked = 0 returning seq",
        )
        .bind(visitor.as_str())
        .bind(id.get())
        .fetch_optional(&mut *tx)
        .await?;
        let seq =
            seq.ok_or_else(|| Error::Conflict("You already like this picture.".to_owned()))?;
        let state = self
            .record(&mut tx, LikeEvent::Added(change(visitor, id, seq)))
            .await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(state)
    }

    /// `visitor` takes back their like of `id`. 409 if they do not like it, 404 for an unknown
    /// product.
    pub async fn unlike(&self, visitor: &VisitorId, id: ProductId) -> Result<LikeState> {
        let mut tx = self.db.begin_write().await?;
        ensure_product(&mut tx, id).await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "update visitor_like set liked = 0, seq = seq + 1 \
             where visitor_id = $1 and product_id = $2 and liked = 1 returning seq",
        )
        .bind(visitor.as_str())
        .bind(id.get())
        .fetch_optional(&mut *tx)
        .await?;
        let seq =
            seq.ok_or_else(|| Error::Conflict("You do not like this picture yet.".to_owned()))?;
        let state = self
            .record(&mut tx, LikeEvent::Removed(change(visitor, id, seq)))
            .await?;
        tx.commit().await?;
        self.relay.wake();
        Ok(state)
    }

    /// Queues the event and answers with the count of visitors liking the product now.
    async fn record(&self, tx: &mut AnyConnection, event: LikeEvent) -> Result<LikeState> {
        let id = event.change().product_id;
        let liked = event.liked();
        let envelope = Envelope::new(event);
        outbox::enqueue(&mut *tx, &envelope).await?;
        tracing::info!(event_id = %envelope.id, product_id = %id, liked, "like recorded");
        metrics::counter!("live_gallery_likes_total", "action" => if liked { "like" } else { "unlike" }).increment(1);
        let likes: i64 = sqlx::query_scalar(
            "select count(*) from visitor_like where product_id = $1 and liked = 1",
        )
        .bind(id.get())
        .fetch_one(&mut *tx)
        .await?;
        Ok(LikeState { id, likes, liked })
    }
}

fn change(visitor: &VisitorId, product_id: ProductId, seq: i64) -> LikeChange {
    LikeChange {
        product_id,
        visitor_id: visitor.clone(),
        seq,
    }
}

async fn ensure_product(conn: &mut AnyConnection, id: ProductId) -> Result<()> {
    let known: Option<i64> =
        sqlx::query_scalar("select id from product where id = $1 and deleted = 0")
            .bind(id.get())
            .fetch_optional(conn)
            .await?;
    known.map(drop).ok_or(Error::NotFound)
}
