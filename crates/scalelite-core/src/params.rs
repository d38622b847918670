//! Request parameters: parsing, lookup with Rails semantics, the
//! default/override/exclude policy for forwarded calls, and the
//! `application/x-www-form-urlencoded` encoding Scalelite uses towards BBB.

use std::collections::HashMap;
use std::fmt::Write as _;

/// An ordered list of decoded request parameters.
///
/// Lookups follow Rails: when a name repeats, the last value wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a raw query string or form body (`+` is a space, invalid
    /// UTF-8 is replaced).
    pub fn parse(raw: &str) -> Self {
        Self::decode(raw.as_bytes())
    }

    /// [`Self::parse`] on raw bytes, refusing (before decoding anything) an
    /// input with more than `max` non-empty `&`-separated pairs. Work and
    /// memory are linear in the input's size.
    pub fn parse_limited(raw: &[u8], max: usize) -> Result<Self, TooManyParams> {
        if count_pairs(raw) > max {
            return Err(TooManyParams);
        }
        Ok(Self::decode(raw))
    }

    fn decode(raw: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .filter(|(k, _)| !k.is_empty())
                .collect(),
        }
    }

    /// Builds a list from pairs, keeping their order.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { pairs: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value of `name` (the last one if repeated).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name` unless it is absent or empty.
    pub fn get_present(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The value of `name` unless it is absent, empty or only white space
    /// (Rails' `blank?`, as `params.require` and `presence` test it).
    pub fn get_nonblank(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !is_blank(v))
    }

    /// Whether `name` is present (possibly empty).
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Sets `name` to `value`, keeping the position of its first occurrence
    /// (or appending it) and dropping later duplicates.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.pairs.iter().position(|(k, _)| k == name) {
            Some(first) => {
                self.pairs[first].1 = value;
                let mut index = 0;
                self.pairs.retain(|(k, _)| {
                    let keep = index <= first || k != name;
                    index += 1;
                    keep
                });
            }
            None => self.pairs.push((name.to_owned(), value)),
        }
    }

    /// Removes every occurrence of `name`.
    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(k, _)| k != name);
    }

    /// Appends all pairs of `other`.
    pub fn extend(&mut self, other: Params) {
        self.pairs.extend(other.pairs);
    }

    /// Pairs in order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Collapses repeated names like a Rails params hash: the first position
    /// is kept with the last value. Linear in the number of pairs.
    pub fn dedup(&self) -> Params {
        let mut position: HashMap<&str, usize> = HashMap::with_capacity(self.pairs.len());
        let mut out: Vec<(String, String)> = Vec::with_capacity(self.pairs.len());
        for (k, v) in &self.pairs {
            match position.get(k.as_str()) {
                Some(&at) => out[at].1.clone_from(v),
                None => {
                    position.insert(k, out.len());
                    out.push((k.clone(), v.clone()));
                }
            }
        }
        Params { pairs: out }
    }

    /// Encodes the pairs as `k=v&k2=v2` with [`encode_component`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.pairs {
            if !out.is_empty() {
                out.push('&');
            }
            encode_component_into(&mut out, k);
            out.push('=');
            encode_component_into(&mut out, v);
        }
        out
    }
}

/// More parameters than [`crate::config::EdgeLimits::max_params`] allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many parameters")]
pub struct TooManyParams;

/// The number of non-empty `&`-separated pieces of `raw` (an upper bound of
/// the pairs [`Params::parse`] yields).
pub fn count_pairs(raw: &[u8]) -> usize {
    raw.split(|&b| b == b'&').filter(|piece| !piece.is_empty()).count()
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self::from_pairs(iter)
    }
}

/// Percent-encodes one key or value like Ruby's
/// `URI.encode_www_form_component`: `A-Z a-z 0-9 * - . _` stay, a space
/// becomes `+`, every other byte becomes upper-case `%XX`.
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    encode_component_into(&mut out, value);
    out
}

