//! BigBlueButton checksums: verification of incoming calls and signing of
//! outgoing ones.
//!
//! A checksum is `hex(HASH(call_name + query + secret))`. The algorithm of an
//! incoming checksum is inferred from its length (40, 64, 96 or 128 hex digits)
//! and must be in the configured [`AlgorithmSet`]. The query is the raw,
//! still percent-encoded query string with its one `checksum` pair removed
//! ([`find_checksum`]), never a decoded and re-encoded copy.

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
        self.digest_fed(&parts)
    }

    /// Raw digest of everything `feed` hands to its sink, in order (for
    /// check strings that are never built in memory).
    pub fn digest_fed(self, feed: &dyn CheckString) -> DigestBytes {
        fn run<D: Digest>(feed: &dyn CheckString) -> DigestBytes {
            let mut hasher = D::new();
            feed.feed(&mut |chunk| hasher.update(chunk));
            let output = hasher.finalize();
            let mut bytes = [0; 64];
            bytes[..output.len()].copy_from_slice(&output);
            DigestBytes { bytes, len: output.len() }
        }
        match self {
            Self::Sha1 => run::<Sha1>(feed),
            Self::Sha256 => run::<Sha256>(feed),
            Self::Sha384 => run::<Sha384>(feed),
            Self::Sha512 => run::<Sha512>(feed),
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

/// A check string fed to the hash in pieces, so that it need not be built
/// in memory.
pub trait CheckString {
    /// Hands every piece of the check string to `sink`, in order.
    fn feed(&self, sink: &mut dyn FnMut(&[u8]));
}

impl CheckString for &str {
    fn feed(&self, sink: &mut dyn FnMut(&[u8])) {
        sink(self.as_bytes());
    }
}

impl CheckString for &[&[u8]] {
    fn feed(&self, sink: &mut dyn FnMut(&[u8])) {
        for part in *self {
            sink(part);
        }
    }
}

impl<const N: usize> CheckString for [&[u8]; N] {
    fn feed(&self, sink: &mut dyn FnMut(&[u8])) {
        for part in self {
            sink(part);
        }
    }
}

/// The one `checksum` parameter of a raw query string or form body, and the
/// text around it: the check string is `before` followed by `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecksumPair<'a> {
    /// The parameter's (decoded) value.
    pub value: Cow<'a, str>,
    /// The text before the pair (without the `&` that joined them).
    pub before: &'a [u8],
    /// The text after the pair (without the `&` that joined them, when the
    /// pair was the first).
    pub after: &'a [u8],
}

impl ChecksumPair<'_> {
    /// The check string: the raw text without the pair.
    pub fn check_string(&self) -> [&[u8]; 2] {
        [self.before, self.after]
    }
}

/// A `checksum` parameter that appears more than once. No honest client
/// sends that, and a second one lets a holder of a signed URL cut other
/// parameters out of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("checksum given more than once")]
pub struct DuplicateChecksum;

/// Finds the `checksum` parameter of `raw` as a parameter (its name decoded
/// as Rails decodes it), not as text: removing `checksum=<value>` as text
/// wherever it appears would let anyone splice copies of it into a signed
/// URL to cut parameters out. The removal keeps everything else byte for
/// byte: `&checksum=V` when a pair precedes it, else `checksum=V&`, as
/// Scalelite and bbb-web remove it from an honest request. Linear in the
/// size of `raw`.
pub fn find_checksum(raw: &[u8]) -> Result<Option<ChecksumPair<'_>>, DuplicateChecksum> {
    let mut found: Option<ChecksumPair<'_>> = None;
    let mut start = 0;
    for piece in raw.split(|&b| b == b'&') {
        let (at, end) = (start, start + piece.len());
        start = end + 1;
        let Some(value) = checksum_value(piece) else {
            continue;
        };
        if found.is_some() {
            return Err(DuplicateChecksum);
        }
        let (cut_from, cut_to) = if at > 0 {
            (at - 1, end)
        } else if end < raw.len() {
            (at, end + 1)
        } else {
            (at, end)
        };
        found = Some(ChecksumPair { value, before: &raw[..cut_from], after: &raw[cut_to..] });
    }
    Ok(found)
}

/// The decoded value of `piece` (one `name=value` of a query) when its name
/// decodes to `checksum`.
fn checksum_value(piece: &[u8]) -> Option<Cow<'_, str>> {
    const NAME: &[u8] = b"checksum";
    let name = piece.split(|&b| b == b'=').next().unwrap_or_default();
    // Only the name itself or an encoded form of it can decode to it.
    let encoded = name.len() > NAME.len() && name.iter().any(|&b| b == b'%' || b == b'+');
    if name != NAME && !encoded {
        return None;
    }
    let (key, value) = form_urlencoded::parse(piece).next()?;
    (key == "checksum").then_some(value)
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
    /// `checksum` was given more than once (query and body, or twice).
    Duplicate,
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
    let candidates: Vec<&dyn CheckString> = candidates.iter().map(|c| c as &dyn CheckString).collect();
    verify_check_strings(call, &candidates, checksum, secrets, allowed)
}

