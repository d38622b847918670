//! Recording-ready callbacks: where the URL comes from, what is posted,
//! retries that survive restarts.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use scalelite_core::MeetingId;
pub(super) use scalelite_tests::Receiver;

use super::*;

/// The claims of a `signed_parameters` token, if `secret` signed it with
/// `algorithm`.
pub(super) fn claims(token: &str, secret: &str, algorithm: Algorithm) -> Option<serde_json::Value> {
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .ok()
        .map(|data| data.claims)
}

/// `(attempts, delivered, given up, last_error)` of the recording's callback.
async fn delivery_row(rig: &Rig, record_id: &str) -> String {
    rig.sql(&format!(
        "SELECT attempts, CASE WHEN delivered_at IS NULL THEN 'f' ELSE 't' END,
                CASE WHEN given_up_at IS NULL THEN 'f' ELSE 't' END, coalesce(last_error, '-')
         FROM recording_ready_deliveries WHERE record_id = '{record_id}'"
    ))
    .await
}

#[tokio::test]
async fn callback_remembered_at_create_is_delivered_with_a_valid_jwt_after_a_retry() {
    let rig = Rig::start().await;
    let meetings = rig.meetings().await;
    let receiver = Receiver::start(&[500]).await;
    let rec = RecordingArchive::new("gl-room-1", "Greenlight room");
    // What the API does at create with meta_bbb-recording-ready-url.
    let url = receiver.url("/recording_ready?room=1");
    meetings
        .store
        .remember_recording_ready_url(&MeetingId::new("gl-room-1"), &url, Duration::from_secs(3600))
        .await
        .unwrap();

    let importer = Importer::new(rig.settings(&[]), Arc::clone(&rig.store), Some(Arc::clone(&meetings.store)));
    let running = Running::start(&importer);
    rec.drop_into(&rig.dirs.spool());
    eventually_with(Duration::from_secs(20), "the callback is retried after the 500", || async {
        receiver.requests().len() >= 2
    })
    .await;
    running.stop().await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/recording_ready");
        assert_eq!(request.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        let token = request.signed_parameters.as_deref().expect("signed_parameters");
        assert_eq!(
            claims(token, LB_SECRET, Algorithm::HS256),
            Some(serde_json::json!({"meeting_id": "gl-room-1", "record_id": rec.record_id})),
        );
        assert_eq!(claims(token, "another-secret", Algorithm::HS256), None);
    }
    assert_eq!(delivery_row(&rig, &rec.record_id).await, "2|t|f|-");
    // Ruby Scalelite reads the URL from callback_data, linked to the recording.
    let id = rig.recording(&rec.record_id).await.unwrap().id;
    let row = rig.sql("SELECT meeting_id, recording_id, callback_attributes FROM callback_data").await;
    assert_eq!(row, format!("gl-room-1|{id}|---\n:recording_ready_url: {url}"));
}

#[tokio::test]
async fn the_url_in_callback_data_wins_and_each_secret_is_tried_in_turn() {
    let rig = Rig::start().await;
    let meetings = rig.meetings().await;
    // The first secret is refused, the second accepted.
    let receiver = Receiver::start(&[401, 204]).await;
    let rec = RecordingArchive::new("moodle-7", "Moodle course");
    // Ruby Scalelite's create stored the URL in callback_data; the meetings
    // store has another one.
    rig.store.save_recording_ready_url("moodle-7", &receiver.url("/from-callback-data"), None).await.unwrap();
    meetings
        .store
        .remember_recording_ready_url(
            &MeetingId::new("moodle-7"),
            &receiver.url("/from-meetings-store"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    rec.drop_into(&rig.dirs.spool());

    let vars = [
        ("LOADBALANCER_SECRET", "first-secret"),
        ("LOADBALANCER_SECRETS", "second-secret"),
        ("LOADBALANCER_CHECKSUM_ALGORITHM", "SHA1:SHA512"),
    ];
    let importer = Importer::new(rig.settings(&vars), Arc::clone(&rig.store), Some(Arc::clone(&meetings.store)));
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1);
    assert_eq!(report.deliveries.delivered, 1, "{report:?}");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.path == "/from-callback-data"));
    let expected = serde_json::json!({"meeting_id": "moodle-7", "record_id": rec.record_id});
    // SHA512 without SHA256 among the checksum algorithms: HS512.
    let token = |i: usize| requests[i].signed_parameters.clone().unwrap();
    assert_eq!(claims(&token(0), "first-secret", Algorithm::HS512), Some(expected.clone()));
    assert_eq!(claims(&token(1), "second-secret", Algorithm::HS512), Some(expected));
    assert_eq!(delivery_row(&rig, &rec.record_id).await, "1|t|f|-", "one attempt, delivered");
}

