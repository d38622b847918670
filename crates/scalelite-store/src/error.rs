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
    /// The transaction's `COMMIT` was sent but its outcome is unknown (the
    /// connection failed before the database answered): the change may or
    /// may not have been made. Every other error of a transactional write
    /// means it was not made.
    #[error("{0} (whether the change was committed is unknown)")]
    Unconfirmed(Box<StoreError>),
}

impl StoreError {
    /// Whether the write that failed may still have been made (see
    /// [`StoreError::Unconfirmed`]).
    pub fn unconfirmed(&self) -> bool {
        matches!(self, StoreError::Unconfirmed(_))
    }
}
