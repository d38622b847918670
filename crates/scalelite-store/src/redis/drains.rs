//! Drains with notice on Redis: one hash, `server_drains`, server id →
//! the drain record as JSON. Not part of Scalelite's layout: Ruby
//! Scalelite never reads it (it sees a drained server as cordoned).

use std::collections::HashMap;

use async_trait::async_trait;
use scalelite_core::ServerId;

use super::RedisStore;
use crate::model::Drain;
use crate::{DrainStore, StoreError};

impl RedisStore {
    fn drains_key(&self) -> String {
        format!("{}server_drains", self.prefix)
    }
}

#[async_trait]
impl DrainStore for RedisStore {
    async fn drains(&self) -> Result<Vec<Drain>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: HashMap<String, String> = redis::cmd("HGETALL").arg(self.drains_key()).query_async(&mut conn).await?;
        Ok(Drain::from_stored(raw))
    }

    async fn put_drain(&self, drain: &Drain) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("HSET")
            .arg(self.drains_key())
            .arg(drain.server_id.as_str())
            .arg(drain.to_json())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn delete_drain(&self, server_id: &ServerId) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let removed: i64 =
            redis::cmd("HDEL").arg(self.drains_key()).arg(server_id.as_str()).query_async(&mut conn).await?;
        Ok(removed > 0)
    }
}
