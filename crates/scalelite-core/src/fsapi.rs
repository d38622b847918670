//! FreeSWITCH dial-in (`POST /fsapi`): the pure parts — HTTP Basic
//! credentials, caller-ID masking, and the four dialplan documents
//! FreeSWITCH's `mod_xml_curl` fetches.
//!
//! # Documents
//!
//! Rendered like Scalelite's builder views (2-space indentation, no XML
//! declaration): [`reject`], [`pin_prompt`], [`reprompt`] and [`bridge`].
//! The reprompt collects digits with the pattern `\d+`, like the prompt;
//! Scalelite's reprompt loses the backslash (`d+`), so FreeSWITCH refused
//! every re-entered pin.
//!
//! # Injection safety
//!
//! A dialplan document passes through several interpreters before a value
//! in it takes effect, and each must see nothing but data:
//!
//! 1. **The XML preprocessor.** `mod_xml_curl` loads the reply with
//!    `switch_xml_parse_file`, which runs the configuration preprocessor
//!    over the raw text, line by line, *before* XML parsing: it replaces
//!    `$${name}` with global variables (passwords live there) and acts on,
//!    or drops the line of, anything spelling `X-PRE-PROCESS` (any case).
//!    Values never hold `$` (rule 3), and [`guard_preprocessor`] writes the
//!    hyphens of an `X-PRE-PROCESS` spelled by a value as `&#45;`, which
//!    the XML parser turns back into `-` afterwards.
//! 2. **XML.** Every value is an attribute value, escaped by
//!    [`Markup`] (`&`, `<`, `>`, `"`, CR, LF).
//! 3. **Variable expansion.** FreeSWITCH expands `${var}`, `${api(args)}`
//!    (`${system(...)}` runs a shell command) and `$${var}` in application
//!    data — **twice** for `set` (once when the application runs, once
//!    more inside `set`), and again, recursively, whenever a variable
//!    holding such text is referenced later (on this gateway or on the BBB
//!    server that receives the caller-ID name). Scalelite's escaping rule
//!    (`\` → `\\`, `${` → `\${`) survives only one pass, so it is not used
//!    here. Instead, the values placed in `set` data (meeting id, caller-ID
//!    name) have every `$`, `\`, `"` and control character replaced by `_`
//!    ([`inert`]): with no `$` nothing can start an expansion, with no `\`
//!    no escape sequence can be formed, however many passes run; `"` and
//!    control characters could break the SIP `From` header the name ends up
//!    in. The pin is digits only ([`Pin`]; other pins get the reprompt) and
//!    the server host is a plain host name or IP literal ([`SipHost`]), so
//!    the `bridge` dial string holds no `$`, `\`, `{`, `[`, `,` or `|`.
//! 4. **Regex substitution.** When a condition's `expression` contains `(`,
//!    FreeSWITCH substitutes `$0`…`$9` in the actions' data with the
//!    captured destination number, before expansion — a caller-ID name
//!    `$0` would paste the unescaped destination number into `set` data.
//!    [`destination_expression`] therefore writes every byte of the
//!    destination number other than an ASCII letter or digit as `\xHH`, so
//!    the expression never holds `(`, `$` (besides the final anchor), `{`,
//!    `\\` or a quote, and the regex matches exactly the dialled string.
//!    (Scalelite uses Ruby's `Regexp.escape`, which keeps `(` as `\(`.)

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::Secret;
use crate::markup::Markup;
use crate::params::is_blank;

/// The only user name `/fsapi` accepts.
pub const USER: &str = "fsapi";

/// The HTTP Basic realm when `URL_HOST` is unset (Rails' default realm;
/// Scalelite fails with HTTP 500 there instead of asking for credentials).
pub const DEFAULT_REALM: &str = "Application";

/// The body of the 401 answer (Rails' text).
pub const ACCESS_DENIED: &str = "HTTP Basic: Access denied.\n";

/// The caller-ID name used when nothing may or can be shown.
pub const UNAVAILABLE: &str = "Unavailable";

/// Pins longer than this may be breakout-room pins: the parent's voice
/// bridge followed by one digit.
pub const BREAKOUT_MIN_LEN: usize = 5;

