//! The `RecordingStore` contract: one set of test bodies, run against
//! PostgreSQL (a real server, migrated) and the embedded SQLite store. Only
//! the trait is used.

use std::sync::Arc;

use crate::support::{self, Fixture, contract, recording};

use scalelite_store::PgStore;
use scalelite_store::recordings::{
    AgedQuery, DeliveryOutcome, ImportLogEntry, ImportPolicy, ImportedFormat, RecordingImport, RecordingPage,
    RecordingQuery, RecordingStore, StateFilter, TenantScope,
};
use scalelite_tests::TestPostgres;

async fn postgres_fixture() -> Fixture<dyn RecordingStore> {
    let pg = TestPostgres::start().await;
    let store = PgStore::open(&pg.url(), 2).unwrap();
    store.migrate().await.unwrap();
    Fixture { store: Arc::new(store), _guard: Box::new(pg) }
}

async fn sqlite_fixture() -> Fixture<dyn RecordingStore> {
    support::sqlite_fixture(|s| s as Arc<dyn RecordingStore>).await
}

contract!(
    [postgres => postgres_fixture, sqlite => sqlite_fixture],
    [import_semantics_and_queries,
    publishing_metadata_and_tenants,
    callback_data_and_deliveries,
    import_log_and_health,
    times_postgresql_cannot_hold_are_refused,
    aged_recordings_for_retention]
);

fn ids(page: &RecordingPage) -> Vec<String> {
    page.recordings.iter().map(|r| r.record_id.clone()).collect()
}

