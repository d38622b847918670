//! Recording retention: recordings whose start time lies more than N days
//! back are deleted or unpublished, by a global rule
//! (`RECORDING_RETENTION_DAYS`, `RECORDING_RETENTION_ACTION`) that a
//! tenant overrides with its own settings ([`DAYS_SETTING`],
//! [`ACTION_SETTING`]). `scalelite-admin recordings prune` and the
//! importer's periodic run both plan and act through this module, and act
//! through [`crate::recording_actions`], as the BBB API does.
//!
//! The age is measured from the recording's `starttime` (when the meeting
//! started, as `getRecordings` shows it); recordings without one are never
//! pruned. Deleted recordings (`state = 'deleted'`) are left alone, and
//! unpublishing concerns published recordings only.

use std::collections::HashMap;

use tracing::{info, warn};

use crate::StoreError;
use crate::recording_actions::{self, ActionError, TreeDirs};
use crate::recordings::{AgedQuery, AgedRecording, RecordingStore, TenantScope};
use crate::tenants::TenantRecord;
use crate::trees;

pub use scalelite_core::retention::{MAX_RETENTION_DAYS, RetentionAction, cutoff_ms, parse_days, parse_days_or_off};

/// The tenant setting that overrides `RECORDING_RETENTION_DAYS` for one
/// tenant's recordings (`90`, `90d`, or `off`/`0` to keep them forever).
pub const DAYS_SETTING: &str = "scalelite-recording-retention-days";
/// The tenant setting that overrides `RECORDING_RETENTION_ACTION`.
pub const ACTION_SETTING: &str = "scalelite-recording-retention-action";
/// The prefix of the tenant settings the balancer reads itself: they are
/// not create or join parameters, and the API does not send them to BBB.
pub const SETTING_PREFIX: &str = "scalelite-recording-retention-";

/// Recordings read at once while planning.
pub const PAGE: i64 = 500;

/// Whether a tenant setting is one of the balancer's own (not a create or
/// join parameter).
pub fn is_balancer_setting(param: &str) -> bool {
    param.starts_with(SETTING_PREFIX) || crate::limits::is_limit_setting(param)
}

/// Checks the value of one of the balancer's own tenant settings (any
/// other parameter passes): the message says what is wrong.
pub fn check_setting(param: &str, value: &str) -> Result<(), String> {
    match param {
        DAYS_SETTING => parse_days_or_off(value).map(|_| ()),
        ACTION_SETTING => value.parse::<RetentionAction>().map(|_| ()),
        other if crate::limits::is_limit_setting(other) => crate::limits::check_setting(other, value),
        other if is_balancer_setting(other) => {
            Err(format!("{other:?} is not a setting the balancer knows: {DAYS_SETTING} or {ACTION_SETTING}"))
        }
        _ => Ok(()),
    }
}

/// The global rule from the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalRetention {
    /// `RECORDING_RETENTION_DAYS` (`None`: off).
    pub days: Option<u32>,
    /// `RECORDING_RETENTION_ACTION`.
    pub action: RetentionAction,
}

/// One retention rule: the recordings in `scope` older than `days` get
/// `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Whose recordings.
    pub scope: TenantScope,
    /// Age limit in days.
    pub days: u32,
    /// What happens past it.
    pub action: RetentionAction,
    /// Where the rule comes from, for reports and logs:
    /// `RECORDING_RETENTION_DAYS`, `tenant <name>` or `--older-than`.
    pub origin: String,
}

/// The rules in force, and the tenant settings that could not be read
/// (such a tenant's recordings are left alone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Disjoint rules: a recording falls under one at most.
    pub rules: Vec<Rule>,
    /// Invalid tenant settings, one sentence each.
    pub problems: Vec<String>,
}

/// The value of a tenant's setting `param` (the last by id when repeated,
/// as the API resolves duplicates).
fn setting<'a>(record: &'a TenantRecord, param: &str) -> Option<&'a str> {
    record.settings.iter().filter(|s| s.param == param).max_by(|a, b| a.id.cmp(&b.id)).map(|s| s.value.as_str())
}

