//! The JSON Web Tokens Scalelite uses: protected-recording cookies (HS256
//! keyed with `SECRET_KEY_BASE`), recording-ready callbacks (HS256 or
//! HS512 keyed with a front-end secret) and analytics callbacks (HS512:
//! from BBB keyed with a server secret, to the front-end keyed with a
//! front-end secret), and the balancer's own meeting-ended relay tokens
//! (HS256 keyed with a tenant secret).

use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::checksum::{Algorithm, AlgorithmSet};
use crate::ids::Secret;

#[derive(Debug, Serialize, Deserialize)]
struct CookieClaims {
    sub: String,
    exp: u64,
}

/// The cookie token giving access to `/<format>/<record_id>` until `exp`
/// (epoch seconds).
pub fn playback_cookie(resource_path: &str, exp: u64, key: &Secret) -> String {
    let claims = CookieClaims { sub: resource_path.to_owned(), exp };
    jsonwebtoken::encode(&Header::new(JwtAlgorithm::HS256), &claims, &EncodingKey::from_secret(key.expose().as_bytes()))
        .unwrap_or_default()
}

/// Whether `token` is a valid, unexpired HS256 cookie token for exactly
/// `resource_path` (a cookie minted for another recording never matches).
pub fn verify_playback_cookie(token: &str, resource_path: &str, key: &Secret) -> bool {
    let mut validation = Validation::new(JwtAlgorithm::HS256);
    validation.set_required_spec_claims(&["sub", "exp"]);
    validation.sub = Some(resource_path.to_owned());
    validation.leeway = 0;
    jsonwebtoken::decode::<CookieClaims>(token, &DecodingKey::from_secret(key.expose().as_bytes()), &validation)
        .is_ok_and(|data| data.claims.sub == resource_path)
}

#[derive(Debug, Serialize)]
struct ReadyClaims<'a> {
    meeting_id: &'a str,
    record_id: &'a str,
}

/// The JWT algorithm of recording-ready callbacks: HS256 when SHA256 is an
/// accepted checksum algorithm, else HS512 when SHA512 is, else HS256.
pub fn callback_algorithm(algorithms: AlgorithmSet) -> JwtAlgorithm {
    if algorithms.contains(Algorithm::Sha256) {
        JwtAlgorithm::HS256
    } else if algorithms.contains(Algorithm::Sha512) {
        JwtAlgorithm::HS512
    } else {
        JwtAlgorithm::HS256
    }
}

