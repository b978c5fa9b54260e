//! Fuzzes the path validator: it must never panic, and anything it accepts must be a plain
//! relative path that cannot leave the directory it is applied to.
#![no_main]

use cowtree_fs::name::{NAME_MAX, PATH_MAX, validate_component, validate_relative_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = validate_component(data);
    if let Ok(parts) = validate_relative_path(data) {
        assert!(data.len() <= PATH_MAX);
        assert!(!data.starts_with(b"/") && !data.ends_with(b"/"));
        assert!(!data.contains(&0));
        let mut rebuilt = Vec::with_capacity(data.len());
        for (i, part) in parts.iter().enumerate() {
            assert!(!part.is_empty() && part.len() <= NAME_MAX);
            assert!(*part != b"." && *part != b"..");
            assert!(!part.contains(&b'/'));
            if i > 0 {
                rebuilt.push(b'/');
            }
            rebuilt.extend_from_slice(part);
        }
        assert_eq!(rebuilt, data, "components must rebuild the path exactly");
    }
});
