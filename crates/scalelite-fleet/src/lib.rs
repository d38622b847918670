#![doc = include_str!("../README.md")]

mod capacity;
pub mod drain;
mod json;
mod sync;

use std::sync::Arc;

use scalelite_bbb_client::{BbbClient, CallError};
use scalelite_core::load::format_float;
use scalelite_core::{MeetingId, Secret, ServerId};
use scalelite_store::{Drain, Meeting, NewServer, Server, ServerState, ServerUpdate, Store, StoreError};
use tracing::info;

pub use crate::capacity::{
    CapabilityCapacity, CapacityCounts, CapacityReport, RegionCapacity, ServerCapacity, TagCapacity,
};
pub use crate::drain::{DrainSettings, DrainStatus, parse_deadline};
pub use crate::json::{ServerJson, server_json, state_name};
pub use crate::sync::{SyncMode, dump_yaml};

/// Settings of fleet administration.
#[derive(Clone, Copy, Debug)]
pub struct FleetSettings {
    /// `SERVER_ID_IS_HOSTNAME`: new servers get their URL's host as id.
    pub server_id_is_hostname: bool,
    /// How many `end` calls run at once when clearing meetings.
    pub concurrency: usize,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self { server_id_is_hostname: false, concurrency: 16 }
    }
}

/// Why an administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// No server with that id (message as Scalelite's).
    #[error("Couldn't find Server with id={0}")]
    NotFound(ServerId),
    /// Invalid input, with the message to show.
    #[error("{0}")]
    Invalid(String),
    /// The store failed or refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One meeting cleared from a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleared {
    /// The meeting.
    pub id: MeetingId,
    /// Why the `end` call failed, if it was sent and failed.
    pub end_error: Option<String>,
}

/// Administration of the server pool.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// The shared store.
    pub store: Arc<dyn Store>,
    /// Client for `end` and inspection calls.
    pub bbb: BbbClient,
    /// Settings.
    pub settings: FleetSettings,
}

impl Fleet {
    /// Administration over `store`, calling servers with `bbb`.
    pub fn new(store: Arc<dyn Store>, bbb: BbbClient, settings: FleetSettings) -> Self {
        Self { store, bbb, settings }
    }

    /// Every server.
    pub async fn servers(&self) -> Result<Vec<Server>, FleetError> {
        Ok(self.store.servers().await?)
    }

    /// One server, or `NotFound`.
    pub async fn server(&self, id: &ServerId) -> Result<Server, FleetError> {
        self.store.server(id).await?.ok_or_else(|| FleetError::NotFound(id.clone()))
    }

    /// Adds a server (disabled and offline until enabled and polled).
    pub async fn add_server(
        &self,
        url: &str,
        secret: &str,
        load_multiplier: Option<String>,
        tag: Option<&str>,
    ) -> Result<Server, FleetError> {
        self.create(NewServer {
            id: self.new_id(url)?,
            url: url.to_owned(),
            secret: Secret::new(secret),
            load_multiplier,
            tag: tag.filter(|t| !t.is_empty()).map(str::to_owned),
        })
        .await
    }

    /// Creates a server with a given id.
    pub async fn create(&self, server: NewServer) -> Result<Server, FleetError> {
        self.store.create_server(&server).await?;
        info!(server.id = %server.id, "server added");
        self.server(&server.id).await
    }

    /// Applies `update` and returns the server as stored afterwards.
    pub async fn update_server(&self, id: &ServerId, update: &ServerUpdate) -> Result<Server, FleetError> {
        match self.store.update_server(id, update).await {
            Err(StoreError::NotFound(_)) => return Err(FleetError::NotFound(id.clone())),
            other => other?,
        }
        info!(server.id = %id, ?update.state, "server updated");
        if update.state == Some(ServerState::Enabled) && self.store.delete_drain(id).await? {
            info!(server.id = %id, "drain cancelled: the server is enabled again");
        }
        self.server(id).await
    }

    /// Sets a server's state.
    pub async fn set_state(&self, id: &ServerId, state: ServerState) -> Result<Server, FleetError> {
        self.update_server(id, &ServerUpdate { state: Some(state), ..Default::default() }).await
    }

    /// Deletes a server record (its meetings are left alone, as in Scalelite).
    pub async fn remove_server(&self, id: &ServerId) -> Result<(), FleetError> {
        if !self.store.delete_server(id).await? {
            return Err(FleetError::NotFound(id.clone()));
        }
        self.store.delete_drain(id).await?;
        info!(server.id = %id, "server removed");
        Ok(())
    }

    /// The meeting records pointing to `server`.
    pub async fn meetings_on(&self, server: &ServerId) -> Result<Vec<Meeting>, FleetError> {
        Ok(self.store.meetings().await?.into_iter().map(|r| r.meeting).filter(|m| &m.server_id == server).collect())
    }

