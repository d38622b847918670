//! A recording's `metadata.xml`, as the importer reads it from an archive
//! that any BBB server (or whoever can write to the spool) supplies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelite_recording_importer::metadata::{parse_metadata, recording_from};

fuzz_target!(init: scalelite_fuzz::report_stack_overflows(), |data: &[u8]| {
    let Ok(format) = parse_metadata(data) else {
        return;
    };
    let import = recording_from(vec![format.clone()]).expect("one format always combines");
    assert_eq!(import.record_id, format.record_id);
    // The same format twice is refused, not merged.
    assert!(recording_from(vec![format.clone(), format]).is_err());
});
