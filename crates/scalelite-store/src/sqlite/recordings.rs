//! [`RecordingStore`] on the embedded SQLite file: Scalelite's recording
//! tables (`recordings`, `metadata`, `playback_formats`, `thumbnails`,
//! `callback_data`) and this project's `recording_imports` and
//! `recording_ready_deliveries`, with the semantics of the PostgreSQL store
//! (`postgres/mod.rs` is the reference). Timestamps are epoch milliseconds.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{SqliteStore, now_ms, sq};
use crate::StoreError;
use crate::recording_flow::{self, CallbackRow, ExistingRecording, RecordingSql};
use crate::recordings::{
    AgedQuery, AgedRecording, Delivery, DeliveryOutcome, FormatView, ImportLogEntry, ImportPolicy, ImportPreview,
    Imported, ImportedFormat, ImportedThumbnail, PlaybackTarget, RecordingImport, RecordingPage, RecordingQuery,
    RecordingStore, RecordingSummary, RecordingView, StateFilter, TenantScope,
};

/// The recording tables (schema version 2).
pub(super) const SCHEMA: &str = "
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    record_id TEXT,
    meeting_id TEXT,
    name TEXT,
    published INTEGER,
    participants INTEGER,
    state TEXT,
    starttime INTEGER,
    endtime INTEGER,
    deleted_at INTEGER,
    protected INTEGER,
    publish_updated INTEGER
) STRICT;
CREATE UNIQUE INDEX recordings_record_id ON recordings (record_id);
CREATE INDEX recordings_meeting_id ON recordings (meeting_id);
CREATE INDEX recordings_starttime ON recordings (starttime DESC, id DESC);
CREATE TABLE metadata (
    id INTEGER PRIMARY KEY,
    recording_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT
) STRICT;
CREATE UNIQUE INDEX metadata_recording_key ON metadata (recording_id, key);
CREATE INDEX metadata_key_value ON metadata (key, value);
CREATE TABLE playback_formats (
    id INTEGER PRIMARY KEY,
    recording_id INTEGER NOT NULL,
    format TEXT NOT NULL,
    url TEXT,
    length INTEGER,
    processing_time INTEGER
) STRICT;
CREATE UNIQUE INDEX playback_formats_recording_format ON playback_formats (recording_id, format);
CREATE TABLE thumbnails (
    id INTEGER PRIMARY KEY,
    playback_format_id INTEGER NOT NULL,
    width INTEGER,
    height INTEGER,
    alt TEXT,
    url TEXT,
    sequence INTEGER
) STRICT;
CREATE INDEX thumbnails_format ON thumbnails (playback_format_id);
CREATE TABLE callback_data (
    id INTEGER PRIMARY KEY,
    meeting_id TEXT,
    recording_id INTEGER,
    callback_attributes TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX callback_data_meeting ON callback_data (meeting_id);
CREATE TABLE recording_imports (
    id INTEGER PRIMARY KEY,
    filename TEXT NOT NULL,
    record_id TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    size_bytes INTEGER,
    formats INTEGER,
    finished_at INTEGER NOT NULL
) STRICT;
CREATE INDEX recording_imports_finished ON recording_imports (finished_at DESC);
CREATE TABLE recording_ready_deliveries (
    id INTEGER PRIMARY KEY,
    recording_id INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    meeting_id TEXT NOT NULL,
    url TEXT NOT NULL,
    tenant_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    delivered_at INTEGER,
    given_up_at INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX recording_ready_deliveries_due ON recording_ready_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
";

/// The epoch milliseconds the PostgreSQL store can write as a `timestamp`
/// (`timestamp 'epoch' + ms * interval '1 millisecond'`: from 4714-11-24 BC
/// to the year 294247, where the interval's microseconds overflow). An
/// archive with a time outside is refused there, so it is here too.
const POSTGRES_TIME_MS: RangeInclusive<i64> = -210_866_803_200_000..=9_223_372_036_854_774;

/// `SQLITE_TOOBIG`, `SQLITE_CONSTRAINT` and `SQLITE_MISMATCH`: the primary
/// result codes of values the database refuses.
const SQLITE_TOOBIG: i64 = 18;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_MISMATCH: i64 = 20;

/// An error of an import, as the importer should read it: a constraint or
/// datatype violation is the recording's fault ([`StoreError::Conflict`],
/// so the archive is quarantined, as for PostgreSQL's SQLSTATE classes 22
/// and 23), except a unique violation, which is a race another attempt
/// settles (as PostgreSQL's `23505`); anything else is the database's.
/// The checks of an import before its statements run: ids present, times
/// PostgreSQL could store.
fn check_sqlite_import(import: &RecordingImport) -> Result<(), StoreError> {
    recording_flow::check_import(import)?;
    for (field, ms) in [("start_time", import.start_ms), ("end_time", import.end_ms)] {
        if let Some(ms) = ms.filter(|ms| !POSTGRES_TIME_MS.contains(ms)) {
            return Err(StoreError::Conflict(format!("{field} {ms} is out of range")));
        }
    }
    Ok(())
}

fn import_error(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.kind() != ErrorKind::UniqueViolation
    {
        let primary = db.code().and_then(|code| code.parse::<i64>().ok()).map(|code| code & 0xff);
        if matches!(primary, Some(SQLITE_TOOBIG | SQLITE_CONSTRAINT | SQLITE_MISMATCH)) {
            return StoreError::Conflict(format!("sqlite: {}", db.message()));
        }
    }
    sq(e)
}

/// Adds the `WHERE` conditions of a `getRecordings` query.
fn push_filters(q: &mut QueryBuilder<Sqlite>, query: &RecordingQuery) {
    q.push(" WHERE 1");
    match &query.states {
        StateFilter::Default => {
            q.push(" AND r.state IN ('published', 'unpublished')");
        }
        StateFilter::Any => {}
        StateFilter::Only(states) => {
            q.push(" AND r.state");
            push_in(q, states);
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
            q.push("(m.key = ").push_bind(key.clone()).push(" AND m.value");
            push_in(q, values);
            q.push(")");
        }
        q.push("))");
    }
    if let Some(prefixes) = &query.record_id_prefixes {
        // Case-sensitive prefixes (LIKE is not, and treats `%`/`_` as wildcards).
        q.push(" AND (0");
        for prefix in prefixes {
            q.push(" OR substr(r.record_id, 1, length(")
                .push_bind(prefix.clone())
                .push(")) = ")
                .push_bind(prefix.clone());
        }
        q.push(")");
    }
    if let Some(ids) = &query.meeting_ids {
        q.push(" AND r.meeting_id");
        push_in(q, ids);
    }
}

/// ` IN (?, ...)`; an empty list matches nothing.
fn push_in(q: &mut QueryBuilder<Sqlite>, values: &[String]) {
    q.push(" IN (");
    let mut list = q.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
    if values.is_empty() {
        list.push("NULL");
    }
    q.push(")");
}

fn ids_in(q: &mut QueryBuilder<Sqlite>, ids: &[i64]) {
    q.push(" IN (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    if ids.is_empty() {
        list.push("NULL");
    }
    q.push(")");
}

impl SqliteStore {
    /// Runs a `getRecordings` page query, then reads metadata, formats and
    /// thumbnails of the page's recordings.
    async fn page(&self, query: &RecordingQuery) -> Result<Vec<RecordingView>, StoreError> {
        let mut tx = self.read().await?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT r.id, r.record_id, r.meeting_id, r.name, COALESCE(r.published, 0) AS published, \
             COALESCE(r.protected, 0) AS protected, r.state, r.participants, COALESCE(r.starttime, 0) AS start_ms, \
             COALESCE(r.endtime, 0) AS end_ms FROM recordings r",
        );
        push_filters(&mut q, query);
        q.push(" ORDER BY r.starttime DESC NULLS FIRST, r.id DESC");
        if let Some((offset, limit)) = query.page {
            q.push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        }
        let rows = q.build().fetch_all(&mut *tx).await.map_err(sq)?;
        let mut views = Vec::with_capacity(rows.len());
        for row in &rows {
            views.push(RecordingView {
                id: row.try_get("id").map_err(sq)?,
                record_id: row.try_get::<Option<String>, _>("record_id").map_err(sq)?.unwrap_or_default(),
                meeting_id: row.try_get::<Option<String>, _>("meeting_id").map_err(sq)?.unwrap_or_default(),
                name: row.try_get("name").map_err(sq)?,
                published: row.try_get("published").map_err(sq)?,
                protected: row.try_get("protected").map_err(sq)?,
                state: row.try_get("state").map_err(sq)?,
                start_ms: row.try_get("start_ms").map_err(sq)?,
                end_ms: row.try_get("end_ms").map_err(sq)?,
                participants: row.try_get("participants").map_err(sq)?,
                metadata: Vec::new(),
                formats: Vec::new(),
            });
        }
        if views.is_empty() {
            return Ok(views);
        }
        let ids: Vec<i64> = views.iter().map(|v| v.id).collect();
        let index: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();

        let mut q = QueryBuilder::<Sqlite>::new("SELECT recording_id, key, value FROM metadata WHERE recording_id");
        ids_in(&mut q, &ids);
        q.push(" ORDER BY id");
        for row in q.build().fetch_all(&mut *tx).await.map_err(sq)? {
            let recording: i64 = row.try_get(0).map_err(sq)?;
            let key: Option<String> = row.try_get(1).map_err(sq)?;
            let value: Option<String> = row.try_get(2).map_err(sq)?;
            views[index[&recording]].metadata.push((key.unwrap_or_default(), value.unwrap_or_default()));
        }

        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, recording_id, format, url, length, processing_time FROM playback_formats WHERE recording_id",
        );
        ids_in(&mut q, &ids);
        q.push(" ORDER BY format, id");
        let mut format_at: HashMap<i64, (usize, usize)> = HashMap::new();
        for row in q.build().fetch_all(&mut *tx).await.map_err(sq)? {
            let id: i64 = row.try_get(0).map_err(sq)?;
            let recording: i64 = row.try_get(1).map_err(sq)?;
            let view = &mut views[index[&recording]];
            format_at.insert(id, (index[&recording], view.formats.len()));
            view.formats.push(FormatView {
                format: row.try_get::<Option<String>, _>(2).map_err(sq)?.unwrap_or_default(),
                url: row.try_get::<Option<String>, _>(3).map_err(sq)?.unwrap_or_default(),
                length: row.try_get(4).map_err(sq)?,
                processing_time: row.try_get(5).map_err(sq)?,
                thumbnails: Vec::new(),
            });
        }
        if !format_at.is_empty() {
            let format_ids: Vec<i64> = format_at.keys().copied().collect();
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT playback_format_id, width, height, alt, url FROM thumbnails WHERE playback_format_id",
            );
            ids_in(&mut q, &format_ids);
            q.push(" ORDER BY sequence, id");
            for row in q.build().fetch_all(&mut *tx).await.map_err(sq)? {
                let format: i64 = row.try_get(0).map_err(sq)?;
                let (view, position) = format_at[&format];
                views[view].formats[position].thumbnails.push(ImportedThumbnail {
                    width: row.try_get(1).map_err(sq)?,
                    height: row.try_get(2).map_err(sq)?,
                    alt: row.try_get(3).map_err(sq)?,
                    url: row.try_get::<Option<String>, _>(4).map_err(sq)?.unwrap_or_default(),
                });
            }
        }
        tx.commit().await.map_err(sq)?;
        Ok(views)
    }

    /// How many recordings match a query's filters (for `totalElements`).
    async fn count(&self, query: &RecordingQuery) -> Result<i64, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM recordings r");
        push_filters(&mut q, query);
        q.build_query_scalar::<i64>().fetch_one(&self.readers).await.map_err(sq)
    }

    /// One attribute of a meeting's `callback_data` row.
    async fn callback_attribute(&self, meeting_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        let text: Option<Option<String>> = sqlx::query_scalar(
            "SELECT callback_attributes FROM callback_data WHERE meeting_id = ?1 ORDER BY id LIMIT 1",
        )
        .bind(meeting_id)
        .fetch_optional(&self.readers)
        .await
        .map_err(sq)?;
        Ok(recording_flow::callback_attribute(text, name))
    }

    /// Summaries (id, record id, published, formats by name) of the
    /// recordings a query selects, in id order.
    async fn summaries(&self, q: &mut QueryBuilder<Sqlite>) -> Result<Vec<RecordingSummary>, StoreError> {
        let rows = q.build().fetch_all(&self.readers).await.map_err(sq)?;
        let mut out: Vec<RecordingSummary> = Vec::new();
        for row in rows {
            let id: i64 = row.try_get(0).map_err(sq)?;
            let format: Option<String> = row.try_get(3).map_err(sq)?;
            if out.last().is_none_or(|s| s.id != id) {
                out.push(RecordingSummary {
                    id,
                    record_id: row.try_get::<Option<String>, _>(1).map_err(sq)?.unwrap_or_default(),
                    published: row.try_get(2).map_err(sq)?,
                    formats: Vec::new(),
                    tenant_id: row.try_get(4).map_err(sq)?,
                });
            }
            if let (Some(format), Some(last)) = (format, out.last_mut()) {
                last.formats.push(format);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl RecordingStore for SqliteStore {
    async fn health_check(&self) -> Result<(), StoreError> {
        // The schema is brought up to date at open.
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM recordings WHERE id = 0")
            .fetch_one(&self.readers)
            .await
            .map_err(sq)?;
        Ok(())
    }

    async fn import_recording(&self, import: &RecordingImport, policy: ImportPolicy) -> Result<Imported, StoreError> {
        check_sqlite_import(import)?;
        let mut tx = self.write().await?;
        let (imported, _) = recording_flow::import(&mut *tx, import, policy).await.map_err(import_error)?;
        // Whether a failed COMMIT left the change made is not told apart.
        tx.commit().await.map_err(|e| StoreError::Unconfirmed(Box::new(sq(e))))?;
        Ok(imported)
    }

    async fn preview_import(
        &self,
        import: &RecordingImport,
        policy: ImportPolicy,
    ) -> Result<ImportPreview, StoreError> {
        check_sqlite_import(import)?;
        let mut tx = self.write().await?;
        let (imported, existed) = recording_flow::import(&mut *tx, import, policy).await.map_err(import_error)?;
        tx.rollback().await.map_err(sq)?;
        Ok(ImportPreview { published: imported.published, tenant_id: imported.tenant_id, new_recording: !existed })
    }

    async fn log_import(&self, entry: &ImportLogEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recording_imports (filename, record_id, status, reason, size_bytes, formats, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&entry.filename)
        .bind(&entry.record_id)
        .bind(&entry.status)
        .bind(&entry.reason)
        .bind(entry.size_bytes)
        .bind(entry.formats)
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await
        .map_err(sq)?;
        Ok(())
    }

    async fn recent_imports(&self, limit: i64) -> Result<Vec<ImportLogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT filename, record_id, status, reason, size_bytes, formats, finished_at
             FROM recording_imports ORDER BY finished_at DESC, id DESC LIMIT ?1",
        )
        .bind(limit)
        .fetch_all(&self.readers)
        .await
        .map_err(sq)?;
        rows.into_iter()
            .map(|r| {
                Ok(ImportLogEntry {
                    filename: r.try_get(0)?,
                    record_id: r.try_get(1)?,
                    status: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    size_bytes: r.try_get(4)?,
                    formats: r.try_get(5)?,
                    finished_ms: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(sq)
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
        let mut tx = self.write().await?;
        recording_flow::save_recording_ready_url(&mut *tx, meeting_id, url, recording_id).await.map_err(sq)?;
        tx.commit().await.map_err(sq)
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )
        .bind(recording_id)
        .bind(record_id)
        .bind(meeting_id)
        .bind(url)
        .bind(tenant_id)
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await
        .map_err(sq)?;
        Ok(())
    }

    async fn claim_deliveries(&self, limit: i64, lease_secs: i64) -> Result<Vec<Delivery>, StoreError> {
        let now = now_ms();
        // One statement: atomic, and writers are serialised.
        let rows = sqlx::query(
            "UPDATE recording_ready_deliveries SET next_attempt_at = ?2 + ?3 * 1000
             WHERE id IN (
                 SELECT id FROM recording_ready_deliveries
                 WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= ?2
                 ORDER BY next_attempt_at LIMIT ?1)
             RETURNING id, record_id, meeting_id, url, tenant_id, attempts",
        )
        .bind(limit)
        .bind(now)
        .bind(lease_secs)
        .fetch_all(&mut *self.writer().await?)
        .await
        .map_err(sq)?;
        let mut deliveries = rows
            .into_iter()
            .map(|r| {
                Ok(Delivery {
                    id: r.try_get(0)?,
                    record_id: r.try_get(1)?,
                    meeting_id: r.try_get(2)?,
                    url: r.try_get(3)?,
                    tenant_id: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(sq)?;
        deliveries.sort_by_key(|d| d.id);
        Ok(deliveries)
    }

    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome, error: Option<&str>) -> Result<(), StoreError> {
        let now = now_ms();
        let query = match outcome {
            DeliveryOutcome::Done => sqlx::query(
                "UPDATE recording_ready_deliveries SET attempts = attempts + 1, last_error = ?2, delivered_at = ?3
                 WHERE id = ?1",
            )
            .bind(id)
            .bind(error)
            .bind(now),
            DeliveryOutcome::Retry { in_secs } => sqlx::query(
                "UPDATE recording_ready_deliveries SET attempts = attempts + 1, last_error = ?2,
                 next_attempt_at = ?3 WHERE id = ?1",
            )
            .bind(id)
            .bind(error)
            .bind(now.saturating_add(in_secs.saturating_mul(1000))),
            DeliveryOutcome::GiveUp => sqlx::query(
                "UPDATE recording_ready_deliveries SET attempts = attempts + 1, last_error = ?2, given_up_at = ?3
                 WHERE id = ?1",
            )
            .bind(id)
            .bind(error)
            .bind(now),
        };
        query.execute(&mut *self.writer().await?).await.map_err(sq)?;
        Ok(())
    }

    async fn find_recordings(&self, query: &RecordingQuery) -> Result<RecordingPage, StoreError> {
        let recordings = self.page(query).await?;
        let count = i64::try_from(recordings.len()).unwrap_or(i64::MAX);
        let total = match recording_flow::total_from_page(query.page, count) {
            Some(total) => total,
            None => self.count(query).await?,
        };
        Ok(RecordingPage { recordings, total })
    }

    async fn recordings_by_ids(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
        published_or_unpublished: bool,
    ) -> Result<Vec<RecordingSummary>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT r.id, r.record_id, r.published, p.format,
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM recordings r LEFT JOIN playback_formats p ON p.recording_id = r.id WHERE r.record_id",
        );
        push_in(&mut q, record_ids);
        if let Some(tenant) = tenant_id {
            q.push(
                " AND EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' \
                 AND t.value = ",
            )
            .push_bind(tenant.to_owned())
            .push(")");
        }
        if published_or_unpublished {
            q.push(" AND r.state IN ('published', 'unpublished')");
        }
        q.push(" ORDER BY r.id, p.format");
        self.summaries(&mut q).await
    }

    async fn set_published(&self, id: i64, publish: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET published = ?2, publish_updated = 1, state = ?3 WHERE id = ?1")
            .bind(id)
            .bind(publish)
            .bind(if publish { "published" } else { "unpublished" })
            .execute(&mut *self.writer().await?)
            .await
            .map_err(sq)?;
        Ok(())
    }

    async fn update_recordings(
        &self,
        record_ids: &[String],
        upserts: &[(String, String)],
        deletes: &[String],
        protect: Option<bool>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id FROM recordings WHERE record_id");
        push_in(&mut q, record_ids);
        let ids: Vec<i64> = q.build_query_scalar().fetch_all(&mut *tx).await.map_err(sq)?;
        for id in &ids {
            for (key, value) in upserts {
                sqlx::query(
                    "INSERT INTO metadata (recording_id, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (recording_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
            }
            for key in deletes {
                sqlx::query("DELETE FROM metadata WHERE recording_id = ?1 AND key = ?2")
                    .bind(id)
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
            }
        }
        if let (Some(protect), Some(first)) = (protect, record_ids.first()) {
            sqlx::query("UPDATE recordings SET protected = ?2 WHERE record_id = ?1")
                .bind(first)
                .bind(protect)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)
    }

    async fn mark_deleted(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM metadata WHERE recording_id = ?1").bind(id).execute(&mut *tx).await.map_err(sq)?;
        sqlx::query(
            "DELETE FROM thumbnails WHERE playback_format_id IN (SELECT id FROM playback_formats WHERE recording_id = ?1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(sq)?;
        sqlx::query("DELETE FROM playback_formats WHERE recording_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        sqlx::query("UPDATE recordings SET state = 'deleted' WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        tx.commit().await.map_err(sq)
    }

    async fn playback(&self, record_id: &str, format: &str) -> Result<Option<PlaybackTarget>, StoreError> {
        let row = sqlx::query(
            "SELECT r.record_id, p.format, p.url, COALESCE(r.published, 0), COALESCE(r.protected, 0),
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM playback_formats p JOIN recordings r ON r.id = p.recording_id
             WHERE r.record_id = ?1 AND p.format = ?2 LIMIT 1",
        )
        .bind(record_id)
        .bind(format)
        .fetch_optional(&self.readers)
        .await
        .map_err(sq)?;
        row.map(|r| {
            Ok(PlaybackTarget {
                record_id: r.try_get(0)?,
                format: r.try_get(1)?,
                url: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                published: r.try_get(3)?,
                protected: r.try_get(4)?,
                tenant_id: r.try_get(5)?,
            })
        })
        .transpose()
        .map_err(sq)
    }

    async fn unpublished(&self) -> Result<Vec<RecordingSummary>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT r.id, r.record_id, 0, p.format,
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM recordings r LEFT JOIN playback_formats p ON p.recording_id = r.id
             WHERE r.published = 0 ORDER BY r.id, p.format",
        );
        self.summaries(&mut q).await
    }

    async fn published(&self) -> Result<Vec<RecordingSummary>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT r.id, r.record_id, 1, p.format,
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM recordings r LEFT JOIN playback_formats p ON p.recording_id = r.id
             WHERE r.published = 1 AND (r.state IS NULL OR r.state <> 'deleted') ORDER BY r.id, p.format",
        );
        self.summaries(&mut q).await
    }

    async fn add_to_tenant(&self, tenant_id: &str) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "INSERT INTO metadata (recording_id, key, value)
             SELECT r.id, 'tenant-id', ?1 FROM recordings r
             WHERE NOT EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id')",
        )
        .bind(tenant_id)
        .execute(&mut *self.writer().await?)
        .await
        .map_err(sq)?;
        Ok(result.rows_affected())
    }

    async fn recordings_started_before(&self, query: &AgedQuery) -> Result<Vec<AgedRecording>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT r.id, r.record_id, COALESCE(r.published, 0), p.format, r.meeting_id, r.starttime,
                    (SELECT t.value FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' LIMIT 1)
             FROM recordings r LEFT JOIN playback_formats p ON p.recording_id = r.id
             WHERE r.id IN (SELECT r.id FROM recordings r WHERE r.starttime < ",
        );
        q.push_bind(query.started_before_ms);
        q.push(" AND r.state IS NOT 'deleted' AND r.id > ").push_bind(query.after_id);
        if query.published_only {
            q.push(" AND COALESCE(r.published, 0) = 1");
        }
        match &query.scope {
            TenantScope::All => {}
            TenantScope::Tenant(tenant) => {
                q.push(
                    " AND EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' \
                     AND t.value = ",
                )
                .push_bind(tenant.clone())
                .push(")");
            }
            TenantScope::Except(tenants) => {
                q.push(
                    " AND NOT EXISTS (SELECT 1 FROM metadata t WHERE t.recording_id = r.id AND t.key = 'tenant-id' \
                     AND t.value",
                );
                push_in(&mut q, tenants);
                q.push(")");
            }
        }
        q.push(" ORDER BY r.id LIMIT ").push_bind(query.limit);
        q.push(") ORDER BY r.id, p.format");
        let rows = q.build().fetch_all(&self.readers).await.map_err(sq)?;
        let mut out: Vec<AgedRecording> = Vec::new();
        for row in rows {
            let id: i64 = row.try_get(0).map_err(sq)?;
            let format: Option<String> = row.try_get(3).map_err(sq)?;
            if out.last().is_none_or(|r| r.summary.id != id) {
                out.push(AgedRecording {
                    summary: RecordingSummary {
                        id,
                        record_id: row.try_get::<Option<String>, _>(1).map_err(sq)?.unwrap_or_default(),
                        published: row.try_get(2).map_err(sq)?,
                        formats: Vec::new(),
                        tenant_id: row.try_get(6).map_err(sq)?,
                    },
                    meeting_id: row.try_get::<Option<String>, _>(4).map_err(sq)?.unwrap_or_default(),
                    start_ms: row.try_get(5).map_err(sq)?,
                    tenant_id: row.try_get(6).map_err(sq)?,
                });
            }
            if let (Some(format), Some(last)) = (format, out.last_mut()) {
                last.summary.formats.push(format);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl RecordingSql for SqliteConnection {
    async fn recording_for_import(&mut self, record_id: &str) -> Result<Option<ExistingRecording>, sqlx::Error> {
        sqlx::query_as("SELECT id, published, publish_updated FROM recordings WHERE record_id = ?1")
            .bind(record_id)
            .fetch_optional(self)
            .await
    }

    async fn insert_recording(&mut self, import: &RecordingImport) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO recordings (record_id, meeting_id, name, published, participants, state, starttime,
                                     endtime, protected, publish_updated)
             VALUES (?1, ?2, ?3, COALESCE(?4, 0), ?5, ?6, ?7, ?8, 0, 0)
             RETURNING id",
        )
        .bind(&import.record_id)
        .bind(&import.meeting_id)
        .bind(&import.name)
        .bind(import.published)
        .bind(import.participants)
        .bind(&import.state)
        .bind(import.start_ms)
        .bind(import.end_ms)
        .fetch_one(self)
        .await
    }

    async fn update_recording(&mut self, id: i64, import: &RecordingImport) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE recordings SET meeting_id = ?2, name = ?3,
                published = COALESCE(?4, published), participants = COALESCE(?5, participants),
                state = COALESCE(?6, state), starttime = COALESCE(?7, starttime), endtime = COALESCE(?8, endtime)
             WHERE id = ?1",
        )
        .bind(id)
        .bind(&import.meeting_id)
        .bind(&import.name)
        .bind(import.published)
        .bind(import.participants)
        .bind(&import.state)
        .bind(import.start_ms)
        .bind(import.end_ms)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn upsert_metadata(&mut self, id: i64, key: &str, value: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO metadata (recording_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (recording_id, key) DO UPDATE SET value = excluded.value",
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
            "INSERT INTO playback_formats (recording_id, format, url, length) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (recording_id, format) DO UPDATE SET url = excluded.url, length = excluded.length
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
        sqlx::query("DELETE FROM thumbnails WHERE playback_format_id = ?1").bind(format_id).execute(self).await?;
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(format_id)
        .bind(thumbnail.width)
        .bind(thumbnail.height)
        .bind(&thumbnail.alt)
        .bind(&thumbnail.url)
        .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn stored_published(&mut self, id: i64) -> Result<Option<bool>, sqlx::Error> {
        sqlx::query_scalar("SELECT published FROM recordings WHERE id = ?1").bind(id).fetch_one(self).await
    }

    async fn set_published_and_protected(
        &mut self,
        id: i64,
        published: bool,
        protected: bool,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE recordings SET published = ?2, protected = ?3 WHERE id = ?1")
            .bind(id)
            .bind(published)
            .bind(protected)
            .execute(self)
            .await?;
        Ok(())
    }

    async fn tenant_id(&mut self, id: i64) -> Result<Option<String>, sqlx::Error> {
        let value: Option<Option<String>> =
            sqlx::query_scalar("SELECT value FROM metadata WHERE recording_id = ?1 AND key = 'tenant-id' LIMIT 1")
                .bind(id)
                .fetch_optional(self)
                .await?;
        Ok(value.flatten())
    }

    async fn callback_row(&mut self, meeting_id: &str) -> Result<Option<CallbackRow>, sqlx::Error> {
        sqlx::query_as("SELECT id, callback_attributes FROM callback_data WHERE meeting_id = ?1 ORDER BY id LIMIT 1")
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
            "UPDATE callback_data SET callback_attributes = ?2, recording_id = COALESCE(?3, recording_id),
             updated_at = ?4 WHERE id = ?1",
        )
        .bind(id)
        .bind(attributes)
        .bind(recording_id)
        .bind(now_ms())
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
             VALUES (?1, ?2, ?3, ?4, ?4)",
        )
        .bind(meeting_id)
        .bind(recording_id)
        .bind(attributes)
        .bind(now_ms())
        .execute(self)
        .await?;
        Ok(())
    }
}
