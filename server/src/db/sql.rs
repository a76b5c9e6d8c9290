//! The per-engine SQL layer: every statement the services run, in the dialect of each engine.
//!
//! Most statements read the same on all three engines but for their placeholders: PostgreSQL
//! and SQLite take `$1`, MySQL/MariaDB takes `?`. `Sql::shared` writes those once; it rewrites
//! the placeholders for MySQL at compile time and refuses (a build error) a statement that uses
//! a placeholder twice or out of order, which `?` cannot express. Statements the engines spell
//! differently (batches as JSON arrays, upserts, row locks) list each dialect with `Sql::each`.

use sqlx::Row;

/// The database engine behind a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
    MySql,
}

impl Engine {
    /// The engine behind `conn`, from sqlx's name for its backend.
    pub fn of(conn: &sqlx::AnyConnection) -> Self {
        match conn.backend_name() {
            "SQLite" => Self::Sqlite,
            "MySQL" => Self::MySql,
            _ => Self::Postgres,
        }
    }
}

/// One statement in each engine's dialect.
#[derive(Debug, Clone, Copy)]
pub struct Sql {
    postgres: &'static str,
    sqlite: &'static str,
    mysql: &'static str,
}

impl Sql {
    /// A statement spelled differently on each engine.
    pub const fn each(postgres: &'static str, sqlite: &'static str, mysql: &'static str) -> Self {
        Self {
            postgres,
            sqlite,
            mysql,
        }
    }

    /// A statement all engines read alike, written with `$1, $2, …` placeholders in order;
    /// `mysql` must be `question_marks(text)` (the `shared!` macro passes it).
    #[doc(hidden)]
    pub const fn shared_with(text: &'static str, mysql: &'static str) -> Self {
        Self {
            postgres: text,
            sqlite: text,
            mysql,
        }
    }

    /// The statement for `engine`.
    pub fn of(&self, engine: Engine) -> &'static str {
        match engine {
            Engine::Postgres => self.postgres,
            Engine::Sqlite => self.sqlite,
            Engine::MySql => self.mysql,
        }
    }

    /// The statement for the engine behind `conn` (inside a caller's transaction).
    pub fn on(&self, conn: &sqlx::AnyConnection) -> &'static str {
        self.of(Engine::of(conn))
    }
}

/// A statement all engines read alike but for placeholders: `shared!("… $1 … $2")`.
#[macro_export]
macro_rules! shared {
    ($text:literal) => {{
        const TEXT: &str = $text;
        const BYTES: [u8; TEXT.len()] = $crate::db::sql::question_marks(TEXT);
        const MYSQL: &str = match ::core::str::from_utf8(&BYTES) {
            Ok(text) => text,
            Err(_) => panic!("placeholders rewrite to ASCII"),
        };
        $crate::db::sql::Sql::shared_with(TEXT, MYSQL)
    }};
}

/// `text` with each `$N` replaced by `?` and spaces (the same length, so it fits a constant
/// array). Panics, at compile time when called in a constant, unless the placeholders are
/// `$1, $2, …` each once and in order, and none sits inside a quoted string.
pub const fn question_marks<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    let mut next = 1;
    let mut quoted = false;
    while i < N {
        let byte = bytes[i];
        if byte == b'\'' {
            quoted = !quoted;
        }
        if byte == b'$' && !quoted {
            let mut number = 0;
            let mut end = i + 1;
            while end < N && bytes[end].is_ascii_digit() {
                number = number * 10 + (bytes[end] - b'0') as usize;
                end += 1;
            }
            assert!(end > i + 1, "a `$` that is not a placeholder");
            assert!(
                number == next,
                "placeholders must be $1, $2, … each once and in order"
            );
            next += 1;
            out[i] = b'?';
            let mut pad = i + 1;
            while pad < end {
                out[pad] = b' ';
                pad += 1;
            }
            i = end;
        } else {
            out[i] = byte;
            i += 1;
        }
    }
    out
}

/// A text column. MySQL sends `text` columns as blobs, which sqlx's `Any` rows keep as bytes;
/// the other engines send them as text.
pub fn text(row: &sqlx::any::AnyRow, column: &str) -> Result<String, sqlx::Error> {
    optional_text(row, column)?.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: "unexpected null".into(),
    })
}

/// An optional text column, as `text` reads it: the column's type says which decoding applies.
pub fn optional_text(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    use sqlx::any::AnyTypeInfoKind;
    use sqlx::Column;
    if row.try_column(column)?.type_info().kind() != AnyTypeInfoKind::Blob {
        return row.try_get(column);
    }
    let bytes: Option<Vec<u8>> = row.try_get(column)?;
    bytes
        .map(String::from_utf8)
        .transpose()
        .map_err(|err| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(err),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Sql = shared!("update t set a = $1, b = '$x' where id = $2");

    #[test]
    fn shared_statements_take_question_marks_on_mysql() {
        assert_eq!(
            BOTH.of(Engine::Postgres),
            "update t set a = $1, b = '$x' where id = $2"
        );
        assert_eq!(BOTH.of(Engine::Sqlite), BOTH.of(Engine::Postgres));
        assert_eq!(
            BOTH.of(Engine::MySql),
            "update t set a = ? , b = '$x' where id = ? "
        );
    }

    #[test]
    fn placeholders_past_nine_keep_the_length() {
        let text = "values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)";
        let out: [u8; 39] = question_marks(text);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "values (? ,? ,? ,? ,? ,? ,? ,? ,? ,?  )"
        );
    }

    #[test]
    #[should_panic(expected = "each once and in order")]
    fn a_repeated_placeholder_is_refused() {
        let _: [u8; 30] = question_marks("update t set a = $1 where $1 ");
    }
}
