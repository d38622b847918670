//! Browsers that mishandle `SameSite=None` (Chromium's list of known
//! incompatible clients, which Scalelite's `CookieSameSiteCompat` follows):
//! iOS 12 and macOS 10.14 Safari (and embedded web views) treat it as `Strict`, Chrome 51–66 and
//! UC Browser before 12.13.2 drop the cookie. Those get the cookie without a
//! `SameSite` attribute.

/// Whether `user_agent` belongs to a browser that must not be sent
/// `SameSite=None`.
pub(crate) fn same_site_none_incompatible(user_agent: &str) -> bool {
    webkit_same_site_bug(user_agent) || drops_unrecognized_same_site_cookies(user_agent)
}

fn webkit_same_site_bug(ua: &str) -> bool {
    if ios_major(ua) == Some(12) {
        return true;
    }
    macos_version(ua) == Some((10, 14)) && ((is_safari(ua) && !is_chromium_based(ua)) || is_mac_embedded_browser(ua))
}

fn drops_unrecognized_same_site_cookies(ua: &str) -> bool {
    if ua.contains("UCBrowser/") {
        return !uc_browser_at_least(ua, (12, 13, 2));
    }
    is_chromium_based(ua) && chromium_major(ua).is_some_and(|v| (51..=66).contains(&v))
}

/// Leading decimal digits of `s` as a number, and the rest.
fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// `(iP…; CPU … OS <major>… ) AppleWebKit/`: the last `OS <digits>` between
/// `; CPU ` and `) AppleWebKit/`.
fn ios_major(ua: &str) -> Option<u32> {
    let after_ip = &ua[ua.find("(iP")? + 3..];
    let after_cpu = &after_ip[after_ip.find("; CPU ")? + 6..];
    let inner = &after_cpu[..after_cpu.rfind(") AppleWebKit/")?];
    inner.match_indices("OS ").filter_map(|(i, _)| leading_number(&inner[i + 3..]).map(|(n, _)| n)).last()
}

/// `(Macintosh; … Mac OS X <major>_<minor>… ) AppleWebKit/`.
fn macos_version(ua: &str) -> Option<(u32, u32)> {
    let after_mac = &ua[ua.find("(Macintosh;")? + 11..];
    let inner = &after_mac[..after_mac.rfind(") AppleWebKit/")?];
    let version = &inner[inner.find("Mac OS X ")? + 9..];
    let (major, rest) = leading_number(version)?;
    let (minor, _) = leading_number(rest.strip_prefix('_')?)?;
    Some((major, minor))
}

/// `Version/… Safari/`.
fn is_safari(ua: &str) -> bool {
    ua.find("Version/").is_some_and(|i| ua[i..].contains(" Safari/"))
}

fn is_chromium_based(ua: &str) -> bool {
    ua.contains("Chrome") || ua.contains("Chromium")
}

/// The whole string is `Mozilla/<v> (Macintosh; … Mac OS X <v>) AppleWebKit/<v> (KHTML, like Gecko)`
/// (apps embedding the system web view on macOS).
fn is_mac_embedded_browser(ua: &str) -> bool {
    let version = |s: &str, extra: u8| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == extra);
    let Some(head) = ua.strip_suffix(" (KHTML, like Gecko)") else { return false };
    let Some((head, webkit)) = head.rsplit_once(") AppleWebKit/") else { return false };
    let Some(rest) = head.strip_prefix("Mozilla/") else { return false };
    let Some((mozilla, platform)) = rest.split_once(" (Macintosh;") else { return false };
    let Some((_, mac)) = platform.rsplit_once("Mac OS X ") else { return false };
    version(mozilla, b'.') && version(webkit, b'.') && version(mac, b'_')
}

/// `Chrom<name>/<major>… ` (Chrome, Chromium, and `Chrome`-named forks).
fn chromium_major(ua: &str) -> Option<u32> {
    ua.match_indices("Chrom").find_map(|(i, _)| {
        let after = &ua[i + 5..];
        let slash = after.find('/')?;
        if slash == 0 || after[..slash].contains(' ') {
            return None;
        }
        let (major, rest) = leading_number(&after[slash + 1..])?;
        rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.').starts_with(' ').then_some(major)
    })
}

/// `UCBrowser/<major>.<minor>.<build>… ` at least `min`; false when the
/// version cannot be read (so such a browser counts as incompatible).
fn uc_browser_at_least(ua: &str, min: (u32, u32, u32)) -> bool {
    let version = || {
        let after = &ua[ua.find("UCBrowser/")? + 10..];
        let (major, rest) = leading_number(after)?;
        let (minor, rest) = leading_number(rest.strip_prefix('.')?)?;
        let (build, rest) = leading_number(rest.strip_prefix('.')?)?;
        rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
            .starts_with(' ')
            .then_some((major, minor, build))
    };
    version().is_some_and(|v| v >= min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incompatible_clients() {
        for ua in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 12_1_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (iPad; CPU OS 12_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/71.0.3578.89 Mobile/15E148 Safari/605.1",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Safari/605.1.15",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/66.0.3359.181 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",
            "Mozilla/5.0 (Linux; U; Android 8.1.0; en-US; Nexus 6P Build/OPM7.181205.001) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/57.0.2987.108 UCBrowser/12.11.1.1197 Mobile Safari/537.36",
        ] {
            assert!(same_site_none_incompatible(ua), "{ua}");
        }
    }

    #[test]
    fn compatible_clients() {
        for ua in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 13_2_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0.3 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/67.0.3396.99 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Mozilla/5.0 (Linux; U; Android 10; en-US; SM-A505F Build/QP1A.190711.020) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
            "curl/8.5.0",
            "",
        ] {
            assert!(!same_site_none_incompatible(ua), "{ua}");
        }
    }
}
