//! `tenants …` and `tenant-settings …`: Scalelite's `tenants*` and
//! `tenantSettings*` rake tasks.
//!
//! Like the rake tasks they refuse to run unless `MULTITENANCY_ENABLED` is
//! set (to any value), and check their arguments themselves so that a
//! missing one gets Scalelite's message and exit code 1. Secrets and LRS
//! credentials are printed by the listing (as Scalelite prints them) and
//! never logged.

use clap::{Args, Subcommand};
use scalelite_core::TenantId;
use scalelite_store::limits;
use scalelite_store::tenants::LRS_FIELDS;
use scalelite_store::{Tenant, TenantRecord, TenantSetting, TenantUpdate};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::output::{Exit, Outcome, Ui};

/// The abort of every tenant task while multitenancy is off.
pub const MULTITENANCY_DISABLED: &str = "Multitenancy is disabled, task can not be completed";

/// `tenants [COMMAND]`.
#[derive(Debug, Args)]
pub struct Opts {
    /// What to do; without one, the tenants are listed.
    #[command(subcommand)]
    pub command: Option<TenantsCommand>,
}

/// The `tenants` subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List every tenant with its secrets and LRS settings (the default).
    List,
    /// Add a tenant: front-ends reach it as `NAME.<URL_HOST>`.
    Add {
        /// The sub-domain label that selects the tenant.
        name: Option<String>,
        /// Its shared secrets, `:`-separated.
        secrets: Option<String>,
    },
    /// Rename a tenant, replace its secrets or set its limits.
    Update {
        /// Tenant id.
        id: Option<String>,
        /// New name (the old name stops working at once).
        #[arg(long)]
        name: Option<String>,
        /// New secrets, `:`-separated.
        #[arg(long)]
        secrets: Option<String>,
        /// Most concurrent meetings (0: no limit).
        #[arg(long, value_name = "N")]
        max_meetings: Option<String>,
        /// Most participants in all its meetings together (0: no limit).
        #[arg(long, value_name = "N")]
        max_participants: Option<String>,
        /// Most BBB API requests a minute, per API process (0: no limit).
        #[arg(long, value_name = "R")]
        rate: Option<String>,
    },
    /// Set a tenant's LRS endpoint with basic authentication.
    #[command(alias = "update_lrs_basic")]
    UpdateLrsBasic {
        /// Tenant id.
        id: Option<String>,
        /// The LRS (xAPI) endpoint.
        lrs_endpoint: Option<String>,
        /// Basic-auth user.
        lrs_username: Option<String>,
        /// Basic-auth password.
        lrs_password: Option<String>,
    },
    /// Set a tenant's LRS endpoint with Keycloak authentication.
    #[command(alias = "update_lrs_kc")]
    UpdateLrsKc {
        /// Tenant id.
        id: Option<String>,
        /// The LRS (xAPI) endpoint.
        lrs_endpoint: Option<String>,
        /// Keycloak token URL.
        kc_token_url: Option<String>,
        /// Keycloak client id.
        kc_client_id: Option<String>,
        /// Keycloak client secret.
        kc_client_secret: Option<String>,
        /// Keycloak user.
        kc_username: Option<String>,
        /// Keycloak password.
        kc_password: Option<String>,
    },
    /// Remove a tenant (its settings, meetings and recordings stay).
    Remove {
        /// Tenant id.
        id: Option<String>,
    },
}

/// `tenant-settings [COMMAND]`.
#[derive(Debug, Args)]
pub struct SettingsOpts {
    /// What to do; without one, the settings are listed.
    #[command(subcommand)]
    pub command: Option<SettingsCommand>,
}

