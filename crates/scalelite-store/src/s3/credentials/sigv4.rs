//! AWS Signature Version 4 for the one request signed here besides S3's
//! (which `rusty_s3` signs): a `POST` of a form to STS (`AssumeRole`),
//! authorized with an `Authorization` header.
//!
//! The canonical request is the method, the path (its characters other
//! than unreserved ones and `/` percent-encoded), an empty query, the
//! signed headers (`content-type`, `host`, `x-amz-date` and, with a
//! session token, `x-amz-security-token`), their names, and the SHA-256
//! of the body; the string to sign names the algorithm, the time, the
//! scope `<date>/<region>/<service>/aws4_request` and the hash of the
//! canonical request; the key is derived by HMAC-SHA256 from `AWS4` and
//! the secret through the date, region, service and `aws4_request`.

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// What signs a request.
pub(super) struct Signer<'a> {
    /// The access key id.
    pub key: &'a str,
    /// The secret access key.
    pub secret: &'a str,
    /// The session token of temporary credentials.
    pub token: Option<&'a str>,
    /// The region (`us-east-1`).
    pub region: &'a str,
    /// The service (`sts`).
    pub service: &'a str,
}

/// A request to sign: its method, `host[:port]` (as the `Host` header
/// sends it), path, content type and body.
pub(super) struct Unsigned<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

impl Signer<'_> {
    /// The headers to send, names in lower case: those signed (`host`
    /// included) and `authorization`.
    pub(super) fn sign(&self, request: &Unsigned<'_>, now: Timestamp) -> Vec<(&'static str, String)> {
        let time = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let date = &time[..8];
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        if let Some(content_type) = request.content_type {
            headers.push(("content-type", content_type.trim().to_owned()));
        }
        headers.push(("host", request.host.trim().to_owned()));
        headers.push(("x-amz-date", time.clone()));
        if let Some(token) = self.token {
            headers.push(("x-amz-security-token", token.trim().to_owned()));
        }
        // Already in the order of their names.
        let signed_headers = headers.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(";");
        let canonical_headers: String = headers.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        let canonical_request = format!(
            "{}\n{}\n\n{canonical_headers}\n{signed_headers}\n{}",
            request.method,
            canonical_path(request.path),
            hex::encode(Sha256::digest(request.body))
        );
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{time}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));
        let key = signing_key(self.secret, date, self.region, self.service);
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        headers.push((
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
                self.key
            ),
        ));
        headers
    }
}

/// The key signing requests of `date` (`YYYYMMDD`) to `service` in `region`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let key = hmac(&key, region.as_bytes());
    let key = hmac(&key, service.as_bytes());
    hmac(&key, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The path with every byte but unreserved ones and `/` percent-encoded
/// (`/` when empty).
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of AWS's Signature Version 4 test suite.
    fn suite_signer(token: Option<&str>) -> Signer<'_> {
        Signer {
            key: "AKIDEXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token,
            region: "us-east-1",
            service: "service",
        }
    }

    fn authorization<'h>(headers: &'h [(&'static str, String)]) -> &'h str {
        &headers.iter().find(|(name, _)| *name == "authorization").unwrap().1
    }

    const SUITE_TIME: &str = "2015-08-30T12:36:00Z";

    #[test]
    fn the_post_vanilla_example_of_aws_test_suite_is_signed_as_published() {
        // aws-sig-v4-test-suite/post-vanilla: `POST /` to
        // example.amazonaws.com, no body, at 20150830T123600Z.
        let request =
            Unsigned { method: "POST", host: "example.amazonaws.com", path: "/", content_type: None, body: b"" };
        let headers = suite_signer(None).sign(&request, SUITE_TIME.parse().unwrap());
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        assert!(headers.contains(&("x-amz-date", "20150830T123600Z".to_owned())));
        assert!(headers.contains(&("host", "example.amazonaws.com".to_owned())));
    }

    #[test]
    fn the_session_token_example_of_aws_test_suite_is_signed_as_published() {
        // aws-sig-v4-test-suite/post-sts-token/post-sts-header-before: the
        // session token is a signed header.
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        let request =
            Unsigned { method: "POST", host: "example.amazonaws.com", path: "/", content_type: None, body: b"" };
        let headers = suite_signer(Some(token)).sign(&request, SUITE_TIME.parse().unwrap());
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        );
        assert!(headers.contains(&("x-amz-security-token", token.to_owned())));
    }

    #[test]
    fn the_body_and_content_type_are_signed() {
        let signer = suite_signer(None);
        let at = SUITE_TIME.parse().unwrap();
        let form = |body: &'static [u8]| Unsigned {
            method: "POST",
            host: "sts.eu-west-1.amazonaws.com",
            path: "/",
            content_type: Some("application/x-www-form-urlencoded"),
            body,
        };
        let one = signer.sign(&form(b"Action=AssumeRole&RoleArn=a"), at);
        let other = signer.sign(&form(b"Action=AssumeRole&RoleArn=b"), at);
        assert_ne!(authorization(&one), authorization(&other));
        assert!(authorization(&one).contains("SignedHeaders=content-type;host;x-amz-date,"), "{}", authorization(&one));
        assert_eq!(canonical_path("/sts/a b"), "/sts/a%20b");
        assert_eq!(canonical_path(""), "/");
    }

    #[test]
    fn signing_keys_are_derived_as_documented() {
        // The derivation example of AWS's documentation (key
        // wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215, us-east-1, iam).
        assert_eq!(
            hex::encode(signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
