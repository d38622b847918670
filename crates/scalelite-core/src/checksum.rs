//! BigBlueButton checksums: verification of incoming calls and signing of
//! outgoing ones.
//!
//! A checksum is `hex(HASH(call_name + query + secret))`. The algorithm of an
//! incoming checksum is inferred from its length (40, 64, 96 or 128 hex digits)
//! and must be in the configured [`AlgorithmSet`]. The query is the raw,
//! still percent-encoded query string with the `checksum` pair removed
//! textually ([`strip_checksum`]), never a decoded and re-encoded copy.

use std::borrow::Cow;
use std::fmt;

use sha1::Sha1;
use sha2::digest::Digest;
use sha2::{Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use crate::ids::Secret;

/// A checksum digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-1, 40 hex digits; what Greenlight sends.
    Sha1,
    /// SHA-256, 64 hex digits.
    Sha256,
    /// SHA-384, 96 hex digits (accepted by bbb-web 2.5+, not by Ruby Scalelite).
    Sha384,
    /// SHA-512, 128 hex digits.
    Sha512,
}

impl Algorithm {
    /// Every algorithm, weakest first.
    pub const ALL: [Algorithm; 4] = [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512];

    /// The algorithm whose hex digest has `len` characters.
    pub fn from_hex_len(len: usize) -> Option<Self> {
        match len {
            40 => Some(Self::Sha1),
            64 => Some(Self::Sha256),
            96 => Some(Self::Sha384),
            128 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Parses `SHA1`, `SHA256`, `SHA384` or `SHA512` (case-insensitive, an
    /// optional dash after `SHA` is tolerated).
    pub fn parse(name: &str) -> Option<Self> {
        let upper = name.trim().to_ascii_uppercase().replace('-', "");
        match upper.as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA384" => Some(Self::Sha384),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The name used in `LOADBALANCER_CHECKSUM_ALGORITHM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha384 => "SHA384",
            Self::Sha512 => "SHA512",
        }
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::Sha1 => 1,
            Self::Sha256 => 2,
            Self::Sha384 => 4,
            Self::Sha512 => 8,
        }
    }

    /// Raw digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> DigestBytes {
        fn run<D: Digest>(parts: &[&[u8]]) -> DigestBytes {
            let mut hasher = D::new();
            for part in parts {
                hasher.update(part);
            }
            let output = hasher.finalize();
            let mut bytes = [0; 64];
            bytes[..output.len()].copy_from_slice(&output);
            DigestBytes { bytes, len: output.len() }
        }
        match self {
            Self::Sha1 => run::<Sha1>(parts),
            Self::Sha256 => run::<Sha256>(parts),
            Self::Sha384 => run::<Sha384>(parts),
            Self::Sha512 => run::<Sha512>(parts),
        }
    }

    /// Lower-case hex digest of the concatenation of `parts`.
    pub fn hex_digest(self, parts: &[&[u8]]) -> String {
        hex::encode(self.digest(parts).as_slice())
    }

    /// The checksum of an API call: `hex(HASH(call + query + secret))`.
    pub fn sign(self, call: &str, query: &str, secret: &Secret) -> String {
        self.hex_digest(&[call.as_bytes(), query.as_bytes(), secret.expose().as_bytes()])
    }
}

/// A raw digest of up to 64 bytes, kept on the stack.
#[derive(Clone, Copy)]
pub struct DigestBytes {
    bytes: [u8; 64],
    len: usize,
}

impl DigestBytes {
    /// The digest bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Debug for DigestBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_slice()))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of algorithms accepted for incoming checksums
/// (`LOADBALANCER_CHECKSUM_ALGORITHM`), which also picks the outgoing one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmSet {
    bits: u8,
    /// Whether the operator configured the list explicitly. Scalelite signs
    /// outgoing calls with SHA256 unless the variable is set.
    explicit: bool,
}

impl AlgorithmSet {
    /// The default when `LOADBALANCER_CHECKSUM_ALGORITHM` is unset: every
    /// algorithm bbb-web accepts, SHA256 for outgoing calls.
    pub fn default_set() -> Self {
        Self { bits: 0b1111, explicit: false }
    }

    /// Parses a `:`-separated list such as `SHA1:SHA256:SHA512`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut bits = 0;
        for name in list.split(':').map(str::trim).filter(|s| !s.is_empty()) {
            let alg = Algorithm::parse(name).ok_or_else(|| {
                format!("unknown checksum algorithm `{name}` (expected SHA1, SHA256, SHA384 or SHA512)")
            })?;
            bits |= alg.bit();
        }
        if bits == 0 {
            return Ok(Self::default_set());
        }
        Ok(Self { bits, explicit: true })
    }

    /// Whether `alg` is accepted.
    pub fn contains(self, alg: Algorithm) -> bool {
        self.bits & alg.bit() != 0
    }

    /// The algorithm used to sign calls to BBB servers: SHA256 when the list
    /// was not configured, otherwise the strongest listed algorithm.
    pub fn outgoing(self) -> Algorithm {
        if !self.explicit {
            return Algorithm::Sha256;
        }
        Algorithm::ALL.into_iter().rev().find(|alg| self.contains(*alg)).unwrap_or(Algorithm::Sha1)
    }

    /// The accepted algorithms, weakest first.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL.into_iter().filter(move |alg| self.contains(*alg))
    }
}

