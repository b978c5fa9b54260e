//! The `Linker` session on real mounts: several sources in one pass, lists of files, path
//! mapping, the record, collisions, transactional merges, per-pair fallback memory. Run
//! through scripts/test.sh, which mounts them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cowtree_link::{
    Attempt, CollisionAction, EntryKind, FileEntry, HashAlgo, LinkError, LinkMode, LinkOptions,
    Linker, OnExisting, Progress, Source,
};
use cowtree_testutil::tree::{Kind, assert_same_tree, sample_tree, snapshot};
use cowtree_testutil::{Fs, pattern, scratch};

/// Every filesystem the linker is tested on.
const ALL: [Fs; 4] = [Fs::Xfs, Fs::Btrfs, Fs::NoCow, Fs::Tmpfs];

fn opts(on_existing: OnExisting) -> LinkOptions {
    LinkOptions {
        on_existing,
        ..LinkOptions::default()
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// What a full listing records per entry: kind and content, mode, inode, and the mtime of
/// non-directories (a directory's mtime changes whenever a name is added or removed in it,
/// which a rolled-back merge does with its temporary names).
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    kind: Kind,
    mode: u32,
    ino: u64,
    mtime: Option<(i64, i64)>,
}

fn listing(root: &Path) -> BTreeMap<PathBuf, Listed> {
    snapshot(root)
        .into_iter()
        .map(|(rel, e)| {
            let m = fs::symlink_metadata(root.join(&rel)).unwrap();
            let mtime = (e.kind != Kind::Dir).then_some(e.mtime);
            (
                rel,
                Listed {
                    kind: e.kind,
                    mode: e.mode,
                    ino: m.ino(),
                    mtime,
                },
            )
        })
        .collect()
}

fn assert_same_listing(before: &BTreeMap<PathBuf, Listed>, after: &BTreeMap<PathBuf, Listed>) {
    let b: Vec<_> = before.keys().collect();
    let a: Vec<_> = after.keys().collect();
    assert_eq!(b, a, "the destination's paths changed");
    for (p, e) in before {
        assert_eq!(e, &after[p], "{} changed", p.display());
    }
}

/// Three package-like sources that overlap: directories present in several (merged), files
/// present in several (collisions), a file in one where another has a directory.
fn overlapping_sources(root: &Path) -> Vec<PathBuf> {
    let a = root.join("a");
    let b = root.join("b");
    let c = root.join("c");
    write(&a.join("lib/pkg_a/__init__.py"), b"a\n");
    write(&a.join("lib/shared.txt"), b"from a\n");
    write(&a.join("bin/tool"), &pattern(70_000, 1));
    fs::set_permissions(a.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&a.join("share/doc"), b"a file here, a directory in c\n");
    write(&b.join("lib/pkg_b/mod.py"), &pattern(9_000, 2));
    write(&b.join("lib/shared.txt"), b"from b\n");
    symlink("pkg_b/mod.py", b.join("lib/link")).unwrap();
    fs::create_dir_all(b.join("empty/dir")).unwrap();
    write(&c.join("lib/shared.txt"), b"from c, the last\n");
    write(&c.join("share/doc/README"), b"c's doc\n");
    write(&c.join("lib/pkg_c/data.bin"), &pattern(200_000, 3));
    vec![a, b, c]
}

fn existing_destination(dst: &Path) {
    write(&dst.join("lib/shared.txt"), b"there before\n");
    write(&dst.join("lib/keep.py"), b"kept\n");
    write(&dst.join("bin/other"), b"other tool\n");
}

#[test]
fn several_sources_in_one_pass_equal_sequential_merges() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let srcs = overlapping_sources(dir.path());
        for policy in [OnExisting::Overwrite, OnExisting::Skip] {
            let one = dir.path().join(format!("one-{policy:?}"));
            let seq = dir.path().join(format!("seq-{policy:?}"));
            existing_destination(&one);
            existing_destination(&seq);
            let linker = Linker::new(opts(policy));
            let r = linker.link_trees(&srcs, &one).unwrap();
            for s in &srcs {
                linker.link_tree(s, &seq).unwrap();
            }
            assert_same_tree(&snapshot(&seq), &snapshot(&one), false);
            // The same into a destination that does not exist yet.
            let new_one = dir.path().join(format!("new-one-{policy:?}"));
            let new_seq = dir.path().join(format!("new-seq-{policy:?}"));
            linker.link_trees(&srcs, &new_one).unwrap();
            for s in &srcs {
                Linker::new(opts(policy)).link_tree(s, &new_seq).unwrap();
            }
            assert_same_tree(&snapshot(&new_seq), &snapshot(&new_one), false);

            let shared: Vec<_> = r
                .collisions
                .iter()
                .filter(|c| c.path == Path::new("lib/shared.txt"))
                .collect();
            assert_eq!(shared.len(), 2, "{fsys:?} {policy:?}: {:?}", r.collisions);
            let want = match policy {
                OnExisting::Overwrite => b"from c, the last\n".as_slice(),
                _ => b"there before\n".as_slice(),
            };
            assert_eq!(fs::read(one.join("lib/shared.txt")).unwrap(), want);
            assert_eq!(fs::read(one.join("lib/keep.py")).unwrap(), b"kept\n");
        }
    }
}

