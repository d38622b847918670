//! Which backend the integration suite runs on.
//!
//! The suite is one set of tests run twice: on Redis and PostgreSQL (the
//! services backend, Ruby Scalelite's layout) and on the embedded SQLite
//! file. `SCALELITE_TEST_BACKEND` picks the backend of every [`TestApp`]
//! that is not pinned with [`TestAppBuilder::backend`].
//!
//! [`TestApp`]: crate::TestApp
//! [`TestAppBuilder::backend`]: crate::TestAppBuilder::backend

/// A backend a [`crate::TestApp`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestBackend {
    /// A real `redis-server` for servers, meetings and tenants, and (with
    /// [`crate::TestAppBuilder::recordings`]) a real PostgreSQL for
    /// recordings.
    Redis,
    /// One SQLite file in a temporary data directory (`SCALELITE_DATA_DIR`,
    /// neither `REDIS_URL` nor `DATABASE_URL` set).
    Embedded,
}

impl TestBackend {
    /// The variable that selects the backend.
    pub const VARIABLE: &'static str = "SCALELITE_TEST_BACKEND";

    /// The backend `SCALELITE_TEST_BACKEND` names: unset, empty or `redis`
    /// is [`TestBackend::Redis`], `embedded` is [`TestBackend::Embedded`].
    ///
    /// # Panics
    ///
    /// Panics on any other value, naming the valid ones.
    pub fn from_env() -> Self {
        let value = std::env::var(Self::VARIABLE).ok();
        Self::parse(value.as_deref())
            .unwrap_or_else(|| panic!("{}={value:?}: expected `redis` (the default) or `embedded`", Self::VARIABLE))
    }

    /// Parses a value of `SCALELITE_TEST_BACKEND` (`None` when unset).
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.map(str::trim) {
            None | Some("" | "redis") => Some(Self::Redis),
            Some("embedded") => Some(Self::Embedded),
            Some(_) => None,
        }
    }

    /// `redis` or `embedded`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Embedded => "embedded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TestBackend;

    #[test]
    fn values() {
        assert_eq!(TestBackend::parse(None), Some(TestBackend::Redis));
        assert_eq!(TestBackend::parse(Some("")), Some(TestBackend::Redis));
        assert_eq!(TestBackend::parse(Some("redis")), Some(TestBackend::Redis));
        assert_eq!(TestBackend::parse(Some("embedded")), Some(TestBackend::Embedded));
        assert_eq!(TestBackend::parse(Some("sqlite")), None);
        assert_eq!(TestBackend::parse(Some("Redis")), None);
    }
}