/// Whether `checksum` could match at all: hex digits of an accepted
/// algorithm's length (lets a caller refuse before reading more input).
pub fn well_formed(checksum: &str, allowed: AlgorithmSet) -> bool {
    Algorithm::from_hex_len(checksum.len()).is_some_and(|alg| allowed.contains(alg))
        && checksum.bytes().all(|b| b.is_ascii_hexdigit())
}

/// [`verify`] for check strings fed in pieces ([`CheckString`]). Work is
/// linear in the total size of the candidates (times the number of
/// secrets).
pub fn verify_check_strings(
    call: &str,
    candidates: &[&dyn CheckString],
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
            let digest = alg.digest_fed(&Framed { call, candidate: *candidate, secret });
            // Evaluate every secret so timing does not reveal which one matched.
            matched |= bool::from(digest.as_slice().ct_eq(expected));
        }
        if matched {
            return Ok(index);
        }
    }
    Err(Refusal::Mismatch)
}

/// `call + candidate + secret`, the string a checksum signs.
struct Framed<'a> {
    call: &'a str,
    candidate: &'a dyn CheckString,
    secret: &'a Secret,
}

impl CheckString for Framed<'_> {
    fn feed(&self, sink: &mut dyn FnMut(&[u8])) {
        sink(self.call.as_bytes());
        self.candidate.feed(sink);
        sink(self.secret.expose().as_bytes());
    }
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

    fn check_string(raw: &str) -> Option<(String, String)> {
        let pair = find_checksum(raw.as_bytes()).unwrap()?;
        let text = pair.check_string().concat();
        Some((String::from_utf8(text).unwrap(), pair.value.into_owned()))
    }

    fn pair(check: &str, value: &str) -> Option<(String, String)> {
        Some((check.to_owned(), value.to_owned()))
    }

    #[test]
    fn the_checksum_pair_is_removed_like_scalelite_removes_it() {
        assert_eq!(check_string("a=1&checksum=abc&b=2"), pair("a=1&b=2", "abc"));
        assert_eq!(check_string("checksum=abc&a=1"), pair("a=1", "abc"));
        assert_eq!(check_string("a=1&checksum=abc"), pair("a=1", "abc"));
        assert_eq!(check_string("checksum=abc"), pair("", "abc"));
        // Moodle's API-root probe.
        assert_eq!(check_string("&checksum=abc"), pair("", "abc"));
        assert_eq!(check_string("name=caf%C3%A9&checksum=abc"), pair("name=caf%C3%A9", "abc"));
        assert_eq!(check_string("a=é&checksum=abc"), pair("a=é", "abc"));
        assert_eq!(check_string("a=1&&checksum=abc"), pair("a=1&", "abc"));
        assert_eq!(check_string("checksum="), pair("", ""));
        assert_eq!(check_string("checksum"), pair("", ""));
        // An encoded name is still the parameter Rails reads.
        assert_eq!(check_string("a=1&check%73um=abc"), pair("a=1", "abc"));
        assert_eq!(check_string("a=1"), None);
        assert_eq!(check_string("xchecksum=abc&checksums=1&a=checksum=abc"), None);
    }

    #[test]
    fn a_second_checksum_is_refused() {
        // The splice of issue 12: every copy but the last cuts text out of a
        // signed string when removed textually.
        let spliced = "fullName=Eve&meetingID=room-1&checksum=X-grp&password=ap&&checksum=Xguest=true&checksum=X";
        assert_eq!(find_checksum(spliced.as_bytes()), Err(DuplicateChecksum));
        assert_eq!(find_checksum(b"checksum=a&checksum=a"), Err(DuplicateChecksum));
        assert_eq!(find_checksum(b"checksum=a&check%73um=b"), Err(DuplicateChecksum));
    }

    /// Scalelite's textual removal, for honest requests (one pair).
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
    fn honest_requests_get_scalelites_check_string() {
        // Every arrangement of up to four pieces holding one checksum pair
        // whose value occurs nowhere else gets the same check string as
        // the textual removal.
        let pieces = ["checksum=ab1", "&", "a=1", "b=ab", "é", "="];
        for n in 0..1296usize {
            let mut query = String::new();
            let mut k = n;
            for _ in 0..4 {
                query.push_str(pieces[k % pieces.len()]);
                k /= pieces.len();
            }
            if query.matches("checksum=").count() != 1 || query.contains("checksum=ab1=") {
                continue;
            }
            let Ok(Some(found)) = find_checksum(query.as_bytes()) else {
                continue;
            };
            if found.value != "ab1" {
                continue;
            }
            let text = String::from_utf8(found.check_string().concat()).unwrap();
            assert_eq!(text, strip_reference(&query, "ab1"), "{query:?}");
        }
    }

    #[test]
    fn check_strings_in_pieces_hash_like_one_string() {
        let secret = Secret::new("s");
        let sum = Algorithm::Sha256.sign("join", "a=1&b=2", &secret);
        let pieces: [&[u8]; 3] = [b"a=1", b"&b", b"=2"];
        let whole = "a=1";
        let candidates: [&dyn CheckString; 2] = [&whole, &pieces];
        let all = AlgorithmSet::default_set();
        assert_eq!(verify_check_strings("join", &candidates, &sum, &[secret], all), Ok(1));
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
