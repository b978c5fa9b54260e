//! `cowtree subvolume convert|delete|list` and the subvolume lines of `cowtree probe`, on real
//! btrfs mounts (without and with `user_subvol_rm_allowed`), as root and as an unprivileged
//! user. Run through scripts/test.sh.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cowtree_fs::dir::Dir;
use cowtree_fs::subvolume::{At, create, is_root, snapshot};
use cowtree_testutil::tree::fill_sample_tree;
use cowtree_testutil::user::{As, TestUser, identities};
use cowtree_testutil::{Fs, XorShift, mount, scratch};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cowtree");

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `cowtree ARGS...` as `who`, with HOME and XDG directories in `home`.
fn run_as(who: As<'_>, home: &Path, args: &[&OsStr]) -> Output {
    let mut c = who.command(BIN);
    c.env_remove("COWTREE_STORE")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .args(args);
    c.output().expect("run cowtree")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Everything `convert` promises to keep, for every entry (the root as ""): type and mode
/// with set-ID bits, owner, group, size, modification time, content or target, `user.*`
/// extended attributes, and which paths share an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kept {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    data: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in order) with the same inode, for files with several links.
    link_group: Option<PathBuf>,
}

fn kept(root: &Path) -> BTreeMap<PathBuf, Kept> {
    let mut out = BTreeMap::new();
    let mut first_of: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    let mut all = Vec::new();
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).expect("lstat");
        if m.is_dir() {
            let mut names: Vec<OsString> = fs::read_dir(&p)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name())
                .collect();
            names.sort();
            for n in names.into_iter().rev() {
                stack.push(rel.join(n));
            }
        }
        all.push((rel, m));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, m) in all {
        let p = root.join(&rel);
        let data = if m.is_file() {
            fs::read(&p).unwrap_or_default()
        } else if m.is_symlink() {
            fs::read_link(&p)
                .expect("readlink")
                .as_os_str()
                .as_bytes()
                .to_vec()
        } else {
            Vec::new()
        };
        let link_group = (m.is_file() && m.nlink() > 1).then(|| {
            first_of
                .entry(m.ino())
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Kept {
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                size: if m.is_dir() { 0 } else { m.size() },
                mtime: (m.mtime(), m.mtime_nsec()),
                data,
                xattrs: if m.is_symlink() {
                    Vec::new()
                } else {
                    user_xattrs(&p)
                },
                link_group,
            },
        );
    }
    out
}

fn user_xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names[..]).expect("listxattr");
    let mut out = Vec::new();
    for name in names[..n]
        .split(|&b| b == 0)
        .filter(|n| n.starts_with(b"user."))
    {
        let mut v = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).expect("getxattr");
        out.push((name.to_vec(), v[..len].to_vec()));
    }
    out.sort();
    out
}

