//! Recording retention: `scalelite-admin recordings prune` (dry run,
//! delete, unpublish, the configured rules with tenants' overrides, hostile
//! input) and the importer's periodic run, on the backend's recordings
//! store and real directories.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scalelite_recording_importer::{Importer, Settings};
use scalelite_store::Tenant;
use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingImport, RecordingQuery, StateFilter};
use scalelite_store::retention::{ACTION_SETTING, DAYS_SETTING};
use scalelite_tests::{TestApp, eventually_with};
use serde_json::Value;

use crate::importer::Running;
use crate::support::{Run, admin_with};

const DAY_MS: i64 = 86_400_000;
const FORMATS: [&str; 2] = ["presentation", "video"];
/// Bytes of one recording's files: one 1000-byte file per format.
const RECORDING_BYTES: u64 = 2000;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn app(env: &[(&str, &str)]) -> TestApp {
    let mut builder = TestApp::builder().servers(0).recordings();
    for (name, value) in env {
        builder = builder.env(name, *value);
    }
    builder.start().await
}

async fn admin(app: &TestApp, args: &[&str]) -> Run {
    admin_with(&app.state.config, args, "").await
}

/// Imports a recording that started `age_days` ago (`None`: no start
/// time), owned by `tenant`, with its files in the tree it belongs in.
async fn seed(app: &TestApp, id: &str, age_days: Option<i64>, tenant: Option<&str>, published: bool) -> i64 {
    let mut metadata = vec![("bbb-origin".to_owned(), "Greenlight".to_owned())];
    if let Some(tenant) = tenant {
        metadata.push(("tenant-id".to_owned(), tenant.to_owned()));
    }
    let start_ms = age_days.map(|days| now_ms() - days * DAY_MS);
    let import = RecordingImport {
        record_id: id.into(),
        meeting_id: format!("room-{id}"),
        name: Some(format!("Lecture {id}")),
        published: Some(published),
        participants: Some(3),
        state: Some(if published { "published" } else { "unpublished" }.into()),
        start_ms,
        end_ms: start_ms.map(|s| s + 3_600_000),
        metadata,
        formats: FORMATS
            .map(|f| ImportedFormat {
                format: f.into(),
                url: format!("/playback/{f}/2.3/{id}"),
                length: Some(60),
                thumbnails: vec![],
            })
            .to_vec(),
    };
    let imported = app.recording_store().import_recording(&import, ImportPolicy::default()).await.unwrap();
    assert_eq!(imported.published, published);
    let root = if published { app.dirs().published() } else { app.dirs().unpublished() };
    for format in FORMATS {
        let dir = root.join(format).join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "x".repeat(1000)).unwrap();
    }
    imported.id
}

/// `(state, published)` of a recording, in any state.
async fn state(app: &TestApp, id: &str) -> (String, bool) {
    let query = RecordingQuery {
        record_id_prefixes: Some(vec![id.to_owned()]),
        states: StateFilter::Any,
        ..RecordingQuery::default()
    };
    let page = app.recording_store().find_recordings(&query).await.unwrap();
    let recording = page.recordings.into_iter().find(|r| r.record_id == id).unwrap_or_else(|| panic!("no {id}"));
    (recording.state.unwrap_or_default(), recording.published)
}

/// Which trees hold files of the recording: `published`, `unpublished`.
fn trees_of(app: &TestApp, id: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (name, root) in [("published", app.dirs().published()), ("unpublished", app.dirs().unpublished())] {
        if FORMATS.iter().any(|f| root.join(f).join(id).join("index.html").is_file()) {
            out.push(name);
        }
    }
    out
}

