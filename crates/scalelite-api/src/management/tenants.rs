//! `getTenants`, `getTenantInfo`, `addTenant`, `updateTenant`,
//! `deleteTenant` (reference §13).
//!
//! As in Scalelite: checksums use the load-balancer (or management)
//! secrets, never a tenant's; after the checksum every call answers HTTP 412
//! unless `MULTITENANCY_ENABLED=true`; only `name` and `secrets` can be set
//! (the LRS fields are the admin CLI's). A tenant object is rendered the way
//! Rails renders Scalelite's `Tenant` model: its attributes in the order
//! they were assigned plus the `new_record` and `destroyed` flags.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use scalelite_core::{BbbError, TenantId};
use scalelite_store::{StoreError, Tenant, TenantUpdate};
use serde_json::{Map, Value, json};

use super::{ManagementRequest, Wrapped, internal_error, json_error, json_reply};
use crate::state::AppState;

/// Reads the request (content type, checksum), then refuses with HTTP 412
/// while multitenancy is off.
macro_rules! read {
    ($state:expr, $call:literal, $request:expr) => {{
        let request = match ManagementRequest::read(&$state, $call, $request).await {
            Ok(request) => request,
            Err(response) => return response,
        };
        if !$state.config.multitenancy {
            return json_reply(StatusCode::PRECONDITION_FAILED, json!({ "message": "Multitenancy is disabled" }));
        }
        request
    }};
}

/// Every tenant as `{"id","name","secrets"}` (in the store's order), or
/// `{"message":"No tenants exist"}`.
pub(crate) async fn get_tenants(State(state): State<AppState>, request: Request<Body>) -> Response {
    read!(state, "getTenants", request);
    match state.store.tenants().await {
        Ok(records) if records.is_empty() => json_reply(StatusCode::OK, json!({ "message": "No tenants exist" })),
        Ok(records) => {
            let list: Vec<Value> = records
                .iter()
                .map(|r| json!({ "id": r.tenant.id.as_str(), "name": r.tenant.name, "secrets": r.tenant.secrets }))
                .collect();
            json_reply(StatusCode::OK, list)
        }
        Err(error) => store_failed(&error),
    }
}

/// One tenant by `id`, with its LRS fields.
pub(crate) async fn get_tenant_info(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "getTenantInfo", request);
    let id = request.param("id").unwrap_or_default();
    match find(&state, &id).await {
        Ok(tenant) => json_reply(StatusCode::OK, tenant_object(&tenant, false)),
        Err(response) => response,
    }
}

/// Adds a tenant: `tenant.name` and `tenant.secrets` (`:`-separated) are
/// required. Names are not checked for uniqueness (as in Scalelite, a
/// second tenant with a name takes the name over).
pub(crate) async fn add_tenant(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "addTenant", request);
    let Some(params) = request.wrapped("tenant") else {
        return missing_tenant();
    };
    let (Some(name), Some(secrets)) = (present(&params, "name"), present(&params, "secrets")) else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({ "message": "Error: both name and secrets are required to create a Tenant" }),
        );
    };
    let tenant = Tenant::new(name, secrets);
    if let Err(error) = state.store.create_tenant(&tenant).await {
        return store_failed(&error);
    }
    state.tenants.invalidate();
    json_reply(StatusCode::CREATED, json!({ "tenant": tenant_object(&tenant, true) }))
}

