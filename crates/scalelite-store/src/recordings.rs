//! Recordings (Scalelite's schema, in PostgreSQL or the embedded SQLite
//! database): what the importer writes, the recordings API reads and
//! changes, and playback looks up.

use async_trait::async_trait;

use crate::StoreError;

/// One playback format read from a `metadata.xml`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportedFormat {
    /// `playback/format`, e.g. `presentation`.
    pub format: String,
    /// Path and query of `playback/link` (the host is the balancer's on output).
    pub url: String,
    /// `round(duration ms / 60000)`.
    pub length: Option<i32>,
    /// Preview images, in order.
    pub thumbnails: Vec<ImportedThumbnail>,
}

/// A preview image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportedThumbnail {
    /// Width attribute.
    pub width: Option<i32>,
    /// Height attribute.
    pub height: Option<i32>,
    /// Alt text.
    pub alt: Option<String>,
    /// Path of the image URL.
    pub url: String,
}

/// A recording as the metadata files of one archive describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingImport {
    /// `id` (the internal meeting id).
    pub record_id: String,
    /// `meta/meetingId`.
    pub meeting_id: String,
    /// `meta/meetingName`.
    pub name: Option<String>,
    /// `published` when present.
    pub published: Option<bool>,
    /// `participants` when present.
    pub participants: Option<i32>,
    /// `state` when present (`available` already mapped to `published`).
    pub state: Option<String>,
    /// `start_time` (epoch ms) when present.
    pub start_ms: Option<i64>,
    /// `end_time` (epoch ms) when present.
    pub end_ms: Option<i64>,
    /// Every `meta/*` except `isBreakout`, `meetingId`, `meetingName`.
    pub metadata: Vec<(String, String)>,
    /// The formats in the archive.
    pub formats: Vec<ImportedFormat>,
}

/// How an import decides `published` and `protected`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportPolicy {
    /// `RECORDING_IMPORT_UNPUBLISHED`.
    pub import_unpublished: bool,
    /// `PROTECTED_RECORDINGS_ENABLED`.
    pub protected: bool,
}

impl ImportPolicy {
    /// `published` after importing a recording whose existing row had
    /// `previous` (`published`, `publish_updated`): an administrator's
    /// publish/unpublish survives re-imports (Scalelite means to do this but
    /// reads the value it just overwrote); otherwise
    /// `RECORDING_IMPORT_UNPUBLISHED` unpublishes; otherwise `None`: the
    /// value the archive's metadata wrote stands.
    pub fn published_after_import(&self, previous: Option<(Option<bool>, Option<bool>)>) -> Option<bool> {
        match previous {
            Some((published, Some(true))) => Some(published.unwrap_or(false)),
            _ if self.import_unpublished => Some(false),
            _ => None,
        }
    }
}

/// What an import stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// Database id.
    pub id: i64,
    /// Whether the recording is published now (its files go to the publish
    /// tree, else the unpublish tree).
    pub published: bool,
    /// `tenant-id` metadata, if any.
    pub tenant_id: Option<String>,
}

/// What an import would decide, without the import being made (see
/// [`RecordingStore::preview_import`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportPreview {
    /// Whether the recording would be published (its files belong under
    /// the published prefix, else the unpublished one).
    pub published: bool,
    /// Its `tenant-id` metadata after the import.
    pub tenant_id: Option<String>,
    /// Whether no recording with this record id exists (deleted ones
    /// count as existing): the import would create it.
    pub new_recording: bool,
}

impl ImportPreview {
    /// Whether `imported` decided what this preview said.
    pub fn matches(&self, imported: &Imported) -> bool {
        self.published == imported.published && self.tenant_id == imported.tenant_id
    }
}

/// Which states `getRecordings` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StateFilter {
    /// `published` and `unpublished` (no `state` parameter).
    #[default]
    Default,
    /// `state=any`.
    Any,
    /// The listed states.
    Only(Vec<String>),
}

/// A `getRecordings` query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingQuery {
    /// `recordID` items: case-sensitive prefixes, OR-ed (`None`: no filter).
    pub record_id_prefixes: Option<Vec<String>>,
    /// `meetingID` items, exact, OR-ed.
    pub meeting_ids: Option<Vec<String>>,
    /// State filter.
    pub states: StateFilter,
    /// `meta_<key>=v1,v2` conditions, OR-ed together.
    pub meta: Vec<(String, Vec<String>)>,
    /// Only recordings with metadata `tenant-id` = this.
    pub tenant_id: Option<String>,
    /// `offset`, `limit`.
    pub page: Option<(i64, i64)>,
}

