//! cowtree-store's core on Windows, on the volume the tests run on (under Wine in
//! scripts/windows.sh): creating and opening a store, its lock (`LockFileEx`, shared and
//! exclusive, two handles excluding each other as two `flock`s do), names, snapshots listed,
//! saved and removed, worktree records and the registration lock, gc (blobs no snapshot names,
//! read-only as they are, and staging nobody holds), verify, removing a whole store, tree
//! subvolumes refused, and which store serves a tree. Recording a tree and checking one out
//! are tests/windows_data.rs's.
#![cfg(windows)]

use std::path::PathBuf;
use std::sync::Once;
use std::sync::mpsc;
use std::time::Duration;

use cowtree_store::error::Error;
use cowtree_store::manifest::Entry;
use cowtree_store::{Hash, Manifest, Store};

/// Points this user's state and data directories at a scratch directory of this test run,
/// once, before any test reads them (so that the list of known stores and the registries
/// outside read-only stores are the tests' own).
fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let base = std::env::temp_dir().join(format!("cowtree-store-win-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("scratch state directory");
        // SAFETY: called once, before any test of this binary goes on to read the
        // environment (each calls `setup` first).
        unsafe {
            std::env::set_var("XDG_STATE_HOME", base.join("state"));
            std::env::set_var("XDG_DATA_HOME", base.join("data"));
        }
    });
}

fn new_store() -> (tempfile::TempDir, PathBuf, Store) {
    setup();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("store");
    let store = Store::open(&root).expect("open a new store");
    (tmp, root, store)
}

/// Puts `bytes` in the store as a blob, by hand (as ingest places one: read-only).
fn put_blob(store: &Store, bytes: &[u8]) -> Hash {
    let h = Hash::of(bytes);
    let path = store.blob_path(&h);
    std::fs::write(&path, bytes).expect("write blob");
    let mut perms = std::fs::metadata(&path).expect("blob").permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).expect("make the blob read-only");
    h
}

fn manifest(entries: Vec<Entry>) -> Manifest {
    Manifest::new(entries).expect("a valid manifest")
}

#[test]
fn a_new_store_has_its_layout_and_opens_again() {
    let (_tmp, root, store) = new_store();
    for d in ["blobs", "snapshots", "refs", "worktrees", "tmp"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    assert!(root.join("blobs").join("00").is_dir());
    assert!(root.join("blobs").join("ff").is_dir());
    assert!(root.join("lock").is_file());
    assert_eq!(
        std::fs::read_to_string(root.join("format")).unwrap(),
        "cowtree-store 1\n"
    );
    assert!(!store.is_read_only());
    assert_eq!(store.worktrees_path(), root.join("worktrees"));
    drop(store);
    let again = Store::open(&root).expect("reopen");
    assert!(again.snapshot_ids().unwrap().is_empty());
    assert!(!again.holds_any_snapshot().unwrap());
}

#[test]
fn a_directory_holding_other_things_or_another_format_is_refused() {
    setup();
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"mine").unwrap();
    let e = Store::open(&mine).unwrap_err();
    assert!(matches!(e, Error::NotAStore { .. }), "{e}");
    assert!(mine.join("notes.txt").exists());
    assert!(!mine.join("blobs").exists());

    let (_t, root, store) = new_store();
    drop(store);
    std::fs::write(root.join("format"), "cowtree-store 9\n").unwrap();
    let e = Store::open(&root).unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedFormat { found: 9, .. }),
        "{e}"
    );
}

