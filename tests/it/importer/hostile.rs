//! Malformed, truncated and hostile archives: quarantined with a reason,
//! nothing written outside the work directory, and the importer goes on.

use scalelite_tests::archive::{Kind, RawTar, drop_bytes};

use super::*;

#[tokio::test]
async fn broken_and_hostile_archives_are_quarantined_and_nothing_leaks() {
    let rig = Rig::start().await;
    let root = rig.dirs.root().to_path_buf();
    let rec = RecordingArchive::new("room-1", "Room 1");
    let other = RecordingArchive::new("room-2", "Room 2");
    let id = rec.record_id.clone();
    let good = rec.tar();
    let metadata = rec.metadata_xml(Format::Presentation);
    let without_metadata = rec.members().into_iter().filter(|(p, _)| !p.ends_with("/metadata.xml"));
    // Started in the year 318857: PostgreSQL's timestamps end in 294276.
    let mut out_of_range = RecordingArchive::new("room-3", "Room 3");
    out_of_range.start_ms = 9_999_999_999_999_999;

    let mut corrupt = good.clone();
    corrupt[0] ^= 0x01;
    let huge_metadata = format!("{metadata}<!--{}-->", "x".repeat(5 * 1024 * 1024));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("corrupt", corrupt, "checksum mismatch"),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated archive"),
        ("cut-after-a-member", RawTar::new().recording(&rec).unfinished(), "end-of-archive"),
        ("empty", Vec::new(), "empty file"),
        ("not-a-tar", "%PDF-1.7\n".repeat(400).into_bytes(), "malformed archive"),
        (
            "traversal",
            RawTar::new().recording(&rec).file(&format!("presentation/{id}/../../../../evil-traversal"), b"x").finish(),
            "leaves the archive",
        ),
        ("top-traversal", RawTar::new().file("../evil-top", b"x").recording(&rec).finish(), "leaves the archive"),
        (
            "absolute",
            RawTar::new().recording(&rec).file(&format!("{}/evil-absolute", root.display()), b"x").finish(),
            "absolute member path",
        ),
        (
            "symlink",
            RawTar::new()
                .member(Kind::Symlink, &format!("presentation/{id}/evil-link"), b"", "/etc/passwd")
                .recording(&rec)
                .finish(),
            "symbolic link member",
        ),
        (
            "hardlink",
            RawTar::new()
                .recording(&rec)
                .member(Kind::Hardlink, &format!("presentation/{id}/evil-hardlink"), b"", "/etc/shadow")
                .finish(),
            "hard link member",
        ),
        (
            "fifo",
            RawTar::new().recording(&rec).member(Kind::Fifo, &format!("presentation/{id}/evil-fifo"), b"", "").finish(),
            "device or FIFO",
        ),
        (
            "device",
            RawTar::new().member(Kind::CharDevice, &format!("presentation/{id}/evil-dev"), b"", "").finish(),
            "device or FIFO",
        ),
        (
            "huge-metadata",
            RawTar::new().file(&format!("presentation/{id}/metadata.xml"), huge_metadata.as_bytes()).finish(),
            "more than the 4194304-byte limit",
        ),
        (
            "long-name-bomb",
            RawTar::new().file(&format!("presentation/{id}/{}", "n".repeat(1024 * 1024)), b"x").finish(),
            "GNU long name larger than",
        ),
        (
            "no-metadata",
            without_metadata.fold(RawTar::new(), |t, (p, c)| t.file(&p, &c)).finish(),
            "presentation/{id}/metadata.xml is missing",
        ),
        (
            "metadata-without-meta",
            RawTar::new()
                .file(
                    &format!("presentation/{id}/metadata.xml"),
                    format!("<recording><id>{id}</id></recording>").as_bytes(),
                )
                .finish(),
            "no <meta>",
        ),
        (
            "metadata-of-another-recording",
            RawTar::new()
                .file(&format!("presentation/{id}/metadata.xml"), other.metadata_xml(Format::Presentation).as_bytes())
                .finish(),
            "describes recording",
        ),
        ("outside-the-layout", RawTar::new().recording(&rec).file("evil-top-level.txt", b"x").finish(), "not inside"),
        ("two-recordings", RawTar::new().recording(&rec).recording(&other).finish(), "more than one recording"),
        ("time-out-of-range", RawTar::new().recording(&out_of_range).finish(), "the database refused the recording: "),
    ];
    for (name, bytes, _) in &cases {
        drop_bytes(&rig.dirs.spool(), &format!("{name}.tar"), bytes);
    }
    // A good archive after all of them: the importer goes on.
    rec.drop_into(&rig.dirs.spool());

    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.quarantined(), cases.len(), "{report:#?}");
    assert_eq!(report.imported(), 1, "{report:#?}");

    let failed = rig.dirs.spool().join("failed");
    for (name, bytes, reason) in &cases {
        let reason = reason.replace("{id}", &id);
        let kept = std::fs::read(failed.join(format!("{name}.tar"))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(kept == *bytes, "{name}: the quarantined archive is unchanged");
        let text = std::fs::read_to_string(failed.join(format!("{name}.tar.reason"))).unwrap();
        let first_line = text.lines().next().unwrap();
        assert!(first_line.contains(&reason), "{name}: {first_line:?} should mention {reason:?}");
    }

    let mut expected: Vec<String> = cases
        .iter()
        .flat_map(|(name, _, _)| [format!("spool/failed/{name}.tar"), format!("spool/failed/{name}.tar.reason")])
        .chain(tree_files(&rec, "published"))
        .collect();
    expected.sort();
    assert_eq!(rig.files(), expected, "nothing was written outside the quarantine and the publish tree");
    assert!(!root.parent().unwrap().join("evil-top").exists());
    assert!(!root.parent().unwrap().join("evil-traversal").exists());
    assert_published(&rec, &rig.dirs.published());

    let log = rig.import_log().await;
    let failures: Vec<&ImportLogEntry> = log.iter().filter(|e| e.status == "failed").collect();
    assert_eq!(failures.len(), cases.len());
    assert!(failures.iter().all(|e| e.reason.as_deref().is_some_and(|r| !r.is_empty())));
    assert_eq!(rig.count("SELECT count(*) FROM recordings").await, 1);
}

