//! The tree builder ([`cowtree_git::build`]) against git's own checkout, in the configurations
//! Git for Windows users have: `core.autocrlf=true` with `core.symlinks=false` (its
//! installer's default), `core.autocrlf=input`, `core.eol=crlf`, and neither. Each case's
//! repository and reference worktree are made by the real git binary
//! (`tests/windows_fixture.sh`); the builder then makes the worktree's files from the same
//! repository, once all from objects and once with the repository's own worktree as SRC (its
//! files taken after their copy hashes to the blob), and every file must be git's, byte for
//! byte (a symlink with `core.symlinks=false`: a file holding its target, as git writes it).
//!
//! On Windows (a .exe under Wine, run by scripts/windows.sh) the fixture is made on the Linux
//! side beforehand, its directory given in `COWTREE_GIT_WINDOWS_FIXTURE` (a Linux path, read
//! through Wine's `Z:` drive); the repository is opened by gitoxide at its Windows path and
//! the tree is built into a Windows directory through cowtree-fs's NT handles. On Linux the
//! test makes the fixture itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_git::build::{self, BuildInput, Fallback, Made, Proof};
use cowtree_git::{AddOptions, BranchChoice, Method};

/// A path as git writes it into `.git` and `gitdir`, from a path `canonicalize` gave: its
/// bytes on unix; on Windows as Git for Windows writes it (no `\\?\` prefix, forward
/// slashes: `C:/Users/...`).
fn git_text(p: &Path) -> String {
    let s = p.to_str().expect("a UTF-8 path").to_owned();
    if cfg!(windows) {
        s.strip_prefix(r"\\?\").unwrap_or(&s).replace('\\', "/")
    } else {
        s
    }
}

/// The fixture's directory: made here on unix; on Windows the one scripts/windows.sh made.
fn fixture() -> (PathBuf, Option<tempfile::TempDir>) {
    if cfg!(windows) {
        let unix = std::env::var("COWTREE_GIT_WINDOWS_FIXTURE").expect(
            "COWTREE_GIT_WINDOWS_FIXTURE: the directory tests/windows_fixture.sh made on the \
             Linux side (scripts/windows.sh makes it and sets this)",
        );
        // Wine's Z: drive is the Linux root.
        (
            PathBuf::from(format!("Z:{}", unix.replace('/', "\\"))),
            None,
        )
    } else {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/windows_fixture.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(tmp.path())
            .output()
            .expect("run windows_fixture.sh");
        assert!(out.status.success(), "windows_fixture.sh: {out:?}");
        (tmp.path().to_owned(), Some(tmp))
    }
}

/// Every entry under `root` but `.git`: its path (with `/`) and its bytes (`None` for a
/// directory). A symlink fails the test: with `core.symlinks=false` there must be none.
fn listing(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ".git" {
                continue;
            }
            let ft = std::fs::symlink_metadata(&p).expect("lstat").file_type();
            assert!(!ft.is_symlink(), "{rel} is a symlink");
            if ft.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What one build made, counted.
#[derive(Debug, Default)]
struct Counts {
    from_objects: usize,
    taken_on_stat: usize,
    taken_after_hash: usize,
    other: usize,
}

/// Builds `repo_path`'s HEAD tree into a new directory under `out`, with `repo_path`'s own
/// worktree as SRC when `with_src`, and returns that directory and the counts.
fn build_tree(repo_path: &Path, out: &Path, name: &str, with_src: bool) -> (PathBuf, Counts) {
    let repo = gix::open(repo_path).expect("open the repository");
    let tree_id = repo
        .head_commit()
        .expect("HEAD")
        .tree_id()
        .expect("tree")
        .detach();
    let target = repo.index_from_tree(&tree_id).expect("index from tree");
    let src_index = if with_src {
        repo.open_index().expect("SRC's index")
    } else {
        gix::index::File::from_state(
            gix::index::State::new(repo.object_hash()),
            repo.index_path(),
        )
    };
    let stamp = src_index.timestamp();
    let staging_path = out.join(name);
    std::fs::create_dir(&staging_path).expect("mkdir staging");
    let staging = Dir::open(&staging_path).expect("open staging");
    let filters = cowtree_git::filters::Setup::new(&repo, &target, repo.git_dir(), &staging_path)
        .expect("filters");
    let sizes =
        cowtree_git::sizes::Sizes::load(repo.common_dir(), Some(tree_id), target.entries().len());
    let sync = repo.clone().into_sync();
    let input = BuildInput {
        repo: &sync,
        src_root: with_src.then_some(repo_path),
        src_index: &src_index,
        evidence: cowtree_git::trust::Evidence {
            index_mtime: (stamp.unix_seconds(), stamp.nanoseconds()),
            risk: filters.risk(),
            verify: false,
        },
        sizes: &sizes,
        target: &target,
        staging: &staging,
        staging_path: &staging_path,
        with_changes: false,
        strict: false,
        umask: 0o022,
        filters: &filters,
    };
    build::create_dirs(&input).expect("create_dirs");
    let fallback = Fallback::default();
    let results = build::build(&input, &fallback).expect("build");
    assert_eq!(results.len(), target.entries().len());
    let mut counts = Counts::default();
    for r in &results {
        assert!(r.stat.is_some(), "every file built holds its blob: {r:?}");
        match r.made {
            Made::FromObjects { rejected: false } => counts.from_objects += 1,
            Made::Cloned(Proof::Hash) | Made::Copied(Proof::Hash) => counts.taken_after_hash += 1,
            Made::Cloned(Proof::Stat) | Made::Copied(Proof::Stat) => counts.taken_on_stat += 1,
            _ => counts.other += 1,
        }
    }
    (staging_path, counts)
}

#[test]
fn the_builder_writes_what_git_checks_out_with_autocrlf_eol_and_symlinks_false() {
    let (fx, _keep) = fixture();
    let out = tempfile::tempdir().expect("tempdir");
    let cases = ["windows-default", "autocrlf-input", "plain", "eol-crlf"];
    let mut checked = 0;
    for case in cases {
        let repo = fx.join(case).join("repo");
        let want = listing(&fx.join(case).join("ref"));
        // The cases differ where they should: CRLF in text files with autocrlf=true (core.eol
        // alone converts only files with a `text` attribute), and in `eol=crlf` files always.
        let text = want["text.txt"].as_deref().expect("text.txt");
        match case {
            "windows-default" => assert_eq!(text, b"one\r\ntwo\r\nthree\r\n"),
            _ => assert_eq!(text, b"one\ntwo\nthree\n"),
        }
        assert_eq!(want["win.bat"].as_deref(), Some(&b"forced\r\ncrlf\r\n"[..]));
        assert_eq!(want["lf.txt"].as_deref(), Some(&b"kept\nas lf\n"[..]));
        assert_eq!(want["link"].as_deref(), Some(&b"text.txt"[..]), "{case}");
        for with_src in [false, true] {
            let name = format!("{case}-{}", if with_src { "src" } else { "objects" });
            let (made, counts) = build_tree(&repo, out.path(), &name, with_src);
            println!("{name}: {counts:?}");
            let got = listing(&made);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{name}: the same entries"
            );
            for (path, bytes) in &want {
                assert_eq!(&got[path], bytes, "{name}: {path}");
            }
            if with_src {
                // SRC's clean, unconverted files were taken; on Windows after their copy
                // hashed to the blob (the index's stat data, written by git on Linux, has
                // Linux inode numbers: it proves nothing there).
                assert!(
                    counts.taken_on_stat + counts.taken_after_hash > 0,
                    "{name}: {counts:?}"
                );
                if cfg!(windows) {
                    assert_eq!(counts.taken_on_stat, 0, "{name}: {counts:?}");
                }
            } else {
                assert_eq!(
                    counts.taken_on_stat + counts.taken_after_hash,
                    0,
                    "{name}: {counts:?}"
                );
                assert_eq!(counts.from_objects, want.values().flatten().count());
            }
            assert_eq!(counts.other, 0, "{name}: {counts:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * cases.len());
}

/// `cowtree_git::add` end to end, detached at `main` (the case that runs no git at all: the
/// fixture's repositories configure the committer, have no hooks and keep files refs), from
/// a repository git made, into a new directory: the same files as `git worktree add`'s
/// worktree, the same index entries, and the registration and `.git` file git writes, with
/// the paths as Git for Windows writes them on Windows (`Z:/...`, `C:/...`).
#[test]
fn add_makes_the_worktree_git_makes_with_paths_as_git_writes_them() {
    let (fx, _keep) = fixture();
    let out = tempfile::tempdir().expect("tempdir");
    let out_path = out.path().canonicalize().expect("canonicalize");
    for case in ["windows-default", "plain"] {
        let src = fx.join(case).join("repo");
        let dst = out_path.join(format!("{case}-wt"));
        let mut opts = AddOptions::new(&src, &dst);
        opts.branch = BranchChoice::Detach;
        opts.commit = Some("main".into());
        opts.quiet = true;
        opts.run_registry = Some(out_path.join("registry"));
        let report = cowtree_git::add(&opts).expect("add");
        println!(
            "{case}: method {:?}, reason {:?}, counts {:?}",
            report.method, report.reason, report.counts
        );
        assert_eq!(report.method, Method::PerFile, "{case}");
        assert_eq!(report.made_by_git, None, "{case}");

        // The files: git's, byte for byte.
        let want = listing(&fx.join(case).join("ref"));
        let got = listing(&dst);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{case}"
        );
        for (path, bytes) in &want {
            assert_eq!(&got[path], bytes, "{case}: {path}");
        }

        // The `.git` file and the registration, as git writes them.
        let common = fx
            .join(case)
            .join("repo/.git")
            .canonicalize()
            .expect("canonicalize");
        // git's id, DST's name (with a number added where a run before this one, on the same
        // fixture, left its registration).
        let id = report.admin_dir.file_name().expect("an id").to_owned();
        assert!(
            id.to_string_lossy().starts_with(&format!("{case}-wt")),
            "{id:?}"
        );
        let admin = common.join("worktrees").join(&id);
        let dotgit = std::fs::read_to_string(dst.join(".git")).expect(".git");
        assert_eq!(dotgit, format!("gitdir: {}\n", git_text(&admin)), "{case}");
        let gitdir = std::fs::read_to_string(admin.join("gitdir")).expect("gitdir");
        assert_eq!(gitdir, format!("{}/.git\n", git_text(&dst)), "{case}");
        assert_eq!(
            std::fs::read_to_string(admin.join("commondir")).expect("commondir"),
            "../..\n"
        );
        let head = std::fs::read_to_string(admin.join("HEAD")).expect("HEAD");
        let commit = report.commit.expect("a commit");
        assert_eq!(head, format!("{commit}\n"), "{case}");
        assert!(!admin.join("locked").exists(), "{case}: left locked");
        // Git's own registration of its reference worktree names the same kind of path.
        let git_ref = std::fs::read_to_string(common.join("worktrees/ref/gitdir")).expect("ref");
        assert!(git_ref.ends_with("/ref/.git\n"), "{git_ref:?}");

        // The index: git's entries (path, mode, blob), with each file's stat data as git
        // reads it on this platform (size, and mtime to the second here).
        let index_of = |p: &Path| {
            let repo = gix::open(p).expect("open worktree");
            let index = repo.open_index().expect("index");
            let entries: Vec<(String, u32, gix::ObjectId, gix::index::entry::Stat)> = index
                .entries()
                .iter()
                .map(|e| (e.path(&index).to_string(), e.mode.bits(), e.id, e.stat))
                .collect();
            entries
        };
        let ours = index_of(&dst);
        let theirs = index_of(&fx.join(case).join("ref"));
        assert_eq!(
            ours.iter().map(|e| (&e.0, e.1, e.2)).collect::<Vec<_>>(),
            theirs.iter().map(|e| (&e.0, e.1, e.2)).collect::<Vec<_>>(),
            "{case}: index entries"
        );
        for (path, _, _, stat) in &ours {
            let meta = std::fs::symlink_metadata(dst.join(path)).expect("lstat");
            assert_eq!(u64::from(stat.size), meta.len(), "{case}: {path}");
            let mtime = meta
                .modified()
                .expect("mtime")
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970");
            assert_eq!(
                u64::from(stat.mtime.secs),
                mtime.as_secs(),
                "{case}: {path}"
            );
            if cfg!(windows) {
                // Git for Windows reads no inode, owner or device.
                assert_eq!(
                    (stat.ino, stat.uid, stat.gid, stat.dev),
                    (0, 0, 0, 0),
                    "{path}"
                );
            }
        }
    }
}

/// A tree NTFS cannot hold as git's index names it (two names differing only in case, a
/// reserved device name), or with a symlink where `core.symlinks` is not `false`, is handed to Git for Windows' `git worktree add` before cowtree
/// writes anything. Under Wine there is no git.exe: the hand-over is seen failing to start
/// it, with no registration and no DST left by cowtree.
#[cfg(windows)]
#[test]
fn a_tree_windows_cannot_hold_is_handed_to_git_before_anything_is_written() {
    let (fx, _keep) = fixture();
    let out = tempfile::tempdir().expect("tempdir");
    for case in ["names-case", "names-aux", "names-symlink"] {
        let src = fx.join(case);
        let dst = out.path().join(case);
        let mut opts = AddOptions::new(&src, &dst);
        opts.branch = BranchChoice::Detach;
        opts.commit = Some("main".into());
        opts.quiet = true;
        opts.run_registry = Some(out.path().join("registry"));
        let err = cowtree_git::add(&opts).expect_err("git.exe is not there to make it");
        let text = err.to_string();
        println!("{case}: {text}");
        assert!(text.contains("run git worktree add in"), "{case}: {text}");
        assert!(!dst.exists(), "{case}: DST made");
        assert!(
            !src.join(".git/worktrees").exists(),
            "{case}: a registration made"
        );
    }
}
