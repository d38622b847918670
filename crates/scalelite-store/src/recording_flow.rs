//! The control flow of the recording stores, written once for both SQL
//! dialects. Each backend implements [`RecordingSql`] with its own
//! statements on an open transaction (PostgreSQL in `postgres`, SQLite in
//! `sqlite/recordings.rs`); the flows here decide what runs, in which order,
//! with which values. Errors stay `sqlx::Error`, for each backend to map as
//! its own.

use async_trait::async_trait;

use crate::StoreError;
use crate::recordings::{ImportPolicy, Imported, ImportedFormat, ImportedThumbnail, RecordingImport};

/// A recording an import finds: its id, `published` and `publish_updated`.
pub(crate) type ExistingRecording = (i64, Option<bool>, Option<bool>);

/// A `callback_data` row: its id and `callback_attributes`.
pub(crate) type CallbackRow = (i64, Option<String>);

/// The statements of the shared flows in one SQL dialect, run on one open
/// transaction (times as each schema stores them).
#[async_trait]
pub(crate) trait RecordingSql: Send {
    /// The recording with `record_id`, locked for the transaction where the
    /// database can lock rows.
    async fn recording_for_import(&mut self, record_id: &str) -> Result<Option<ExistingRecording>, sqlx::Error>;

    /// Inserts a recording (`published` false when the metadata has none,
    /// not protected); its id.
    async fn insert_recording(&mut self, import: &RecordingImport) -> Result<i64, sqlx::Error>;

    /// Updates a recording with the metadata's attributes; absent ones stay.
    async fn update_recording(&mut self, id: i64, import: &RecordingImport) -> Result<(), sqlx::Error>;

    /// Sets one metadata entry of a recording.
    async fn upsert_metadata(&mut self, id: i64, key: &str, value: &str) -> Result<(), sqlx::Error>;

    /// Inserts or updates a playback format of a recording; its id.
    async fn upsert_format(&mut self, id: i64, format: &ImportedFormat) -> Result<i64, sqlx::Error>;

    /// Deletes every thumbnail of a playback format.
    async fn delete_thumbnails(&mut self, format_id: i64) -> Result<(), sqlx::Error>;

    /// Inserts a thumbnail at position `sequence` of a playback format.
    async fn insert_thumbnail(
        &mut self,
        format_id: i64,
        sequence: usize,
        thumbnail: &ImportedThumbnail,
    ) -> Result<(), sqlx::Error>;

    /// The stored `published` of a recording.
    async fn stored_published(&mut self, id: i64) -> Result<Option<bool>, sqlx::Error>;

    /// Sets `published` and `protected` of a recording.
    async fn set_published_and_protected(
        &mut self,
        id: i64,
        published: bool,
        protected: bool,
    ) -> Result<(), sqlx::Error>;

    /// The `tenant-id` metadata of a recording.
    async fn tenant_id(&mut self, id: i64) -> Result<Option<String>, sqlx::Error>;

    /// A meeting's first `callback_data` row, locked for the transaction
    /// where the database can lock rows.
    async fn callback_row(&mut self, meeting_id: &str) -> Result<Option<CallbackRow>, sqlx::Error>;

    /// Replaces the attributes of a `callback_data` row and links the
    /// recording when given.
    async fn update_callback_row(
        &mut self,
        id: i64,
        attributes: &str,
        recording_id: Option<i64>,
    ) -> Result<(), sqlx::Error>;

    /// Adds a `callback_data` row for a meeting.
    async fn insert_callback_row(
        &mut self,
        meeting_id: &str,
        attributes: &str,
        recording_id: Option<i64>,
    ) -> Result<(), sqlx::Error>;
}

/// Refuses an import without recording id or meeting id.
pub(crate) fn check_import(import: &RecordingImport) -> Result<(), StoreError> {
    if import.record_id.is_empty() || import.meeting_id.is_empty() {
        return Err(StoreError::Conflict("metadata has no recording id or meeting id".into()));
    }
    Ok(())
}

