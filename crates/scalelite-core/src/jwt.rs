//! The JSON Web Tokens Scalelite uses: protected-recording cookies (HS256
//! keyed with `SECRET_KEY_BASE`) and recording-ready callbacks (HS256 or
//! HS512 keyed with a front-end secret).

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
