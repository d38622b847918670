//! Storage errors.

/// A failure talking to, or reading from, the backing store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis refused or failed the command (includes connection loss).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The store answered something this code cannot interpret.
    #[error("unexpected reply from the store: {0}")]
    Unexpected(String),
}
