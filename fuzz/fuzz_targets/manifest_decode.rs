//! Fuzzes the binary manifest decoder: it must never panic, and whatever it accepts must be
//! canonical (re-encoding gives the same bytes) and hold only valid relative paths. The
//! in-place view and the compact form (read a chunk at a time, as a worktree's base and a
//! checkout read a manifest) must accept exactly what the decoder accepts and hold the same
//! entries. Version 2 (what `snapshot --archive` records) too: the seed `archive`. Whatever
//! decodes goes through its JSON form (`show --json`, `snapshot --from-json`) unchanged.
#![no_main]

use cowtree_fs::name::validate_relative_path;
use cowtree_store::Manifest;
use cowtree_store::compact::CompactManifest;
use cowtree_store::manifest::ManifestView;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let view = ManifestView::parse(data);
    let decoded = Manifest::decode(data);
    assert_eq!(view.is_ok(), decoded.is_ok());
    let (hash, compact) =
        CompactManifest::read(data, data.len() as u64).expect("reading a slice does not fail");
    assert_eq!(hash, cowtree_store::Hash::of(data));
    assert_eq!(compact.is_ok(), decoded.is_ok());
    if let (Ok(c), Ok(m)) = (&compact, &decoded) {
        // (The compact form holds the tree: a version 2 manifest's metadata is not in it.)
        assert_eq!(c.to_manifest().entries(), m.entries());
    }
    if let Ok(m) = decoded {
        let v = view.expect("accepted by both");
        assert!(v.iter().map(|e| e.to_entry()).eq(m.entries().iter().cloned()));
        assert_eq!(m.encode(), data, "accepted bytes must be the canonical encoding");
        let json = serde_json::to_vec(&cowtree_store::interchange::to_json(&m, &m.id()))
            .expect("serialize");
        let back = cowtree_store::interchange::from_json(&json).expect("its JSON records it");
        assert_eq!(back, m, "the JSON form records the same manifest");
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
