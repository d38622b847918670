//! The operator console in the browser (`CONSOLE_ENABLED`, at
//! `CONSOLE_PATH`): the fleet at a glance, meetings per server, tenants,
//! recording imports and the poller leader, plus the daily actions (enable,
//! cordon, drain with notice, disable, panic, retry a failed import) behind
//! a confirmation page. Server-rendered HTML, readable without JavaScript,
//! reloading itself with `<meta http-equiv="refresh">`; the plots are
//! inline SVG from [`samples`].
//!
//! The actions call the same [`scalelite_fleet::Fleet`] operations as the
//! management API and `scalelite-admin`. Every action needs a session (see
//! [`auth`]) and the session's CSRF token, and is logged with the operator's
//! name.

mod auth;
mod html;
pub(crate) mod live;
mod samples;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use scalelite_core::ServerId;
use scalelite_fleet::{DrainSettings, DrainStatus, FleetError, parse_deadline, state_name};
use scalelite_recording_importer::spool;
use scalelite_store::limits::TenantLimits;
use scalelite_store::usage::HOUR_MS;
use scalelite_store::{Server, ServerState};
use tracing::{info, warn};

use self::auth::{Operator, csrf_matches};
use self::html::{Frame, esc, format_number, page, path_segment};
use self::live::Console;
use crate::api::unsupported::unsupported;
use crate::state::AppState;

/// Largest form a console page sends (a drain message is at most a few
/// hundred characters).
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Meetings listed on a server's page at most.
const MAX_MEETINGS_LISTED: usize = 500;
/// Servers with a plot on the overview at most.
const MAX_PLOTS: usize = 60;
/// Quarantined archives listed at most.
const MAX_FAILED_LISTED: usize = 50;

/// The console's routes under `CONSOLE_PATH`; none unless enabled.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    if state.console.is_none() {
        return Router::new();
    }
    let base = &state.config.console.path;
    Router::new()
        .route(base, get(overview).fallback(unsupported))
        .route(&format!("{base}/login"), get(login_form).post(login).fallback(unsupported))
        .route(&format!("{base}/logout"), axum::routing::post(logout).fallback(unsupported))
        .route(&format!("{base}/servers/{{id}}"), get(server_page).fallback(unsupported))
        .route(&format!("{base}/servers/{{id}}/{{action}}"), get(confirm).post(act).fallback(unsupported))
        .route(&format!("{base}/imports/{{name}}/retry"), get(confirm_retry).post(retry).fallback(unsupported))
}

/// Whether `route` (a matched path) is one of the console's.
pub(crate) fn is_console_route(state: &AppState, route: &str) -> bool {
    state.console.is_some()
        && route
            .strip_prefix(state.config.console.path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Samples every server's load and users for the plots, every
/// `CONSOLE_SAMPLE_INTERVAL`, for as long as the returned future runs.
pub(crate) async fn sample(state: AppState) {
    let Some(console) = state.console.clone() else { return };
    let mut ticker = tokio::time::interval(state.config.console.sample_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = scalelite_fleet::drain::now_ms();
        console.observe_rounds(now);
        match state.store.servers().await {
            Ok(servers) => console.samples.record(&servers, now),
            Err(error) => warn!(%error, "console: cannot sample the servers"),
        }
    }
}

/// The actions on a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Enable,
    Cordon,
    Drain,
    Disable,
    Panic,
}

impl Action {
    const ALL: [Action; 5] = [Action::Enable, Action::Cordon, Action::Drain, Action::Disable, Action::Panic];

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == raw)
    }

    fn name(self) -> &'static str {
        match self {
            Action::Enable => "enable",
            Action::Cordon => "cordon",
            Action::Drain => "drain",
            Action::Disable => "disable",
            Action::Panic => "panic",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Action::Enable => "Enable",
            Action::Cordon => "Cordon",
            Action::Drain => "Drain",
            Action::Disable => "Disable",
            Action::Panic => "Panic",
        }
    }

    /// What the confirmation page says it does.
    fn explain(self) -> &'static str {
        match self {
            Action::Enable => "The server takes new meetings again (a drain in progress is cancelled).",
            Action::Cordon => "The server takes no new meetings; its meetings go on, and joins to them still work.",
            Action::Drain => {
                "The server is cordoned and its meetings are told in chat that it is going down; at the deadline \
                 (if you give one) the meetings still running are ended. It is disabled once empty."
            }
            Action::Disable => {
                "The server takes no new meetings and joins to its meetings are refused; the meetings themselves \
                 are left running on it."
            }
            Action::Panic => {
                "Every meeting of the server is ended (an end call is sent to each) and forgotten, and the server \
                 is disabled. Participants are thrown out."
            }
        }
    }

    /// Whether it makes sense in `state`.
    fn applies(self, state: ServerState) -> bool {
        match self {
            Action::Enable => state != ServerState::Enabled,
            Action::Cordon => state == ServerState::Enabled,
            Action::Drain => state != ServerState::Disabled,
            Action::Disable => state != ServerState::Disabled,
            Action::Panic => true,
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Enable => "enabled",
            Action::Cordon => "cordoned",
            Action::Drain => "being drained",
            Action::Disable => "disabled",
            Action::Panic => "panicked: its meetings were ended and it is disabled",
        }
    }
}

