//! The operator console (`CONSOLE_ENABLED`): signing in, the fleet page,
//! the actions behind a confirmation and their CSRF token, escaping of
//! names from the store, recording imports; then the same story in a real
//! headless Chromium over `WebDriver`, with screenshots under
//! `target/console-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_tests::{Browser, LB_SECRET, Reply, SeedServer, TestApp, eventually_with, http_request, server_id};

use crate::support::{admin_with, create};

const SECRET: &str = "console-secret-7c1e9b";
const BASE: &str = "/scalelite/console";
const PATIENCE: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);

async fn app() -> TestApp {
    TestApp::builder()
        .env("CONSOLE_ENABLED", "true")
        .env("CONSOLE_SECRET", SECRET)
        .env("CONSOLE_SAMPLE_INTERVAL", "0.2")
        .start()
        .await
}

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{BASE}{path}", app.origin())
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("cookie", c)]).unwrap_or_default();
    http_request(Method::GET, &url(app, path), &headers, Bytes::new(), TIMEOUT).await.unwrap()
}

async fn post(app: &TestApp, path: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    http_request(Method::POST, &url(app, path), &all, Bytes::from(body), TIMEOUT).await.unwrap()
}

/// Signs in as `name`; the `Cookie` header value of the session.
async fn sign_in(app: &TestApp, name: &str) -> String {
    let reply = post(app, "/login", &[], &[("name", name), ("secret", SECRET)]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let set = reply.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token of a page's forms.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

async fn state_of(app: &TestApp, id: &str) -> Option<String> {
    app.server(id).await.unwrap().state
}

#[tokio::test]
async fn the_console_is_off_unless_enabled() {
    let app = TestApp::start().await;
    for path in ["", "/login"] {
        let reply = get(&app, path, None).await;
        assert!(reply.body.contains("unsupportedRequest"), "{path}: {}", reply.body);
        assert!(!reply.body.contains("<form"));
    }
    let reply = post(&app, "/login", &[], &[("secret", LB_SECRET)]).await;
    assert!(reply.header("set-cookie").is_none());
}

#[tokio::test]
async fn signing_in_takes_a_secret_and_sets_a_strict_http_only_cookie() {
    let app = app().await;
    // Not signed in: pages lead to the login form.
    let reply = get(&app, "", None).await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location.as_deref(), Some("/scalelite/console/login"));
    let form = get(&app, "/login", None).await;
    assert_eq!(form.status, 200);
    assert!(form.content_type().unwrap().starts_with("text/html"));
    assert!(form.body.contains("<label for=\"secret\"") && form.body.contains("id=\"secret\""));
    assert!(form.header("content-security-policy").unwrap().contains("default-src 'none'"));

    // A wrong secret: refused, no cookie.
    let wrong = post(&app, "/login", &[], &[("name", "eve"), ("secret", "guess")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.body.contains("not one that signs in"));

    // A form larger than any console form is not read.
    let huge = "x".repeat(20_000);
    let too_large = post(&app, "/login", &[], &[("secret", &huge)]).await;
    assert_eq!(too_large.status, 400);
    assert!(too_large.header("set-cookie").is_none());

    // The console secret signs in; the cookie is HttpOnly, SameSite=Strict,
    // scoped to the console, and not Secure over plain HTTP.
    let reply = post(&app, "/login", &[], &[("name", "alice"), ("secret", SECRET)]).await;
    assert_eq!(reply.status, 303);
    let set = reply.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/scalelite/console", "Max-Age=28800"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = get(&app, "", Some(&cookie)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Signed in as <strong>alice</strong>"));
    assert!(page.body.contains(&server_id(0)) && page.body.contains(&server_id(1)));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    // The address with a trailing slash, as the docs print it, is the same page.
    assert_eq!(get(&app, "/", Some(&cookie)).await.status, 200);

    // Behind a TLS proxy the cookie is Secure.
    let https = post(&app, "/login", &[("x-forwarded-proto", "https")], &[("secret", SECRET)]).await;
    assert!(https.header("set-cookie").unwrap().contains("; Secure"));

    // The management secret (here the load balancer's) signs in too.
    let management = post(&app, "/login", &[], &[("secret", LB_SECRET)]).await;
    assert_eq!(management.status, 303);

    // A tampered cookie is no session.
    let tampered = format!("{}0", cookie);
    assert_eq!(get(&app, "", Some(&tampered)).await.status, 303);

    // Signing out needs the token and ends the cookie.
    let out = post(&app, "/logout", &[("cookie", &cookie)], &[("csrf", &csrf(&page.body))]).await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn sessions_expire() {
    let app = TestApp::builder()
        .env("CONSOLE_ENABLED", "true")
        .env("CONSOLE_SECRET", SECRET)
        .env("CONSOLE_SESSION_TTL", "1")
        .start()
        .await;
    let cookie = sign_in(&app, "bob").await;
    assert_eq!(get(&app, "", Some(&cookie)).await.status, 200);
    eventually_with(PATIENCE, "the session expired", || async { get(&app, "", Some(&cookie)).await.status == 303 })
        .await;
}

#[tokio::test]
async fn actions_need_a_session_and_its_csrf_token() {
    let app = app().await;
    let id = server_id(0);
    let action = format!("/servers/{id}/cordon");

    // Without a session.
    let reply = post(&app, &action, &[], &[("csrf", "x")]).await;
    assert_eq!(reply.status, 403);

    let cookie = sign_in(&app, "alice").await;
    let confirm = get(&app, &action, Some(&cookie)).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Cordon server <strong>bbb-1</strong>?"));
    let token = csrf(&confirm.body);

    // Without the token, with another one, or from another site: refused,
    // and the server is left alone.
    let none = post(&app, &action, &[("cookie", &cookie)], &[]).await;
    assert_eq!(none.status, 403);
    assert!(none.body.contains("CSRF token"));
    let other = post(&app, &action, &[("cookie", &cookie)], &[("csrf", &token[1..])]).await;
    assert_eq!(other.status, 403);
    let cross =
        post(&app, &action, &[("cookie", &cookie), ("sec-fetch-site", "cross-site")], &[("csrf", &token)]).await;
    assert_eq!(cross.status, 403);
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("enabled"));

    // With it: done, and the page says so.
    let done = post(&app, &action, &[("cookie", &cookie)], &[("csrf", &token)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/scalelite/console/servers/bbb-1?done=cordon"));
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("cordoned"));
    let page = get(&app, "/servers/bbb-1?done=cordon", Some(&cookie)).await;
    assert!(page.body.contains("Server bbb-1 is cordoned."), "{}", page.body);
    assert!(page.body.contains("<span class=\"state-cordoned\">cordoned</span>"));

    // Enable and disable go through the same path.
    let enable = post(&app, &format!("/servers/{id}/enable"), &[("cookie", &cookie)], &[("csrf", &token)]).await;
    assert_eq!(enable.status, 303);
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("enabled"));
    let disable = post(&app, &format!("/servers/{id}/disable"), &[("cookie", &cookie)], &[("csrf", &token)]).await;
    assert_eq!(disable.status, 303);
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("disabled"));

    // Unknown servers and actions.
    let missing = post(&app, "/servers/nope/cordon", &[("cookie", &cookie)], &[("csrf", &token)]).await;
    assert_eq!(missing.status, 404);
    let unknown = post(&app, &format!("/servers/{id}/explode"), &[("cookie", &cookie)], &[("csrf", &token)]).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_drain_from_the_console_shows_its_progress_until_the_server_is_empty() {
    let app = app().await;
    create(&app, "class").await;
    let on = app.placed_on("class").await.unwrap();
    let id = server_id(on);
    app.poll().await;
    let cookie = sign_in(&app, "alice").await;
    let token = csrf(&get(&app, "", Some(&cookie)).await.body);

    let bad =
        post(&app, &format!("/servers/{id}/drain"), &[("cookie", &cookie)], &[("csrf", &token), ("deadline", "soon")])
            .await;
    assert_eq!(bad.status, 400);
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("enabled"));

    let form = [("csrf", token.as_str()), ("deadline", ""), ("message", "Maintenance <tonight>")];
    let reply = post(&app, &format!("/servers/{id}/drain"), &[("cookie", &cookie)], &form).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("cordoned"));
    let page = get(&app, "", Some(&cookie)).await.body;
    assert!(page.contains("draining, 1 meeting, no deadline"), "{page}");

    // The meeting ends: the poller finds the server empty and disables it.
    app.fleet[on].remove_meeting("class");
    app.age_meeting("class", Duration::from_secs(3600)).await;
    eventually_with(PATIENCE, "the console shows the server drained", || async {
        app.poll().await;
        let page = get(&app, &format!("/servers/{id}"), Some(&cookie)).await.body;
        page.contains("<span class=\"state-disabled\">disabled</span>") && page.contains("id=\"drain\">drained")
    })
    .await;
}