/// A tree with what a conversion must keep: the sample tree, hardlinks (one pair across
/// directories), user extended attributes, a set-group-ID directory, and a times set on all.
fn rich_tree(root: &Path, who: As<'_>) {
    fill_sample_tree(root);
    fs::hard_link(root.join("a/big.bin"), root.join("deep/er/big-link")).expect("link");
    fs::hard_link(root.join("top.txt"), root.join("top-link")).expect("link");
    rustix::fs::lsetxattr(
        root.join("a/small.txt"),
        "user.origin",
        b"converted",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    rustix::fs::lsetxattr(
        root.join("a"),
        "user.dir",
        b"on a directory",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
    fs::create_dir(root.join("shared")).expect("mkdir");
    fs::set_permissions(root.join("shared"), fs::Permissions::from_mode(0o2775)).expect("chmod");
    let st = Command::new("chown")
        .arg("-hR")
        .arg(format!("{}:{}", who.uid(), gid_of(who)))
        .arg(root)
        .status()
        .expect("chown");
    assert!(st.success());
    // chown clears set-ID bits: set them again, as the owner would have.
    fs::set_permissions(root.join("shared"), fs::Permissions::from_mode(0o2775)).expect("chmod");
    cowtree_testutil::tree::set_mtime(&root.join("shared"), 1_234_567_890, 5);
    cowtree_testutil::tree::set_mtime(root, 1_234_567_891, 6);
}

fn gid_of(who: As<'_>) -> u32 {
    match who {
        As::Root => 0,
        As::User(u) => u.gid(),
    }
}

/// Names in `dir` that a conversion may leave (none should be left).
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cowtree"))
        .collect()
}

fn is_subvolume(p: &Path) -> bool {
    let d = Dir::open(p).expect("open");
    is_root(At::new(&d, p)).expect("is_root")
}

#[test]
fn convert_keeps_every_entry_and_makes_a_subvolume_as_root_and_as_a_user() {
    let (Some(a), Some(b)) = (mount(Fs::Btrfs), mount(Fs::BtrfsUserRm)) else {
        return;
    };
    let user = TestUser::create();
    for m in [&a, &b] {
        for who in identities(user.as_ref()) {
            let what = format!("{} on {}", who.label(), m.display());
            let base = who.dir_in(m);
            let home = who.dir_in(m);
            let dir = base.path().join("repo");
            fs::create_dir(&dir).expect("mkdir");
            rich_tree(&dir, who);
            if matches!(who, As::Root) {
                // Root keeps other users' files theirs.
                fs::write(dir.join("theirs"), b"x").expect("write");
                std::os::unix::fs::lchown(dir.join("theirs"), Some(4321), Some(8765))
                    .expect("chown");
                fs::set_permissions(dir.join("theirs"), fs::Permissions::from_mode(0o4750))
                    .expect("chmod");
            }
            let before = kept(&dir);
            let v = json(&ok(
                &run_as(
                    who,
                    home.path(),
                    &[o("subvolume"), o("convert"), o("--json"), dir.as_os_str()],
                ),
                &what,
            ));
            assert_eq!(v["converted"], true, "{what}: {v}");
            assert_eq!(v["entries"], before.len() as u64 - 1, "{what}: {v}");
            assert!(is_subvolume(&dir), "{what}");
            let after = kept(&dir);
            for (p, k) in &before {
                assert_eq!(after.get(p), Some(k), "{what}: {}", p.display());
            }
            assert_eq!(before.len(), after.len(), "{what}");
            assert_eq!(leftovers(base.path()), Vec::<String>::new(), "{what}");
            // Now a clone of it is one snapshot.
            let dst = base.path().join("copy");
            let c = json(&ok(
                &run_as(
                    who,
                    home.path(),
                    &[o("clone"), o("--json"), dir.as_os_str(), dst.as_os_str()],
                ),
                &what,
            ));
            assert_eq!(c["method"], "subvolume", "{what}: {c}");
            // Converting again does nothing.
            let again = json(&ok(
                &run_as(
                    who,
                    home.path(),
                    &[o("subvolume"), o("convert"), o("--json"), dir.as_os_str()],
                ),
                &what,
            ));
            assert_eq!(again["converted"], false, "{what}: {again}");
        }
    }
}

/// What must hold after a refused conversion: DIR as it was (same inodes too) and nothing
/// beside it.
fn assert_untouched(dir: &Path, before: &cowtree_testutil::TreeState, what: &str) {
    let now = cowtree_testutil::TreeState::capture(dir, &|_| false);
    before.assert_same(&now, what);
    assert!(!is_subvolume(dir), "{what}");
    assert_eq!(
        leftovers(dir.parent().expect("parent")),
        Vec::<String>::new(),
        "{what}"
    );
}

#[test]
fn convert_refuses_what_it_cannot_keep_and_changes_nothing() {
    let (Some(t), Some(xfs)) = (scratch(Fs::Btrfs), scratch(Fs::Xfs)) else {
        return;
    };
    let refuse = |dir: &Path, want: &str| {
        let before = cowtree_testutil::TreeState::capture(dir, &|_| false);
        let out = run_as(
            As::Root,
            t.path(),
            &[o("subvolume"), o("convert"), dir.as_os_str()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", dir.display());
        assert!(
            err.contains(want),
            "{}: want {want:?}: {err}",
            dir.display()
        );
        assert_untouched(dir, &before, want);
    };
    // Not btrfs.
    let on_xfs = xfs.path().join("d");
    fs::create_dir(&on_xfs).expect("mkdir");
    fs::write(on_xfs.join("f"), b"x").expect("write");
    refuse(&on_xfs, "is on xfs, not btrfs");
    // A subvolume below.
    let nested = t.path().join("nested");
    fs::create_dir_all(nested.join("a")).expect("mkdir");
    let d = Dir::open(&nested.join("a")).expect("open");
    create(At::new(&d, &nested.join("a")), o("sub")).expect("create");
    refuse(&nested, "nested/a/sub is a subvolume");
    // A mount point below.
    let mounted = t.path().join("mounted");
    fs::create_dir_all(mounted.join("mnt")).expect("mkdir");
    fs::write(mounted.join("f"), b"x").expect("write");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(mounted.join("mnt"))
        .status()
        .expect("mount");
    assert!(st.success());
    let before = cowtree_testutil::TreeState::capture(&mounted, &|p| p.ends_with("mnt"));
    let out = run_as(
        As::Root,
        t.path(),
        &[o("subvolume"), o("convert"), mounted.as_os_str()],
    );
    let _ = Command::new("umount").arg(mounted.join("mnt")).status();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mounted/mnt is a mount point"), "{err}");
    before.assert_same(
        &cowtree_testutil::TreeState::capture(&mounted, &|p| p.ends_with("mnt")),
        "mount point",
    );
    assert_eq!(leftovers(t.path()), Vec::<String>::new());
    // A special file.
    let special = t.path().join("special");
    fs::create_dir(&special).expect("mkdir");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        special.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    refuse(&special, "special/fifo is a special file");
    // A symlink as DIR.
    std::os::unix::fs::symlink("special", t.path().join("link")).expect("symlink");
    let out = run_as(
        As::Root,
        t.path(),
        &[
            o("subvolume"),
            o("convert"),
            t.path().join("link").as_os_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

#[test]
fn convert_as_a_user_refuses_files_of_others() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let who = As::User(&user);
    let base = who.dir_in(t.path());
    let dir = base.path().join("d");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("mine"), b"m").expect("write");
    fs::write(dir.join("roots"), b"r").expect("write");
    std::os::unix::fs::lchown(&dir, Some(user.uid()), Some(user.gid())).expect("chown");
    std::os::unix::fs::lchown(dir.join("mine"), Some(user.uid()), Some(user.gid())).expect("chown");
    let before = cowtree_testutil::TreeState::capture(&dir, &|_| false);
    let out = run_as(
        who,
        base.path(),
        &[o("subvolume"), o("convert"), dir.as_os_str()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("d/roots belongs to uid 0"), "{err}");
    assert_untouched(&dir, &before, "foreign owner");
}

/// A writer that keeps changing a file while the conversion copies: refused, nothing lost.
#[test]
fn convert_refuses_a_directory_that_changes_during_the_copy() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let dir = t.path().join("busy");
    fs::create_dir(&dir).expect("mkdir");
    for i in 0..3000 {
        fs::write(dir.join(format!("f{i}")), format!("{i}")).expect("write");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, p) = (stop.clone(), dir.join("log"));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                fs::write(&p, n.to_string()).expect("write log");
                std::thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    let out = run_as(
        As::Root,
        t.path(),
        &[o("subvolume"), o("convert"), dir.as_os_str()],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = writer.join().expect("writer");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("changed while it was being copied"), "{err}");
    assert!(!is_subvolume(&dir));
    assert_eq!(
        fs::read_to_string(dir.join("log")).expect("read"),
        last.to_string()
    );
    for i in 0..3000 {
        assert_eq!(
            fs::read_to_string(dir.join(format!("f{i}"))).expect("read"),
            i.to_string()
        );
    }
    assert_eq!(leftovers(t.path()), Vec::<String>::new());
}

/// Killed at a random point (SIGKILL, SIGINT): DIR is the original or the whole copy, and
/// the next conversion finishes the job and leaves nothing beside it.
#[test]
fn a_convert_killed_at_any_point_leaves_the_original_or_the_whole_copy() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let mut rng = XorShift::from_clock("convert killed");
    // 6 rounds in the full tier, 2 in the README's run (`cowtree_testutil::rounds`).
    for round in 0..cowtree_testutil::rounds(6, 2) {
        let dir = t.path().join(format!("d{round}"));
        fs::create_dir(&dir).expect("mkdir");
        rich_tree(&dir, As::Root);
        for i in 0..1500 {
            fs::write(dir.join(format!("n{i}")), format!("{i}")).expect("write");
        }
        cowtree_testutil::tree::set_mtime(&dir, 1_234_567_891, 6);
        let want = kept(&dir);
        let child = Command::new(BIN)
            .args(["subvolume", "convert"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start");
        std::thread::sleep(Duration::from_micros(rng.below(800_000)));
        let sig = if round % 2 == 0 { "-KILL" } else { "-INT" };
        let _ = Command::new("kill")
            .arg(sig)
            .arg(child.id().to_string())
            .status();
        let out = child.wait_with_output().expect("wait");
        let now = kept(&dir);
        for (p, k) in &want {
            assert_eq!(now.get(p), Some(k), "round {round}: {}", p.display());
        }
        assert_eq!(want.len(), now.len(), "round {round}");
        let converted = is_subvolume(&dir);
        println!(
            "round {round} ({sig}): {}; {}",
            if converted { "converted" } else { "original" },
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let v = json(&ok(
            &run_as(
                As::Root,
                t.path(),
                &[o("subvolume"), o("convert"), o("--json"), dir.as_os_str()],
            ),
            "convert again",
        ));
        assert_eq!(v["converted"], !converted, "{v}");
        assert!(is_subvolume(&dir));
        assert_eq!(leftovers(t.path()), Vec::<String>::new(), "round {round}");
        let done = kept(&dir);
        for (p, k) in &want {
            assert_eq!(done.get(p), Some(k), "round {round}: {}", p.display());
        }
    }
}

#[test]
fn delete_says_which_way_it_went_as_root_and_as_a_user() {
    let (Some(a), Some(b)) = (mount(Fs::Btrfs), mount(Fs::BtrfsUserRm)) else {
        return;
    };
    let user = TestUser::create();
    for (m, user_fast) in [(&a, false), (&b, true)] {
        for who in identities(user.as_ref()) {
            let what = format!("{} on {}", who.label(), m.display());
            let base = who.dir_in(m);
            let d = Dir::open(base.path()).expect("open");
            create(At::new(&d, base.path()), o("sv")).expect("create");
            let sv = base.path().join("sv");
            fill_sample_tree(&sv);
            let st = Command::new("chown")
                .arg("-hR")
                .arg(format!("{}:{}", who.uid(), gid_of(who)))
                .arg(&sv)
                .status()
                .expect("chown");
            assert!(st.success());
            let s = Dir::open(&sv).expect("open");
            snapshot(At::new(&s, &sv), At::new(&d, base.path()), o("ro"), true).expect("snapshot");
            drop(s);
            fs::create_dir(base.path().join("plain")).expect("mkdir");
            let out = run_as(
                who,
                base.path(),
                &[
                    o("subvolume"),
                    o("delete"),
                    base.path().join("plain").as_os_str(),
                ],
            );
            assert_eq!(out.status.code(), Some(1), "{what}");
            assert!(base.path().join("plain").is_dir());
            let v = json(&ok(
                &run_as(
                    who,
                    base.path(),
                    &[
                        o("subvolume"),
                        o("delete"),
                        o("--json"),
                        sv.as_os_str(),
                        base.path().join("ro").as_os_str(),
                    ],
                ),
                &what,
            ));
            let fast = matches!(who, As::Root) || user_fast;
            for e in v.as_array().expect("array") {
                if fast {
                    assert_eq!(e["method"], "ioctl", "{what}: {v}");
                    assert_eq!(e["reason"], Value::Null, "{what}: {v}");
                } else {
                    assert_eq!(e["method"], "removed-tree", "{what}: {v}");
                    assert_eq!(e["reason"], "not-permitted", "{what}: {v}");
                }
            }
            assert!(!sv.exists() && !base.path().join("ro").exists(), "{what}");
        }
    }
}

#[test]
fn list_and_probe_show_what_cowtree_sees() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let d = Dir::open(t.path()).expect("open");
    create(At::new(&d, t.path()), o("sv")).expect("create");
    let sv = t.path().join("sv");
    fs::create_dir(sv.join("a")).expect("mkdir");
    let a = Dir::open(&sv.join("a")).expect("open");
    create(At::new(&a, &sv.join("a")), o("inner")).expect("create");
    let v = json(&ok(
        &run_as(
            As::Root,
            t.path(),
            &[o("subvolume"), o("list"), o("--json"), sv.as_os_str()],
        ),
        "list",
    ));
    assert_eq!(v["subvolume"], true, "{v}");
    assert_eq!(v["read_only"], false, "{v}");
    assert_eq!(v["below"][0]["path"], "a/inner", "{v}");
    assert_eq!(v["below"].as_array().map(Vec::len), Some(1), "{v}");
    let probe = json(&ok(
        &run_as(
            As::Root,
            t.path(),
            &[o("probe"), o("--json"), sv.as_os_str()],
        ),
        "probe",
    ));
    assert_eq!(probe["subvolumes"]["subvolume_root"], true, "{probe}");
    assert_eq!(probe["subvolumes"]["snapshot"], true, "{probe}");
    assert_eq!(probe["subvolumes"]["fast_delete"], true, "{probe}");
    let who = As::User(&user);
    let base = who.dir_in(t.path());
    let text = ok(
        &run_as(who, base.path(), &[o("probe"), base.path().as_os_str()]),
        "user probe",
    );
    assert!(text.contains("subvolume:   no"), "{text}");
    assert!(text.contains("snapshot:    yes"), "{text}");
    assert!(
        text.contains("delete:      not in one call (not permitted for this user"),
        "{text}"
    );
    let leftover: Vec<_> = fs::read_dir(base.path()).expect("list").collect();
    assert!(leftover.is_empty(), "the probe left {leftover:?}");
}
