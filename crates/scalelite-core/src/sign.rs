//! Signed URLs for calls to a BigBlueButton server.

use crate::checksum::Algorithm;
use crate::ids::Secret;

/// Joins a server's stored API base URL and a call name: a `/` is appended
/// to the base when missing (`…/bigbluebutton/api` + `create`).
pub fn call_url(base: &str, call: &str) -> String {
    let mut url = String::with_capacity(base.len() + call.len() + 1);
    url.push_str(base);
    if !base.ends_with('/') {
        url.push('/');
    }
    url.push_str(call);
    url
}

/// The full signed URL of `call` with an already encoded `query`:
/// `base/call?query&checksum=…` (or `?checksum=…` without parameters).
pub fn signed_url(base: &str, call: &str, query: &str, secret: &Secret, alg: Algorithm) -> String {
    let checksum = alg.sign(call, query, secret);
    let mut url = call_url(base, call);
    url.push('?');
    if !query.is_empty() {
        url.push_str(query);
        url.push('&');
    }
    url.push_str("checksum=");
    url.push_str(&checksum);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let secret = Secret::new("s");
        let url = signed_url("https://bbb/bigbluebutton/api", "getMeetings", "", &secret, Algorithm::Sha1);
        assert_eq!(
            url,
            format!(
                "https://bbb/bigbluebutton/api/getMeetings?checksum={}",
                Algorithm::Sha1.sign("getMeetings", "", &secret)
            )
        );
        let url =
            signed_url("https://bbb/bigbluebutton/api/", "end", "meetingID=a&password", &secret, Algorithm::Sha256);
        assert!(url.starts_with("https://bbb/bigbluebutton/api/end?meetingID=a&password&checksum="));
        assert_eq!(call_url("http://x/api", ""), "http://x/api/");
    }
}
