//! Short-lived keys on SQLite: the `recording_ready_urls`,
//! `playback_tokens` and `analytics_callbacks` tables, and the recording
//! upload marks in `leases`, each row with its `expires_at`.

use std::time::Duration;

use async_trait::async_trait;
use scalelite_core::{MeetingId, TenantId};

use super::{SqliteStore, expiry, now_ms, sq};
use crate::model::AnalyticsCallback;
use crate::{KeyStore, StoreError};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn remember_recording_ready_url(
        &self,
        meeting_id: &MeetingId,
        url: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO recording_ready_urls (meeting_id, url, expires_at) VALUES (?1, ?2, ?3)")
            .bind(meeting_id.as_str())
            .bind(url)
            .bind(expiry(now_ms(), ttl))
            .execute(&mut *self.writer().await?)
            .await
            .map_err(sq)?;
        Ok(())
    }

    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT url FROM recording_ready_urls WHERE meeting_id = ?1 AND expires_at > ?2")
            .bind(meeting_id)
            .bind(now_ms())
            .fetch_optional(&self.readers)
            .await
            .map_err(sq)
    }

    async fn create_playback_tokens(&self, tokens: &[(String, String)], ttl: Duration) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let expires = expiry(now_ms(), ttl);
        let mut tx = self.write().await?;
        for (token, payload) in tokens {
            sqlx::query("INSERT OR REPLACE INTO playback_tokens (token, payload, expires_at) VALUES (?1, ?2, ?3)")
                .bind(token)
                .bind(payload)
                .bind(expires)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)
    }

    async fn consume_playback_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let taken: Option<(String, i64)> =
            sqlx::query_as("DELETE FROM playback_tokens WHERE token = ?1 RETURNING payload, expires_at")
                .bind(token)
                .fetch_optional(&mut *self.writer().await?)
                .await
                .map_err(sq)?;
        let now = now_ms();
        Ok(taken.filter(|(_, expires)| *expires > now).map(|(payload, _)| payload))
    }

    async fn remember_analytics_callback(
        &self,
        meeting_id: &MeetingId,
        callback: &AnalyticsCallback,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO analytics_callbacks (meeting_id, url, tenant_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(meeting_id.as_str())
        .bind(&callback.url)
        .bind(callback.tenant_id.as_ref().map(TenantId::as_str))
        .bind(expiry(now_ms(), ttl))
        .execute(&mut *self.writer().await?)
        .await
        .map_err(sq)?;
        Ok(())
    }

    async fn claim_upload_mark(&self, mark: &str, ttl: Duration) -> Result<bool, StoreError> {
        // The leases table holds named rows with an expiry, pruned with the
        // other short-lived rows; an expired mark is taken over.
        let now = now_ms();
        let claimed = sqlx::query(
            "INSERT INTO leases (name, token, expires_at) VALUES (?1, '', ?2) \
             ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at WHERE leases.expires_at <= ?3",
        )
        .bind(format!("recording_upload:{mark}"))
        .bind(expiry(now, ttl))
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await
        .map_err(sq)?
        .rows_affected();
        Ok(claimed == 1)
    }

    async fn upload_mark_exists(&self, mark: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM leases WHERE name = ?1 AND expires_at > ?2")
            .bind(format!("recording_upload:{mark}"))
            .bind(now_ms())
            .fetch_optional(&self.readers)
            .await
            .map_err(sq)?;
        Ok(found.is_some())
    }

    async fn analytics_callback(&self, meeting_id: &str) -> Result<Option<AnalyticsCallback>, StoreError> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT url, tenant_id FROM analytics_callbacks WHERE meeting_id = ?1 AND expires_at > ?2")
                .bind(meeting_id)
                .bind(now_ms())
                .fetch_optional(&self.readers)
                .await
                .map_err(sq)?;
        Ok(row.map(|(url, tenant)| AnalyticsCallback {
            url,
            tenant_id: tenant.filter(|t| !t.is_empty()).map(TenantId::new),
        }))
    }
}