/// The rules of `global` and the tenants' overrides. With `only`, the rule
/// for that tenant's recordings alone (its override, else the global rule).
pub fn rules(global: GlobalRetention, tenants: &[TenantRecord], only: Option<&str>) -> Rules {
    let mut out = Rules::default();
    let mut overridden = Vec::new();
    let mut sorted: Vec<&TenantRecord> = tenants.iter().collect();
    sorted.sort_by(|a, b| a.tenant.name.cmp(&b.tenant.name));
    for record in sorted {
        let (days, action) = (setting(record, DAYS_SETTING), setting(record, ACTION_SETTING));
        if days.is_none() && action.is_none() {
            continue;
        }
        let id = record.tenant.id.as_str().to_owned();
        overridden.push(id.clone());
        let name = &record.tenant.name;
        let days = match days.map(parse_days_or_off) {
            None => Ok(global.days),
            Some(Ok(days)) => Ok(days),
            Some(Err(e)) => Err(format!("tenant {name}: {DAYS_SETTING}: {e}")),
        };
        let action = match action.map(str::parse::<RetentionAction>) {
            None => Ok(global.action),
            Some(Ok(action)) => Ok(action),
            Some(Err(e)) => Err(format!("tenant {name}: {ACTION_SETTING}: {e}")),
        };
        match (days, action) {
            (Ok(Some(days)), Ok(action)) if only.is_none_or(|t| t == id) => {
                out.rules.push(Rule { scope: TenantScope::Tenant(id), days, action, origin: format!("tenant {name}") })
            }
            (Ok(_), Ok(_)) => {}
            (days, action) => {
                out.problems.extend(days.err());
                out.problems.extend(action.err());
            }
        }
    }
    if let Some(days) = global.days {
        let scope = match only {
            Some(tenant) if overridden.iter().any(|t| t == tenant) => None,
            Some(tenant) => Some(TenantScope::Tenant(tenant.to_owned())),
            None => Some(TenantScope::Except(overridden)),
        };
        if let Some(scope) = scope {
            out.rules.push(Rule { scope, days, action: global.action, origin: "RECORDING_RETENTION_DAYS".into() });
        }
    }
    out
}

/// A recording a rule acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The recording.
    pub recording: AgedRecording,
    /// What happens to it.
    pub action: RetentionAction,
    /// The rule's age limit in days.
    pub days: u32,
    /// The rule's origin ([`Rule::origin`]).
    pub origin: String,
    /// Bytes of its files in both trees.
    pub size_bytes: u64,
}

/// One page of a rule's candidates: recordings with an id above `after_id`.
pub async fn candidates(
    store: &dyn RecordingStore,
    dirs: &TreeDirs,
    rule: &Rule,
    now_ms: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Candidate>, StoreError> {
    let query = AgedQuery {
        started_before_ms: cutoff_ms(now_ms, rule.days),
        scope: rule.scope.clone(),
        published_only: rule.action == RetentionAction::Unpublish,
        after_id,
        limit,
    };
    let recordings = store.recordings_started_before(&query).await?;
    if let Some(s3) = &dirs.s3 {
        let mut out = Vec::with_capacity(recordings.len());
        for recording in recordings {
            let size_bytes = s3.recording_size(&recording.summary).await;
            out.push(Candidate {
                recording,
                action: rule.action,
                days: rule.days,
                origin: rule.origin.clone(),
                size_bytes,
            });
        }
        return Ok(out);
    }
    let ids: Vec<String> = recordings.iter().map(|r| r.summary.record_id.clone()).collect();
    let dirs = dirs.clone();
    let sizes = tokio::task::spawn_blocking(move || {
        ids.iter().map(|id| trees::recording_size(dirs.trees(), id)).collect::<Vec<u64>>()
    })
    .await
    .map_err(|e| StoreError::Unexpected(format!("measuring recordings: {e}")))?;
    Ok(recordings
        .into_iter()
        .zip(sizes)
        .map(|(recording, size_bytes)| Candidate {
            recording,
            action: rule.action,
            days: rule.days,
            origin: rule.origin.clone(),
            size_bytes,
        })
        .collect())
}

/// Every candidate of the rules (a dry run's list), oldest rule first
/// within each rule by database id.
pub async fn plan(
    store: &dyn RecordingStore,
    dirs: &TreeDirs,
    rules: &[Rule],
    now_ms: i64,
) -> Result<Vec<Candidate>, StoreError> {
    let mut all = Vec::new();
    for rule in rules {
        let mut pages = Pages::default();
        while let Some(page) = pages.next(store, dirs, rule, now_ms).await? {
            all.extend(page);
        }
    }
    Ok(all)
}

/// A rule's candidates a page at a time, by database id.
#[derive(Default)]
struct Pages {
    /// The last id of the previous page.
    after_id: i64,
    /// The previous page was the last (shorter than [`PAGE`]).
    done: bool,
}

impl Pages {
    async fn next(
        &mut self,
        store: &dyn RecordingStore,
        dirs: &TreeDirs,
        rule: &Rule,
        now_ms: i64,
    ) -> Result<Option<Vec<Candidate>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = candidates(store, dirs, rule, now_ms, self.after_id, PAGE).await?;
        self.done = page.len() as i64 != PAGE;
        self.after_id = page.last().map_or(self.after_id, |c| c.recording.summary.id);
        Ok(Some(page))
    }
}