async fn import_semantics_and_queries(store: Arc<dyn RecordingStore>) {
    let policy = ImportPolicy::default();
    let first = store.import_recording(&recording("aaa-1", "room-a", 1_000_000), policy).await.unwrap();
    assert!(first.published);
    assert_eq!(first.tenant_id, None);
    store.import_recording(&recording("aaa-2", "room-a", 2_000_000), policy).await.unwrap();
    store.import_recording(&recording("bbb-1", "room-b", 3_000_000), policy).await.unwrap();
    let mut again = recording("aaa-1", "room-a", 1_000_000);
    again.formats.push(ImportedFormat {
        format: "video".into(),
        url: "/playback/video/aaa-1/".into(),
        length: None,
        thumbnails: vec![],
    });
    again.metadata = vec![("bbb-origin".into(), "moodle".into())];
    let second = store.import_recording(&again, policy).await.unwrap();
    assert_eq!(first.id, second.id);
    let empty = RecordingImport { record_id: String::new(), ..recording("x", "y", 0) };
    assert!(store.import_recording(&empty, policy).await.is_err());

    let find = |query: RecordingQuery| {
        let store = Arc::clone(&store);
        async move { store.find_recordings(&query).await.unwrap() }
    };
    let all = find(RecordingQuery::default()).await;
    assert_eq!(ids(&all), ["bbb-1", "aaa-2", "aaa-1"], "newest first");
    assert_eq!(all.total, 3);
    let a1 = &all.recordings[2];
    assert_eq!((a1.start_ms, a1.end_ms), (1_000_000, 4_600_000));
    assert_eq!(
        (a1.name.as_deref(), a1.participants, a1.published, a1.protected),
        (Some("Name room-a"), Some(3), true, false)
    );
    assert_eq!(a1.formats.iter().map(|f| f.format.as_str()).collect::<Vec<_>>(), ["presentation", "video"]);
    assert_eq!(
        a1.metadata,
        vec![("bbb-origin".to_owned(), "moodle".to_owned()), ("gl-listed".to_owned(), String::new())]
    );
    assert_eq!(a1.formats[0].thumbnails.len(), 2);
    assert_eq!(a1.formats[0].thumbnails[0].alt.as_deref(), Some("Welcome"));
    assert_eq!(a1.formats[0].thumbnails[1].url, "/t/2.png");
    assert_eq!((a1.formats[0].length, a1.formats[1].length), (Some(3), None));

    let prefixes = |p: &[&str]| RecordingQuery {
        record_id_prefixes: Some(p.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    };
    assert_eq!(ids(&find(prefixes(&["aaa"])).await), ["aaa-2", "aaa-1"]);
    assert!(find(prefixes(&["AAA"])).await.recordings.is_empty());
    for wildcard in ["a%", "a_", "_"] {
        assert_eq!(ids(&find(prefixes(&[wildcard])).await), Vec::<String>::new(), "{wildcard}");
    }
    assert_eq!(ids(&find(prefixes(&["aaa-1", "bb"])).await), ["bbb-1", "aaa-1"]);
    assert!(find(prefixes(&[])).await.recordings.is_empty());
    let by_meeting = RecordingQuery { meeting_ids: Some(vec!["room-b".into()]), ..Default::default() };
    assert_eq!(ids(&find(by_meeting).await), ["bbb-1"]);
    let meta = RecordingQuery {
        meta: vec![("bbb-origin".into(), vec!["moodle".into(), "nope".into()])],
        ..Default::default()
    };
    assert_eq!(ids(&find(meta).await), ["aaa-1"]);
    let page = find(RecordingQuery { page: Some((1, 1)), ..Default::default() }).await;
    assert_eq!((ids(&page), page.total), (vec!["aaa-2".to_owned()], 3));
    let page = find(RecordingQuery { page: Some((0, 2)), ..Default::default() }).await;
    assert_eq!((ids(&page), page.total), (vec!["bbb-1".to_owned(), "aaa-2".to_owned()], 3));
    let page = find(RecordingQuery { page: Some((5, 2)), ..Default::default() }).await;
    assert_eq!((ids(&page), page.total), (Vec::<String>::new(), 3));
    let only = RecordingQuery { states: StateFilter::Only(vec!["published".into()]), ..Default::default() };
    assert_eq!(find(only).await.total, 3);

    // Delete keeps the row with state deleted; `any` still sees it.
    let summary = store.recordings_by_ids(&["aaa-2".into()], None, false).await.unwrap();
    assert_eq!(summary[0].formats, ["presentation"]);
    store.mark_deleted(summary[0].id).await.unwrap();
    assert_eq!(ids(&find(RecordingQuery::default()).await), ["bbb-1", "aaa-1"]);
    let any = find(RecordingQuery { states: StateFilter::Any, ..Default::default() }).await;
    assert_eq!(any.recordings[1].state.as_deref(), Some("deleted"));
    assert!(any.recordings[1].formats.is_empty() && any.recordings[1].metadata.is_empty());
    assert!(store.recordings_by_ids(&["aaa-2".into()], None, true).await.unwrap().is_empty());
    assert!(store.playback("aaa-2", "presentation").await.unwrap().is_none());

    // An administrator's unpublish survives re-imports.
    store.set_published(first.id, false).await.unwrap();
    let reimported = store.import_recording(&again, policy).await.unwrap();
    assert!(!reimported.published);
    let unpublished = store.unpublished().await.unwrap();
    assert_eq!(unpublished.len(), 1);
    assert_eq!((unpublished[0].record_id.as_str(), unpublished[0].published), ("aaa-1", Some(false)));
    assert_eq!(unpublished[0].formats, ["presentation", "video"]);
    // `published` lists the published recordings that are not deleted.
    let published = store.published().await.unwrap();
    let published: Vec<_> = published.iter().map(|r| (r.record_id.as_str(), r.published, r.formats.len())).collect();
    assert_eq!(published, [("bbb-1", Some(true), 1)]);
    // The preview tells a new recording from one the database has, deleted
    // ones included.
    for (id, new) in [("aaa-1", false), ("aaa-2", false), ("zzz-1", true)] {
        let preview = store.preview_import(&recording(id, "room-a", 5_000_000), policy).await.unwrap();
        assert_eq!(preview.new_recording, new, "{id}");
    }
    assert!(store.recordings_by_ids(&["zzz-1".into()], None, false).await.unwrap().is_empty(), "only a preview");

    // RECORDING_IMPORT_UNPUBLISHED and protection apply to new imports.
    let policy = ImportPolicy { import_unpublished: true, protected: true };
    let hidden = store.import_recording(&recording("ccc-1", "room-c", 4_000_000), policy).await.unwrap();
    assert!(!hidden.published);
    let target = store.playback("ccc-1", "presentation").await.unwrap().unwrap();
    assert_eq!((target.published, target.protected), (false, true));
    assert_eq!(target.url, "/playback/presentation/2.3/ccc-1");
}

async fn publishing_metadata_and_tenants(store: Arc<dyn RecordingStore>) {
    let policy = ImportPolicy::default();
    let mut tenant_rec = recording("t-1", "room-t", 1_000);
    tenant_rec.metadata.push(("tenant-id".into(), "tenant-a".into()));
    let imported = store.import_recording(&tenant_rec, policy).await.unwrap();
    assert_eq!(imported.tenant_id.as_deref(), Some("tenant-a"));
    store.import_recording(&recording("n-1", "room-n", 2_000), policy).await.unwrap();
    store.import_recording(&recording("n-2", "room-n", 3_000), policy).await.unwrap();

    let scoped = RecordingQuery { tenant_id: Some("tenant-a".into()), ..Default::default() };
    assert_eq!(ids(&store.find_recordings(&scoped).await.unwrap()), ["t-1"]);
    let both = ["t-1".to_owned(), "n-1".to_owned()];
    let summaries = store.recordings_by_ids(&both, Some("tenant-a"), true).await.unwrap();
    assert_eq!(summaries.iter().map(|s| s.record_id.as_str()).collect::<Vec<_>>(), ["t-1"]);
    let summaries = store.recordings_by_ids(&both, None, true).await.unwrap();
    assert_eq!(summaries.len(), 2);
    assert!(store.recordings_by_ids(&[], None, false).await.unwrap().is_empty());

    let target = store.playback("t-1", "presentation").await.unwrap().unwrap();
    assert_eq!((target.tenant_id.as_deref(), target.published), (Some("tenant-a"), true));
    assert!(store.playback("t-1", "video").await.unwrap().is_none());

    store.set_published(imported.id, false).await.unwrap();
    let view = store.find_recordings(&scoped).await.unwrap();
    assert_eq!((view.recordings[0].published, view.recordings[0].state.as_deref()), (false, Some("unpublished")));

    // updateRecordings: upserts and deletes on all, protect on the first.
    let pair = ["n-1".to_owned(), "n-2".to_owned()];
    store
        .update_recordings(
            &pair,
            &[("gl-listed".into(), "true".into()), ("new".into(), "x".into())],
            &["bbb-origin".into()],
            Some(true),
        )
        .await
        .unwrap();
    let page = store
        .find_recordings(&RecordingQuery { meeting_ids: Some(vec!["room-n".into()]), ..Default::default() })
        .await
        .unwrap();
    for view in &page.recordings {
        assert_eq!(view.metadata, [("gl-listed".to_owned(), "true".to_owned()), ("new".to_owned(), "x".to_owned())]);
    }
    let protected: Vec<_> = page.recordings.iter().map(|r| (r.record_id.as_str(), r.protected)).collect();
    assert_eq!(protected, [("n-2", false), ("n-1", true)]);

    // Recordings without a tenant get one.
    assert_eq!(store.add_to_tenant("tenant-b").await.unwrap(), 2);
    assert_eq!(store.add_to_tenant("tenant-c").await.unwrap(), 0);
    let scoped = RecordingQuery { tenant_id: Some("tenant-b".into()), ..Default::default() };
    assert_eq!(store.find_recordings(&scoped).await.unwrap().total, 2);
}

async fn callback_data_and_deliveries(store: Arc<dyn RecordingStore>) {
    assert_eq!(store.recording_ready_url("m1").await.unwrap(), None);
    store.save_recording_ready_url("m1", "https://a/ready", None).await.unwrap();
    store.save_recording_ready_url("m1", "https://b/ready", Some(42)).await.unwrap();
    assert_eq!(store.recording_ready_url("m1").await.unwrap().as_deref(), Some("https://b/ready"));
    assert_eq!(store.analytics_callback_url("m1").await.unwrap(), None);

    store.enqueue_delivery(1, "r1", "m1", "https://b/ready", None).await.unwrap();
    store.enqueue_delivery(2, "r2", "m2", "https://c/ready", Some("tenant-a")).await.unwrap();
    let claimed = store.claim_deliveries(10, 60).await.unwrap();
    let mut summary: Vec<_> =
        claimed.iter().map(|d| (d.record_id.as_str(), d.url.as_str(), d.tenant_id.as_deref(), d.attempts)).collect();
    summary.sort();
    assert_eq!(summary, [("r1", "https://b/ready", None, 0), ("r2", "https://c/ready", Some("tenant-a"), 0)]);
    // Claimed ones are hidden for the lease.
    assert!(store.claim_deliveries(10, 60).await.unwrap().is_empty());
    let r1 = claimed.iter().find(|d| d.record_id == "r1").unwrap().id;
    let r2 = claimed.iter().find(|d| d.record_id == "r2").unwrap().id;
    store.finish_delivery(r1, DeliveryOutcome::Retry { in_secs: 0 }, Some("503")).await.unwrap();
    store.finish_delivery(r2, DeliveryOutcome::Done, None).await.unwrap();
    let again = store.claim_deliveries(10, 0).await.unwrap();
    assert_eq!(again.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(), [(r1, 1)]);
    store.finish_delivery(r1, DeliveryOutcome::GiveUp, Some("410")).await.unwrap();
    assert!(store.claim_deliveries(10, 60).await.unwrap().is_empty());
}

async fn import_log_and_health(store: Arc<dyn RecordingStore>) {
    store.health_check().await.unwrap();
    let entry = |name: &str, status: &str| ImportLogEntry {
        filename: name.into(),
        record_id: Some(format!("rec-{name}")),
        status: status.into(),
        reason: (status == "failed").then(|| "bad archive".to_owned()),
        size_bytes: Some(1024),
        formats: Some(1),
        finished_ms: 0,
    };
    store.log_import(&entry("a.tar", "imported")).await.unwrap();
    store.log_import(&entry("b.tar", "failed")).await.unwrap();
    let recent = store.recent_imports(10).await.unwrap();
    assert_eq!(recent.iter().map(|e| e.filename.as_str()).collect::<Vec<_>>(), ["b.tar", "a.tar"]);
    assert_eq!(recent[0].reason.as_deref(), Some("bad archive"));
    assert!(recent[0].finished_ms > 1_700_000_000_000);
    assert_eq!(store.recent_imports(1).await.unwrap().len(), 1);
}

/// A recording whose times PostgreSQL's `timestamp` cannot hold is refused
/// (the importer quarantines its archive) and nothing of it is stored; the
/// extreme times it can hold are kept.
async fn times_postgresql_cannot_hold_are_refused(store: Arc<dyn RecordingStore>) {
    let any = RecordingQuery { states: StateFilter::Any, ..RecordingQuery::default() };
    for (start, end) in [(9_999_999_999_999_999, 0), (1_700_000_000_000, i64::MAX), (-210_866_803_200_001, 0)] {
        let mut import = recording("out-of-range", "m", start);
        import.end_ms = Some(end);
        let refused = store.import_recording(&import, ImportPolicy::default()).await;
        assert!(refused.is_err(), "{start}..{end}: {refused:?}");
    }
    assert_eq!(store.find_recordings(&any).await.unwrap().total, 0);
    let mut extreme = recording("extreme", "m", -210_866_803_200_000);
    extreme.end_ms = Some(9_223_372_036_854_774);
    store.import_recording(&extreme, ImportPolicy::default()).await.unwrap();
    let page = store.find_recordings(&any).await.unwrap();
    assert_eq!(ids(&page), ["extreme"]);
    // (PostgreSQL rounds the end, this far out, to a float's precision.)
    assert_eq!(page.recordings[0].start_ms, -210_866_803_200_000);
}

/// How the importer reads SQLite's errors, as it reads PostgreSQL's: a
/// constraint the recording violates is a refusal (the archive is
/// quarantined), a unique violation a race to retry.
#[tokio::test]
async fn sqlite_import_errors_read_as_postgresql_s() {
    use scalelite_store::{SqliteStore, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("scalelite.db")).await.unwrap();
    // A constraint (a trigger standing in for any CHECK or NOT NULL).
    sqlx::raw_sql(
        "CREATE TRIGGER no_secret BEFORE INSERT ON metadata WHEN NEW.key = 'secret' \
         BEGIN SELECT RAISE(ABORT, 'no secrets'); END;",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let mut refused = recording("refused", "m", 1_700_000_000_000);
    refused.metadata.push(("secret".into(), "x".into()));
    let error = store.import_recording(&refused, ImportPolicy::default()).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(ref m) if m.contains("no secrets")), "{error:?}");
    // A unique violation.
    sqlx::raw_sql("CREATE UNIQUE INDEX one_url ON thumbnails (url)").execute(store.pool()).await.unwrap();
    let mut twice = recording("twice", "m", 1_700_000_000_000);
    twice.formats[0].thumbnails[1].url = "/t/1.png".into();
    let error = store.import_recording(&twice, ImportPolicy::default()).await.unwrap_err();
    assert!(matches!(error, StoreError::Sqlite(_)), "{error:?}");
    // Neither left anything behind.
    let any = RecordingQuery { states: StateFilter::Any, ..RecordingQuery::default() };
    assert_eq!(store.find_recordings(&any).await.unwrap().total, 0);
}

