//! What the importer needs from the configuration, with the few knobs that
//! are not environment variables (limits, retry schedules) as named
//! defaults.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm as JwtAlgorithm;
use scalelite_core::Secret;
use scalelite_core::config::Config;
use scalelite_core::scope::MeetingIdScope;
use scalelite_store::recordings::ImportPolicy;
use scalelite_store::retention::GlobalRetention;
use scalelite_store::s3::S3Storage;

/// Largest `metadata.xml` accepted (BBB writes a few KiB).
pub const DEFAULT_MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;
/// First pause after the database (or a local directory) failed an import.
pub const DEFAULT_OUTAGE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause between import attempts during an outage.
pub const DEFAULT_OUTAGE_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Time limit of one recording-ready POST (connecting included).
pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before the first retry of a failed callback; doubles per attempt.
pub const DEFAULT_CALLBACK_RETRY: Duration = Duration::from_secs(30);
/// Longest pause between two callback attempts.
pub const DEFAULT_CALLBACK_RETRY_MAX: Duration = Duration::from_secs(3600);
/// Attempts before a callback is given up: 30 s doubling to the 1 h cap
/// makes the 30th attempt about 23 hours after the first.
pub const DEFAULT_CALLBACK_MAX_ATTEMPTS: i32 = 30;
/// How often the delivery worker looks for due callbacks (it is also woken
/// right after each import).
pub const DEFAULT_CALLBACK_POLL: Duration = Duration::from_secs(5);
/// How long a claimed callback stays hidden from other workers; longer than
/// a batch of attempts can take, so only a crashed worker's claims expire.
pub const DEFAULT_CALLBACK_LEASE: Duration = Duration::from_secs(300);

/// Exponential backoff: `initial`, doubling, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
}

impl Backoff {
    /// The pause after `failures` consecutive failures (1 = the first).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Settings of the importer.
///
/// Built from the process configuration with [`Settings::from_config`];
/// tests and embedders adjust the public fields afterwards.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// `RECORDING_DISABLED`: nothing is imported, archives stay in the spool.
    pub disabled: bool,
    /// `RECORDING_SPOOL_DIR`: where `<record_id>.tar` archives arrive.
    pub spool_dir: PathBuf,
    /// `RECORDING_WORK_DIR`: extraction happens in hidden directories here.
    pub work_dir: PathBuf,
    /// `RECORDING_PUBLISH_DIR`.
    pub publish_dir: PathBuf,
    /// `RECORDING_UNPUBLISH_DIR`.
    pub unpublish_dir: PathBuf,
    /// `RECORDING_IMPORT_UNPUBLISHED` and `PROTECTED_RECORDINGS_ENABLED`.
    pub policy: ImportPolicy,
    /// `RECORDING_IMPORT_POLL_INTERVAL`: spool scans besides file-system
    /// events (which NFS does not deliver).
    pub poll_interval: Duration,
    /// `RECORDING_IMPORT_SETTLE_TIME`: an archive's size and modification
    /// time must stay unchanged this long before it is imported.
    pub settle_time: Duration,
    /// Largest accepted `metadata.xml`.
    pub max_metadata_bytes: u64,
    /// Pauses while the database is unreachable or a directory is unusable.
    pub outage_backoff: Backoff,
    /// `MULTITENANCY_ENABLED`: recordings without `tenant-id` metadata get
    /// no recording-ready callback (as in Scalelite).
    pub multitenancy: bool,
    /// `MULTITENANCY_MEETING_ID_SCOPE=tenant`: a recording's meeting id is
    /// `<tenant id>:<meetingID>` on BBB and stored as the front-end's
    /// `meetingID`.
    pub scoped_meeting_ids: bool,
    /// Recording-ready callbacks.
    pub callbacks: CallbackSettings,
    /// `RECORDING_RETENTION_DAYS` and `RECORDING_RETENTION_ACTION` (the
    /// tenants' overrides are read at each run).
    pub retention: GlobalRetention,
    /// `RECORDING_RETENTION_INTERVAL`: time between two retention runs.
    pub retention_interval: Duration,
    /// `S3_RECORDING`: imported files go to this bucket, not the trees.
    pub s3: Option<S3Storage>,
}