/// `record_id=status` of every recording in a `prune --json` document.
fn statuses(json: &Value) -> Vec<String> {
    let mut out: Vec<String> = json["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}={}", r["record_id"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    out.sort();
    out
}

/// What getRecordings lists, sorted.
async fn listed(app: &TestApp) -> Vec<String> {
    let reply = app.client().get("getRecordings", &[]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let xml = reply.xml();
    let mut ids: Vec<String> = xml
        .child("recordings")
        .map(|list| list.children_named("recording").map(|r| r.text_at("recordID").unwrap_or_default()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_dry_run_lists_the_old_recordings_and_changes_nothing_then_yes_deletes_rows_and_files() {
    let app = app(&[]).await;
    seed(&app, "old-published", Some(200), None, true).await;
    seed(&app, "old-unpublished", Some(120), None, false).await;
    seed(&app, "recent", Some(10), None, true).await;
    seed(&app, "almost", Some(89), None, true).await;
    seed(&app, "no-start-time", None, None, true).await;
    let already = seed(&app, "already-deleted", Some(300), None, true).await;
    app.recording_store().mark_deleted(already).await.unwrap();
    let files_before = app.dirs().files();

    let run = admin(&app, &["recordings", "prune", "--older-than", "90d"]).await.ok();
    let out = run.out;
    assert!(out.contains("Rule (--older-than): delete all recordings that started more than 90 days ago"), "{out}");
    assert!(out.contains("old-published") && out.contains("old-unpublished"), "{out}");
    for kept in ["recent", "almost", "no-start-time", "already-deleted"] {
        assert!(!out.contains(kept), "{kept} is not listed:\n{out}");
    }
    assert!(out.lines().filter(|l| l.contains("would delete") && l.contains("2.0 KiB")).count() == 2, "{out}");
    assert!(
        out.contains("Dry run: would delete 2 recording(s) (3.9 KiB) and unpublish 0; nothing was changed"),
        "{out}"
    );

    let json = admin(&app, &["recordings", "prune", "--older-than", "90", "--json"]).await.ok().json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["count"], 2);
    assert_eq!(json["size_bytes"], 2 * RECORDING_BYTES);
    assert_eq!(statuses(&json), ["old-published=would delete", "old-unpublished=would delete"]);
    assert_eq!(json["recordings"][0]["size_bytes"], RECORDING_BYTES);
    assert_eq!(json["recordings"][0]["meeting_id"], "room-old-published");

    assert_eq!(app.dirs().files(), files_before, "a dry run touches no file");
    assert_eq!(state(&app, "old-published").await, ("published".into(), true));
    assert_eq!(state(&app, "old-unpublished").await, ("unpublished".into(), false));
    assert_eq!(listed(&app).await, ["almost", "no-start-time", "old-published", "old-unpublished", "recent"]);

    let run = admin(&app, &["recordings", "prune", "--older-than", "90d", "--yes"]).await.ok();
    assert!(run.out.contains("Deleted 2 recording(s) (3.9 KiB), unpublished 0, failed 0"), "{}", run.out);
    assert_eq!(listed(&app).await, ["almost", "no-start-time", "recent"]);
    for gone in ["old-published", "old-unpublished"] {
        assert_eq!(state(&app, gone).await.0, "deleted", "as deleteRecordings leaves it");
        assert!(trees_of(&app, gone).is_empty(), "{gone}'s files are gone from both trees");
    }
    for kept in ["recent", "almost", "no-start-time"] {
        assert_eq!(trees_of(&app, kept), ["published"], "{kept}");
    }

    let again = admin(&app, &["recordings", "prune", "--older-than", "90d", "--yes", "--json"]).await.ok().json();
    assert_eq!((again["count"].as_u64(), again["deleted"].as_u64()), (Some(0), Some(0)), "nothing left to prune");
}

#[tokio::test]
async fn unpublish_moves_old_published_recordings_to_the_unpublish_tree() {
    let app = app(&[]).await;
    seed(&app, "old-published", Some(200), None, true).await;
    seed(&app, "old-unpublished", Some(200), None, false).await;
    seed(&app, "recent", Some(5), None, true).await;

    let json = admin(&app, &["recordings", "prune", "--older-than", "30d", "--action", "unpublish", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(statuses(&json), ["old-published=would unpublish"], "unpublished ones are left out");
    assert_eq!(trees_of(&app, "old-published"), ["published"]);

    let json = admin(&app, &["recordings", "prune", "--older-than", "30d", "--action", "unpublish", "--yes", "--json"])
        .await
        .ok()
        .json();
    assert_eq!((json["dry_run"].as_bool(), json["unpublished"].as_u64()), (Some(false), Some(1)));
    assert_eq!(statuses(&json), ["old-published=unpublished"]);
    assert_eq!(state(&app, "old-published").await, ("unpublished".into(), false));
    assert_eq!(trees_of(&app, "old-published"), ["unpublished"], "files moved, not deleted");
    assert_eq!(trees_of(&app, "old-unpublished"), ["unpublished"]);
    assert_eq!(state(&app, "recent").await, ("published".into(), true));
    // getRecordings still lists it, unpublished, as after publishRecordings.
    assert_eq!(listed(&app).await, ["old-published", "old-unpublished", "recent"]);
}

/// Tenants `short` (30 days, unpublish), `keep` (off) and `plain` (no
/// setting) under a global 90-day delete rule; their ids.
async fn tenants_with_overrides(app: &TestApp) -> (String, String, String) {
    let mut ids = Vec::new();
    for name in ["short", "keep", "plain"] {
        let tenant = Tenant::new(name, format!("secret-{name}"));
        app.store().create_tenant(&tenant).await.unwrap();
        ids.push(tenant.id.into_string());
    }
    // The operator's way: tenant-settings add <tenant-id> <param> <value> <override>.
    for (tenant, param, value) in
        [(&ids[0], DAYS_SETTING, "30d"), (&ids[0], ACTION_SETTING, "unpublish"), (&ids[1], DAYS_SETTING, "off")]
    {
        admin(app, &["tenant-settings", "add", tenant, param, value, "false"]).await.ok();
    }
    (ids[0].clone(), ids[1].clone(), ids[2].clone())
}

#[tokio::test]
async fn a_tenants_setting_overrides_the_global_rule() {
    let app = app(&[("MULTITENANCY_ENABLED", "true"), ("RECORDING_RETENTION_DAYS", "90")]).await;
    let (short, keep, plain) = tenants_with_overrides(&app).await;
    seed(&app, "short-60", Some(60), Some(&short), true).await;
    seed(&app, "short-10", Some(10), Some(&short), true).await;
    seed(&app, "keep-400", Some(400), Some(&keep), true).await;
    seed(&app, "plain-100", Some(100), Some(&plain), true).await;
    seed(&app, "plain-50", Some(50), Some(&plain), true).await;
    seed(&app, "nobody-100", Some(100), None, true).await;

    let json = admin(&app, &["recordings", "prune", "--json"]).await.ok().json();
    assert_eq!(
        statuses(&json),
        ["nobody-100=would delete", "plain-100=would delete", "short-60=would unpublish"],
        "the tenant's 30 days and unpublish win over 90 days and delete; 'off' keeps everything"
    );
    let rules: Vec<String> = json["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {} {}", r["origin"], r["days"], r["action"], r["scope"]))
        .collect();
    assert_eq!(
        rules,
        [
            r#""tenant short" 30 "unpublish" "the recordings of tenant short""#,
            r#""RECORDING_RETENTION_DAYS" 90 "delete" "all recordings (except those of tenants keep, short)""#,
        ]
    );
    let json = admin(&app, &["recordings", "prune", "--tenant", "short", "--json"]).await.ok().json();
    assert_eq!(statuses(&json), ["short-60=would unpublish"]);
    let json = admin(&app, &["recordings", "prune", "--tenant", "plain", "--json"]).await.ok().json();
    assert_eq!(statuses(&json), ["plain-100=would delete"], "the global rule, narrowed to the tenant");
    let json = admin(&app, &["recordings", "prune", "--tenant", "keep", "--json"]).await.ok().json();
    assert_eq!((json["count"].as_u64(), json["rules"].as_array().map(Vec::len)), (Some(0), Some(0)));
    let run = admin(&app, &["recordings", "prune", "--tenant", "keep"]).await.ok();
    assert!(run.out.starts_with("No retention rule covers tenant keep"), "{}", run.out);
    // An explicit age applies to the tenant whatever its settings.
    let json =
        admin(&app, &["recordings", "prune", "--tenant", "keep", "--older-than", "365d", "--json"]).await.ok().json();
    assert_eq!(statuses(&json), ["keep-400=would delete"]);

    let run = admin(&app, &["recordings", "prune", "--yes"]).await.ok();
    assert!(run.out.contains("Deleted 2 recording(s) (3.9 KiB), unpublished 1, failed 0"), "{}", run.out);
    assert_eq!(state(&app, "short-60").await, ("unpublished".into(), false));
    assert_eq!(trees_of(&app, "short-60"), ["unpublished"]);
    for deleted in ["plain-100", "nobody-100"] {
        assert_eq!(state(&app, deleted).await.0, "deleted");
        assert!(trees_of(&app, deleted).is_empty());
    }
    for kept in ["short-10", "keep-400", "plain-50"] {
        assert_eq!(state(&app, kept).await, ("published".into(), true), "{kept}");
        assert_eq!(trees_of(&app, kept), ["published"], "{kept}");
    }
}

#[tokio::test]
async fn hostile_or_odd_input_is_refused_clearly_and_changes_nothing() {
    let app = app(&[]).await;
    seed(&app, "old", Some(400), None, true).await;
    let files = app.dirs().files();
    for (args, expected) in [
        (&["--older-than", "0d"][..], "ERROR: --older-than: \"0d\": the age must be at least 1 day"),
        (&["--older-than", "abc"], "ERROR: --older-than: \"abc\" is not an age in days"),
        (&["--older-than=-5"], "ERROR: --older-than: \"-5\" is not an age in days"),
        (&["--older-than", "1.5d"], "ERROR: --older-than: \"1.5d\" is not an age in days"),
        (&["--older-than", "99999999999999999999999d"], "at most 36500 days"),
        (&["--older-than", "90d", "--action", "archive"], "ERROR: --action: \"archive\" is not a retention action"),
        (&["--older-than", "90d", "--tenant", "t1"], "Multitenancy is disabled"),
        (&[], "ERROR: no retention rule: give --older-than, or set RECORDING_RETENTION_DAYS"),
    ] {
        let args: Vec<&str> = ["recordings", "prune", "--yes"].iter().chain(args).copied().collect();
        let run = admin(&app, &args).await;
        assert_eq!((run.code, run.out.as_str()), (1, ""), "{args:?}: {run:?}");
        assert!(run.err.contains(expected), "{args:?}: {:?}", run.err);
    }
    assert_eq!(app.dirs().files(), files);
    assert_eq!(state(&app, "old").await, ("published".into(), true));

    // A tenant that does not exist, in multitenant mode.
    let app = self::app(&[("MULTITENANCY_ENABLED", "true")]).await;
    let run = admin(&app, &["recordings", "prune", "--older-than", "1d", "--tenant", "nope"]).await;
    assert_eq!((run.code, run.err.as_str()), (1, "ERROR: no tenant named \"nope\"\n"));
    // A retention setting that makes no sense is refused when it is added.
    let tenant = Tenant::new("acme", "secret");
    app.store().create_tenant(&tenant).await.unwrap();
    let id = tenant.id.as_str();
    for (param, value) in
        [(DAYS_SETTING, "soon"), (ACTION_SETTING, "archive"), ("scalelite-recording-retention-x", "1")]
    {
        let run = admin(&app, &["tenant-settings", "add", id, param, value, "false"]).await;
        assert_eq!((run.code, run.out.as_str()), (1, ""), "{param}={value}: {run:?}");
        assert!(run.err.starts_with("ERROR: "), "{run:?}");
    }
    assert!(app.store().tenant(&tenant.id).await.unwrap().unwrap().settings.is_empty());
}

#[tokio::test]
async fn a_recording_whose_files_cannot_be_removed_is_reported_and_the_exit_code_is_1() {
    let app = app(&[]).await;
    seed(&app, "old-1", Some(400), None, true).await;
    // A row whose record id cannot be a directory name (a hand-edited or
    // hostile database): its files cannot be located safely.
    let import = RecordingImport {
        record_id: "../../etc".into(),
        meeting_id: "m".into(),
        published: Some(true),
        state: Some("published".into()),
        start_ms: Some(now_ms() - 400 * DAY_MS),
        ..RecordingImport::default()
    };
    app.recording_store().import_recording(&import, ImportPolicy::default()).await.unwrap();
    seed(&app, "old-2", Some(400), None, true).await;

    let run = admin(&app, &["recordings", "prune", "--older-than", "90d", "--yes"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.err.contains("ERROR: ../../etc (delete): files: unsafe record id"), "{}", run.err);
    assert!(run.err.contains("ERROR: 1 recording(s) could not be changed"), "{}", run.err);
    assert!(run.out.contains("Deleted 2 recording(s) (3.9 KiB), unpublished 0, failed 1"), "{}", run.out);
    assert_eq!(state(&app, "../../etc").await.0, "published", "its row is left as it was");
    for gone in ["old-1", "old-2"] {
        assert_eq!(state(&app, gone).await.0, "deleted", "the others are still pruned");
    }
}

#[tokio::test]
async fn the_importer_applies_the_rules_periodically() {
    let app = app(&[
        ("MULTITENANCY_ENABLED", "true"),
        ("RECORDING_RETENTION_DAYS", "30"),
        ("RECORDING_IMPORT_SETTLE_TIME", "0"),
    ])
    .await;
    let (short, keep, _) = tenants_with_overrides(&app).await;
    seed(&app, "old", Some(45), None, true).await;
    seed(&app, "recent", Some(2), None, true).await;
    seed(&app, "short-40", Some(40), Some(&short), true).await;
    seed(&app, "keep-400", Some(400), Some(&keep), true).await;

    let mut settings = Settings::from_config(&app.state.config);
    settings.retention_interval = Duration::from_millis(100);
    let importer = Importer::new(settings, app.recording_store(), Some(Arc::clone(app.store())));
    let running = Running::start(&importer);
    eventually_with(Duration::from_secs(20), "the old recording deleted by the importer", || async {
        state(&app, "old").await.0 == "deleted" && state(&app, "short-40").await.0 == "unpublished"
    })
    .await;
    running.stop().await;
    assert!(trees_of(&app, "old").is_empty());
    assert_eq!(trees_of(&app, "short-40"), ["unpublished"]);
    assert_eq!(state(&app, "recent").await, ("published".into(), true));
    assert_eq!(state(&app, "keep-400").await, ("published".into(), true), "the tenant turned retention off");
    assert_eq!(trees_of(&app, "keep-400"), ["published"]);

    // One run by hand: nothing left to do.
    let importer =
        Importer::new(Settings::from_config(&app.state.config), app.recording_store(), Some(Arc::clone(app.store())));
    let report = importer.apply_retention().await.unwrap().expect("rules are set");
    assert_eq!((report.deleted, report.unpublished, report.failed.len()), (0, 0, 0));
}
