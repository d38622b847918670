//! `getServers`, `getServerInfo`, `addServer`, `updateServer`,
//! `deleteServer`, `panicServer`; new: `drainServer`, `getDrains`,
//! `capacity`.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{Request, StatusCode};
use scalelite_core::{Secret, ServerId};
use scalelite_fleet::{DrainSettings, FleetError, multiplier_arg, parse_deadline, placement_update, server_json, to_d};
use scalelite_store::{ServerState, ServerUpdate};
use serde_json::json;
use tracing::warn;

use super::{ManagementRequest, internal_error, json_error, json_reply};
use crate::state::AppState;

macro_rules! read {
    ($state:expr, $call:literal, $request:expr) => {
        match ManagementRequest::read(&$state, $call, $request).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
}

/// The reply for a failed fleet operation on server `id`.
fn failed(error: FleetError, id: &str) -> Response {
    match error {
        FleetError::NotFound(_) => json_error(StatusCode::NOT_FOUND, format!("Couldn't find server with id={id}")),
        FleetError::Invalid(message) => json_error(StatusCode::BAD_REQUEST, message),
        FleetError::Store(error) => internal_error(&error, "management call failed on the store"),
    }
}

/// `POST` calls without a `server` object fail like Rails' `params.require`.
fn missing_server() -> Response {
    use axum::response::IntoResponse;
    crate::response::ApiError(scalelite_core::BbbError::MissingParam("server".into())).into_response()
}

/// Every server, in the store's order.
pub(crate) async fn get_servers(State(state): State<AppState>, request: Request<Body>) -> Response {
    read!(state, "getServers", request);
    match state.fleet.servers().await {
        Ok(servers) if servers.is_empty() => json_error(StatusCode::NOT_FOUND, "No servers are configured"),
        Ok(servers) => json_reply(StatusCode::OK, servers.iter().map(server_json).collect::<Vec<_>>()),
        Err(error) => failed(error, ""),
    }
}

/// One server by `id`.
pub(crate) async fn get_server_info(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "getServerInfo", request);
    let id = request.param("id").unwrap_or_default();
    match state.fleet.server(&ServerId::new(id.clone())).await {
        Ok(server) => json_reply(StatusCode::OK, server_json(&server)),
        Err(error) => failed(error, &id),
    }
}

/// Adds a server: `server.url` and `server.secret` required; optional
/// `server.load_multiplier` (0 or unreadable means 1.0), `server.tag`, and
/// (new) `server.region` and `server.capabilities` (`,`-separated).
pub(crate) async fn add_server(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "addServer", request);
    let Some(server) = request.wrapped("server") else {
        return missing_server();
    };
    let (Some(url), Some(secret)) =
        (server.get("url").filter(|u| !u.is_empty()), server.get("secret").filter(|s| !s.is_empty()))
    else {
        return json_error(StatusCode::BAD_REQUEST, "Server needs a URL and a secret");
    };
    let multiplier = server.get("load_multiplier").filter(|m| !m.is_empty());
    let (multiplier, _) = multiplier_arg(multiplier.as_deref());
    let tag = server.get("tag");
    let mut placement = ServerUpdate::default();
    if let Err(message) =
        placement_update(server.get("region").as_deref(), server.get("capabilities").as_deref(), &mut placement)
    {
        return json_error(StatusCode::BAD_REQUEST, message);
    }
    let added = match state.fleet.add_server(&url, &secret, Some(multiplier), tag.as_deref()).await {
        Ok(added) if placement.is_empty() => Ok(added),
        Ok(added) => state.fleet.update_server(&added.id, &placement).await,
        Err(error) => Err(error),
    };
    match added {
        Ok(added) => json_reply(StatusCode::CREATED, server_json(&added)),
        Err(FleetError::Store(scalelite_store::StoreError::Conflict(message))) => {
            json_error(StatusCode::BAD_REQUEST, message)
        }
        Err(error) => failed(error, ""),
    }
}

/// Updates `id`: `server.state` (`enable`, `cordon`, `disable`),
/// `server.load_multiplier` (non-zero), `server.secret`, `server.tag`,
/// (new) `server.region` and `server.capabilities` (`""` removes them)
/// (`""` removes it). Nothing changes unless every value is valid.
pub(crate) async fn update_server(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "updateServer", request);
    let id = request.param("id").unwrap_or_default();
    let server_id = ServerId::new(id.clone());
    if let Err(error) = state.fleet.server(&server_id).await {
        return failed(error, &id);
    }
    // Scalelite's `params.require(:server)` raises inside the action's
    // `rescue StandardError`, which answers 400 with the exception's text.
    let Some(params) = request.wrapped("server").filter(|params| !params.is_empty()) else {
        return json_error(StatusCode::BAD_REQUEST, "param is missing or the value is empty: server");
    };
    let mut update = ServerUpdate::default();
    if let Some(new_state) = params.get("state").filter(|s| !s.is_empty()) {
        update.state = Some(match new_state.as_str() {
            "enable" => ServerState::Enabled,
            "cordon" => ServerState::Cordoned,
            "disable" => ServerState::Disabled,
            other => return json_error(StatusCode::BAD_REQUEST, format!("Invalid state parameter: {other}")),
        });
    }
    if let Some(multiplier) = params.get("load_multiplier").filter(|m| !m.is_empty()) {
        let value = to_d(&multiplier);
        if value == 0.0 {
            return json_error(StatusCode::BAD_REQUEST, "Load-multiplier must be a non-zero number");
        }
        update.load_multiplier = Some(scalelite_core::load::format_float(value));
    }
    if let Some(secret) = params.get("secret").filter(|s| !s.is_empty()) {
        update.secret = Some(Secret::new(secret));
    }
    if let Some(tag) = params.get("tag") {
        update.tag = Some((!tag.is_empty()).then_some(tag));
    }
    if let Err(message) =
        placement_update(params.get("region").as_deref(), params.get("capabilities").as_deref(), &mut update)
    {
        return json_error(StatusCode::BAD_REQUEST, message);
    }
    let updated = state.fleet.update_server(&server_id, &update).await;
    // A disabled server, a new secret or multiplier: joins ask the store again.
    state.join_routes.forget_all();
    match updated {
        Ok(server) => json_reply(StatusCode::OK, server_json(&server)),
        Err(error) => failed(error, &id),
    }
}