// --- Responses -------------------------------------------------------------

/// An HTML reply with the console's headers: no caching, no framing, a
/// content security policy that allows no script at all.
fn html_reply(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page that only says something went wrong (`message` is text).
fn message_page(
    state: &AppState,
    operator: Option<&Operator>,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let base = &state.config.console.path;
    let body = format!(
        "<div class=\"error\" role=\"alert\"><p>{}</p></div><p><a href=\"{}\">Back to the fleet</a></p>",
        esc(message),
        esc(base)
    );
    let frame = Frame { base, title, refresh: None, operator: operator.map(|o| (o.name.as_str(), o.csrf.as_str())) };
    html_reply(status, page(&frame, &body))
}

fn store_failed(state: &AppState, operator: &Operator, error: &dyn std::fmt::Display) -> Response {
    // What failed names hosts and keys: logged, not shown.
    warn!(%error, "console: the store failed");
    message_page(
        state,
        Some(operator),
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "The store could not be read or written; see the API's log.",
    )
}

fn refresh(state: &AppState) -> Option<u64> {
    let seconds = state.config.console.refresh.as_secs_f64().ceil() as u64;
    (seconds > 0).then_some(seconds)
}

fn console(state: &AppState) -> Option<&Console> {
    state.console.as_deref()
}

/// The operator, or the reply for a request without one: GETs go to the
/// login page, other requests are refused.
fn operator_or_login(state: &AppState, headers: &HeaderMap, is_get: bool) -> Result<Operator, Box<Response>> {
    let Some(console) = console(state) else { return Err(Box::new(StatusCode::NOT_FOUND.into_response())) };
    match console.keys.operator(&state.config, headers) {
        Some(operator) => Ok(operator),
        None if is_get => Err(Box::new(redirect(&format!("{}/login", state.config.console.path)))),
        None => Err(Box::new(message_page(
            state,
            None,
            StatusCode::FORBIDDEN,
            "Not signed in",
            "You are not signed in (or your session has expired). Sign in and try again.",
        ))),
    }
}

/// Whether the browser says the request came from another site
/// (`Sec-Fetch-Site: cross-site`); such a request is never an operator's.
fn cross_site(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

/// The fields of an `application/x-www-form-urlencoded` body (the first of
/// each name), at most [`MAX_FORM_BYTES`]; read within the budget of
/// unauthenticated bodies unless `signed_in`.
async fn read_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    signed_in: bool,
) -> Option<HashMap<String, String>> {
    let limits = if signed_in { state.authenticated_body() } else { state.unauthenticated_body() };
    let limits = crate::body::BodyLimits { max_bytes: MAX_FORM_BYTES, ..limits };
    let read = crate::body::read(body, headers, limits).await.ok()?;
    let mut fields = HashMap::new();
    for (k, v) in form_urlencoded::parse(&read.bytes) {
        fields.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    Some(fields)
}

/// A form with a checked CSRF token from the operator of the request; the
/// refusal otherwise.
async fn checked_form(
    state: &AppState,
    request: Request<Body>,
) -> Result<(Operator, HashMap<String, String>), Response> {
    let (parts, body) = request.into_parts();
    let operator = operator_or_login(state, &parts.headers, false).map_err(|response| *response)?;
    let refuse = |message: &str| message_page(state, Some(&operator), StatusCode::FORBIDDEN, "Refused", message);
    if cross_site(&parts.headers) {
        warn!(operator = %operator.name, "console: cross-site form refused");
        return Err(refuse("This form was sent from another site."));
    }
    let Some(form) = read_form(state, &parts.headers, body, true).await else {
        return Err(message_page(
            state,
            Some(&operator),
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form could not be read.",
        ));
    };
    if !csrf_matches(&operator, form.get("csrf").map(String::as_str)) {
        warn!(operator = %operator.name, path = %parts.uri.path(), "console: form without a valid CSRF token refused");
        return Err(refuse(
            "The form did not carry this session's CSRF token, so nothing was done. Reload the page and try again.",
        ));
    }
    Ok((operator, form))
}

fn frame<'a>(state: &'a AppState, title: &'a str, operator: &'a Operator, refresh_page: bool) -> Frame<'a> {
    Frame {
        base: &state.config.console.path,
        title,
        refresh: if refresh_page { refresh(state) } else { None },
        operator: Some((&operator.name, &operator.csrf)),
    }
}

