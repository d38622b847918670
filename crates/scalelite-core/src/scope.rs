//! Meeting ids scoped per tenant (`MULTITENANCY_MEETING_ID_SCOPE=tenant`).
//!
//! Scalelite keeps one `meeting:<id>` record per meeting id, whatever the
//! tenant, so a second tenant's create of an id in use is refused. With
//! scoping on, the balancer works with `<tenant id>:<meetingID>` instead:
//! that is the record's key and the `meetingID` every BBB server sees, and
//! what BBB echoes is mapped back before a front-end sees it. Tenant ids
//! hold no `:` (UUIDs), so the scoped id names its tenant and the
//! front-end's id unambiguously, whatever the front-end sends.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::xml::{Element, Node};
use crate::{BbbError, Params, jwt};

/// The longest meeting id bbb-web accepts, in UTF-16 code units (Java's
/// `String.length()`, which its `@Size` checks).
pub const BBB_MAX_MEETING_ID_LEN: usize = 256;
/// The shortest meeting id bbb-web accepts.
pub const BBB_MIN_MEETING_ID_LEN: usize = 2;

/// `MULTITENANCY_MEETING_ID_SCOPE`: whether meeting ids are shared by every
/// tenant (Scalelite's layout) or scoped per tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MeetingIdScope {
    /// One meeting per id, as in Scalelite (the default).
    #[default]
    None,
    /// `<tenant id>:<meetingID>`: each tenant has its own ids.
    Tenant,
}

impl MeetingIdScope {
    /// `none` or `tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Tenant => "tenant",
        }
    }
}

impl fmt::Display for MeetingIdScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MeetingIdScope {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "tenant" => Ok(Self::Tenant),
            _ => Err(format!("{raw:?} is not a meeting id scope: expected none or tenant")),
        }
    }
}

/// The id the balancer and BBB use for the front-end's `id` of `tenant`.
pub fn scoped(tenant: &str, id: &str) -> String {
    let mut out = String::with_capacity(tenant.len() + 1 + id.len());
    out.push_str(tenant);
    out.push(':');
    out.push_str(id);
    out
}

/// The front-end's id inside a scoped id of `tenant`; `None` when `id` is
/// not one of that tenant's scoped ids (a meeting made before scoping was
/// switched on, a breakout room BBB named itself).
pub fn unscoped<'a>(tenant: &str, id: &'a str) -> Option<&'a str> {
    id.strip_prefix(tenant)?.strip_prefix(':')
}

/// `id` as a front-end of `tenant` should see it: unscoped when it is one
/// of the tenant's scoped ids, else unchanged.
pub fn for_front_end<'a>(tenant: &str, id: &'a str) -> &'a str {
    unscoped(tenant, id).unwrap_or(id)
}

/// Checks that the scoped form of `id` fits bbb-web's limits, so that no
/// record is made for a meeting BBB would refuse. The refusal is bbb-web's
/// `sizeError`, naming the bounds the front-end's own id must keep.
pub fn check_length(tenant: &str, id: &str) -> Result<(), BbbError> {
    let prefix = tenant.encode_utf16().count() + 1;
    let max = BBB_MAX_MEETING_ID_LEN.saturating_sub(prefix);
    let len = id.encode_utf16().count();
    if (BBB_MIN_MEETING_ID_LEN..=max).contains(&len) {
        return Ok(());
    }
    Err(BbbError::Invalid {
        key: "sizeError",
        message: Cow::Owned(format!("Meeting ID must be between {BBB_MIN_MEETING_ID_LEN} and {max} characters")),
    })
}

/// The path of the balancer's meeting-ended relay: with scoping on, the
/// create sends BBB `<balancer origin>/bigbluebutton/api/meeting_ended?token=…`
/// as each `meta_endCallbackUrl`, the token naming the scoped id and the
/// front-end's URL ([`jwt::end_callback`]).
pub const END_CALLBACK_RELAY_PATH: &str = "/bigbluebutton/api/meeting_ended";

/// The metadata key BBB lists a meeting's `meta_endCallbackUrl` under
/// (bbb-web lower-cases metadata keys).
pub const END_CALLBACK_METADATA_KEY: &str = "endcallbackurl";

/// The front-end's own end callback URL behind `value`, a relay URL made
/// for the meeting BBB knows as `meeting_id` (a scoped id); `None` for any
/// other value.
pub fn front_end_end_callback(value: &str, meeting_id: &str) -> Option<String> {
    let (_, rest) = value.split_once(END_CALLBACK_RELAY_PATH)?;
    let query = rest.strip_prefix('?')?;
    jwt::end_callback_url_unverified(Params::parse(query).get("token")?, meeting_id)
}

