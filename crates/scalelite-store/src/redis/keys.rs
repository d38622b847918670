//! Short-lived keys on Redis: `recording_ready:<meeting id>`,
//! `protector_token_<token>`, `analytics_callback:<meeting id>` and
//! `recording_upload:<mark>`, each set with an expiry.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use scalelite_core::{MeetingId, TenantId};

use super::RedisStore;
use crate::model::AnalyticsCallback;
use crate::{KeyStore, StoreError};

#[async_trait]
impl KeyStore for RedisStore {
    async fn remember_recording_ready_url(
        &self,
        meeting_id: &MeetingId,
        url: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = format!("{}recording_ready:{meeting_id}", self.prefix);
        let mut conn = self.conn.clone();
        redis::cmd("SET").arg(&key).arg(url).arg("EX").arg(ttl.as_secs().max(1)).query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}recording_ready:{meeting_id}", self.prefix);
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET").arg(&key).query_async(&mut conn).await?)
    }

    async fn create_playback_tokens(&self, tokens: &[(String, String)], ttl: Duration) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (token, payload) in tokens {
            pipe.cmd("SET")
                .arg(format!("{}protector_token_{token}", self.prefix))
                .arg(payload)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn consume_playback_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}protector_token_{token}", self.prefix);
        let mut conn = self.conn.clone();
        let (value, _): (Option<String>, i64) =
            redis::pipe().atomic().cmd("GET").arg(&key).cmd("DEL").arg(&key).query_async(&mut conn).await?;
        Ok(value)
    }

    async fn remember_analytics_callback(
        &self,
        meeting_id: &MeetingId,
        callback: &AnalyticsCallback,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = format!("{}analytics_callback:{meeting_id}", self.prefix);
        let tenant = callback.tenant_id.as_ref().map_or("", TenantId::as_str);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(&key)
            .ignore()
            .cmd("HSET")
            .arg(&key)
            .arg("url")
            .arg(&callback.url)
            .arg("tenant_id")
            .arg(tenant)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(ttl.as_secs().max(1))
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn claim_upload_mark(&self, mark: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!("{}recording_upload:{mark}", self.prefix);
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    async fn upload_mark_exists(&self, mark: &str) -> Result<bool, StoreError> {
        let key = format!("{}recording_upload:{mark}", self.prefix);
        let mut conn = self.conn.clone();
        let n: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await?;
        Ok(n > 0)
    }

    async fn analytics_callback(&self, meeting_id: &str) -> Result<Option<AnalyticsCallback>, StoreError> {
        let key = format!("{}analytics_callback:{meeting_id}", self.prefix);
        let mut conn = self.conn.clone();
        let mut hash: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await?;
        Ok(hash.remove("url").map(|url| AnalyticsCallback {
            url,
            tenant_id: hash.remove("tenant_id").filter(|t| !t.is_empty()).map(TenantId::new),
        }))
    }
}