/// The `tenant-settings` subcommands.
#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// List every tenant's settings (the default).
    List,
    /// Add a create/join parameter default (OVERRIDE `false`) or override
    /// (OVERRIDE `true`, exactly) for a tenant.
    Add {
        /// Tenant id (not checked, as in Scalelite).
        tenant_id: Option<String>,
        /// Parameter name, e.g. `welcome` or `meta_server-tag`.
        param: Option<String>,
        /// Its value.
        value: Option<String>,
        /// `true`: always wins over the request; anything else: a default.
        #[arg(value_name = "OVERRIDE")]
        override_flag: Option<String>,
    },
    /// Remove a tenant setting.
    Remove {
        /// Setting id.
        id: Option<String>,
    },
}

/// Runs a `tenants` command.
pub(crate) async fn run(opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    check_multitenancy(ctx, ui)?;
    match opts.command.unwrap_or(TenantsCommand::List) {
        TenantsCommand::List => list(ctx, ui).await,
        TenantsCommand::Add { name, secrets } => add(ctx, ui, name, secrets).await,
        TenantsCommand::Update { id, name, secrets, max_meetings, max_participants, rate } => {
            let limits = [
                (limits::MAX_MEETINGS_SETTING, max_meetings),
                (limits::MAX_PARTICIPANTS_SETTING, max_participants),
                (limits::RATE_SETTING, rate),
            ];
            update(ctx, ui, id, name, secrets, limits).await
        }
        TenantsCommand::UpdateLrsBasic { id, lrs_endpoint, lrs_username, lrs_password } => {
            let fields =
                [("lrs_endpoint", lrs_endpoint), ("lrs_username", lrs_username), ("lrs_password", lrs_password)];
            let usage = "Error: id, LRS_ENDPOINT, LRS_USERNAME, LRS_PASSWORD are required to update a Tenant";
            update_lrs(ctx, ui, id, fields, usage).await
        }
        TenantsCommand::UpdateLrsKc {
            id,
            lrs_endpoint,
            kc_token_url,
            kc_client_id,
            kc_client_secret,
            kc_username,
            kc_password,
        } => {
            let fields = [
                ("lrs_endpoint", lrs_endpoint),
                ("kc_token_url", kc_token_url),
                ("kc_client_id", kc_client_id),
                ("kc_client_secret", kc_client_secret),
                ("kc_username", kc_username),
                ("kc_password", kc_password),
            ];
            let usage = "Error: LRS_ENDPOINT, KC_TOKEN_URL, KC_CLIENT_ID, KC_CLIENT_SECRET, KC_USERNAME, KC_PASSWORD \
                         are required to update a Tenant";
            update_lrs(ctx, ui, id, fields, usage).await
        }
        TenantsCommand::Remove { id } => remove(ctx, ui, id).await,
    }
}

/// Runs a `tenant-settings` command.
pub(crate) async fn run_settings(opts: SettingsOpts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    check_multitenancy(ctx, ui)?;
    match opts.command.unwrap_or(SettingsCommand::List) {
        SettingsCommand::List => list_settings(ctx, ui).await,
        SettingsCommand::Add { tenant_id, param, value, override_flag } => {
            add_setting(ctx, ui, tenant_id, param, value, override_flag).await
        }
        SettingsCommand::Remove { id } => remove_setting(ctx, ui, id).await,
    }
}

/// Scalelite's tasks only check that the variable is set (even to `false`).
fn check_multitenancy(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    if ctx.config.multitenancy_variable_set { Ok(()) } else { Err(ui.fail(MULTITENANCY_DISABLED)) }
}

