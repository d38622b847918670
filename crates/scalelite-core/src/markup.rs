//! A streaming XML writer that renders exactly like Ruby's
//! `Builder::XmlMarkup.new(indent: 2)`, the engine of Scalelite's
//! `*.xml.builder` views (the recordings calls).
//!
//! Its rules differ from [`crate::xml::Element`]'s (Nokogiri) rendering in
//! ways clients can see, so they are kept here on purpose:
//!
//! * a block element is always written open/close, even when empty
//!   (`<recordings>` newline `</recordings>`), never self-closed;
//! * a `nil` value gives a self-closed element (`<length/>`), an empty
//!   string an open/close pair on one line (`<name></name>`);
//! * text escapes `&`, `<`, `>`; attributes also `"`, CR and LF; characters
//!   that XML 1.0 forbids become `*`;
//! * no XML declaration.

use std::fmt::Write as _;

/// An XML document being written (see the module documentation).
#[derive(Debug, Default)]
pub struct Markup {
    out: String,
    depth: usize,
}

impl Markup {
    /// An empty document.
    pub fn new() -> Self {
        Self { out: String::with_capacity(1024), depth: 0 }
    }

    /// Opens a block element (`xml.name do ... end`).
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.open_with_attrs(name, &[])
    }

    /// Opens a block element with attributes (`xml.name(attrs) do ... end`).
    pub fn open_with_attrs(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.attrs(attrs);
        self.out.push_str(">\n");
        self.depth += 1;
        self
    }

    /// Closes the innermost block element.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        self
    }

    /// `xml.name value`: `<name>value</name>` (also for an empty string).
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.text_with_attrs(name, value, &[])
    }

    /// `xml.name value, attrs`.
    pub fn text_with_attrs(&mut self, name: &str, value: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.attrs(attrs);
        self.out.push('>');
        escape_into(&mut self.out, value, false);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
        self
    }

    /// `xml.name value` for a number.
    pub fn number(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.indent();
        let _ = writeln!(self.out, "<{name}>{value}</{name}>");
        self
    }

    /// `xml.name nil`: `<name/>`.
    pub fn empty(&mut self, name: &str) -> &mut Self {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str("/>\n");
        self
    }

    /// `xml.name(attrs)` without content: `<name a="v"/>`.
    pub fn empty_with_attrs(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.attrs(attrs);
        self.out.push_str("/>\n");
        self
    }

    /// `xml.name value` where a Ruby `nil` renders `<name/>`.
    pub fn optional(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(name, value),
            None => self.empty(name),
        }
    }

    /// `xml.cdata! text` on its own line (characters XML 1.0 forbids become
    /// `*`, as in text).
    pub fn cdata(&mut self, text: &str) -> &mut Self {
        self.indent();
        self.out.push_str("<![CDATA[");
        for ch in text.replace("]]>", "]]]]><![CDATA[>").chars() {
            self.out.push(if crate::xml::is_xml_char(ch) { ch } else { '*' });
        }
        self.out.push_str("]]>\n");
        self
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn attrs(&mut self, attrs: &[(&str, &str)]) {
        for (name, value) in attrs {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value, true);
            self.out.push('"');
        }
    }
}

fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' if attribute => out.push_str("&#13;"),
            c if crate::xml::is_xml_char(c) => out.push(c),
            _ => out.push('*'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_ruby_builder() {
        let mut xml = Markup::new();
        xml.open("response").text("returncode", "SUCCESS").open("recordings").close("recordings");
        xml.optional("name", None).text("empty", "").number("startTime", 1_700_000_000_000_i64);
        xml.open("key").cdata("").close("key");
        xml.open("meta").cdata("x\u{1}]]>y").close("meta");
        xml.text_with_attrs("image", "https://x/a&b.png", &[("alt", "\"Hi\"\n"), ("width", "")]);
        xml.text("bad", "a\u{1}b<c>");
        xml.open_with_attrs("list", &[("kind", "a<b")]).empty_with_attrs("item", &[("id", "1")]).close("list");
        xml.close("response");
        insta::assert_snapshot!(xml.finish(), @r#"
        <response>
          <returncode>SUCCESS</returncode>
          <recordings>
          </recordings>
          <name/>
          <empty></empty>
          <startTime>1700000000000</startTime>
          <key>
            <![CDATA[]]>
          </key>
          <meta>
            <![CDATA[x*]]]]><![CDATA[>y]]>
          </meta>
          <image alt="&quot;Hi&quot;&#10;" width="">https://x/a&amp;b.png</image>
          <bad>a*b&lt;c&gt;</bad>
          <list kind="a&lt;b">
            <item id="1"/>
          </list>
        </response>
        "#);
    }
}
