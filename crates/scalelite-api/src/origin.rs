//! The origin (`scheme://host[:port]`) clients reached us on, as Rails
//! computes `request.protocol + request.host_with_port`: recording URLs and
//! playback redirects point back at the balancer, also behind a proxy.
//!
//! The host comes from [`crate::host::request_host_with_port`].

use http::HeaderMap;

use crate::host::request_host_with_port;

/// `https://` when the request came over TLS according to the proxy
/// headers Rack honours (`X-Forwarded-Ssl: on`, `X-Forwarded-Scheme`, the
/// first value of `X-Forwarded-Proto`); else `http://`. Then the host of
/// [`request_host_with_port`] (`localhost` without one), with its port
/// unless it is the scheme's standard one.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let https = is_https(headers);
    let raw = request_host_with_port(headers, None).unwrap_or("localhost");
    let (host, port) = split_port(raw);
    let standard = if https { 443 } else { 80 };
    let scheme = if https { "https" } else { "http" };
    match port {
        Some(port) if port != standard => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn is_https(headers: &HeaderMap) -> bool {
    if header_str(headers, "x-forwarded-ssl").is_some_and(|v| v.eq_ignore_ascii_case("on")) {
        return true;
    }
    let scheme = header_str(headers, "x-forwarded-scheme")
        .or_else(|| header_str(headers, "x-forwarded-proto").map(|v| v.split(',').next().unwrap_or("").trim()));
    scheme.is_some_and(|s| s.eq_ignore_ascii_case("https"))
}

/// Splits `host:port` (also `[v6]:port`); a port that is not a number stays
/// part of the host, as in Rails.
fn split_port(raw: &str) -> (&str, Option<u16>) {
    if let Some((host, port)) = raw.rsplit_once(':')
        && (!host.contains(':') || host.ends_with(']'))
        && let Ok(port) = port.parse::<u16>()
    {
        return (host, Some(port));
    }
    (raw, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::forwarded_host;
    use http::Uri;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn host_port_and_proxies() {
        assert_eq!(origin(&headers(&[("host", "lb.example.org")])), "http://lb.example.org");
        assert_eq!(origin(&headers(&[("host", "lb.example.org:80")])), "http://lb.example.org");
        assert_eq!(origin(&headers(&[("host", "127.0.0.1:3000")])), "http://127.0.0.1:3000");
        assert_eq!(origin(&headers(&[("host", "[::1]:8443")])), "http://[::1]:8443");
        let proxied = headers(&[
            ("host", "127.0.0.1:3000"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "lb.example.org"),
        ]);
        assert_eq!(origin(&proxied), "https://lb.example.org");
        let chain = headers(&[
            ("host", "a"),
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "a.example, b.example:8443"),
        ]);
        assert_eq!(origin(&chain), "https://b.example:8443");
        assert_eq!(origin(&headers(&[("host", "h:443"), ("x-forwarded-ssl", "on")])), "https://h");
    }

    #[test]
    fn the_last_forwarded_host_wins_across_lines() {
        let lines =
            headers(&[("host", "a"), ("x-forwarded-host", "evil.example"), ("x-forwarded-host", "lb.example.org, ")]);
        assert_eq!(forwarded_host(&lines), Some("lb.example.org"));
        assert_eq!(origin(&lines), "http://lb.example.org");
        assert_eq!(request_host_with_port(&lines, None), Some("lb.example.org"));
        let blank = headers(&[("host", " lb.example.org:8080 "), ("x-forwarded-host", " , ")]);
        assert_eq!(request_host_with_port(&blank, None), Some("lb.example.org:8080"));
        let uri: Uri = "http://absolute.example/x".parse().unwrap();
        assert_eq!(request_host_with_port(&HeaderMap::new(), Some(&uri)), Some("absolute.example"));
        assert_eq!(origin(&HeaderMap::new()), "http://localhost");
    }
}
