//! Recording retention values: an age in days (`90` or `90d`) and what to
//! do with recordings older than that. Shared by the configuration
//! (`RECORDING_RETENTION_DAYS`, `RECORDING_RETENTION_ACTION`), the tenant
//! settings that override it and `scalelite-admin recordings prune`.

use std::fmt;
use std::str::FromStr;

/// The longest retention accepted, in days (100 years): anything longer is
/// a typo, and the cut-off time stays far from overflowing.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// What happens to a recording older than its retention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RetentionAction {
    /// Files removed from both trees, metadata and formats deleted, the row
    /// kept with `state = 'deleted'` (what `deleteRecordings` does).
    #[default]
    Delete,
    /// Files moved to the unpublish tree, `published = false` (what
    /// `publishRecordings` with `publish=false` does).
    Unpublish,
}

impl RetentionAction {
    /// `delete` or `unpublish`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Unpublish => "unpublish",
        }
    }
}

impl fmt::Display for RetentionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetentionAction {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "delete" => Ok(Self::Delete),
            "unpublish" => Ok(Self::Unpublish),
            _ => Err(format!("{raw:?} is not a retention action: expected delete or unpublish")),
        }
    }
}

/// A retention age: a whole number of days from 1 to
/// [`MAX_RETENTION_DAYS`], written `90` or `90d`.
pub fn parse_days(raw: &str) -> Result<u32, String> {
    let trimmed = raw.trim();
    let digits = trimmed.strip_suffix(['d', 'D']).unwrap_or(trimmed);
    let invalid = || format!("{raw:?} is not an age in days: expected a whole number of days such as 90d");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let days: u64 = digits.parse().map_err(|_| format!("{raw:?}: at most {MAX_RETENTION_DAYS} days"))?;
    match days {
        0 => Err(format!("{raw:?}: the age must be at least 1 day")),
        d if d > u64::from(MAX_RETENTION_DAYS) => Err(format!("{raw:?}: at most {MAX_RETENTION_DAYS} days")),
        d => Ok(d as u32),
    }
}

/// Like [`parse_days`], where `off`, `0` and an empty value turn retention
/// off (`None`).
pub fn parse_days_or_off(raw: &str) -> Result<Option<u32>, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("off") || trimmed.trim_end_matches(['d', 'D']) == "0" {
        return Ok(None);
    }
    parse_days(trimmed).map(Some)
}

/// The start of the window a retention of `days` keeps, `now_ms` being the
/// current time (both epoch milliseconds): recordings that started before
/// it are older than the retention.
pub fn cutoff_ms(now_ms: i64, days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(days) * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_whole_numbers_with_an_optional_d() {
        assert_eq!(parse_days("90"), Ok(90));
        assert_eq!(parse_days(" 90d "), Ok(90));
        assert_eq!(parse_days("1D"), Ok(1));
        assert_eq!(parse_days("36500d"), Ok(MAX_RETENTION_DAYS));
        for bad in ["", "d", "abc", "-5", "+5", "1.5", "90 d", "9e9", "90dd", "1w", "99999999999999999999999"] {
            assert!(parse_days(bad).is_err(), "{bad:?}");
        }
        assert!(parse_days("0d").unwrap_err().contains("at least 1 day"));
        assert!(parse_days("36501").unwrap_err().contains("at most"));
    }

    #[test]
    fn off_and_zero_turn_retention_off() {
        for off in ["", " ", "off", "OFF", "0", "0d"] {
            assert_eq!(parse_days_or_off(off), Ok(None), "{off:?}");
        }
        assert_eq!(parse_days_or_off("30d"), Ok(Some(30)));
        assert!(parse_days_or_off("soon").is_err());
    }

    #[test]
    fn actions_and_cutoffs() {
        assert_eq!("Unpublish".parse(), Ok(RetentionAction::Unpublish));
        assert_eq!(" delete ".parse(), Ok(RetentionAction::Delete));
        assert!("remove".parse::<RetentionAction>().is_err());
        assert_eq!(RetentionAction::Unpublish.to_string(), "unpublish");
        assert_eq!(cutoff_ms(10 * 86_400_000, 3), 7 * 86_400_000);
        assert_eq!(cutoff_ms(i64::MIN + 1, MAX_RETENTION_DAYS), i64::MIN);
    }
}