/// [`encode_component`] appending to `out`.
pub fn encode_component_into(out: &mut String, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if matches!(byte, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_') {
            continue;
        }
        // Copy the run of unreserved (ASCII) characters, then encode this
        // byte. A non-empty run starts and ends on character boundaries.
        if i > start {
            out.push_str(&value[start..i]);
        }
        if byte == b' ' {
            out.push('+');
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
}

/// The leading integer of `value`, like Ruby's `String#to_i` (`"12abc"` is
/// 12, `"abc"` is 0).
pub fn ruby_to_i(value: &str) -> i64 {
    let trimmed = value.trim_start();
    let (sign, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (-1, &trimmed[1..]),
        Some(b'+') => (1, &trimmed[1..]),
        _ => (1, trimmed),
    };
    let end = digits.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

/// Ruby's `blank?` for a string: empty or only whitespace.
pub fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

/// Ruby's `String#split(",")`: every item, including empty ones in the
/// middle, but without trailing empty items (`"a,,b,,"` gives `"a"`, `""`
/// and `"b"`).
pub fn ruby_split(value: &str, separator: char) -> Vec<&str> {
    let mut items: Vec<&str> = value.split(separator).collect();
    while items.last().is_some_and(|item| item.is_empty()) {
        items.pop();
    }
    items
}

/// Active Record's boolean cast of a non-empty string: exactly `0`, `f`,
/// `F`, `false`, `FALSE`, `off` and `OFF` are false (`False` is true),
/// everything else is true.
pub fn ruby_boolean(value: &str) -> bool {
    !matches!(value, "0" | "f" | "F" | "false" | "FALSE" | "off" | "OFF")
}

/// A `k=v,k2=v2` list from `DEFAULT_CREATE_PARAMS` and friends.
pub type ParamList = Vec<(String, String)>;

/// Parses `k=v,k2=v2`: split on `,`, then on the first `=`. Empty entries are
/// skipped; an entry without `=` is an error (Ruby Scalelite fails at boot).
pub fn parse_param_list(raw: &str) -> Result<ParamList, String> {
    raw.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            entry
                .split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .ok_or_else(|| format!("entry `{entry}` has no `=`"))
        })
        .collect()
}

/// Parses a comma-separated list of parameter names (`CREATE_EXCLUDE_PARAMS`).
pub fn parse_name_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The parameter policy for one forwarded call (create or join): names never
/// forwarded, and defaults and overrides layered around the client's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamPolicy {
    /// Request parameters that are dropped (`*_EXCLUDE_PARAMS`).
    pub exclude: Vec<String>,
    /// Added when the client did not send them (`DEFAULT_*_PARAMS`).
    pub defaults: ParamList,
    /// Always win over the client's values (`OVERRIDE_*_PARAMS`).
    pub overrides: ParamList,
}

impl ParamPolicy {
    /// The value of `name` among the overrides, if any.
    pub fn override_value(&self, name: &str) -> Option<&str> {
        lookup(&self.overrides, name)
    }

    /// The value of `name` among the defaults, if any.
    pub fn default_value(&self, name: &str) -> Option<&str> {
        lookup(&self.defaults, name)
    }
}

fn lookup<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Parameters never forwarded: the checksum and the names Rails reserves.
pub const NEVER_FORWARDED: [&str; 4] = ["checksum", "format", "controller", "action"];

