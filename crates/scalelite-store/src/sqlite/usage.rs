//! Usage accounting on SQLite: `usage_hours` and `usage_accounting` (schema
//! version 7), the PostgreSQL tables with hours as epoch milliseconds.

use async_trait::async_trait;

use super::{SqliteStore, sq};
use crate::StoreError;
use crate::usage::{Accounted, UsageQuery, UsageRow, UsageSample, UsageStore, credit_ms};

/// Version 7: usage accounting.
pub(super) const SCHEMA: &str = "
CREATE TABLE usage_hours (
    tenant_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    meeting_ms INTEGER NOT NULL DEFAULT 0,
    participant_ms INTEGER NOT NULL DEFAULT 0,
    peak_participants INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour)
) STRICT;
CREATE INDEX usage_hours_hour ON usage_hours (hour);
CREATE TABLE usage_accounting (
    name TEXT PRIMARY KEY NOT NULL,
    accounted_to_ms INTEGER
) STRICT;
";

#[async_trait]
impl UsageStore for SqliteStore {
    async fn account_usage(&self, sample: &UsageSample) -> Result<Accounted, StoreError> {
        // BEGIN IMMEDIATE: pollers in two processes serialise here.
        let mut tx = self.write().await?;
        let watermark: Option<Option<i64>> =
            sqlx::query_scalar("SELECT accounted_to_ms FROM usage_accounting WHERE name = 'poller'")
                .fetch_optional(&mut *tx)
                .await
                .map_err(sq)?;
        let credited = credit_ms(watermark.flatten(), sample.at_ms, sample.interval_ms);
        if credited == 0 {
            return Ok(Accounted { credited_ms: 0 });
        }
        for (tenant, meetings, participants) in sample.rows() {
            sqlx::query(
                "INSERT INTO usage_hours (tenant_id, hour, meeting_ms, participant_ms, peak_participants)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, hour) DO UPDATE SET
                     meeting_ms = CASE WHEN excluded.meeting_ms > 9223372036854775807 - meeting_ms
                         THEN 9223372036854775807 ELSE meeting_ms + excluded.meeting_ms END,
                     participant_ms = CASE WHEN excluded.participant_ms > 9223372036854775807 - participant_ms
                         THEN 9223372036854775807 ELSE participant_ms + excluded.participant_ms END,
                     peak_participants = max(peak_participants, excluded.peak_participants)",
            )
            .bind(tenant)
            .bind(sample.hour_ms())
            .bind(meetings.saturating_mul(credited))
            .bind(participants.saturating_mul(credited))
            .bind(participants)
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        }
        sqlx::query(
            "INSERT INTO usage_accounting (name, accounted_to_ms) VALUES ('poller', ?1)
             ON CONFLICT (name) DO UPDATE SET accounted_to_ms = excluded.accounted_to_ms",
        )
        .bind(sample.at_ms)
        .execute(&mut *tx)
        .await
        .map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(Accounted { credited_ms: credited })
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, hour, meeting_ms, participant_ms, peak_participants FROM usage_hours
             WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR hour >= ?2) AND (?3 IS NULL OR hour < ?3)
             ORDER BY hour, tenant_id",
        )
        .bind(query.tenant.as_deref())
        .bind(query.from_ms)
        .bind(query.to_ms)
        .fetch_all(&self.readers)
        .await
        .map_err(sq)?;
        Ok(rows.into_iter().map(UsageRow::from).collect())
    }
}