impl Default for AlgorithmSet {
    fn default() -> Self {
        Self::default_set()
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(Algorithm::name)).finish()
    }
}

/// Removes the `checksum=<value>` pair from a raw query string the way
/// Scalelite and bbb-web do: textually, preferring `&checksum=V`, then
/// `checksum=V&`, then `checksum=V` at each position, for every occurrence.
pub fn strip_checksum<'a>(query: &'a str, checksum: &str) -> Cow<'a, str> {
    if checksum.is_empty() || !query.contains("checksum=") {
        return Cow::Borrowed(query);
    }
    const NAME: &str = "checksum=";
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    // `emitted`: everything before it is already copied or removed.
    let (mut emitted, mut search) = (0, 0);
    while let Some(offset) = query[search..].find(NAME) {
        let at = search + offset;
        let value_end = at + NAME.len() + checksum.len();
        if !query[at + NAME.len()..].starts_with(checksum) {
            search = at + 1;
            continue;
        }
        if at > emitted && bytes[at - 1] == b'&' {
            // `&checksum=V`
            out.push_str(&query[emitted..at - 1]);
            emitted = value_end;
        } else if bytes.get(value_end) == Some(&b'&') {
            // `checksum=V&`
            out.push_str(&query[emitted..at]);
            emitted = value_end + 1;
        } else {
            // `checksum=V`
            out.push_str(&query[emitted..at]);
            emitted = value_end;
        }
        search = emitted;
    }
    out.push_str(&query[emitted..]);
    Cow::Owned(out)
}

/// Why a checksum was refused (kept for logs; every variant becomes the same
/// `checksumError` for the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No secret is configured for this request.
    NoSecrets,
    /// No `checksum` parameter, or an empty one.
    Missing,
    /// Not 40/64/96/128 hex digits.
    BadLength,
    /// The inferred algorithm is not in `LOADBALANCER_CHECKSUM_ALGORITHM`.
    AlgorithmNotAllowed,
    /// No secret and candidate string produce this checksum.
    Mismatch,
}