#[test]
fn collisions_name_both_sources_and_what_was_done() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let srcs = overlapping_sources(dir.path());
    let r = Linker::new(opts(OnExisting::Overwrite))
        .link_trees(&srcs, &dir.path().join("o"))
        .unwrap();
    let mut got: Vec<(PathBuf, [PathBuf; 2], CollisionAction)> = r
        .collisions
        .iter()
        .map(|c| (c.path.clone(), c.sources.clone(), c.action))
        .collect();
    got.sort();
    let canon = |p: &Path| fs::canonicalize(p).unwrap();
    let (a, b, c) = (canon(&srcs[0]), canon(&srcs[1]), canon(&srcs[2]));
    assert_eq!(
        got,
        vec![
            (
                PathBuf::from("lib/shared.txt"),
                [a.join("lib/shared.txt"), b.join("lib/shared.txt")],
                CollisionAction::Replaced
            ),
            (
                PathBuf::from("lib/shared.txt"),
                [b.join("lib/shared.txt"), c.join("lib/shared.txt")],
                CollisionAction::Replaced
            ),
            (
                PathBuf::from("share/doc"),
                [a.join("share/doc"), c.join("share/doc")],
                CollisionAction::Replaced
            ),
        ]
    );
    assert_eq!(
        fs::read(dir.path().join("o/share/doc/README")).unwrap(),
        b"c's doc\n"
    );

    // Fail: refused before anything is written, naming both sources.
    let out = dir.path().join("f");
    let err = Linker::new(opts(OnExisting::Fail))
        .link_trees(&srcs, &out)
        .unwrap_err();
    match &err {
        LinkError::Collision { path, sources } => {
            assert_eq!(path, Path::new("lib/shared.txt"));
            assert_eq!(sources[0], a.join("lib/shared.txt"));
        }
        e => panic!("expected a collision, got {e}"),
    }
    assert!(!out.exists());
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .as_bytes()
            .windows(8)
            .any(|w| w == b"cowtree-")
    }));
}

/// A content-addressed store: blobs named by their BLAKE3, read-only, no tree.
fn store_of(tree: &Path, store: &Path) -> Vec<FileEntry> {
    let mut entries = Vec::new();
    for (rel, e) in snapshot(tree) {
        if let Kind::File(bytes) = e.kind {
            let hex = blake3::hash(&bytes).to_hex().to_string();
            let blob = store.join(&hex[..2]).join(&hex[2..]);
            if !blob.exists() {
                write(&blob, &bytes);
                fs::set_permissions(&blob, fs::Permissions::from_mode(0o444)).unwrap();
            }
            entries.push(FileEntry {
                src: blob,
                dst: rel,
                mode: Some(e.mode),
            });
        }
    }
    entries
}

#[test]
fn a_list_of_store_blobs_linked_into_a_tree_equals_the_tree() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let tree = dir.path().join("tree");
        sample_tree(&tree);
        // The sample tree has symlinks and empty directories, which a blob list does not
        // carry: compare the files, their modes and the directories that hold them.
        let entries = store_of(&tree, &dir.path().join("store"));
        let out = dir.path().join("out");
        let linker = Linker::new(LinkOptions::default());
        let r = linker.link_files(&entries, &out).unwrap();
        assert_eq!(r.files, entries.len() as u64);
        let want: BTreeMap<_, _> = snapshot(&tree)
            .into_iter()
            .filter(|(_, e)| matches!(e.kind, Kind::File(_)))
            .map(|(p, e)| (p, (e.kind, e.mode)))
            .collect();
        let got: BTreeMap<_, _> = snapshot(&out)
            .into_iter()
            .filter(|(_, e)| matches!(e.kind, Kind::File(_)))
            .map(|(p, e)| (p, (e.kind, e.mode)))
            .collect();
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        );
        assert!(want == got, "{fsys:?}: file contents or modes differ");
        if Fs::COW.contains(&fsys) {
            assert_eq!((r.cloned, r.copied), (r.files, 0), "{fsys:?}: {r:?}");
        }
        // Blobs stay read-only whatever mode the linked files got.
        assert!(
            entries
                .iter()
                .all(|e| fs::metadata(&e.src).unwrap().mode() & 0o777 == 0o444)
        );
    }
}

#[test]
fn list_entries_with_bad_destination_paths_are_refused_before_any_write() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    write(&dir.path().join("blob"), b"x");
    for bad in ["../escape", "/abs", "a/./b", "a//b", ""] {
        let out = dir.path().join("out");
        let err = Linker::new(LinkOptions::default())
            .link_files(
                &[FileEntry {
                    src: dir.path().join("blob"),
                    dst: PathBuf::from(bad),
                    mode: None,
                }],
                &out,
            )
            .unwrap_err();
        assert!(
            matches!(err, LinkError::InvalidDestinationPath { .. }),
            "{bad:?}: {err}"
        );
        assert!(!out.exists());
    }
}

/// The wheel layout: `<name>.data/scripts/*` to `bin/`, `<name>.data/data/*` to the prefix,
/// everything else to site-packages; `*.pyc` dropped.
fn wheel_map(rel: &Path, _kind: EntryKind) -> Option<PathBuf> {
    let s = rel.to_str()?;
    if s.ends_with(".pyc") {
        return None;
    }
    if let Some(rest) = s.strip_prefix("pkg-1.0.data/") {
        if let Some(r) = rest.strip_prefix("scripts") {
            return Some(PathBuf::from(format!("bin{r}")));
        }
        if let Some(r) = rest.strip_prefix("data") {
            return r.strip_prefix('/').map(PathBuf::from);
        }
        return None;
    }
    if s == "pkg-1.0.data" {
        return None;
    }
    Some(Path::new("lib/site-packages").join(rel))
}