// --- Login -------------------------------------------------------------------

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(console) = console(&state) else { return StatusCode::NOT_FOUND.into_response() };
    if console.keys.operator(&state.config, &headers).is_some() {
        return redirect(&state.config.console.path);
    }
    login_page(&state, StatusCode::OK, None)
}

fn login_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let base = &state.config.console.path;
    let mut body = String::new();
    if let Some(error) = error {
        let _ = write!(body, "<div class=\"error\" role=\"alert\"><p>{}</p></div>", esc(error));
    }
    if let Some(header) = &state.config.console.auth_header {
        let _ = write!(
            body,
            "<p class=\"muted\">Signing in through the reverse proxy (header <code>{}</code>) needs no secret.</p>",
            esc(header)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}/login\">\
         <label for=\"name\">Your name (for the action log)</label>\
         <input type=\"text\" id=\"name\" name=\"name\" maxlength=\"{}\" autocomplete=\"username\">\
         <label for=\"secret\">Console secret or management secret</label>\
         <input type=\"password\" id=\"secret\" name=\"secret\" required autocomplete=\"current-password\">\
         <p><button class=\"primary\" type=\"submit\">Sign in</button></p></form>",
        esc(base),
        auth::MAX_NAME
    );
    let frame = Frame { base, title: "Sign in", refresh: None, operator: None };
    html_reply(status, page(&frame, &body))
}

async fn login(State(state): State<AppState>, request: Request<Body>) -> Response {
    let Some(console) = console(&state) else { return StatusCode::NOT_FOUND.into_response() };
    let (parts, body) = request.into_parts();
    if cross_site(&parts.headers) {
        return login_page(&state, StatusCode::FORBIDDEN, Some("This form was sent from another site."));
    }
    if console.keys.login_throttled(false) {
        warn!("console: login refused, too many failed logins");
        return login_page(&state, StatusCode::TOO_MANY_REQUESTS, Some("Too many failed sign-ins: wait a minute."));
    }
    let Some(form) = read_form(&state, &parts.headers, body, false).await else {
        return login_page(&state, StatusCode::BAD_REQUEST, Some("The form could not be read."));
    };
    let secret = form.get("secret").map(String::as_str).unwrap_or_default();
    if secret.is_empty() || !console.keys.secret_matches(secret) {
        console.keys.login_throttled(true);
        warn!("console: sign-in with a wrong secret");
        return login_page(&state, StatusCode::UNAUTHORIZED, Some("That secret is not one that signs in here."));
    }
    let name = form.get("name").map(|n| auth::clean_name(n)).filter(|n| !n.is_empty());
    let name = name.unwrap_or_else(|| "operator".to_owned());
    info!(operator = %name, "console: signed in");
    let value = console.keys.issue(&name, state.config.console.session_ttl);
    let mut response = redirect(&state.config.console.path);
    response.headers_mut().insert(header::SET_COOKIE, auth::set_cookie(&state.config, &parts.headers, Some(&value)));
    response
}

async fn logout(State(state): State<AppState>, request: Request<Body>) -> Response {
    let headers = request.headers().clone();
    let (operator, _) = match checked_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    info!(operator = %operator.name, "console: signed out");
    let mut response = redirect(&format!("{}/login", state.config.console.path));
    response.headers_mut().insert(header::SET_COOKIE, auth::set_cookie(&state.config, &headers, None));
    response
}

// --- Pages -------------------------------------------------------------------

fn opt_number(value: Option<u64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| v.to_string())
}

fn server_link(base: &str, id: &str) -> String {
    format!("<a href=\"{}/servers/{}\">{}</a>", esc(base), esc(&path_segment(id)), esc(id))
}