/// Shows the front-end its own end callback URL in the `metadata` child of
/// `meeting` (a getMeetingInfo reply or a getMeetings `meeting` element),
/// whose id BBB knows as `meeting_id`. Returns whether anything changed.
pub fn show_front_end_metadata(meeting: &mut Element, meeting_id: &str) -> bool {
    let Some(metadata) = meeting.child_mut("metadata") else { return false };
    let mut changed = false;
    for node in &mut metadata.children {
        let Node::Element(entry) = node else { continue };
        if !entry.name.eq_ignore_ascii_case(END_CALLBACK_METADATA_KEY) {
            continue;
        }
        if let Some(url) = front_end_end_callback(&entry.text(), meeting_id) {
            entry.children = vec![Node::Text(url)];
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "5f1c4d0e-8a2b-4c6d-9e0f-112233445566";

    #[test]
    fn scoping_round_trips_whatever_the_front_end_sends() {
        for id in ["room", "a:b", &format!("{T}:x"), ":", "ü 1"] {
            let scoped = scoped(T, id);
            assert_eq!(unscoped(T, &scoped), Some(id), "{id}");
            assert_eq!(for_front_end(T, &scoped), id);
        }
        assert_eq!(unscoped(T, "room"), None);
        assert_eq!(unscoped(T, &format!("{T}x")), None);
        assert_eq!(for_front_end("other", &scoped(T, "room")), scoped(T, "room"));
    }

    #[test]
    fn lengths_are_bbb_webs_after_the_prefix() {
        let max = 256 - T.len() - 1;
        assert!(check_length(T, &"a".repeat(max)).is_ok());
        assert!(check_length(T, "ab").is_ok());
        for bad in ["a".repeat(max + 1), "a".to_owned()] {
            let error = check_length(T, &bad).unwrap_err();
            assert_eq!(error.message_key(), "sizeError");
            assert_eq!(error.message(), format!("Meeting ID must be between 2 and {max} characters"));
        }
        // Counted as Java counts: UTF-16 code units.
        assert!(check_length(T, &"\u{1F600}".repeat(max / 2)).is_ok());
        assert!(check_length(T, &"\u{1F600}".repeat(max / 2 + 1)).is_err());
    }

    #[test]
    fn the_front_end_sees_its_own_end_callback_url() {
        let scoped_id = scoped(T, "room");
        let token = jwt::end_callback(&scoped_id, "https://fe.example/ended?a=1&b=2", &crate::Secret::from("s"));
        let relay = format!("https://t.sl.test{END_CALLBACK_RELAY_PATH}?token={token}");
        let shown = front_end_end_callback(&relay, &scoped_id);
        assert_eq!(shown.as_deref(), Some("https://fe.example/ended?a=1&b=2"));
        // Another meeting's token, another path or no token: left alone.
        assert_eq!(front_end_end_callback(&relay, &scoped(T, "other")), None);
        assert_eq!(front_end_end_callback(&relay.replace("meeting_ended", "meeting_endedx"), &scoped_id), None);
        assert_eq!(
            front_end_end_callback(&format!("https://t.sl.test{END_CALLBACK_RELAY_PATH}?x=1"), &scoped_id),
            None
        );
        assert_eq!(front_end_end_callback("https://fe.example/ended", &scoped_id), None);

        let xml = format!(
            "<meeting><meetingID>{scoped_id}</meetingID><metadata><tenant-id>{T}</tenant-id>\
             <endcallbackurl>{}</endcallbackurl></metadata></meeting>",
            relay.replace('&', "&amp;")
        );
        let mut meeting = crate::xml::parse(xml.as_bytes()).unwrap();
        assert!(!show_front_end_metadata(&mut meeting.clone(), &scoped(T, "other")));
        assert!(show_front_end_metadata(&mut meeting, &scoped_id));
        assert_eq!(meeting.text_at("metadata/endcallbackurl").as_deref(), Some("https://fe.example/ended?a=1&b=2"));
        assert_eq!(meeting.text_at("metadata/tenant-id").as_deref(), Some(T));
        assert!(!show_front_end_metadata(&mut meeting, &scoped_id), "nothing left to map");
    }

    #[test]
    fn the_switch_reads_none_and_tenant() {
        assert_eq!("TENANT".parse::<MeetingIdScope>(), Ok(MeetingIdScope::Tenant));
        assert_eq!(" none ".parse::<MeetingIdScope>(), Ok(MeetingIdScope::None));
        assert!("global".parse::<MeetingIdScope>().is_err());
    }
}
