//! Re-homing's one rule without IO: the attendee password of a meeting
//! whose creates send none.
//!
//! BBB generates a random attendee password when a create has none, so a
//! meeting created again on another server would not accept the one the
//! first server reported. The balancer sends one instead, derived from the
//! meeting's stored moderator password and its id: every create of the
//! meeting (racing repeats from any API process, and the re-homing replay)
//! sends the same one without storing anything more. Whoever knows it
//! learns nothing of the moderator password (a SHA-256 preimage).

use sha2::{Digest, Sha256};

/// The attendee password sent for a meeting whose create has none: 16 hex
/// digits of SHA-256 over a label, the moderator password and the meeting
/// id (BBB accepts 2 to 64 characters).
pub fn attendee_password(moderator_pw: &str, meeting_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"scalelite attendeePW\0")
        .chain_update(moderator_pw.as_bytes())
        .chain_update(b"\0")
        .chain_update(meeting_id.as_bytes())
        .finalize();
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_meeting_and_password() {
        let a = attendee_password("mp", "room-1");
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, attendee_password("mp", "room-1"));
        assert_ne!(a, attendee_password("mp", "room-2"));
        assert_ne!(a, attendee_password("mp2", "room-1"));
        // The separator keeps the two inputs apart.
        assert_ne!(attendee_password("a", "bc"), attendee_password("ab", "c"));
    }
}
