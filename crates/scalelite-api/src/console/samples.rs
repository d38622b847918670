//! What the console's plots show: each server's load and users, sampled by
//! the API process from the store every `CONSOLE_SAMPLE_INTERVAL` into a
//! bounded ring buffer per server (kept in memory only, so every replica
//! has its own, and a restart starts the plots over).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use scalelite_store::Server;

use super::html::Point;

/// Samples kept per server (4 hours at the default interval of 60 s).
pub(crate) const SAMPLES_PER_SERVER: usize = 240;
/// Servers followed at most; a larger fleet's plots stop at the first ones
/// by id, so the memory stays bounded.
pub(crate) const MAX_SERVERS: usize = 2_000;

#[derive(Clone, Copy, Debug)]
struct Sample {
    at_ms: i64,
    load: f64,
    users: f64,
}

/// The samples of every server.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    by_server: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl Samples {
    /// Records one sample of each of `servers` taken at `at_ms`; servers
    /// that are gone are forgotten. An offline server counts as load 0 and
    /// 0 users (the balancer places nothing on it).
    pub(crate) fn record(&self, servers: &[Server], at_ms: i64) {
        let mut ids: Vec<&Server> = servers.iter().collect();
        ids.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        ids.truncate(MAX_SERVERS);
        let Ok(mut by_server) = self.by_server.lock() else { return };
        let current: std::collections::HashSet<&str> = ids.iter().map(|s| s.id.as_str()).collect();
        by_server.retain(|id, _| current.contains(id.as_str()));
        for server in ids {
            let (load, users) = if server.online {
                (server.load.unwrap_or(0.0), server.stats.users.unwrap_or(0) as f64)
            } else {
                (0.0, 0.0)
            };
            let ring = by_server.entry(server.id.as_str().to_owned()).or_default();
            if ring.len() == SAMPLES_PER_SERVER {
                ring.pop_front();
            }
            ring.push_back(Sample { at_ms, load, users });
        }
    }

    /// The load and users series of `server`, oldest first.
    pub(crate) fn series(&self, server: &str) -> (Vec<Point>, Vec<Point>) {
        let Ok(by_server) = self.by_server.lock() else { return Default::default() };
        let Some(ring) = by_server.get(server) else { return Default::default() };
        (ring.iter().map(|s| (s.at_ms, s.load)).collect(), ring.iter().map(|s| (s.at_ms, s.users)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, load: f64) -> Server {
        let mut server = Server {
            id: scalelite_core::ServerId::new(id),
            url: format!("http://{id}/bigbluebutton/api"),
            secret: scalelite_core::Secret::new("s"),
            tag: None,
            online: true,
            state: Some("enabled".into()),
            in_enabled_set: true,
            load_multiplier: None,
            load: Some(load),
            stats: Default::default(),
            bbb_version: None,
            region: None,
            capabilities: Vec::new(),
        };
        server.stats.users = Some(3);
        server
    }

    #[test]
    fn memory_is_bounded_and_gone_servers_are_forgotten() {
        let samples = Samples::default();
        for i in 0..(SAMPLES_PER_SERVER as i64 + 10) {
            samples.record(&[server("a", i as f64), server("b", 1.0)], i);
        }
        let (load, users) = samples.series("a");
        assert_eq!(load.len(), SAMPLES_PER_SERVER);
        assert_eq!(load.first().unwrap().0, 10);
        assert_eq!(users.last().unwrap().1, 3.0);
        samples.record(&[server("b", 1.0)], 1_000);
        assert!(samples.series("a").0.is_empty());
    }
}