fn state_cell(server: &Server) -> String {
    let name = state_name(server);
    let class = match server.effective_state() {
        ServerState::Enabled => "state-enabled",
        ServerState::Cordoned => "state-cordoned",
        ServerState::Disabled => "state-disabled",
    };
    format!("<span class=\"{class}\">{}</span>", esc(&name))
}

fn status_cell(server: &Server) -> &'static str {
    if server.online { "<span class=\"online\">online</span>" } else { "<span class=\"offline\">offline</span>" }
}

fn drain_text(drain: Option<&DrainStatus>) -> String {
    drain.map_or_else(String::new, |d| {
        let line = d.line();
        let text = line.split_once(": ").map_or(line.as_str(), |(_, rest)| rest);
        esc(text)
    })
}

fn action_links(base: &str, server: &Server) -> String {
    let state = server.effective_state();
    let mut out = String::new();
    for action in Action::ALL.into_iter().filter(|a| a.applies(state)) {
        let _ = write!(
            out,
            "<a href=\"{}/servers/{}/{}\" aria-label=\"{} {}\">{}</a> ",
            esc(base),
            esc(&path_segment(server.id.as_str())),
            action.name(),
            action.label(),
            esc(server.id.as_str()),
            action.label()
        );
    }
    out
}

async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let operator = match operator_or_login(&state, &headers, true) {
        Ok(operator) => operator,
        Err(response) => return *response,
    };
    let base = state.config.console.path.as_str();
    let mut servers = match state.fleet.servers().await {
        Ok(servers) => servers,
        Err(error) => return store_failed(&state, &operator, &error),
    };
    servers.sort_by(|a, b| natural_order(a.id.as_str(), b.id.as_str()));
    let drains = match state.fleet.drains().await {
        Ok(drains) => drains,
        Err(error) => return store_failed(&state, &operator, &error),
    };
    let meetings = match state.store.meetings().await {
        Ok(meetings) => meetings,
        Err(error) => return store_failed(&state, &operator, &error),
    };
    let leader = state.store.lease_holder(scalelite_store::POLLER_LEASE).await;
    let mut routed: HashMap<&str, usize> = HashMap::new();
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for record in &meetings {
        *routed.entry(record.meeting.server_id.as_str()).or_default() += 1;
        if let Some(tenant) = &record.meeting.tenant_id {
            *per_tenant.entry(tenant.as_str()).or_default() += 1;
        }
    }
    let drain_of: HashMap<&str, &DrainStatus> = drains.iter().map(|d| (d.server_id.as_str(), d)).collect();

    let mut body = String::with_capacity(8192 + servers.len() * 600);
    // Summary.
    let online = servers.iter().filter(|s| s.online).count();
    let taking = servers.iter().filter(|s| s.online && s.effective_state() == ServerState::Enabled).count();
    let users: u64 = servers.iter().filter(|s| s.online).filter_map(|s| s.stats.users).sum();
    let _ = write!(
        body,
        "<p>{} servers, {online} online, {taking} taking new meetings; {} meetings routed, {users} participants.</p>",
        servers.len(),
        meetings.len()
    );
    let _ = match &leader {
        Ok(Some(holder)) => write!(body, "<p>Poller leader: <strong>{}</strong>.</p>", esc(holder)),
        Ok(None) => write!(
            body,
            "<p class=\"error\">No poller holds the leader lease: server states are not being refreshed.</p>"
        ),
        Err(_) => write!(body, "<p class=\"muted\">Poller leader: unknown (the store did not answer).</p>"),
    };
    let now_ms = scalelite_fleet::drain::now_ms();
    if let Ok(Some(round)) = state.store.last_round().await {
        let ago = now_ms.saturating_sub(round.at_ms).max(0) / 1000;
        let _ = write!(
            body,
            "<p id=\"last-round\">Last poll round: {ago} s ago by {}, {} servers polled, {} answered, took {} ms.</p>",
            esc(&round.holder),
            round.servers,
            round.reachable,
            round.duration_ms
        );
    }
    if let Some(text) = console(&state).and_then(|c| c.poller_text(now_ms)) {
        let _ = write!(body, "<p id=\"poller\">{}</p>", esc(&text));
    }

    // The fleet.
    body.push_str(
        "<h2 id=\"fleet\">Servers</h2><table aria-labelledby=\"fleet\"><thead><tr>\
         <th scope=\"col\">Server</th><th scope=\"col\">State</th><th scope=\"col\">Status</th>\
         <th scope=\"col\">Load</th><th scope=\"col\">Meetings</th><th scope=\"col\">Users</th>\
         <th scope=\"col\">Largest meeting</th><th scope=\"col\">Videos</th><th scope=\"col\">BBB version</th>\
         <th scope=\"col\">Tag</th><th scope=\"col\">Region</th><th scope=\"col\">Drain</th>\
         <th scope=\"col\">Actions</th></tr></thead><tbody>",
    );
    if servers.is_empty() {
        body.push_str(
            "<tr><td colspan=\"13\">No servers yet: add one with <code>scalelite-admin servers add URL SECRET</code>.</td></tr>",
        );
    }
    for server in &servers {
        let id = server.id.as_str();
        let load = server.load.map_or_else(|| "unavailable".to_owned(), format_number);
        let _ = write!(
            body,
            "<tr data-server=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{} <span class=\"muted\">({} routed)</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(id),
            server_link(base, id),
            state_cell(server),
            status_cell(server),
            esc(&load),
            opt_number(server.stats.meetings),
            routed.get(id).copied().unwrap_or(0),
            opt_number(server.stats.users),
            opt_number(server.stats.largest_meeting),
            opt_number(server.stats.videos),
            esc(server.bbb_version.as_deref().unwrap_or("–")),
            esc(&tag_and_capabilities(server)),
            esc(server.region.as_deref().unwrap_or("–")),
            drain_text(drain_of.get(id).copied()),
            action_links(base, server),
        );
    }
    body.push_str("</tbody></table>");

    // Plots.
    if let Some(console) = console(&state)
        && !servers.is_empty()
    {
        let _ = write!(
            body,
            "<h2 id=\"plots\">Load and users</h2><p class=\"muted\">Sampled by this API process every {} s \
             (solid: load, dashed: users).</p><div class=\"plots\">",
            format_number(state.config.console.sample_interval.as_secs_f64())
        );
        for server in servers.iter().take(MAX_PLOTS) {
            let (load, users) = console.samples.series(server.id.as_str());
            body.push_str(&html::plot(server.id.as_str(), &load, &users));
        }
        body.push_str("</div>");
    }

    // Tenants.
    if state.config.multitenancy {
        match state.store.tenants().await {
            Ok(tenants) => {
                body.push_str(
                    "<h2 id=\"tenants\">Tenants</h2><table aria-labelledby=\"tenants\"><thead><tr>\
                     <th scope=\"col\">Tenant</th><th scope=\"col\">Meetings now</th>\
                     <th scope=\"col\">Meeting limit</th><th scope=\"col\">Participant limit</th>\
                     <th scope=\"col\">Requests per minute</th>\
                     <th scope=\"col\">Participant-hours, last 24 h</th>\
                     <th scope=\"col\">Peak participants, last 24 h</th></tr></thead><tbody>",
                );
                let usage = match console(&state) {
                    Some(console) => console.usage_last_day(now_ms).await,
                    None => None,
                };
                let used = |id: &str| match &usage {
                    None => ("–".to_owned(), "–".to_owned()),
                    Some(by_tenant) => {
                        let (participant_ms, peak) = by_tenant.get(id).copied().unwrap_or_default();
                        (format!("{:.1}", participant_ms as f64 / HOUR_MS as f64), peak.to_string())
                    }
                };
                let limit = |v: Option<u32>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
                for record in &tenants {
                    let limits = TenantLimits::from_settings(&record.settings);
                    let (hours, peak) = used(record.tenant.id.as_str());
                    let _ = write!(
                        body,
                        "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{hours}</td>\
                         <td class=\"n\">{peak}</td></tr>",
                        esc(&record.tenant.name),
                        per_tenant.get(record.tenant.id.as_str()).copied().unwrap_or(0),
                        limit(limits.max_meetings),
                        limit(limits.max_participants),
                        limit(limits.rate_per_minute),
                    );
                }
                body.push_str("</tbody></table>");
            }
            Err(error) => return store_failed(&state, &operator, &error),
        }
    }

    // Recording imports.
    body.push_str(&imports_section(&state, &operator).await);

    let frame = frame(&state, "Fleet", &operator, true);
    html_reply(StatusCode::OK, page(&frame, &body))
}

