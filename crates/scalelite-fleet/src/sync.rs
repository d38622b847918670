//! `servers sync` and `servers yaml`: the pool as a YAML document.
//!
//! The document is a `servers` mapping from server id to `secret`
//! (required), `url` (default `https://<id>/bigbluebutton/api`), `enabled`
//! (default true), `load_multiplier` (default 1.0, > 0) and `tag`, and
//! (scalelite-rs only) `region` and `capabilities` (a list, or names
//! separated by `,` or `;`), read as `servers add --region --capabilities`
//! reads them. Like `tag`, a field left out means "none": syncing removes a
//! region or capabilities the document does not give. `load`, `state`,
//! `bbb_version`, `automatic_capabilities` and `online` (what `servers yaml
//! --verbose` adds) are accepted and ignored, so a dump can be edited and
//! fed back: the capabilities the poller learned (`bbb-3.0`) are never
//! declared by it.

use scalelite_core::{Secret, ServerId};
use scalelite_store::{NewServer, Server, ServerState, ServerUpdate};
use serde_yaml_ng::{Mapping, Value};

use crate::json::state_name;
use crate::{Fleet, FleetError, placement_update, to_d, url_host};

const SERVER_PARAMS: [&str; 7] = ["url", "secret", "enabled", "load_multiplier", "tag", "region", "capabilities"];
const PARAMS_IGNORED: [&str; 5] = ["load", "state", "bbb_version", "automatic_capabilities", "online"];

/// What happens to servers missing from the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Left as they are.
    Keep,
    /// Empty ones are removed, others cordoned (the default).
    Cordon,
    /// Their meetings are ended, then they are removed.
    Force,
}

impl std::str::FromStr for SyncMode {
    type Err = FleetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(Self::Keep),
            "cordon" | "" => Ok(Self::Cordon),
            "force" => Ok(Self::Force),
            other => Err(FleetError::Invalid(format!("Unknown sync mode '{other}' (choose: keep cordon force)"))),
        }
    }
}

/// One validated server entry.
#[derive(Debug)]
struct Wanted {
    id: String,
    url: String,
    secret: String,
    enabled: bool,
    load_multiplier: String,
    tag: Option<String>,
    /// The region, `None` for none.
    region: Option<String>,
    /// The declared capabilities, validated and deduplicated.
    capabilities: Vec<String>,
}

fn yaml_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse(document: &str) -> Result<Vec<Wanted>, FleetError> {
    let invalid = |m: String| FleetError::Invalid(m);
    let doc: Value = serde_yaml_ng::from_str(document).map_err(|_| invalid("Invalid YAML document".into()))?;
    let Value::Mapping(doc) = doc else {
        return Err(invalid("Invalid YAML document".into()));
    };
    let Some(Value::Mapping(servers)) = doc.get("servers") else {
        return Err(invalid("Servers parameter not a hash".into()));
    };
    let mut wanted = Vec::new();
    for (id, params) in servers {
        let id = yaml_string(id).ok_or_else(|| invalid("Servers parameter not a hash".into()))?;
        let empty = Mapping::new();
        let params = match params {
            Value::Mapping(m) => m,
            Value::Null => &empty,
            _ => return Err(invalid(format!("Server id={id} has bad parameters: {params:?}"))),
        };
        let get = |name: &str| params.get(name).filter(|v| !v.is_null());
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) || id.is_empty() {
            return Err(invalid(format!("Server id={id} contains invalid characters")));
        }
        let secret = get("secret").and_then(yaml_string).filter(|s| !s.trim().is_empty());
        let Some(secret) = secret else {
            return Err(invalid(format!("Server id={id} has no secret")));
        };
        let bad: Vec<String> = params
            .keys()
            .filter_map(yaml_string)
            .filter(|k| !SERVER_PARAMS.contains(&k.as_str()) && !PARAMS_IGNORED.contains(&k.as_str()))
            .collect();
        if !bad.is_empty() {
            let list = bad.iter().map(|b| format!("{b:?}")).collect::<Vec<_>>().join(", ");
            return Err(invalid(format!("Server id={id} has bad parameters: [{list}]")));
        }
        let load_multiplier =
            get("load_multiplier").map_or_else(|| "1.0".to_owned(), |v| yaml_string(v).unwrap_or_default());
        if to_d(&load_multiplier) <= 0.0 {
            return Err(invalid(format!("Server id={id} has invalid load_multiplier={load_multiplier}")));
        }
        let url = get("url")
            .map_or_else(|| format!("https://{id}/bigbluebutton/api"), |v| yaml_string(v).unwrap_or_default());
        if url_host(&url).is_none() {
            return Err(invalid(format!("Server id={id} has invalid url={url}")));
        }
        let enabled = !matches!(get("enabled"), Some(Value::Bool(false)));
        let tag = get("tag").and_then(yaml_string).filter(|t| !t.trim().is_empty());
        let (region, capabilities) = placement(&id, get("region"), get("capabilities"))?;
        wanted.push(Wanted { id, url, secret, enabled, load_multiplier, tag, region, capabilities });
    }
    Ok(wanted)
}

