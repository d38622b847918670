//! A small XML element tree for BBB documents: parsing upstream replies,
//! building our own, and rendering them the way Scalelite (Nokogiri) does.
//!
//! BBB documents are small, data-oriented and free of namespaces and mixed
//! content, so a plain tree is the simplest faithful model: it keeps element
//! order, attributes, text and CDATA sections.
//!
//! Documents come from BBB servers and spool archives, so [`parse`] refuses
//! what no BBB document has and a hostile one could use: nesting deeper than
//! [`MAX_DEPTH`] (a tree that deep would overflow the stack when it is
//! dropped, cloned or rendered, all of which recurse) and a `<!DOCTYPE>`
//! (the only way to declare entities; only the five predefined entities and
//! character references are expanded). Parsing is iterative and linear in
//! the input.

use quick_xml::Reader;
use quick_xml::events::Event;

/// A node inside an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (already unescaped).
    Text(String),
    /// A `<![CDATA[...]]>` section.
    CData(String),
}

/// An XML element with its attributes and children.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Element {
    /// Tag name.
    pub name: String,
    /// Attributes in document order (values unescaped).
    pub attrs: Vec<(String, String)>,
    /// Children in document order.
    pub children: Vec<Node>,
}

/// The deepest element nesting [`parse`] accepts; the root element is at
/// depth 1. BBB replies and `metadata.xml` files are less than 15 deep, so
/// this is generous for real documents while keeping every recursion over a
/// parsed tree (drop, clone, rendering, text extraction) shallow.
pub const MAX_DEPTH: usize = 64;

/// The reason a document could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid XML: {0}")]
pub struct XmlError(String);

impl Element {
    /// An empty element.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), attrs: Vec::new(), children: Vec::new() }
    }

    /// Appends a child element holding `text` and returns `self` (builder style).
    pub fn with_text_child(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.push_text_child(name, text);
        self
    }

    /// Appends a child element and returns `self` (builder style).
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Appends a child element holding `text`.
    pub fn push_text_child(&mut self, name: impl Into<String>, text: impl Into<String>) {
        let mut child = Element::new(name);
        let text = text.into();
        if !text.is_empty() {
            child.children.push(Node::Text(text));
        }
        self.children.push(Node::Element(child));
    }

    /// Appends a child element.
    pub fn push_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The first child element called `name`, mutably.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find_map(|node| match node {
            Node::Element(e) if e.name == name => Some(e),
            _ => None,
        })
    }

    /// All child elements called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    /// The element at a `/`-separated path of child names below this one.
    pub fn at_path(&self, path: &str) -> Option<&Element> {
        path.split('/').filter(|s| !s.is_empty()).try_fold(self, |el, name| el.child(name))
    }

    /// Concatenated text and CDATA content of this element (not of
    /// descendants).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for node in &self.children {
            match node {
                Node::Text(t) | Node::CData(t) => out.push_str(t),
                Node::Element(_) => {}
            }
        }
        out
    }

    /// The text of the child at `path`, if that child exists.
    pub fn text_at(&self, path: &str) -> Option<String> {
        self.at_path(path).map(Element::text)
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Renders the element as an indented document, with or without the
    /// `<?xml version="1.0"?>` declaration Nokogiri emits.
    pub fn to_document(&self, declaration: bool) -> String {
        let mut out = String::with_capacity(256);
        if declaration {
            out.push_str("<?xml version=\"1.0\"?>\n");
        }
        self.render(&mut out, 0);
        out
    }

    /// Appends the element as [`Element::to_document`] renders it nested
    /// `depth` levels deep (two spaces of indentation a level), so parts of
    /// one document can be rendered separately and concatenated.
    pub fn render_into(&self, out: &mut String, depth: usize) {
        self.render(out, depth);
    }

    fn render(&self, out: &mut String, depth: usize) {
        indent(out, depth);
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            escape_into(out, v, true);
            out.push('"');
        }
        if self.children.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        let has_elements = self.children.iter().any(|n| matches!(n, Node::Element(_)));
        if has_elements {
            out.push('\n');
            for node in &self.children {
                match node {
                    Node::Element(e) => e.render(out, depth + 1),
                    Node::Text(t) => {
                        indent(out, depth + 1);
                        escape_into(out, t, false);
                        out.push('\n');
                    }
                    Node::CData(t) => {
                        indent(out, depth + 1);
                        cdata_into(out, t);
                        out.push('\n');
                    }
                }
            }
            indent(out, depth);
        } else {
            for node in &self.children {
                match node {
                    Node::Text(t) => escape_into(out, t, false),
                    Node::CData(t) => cdata_into(out, t),
                    Node::Element(_) => unreachable!("checked above"),
                }
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push_str(">\n");
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn cdata_into(out: &mut String, text: &str) {
    out.push_str("<![CDATA[");
    for ch in text.replace("]]>", "]]]]><![CDATA[>").chars() {
        out.push(xml_char(ch));
    }
    out.push_str("]]>");
}

/// Whether XML 1.0 allows `ch` in a document (its `Char` production:
/// tab, newline, carriage return, and everything from U+0020 except
/// U+FFFE and U+FFFF; a Rust `char` is never a surrogate).
pub fn is_xml_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r') || (ch >= '\u{20}' && ch != '\u{FFFE}' && ch != '\u{FFFF}')
}

/// `ch`, or U+FFFD (the replacement character) where XML 1.0 forbids it:
/// not even a character reference may name those, so text that holds one
/// (a control character in a request parameter, in a BBB reply) would make
/// the whole document ill-formed.
fn xml_char(ch: char) -> char {
    if is_xml_char(ch) { ch } else { '\u{FFFD}' }
}

/// Escapes `&`, `<`, `>` (and `"`, CR and LF in attributes); characters
/// XML 1.0 forbids become U+FFFD.
pub fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            _ => out.push(xml_char(ch)),
        }
    }
}