#[tokio::test]
async fn a_quarantined_archive_never_overwrites_an_earlier_one() {
    let rig = Rig::start().await;
    for round in 0..2 {
        drop_bytes(&rig.dirs.spool(), "broken.tar", format!("not a tar {round}").repeat(100).as_bytes());
        let report = rig.importer(&[]).import_pending_once().await.unwrap();
        assert_eq!(report.quarantined(), 1);
    }
    let failed: Vec<String> = rig.files().into_iter().filter(|f| f.starts_with("spool/failed/")).collect();
    assert_eq!(failed.len(), 4, "{failed:?}");
    assert!(failed.contains(&"spool/failed/broken.tar".to_owned()));
}

#[tokio::test]
async fn metadata_nested_half_a_million_deep_is_quarantined_and_the_importer_goes_on() {
    let rig = Rig::start().await;
    let spool = rig.dirs.spool();
    // Well-formed, 3.5 MB (under the 4 MiB metadata limit), nested far
    // deeper than any BBB document.
    let deep = RecordingArchive::new("room-deep", "Deep");
    let depth = 500_000;
    let nested = format!("{}{}", "<n>".repeat(depth), "</n>".repeat(depth));
    let bytes = deep.tar_with_metadata_extra(&nested);
    assert!(bytes.len() > 3_000_000);
    drop_bytes(&spool, "deep.tar", &bytes);
    let good = RecordingArchive::new("room-good", "Good");
    good.drop_into(&spool);

    // Both wait in the spool when the service starts, as after the crash
    // that used to leave the deep one there.
    let running = Running::start(&rig.importer(&[]));
    let failed = spool.join("failed");
    eventually_with(Duration::from_secs(30), "the deep archive is quarantined, the good one imported", || async {
        failed.join("deep.tar.reason").exists() && rig.recording(&good.record_id).await.is_some()
    })
    .await;
    running.stop().await;
    let reason = std::fs::read_to_string(failed.join("deep.tar.reason")).unwrap();
    let limit = scalelite_core::xml::MAX_DEPTH;
    assert_eq!(
        reason.lines().next().unwrap(),
        format!("presentation: metadata.xml: invalid XML: elements nested deeper than {limit} levels")
    );
    assert!(std::fs::read(failed.join("deep.tar")).unwrap() == bytes, "quarantined unchanged");
    assert!(!rig.in_spool("deep.tar"));
    assert!(rig.recording(&deep.record_id).await.is_none());
    let log = rig.import_log().await;
    let entry = log.iter().find(|e| e.filename == "deep.tar").unwrap();
    assert_eq!(entry.status, "failed");
    assert!(entry.reason.as_deref().unwrap().contains("nested deeper than"), "{entry:?}");

    // Restarted, the importer goes on with new archives and leaves the
    // quarantine alone.
    let later = RecordingArchive::new("room-later", "Later");
    later.drop_into(&spool);
    let running = Running::start(&rig.importer(&[]));
    eventually_with(Duration::from_secs(30), "the next archive is imported after a restart", || async {
        rig.recording(&later.record_id).await.is_some() && !rig.in_spool(&later.file_name())
    })
    .await;
    running.stop().await;
    let quarantine: Vec<String> = rig.files().into_iter().filter(|f| f.starts_with("spool/")).collect();
    assert_eq!(quarantine, ["spool/failed/deep.tar", "spool/failed/deep.tar.reason"]);
}