#[test]
fn a_mapping_renames_and_drops_entries() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let w = dir.path().join("wheel");
        write(&w.join("pkg/__init__.py"), b"init\n");
        write(&w.join("pkg/__init__.pyc"), b"bytecode\n");
        write(&w.join("pkg-1.0.data/scripts/run"), b"#!python\n");
        fs::set_permissions(
            w.join("pkg-1.0.data/scripts/run"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        write(&w.join("pkg-1.0.data/data/share/man/pkg.1"), b"man\n");
        write(&w.join("pkg-1.0.dist-info/METADATA"), b"Name: pkg\n");
        let venv = dir.path().join("venv");
        fs::create_dir_all(venv.join("lib/site-packages")).unwrap();
        fs::create_dir_all(venv.join("bin")).unwrap();
        let linker = Linker::new(LinkOptions {
            record: true,
            ..opts(OnExisting::Overwrite)
        });
        let r = linker
            .link_sources(&[Source::mapped(&w, &wheel_map)], &venv)
            .unwrap();
        let files: Vec<PathBuf> = snapshot(&venv)
            .into_iter()
            .filter(|(_, e)| matches!(e.kind, Kind::File(_)))
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            files,
            [
                "bin/run",
                "lib/site-packages/pkg/__init__.py",
                "lib/site-packages/pkg-1.0.dist-info/METADATA",
                "share/man/pkg.1",
            ]
            .map(PathBuf::from),
            "{fsys:?}"
        );
        assert_eq!(r.dropped, 1, "{fsys:?}: the .pyc");
        assert_eq!(
            fs::metadata(venv.join("bin/run")).unwrap().mode() & 0o777,
            0o755
        );
        assert!(
            r.record
                .iter()
                .any(|e| e.path == Path::new("share/man/pkg.1"))
        );

        // A mapping that escapes the destination is refused before anything is written.
        let escape = |rel: &Path, _: EntryKind| Some(Path::new("..").join(rel));
        let before = listing(&venv);
        let err = linker
            .link_sources(&[Source::mapped(&w, &escape)], &venv)
            .unwrap_err();
        assert!(
            matches!(err, LinkError::InvalidDestinationPath { .. }),
            "{err}"
        );
        assert_same_listing(&before, &listing(&venv));
    }
}

#[test]
fn the_record_lists_exactly_what_is_on_disk_and_the_hashes_match() {
    use sha2::Digest as _;
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let srcs = overlapping_sources(dir.path());
        for (algo, mode) in [
            (HashAlgo::Sha256, LinkMode::Auto),
            (HashAlgo::Blake3, LinkMode::Copy),
            (HashAlgo::Sha256, LinkMode::Hardlink),
        ] {
            let out = dir.path().join(format!("out-{algo:?}-{mode:?}"));
            let r = Linker::new(LinkOptions {
                mode,
                hash: Some(algo),
                ..opts(OnExisting::Overwrite)
            })
            .link_trees(&srcs, &out)
            .unwrap();
            let on_disk = snapshot(&out);
            let recorded: Vec<&Path> = r.record.iter().map(|e| e.path.as_path()).collect();
            let listed: Vec<&Path> = on_disk
                .keys()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.as_path())
                .collect();
            assert_eq!(recorded, listed, "{fsys:?} {mode:?}");
            for e in &r.record {
                match &on_disk[&e.path].kind {
                    Kind::File(bytes) => {
                        assert_eq!(e.kind, EntryKind::File);
                        assert_eq!(e.size, Some(bytes.len() as u64), "{}", e.path.display());
                        let want = match algo {
                            HashAlgo::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
                            HashAlgo::Blake3 => blake3::hash(bytes).as_bytes().to_vec(),
                        };
                        let h = e.hash.as_ref().expect("files carry a hash");
                        assert_eq!((h.algo, &h.bytes), (algo, &want), "{}", e.path.display());
                        assert!(e.method.is_some());
                        // `from` names the source file, in the source the index names.
                        let from =
                            srcs[e.source].join(e.from.as_ref().expect("files say where from"));
                        assert_eq!(&fs::read(&from).unwrap(), bytes, "{}", from.display());
                    }
                    Kind::Symlink(t) => {
                        assert_eq!((e.kind, e.size), (EntryKind::Symlink, Some(t.len() as u64)));
                    }
                    Kind::Dir => assert_eq!(e.kind, EntryKind::Dir),
                    Kind::Other => panic!("special file in the output"),
                }
            }
        }
        // In a merge, only what was written is listed: kept entries are not.
        let dst = dir.path().join("merge");
        existing_destination(&dst);
        let r = Linker::new(LinkOptions {
            record: true,
            ..opts(OnExisting::Overwrite)
        })
        .link_trees(&srcs, &dst)
        .unwrap();
        let paths: Vec<&Path> = r.record.iter().map(|e| e.path.as_path()).collect();
        assert!(paths.contains(&Path::new("lib/shared.txt")));
        assert!(!paths.contains(&Path::new("lib/keep.py")));
        assert!(
            !paths.contains(&Path::new("lib")),
            "an existing directory is merged into"
        );
    }
}

/// Temporary or journal names left in `root`.
fn leftovers(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().windows(8).any(|w| w == b"cowtree-"))
        })
        .collect()
}

#[test]
fn strict_refusal_midway_through_a_merge_leaves_dst_as_it_was() {
    // Source a clones (same filesystem as DST), source b cannot (another filesystem): with
    // strict the merge stops after some of a's entries were built.
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let Some(other) = scratch(Fs::Xfs2) else {
        return;
    };
    let a = dir.path().join("a");
    for i in 0..300 {
        write(
            &a.join(format!("pkg{}/m{i}.py", i % 7)),
            &pattern(100 + i, i as u64),
        );
    }
    write(&a.join("lib/shared.txt"), b"a's\n");
    let b = other.path().join("b");
    write(&b.join("lib/shared.txt"), b"b's\n");
    write(&b.join("zzz/late.py"), b"late\n");
    let dst = dir.path().join("dst");
    existing_destination(&dst);
    let before = listing(&dst);
    for jobs in [1, 4] {
        let err = Linker::new(LinkOptions {
            strict: true,
            jobs,
            ..opts(OnExisting::Overwrite)
        })
        .link_trees(&[&a, &b], &dst)
        .unwrap_err();
        assert!(err.is_strict_refusal(), "{err}");
        assert!(err.destination_unchanged());
        assert_same_listing(&before, &listing(&dst));
        assert_eq!(leftovers(&dst), Vec::<PathBuf>::new());
    }
}

