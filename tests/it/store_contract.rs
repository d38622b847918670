//! The `Store` contract: one set of test bodies, run against the Redis
//! store (a real `redis-server`) and the embedded SQLite store (a file in a
//! temporary directory). Only the `Store` trait is used, so both backends
//! must agree on every observable behaviour.

use std::sync::Arc;

use crate::support::{
    self, Fixture, assert_needs_follow_the_reference, assert_placements_follow_the_reference, contract,
    placement_pools, placement_request, pool_traits,
};
use std::time::Duration;

use scalelite_core::{MeetingId, Secret, ServerId, TenantId};
use scalelite_store::{
    AnalyticsCallback, Drain, JoinRoute, Lease, NewServer, Placement, PollResult, PollSave, PollSaved, PollStats,
    RedisStore, ServerState, ServerUpdate, SqliteStore, Store, StoreError, StoredCreate, Tenant, TenantSetting,
    TenantUpdate, Transition,
};
use scalelite_tests::{NS, TestRedis, eventually_with};

async fn redis_fixture() -> Fixture<dyn Store> {
    let redis = TestRedis::start().await;
    let store = RedisStore::open(&redis.url(), NS).unwrap();
    Fixture { store: Arc::new(store), _guard: Box::new(redis) }
}

async fn sqlite_fixture() -> Fixture<dyn Store> {
    support::sqlite_fixture(|s| s as Arc<dyn Store>).await
}

contract!(
    [redis => redis_fixture, sqlite => sqlite_fixture],
    [health_check_passes,
    servers_are_created_updated_and_deleted,
    polls_bring_servers_online_and_offline_with_hysteresis,
    poll_saves_are_fenced_by_the_lease,
    leases_are_exclusive_and_expire,
    the_last_round_note_is_replaced_and_expires,
    placement_reserves_load_and_joins_count,
    placement_respects_tenants_and_voice_bridges,
    tenant_limits_refuse_placements_and_joins,
    placement_agrees_with_the_reference_selection,
    placement_with_needs_agrees_with_the_reference_selection,
    concurrent_placements_of_one_meeting_agree,
    meetings_expire_and_prune_cleans_up,
    rehoming_placements_keep_and_replace_the_create,
    short_lived_keys_round_trip,
    tenants_and_settings,
    drains_are_kept_replaced_and_deleted,
    upload_marks_are_claimed_once_and_expire]
);

fn new_server(id: &str, tag: Option<&str>, multiplier: Option<&str>) -> NewServer {
    NewServer {
        id: ServerId::from(id),
        url: format!("https://{id}/bigbluebutton/api"),
        secret: Secret::new(format!("secret-{id}")),
        load_multiplier: multiplier.map(str::to_owned),
        tag: tag.map(str::to_owned),
    }
}

fn poll(id: &str, load: Option<f64>, healthy: u32, unhealthy: u32) -> PollSave {
    PollSave {
        server_id: ServerId::from(id),
        result: match load {
            Some(load) => PollResult::Reachable {
                load,
                stats: PollStats { meetings: 1, users: 2, largest_meeting: 2, videos: 0 },
            },
            None => PollResult::Unreachable,
        },
        bbb_version: Some("3.0.0".into()),
        healthy_threshold: healthy,
        unhealthy_threshold: unhealthy,
    }
}

fn leader() -> Lease {
    Lease::poller("contract-test")
}

/// Creates an enabled server and brings it online at `load`.
async fn online_server(store: &dyn Store, id: &str, tag: Option<&str>, multiplier: Option<&str>, load: f64) {
    store.create_server(&new_server(id, tag, multiplier)).await.unwrap();
    let enable = ServerUpdate { state: Some(ServerState::Enabled), ..Default::default() };
    store.update_server(&ServerId::from(id), &enable).await.unwrap();
    assert!(store.acquire_lease(&leader(), Duration::from_secs(60)).await.unwrap());
    let saved = store.save_poll(&leader(), &poll(id, Some(load), 1, 1)).await.unwrap();
    assert!(matches!(saved, PollSaved::Saved { online: true, .. }), "{saved:?}");
}

async fn load_of(store: &dyn Store, id: &str) -> Option<f64> {
    store.server(&ServerId::from(id)).await.unwrap().unwrap().load
}

async fn health_check_passes(store: Arc<dyn Store>) {
    store.health_check().await.unwrap();
    store.health_check().await.unwrap();
}

