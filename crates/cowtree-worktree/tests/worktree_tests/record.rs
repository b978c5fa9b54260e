//! `snapshot::record`: the one call that decides between an incremental snapshot of a
//! registered worktree and a snapshot that reads every file, on a real XFS mount.

use std::fs;
use std::path::Path;

use cowtree_fs::progress::Progress;
use cowtree_store::checkout::{CheckoutMode, CheckoutOptions};
use cowtree_store::{Store, history, ingest};
use cowtree_testutil::{Fs, pattern, scratch};
use cowtree_worktree::snapshot::{self, Plan, RecordOptions, Recorded, Target};

fn tree(root: &Path) {
    for i in 0..20 {
        let p = root.join(format!("d{}/f{i}", i % 4));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, pattern(300 + i * 51, i as u64)).unwrap();
    }
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    root: std::path::PathBuf,
}

fn env() -> Option<Env> {
    let dir = scratch(Fs::Xfs)?;
    let root = dir.path().to_path_buf();
    let store = Store::open(&root.join("store")).unwrap();
    tree(&root.join("src"));
    Some(Env {
        _dir: dir,
        store,
        root,
    })
}

/// A worktree of `src`'s snapshot at `root/name`.
fn worktree(e: &Env, name: &str) -> std::path::PathBuf {
    let id = ingest::snapshot_dir(&e.store, &e.root.join("src"), None)
        .unwrap()
        .id;
    let dst = e.root.join(name);
    let opts = CheckoutOptions {
        mode: CheckoutMode::Auto,
        strict: false,
        preserve: cowtree_store::Preserve::NONE,
    };
    let made = cowtree_worktree::checkout::checkout(
        &e.store,
        &id,
        &dst,
        opts,
        &|_| {},
        &Progress::default(),
    )
    .unwrap();
    assert!(made.worktree.is_some());
    dst
}

fn record(e: &Env, dir: &Path, opts: RecordOptions<'_>) -> Recorded {
    let r = snapshot::record(
        &e.store,
        Target::Dir(dir.to_path_buf()),
        &opts,
        &Progress::default(),
    )
    .unwrap();
    assert!(r.history_error.is_none(), "{:?}", r.history_error);
    r.recorded
}

#[test]
fn record_of_a_registered_worktree_is_incremental_and_moves_its_base() {
    let Some(e) = env() else { return };
    let wt = worktree(&e, "wt");
    fs::write(wt.join("d0/f0"), b"changed").unwrap();
    let fresh = ingest::snapshot_dir(&e.store, &wt, None).unwrap().id;
    let r = record(&e, &wt, RecordOptions::default());
    let Recorded::Incremental { worktree, report } = &r else {
        panic!("a registered worktree is recorded incrementally: {r:?}");
    };
    assert_eq!(report.id, fresh, "the same id as a fresh snapshot");
    assert!(report.read < 20, "unchanged files are not read: {report:?}");
    assert!(report.base_updated);
    assert_eq!(worktree.base, fresh);
    let reg = cowtree_worktree::registry::open(&e.store, &wt).unwrap();
    assert_eq!(reg.base, fresh, "the record is saved with its new base");
    let noted = history::latest(&e.store).unwrap();
    let (_, line) = noted
        .get(&fresh.to_hex())
        .expect("the snapshot is in the history");
    assert_eq!(
        line.source.as_deref(),
        worktree.path.to_str(),
        "its source is the worktree"
    );
}

#[test]
fn record_keep_base_and_full_leave_the_worktree_base_alone() {
    let Some(e) = env() else { return };
    let wt = worktree(&e, "wt");
    let base = cowtree_worktree::registry::open(&e.store, &wt)
        .unwrap()
        .base;
    fs::write(wt.join("d1/f1"), b"changed").unwrap();
    let kept = record(
        &e,
        &wt,
        RecordOptions {
            keep_base: true,
            ..Default::default()
        },
    );
    assert!(matches!(
        &kept,
        Recorded::Incremental { report, .. } if !report.base_updated
    ));
    let full = record(
        &e,
        &wt,
        RecordOptions {
            full: true,
            name: Some("full"),
            ..Default::default()
        },
    );
    let Recorded::Full { report, copied, .. } = &full else {
        panic!("--full reads every file: {full:?}");
    };
    assert_eq!(report.id, kept.id(), "both ways give the same id");
    assert_eq!(report.files, 20);
    assert_eq!(*copied, None, "XFS clones into a store on the same mount");
    assert_eq!(
        cowtree_store::refs::get(&e.store, "full").unwrap(),
        Some(report.id)
    );
    let reg = cowtree_worktree::registry::open(&e.store, &wt).unwrap();
    assert_eq!(reg.base, base, "neither moved the base");
}

#[test]
fn plan_reads_every_file_of_a_directory_that_is_no_worktree() {
    let Some(e) = env() else { return };
    let src = e.root.join("src");
    let plan = snapshot::plan(
        &e.store,
        Target::Dir(src.clone()),
        &RecordOptions::default(),
    )
    .unwrap();
    assert!(matches!(&plan, Plan::Full(p) if *p == src), "{plan:?}");
    let r = plan.run(&e.store, None, &Progress::default()).unwrap();
    let fresh = ingest::snapshot_dir(&e.store, &src, None).unwrap().id;
    assert!(matches!(&r.recorded, Recorded::Full { report, .. } if report.id == fresh));
}

#[test]
fn plan_refuses_to_read_every_file_of_a_tree_on_another_filesystem_unless_copying_is_allowed() {
    let Some(e) = env() else { return };
    let Some(other) = scratch(Fs::Xfs2) else {
        return;
    };
    let far = other.path().join("far");
    tree(&far);
    let refused = snapshot::plan(
        &e.store,
        Target::Dir(far.clone()),
        &RecordOptions::default(),
    )
    .expect_err("a tree on another filesystem would be copied");
    assert!(
        matches!(&refused, cowtree_store::Error::WouldCopy { tree, .. } if *tree == far),
        "{refused}"
    );
    assert!(refused.is_strict_refusal());
    let allowed = RecordOptions {
        copy_across: true,
        ..Default::default()
    };
    let plan = snapshot::plan(&e.store, Target::Dir(far.clone()), &allowed).unwrap();
    let r = plan.run(&e.store, None, &Progress::default()).unwrap();
    assert!(
        matches!(
            &r.recorded,
            Recorded::Full {
                copied: Some(snapshot::CopyCause::OtherFilesystem),
                ..
            }
        ),
        "{:?}",
        r.recorded
    );
}