#[test]
fn enospc_during_a_merge_leaves_dst_as_it_was() {
    let _small = cowtree_testutil::small_alone();
    let Some(small) = scratch(Fs::Small) else {
        return;
    };
    let Some(big) = scratch(Fs::Xfs) else { return };
    let src = big.path().join("src");
    // 96 MiB copied (another filesystem, so no clone) onto a 64 MiB filesystem.
    for i in 0..12 {
        write(&src.join(format!("d{}/f{i}", i % 3)), &pattern(8 << 20, i));
    }
    write(&src.join("lib/shared.txt"), b"new\n");
    let dst = small.path().join("dst");
    existing_destination(&dst);
    let before = listing(&dst);
    let err = Linker::new(opts(OnExisting::Overwrite))
        .link_tree(&src, &dst)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_enospc()), "{err}");
    assert!(err.destination_unchanged());
    assert_same_listing(&before, &listing(&dst));
    assert_eq!(leftovers(&dst), Vec::<PathBuf>::new());
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

/// Removes the source's directories the first time progress is reported.
struct Vanish {
    src: PathBuf,
    done: AtomicBool,
}

impl Progress for Vanish {
    fn advanced(&self, _entries: u64, _bytes: u64) {
        if !self.done.swap(true, Ordering::SeqCst) {
            for e in fs::read_dir(&self.src).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    fs::remove_dir_all(&p).unwrap();
                }
            }
        }
    }
}

#[test]
fn a_source_vanishing_mid_merge_leaves_dst_as_it_was() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        for d in 0..40 {
            for f in 0..5 {
                write(
                    &src.join(format!("d{d:02}/sub/f{f}")),
                    &pattern(5000, d * 10 + f),
                );
            }
        }
        write(&src.join("lib/shared.txt"), b"new\n");
        let dst = dir.path().join("dst");
        existing_destination(&dst);
        let before = listing(&dst);
        let err = Linker::new(LinkOptions {
            jobs: 1,
            progress: Some(Arc::new(Vanish {
                src: src.clone(),
                done: AtomicBool::new(false),
            })),
            ..opts(OnExisting::Overwrite)
        })
        .link_tree(&src, &dst)
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(2), "{fsys:?}: {err}");
        assert!(err.destination_unchanged());
        assert_same_listing(&before, &listing(&dst));
        assert_eq!(leftovers(&dst), Vec::<PathBuf>::new(), "{fsys:?}");
    }
}

#[test]
fn a_cross_device_pair_falls_back_once_for_the_whole_session() {
    let Some(src_fs) = scratch(Fs::Xfs) else {
        return;
    };
    let Some(dst_fs) = scratch(Fs::Tmpfs) else {
        return;
    };
    let mut srcs = Vec::new();
    for p in 0..5 {
        let s = src_fs.path().join(format!("pkg{p}"));
        for f in 0..20 {
            write(&s.join(format!("p{p}/f{f}")), &pattern(3000, f));
        }
        srcs.push(s);
    }
    let linker = Linker::new(opts(OnExisting::Overwrite));
    let dst = dst_fs.path().join("env");
    fs::create_dir(&dst).unwrap();
    let mut total = None;
    for s in &srcs {
        let r = linker.link_tree(s, &dst).unwrap();
        assert_eq!((r.cloned, r.copied), (0, 20));
        // Every copied file is reported under the pair's one cause.
        assert_eq!(r.fallbacks.len(), 1, "{:?}", r.fallbacks);
        assert_eq!(r.fallbacks[0].reason, "cross-device");
        assert_eq!(r.fallbacks[0].count, 20);
        match &mut total {
            None => total = Some(r),
            Some(t) => t.absorb(r),
        }
    }
    let t = total.unwrap();
    assert_eq!(t.fallbacks.len(), 1);
    assert_eq!(t.fallbacks[0].count, 100);
    // One pass over all of them: the same, in one report.
    let one = dst_fs.path().join("env2");
    let r = linker.link_trees(&srcs, &one).unwrap();
    assert_eq!(r.fallbacks.len(), 1);
    assert_eq!((r.copied, r.fallbacks[0].count), (100, 100));
}

#[test]
fn overwrite_in_a_merge_replaces_files_by_exchange_and_keeps_untouched_inodes() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let srcs = overlapping_sources(dir.path());
        let dst = dir.path().join("dst");
        existing_destination(&dst);
        let keep_ino = fs::metadata(dst.join("lib/keep.py")).unwrap().ino();
        let lib_ino = fs::metadata(dst.join("lib")).unwrap().ino();
        let r = Linker::new(opts(OnExisting::Overwrite))
            .link_trees(&srcs, &dst)
            .unwrap();
        assert_eq!(r.replaced, 1, "{fsys:?}: lib/shared.txt");
        assert_eq!(
            fs::metadata(dst.join("lib/keep.py")).unwrap().ino(),
            keep_ino
        );
        assert_eq!(fs::metadata(dst.join("lib")).unwrap().ino(), lib_ino);
        assert_eq!(leftovers(&dst), Vec::<PathBuf>::new(), "{fsys:?}");
    }
}

/// Set in the environment of the child process of
/// `a_synced_merge_flushes_its_journal_before_the_first_rename_and_syncs_after_the_last`:
/// `SYNC|DST|SRC...`, the merge the child runs under strace.
const SYNC_CHILD: &str = "COWTREE_LINK_TEST_SYNC_CHILD";