/// Creates or updates a recording with its metadata and formats (see
/// [`crate::RecordingStore::import_recording`]), inside the caller's
/// transaction; with whether a row of the record id was there before.
pub(crate) async fn import(
    sql: &mut impl RecordingSql,
    import: &RecordingImport,
    policy: ImportPolicy,
) -> Result<(Imported, bool), sqlx::Error> {
    let existing = sql.recording_for_import(&import.record_id).await?;
    let id = match existing {
        None => sql.insert_recording(import).await?,
        Some((id, _, _)) => {
            sql.update_recording(id, import).await?;
            id
        }
    };
    for (key, value) in &import.metadata {
        sql.upsert_metadata(id, key, value).await?;
    }
    for format in &import.formats {
        let format_id = sql.upsert_format(id, format).await?;
        // The format's thumbnails become exactly the new list.
        sql.delete_thumbnails(format_id).await?;
        for (sequence, thumbnail) in format.thumbnails.iter().enumerate() {
            sql.insert_thumbnail(format_id, sequence, thumbnail).await?;
        }
    }
    let published = match policy.published_after_import(existing.map(|(_, published, updated)| (published, updated))) {
        Some(published) => published,
        None => sql.stored_published(id).await?.unwrap_or(false),
    };
    sql.set_published_and_protected(id, published, policy.protected).await?;
    let tenant_id = sql.tenant_id(id).await?;
    Ok((Imported { id, published, tenant_id }, existing.is_some()))
}

/// Stores a meeting's recording-ready URL in its `callback_data` row (see
/// [`crate::RecordingStore::save_recording_ready_url`]), inside the
/// caller's transaction.
pub(crate) async fn save_recording_ready_url(
    sql: &mut impl RecordingSql,
    meeting_id: &str,
    url: &str,
    recording_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    let existing = sql.callback_row(meeting_id).await?;
    let mut attributes =
        existing.as_ref().and_then(|(_, t)| t.as_deref()).map(parse_callback_attributes).unwrap_or_default();
    attributes.retain(|(k, _)| k != "recording_ready_url");
    attributes.push(("recording_ready_url".into(), url.to_owned()));
    let yaml = callback_attributes_yaml(&attributes);
    match existing {
        Some((id, _)) => sql.update_callback_row(id, &yaml, recording_id).await,
        None => sql.insert_callback_row(meeting_id, &yaml, recording_id).await,
    }
}

/// One attribute of a meeting's `callback_attributes` text, if any.
pub(crate) fn callback_attribute(text: Option<Option<String>>, name: &str) -> Option<String> {
    text.flatten().and_then(|t| parse_callback_attributes(&t).into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
}

/// The total of a `getRecordings` query a page tells without counting: all
/// of it when unpaged, or a short page that starts inside the list.
pub(crate) fn total_from_page(page: Option<(i64, i64)>, count: i64) -> Option<i64> {
    match page {
        None => Some(count),
        Some((offset, limit)) if count < limit && (offset == 0 || count > 0) => Some(offset + count),
        Some(_) => None,
    }
}

/// Ruby-readable `callback_attributes`: a YAML hash with symbol keys.
pub(crate) fn callback_attributes_yaml(attributes: &[(String, String)]) -> String {
    let mut out = String::from("---\n");
    for (key, value) in attributes {
        let scalar = serde_yaml_ng::to_string(value).unwrap_or_default();
        out.push(':');
        out.push_str(key);
        out.push_str(": ");
        out.push_str(scalar.trim_end());
        out.push('\n');
    }
    out
}

/// Reads Ruby's `callback_attributes` YAML (symbol keys `:name`, or plain
/// keys), returning `(name, value)` pairs.
pub(crate) fn parse_callback_attributes(text: &str) -> Vec<(String, String)> {
    let Ok(serde_yaml_ng::Value::Mapping(map)) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let key = k.as_str()?.trim_start_matches(':').to_owned();
            let value = match v {
                serde_yaml_ng::Value::String(s) => s,
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_attributes_round_trip_in_rubys_form() {
        let yaml = callback_attributes_yaml(&[
            ("recording_ready_url".into(), "https://gl.example.edu/recording_ready?x=1".into()),
            ("analytics_callback_url".into(), "https://a: b".into()),
        ]);
        assert_eq!(
            yaml,
            "---\n:recording_ready_url: https://gl.example.edu/recording_ready?x=1\n:analytics_callback_url: 'https://a: b'\n"
        );
        let parsed = parse_callback_attributes(&yaml);
        assert_eq!(parsed[0], ("recording_ready_url".into(), "https://gl.example.edu/recording_ready?x=1".into()));
        assert_eq!(parsed[1].1, "https://a: b");
        // What Ruby writes.
        let ruby = "---\n:recording_ready_url: https://gl/cb\n";
        assert_eq!(
            parse_callback_attributes(ruby),
            vec![("recording_ready_url".to_owned(), "https://gl/cb".to_owned())]
        );
    }
}
