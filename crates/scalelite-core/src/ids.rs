//! Newtypes for the identifiers and secrets that cross the API edge.
//!
//! They keep a meeting id from being passed where a server id is expected and
//! keep secrets out of `Debug` output (and therefore out of logs).

use std::fmt;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Wraps a raw identifier.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The identifier as stored in Redis and sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the id, returning the inner string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A meeting id as the balancer and BBB know it (the key of
    /// `meeting:<id>` in Redis): the front-end's `meetingID`, or with ids
    /// scoped per tenant `<tenant id>:<meetingID>` ([`crate::scope`]).
    MeetingId
);
string_id!(
    /// A BigBlueButton server's id (random UUID, host name or `servers sync` key).
    ServerId
);
string_id!(
    /// A tenant id (UUID v4) in multitenant mode.
    TenantId
);

/// A shared secret: a load-balancer secret, tenant secret or BBB server secret.
///
/// `Debug` and `Display` never print the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for hashing. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_printed() {
        let secret = Secret::new("super-secret");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn ids_print_their_value() {
        assert_eq!(MeetingId::from("room 1").to_string(), "room 1");
        assert_eq!(format!("{:?}", ServerId::from("a")), "\"a\"");
    }
}
