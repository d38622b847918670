//! Reading the embedded backend's SQLite file directly, for the few checks
//! that have no read in the store traits (the importer's delivery queue,
//! `callback_data` as Ruby reads it).

use sqlx::{Column as _, Row as _};

use scalelite_store::SqliteStore;

/// Runs `sql` and renders the rows as [`crate::TestPostgres::psql`] does:
/// one line per row, columns separated by `|`, NULL as the empty string,
/// lines joined by `\n`, trailing newlines trimmed. Queries that should read the same on PostgreSQL spell booleans as
/// text (`CASE WHEN … THEN 't' ELSE 'f' END`).
///
/// # Panics
///
/// Panics when the statement fails or a column is neither text, integer
/// nor real.
pub async fn query_text(store: &SqliteStore, sql: &str) -> String {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut cells = Vec::with_capacity(row.columns().len());
        for column in row.columns() {
            let i = column.ordinal();
            let cell = if let Ok(text) = row.try_get::<Option<String>, _>(i) {
                text.unwrap_or_default()
            } else if let Ok(int) = row.try_get::<Option<i64>, _>(i) {
                int.map(|n| n.to_string()).unwrap_or_default()
            } else if let Ok(real) = row.try_get::<Option<f64>, _>(i) {
                real.map(|n| n.to_string()).unwrap_or_default()
            } else {
                panic!("{sql}: column {} is neither text, integer nor real", column.name())
            };
            cells.push(cell);
        }
        lines.push(cells.join("|"));
    }
    // psql's output loses its trailing newlines, so the last value does too.
    lines.join("\n").trim_end_matches('\n').to_owned()
}