#[test]
fn shared_locks_go_together_and_an_exclusive_one_goes_alone() {
    let (_tmp, root, a) = new_store();
    let b = Store::open(&root).unwrap();
    let shared_a = a.lock_shared().unwrap();
    let shared_b = b.lock_shared().unwrap();
    assert!(
        b.try_lock_exclusive().unwrap().is_none(),
        "taken while shared"
    );
    drop(shared_a);
    assert!(
        a.try_lock_exclusive().unwrap().is_none(),
        "b still holds it"
    );
    drop(shared_b);
    let excl = a.try_lock_exclusive().unwrap().expect("free now");
    // Another handle, even in this process, waits for it.
    assert!(b.try_lock_exclusive().unwrap().is_none());
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let guard = b.lock_shared().expect("shared once gc is done");
        tx.send(()).unwrap();
        drop(guard);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a shared lock was taken beside an exclusive one"
    );
    drop(excl);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the shared lock once the exclusive one is released");
    waiter.join().unwrap();
    // The lock file's bytes stay readable under a lock (the lock is a byte far past them).
    let _held = a.lock_exclusive().unwrap();
    std::fs::read(root.join("lock")).expect("the lock file reads while locked");
}

#[test]
fn names_point_at_snapshots_and_are_listed_and_removed() {
    let (_tmp, root, store) = new_store();
    let id = store
        .save(&manifest(vec![Entry::dir(b"d".to_vec())]))
        .unwrap();
    cowtree_store::refs::set(&store, "main", &id).unwrap();
    assert_eq!(cowtree_store::refs::get(&store, "main").unwrap(), Some(id));
    assert_eq!(
        std::fs::read_to_string(root.join("refs").join("main")).unwrap(),
        format!("{id}\n")
    );
    assert_eq!(
        cowtree_store::refs::list(&store).unwrap(),
        vec![("main".to_string(), id)]
    );
    assert_eq!(cowtree_store::refs::resolve(&store, "main").unwrap(), id);
    assert!(cowtree_store::refs::set(&store, "-bad", &id).is_err());
    assert!(cowtree_store::refs::set(&store, "a/b", &id).is_err());
    cowtree_store::refs::remove(&store, "main").unwrap();
    assert_eq!(cowtree_store::refs::get(&store, "main").unwrap(), None);
}

#[test]
fn snapshots_are_saved_listed_loaded_and_removed() {
    let (_tmp, root, store) = new_store();
    let m1 = manifest(vec![Entry::dir(b"a".to_vec())]);
    let m2 = manifest(vec![Entry::dir(b"b".to_vec()), Entry::dir(b"c/d".to_vec())]);
    let id1 = store.save(&m1).unwrap();
    let id2 = store.save(&m2).unwrap();
    assert_eq!(store.save(&m1).unwrap(), id1, "the same bytes, the same id");
    let mut want = vec![id1, id2];
    want.sort();
    assert_eq!(store.snapshot_ids().unwrap(), want);
    assert!(store.holds_any_snapshot().unwrap());
    assert!(store.has_snapshot(&id2).unwrap());
    assert_eq!(store.load(&id2).unwrap(), m2);
    assert_eq!(store.read_snapshot(&id1).unwrap(), m1.encode());
    let mut n = 0;
    store.each_entry(&id2, |_| n += 1).unwrap();
    assert_eq!(n, 2);
    // Bytes that are not the snapshot's are refused as such.
    let path = root.join("snapshots").join(id1.to_hex());
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, m2.encode()).unwrap();
    assert!(store.load(&id1).is_err());
    store.remove_snapshot(&id1).unwrap();
    store.remove_snapshot(&id2).unwrap();
    assert!(store.snapshot_ids().unwrap().is_empty());
    assert!(!store.holds_any_snapshot().unwrap());
}