/// The `region` and `capabilities` of server `id`'s entry, checked as
/// [`placement_update`] checks `--region` and `--capabilities`; absent ones
/// are none.
fn placement(
    id: &str,
    region: Option<&Value>,
    capabilities: Option<&Value>,
) -> Result<(Option<String>, Vec<String>), FleetError> {
    let bad = |what: &str| FleetError::Invalid(format!("Server id={id} has invalid {what}"));
    let region = match region {
        None => String::new(),
        Some(value) => yaml_string(value).ok_or_else(|| bad("region: not a name"))?,
    };
    let capabilities = match capabilities {
        None => String::new(),
        Some(Value::Sequence(items)) => {
            let names: Option<Vec<String>> = items.iter().map(yaml_string).collect();
            names.ok_or_else(|| bad("capabilities: not a list of names"))?.join(",")
        }
        Some(value) => yaml_string(value).ok_or_else(|| bad("capabilities: not a list of names"))?,
    };
    let mut update = ServerUpdate::default();
    placement_update(Some(&region), Some(&capabilities), &mut update)
        .map_err(|e| FleetError::Invalid(format!("Server id={id}: {e}")))?;
    Ok((update.region.flatten(), update.capabilities.unwrap_or_default()))
}

impl Fleet {
    /// Brings the pool in line with a YAML document. Everything is validated
    /// before anything changes; a dry run changes nothing and sends no `end`.
    /// Returns the actions taken (or that would be taken), one line each.
    pub async fn sync(&self, document: &str, mode: SyncMode, dry_run: bool) -> Result<Vec<String>, FleetError> {
        let wanted = parse(document)?;
        let mut log = Vec::new();
        for w in &wanted {
            let id = ServerId::new(w.id.clone());
            let server = match self.store.server(&id).await? {
                Some(server) => server,
                None => {
                    log.push(format!("[{}] Server created", w.id));
                    if dry_run {
                        continue;
                    }
                    self.create(NewServer {
                        id: id.clone(),
                        url: w.url.clone(),
                        secret: Secret::new(w.secret.clone()),
                        load_multiplier: Some(w.load_multiplier.clone()),
                        tag: w.tag.clone(),
                    })
                    .await?
                }
            };
            let mut update = ServerUpdate::default();
            if server.url != w.url {
                update.url = Some(w.url.clone());
                log.push(format!("[{}] Server updated: url={}", w.id, w.url));
            }
            if server.secret.expose() != w.secret {
                update.secret = Some(Secret::new(w.secret.clone()));
                log.push(format!("[{}] Server updated: secret=*****", w.id));
            }
            let current = server.load_multiplier.as_deref().map_or(0.0, to_d);
            if current != to_d(&w.load_multiplier) {
                update.load_multiplier = Some(w.load_multiplier.clone());
                log.push(format!("[{}] Server updated: load_multiplier={}", w.id, w.load_multiplier));
            }
            if server.tag != w.tag {
                update.tag = Some(w.tag.clone());
                log.push(format!("[{}] Server updated: tag={}", w.id, w.tag.as_deref().unwrap_or("")));
            }
            if server.region != w.region {
                update.region = Some(w.region.clone());
                log.push(format!("[{}] Server updated: region={}", w.id, w.region.as_deref().unwrap_or("")));
            }
            if server.capabilities != w.capabilities {
                update.capabilities = Some(w.capabilities.clone());
                log.push(format!("[{}] Server updated: capabilities={}", w.id, w.capabilities.join(",")));
            }
            let enabled = server.effective_state() == ServerState::Enabled;
            if w.enabled && !enabled {
                update.state = Some(ServerState::Enabled);
                log.push(format!("[{}] Server enabled", w.id));
            } else if !w.enabled && enabled {
                update.state = Some(ServerState::Cordoned);
                log.push(format!("[{}] Server disabled (cordoned)", w.id));
            }
            if !update.is_empty() && !dry_run {
                self.update_server(&id, &update).await?;
            }
        }

        for server in self.servers().await? {
            if wanted.iter().any(|w| w.id == server.id.as_str()) {
                continue;
            }
            let id = server.id.to_string();
            if mode == SyncMode::Keep {
                log.push(format!("[{id}] Server not removed"));
                continue;
            }
            let meetings = self.meetings_on(&server.id).await?;
            if meetings.is_empty() {
                if !dry_run {
                    self.remove_server(&server.id).await?;
                }
                log.push(format!("[{id}] Server removed"));
                continue;
            }
            if server.effective_state() == ServerState::Enabled {
                if !dry_run {
                    self.set_state(&server.id, ServerState::Cordoned).await?;
                }
                log.push(format!("[{id}] Server not empty. Cordoned for removal"));
            }
            if mode == SyncMode::Cordon {
                continue;
            }
            log.push(format!("[{id}] Server not empty. Ending meetings now..."));
            for meeting in &meetings {
                log.push(format!("[{id}] Try to end meeting id={}", meeting.id));
            }
            if !dry_run {
                for cleared in self.clear_meetings(&server, true).await? {
                    if let Some(error) = cleared.end_error {
                        log.push(format!("[{id}] Failed to end meeting id={}: {error}", cleared.id));
                    }
                }
                if !self.meetings_on(&server.id).await?.is_empty() {
                    return Err(FleetError::Invalid(format!("[{id}] Server still not empty!")));
                }
                self.remove_server(&server.id).await?;
            }
            log.push(format!("[{id}] Server removed"));
        }
        Ok(log)
    }
}

