//! The importer's Prometheus metrics (documented in docs/METRICS.md): the
//! binary serves them on `RECORDING_IMPORTER_METRICS_BIND`; the API
//! registers them on its `/metrics` in the embedded mode, where it runs the
//! importer.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use scalelite_store::retention::RetentionReport;

/// Labels of the per-recording retention counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    /// `delete` or `unpublish`.
    action: String,
    /// `done` or `failed`.
    outcome: String,
}

/// Labels of the retention run counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    /// `ok` or `error` (the database or the tenants could not be read).
    outcome: String,
}

/// Counters of the periodic retention runs.
#[derive(Debug, Default)]
pub struct RetentionMetrics {
    recordings: Family<ActionLabels, Counter>,
    deleted_bytes: Counter,
    runs: Family<RunLabels, Counter>,
}

impl RetentionMetrics {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the counters as `scalelite_recording_retention_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("scalelite_recording_retention");
        r.register(
            "recordings",
            "Recordings the retention rules deleted or unpublished (outcome done) or could not change (failed)",
            self.recordings.clone(),
        );
        r.register(
            "deleted_bytes",
            "Bytes of the files of recordings deleted by retention",
            self.deleted_bytes.clone(),
        );
        r.register("runs", "Retention runs of this importer (outcome ok or error)", self.runs.clone());
    }

    fn count(&self, action: &str, outcome: &str, n: u64) {
        let labels = ActionLabels { action: action.to_owned(), outcome: outcome.to_owned() };
        self.recordings.get_or_create(&labels).inc_by(n);
    }

    /// Counts a finished run.
    pub(crate) fn record(&self, report: &RetentionReport) {
        self.count("delete", "done", report.deleted);
        self.count("unpublish", "done", report.unpublished);
        for (action, failed) in [("delete", report.failed_deletes), ("unpublish", report.failed_unpublishes)] {
            self.count(action, "failed", failed);
        }
        self.deleted_bytes.inc_by(report.bytes_deleted);
        self.runs.get_or_create(&RunLabels { outcome: "ok".into() }).inc();
    }

    /// Counts a run that could not read what it needed.
    pub(crate) fn run_failed(&self) {
        self.runs.get_or_create(&RunLabels { outcome: "error".into() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exported_with_their_labels() {
        let metrics = RetentionMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut report = RetentionReport::default();
        report.deleted = 2;
        report.unpublished = 1;
        report.bytes_deleted = 4000;
        report.failed_deletes = 1;
        metrics.record(&report);
        metrics.run_failed();
        let text = scalelite_telemetry::encode(&registry);
        for line in [
            r#"scalelite_recording_retention_recordings_total{action="delete",outcome="done"} 2"#,
            r#"scalelite_recording_retention_recordings_total{action="unpublish",outcome="done"} 1"#,
            r#"scalelite_recording_retention_recordings_total{action="delete",outcome="failed"} 1"#,
            "scalelite_recording_retention_deleted_bytes_total 4000",
            r#"scalelite_recording_retention_runs_total{outcome="ok"} 1"#,
            r#"scalelite_recording_retention_runs_total{outcome="error"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