/// A value that is not blank (Rails' `present?`).
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Every tenant with its settings, by name then id (Redis set order is
/// arbitrary).
async fn all_tenants(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Result<Vec<TenantRecord>, Exit> {
    let mut records = ctx.store.tenants().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    records.sort_by(|a, b| (&a.tenant.name, a.tenant.id.as_str()).cmp(&(&b.tenant.name, b.tenant.id.as_str())));
    for record in &mut records {
        record.settings.sort_by(|a, b| (&a.param, &a.id).cmp(&(&b.param, &b.id)));
    }
    Ok(records)
}

/// The tenant `id`, or `ERROR: Couldn't find Tenant with id=<id>` and exit 1.
async fn find(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str) -> Result<Tenant, Exit> {
    find_record(ctx, ui, id).await.map(|record| record.tenant)
}

async fn find_record(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str) -> Result<TenantRecord, Exit> {
    match ctx.store.tenant(&TenantId::new(id)).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(ui.fail(format!("ERROR: Couldn't find Tenant with id={id}"))),
        Err(error) => Err(ui.fail(format!("ERROR: {error}"))),
    }
}

/// A tenant for `--json`: id, name, secrets, then the set LRS fields.
fn tenant_json(tenant: &Tenant) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), Value::from(tenant.id.as_str()));
    object.insert("name".into(), Value::from(tenant.name.as_str()));
    object.insert("secrets".into(), Value::from(tenant.secrets.as_str()));
    for field in LRS_FIELDS {
        if let Some(value) = tenant.lrs_field(field) {
            object.insert(field.into(), Value::from(value));
        }
    }
    Value::Object(object)
}

async fn list(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let records = all_tenants(ctx, ui).await?;
    ui.json(&Value::Array(records.iter().map(|r| tenant_json(&r.tenant)).collect()));
    for record in &records {
        let tenant = &record.tenant;
        ui.text(format!("id: {}", tenant.id));
        ui.text(format!("\tname: {}", tenant.name));
        ui.text(format!("\tsecrets: {}", tenant.secrets));
        for field in LRS_FIELDS {
            if let Some(value) = tenant.lrs_field(field) {
                ui.text(format!("\t{field}: {value}"));
            }
        }
    }
    ui.text(format!("Total number of tenants: {}", records.len()));
    Ok(())
}

async fn add(ctx: &Ctx, ui: &mut Ui<'_, '_>, name: Option<String>, secrets: Option<String>) -> Outcome {
    let (Some(name), Some(secrets)) = (present(name), present(secrets)) else {
        return Err(ui.fail("Error: both name and secrets are required to create a Tenant"));
    };
    let tenant = Tenant::new(name, secrets);
    ctx.store.create_tenant(&tenant).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    ui.text("OK");
    ui.text(format!("New Tenant id: {}", tenant.id));
    ui.json(&json!({ "ok": true, "id": tenant.id.as_str() }));
    Ok(())
}