/// A recording as `getRecordings` renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingView {
    /// Database id.
    pub id: i64,
    /// `record_id`.
    pub record_id: String,
    /// `meeting_id`.
    pub meeting_id: String,
    /// `name`.
    pub name: Option<String>,
    /// `published` (NULL reads as false).
    pub published: bool,
    /// `protected` (NULL reads as false).
    pub protected: bool,
    /// `state`.
    pub state: Option<String>,
    /// `starttime` in epoch ms (0 when NULL).
    pub start_ms: i64,
    /// `endtime` in epoch ms (0 when NULL).
    pub end_ms: i64,
    /// `participants`.
    pub participants: Option<i32>,
    /// Metadata rows in id order.
    pub metadata: Vec<(String, String)>,
    /// Formats ordered by name.
    pub formats: Vec<FormatView>,
}

/// A playback format with its thumbnails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatView {
    /// Format name.
    pub format: String,
    /// Stored URL path.
    pub url: String,
    /// Minutes.
    pub length: Option<i32>,
    /// Legacy `processing_time`.
    pub processing_time: Option<i32>,
    /// Thumbnails by sequence.
    pub thumbnails: Vec<ImportedThumbnail>,
}

/// One page of `getRecordings`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingPage {
    /// The recordings, newest first.
    pub recordings: Vec<RecordingView>,
    /// All matches (before paging).
    pub total: i64,
}

/// What publish/delete need to know about a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingSummary {
    /// Database id.
    pub id: i64,
    /// `record_id`.
    pub record_id: String,
    /// `published` (`None` when the column is NULL: publishRecordings
    /// leaves such rows alone, as Scalelite's `where.not(published:)` does).
    pub published: Option<bool>,
    /// Its formats.
    pub formats: Vec<String>,
    /// Its `tenant-id` metadata (the bucket key prefix with
    /// `S3_TENANT_PREFIX`).
    pub tenant_id: Option<String>,
}

/// Which recordings a retention query covers, by their `tenant-id`
/// metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TenantScope {
    /// Every recording.
    #[default]
    All,
    /// Recordings whose `tenant-id` is this.
    Tenant(String),
    /// Recordings whose `tenant-id` is none of these (recordings without
    /// one included).
    Except(Vec<String>),
}

/// A retention query: recordings started before a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgedQuery {
    /// Only recordings whose `starttime` is before this (epoch ms).
    /// Recordings without `starttime` are never returned.
    pub started_before_ms: i64,
    /// Whose recordings.
    pub scope: TenantScope,
    /// Only published recordings (for unpublishing); otherwise every
    /// recording not already deleted.
    pub published_only: bool,
    /// Only recordings with a database id above this (paging).
    pub after_id: i64,
    /// At most this many, by id.
    pub limit: i64,
}

/// A recording a retention rule may act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgedRecording {
    /// What publish and delete need.
    pub summary: RecordingSummary,
    /// `meeting_id`.
    pub meeting_id: String,
    /// `starttime` in epoch ms.
    pub start_ms: i64,
    /// `tenant-id` metadata.
    pub tenant_id: Option<String>,
}

/// What playback needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybackTarget {
    /// `record_id`.
    pub record_id: String,
    /// Format.
    pub format: String,
    /// Stored URL path of the format.
    pub url: String,
    /// `published`.
    pub published: bool,
    /// `protected`.
    pub protected: bool,
    /// `tenant-id` metadata.
    pub tenant_id: Option<String>,
}

/// One line of the import log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportLogEntry {
    /// Archive file name.
    pub filename: String,
    /// Record id, when known.
    pub record_id: Option<String>,
    /// `imported` or `failed`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Archive size.
    pub size_bytes: Option<i64>,
    /// Formats imported.
    pub formats: Option<i32>,
    /// When (epoch ms; filled by the store on read).
    pub finished_ms: i64,
}

/// A recording-ready callback to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Queue id.
    pub id: i64,
    /// Recording.
    pub record_id: String,
    /// Meeting.
    pub meeting_id: String,
    /// Callback URL.
    pub url: String,
    /// Tenant (for its secrets).
    pub tenant_id: Option<String>,
    /// Attempts so far.
    pub attempts: i32,
}