/// The `WWW-Authenticate` realm: `URL_HOST` without double quotes, else
/// [`DEFAULT_REALM`].
pub fn realm(url_host: Option<&str>) -> String {
    match url_host.map(|h| h.replace('"', "")) {
        Some(host) if !host.is_empty() => host,
        _ => DEFAULT_REALM.to_owned(),
    }
}

/// Credentials from an `Authorization: Basic ...` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (bytes before the first `:`).
    pub user: Vec<u8>,
    /// The password (everything after the first `:`). Never log it.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"***")
            .finish()
    }
}

impl Credentials {
    /// Parses an `Authorization` header value: scheme `Basic` (any case),
    /// then base64 of `user:password`. Decoding is lenient like Ruby's
    /// `Base64.decode64` (characters outside the alphabet are skipped,
    /// decoding stops at `=`). `None` for other schemes or without `:`.
    pub fn parse(header: &[u8]) -> Option<Self> {
        let header = std::str::from_utf8(header).ok()?.trim();
        let (scheme, param) = header.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = decode_base64(param.trim());
        let colon = decoded.iter().position(|&b| b == b':')?;
        Some(Self { user: decoded[..colon].to_vec(), password: decoded[colon + 1..].to_vec() })
    }

    /// Whether the user is [`USER`] and the password equals `expected`
    /// (compared in constant time, over SHA-256 digests so that not even
    /// the length leaks).
    pub fn matches(&self, expected: &Secret) -> bool {
        let given = Sha256::digest(&self.password);
        let wanted = Sha256::digest(expected.expose().as_bytes());
        let password_ok: bool = given.as_slice().ct_eq(wanted.as_slice()).into();
        password_ok & (self.user == USER.as_bytes())
    }
}

fn decode_base64(input: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in input.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The caller-ID name to show in the meeting, from the request's
/// `Caller-Caller-ID-Name`, `Caller-Privacy-Hide-Name` and
/// `Caller-Privacy-Hide-Number` (a flag is set only when exactly `true`):
///
/// * a name made of ASCII digits is a phone number: its last four digits
///   become `X` (all of them for four digits or fewer), or nothing is shown
///   when the number is hidden;
/// * any other name is shown unless the name is hidden;
/// * a blank result is [`UNAVAILABLE`].
///
/// The result is raw text: [`bridge`] makes it inert.
pub fn caller_id(name: Option<&str>, hide_name: Option<&str>, hide_number: Option<&str>) -> String {
    let name = name.unwrap_or("");
    let shown = if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        (hide_number != Some("true")).then(|| {
            let kept = name.len().saturating_sub(4);
            format!("{}{}", &name[..kept], "X".repeat(name.len() - kept))
        })
    } else {
        (hide_name != Some("true")).then(|| name.to_owned())
    };
    match shown {
        Some(shown) if !is_blank(&shown) => shown,
        _ => UNAVAILABLE.to_owned(),
    }
}

/// A pin as FreeSWITCH collected it: one or more ASCII digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// The pin, if `raw` is made of ASCII digits only.
    pub fn parse(raw: &str) -> Option<Self> {
        (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit())).then(|| Self(raw.to_owned()))
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parent meeting's voice bridge if this may be a breakout-room pin
    /// (longer than [`BREAKOUT_MIN_LEN`]): the pin without its last digit.
    pub fn breakout_parent(&self) -> Option<&str> {
        (self.0.len() > BREAKOUT_MIN_LEN).then(|| &self.0[..self.0.len() - 1])
    }
}

/// The host of a BBB server's URL as it goes into a SIP dial string: a host
/// name (letters, digits, `.`, `-`, `_`) or a bracketed IPv6 literal, like
/// Ruby's `URI#host` (no port, no user info).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipHost(String);

impl SipHost {
    /// The host of `url`, `None` when it has none or holds other characters.
    pub fn from_url(url: &str) -> Option<Self> {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host = if host_port.starts_with('[') {
            let end = host_port.find(']')?;
            let literal = &host_port[..=end];
            literal[1..end].bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.').then_some(literal)?
        } else {
            let host = host_port.split(':').next().unwrap_or("");
            host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')).then_some(host)?
        };
        (!host.is_empty() && host != "[]").then(|| Self(host.to_owned()))
    }