/// `bbb-2` before `bbb-10`: digit runs compare as numbers.
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(text: &str) -> Vec<(u8, u128, String)> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                let (run, tail) = rest.split_at(digits);
                parts.push((0, run.parse().unwrap_or(u128::MAX), String::new()));
                rest = tail;
            } else {
                let len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
                let (run, tail) = rest.split_at(len);
                parts.push((1, 0, run.to_owned()));
                rest = tail;
            }
        }
        parts
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

async fn imports_section(state: &AppState, operator: &Operator) -> String {
    if state.recordings.is_none() || state.config.recordings.disabled {
        return String::new();
    }
    let spool_dir = state.config.recordings.spool_dir.clone();
    let listed = tokio::task::spawn_blocking(move || {
        Ok::<_, std::io::Error>((
            spool::pending_imports(&spool_dir)?,
            spool::failed_imports(&spool_dir, MAX_FAILED_LISTED)?,
        ))
    })
    .await;
    let base = &state.config.console.path;
    let mut out = String::from("<h2 id=\"imports\">Recording imports</h2>");
    match listed {
        Ok(Ok((pending, failed))) => {
            let _ = write!(out, "<p>{pending} archives waiting in the spool; {} failed.</p>", failed.len());
            if !failed.is_empty() {
                out.push_str(
                    "<table aria-labelledby=\"imports\"><thead><tr><th scope=\"col\">Archive</th>\
                     <th scope=\"col\">Size</th><th scope=\"col\">Reason</th><th scope=\"col\">Action</th></tr></thead><tbody>",
                );
                for item in &failed {
                    let _ = write!(
                        out,
                        "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td><td>{}</td>\
                         <td><a href=\"{}/imports/{}/retry\" aria-label=\"Retry {}\">Retry</a></td></tr>",
                        esc(&item.name),
                        item.size,
                        esc(&item.reason),
                        esc(base),
                        esc(&path_segment(&item.name)),
                        esc(&item.name)
                    );
                }
                out.push_str("</tbody></table>");
            }
        }
        _ => {
            let _ = operator;
            out.push_str(
                "<p class=\"muted\">The spool directory is not readable from this API process \
                 (the importer runs elsewhere).</p>",
            );
        }
    }
    out
}

