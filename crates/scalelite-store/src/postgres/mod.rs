//! The PostgreSQL backend of [`RecordingStore`], on Scalelite's schema.
//!
//! Timestamps are `timestamp without time zone` in UTC, converted to and
//! from epoch milliseconds in SQL. `published` and `protected` may be NULL
//! in databases built by Scalelite's migrations; NULL reads as false.

pub mod migrate;
mod usage;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::StoreError;
use crate::recording_flow::{self, CallbackRow, ExistingRecording, RecordingSql};
use crate::recordings::{
    AgedQuery, AgedRecording, Delivery, DeliveryOutcome, FormatView, ImportLogEntry, ImportPolicy, ImportPreview,
    Imported, ImportedFormat, ImportedThumbnail, PlaybackTarget, RecordingImport, RecordingPage, RecordingQuery,
    RecordingStore, RecordingSummary, RecordingView, StateFilter, TenantScope,
};

/// An error of this database (`StoreError` does not convert `sqlx::Error`
/// implicitly, so no other database's error is reported as PostgreSQL's).
fn pg(e: sqlx::Error) -> StoreError {
    StoreError::Postgres(e)
}

/// Scalelite's PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A store for `url`; connections are made lazily (and re-made after
    /// failures), so the process starts while PostgreSQL is down.
    pub fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)
            .map_err(pg)?;
        Ok(Self { pool })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<&'static str>, StoreError> {
        migrate::migrate(&self.pool).await.map_err(pg)
    }

    /// Versions not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<&'static str>, StoreError> {
        migrate::pending(&self.pool).await.map_err(pg)
    }

    /// Runs a `getRecordings` page query: one round trip returning every
    /// column the view needs, metadata, formats and thumbnails aggregated as
    /// JSON. A prepared statement per filter shape, cached per connection.
    async fn page(&self, query: &RecordingQuery) -> Result<Vec<RecordingView>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("WITH page AS (SELECT r.id FROM recordings r");
        push_filters(&mut q, query);
        q.push(" ORDER BY r.starttime DESC NULLS FIRST, r.id DESC");
        if let Some((offset, limit)) = query.page {
            q.push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        }
        q.push(") ");
        q.push(VIEW_SELECT);
        q.push(" ORDER BY r.starttime DESC NULLS FIRST, r.id DESC");
        let rows = q.build().fetch_all(&self.pool).await.map_err(pg)?;
        rows.iter().map(view_of).collect()
    }

    /// How many recordings match a query's filters (for `totalElements`).
    async fn count(&self, query: &RecordingQuery) -> Result<i64, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT count(*) FROM recordings r");
        push_filters(&mut q, query);
        q.build_query_scalar::<i64>().fetch_one(&self.pool).await.map_err(pg)
    }

    /// One attribute of a meeting's `callback_data` row.
    async fn callback_attribute(&self, meeting_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        let text: Option<Option<String>> = sqlx::query_scalar(
            "SELECT callback_attributes FROM callback_data WHERE meeting_id = $1 ORDER BY id LIMIT 1",
        )
        .bind(meeting_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg)?;
        Ok(recording_flow::callback_attribute(text, name))
    }
}

/// The columns of a [`RecordingView`] for the recordings in `page(id)`.
const VIEW_SELECT: &str = "SELECT r.id, r.record_id, r.meeting_id, r.name, COALESCE(r.published, false) AS published,
        COALESCE(r.protected, false) AS protected, r.state, r.participants,
        COALESCE(floor(EXTRACT(EPOCH FROM r.starttime) * 1000)::bigint, 0) AS start_ms,
        COALESCE(floor(EXTRACT(EPOCH FROM r.endtime) * 1000)::bigint, 0) AS end_ms,
        (SELECT json_agg(json_build_array(m.key, m.value) ORDER BY m.id)::text
           FROM metadata m WHERE m.recording_id = r.id) AS metadata,
        (SELECT json_agg(json_build_array(p.format, p.url, p.length, p.processing_time,
                  (SELECT json_agg(json_build_array(t.width, t.height, t.alt, t.url) ORDER BY t.sequence, t.id)
                     FROM thumbnails t WHERE t.playback_format_id = p.id)) ORDER BY p.format, p.id)::text
           FROM playback_formats p WHERE p.recording_id = r.id) AS formats
    FROM page JOIN recordings r ON r.id = page.id";