#[test]
fn a_synced_merge_flushes_its_journal_before_the_first_rename_and_syncs_after_the_last() {
    if let Ok(job) = std::env::var(SYNC_CHILD) {
        // The child: one merge, traced by the parent.
        let mut parts = job.split('|');
        let sync = parts.next() == Some("1");
        let dst = PathBuf::from(parts.next().unwrap());
        let srcs: Vec<PathBuf> = parts.map(PathBuf::from).collect();
        let o = LinkOptions {
            sync,
            jobs: 1,
            ..opts(OnExisting::Overwrite)
        };
        Linker::new(o).link_trees(&srcs, &dst).unwrap();
        return;
    }
    let Some(dir) = scratch(Fs::Xfs) else { return };
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        panic!("strace is needed (scripts/mounts.sh installs it)");
    }
    let srcs = overlapping_sources(dir.path());
    for sync in [true, false] {
        let dst = dir.path().join(format!("dst-{sync}"));
        existing_destination(&dst);
        let log = dir.path().join(format!("strace-{sync}.log"));
        let mut job = format!("{}|{}", u8::from(sync), dst.display());
        for s in &srcs {
            job.push_str(&format!("|{}", s.display()));
        }
        let out = std::process::Command::new("strace")
            .args(["-f", "-e", "trace=write,fsync,fdatasync,syncfs,renameat2", "-o"])
            .arg(&log)
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                // The test's name in this binary: its module (this file) and the function.
                "linker::a_synced_merge_flushes_its_journal_before_the_first_rename_and_syncs_after_the_last",
                "--test-threads",
                "1",
            ])
            .env(SYNC_CHILD, job)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The merge happened, and completely.
        assert_eq!(
            fs::read(dst.join("lib/shared.txt")).unwrap(),
            b"from c, the last\n"
        );
        assert_eq!(leftovers(&dst), Vec::<PathBuf>::new());
        let log = fs::read_to_string(&log).unwrap();
        let calls: Vec<&str> = log
            .lines()
            .map(|l| {
                l.split_once(' ')
                    .map_or(l, |(_pid, call)| call.trim_start())
            })
            .collect();
        let go = calls
            .iter()
            .position(|c| c.starts_with("write(") && c.contains(", \"go\\n\""))
            .unwrap_or_else(|| panic!("no journal `go` line written:\n{log}"));
        let journal_fd = calls[go]["write(".len()..].split(',').next().unwrap();
        let renames: Vec<usize> = (0..calls.len())
            .filter(|&i| calls[i].starts_with("renameat2("))
            .collect();
        assert!(renames.len() >= 2, "publications by rename:\n{log}");
        assert!(
            renames[0] > go,
            "a rename before the journal's `go`:\n{log}"
        );
        let flushed = calls[go..renames[0]]
            .iter()
            .any(|c| c.starts_with(&format!("fdatasync({journal_fd})")));
        let synced_before = calls[..go].iter().any(|c| c.starts_with("syncfs("));
        let synced_after = calls[*renames.last().unwrap()..]
            .iter()
            .any(|c| c.starts_with("syncfs("));
        assert_eq!(
            (flushed, synced_before, synced_after),
            (sync, sync, sync),
            "sync {sync}: journal flushed before the first rename, filesystem synced before \
             publishing and after:\n{log}"
        );
    }
}

#[test]
fn without_hardlink_sizes_hardlinked_files_have_no_size_and_the_rest_theirs() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let srcs = overlapping_sources(dir.path());
        let mut records = Vec::new();
        for sizes in [true, false] {
            let out = dir.path().join(format!("out-{sizes}"));
            let r = Linker::new(LinkOptions {
                mode: LinkMode::Hardlink,
                record: true,
                hardlink_sizes: sizes,
                ..opts(OnExisting::Overwrite)
            })
            .link_trees(&srcs, &out)
            .unwrap();
            assert!(r.hardlinked > 0, "{fsys:?}");
            // The bytes counted: every file's with sizes, else only those not hardlinked.
            let file_bytes = |hardlinked: bool| -> u64 {
                r.record
                    .iter()
                    .filter(|e| {
                        e.kind == EntryKind::File
                            && (e.method == Some(Attempt::Hardlink)) == hardlinked
                    })
                    .map(|e| fs::symlink_metadata(out.join(&e.path)).unwrap().len())
                    .sum()
            };
            let want = file_bytes(false) + if sizes { file_bytes(true) } else { 0 };
            assert!(file_bytes(true) > 0, "{fsys:?}");
            assert_eq!(r.bytes, want, "{fsys:?} sizes {sizes}");
            assert_eq!(
                r.bytes_cloned + r.bytes_copied,
                file_bytes(false),
                "{fsys:?}"
            );
            for e in &r.record {
                let on_disk = fs::symlink_metadata(out.join(&e.path)).unwrap();
                let want = match e.kind {
                    EntryKind::Dir => Some(0),
                    EntryKind::File if !sizes && e.method == Some(Attempt::Hardlink) => None,
                    // Files (hardlinked with sizes asked for, or copied) and symlinks: what
                    // lstat says now.
                    _ => Some(on_disk.len()),
                };
                assert_eq!(e.size, want, "{fsys:?} sizes {sizes}: {}", e.path.display());
            }
            records.push((
                snapshot(&out),
                r.record
                    .iter()
                    .map(|e| (e.path.clone(), e.kind, e.method, e.source, e.from.clone()))
                    .collect::<Vec<_>>(),
            ));
        }
        // Only the sizes differ: the same entries, linked the same way.
        assert_eq!(records[0], records[1], "{fsys:?}");
    }
}