/// Scalelite 1.8.3: a format that cannot be imported no longer costs the
/// others. Its reason is logged, the good formats are listed and played,
/// and the archive leaves the spool.
#[tokio::test]
async fn a_broken_format_is_skipped_and_the_others_are_imported() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("room-partial", "Partial").formats(&[
        Format::Presentation,
        Format::Video,
        Format::Podcast,
        Format::Notes,
    ]);
    let id = rec.record_id.clone();
    // video: a metadata.xml without <meta>; podcast: none at all.
    let broken = format!("<recording><id>{id}</id></recording>");
    let tar = rec
        .members()
        .into_iter()
        .filter(|(path, _)| !path.starts_with("podcast/") || !path.ends_with("/metadata.xml"))
        .fold(RawTar::new(), |tar, (path, content)| {
            if path == format!("video/{id}/metadata.xml") {
                tar.file(&path, broken.as_bytes())
            } else {
                tar.file(&path, &content)
            }
        })
        .finish();
    drop_bytes(&rig.dirs.spool(), &rec.file_name(), &tar);

    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!((report.imported(), report.quarantined()), (1, 0), "{report:#?}");
    let Some(ArchiveOutcome::Imported(imported)) = report.outcomes.first() else { panic!("{report:#?}") };
    let skipped: Vec<(&str, &str)> = imported.skipped.iter().map(|s| (s.format.as_str(), s.reason.as_str())).collect();
    assert_eq!(
        skipped,
        [
            ("podcast", format!("podcast/{id}/metadata.xml is missing").as_str()),
            ("video", "video: metadata.xml: no <meta>"),
        ]
    );

    let recording = rig.recording(&id).await.expect("the recording is listed");
    let formats: Vec<&str> = recording.formats.iter().map(|f| f.format.as_str()).collect();
    assert_eq!(formats, ["notes", "presentation"]);
    assert!(recording.published);
    let published = rig.dirs.published();
    for format in ["presentation", "notes"] {
        assert!(published.join(format).join(&id).join("metadata.xml").is_file(), "{format} is published");
    }
    for format in ["video", "podcast"] {
        assert!(!published.join(format).join(&id).exists(), "{format} is not published");
    }
    assert!(!rig.in_spool(&rec.file_name()), "the archive left the spool");
    assert!(!rig.dirs.spool().join("failed").exists(), "nothing was quarantined");
    let log = rig.import_log().await;
    let entry = log.iter().find(|e| e.filename == rec.file_name()).unwrap();
    assert_eq!(entry.status, "imported");
    assert_eq!(entry.formats, Some(2));
    assert_eq!(
        entry.reason.as_deref(),
        Some(
            format!(
                "format podcast skipped: podcast/{id}/metadata.xml is missing; \
                 format video skipped: video: metadata.xml: no <meta>"
            )
            .as_str()
        )
    );
}
