//! Server selection for new meetings (Scalelite's `find_available`), the
//! `meta_server-tag` syntax, and what a create needs beyond Scalelite's
//! tags: capabilities (`livekit`, the automatic `bbb-3.0`) and a preferred
//! region ([`Needs`]).
//!
//! [`select`] and [`select_for`] are the reference: they read the whole pool. The stores reach
//! the same choice without doing so (the Redis script walks `server_load`
//! in load order only as far as the answer needs, the embedded store probes
//! an index per tag), in the same atomic step as the load reservation;
//! the store contract tests compare both with [`select`].

/// The parsed `meta_server-tag` value: `tag1;tag2` lists tags in preference
/// order, a trailing `!` makes them required, `none` means untagged servers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagSpec {
    /// Tags in the order given.
    pub tags: Vec<String>,
    /// Whether a server with one of the tags is required.
    pub required: bool,
}

impl TagSpec {
    /// Parses a `meta_server-tag` value; blank or a lone `!` means no tags.
    pub fn parse(raw: Option<&str>) -> Self {
        let raw = raw.unwrap_or("").trim();
        let (body, bang) = match raw.strip_suffix('!') {
            Some(rest) => (rest, true),
            None => (raw, false),
        };
        if body.trim().is_empty() {
            return Self::default();
        }
        Self { tags: body.split(';').map(str::to_owned).collect(), required: bang }
    }

    /// Whether no tag was requested.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The tag list as shown in `serverTagUnavailable` (`a;b`, without `!`).
    pub fn display(&self) -> String {
        self.tags.join(";")
    }
}

/// One server of the placement pool (a member of `server_load`).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate<'a> {
    /// Server id.
    pub id: &'a str,
    /// Current load score.
    pub load: f64,
    /// The server's tag, `None` when untagged.
    pub tag: Option<&'a str>,
    /// Whether the `server:<id>` hash exists.
    pub exists: bool,
}

/// The outcome of a selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The index (into the candidate slice) of the chosen server.
    Chosen(usize),
    /// No server can take the meeting: `Could not find any available servers.`
    NoServer,
    /// Required tags matched nothing: `serverTagUnavailable`.
    TagUnavailable,
    /// The pool has servers, but none offers every needed capability.
    CapabilityUnavailable,
}

/// What a create needs of its server besides Scalelite's tags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Needs {
    /// Capabilities the server must offer, every one of them (declared by
    /// the operator, like `livekit`, or automatic, like `bbb-3.0`).
    pub capabilities: Vec<String>,
    /// Preferred regions, best first. A region is passed over when it has no
    /// eligible server below [`Self::capacity`] (down or full); when all
    /// are, any region will do.
    pub regions: Vec<String>,
    /// The load from which a server counts as full (`CAPACITY_PER_SERVER`).
    pub capacity: f64,
}

impl Needs {
    /// Whether nothing beyond Scalelite's selection is asked.
    pub fn is_empty(&self) -> bool {
        self.capabilities.is_empty() && self.regions.is_empty()
    }
}

/// Parses a `;`-separated list (`meta_server-region`,
/// `meta_server-capability`): entries trimmed, blanks and repeats dropped, at
/// most [`MAX_LIST`] kept.
pub fn parse_list(raw: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in raw.unwrap_or("").split(';').map(str::trim).filter(|e| !e.is_empty()) {
        if out.len() == MAX_LIST {
            break;
        }
        if !out.iter().any(|seen| seen == entry) {
            out.push(entry.to_owned());
        }
    }
    out
}

/// Whether `name` can be a region or a capability: 1–64 characters of
/// ASCII letters, digits, `-`, `_`, `.` and `:` (so never the `;` that
/// joins lists).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The most regions or capabilities a create may name.
pub const MAX_LIST: usize = 8;