/// Settings of recording-ready callback delivery.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallbackSettings {
    /// `LOADBALANCER_SECRET` and `LOADBALANCER_SECRETS`, tried in order.
    pub secrets: Vec<Secret>,
    /// HS256 or HS512, from `LOADBALANCER_CHECKSUM_ALGORITHM`.
    pub algorithm: JwtAlgorithm,
    /// `CONNECT_TIMEOUT`.
    pub connect_timeout: Duration,
    /// Limit of one POST, connecting included.
    pub timeout: Duration,
    /// Pauses between attempts.
    pub retry: Backoff,
    /// Attempts before giving up.
    pub max_attempts: i32,
    /// How often due callbacks are looked for.
    pub poll_interval: Duration,
    /// How long a claimed callback is hidden from other workers.
    pub lease: Duration,
    /// Callbacks claimed at once.
    pub batch: i64,
    /// Callbacks delivered concurrently.
    pub concurrency: usize,
}

impl Settings {
    /// The importer's settings from the process configuration.
    pub fn from_config(config: &Config) -> Self {
        let recordings = &config.recordings;
        Self {
            disabled: recordings.disabled,
            spool_dir: recordings.spool_dir.clone(),
            work_dir: recordings.work_dir.clone(),
            publish_dir: recordings.publish_dir.clone(),
            unpublish_dir: recordings.unpublish_dir.clone(),
            policy: ImportPolicy { import_unpublished: recordings.import_unpublished, protected: recordings.protected },
            poll_interval: recordings.import_poll_interval.max(Duration::from_millis(10)),
            settle_time: recordings.import_settle_time,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            outage_backoff: Backoff { initial: DEFAULT_OUTAGE_BACKOFF, max: DEFAULT_OUTAGE_BACKOFF_MAX },
            multitenancy: config.multitenancy,
            scoped_meeting_ids: config.meeting_id_scope == MeetingIdScope::Tenant,
            callbacks: CallbackSettings {
                secrets: config.secrets.clone(),
                algorithm: scalelite_core::jwt::callback_algorithm(config.checksum_algorithms),
                connect_timeout: config.connect_timeout,
                timeout: DEFAULT_CALLBACK_TIMEOUT,
                retry: Backoff { initial: DEFAULT_CALLBACK_RETRY, max: DEFAULT_CALLBACK_RETRY_MAX },
                max_attempts: DEFAULT_CALLBACK_MAX_ATTEMPTS,
                poll_interval: DEFAULT_CALLBACK_POLL,
                lease: DEFAULT_CALLBACK_LEASE,
                batch: 16,
                concurrency: 8,
            },
            retention: GlobalRetention { days: recordings.retention_days, action: recordings.retention_action },
            retention_interval: recordings.retention_interval.max(Duration::from_millis(10)),
            s3: S3Storage::from_recordings(recordings),
        }
    }
}

#[cfg(test)]
mod tests {
    use scalelite_core::config::Env;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff { initial: Duration::from_secs(30), max: Duration::from_secs(3600) };
        let pauses: Vec<u64> = (1..=9).map(|n| b.after(n).as_secs()).collect();
        assert_eq!(pauses, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(b.after(0).as_secs(), 30);
        assert_eq!(b.after(u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn the_default_callback_schedule_gives_up_after_about_a_day() {
        let b = Backoff { initial: DEFAULT_CALLBACK_RETRY, max: DEFAULT_CALLBACK_RETRY_MAX };
        let until_last: u64 = (1..DEFAULT_CALLBACK_MAX_ATTEMPTS as u32).map(|n| b.after(n).as_secs()).sum();
        assert!((20 * 3600..=26 * 3600).contains(&until_last), "{until_last} s");
    }

    #[test]
    fn from_config_reads_scalelites_variables() {
        let env = Env::default()
            .with("RECORDING_SPOOL_DIR", "/s")
            .with("RECORDING_IMPORT_UNPUBLISHED", "true")
            .with("PROTECTED_RECORDINGS_ENABLED", "TRUE")
            .with("RECORDING_IMPORT_SETTLE_TIME", "0.5")
            .with("LOADBALANCER_SECRET", "a")
            .with("LOADBALANCER_SECRETS", "b:c")
            .with("LOADBALANCER_CHECKSUM_ALGORITHM", "SHA512");
        let settings = Settings::from_config(&Config::from_env(&env).unwrap());
        assert_eq!(settings.spool_dir, PathBuf::from("/s"));
        assert_eq!(settings.policy, ImportPolicy { import_unpublished: true, protected: true });
        assert_eq!(settings.settle_time, Duration::from_millis(500));
        assert_eq!(settings.poll_interval, Duration::from_secs(60));
        let secrets: Vec<&str> = settings.callbacks.secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["a", "b", "c"]);
        assert_eq!(settings.callbacks.algorithm, JwtAlgorithm::HS512);
    }
}
