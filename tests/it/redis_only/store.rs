//! The Redis store against a real Redis holding Ruby Scalelite's records.

use std::sync::Arc;

use crate::support::{
    assert_needs_follow_the_reference, assert_placements_follow_the_reference, placement_pools, placement_request,
    pool_traits,
};
use scalelite_core::{MeetingId, ServerId};
use scalelite_store::{JoinRoute, MeetingStore, Placement, RedisStore, ServerState, ServerStore};
use scalelite_tests::seed::{SeedServer, seed_meeting, seed_server};
use scalelite_tests::{NS, TestRedis};

#[tokio::test]
async fn servers_written_by_ruby_are_read_as_they_are() {
    let redis = TestRedis::start().await;
    let records = [
        SeedServer::enabled("enabled", "https://a/bigbluebutton/api", "sa").load(Some(21.0)).tag("gpu"),
        SeedServer::enabled("cordoned", "https://b/bigbluebutton/api", "sb").state("cordoned").load(Some(3.5)),
        SeedServer::enabled("disabled", "https://c/bigbluebutton/api", "sc").state("disabled").online(false),
        SeedServer::enabled("legacy-on", "https://d/bigbluebutton/api", "sd").legacy(true).multiplier(Some("5")),
        SeedServer::enabled("legacy-off", "https://e/bigbluebutton/api", "se").legacy(false).multiplier(None),
    ];
    for record in &records {
        seed_server(&redis, NS, record).await;
    }
    let store = RedisStore::open(&redis.url(), NS).unwrap();
    let mut servers = store.servers().await.unwrap();
    servers.sort_by(|a, b| a.id.cmp(&b.id));
    let summary: Vec<_> = servers
        .iter()
        .map(|s| (s.id.as_str(), s.effective_state(), s.online, s.load, s.tag.as_deref(), s.multiplier()))
        .collect();
    assert_eq!(
        summary,
        [
            ("cordoned", ServerState::Cordoned, true, Some(3.5), None, 1.0),
            ("disabled", ServerState::Disabled, false, None, None, 1.0),
            ("enabled", ServerState::Enabled, true, Some(21.0), Some("gpu"), 1.0),
            ("legacy-off", ServerState::Disabled, true, None, None, 1.0),
            ("legacy-on", ServerState::Enabled, true, Some(0.0), None, 5.0),
        ]
    );
    assert_eq!(servers[2].load_multiplier.as_deref(), Some("1.0"));
    assert_eq!(servers[2].secret.expose(), "sa");
}

#[tokio::test]
async fn meetings_written_by_ruby_route_joins_and_ours_are_readable_by_ruby() {
    let redis = TestRedis::start().await;
    seed_server(&redis, NS, &SeedServer::enabled("s1", "https://a/bigbluebutton/api", "sa").multiplier(Some("2.0")))
        .await;
    seed_meeting(&redis, NS, "ruby", "s1", "mp", "123456789").await;
    let store = RedisStore::open(&redis.url(), NS).unwrap();
    let route = store.find_meeting(&MeetingId::from("ruby"), None).await.unwrap().unwrap();
    assert_eq!(route.meeting.server_id, ServerId::from("s1"));
    assert_eq!(route.meeting.voice_bridge, "123456789");
    assert_eq!(route.server.unwrap().url, "https://a/bigbluebutton/api");
    let join = store.route_join(&MeetingId::from("ruby"), None, None).await.unwrap();
    assert!(matches!(join, JoinRoute::Ready { ref url, .. } if url == "https://a/bigbluebutton/api"));
    assert_eq!(redis.cmd(&["ZSCORE", "scalelite:server_load", "s1"]).await.as_str(), Some("2"));

    // Our meeting uses only the fields Ruby's Meeting model knows.
    let placed = store.place_meeting(&placement_request("ours")).await.unwrap();
    assert!(matches!(placed, Placement::Placed { .. }));
    let fields = redis.cmd(&["HGETALL", "scalelite:meeting:ours"]).await.as_map();
    assert_eq!(
        fields.keys().map(String::as_str).collect::<Vec<_>>(),
        ["moderator_pw", "server_id", "tenant_id", "voice_bridge"]
    );
    assert_eq!(redis.cmd(&["ZSCORE", "scalelite:server_load", "s1"]).await.as_str(), Some("32"));

    // A conditional delete leaves a record that moved elsewhere alone.
    assert!(!store.delete_meeting(&MeetingId::from("ours"), Some(&ServerId::from("other"))).await.unwrap());
    assert!(store.delete_meeting(&MeetingId::from("ours"), Some(&ServerId::from("s1"))).await.unwrap());
    assert!(store.find_meeting(&MeetingId::from("ours"), None).await.unwrap().is_none());
    let vb_left = redis.cmd(&["HVALS", "scalelite:voice_bridges"]).await.as_vec();
    assert_eq!(vb_left, ["ruby"]);
}