/// The `done` flash of a redirect after an action (only known words are
/// shown: nothing from the query reaches the page).
fn done_notice(request_query: Option<&str>, id: &str) -> String {
    let action = request_query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| Action::parse(&v));
    action.map_or_else(String::new, |action| {
        format!("<div class=\"notice\" role=\"status\"><p>Server {} is {}.</p></div>", esc(id), action.done())
    })
}

async fn server_page(State(state): State<AppState>, Path(id): Path<String>, request: Request<Body>) -> Response {
    let operator = match operator_or_login(&state, request.headers(), true) {
        Ok(operator) => operator,
        Err(response) => return *response,
    };
    let base = state.config.console.path.as_str();
    let server_id = ServerId::new(id.clone());
    let server = match state.fleet.server(&server_id).await {
        Ok(server) => server,
        Err(FleetError::NotFound(_)) => {
            return message_page(
                &state,
                Some(&operator),
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such server.",
            );
        }
        Err(error) => return store_failed(&state, &operator, &error),
    };
    let meetings = match state.fleet.meetings_on(&server_id).await {
        Ok(meetings) => meetings,
        Err(error) => return store_failed(&state, &operator, &error),
    };
    let drain = match state.fleet.drains().await {
        Ok(drains) => drains.into_iter().find(|d| d.server_id == id),
        Err(error) => return store_failed(&state, &operator, &error),
    };
    let mut body = done_notice(request.uri().query(), &id);
    let load = server.load.map_or_else(|| "unavailable".to_owned(), format_number);
    let _ = write!(
        body,
        "<dl><dt>URL</dt><dd>{}</dd><dt>State</dt><dd id=\"state\">{}</dd><dt>Status</dt><dd>{}</dd>\
         <dt>Load</dt><dd>{}</dd><dt>Users</dt><dd>{}</dd><dt>BBB version</dt><dd>{}</dd><dt>Tag</dt><dd>{}</dd>\
         <dt>Capabilities</dt><dd>{}</dd><dt>Region</dt><dd>{}</dd><dt>Drain</dt><dd id=\"drain\">{}</dd></dl><p>Actions: {}</p>",
        esc(&server.url),
        state_cell(&server),
        status_cell(&server),
        esc(&load),
        opt_number(server.stats.users),
        esc(server.bbb_version.as_deref().unwrap_or("–")),
        esc(server.tag.as_deref().unwrap_or("–")),
        esc(&capabilities(&server)),
        esc(server.region.as_deref().unwrap_or("–")),
        if drain.is_some() { drain_text(drain.as_ref()) } else { "none".to_owned() },
        action_links(base, &server),
    );
    if let Some(console) = console(&state) {
        let (load, users) = console.samples.series(&id);
        body.push_str(&html::plot(&id, &load, &users));
    }
    let _ = write!(
        body,
        "<h2 id=\"meetings\">Meetings routed here ({})</h2><table aria-labelledby=\"meetings\"><thead><tr>\
         <th scope=\"col\">Meeting id</th><th scope=\"col\">Tenant</th><th scope=\"col\">Voice bridge</th></tr></thead><tbody>",
        meetings.len()
    );
    let mut seen = HashSet::new();
    for meeting in meetings.iter().take(MAX_MEETINGS_LISTED) {
        if !seen.insert(meeting.id.as_str()) {
            continue;
        }
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
            esc(meeting.id.as_str()),
            esc(meeting.tenant_id.as_ref().map_or("", |t| t.as_str())),
            esc(&meeting.voice_bridge)
        );
    }
    if meetings.len() > MAX_MEETINGS_LISTED {
        let _ = write!(body, "<tr><td colspan=\"3\">… and {} more</td></tr>", meetings.len() - MAX_MEETINGS_LISTED);
    }
    body.push_str("</tbody></table>");
    let title = format!("Server {id}");
    let frame = frame(&state, &title, &operator, true);
    html_reply(StatusCode::OK, page(&frame, &body))
}