#[test]
fn worktree_records_are_written_pinned_and_removed_under_the_registration_lock() {
    let (tmp, _root, store) = new_store();
    let wt = tmp.path().join("wt");
    std::fs::create_dir(&wt).unwrap();
    let snap = Hash::of(b"some snapshot");
    let claim = cowtree_store::worktree_records::claim(&store).unwrap();
    let id = cowtree_store::worktree_records::register(&store, &wt, &snap).unwrap();
    drop(claim);
    assert_eq!(id, cowtree_store::worktree_records::worktree_id(&wt));
    assert_eq!(
        cowtree_store::worktree_records::ids(&store).unwrap(),
        vec![id.clone()]
    );
    let pins = cowtree_store::worktree_records::pins(&store).unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].path.as_deref(), Some(wt.as_path()));
    assert_eq!(pins[0].snapshots, vec![snap]);
    assert_eq!(
        cowtree_store::worktree_records::live_users(&store, &snap).unwrap(),
        vec![wt.clone()]
    );
    // Not a directory: refused.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(cowtree_store::worktree_records::register(&store, &file, &snap).is_err());
    // The registration lock is held by one at a time.
    let first = cowtree_store::worktree_records::claim(&store).unwrap();
    let (tx, rx) = mpsc::channel();
    let root = store.root().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let other = Store::open(&root).unwrap();
        let c = cowtree_store::worktree_records::claim(&other).unwrap();
        tx.send(()).unwrap();
        drop(c);
    });
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    drop(first);
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    waiter.join().unwrap();
    cowtree_store::worktree_records::remove(&store, &id).unwrap();
    assert!(
        cowtree_store::worktree_records::ids(&store)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn gc_of_an_empty_store_removes_nothing() {
    let (_tmp, _root, store) = new_store();
    let r = cowtree_store::gc::gc(&store, false).unwrap();
    assert_eq!(
        (
            r.blobs_removed,
            r.blobs_kept,
            r.staging_removed,
            r.worktrees_pruned
        ),
        (0, 0, 0, 0)
    );
    assert!(r.trees_removed.is_empty());
}

#[test]
fn gc_removes_read_only_blobs_no_snapshot_names_and_keeps_the_named_ones() {
    let (_tmp, _root, store) = new_store();
    let kept = put_blob(&store, b"named by a snapshot");
    let gone = put_blob(&store, b"named by nothing");
    let id = store
        .save(&manifest(vec![Entry::blob(b"f".to_vec(), false, 19, kept)]))
        .unwrap();
    let dry = cowtree_store::gc::gc(&store, true).unwrap();
    assert_eq!((dry.blobs_removed, dry.blobs_kept), (1, 1));
    assert!(store.blob_path(&gone).exists(), "a dry run removes nothing");
    let r = cowtree_store::gc::gc(&store, false).unwrap();
    assert_eq!((r.blobs_removed, r.bytes_freed, r.blobs_kept), (1, 16, 1));
    assert!(!store.blob_path(&gone).exists());
    assert!(store.blob_path(&kept).exists());
    // Once the snapshot is gone, so is its blob.
    store.remove_snapshot(&id).unwrap();
    let r = cowtree_store::gc::gc(&store, false).unwrap();
    assert_eq!(r.blobs_removed, 1);
    assert!(!store.blob_path(&kept).exists());
}

#[test]
fn gc_removes_staging_nobody_holds_and_keeps_a_live_one() {
    let (_tmp, root, store) = new_store();
    let live = store.staging("ingest").unwrap();
    std::fs::write(live.path().join("part"), b"in use").unwrap();
    // What a killed writer leaves: a staging directory no handle is open on.
    let dead = root.join("tmp").join("ingest-dead");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("part"), b"left").unwrap();
    let r = cowtree_store::gc::gc(&store, false).unwrap();
    assert_eq!(r.staging_removed, 1);
    assert!(!dead.exists());
    assert!(
        live.path().join("part").exists(),
        "a live staging directory is kept"
    );
    let path = live.path().to_path_buf();
    drop(live);
    assert!(!path.exists(), "a staging directory goes when dropped");
}

