//! Database access for both services: one pool per database, SQLite, PostgreSQL or MySQL/MariaDB
//! chosen by the URL, and each service's own migrations run at start-up (a failed migration stops the start).

use crate::config::Secret;
use sqlx::any::{AnyPoolOptions, AnyQueryResult};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::sync::Once;
use std::time::Duration;

pub mod sql;
pub use sql::{Engine, Sql};

/// How long a request waits for a pooled connection unless configured (`DATABASE_ACQUIRE_TIMEOUT_MS`).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which service a database belongs to; each has its own tables and migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Catalog,
    Web,
}

static CATALOG_POSTGRES: Migrator = sqlx::migrate!("./migrations/catalog/postgres");
static CATALOG_SQLITE: Migrator = sqlx::migrate!("./migrations/catalog/sqlite");
static WEB_POSTGRES: Migrator = sqlx::migrate!("./migrations/web/postgres");
static WEB_SQLITE: Migrator = sqlx::migrate!("./migrations/web/sqlite");
static CATALOG_MYSQL: Migrator = sqlx::migrate!("./migrations/catalog/mysql");
static WEB_MYSQL: Migrator = sqlx::migrate!("./migrations/web/mysql");

/// Whether `err` will come back however often the statement is tried again: the data breaks a
/// rule (SQLSTATE classes 22 and 23 on PostgreSQL and MySQL, SQLite's constraint, mismatch and range codes),
/// the database is read-only (25006, SQLite's readonly codes), or a row does not decode. Lost
/// connections, timeouts, serialization failures (40001, 40P01) and SQLite's busy and locked
/// codes pass.
pub fn is_lasting(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            // PostgreSQL's and MySQL's SQLSTATE: five characters.
            Some(code) if code.len() == 5 => {
                code.starts_with("22") || code.starts_with("23") || code == "25006"
            }
            // SQLite's extended result code, a number whose low byte is the primary code.
            Some(code) => code.parse::<i32>().is_ok_and(|code| {
                const READONLY: i32 = 8;
                const CONSTRAINT: i32 = 19;
                const MISMATCH: i32 = 20;
                const RANGE: i32 = 25;
                matches!(code & 0xff, READONLY | CONSTRAINT | MISMATCH | RANGE)
            }),
            None => false,
        },
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => true,
        _ => false,
    }
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL: use sqlite://path, postgres://… or mysql://…")]
    UnsupportedUrl,
    #[error("cannot create the directory for the SQLite file")]
    CreateDir(#[source] std::io::Error),
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("TLS to the database failed (see sslmode and sslrootcert for PostgreSQL, ssl-mode and ssl-ca for MySQL, in the URL)")]
    Tls(#[source] sqlx::Error),
    #[error("migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl DbError {
    /// A failed connection: a TLS failure, which waiting does not fix, or any other.
    fn connect(err: sqlx::Error) -> Self {
        if matches!(err, sqlx::Error::Tls(_)) || crate::tls::failure(&err).is_some() {
            Self::Tls(err)
        } else {
            Self::Connect(err)
        }
    }
}

/// A service's database: its pool and engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    /// Where writes go: the pool itself on PostgreSQL, one connection on SQLite.
    writer: AnyPool,
    engine: Engine,
    description: String,
}

impl Database {
    /// Opens the pool, applies the service's migrations and returns the ready database.
    pub async fn connect(url: &Secret, service: Service, pool_size: u32) -> Result<Self, DbError> {
        Self::connect_with(url, service, pool_size, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// `connect`, with a request waiting at most `acquire_timeout` for a connection of the pool:
    /// past it the request fails (503), rather than queueing behind a pool that is exhausted.
    pub async fn connect_with(
        url: &Secret,
        service: Service,
        pool_size: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, DbError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let raw = url.expose();
        let (engine, url) = if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            (Engine::Postgres, raw.to_owned())
        } else if raw.starts_with("mysql://") || raw.starts_with("mariadb://") {
            (Engine::MySql, raw.to_owned())
        } else if let Some(path) = raw.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or_default();
            if let Some(dir) = std::path::Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(DbError::CreateDir)?;
            }
            let url = if raw.contains('?') {
                raw.to_owned()
            } else {
                format!("{raw}?mode=rwc")
            };
            (Engine::Sqlite, url)
        } else {
            return Err(DbError::UnsupportedUrl);
        };