    /// The host.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Makes `value` inert in FreeSWITCH application data: `$`, `\`, `"` and
/// control characters become `_` (see the module documentation).
pub fn inert(value: &str) -> String {
    value.chars().map(|c| if matches!(c, '$' | '\\' | '"') || c.is_control() { '_' } else { c }).collect()
}

/// The condition's `expression` for a destination number: `^`, the number
/// with every byte other than an ASCII letter or digit written as `\xHH`,
/// `$` (see the module documentation).
pub fn destination_expression(destination: &str) -> String {
    let mut out = String::with_capacity(destination.len() * 2 + 2);
    out.push('^');
    for byte in destination.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\x{byte:02X}"));
        }
    }
    out.push('$');
    out
}

/// Writes the hyphens of every `X-PRE-PROCESS` (ASCII case-insensitive) in
/// a rendered document as `&#45;`, so that FreeSWITCH's preprocessor does
/// not act on it. The documents' fixed text never spells it; only a value
/// inside an attribute can, where the XML parser restores the `-`.
pub fn guard_preprocessor(document: String) -> String {
    const MARKER: &[u8] = b"x-pre-process";
    let bytes = document.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + MARKER.len() <= bytes.len() {
        if bytes[i..i + MARKER.len()].eq_ignore_ascii_case(MARKER) {
            starts.push(i);
            i += MARKER.len();
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return document;
    }
    let mut out = String::with_capacity(document.len() + starts.len() * 8);
    let mut last = 0;
    for start in starts {
        out.push_str(&document[last..start]);
        out.push_str(&document[start..start + MARKER.len()].replace('-', "&#45;"));
        last = start + MARKER.len();
    }
    out.push_str(&document[last..]);
    out
}

/// Settings of the pin prompts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptSettings {
    /// `VOICE_BRIDGE_MIN`: fewest digits FreeSWITCH accepts.
    pub min_digits: usize,
    /// `VOICE_BRIDGE_MAX`: most digits FreeSWITCH collects.
    pub max_digits: usize,
    /// `FSAPI_MAX_DURATION` in seconds; `0` adds no `sched_hangup`.
    pub max_duration_secs: u64,
}

impl PromptSettings {
    fn collect_digits(&self) -> String {
        format!(
            "{} {} 3 7000 # conference/conf-enter_conf_pin.wav conference/conf-bad-pin.wav pin \\d+",
            self.min_digits, self.max_digits
        )
    }
}

/// What [`bridge`] needs.
#[derive(Clone, Copy, Debug)]
pub struct BridgeTarget<'a> {
    /// `Caller-Destination-Number` as received.
    pub destination: &'a str,
    /// The meeting's id.
    pub meeting_id: &'a str,
    /// The caller-ID name from [`caller_id`].
    pub caller_id: &'a str,
    /// The pin as dialled (for a breakout room, with its extra digit).
    pub pin: &'a Pin,
    /// The host of the meeting's server.
    pub host: &'a SipHost,
}

const DOCUMENT: [(&str, &str); 1] = [("type", "freeswitch/xml")];

/// The answer for anything but a dialplan lookup with a destination number.
pub fn reject() -> String {
    let mut xml = Markup::new();
    xml.open_with_attrs("document", &DOCUMENT).open_with_attrs("section", &[("name", "result")]);
    xml.empty_with_attrs("result", &[("status", "not found")]);
    xml.close("section").close("document");
    xml.finish()
}

/// The first answer of a call: greet, then collect the pin.
pub fn pin_prompt(destination: &str, settings: &PromptSettings) -> String {
    dialplan("Match DID and Pin for Conference", "match_did_and_prompt_for_pin", destination, |xml| {
        action(xml, "answer", None);
        if settings.max_duration_secs > 0 {
            action(xml, "sched_hangup", Some(&format!("+{} normal_clearing", settings.max_duration_secs)));
        }
        action(xml, "sleep", Some("500"));
        action(xml, "playback", Some("ivr/ivr-welcome.wav"));
        action(xml, "sleep", Some("200"));
        action(xml, "play_and_get_digits", Some(&settings.collect_digits()));
        action(xml, "transfer", Some("${pin} XML public"));
    })
}

