//! Voice bridge (dial-in PIN) candidates and random moderator passwords.

use sha2::{Digest, Sha256};

/// How many candidates a placement tries before giving up (as Scalelite).
pub const ATTEMPTS: usize = 10;

/// Candidate voice bridges for a meeting, in the order they should be tried.
///
/// The first `ATTEMPTS - 1` candidates are derived deterministically from
/// SHA-256 of the meeting id (so a re-created meeting tends to get the same
/// dial-in number, as in Scalelite); the last one is random to escape a
/// persistent collision. If `external` is given it is tried first
/// (`USE_EXTERNAL_VOICE_BRIDGE`) unless it is blank or BBB's default
/// `99999`, which Scalelite skips too. Numbers have `len` digits, never
/// start with 0 and are never `99999`.
pub fn candidates(meeting_id: &str, len: usize, external: Option<&str>) -> Vec<String> {
    let len = len.clamp(1, 32);
    let mut out = Vec::with_capacity(ATTEMPTS);
    if let Some(external) = external.filter(|v| !crate::params::is_blank(v) && *v != "99999") {
        out.push(external.to_owned());
    }
    let mut counter: u32 = 0;
    while out.len() < ATTEMPTS - 1 {
        let mut digits = String::with_capacity(len);
        let mut block = 0u32;
        while digits.len() < len {
            let hash = Sha256::new()
                .chain_update(meeting_id.as_bytes())
                .chain_update(counter.to_be_bytes())
                .chain_update(block.to_be_bytes())
                .finalize();
            for byte in hash.iter() {
                if digits.len() == len {
                    break;
                }
                // Reject bytes >= 250 so every digit is equally likely.
                if *byte >= 250 {
                    continue;
                }
                let digit = if digits.is_empty() { 1 + byte % 9 } else { byte % 10 };
                digits.push(char::from(b'0' + digit));
            }
            block += 1;
        }
        counter += 1;
        if digits != "99999" && !out.contains(&digits) {
            out.push(digits);
        }
    }
    loop {
        let random = random_digits(len);
        if random != "99999" && !out.contains(&random) {
            out.push(random);
            break;
        }
    }
    out
}

/// `len` random digits, the first one non-zero.
pub fn random_digits(len: usize) -> String {
    (0..len)
        .map(|i| {
            let digit: u8 = if i == 0 { rand::random_range(1..10) } else { rand::random_range(0..10) };
            char::from(b'0' + digit)
        })
        .collect()
}

/// A random alphanumeric string, used for moderator passwords (8 characters
/// in Scalelite).
pub fn random_alphanumeric(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| char::from(CHARS[rand::random_range(0..CHARS.len())])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_stable_and_well_formed() {
        let a = candidates("room-1", 9, None);
        let b = candidates("room-1", 9, None);
        assert_eq!(a.len(), ATTEMPTS);
        assert_eq!(a[..ATTEMPTS - 1], b[..ATTEMPTS - 1]);
        for vb in &a {
            assert_eq!(vb.len(), 9);
            assert!(!vb.starts_with('0'));
            assert!(vb.chars().all(|c| c.is_ascii_digit()));
        }
        assert_ne!(candidates("room-2", 9, None)[0], a[0]);
    }

    #[test]
    fn external_first_and_no_99999() {
        let list = candidates("x", 5, Some("1234567"));
        assert_eq!(list[0], "1234567");
        assert_eq!(list.len(), ATTEMPTS);
        assert!(list.iter().all(|vb| vb != "99999"));
    }

    #[test]
    fn passwords() {
        let pw = random_alphanumeric(8);
        assert_eq!(pw.len(), 8);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
