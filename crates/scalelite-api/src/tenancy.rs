//! Multitenancy: the tenant a request belongs to, from its host.
//!
//! The tenant name is the first DNS label of the request host (the last
//! `X-Forwarded-Host` value when present, else `Host`), as in Scalelite.
//! Tenants and their settings are cached in the process so that a join
//! still costs one store round trip: an entry is re-read after
//! `TENANT_CACHE_TTL`, and at once (at most once a second) when a checksum
//! fails against it, so a new tenant or a rolled-over secret works on the
//! first request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, Uri};
use scalelite_core::params::{ParamList, parse_name_list};
use scalelite_core::{BbbError, Secret, TenantId};
use scalelite_store::limits::TenantLimits;
use scalelite_store::{StoreError, Tenant, TenantRecord, TenantStore};

use crate::host::{request_host, tenant_name};
use crate::response::ApiError;

/// How soon a cache entry may be re-read after a failed checksum.
const REFRESH_FLOOR: Duration = Duration::from_secs(1);

/// A tenant as requests use it: secrets split, settings sorted into layers.
#[derive(Debug)]
pub(crate) struct ResolvedTenant {
    /// The stored tenant.
    pub(crate) tenant: Tenant,
    /// Its secrets (checksums, callbacks).
    pub(crate) secrets: Vec<Secret>,
    /// Settings whose `override` is not `true`: used when the request lacks them.
    pub(crate) defaults: ParamList,
    /// Settings whose `override` is `true`: always win.
    pub(crate) overrides: ParamList,
    /// [`Self::defaults`] without `meta_server-tag` (and the new
    /// `meta_server-region`, `meta_server-capability`), for join (Scalelite
    /// drops a tenant's server tag from join redirects).
    pub(crate) join_defaults: ParamList,
    /// [`Self::overrides`] without the placement parameters, for join.
    pub(crate) join_overrides: ParamList,
    /// Names from the tenant's `CREATE_EXCLUDE_PARAMS` settings.
    pub(crate) create_exclude: Vec<String>,
    /// Names from the tenant's `JOIN_EXCLUDE_PARAMS` settings.
    pub(crate) join_exclude: Vec<String>,
    /// Its limits (concurrent meetings, participants, request rate).
    pub(crate) limits: TenantLimits,
}

/// The setting names that hold a tenant's exclusion lists, named after the
/// global variables they extend (a comma-separated list of names, as
/// there). Ruby Scalelite forwards them to BBB as unknown parameters, which
/// BBB ignores.
const CREATE_EXCLUDE: &str = "CREATE_EXCLUDE_PARAMS";
const JOIN_EXCLUDE: &str = "JOIN_EXCLUDE_PARAMS";

/// The placement parameters (server tag; preferred regions and needed
/// capabilities, new), never added to join redirects from tenant settings.
const PLACEMENT_PARAMS: [&str; 3] = ["meta_server-tag", "meta_server-region", "meta_server-capability"];

impl ResolvedTenant {
    /// Sorts a stored tenant's settings into defaults and overrides.
    pub(crate) fn new(record: TenantRecord) -> Self {
        let limits = TenantLimits::from_settings(&record.settings);
        let secrets = record.tenant.secret_list().into_iter().map(Secret::new).collect();
        let (mut defaults, mut overrides) = (ParamList::new(), ParamList::new());
        let (mut create_exclude, mut join_exclude) = (Vec::new(), Vec::new());
        // Settings come in no defined order; sort so that duplicates
        // of one param resolve the same way in every process.
        let mut settings = record.settings;
        settings.sort_by(|a, b| (&a.param, &a.id).cmp(&(&b.param, &b.id)));
        // The balancer's own settings (recording retention) are not
        // create or join parameters.
        for setting in settings.into_iter().filter(|s| !scalelite_store::retention::is_balancer_setting(&s.param)) {
            match setting.param.as_str() {
                CREATE_EXCLUDE => create_exclude.extend(parse_name_list(&setting.value)),
                JOIN_EXCLUDE => join_exclude.extend(parse_name_list(&setting.value)),
                _ => {
                    let layer = if setting.is_override() { &mut overrides } else { &mut defaults };
                    layer.push((setting.param, setting.value));
                }
            }
        }
        let without_tag = |list: &ParamList| -> ParamList {
            list.iter().filter(|(k, _)| !PLACEMENT_PARAMS.contains(&k.as_str())).cloned().collect()
        };
        let (join_defaults, join_overrides) = (without_tag(&defaults), without_tag(&overrides));
        Self {
            tenant: record.tenant,
            secrets,
            defaults,
            overrides,
            join_defaults,
            join_overrides,
            create_exclude,
            join_exclude,
            limits,
        }
    }