/// A mapping that, the first time it is called, replaces a directory of another source with
/// a symlink to `outside`: it may run while the later sources are still being read (or after,
/// if they were all read first; both are checked below).
#[test]
fn a_source_directory_swapped_for_a_symlink_during_a_multi_source_link_is_never_followed() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let first = dir.path().join("first");
        write(&first.join("a.txt"), b"a\n");
        let outside = dir.path().join("outside");
        write(&outside.join("secret"), b"not to be linked\n");
        // Many later sources, so that some are still unread when the first is planned.
        let mut srcs = vec![first.clone()];
        for i in 0..40 {
            let s = dir.path().join(format!("s{i:02}"));
            for d in 0..5 {
                write(&s.join(format!("pkg{i}/d{d}/f")), &pattern(100, i * 10 + d));
            }
            srcs.push(s);
        }
        let swapped = AtomicBool::new(false);
        let last = srcs.last().unwrap().clone();
        let map = |rel: &Path, _: EntryKind| {
            if !swapped.swap(true, Ordering::SeqCst) {
                // One atomic step (RENAME_EXCHANGE): a scan finds the directory or the symlink
                // at `d0`, never neither (a rename then a symlink left an instant with no
                // `d0`, which a loaded CI run once hit: Ok, and no `d0` in DST).
                let d = last.join("pkg39/d0");
                let link = last.join("pkg39/d0.link");
                symlink(&outside, &link).unwrap();
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &link,
                    rustix::fs::CWD,
                    &d,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                fs::rename(&link, last.join("moved")).unwrap();
            }
            Some(rel.to_path_buf())
        };
        let sources: Vec<Source<'_>> = srcs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 {
                    Source::mapped(s, &map)
                } else {
                    Source::new(s)
                }
            })
            .collect();
        let dst = dir.path().join("dst");
        let result = Linker::new(LinkOptions {
            jobs: 2,
            ..opts(OnExisting::Overwrite)
        })
        .link_sources(&sources, &dst);
        assert!(swapped.load(Ordering::SeqCst));
        match result {
            // Read before the swap: the symlink is refused when its files are linked, and
            // nothing is created.
            Err(e) => {
                assert!(!dst.exists(), "{fsys:?}: {e}");
            }
            // Read after it: the symlink is a symlink of the source, recreated as one.
            Ok(_) => {
                let d = dst.join("pkg39/d0");
                assert!(
                    fs::symlink_metadata(&d).unwrap().file_type().is_symlink(),
                    "{fsys:?}"
                );
            }
        }
        // Either way nothing was linked from behind the symlink.
        let linked_secret = snapshot(dir.path())
            .keys()
            .filter(|p| p.ends_with("secret"))
            .count();
        assert_eq!(linked_secret, 1, "{fsys:?}: only the original secret");
    }
}

/// Swaps `dst/<name>` (a directory of the destination being merged into) for a symlink to
/// `outside` when the first work item is done.
struct SwapDst {
    dst: PathBuf,
    outside: PathBuf,
    done: AtomicBool,
}

impl Progress for SwapDst {
    fn advanced(&self, _entries: u64, _bytes: u64) {
        if !self.done.swap(true, Ordering::SeqCst) {
            for i in 0..20 {
                let d = self.dst.join(format!("d{i:02}"));
                let _ = fs::rename(&d, self.dst.join(format!("moved{i:02}")));
                let _ = symlink(&self.outside, &d);
            }
        }
    }
}

#[test]
fn destination_directories_swapped_for_symlinks_during_a_merge_are_never_written_through() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        for i in 0..20 {
            for f in 0..30 {
                write(
                    &src.join(format!("d{i:02}/sub/f{f}")),
                    &pattern(100, i * 100 + f),
                );
            }
            fs::create_dir_all(dst.join(format!("d{i:02}/sub"))).unwrap();
        }
        let outside = dir.path().join("outside");
        fs::create_dir_all(outside.join("sub")).unwrap();
        let result = Linker::new(LinkOptions {
            jobs: 2,
            progress: Some(Arc::new(SwapDst {
                dst: dst.clone(),
                outside: outside.clone(),
                done: AtomicBool::new(false),
            })),
            ..opts(OnExisting::Overwrite)
        })
        .link_tree(&src, &dst);
        // The merge failed (each directory became a symlink after the root's item found it
        // and before its own item opened it from the root) and was undone.
        let Err(e) = &result else {
            panic!("{fsys:?}: a merge through swapped directories succeeded");
        };
        assert!(e.destination_unchanged(), "{fsys:?}: {e}");
        // Nothing went through them.
        let behind: Vec<PathBuf> = snapshot(&outside).into_keys().collect();
        assert_eq!(
            behind,
            [PathBuf::new(), PathBuf::from("sub")],
            "{fsys:?}: written through a symlink"
        );
        // Nothing was made in the directories moved away either, and no temporary entry was
        // left anywhere.
        let temps: Vec<PathBuf> = snapshot(dir.path())
            .into_keys()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.as_bytes().windows(13).any(|w| w == b".cowtree-tmp."))
            })
            .collect();
        assert!(temps.is_empty(), "{fsys:?}: {result:?}: left {temps:?}");
        for i in 0..20 {
            let moved = dst.join(format!("moved{i:02}/sub"));
            if moved.exists() {
                assert_eq!(
                    fs::read_dir(&moved).unwrap().count(),
                    0,
                    "{fsys:?}: {result:?}: written in {moved:?}"
                );
            }
        }
    }
}

/// Swaps each source directory `src/dNN` for a symlink to `outside` (keeping it as
/// `src/movedNN`) when the first work item is done: by then the item of `src` has made the
/// destination directories and may hold their source directories open.
struct SwapSrc {
    src: PathBuf,
    outside: PathBuf,
    dirs: u64,
    done: AtomicBool,
}

impl Progress for SwapSrc {
    fn advanced(&self, _entries: u64, _bytes: u64) {
        if !self.done.swap(true, Ordering::SeqCst) {
            for i in 0..self.dirs {
                let d = self.src.join(format!("d{i:02}"));
                fs::rename(&d, self.src.join(format!("moved{i:02}"))).unwrap();
                symlink(&self.outside, &d).unwrap();
            }
        }
    }
}

