//! Fuzzes the binary manifest decoder: it must never panic, and whatever it accepts must be
//! canonical (re-encoding gives the same bytes) and hold only valid relative paths. The
//! in-place view must accept exactly what the decoder accepts and read the same entries.
#![no_main]

use cowtree_fs::name::validate_relative_path;
use cowtree_store::Manifest;
use cowtree_store::manifest::ManifestView;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let view = ManifestView::parse(data);
    let decoded = Manifest::decode(data);
    assert_eq!(view.is_ok(), decoded.is_ok());
    if let Ok(m) = decoded {
        let v = view.expect("accepted by both");
        assert!(v.iter().map(|e| e.to_entry()).eq(m.entries().iter().cloned()));
        assert_eq!(m.encode(), data, "accepted bytes must be the canonical encoding");
        let mut prev: Option<&[u8]> = None;
        for e in m.entries() {
            assert!(validate_relative_path(&e.path).is_ok());
            if let Some(p) = prev {
                assert!(p < e.path.as_slice(), "entries sorted and unique");
            }
            prev = Some(&e.path);
        }
    }
});