/// Checks `checksum` against `HASH(call + candidate + secret)` for every
/// candidate string and secret, in constant time per comparison.
///
/// Returns the index of the first candidate that matched. Upper- and
/// lower-case hex are both accepted (as bbb-web 2.5+ does).
pub fn verify(
    call: &str,
    candidates: &[&str],
    checksum: &str,
    secrets: &[Secret],
    allowed: AlgorithmSet,
) -> Result<usize, Refusal> {
    if secrets.is_empty() {
        return Err(Refusal::NoSecrets);
    }
    if checksum.is_empty() {
        return Err(Refusal::Missing);
    }
    let alg = Algorithm::from_hex_len(checksum.len()).ok_or(Refusal::BadLength)?;
    if !allowed.contains(alg) {
        return Err(Refusal::AlgorithmNotAllowed);
    }
    let mut expected = [0u8; 64];
    let expected = &mut expected[..alg.digest_len()];
    hex::decode_to_slice(checksum, expected).map_err(|_| Refusal::Mismatch)?;
    for (index, candidate) in candidates.iter().enumerate() {
        let mut matched = false;
        for secret in secrets {
            let digest = alg.digest(&[call.as_bytes(), candidate.as_bytes(), secret.expose().as_bytes()]);
            // Evaluate every secret so timing does not reveal which one matched.
            matched |= bool::from(digest.as_slice().ct_eq(expected));
        }
        if matched {
            return Ok(index);
        }
    }
    Err(Refusal::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::new(*s)).collect()
    }

    #[test]
    fn known_digests() {
        // sha1("getMeetingssecret") computed independently with sha1sum.
        let secret = Secret::new("secret");
        assert_eq!(Algorithm::Sha1.sign("getMeetings", "", &secret), "867e6596b930651c0cd4dd1912bec902fae56d5a");
        assert_eq!(Algorithm::Sha1.hex_digest(&[b"abc"]), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            Algorithm::Sha256.hex_digest(&[b"a", b"bc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Algorithm::Sha384.hex_digest(&[b"abc"]).len(), 96);
        assert_eq!(Algorithm::Sha512.hex_digest(&[b"abc"]).len(), 128);
    }

    #[test]
    fn algorithm_by_length() {
        assert_eq!(Algorithm::from_hex_len(40), Some(Algorithm::Sha1));
        assert_eq!(Algorithm::from_hex_len(64), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_hex_len(96), Some(Algorithm::Sha384));
        assert_eq!(Algorithm::from_hex_len(128), Some(Algorithm::Sha512));
        assert_eq!(Algorithm::from_hex_len(41), None);
    }

    #[test]
    fn strip_checksum_like_scalelite() {
        assert_eq!(strip_checksum("a=1&checksum=abc&b=2", "abc"), "a=1&b=2");
        assert_eq!(strip_checksum("checksum=abc&a=1", "abc"), "a=1");
        assert_eq!(strip_checksum("a=1&checksum=abc", "abc"), "a=1");
        assert_eq!(strip_checksum("checksum=abc", "abc"), "");
        // Moodle's API-root probe.
        assert_eq!(strip_checksum("&checksum=abc", "abc"), "");
        assert_eq!(strip_checksum("a=1&checksum=abc&checksum=abc", "abc"), "a=1");
        assert_eq!(strip_checksum("name=caf%C3%A9&checksum=abc", "abc"), "name=caf%C3%A9");
        assert_eq!(strip_checksum("a=é&checksum=abc", "abc"), "a=é");
        assert_eq!(strip_checksum("a=1", "abc"), "a=1");
    }

    /// The textual removal as a regex engine would do it, position by
    /// position; the fast version must agree with it on any input.
    #[expect(clippy::if_same_then_else, reason = "one branch per regex alternative, as specified")]
    fn strip_reference(query: &str, checksum: &str) -> String {
        let pair = format!("checksum={checksum}");
        let mut out = String::new();
        let mut i = 0;
        while i < query.len() {
            let rest = &query[i..];
            if rest.starts_with('&') && rest[1..].starts_with(&pair) {
                i += 1 + pair.len();
            } else if rest.starts_with(&pair) && rest[pair.len()..].starts_with('&') {
                i += pair.len() + 1;
            } else if rest.starts_with(&pair) {
                i += pair.len();
            } else {
                let ch = rest.chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    #[test]
    fn strip_checksum_agrees_with_the_reference() {
        let pieces = ["checksum=ab", "checksum=abc", "&", "a=1", "xchecksum=abc", "é", "=", "checksum="];
        // Every sequence of up to four pieces (8^4 inputs).
        for n in 0..4096usize {
            let mut query = String::new();
            let mut k = n;
            for _ in 0..4 {
                query.push_str(pieces[k % pieces.len()]);
                k /= pieces.len();
            }
            for checksum in ["abc", "ab"] {
                assert_eq!(strip_checksum(&query, checksum), strip_reference(&query, checksum), "{query:?} {checksum}");
            }
        }
    }

    #[test]
    fn verify_accepts_any_secret_and_either_case() {
        let all = AlgorithmSet::default_set();
        for alg in Algorithm::ALL {
            let sum = alg.sign("create", "meetingID=x", &Secret::new("two"));
            let list = secrets(&["one", "two"]);
            assert_eq!(verify("create", &["meetingID=x"], &sum, &list, all), Ok(0), "{alg}");
            assert_eq!(verify("create", &["meetingID=x"], &sum.to_uppercase(), &list, all), Ok(0));
            assert_eq!(verify("create", &["meetingID=y"], &sum, &list, all), Err(Refusal::Mismatch));
            assert_eq!(verify("join", &["meetingID=x"], &sum, &list, all), Err(Refusal::Mismatch));
        }
    }

    #[test]
    fn verify_reports_the_matching_candidate() {
        let sum = Algorithm::Sha1.sign("end", "b=2", &Secret::new("s"));
        assert_eq!(verify("end", &["", "b=2"], &sum, &secrets(&["s"]), AlgorithmSet::default_set()), Ok(1));
    }

    #[test]
    fn verify_refusals() {
        let all = AlgorithmSet::default_set();
        let sum = Algorithm::Sha1.sign("end", "", &Secret::new("s"));
        assert_eq!(verify("end", &[""], &sum, &[], all), Err(Refusal::NoSecrets));
        assert_eq!(verify("end", &[""], "", &secrets(&["s"]), all), Err(Refusal::Missing));
        assert_eq!(verify("end", &[""], "abc", &secrets(&["s"]), all), Err(Refusal::BadLength));
        let only256 = AlgorithmSet::parse("SHA256").unwrap();
        assert_eq!(verify("end", &[""], &sum, &secrets(&["s"]), only256), Err(Refusal::AlgorithmNotAllowed));
        let not_hex = "z".repeat(40);
        assert_eq!(verify("end", &[""], &not_hex, &secrets(&["s"]), all), Err(Refusal::Mismatch));
    }

    #[test]
    fn outgoing_algorithm() {
        assert_eq!(AlgorithmSet::default_set().outgoing(), Algorithm::Sha256);
        assert_eq!(AlgorithmSet::parse("").unwrap().outgoing(), Algorithm::Sha256);
        assert_eq!(AlgorithmSet::parse("SHA1").unwrap().outgoing(), Algorithm::Sha1);
        assert_eq!(AlgorithmSet::parse("SHA1:SHA256").unwrap().outgoing(), Algorithm::Sha256);
        assert_eq!(AlgorithmSet::parse("sha1:sha512:SHA256").unwrap().outgoing(), Algorithm::Sha512);
        assert!(AlgorithmSet::parse("MD5").is_err());
    }
}