/// Deletes or unpublishes one candidate, and logs it.
pub async fn act(store: &dyn RecordingStore, dirs: &TreeDirs, candidate: &Candidate) -> Result<(), ActionError> {
    let recording = &candidate.recording;
    let result = match candidate.action {
        RetentionAction::Delete => recording_actions::delete(store, dirs, &recording.summary).await,
        RetentionAction::Unpublish => recording_actions::set_published(store, dirs, &recording.summary, false).await,
    };
    match &result {
        Ok(()) => info!(
            recording.id = %recording.summary.record_id,
            tenant = recording.tenant_id.as_deref().unwrap_or(""),
            start_ms = recording.start_ms,
            action = %candidate.action,
            rule = %candidate.origin,
            days = candidate.days,
            bytes = candidate.size_bytes,
            "recording retention applied"
        ),
        Err(error) => warn!(
            recording.id = %recording.summary.record_id,
            action = %candidate.action,
            rule = %candidate.origin,
            %error,
            "recording retention failed"
        ),
    }
    result
}

/// What [`enforce`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Recordings deleted.
    pub deleted: u64,
    /// Recordings unpublished.
    pub unpublished: u64,
    /// Bytes of the deleted recordings' files.
    pub bytes_deleted: u64,
    /// Recordings that could not be changed: record id and why.
    pub failed: Vec<(String, String)>,
    /// How many of the failed ones were to be deleted.
    pub failed_deletes: u64,
    /// How many of the failed ones were to be unpublished.
    pub failed_unpublishes: u64,
}

