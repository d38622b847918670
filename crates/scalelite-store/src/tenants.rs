//! Tenants and their settings (multitenant mode), as Scalelite stores them.

use std::collections::HashMap;

use scalelite_core::TenantId;

/// The optional LRS/Keycloak fields of a tenant, in Scalelite's order.
pub const LRS_FIELDS: [&str; 8] = [
    "lrs_endpoint",
    "lrs_username",
    "lrs_password",
    "kc_token_url",
    "kc_client_id",
    "kc_client_secret",
    "kc_username",
    "kc_password",
];

/// A tenant: a front-end served on `<name>.<URL_HOST>` with its own secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Random UUID.
    pub id: TenantId,
    /// The sub-domain label that selects this tenant.
    pub name: String,
    /// Its shared secrets, `:`-separated (several for rollover).
    pub secrets: String,
    /// The LRS/Keycloak fields that are set, keyed by their name in
    /// [`LRS_FIELDS`].
    pub lrs: HashMap<String, String>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and LRS credentials stay out of logs.
        f.debug_struct("Tenant").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

impl Tenant {
    /// A new tenant with a random id.
    pub fn new(name: impl Into<String>, secrets: impl Into<String>) -> Self {
        Self {
            id: TenantId::new(uuid::Uuid::new_v4().to_string()),
            name: name.into(),
            secrets: secrets.into(),
            lrs: HashMap::new(),
        }
    }

    /// Builds a tenant from its `tenant:<id>` hash (`None` when empty).
    pub fn from_hash(id: TenantId, hash: &HashMap<String, String>) -> Option<Self> {
        if hash.is_empty() {
            return None;
        }
        let lrs = LRS_FIELDS.iter().filter_map(|f| hash.get(*f).map(|v| ((*f).to_owned(), v.clone()))).collect();
        Some(Self {
            id,
            name: hash.get("name").cloned().unwrap_or_default(),
            secrets: hash.get("secrets").cloned().unwrap_or_default(),
            lrs,
        })
    }

    /// The secrets as a list (Ruby's `split(':')`: empty pieces dropped at
    /// the end only, so `a::b` keeps an empty secret that never matches).
    pub fn secret_list(&self) -> Vec<&str> {
        scalelite_core::params::ruby_split(&self.secrets, ':')
    }

    /// An LRS/Keycloak field that is set and not blank.
    pub fn lrs_field(&self, name: &str) -> Option<&str> {
        self.lrs.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The set LRS/Keycloak fields in Scalelite's order.
    pub fn lrs_fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        LRS_FIELDS.iter().filter_map(|f| self.lrs.get(*f).map(|v| (*f, v.as_str())))
    }
}

/// Changes to a tenant; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantUpdate {
    /// New name (the name index follows).
    pub name: Option<String>,
    /// New secrets.
    pub secrets: Option<String>,
    /// LRS/Keycloak fields to set.
    pub lrs: Vec<(String, String)>,
}

/// A per-tenant parameter default or override (`tenant_setting:<id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSetting {
    /// Random UUID.
    pub id: String,
    /// The tenant it belongs to (not checked to exist, as in Scalelite).
    pub tenant_id: TenantId,
    /// The create/join parameter name.
    pub param: String,
    /// Its value.
    pub value: String,
    /// As stored; only exactly `true` makes it an override.
    pub override_flag: String,
}

impl TenantSetting {
    /// A new setting with a random id.
    pub fn new(tenant_id: TenantId, param: &str, value: &str, override_flag: &str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id,
            param: param.to_owned(),
            value: value.to_owned(),
            override_flag: override_flag.to_owned(),
        }
    }

    /// Builds a setting from its hash (`None` when empty).
    pub fn from_hash(id: String, hash: &HashMap<String, String>) -> Option<Self> {
        if hash.is_empty() {
            return None;
        }
        let field = |name: &str| hash.get(name).cloned().unwrap_or_default();
        Some(Self {
            id,
            tenant_id: TenantId::new(field("tenant_id")),
            param: field("param"),
            value: field("value"),
            override_flag: field("override"),
        })
    }

    /// Whether the setting overrides the request's value.
    pub fn is_override(&self) -> bool {
        self.override_flag == "true"
    }
}

/// A tenant with its settings, as read in one round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    /// The tenant.
    pub tenant: Tenant,
    /// Its settings (defaults and overrides).
    pub settings: Vec<TenantSetting>,
}