/// Escapes text for XML content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text, false);
    out
}

/// Parses a document and returns its root element.
///
/// Whitespace-only text between child elements is dropped; text in leaf
/// elements is kept verbatim. Refused, besides malformed XML: elements
/// nested deeper than [`MAX_DEPTH`], a `<!DOCTYPE>`, and entities other than
/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and character references.
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(input).map_err(|e| XmlError(format!("not UTF-8: {e}")))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| XmlError(e.to_string()))?;
        match event {
            Event::Start(start) => {
                check_depth(&stack)?;
                stack.push(element_from(&start)?);
            }
            Event::Empty(start) => {
                check_depth(&stack)?;
                let element = element_from(&start)?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                tidy(&mut element);
                attach(&mut stack, &mut root, element)?;
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| XmlError(e.to_string()))? {
                    Some(ch) => ch.to_string(),
                    None => match &*r {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(XmlError(format!("unknown entity &{other};"))),
                    },
                };
                push_text(&mut stack, &resolved)?;
            }
            Event::CData(c) => {
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Node::CData((*c).to_owned()));
                }
            }
            Event::Eof => break,
            Event::DocType(_) => {
                return Err(XmlError("<!DOCTYPE> is not allowed (no DTDs or entity declarations)".into()));
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("unclosed element".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

/// Refuses an element that would sit below [`MAX_DEPTH`] open ones.
fn check_depth(open: &[Element]) -> Result<(), XmlError> {
    if open.len() >= MAX_DEPTH {
        return Err(XmlError(format!("elements nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(())
}

/// Refuses a name that XML's grammar forbids in a way that would make the
/// rendered document unreadable: quick-xml reads anything up to whitespace
/// as an element's name and anything up to `=` as an attribute's, so it
/// takes `<a/b= …>` or an attribute named `"x`, which rendered again do not
/// parse. Characters no XML name holds (delimiters, quotes, whitespace,
/// control characters) are refused; other odd ones a lenient server might
/// send are kept.
fn check_name(name: &str, what: &str) -> Result<(), XmlError> {
    let forbidden = |c: char| {
        c.is_control()
            || c.is_whitespace()
            || matches!(c, '/' | '=' | '<' | '>' | '"' | '\'' | '&' | '\u{FFFE}' | '\u{FFFF}')
    };
    if let Some(c) = name.chars().find(|&c| forbidden(c)) {
        return Err(XmlError(format!("{what} name with the character {c:?}")));
    }
    Ok(())
}

fn element_from(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, XmlError> {
    let name = start.name().0.to_owned();
    if name.is_empty() {
        // `<\r/>` or `< >`: quick-xml ends a name at whitespace, so it reads
        // an element without one, which would be rendered as `</>`.
        return Err(XmlError("element without a name".into()));
    }
    check_name(&name, "element")?;
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError(e.to_string()))?;
        let key = attr.key.0.to_owned();
        if key.is_empty() {
            return Err(XmlError("attribute without a name".into()));
        }
        check_name(&key, "attribute")?;
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| XmlError(e.to_string()))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element { name, attrs, children: Vec::new() })
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError("text outside the root element".into())),
    }
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None if root.is_none() => *root = Some(element),
        None => return Err(XmlError("more than one root element".into())),
    }
    Ok(())
}

/// Drops whitespace-only text nodes from elements that contain elements.
fn tidy(element: &mut Element) {
    if element.children.iter().any(|n| matches!(n, Node::Element(_))) {
        element.children.retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
    }
}

/// Removes the `<module name="…">` children of the root element (BBB's
/// `<modules>` document of a POST create) whose `name` is one of `names`,
/// keeping every other byte of `input` as it was. `None` when nothing was
/// removed (forward the original). Refused like [`parse`]: malformed XML
/// and a `<!DOCTYPE>`. Linear in the input; no recursion.
pub fn remove_modules(input: &[u8], names: &[&str]) -> Result<Option<Vec<u8>>, XmlError> {
    let text = std::str::from_utf8(input).map_err(|e| XmlError(format!("not UTF-8: {e}")))?;
    let mut reader = Reader::from_str(text);
    let mut depth = 0_usize;
    let mut removed: Vec<(usize, usize)> = Vec::new();
    let position = |reader: &Reader<&[u8]>| usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
    loop {
        let before = position(&reader);
        match reader.read_event().map_err(|e| XmlError(e.to_string()))? {
            Event::Start(start) => {
                if depth == 1 && is_named_module(&start, names)? {
                    let end = start.to_end().into_owned();
                    reader.read_to_end(end.name()).map_err(|e| XmlError(e.to_string()))?;
                    removed.push((before, position(&reader)));
                } else {
                    depth += 1;
                }
            }
            Event::Empty(start) if depth == 1 && is_named_module(&start, names)? => {
                removed.push((before, position(&reader)));
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::DocType(_) => {
                return Err(XmlError("<!DOCTYPE> is not allowed (no DTDs or entity declarations)".into()));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if removed.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut at = 0;
    for (start, end) in removed {
        out.extend_from_slice(input.get(at..start).unwrap_or_default());
        at = end;
    }
    out.extend_from_slice(input.get(at..).unwrap_or_default());
    Ok(Some(out))
}

/// Whether `start` is a `<module>` whose `name` attribute is in `names`.
fn is_named_module(start: &quick_xml::events::BytesStart<'_>, names: &[&str]) -> Result<bool, XmlError> {
    if start.name().as_ref() != "module" {
        return Ok(false);
    }
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError(e.to_string()))?;
        if attr.key.as_ref() == "name" {
            let value =
                attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(|e| XmlError(e.to_string()))?;
            return Ok(names.contains(&value.as_ref()));
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bbb_reply() {
        let doc = parse(
            br#"<?xml version="1.0" encoding="UTF-8"?>
<response>
  <returncode>SUCCESS</returncode>
  <meetings>
    <meeting><meetingName>A &amp; B &#233;</meetingName><metadata><tenant-id></tenant-id></metadata></meeting>
    <meeting><meetingName><![CDATA[x<y]]></meetingName></meeting>
  </meetings>
</response>"#,
        )
        .unwrap();
        assert_eq!(doc.name, "response");
        assert_eq!(doc.text_at("returncode").as_deref(), Some("SUCCESS"));
        let names: Vec<_> = doc
            .child("meetings")
            .unwrap()
            .children_named("meeting")
            .map(|m| m.text_at("meetingName").unwrap())
            .collect();
        assert_eq!(names, ["A & B é", "x<y"]);
        assert_eq!(doc.text_at("meetings/meeting/metadata/tenant-id").as_deref(), Some(""));
    }

    #[test]
    fn nameless_elements_are_refused() {
        // Found by the bbb_reply fuzz target: accepted, then rendered as
        // `</>`, which no parser reads back.
        for doc in [&b"<\r/>"[..], b"< />", b"<\t>x</\t>", b"<a><\n/></a>"] {
            let error = parse(doc).unwrap_err().to_string();
            assert!(error.contains("element without a name"), "{doc:?}: {error}");
        }
    }

    #[test]
    fn names_no_xml_name_holds_are_refused() {
        // Found by the bbb_reply fuzz target: `<MisBreakoutIDecr/Id= "\0…`
        // was read as an element named `MisBreakoutIDecr/Id=` with an
        // attribute named `"\0…`, and its rendering did not parse again.
        for doc in [
            &b"<a/b= x=\"1\"/>"[..],
            b"<a \"b=\"1\"/>",
            b"<a b\0c=\"1\"/>",
            b"<a\0b/>",
            b"<a&b>x</a&b>",
            b"<a b'c=\"1\"/>",
        ] {
            if let Ok(doc) = parse(doc) {
                let rendered = doc.to_document(true);
                assert!(parse(rendered.as_bytes()).is_ok(), "{doc:?} rendered as {rendered:?} does not parse again");
            }
        }
        let crash =
            b"<MisBreakoutIDecr/Id=\n\"\0\0\0\0PEersion=\"4<MisBrea\0tIDecr/I.<![\0gID''g'\"\0\0\0\0PEersion=\"2.\"/>";
        assert!(parse(crash).is_err());
        // The fuzzer's own input (scripts/fuzz starts each run from it).
        let found = include_bytes!("../../../fuzz/regressions/bbb_reply/names-with-delimiters");
        assert!(parse(found).is_err());
        // Names a lenient server may send and that render back are kept.
        for ok in [&b"<bbb-origin-version/>"[..], b"<a.b_c:d x-y=\"1\"/>", b"<m\xc3\xa9ta/>", b"<a@b/>"] {
            let doc = parse(ok).unwrap();
            assert!(parse(doc.to_document(true).as_bytes()).is_ok());
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"<html><body>oops").is_err());
        assert!(parse(b"not xml at all").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a></b>").is_err());
    }

    /// `depth` nested `<d>` elements around `innermost`.
    fn nested(depth: usize, innermost: &str) -> String {
        format!("{}{innermost}{}", "<d>".repeat(depth), "</d>".repeat(depth))
    }

    fn depth_of(mut element: &Element) -> usize {
        let mut depth = 1;
        while let Some(child) = element.child("d") {
            (element, depth) = (child, depth + 1);
        }
        depth
    }

    #[test]
    fn a_document_at_exactly_the_depth_limit_parses() {
        let doc = parse(nested(MAX_DEPTH, "x").as_bytes()).unwrap();
        assert_eq!(depth_of(&doc), MAX_DEPTH);
        // An empty element counts like any other.
        let doc = parse(nested(MAX_DEPTH - 1, "<d/>").as_bytes()).unwrap();
        assert_eq!(depth_of(&doc), MAX_DEPTH);
        assert!(doc.to_document(true).contains(&format!("{}<d/>", "  ".repeat(MAX_DEPTH - 1))));
    }

    #[test]
    fn deeper_documents_are_refused_with_the_limit_named() {
        let expected = format!("invalid XML: elements nested deeper than {MAX_DEPTH} levels");
        for doc in [
            nested(MAX_DEPTH + 1, "x"),
            nested(MAX_DEPTH, "<d/>"),
            // Deep below a shallow start, as in a getMeetings reply.
            format!("<response><returncode>SUCCESS</returncode><meetings>{}</meetings></response>", nested(100, "")),
            // Far too deep to drop recursively, and unclosed: refused before
            // the end of the input is read.
            "<d>".repeat(1_000_000),
        ] {
            assert_eq!(parse(doc.as_bytes()).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn doctypes_and_custom_entities_are_refused() {
        for doc in [
            "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]><r>&b;</r>",
            "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><r/>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE response><response><returncode>SUCCESS</returncode></response>",
        ] {
            let error = parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(error.contains("<!DOCTYPE> is not allowed"), "{doc}: {error}");
        }
        // Without a DTD an undeclared entity is an error, in text and in attributes.
        assert!(parse(b"<r>&nbsp;</r>").unwrap_err().to_string().contains("unknown entity &nbsp;"));
        assert!(parse(b"<r a=\"&nbsp;\"/>").is_err());
        // The five predefined entities and character references still work.
        let doc =
            parse(b"<r a=\"&lt;&gt;&amp;&quot;&apos;&#65;&#x42;\">&lt;&gt;&amp;&quot;&apos;&#65;&#x42;</r>").unwrap();
        assert_eq!(doc.attr("a"), Some("<>&\"'AB"));
        assert_eq!(doc.text(), "<>&\"'AB");
    }

    #[test]
    fn renders_like_nokogiri() {
        let doc = Element::new("response")
            .with_text_child("returncode", "FAILED")
            .with_text_child("messageKey", "notFound")
            .with_text_child("message", "a < b & \"c\"")
            .with_child(Element::new("meetings"));
        insta::assert_snapshot!(doc.to_document(true), @r#"
        <?xml version="1.0"?>
        <response>
          <returncode>FAILED</returncode>
          <messageKey>notFound</messageKey>
          <message>a &lt; b &amp; "c"</message>
          <meetings/>
        </response>
        "#);
    }

    #[test]
    fn rendered_documents_are_well_formed_whatever_the_text() {
        let hostile = "a\u{0}b\u{1b}[31m\u{7}c\u{b}\u{c}\u{FFFE}\u{FFFF}d\te\nf\u{7f}\u{85}";
        let mut doc = Element::new("response")
            .with_text_child("message", hostile)
            .with_child(Element::new("meetings").with_text_child("name", hostile));
        doc.attrs.push(("alt".into(), hostile.into()));
        let mut cdata = Element::new("key");
        cdata.children.push(Node::CData(hostile.into()));
        doc.push_child(cdata);
        let rendered = doc.to_document(true);
        assert!(!rendered.chars().any(|c| !is_xml_char(c)), "{rendered:?}");
        // It parses back, with only the forbidden characters replaced.
        let back = parse(rendered.as_bytes()).unwrap();
        let expected = "a\u{FFFD}b\u{FFFD}[31m\u{FFFD}c\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}d\te\nf\u{7f}\u{85}";
        assert_eq!(back.text_at("message").as_deref(), Some(expected));
        assert_eq!(back.text_at("key").as_deref(), Some(expected));
        assert!(back.attr("alt").is_some_and(|alt| alt.starts_with("a\u{FFFD}b")));
        assert_eq!(escape("x\u{1}y"), "x\u{FFFD}y");
    }

    #[test]
    fn round_trip_keeps_attributes_and_cdata() {
        let source = "<image width=\"176\" alt=\"a &quot;b&quot;\">u</image>";
        let el = parse(source.as_bytes()).unwrap();
        assert_eq!(el.attr("alt"), Some("a \"b\""));
        assert_eq!(el.to_document(false), "<image width=\"176\" alt=\"a &quot;b&quot;\">u</image>\n");
        let mut meta = Element::new("name");
        meta.children.push(Node::CData(String::new()));
        assert_eq!(meta.to_document(false), "<name><![CDATA[]]></name>\n");
    }
}

#[cfg(test)]
mod module_tests {
    use super::remove_modules;

    const BODY: &str = concat!(
        "<?xml version=\"1.0\"?>\n<modules>\n  <module name=\"presentation\">",
        "<document url=\"https://example.org/a.pdf\" filename=\"a.pdf\"/></module>\n",
        "  <module name=\"clientSettingsOverride\"><![CDATA[{\"public\":{\"app\":{\"x\":\"</module>\"}}}]]></module>\n",
        "  <module name=\"clientSettingsOverride\"/>\n",
        "  <module name=\"other\"><module name=\"clientSettingsOverride\"/></module>\n</modules>\n",
    );

    #[test]
    fn named_modules_go_and_every_other_byte_stays() {
        assert_eq!(remove_modules(BODY.as_bytes(), &["missing"]).unwrap(), None);
        assert_eq!(remove_modules(BODY.as_bytes(), &[]).unwrap(), None);
        let out = remove_modules(BODY.as_bytes(), &["clientSettingsOverride"]).unwrap().unwrap();
        let expected = concat!(
            "<?xml version=\"1.0\"?>\n<modules>\n  <module name=\"presentation\">",
            "<document url=\"https://example.org/a.pdf\" filename=\"a.pdf\"/></module>\n",
            "  \n",
            "  \n",
            "  <module name=\"other\"><module name=\"clientSettingsOverride\"/></module>\n</modules>\n",
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected, "only children of the root count");
        let out = remove_modules(BODY.as_bytes(), &["presentation", "other", "clientSettingsOverride"]).unwrap();
        assert_eq!(
            String::from_utf8(out.unwrap()).unwrap(),
            "<?xml version=\"1.0\"?>\n<modules>\n  \n  \n  \n  \n</modules>\n"
        );
    }

    #[test]
    fn hostile_bodies_are_refused() {
        for body in [
            "<modules><module name=\"a\">",
            "<!DOCTYPE x [<!ENTITY e \"y\">]><modules/>",
            "<modules><module name=\"a></modules>",
        ] {
            assert!(remove_modules(body.as_bytes(), &["a"]).is_err(), "{body}");
        }
        assert!(remove_modules(&[0xff, 0xfe], &["a"]).is_err());
        // Deep nesting costs no stack and removes nothing.
        let deep = "<a>".repeat(100_000);
        assert!(!matches!(remove_modules(deep.as_bytes(), &["a"]), Ok(Some(_))));
    }
}
