//! `POST /fsapi`: FreeSWITCH dial-in — authentication, the four dialplan
//! documents, breakout pins, caller-ID privacy, injection attempts and
//! tenant isolation.

use bytes::Bytes;
use http::Method;
use scalelite_core::xml::Element;
use std::collections::HashMap;

use scalelite_core::{MeetingId, ServerId, TenantId};
use scalelite_store::Tenant;
use scalelite_tests::client::DEFAULT_TIMEOUT;
use scalelite_tests::{ApiClient, LB_SECRET, Reply, TestApp, http_request};

const PASSWORD: &str = "fs-password-1";

/// `Authorization: Basic <base64(user:password)>`.
fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// A `mod_xml_curl` request: form-encoded POST, optional credentials and
/// `Host` header.
async fn dial(app: &TestApp, auth: Option<(&str, &str)>, host: Option<&str>, params: &[(&str, &str)]) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let authorization = auth.map(|(user, password)| basic(user, password));
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(value) = &authorization {
        headers.push(("authorization", value));
    }
    if let Some(host) = host {
        headers.push(("host", host));
    }
    let url = format!("{}/fsapi", app.origin());
    http_request(Method::POST, &url, &headers, Bytes::from(body), DEFAULT_TIMEOUT).await.expect("POST /fsapi")
}

/// A dialplan lookup with the given pin (none: the first lookup of a call).
fn lookup<'a>(pin: Option<&'a str>, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![("section", "dialplan"), ("Caller-Destination-Number", "5551234")];
    params.extend(pin.map(|pin| ("variable_pin", pin)));
    params.extend_from_slice(extra);
    params
}

async fn dial_pin(app: &TestApp, pin: &str, extra: &[(&str, &str)]) -> Reply {
    dial(app, Some(("fsapi", PASSWORD)), None, &lookup(Some(pin), extra)).await
}

fn fsapi_app() -> scalelite_tests::TestAppBuilder {
    TestApp::builder().servers(2).env("FSAPI_PASSWORD", PASSWORD).env("USE_EXTERNAL_VOICE_BRIDGE", "true")
}

/// Creates `id` with the dial-in number `voice_bridge` (through `client`, on
/// `host`) and checks the stored record.
async fn create_with_pin(app: &TestApp, client: &ApiClient, host: Option<&str>, id: &str, voice_bridge: &str) {
    let url = client.url("create", &[("meetingID", id), ("name", "Room"), ("voiceBridge", voice_bridge)]);
    let headers: Vec<(&str, &str)> = host.map(|h| vec![("host", h)]).unwrap_or_default();
    let reply = http_request(Method::GET, &url, &headers, Bytes::new(), DEFAULT_TIMEOUT).await.expect("create");
    assert!(reply.is_success(), "create {id}: {}", reply.body);
    assert_eq!(app.meeting(id).await.expect("meeting record").voice_bridge, voice_bridge);
}

fn xml(reply: &Reply) -> Element {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type(), Some("application/xml; charset=utf-8"));
    reply.xml()
}

/// The extension name of a dialplan document (`None` for the reject one).
fn extension(reply: &Reply) -> Option<String> {
    xml(reply).at_path("section/context/extension").and_then(|e| e.attr("name").map(str::to_owned))
}

/// `(application, data)` of every action of a dialplan document.
fn actions(reply: &Reply) -> Vec<(String, String)> {
    let doc = xml(reply);
    let condition = doc.at_path("section/context/extension/condition").expect("a dialplan document");
    condition
        .elements()
        .map(|a| (a.attr("application").unwrap_or("").to_owned(), a.attr("data").unwrap_or("").to_owned()))
        .collect()
}