#[test]
fn gc_prunes_the_record_of_a_worktree_that_is_gone() {
    let (tmp, _root, store) = new_store();
    let wt = tmp.path().join("wt");
    std::fs::create_dir(&wt).unwrap();
    cowtree_store::worktree_records::register(&store, &wt, &Hash::of(b"s")).unwrap();
    assert_eq!(
        cowtree_store::gc::gc(&store, false)
            .unwrap()
            .worktrees_pruned,
        0
    );
    std::fs::remove_dir(&wt).unwrap();
    assert_eq!(
        cowtree_store::gc::gc(&store, false)
            .unwrap()
            .worktrees_pruned,
        1
    );
    assert!(
        cowtree_store::worktree_records::ids(&store)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn gc_removes_a_checkout_staging_beside_its_destination_once_no_handle_holds_it() {
    let (tmp, _root, store) = new_store();
    // As a checkout names and registers its staging beside DST `wt` (the parent canonical).
    let parent = cowtree_store::discover::absolute(tmp.path()).unwrap();
    let name = cowtree_store::dest_staging::STAGING.name(std::ffi::OsStr::new("wt"), "0-test");
    let staging = parent.join(&name);
    let mut reg = cowtree_store::dest_staging::register(&store, &staging).unwrap();
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("f"), b"half a tree").unwrap();
    let held = cowtree_fs::dir::Dir::open(&staging).unwrap();
    // The identity the store records (crate::util::file_id): the volume serial and the file
    // id folded into 64 bits.
    let st = held.stat_self().unwrap();
    let id = cowtree_fs::sys::stat_ino(&st);
    let (dev, ino) = (
        cowtree_fs::sys::stat_dev(&st),
        (id as u64) ^ ((id >> 64) as u64),
    );
    reg.created(dev, ino).unwrap();
    // What a checkout killed outright leaves: the registration stays.
    reg.keep();
    // Its handle still open: a live checkout's; kept.
    let r = cowtree_store::gc::gc(&store, false).unwrap();
    assert!(r.staging_beside.is_empty(), "{:?}", r.staging_beside);
    assert!(staging.join("f").exists());
    drop(held);
    let r = cowtree_store::gc::gc(&store, false).unwrap();
    assert_eq!(
        r.staging_beside,
        vec![staging.clone()],
        "{:?}",
        r.staging_kept
    );
    assert!(!staging.exists());
    // The registration went with it.
    let r = cowtree_store::gc::gc(&store, false).unwrap();
    assert!(r.staging_beside.is_empty() && r.staging_kept.is_empty());
}

#[test]
fn verify_passes_a_sound_store_and_names_each_problem() {
    let (_tmp, _root, store) = new_store();
    let r = cowtree_store::verify::verify(&store).unwrap();
    assert!(
        r.problems.is_empty() && r.warnings.is_empty(),
        "{:?}",
        r.problems
    );
    let good = put_blob(&store, b"good bytes");
    let missing = Hash::of(b"never stored");
    let id = store
        .save(&manifest(vec![
            Entry::blob(b"a".to_vec(), false, 10, good),
            Entry::blob(b"b".to_vec(), false, 12, missing),
        ]))
        .unwrap();
    cowtree_store::refs::set(&store, "v", &id).unwrap();
    cowtree_store::refs::set(&store, "dangling", &Hash::of(b"no such snapshot")).unwrap();
    // A blob whose bytes are not its name's, and one left writable.
    let liar = Hash::of(b"what the name says");
    std::fs::write(store.blob_path(&liar), b"something else").unwrap();
    let r = cowtree_store::verify::verify(&store).unwrap();
    let kinds: Vec<&str> = r.problems.iter().map(|p| p.kind).collect();
    assert_eq!(r.blobs_checked, 2);
    assert_eq!(r.snapshots_checked, 1);
    assert!(kinds.contains(&"missing-blob"), "{kinds:?}");
    assert!(kinds.contains(&"corrupt-blob"), "{kinds:?}");
    assert!(kinds.contains(&"writable-blob"), "{kinds:?}");
    assert!(
        !r.problems
            .iter()
            .any(|p| p.subject.contains(&good.to_hex()[2..])),
        "the sound blob: {:?}",
        r.problems
    );
    assert_eq!(
        r.warnings.iter().map(|w| w.kind).collect::<Vec<_>>(),
        vec!["dangling-ref"]
    );
}

#[test]
fn a_store_is_removed_whole_read_only_blobs_included_and_refused_while_locked() {
    let (_tmp, root, store) = new_store();
    put_blob(&store, b"a read-only blob");
    let shared = store.lock_shared().unwrap();
    let e = cowtree_store::remove::examine(&root).unwrap_err();
    assert!(e.to_string().contains(&root.display().to_string()), "{e}");
    drop(shared);
    drop(store);
    let mut r = cowtree_store::remove::examine(&root).unwrap();
    assert_eq!(r.state(), cowtree_store::remove::State::Store);
    r.mark().unwrap();
    assert!(matches!(
        Store::open(&root).unwrap_err(),
        Error::BeingRemoved { .. }
    ));
    let removed = r.finish().unwrap();
    assert!(removed.subvolumes.is_empty());
    assert!(!root.exists(), "{} is left", root.display());
}

#[test]
fn windows_makes_no_tree_subvolumes_and_says_why() {
    let (_tmp, _root, store) = new_store();
    let id = store
        .save(&manifest(vec![Entry::dir(b"d".to_vec())]))
        .unwrap();
    assert!(cowtree_store::trees::open(&store, &id).unwrap().is_none());
    match cowtree_store::trees::create(&store).unwrap() {
        Err(cowtree_fs::whole_tree::NotUsed::Filesystem { fs }) => {
            println!("no tree subvolume on {fs}");
        }
        Err(other) => panic!("another reason: {other:?}"),
        Ok(_) => panic!("a tree subvolume was made on Windows"),
    }
    assert!(cowtree_store::trees::ids(&store).unwrap().is_empty());
}

#[test]
fn the_store_of_a_tree_is_found_per_volume_and_remembered() {
    setup();
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let default = cowtree_store::discover::default_location().unwrap();
    assert!(default.ends_with("data\\cowtree"), "{}", default.display());
    let choice = cowtree_store::discover::store_for_tree(&tree).unwrap();
    println!("{}: {}", choice.root.display(), choice.explain(&tree));
    // The same volume as the default location (the scratch directories are on one), or
    // another that cannot share data: the default either way; a volume that can share data
    // gets a store of its own, at its root or below.
    let same = cowtree_store::discover::same_filesystem(&tree, &default).unwrap();
    if same || choice.root == default {
        assert_eq!(choice.root, default);
    } else {
        assert!(
            choice.root.ends_with(".cowtree-store"),
            "{}",
            choice.root.display()
        );
    }
    // Worktrees carry no marker on Windows: it says so, and none is found.
    let e = cowtree_store::discover::mark_worktree(&tree, &default).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    assert!(e.to_string().contains("extended attributes"), "{e}");
    assert!(cowtree_store::discover::marked_store(&tree).is_none());
    // Remembered, listed once, forgotten.
    let root = tmp.path().join("store");
    Store::open(&root).unwrap();
    cowtree_store::discover::remember(&root).unwrap();
    cowtree_store::discover::remember(&root).unwrap();
    let abs = cowtree_store::discover::absolute(&root).unwrap();
    let known = cowtree_store::discover::known_stores();
    assert_eq!(known.iter().filter(|k| **k == abs).count(), 1, "{known:?}");
    assert!(cowtree_store::discover::candidates(&tree).contains(&abs) || known.contains(&abs));
    assert!(cowtree_store::discover::forget(&root).unwrap());
    assert!(!cowtree_store::discover::known_stores().contains(&abs));
}

#[test]
fn the_registry_of_a_store_this_user_cannot_write_is_kept_outside_it() {
    // Windows checks a directory's ACL on open; a read-only attribute on a directory does
    // not stop adding entries, so a store this user cannot write needs an ACL this test
    // cannot set portably under Wine: only the writable side is checked here.
    let (_tmp, root, store) = new_store();
    assert!(!store.is_read_only());
    let outside = cowtree_store::discover::outside_registry(&root).unwrap();
    assert!(outside.starts_with(cowtree_store::discover::state_dir().unwrap()));
    assert!(!outside.exists(), "nothing outside a writable store");
}
