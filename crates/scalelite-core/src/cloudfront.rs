//! CloudFront signed cookies for recordings in a bucket behind CloudFront
//! (`CLOUDFRONT_URL`, `CF_KEY_PAIR_ID`, `CF_PRIVATE_KEY_B64`, as Scalelite):
//! a custom policy allowing `<CLOUDFRONT_URL>/<prefix>/*` until an expiry,
//! signed with RSA-SHA1 (PKCS #1 v1.5), as CloudFront requires of RSA keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::{Digest, Sha1};

/// DER `DigestInfo` prefix of a SHA-1 digest (RFC 8017, 9.2 note 1).
const SHA1_DIGEST_INFO: [u8; 15] =
    [0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14];

/// Signs CloudFront cookies with one key pair.
pub struct CloudFrontSigner {
    url: String,
    key_pair_id: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for CloudFrontSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudFrontSigner").field("url", &self.url).field("key_pair_id", &self.key_pair_id).finish()
    }
}

/// The private key of `CF_PRIVATE_KEY_B64`: base64 of a PEM file, PKCS #1
/// (`BEGIN RSA PRIVATE KEY`) or PKCS #8 (`BEGIN PRIVATE KEY`).
pub fn parse_private_key(b64: &str) -> Result<RsaPrivateKey, String> {
    let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let pem = STANDARD.decode(compact).map_err(|e| format!("not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "not a PEM file".to_owned())?;
    RsaPrivateKey::from_pkcs1_pem(&pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&pem))
        .map_err(|_| "not an RSA private key in PEM (PKCS #1 or PKCS #8)".to_owned())
}

/// CloudFront's URL-safe base64: `+` → `-`, `=` → `_`, `/` → `~`.
fn cf_base64(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

impl CloudFrontSigner {
    /// A signer for `url` (`CLOUDFRONT_URL`, no trailing `/`).
    pub fn new(url: &str, key_pair_id: &str, private_key_b64: &str) -> Result<Self, String> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            key_pair_id: key_pair_id.to_owned(),
            key: parse_private_key(private_key_b64)?,
        })
    }

    /// `<CLOUDFRONT_URL>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.url, path.trim_start_matches('/'))
    }

    /// The cookies `CloudFront-Policy`, `CloudFront-Signature` and
    /// `CloudFront-Key-Pair-Id` allowing `<CLOUDFRONT_URL>/<prefix>*` until
    /// `expires` (Unix seconds).
    pub fn cookies(&self, prefix: &str, expires: u64) -> Result<[(&'static str, String); 3], String> {
        let resource = serde_json::Value::String(format!("{}*", self.url(prefix)));
        let policy = format!(
            "{{\"Statement\":[{{\"Resource\":{resource},\"Condition\":{{\"DateLessThan\":{{\"AWS:EpochTime\":{expires}}}}}}}]}}"
        );
        let digest = Sha1::digest(policy.as_bytes());
        let scheme = Pkcs1v15Sign { hash_len: Some(20), prefix: SHA1_DIGEST_INFO.into() };
        let signature = self.key.sign(scheme, &digest).map_err(|e| format!("CloudFront signature: {e}"))?;
        Ok([
            ("CloudFront-Policy", cf_base64(policy.as_bytes())),
            ("CloudFront-Signature", cf_base64(&signature)),
            ("CloudFront-Key-Pair-Id", self.key_pair_id.clone()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudfront_base64_is_url_safe() {
        assert_eq!(cf_base64(&[0xfb, 0xff, 0xfe]), "-~~-");
        assert_eq!(cf_base64(b"a"), "YQ__");
    }

    #[test]
    fn keys_that_are_not_rsa_pem_are_refused() {
        assert!(parse_private_key("not base64!").is_err());
        assert!(parse_private_key(&STANDARD.encode("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n")).is_err());
    }
}