/// `signed_parameters` of a recording-ready callback: `{"meeting_id",
/// "record_id"}` without expiry, signed with `secret`.
pub fn recording_ready(meeting_id: &str, record_id: &str, secret: &Secret, algorithm: JwtAlgorithm) -> String {
    let claims = ReadyClaims { meeting_id, record_id };
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct ExpiryClaims {
    exp: u64,
}

/// The bearer token of an analytics callback relayed to a front-end:
/// HS512, header `typ: JWT`, payload `{"exp": exp}` (Scalelite: now + 24 h).
pub fn analytics_callback(exp: u64, secret: &Secret) -> String {
    let header = Header { typ: Some("JWT".into()), ..Header::new(JwtAlgorithm::HS512) };
    jsonwebtoken::encode(&header, &ExpiryClaims { exp }, &EncodingKey::from_secret(secret.expose().as_bytes()))
        .unwrap_or_default()
}

/// Whether `token` is an HS512 token signed with one of `secrets`, as BBB
/// signs its analytics callbacks. Like Ruby's `JWT.decode`: no claim is
/// required, but an `exp` or `nbf` present must hold (no leeway).
pub fn verify_hs512<'a>(token: &str, secrets: impl IntoIterator<Item = &'a Secret>) -> bool {
    let mut validation = Validation::new(JwtAlgorithm::HS512);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.leeway = 0;
    secrets.into_iter().any(|secret| {
        jsonwebtoken::decode::<serde_json::Value>(
            token,
            &DecodingKey::from_secret(secret.expose().as_bytes()),
            &validation,
        )
        .is_ok()
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct EndCallbackClaims {
    meeting_id: String,
    url: String,
}

/// The token of the balancer's meeting-ended relay
/// (`…/bigbluebutton/api/meeting_ended?token=…`): the front-end's
/// `meta_endCallbackUrl` for the meeting BBB knows as `meeting_id`, HS256
/// with a tenant secret, without expiry (BBB calls it when the meeting
/// ends, however long it ran).
pub fn end_callback(meeting_id: &str, url: &str, secret: &Secret) -> String {
    let claims = EndCallbackClaims { meeting_id: meeting_id.to_owned(), url: url.to_owned() };
    jsonwebtoken::encode(
        &Header::new(JwtAlgorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .unwrap_or_default()
}

/// The front-end URL of an [`end_callback`] token signed with one of
/// `secrets` for exactly `meeting_id`; `None` for any other token.
pub fn verify_end_callback<'a>(
    token: &str,
    meeting_id: &str,
    secrets: impl IntoIterator<Item = &'a Secret>,
) -> Option<String> {
    let mut validation = Validation::new(JwtAlgorithm::HS256);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    secrets.into_iter().find_map(|secret| {
        jsonwebtoken::decode::<EndCallbackClaims>(
            token,
            &DecodingKey::from_secret(secret.expose().as_bytes()),
            &validation,
        )
        .ok()
        .filter(|data| data.claims.meeting_id == meeting_id)
        .map(|data| data.claims.url)
    })
}

/// The front-end URL an [`end_callback`] token made for exactly
/// `meeting_id` names, read without checking its signature: only to show a
/// front-end the URL it sent in place of the relay URL carrying the token.
/// That shows nothing the token does not already show to whoever sees it
/// (its payload is plain base64 JSON) and grants nothing: a relay is only
/// made on a verified token ([`verify_end_callback`]).
pub fn end_callback_url_unverified(token: &str, meeting_id: &str) -> Option<String> {
    jsonwebtoken::dangerous::insecure_decode_claims::<EndCallbackClaims>(token)
        .ok()
        .filter(|claims| claims.meeting_id == meeting_id)
        .map(|claims| claims.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_callback_tokens_name_one_meeting_and_one_url() {
        let (secret, other) = (Secret::from("s1"), Secret::from("s2"));
        let token = end_callback("t:room", "https://fe.example/ended?x=1", &secret);
        let url = verify_end_callback(&token, "t:room", [&other, &secret]);
        assert_eq!(url.as_deref(), Some("https://fe.example/ended?x=1"));
        assert_eq!(verify_end_callback(&token, "t:other", [&secret]), None);
        assert_eq!(verify_end_callback(&token, "t:room", [&other]), None);
        assert_eq!(verify_end_callback("garbage", "t:room", [&secret]), None);
        // Read for display whatever the key, for that meeting only.
        assert_eq!(end_callback_url_unverified(&token, "t:room").as_deref(), Some("https://fe.example/ended?x=1"));
        assert_eq!(end_callback_url_unverified(&token, "t:other"), None);
        for garbage in ["", "a.b", "a.b.c", "..", "\u{0}.%.\u{0}"] {
            assert_eq!(end_callback_url_unverified(garbage, "t:room"), None, "{garbage:?}");
        }
    }

    #[test]
    fn cookies_open_only_their_recording_until_they_expire() {
        let key = Secret::new("secret-key-base");
        let far = 4_000_000_000;
        let token = playback_cookie("/presentation/abc-1", far, &key);
        assert!(verify_playback_cookie(&token, "/presentation/abc-1", &key));
        assert!(!verify_playback_cookie(&token, "/presentation/abc-2", &key));
        assert!(!verify_playback_cookie(&token, "/video/abc-1", &key));
        assert!(!verify_playback_cookie(&token, "/presentation/abc-1", &Secret::new("other")));
        let expired = playback_cookie("/presentation/abc-1", 1_000, &key);
        assert!(!verify_playback_cookie(&expired, "/presentation/abc-1", &key));
        assert!(!verify_playback_cookie("garbage", "/presentation/abc-1", &key));
    }

    #[test]
    fn callback_tokens() {
        assert_eq!(callback_algorithm(AlgorithmSet::default_set()), JwtAlgorithm::HS256);
        assert_eq!(callback_algorithm(AlgorithmSet::parse("SHA512").unwrap()), JwtAlgorithm::HS512);
        let token = recording_ready("m1", "r1", &Secret::new("s"), JwtAlgorithm::HS256);
        let mut validation = Validation::new(JwtAlgorithm::HS256);
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &DecodingKey::from_secret(b"s"), &validation).unwrap();
        assert_eq!(data.claims, serde_json::json!({"meeting_id": "m1", "record_id": "r1"}));
    }

    #[test]
    fn analytics_tokens() {
        let secret = Secret::new("server-secret");
        let far = 4_000_000_000;
        let token = analytics_callback(far, &secret);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, JwtAlgorithm::HS512);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let others = [Secret::new("a"), secret.clone()];
        assert!(verify_hs512(&token, &others));
        assert!(!verify_hs512(&token, &[Secret::new("a")]));
        assert!(!verify_hs512(&analytics_callback(1_000, &secret), &others), "expired");
        assert!(!verify_hs512("garbage", &others));
        // Another algorithm with the right key is refused.
        let hs256 = recording_ready("m", "r", &secret, JwtAlgorithm::HS256);
        assert!(!verify_hs512(&hs256, &others));
        // No claim is required.
        let bare = recording_ready("m", "r", &secret, JwtAlgorithm::HS512);
        assert!(verify_hs512(&bare, &others));
    }
}