async fn aged_recordings_for_retention(store: Arc<dyn RecordingStore>) {
    let policy = ImportPolicy::default();
    let mut ids = Vec::new();
    for (record_id, start_ms, tenant) in [
        ("a-old", 1_000, Some("tenant-a")),
        ("b-old", 2_000, Some("tenant-b")),
        ("n-old", 3_000, None),
        ("n-new", 9_000, None),
    ] {
        let mut rec = recording(record_id, "room", start_ms);
        rec.formats.push(ImportedFormat { format: "video".into(), url: "/v".into(), ..Default::default() });
        rec.metadata.extend(tenant.map(|t| ("tenant-id".to_owned(), t.to_owned())));
        ids.push(store.import_recording(&rec, policy).await.unwrap().id);
    }
    let mut no_start = recording("n-nostart", "room", 0);
    no_start.start_ms = None;
    store.import_recording(&no_start, policy).await.unwrap();
    let aged = |query: AgedQuery| {
        let store = Arc::clone(&store);
        async move {
            let found = store.recordings_started_before(&query).await.unwrap();
            found.iter().map(|r| r.summary.record_id.clone()).collect::<Vec<_>>()
        }
    };
    let before = |ms: i64, scope: TenantScope| AgedQuery {
        started_before_ms: ms,
        scope,
        published_only: false,
        after_id: 0,
        limit: 100,
    };

    assert_eq!(aged(before(5_000, TenantScope::All)).await, ["a-old", "b-old", "n-old"], "older only, by id");
    assert_eq!(aged(before(3_000, TenantScope::All)).await, ["a-old", "b-old"], "strictly before");
    assert_eq!(aged(before(5_000, TenantScope::Tenant("tenant-b".into()))).await, ["b-old"]);
    assert_eq!(
        aged(before(5_000, TenantScope::Except(vec!["tenant-a".into(), "tenant-x".into()]))).await,
        ["b-old", "n-old"],
        "recordings without a tenant are not excepted"
    );
    assert_eq!(aged(before(5_000, TenantScope::Except(vec![]))).await, ["a-old", "b-old", "n-old"]);
    let page = AgedQuery { after_id: ids[0], limit: 1, ..before(5_000, TenantScope::All) };
    assert_eq!(aged(page).await, ["b-old"], "paged by id");

    let found = store.recordings_started_before(&before(2_000, TenantScope::All)).await.unwrap();
    assert_eq!(found.len(), 1);
    let a = &found[0];
    assert_eq!((a.summary.id, a.start_ms, a.tenant_id.as_deref()), (ids[0], 1_000, Some("tenant-a")));
    assert_eq!((a.meeting_id.as_str(), a.summary.published), ("room", Some(true)));
    assert_eq!(a.summary.formats, ["presentation", "video"]);

    // Unpublishing concerns published recordings; deleted ones are done.
    store.set_published(ids[1], false).await.unwrap();
    store.mark_deleted(ids[2]).await.unwrap();
    let published_only = AgedQuery { published_only: true, ..before(5_000, TenantScope::All) };
    assert_eq!(aged(published_only).await, ["a-old"]);
    assert_eq!(aged(before(5_000, TenantScope::All)).await, ["a-old", "b-old"]);
}