fn data_of(reply: &Reply, prefix: &str) -> String {
    actions(reply)
        .into_iter()
        .find_map(|(_, data)| data.strip_prefix(prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no action data starting with {prefix:?} in\n{}", reply.body))
}

#[tokio::test]
async fn fsapi_requires_the_password_with_user_fsapi() {
    let app = fsapi_app().start().await;
    let params = lookup(None, &[]);
    for auth in [None, Some(("fsapi", "wrong")), Some(("admin", PASSWORD)), Some(("fsapi", LB_SECRET))] {
        let reply = dial(&app, auth, None, &params).await;
        assert_eq!(reply.status, 401, "{auth:?}");
        // URL_HOST is unset: Rails' default realm instead of Scalelite's HTTP 500.
        assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"Application\""));
        assert_eq!(reply.body, "HTTP Basic: Access denied.\n");
    }
    let reply = dial(&app, Some(("fsapi", PASSWORD)), None, &params).await;
    assert_eq!(extension(&reply).as_deref(), Some("match_did_and_prompt_for_pin"));
    // POST only; other methods are unsupported requests, as elsewhere.
    let reply = app.client().raw_get("/fsapi").await;
    assert_eq!(reply.message_key().as_deref(), Some("unsupportedRequest"));
    // Calls are counted under their own label.
    let metrics = app.client().raw_get("/metrics").await.body;
    assert!(metrics.contains("scalelite_api_requests_total{call=\"fsapi\",outcome=\"SUCCESS\"} 1"), "{metrics}");
    assert!(metrics.contains("scalelite_api_requests_total{call=\"fsapi\",outcome=\"http_401\"} 4"), "{metrics}");
}

#[tokio::test]
async fn fsapi_password_defaults_to_the_first_secret_and_empty_disables_it() {
    let app = TestApp::builder().servers(1).env("LOADBALANCER_SECRETS", "second").start().await;
    let params = lookup(None, &[]);
    assert_eq!(dial(&app, Some(("fsapi", LB_SECRET)), None, &params).await.status, 200);
    assert_eq!(dial(&app, Some(("fsapi", "second")), None, &params).await.status, 401);

    let app = TestApp::builder().servers(1).env("FSAPI_PASSWORD", "").start().await;
    for auth in [None, Some(("anyone", "anything"))] {
        let reply = dial(&app, auth, None, &params).await;
        assert_eq!(extension(&reply).as_deref(), Some("match_did_and_prompt_for_pin"), "{auth:?}");
    }
}

