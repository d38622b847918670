//! Drains with notice on SQLite: the `server_drains` table (schema version
//! 4), server id → the drain record as JSON (the value the Redis store
//! keeps in its `server_drains` hash).

use async_trait::async_trait;
use scalelite_core::ServerId;

use super::{SqliteStore, sq};
use crate::model::Drain;
use crate::{DrainStore, StoreError};

/// Version 4: drains with notice.
pub(super) const SCHEMA: &str = "
CREATE TABLE server_drains (
    server_id TEXT PRIMARY KEY NOT NULL,
    record TEXT NOT NULL
) STRICT;
";

#[async_trait]
impl DrainStore for SqliteStore {
    async fn drains(&self) -> Result<Vec<Drain>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT server_id, record FROM server_drains ORDER BY server_id")
                .fetch_all(&self.readers)
                .await
                .map_err(sq)?;
        Ok(Drain::from_stored(rows))
    }

    async fn put_drain(&self, drain: &Drain) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO server_drains (server_id, record) VALUES (?1, ?2)")
            .bind(drain.server_id.as_str())
            .bind(drain.to_json())
            .execute(&mut *self.writer().await?)
            .await
            .map_err(sq)?;
        Ok(())
    }

    async fn delete_drain(&self, server_id: &ServerId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM server_drains WHERE server_id = ?1")
            .bind(server_id.as_str())
            .execute(&mut *self.writer().await?)
            .await
            .map_err(sq)?;
        Ok(done.rows_affected() > 0)
    }
}
