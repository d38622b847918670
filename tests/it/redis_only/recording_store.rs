//! The PostgreSQL recording store against a real PostgreSQL: migrations,
//! Ruby-built databases, import semantics, queries.

use crate::support::recording;
use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingQuery, RecordingStore as _, StateFilter};
use scalelite_store::{PgStore, postgres::migrate::MIGRATIONS};
use scalelite_tests::TestPostgres;

#[tokio::test]
async fn migrate_creates_scalelites_schema_with_rails_bookkeeping() {
    let pg = TestPostgres::start().await;
    let store = PgStore::open(&pg.url(), 2).unwrap();
    assert_eq!(store.pending_migrations().await.unwrap().len(), MIGRATIONS.len());
    assert!(store.health_check().await.is_err(), "pending migrations make the health check fail");
    assert_eq!(store.migrate().await.unwrap().len(), MIGRATIONS.len());
    assert!(store.migrate().await.unwrap().is_empty(), "idempotent");
    store.health_check().await.unwrap();
    let versions = pg.psql("SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations").await;
    assert!(
        versions
            .starts_with("20181123180008,20210425184558,20210630205630,20210725200414,20221111194252,20230627141045")
    );
    assert_eq!(pg.psql("SELECT value FROM ar_internal_metadata WHERE key = 'environment'").await.trim(), "production");
    let tables = pg
        .psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
        .await;
    assert_eq!(
        tables.trim(),
        "ar_internal_metadata,callback_data,metadata,playback_formats,recording_imports,recording_ready_deliveries,recordings,schema_migrations,thumbnails,usage_accounting,usage_hours"
    );
}

#[tokio::test]
async fn a_database_built_by_ruby_scalelite_is_adopted_unchanged() {
    let pg = TestPostgres::start().await;
    // db/schema.rb as `rails db:schema:load` builds it (NOT NULL defaults),
    // with the versions Rails records.
    pg.psql(
        "CREATE TABLE recordings (id bigserial PRIMARY KEY, record_id varchar, meeting_id varchar, name varchar,
            published boolean DEFAULT false NOT NULL, participants integer, state varchar, starttime timestamp,
            endtime timestamp, deleted_at timestamp, protected boolean DEFAULT false NOT NULL,
            publish_updated boolean DEFAULT false NOT NULL);
         CREATE UNIQUE INDEX index_recordings_on_record_id ON recordings (record_id);
         CREATE INDEX index_recordings_on_meeting_id ON recordings (meeting_id);
         CREATE TABLE metadata (id bigserial PRIMARY KEY, recording_id bigint, key varchar, value varchar);
         CREATE UNIQUE INDEX index_metadata_on_recording_id_and_key ON metadata (recording_id, key);
         CREATE TABLE playback_formats (id bigserial PRIMARY KEY, recording_id bigint, format varchar, url varchar,
            length integer, processing_time integer);
         CREATE UNIQUE INDEX index_playback_formats_on_recording_id_and_format ON playback_formats (recording_id, format);
         CREATE TABLE thumbnails (id bigserial PRIMARY KEY, playback_format_id bigint, width integer, height integer,
            alt varchar, url varchar, sequence integer);
         CREATE INDEX index_thumbnails_on_playback_format_id ON thumbnails (playback_format_id);
         CREATE TABLE callback_data (id bigserial PRIMARY KEY, meeting_id varchar, recording_id integer,
            callback_attributes text, created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
         CREATE TABLE schema_migrations (version varchar NOT NULL PRIMARY KEY);
         INSERT INTO schema_migrations VALUES ('20181123180008'), ('20210425184558'), ('20210630205630'),
            ('20210725200414'), ('20221111194252'), ('20230627141045');
         CREATE TABLE ar_internal_metadata (key varchar NOT NULL PRIMARY KEY, value varchar,
            created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
         INSERT INTO ar_internal_metadata VALUES ('environment', 'production', now(), now());
         INSERT INTO recordings (record_id, meeting_id, name, published, state, starttime)
            VALUES ('ruby-rec-1', 'ruby-meeting', 'From Ruby', true, 'published', '2024-05-09 13:35:28.123');
         INSERT INTO callback_data (meeting_id, callback_attributes, created_at, updated_at)
            VALUES ('ruby-meeting', E'---\\n:recording_ready_url: https://gl.example.edu/cb\\n', now(), now());",
    )
    .await;
    let columns_before = pg.psql("SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, ''), ';' ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN ('recordings','metadata','playback_formats','thumbnails','callback_data')").await;
    let store = PgStore::open(&pg.url(), 2).unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied,
        ["20261123000001", "20261123000002", "20261123000003", "20261206000001"],
        "only our additive migrations run"
    );
    let columns_after = pg.psql("SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, ''), ';' ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN ('recordings','metadata','playback_formats','thumbnails','callback_data')").await;
    assert_eq!(columns_before, columns_after, "Scalelite's tables are unchanged");
    // Ruby's rows are readable, Ruby's callback data too.
    let page = store.find_recordings(&RecordingQuery::default()).await.unwrap();
    assert_eq!(page.recordings[0].record_id, "ruby-rec-1");
    assert_eq!(page.recordings[0].start_ms, 1_715_261_728_123);
    assert_eq!(store.recording_ready_url("ruby-meeting").await.unwrap().as_deref(), Some("https://gl.example.edu/cb"));
}