/// The answer to a pin that matches no (visible) meeting: collect again.
pub fn reprompt(destination: &str, settings: &PromptSettings) -> String {
    dialplan("Reprompt Pin for Conference", "reprompt_for_pin", destination, |xml| {
        action(xml, "playback", Some("conference/conf-bad-pin.wav"));
        action(xml, "sleep", Some("500"));
        action(xml, "play_and_get_digits", Some(&settings.collect_digits()));
        action(xml, "transfer", Some("${pin} XML public"));
    })
}

/// The answer to a known pin: name the call and bridge it to the meeting's
/// server.
pub fn bridge(target: &BridgeTarget<'_>) -> String {
    dialplan("Bridge Call to BBB Server", "bridge_to_bbb_server", target.destination, |xml| {
        action(xml, "set", Some(&format!("meeting_id={}", inert(target.meeting_id))));
        action(xml, "set", Some(&format!("effective_caller_id_name={}", inert(target.caller_id))));
        action(xml, "bridge", Some(&format!("sofia/external/{}@{}", target.pin.as_str(), target.host.as_str())));
    })
}

fn dialplan(description: &str, extension: &str, destination: &str, actions: impl FnOnce(&mut Markup)) -> String {
    let expression = destination_expression(destination);
    let mut xml = Markup::new();
    xml.open_with_attrs("document", &DOCUMENT)
        .open_with_attrs("section", &[("name", "dialplan"), ("description", description)])
        .open_with_attrs("context", &[("name", "public")])
        .open_with_attrs("extension", &[("name", extension)])
        .open_with_attrs("condition", &[("field", "destination_number"), ("expression", &expression)]);
    actions(&mut xml);
    xml.close("condition").close("extension").close("context").close("section").close("document");
    let document = guard_preprocessor(xml.finish());
    debug_assert!(!document.contains("$${"), "a dialplan document must never hold $${{");
    document
}

