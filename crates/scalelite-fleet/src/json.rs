//! The server object of Scalelite's management API (§13), also used by
//! `scalelite-admin --json`.

use scalelite_core::load::format_float;
use scalelite_store::Server;
use serde::Serialize;
use serde_json::Value;

use crate::to_d;

/// A server as the management API returns it, keys in Scalelite's order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerJson {
    /// Id.
    pub id: String,
    /// API base URL.
    pub url: String,
    /// Secret.
    pub secret: String,
    /// Tag, `""` when untagged.
    pub tag: String,
    /// `bbb_version`, `""` when unknown.
    pub bbb_version: String,
    /// Stored state, else `enabled`/`disabled` from the legacy set.
    pub state: String,
    /// Load as a number, or the string `unavailable`.
    pub load: Value,
    /// The multiplier as a decimal string (`"1.5"`), or the number 1.0 when
    /// the field is absent.
    pub load_multiplier: Value,
    /// `online` or `offline`.
    pub online: &'static str,
    /// New: the server's region, `""` when it has none.
    pub region: String,
    /// New: the capabilities the operator declared (e.g. `livekit`).
    pub capabilities: Vec<String>,
    /// New: the capabilities learned from the poller (`bbb-3.0`).
    pub automatic_capabilities: Vec<String>,
}

/// The management API's JSON object for `server`.
pub fn server_json(server: &Server) -> ServerJson {
    ServerJson {
        id: server.id.to_string(),
        url: server.url.clone(),
        secret: server.secret.expose().to_owned(),
        tag: server.tag.clone().unwrap_or_default(),
        bbb_version: server.bbb_version.clone().unwrap_or_default(),
        state: state_name(server),
        load: server.load.map_or_else(|| Value::from("unavailable"), Value::from),
        load_multiplier: server
            .load_multiplier
            .as_deref()
            .map_or_else(|| Value::from(1.0), |m| Value::from(format_float(to_d(m)))),
        online: if server.online { "online" } else { "offline" },
        region: server.region.clone().unwrap_or_default(),
        capabilities: server.capabilities.clone(),
        automatic_capabilities: server.automatic_capabilities(),
    }
}

/// The stored state, else `enabled`/`disabled` (Scalelite's rendering).
pub fn state_name(server: &Server) -> String {
    server.state.clone().unwrap_or_else(|| if server.in_enabled_set { "enabled" } else { "disabled" }.to_owned())
}
