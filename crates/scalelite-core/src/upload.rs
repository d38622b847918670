//! The checksum of a recording upload (`PUT /scalelite/upload/<name>.tar`).
//!
//! A BBB server signs each upload with its own shared secret, the way BBB
//! signs API calls (a hash over the request followed by the secret), so the
//! shell script on the server needs only `sha256sum`:
//!
//! ```text
//! checksum = hex(SHA-256("scalelite-recording-upload\n" + name + "\n" + server + "\n"
//!                        + size + "\n" + content_sha256 + "\n" + timestamp + "\n" + secret))
//! ```
//!
//! `name` is the archive's file name, `server` the value of the
//! `X-Scalelite-Server` header (the server's id or URL) exactly as sent,
//! `size` the archive's length in decimal bytes, `content_sha256` the
//! lower-case hex SHA-256 of the archive, `timestamp` Unix seconds. Every
//! field is checked to hold no newline before it is hashed, so two
//! different requests never hash the same text. The first line keeps the
//! text apart from BBB API checksums made with the same secret.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::Secret;

/// The first line of the signed text.
pub const CONTEXT: &str = "scalelite-recording-upload";

/// Longest archive name accepted (a file name on every file system).
pub const MAX_NAME_LEN: usize = 255;

/// The fields an upload is signed over.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// The archive's file name (`<record_id>.tar`).
    pub name: &'a str,
    /// The `X-Scalelite-Server` header as sent.
    pub server: &'a str,
    /// The archive's length in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the archive.
    pub content_sha256: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
}

impl Signed<'_> {
    /// The hex checksum of these fields with `secret`.
    pub fn checksum(&self, secret: &Secret) -> String {
        hex::encode(self.digest(secret))
    }

    fn digest(&self, secret: &Secret) -> [u8; 32] {
        let mut hash = Sha256::new();
        let text = format!(
            "{CONTEXT}\n{}\n{}\n{}\n{}\n{}\n",
            self.name, self.server, self.size, self.content_sha256, self.timestamp
        );
        hash.update(text.as_bytes());
        hash.update(secret.expose().as_bytes());
        hash.finalize().into()
    }

    /// Whether `checksum` (hex, either case) is these fields' checksum with
    /// `secret`, compared in constant time.
    pub fn verify(&self, secret: &Secret, checksum: &str) -> bool {
        let Ok(given) = hex::decode(checksum) else {
            return false;
        };
        given.len() == 32 && bool::from(self.digest(secret).as_slice().ct_eq(&given))
    }
}

/// The SHA-256 of an archive, fed piece by piece as it arrives.
#[derive(Clone, Debug, Default)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    /// Adds the next piece.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// The lower-case hex digest of everything added.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// Whether `name` is an archive name the spool accepts: `<something>.tar`,
/// at most [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `-`, `_` and
/// `.`, not starting with a dot (the importer skips hidden files, and
/// temporary files are hidden).
pub fn valid_archive_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name.len() > ".tar".len()
        && name.ends_with(".tar")
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `digest` is 64 lower-case hex digits.
pub fn valid_sha256_hex(digest: &str) -> bool {
    digest.len() == 64 && digest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(timestamp: i64) -> Signed<'static> {
        Signed {
            name: "6e35e3b2778883f5db637d7a5dba0a427f692e91-1700000000000.tar",
            server: "bbb-1",
            size: 10240,
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            timestamp,
        }
    }

    #[test]
    fn the_checksum_is_what_sha256sum_prints() {
        // printf 'scalelite-recording-upload\n<name>\nbbb-1\n10240\n<sha>\n1700000000\nsecret' | sha256sum
        let secret = Secret::new("secret");
        let text = format!(
            "{CONTEXT}\n6e35e3b2778883f5db637d7a5dba0a427f692e91-1700000000000.tar\nbbb-1\n10240\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n1700000000\nsecret"
        );
        let expected = hex::encode(Sha256::digest(text.as_bytes()));
        assert_eq!(signed(1_700_000_000).checksum(&secret), expected);
        assert!(signed(1_700_000_000).verify(&secret, &expected));
        assert!(signed(1_700_000_000).verify(&secret, &expected.to_uppercase()));
        assert!(!signed(1_700_000_001).verify(&secret, &expected));
        assert!(!signed(1_700_000_000).verify(&Secret::new("other"), &expected));
        assert!(!signed(1_700_000_000).verify(&secret, &expected[..62]));
        assert!(!signed(1_700_000_000).verify(&secret, "not hex"));
    }

    #[test]
    fn archive_names() {
        assert!(valid_archive_name("6e35e3b2778883f5db637d7a5dba0a427f692e91-1700000000000.tar"));
        assert!(valid_archive_name("a.b_c-d.tar"));
        for bad in [".tar", ".hidden.tar", "a.tgz", "a/b.tar", "../a.tar", "a b.tar", "ä.tar", "a.tar\n", ""] {
            assert!(!valid_archive_name(bad), "{bad:?}");
        }
        assert!(!valid_archive_name(&format!("{}.tar", "a".repeat(252))));
        assert!(valid_archive_name(&format!("{}.tar", "a".repeat(251))));
    }
}