fn action(xml: &mut Markup, application: &str, data: Option<&str>) {
    match data {
        Some(data) => xml.empty_with_attrs("action", &[("application", application), ("data", data)]),
        None => xml.empty_with_attrs("action", &[("application", application)]),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: PromptSettings = PromptSettings { min_digits: 5, max_digits: 9, max_duration_secs: 0 };

    fn basic(raw: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in raw.as_bytes().chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        format!("Basic {out}")
    }

    #[test]
    fn credentials() {
        let secret = Secret::new("pa:ss");
        let parsed = Credentials::parse(basic("fsapi:pa:ss").as_bytes()).unwrap();
        assert_eq!(parsed.user, b"fsapi");
        assert_eq!(parsed.password, b"pa:ss");
        assert!(parsed.matches(&secret));
        assert!(!format!("{parsed:?}").contains("pa:ss"));
        // Scheme case, missing padding and stray characters are tolerated.
        let lenient = basic("fsapi:pa:ss").replace("Basic", "bAsIc").trim_end_matches('=').to_owned() + "\n";
        assert!(Credentials::parse(lenient.as_bytes()).unwrap().matches(&secret));
        assert!(!Credentials::parse(basic("fsapi:pa:sx").as_bytes()).unwrap().matches(&secret));
        assert!(!Credentials::parse(basic("fsapi:pa").as_bytes()).unwrap().matches(&secret));
        assert!(!Credentials::parse(basic("admin:pa:ss").as_bytes()).unwrap().matches(&secret));
        assert!(Credentials::parse(basic("fsapi:").as_bytes()).unwrap().matches(&Secret::new("")));
        assert_eq!(Credentials::parse(basic("nocolon").as_bytes()), None);
        assert_eq!(Credentials::parse(b"Bearer abc"), None);
        assert_eq!(Credentials::parse(b"Basic"), None);
        assert_eq!(Credentials::parse(b"\xff\xfe"), None);
    }

    #[test]
    fn realms() {
        assert_eq!(realm(Some("sl.example.com")), "sl.example.com");
        assert_eq!(realm(Some("a\"b")), "ab");
        assert_eq!(realm(None), DEFAULT_REALM);
        assert_eq!(realm(Some("\"")), DEFAULT_REALM);
    }

    #[test]
    fn caller_id_masking_and_privacy() {
        assert_eq!(caller_id(Some("6135551234"), None, None), "613555XXXX");
        assert_eq!(caller_id(Some("12345"), None, Some("false")), "1XXXX");
        assert_eq!(caller_id(Some("1234"), None, None), "XXXX");
        assert_eq!(caller_id(Some("12"), None, None), "XX");
        assert_eq!(caller_id(Some("6135551234"), None, Some("true")), UNAVAILABLE);
        // Only exactly "true" hides.
        assert_eq!(caller_id(Some("6135551234"), None, Some("TRUE")), "613555XXXX");
        // A hidden name does not hide a number, and the reverse.
        assert_eq!(caller_id(Some("6135551234"), Some("true"), None), "613555XXXX");
        assert_eq!(caller_id(Some("Alice"), None, Some("true")), "Alice");
        assert_eq!(caller_id(Some("Alice"), Some("true"), None), UNAVAILABLE);
        assert_eq!(caller_id(Some("+16135551234"), None, None), "+16135551234");
        assert_eq!(caller_id(Some("   "), None, None), UNAVAILABLE);
        assert_eq!(caller_id(Some(""), None, None), UNAVAILABLE);
        assert_eq!(caller_id(None, None, None), UNAVAILABLE);
        // Non-ASCII digits are not a number.
        assert_eq!(caller_id(Some("١٢٣٤٥"), None, None), "١٢٣٤٥");
    }

    #[test]
    fn pins() {
        assert_eq!(Pin::parse("123456789").unwrap().breakout_parent(), Some("12345678"));
        assert_eq!(Pin::parse("12345").unwrap().breakout_parent(), None);
        assert_eq!(Pin::parse("123456").unwrap().breakout_parent(), Some("12345"));
        for bad in ["", "12a", "1 2", "${x}", "１２３", "12#", "-1"] {
            assert_eq!(Pin::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sip_hosts() {
        let host = |url: &str| SipHost::from_url(url).map(|h| h.as_str().to_owned());
        assert_eq!(host("https://bbb1.example.com/bigbluebutton/api/").as_deref(), Some("bbb1.example.com"));
        assert_eq!(host("http://127.0.0.1:8080/bigbluebutton/api").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("https://u:p@bbb-2.example.com:443").as_deref(), Some("bbb-2.example.com"));
        assert_eq!(host("https://[2001:db8::1]:8443/api").as_deref(), Some("[2001:db8::1]"));
        assert_eq!(host("https://bbb.example.com?x=1").as_deref(), Some("bbb.example.com"));
        for bad in ["https:///api", "https://[]/", "https://a${x}.com/", "https://a,b.com/", "https://[::1${x}]/"] {
            assert_eq!(host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn inert_values() {
        assert_eq!(inert("${system(touch /tmp/x)}"), "_{system(touch /tmp/x)}");
        assert_eq!(inert("$${x}"), "__{x}");
        assert_eq!(inert("\\${x}"), "__{x}");
        assert_eq!(inert("a\"b\nc\u{7f}d\u{85}"), "a_b_c_d_");
        assert_eq!(inert("Zoë O'Brien-Smith {x}"), "Zoë O'Brien-Smith {x}");
    }

    #[test]
    fn destination_expressions() {
        assert_eq!(destination_expression("5551234"), "^5551234$");
        assert_eq!(destination_expression("+1 (555) 12.34"), "^\\x2B1\\x20\\x28555\\x29\\x2012\\x2E34$");
        assert_eq!(destination_expression("${x}"), "^\\x24\\x7Bx\\x7D$");
        assert_eq!(destination_expression("é"), "^\\xC3\\xA9$");
        let hostile = destination_expression("\"/><action application=\"system\" data=\"x\" (a|b)*$0\\");
        assert!(!hostile.contains(['(', '{', '"', '<', '>', '\'', '|']), "{hostile}");
        assert_eq!(hostile.matches('$').count(), 1);
    }

    #[test]
    fn preprocessor_markers_are_broken_up() {
        let doc = "<a data=\"x-pre-process X-Pre-Process\"/>\n<b/>".to_owned();
        assert_eq!(guard_preprocessor(doc), "<a data=\"x&#45;pre&#45;process X&#45;Pre&#45;Process\"/>\n<b/>");
        assert_eq!(guard_preprocessor("x-pre-proces".into()), "x-pre-proces");
    }

    #[test]
    fn reject_document() {
        insta::assert_snapshot!(reject(), @r#"
        <document type="freeswitch/xml">
          <section name="result">
            <result status="not found"/>
          </section>
        </document>
        "#);
    }

    #[test]
    fn prompt_documents() {
        insta::assert_snapshot!(pin_prompt("5551234", &SETTINGS), @r#"
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
        let limited = PromptSettings { min_digits: 4, max_digits: 10, max_duration_secs: 7200 };
        let doc = pin_prompt("5551234", &limited);
        let answer = doc.find(r#"<action application="answer"/>"#).unwrap();
        let hangup = doc.find(r#"<action application="sched_hangup" data="+7200 normal_clearing"/>"#).unwrap();
        let sleep = doc.find(r#"<action application="sleep""#).unwrap();
        assert!(answer < hangup && hangup < sleep, "{doc}");
        assert!(doc.contains(r#"data="4 10 3 7000 #"#));
        insta::assert_snapshot!(reprompt("5551234", &SETTINGS), @r#"
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
    }

    #[test]
    fn bridge_document() {
        let pin = Pin::parse("1234567890").unwrap();
        let host = SipHost::from_url("https://bbb1.example.com/bigbluebutton/api").unwrap();
        let target = BridgeTarget {
            destination: "+15551234",
            meeting_id: "room-1",
            caller_id: "613555XXXX",
            pin: &pin,
            host: &host,
        };
        insta::assert_snapshot!(bridge(&target), @r#"
        <document type="freeswitch/xml">
          <section name="dialplan" description="Bridge Call to BBB Server">
            <context name="public">
              <extension name="bridge_to_bbb_server">
                <condition field="destination_number" expression="^\x2B15551234$">
                  <action application="set" data="meeting_id=room-1"/>
                  <action application="set" data="effective_caller_id_name=613555XXXX"/>
                  <action application="bridge" data="sofia/external/1234567890@bbb1.example.com"/>
                </condition>
              </extension>
            </context>
          </section>
        </document>
        "#);
    }

    #[test]
    fn hostile_values_come_out_inert() {
        let pin = Pin::parse("123456789").unwrap();
        let host = SipHost::from_url("https://x-pre-process.example.com/").unwrap();
        let hostile = [
            "${system(touch /tmp/x)}",
            "$${default_password}",
            "\\${x}",
            "\\\\${x}",
            "\"/><action application=\"system\" data=\"touch /tmp/x\"/><x a=\"",
            "<X-PRE-PROCESS cmd=\"exec\" data=\"touch /tmp/x\"/>",
            "$0 $1 ${1}",
            "a\r\n<action application=\"system\"/>",
            "%[x=y]${x}",
        ];
        for value in hostile {
            let target =
                BridgeTarget { destination: value, meeting_id: value, caller_id: value, pin: &pin, host: &host };
            let doc = bridge(&target);
            let parsed = crate::xml::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{value:?}: {e}\n{doc}"));
            // Raw text: nothing the preprocessor acts on.
            assert_eq!(doc.matches('$').count(), 1, "only the expression's anchor: {doc}");
            assert!(!doc.to_ascii_lowercase().contains("x-pre-process"), "{doc}");
            // Parsed: the same structure, whatever the value.
            let condition = parsed.at_path("section/context/extension/condition").expect("condition");
            let actions: Vec<_> = condition.elements().collect();
            assert_eq!(actions.len(), 3, "{doc}");
            for action in &actions {
                let data = action.attr("data").unwrap();
                assert!(!data.contains(['$', '\\', '"', '\n', '\r']), "{value:?} gave {data:?}");
                assert!(action.attr("application").is_some_and(|a| ["set", "bridge"].contains(&a)));
            }
            let expression = condition.attr("expression").unwrap();
            assert!(!expression.contains(['(', '{', '"']), "{expression}");
            assert_eq!(
                actions[2].attr("data"),
                Some("sofia/external/123456789@x-pre-process.example.com"),
                "the parsed document holds the real host"
            );
        }
    }
}
