//! Server selection for new meetings (Scalelite's `find_available`) and the
//! `meta_server-tag` syntax.
//!
//! [`select`] is the reference: it reads the whole pool. The stores reach
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
}

/// Chooses a server for a new meeting.
///
/// `pool` must be sorted by load ascending, ties by id (the order of
/// `ZRANGE server_load 0 -1`). With tags, servers carrying the tags are
/// preferred (least loaded first); otherwise, or if none matches and the
/// tags are optional, the least loaded untagged server is taken.
pub fn select(pool: &[Candidate<'_>], spec: &TagSpec) -> Selection {
    if pool.is_empty() {
        return Selection::NoServer;
    }
    let mut ordered: Vec<usize> = Vec::new();
    if !spec.is_empty() {
        for tag in &spec.tags {
            ordered.extend((0..pool.len()).filter(|&i| pool[i].tag.unwrap_or("none") == tag));
        }
        // Stable: equal loads keep tag order, then id order.
        ordered.sort_by(|&a, &b| pool[a].load.total_cmp(&pool[b].load));
    }
    if ordered.is_empty() {
        if spec.required {
            return Selection::TagUnavailable;
        }
        ordered.extend((0..pool.len()).filter(|&i| pool[i].tag.is_none()));
    }
    ordered.into_iter().find(|&i| pool[i].exists).map_or(Selection::NoServer, Selection::Chosen)
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

    #[test]
    fn empty_pool_and_missing_hashes() {
        assert_eq!(chosen(&[], "x!"), Err(Selection::NoServer));
        let pool = [Candidate { id: "gone", load: 0.0, tag: None, exists: false }, c("b", 9.0, None)];
        assert_eq!(chosen(&pool, ""), Ok("b"));
    }
}