#[test]
fn a_source_directory_swapped_for_a_symlink_mid_link_is_never_followed_held_or_not() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        // A file beside the directories: the root's item opens `src` for it, and then opens
        // each directory's source by name in that handle.
        write(&src.join("a.txt"), b"a\n");
        let dirs = 3;
        for i in 0..dirs {
            for f in 0..10 {
                write(
                    &src.join(format!("d{i:02}/f{f}")),
                    &pattern(100, i * 100 + f),
                );
            }
        }
        let outside = dir.path().join("outside");
        for f in 0..10 {
            write(&outside.join(format!("f{f}")), b"secret\n");
        }
        let dst = dir.path().join("dst");
        let result = Linker::new(LinkOptions {
            jobs: 2,
            progress: Some(Arc::new(SwapSrc {
                src: src.clone(),
                outside: outside.clone(),
                dirs,
                done: AtomicBool::new(false),
            })),
            ..opts(OnExisting::Fail)
        })
        .link_tree(&src, &dst);
        match &result {
            // A directory whose source was not held open: opened from the source root, the
            // symlink is refused, and nothing is left.
            Err(e) => {
                assert!(e.destination_unchanged(), "{fsys:?}: {e}");
                assert!(!dst.exists(), "{fsys:?}: {e}");
            }
            // Every directory's source was held: its files come from the directory itself,
            // now `movedNN`, never from behind the symlink.
            Ok(_) => {
                for i in 0..dirs {
                    let d = dst.join(format!("d{i:02}"));
                    assert!(
                        fs::symlink_metadata(&d).unwrap().is_dir(),
                        "{fsys:?}: {d:?}"
                    );
                    for f in 0..10 {
                        assert_eq!(
                            fs::read(d.join(format!("f{f}"))).unwrap(),
                            pattern(100, i * 100 + f),
                            "{fsys:?}: {d:?}/f{f}"
                        );
                    }
                }
            }
        }
        // Either way nothing behind the symlink was read into the destination.
        if dst.exists() {
            let secrets = snapshot(&dst)
                .keys()
                .filter(|p| fs::read(dst.join(p)).is_ok_and(|b| b == b"secret\n"))
                .count();
            assert_eq!(secrets, 0, "{fsys:?}: {result:?}");
        }
    }
}

/// Once a directory whose name contains `marker` appears in `dir` (one the run made there: a
/// merge's temporary directory, a new destination's staging directory), moves it to `moved`,
/// outside the destination, and puts a symlink to `outside` at its name, as a process that
/// can write to `dir` could while the run fills the directory through its open handle.
struct SwapMade {
    dir: PathBuf,
    marker: &'static [u8],
    moved: PathBuf,
    outside: PathBuf,
    done: AtomicBool,
}

impl Progress for SwapMade {
    fn advanced(&self, _entries: u64, _bytes: u64) {
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        for e in fs::read_dir(&self.dir).unwrap() {
            let e = e.unwrap();
            let ours = e
                .file_name()
                .as_bytes()
                .windows(self.marker.len())
                .any(|w| w == self.marker);
            if ours && e.file_type().unwrap().is_dir() {
                fs::rename(e.path(), &self.moved).unwrap();
                symlink(&self.outside, e.path()).unwrap();
                self.done.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

#[test]
fn a_new_directory_of_a_merge_moved_away_and_replaced_by_a_symlink_is_not_published() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        // `lib/shared.txt` replaces an existing file and is published before `lib/zzz`, the
        // new directory (publication goes by name), so it is put back when `zzz` fails.
        write(&src.join("lib/shared.txt"), b"new\n");
        for f in 0..10 {
            write(&src.join(format!("lib/zzz/f{f}")), &pattern(100, f));
        }
        let dst = dir.path().join("dst");
        existing_destination(&dst);
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        let moved = dir.path().join("moved");
        let before = listing(&dst);
        let swap = Arc::new(SwapMade {
            dir: dst.join("lib"),
            marker: b".cowtree-tmp.",
            moved: moved.clone(),
            outside: outside.clone(),
            done: AtomicBool::new(false),
        });
        let err = Linker::new(LinkOptions {
            jobs: 1,
            progress: Some(swap.clone()),
            ..opts(OnExisting::Overwrite)
        })
        .link_tree(&src, &dst)
        .unwrap_err();
        assert!(
            swap.done.load(Ordering::SeqCst),
            "{fsys:?}: nothing swapped"
        );
        assert!(err.destination_unchanged(), "{fsys:?}: {err}");
        assert!(
            err.to_string().contains("moved or replaced"),
            "{fsys:?}: {err}"
        );
        // DST is as before (the symlink put at the temporary name is removed with it), nothing
        // was published through the symlink, and the directory stays where it was moved.
        assert_same_listing(&before, &listing(&dst));
        assert_eq!(leftovers(&dst), Vec::<PathBuf>::new(), "{fsys:?}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{fsys:?}");
        assert!(fs::symlink_metadata(&moved).unwrap().is_dir(), "{fsys:?}");
    }
}

#[test]
fn a_new_destination_whose_staging_directory_is_moved_away_is_not_put_in_place() {
    for fsys in ALL {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        write(&src.join("a.txt"), b"a\n");
        for f in 0..10 {
            write(&src.join(format!("d/f{f}")), &pattern(100, f));
        }
        let parent = dir.path().join("parent");
        fs::create_dir_all(&parent).unwrap();
        let dst = parent.join("dst");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        let moved = dir.path().join("moved");
        let swap = Arc::new(SwapMade {
            dir: parent.clone(),
            marker: b".cowtree-staging.",
            moved: moved.clone(),
            outside: outside.clone(),
            done: AtomicBool::new(false),
        });
        let err = Linker::new(LinkOptions {
            jobs: 1,
            progress: Some(swap.clone()),
            ..opts(OnExisting::Fail)
        })
        .link_tree(&src, &dst)
        .unwrap_err();
        assert!(
            swap.done.load(Ordering::SeqCst),
            "{fsys:?}: nothing swapped"
        );
        assert!(
            err.to_string().contains("moved or replaced"),
            "{fsys:?}: {err}"
        );
        // Not the symlink (nor anything else) at DST, nothing left at the staging name,
        // nothing made through the symlink.
        assert!(fs::symlink_metadata(&dst).is_err(), "{fsys:?}: {err}");
        assert_eq!(fs::read_dir(&parent).unwrap().count(), 0, "{fsys:?}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{fsys:?}");
        assert!(fs::symlink_metadata(&moved).unwrap().is_dir(), "{fsys:?}");
    }
}

/// Moves `dst/big`, an existing directory a merge fills, out of the destination (to `moved`)
/// and puts a symlink to `outside` at its name: once one of its work items has made entries
/// in it (`after: None`), or once `after` entries are done (every item: before publication).
struct SwapExisting {
    dst: PathBuf,
    moved: PathBuf,
    outside: PathBuf,
    after: Option<u64>,
    seen: AtomicU64,
    done: AtomicBool,
}

impl Progress for SwapExisting {
    fn advanced(&self, entries: u64, _bytes: u64) {
        let seen = self.seen.fetch_add(entries, Ordering::SeqCst) + entries;
        if self.done.load(Ordering::SeqCst) {
            return;
        }
        let due = match self.after {
            Some(n) => seen >= n,
            None => !leftovers(&self.dst.join("big")).is_empty(),
        };
        if due && !self.done.swap(true, Ordering::SeqCst) {
            let big = self.dst.join("big");
            fs::rename(&big, &self.moved).unwrap();
            symlink(&self.outside, &big).unwrap();
        }
    }
}

/// A listing without `big` and what is beneath it, nor merge journals.
fn listing_but_big(root: &Path) -> BTreeMap<PathBuf, Listed> {
    let mut l = listing(root);
    l.retain(|p, _| {
        !p.starts_with("big")
            && !p
                .file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b".cowtree-txn."))
    });
    l
}