async fn servers_are_created_updated_and_deleted(store: Arc<dyn Store>) {
    let s1 = ServerId::from("s1");
    store.create_server(&new_server("s1", Some("gpu"), Some("2.0"))).await.unwrap();
    let err = store.create_server(&new_server("s1", None, None)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m == "Server already exists with id 's1'"), "{err:?}");

    let server = store.server(&s1).await.unwrap().unwrap();
    assert_eq!(server.url, "https://s1/bigbluebutton/api");
    assert_eq!(server.secret.expose(), "secret-s1");
    assert_eq!(server.tag.as_deref(), Some("gpu"));
    assert_eq!(server.load_multiplier.as_deref(), Some("2.0"));
    assert_eq!(
        (server.online, server.state.as_deref(), server.effective_state()),
        (false, None, ServerState::Disabled)
    );
    assert_eq!(server.load, None);
    assert_eq!(server.stats, Default::default());
    assert!(store.server(&ServerId::from("nope")).await.unwrap().is_none());

    let update = ServerUpdate {
        url: Some("https://new/bigbluebutton/api".into()),
        secret: Some(Secret::new("new-secret")),
        load_multiplier: Some("3".into()),
        tag: Some(None),
        state: Some(ServerState::Enabled),
        region: Some(Some("eu-west".into())),
        capabilities: Some(vec!["livekit".into(), "sip".into()]),
    };
    store.update_server(&s1, &update).await.unwrap();
    let server = store.server(&s1).await.unwrap().unwrap();
    assert_eq!(
        (server.region.as_deref(), server.capabilities.clone()),
        (Some("eu-west"), vec!["livekit".into(), "sip".into()])
    );
    // Kept by other updates, removed by their own.
    store.update_server(&s1, &ServerUpdate { tag: Some(Some("x".into())), ..Default::default() }).await.unwrap();
    assert_eq!(store.server(&s1).await.unwrap().unwrap().region.as_deref(), Some("eu-west"));
    let clear =
        ServerUpdate { region: Some(None), capabilities: Some(Vec::new()), tag: Some(None), ..Default::default() };
    store.update_server(&s1, &clear).await.unwrap();
    let cleared = store.server(&s1).await.unwrap().unwrap();
    assert_eq!((cleared.region, cleared.capabilities), (None, Vec::<String>::new()));
    store
        .update_server(&s1, &ServerUpdate { region: Some(Some("eu-west".into())), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(server.url, "https://new/bigbluebutton/api");
    assert_eq!(server.secret.expose(), "new-secret");
    assert_eq!((server.tag.as_deref(), server.multiplier()), (None, 3.0));
    assert_eq!((server.state.as_deref(), server.effective_state()), (Some("enabled"), ServerState::Enabled));
    // Enabling a server that was never polled puts no load in the pool yet.
    assert_eq!(server.load, None);

    let missing = store.update_server(&ServerId::from("nope"), &update).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(ref m) if m == "Couldn't find Server with id=nope"), "{missing:?}");

    store.create_server(&new_server("s2", None, None)).await.unwrap();
    let ids: Vec<_> = {
        let mut servers = store.servers().await.unwrap();
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        servers.into_iter().map(|s| s.id.into_string()).collect()
    };
    assert_eq!(ids, ["s1", "s2"]);
    assert!(store.delete_server(&s1).await.unwrap());
    assert!(!store.delete_server(&s1).await.unwrap());
    assert!(store.server(&s1).await.unwrap().is_none());
    assert_eq!(store.servers().await.unwrap().len(), 1);
}

async fn polls_bring_servers_online_and_offline_with_hysteresis(store: Arc<dyn Store>) {
    let lease = leader();
    assert!(store.acquire_lease(&lease, Duration::from_secs(60)).await.unwrap());
    store.create_server(&new_server("s1", None, None)).await.unwrap();
    let s1 = ServerId::from("s1");
    let enable = ServerUpdate { state: Some(ServerState::Enabled), ..Default::default() };
    store.update_server(&s1, &enable).await.unwrap();

    // Two successes are needed to come online.
    let first = store.save_poll(&lease, &poll("s1", Some(4.0), 2, 2)).await.unwrap();
    assert_eq!(first, PollSaved::Saved { online: false, state: Some("enabled".into()), transition: None });
    assert_eq!(load_of(&*store, "s1").await, None);
    let second = store.save_poll(&lease, &poll("s1", Some(4.0), 2, 2)).await.unwrap();
    assert_eq!(
        second,
        PollSaved::Saved { online: true, state: Some("enabled".into()), transition: Some(Transition::CameOnline) }
    );
    let server = store.server(&s1).await.unwrap().unwrap();
    assert_eq!((server.online, server.load, server.bbb_version.as_deref()), (true, Some(4.0), Some("3.0.0")));
    assert_eq!((server.stats.meetings, server.stats.users, server.stats.videos), (Some(1), Some(2), Some(0)));

    // One failure is not enough; a success in between resets the count.
    let saved = store.save_poll(&lease, &poll("s1", None, 2, 2)).await.unwrap();
    assert_eq!(saved, PollSaved::Saved { online: true, state: Some("enabled".into()), transition: None });
    store.save_poll(&lease, &poll("s1", Some(5.0), 2, 2)).await.unwrap();
    store.save_poll(&lease, &poll("s1", None, 2, 2)).await.unwrap();
    assert!(store.server(&s1).await.unwrap().unwrap().online);
    let saved = store.save_poll(&lease, &poll("s1", None, 2, 2)).await.unwrap();
    assert_eq!(
        saved,
        PollSaved::Saved { online: false, state: Some("enabled".into()), transition: Some(Transition::WentOffline) }
    );
    let server = store.server(&s1).await.unwrap().unwrap();
    assert_eq!((server.online, server.load, server.stats.users), (false, None, Some(0)));

    // Back online, then cordoned: the load follows; at zero it drains.
    store.save_poll(&lease, &poll("s1", Some(7.0), 1, 1)).await.unwrap();
    assert_eq!(load_of(&*store, "s1").await, Some(7.0));
    let cordon = ServerUpdate { state: Some(ServerState::Cordoned), ..Default::default() };
    store.update_server(&s1, &cordon).await.unwrap();
    let server = store.server(&s1).await.unwrap().unwrap();
    assert_eq!((server.effective_state(), server.load), (ServerState::Cordoned, Some(7.0)));
    let saved = store.save_poll(&lease, &poll("s1", Some(3.0), 1, 1)).await.unwrap();
    assert_eq!(saved, PollSaved::Saved { online: true, state: Some("cordoned".into()), transition: None });
    assert_eq!(load_of(&*store, "s1").await, Some(3.0));
    let saved = store.save_poll(&lease, &poll("s1", Some(0.0), 1, 1)).await.unwrap();
    assert_eq!(
        saved,
        PollSaved::Saved { online: true, state: Some("disabled".into()), transition: Some(Transition::Drained) }
    );
    let server = store.server(&s1).await.unwrap().unwrap();
    assert_eq!((server.effective_state(), server.load), (ServerState::Disabled, None));

    // Re-enabled: back in the pool at the next poll.
    store.update_server(&s1, &enable).await.unwrap();
    store.save_poll(&lease, &poll("s1", Some(2.0), 1, 1)).await.unwrap();
    assert_eq!(load_of(&*store, "s1").await, Some(2.0));
}