/// The `servers yaml` document: what `servers sync` reads, plus `state`,
/// `load`, `bbb_version`, `automatic_capabilities` (the learned ones, a
/// list apart from the declared `capabilities`, for a server that has one)
/// and `online` when `verbose`. A server without a
/// stored multiplier shows 1.0 (Scalelite prints 0.0, which sync refuses).
/// `region` and `capabilities` are printed only for a server that has them,
/// so the document of a pool without them is Scalelite's.
pub fn dump_yaml(servers: &[Server], verbose: bool) -> String {
    let mut list = Mapping::new();
    for server in servers {
        let mut info = Mapping::new();
        info.insert("url".into(), server.url.clone().into());
        info.insert("secret".into(), server.secret.expose().to_owned().into());
        let multiplier = server.load_multiplier.as_deref().map_or(1.0, to_d);
        info.insert("load_multiplier".into(), Value::Number(multiplier.into()));
        info.insert("tag".into(), server.tag.clone().unwrap_or_default().into());
        if let Some(region) = &server.region {
            info.insert("region".into(), region.clone().into());
        }
        if !server.capabilities.is_empty() {
            let names = server.capabilities.iter().map(|c| Value::from(c.clone())).collect();
            info.insert("capabilities".into(), Value::Sequence(names));
        }
        info.insert("enabled".into(), (server.effective_state() == ServerState::Enabled).into());
        if verbose {
            info.insert("state".into(), state_name(server).into());
            info.insert("load".into(), Value::Number(server.load.unwrap_or(-1.0).into()));
            info.insert("bbb_version".into(), server.bbb_version.clone().unwrap_or_default().into());
            // What the poller learned, apart from the declared
            // `capabilities` (and ignored by sync, so never declared back);
            // like them, only when there is one.
            let learned: Vec<Value> = server.automatic_capabilities().into_iter().map(Value::from).collect();
            if !learned.is_empty() {
                info.insert("automatic_capabilities".into(), Value::Sequence(learned));
            }
            info.insert("online".into(), server.online.into());
        }
        list.insert(server.id.to_string().into(), Value::Mapping(info));
    }
    let mut doc = Mapping::new();
    doc.insert("servers".into(), Value::Mapping(list));
    // Ruby's YAML starts with a document marker.
    format!("---\n{}", serde_yaml_ng::to_string(&doc).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_match_scalelite() {
        let err = |doc: &str| parse(doc).unwrap_err().to_string();
        assert_eq!(err("- a"), "Invalid YAML document");
        assert_eq!(err("servers: [1]"), "Servers parameter not a hash");
        assert_eq!(err("servers:\n  'bad id':\n    secret: s"), "Server id=bad id contains invalid characters");
        assert_eq!(err("servers:\n  a:\n    url: https://a/bigbluebutton/api"), "Server id=a has no secret");
        assert_eq!(err("servers:\n  a:\n    secret: s\n    foo: 1"), "Server id=a has bad parameters: [\"foo\"]");
        assert_eq!(
            err("servers:\n  a:\n    secret: s\n    load_multiplier: 0"),
            "Server id=a has invalid load_multiplier=0"
        );
        assert_eq!(err("servers:\n  a:\n    secret: s\n    url: ftp://x"), "Server id=a has invalid url=ftp://x");
    }

    #[test]
    fn dump_reads_back() {
        let mut hash = std::collections::HashMap::new();
        hash.insert("url".to_owned(), "https://a/bigbluebutton/api".to_owned());
        hash.insert("secret".to_owned(), "s".to_owned());
        hash.insert("online".to_owned(), "true".to_owned());
        let server = Server::from_hash(ServerId::from("a"), &hash, true).unwrap();
        let dump = dump_yaml(std::slice::from_ref(&server), true);
        assert_eq!(
            dump,
            "---\nservers:\n  a:\n    url: https://a/bigbluebutton/api\n    secret: s\n    load_multiplier: 1.0\n    tag: ''\n    enabled: true\n    state: enabled\n    load: -1.0\n    bbb_version: ''\n    online: true\n"
        );
        let wanted = parse(&dump).unwrap();
        assert_eq!(wanted[0].load_multiplier, "1.0");
        assert!(wanted[0].enabled);
    }

    #[test]
    fn a_verbose_dump_keeps_learned_capabilities_apart_and_sync_reads_only_the_declared() {
        let mut hash = std::collections::HashMap::new();
        hash.insert("url".to_owned(), "https://a/bigbluebutton/api".to_owned());
        hash.insert("secret".to_owned(), "s".to_owned());
        hash.insert("bbb_version".to_owned(), "3.0.4".to_owned());
        let mut server = Server::from_hash(ServerId::from("a"), &hash, true).unwrap();
        server.capabilities = vec!["livekit".to_owned()];
        let dump = dump_yaml(std::slice::from_ref(&server), true);
        assert!(
            dump.contains("    capabilities:\n    - livekit\n    enabled: true\n"),
            "the declared list stays where sync reads it: {dump}"
        );
        assert!(dump.contains("    bbb_version: 3.0.4\n    automatic_capabilities:\n    - bbb-3.0\n"), "{dump}");
        let wanted = parse(&dump).unwrap();
        assert_eq!(wanted[0].capabilities, ["livekit"]);
        // The plain dump has no learned ones at all.
        assert!(!dump_yaml(std::slice::from_ref(&server), false).contains("bbb-3.0"));
    }

    #[test]
    fn defaults() {
        let wanted = parse("servers:\n  bbb1.example.com:\n    secret: s\n    load: 3.0\n    online: true\n").unwrap();
        assert_eq!(wanted[0].url, "https://bbb1.example.com/bigbluebutton/api");
        assert!(wanted[0].enabled);
        assert_eq!(wanted[0].load_multiplier, "1.0");
        assert_eq!(wanted[0].tag, None);
        let wanted =
            parse("servers:\n  a:\n    secret: s\n    enabled: false\n    load_multiplier: 5\n    tag: gpu\n").unwrap();
        assert!(!wanted[0].enabled);
        assert_eq!(wanted[0].load_multiplier, "5");
        assert_eq!(wanted[0].tag.as_deref(), Some("gpu"));
        assert!("nope".parse::<SyncMode>().is_err());
        assert_eq!((wanted[0].region.as_deref(), wanted[0].capabilities.len()), (None, 0));
    }

    #[test]
    fn regions_and_capabilities() {
        let wanted = parse(
            "servers:\n  a:\n    secret: s\n    region: eu-west\n    capabilities: [livekit, sip, livekit]\n  \
             b:\n    secret: s\n    region: ''\n    capabilities: 'livekit; sip'\n",
        )
        .unwrap();
        assert_eq!(wanted[0].region.as_deref(), Some("eu-west"));
        assert_eq!(wanted[0].capabilities, ["livekit", "sip"]);
        assert_eq!(wanted[1].region, None);
        assert_eq!(wanted[1].capabilities, ["livekit", "sip"]);
        let err = |doc: &str| parse(doc).unwrap_err().to_string();
        assert_eq!(
            err("servers:\n  a:\n    secret: s\n    capabilities: [livekit, live kit]\n"),
            "Server id=a: Invalid capability \"live kit\": use 1-64 letters, digits, '-', '_', '.' or ':'"
        );
        assert_eq!(
            err("servers:\n  a:\n    secret: s\n    region: a;b\n"),
            "Server id=a: Invalid region \"a;b\": use 1-64 letters, digits, '-', '_', '.' or ':'"
        );
        assert_eq!(
            err("servers:\n  a:\n    secret: s\n    capabilities: {x: 1}\n"),
            "Server id=a has invalid capabilities: not a list of names"
        );
        assert_eq!(
            err("servers:\n  a:\n    secret: s\n    region: [eu]\n"),
            "Server id=a has invalid region: not a name"
        );
        let many = (0..9).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ");
        assert_eq!(
            err(&format!("servers:\n  a:\n    secret: s\n    capabilities: [{many}]\n")),
            "Server id=a: At most 8 capabilities per server"
        );
    }

    #[test]
    fn the_dump_has_regions_and_capabilities_only_where_set() {
        let mut hash = std::collections::HashMap::new();
        hash.insert("url".to_owned(), "https://a/bigbluebutton/api".to_owned());
        hash.insert("secret".to_owned(), "s".to_owned());
        let plain = Server::from_hash(ServerId::from("a"), &hash, true).unwrap();
        let mut placed = Server::from_hash(ServerId::from("b"), &hash, true).unwrap();
        placed.region = Some("eu".to_owned());
        placed.capabilities = vec!["livekit".to_owned(), "sip".to_owned()];
        let dump = dump_yaml(&[plain, placed], false);
        assert_eq!(
            dump,
            "---\nservers:\n  a:\n    url: https://a/bigbluebutton/api\n    secret: s\n    load_multiplier: 1.0\n    tag: ''\n    enabled: true\n  \
             b:\n    url: https://a/bigbluebutton/api\n    secret: s\n    load_multiplier: 1.0\n    tag: ''\n    region: eu\n    capabilities:\n    - livekit\n    - sip\n    enabled: true\n"
        );
        let wanted = parse(&dump).unwrap();
        assert_eq!((wanted[0].region.as_deref(), wanted[0].capabilities.len()), (None, 0));
        assert_eq!(
            (wanted[1].region.as_deref(), wanted[1].capabilities.as_slice()),
            (Some("eu"), &["livekit".to_owned(), "sip".to_owned()][..])
        );
    }
}
