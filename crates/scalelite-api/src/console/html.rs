//! Markup helpers: every value goes through [`esc`]; the page frame, inline
//! CSS and the small SVG plots.

use std::fmt::Write as _;

/// `text` with `& < > " '` replaced by entities: safe in element content
/// and in quoted attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no business in a page.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `segment` percent-encoded for one path segment (RFC 3986 unreserved
/// characters kept).
pub(crate) fn path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const CSS: &str = "\
:root{color-scheme:light;--fg:#1a1a1a;--muted:#4a4a4a;--bg:#fff;--line:#c8c8c8;--accent:#0b4f9c;--bad:#a4000f;--ok:#1d6b2a;--warn:#7a4a00}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{display:flex;flex-wrap:wrap;gap:1em;align-items:center;justify-content:space-between;padding:.6em 1em;background:#10263f;color:#fff}
header a{color:#fff}
header button{color:#fff;background:transparent;border-color:#fff}
header h1{font-size:1.15em;margin:0}
main{padding:1em;max-width:1400px}
h2{font-size:1.1em;margin:1.4em 0 .4em}
a{color:var(--accent)}
a:focus,button:focus,input:focus,summary:focus{outline:3px solid #f5a623;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1em;top:.5em;background:#fff;color:#000;padding:.3em}
table{border-collapse:collapse;margin:.3em 0 1em;min-width:50%}
caption{text-align:left;font-weight:600;padding:.2em 0}
th,td{border-bottom:1px solid var(--line);padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef1f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.state-enabled{color:var(--ok);font-weight:600}.state-cordoned{color:var(--warn);font-weight:600}.state-disabled{color:var(--bad);font-weight:600}
.offline{color:var(--bad);font-weight:600}.online{color:var(--ok)}
.muted{color:var(--muted)}
.notice{border-left:4px solid var(--accent);background:#eef4fb;padding:.5em .8em;margin:.6em 0}
.error{border-left:4px solid var(--bad);background:#fbeeee;padding:.5em .8em;margin:.6em 0}
form.inline{display:inline}
button{font:inherit;padding:.25em .8em;border:1px solid #10263f;background:#fff;color:#10263f;border-radius:3px;cursor:pointer}
button.danger{border-color:var(--bad);color:var(--bad)}
button.primary{background:#10263f;color:#fff}
label{display:block;margin:.6em 0 .2em;font-weight:600}
input[type=text],input[type=password]{font:inherit;padding:.3em;border:1px solid #6b6b6b;border-radius:3px;min-width:18em}
.plots{display:flex;flex-wrap:wrap;gap:1em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
figure{display:inline-block;margin:0;border:1px solid var(--line);padding:.4em}
figcaption{font-size:.9em}
svg .load{stroke:#0b4f9c;fill:none;stroke-width:1.5}svg .users{stroke:#a4000f;fill:none;stroke-width:1.5;stroke-dasharray:4 2}
svg .axis{stroke:#6b6b6b;stroke-width:1}
";

/// What every page needs to frame its body.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// The console's base path.
    pub base: &'a str,
    /// `<title>` and `<h1>`.
    pub title: &'a str,
    /// Seconds between reloads, `None` for none.
    pub refresh: Option<u64>,
    /// The operator and their CSRF token (for the logout button), when
    /// logged in.
    pub operator: Option<(&'a str, &'a str)>,
}

/// A whole page around `body` (already markup).
pub(crate) fn page(frame: &Frame<'_>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if let Some(seconds) = frame.refresh {
        let _ = write!(out, "<meta http-equiv=\"refresh\" content=\"{seconds}\">");
    }
    let _ = write!(out, "<title>{} · Scalelite console</title><style>{CSS}</style></head><body>", esc(frame.title));
    out.push_str("<a class=\"skip\" href=\"#main\">Skip to content</a><header><h1>");
    let _ = write!(out, "<a href=\"{}\">Scalelite console</a> · {}</h1>", esc(frame.base), esc(frame.title));
    if let Some((name, csrf)) = frame.operator {
        let _ = write!(
            out,
            "<form class=\"inline\" method=\"post\" action=\"{}/logout\"><span>Signed in as <strong>{}</strong></span> \
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
            esc(frame.base),
            esc(name),
            esc(csrf)
        );
    }
    out.push_str("</header><main id=\"main\">");
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

/// One point of a plot: milliseconds since the epoch and a value.
pub(crate) type Point = (i64, f64);

/// A small line plot of two series (load, solid; users, dashed) as inline
/// SVG, with a text alternative naming the latest values.
pub(crate) fn plot(label: &str, load: &[Point], users: &[Point]) -> String {
    const W: f64 = 260.0;
    const H: f64 = 70.0;
    let all = load.iter().chain(users);
    let (mut t0, mut t1) = (i64::MAX, i64::MIN);
    for (t, _) in all {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
    }
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    let line = |series: &[Point], class: &str| -> String {
        let max = series.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(1.0);
        let mut points = String::new();
        for (t, v) in series {
            let x = (t.saturating_sub(t0)) as f64 / span * (W - 4.0) + 2.0;
            let y = H - 2.0 - (v / max) * (H - 6.0);
            let _ = write!(points, "{x:.1},{y:.1} ");
        }
        format!("<polyline class=\"{class}\" points=\"{}\"/>", points.trim_end())
    };
    let last = |series: &[Point]| series.last().map_or_else(|| "none".to_owned(), |(_, v)| format_number(*v));
    let seconds = (t1.saturating_sub(t0)).max(0) / 1000;
    let over = if seconds < 120 { format!("{seconds} seconds") } else { format!("{} minutes", seconds / 60) };
    let alt = format!(
        "{label}: load now {}, users now {}, over the last {over} ({} samples)",
        last(load),
        last(users),
        load.len().max(users.len())
    );
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure><svg role=\"img\" aria-label=\"{}\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <line class=\"axis\" x1=\"1\" y1=\"{}\" x2=\"{W}\" y2=\"{}\"/>",
        esc(&alt),
        H - 1.0,
        H - 1.0
    );
    if load.len() > 1 || users.len() > 1 {
        out.push_str(&line(load, "load"));
        out.push_str(&line(users, "users"));
    }
    let _ = write!(out, "</svg><figcaption>{}</figcaption></figure>", esc(&alt));
    out
}

/// A number as people read it: no trailing `.0`, two decimals at most.
pub(crate) fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<script>\"a\" & 'b'</script>"), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;");
        assert_eq!(esc("a\u{7}b"), "a\u{FFFD}b");
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(path_segment("bbb-1"), "bbb-1");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn plots_say_what_they_show() {
        let svg = plot("bbb-<1>", &[(0, 1.0), (60_000, 2.5)], &[(0, 3.0), (60_000, 4.0)]);
        assert!(svg.contains("load now 2.5, users now 4"));
        assert!(svg.contains("bbb-&lt;1&gt;"));
        assert!(svg.contains("<polyline"));
    }
}