async fn poll_saves_are_fenced_by_the_lease(store: Arc<dyn Store>) {
    store.create_server(&new_server("s1", None, None)).await.unwrap();
    let holder = leader();
    let intruder = Lease::poller("intruder");
    assert_eq!(store.save_poll(&holder, &poll("s1", Some(1.0), 1, 1)).await.unwrap(), PollSaved::NotLeader);
    assert!(store.acquire_lease(&holder, Duration::from_secs(60)).await.unwrap());
    assert_eq!(store.save_poll(&intruder, &poll("s1", Some(1.0), 1, 1)).await.unwrap(), PollSaved::NotLeader);
    assert!(!store.server(&ServerId::from("s1")).await.unwrap().unwrap().online);
    assert_eq!(store.save_poll(&holder, &poll("gone", Some(1.0), 1, 1)).await.unwrap(), PollSaved::Gone);
    let saved = store.save_poll(&holder, &poll("s1", Some(1.0), 1, 1)).await.unwrap();
    // Never enabled: online, but no state and no load.
    assert_eq!(saved, PollSaved::Saved { online: true, state: None, transition: Some(Transition::CameOnline) });
    assert_eq!(load_of(&*store, "s1").await, None);
}

async fn leases_are_exclusive_and_expire(store: Arc<dyn Store>) {
    let a = Lease::poller("a");
    let b = Lease::poller("b");
    assert_eq!(store.lease_holder(&a.name).await.unwrap(), None);
    assert!(store.acquire_lease(&a, Duration::from_secs(60)).await.unwrap());
    assert!(store.acquire_lease(&a, Duration::from_secs(60)).await.unwrap());
    assert!(!store.acquire_lease(&b, Duration::from_secs(60)).await.unwrap());
    assert!(!store.renew_lease(&b, Duration::from_secs(60)).await.unwrap());
    assert!(store.renew_lease(&a, Duration::from_secs(60)).await.unwrap());
    assert_eq!(store.lease_holder(&a.name).await.unwrap().as_deref(), Some("a"));
    store.release_lease(&b).await.unwrap();
    assert_eq!(store.lease_holder(&a.name).await.unwrap().as_deref(), Some("a"));
    store.release_lease(&a).await.unwrap();
    assert_eq!(store.lease_holder(&a.name).await.unwrap(), None);
    assert!(!store.renew_lease(&a, Duration::from_secs(60)).await.unwrap());

    assert!(store.acquire_lease(&b, Duration::from_millis(100)).await.unwrap());
    assert!(!store.acquire_lease(&a, Duration::from_secs(60)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.lease_holder(&b.name).await.unwrap(), None);
    assert!(!store.renew_lease(&b, Duration::from_secs(60)).await.unwrap());
    assert!(store.acquire_lease(&a, Duration::from_secs(60)).await.unwrap());
    assert_eq!(store.lease_holder(&a.name).await.unwrap().as_deref(), Some("a"));
}

async fn the_last_round_note_is_replaced_and_expires(store: Arc<dyn Store>) {
    assert_eq!(store.last_round().await.unwrap(), None);
    let first = scalelite_store::RoundNote {
        holder: "host:1:ab".into(),
        at_ms: 1_796_551_200_000,
        duration_ms: 12,
        servers: 3,
        reachable: 2,
    };
    store.note_round(&first, Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.last_round().await.unwrap().as_ref(), Some(&first));
    // The note is not a lease: the poller's lease stays free.
    assert_eq!(store.lease_holder(scalelite_store::POLLER_LEASE).await.unwrap(), None);
    let second = scalelite_store::RoundNote { holder: "host:2:cd".into(), servers: 4, ..first.clone() };
    store.note_round(&second, Duration::from_millis(100)).await.unwrap();
    assert_eq!(store.last_round().await.unwrap().as_ref(), Some(&second));
    eventually_with(Duration::from_secs(10), "the round note expires", || async {
        store.last_round().await.unwrap().is_none()
    })
    .await;
}

async fn placement_reserves_load_and_joins_count(store: Arc<dyn Store>) {
    assert_eq!(store.place_meeting(&placement_request("m0")).await.unwrap(), Placement::NoServer);
    online_server(&*store, "busy", None, None, 50.0).await;
    online_server(&*store, "idle", None, Some("2.0"), 10.0).await;

    let Placement::Placed { meeting, server } = store.place_meeting(&placement_request("m1")).await.unwrap() else {
        panic!("not placed");
    };
    assert_eq!((meeting.server_id.as_str(), server.id.as_str()), ("idle", "idle"));
    assert_eq!((meeting.moderator_pw.as_str(), meeting.tenant_id.as_ref()), ("mp", None));
    assert_eq!(meeting.voice_bridge, placement_request("m1").voice_bridges[0]);
    // 15 users reserved × the multiplier.
    assert_eq!(load_of(&*store, "idle").await, Some(40.0));

    let Placement::Existing(route) = store.place_meeting(&placement_request("m1")).await.unwrap() else {
        panic!("not existing");
    };
    assert_eq!(route.meeting, meeting);
    assert_eq!(route.server.as_ref().map(|s| s.url.as_str()), Some("https://idle/bigbluebutton/api"));
    assert_eq!(load_of(&*store, "idle").await, Some(40.0));

    let found = store.find_meeting(&MeetingId::from("m1"), None).await.unwrap().unwrap();
    assert_eq!(found.meeting, meeting);
    assert!(store.find_meeting(&MeetingId::from("nope"), None).await.unwrap().is_none());

    let join = store.route_join(&MeetingId::from("m1"), None, None).await.unwrap();
    assert_eq!(
        join,
        JoinRoute::Ready {
            url: "https://idle/bigbluebutton/api".into(),
            secret: Secret::new("secret-idle"),
            server_id: ServerId::from("idle"),
            multiplier: 2.0,
        }
    );
    assert_eq!(load_of(&*store, "idle").await, Some(42.0));
    // Joins counted elsewhere (the API's join route cache), in one batch.
    store.add_load(&[(ServerId::from("idle"), 0.5), (ServerId::from("busy"), 1.0)]).await.unwrap();
    assert_eq!(load_of(&*store, "idle").await, Some(42.5));
    assert_eq!(load_of(&*store, "busy").await, Some(51.0));
    assert_eq!(store.route_join(&MeetingId::from("nope"), None, None).await.unwrap(), JoinRoute::NotFound);

    // The next meeting goes to the least loaded server: still idle (42.5 < 51).
    let Placement::Placed { server, .. } = store.place_meeting(&placement_request("m2")).await.unwrap() else {
        panic!("not placed");
    };
    assert_eq!(server.id.as_str(), "idle");
    let Placement::Placed { server, .. } = store.place_meeting(&placement_request("m3")).await.unwrap() else {
        panic!("not placed");
    };
    assert_eq!(server.id.as_str(), "busy");

    // Joins to a disabled or offline server are refused and not counted.
    let idle = ServerId::from("idle");
    store
        .update_server(&idle, &ServerUpdate { state: Some(ServerState::Disabled), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(store.route_join(&MeetingId::from("m1"), None, None).await.unwrap(), JoinRoute::Unavailable);
    assert_eq!(load_of(&*store, "idle").await, None);
    // A batch of joins never puts a server back in the placement pool.
    store.add_load(&[(idle.clone(), 3.0), (ServerId::from("gone"), 1.0)]).await.unwrap();
    assert_eq!(load_of(&*store, "idle").await, None);
    assert!(store.server(&ServerId::from("gone")).await.unwrap().is_none());
    // Cordoned: joins still go there.
    store
        .update_server(&idle, &ServerUpdate { state: Some(ServerState::Cordoned), ..Default::default() })
        .await
        .unwrap();
    assert!(matches!(store.route_join(&MeetingId::from("m1"), None, None).await.unwrap(), JoinRoute::Ready { .. }));
    let busy_down = poll("busy", None, 1, 1);
    store.save_poll(&leader(), &busy_down).await.unwrap();
    assert_eq!(store.route_join(&MeetingId::from("m3"), None, None).await.unwrap(), JoinRoute::Unavailable);

    // Conditional deletes leave a record that points elsewhere alone.
    let m1 = MeetingId::from("m1");
    assert!(!store.delete_meeting(&m1, Some(&ServerId::from("busy"))).await.unwrap());
    assert!(store.delete_meeting(&m1, Some(&idle)).await.unwrap());
    assert!(!store.delete_meeting(&m1, None).await.unwrap());
    assert!(store.find_meeting(&m1, None).await.unwrap().is_none());
    assert!(store.find_meeting_by_voice_bridge(&meeting.voice_bridge).await.unwrap().is_none());

    // A meeting outlives its server's record.
    assert!(store.delete_server(&ServerId::from("busy")).await.unwrap());
    let route = store.find_meeting(&MeetingId::from("m3"), None).await.unwrap().unwrap();
    assert_eq!((route.meeting.server_id.as_str(), route.server), ("busy", None));
    assert_eq!(store.route_join(&MeetingId::from("m3"), None, None).await.unwrap(), JoinRoute::NotFound);
}

async fn tenant_limits_refuse_placements_and_joins(store: Arc<dyn Store>) {
    online_server(&*store, "s1", None, None, 0.0).await;
    let (t1, t2) = (TenantId::from("t1"), TenantId::from("t2"));
    let request = |id: &str, tenant: &TenantId| {
        let mut req = placement_request(id);
        req.tenant_id = Some(tenant.clone());
        req.max_meetings = Some(2);
        req
    };
    let placed = |p: Placement| matches!(p, Placement::Placed { .. });
    assert!(placed(store.place_meeting(&request("m1", &t1)).await.unwrap()));
    assert!(placed(store.place_meeting(&request("m2", &t1)).await.unwrap()));
    assert_eq!(store.place_meeting(&request("m3", &t1)).await.unwrap(), Placement::TenantLimit);
    assert!(store.find_meeting(&MeetingId::from("m3"), None).await.unwrap().is_none(), "nothing written");
    // An existing meeting is never refused; other tenants count their own.
    assert!(matches!(store.place_meeting(&request("m1", &t1)).await.unwrap(), Placement::Existing(_)));
    assert!(placed(store.place_meeting(&request("other", &t2)).await.unwrap()));
    // A deleted meeting frees its place.
    assert!(store.delete_meeting(&MeetingId::from("m1"), None).await.unwrap());
    assert!(placed(store.place_meeting(&request("m3", &t1)).await.unwrap()));
    // Re-homing an existing meeting of a tenant at its limit is allowed.
    let mut rehoming = request("m2", &t1);
    rehoming.replace_on = Some(ServerId::from("s1"));
    assert!(placed(store.place_meeting(&rehoming).await.unwrap()));

    // Joins: the poller's count plus the joins routed since.
    let m2 = MeetingId::from("m2");
    let ready = |r: JoinRoute| matches!(r, JoinRoute::Ready { .. });
    assert!(ready(store.route_join(&m2, Some(&t1), Some(2)).await.unwrap()));
    assert!(ready(store.route_join(&m2, Some(&t1), Some(2)).await.unwrap()));
    assert_eq!(store.route_join(&m2, Some(&t1), Some(2)).await.unwrap(), JoinRoute::LimitReached);
    // Without a limit nothing is checked.
    assert!(ready(store.route_join(&m2, Some(&t1), None).await.unwrap()));
    // The poller's count replaces it, only under the lease.
    let stranger = Lease::poller("not-the-leader");
    assert!(!store.save_tenant_participants(&stranger, &[(t1.clone(), 0)]).await.unwrap());
    assert_eq!(store.route_join(&m2, Some(&t1), Some(2)).await.unwrap(), JoinRoute::LimitReached);
    assert!(store.acquire_lease(&leader(), Duration::from_secs(30)).await.unwrap());
    assert!(store.save_tenant_participants(&leader(), &[(t1.clone(), 1)]).await.unwrap());
    assert!(ready(store.route_join(&m2, Some(&t1), Some(2)).await.unwrap()));
    assert_eq!(store.route_join(&m2, Some(&t1), Some(2)).await.unwrap(), JoinRoute::LimitReached);
    assert!(store.save_tenant_participants(&leader(), &[]).await.unwrap());
    assert!(ready(store.route_join(&m2, Some(&t1), Some(2)).await.unwrap()));
}

async fn placement_respects_tenants_and_voice_bridges(store: Arc<dyn Store>) {
    online_server(&*store, "s1", None, None, 0.0).await;
    let t1 = TenantId::from("t1");
    let t2 = TenantId::from("t2");
    let mut req = placement_request("shared");
    req.tenant_id = Some(t1.clone());
    let Placement::Placed { meeting, .. } = store.place_meeting(&req).await.unwrap() else {
        panic!("not placed");
    };
    assert_eq!(meeting.tenant_id.as_ref(), Some(&t1));
    assert!(matches!(store.place_meeting(&req).await.unwrap(), Placement::Existing(_)));
    req.tenant_id = Some(t2.clone());
    assert_eq!(store.place_meeting(&req).await.unwrap(), Placement::TenantConflict);
    // Without a tenant, the stored one is not checked.
    assert!(matches!(store.place_meeting(&placement_request("shared")).await.unwrap(), Placement::Existing(_)));

    let id = MeetingId::from("shared");
    assert!(store.find_meeting(&id, Some(&t1)).await.unwrap().is_some());
    assert!(store.find_meeting(&id, Some(&t2)).await.unwrap().is_none());
    assert!(store.find_meeting(&id, None).await.unwrap().is_some());
    assert!(matches!(store.route_join(&id, Some(&t1), None).await.unwrap(), JoinRoute::Ready { .. }));
    assert_eq!(store.route_join(&id, Some(&t2), None).await.unwrap(), JoinRoute::NotFound);

    // A meeting stored without tenant is not taken over by a tenant.
    store.place_meeting(&placement_request("plain")).await.unwrap();
    let mut tenant_req = placement_request("plain");
    tenant_req.tenant_id = Some(t1.clone());
    assert_eq!(store.place_meeting(&tenant_req).await.unwrap(), Placement::TenantConflict);

    // Voice bridges: the first free candidate; exhausted when all are taken.
    let by_pin = store.find_meeting_by_voice_bridge(&meeting.voice_bridge).await.unwrap().unwrap();
    assert_eq!(by_pin.meeting.id, id);
    assert_eq!(by_pin.server.map(|s| s.id.into_string()).as_deref(), Some("s1"));
    assert!(store.find_meeting_by_voice_bridge("000000000").await.unwrap().is_none());
    let mut clash = placement_request("clash");
    clash.voice_bridges = vec![meeting.voice_bridge.clone(), "555555555".into()];
    let Placement::Placed { meeting: second, .. } = store.place_meeting(&clash).await.unwrap() else {
        panic!("not placed");
    };
    assert_eq!(second.voice_bridge, "555555555");
    let mut exhausted = placement_request("exhausted");
    exhausted.voice_bridges = vec![meeting.voice_bridge.clone(), "555555555".into()];
    assert_eq!(store.place_meeting(&exhausted).await.unwrap(), Placement::VoiceBridgesExhausted);
    assert!(store.find_meeting(&MeetingId::from("exhausted"), None).await.unwrap().is_none());
}

async fn placement_agrees_with_the_reference_selection(store: Arc<dyn Store>) {
    for (round, mut pool) in placement_pools(false).into_iter().enumerate() {
        for server in store.servers().await.unwrap() {
            store.delete_server(&server.id).await.unwrap();
        }
        for server in &pool {
            online_server(&*store, &server.id, server.tag, None, server.load).await;
        }
        assert_placements_follow_the_reference(&*store, &mut pool, round).await;
    }
}

async fn placement_with_needs_agrees_with_the_reference_selection(store: Arc<dyn Store>) {
    for (round, pool) in placement_pools(false).into_iter().enumerate() {
        for server in store.servers().await.unwrap() {
            store.delete_server(&server.id).await.unwrap();
        }
        for (i, server) in pool.iter().enumerate() {
            online_server(&*store, &server.id, server.tag, None, server.load).await;
            let (region, capabilities, version) = pool_traits(i);
            let update = ServerUpdate {
                region: Some(region.map(str::to_owned)),
                capabilities: Some(capabilities.into_iter().map(str::to_owned).collect()),
                ..Default::default()
            };
            store.update_server(&ServerId::from(server.id.as_str()), &update).await.unwrap();
            let mut save = poll(&server.id, Some(server.load), 1, 1);
            save.bbb_version = Some(version.into());
            store.save_poll(&leader(), &save).await.unwrap();
        }
        assert_needs_follow_the_reference(&*store, &pool, round).await;
    }
}

async fn concurrent_placements_of_one_meeting_agree(store: Arc<dyn Store>) {
    for i in 0..5 {
        online_server(&*store, &format!("s{i}"), None, None, 0.0).await;
    }
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = Arc::clone(&store);
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
    assert_eq!((placed, servers.len()), (1, 1));
    let total: f64 = store.servers().await.unwrap().iter().filter_map(|s| s.load).sum();
    assert_eq!(total, 15.0);
}

async fn rehoming_placements_keep_and_replace_the_create(store: Arc<dyn Store>) {
    let (s1, s2) = (ServerId::from("s1"), ServerId::from("s2"));
    online_server(&*store, "s1", None, None, 0.0).await;
    let id = MeetingId::from("kept");
    let create = |params: &str| StoredCreate {
        params: params.into(),
        origin: Some("https://lb.example".into()),
        ..StoredCreate::default()
    };
    let mut first = placement_request("kept");
    first.create = Some(create("meetingID=kept&name=Room"));
    let Placement::Placed { meeting, .. } = store.place_meeting(&first).await.unwrap() else {
        panic!("not placed");
    };
    let kept = StoredCreate {
        params: "meetingID=kept&name=Room".into(),
        origin: Some("https://lb.example".into()),
        placed_on: Some(s1.clone()),
        rehomed_from: vec![],
    };
    assert_eq!(store.stored_create(&id).await.unwrap().as_ref(), Some(&kept));
    // A repeated create leaves the first one's parameters.
    let mut repeat = placement_request("kept");
    repeat.create = Some(create("meetingID=kept&name=Other"));
    assert!(matches!(store.place_meeting(&repeat).await.unwrap(), Placement::Existing(_)));
    assert_eq!(store.stored_create(&id).await.unwrap().as_ref(), Some(&kept));

    // s1 goes offline; with no other server, re-homing changes nothing.
    store.save_poll(&leader(), &poll("s1", None, 1, 1)).await.unwrap();
    let mut rehome = first.clone();
    rehome.replace_on = Some(s1.clone());
    rehome.moderator_pw = meeting.moderator_pw.clone();
    rehome.voice_bridges = vec![meeting.voice_bridge.clone(), "999999999".into()];
    assert_eq!(store.place_meeting(&rehome).await.unwrap(), Placement::NoServer);
    assert_eq!(store.find_meeting(&id, None).await.unwrap().unwrap().meeting.server_id, s1);
    assert_eq!(store.stored_create(&id).await.unwrap().as_ref(), Some(&kept));

    // With s2: moved there with its password and voice bridge, load
    // reserved, s1 remembered.
    online_server(&*store, "s2", None, None, 0.0).await;
    let Placement::Placed { meeting: moved, server } = store.place_meeting(&rehome).await.unwrap() else {
        panic!("not re-homed");
    };
    assert_eq!(server.id, s2);
    assert_eq!((&moved.moderator_pw, &moved.voice_bridge), (&meeting.moderator_pw, &meeting.voice_bridge));
    assert_eq!(load_of(&*store, "s2").await, Some(15.0));
    let now = store.stored_create(&id).await.unwrap().unwrap();
    assert_eq!(
        (now.params.as_str(), now.placed_on.as_ref(), now.rehomed_from.as_slice()),
        (kept.params.as_str(), Some(&s2), std::slice::from_ref(&s1))
    );
    let by_pin = store.find_meeting_by_voice_bridge(&meeting.voice_bridge).await.unwrap().unwrap();
    assert_eq!(by_pin.meeting.server_id, s2);
    // A racing re-homing off s1 finds it on s2; nothing changes.
    let Placement::Existing(route) = store.place_meeting(&rehome).await.unwrap() else {
        panic!("re-homed twice");
    };
    assert_eq!(route.meeting.server_id, s2);
    assert_eq!(load_of(&*store, "s2").await, Some(15.0));

    // Deleting the record deletes the parameters (not a delete aimed at s1).
    assert!(!store.delete_meeting(&id, Some(&s1)).await.unwrap());
    assert!(store.stored_create(&id).await.unwrap().is_some());
    assert!(store.delete_meeting(&id, None).await.unwrap());
    assert_eq!(store.stored_create(&id).await.unwrap(), None);
    // A new meeting of that id without parameters has none.
    store.place_meeting(&placement_request("kept")).await.unwrap();
    assert_eq!(store.stored_create(&id).await.unwrap(), None);

    // They expire with the record.
    let mut short = placement_request("short");
    short.ttl = Duration::from_secs(1);
    short.create = Some(create("meetingID=short"));
    store.place_meeting(&short).await.unwrap();
    let short_id = MeetingId::from("short");
    assert!(store.stored_create(&short_id).await.unwrap().is_some());
    scalelite_tests::eventually(Duration::from_secs(5), || async {
        store.stored_create(&short_id).await.unwrap().is_none()
    })
    .await;
}

async fn meetings_expire_and_prune_cleans_up(store: Arc<dyn Store>) {
    online_server(&*store, "s1", None, None, 0.0).await;
    let mut short = placement_request("short");
    short.ttl = Duration::from_secs(1);
    let Placement::Placed { meeting, .. } = store.place_meeting(&short).await.unwrap() else {
        panic!("not placed");
    };
    store.place_meeting(&placement_request("long")).await.unwrap();
    let records = store.meetings().await.unwrap();
    let mut ttls: Vec<_> = records.iter().map(|r| (r.meeting.id.as_str().to_owned(), r.ttl.unwrap())).collect();
    ttls.sort();
    assert_eq!(ttls.len(), 2);
    assert_eq!(ttls[0].0, "long");
    assert!(ttls[0].1 > Duration::from_secs(590) && ttls[0].1 <= Duration::from_secs(600), "{ttls:?}");
    assert!(ttls[1].1 <= Duration::from_secs(1), "{ttls:?}");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let short_id = MeetingId::from("short");
    assert!(store.find_meeting(&short_id, None).await.unwrap().is_none());
    assert_eq!(store.route_join(&short_id, None, None).await.unwrap(), JoinRoute::NotFound);
    assert!(store.find_meeting_by_voice_bridge(&meeting.voice_bridge).await.unwrap().is_none());
    let ids: Vec<_> = store.meetings().await.unwrap().into_iter().map(|r| r.meeting.id.into_string()).collect();
    assert_eq!(ids, ["long"]);

    // The stale meeting goes at once; its voice bridge after two rounds.
    let (pruned, orphans) = store.prune(&[]).await.unwrap();
    assert_eq!((pruned.stale_members, pruned.orphan_voice_bridges), (1, 0));
    assert_eq!(orphans, std::slice::from_ref(&meeting.voice_bridge));
    let (pruned, orphans) = store.prune(&orphans).await.unwrap();
    assert_eq!((pruned.stale_members, pruned.orphan_voice_bridges), (0, 1));
    assert!(orphans.is_empty());

    // The pin is free again: a new meeting may take it.
    let mut again = placement_request("again");
    again.voice_bridges = vec![meeting.voice_bridge.clone()];
    assert!(matches!(store.place_meeting(&again).await.unwrap(), Placement::Placed { .. }));
    // An expired meeting can be created anew under its id.
    assert!(matches!(store.place_meeting(&short).await.unwrap(), Placement::Placed { .. }));
}

async fn short_lived_keys_round_trip(store: Arc<dyn Store>) {
    let m1 = MeetingId::from("m1");
    assert_eq!(store.recording_ready_url("m1").await.unwrap(), None);
    store.remember_recording_ready_url(&m1, "https://a/ready", Duration::from_secs(60)).await.unwrap();
    store.remember_recording_ready_url(&m1, "https://b/ready", Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.recording_ready_url("m1").await.unwrap().as_deref(), Some("https://b/ready"));

    let tokens = vec![("t1".to_owned(), "p1".to_owned()), ("t2".to_owned(), "p2".to_owned())];
    store.create_playback_tokens(&tokens, Duration::from_secs(60)).await.unwrap();
    store.create_playback_tokens(&[], Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.consume_playback_token("t1").await.unwrap().as_deref(), Some("p1"));
    assert_eq!(store.consume_playback_token("t1").await.unwrap(), None);
    assert_eq!(store.consume_playback_token("nope").await.unwrap(), None);
    assert_eq!(store.consume_playback_token("t2").await.unwrap().as_deref(), Some("p2"));

    assert_eq!(store.analytics_callback("m1").await.unwrap(), None);
    let first = AnalyticsCallback { url: "https://a/analytics".into(), tenant_id: Some(TenantId::from("t1")) };
    store.remember_analytics_callback(&m1, &first, Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.analytics_callback("m1").await.unwrap(), Some(first));
    let second = AnalyticsCallback { url: "https://b/analytics".into(), tenant_id: None };
    store.remember_analytics_callback(&m1, &second, Duration::from_secs(60)).await.unwrap();
    assert_eq!(store.analytics_callback("m1").await.unwrap(), Some(second));
}

async fn upload_marks_are_claimed_once_and_expire(store: Arc<dyn Store>) {
    let hour = Duration::from_secs(3600);
    assert!(!store.upload_mark_exists("nonce:abc").await.unwrap());
    assert!(store.claim_upload_mark("nonce:abc", hour).await.unwrap());
    assert!(!store.claim_upload_mark("nonce:abc", hour).await.unwrap(), "a mark is claimed once");
    assert!(store.upload_mark_exists("nonce:abc").await.unwrap());
    assert!(!store.upload_mark_exists("nonce:abd").await.unwrap());
    // Concurrent claims of one mark: exactly one wins.
    let claims = futures::future::join_all((0..8).map(|_| store.claim_upload_mark("nonce:race", hour))).await;
    assert_eq!(claims.into_iter().filter(|c| *c.as_ref().unwrap()).count(), 1);
    // An expired mark is gone and can be claimed again (TTLs are whole seconds).
    assert!(store.claim_upload_mark("nonce:short", Duration::from_secs(1)).await.unwrap());
    eventually_with(Duration::from_secs(5), "the mark expires", || async {
        !store.upload_mark_exists("nonce:short").await.unwrap()
    })
    .await;
    assert!(store.claim_upload_mark("nonce:short", hour).await.unwrap());
}

async fn tenants_and_settings(store: Arc<dyn Store>) {
    let mut tenant = Tenant::new("alpha", "s1:s2");
    tenant.lrs.insert("lrs_endpoint".into(), "https://lrs".into());
    store.create_tenant(&tenant).await.unwrap();
    assert!(matches!(store.create_tenant(&tenant).await.unwrap_err(), StoreError::Conflict(_)));
    let record = store.tenant(&tenant.id).await.unwrap().unwrap();
    assert_eq!(record.tenant, tenant);
    assert!(record.settings.is_empty());
    assert_eq!(store.tenant_by_name("alpha").await.unwrap().unwrap().tenant.id, tenant.id);
    assert!(store.tenant_by_name("beta").await.unwrap().is_none());

    let setting = TenantSetting::new(tenant.id.clone(), "record", "false", "true");
    store.create_tenant_setting(&setting).await.unwrap();
    assert!(matches!(store.create_tenant_setting(&setting).await.unwrap_err(), StoreError::Conflict(_)));
    let record = store.tenant(&tenant.id).await.unwrap().unwrap();
    assert_eq!(record.settings, std::slice::from_ref(&setting));

    let update = TenantUpdate {
        name: Some("beta".into()),
        secrets: Some("s3".into()),
        lrs: vec![("kc_client_id".into(), "client".into())],
    };
    store.update_tenant(&tenant.id, &update).await.unwrap();
    assert!(store.tenant_by_name("alpha").await.unwrap().is_none());
    let record = store.tenant_by_name("beta").await.unwrap().unwrap();
    assert_eq!((record.tenant.name.as_str(), record.tenant.secrets.as_str()), ("beta", "s3"));
    assert_eq!(record.tenant.lrs_field("lrs_endpoint"), Some("https://lrs"));
    assert_eq!(record.tenant.lrs_field("kc_client_id"), Some("client"));
    let missing = store.update_tenant(&TenantId::from("nope"), &update).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");

    let other = Tenant::new("gamma", "x");
    store.create_tenant(&other).await.unwrap();
    let mut ids: Vec<_> = store.tenants().await.unwrap().into_iter().map(|r| r.tenant.id).collect();
    ids.sort();
    let mut expected = vec![tenant.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    assert!(store.delete_tenant_setting(&setting.id).await.unwrap());
    assert!(!store.delete_tenant_setting(&setting.id).await.unwrap());
    assert!(store.delete_tenant(&tenant.id).await.unwrap());
    assert!(!store.delete_tenant(&tenant.id).await.unwrap());
    assert!(store.tenant(&tenant.id).await.unwrap().is_none());
    assert!(store.tenant_by_name("beta").await.unwrap().is_none());
    assert_eq!(store.tenants().await.unwrap().len(), 1);
}

/// Two pools on one file behave as the api and `scalelite-admin` (two
/// processes) do: each sees the other's writes, and placements made through
/// both at once stay atomic (every reservation is seen by the next pick).
#[tokio::test]
async fn sqlite_handles_on_one_file_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scalelite.db");
    let api: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let admin: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    for i in 0..3 {
        online_server(&*admin, &format!("s{i}"), None, None, 0.0).await;
    }
    assert_eq!(api.servers().await.unwrap().len(), 3);
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &api } else { &admin });
            tokio::spawn(async move {
                let contested = store.place_meeting(&placement_request("contested")).await.unwrap();
                let own = store.place_meeting(&placement_request(&format!("m{i}"))).await.unwrap();
                (contested, own)
            })
        })
        .collect();
    let mut contested_placed = 0;
    for task in tasks {
        let (contested, own) = task.await.unwrap();
        contested_placed += usize::from(matches!(contested, Placement::Placed { .. }));
        assert!(matches!(own, Placement::Placed { .. }), "{own:?}");
    }
    assert_eq!(contested_placed, 1);
    // 31 meetings × 15 users, spread evenly by the least-loaded pick.
    let loads: Vec<_> = api.servers().await.unwrap().into_iter().map(|s| s.load.unwrap()).collect();
    assert_eq!(loads.iter().sum::<f64>(), 31.0 * 15.0);
    assert!(loads.iter().all(|l| *l >= 150.0 && *l <= 165.0), "{loads:?}");
    assert_eq!(admin.meetings().await.unwrap().len(), 31);
}

