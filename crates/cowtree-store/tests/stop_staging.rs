//! Once a signal handler has stopped staging (`cowtree_fs::staging::stop_staging`, which is
//! process-wide, so tested in a process of its own), no manifest is named, none is begun, and
//! the temporary file a writer made is removed with it: the handler, which removes this
//! process's temporary files in `snapshots/` after stopping staging, misses none, and never
//! says "no snapshot was recorded" of one that was.

use cowtree_store::manifest::{Entry, Manifest, encode_blob};
use cowtree_store::{Hash, Store};

fn temporaries(store: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(store.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn after_stop_staging_no_manifest_is_named_or_begun() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    let hash = Hash::of(b"x");
    let mut entry = Vec::new();
    encode_blob(&mut entry, b"a", false, 1, &hash);

    // Begun before the stop, finished after it: refused, nothing named, nothing left.
    let mut w = store.manifest_writer(1, "test").unwrap();
    w.push(&entry).unwrap();
    assert_eq!(temporaries(&root).len(), 1, "the writer's temporary file");
    cowtree_fs::staging::stop_staging();
    let err = w.finish().unwrap_err().to_string();
    assert!(err.contains("stopping"), "{err}");
    assert!(store.snapshot_ids().unwrap().is_empty());
    assert_eq!(temporaries(&root), Vec::<String>::new());

    // Nothing begun or saved after it.
    let err = store
        .manifest_writer(1, "test")
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("stopping"), "{err}");
    let m = Manifest::new(vec![Entry::blob(b"a".to_vec(), false, 1, hash)]).unwrap();
    let err = store.save(&m).unwrap_err().to_string();
    assert!(err.contains("stopping"), "{err}");
    assert!(store.snapshot_ids().unwrap().is_empty());
    assert_eq!(temporaries(&root), Vec::<String>::new());
}