/// Applies the rules, a page at a time (the importer's periodic run). Stops
/// between two recordings once `stopped` says so (a shutdown); the next run
/// goes on from there.
pub async fn enforce(
    store: &dyn RecordingStore,
    dirs: &TreeDirs,
    rules: &[Rule],
    now_ms: i64,
    stopped: &(dyn Fn() -> bool + Send + Sync),
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    for rule in rules {
        let mut pages = Pages::default();
        while let Some(page) = pages.next(store, dirs, rule, now_ms).await? {
            for candidate in &page {
                if stopped() {
                    return Ok(report);
                }
                match act(store, dirs, candidate).await {
                    Ok(()) if candidate.action == RetentionAction::Delete => {
                        report.deleted += 1;
                        report.bytes_deleted += candidate.size_bytes;
                    }
                    Ok(()) => report.unpublished += 1,
                    // The database is gone: the next run tries again.
                    Err(ActionError::Store(e)) => return Err(e),
                    Err(e) => {
                        match candidate.action {
                            RetentionAction::Delete => report.failed_deletes += 1,
                            RetentionAction::Unpublish => report.failed_unpublishes += 1,
                        }
                        report.failed.push((candidate.recording.summary.record_id.clone(), e.to_string()));
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Tenant names by id, for reports.
pub fn tenant_names(tenants: &[TenantRecord]) -> HashMap<String, String> {
    tenants.iter().map(|t| (t.tenant.id.as_str().to_owned(), t.tenant.name.clone())).collect()
}

#[cfg(test)]
mod tests {
    use scalelite_core::TenantId;

    use super::*;
    use crate::tenants::{Tenant, TenantSetting};

    fn tenant(name: &str, settings: &[(&str, &str)]) -> TenantRecord {
        let mut tenant = Tenant::new(name, "s");
        tenant.id = TenantId::new(format!("id-{name}"));
        let settings = settings.iter().map(|(p, v)| TenantSetting::new(tenant.id.clone(), p, v, "false")).collect();
        TenantRecord { tenant, settings }
    }

    fn rule(scope: TenantScope, days: u32, action: RetentionAction, origin: &str) -> Rule {
        Rule { scope, days, action, origin: origin.into() }
    }

    #[test]
    fn tenants_override_the_global_rule() {
        let global = GlobalRetention { days: Some(365), action: RetentionAction::Delete };
        let tenants = [
            tenant("plain", &[("welcome", "hi")]),
            tenant("short", &[(DAYS_SETTING, "30d"), (ACTION_SETTING, "unpublish")]),
            tenant("keep", &[(DAYS_SETTING, "off")]),
            tenant("hide", &[(ACTION_SETTING, "unpublish")]),
            tenant("broken", &[(DAYS_SETTING, "soon")]),
        ];
        let all = rules(global, &tenants, None);
        assert_eq!(all.problems.len(), 1);
        assert!(all.problems[0].contains("tenant broken") && all.problems[0].contains(DAYS_SETTING));
        let except = ["id-broken", "id-hide", "id-keep", "id-short"].map(String::from).to_vec();
        assert_eq!(
            all.rules,
            [
                rule(TenantScope::Tenant("id-hide".into()), 365, RetentionAction::Unpublish, "tenant hide"),
                rule(TenantScope::Tenant("id-short".into()), 30, RetentionAction::Unpublish, "tenant short"),
                rule(TenantScope::Except(except), 365, RetentionAction::Delete, "RECORDING_RETENTION_DAYS"),
            ]
        );
        // One tenant: its override, or the global rule narrowed to it.
        let short = rules(global, &tenants, Some("id-short"));
        assert_eq!(
            short.rules,
            [rule(TenantScope::Tenant("id-short".into()), 30, RetentionAction::Unpublish, "tenant short")]
        );
        let plain = rules(global, &tenants, Some("id-plain"));
        assert_eq!(
            plain.rules,
            [rule(TenantScope::Tenant("id-plain".into()), 365, RetentionAction::Delete, "RECORDING_RETENTION_DAYS")]
        );
        assert!(rules(global, &tenants, Some("id-keep")).rules.is_empty());
    }

    #[tokio::test]
    async fn enforcing_stops_between_two_recordings_and_goes_on_next_time() {
        use crate::recordings::{ImportPolicy, RecordingImport};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(dir.path().join("db.sqlite3")).await.unwrap();
        for id in ["r1", "r2", "r3"] {
            let import = RecordingImport {
                record_id: id.into(),
                meeting_id: "m".into(),
                published: Some(true),
                start_ms: Some(1_000),
                ..RecordingImport::default()
            };
            store.import_recording(&import, ImportPolicy::default()).await.unwrap();
        }
        let dirs = TreeDirs::local(dir.path().join("published"), dir.path().join("unpublished"));
        let rules = [rule(TenantScope::All, 1, RetentionAction::Delete, "test")];
        let now = 10 * 86_400_000;
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stop_after_two = || calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2;
        let report = enforce(&store, &dirs, &rules, now, &stop_after_two).await.unwrap();
        assert_eq!((report.deleted, report.unpublished), (2, 0));
        let report = enforce(&store, &dirs, &rules, now, &|| false).await.unwrap();
        assert_eq!(report.deleted, 1, "the rest at the next run");
        assert_eq!(plan(&store, &dirs, &rules, now).await.unwrap().len(), 0);
    }

    #[test]
    fn without_a_global_rule_only_tenants_with_days_have_rules() {
        let tenants = [tenant("short", &[(DAYS_SETTING, "7")]), tenant("hide", &[(ACTION_SETTING, "unpublish")])];
        let out = rules(GlobalRetention::default(), &tenants, None);
        assert_eq!(
            out.rules,
            [rule(TenantScope::Tenant("id-short".into()), 7, RetentionAction::Delete, "tenant short")]
        );
        assert!(rules(GlobalRetention::default(), &[], None).rules.is_empty());
        assert!(is_balancer_setting(DAYS_SETTING) && is_balancer_setting(ACTION_SETTING));
        assert!(!is_balancer_setting("welcome"));
        assert!(check_setting(DAYS_SETTING, "30d").is_ok() && check_setting(DAYS_SETTING, "off").is_ok());
        assert!(check_setting(DAYS_SETTING, "soon").is_err());
        assert!(check_setting(ACTION_SETTING, "unpublish").is_ok() && check_setting(ACTION_SETTING, "x").is_err());
        assert!(check_setting("scalelite-recording-retention-dayz", "30").is_err());
        assert!(check_setting("welcome", "anything").is_ok());
    }
}