// --- Actions -----------------------------------------------------------------

async fn confirm(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let operator = match operator_or_login(&state, &headers, true) {
        Ok(operator) => operator,
        Err(response) => return *response,
    };
    let Some(action) = Action::parse(&action) else {
        return message_page(&state, Some(&operator), StatusCode::NOT_FOUND, "Not found", "There is no such action.");
    };
    let base = state.config.console.path.as_str();
    let mut body = format!(
        "<p>{} server <strong>{}</strong>?</p><p>{}</p><form method=\"post\" action=\"{}/servers/{}/{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        action.label(),
        esc(&id),
        action.explain(),
        esc(base),
        esc(&path_segment(&id)),
        action.name(),
        esc(&operator.csrf)
    );
    if action == Action::Drain {
        body.push_str(
            "<label for=\"deadline\">Deadline (for example 30m or 1h30m; empty waits for the meetings to end)</label>\
             <input type=\"text\" id=\"deadline\" name=\"deadline\" maxlength=\"32\">\
             <label for=\"message\">Message for the participants (optional)</label>\
             <input type=\"text\" id=\"message\" name=\"message\" maxlength=\"500\">",
        );
    }
    let class = if matches!(action, Action::Panic | Action::Disable) { "danger" } else { "primary" };
    let _ = write!(
        body,
        "<p><button class=\"{class}\" type=\"submit\">{} {}</button> <a href=\"{}/servers/{}\">Cancel</a></p></form>",
        action.label(),
        esc(&id),
        esc(base),
        esc(&path_segment(&id))
    );
    let title = format!("{} {id}", action.label());
    html_reply(StatusCode::OK, page(&frame(&state, &title, &operator, false), &body))
}

async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    request: Request<Body>,
) -> Response {
    let (operator, form) = match checked_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let Some(action) = Action::parse(&action) else {
        return message_page(&state, Some(&operator), StatusCode::NOT_FOUND, "Not found", "There is no such action.");
    };
    let server_id = ServerId::new(id.clone());
    let field = |name: &str| form.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let result = match action {
        Action::Enable => state.fleet.set_state(&server_id, ServerState::Enabled).await.map(drop),
        Action::Cordon => state.fleet.set_state(&server_id, ServerState::Cordoned).await.map(drop),
        Action::Disable => state.fleet.set_state(&server_id, ServerState::Disabled).await.map(drop),
        Action::Drain => {
            let deadline = match field("deadline").map(|raw| parse_deadline(&raw)) {
                Some(Ok(deadline)) => Some(deadline),
                Some(Err(message)) => {
                    return message_page(&state, Some(&operator), StatusCode::BAD_REQUEST, "Not drained", &message);
                }
                None => None,
            };
            let settings = DrainSettings::from_config(&state.config.drain);
            state.fleet.start_drain(&server_id, deadline, field("message"), &settings).await.map(drop)
        }
        Action::Panic => state.fleet.panic_server(&server_id, false, false).await.map(drop),
    };
    match result {
        Ok(()) => {
            info!(operator = %operator.name, action = action.name(), server.id = %id, "console action");
            redirect(&format!("{}/servers/{}?done={}", state.config.console.path, path_segment(&id), action.name()))
        }
        Err(FleetError::NotFound(_)) => {
            message_page(&state, Some(&operator), StatusCode::NOT_FOUND, "Not found", "There is no such server.")
        }
        Err(FleetError::Invalid(message)) => {
            message_page(&state, Some(&operator), StatusCode::BAD_REQUEST, "Refused", &message)
        }
        Err(FleetError::Store(error)) => store_failed(&state, &operator, &error),
    }
}