    /// Forgets every meeting of `server` and, unless `send_end` is false,
    /// sends `end` for each (concurrently, failures collected, not fatal).
    pub async fn clear_meetings(&self, server: &Server, send_end: bool) -> Result<Vec<Cleared>, FleetError> {
        let meetings = self.meetings_on(&server.id).await?;
        Ok(drain::end_meetings(&*self.store, &self.bbb, server, meetings, send_end, self.settings.concurrency).await?)
    }

    /// Sends `end` for `meeting` with its stored moderator password.
    pub async fn end_meeting(&self, server: &Server, meeting: &Meeting) -> Result<(), CallError> {
        drain::end_meeting(&self.bbb, server, meeting).await
    }

    /// Starts (or restarts, with new settings) a drain with notice: cordons
    /// the server, stores the drain and sends the first notice to its
    /// meetings now. `deadline` is from now; without one the drain waits
    /// for the meetings to end. A disabled server is drained already.
    pub async fn start_drain(
        &self,
        id: &ServerId,
        deadline: Option<std::time::Duration>,
        message: Option<String>,
        settings: &DrainSettings,
    ) -> Result<DrainStatus, FleetError> {
        let message = message.filter(|m| !m.trim().is_empty());
        if message.as_ref().is_some_and(|m| m.encode_utf16().count() > drain::MAX_NOTICE_LEN) {
            return Err(FleetError::Invalid(format!(
                "The message is longer than {} characters",
                drain::MAX_NOTICE_LEN
            )));
        }
        let mut server = self.server(id).await?;
        let now = drain::now_ms();
        let deadline_ms = deadline.map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        let mut record = Drain {
            server_id: id.clone(),
            started_ms: now,
            deadline_ms,
            message,
            last_notice_ms: None,
            notices_sent: 0,
            no_chat_logged: false,
            meetings_ended: 0,
            finished_ms: None,
        };
        if server.is_disabled() {
            record.finished_ms = Some(now);
        } else if !server.is_cordoned() {
            server = self.set_state(id, ServerState::Cordoned).await?;
        }
        self.store.put_drain(&record).await?;
        info!(server.id = %id, deadline_ms, "drain started");
        let meetings = self.meetings_on(id).await?;
        if record.finished_ms.is_none() {
            let (_, changed) = drain::notify_if_due(
                &self.bbb,
                settings,
                &server,
                &mut record,
                &meetings,
                self.settings.concurrency,
                now,
            )
            .await;
            if changed {
                self.store.put_drain(&record).await?;
            }
        }
        Ok(DrainStatus::of(&record, Some(&server), meetings.len(), now))
    }

    /// Every drain with its progress.
    pub async fn drains(&self) -> Result<Vec<DrainStatus>, FleetError> {
        Ok(drain::drain_statuses(&*self.store, drain::now_ms()).await?)
    }

    /// Panics a server: clears its meetings (sending `end` unless
    /// `skip_end_calls`), then disables it unless `keep_state`. `end`
    /// failures do not stop the panic (the server is often unreachable when
    /// it is panicked).
    pub async fn panic_server(
        &self,
        id: &ServerId,
        keep_state: bool,
        skip_end_calls: bool,
    ) -> Result<Vec<Cleared>, FleetError> {
        let server = self.server(id).await?;
        let cleared = self.clear_meetings(&server, !skip_end_calls).await?;
        if !keep_state {
            self.set_state(id, ServerState::Disabled).await?;
        }
        Ok(cleared)
    }

    fn new_id(&self, url: &str) -> Result<ServerId, FleetError> {
        if self.settings.server_id_is_hostname {
            let host = url_host(url).ok_or_else(|| FleetError::Invalid(format!("Server URL has no host: {url}")))?;
            return Ok(ServerId::new(host.to_ascii_lowercase()));
        }
        Ok(ServerId::new(uuid::Uuid::new_v4().to_string()))
    }
}

/// The host of an `http(s)://` URL.
pub fn url_host(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    matches!(uri.scheme_str(), Some("http" | "https")).then_some(())?;
    uri.host().filter(|h| !h.is_empty()).map(str::to_owned)
}

/// Ruby's `String#to_d`: the leading decimal number of `raw`, 0 when none.
pub fn to_d(raw: &str) -> f64 {
    let s = raw.trim_start();
    let bytes = s.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    let digits_start = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end < bytes.len() && bytes[end] == b'.' {
        let mut frac = end + 1;
        while frac < bytes.len() && bytes[frac].is_ascii_digit() {
            frac += 1;
        }
        if frac > end + 1 {
            end = frac;
        }
    }
    if end == digits_start {
        return 0.0;
    }
    if end < bytes.len() && matches!(bytes[end], b'e' | b'E') {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_digits = exp;
        while exp < bytes.len() && bytes[exp].is_ascii_digit() {
            exp += 1;
        }
        if exp > exp_digits {
            end = exp;
        }
    }
    s[..end].parse().unwrap_or(0.0)
}