async fn update(
    ctx: &Ctx,
    ui: &mut Ui<'_, '_>,
    id: Option<String>,
    name: Option<String>,
    secrets: Option<String>,
    limits: [(&'static str, Option<String>); 3],
) -> Outcome {
    let (id, name, secrets) = (present(id), present(name), present(secrets));
    let mut new_limits = Vec::new();
    for (param, value) in limits {
        let Some(value) = value else { continue };
        match limits::parse_limit(&value) {
            Ok(limit) => new_limits.push((param, limit)),
            Err(e) => return Err(ui.fail(format!("ERROR: {param}: {e}"))),
        }
    }
    let Some(id) = id.filter(|_| name.is_some() || secrets.is_some() || !new_limits.is_empty()) else {
        return Err(ui.fail("Error: id and either name or secrets are required to update a Tenant"));
    };
    let record = find_record(ctx, ui, &id).await?;
    let tenant = &record.tenant;
    if name.is_some() || secrets.is_some() {
        let update = TenantUpdate {
            name: name.filter(|n| *n != tenant.name),
            secrets: secrets.filter(|s| *s != tenant.secrets),
            lrs: Vec::new(),
        };
        save(ctx, ui, tenant, &update).await?;
    } else {
        ui.text("OK");
        ui.text(format!("Updated Tenant id: {}", tenant.id));
        ui.json(&json!({ "ok": true, "id": tenant.id.as_str() }));
    }
    // A limit is the tenant setting of its name: the old ones go, the new
    // one (unless 0) comes.
    for (param, limit) in new_limits {
        for old in record.settings.iter().filter(|s| s.param == param) {
            ctx.store.delete_tenant_setting(&old.id).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
        }
        match limit {
            Some(limit) => {
                let setting = TenantSetting::new(tenant.id.clone(), param, &limit.to_string(), "true");
                ctx.store.create_tenant_setting(&setting).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
                ui.text(format!("  {param}: {limit}"));
            }
            None => ui.text(format!("  {param}: no limit")),
        }
    }
    Ok(())
}

async fn update_lrs<const N: usize>(
    ctx: &Ctx,
    ui: &mut Ui<'_, '_>,
    id: Option<String>,
    fields: [(&str, Option<String>); N],
    usage: &str,
) -> Outcome {
    let id = present(id);
    let values: Option<Vec<(String, String)>> =
        fields.into_iter().map(|(field, value)| present(value).map(|v| (field.to_owned(), v))).collect();
    let (Some(id), Some(lrs)) = (id, values) else {
        return Err(ui.fail(usage));
    };
    let tenant = find(ctx, ui, &id).await?;
    let keycloak = lrs.iter().any(|(field, _)| field.starts_with("kc_"));
    save(ctx, ui, &tenant, &TenantUpdate { lrs, ..TenantUpdate::default() }).await?;
    // As in Scalelite, Keycloak settings leave basic credentials in place,
    // and those win when a meeting is created.
    if keycloak && tenant.lrs_field("lrs_username").is_some() {
        ui.error("WARNING: The tenant still has an lrs_username, so its basic credentials are used, not Keycloak");
    }
    Ok(())
}

/// Applies `update` and prints `OK`, `Updated Tenant id: <id>`.
async fn save(ctx: &Ctx, ui: &mut Ui<'_, '_>, tenant: &Tenant, update: &TenantUpdate) -> Outcome {
    match ctx.store.update_tenant(&tenant.id, update).await {
        Ok(()) => {}
        // The hash is there but the id left the `tenants` set.
        Err(scalelite_store::StoreError::NotFound(_)) => {
            return Err(ui.fail(format!("ERROR: Tenant with id '{}' is deleted", tenant.id)));
        }
        Err(error) => return Err(ui.fail(format!("ERROR: {error}"))),
    }
    ui.text("OK");
    ui.text(format!("Updated Tenant id: {}", tenant.id));
    ui.json(&json!({ "ok": true, "id": tenant.id.as_str() }));
    Ok(())
}

async fn remove(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: Option<String>) -> Outcome {
    let id = id.unwrap_or_default();
    let tenant = find(ctx, ui, &id).await?;
    let warning = format!(
        "WARNING: You are about to remove tenant {id} ({}). Its front-ends stop working at once, and its \
         recordings stay tagged with this id, which a new tenant never gets.",
        tenant.name
    );
    if !ui.confirm(&[warning]) {
        ui.notice(format!("Tenant {id} was not removed"));
        ui.json(&json!({ "ok": false, "declined": true, "id": id }));
        return Ok(());
    }
    match ctx.store.delete_tenant(&tenant.id).await {
        Ok(true) => {}
        Ok(false) => return Err(ui.fail("Error! Tenant has not been deleted")),
        Err(error) => return Err(ui.fail(format!("ERROR: {error}"))),
    }
    ui.text("Tenant was successfully deleted.");
    ui.json(&json!({ "ok": true, "id": id }));
    Ok(())
}

async fn list_settings(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let records = all_tenants(ctx, ui).await?;
    let objects: Vec<Value> = records
        .iter()
        .map(|r| {
            let settings: Vec<Value> = r
                .settings
                .iter()
                .map(|s| json!({ "id": s.id, "param": s.param, "value": s.value, "override": s.override_flag }))
                .collect();
            json!({ "tenant_id": r.tenant.id.as_str(), "tenant_name": r.tenant.name, "settings": settings })
        })
        .collect();
    ui.json(&Value::Array(objects));
    for record in &records {
        ui.text(format!("Tenant: {}", record.tenant.name));
        if record.settings.is_empty() {
            ui.error("  No custom settings are configured");
        }
        for setting in &record.settings {
            ui.text(format!("  id: {}", setting.id));
            ui.text(format!("\tparam: {}", setting.param));
            ui.text(format!("\tvalue: {}", setting.value));
            ui.text(format!("\toverride: {}", setting.override_flag));
        }
    }
    Ok(())
}

async fn add_setting(
    ctx: &Ctx,
    ui: &mut Ui<'_, '_>,
    tenant_id: Option<String>,
    param: Option<String>,
    value: Option<String>,
    override_flag: Option<String>,
) -> Outcome {
    let (Some(tenant_id), Some(param), Some(value), Some(override_flag)) =
        (present(tenant_id), present(param), present(value), present(override_flag))
    else {
        return Err(ui.fail("Error: tenant_id, param, value and override are required to create a TenantSetting"));
    };
    // The balancer's own settings (recording retention) must make sense.
    if let Err(e) = scalelite_store::retention::check_setting(&param, &value) {
        return Err(ui.fail(format!("ERROR: {e}")));
    }
    let tenant_id = TenantId::new(tenant_id);
    // Scalelite stores it anyway; say why it will have no effect.
    match ctx.store.tenant(&tenant_id).await {
        Ok(Some(_)) => {}
        Ok(None) => ui.error(format!("WARNING: There is no tenant with id {tenant_id}; the setting has no effect")),
        Err(error) => return Err(ui.fail(format!("ERROR: {error}"))),
    }
    if override_flag != "true" && override_flag != "false" {
        ui.error(format!("WARNING: Only an override of exactly `true` overrides; `{override_flag}` makes a default"));
    }
    let setting = TenantSetting::new(tenant_id, &param, &value, &override_flag);
    ctx.store.create_tenant_setting(&setting).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    ui.text("OK");
    ui.text(format!("New TenantSetting id: {}", setting.id));
    ui.json(&json!({ "ok": true, "id": setting.id }));
    Ok(())
}

async fn remove_setting(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: Option<String>) -> Outcome {
    let id = id.unwrap_or_default();
    match ctx.store.delete_tenant_setting(&id).await {
        Ok(true) => {}
        Ok(false) => return Err(ui.fail(format!("ERROR: Couldn't find TenantSetting with id={id}"))),
        Err(error) => return Err(ui.fail(format!("ERROR: {error}"))),
    }
    ui.text("TenantSetting was successfully deleted.");
    ui.json(&json!({ "ok": true, "id": id }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    #[test]
    fn rake_task_names_are_aliases() {
        let cli = Cli::try_parse_from(["scalelite-admin", "tenantSettings", "add", "t", "p", "v", "true"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::TenantSettings(SettingsOpts { command: Some(SettingsCommand::Add { .. }) })
        ));
        let cli = Cli::try_parse_from(["scalelite-admin", "tenants", "update_lrs_basic", "i", "e", "u", "p"]).unwrap();
        assert!(matches!(cli.command, Command::Tenants(Opts { command: Some(TenantsCommand::UpdateLrsBasic { .. }) })));
        let cli = Cli::try_parse_from(["scalelite-admin", "tenants"]).unwrap();
        assert!(matches!(cli.command, Command::Tenants(Opts { command: None })));
    }

    #[test]
    fn missing_arguments_reach_the_task() {
        // So that the rake task's message and exit code 1 apply, not clap's 2.
        let cli = Cli::try_parse_from(["scalelite-admin", "tenants", "add"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Tenants(Opts { command: Some(TenantsCommand::Add { name: None, secrets: None }) })
        ));
        assert!(Cli::try_parse_from(["scalelite-admin", "tenants", "add", "a", "b", "c"]).is_err());
    }
}