/// Renames `id` and/or replaces its secrets; blank values are ignored. The
/// name index follows a rename.
pub(crate) async fn update_tenant(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "updateTenant", request);
    let id = request.param("id").unwrap_or_default();
    let mut tenant = match find(&state, &id).await {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    let Some(params) = request.wrapped("tenant") else {
        return missing_tenant();
    };
    let update = TenantUpdate {
        name: present(&params, "name").filter(|n| *n != tenant.name),
        secrets: present(&params, "secrets").filter(|s| *s != tenant.secrets),
        lrs: Vec::new(),
    };
    // Saved even without changes, as Scalelite does: that is where a tenant
    // whose hash outlived its `tenants` membership is refused.
    match state.store.update_tenant(&tenant.id, &update).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => {
            return json_error(StatusCode::UNPROCESSABLE_ENTITY, format!("Tenant with id '{id}' is deleted"));
        }
        Err(error) => return store_failed(&error),
    }
    state.tenants.invalidate();
    if let Some(name) = update.name {
        tenant.name = name;
    }
    if let Some(secrets) = update.secrets {
        tenant.secrets = secrets;
    }
    json_reply(StatusCode::OK, json!({ "tenant": tenant_object(&tenant, false) }))
}

/// Deletes `id` and its name index (its settings stay, as in Scalelite).
pub(crate) async fn delete_tenant(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "deleteTenant", request);
    let id = request.param("id").unwrap_or_default();
    let tenant = match find(&state, &id).await {
        Ok(tenant) => tenant,
        Err(response) => return response,
    };
    if let Err(error) = state.store.delete_tenant(&tenant.id).await {
        return store_failed(&error);
    }
    state.tenants.invalidate();
    json_reply(StatusCode::OK, json!({ "success": format!("Tenant id={id} was destroyed") }))
}

/// The tenant `id`, or the 404 reply.
async fn find(state: &AppState, id: &str) -> Result<Tenant, Response> {
    match state.store.tenant(&TenantId::new(id)).await {
        Ok(Some(record)) => Ok(record.tenant),
        Ok(None) => Err(json_error(StatusCode::NOT_FOUND, format!("Couldn't find Tenant with id={id}"))),
        Err(error) => Err(store_failed(&error)),
    }
}

/// A value that is not blank (Rails' `present?`).
fn present(params: &Wrapped<'_>, name: &str) -> Option<String> {
    params.get(name).filter(|v| !v.trim().is_empty())
}

/// A tenant as Rails renders the model: a loaded tenant's attributes come
/// after the bookkeeping flags and its id last; a created one's `name` and
/// `secrets` come first (assigned on `new`), its id last (assigned on save).
fn tenant_object(tenant: &Tenant, created: bool) -> Value {
    let mut object = Map::new();
    let flags = |object: &mut Map<String, Value>| {
        object.insert("new_record".into(), Value::Bool(false));
        object.insert("destroyed".into(), Value::Bool(false));
    };
    if !created {
        flags(&mut object);
    }
    object.insert("name".into(), Value::from(tenant.name.as_str()));
    object.insert("secrets".into(), Value::from(tenant.secrets.as_str()));
    for (field, value) in tenant.lrs_fields() {
        object.insert(field.into(), Value::from(value));
    }
    if created {
        flags(&mut object);
    }
    object.insert("id".into(), Value::from(tenant.id.as_str()));
    Value::Object(object)
}

/// Calls without a `tenant` object fail like Rails' `params.require`.
fn missing_tenant() -> Response {
    crate::response::ApiError(BbbError::MissingParam("tenant".into())).into_response()
}

/// A store failure: HTTP 500 with a generic message (the error is logged).
fn store_failed(error: &StoreError) -> Response {
    internal_error(error, "tenant management call failed on the store")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_objects_keep_rails_order() {
        let mut tenant = Tenant::new("a", "s1:s2");
        tenant.lrs.insert("lrs_username".into(), "u".into());
        tenant.lrs.insert("lrs_endpoint".into(), "https://lrs".into());
        let id = tenant.id.as_str().to_owned();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let loaded = tenant_object(&tenant, false);
        assert_eq!(keys(&loaded), ["new_record", "destroyed", "name", "secrets", "lrs_endpoint", "lrs_username", "id"]);
        assert_eq!(loaded["id"], Value::from(id));
        let created = tenant_object(&Tenant::new("b", "s"), true);
        assert_eq!(keys(&created), ["name", "secrets", "new_record", "destroyed", "id"]);
        assert_eq!(created["new_record"], Value::Bool(false));
    }
}