/// The automatic capability of a BBB version as the poller stores it
/// (`bbbVersion`): `3.0.4` → `bbb-3.0`, `2.7` → `bbb-2.7`, `4` → `bbb-4`;
/// `None` when it does not start with a number.
pub fn version_capability(version: &str) -> Option<String> {
    let version = version.trim();
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    if major.is_empty() || major.len() > 4 {
        return None;
    }
    let rest = &version[major.len()..];
    let minor: String = rest.strip_prefix('.').unwrap_or("").chars().take_while(char::is_ascii_digit).collect();
    if minor.is_empty() || minor.len() > 4 {
        return Some(format!("bbb-{major}"));
    }
    Some(format!("bbb-{major}.{minor}"))
}

/// What placement knows of a server besides its tag and load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traits<'a> {
    /// The server's region, `None` when it has none.
    pub region: Option<&'a str>,
    /// Every capability it offers, declared and automatic.
    pub capabilities: Vec<&'a str>,
}

/// Chooses a server for a new meeting.
///
/// `pool` must be sorted by load ascending, ties by id (the order of
/// `ZRANGE server_load 0 -1`). With tags, servers carrying the tags are
/// preferred (least loaded first); otherwise, or if none matches and the
/// tags are optional, the least loaded untagged server is taken.
pub fn select(pool: &[Candidate<'_>], spec: &TagSpec) -> Selection {
    select_for(pool, &[], spec, &Needs::default())
}

/// [`select`] with [`Needs`]; `traits[i]` describes `pool[i]` (missing
/// entries: no region, no capabilities).
///
/// 1. Only servers offering every needed capability take part; if the pool
///    has servers but none of them does, [`Selection::CapabilityUnavailable`].
/// 2. Among those, Scalelite's candidates as in [`select`] (servers with a
///    wanted tag by load, tag position and id; else the untagged ones), the
///    ones with a hash.
/// 3. With regions: the first candidate in the first region that has one
///    below `capacity`; when no region has, the first candidate.
pub fn select_for(pool: &[Candidate<'_>], traits: &[Traits<'_>], spec: &TagSpec, needs: &Needs) -> Selection {
    if pool.is_empty() {
        return Selection::NoServer;
    }
    let none = Traits::default();
    let traits_of = |i: usize| traits.get(i).unwrap_or(&none);
    let capable: Vec<usize> = (0..pool.len())
        .filter(|&i| needs.capabilities.iter().all(|c| traits_of(i).capabilities.contains(&c.as_str())))
        .collect();
    if capable.is_empty() {
        return Selection::CapabilityUnavailable;
    }
    let mut ordered: Vec<usize> = Vec::new();
    if !spec.is_empty() {
        for tag in &spec.tags {
            ordered.extend(capable.iter().copied().filter(|&i| pool[i].tag.unwrap_or("none") == tag));
        }
        // Stable: equal loads keep tag order, then id order.
        ordered.sort_by(|&a, &b| pool[a].load.total_cmp(&pool[b].load));
    }
    if ordered.is_empty() {
        if spec.required {
            return Selection::TagUnavailable;
        }
        ordered.extend(capable.iter().copied().filter(|&i| pool[i].tag.is_none()));
    }
    ordered.retain(|&i| pool[i].exists);
    for region in &needs.regions {
        let found = ordered
            .iter()
            .copied()
            .find(|&i| traits_of(i).region == Some(region.as_str()) && pool[i].load < needs.capacity);
        if let Some(i) = found {
            return Selection::Chosen(i);
        }
    }
    ordered.first().map_or(Selection::NoServer, |&i| Selection::Chosen(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(id: &'a str, load: f64, tag: Option<&'a str>) -> Candidate<'a> {
        Candidate { id, load, tag, exists: true }
    }

    fn chosen<'a>(pool: &'a [Candidate<'a>], spec: &str) -> Result<&'a str, Selection> {
        match select(pool, &TagSpec::parse(Some(spec))) {
            Selection::Chosen(i) => Ok(pool[i].id),
            other => Err(other),
        }
    }

    #[test]
    fn parse_tag_specs() {
        assert_eq!(TagSpec::parse(None), TagSpec::default());
        assert_eq!(TagSpec::parse(Some("!")), TagSpec::default());
        assert_eq!(TagSpec::parse(Some("  ")), TagSpec::default());
        assert_eq!(TagSpec::parse(Some("a;b!")), TagSpec { tags: vec!["a".into(), "b".into()], required: true });
        assert_eq!(TagSpec::parse(Some("a")), TagSpec { tags: vec!["a".into()], required: false });
        assert_eq!(TagSpec::parse(Some("a;b!")).display(), "a;b");
    }

    #[test]
    fn without_tags_only_untagged_servers_qualify() {
        let pool = [c("tagged", 0.0, Some("gpu")), c("b", 1.0, None), c("a", 2.0, None)];
        assert_eq!(chosen(&pool, ""), Ok("b"));
        let only_tagged = [c("tagged", 0.0, Some("gpu"))];
        assert_eq!(chosen(&only_tagged, ""), Err(Selection::NoServer));
    }

    #[test]
    fn tags_prefer_matching_servers_by_load() {
        let pool = [c("u", 0.0, None), c("x1", 3.0, Some("x")), c("y1", 2.0, Some("y")), c("x2", 5.0, Some("x"))];
        assert_eq!(chosen(&pool, "x"), Ok("x1"));
        assert_eq!(chosen(&pool, "x;y"), Ok("y1"));
        assert_eq!(chosen(&pool, "none"), Ok("u"));
        assert_eq!(chosen(&pool, "z"), Ok("u"));
        assert_eq!(chosen(&pool, "z!"), Err(Selection::TagUnavailable));
        assert_eq!(chosen(&pool, "x!"), Ok("x1"));
    }

    fn t<'a>(region: Option<&'a str>, capabilities: &[&'a str]) -> Traits<'a> {
        Traits { region, capabilities: capabilities.to_vec() }
    }

    fn chosen_for<'a>(
        pool: &'a [Candidate<'a>],
        traits: &[Traits<'_>],
        spec: &str,
        capabilities: &[&str],
        regions: &[&str],
    ) -> Result<&'a str, Selection> {
        let needs = Needs {
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            capacity: 100.0,
        };
        match select_for(pool, traits, &TagSpec::parse(Some(spec)), &needs) {
            Selection::Chosen(i) => Ok(pool[i].id),
            other => Err(other),
        }
    }

    #[test]
    fn lists_and_version_capabilities() {
        assert_eq!(parse_list(Some(" eu ;us;;eu ")), vec!["eu".to_owned(), "us".to_owned()]);
        assert_eq!(parse_list(None), Vec::<String>::new());
        assert_eq!(parse_list(Some("x;".repeat(3).as_str())), vec!["x".to_owned()]);
        let many: String = (0..20).map(|i| format!("r{i};")).collect();
        assert_eq!(parse_list(Some(&many)).len(), MAX_LIST);
        assert_eq!(version_capability("3.0.4").as_deref(), Some("bbb-3.0"));
        assert_eq!(version_capability(" 2.7.12 ").as_deref(), Some("bbb-2.7"));
        assert_eq!(version_capability("3.0.0-rc.1").as_deref(), Some("bbb-3.0"));
        assert_eq!(version_capability("4").as_deref(), Some("bbb-4"));
        assert!(valid_name("eu-west-1") && valid_name("livekit") && valid_name("bbb-3.0"));
        assert!(!valid_name("") && !valid_name("a;b") && !valid_name("a b") && !valid_name(&"x".repeat(65)));
        assert_eq!(version_capability(""), None);
        assert_eq!(version_capability("v3.0"), None);
        assert_eq!(version_capability("123456.1"), None);
    }

    #[test]
    fn capabilities_filter_before_tags() {
        let pool = [c("a", 0.0, None), c("lk", 5.0, None), c("lk-gpu", 1.0, Some("gpu")), c("gpu", 0.0, Some("gpu"))];
        let traits = [t(None, &[]), t(None, &["livekit", "bbb-3.0"]), t(None, &["livekit"]), t(None, &["bbb-3.0"])];
        assert_eq!(chosen_for(&pool, &traits, "", &["livekit"], &[]), Ok("lk"));
        assert_eq!(chosen_for(&pool, &traits, "gpu", &["livekit"], &[]), Ok("lk-gpu"));
        assert_eq!(chosen_for(&pool, &traits, "gpu", &["bbb-3.0"], &[]), Ok("gpu"));
        // No capable server carries the tag: untagged capable ones, or refused.
        assert_eq!(chosen_for(&pool, &traits, "gpu", &["livekit", "bbb-3.0"], &[]), Ok("lk"));
        assert_eq!(chosen_for(&pool, &traits, "gpu!", &["livekit", "bbb-3.0"], &[]), Err(Selection::TagUnavailable));
        assert_eq!(chosen_for(&pool, &traits, "", &["sip"], &[]), Err(Selection::CapabilityUnavailable));
        // Every needed capability counts.
        assert_eq!(chosen_for(&pool, &traits, "", &["bbb-3.0", "livekit"], &[]), Ok("lk"));
        assert_eq!(chosen_for(&[], &traits, "", &["sip"], &[]), Err(Selection::NoServer));
        // Missing traits entries offer nothing.
        assert_eq!(chosen_for(&pool, &[], "", &["livekit"], &[]), Err(Selection::CapabilityUnavailable));
    }

    #[test]
    fn regions_are_preferred_in_order_until_full_or_down() {
        let pool = [c("us1", 0.0, None), c("eu1", 10.0, None), c("de1", 20.0, None), c("eu2", 150.0, None)];
        let traits = [t(Some("us"), &[]), t(Some("eu"), &[]), t(Some("de"), &[]), t(Some("eu"), &[])];
        assert_eq!(chosen_for(&pool, &traits, "", &[], &[]), Ok("us1"));
        assert_eq!(chosen_for(&pool, &traits, "", &[], &["eu"]), Ok("eu1"));
        assert_eq!(chosen_for(&pool, &traits, "", &[], &["de", "eu"]), Ok("de1"));
        assert_eq!(chosen_for(&pool, &traits, "", &[], &["mars", "eu"]), Ok("eu1"));
        // Down (no server) or full (at capacity): any region.
        assert_eq!(chosen_for(&pool, &traits, "", &[], &["mars"]), Ok("us1"));
        let full = [c("us1", 0.0, None), c("eu2", 100.0, None)];
        let full_traits = [t(Some("us"), &[]), t(Some("eu"), &[])];
        assert_eq!(chosen_for(&full, &full_traits, "", &[], &["eu"]), Ok("us1"));
        // Everything full: the least loaded, wherever it is.
        let all_full = [c("us1", 120.0, None), c("eu2", 130.0, None)];
        assert_eq!(chosen_for(&all_full, &full_traits, "", &[], &["eu"]), Ok("us1"));
        // Tags first: a region only orders the tag's candidates.
        let tagged = [c("us-gpu", 0.0, Some("gpu")), c("eu", 0.0, None), c("eu-gpu", 50.0, Some("gpu"))];
        let tagged_traits = [t(Some("us"), &[]), t(Some("eu"), &[]), t(Some("eu"), &[])];
        assert_eq!(chosen_for(&tagged, &tagged_traits, "gpu", &[], &["eu"]), Ok("eu-gpu"));
        assert_eq!(chosen_for(&tagged, &tagged_traits, "", &[], &["us"]), Ok("eu"));
        // A member without a hash is never chosen, in a region or not.
        let gone = [Candidate { id: "gone", load: 0.0, tag: None, exists: false }, c("eu1", 1.0, None)];
        let gone_traits = [t(Some("de"), &[]), t(Some("eu"), &[])];
        assert_eq!(chosen_for(&gone, &gone_traits, "", &[], &["de"]), Ok("eu1"));
    }

    #[test]
    fn empty_pool_and_missing_hashes() {
        assert_eq!(chosen(&[], "x!"), Err(Selection::NoServer));
        let pool = [Candidate { id: "gone", load: 0.0, tag: None, exists: false }, c("b", 9.0, None)];
        assert_eq!(chosen(&pool, ""), Ok("b"));
    }
}