#[test]
fn an_existing_directory_swapped_between_its_work_items_fails_the_merge_and_the_rest_is_undone() {
    let cases = [(false, false), (true, false), (false, true), (true, true)];
    for fsys in ALL {
        for (after_all, move_back) in cases {
            let Some(dir) = scratch(fsys) else { continue };
            let src = dir.path().join("src");
            let dst = dir.path().join("dst");
            // `a` is published before `big` fails, `c` after: both are put back as they were.
            write(&src.join("a/x.txt"), b"new x\n");
            write(&src.join("a/new.txt"), b"new\n");
            write(&dst.join("a/x.txt"), b"old x\n");
            // More than one work item's worth of entries (256 each).
            for f in 0..600 {
                write(&src.join(format!("big/f{f:03}")), &pattern(100, f));
            }
            write(&dst.join("big/keep"), b"kept\n");
            write(&src.join("c/y.txt"), b"new y\n");
            write(&src.join("c/new/f"), b"new f\n");
            write(&dst.join("c/y.txt"), b"old y\n");
            let outside = dir.path().join("outside");
            fs::create_dir_all(&outside).unwrap();
            let moved = dir.path().join("moved");
            let before = listing_but_big(&dst);
            let before_all = listing(&dst);
            let total = snapshot(&src).len() as u64 - 1;
            let swap = Arc::new(SwapExisting {
                dst: dst.clone(),
                moved: moved.clone(),
                outside: outside.clone(),
                after: after_all.then_some(total),
                seen: AtomicU64::new(0),
                done: AtomicBool::new(false),
            });
            let err = Linker::new(LinkOptions {
                jobs: 1,
                progress: Some(swap.clone()),
                ..opts(OnExisting::Overwrite)
            })
            .link_tree(&src, &dst)
            .unwrap_err();
            let case =
                format!("{fsys:?}, swapped after all items: {after_all}, moved back: {move_back}");
            assert!(swap.done.load(Ordering::SeqCst), "{case}: nothing swapped");
            // The temporary entries made in `big` before the swap cannot be reached by its
            // path any more, and the error says so.
            assert!(!err.destination_unchanged(), "{case}: {err}");
            assert!(
                err.to_string().contains("undoing the merge"),
                "{case}: {err}"
            );
            let left = leftovers(&moved);
            assert!(
                if after_all {
                    left.len() == 600
                } else {
                    (1..600).contains(&left.len())
                },
                "{case}: {} temporary entries in the moved directory",
                left.len()
            );
            // Every other directory is exactly as before, and nothing went through the symlink.
            assert_same_listing(&before, &listing_but_big(&dst));
            assert!(
                fs::symlink_metadata(dst.join("big"))
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{case}"
            );
            assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{case}");
            if move_back {
                // The directory is back before the next run: that run undoes the failed
                // merge there too (once publishing had started, the journal says `undo`),
                // and never completes it.
                fs::remove_file(dst.join("big")).unwrap();
                fs::rename(&moved, dst.join("big")).unwrap();
            }
            // The journal stays, and the next run finishes it with what it can reach.
            assert_eq!(
                Linker::new(LinkOptions::default()).recover(&dst).unwrap(),
                1
            );
            if move_back {
                assert_same_listing(&before_all, &listing(&dst));
            } else {
                assert_same_listing(&before, &listing_but_big(&dst));
            }
            assert_eq!(leftovers(&dst), Vec::<PathBuf>::new(), "{case}");
        }
    }
}
