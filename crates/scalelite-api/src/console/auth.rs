//! Who is at the console: a stateless signed session cookie (so it works
//! across API replicas), or the name a trusted reverse proxy put in
//! `CONSOLE_AUTH_HEADER`; the CSRF token bound to either; the login limit.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue, header};
use scalelite_core::Secret;
use scalelite_core::config::Config;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "scalelite_console";
/// Longest operator name kept (typed at login or sent by the proxy).
pub(crate) const MAX_NAME: usize = 64;
/// Failed logins a process accepts per [`LOGIN_WINDOW`] before it answers
/// 429 to every login until the window ends.
pub(crate) const MAX_FAILED_LOGINS: u32 = 10;
/// See [`MAX_FAILED_LOGINS`].
pub(crate) const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// The operator of a request.
#[derive(Clone, Debug)]
pub(crate) struct Operator {
    /// Who, for the page and the action log.
    pub name: String,
    /// The token every form must carry back.
    pub csrf: String,
}

/// The console's keys and accepted secrets, derived once at start-up.
pub(crate) struct Keys {
    key: [u8; 32],
    /// SHA-256 of each secret that logs in.
    secrets: Vec<[u8; 32]>,
    failures: Mutex<(Instant, u32)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("secrets", &self.secrets.len()).finish_non_exhaustive()
    }
}

/// The secrets that log in: `CONSOLE_SECRET` and the management API's
/// (`MANAGEMENT_API_SECRETS`, else the load-balancer secrets).
fn login_secrets(config: &Config) -> Vec<&Secret> {
    let management = if config.management_secrets.is_empty() { &config.secrets } else { &config.management_secrets };
    config.console.secret.iter().chain(management).filter(|s| !s.expose().is_empty()).collect()
}

impl Keys {
    /// Derives the session key from the login secrets (so every replica
    /// with the same configuration derives the same key, and changing a
    /// secret ends every session); a random key when there is none (proxy
    /// authentication only).
    pub(crate) fn new(config: &Config) -> Self {
        let secrets = login_secrets(config);
        let key = if secrets.is_empty() {
            rand::random()
        } else {
            let mut hash = Sha256::new();
            hash.update(b"scalelite-console-session-v1\0");
            for secret in &secrets {
                hash.update((secret.expose().len() as u64).to_be_bytes());
                hash.update(secret.expose().as_bytes());
            }
            hash.finalize().into()
        };
        Self {
            key,
            secrets: secrets.iter().map(|s| Sha256::digest(s.expose().as_bytes()).into()).collect(),
            failures: Mutex::new((Instant::now(), 0)),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // Any key length is valid for HMAC.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// Whether `candidate` is one of the login secrets (compared in
    /// constant time, over digests so the length does not show).
    pub(crate) fn secret_matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        self.secrets.iter().fold(false, |found, secret| found | bool::from(secret.ct_eq(&digest)))
    }

    /// Whether logins are refused for now (too many failures); counts
    /// `failed` when given.
    pub(crate) fn login_throttled(&self, failed: bool) -> bool {
        let Ok(mut window) = self.failures.lock() else { return true };
        if window.0.elapsed() >= LOGIN_WINDOW {
            *window = (Instant::now(), 0);
        }
        if failed {
            window.1 = window.1.saturating_add(1);
        }
        window.1 >= MAX_FAILED_LOGINS
    }

    /// A new session cookie value for `name`, valid for `ttl`.
    pub(crate) fn issue(&self, name: &str, ttl: Duration) -> String {
        let expires = now_secs().saturating_add(ttl.as_secs().max(1));
        let nonce: [u8; 16] = rand::random();
        let (expires, nonce, name) = (expires.to_string(), hex::encode(nonce), hex::encode(name.as_bytes()));
        let tag =
            self.mac(&[b"session", expires.as_bytes(), nonce.as_bytes(), name.as_bytes()]).finalize().into_bytes();
        format!("v1.{expires}.{nonce}.{name}.{}", hex::encode(tag))
    }

    /// The operator of a valid, unexpired session cookie value.
    fn session(&self, value: &str) -> Option<Operator> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(expires), Some(nonce), Some(name), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let tag = hex::decode(tag).ok()?;
        self.mac(&[b"session", expires.as_bytes(), nonce.as_bytes(), name.as_bytes()]).verify_slice(&tag).ok()?;
        if expires.parse::<u64>().ok()? <= now_secs() {
            return None;
        }
        let name = String::from_utf8(hex::decode(name).ok()?).ok()?;
        Some(Operator { name, csrf: self.csrf(b"session", nonce) })
    }

    fn csrf(&self, kind: &[u8], binding: &str) -> String {
        hex::encode(self.mac(&[b"csrf", kind, binding.as_bytes()]).finalize().into_bytes())
    }