        let options = move |size: u32| {
            AnyPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(acquire_timeout)
                // No ping before every checkout (a round trip per transaction): a connection
                // that died fails its first statement instead, which every caller already
                // treats as passing (503, retry in place, next relay round), and the pool
                // drops it.
                .test_before_acquire(false)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if engine == Engine::Sqlite {
                            // WAL lets readers run beside the one writer; the busy timeout makes
                            // a writer of another process wait for the lock instead of failing.
                            conn.execute(
                                "pragma journal_mode = wal; pragma synchronous = normal; \
                                 pragma busy_timeout = 5000; pragma foreign_keys = on;",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = options(pool_size)
            .connect(&url)
            .await
            .map_err(DbError::connect)?;
        // SQLite takes one writer at a time. Writers of this process queue for one connection
        // of their own, in order, instead of racing for the file lock and sleeping in SQLite's
        // busy handler; readers keep the other pool.
        let writer = match engine {
            Engine::Postgres | Engine::MySql => pool.clone(),
            Engine::Sqlite => options(1).connect(&url).await.map_err(DbError::connect)?,
        };

        let migrator = match (service, engine) {
            (Service::Catalog, Engine::Postgres) => &CATALOG_POSTGRES,
            (Service::Catalog, Engine::Sqlite) => &CATALOG_SQLITE,
            (Service::Web, Engine::Postgres) => &WEB_POSTGRES,
            (Service::Web, Engine::Sqlite) => &WEB_SQLITE,
            (Service::Catalog, Engine::MySql) => &CATALOG_MYSQL,
            (Service::Web, Engine::MySql) => &WEB_MYSQL,
        };
        migrator.run(&pool).await.map_err(DbError::Migrate)?;

        Ok(Self {
            pool,
            writer,
            engine,
            description: describe(raw, engine),
        })
    }

    /// For reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For a single write statement outside `begin_write`.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// `sql` in this database's dialect.
    pub fn sql(&self, sql: &Sql) -> &'static str {
        sql.of(self.engine)
    }

    /// Where the data lives, without credentials: for the start-up log.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`begin immediate`): a transaction that read first and wrote later could otherwise fail
    /// with "database is locked" when another writer got in between, which waiting cannot fix.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.writer.begin_with("begin immediate").await,
            Engine::Postgres | Engine::MySql => self.pool.begin().await,
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        let ping: Result<AnyQueryResult, _> = sqlx::query("select 1").execute(&self.pool).await;
        ping.is_ok()
    }

    /// Closes every connection; used by graceful shutdown.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// A human description of a database URL with any password removed.
fn describe(url: &str, engine: Engine) -> String {
    match engine {
        Engine::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            format!("SQLite file {}", path.split('?').next().unwrap_or(path))
        }
        Engine::Postgres | Engine::MySql => {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let name = if engine == Engine::Postgres {
                "PostgreSQL"
            } else {
                "MySQL"
            };
            format!("{name} at {}", rest.split('?').next().unwrap_or(rest))
        }
    }
}

/// Runs an insert and returns the id it made: through `returning id` on PostgreSQL and SQLite,
/// and from the insert's own answer on MySQL, where sqlx cannot read the rows of a prepared
/// `insert … returning` (so the MySQL dialect of such a statement leaves `returning` out).
pub async fn inserted_id<'q, E>(
    engine: Engine,
    insert: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    executor: E,
) -> Result<i64, sqlx::Error>
where
    E: Executor<'q, Database = sqlx::Any>,
{
    use sqlx::Row;
    match engine {
        Engine::MySql => insert
            .execute(executor)
            .await?
            .last_insert_id()
            .ok_or_else(|| sqlx::Error::Protocol("the insert made no id".into())),
        Engine::Postgres | Engine::Sqlite => insert.fetch_one(executor).await?.try_get(0),
    }
}

/// Milliseconds since the Unix epoch: how timestamps are stored, the same on every engine.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_never_show_passwords() {
        let text = describe(
            "postgres://app:s3cret@db.internal:5432/web?sslmode=require",
            Engine::Postgres,
        );
        assert_eq!(text, "PostgreSQL at db.internal:5432/web");
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn sqlite_descriptions_name_the_file() {
        assert_eq!(
            describe("sqlite://data/web.db?mode=rwc", Engine::Sqlite),
            "SQLite file data/web.db"
        );
    }
}