/// Builds the parameters forwarded to a BBB server: the request's parameters
/// without [`NEVER_FORWARDED`] and the excluded names, merged with the layers
/// in precedence order `defaults < request < overrides`.
///
/// `defaults` and `overrides` are given lowest precedence first (global,
/// then tenant). Names in `skip` are ignored in those layers (Scalelite
/// resolves `meta_server-tag` before placement and never merges it again).
/// Default keys come first, then request keys, then keys only an override
/// introduces; the order does not matter to BBB because the checksum is
/// computed over the emitted string.
pub fn forwarded_params(
    request: &Params,
    exclude: &[&[String]],
    defaults: &[&ParamList],
    overrides: &[&ParamList],
    skip: &[&str],
) -> Params {
    let mut out = Params::new();
    for layer in defaults {
        for (k, v) in layer.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            out.set(k, v.clone());
        }
    }
    for (k, v) in request.iter() {
        if NEVER_FORWARDED.contains(&k) || exclude.iter().any(|list| list.iter().any(|e| e == k)) {
            continue;
        }
        out.set(k, v);
    }
    for layer in overrides {
        for (k, v) in layer.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            out.set(k, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_string_helpers() {
        assert_eq!(ruby_split("a,,b,,", ','), ["a", "", "b"]);
        assert_eq!(ruby_split(",a", ','), ["", "a"]);
        assert!(ruby_split(",,", ',').is_empty());
        assert!(is_blank(" \t"));
        assert!(!is_blank(" x"));
        assert!(!ruby_boolean("false") && !ruby_boolean("OFF") && !ruby_boolean("0"));
        assert!(ruby_boolean("true") && ruby_boolean("False") && ruby_boolean("yes"));
    }

    #[test]
    fn parse_decodes_and_last_value_wins() {
        let p = Params::parse("a=1&name=caf%C3%A9+bar&a=2&empty=&bare&%2A=star");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("name"), Some("café bar"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get_present("empty"), None);
        assert_eq!(Params::parse("b=+%09%E3%80%80&c=+x").get_nonblank("b"), None, "spaces, a tab, U+3000");
        assert_eq!(Params::parse("c=+x").get_nonblank("c"), Some(" x"));
        assert_eq!(p.get("bare"), Some(""));
        assert_eq!(p.get("*"), Some("star"));
        assert_eq!(p.dedup().encode(), "a=2&name=caf%C3%A9+bar&empty=&bare=&*=star");
    }

    #[test]
    fn encoding_matches_ruby() {
        assert_eq!(encode_component("a b*c~d'é-._/"), "a+b*c%7Ed%27%C3%A9-._%2F");
        let p = Params::from_pairs([("meetingID", "x y"), ("meta_bbb-origin", "Greenlight")]);
        assert_eq!(p.encode(), "meetingID=x+y&meta_bbb-origin=Greenlight");
    }

    #[test]
    fn set_keeps_first_position() {
        let mut p = Params::parse("a=1&b=2&a=3");
        p.set("a", "9");
        assert_eq!(p.encode(), "a=9&b=2");
        p.set("c", "x");
        assert_eq!(p.encode(), "a=9&b=2&c=x");
        p.remove("a");
        assert_eq!(p.encode(), "b=2&c=x");
    }

    #[test]
    fn to_i_like_ruby() {
        assert_eq!(ruby_to_i("1200"), 1200);
        assert_eq!(ruby_to_i(" 12abc"), 12);
        assert_eq!(ruby_to_i("abc"), 0);
        assert_eq!(ruby_to_i(""), 0);
        assert_eq!(ruby_to_i("-5"), -5);
    }

    #[test]
    fn param_lists() {
        assert_eq!(
            parse_param_list("a=1,b=x=y,,").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert!(parse_param_list("a=1,broken").is_err());
        assert_eq!(parse_name_list("test4, test2,"), vec!["test4", "test2"]);
    }

    #[test]
    fn forwarding_precedence_and_order() {
        let request = Params::parse("meetingID=m&record=true&test4=&checksum=abc&meta_server-tag=x");
        let exclude = vec!["test4".to_owned()];
        let defaults: ParamList = vec![("record".into(), "false".into()), ("welcome".into(), "hi".into())];
        let tenant_defaults: ParamList = vec![("welcome".into(), "tenant".into())];
        let overrides: ParamList = vec![("duration".into(), "60".into()), ("meta_server-tag".into(), "ignored".into())];
        let out = forwarded_params(
            &request,
            &[&exclude],
            &[&defaults, &tenant_defaults],
            &[&overrides],
            &["meta_server-tag"],
        );
        assert_eq!(out.encode(), "record=true&welcome=tenant&meetingID=m&meta_server-tag=x&duration=60");
    }

    #[test]
    fn empty_params_are_forwarded_unless_excluded() {
        let request = Params::parse("test4=&test2=");
        assert_eq!(forwarded_params(&request, &[], &[], &[], &[]).encode(), "test4=&test2=");
        let exclude = vec!["test4".to_owned(), "test2".to_owned()];
        assert_eq!(forwarded_params(&request, &[&exclude], &[], &[], &[]).encode(), "");
    }
}