type MetadataJson = Vec<(Option<String>, Option<String>)>;
type ThumbnailJson = (Option<i32>, Option<i32>, Option<String>, Option<String>);
type FormatJson = (Option<String>, Option<String>, Option<i32>, Option<i32>, Option<Vec<ThumbnailJson>>);

fn view_of(row: &sqlx::postgres::PgRow) -> Result<RecordingView, StoreError> {
    let json = |column: &str| -> Result<Option<String>, StoreError> { row.try_get(column).map_err(pg) };
    let metadata: MetadataJson = match json("metadata")? {
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Unexpected(format!("metadata: {e}")))?,
        None => Vec::new(),
    };
    let formats: Vec<FormatJson> = match json("formats")? {
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Unexpected(format!("formats: {e}")))?,
        None => Vec::new(),
    };
    Ok(RecordingView {
        id: row.try_get("id").map_err(pg)?,
        record_id: row.try_get::<Option<String>, _>("record_id").map_err(pg)?.unwrap_or_default(),
        meeting_id: row.try_get::<Option<String>, _>("meeting_id").map_err(pg)?.unwrap_or_default(),
        name: row.try_get("name").map_err(pg)?,
        published: row.try_get("published").map_err(pg)?,
        protected: row.try_get("protected").map_err(pg)?,
        state: row.try_get("state").map_err(pg)?,
        start_ms: row.try_get("start_ms").map_err(pg)?,
        end_ms: row.try_get("end_ms").map_err(pg)?,
        participants: row.try_get("participants").map_err(pg)?,
        metadata: metadata.into_iter().map(|(k, v)| (k.unwrap_or_default(), v.unwrap_or_default())).collect(),
        formats: formats
            .into_iter()
            .map(|(format, url, length, processing_time, thumbnails)| FormatView {
                format: format.unwrap_or_default(),
                url: url.unwrap_or_default(),
                length,
                processing_time,
                thumbnails: thumbnails
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(width, height, alt, url)| ImportedThumbnail {
                        width,
                        height,
                        alt,
                        url: url.unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Adds the `WHERE` conditions of a `getRecordings` query.
fn push_filters(q: &mut QueryBuilder<Postgres>, query: &RecordingQuery) {
    q.push(" WHERE true");
    match &query.states {
        StateFilter::Default => {
            q.push(" AND r.state IN ('published', 'unpublished')");
        }
        StateFilter::Any => {}
        StateFilter::Only(states) => {
            q.push(" AND r.state = ANY(").push_bind(states.clone()).push(")");
        }
    }
    if let Some(tenant) = &query.tenant_id {
        q.push(
            " AND EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' AND t.value = ",
        )
        .push_bind(tenant.clone())
        .push(")");
    }
    if !query.meta.is_empty() {
        q.push(" AND EXISTS (SELECT 1 FROM metadata m WHERE m.recording_id = r.id AND (");
        for (i, (key, values)) in query.meta.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(m.key = ").push_bind(key.clone()).push(" AND m.value = ANY(").push_bind(values.clone()).push("))");
        }
        q.push("))");
    }
    if let Some(prefixes) = &query.record_id_prefixes {
        // A range scan of the `varchar_pattern_ops` index per prefix, driven
        // by the array, so one cached generic plan serves any number of
        // prefixes (25 OR-ed `LIKE`s cost more to plan than to run).
        // `starts_with` keeps the match exact; the upper bound only misses
        // ids with U+10FFFF right after the prefix, which no BBB id has.
        q.push(" AND r.id IN (SELECT rp.id FROM unnest(").push_bind(prefixes.clone()).push(
            "::text[]) AS p(prefix) JOIN recordings rp ON rp.record_id ~>=~ p.prefix \
                 AND rp.record_id ~<~ (p.prefix || chr(1114111)) WHERE starts_with(rp.record_id, p.prefix))",
        );
    }
    if let Some(ids) = &query.meeting_ids {
        q.push(" AND r.meeting_id = ANY(").push_bind(ids.clone()).push(")");
    }
}

#[async_trait]
impl RecordingStore for PgStore {
    async fn health_check(&self) -> Result<(), StoreError> {
        let pending = self.pending_migrations().await?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Unexpected(format!(
                "migrations are pending ({}): run `scalelite-admin db migrate`",
                pending.join(", ")
            )))
        }
    }

    async fn import_recording(&self, import: &RecordingImport, policy: ImportPolicy) -> Result<Imported, StoreError> {
        recording_flow::check_import(import)?;
        // A concurrent first import of the same record id loses the unique
        // race; the whole transaction is retried, as Scalelite does.
        for attempt in 0.. {
            match import_once(&self.pool, import, policy).await {
                Err(ImportFailure::Before(sqlx::Error::Database(e))) if e.is_unique_violation() && attempt < 3 => {
                    continue;
                }
                Err(ImportFailure::Before(e)) => return Err(pg(e)),
                // The database answered the COMMIT with an error: rolled back.
                Err(ImportFailure::Commit(e @ sqlx::Error::Database(_))) => return Err(pg(e)),
                Err(ImportFailure::Commit(e)) => return Err(StoreError::Unconfirmed(Box::new(pg(e)))),
                Ok(imported) => return Ok(imported),
            }
        }
        unreachable!("the loop returns")
    }

    async fn preview_import(
        &self,
        import: &RecordingImport,
        policy: ImportPolicy,
    ) -> Result<ImportPreview, StoreError> {
        recording_flow::check_import(import)?;
        for attempt in 0.. {
            match preview_once(&self.pool, import, policy).await {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempt < 3 => continue,
                other => return other.map_err(pg),
            }
        }
        unreachable!("the loop returns")
    }

    async fn log_import(&self, entry: &ImportLogEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recording_imports (filename, record_id, status, reason, size_bytes, formats, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, (now() AT TIME ZONE 'UTC'))",
        )
        .bind(&entry.filename)
        .bind(&entry.record_id)
        .bind(&entry.status)
        .bind(&entry.reason)
        .bind(entry.size_bytes)
        .bind(entry.formats)
        .execute(&self.pool)
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn recent_imports(&self, limit: i64) -> Result<Vec<ImportLogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT filename, record_id, status, reason, size_bytes, formats,
                    floor(EXTRACT(EPOCH FROM finished_at) * 1000)::bigint
             FROM recording_imports ORDER BY finished_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| ImportLogEntry {
                filename: r.get(0),
                record_id: r.get(1),
                status: r.get(2),
                reason: r.get(3),
                size_bytes: r.get(4),
                formats: r.get(5),
                finished_ms: r.get(6),
            })
            .collect())
    }

    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        self.callback_attribute(meeting_id, "recording_ready_url").await
    }

    async fn analytics_callback_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        self.callback_attribute(meeting_id, "analytics_callback_url").await
    }

    async fn save_recording_ready_url(
        &self,
        meeting_id: &str,
        url: &str,
        recording_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        recording_flow::save_recording_ready_url(&mut *tx, meeting_id, url, recording_id).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn enqueue_delivery(
        &self,
        recording_id: i64,
        record_id: &str,
        meeting_id: &str,
        url: &str,
        tenant_id: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recording_ready_deliveries
                 (recording_id, record_id, meeting_id, url, tenant_id, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, (now() AT TIME ZONE 'UTC'), (now() AT TIME ZONE 'UTC'))",
        )
        .bind(recording_id)
        .bind(record_id)
        .bind(meeting_id)
        .bind(url)
        .bind(tenant_id)
        .execute(&self.pool)
        .await
        .map_err(pg)?;
        Ok(())
    }

    async fn claim_deliveries(&self, limit: i64, lease_secs: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "UPDATE recording_ready_deliveries SET next_attempt_at = (now() AT TIME ZONE 'UTC') + $2 * interval '1 second'
             WHERE id IN (
                 SELECT id FROM recording_ready_deliveries
                 WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= (now() AT TIME ZONE 'UTC')
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, record_id, meeting_id, url, tenant_id, attempts",
        )
        .bind(limit)
        .bind(lease_secs as f64)
        .fetch_all(&self.pool)
        .await.map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| Delivery {
                id: r.get(0),
                record_id: r.get(1),
                meeting_id: r.get(2),
                url: r.get(3),
                tenant_id: r.get(4),
                attempts: r.get(5),
            })
            .collect())
    }

    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome, error: Option<&str>) -> Result<(), StoreError> {
        let sql = match outcome {
            DeliveryOutcome::Done => {
                "UPDATE recording_ready_deliveries SET attempts = attempts + 1, last_error = $2,
                 delivered_at = (now() AT TIME ZONE 'UTC') WHERE id = $1"
            }
            DeliveryOutcome::Retry { .. } => {
                "UPDATE recording_ready_deliveries SET attempts = attempts + 1, last_error = $2,
                 next_attempt_at = (now() AT TIME ZONE 'UTC') + $3 * interval '1 second' WHERE id = $1"
            }
            DeliveryOutcome::GiveUp => {
                "UPDATE recording_ready_deliveries SET attempts = attempts + 1, last_error = $2,
                 given_up_at = (now() AT TIME ZONE 'UTC') WHERE id = $1"
            }
        };
        let retry_in = match outcome {
            DeliveryOutcome::Retry { in_secs } => in_secs as f64,
            _ => 0.0,
        };
        let query = sqlx::query(sql).bind(id).bind(error);
        let query = if matches!(outcome, DeliveryOutcome::Retry { .. }) { query.bind(retry_in) } else { query };
        query.execute(&self.pool).await.map_err(pg)?;
        Ok(())
    }

    async fn find_recordings(&self, query: &RecordingQuery) -> Result<RecordingPage, StoreError> {
        // The total needs its own scan: past the first page, run both at
        // once. When the page is not full and starts inside the list, the
        // total is known without counting (a meeting's or a few ids'
        // recordings: the common case).
        let counting = query.page.is_some_and(|(offset, _)| offset != 0);
        let (recordings, counted) =
            futures::join!(self.page(query), async { if counting { Some(self.count(query).await) } else { None } });
        let recordings = recordings?;
        let total = match (recording_flow::total_from_page(query.page, recordings.len() as i64), counted) {
            (Some(total), _) => total,
            (None, Some(counted)) => counted?,
            (None, None) => self.count(query).await?,
        };
        Ok(RecordingPage { recordings, total })
    }

    async fn recordings_by_ids(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
        published_or_unpublished: bool,
    ) -> Result<Vec<RecordingSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.record_id, r.published,
                    COALESCE(array_agg(p.format ORDER BY p.format) FILTER (WHERE p.format IS NOT NULL), '{}'),
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM recordings r LEFT JOIN playback_formats p ON p.recording_id = r.id
             WHERE r.record_id = ANY($1)
               AND ($2::varchar IS NULL OR EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id
                                                   AND t.key = 'tenant-id' AND t.value = $2))
               AND (NOT $3 OR r.state IN ('published', 'unpublished'))
             GROUP BY r.id ORDER BY r.id",
        )
        .bind(record_ids)
        .bind(tenant_id)
        .bind(published_or_unpublished)
        .fetch_all(&self.pool)
        .await
        .map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| RecordingSummary {
                id: r.get(0),
                record_id: r.get(1),
                published: r.get(2),
                formats: r.get(3),
                tenant_id: r.get(4),
            })
            .collect())
    }

    async fn set_published(&self, id: i64, publish: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET published = $2, publish_updated = true, state = $3 WHERE id = $1")
            .bind(id)
            .bind(publish)
            .bind(if publish { "published" } else { "unpublished" })
            .execute(&self.pool)
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn update_recordings(
        &self,
        record_ids: &[String],
        upserts: &[(String, String)],
        deletes: &[String],
        protect: Option<bool>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM recordings WHERE record_id = ANY($1)")
            .bind(record_ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(pg)?;
        for (key, value) in upserts {
            sqlx::query(
                "INSERT INTO metadata (recording_id, key, value) SELECT unnest($1::bigint[]), $2, $3
                 ON CONFLICT (recording_id, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(&ids)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        }
        if !deletes.is_empty() {
            sqlx::query("DELETE FROM metadata WHERE recording_id = ANY($1) AND key = ANY($2)")
                .bind(&ids)
                .bind(deletes)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
        }
        if let (Some(protect), Some(first)) = (protect, record_ids.first()) {
            sqlx::query("UPDATE recordings SET protected = $2 WHERE record_id = $1")
                .bind(first)
                .bind(protect)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(())
    }

    async fn mark_deleted(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(pg)?;
        sqlx::query("SELECT id FROM recordings WHERE id = $1 FOR UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        sqlx::query("DELETE FROM metadata WHERE recording_id = $1").bind(id).execute(&mut *tx).await.map_err(pg)?;
        sqlx::query(
            "DELETE FROM thumbnails WHERE playback_format_id IN (SELECT id FROM playback_formats WHERE recording_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await.map_err(pg)?;
        sqlx::query("DELETE FROM playback_formats WHERE recording_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        sqlx::query("UPDATE recordings SET state = 'deleted' WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(())
    }

    async fn playback(&self, record_id: &str, format: &str) -> Result<Option<PlaybackTarget>, StoreError> {
        let row = sqlx::query(
            "SELECT r.record_id, p.format, p.url, COALESCE(r.published, false), COALESCE(r.protected, false),
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM playback_formats p JOIN recordings r ON r.id = p.recording_id
             WHERE r.record_id = $1 AND p.format = $2 LIMIT 1",
        )
        .bind(record_id)
        .bind(format)
        .fetch_optional(&self.pool)
        .await
        .map_err(pg)?;
        Ok(row.map(|r| PlaybackTarget {
            record_id: r.get(0),
            format: r.get(1),
            url: r.get::<Option<String>, _>(2).unwrap_or_default(),
            published: r.get(3),
            protected: r.get(4),
            tenant_id: r.get(5),
        }))
    }

    async fn unpublished(&self) -> Result<Vec<RecordingSummary>, StoreError> {
        self.summaries_in_state(false, summaries_where!("r.published = false")).await
    }

    async fn published(&self) -> Result<Vec<RecordingSummary>, StoreError> {
        self.summaries_in_state(true, summaries_where!("r.published = true AND r.state IS DISTINCT FROM 'deleted'"))
            .await
    }

    async fn add_to_tenant(&self, tenant_id: &str) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "INSERT INTO metadata (recording_id, key, value)
             SELECT r.id, 'tenant-id', $1 FROM recordings r
             WHERE NOT EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id')",
        )
        .bind(tenant_id)
        .execute(&self.pool)
        .await
        .map_err(pg)?;
        Ok(result.rows_affected())
    }

    async fn recordings_started_before(&self, query: &AgedQuery) -> Result<Vec<AgedRecording>, StoreError> {
        let (only, except): (Option<&str>, Option<&[String]>) = match &query.scope {
            TenantScope::All => (None, None),
            TenantScope::Tenant(tenant) => (Some(tenant), None),
            TenantScope::Except(tenants) => (None, Some(tenants)),
        };
        let rows = sqlx::query(
            "SELECT r.id, r.record_id, COALESCE(r.published, false),
                    COALESCE(array_agg(p.format ORDER BY p.format) FILTER (WHERE p.format IS NOT NULL), '{}'),
                    r.meeting_id, floor(EXTRACT(EPOCH FROM r.starttime) * 1000)::bigint,
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM recordings r LEFT JOIN playback_formats p ON p.recording_id = r.id
             WHERE r.starttime < timestamp 'epoch' + $1 * interval '1 millisecond'
               AND r.state IS DISTINCT FROM 'deleted'
               AND (NOT $2 OR COALESCE(r.published, false))
               AND r.id > $3
               AND ($4::varchar IS NULL OR EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id
                                                   AND t.key = 'tenant-id' AND t.value = $4))
               AND ($5::varchar[] IS NULL OR NOT EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id
                                                         AND t.key = 'tenant-id' AND t.value = ANY($5)))
             GROUP BY r.id ORDER BY r.id LIMIT $6",
        )
        .bind(query.started_before_ms as f64)
        .bind(query.published_only)
        .bind(query.after_id)
        .bind(only)
        .bind(except)
        .bind(query.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok(AgedRecording {
                    summary: RecordingSummary {
                        id: r.try_get(0)?,
                        record_id: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                        published: r.try_get(2)?,
                        formats: r.try_get(3)?,
                        tenant_id: r.try_get(6)?,
                    },
                    meeting_id: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                    start_ms: r.try_get(5)?,
                    tenant_id: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(pg)
    }
}

/// The summaries (id, record id, formats, tenant) of the recordings
/// matching a condition over `r`, for [`PgStore::summaries_in_state`].
macro_rules! summaries_where {
    ($condition:literal) => {
        concat!(
            "SELECT r.id, r.record_id, COALESCE(array_agg(p.format ORDER BY p.format) FILTER (WHERE p.format IS NOT NULL), '{}'),
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM recordings r LEFT JOIN playback_formats p ON p.recording_id = r.id
             WHERE ",
            $condition,
            " GROUP BY r.id ORDER BY r.id"
        )
    };
}
use summaries_where;

impl PgStore {
    /// The recordings `sql` (see [`summaries_where`]) selects, each
    /// `published`.
    async fn summaries_in_state(
        &self,
        published: bool,
        sql: &'static str,
    ) -> Result<Vec<RecordingSummary>, StoreError> {
        let rows = sqlx::query(sql).fetch_all(&self.pool).await.map_err(pg)?;
        Ok(rows
            .into_iter()
            .map(|r| RecordingSummary {
                id: r.get(0),
                record_id: r.get(1),
                published: Some(published),
                formats: r.get(2),
                tenant_id: r.get(3),
            })
            .collect())
    }
}

/// One import attempt (see [`RecordingStore::import_recording`]).
/// Where an import's transaction failed.
enum ImportFailure {
    /// Before its COMMIT was sent: nothing was changed.
    Before(sqlx::Error),
    /// At its COMMIT.
    Commit(sqlx::Error),
}

async fn import_once(pool: &PgPool, import: &RecordingImport, policy: ImportPolicy) -> Result<Imported, ImportFailure> {
    let mut tx = pool.begin().await.map_err(ImportFailure::Before)?;
    let (imported, _) = recording_flow::import(&mut *tx, import, policy).await.map_err(ImportFailure::Before)?;
    tx.commit().await.map_err(ImportFailure::Commit)?;
    Ok(imported)
}

/// [`import_once`], rolled back.
async fn preview_once(
    pool: &PgPool,
    import: &RecordingImport,
    policy: ImportPolicy,
) -> Result<ImportPreview, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (imported, existed) = recording_flow::import(&mut *tx, import, policy).await?;
    tx.rollback().await?;
    Ok(ImportPreview { published: imported.published, tenant_id: imported.tenant_id, new_recording: !existed })
}

/// Epoch milliseconds (NULL stays NULL) as the number of milliseconds the
/// statements add to `timestamp 'epoch'`.
fn epoch_ms(ms: Option<i64>) -> Option<f64> {
    ms.map(|ms| ms as f64)
}

#[async_trait]
impl RecordingSql for PgConnection {
    async fn recording_for_import(&mut self, record_id: &str) -> Result<Option<ExistingRecording>, sqlx::Error> {
        sqlx::query_as("SELECT id, published, publish_updated FROM recordings WHERE record_id = $1 FOR UPDATE")
            .bind(record_id)
            .fetch_optional(self)
            .await
    }

    async fn insert_recording(&mut self, import: &RecordingImport) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO recordings (record_id, meeting_id, name, published, participants, state, starttime, endtime,
                                         protected, publish_updated)
                 VALUES ($1, $2, $3, COALESCE($4, false), $5, $6,
                         timestamp 'epoch' + $7 * interval '1 millisecond',
                         timestamp 'epoch' + $8 * interval '1 millisecond', false, false)
                 RETURNING id",
        )
        .bind(&import.record_id)
        .bind(&import.meeting_id)
        .bind(&import.name)
        .bind(import.published)
        .bind(import.participants)
        .bind(&import.state)
        .bind(epoch_ms(import.start_ms))
        .bind(epoch_ms(import.end_ms))
        .fetch_one(self)
        .await
    }

    async fn update_recording(&mut self, id: i64, import: &RecordingImport) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE recordings SET meeting_id = $2, name = $3,
                    published = COALESCE($4, published), participants = COALESCE($5, participants),
                    state = COALESCE($6, state),
                    starttime = COALESCE(timestamp 'epoch' + $7 * interval '1 millisecond', starttime),
                    endtime = COALESCE(timestamp 'epoch' + $8 * interval '1 millisecond', endtime)
                 WHERE id = $1",
        )
        .bind(id)
        .bind(&import.meeting_id)
        .bind(&import.name)
        .bind(import.published)
        .bind(import.participants)
        .bind(&import.state)
        .bind(epoch_ms(import.start_ms))
        .bind(epoch_ms(import.end_ms))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn upsert_metadata(&mut self, id: i64, key: &str, value: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO metadata (recording_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (recording_id, key) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(id)
        .bind(key)
        .bind(value)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn upsert_format(&mut self, id: i64, format: &ImportedFormat) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO playback_formats (recording_id, format, url, length) VALUES ($1, $2, $3, $4)
             ON CONFLICT (recording_id, format) DO UPDATE SET url = EXCLUDED.url, length = EXCLUDED.length
             RETURNING id",
        )
        .bind(id)
        .bind(&format.format)
        .bind(&format.url)
        .bind(format.length)
        .fetch_one(self)
        .await
    }

    async fn delete_thumbnails(&mut self, format_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM thumbnails WHERE playback_format_id = $1").bind(format_id).execute(self).await?;
        Ok(())
    }

    async fn insert_thumbnail(
        &mut self,
        format_id: i64,
        sequence: usize,
        thumbnail: &ImportedThumbnail,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO thumbnails (playback_format_id, width, height, alt, url, sequence)
                 VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(format_id)
        .bind(thumbnail.width)
        .bind(thumbnail.height)
        .bind(&thumbnail.alt)
        .bind(&thumbnail.url)
        .bind(sequence as i32)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn stored_published(&mut self, id: i64) -> Result<Option<bool>, sqlx::Error> {
        sqlx::query_scalar("SELECT published FROM recordings WHERE id = $1").bind(id).fetch_one(self).await
    }

    async fn set_published_and_protected(
        &mut self,
        id: i64,
        published: bool,
        protected: bool,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE recordings SET published = $2, protected = $3 WHERE id = $1")
            .bind(id)
            .bind(published)
            .bind(protected)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn tenant_id(&mut self, id: i64) -> Result<Option<String>, sqlx::Error> {
        let value: Option<Option<String>> =
            sqlx::query_scalar("SELECT value FROM metadata WHERE recording_id = $1 AND key = 'tenant-id' LIMIT 1")
                .bind(id)
                .fetch_optional(self)
                .await?;
        Ok(value.flatten())
    }

    async fn callback_row(&mut self, meeting_id: &str) -> Result<Option<CallbackRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, callback_attributes FROM callback_data WHERE meeting_id = $1 ORDER BY id LIMIT 1 FOR UPDATE",
        )
        .bind(meeting_id)
        .fetch_optional(self)
        .await
    }

    async fn update_callback_row(
        &mut self,
        id: i64,
        attributes: &str,
        recording_id: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE callback_data SET callback_attributes = $2, recording_id = COALESCE($3, recording_id),
                     updated_at = (now() AT TIME ZONE 'UTC') WHERE id = $1",
        )
        .bind(id)
        .bind(attributes)
        .bind(recording_id.map(|r| r as i32))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_callback_row(
        &mut self,
        meeting_id: &str,
        attributes: &str,
        recording_id: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO callback_data (meeting_id, recording_id, callback_attributes, created_at, updated_at)
                     VALUES ($1, $2, $3, (now() AT TIME ZONE 'UTC'), (now() AT TIME ZONE 'UTC'))",
        )
        .bind(meeting_id)
        .bind(recording_id.map(|r| r as i32))
        .bind(attributes)
        .execute(self)
        .await?;
        Ok(())
    }
}