#[tokio::test]
async fn fsapi_rejects_other_sections_and_calls_without_destination() {
    let app = fsapi_app().start().await;
    let auth = Some(("fsapi", PASSWORD));
    let reply = dial(&app, auth, None, &[("section", "directory"), ("Caller-Destination-Number", "5551234")]).await;
    insta::assert_snapshot!(reply.body, @r#"
    <document type="freeswitch/xml">
      <section name="result">
        <result status="not found"/>
      </section>
    </document>
    "#);
    for params in [
        vec![("Caller-Destination-Number", "5551234")],
        vec![("section", "dialplan")],
        vec![("section", "dialplan"), ("Caller-Destination-Number", "  ")],
        vec![("section", "Dialplan"), ("Caller-Destination-Number", "5551234")],
    ] {
        let reply = dial(&app, auth, None, &params).await;
        assert_eq!(xml(&reply).at_path("section/result").and_then(|r| r.attr("status")), Some("not found"));
    }
    // Parameters may come in the query too (the query wins).
    let url = format!("{}/fsapi?section=dialplan&Caller-Destination-Number=5551234", app.origin());
    let headers = [("authorization", basic("fsapi", PASSWORD))];
    let headers: Vec<_> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply =
        http_request(Method::POST, &url, &headers, Bytes::from("section=config"), DEFAULT_TIMEOUT).await.unwrap();
    assert_eq!(extension(&reply).as_deref(), Some("match_did_and_prompt_for_pin"));
}

#[tokio::test]
async fn fsapi_prompts_for_a_pin() {
    let app = fsapi_app().start().await;
    let reply = dial(&app, Some(("fsapi", PASSWORD)), None, &lookup(None, &[])).await;
    insta::assert_snapshot!(reply.body, @r#"
    <document type="freeswitch/xml">
      <section name="dialplan" description="Match DID and Pin for Conference">
        <context name="public">
          <extension name="match_did_and_prompt_for_pin">
            <condition field="destination_number" expression="^5551234$">
              <action application="answer"/>
              <action application="sleep" data="500"/>
              <action application="playback" data="ivr/ivr-welcome.wav"/>
              <action application="sleep" data="200"/>
              <action application="play_and_get_digits" data="5 9 3 7000 # conference/conf-enter_conf_pin.wav conference/conf-bad-pin.wav pin \d+"/>
              <action application="transfer" data="${pin} XML public"/>
            </condition>
          </extension>
        </context>
      </section>
    </document>
    "#);
    // A blank pin is no pin.
    let reply = dial(&app, Some(("fsapi", PASSWORD)), None, &lookup(Some(" "), &[])).await;
    assert_eq!(extension(&reply).as_deref(), Some("match_did_and_prompt_for_pin"));

    // FSAPI_MAX_DURATION defaults to MAX_MEETING_DURATION and adds a hang-up
    // timer; VOICE_BRIDGE_MIN/MAX bound the digits collected.
    let app = fsapi_app()
        .env("MAX_MEETING_DURATION", "120")
        .env("VOICE_BRIDGE_MIN", "4")
        .env("VOICE_BRIDGE_MAX", "10")
        .servers(1)
        .start()
        .await;
    let reply = dial(&app, Some(("fsapi", PASSWORD)), None, &lookup(None, &[])).await;
    insta::assert_snapshot!(reply.body, @r#"
    <document type="freeswitch/xml">
      <section name="dialplan" description="Match DID and Pin for Conference">
        <context name="public">
          <extension name="match_did_and_prompt_for_pin">
            <condition field="destination_number" expression="^5551234$">
              <action application="answer"/>
              <action application="sched_hangup" data="+7200 normal_clearing"/>
              <action application="sleep" data="500"/>
              <action application="playback" data="ivr/ivr-welcome.wav"/>
              <action application="sleep" data="200"/>
              <action application="play_and_get_digits" data="4 10 3 7000 # conference/conf-enter_conf_pin.wav conference/conf-bad-pin.wav pin \d+"/>
              <action application="transfer" data="${pin} XML public"/>
            </condition>
          </extension>
        </context>
      </section>
    </document>
    "#);
    let app = fsapi_app().env("MAX_MEETING_DURATION", "120").env("FSAPI_MAX_DURATION", "0").servers(1).start().await;
    let reply = dial(&app, Some(("fsapi", PASSWORD)), None, &lookup(None, &[])).await;
    assert!(actions(&reply).iter().all(|(application, _)| application != "sched_hangup"), "{}", reply.body);
}

#[tokio::test]
async fn fsapi_reprompts_for_unknown_and_malformed_pins() {
    let app = fsapi_app().start().await;
    let reply = dial_pin(&app, "123456789", &[]).await;
    // Scalelite's reprompt collects digits with `d+`, refusing every pin; ours
    // uses `\d+` like the first prompt.
    insta::assert_snapshot!(reply.body, @r#"
    <document type="freeswitch/xml">
      <section name="dialplan" description="Reprompt Pin for Conference">
        <context name="public">
          <extension name="reprompt_for_pin">
            <condition field="destination_number" expression="^5551234$">
              <action application="playback" data="conference/conf-bad-pin.wav"/>
              <action application="sleep" data="500"/>
              <action application="play_and_get_digits" data="5 9 3 7000 # conference/conf-enter_conf_pin.wav conference/conf-bad-pin.wav pin \d+"/>
              <action application="transfer" data="${pin} XML public"/>
            </condition>
          </extension>
        </context>
      </section>
    </document>
    "#);
    create_with_pin(&app, &app.client(), None, "room", "71234567").await;
    // Pins are digits only: anything else is never looked up.
    for pin in ["71234567 ", "7123456x", "${pin}", "７１２３４５６７", "71234567#"] {
        let reply = dial_pin(&app, pin, &[]).await;
        assert_eq!(extension(&reply).as_deref(), Some("reprompt_for_pin"), "{pin:?}");
    }
    // A breakout pin has exactly one extra digit.
    assert_eq!(extension(&dial_pin(&app, "7123456712", &[]).await).as_deref(), Some("reprompt_for_pin"));
    assert_eq!(extension(&dial_pin(&app, "7123456", &[]).await).as_deref(), Some("reprompt_for_pin"));
}

#[tokio::test]
async fn fsapi_bridges_known_pins_to_the_meeting_server() {
    let app = fsapi_app().start().await;
    create_with_pin(&app, &app.client(), None, "room-1", "71234567").await;
    let reply = dial_pin(&app, "71234567", &[("Caller-Caller-ID-Name", "6135551234")]).await;
    insta::assert_snapshot!(reply.body, @r#"
    <document type="freeswitch/xml">
      <section name="dialplan" description="Bridge Call to BBB Server">
        <context name="public">
          <extension name="bridge_to_bbb_server">
            <condition field="destination_number" expression="^5551234$">
              <action application="set" data="meeting_id=room-1"/>
              <action application="set" data="effective_caller_id_name=613555XXXX"/>
              <action application="bridge" data="sofia/external/71234567@127.0.0.1"/>
            </condition>
          </extension>
        </context>
      </section>
    </document>
    "#);

    // A generated voice bridge, read back from the meeting record.
    let reply = app.client().get("create", &[("meetingID", "room-2"), ("name", "Room 2")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let pin = app.meeting("room-2").await.unwrap().voice_bridge;
    assert_eq!(pin.len(), 9);
    let reply = dial_pin(&app, &pin, &[("Caller-Caller-ID-Name", "Alice")]).await;
    assert_eq!(
        actions(&reply),
        [
            ("set".into(), "meeting_id=room-2".into()),
            ("set".into(), "effective_caller_id_name=Alice".into()),
            ("bridge".into(), format!("sofia/external/{pin}@127.0.0.1")),
        ]
    );

    // A breakout room's pin is its parent's plus one digit: bridged to the
    // parent's server with the pin as dialled.
    let reply = dial_pin(&app, "712345673", &[]).await;
    assert_eq!(data_of(&reply, "meeting_id="), "room-1");
    assert_eq!(data_of(&reply, "sofia/external/"), "712345673@127.0.0.1");
    assert_eq!(data_of(&reply, "effective_caller_id_name="), "Unavailable");

    // The destination number is matched literally.
    let reply = dial(
        &app,
        Some(("fsapi", PASSWORD)),
        None,
        &[("section", "dialplan"), ("Caller-Destination-Number", "+1 (613) 555.1234"), ("variable_pin", "71234567")],
    )
    .await;
    let expression =
        xml(&reply).at_path("section/context/extension/condition").unwrap().attr("expression").unwrap().to_owned();
    assert_eq!(expression, r"^\x2B1\x20\x28613\x29\x20555\x2E1234$");
}

#[tokio::test]
async fn fsapi_masks_numbers_and_honours_privacy_flags() {
    let app = fsapi_app().servers(1).start().await;
    create_with_pin(&app, &app.client(), None, "room", "71234567").await;
    let cases: [(&[(&str, &str)], &str); 9] = [
        (&[("Caller-Caller-ID-Name", "6135551234")], "613555XXXX"),
        (&[("Caller-Caller-ID-Name", "1234")], "XXXX"),
        (&[("Caller-Caller-ID-Name", "6135551234"), ("Caller-Privacy-Hide-Number", "true")], "Unavailable"),
        (&[("Caller-Caller-ID-Name", "6135551234"), ("Caller-Privacy-Hide-Number", "TRUE")], "613555XXXX"),
        (&[("Caller-Caller-ID-Name", "6135551234"), ("Caller-Privacy-Hide-Name", "true")], "613555XXXX"),
        (&[("Caller-Caller-ID-Name", "Alice Smith"), ("Caller-Privacy-Hide-Name", "true")], "Unavailable"),
        (&[("Caller-Caller-ID-Name", "Alice Smith"), ("Caller-Privacy-Hide-Number", "true")], "Alice Smith"),
        (&[("Caller-Caller-ID-Name", "+16135551234")], "+16135551234"),
        (&[("Caller-Caller-ID-Name", "   ")], "Unavailable"),
    ];
    for (extra, shown) in cases {
        let reply = dial_pin(&app, "71234567", extra).await;
        assert_eq!(data_of(&reply, "effective_caller_id_name="), shown, "{extra:?}");
    }
}

/// Asserts that a bridge document is the usual three actions and that no
/// value in it can reach FreeSWITCH's preprocessor, variable expansion or
/// regex substitution.
#[track_caller]
fn assert_inert(reply: &Reply) {
    let raw = &reply.body;
    assert!(!raw.contains("$${"), "{raw}");
    assert!(!raw.to_ascii_lowercase().contains("x-pre-process"), "{raw}");
    let doc = xml(reply);
    let condition = doc.at_path("section/context/extension/condition").expect("a dialplan document");
    let expression = condition.attr("expression").unwrap();
    assert!(!expression.contains(['(', '{', '}', '"', '\'', '<']), "{expression}");
    assert_eq!(expression.matches('$').count(), 1, "{expression}");
    let actions = actions(reply);
    let applications: Vec<_> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(applications, ["set", "set", "bridge"], "{raw}");
    for (_, data) in &actions {
        assert!(!data.contains(['$', '\\', '"', '\n', '\r']), "{data:?} in\n{raw}");
    }
    assert!(actions[0].1.starts_with("meeting_id="));
    assert!(actions[1].1.starts_with("effective_caller_id_name="));
    assert!(actions[2].1.starts_with("sofia/external/") && actions[2].1.ends_with("@127.0.0.1"));
}

#[tokio::test]
async fn fsapi_values_cannot_inject_into_the_dialplan() {
    let app = fsapi_app().servers(1).start().await;
    // A hostile meeting id, chosen by a front-end.
    create_with_pin(&app, &app.client(), None, "${system(touch /tmp/fsapi-meeting)}", "71234567").await;
    let hostile = [
        "${system(touch /tmp/fsapi-x)}",
        "$${default_password}",
        "\\${system(id)}",
        "\\\\${system(id)}",
        "\"/><action application=\"system\" data=\"touch /tmp/fsapi-x\"/><x y=\"",
        "<X-PRE-PROCESS cmd=\"exec\" data=\"touch /tmp/fsapi-x\"/>",
        "$0 ${1} $1",
        "a\r\n<action application=\"system\"/>",
        "%[x=y]${x}",
    ];
    for value in hostile {
        let reply = dial_pin(&app, "71234567", &[("Caller-Caller-ID-Name", value)]).await;
        assert_inert(&reply);
        assert_eq!(data_of(&reply, "meeting_id="), "_{system(touch /tmp/fsapi-meeting)}");
        // The name keeps everything but what FreeSWITCH would act on.
        let shown = data_of(&reply, "effective_caller_id_name=");
        let expected: String = value.chars().map(|c| if "$\\\"\r\n".contains(c) { '_' } else { c }).collect();
        assert_eq!(shown, expected);

        // The same values as destination number: matched literally, inert.
        let params = [("section", "dialplan"), ("Caller-Destination-Number", value), ("variable_pin", "71234567")];
        let reply = dial(&app, Some(("fsapi", PASSWORD)), None, &params).await;
        assert_inert(&reply);
        let expression =
            xml(&reply).at_path("section/context/extension/condition").unwrap().attr("expression").unwrap().to_owned();
        let literal: String = value
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("\\x{b:02X}") })
            .collect();
        assert_eq!(expression, format!("^{literal}$"));
    }
    // The prompts carry the destination number too.
    for value in hostile {
        for pin in [None, Some("999999999")] {
            let params = [("section", "dialplan"), ("Caller-Destination-Number", value)];
            let mut params = params.to_vec();
            params.extend(pin.map(|p| ("variable_pin", p)));
            let reply = dial(&app, Some(("fsapi", PASSWORD)), None, &params).await;
            assert!(!reply.body.contains("$${") && !reply.body.to_ascii_lowercase().contains("x-pre-process"));
            let doc = xml(&reply);
            let condition = doc.at_path("section/context/extension/condition").unwrap();
            assert!(!condition.attr("expression").unwrap().contains(['(', '{', '"']));
            assert_eq!(condition.elements().count(), if pin.is_some() { 4 } else { 6 }, "{}", reply.body);
        }
    }
}

#[tokio::test]
async fn fsapi_skips_stale_voice_bridges_and_gone_servers() {
    let app = fsapi_app().servers(1).start().await;
    create_with_pin(&app, &app.client(), None, "room", "71234567").await;
    // An entry whose meeting expired, or whose meeting now holds another
    // number: the pin is unknown.
    app.seed_meeting("expired", "bbb-1", "mp", "555555555").await;
    app.expire_meeting("expired").await;
    app.seed_meeting("moved", "bbb-1", "mp", "222222222").await;
    app.seed_meeting("moved", "bbb-1", "mp", "223456789").await;
    let store = app.store();
    for pin in ["555555555", "222222222", "000"] {
        assert_eq!(store.find_meeting_by_voice_bridge(pin).await.unwrap(), None, "{pin}");
        assert_eq!(extension(&dial_pin(&app, pin, &[]).await).as_deref(), Some("reprompt_for_pin"), "{pin}");
    }
    let route = store.find_meeting_by_voice_bridge("223456789").await.unwrap().expect("the moved meeting");
    assert_eq!(route.meeting.id, MeetingId::from("moved"));
    // A meeting whose server is gone reprompts too.
    assert!(store.delete_server(&ServerId::from("bbb-1")).await.unwrap());
    assert_eq!(extension(&dial_pin(&app, "71234567", &[]).await).as_deref(), Some("reprompt_for_pin"));
}

#[tokio::test]
async fn fsapi_tenant_secrets_only_reach_their_tenant_meetings() {
    let app = fsapi_app().env("MULTITENANCY_ENABLED", "true").env("URL_HOST", "sl.test").start().await;
    for (id, name, secret) in
        [("11111111-1111-4111-8111-111111111111", "a", "sa"), ("22222222-2222-4222-8222-222222222222", "b", "sb")]
    {
        let tenant = Tenant { id: TenantId::from(id), name: name.into(), secrets: secret.into(), lrs: HashMap::new() };
        app.store().create_tenant(&tenant).await.unwrap();
    }
    create_with_pin(&app, &app.client().with_secret("sa"), Some("a.sl.test"), "room-a", "71111111").await;
    create_with_pin(&app, &app.client().with_secret("sb"), Some("b.sl.test"), "room-b", "72222222").await;

    let outcome = |reply: &Reply| match reply.status {
        401 => "denied".to_owned(),
        _ => match extension(reply).as_deref() {
            Some("bridge_to_bbb_server") => data_of(reply, "meeting_id="),
            Some(other) => other.to_owned(),
            None => "reject".to_owned(),
        },
    };
    let cases = [
        // A tenant's secret on its own host reaches its meetings only.
        ("a.sl.test", "sa", "71111111", "room-a"),
        ("a.sl.test", "sa", "711111112", "room-a"),
        ("a.sl.test", "sa", "72222222", "reprompt_for_pin"),
        ("a.sl.test", "sa", "722222221", "reprompt_for_pin"),
        ("b.sl.test", "sb", "72222222", "room-b"),
        ("b.sl.test", "sb", "71111111", "reprompt_for_pin"),
        ("b.sl.test:443", "sb", "72222222", "room-b"),
        // Never on another tenant's host, the bare host, or an unknown tenant.
        ("b.sl.test", "sa", "71111111", "denied"),
        ("sl.test", "sa", "71111111", "denied"),
        ("c.sl.test", "sa", "71111111", "denied"),
        ("a.sl.test", LB_SECRET, "71111111", "denied"),
        // FSAPI_PASSWORD reaches every meeting, on any host.
        ("sl.test", PASSWORD, "71111111", "room-a"),
        ("sl.test", PASSWORD, "72222222", "room-b"),
        ("a.sl.test", PASSWORD, "72222222", "room-b"),
    ];
    for (host, secret, pin, expected) in cases {
        let reply = dial(&app, Some(("fsapi", secret)), Some(host), &lookup(Some(pin), &[])).await;
        assert_eq!(outcome(&reply), expected, "{host} {secret} {pin}: {}", reply.body);
        if reply.status == 401 {
            assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"sl.test\""));
        }
    }
    // The user is always `fsapi`.
    let reply = dial(&app, Some(("a", "sa")), Some("a.sl.test"), &lookup(Some("71111111"), &[])).await;
    assert_eq!(reply.status, 401);
}

/// Dial-in numbers written by Ruby Scalelite, on its Redis layout.
mod redis_only {
    use scalelite_core::{MeetingId, ServerId};
    use scalelite_store::{MeetingStore as _, RedisStore};
    use scalelite_tests::seed::{SeedServer, seed_meeting, seed_server};
    use scalelite_tests::{NS, TestRedis};

    #[tokio::test]
    async fn voice_bridges_written_by_ruby_are_found_and_stale_entries_skipped() {
        let redis = TestRedis::start().await;
        seed_server(&redis, NS, &SeedServer::enabled("s1", "https://bbb-1.example.com/bigbluebutton/api", "sa")).await;
        seed_meeting(&redis, NS, "ruby", "s1", "mp", "123456789").await;
        let store = RedisStore::open(&redis.url(), NS).unwrap();
        let route = store.find_meeting_by_voice_bridge("123456789").await.unwrap().expect("Ruby's meeting");
        assert_eq!(route.meeting.id, MeetingId::from("ruby"));
        assert_eq!(route.meeting.server_id, ServerId::from("s1"));
        assert_eq!(route.server.expect("its server").url, "https://bbb-1.example.com/bigbluebutton/api");
        // An entry whose meeting expired, or whose meeting now holds another number.
        redis.cmd(&["HSET", "scalelite:voice_bridges", "555555555", "expired", "222222222", "ruby"]).await;
        assert_eq!(store.find_meeting_by_voice_bridge("555555555").await.unwrap(), None);
        assert_eq!(store.find_meeting_by_voice_bridge("222222222").await.unwrap(), None);
        assert_eq!(store.find_meeting_by_voice_bridge("000").await.unwrap(), None);
    }
}