/// Deletes `id` (its meetings are left alone, as in Scalelite).
pub(crate) async fn delete_server(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "deleteServer", request);
    let id = request.param("id").unwrap_or_default();
    let removed = state.fleet.remove_server(&ServerId::new(id.clone())).await;
    state.join_routes.forget_all();
    match removed {
        Ok(()) => json_reply(StatusCode::OK, json!({ "success": format!("Server id={id} was destroyed") })),
        Err(FleetError::NotFound(_)) => failed(FleetError::NotFound(ServerId::new(id.clone())), &id),
        Err(error @ FleetError::Store(_)) => failed(error, &id),
        Err(error) => json_error(StatusCode::BAD_REQUEST, format!("Couldn't destroy server id={id}: {error}")),
    }
}

/// Clears `id`'s meetings (sending `end` for each unless `skip_end_calls`
/// is true; failures do not stop the panic) and disables it unless
/// `keep_state` is true. Both flags are read at the top level (where
/// Scalelite reads `keep_state`) or inside `server` (as its docs show it);
/// `skip_end_calls` is the rake task's third argument, which Scalelite's
/// `panicServer` does not take.
pub(crate) async fn panic_server(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "panicServer", request);
    let id = request.param("id").unwrap_or_default();
    let server = request.wrapped("server");
    let flag = |name: &str| truthy(request.param(name)) || server.as_ref().is_some_and(|s| truthy(s.get(name)));
    let (keep_state, skip_end_calls) = (flag("keep_state"), flag("skip_end_calls"));
    let panicked = state.fleet.panic_server(&ServerId::new(id.clone()), keep_state, skip_end_calls).await;
    state.join_routes.forget_all();
    match panicked {
        Ok(cleared) => {
            for failure in cleared.iter().filter(|c| c.end_error.is_some()) {
                warn!(meeting.id = %failure.id, server.id = %id, error = ?failure.end_error, "panic: end call failed");
            }
            json_reply(
                StatusCode::OK,
                json!({ "success": format!("Server id={id} has been disabled and the meetings have been destroyed") }),
            )
        }
        Err(FleetError::NotFound(_)) => failed(FleetError::NotFound(ServerId::new(id.clone())), &id),
        Err(_) => json_error(StatusCode::BAD_REQUEST, format!("Couldn't disable server id={id}")),
    }
}

/// Drains `id` with notice: `deadline` (`30m`, `1h30m`, `90s`; none waits
/// for the meetings to end) and `message`, at the top level or inside
/// `server`. Answers the drain's status.
pub(crate) async fn drain_server(State(state): State<AppState>, request: Request<Body>) -> Response {
    let request = read!(state, "drainServer", request);
    let id = request.param("id").unwrap_or_default();
    let server = request.wrapped("server");
    let value = |name: &str| {
        request.param(name).or_else(|| server.as_ref().and_then(|s| s.get(name))).filter(|v| !v.trim().is_empty())
    };
    let deadline = match value("deadline").map(|raw| parse_deadline(&raw)) {
        Some(Ok(deadline)) => Some(deadline),
        Some(Err(message)) => return json_error(StatusCode::BAD_REQUEST, message),
        None => None,
    };
    let settings = DrainSettings::from_config(&state.config.drain);
    match state.fleet.start_drain(&ServerId::new(id.clone()), deadline, value("message"), &settings).await {
        Ok(status) => json_reply(StatusCode::OK, status),
        Err(error) => failed(error, &id),
    }
}

/// Every drain with its progress.
pub(crate) async fn get_drains(State(state): State<AppState>, request: Request<Body>) -> Response {
    read!(state, "getDrains", request);
    match state.fleet.drains().await {
        Ok(drains) => json_reply(StatusCode::OK, drains),
        Err(error) => failed(error, ""),
    }
}

/// The autoscaler's report: capacity per tag, and per server whether it
/// may be deleted now (see `scalelite_fleet::CapacityReport`).
pub(crate) async fn capacity(State(state): State<AppState>, request: Request<Body>) -> Response {
    read!(state, "capacity", request);
    match state.fleet.capacity(state.config.capacity_per_server).await {
        Ok(report) => json_reply(StatusCode::OK, report),
        Err(error) => failed(error, ""),
    }
}

/// A flag given as JSON or text: `false`, `0`, `no`, `off` and empty are
/// false (Scalelite reads the string `"false"` as true; that is a bug).
fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "false" | "0" | "no" | "off" | "f" | "n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert!(truthy(Some("true".into())));
        assert!(truthy(Some("1".into())));
        assert!(!truthy(Some("false".into())));
        assert!(!truthy(Some(String::new())));
        assert!(!truthy(None));
    }
}
