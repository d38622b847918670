//! Load arithmetic shared by placement (api) and polling (poller).
//!
//! Load is measured in "expected users × the server's load multiplier". The
//! poller counts each non-breakout meeting's participants plus moderators
//! (as Scalelite does), but at least `LOAD_MIN_USER_COUNT` for a meeting
//! younger than `LOAD_JOIN_BUFFER_TIME`. A new meeting therefore reserves
//! exactly that minimum at placement, in the same unit, so that a burst of
//! creates between two polls spreads over the pool instead of piling onto
//! the server that looked emptiest at the last poll.

use std::time::Duration;

/// Settings of the load model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadModel {
    /// `LOAD_MIN_USER_COUNT`: users assumed for a young meeting.
    pub min_user_count: u32,
    /// `LOAD_JOIN_BUFFER_TIME`: how long a meeting counts as young.
    pub join_buffer: Duration,
}

impl Default for LoadModel {
    fn default() -> Self {
        Self { min_user_count: 15, join_buffer: Duration::from_secs(15 * 60) }
    }
}

/// What the poller needs to know about one meeting of a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeetingSample {
    /// `participantCount`.
    pub participants: u64,
    /// `moderatorCount`.
    pub moderators: u64,
    /// `videoCount`.
    pub videos: u64,
    /// `createTime` in epoch milliseconds, if known.
    pub created_ms: Option<i64>,
    /// `isBreakout`.
    pub is_breakout: bool,
}

impl LoadModel {
    /// The load a new meeting reserves on the server it is placed on.
    pub fn reservation(&self, multiplier: f64) -> f64 {
        f64::from(self.min_user_count) * multiplier
    }

    /// A server's load from its meetings at `now_ms` (epoch milliseconds).
    /// Counts saturate: they come from the server's reply.
    pub fn server_load(&self, meetings: &[MeetingSample], now_ms: i64, multiplier: f64) -> f64 {
        let buffer_ms = i64::try_from(self.join_buffer.as_millis()).unwrap_or(i64::MAX);
        let users: u64 = meetings
            .iter()
            .filter(|m| !m.is_breakout)
            .map(|m| {
                let count = m.participants.saturating_add(m.moderators);
                let young = m.created_ms.is_some_and(|created| now_ms.saturating_sub(created) < buffer_ms);
                if young { count.max(u64::from(self.min_user_count)) } else { count }
            })
            .fold(0, u64::saturating_add);
        users as f64 * multiplier
    }
}

/// Reads a stored `load_multiplier`: absent, unparsable or zero means 1.0.
pub fn parse_multiplier(raw: Option<&str>) -> f64 {
    raw.and_then(|s| s.trim().parse::<f64>().ok()).filter(|m| m.is_finite() && *m != 0.0).unwrap_or(1.0)
}

/// Formats a float the way Ruby's `Float#to_s` does for ordinary values
/// (`1.0`, `1.5`, `21.0`), which is how Scalelite writes multipliers and
/// prints loads.
pub fn format_float(value: f64) -> String {
    format!("{value:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn young_meetings_count_at_least_the_minimum() {
        let model = LoadModel::default();
        let now = 10_000_000;
        let meetings = [
            MeetingSample { participants: 3, moderators: 1, created_ms: Some(now - 60_000), ..Default::default() },
            MeetingSample { participants: 20, moderators: 2, created_ms: Some(now - 3_600_000), ..Default::default() },
            MeetingSample { participants: 40, moderators: 0, is_breakout: true, ..Default::default() },
        ];
        assert_eq!(model.server_load(&meetings, now, 1.0), 15.0 + 22.0);
        assert_eq!(model.server_load(&meetings, now, 2.0), 74.0);
        assert_eq!(model.reservation(1.5), 22.5);
    }

    #[test]
    fn multipliers() {
        assert_eq!(parse_multiplier(None), 1.0);
        assert_eq!(parse_multiplier(Some("0")), 1.0);
        assert_eq!(parse_multiplier(Some("abc")), 1.0);
        assert_eq!(parse_multiplier(Some("7")), 7.0);
        assert_eq!(parse_multiplier(Some("1.5")), 1.5);
        assert_eq!(format_float(1.0), "1.0");
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(21.0), "21.0");
    }
}