#[tokio::test]
async fn a_pending_retry_survives_a_restart() {
    let rig = Rig::start().await;
    let receiver = Receiver::start(&[503]).await;
    let rec = RecordingArchive::new("restart", "Restart");
    rig.store.save_recording_ready_url("restart", &receiver.url("/cb"), None).await.unwrap();
    rec.drop_into(&rig.dirs.spool());

    // The first importer imports and tries once; the receiver is down.
    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.deliveries.retrying, 1, "{report:?}");
    assert_eq!(delivery_row(&rig, &rec.record_id).await, "1|f|f|HTTP 503");
    let now = match rig.backend {
        TestBackend::Redis => "(now() AT TIME ZONE 'UTC')",
        TestBackend::Embedded => "(unixepoch('subsec') * 1000)",
    };
    let waits = format!(
        "SELECT CASE WHEN next_attempt_at > {now} THEN 't' ELSE 'f' END FROM recording_ready_deliveries
         WHERE record_id = '{}'",
        rec.record_id
    );
    assert_eq!(rig.sql(&waits).await, "t", "the retry waits for its backoff");

    // A new importer process on the same database delivers it when due.
    let running = Running::start(&rig.importer(&[]));
    eventually_with(Duration::from_secs(20), "the retry is delivered by the new importer", || async {
        receiver.requests().len() >= 2
    })
    .await;
    eventually_with(Duration::from_secs(5), "the delivery is recorded", || async {
        delivery_row(&rig, &rec.record_id).await.starts_with("2|t|")
    })
    .await;
    running.stop().await;
    assert_eq!(receiver.requests().len(), 2, "delivered exactly once more");
}

#[tokio::test]
async fn gone_receivers_are_not_retried_and_meetings_without_url_get_no_callback() {
    let rig = Rig::start().await;
    let receiver = Receiver::start(&[410]).await;
    let with_url = RecordingArchive::new("deleted-room", "Deleted room");
    let without_url = RecordingArchive::new("no-callback", "No callback");
    rig.store.save_recording_ready_url("deleted-room", &receiver.url("/cb"), None).await.unwrap();
    with_url.drop_into(&rig.dirs.spool());
    without_url.drop_into(&rig.dirs.spool());

    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 2);
    assert_eq!(report.deliveries.delivered, 1, "410: the front-end deleted the room; done");
    assert_eq!(delivery_row(&rig, &with_url.record_id).await, "1|t|f|HTTP 410");
    assert_eq!(delivery_row(&rig, &without_url.record_id).await, "");
    receiver.answer(&[200]);
    let again = rig.importer(&[]).deliver_due_callbacks().await.unwrap();
    assert_eq!(again.delivered + again.retrying + again.given_up, 0);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn with_multitenancy_only_recordings_of_a_tenant_get_callbacks() {
    let rig = Rig::start().await;
    let receiver = Receiver::start(&[]).await;
    let tenant = RecordingArchive::new("t-room", "Tenant room").meta("tenant-id", "uni");
    let orphan = RecordingArchive::new("o-room", "Orphan room");
    for rec in [&tenant, &orphan] {
        rig.store.save_recording_ready_url(&rec.meeting_id, &receiver.url("/cb"), None).await.unwrap();
        rec.drop_into(&rig.dirs.spool());
    }
    let report = rig.importer(&[("MULTITENANCY_ENABLED", "true")]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 2);
    assert_eq!(report.deliveries.delivered, 1);
    let tenants = rig.sql("SELECT meeting_id, tenant_id FROM recording_ready_deliveries").await;
    assert_eq!(tenants, "t-room|uni");
}

#[tokio::test]
async fn a_tenants_callback_is_signed_with_that_tenants_secret() {
    let rig = Rig::start().await;
    let meetings = rig.meetings().await;
    let tenant = scalelite_store::Tenant::new("uni", "tenant-old:tenant-new");
    meetings.store.create_tenant(&tenant).await.unwrap();
    // The front-end knows only the tenant's second secret: the first
    // attempt is refused (401), the next secret is tried.
    let receiver = Receiver::start(&[401]).await;
    let rec = RecordingArchive::new("t-room", "Tenant room").meta("tenant-id", tenant.id.as_str());
    meetings
        .store
        .remember_recording_ready_url(&MeetingId::new("t-room"), &receiver.url("/cb"), Duration::from_secs(3600))
        .await
        .unwrap();
    rec.drop_into(&rig.dirs.spool());
    let settings = rig.settings(&[("MULTITENANCY_ENABLED", "true")]);
    let importer = Importer::new(settings, Arc::clone(&rig.store), Some(Arc::clone(&meetings.store)));
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let expected = serde_json::json!({"meeting_id": "t-room", "record_id": rec.record_id});
    let token = |i: usize| requests[i].signed_parameters.clone().unwrap();
    assert_eq!(claims(&token(0), "tenant-old", Algorithm::HS256), Some(expected.clone()));
    assert_eq!(claims(&token(1), "tenant-new", Algorithm::HS256), Some(expected));
    assert_eq!(claims(&token(1), LB_SECRET, Algorithm::HS256), None, "never the LB secret for a tenant");
}