#[tokio::test]
async fn concurrent_placements_of_one_meeting_from_many_connections_agree() {
    let redis = TestRedis::start().await;
    for i in 0..5 {
        seed_server(&redis, NS, &SeedServer::enabled(format!("s{i}"), format!("https://{i}/bigbluebutton/api"), "x"))
            .await;
    }
    let stores: Vec<Arc<RedisStore>> = (0..4).map(|_| Arc::new(RedisStore::open(&redis.url(), NS).unwrap())).collect();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = Arc::clone(&stores[i % stores.len()]);
            tokio::spawn(async move { store.place_meeting(&placement_request("contested")).await.unwrap() })
        })
        .collect();
    let mut placed = 0;
    let mut servers = std::collections::BTreeSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Placement::Placed { server, .. } => {
                placed += 1;
                servers.insert(server.id);
            }
            Placement::Existing(route) => {
                servers.insert(route.meeting.server_id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(placed, 1);
    assert_eq!(servers.len(), 1);
}

#[tokio::test]
async fn namespace_is_honoured() {
    let redis = TestRedis::start().await;
    seed_server(&redis, "other_ns", &SeedServer::enabled("s1", "https://a/bigbluebutton/api", "sa")).await;
    assert!(RedisStore::open(&redis.url(), NS).unwrap().servers().await.unwrap().is_empty());
    assert_eq!(RedisStore::open(&redis.url(), "other_ns").unwrap().servers().await.unwrap().len(), 1);
}

/// The placement script against the reference on Ruby's records, pool
/// members without a `server:<id>` hash included.
#[tokio::test]
async fn placement_script_agrees_with_the_reference_selection() {
    let redis = TestRedis::start().await;
    let store = RedisStore::open(&redis.url(), NS).unwrap();
    for (round, mut pool) in placement_pools(true).into_iter().enumerate() {
        redis.cmd(&["FLUSHDB"]).await;
        for server in &pool {
            if !server.exists {
                redis.cmd(&["ZADD", "scalelite:server_load", &format!("{:?}", server.load), &server.id]).await;
                continue;
            }
            let mut record =
                SeedServer::enabled(server.id.clone(), format!("https://{}/bigbluebutton/api", server.id), "x")
                    .load(Some(server.load));
            if let Some(tag) = server.tag {
                record = record.tag(tag);
            }
            seed_server(&redis, NS, &record).await;
        }
        // Regions and capabilities as the balancer writes them, versions as
        // a poller does (Ruby's or ours).
        for (i, server) in pool.iter().enumerate().filter(|(_, s)| s.exists) {
            let (region, capabilities, version) = pool_traits(i);
            let placement = format!("scalelite:server_placement:{}", server.id);
            redis
                .cmd(&["HSET", &placement, "region", region.unwrap_or(""), "capabilities", &capabilities.join(";")])
                .await;
            redis.cmd(&["HSET", &format!("scalelite:server:{}", server.id), "bbb_version", version]).await;
        }
        assert_needs_follow_the_reference(&store, &pool, round).await;
        assert_placements_follow_the_reference(&store, &mut pool, round).await;
    }
}