async fn drains_are_kept_replaced_and_deleted(store: Arc<dyn Store>) {
    assert!(store.drains().await.unwrap().is_empty());
    let drain = |id: &str, deadline: Option<i64>| Drain {
        server_id: ServerId::from(id),
        started_ms: 1_000,
        deadline_ms: deadline,
        message: Some("Wartung um 14:00 – \"bitte\" speichern".into()),
        last_notice_ms: None,
        notices_sent: 0,
        no_chat_logged: false,
        meetings_ended: 0,
        finished_ms: None,
    };
    store.put_drain(&drain("b", None)).await.unwrap();
    store.put_drain(&drain("a", Some(5_000))).await.unwrap();
    assert_eq!(store.drains().await.unwrap(), vec![drain("a", Some(5_000)), drain("b", None)]);
    // A put replaces the record of its server.
    let noticed =
        Drain { last_notice_ms: Some(2_000), notices_sent: 3, no_chat_logged: true, ..drain("a", Some(5_000)) };
    store.put_drain(&noticed).await.unwrap();
    let finished = Drain { meetings_ended: 2, finished_ms: Some(6_000), ..drain("b", None) };
    store.put_drain(&finished).await.unwrap();
    assert_eq!(store.drains().await.unwrap(), vec![noticed, finished.clone()]);
    assert!(store.delete_drain(&ServerId::from("a")).await.unwrap());
    assert!(!store.delete_drain(&ServerId::from("a")).await.unwrap());
    assert_eq!(store.drains().await.unwrap(), vec![finished]);
}
