//! Storage errors.

/// A failure talking to, or reading from, the backing store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis refused or failed the command (includes connection loss).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// PostgreSQL refused or failed the statement (includes connection loss).
    /// Not converted from `sqlx::Error` implicitly: each backend names its
    /// database when it maps an error.
    #[error("postgres: {0}")]
    Postgres(sqlx::Error),
    /// The embedded SQLite database refused or failed the statement.
    #[error("sqlite: {0}")]
    Sqlite(sqlx::Error),
    /// The embedded SQLite database refused or failed a statement of the
    /// store's connection thread (the hot meeting operations).
    #[error("sqlite: {0}")]
    SqliteThread(rusqlite::Error),
    /// The store answered something this code cannot interpret.
    #[error("unexpected reply from the store: {0}")]
    Unexpected(String),
    /// The record does not exist (Scalelite's `RecordNotFound`).
    #[error("{0}")]
    NotFound(String),
    /// The write conflicts with the stored state (Scalelite's `RecordNotSaved`).
    #[error("{0}")]
    Conflict(String),
}
