//! Administrator sessions, kept in the web database so that every web instance on it knows them:
//! a random id per sign-in, valid for `app::api::ADMIN_SESSION_SECONDS`, ended by sign-out. The
//! cookie holds only the id, never the administrator token, and the table only the id's hash.

use crate::db::{now_millis, Database, Sql};
use sha2::{Digest, Sha256};

const FORGET_ENDED: Sql = crate::shared!("delete from admin_session where expires_at_ms <= $1");

const OPEN: Sql =
    crate::shared!("insert into admin_session (id_hash, expires_at_ms) values ($1, $2)");

const FIND_OPEN: Sql = crate::shared!(
    "select expires_at_ms from admin_session where id_hash = $1 and expires_at_ms > $2"
);

const CLOSE: Sql = crate::shared!("delete from admin_session where id_hash = $1");

/// The sessions of one web database.
#[derive(Clone)]
pub struct AdminSessions {
    db: Database,
}

fn hash(id: &str) -> String {
    format!("{:x}", Sha256::digest(id.as_bytes()))
}

impl AdminSessions {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Starts a session; returns its id, for the cookie. Sessions that have ended are deleted.
    pub async fn open(&self) -> Result<String, sqlx::Error> {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = now_millis();
        let expires = now + i64::from(app::api::ADMIN_SESSION_SECONDS) * 1000;
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(self.db.sql(&FORGET_ENDED))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.db.sql(&OPEN))
            .bind(hash(&id))
            .bind(expires)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Whether `id` names a session that has not ended.
    pub async fn is_open(&self, id: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar(self.db.sql(&FIND_OPEN))
            .bind(hash(id))
            .bind(now_millis())
            .fetch_optional(self.db.pool())
            .await?;
        Ok(found.is_some())
    }

    /// Ends the session `id` on every instance.
    pub async fn close(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(self.db.sql(&CLOSE))
            .bind(hash(id))
            .execute(self.db.writer())
            .await?;
        Ok(())
    }
}
