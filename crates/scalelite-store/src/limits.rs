//! Per-tenant limits: concurrent meetings, participants and a request
//! rate, kept as the balancer's own tenant settings (like recording
//! retention), so they live wherever the tenant's settings live (the
//! `tenant_setting:<id>` hashes on Redis, the embedded database) and reach
//! every API process with the tenant, in the tenant cache.
//!
//! A limit of `0` (or no setting) means no limit.

use crate::tenants::TenantSetting;

/// Most concurrent meetings of the tenant; a create of a new meeting
/// beyond it is refused (`maxMeetingsReached`).
pub const MAX_MEETINGS_SETTING: &str = "scalelite-limit-max-meetings";
/// Most participants in the tenant's meetings together, as the poller last
/// counted them; a join beyond it is refused (`maxParticipantsReached`).
pub const MAX_PARTICIPANTS_SETTING: &str = "scalelite-limit-max-participants";
/// Most authenticated BBB API requests per minute of the tenant, per API
/// process (`rateLimitExceeded`).
pub const RATE_SETTING: &str = "scalelite-limit-rate";
/// The prefix of the limit settings.
pub const SETTING_PREFIX: &str = "scalelite-limit-";

/// The largest value a limit takes.
pub const MAX_LIMIT: u32 = 1_000_000_000;

/// A tenant's limits (`None`: unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantLimits {
    /// [`MAX_MEETINGS_SETTING`].
    pub max_meetings: Option<u32>,
    /// [`MAX_PARTICIPANTS_SETTING`].
    pub max_participants: Option<u32>,
    /// [`RATE_SETTING`], requests per minute.
    pub rate_per_minute: Option<u32>,
}

impl TenantLimits {
    /// The limits among a tenant's settings; the last one (by id) of a
    /// name wins, and a value that makes no sense is no limit.
    pub fn from_settings(settings: &[TenantSetting]) -> Self {
        let mut sorted: Vec<&TenantSetting> = settings.iter().filter(|s| is_limit_setting(&s.param)).collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let mut limits = Self::default();
        for setting in sorted {
            let value = parse_limit(&setting.value).ok().flatten();
            match setting.param.as_str() {
                MAX_MEETINGS_SETTING => limits.max_meetings = value,
                MAX_PARTICIPANTS_SETTING => limits.max_participants = value,
                RATE_SETTING => limits.rate_per_minute = value,
                _ => {}
            }
        }
        limits
    }

    /// Whether no limit is set.
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// Whether a tenant setting is one of the limits.
pub fn is_limit_setting(param: &str) -> bool {
    param.starts_with(SETTING_PREFIX)
}

/// Parses a limit: a whole number up to [`MAX_LIMIT`]; `0` (or `off`) is
/// no limit (`None`).
pub fn parse_limit(value: &str) -> Result<Option<u32>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) if n <= MAX_LIMIT => Ok(Some(n)),
        _ => Err(format!("a limit is a whole number from 0 (no limit) to {MAX_LIMIT}, not {value:?}")),
    }
}

/// Checks the value of a limit setting (any other parameter passes).
pub fn check_setting(param: &str, value: &str) -> Result<(), String> {
    match param {
        MAX_MEETINGS_SETTING | MAX_PARTICIPANTS_SETTING | RATE_SETTING => parse_limit(value).map(|_| ()),
        other if is_limit_setting(other) => Err(format!(
            "{other:?} is not a limit the balancer knows: {MAX_MEETINGS_SETTING}, {MAX_PARTICIPANTS_SETTING} or \
             {RATE_SETTING}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use scalelite_core::TenantId;

    use super::*;

    #[test]
    fn limits_come_from_settings() {
        let tenant = TenantId::new("t");
        let mut a = TenantSetting::new(tenant.clone(), MAX_MEETINGS_SETTING, "3", "false");
        a.id = "a".into();
        let mut b = TenantSetting::new(tenant.clone(), MAX_MEETINGS_SETTING, "5", "false");
        b.id = "b".into();
        let rate = TenantSetting::new(tenant.clone(), RATE_SETTING, "off", "true");
        let other = TenantSetting::new(tenant, "welcome", "hi", "false");
        let limits = TenantLimits::from_settings(&[b, rate, other, a]);
        assert_eq!(limits, TenantLimits { max_meetings: Some(5), max_participants: None, rate_per_minute: None });
        assert!(TenantLimits::from_settings(&[]).is_unlimited());
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(parse_limit(" 12 "), Ok(Some(12)));
        assert_eq!(parse_limit("0"), Ok(None));
        assert!(parse_limit("-1").is_err() && parse_limit("1.5").is_err() && parse_limit("99999999999").is_err());
        assert!(check_setting(RATE_SETTING, "60").is_ok());
        assert!(check_setting("scalelite-limit-rates", "60").is_err());
        assert!(check_setting("welcome", "x").is_ok());
    }
}
