//! The host a request was made to, one rule for everything that reads it
//! (host authorization, tenants, redirects, recording and callback URLs):
//! [`request_host_with_port`]; without its port, [`request_host`]; and what
//! it says: the tenant it names, whether `URL_HOST` allows it.

use http::{HeaderMap, Uri, header};

/// The host (and port, if given) a request was made to, as Rails'
/// `request.host_with_port` reads it: the [`forwarded_host`] when there is
/// one, else `Host`, else the authority of an absolute-form request target.
pub(crate) fn request_host_with_port<'a>(headers: &'a HeaderMap, uri: Option<&'a Uri>) -> Option<&'a str> {
    forwarded_host(headers)
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()))
        .or_else(|| uri.and_then(Uri::host))
}

/// The last value of `X-Forwarded-Host`: its lines in order, each split at
/// commas, blanks skipped (Rails: `x_forwarded_host.split(/,\s?/).last`,
/// with the lines of a repeated header joined by commas as Puma does). A
/// line that is not ASCII text is skipped.
pub(crate) fn forwarded_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all("x-forwarded-host")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())
}

/// The host a request was made to ([`request_host_with_port`]), without
/// port.
pub(crate) fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    request_host_with_port(headers, Some(uri)).map(strip_port)
}

/// The tenant name a host selects: its first DNS label.
pub(crate) fn tenant_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Whether `candidate` (a host, with or without port) is `url_host` or,
/// with `subdomains`, a sub-domain of it (ASCII case ignored).
pub(crate) fn host_matches(candidate: &str, url_host: &str, subdomains: bool) -> bool {
    let name = strip_port(candidate);
    name.eq_ignore_ascii_case(url_host)
        || (subdomains
            && name.len() > url_host.len() + 1
            && name[name.len() - url_host.len()..].eq_ignore_ascii_case(url_host)
            && name.as_bytes()[name.len() - url_host.len() - 1] == b'.')
}

/// `host` without its `:port`; an IPv6 literal also without its brackets.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_names() {
        let uri: Uri = "/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "a.sl.example.com:443".parse().unwrap());
        assert_eq!(request_host(&headers, &uri), Some("a.sl.example.com"));
        headers.append("x-forwarded-host", "b.sl.example.com, c.sl.example.com".parse().unwrap());
        assert_eq!(request_host(&headers, &uri), Some("c.sl.example.com"));
        assert_eq!(tenant_name("c.sl.example.com"), "c");
        assert_eq!(tenant_name("localhost"), "localhost");
    }

    #[test]
    fn hosts() {
        assert!(host_matches("sl.example.com", "sl.example.com", false));
        assert!(host_matches("SL.example.com:443", "sl.example.com", false));
        assert!(!host_matches("evil.com", "sl.example.com", false));
        assert!(!host_matches("a.sl.example.com", "sl.example.com", false));
        assert!(host_matches("a.sl.example.com", "sl.example.com", true));
        assert!(!host_matches("xsl.example.com", "sl.example.com", true));
    }
}