/// Recordings storage.
#[async_trait]
pub trait RecordingStore: Send + Sync + std::fmt::Debug + 'static {
    /// Reachable, and no migration pending.
    async fn health_check(&self) -> Result<(), StoreError>;

    /// Creates or updates a recording with all its formats in one
    /// transaction. A [`StoreError::Unconfirmed`] error means the commit's
    /// outcome is unknown; any other error, that nothing was changed.
    async fn import_recording(&self, import: &RecordingImport, policy: ImportPolicy) -> Result<Imported, StoreError>;

    /// What [`Self::import_recording`] would decide for `import` now
    /// (`published`, `tenant-id`), changing nothing: the same statements
    /// in a transaction that is rolled back, so the same errors too. The
    /// importer puts a recording's files where the import will want them
    /// (the publish or unpublish tree, or the bucket under the key the
    /// import will give them) before it commits the recording.
    async fn preview_import(&self, import: &RecordingImport, policy: ImportPolicy)
    -> Result<ImportPreview, StoreError>;

    /// Appends to the import log.
    async fn log_import(&self, entry: &ImportLogEntry) -> Result<(), StoreError>;

    /// The newest import log lines.
    async fn recent_imports(&self, limit: i64) -> Result<Vec<ImportLogEntry>, StoreError>;

    /// `callback_data.callback_attributes[:recording_ready_url]` of a meeting.
    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError>;

    /// `callback_data.callback_attributes[:analytics_callback_url]` of a
    /// meeting (written by Ruby Scalelite's create; read during a migration).
    async fn analytics_callback_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError>;

    /// Stores a meeting's recording-ready URL in `callback_data` (merged into
    /// its attributes, Ruby-readable) and links the recording when given.
    async fn save_recording_ready_url(
        &self,
        meeting_id: &str,
        url: &str,
        recording_id: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Queues a recording-ready callback.
    async fn enqueue_delivery(
        &self,
        recording_id: i64,
        record_id: &str,
        meeting_id: &str,
        url: &str,
        tenant_id: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` due callbacks (hidden from other claimers for
    /// `lease_secs`).
    async fn claim_deliveries(&self, limit: i64, lease_secs: i64) -> Result<Vec<Delivery>, StoreError>;

    /// Records a delivery attempt: delivered, retry after `retry_in_secs`, or
    /// given up.
    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome, error: Option<&str>) -> Result<(), StoreError>;

    /// A `getRecordings` page.
    async fn find_recordings(&self, query: &RecordingQuery) -> Result<RecordingPage, StoreError>;

    /// Recordings with exactly these `record_id`s (tenant-scoped, optionally
    /// limited to `published`/`unpublished`).
    async fn recordings_by_ids(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
        published_or_unpublished: bool,
    ) -> Result<Vec<RecordingSummary>, StoreError>;

    /// Sets `published`, `publish_updated` and `state` after a publish change.
    async fn set_published(&self, id: i64, publish: bool) -> Result<(), StoreError>;

    /// `updateRecordings`: metadata upserts and deletes on all listed
    /// recordings and `protect` on the first, in one transaction.
    async fn update_recordings(
        &self,
        record_ids: &[String],
        upserts: &[(String, String)],
        deletes: &[String],
        protect: Option<bool>,
    ) -> Result<(), StoreError>;

    /// `deleteRecordings`: removes metadata, formats and thumbnails and sets
    /// `state = 'deleted'` (the row stays).
    async fn mark_deleted(&self, id: i64) -> Result<(), StoreError>;

    /// A playback format of a recording.
    async fn playback(&self, record_id: &str, format: &str) -> Result<Option<PlaybackTarget>, StoreError>;

    /// Recordings with `published = false` (for `recordings update`).
    async fn unpublished(&self) -> Result<Vec<RecordingSummary>, StoreError>;

    /// Recordings with `published = true` that are not deleted (for
    /// `recordings update` with S3).
    async fn published(&self) -> Result<Vec<RecordingSummary>, StoreError>;

    /// Adds `tenant-id` metadata to every recording without one; returns
    /// how many were changed.
    async fn add_to_tenant(&self, tenant_id: &str) -> Result<u64, StoreError>;

    /// Recordings a retention rule may act on (see [`AgedQuery`]), by id.
    async fn recordings_started_before(&self, query: &AgedQuery) -> Result<Vec<AgedRecording>, StoreError>;
}

/// The result of a delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered (or the receiver said 404/410: nothing to deliver to).
    Done,
    /// Try again later.
    Retry {
        /// Seconds until the next attempt.
        in_secs: i64,
    },
    /// Stop trying.
    GiveUp,
}