    /// The tenant's id.
    pub(crate) fn id(&self) -> &TenantId {
        &self.tenant.id
    }

    /// The tenant's name (its sub-domain label).
    pub(crate) fn name(&self) -> &str {
        &self.tenant.name
    }

    /// The tenant's default for `name`, if any.
    pub(crate) fn default_value(&self, name: &str) -> Option<&str> {
        self.defaults.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The tenant's override for `name`, if any.
    pub(crate) fn override_value(&self, name: &str) -> Option<&str> {
        self.overrides.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Entry {
    tenant: Option<Arc<ResolvedTenant>>,
    fetched: Instant,
    /// When a failed checksum last forced a re-read.
    refreshed: Option<Instant>,
}

/// Cache of tenants by name.
#[derive(Debug)]
pub(crate) struct TenantDirectory {
    store: Arc<dyn TenantStore>,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl TenantDirectory {
    /// A directory reading `store`, keeping entries for `ttl`.
    pub(crate) fn new(store: Arc<dyn TenantStore>, ttl: Duration) -> Self {
        Self { store, ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// The tenant named `name` (cached for the TTL; unknown names too).
    pub(crate) async fn by_name(&self, name: &str) -> Result<Option<Arc<ResolvedTenant>>, StoreError> {
        if let Some(entry) = self.cached(name, self.ttl) {
            return Ok(entry);
        }
        self.fetch(name).await
    }

    /// The tenant named `name`: [`Self::by_name`], and when that knows no
    /// such tenant, [`Self::refresh`] (a tenant added since its name was
    /// cached as unknown is found at once).
    pub(crate) async fn find(&self, name: &str) -> Result<Option<Arc<ResolvedTenant>>, StoreError> {
        match self.by_name(name).await? {
            Some(tenant) => Ok(Some(tenant)),
            None => self.refresh(name).await,
        }
    }

    /// The tenant whose name is the first label of the request's host
    /// ([`request_host`]). No name, or an unknown one, is a
    /// `checksumError`, as in Scalelite.
    pub(crate) async fn of_request(&self, headers: &HeaderMap, uri: &Uri) -> Result<Arc<ResolvedTenant>, ApiError> {
        let name = request_host(headers, uri).map(tenant_name).unwrap_or("");
        if name.is_empty() {
            return Err(BbbError::ChecksumError.into());
        }
        self.find(name).await?.ok_or_else(|| BbbError::ChecksumError.into())
    }

    /// Re-reads `name` unless a failure forced a re-read of it within the
    /// last second (so a flood of bad checksums costs the store one read a
    /// second); returns the fresh tenant, or `None` when it was not re-read
    /// or is unknown.
    pub(crate) async fn refresh(&self, name: &str) -> Result<Option<Arc<ResolvedTenant>>, StoreError> {
        {
            let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(entry) = entries.get_mut(name) {
                if entry.refreshed.is_some_and(|at| at.elapsed() < REFRESH_FLOOR) {
                    return Ok(None);
                }
                entry.refreshed = Some(Instant::now());
            }
        }
        self.fetch(name).await
    }

    /// Drops every cached entry (after this process changed a tenant).
    pub(crate) fn invalidate(&self) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    fn cached(&self, name: &str, max_age: Duration) -> Option<Option<Arc<ResolvedTenant>>> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(name).filter(|e| e.fetched.elapsed() < max_age).map(|e| e.tenant.clone())
    }

    async fn fetch(&self, name: &str) -> Result<Option<Arc<ResolvedTenant>>, StoreError> {
        let tenant = self.store.tenant_by_name(name).await?.map(|record| Arc::new(ResolvedTenant::new(record)));
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Names are attacker-chosen: bound the cache.
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.tenant.is_some());
        }
        let refreshed = entries.get(name).and_then(|e| e.refreshed);
        entries.insert(name.to_owned(), Entry { tenant: tenant.clone(), fetched: Instant::now(), refreshed });
        Ok(tenant)
    }
}

/// Most cached names before unknown ones are dropped.
const MAX_ENTRIES: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;
    use scalelite_store::TenantSetting;

    #[test]
    fn settings_split_into_layers() {
        let tenant = Tenant::new("a", "s1:s2");
        let id = tenant.id.clone();
        let settings = vec![
            TenantSetting::new(id.clone(), "welcome", "hi", "false"),
            TenantSetting::new(id.clone(), "record", "false", "true"),
            TenantSetting::new(id.clone(), "logo", "x", "TRUE"),
            TenantSetting::new(id.clone(), "scalelite-recording-retention-days", "30", "false"),
            TenantSetting::new(id, "scalelite-recording-retention-action", "delete", "true"),
        ];
        let resolved = ResolvedTenant::new(TenantRecord { tenant, settings });
        assert_eq!(resolved.secrets, [Secret::new("s1"), Secret::new("s2")]);
        assert_eq!(resolved.default_value("welcome"), Some("hi"));
        // Only exactly "true" overrides.
        assert_eq!(resolved.default_value("logo"), Some("x"));
        assert_eq!(resolved.override_value("record"), Some("false"));
        assert_eq!(resolved.override_value("welcome"), None);
        // The balancer's own settings are not sent to BBB.
        assert_eq!((resolved.defaults.len(), resolved.overrides.len()), (2, 1));
    }

    #[test]
    fn exclusion_settings_and_the_join_layers() {
        let tenant = Tenant::new("a", "s1");
        let id = tenant.id.clone();
        let settings = vec![
            TenantSetting::new(id.clone(), "CREATE_EXCLUDE_PARAMS", "pluginManifests, clientSettingsOverride", "true"),
            TenantSetting::new(id.clone(), "CREATE_EXCLUDE_PARAMS", "audioBridge", "false"),
            TenantSetting::new(id.clone(), "JOIN_EXCLUDE_PARAMS", "userdata-bbb_custom_css_url", "false"),
            TenantSetting::new(id.clone(), "meta_server-tag", "gpu", "true"),
            TenantSetting::new(id, "welcome", "hi", "false"),
        ];
        let resolved = ResolvedTenant::new(TenantRecord { tenant, settings });
        let mut create = resolved.create_exclude.clone();
        create.sort();
        assert_eq!(create, ["audioBridge", "clientSettingsOverride", "pluginManifests"]);
        assert_eq!(resolved.join_exclude, ["userdata-bbb_custom_css_url"]);
        // The lists are policy, never parameters.
        assert_eq!(resolved.override_value("CREATE_EXCLUDE_PARAMS"), None);
        assert_eq!(resolved.default_value("CREATE_EXCLUDE_PARAMS"), None);
        assert_eq!(resolved.override_value("meta_server-tag"), Some("gpu"));
        assert!(resolved.join_overrides.is_empty());
        assert_eq!(resolved.join_defaults, [("welcome".to_owned(), "hi".to_owned())]);
    }
}
