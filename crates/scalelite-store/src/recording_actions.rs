//! Deleting, publishing and unpublishing one recording: its files in the
//! publish/unpublish trees first, then its rows. The BBB API's
//! `deleteRecordings` and `publishRecordings` and the retention rules
//! ([`crate::retention`]) all go through here.

use std::io;
use std::path::PathBuf;

use crate::StoreError;
use crate::recordings::{RecordingStore, RecordingSummary};
use crate::trees::{self, Trees};

/// The recording trees, owned (they move into blocking file tasks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeDirs {
    /// `RECORDING_PUBLISH_DIR`.
    pub publish: PathBuf,
    /// `RECORDING_UNPUBLISH_DIR`.
    pub unpublish: PathBuf,
}

impl TreeDirs {
    /// Borrowed, for the functions of [`crate::trees`].
    pub fn trees(&self) -> Trees<'_> {
        Trees { publish: &self.publish, unpublish: &self.unpublish }
    }
}

/// Why a recording could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// Its files could not be moved or removed (the rows are unchanged).
    #[error("files: {0}")]
    Files(io::Error),
    /// The files changed, but the database could not record it.
    #[error("database: {0}")]
    Store(StoreError),
}

/// Runs a file operation on the trees off the async runtime.
async fn on_files(
    dirs: &TreeDirs,
    work: impl FnOnce(Trees<'_>) -> io::Result<()> + Send + 'static,
) -> Result<(), ActionError> {
    let dirs = dirs.clone();
    tokio::task::spawn_blocking(move || work(dirs.trees()))
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(ActionError::Files)
}

/// Removes a recording's files from both trees, then its metadata, formats
/// and thumbnails, keeping the row as `state = 'deleted'` (Scalelite's
/// `deleteRecordings`; Scalelite cleans only the publish tree).
pub async fn delete(
    store: &dyn RecordingStore,
    dirs: &TreeDirs,
    recording: &RecordingSummary,
) -> Result<(), ActionError> {
    let record_id = recording.record_id.clone();
    on_files(dirs, move |trees| trees::delete_recording(trees, &record_id)).await?;
    store.mark_deleted(recording.id).await.map_err(ActionError::Store)
}

/// Moves every format of a recording into the publish tree (`publish`) or
/// the unpublish tree, then records `published`, `publish_updated` and
/// `state` (Scalelite's `publishRecordings`).
pub async fn set_published(
    store: &dyn RecordingStore,
    dirs: &TreeDirs,
    recording: &RecordingSummary,
    publish: bool,
) -> Result<(), ActionError> {
    let (formats, record_id) = (recording.formats.clone(), recording.record_id.clone());
    on_files(dirs, move |trees| {
        formats.iter().try_for_each(|format| trees::move_format(trees, format, &record_id, publish))
    })
    .await?;
    store.set_published(recording.id, publish).await.map_err(ActionError::Store)
}