async fn confirm_retry(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let operator = match operator_or_login(&state, &headers, true) {
        Ok(operator) => operator,
        Err(response) => return *response,
    };
    let base = state.config.console.path.as_str();
    let body = format!(
        "<p>Import <strong>{}</strong> again?</p><p>The archive goes back into the spool and the importer takes it \
         on its next round; if the cause is not fixed it fails again.</p>\
         <form method=\"post\" action=\"{}/imports/{}/retry\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><button class=\"primary\" type=\"submit\">Retry {}</button> <a href=\"{}#imports\">Cancel</a></p></form>",
        esc(&name),
        esc(base),
        esc(&path_segment(&name)),
        esc(&operator.csrf),
        esc(&name),
        esc(base)
    );
    html_reply(StatusCode::OK, page(&frame(&state, "Retry an import", &operator, false), &body))
}

async fn retry(State(state): State<AppState>, Path(name): Path<String>, request: Request<Body>) -> Response {
    let (operator, _) = match checked_form(&state, request).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    if state.recordings.is_none() || state.config.recordings.disabled {
        return message_page(&state, Some(&operator), StatusCode::NOT_FOUND, "Not found", "Recordings are disabled.");
    }
    let spool_dir = state.config.recordings.spool_dir.clone();
    let archive = name.clone();
    let moved = tokio::task::spawn_blocking(move || spool::retry_failed(&spool_dir, &archive)).await;
    match moved {
        Ok(Ok(())) => {
            info!(operator = %operator.name, action = "retry-import", archive = %name, "console action");
            redirect(&format!("{}#imports", state.config.console.path))
        }
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            message_page(&state, Some(&operator), StatusCode::NOT_FOUND, "Not found", "There is no such failed import.")
        }
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::AlreadyExists => message_page(
            &state,
            Some(&operator),
            StatusCode::CONFLICT,
            "Refused",
            "An archive of that name is already waiting in the spool.",
        ),
        Ok(Err(error)) => {
            warn!(%error, "console: cannot move a failed import back");
            message_page(
                &state,
                Some(&operator),
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "The archive could not be moved.",
            )
        }
        Err(_) => message_page(
            &state,
            Some(&operator),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "The archive could not be moved.",
        ),
    }
}

/// The server's declared and automatic capabilities (`livekit, bbb-3.0`).
fn capabilities(server: &Server) -> String {
    let mut all = server.capabilities.clone();
    all.extend(server.automatic_capabilities());
    if all.is_empty() { "–".to_owned() } else { all.join(", ") }
}

/// The tag column: the operator's tag, then the capabilities in brackets.
fn tag_and_capabilities(server: &Server) -> String {
    let caps = capabilities(server);
    match (server.tag.as_deref(), caps.as_str()) {
        (Some(tag), "–") => tag.to_owned(),
        (Some(tag), caps) => format!("{tag} ({caps})"),
        (None, "–") => String::new(),
        (None, caps) => format!("({caps})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_sort_as_people_count() {
        let mut ids = vec!["bbb-10", "bbb-2", "alpha", "bbb-1"];
        ids.sort_by(|a, b| natural_order(a, b));
        assert_eq!(ids, ["alpha", "bbb-1", "bbb-2", "bbb-10"]);
    }

    #[test]
    fn the_done_notice_shows_only_known_actions() {
        assert!(done_notice(Some("done=cordon"), "bbb-1").contains("Server bbb-1 is cordoned."));
        assert!(done_notice(Some("done=<script>"), "bbb-1").is_empty());
        assert!(done_notice(None, "bbb-1").is_empty());
    }
}