#[tokio::test]
async fn import_semantics_and_queries() {
    let pg = TestPostgres::start().await;
    let store = PgStore::open(&pg.url(), 2).unwrap();
    store.migrate().await.unwrap();
    let policy = ImportPolicy::default();
    let first = store.import_recording(&recording("aaa-1", "room-a", 1_000_000), policy).await.unwrap();
    assert!(first.published);
    store.import_recording(&recording("aaa-2", "room-a", 2_000_000), policy).await.unwrap();
    store.import_recording(&recording("bbb-1", "room-b", 3_000_000), policy).await.unwrap();
    // Re-import with a second format and changed metadata updates in place.
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
    assert_eq!(pg.psql("SELECT count(*) FROM recordings").await.trim(), "3");

    let store = &store;
    let find = |query: RecordingQuery| async move { store.find_recordings(&query).await.unwrap() };
    let ids = |page: &scalelite_store::recordings::RecordingPage| {
        page.recordings.iter().map(|r| r.record_id.clone()).collect::<Vec<_>>()
    };
    let all = find(RecordingQuery::default()).await;
    assert_eq!(ids(&all), ["bbb-1", "aaa-2", "aaa-1"], "newest first");
    let a1 = &all.recordings[2];
    assert_eq!(a1.formats.iter().map(|f| f.format.as_str()).collect::<Vec<_>>(), ["presentation", "video"]);
    assert_eq!(
        a1.metadata,
        vec![("bbb-origin".to_owned(), "moodle".to_owned()), ("gl-listed".to_owned(), String::new())]
    );
    assert_eq!(a1.formats[0].thumbnails[0].alt.as_deref(), Some("Welcome"));
    assert_eq!(
        ids(&find(RecordingQuery { record_id_prefixes: Some(vec!["aaa".into()]), ..Default::default() }).await),
        ["aaa-2", "aaa-1"]
    );
    assert!(
        find(RecordingQuery { record_id_prefixes: Some(vec!["AAA".into()]), ..Default::default() })
            .await
            .recordings
            .is_empty()
    );
    // LIKE wildcards are plain characters; several prefixes are OR-ed.
    for wildcard in ["a%", "a_", "_"] {
        let query = RecordingQuery { record_id_prefixes: Some(vec![wildcard.into()]), ..Default::default() };
        assert_eq!(ids(&find(query).await), Vec::<String>::new(), "{wildcard}");
    }
    let query = RecordingQuery { record_id_prefixes: Some(vec!["aaa-1".into(), "bb".into()]), ..Default::default() };
    assert_eq!(ids(&find(query).await), ["bbb-1", "aaa-1"]);
    assert_eq!(
        ids(&find(RecordingQuery { meeting_ids: Some(vec!["room-b".into()]), ..Default::default() }).await),
        ["bbb-1"]
    );
    let meta = RecordingQuery {
        meta: vec![("bbb-origin".into(), vec!["moodle".into(), "nope".into()])],
        ..Default::default()
    };
    assert_eq!(ids(&find(meta).await), ["aaa-1"]);
    let page = find(RecordingQuery { page: Some((1, 1)), ..Default::default() }).await;
    assert_eq!((ids(&page), page.total), (vec!["aaa-2".to_owned()], 3));

    // Delete keeps the row with state deleted; `any` still sees it.
    let summary = store.recordings_by_ids(&["aaa-2".into()], None, false).await.unwrap();
    store.mark_deleted(summary[0].id).await.unwrap();
    assert_eq!(ids(&find(RecordingQuery::default()).await), ["bbb-1", "aaa-1"]);
    let any = find(RecordingQuery { states: StateFilter::Any, ..Default::default() }).await;
    assert_eq!(any.recordings[1].state.as_deref(), Some("deleted"));
    assert!(any.recordings[1].formats.is_empty() && any.recordings[1].metadata.is_empty());

    // An administrator's unpublish survives re-imports.
    store.set_published(first.id, false).await.unwrap();
    let reimported = store.import_recording(&again, policy).await.unwrap();
    assert!(!reimported.published);
}

#[tokio::test]
async fn callback_data_is_written_in_rubys_yaml_form() {
    let pg = TestPostgres::start().await;
    let store = PgStore::open(&pg.url(), 2).unwrap();
    store.migrate().await.unwrap();
    store.save_recording_ready_url("m1", "https://gl.example.edu/recording_ready", Some(42)).await.unwrap();
    let text =
        pg.psql("SELECT callback_attributes || '|' || recording_id FROM callback_data WHERE meeting_id = 'm1'").await;
    assert_eq!(text.trim(), "---\n:recording_ready_url: https://gl.example.edu/recording_ready\n|42");
}
