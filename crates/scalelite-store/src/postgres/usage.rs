//! Usage accounting on PostgreSQL: `usage_hours` and the watermark row of
//! `usage_accounting` (migration `20261206000001_usage_hours`).

use async_trait::async_trait;

use super::{PgStore, pg};
use crate::StoreError;
use crate::usage::{Accounted, UsageQuery, UsageRow, UsageSample, UsageStore, credit_ms};

#[async_trait]
impl UsageStore for PgStore {
    async fn account_usage(&self, sample: &UsageSample) -> Result<Accounted, StoreError> {
        let mut tx = self.pool().begin().await.map_err(pg)?;
        sqlx::query("INSERT INTO usage_accounting (name) VALUES ('poller') ON CONFLICT (name) DO NOTHING")
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        // The row lock serialises pollers accounting at the same time.
        let watermark: Option<i64> =
            sqlx::query_scalar("SELECT accounted_to_ms FROM usage_accounting WHERE name = 'poller' FOR UPDATE")
                .fetch_one(&mut *tx)
                .await
                .map_err(pg)?;
        let credited = credit_ms(watermark, sample.at_ms, sample.interval_ms);
        if credited == 0 {
            return Ok(Accounted { credited_ms: 0 });
        }
        let rows = sample.rows();
        if !rows.is_empty() {
            let tenants: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            let meeting_ms: Vec<i64> = rows.iter().map(|r| r.1.saturating_mul(credited)).collect();
            let participant_ms: Vec<i64> = rows.iter().map(|r| r.2.saturating_mul(credited)).collect();
            let peaks: Vec<i64> = rows.iter().map(|r| r.2).collect();
            sqlx::query(
                "INSERT INTO usage_hours (tenant_id, hour, meeting_ms, participant_ms, peak_participants)
                 SELECT t, timestamp 'epoch' + $2 * interval '1 millisecond', m, p, k
                 FROM UNNEST($1::varchar[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(t, m, p, k)
                 ON CONFLICT (tenant_id, hour) DO UPDATE SET
                     meeting_ms = LEAST(usage_hours.meeting_ms::numeric + EXCLUDED.meeting_ms,
                                        9223372036854775807)::bigint,
                     participant_ms = LEAST(usage_hours.participant_ms::numeric + EXCLUDED.participant_ms,
                                            9223372036854775807)::bigint,
                     peak_participants = GREATEST(usage_hours.peak_participants, EXCLUDED.peak_participants)",
            )
            .bind(&tenants)
            .bind(sample.hour_ms() as f64)
            .bind(&meeting_ms)
            .bind(&participant_ms)
            .bind(&peaks)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        }
        sqlx::query("UPDATE usage_accounting SET accounted_to_ms = $1 WHERE name = 'poller'")
            .bind(sample.at_ms)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Accounted { credited_ms: credited })
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, (extract(epoch FROM hour) * 1000)::bigint, meeting_ms, participant_ms,
                    peak_participants
             FROM usage_hours
             WHERE ($1::varchar IS NULL OR tenant_id = $1)
               AND ($2::float8 IS NULL OR hour >= timestamp 'epoch' + $2 * interval '1 millisecond')
               AND ($3::float8 IS NULL OR hour < timestamp 'epoch' + $3 * interval '1 millisecond')
             ORDER BY hour, tenant_id",
        )
        .bind(query.tenant.as_deref())
        .bind(query.from_ms.map(|ms| ms as f64))
        .bind(query.to_ms.map(|ms| ms as f64))
        .fetch_all(self.pool())
        .await
        .map_err(pg)?;
        Ok(rows.into_iter().map(UsageRow::from).collect())
    }
}