/// A load multiplier given by an operator, read like Scalelite: `None` (not
/// given) is 1.0; a value that reads as 0 becomes 1.0 with a warning
/// (`true` in the result). Returns the string to store.
pub fn multiplier_arg(raw: Option<&str>) -> (String, bool) {
    match raw {
        None => (format_float(1.0), false),
        Some(raw) => {
            let value = to_d(raw);
            if value == 0.0 || !value.is_finite() { (format_float(1.0), true) } else { (format_float(value), false) }
        }
    }
}

/// The warning Scalelite prints when a multiplier reads as 0.
pub const MULTIPLIER_WARNING: &str = "WARNING! Load-multiplier was not readable or 0, so it is now 1";

/// Reads an operator's `--region` / `server.region` and `--capabilities` /
/// `server.capabilities` into a [`ServerUpdate`]'s fields: a blank region
/// removes it; capabilities are separated by `,` or `;` (blank removes them
/// all). Each name must be [`scalelite_core::selection::valid_name`].
pub fn placement_update(
    region: Option<&str>,
    capabilities: Option<&str>,
    update: &mut ServerUpdate,
) -> Result<(), String> {
    use scalelite_core::selection::{MAX_LIST, valid_name};
    if let Some(region) = region.map(str::trim) {
        if !region.is_empty() && !valid_name(region) {
            return Err(format!("Invalid region {region:?}: use 1-64 letters, digits, '-', '_', '.' or ':'"));
        }
        update.region = Some(Some(region.to_owned()).filter(|r| !r.is_empty()));
    }
    if let Some(raw) = capabilities {
        let mut list: Vec<String> = Vec::new();
        for name in raw.split([',', ';']).map(str::trim).filter(|n| !n.is_empty()) {
            if !valid_name(name) {
                return Err(format!("Invalid capability {name:?}: use 1-64 letters, digits, '-', '_', '.' or ':'"));
            }
            if !list.iter().any(|seen| seen == name) {
                list.push(name.to_owned());
            }
        }
        if list.len() > MAX_LIST {
            return Err(format!("At most {MAX_LIST} capabilities per server"));
        }
        update.capabilities = Some(list);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_d_like_ruby() {
        assert_eq!(to_d("1.5"), 1.5);
        assert_eq!(to_d("2abc"), 2.0);
        assert_eq!(to_d("abc"), 0.0);
        assert_eq!(to_d(" 3"), 3.0);
        assert_eq!(to_d("1e2"), 100.0);
        assert_eq!(to_d("-0.5"), -0.5);
        assert_eq!(to_d("."), 0.0);
        assert_eq!(to_d("7."), 7.0);
    }

    #[test]
    fn multipliers() {
        assert_eq!(multiplier_arg(None), ("1.0".into(), false));
        assert_eq!(multiplier_arg(Some("2")), ("2.0".into(), false));
        assert_eq!(multiplier_arg(Some("1.5")), ("1.5".into(), false));
        assert_eq!(multiplier_arg(Some("0")), ("1.0".into(), true));
        assert_eq!(multiplier_arg(Some("x")), ("1.0".into(), true));
    }

    #[test]
    fn hosts() {
        assert_eq!(url_host("https://BBB1.example.com/bigbluebutton/api").as_deref(), Some("BBB1.example.com"));
        assert_eq!(url_host("http://10.0.0.1:8080/bigbluebutton/api").as_deref(), Some("10.0.0.1"));
        assert_eq!(url_host("ftp://x/y"), None);
        assert_eq!(url_host("not a url"), None);
    }

    #[test]
    fn placement_updates_are_validated() {
        let mut update = ServerUpdate::default();
        placement_update(Some(" eu-west "), Some("livekit, sip;livekit"), &mut update).unwrap();
        assert_eq!(update.region, Some(Some("eu-west".to_owned())));
        assert_eq!(update.capabilities, Some(vec!["livekit".to_owned(), "sip".to_owned()]));
        let mut cleared = ServerUpdate::default();
        placement_update(Some(""), Some(" "), &mut cleared).unwrap();
        assert_eq!((cleared.region, cleared.capabilities), (Some(None), Some(Vec::new())));
        let mut untouched = ServerUpdate::default();
        placement_update(None, None, &mut untouched).unwrap();
        assert!(untouched.is_empty());
        assert!(placement_update(Some("a b"), None, &mut ServerUpdate::default()).is_err());
        assert!(placement_update(None, Some("ok,not ok"), &mut ServerUpdate::default()).is_err());
        let many: Vec<String> = (0..9).map(|i| format!("c{i}")).collect();
        assert!(placement_update(None, Some(&many.join(",")), &mut ServerUpdate::default()).is_err());
    }
}
