//! Recording archives in the importer's spool: tar files packed by BBB
//! servers' post-publish scripts, or by anyone who can write to the spool.
//!
//! Each input is written to a file and extracted into a fresh directory,
//! which is removed again; both live in `$FUZZ_WORK_DIR` (scripts/fuzz sets
//! it), else `/dev/shm` (extraction flushes every file to disk, which costs
//! nothing on tmpfs), else the temporary directory.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scalelite_recording_importer::extract_archive;
use scalelite_recording_importer::metadata::parse_metadata;

/// The largest `metadata.xml` (small, so inputs can cross it).
const MAX_METADATA: u64 = 8 * 1024;

fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("FUZZ_WORK_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() }
        });
        let dir = base.join(format!("scalelite-fuzz-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the work directory");
        dir
    })
}

fuzz_target!(init: scalelite_fuzz::report_stack_overflows(), |data: &[u8]| {
    let work = work_dir();
    let archive = work.join("archive.tar");
    let into = work.join("extracted");
    std::fs::write(&archive, data).expect("write the archive");
    std::fs::create_dir(&into).expect("create the extraction directory");

    let result = extract_archive(&archive, &into, MAX_METADATA);
    // An accepted archive may list no format: a format directory without a
    // metadata.xml is left out (Scalelite 1.8.3 skips such formats), and the
    // importer quarantines an archive when none is left (tested in
    // tests/it/importer/hostile.rs). What must hold is the limit on each
    // metadata.xml, and that parsing it never panics.
    if let Ok(formats) = &result {
        for (_, xml) in formats {
            assert!(xml.len() as u64 <= MAX_METADATA);
            let _ = parse_metadata(xml);
        }
    }
    // Nothing was written next to the extraction directory, and nothing
    // inside it is a link, whether the archive was accepted or refused.
    let mut siblings: Vec<_> = std::fs::read_dir(work).expect("list").map(|e| e.expect("entry").file_name()).collect();
    siblings.sort();
    assert_eq!(siblings, ["archive.tar", "extracted"], "the archive wrote outside its directory: {result:?}");
    assert_no_links(&into);

    std::fs::remove_dir_all(&into).expect("remove the extraction directory");
    std::fs::remove_file(&archive).expect("remove the archive");
});

fn assert_no_links(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let entry = entry.expect("entry");
        let kind = entry.file_type().expect("file type");
        assert!(!kind.is_symlink(), "extraction created the link {}", entry.path().display());
        if kind.is_dir() {
            assert_no_links(&entry.path());
        }
    }
}