    /// The operator of a request: the proxy's header when configured and
    /// present, else the session cookie.
    pub(crate) fn operator(&self, config: &Config, headers: &HeaderMap) -> Option<Operator> {
        if let Some(name) = config.console.auth_header.as_deref() {
            let user = headers.get(name).and_then(|v| v.to_str().ok()).map(clean_name).filter(|n| !n.is_empty());
            if let Some(user) = user {
                let csrf = self.csrf(b"proxy", &user);
                return Some(Operator { name: user, csrf });
            }
        }
        cookies(headers).find(|(name, _)| *name == COOKIE).and_then(|(_, value)| self.session(value))
    }
}

/// Whether `sent` is the operator's CSRF token (constant time).
pub(crate) fn csrf_matches(operator: &Operator, sent: Option<&str>) -> bool {
    sent.is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(operator.csrf.as_bytes())))
}

/// `name` cut to [`MAX_NAME`] printable characters.
pub(crate) fn clean_name(name: &str) -> String {
    name.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME).collect()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The `name=value` pairs of every `Cookie` header.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

/// Whether the request reached the proxy over HTTPS, or the configuration
/// says so.
fn secure(config: &Config, headers: &HeaderMap) -> bool {
    config.console.secure_cookie.unwrap_or_else(|| {
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
    })
}

/// The `Set-Cookie` of a session (`value`), or of its removal (`None`).
pub(crate) fn set_cookie(config: &Config, headers: &HeaderMap, value: Option<&str>) -> HeaderValue {
    let path = &config.console.path;
    let secure = if secure(config, headers) { "; Secure" } else { "" };
    let text = match value {
        Some(value) => {
            format!(
                "{COOKIE}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
                config.console.session_ttl.as_secs().max(1)
            )
        }
        None => format!("{COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    };
    // Hex, digits, dots and a checked path only.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("scalelite_console=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scalelite_core::config::Env;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut env = Env::default().with("LOADBALANCER_SECRET", "lb-secret");
        for (k, v) in pairs {
            env = env.with(k, *v);
        }
        Config::from_env(&env).unwrap()
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {COOKIE}={value}")).unwrap());
        headers
    }

    #[test]
    fn sessions_round_trip_and_resist_tampering() {
        let config = config(&[("CONSOLE_SECRET", "console")]);
        let keys = Keys::new(&config);
        let value = keys.issue("alice", Duration::from_secs(60));
        let operator = keys.operator(&config, &with_cookie(&value)).unwrap();
        assert_eq!(operator.name, "alice");
        assert!(csrf_matches(&operator, Some(&operator.csrf)));
        assert!(!csrf_matches(&operator, Some("0")));
        assert!(!csrf_matches(&operator, None));
        let forged = value.replace(&hex::encode("alice"), &hex::encode("mallory"));
        assert!(keys.operator(&config, &with_cookie(&forged)).is_none());
        // Another replica with the same secrets accepts it; other secrets do not.
        assert!(Keys::new(&config).operator(&config, &with_cookie(&value)).is_some());
        let other = self::config(&[("CONSOLE_SECRET", "changed")]);
        assert!(Keys::new(&other).operator(&other, &with_cookie(&value)).is_none());
    }

    #[test]
    fn expired_sessions_are_refused() {
        let config = config(&[]);
        let keys = Keys::new(&config);
        let mut parts: Vec<String> = keys.issue("bob", Duration::from_secs(60)).split('.').map(str::to_owned).collect();
        parts[1] = (now_secs() - 1).to_string();
        assert!(keys.operator(&config, &with_cookie(&parts.join("."))).is_none());
    }

    #[test]
    fn secrets_that_log_in() {
        let keys = Keys::new(&config(&[("CONSOLE_SECRET", "console")]));
        assert!(keys.secret_matches("console"));
        assert!(keys.secret_matches("lb-secret"));
        assert!(!keys.secret_matches("console "));
        let keys = Keys::new(&config(&[("MANAGEMENT_API_SECRETS", "m1:m2")]));
        assert!(keys.secret_matches("m2"));
        assert!(!keys.secret_matches("lb-secret"));
    }

    #[test]
    fn failed_logins_are_limited() {
        let keys = Keys::new(&config(&[]));
        for _ in 1..MAX_FAILED_LOGINS {
            assert!(!keys.login_throttled(true));
        }
        assert!(keys.login_throttled(true));
        assert!(keys.login_throttled(false));
    }

    #[test]
    fn proxy_header_names_the_operator() {
        let config = config(&[("CONSOLE_AUTH_HEADER", "X-Forwarded-User")]);
        let keys = Keys::new(&config);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", HeaderValue::from_static("carol"));
        assert_eq!(keys.operator(&config, &headers).unwrap().name, "carol");
        assert!(keys.operator(&config, &HeaderMap::new()).is_none());
    }

    #[test]
    fn cookie_flags() {
        let config = config(&[]);
        let plain = set_cookie(&config, &HeaderMap::new(), Some("v"));
        assert_eq!(
            plain.to_str().unwrap(),
            "scalelite_console=v; Path=/scalelite/console; Max-Age=28800; HttpOnly; SameSite=Strict"
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(set_cookie(&config, &headers, Some("v")).to_str().unwrap().ends_with("; Secure"));
    }
}