#[tokio::test]
async fn a_panic_from_the_console_ends_the_meetings_and_disables_the_server() {
    let app = app().await;
    create(&app, "lecture").await;
    let on = app.placed_on("lecture").await.unwrap();
    let id = server_id(on);
    let cookie = sign_in(&app, "alice").await;
    let page = get(&app, &format!("/servers/{id}"), Some(&cookie)).await.body;
    assert!(page.contains("Meetings routed here (1)") && page.contains("<th scope=\"row\">lecture</th>"), "{page}");
    let confirm = get(&app, &format!("/servers/{id}/panic"), Some(&cookie)).await.body;
    assert!(confirm.contains("Every meeting of the server is ended"));
    let reply = post(&app, &format!("/servers/{id}/panic"), &[("cookie", &cookie)], &[("csrf", &csrf(&confirm))]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("disabled"));
    assert!(app.meeting("lecture").await.is_none());
    assert!(app.fleet[on].ended_meetings().iter().any(|m| m.meeting_id == "lecture"));
    let page = get(&app, &format!("/servers/{id}?done=panic"), Some(&cookie)).await.body;
    assert!(page.contains("its meetings were ended and it is disabled") && page.contains("Meetings routed here (0)"));
}

#[tokio::test]
async fn names_from_the_store_are_escaped() {
    let app = app().await;
    let hostile = "<script>alert(1)</script>";
    app.seed_server(
        &SeedServer::enabled("x\"><img src=x onerror=alert(2)>", "http://127.0.0.1:9/b/api", "s").tag(hostile),
    )
    .await;
    app.seed_meeting("<img src=y onerror=alert(3)>", &server_id(0), "mp", "70001").await;
    let cookie = sign_in(&app, "<b>mallory</b>").await;
    let page = get(&app, "", Some(&cookie)).await.body;
    assert!(!page.contains("<script>alert") && !page.contains("<img src"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("x&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
    assert!(page.contains("Signed in as <strong>&lt;b&gt;mallory&lt;/b&gt;</strong>"));
    // The hostile id is one path segment in links.
    assert!(page.contains("/servers/x%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E\""));
    let server = get(&app, &format!("/servers/{}", server_id(0)), Some(&cookie)).await.body;
    assert!(server.contains("&lt;img src=y onerror=alert(3)&gt;") && !server.contains("<img src"), "{server}");
}

#[tokio::test]
async fn a_reverse_proxy_can_vouch_for_the_operator() {
    let app =
        TestApp::builder().env("CONSOLE_ENABLED", "true").env("CONSOLE_AUTH_HEADER", "X-Remote-User").start().await;
    assert_eq!(get(&app, "", None).await.status, 303);
    let headers = [("x-remote-user", "dana")];
    let page = http_request(Method::GET, &url(&app, ""), &headers, Bytes::new(), TIMEOUT).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Signed in as <strong>dana</strong>"));
    let token = csrf(&page.body);
    let id = server_id(1);
    let refused = post(&app, &format!("/servers/{id}/cordon"), &headers, &[]).await;
    assert_eq!(refused.status, 403);
    let done = post(&app, &format!("/servers/{id}/cordon"), &headers, &[("csrf", &token)]).await;
    assert_eq!(done.status, 303);
    assert_eq!(state_of(&app, &id).await.as_deref(), Some("cordoned"));
}

#[tokio::test]
async fn plots_fill_from_the_samples() {
    let app = app().await;
    app.poll().await;
    let cookie = sign_in(&app, "alice").await;
    eventually_with(PATIENCE, "a plot with a line", || async {
        let page = get(&app, "", Some(&cookie)).await.body;
        page.contains("<polyline class=\"load\"") && page.contains("aria-label=\"bbb-1: load now")
    })
    .await;
}

#[tokio::test]
async fn failed_imports_are_listed_with_their_reason_and_can_be_retried() {
    let app =
        TestApp::builder().recordings().env("CONSOLE_ENABLED", "true").env("CONSOLE_SECRET", SECRET).start().await;
    let spool = app.dirs().spool();
    let failed = spool.join("failed");
    std::fs::create_dir_all(&failed).unwrap();
    std::fs::write(failed.join("rec-1.tar"), b"not a tar").unwrap();
    std::fs::write(failed.join("rec-1.tar.reason"), "metadata.xml is missing <here>\n\ndetails").unwrap();
    std::fs::write(spool.join("rec-2.tar"), b"waiting").unwrap();
    let cookie = sign_in(&app, "alice").await;
    let page = get(&app, "", Some(&cookie)).await.body;
    assert!(page.contains("1 archives waiting in the spool; 1 failed."), "{page}");
    assert!(page.contains("metadata.xml is missing &lt;here&gt;"));
    let confirm = get(&app, "/imports/rec-1.tar/retry", Some(&cookie)).await;
    assert_eq!(confirm.status, 200);
    let token = csrf(&confirm.body);
    assert_eq!(post(&app, "/imports/rec-1.tar/retry", &[("cookie", &cookie)], &[]).await.status, 403);
    assert!(failed.join("rec-1.tar").exists());
    let reply = post(&app, "/imports/rec-1.tar/retry", &[("cookie", &cookie)], &[("csrf", &token)]).await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert!(spool.join("rec-1.tar").exists() && !failed.join("rec-1.tar").exists());
    assert!(!failed.join("rec-1.tar.reason").exists());
    // Nothing outside the quarantine can be moved.
    let escape = post(&app, "/imports/..%2Frec-2.tar/retry", &[("cookie", &cookie)], &[("csrf", &token)]).await;
    assert_eq!(escape.status, 404);

    // The admin CLI retries through the same function.
    std::fs::write(failed.join("rec-3.tar"), b"again").unwrap();
    let config = &app.state.config;
    let run = admin_with(config, &["recordings", "retry-import", "rec-3.tar"], "").await.ok();
    assert_eq!(run.out, "rec-3.tar is back in the spool; the importer takes it on its next round\n");
    assert!(spool.join("rec-3.tar").exists());
    admin_with(config, &["recordings", "retry-import", "rec-3.tar"], "")
        .await
        .fails_with("ERROR: no quarantined archive rec-3.tar (see recordings import-status)");
}

#[tokio::test]
async fn tenants_are_shown_with_their_limits() {
    use scalelite_store::limits::{MAX_PARTICIPANTS_SETTING, RATE_SETTING};
    use scalelite_store::{Tenant, TenantSetting};

    let app = TestApp::builder()
        .env("CONSOLE_ENABLED", "true")
        .env("CONSOLE_SECRET", SECRET)
        .env("MULTITENANCY_ENABLED", "true")
        .start()
        .await;
    let school = Tenant::new("school", "secret-s");
    app.state.store.create_tenant(&school).await.unwrap();
    app.state.store.create_tenant(&Tenant::new("<i>evil</i>", "secret-e")).await.unwrap();
    for (name, value) in [(MAX_PARTICIPANTS_SETTING, "300"), (RATE_SETTING, "600")] {
        app.state
            .store
            .create_tenant_setting(&TenantSetting::new(school.id.clone(), name, value, "true"))
            .await
            .unwrap();
    }
    let cookie = sign_in(&app, "alice").await;
    let page = get(&app, "", Some(&cookie)).await.body;
    assert!(
        page.contains(
            "<th scope=\"row\">school</th><td class=\"n\">0</td><td class=\"n\">none</td>\
             <td class=\"n\">300</td><td class=\"n\">600</td>"
        ),
        "{page}"
    );
    assert!(page.contains("&lt;i&gt;evil&lt;/i&gt;") && !page.contains("<i>evil"));
}

#[tokio::test]
async fn the_last_poll_round_and_each_tenants_usage_are_shown() {
    use scalelite_store::Tenant;
    use scalelite_store::usage::{TenantUsage, UsageSample};

    // `recordings()`: the Redis app gets its PostgreSQL, where usage is kept.
    let app = TestApp::builder()
        .servers(2)
        .recordings()
        .env("CONSOLE_ENABLED", "true")
        .env("CONSOLE_SECRET", SECRET)
        .env("MULTITENANCY_ENABLED", "true")
        .start()
        .await;
    let school = Tenant::new("school", "secret-s");
    app.state.store.create_tenant(&school).await.unwrap();
    let cookie = sign_in(&app, "alice").await;
    let page = get(&app, "", Some(&cookie)).await.body;
    assert!(!page.contains("Last poll round"), "{page}");

    // A round by the poller (another process on the Redis backend).
    app.poll().await;
    // Half an hour of 12 participants in one meeting, as a poller's next
    // round accounts it (the round above set the watermark to now).
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let sample = UsageSample {
        at_ms: now_ms + 1_800_000,
        interval_ms: 1_800_000,
        tenants: vec![TenantUsage { tenant: school.id.as_str().to_owned(), meetings: 1, participants: 12 }],
    };
    app.usage_store().expect("a usage store").account_usage(&sample).await.unwrap();

    let page = get(&app, "", Some(&cookie)).await.body;
    let round =
        page.find("id=\"last-round\">Last poll round: ").map(|at| &page[at..]).unwrap_or_else(|| panic!("{page}"));
    assert!(round.contains("2 servers polled, 2 answered"), "{round}");
    assert!(
        page.contains(
            "<th scope=\"row\">school</th><td class=\"n\">0</td><td class=\"n\">none</td>\
             <td class=\"n\">none</td><td class=\"n\">none</td><td class=\"n\">6.0</td><td class=\"n\">12</td>"
        ),
        "{page}"
    );
}

fn screenshot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots").join(name)
}

/// The newcomer's story in a real browser: sign in, see the fleet, cordon
/// a server and see its state change; a form without its CSRF token is
/// refused; the page works from the keyboard.
#[tokio::test]
async fn in_a_browser_an_operator_signs_in_sees_the_fleet_and_cordons_a_server() {
    let app = app().await;
    app.poll().await;
    let browser = Browser::start().await;
    let backend = format!("{:?}", app.backend()).to_lowercase();

    browser.goto(&url(&app, "")).await;
    assert!(browser.url().await.ends_with("/scalelite/console/login"));
    // The keyboard reaches the skip link first, then the name field.
    browser.press("\u{E004}").await;
    assert_eq!(browser.script("return document.activeElement.className").await, "skip");
    browser.press("\u{E004}\u{E004}").await;
    assert_eq!(browser.script("return document.activeElement.id").await, "name");
    browser.type_into(&browser.must_find("#name").await, "Alice").await;
    browser.type_into(&browser.must_find("#secret").await, SECRET).await;
    browser.screenshot(&screenshot(&format!("{backend}-1-login.png"))).await;
    browser.click_and_wait(&browser.must_find("button[type=submit]").await).await;

    let text = browser.text().await;
    assert!(text.contains("Signed in as Alice"), "{text}");
    assert!(text.contains("bbb-1") && text.contains("bbb-2") && text.contains("online"), "{text}");
    assert_eq!(browser.title().await, "Fleet · Scalelite console");
    browser.screenshot(&screenshot(&format!("{backend}-2-fleet.png"))).await;

    browser.click_and_wait(&browser.must_find("a[aria-label='Cordon bbb-1']").await).await;
    assert!(browser.text().await.contains("Cordon server bbb-1?"));
    browser.screenshot(&screenshot(&format!("{backend}-3-confirm.png"))).await;
    browser.click_and_wait(&browser.must_find("main button[type=submit]").await).await;
    let text = browser.text().await;
    assert!(text.contains("Server bbb-1 is cordoned."), "{text}");
    assert_eq!(browser.script("return document.querySelector('#state').textContent").await, "cordoned");
    assert_eq!(state_of(&app, "bbb-1").await.as_deref(), Some("cordoned"));
    browser.screenshot(&screenshot(&format!("{backend}-4-cordoned.png"))).await;

    // The same form without its token is refused and changes nothing.
    browser.goto(&url(&app, "/servers/bbb-2/disable")).await;
    browser.script("document.querySelector('main input[name=csrf]').remove(); return null").await;
    browser.click_and_wait(&browser.must_find("main button[type=submit]").await).await;
    let text = browser.text().await;
    assert!(text.contains("did not carry this session's CSRF token"), "{text}");
    assert_eq!(state_of(&app, "bbb-2").await.as_deref(), Some("enabled"));
    browser.screenshot(&screenshot(&format!("{backend}-5-csrf-refused.png"))).await;
}
