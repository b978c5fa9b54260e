//! The command line as a new user meets it: a store found on the tree's filesystem, worktrees
//! that find their store from inside, one argument order, --quiet, names that do not move by
//! accident, and help with examples.

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, handler_installed, init_store, s};
use cowtree_testutil::{Fs, XorShift, mount, pattern, scratch};

/// The binary with a private HOME and XDG directories under `home` (no store from the
/// environment), run in `cwd`.
fn user(home: &Path, cwd: &Path) -> Command {
    as_user(Command::new(BIN), home, cwd)
}

fn as_user(mut c: Command, home: &Path, cwd: &Path) -> Command {
    c.env_remove("COWTREE_STORE")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .current_dir(cwd);
    c
}

fn out(c: &mut Command, args: &[&OsStr]) -> Output {
    c.args(args).output().expect("run cowtree")
}

#[track_caller]
fn ok(c: &mut Command, args: &[&OsStr]) -> Output {
    let o = out(c, args);
    assert!(
        o.status.success(),
        "{args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[track_caller]
fn ok_json(c: &mut Command, args: &[&OsStr]) -> serde_json::Value {
    serde_json::from_slice(&ok(c, args).stdout).expect("one JSON object")
}

/// `c` with `--store STORE`.
fn with_store(mut c: Command, store: &Path) -> Command {
    c.arg("--store").arg(store);
    c
}

/// Records SRC into STORE as snapshot `v1`.
fn snapshot_v1(home: &Path, store: &Path, src: &Path) {
    let mut c = with_store(user(home, home), store);
    ok(
        &mut c,
        &[s("snapshot"), s("--name"), s("v1"), src.as_os_str()],
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tree(root: &Path, files: u64, size: usize) {
    for i in 0..files {
        let p = root.join(format!("d{}/f{i}", i % 4));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, pattern(size, i + 1)).unwrap();
    }
}

fn canon(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap()
}

fn xattr_store(dir: &Path) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(dir, "user.cowtree.store", &mut buf).ok()?;
    Some(text(&buf[..n]))
}

#[test]
fn store_is_made_on_the_trees_filesystem_when_the_default_is_on_another() {
    let (Some(home), Some(xfs), Some(xfs_root)) =
        (scratch(Fs::NoCow), scratch(Fs::Xfs), mount(Fs::Xfs))
    else {
        return;
    };
    let home = home.path();
    let src = xfs.path().join("src");
    tree(&src, 40, 6000);
    let expected = canon(&xfs_root).join(".cowtree-store");
    // The mount's store outlives this test (and serves other runs on the same mount): a name
    // of this run's own.
    let name = xfs
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let o = ok(
        &mut user(home, home),
        &[
            s("snapshot"),
            s("--json"),
            s("--name"),
            s(&name),
            src.as_os_str(),
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["store"], expected.to_str().unwrap(), "{v}");
    assert_eq!(
        v["copied_bytes"], 0,
        "the store shares data with the tree: {v}"
    );
    assert!(
        !home.join("data/cowtree").exists(),
        "nothing in the default location on ext4"
    );
    let o = ok(&mut user(home, home), &[s("snapshot"), src.as_os_str()]);
    let err = text(&o.stderr);
    assert!(
        !err.contains("created store"),
        "only a new store is announced: {err}"
    );
    // Creation is announced, with where and why, when not asked for JSON.
    let src2 = xfs.path().join("src2");
    tree(&src2, 3, 100);
    fs::rename(&expected, xfs.path().join("moved-store")).unwrap();
    let o = ok(&mut user(home, home), &[s("snapshot"), src2.as_os_str()]);
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("created store {}", expected.display()))
            && err.contains("another filesystem"),
        "{err}"
    );
    fs::remove_dir_all(&expected).unwrap();
    fs::rename(xfs.path().join("moved-store"), &expected).unwrap();

    // A worktree checked out with no flag is found from inside it with no flag.
    let wt = xfs.path().join("wt");
    ok(
        &mut user(home, home),
        &[s("checkout"), s(&name), wt.as_os_str()],
    );
    assert_eq!(xattr_store(&wt).as_deref(), expected.to_str());
    fs::write(wt.join("d1/f1"), b"edited").unwrap();
    let v = ok_json(&mut user(home, &wt.join("d2")), &[s("status"), s("--json")]);
    assert_eq!(v["modified"], serde_json::json!(["d1/f1"]), "{v}");
    let v = ok_json(&mut user(home, home), &[s("stores"), s("--json")]);
    let listed: Vec<&str> = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&expected.to_str().unwrap()), "{v}");
    ok(
        &mut user(home, home),
        &[s("worktree"), s("rm"), s("--force"), wt.as_os_str()],
    );
}

#[test]
fn a_worktree_of_a_named_store_is_found_from_inside_without_flags() {
    let (Some(home), Some(x)) = (scratch(Fs::NoCow), scratch(Fs::Xfs)) else {
        return;
    };
    let home = home.path();
    let store = x.path().join("my-store");
    let src = x.path().join("src");
    tree(&src, 20, 3000);
    let mut c = with_store(user(home, home), &store);
    let id = text(
        &ok(
            &mut c,
            &[s("snapshot"), s("--quiet"), s("--json"), src.as_os_str()],
        )
        .stdout,
    );
    let id = serde_json::from_str::<serde_json::Value>(&id).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let wt = x.path().join("wt");
    let mut c = with_store(user(home, home), &store);
    ok(&mut c, &[s("checkout"), s(&id), wt.as_os_str()]);
    // Inside, in a subdirectory, in a new shell: no --store, no COWTREE_STORE.
    let inside = wt.join("d3");
    fs::remove_file(wt.join("d0/f0")).unwrap();
    let v = ok_json(&mut user(home, &inside), &[s("status"), s("--json")]);
    assert_eq!(v["deleted"], serde_json::json!(["d0/f0"]), "{v}");
    assert_eq!(v["path"], canon(&wt).to_str().unwrap());
    // reset and snapshot use the same worktree and store.
    ok(&mut user(home, &inside), &[s("reset"), s("../d0/f0")]);
    assert_eq!(fs::read(wt.join("d0/f0")).unwrap(), pattern(3000, 1));
    let v = ok_json(&mut user(home, &inside), &[s("snapshot"), s("--json")]);
    assert_eq!(
        v["id"],
        id.as_str(),
        "an unchanged worktree records its base"
    );
    assert_eq!(v["store"], canon(&store).to_str().unwrap());
    // Outside any worktree, the commands that need one say so.
    let o = out(&mut user(home, home), &[s("status")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not inside a registered worktree"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn read_only_commands_on_a_missing_store_say_so_and_create_nothing() {
    let Some(home) = scratch(Fs::NoCow) else {
        return;
    };
    let home = home.path();
    let typo = home.join("typo");
    for args in [
        vec![s("ls")],
        vec![s("verify")],
        vec![s("show"), s("v1")],
        vec![s("worktree"), s("list")],
        vec![s("worktrees")],
        vec![s("gc")],
        vec![s("tag"), s("a"), s("b")],
    ] {
        let mut c = user(home, home);
        c.arg("--store").arg(&typo);
        let o = out(&mut c, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            text(&o.stderr).contains(&format!("no store at {}", typo.display())),
            "{args:?}: {}",
            text(&o.stderr)
        );
        assert!(!typo.exists(), "{args:?} created the store");
    }
    // A command that uses no store refuses the option.
    let o = out(
        &mut user(home, home),
        &[s("--store"), typo.as_os_str(), s("du"), home.as_os_str()],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = out(
        &mut user(home, home),
        &[s("du"), s("--store"), typo.as_os_str(), home.as_os_str()],
    );
    assert_eq!(o.status.code(), Some(2));
    // Snapshot, which writes, creates the named store.
    let src = home.join("src");
    tree(&src, 2, 10);
    let mut c = user(home, home);
    c.arg("--store").arg(&typo);
    let o = ok(&mut c, &[s("snapshot"), src.as_os_str()]);
    assert!(typo.join("format").is_file());
    assert!(
        text(&o.stderr).contains("created store"),
        "{}",
        text(&o.stderr)
    );
}

/// The subcommands `cowtree --help` lists.
fn subcommands() -> Vec<String> {
    let o = common::bin().arg("--help").output().unwrap();
    let help = text(&o.stdout);
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .split("\n\n")
        .next()
        .unwrap();
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_help_ends_with_two_to_four_examples() {
    let mut commands: Vec<Vec<String>> = subcommands().into_iter().map(|c| vec![c]).collect();
    assert!(commands.len() >= 18, "{commands:?}");
    commands.push(vec![]);
    commands.push(vec!["worktree".into(), "list".into()]);
    commands.push(vec!["worktree".into(), "rm".into()]);
    for cmd in commands {
        for flag in ["--help", "-h"] {
            let o = common::bin().args(&cmd).arg(flag).output().unwrap();
            assert!(o.status.success(), "{cmd:?} {flag}");
            let help = text(&o.stdout);
            let last = help.trim_end().rsplit("\n\n").next().unwrap();
            let mut lines = last.lines();
            assert_eq!(lines.next(), Some("Examples:"), "{cmd:?} {flag}:\n{help}");
            let examples: Vec<&str> = lines.collect();
            assert!(
                (2..=4).contains(&examples.len())
                    && examples
                        .iter()
                        .all(|l| l.starts_with("  cowtree ") || l.starts_with("  cd ")),
                "{cmd:?} {flag}: {examples:?}"
            );
        }
    }
}

#[test]
fn quiet_prints_nothing_on_success() {
    let (Some(home), Some(x)) = (scratch(Fs::NoCow), scratch(Fs::Xfs)) else {
        return;
    };
    let home = home.path();
    let store = x.path().join("store");
    let (src, src2) = (x.path().join("src"), x.path().join("src2"));
    tree(&src, 12, 5000);
    tree(&src2, 5, 5000);
    let wt = x.path().join("wt");
    let copy = x.path().join("copy");
    let cmds: Vec<(PathBuf, Vec<&OsStr>)> = vec![
        (
            home.into(),
            vec![s("snapshot"), s("-q"), s("--name"), s("a"), src.as_os_str()],
        ),
        (
            home.into(),
            vec![
                s("snapshot"),
                s("--quiet"),
                s("--name"),
                s("b"),
                src2.as_os_str(),
            ],
        ),
        (
            home.into(),
            vec![s("checkout"), s("--quiet"), s("a"), wt.as_os_str()],
        ),
        (wt.clone(), vec![s("status"), s("--quiet")]),
        (wt.clone(), vec![s("switch"), s("--quiet"), s("b")]),
        (wt.clone(), vec![s("reset"), s("--quiet"), s("--hard")]),
        (wt.clone(), vec![s("snapshot"), s("--quiet")]),
        (home.into(), vec![s("tag"), s("--quiet"), s("c"), s("a")]),
        (
            home.into(),
            vec![
                s("worktree"),
                s("rm"),
                s("--quiet"),
                s("--force"),
                wt.as_os_str(),
            ],
        ),
        (home.into(), vec![s("rm"), s("--quiet"), s("a")]),
        (home.into(), vec![s("gc"), s("--quiet")]),
        (home.into(), vec![s("verify"), s("--quiet")]),
        (
            home.into(),
            vec![s("clone"), s("--quiet"), src.as_os_str(), copy.as_os_str()],
        ),
        (
            home.into(),
            vec![s("dedupe"), s("--quiet"), src.as_os_str(), copy.as_os_str()],
        ),
    ];
    for (cwd, args) in cmds {
        let mut c = user(home, &cwd);
        if !matches!(args[0].to_str(), Some("clone" | "dedupe")) {
            c.arg("--store").arg(&store);
        }
        let o = ok(&mut c, &args);
        assert_eq!(
            (text(&o.stdout).as_str(), text(&o.stderr).as_str()),
            ("", ""),
            "{args:?} printed something"
        );
    }
}

#[test]
fn tag_and_snapshot_name_refuse_to_move_a_name_without_force() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    let (a, b) = (x.path().join("a"), x.path().join("b"));
    tree(&a, 3, 100);
    tree(&b, 4, 100);
    let st = |args: &[&OsStr]| {
        let mut c = with_store(user(home, home), &store);
        out(&mut c, args)
    };
    let id = |o: Output| text(&o.stdout).trim().to_string();
    let ida = id(st(&[s("snapshot"), s("--name"), s("v1"), a.as_os_str()]));
    let idb = id(st(&[s("snapshot"), b.as_os_str()]));
    let resolve = || {
        let v: serde_json::Value =
            serde_json::from_slice(&st(&[s("show"), s("--json"), s("v1")]).stdout).unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    let o = st(&[s("tag"), s("v1"), s(&idb)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
    assert_eq!(resolve(), ida);
    let o = st(&[s("snapshot"), s("--name"), s("v1"), b.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("already names"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(resolve(), ida);
    assert!(
        st(&[
            s("snapshot"),
            s("--name"),
            s("v1"),
            s("--force"),
            b.as_os_str()
        ])
        .status
        .success()
    );
    assert_eq!(resolve(), idb);
    assert!(
        st(&[s("tag"), s("--force"), s("v1"), s(&ida)])
            .status
            .success()
    );
    assert_eq!(resolve(), ida);
}

#[test]
fn reset_of_a_path_in_neither_worktree_nor_base_fails_and_paths_follow_the_cwd() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    let src = x.path().join("src");
    tree(&src, 8, 100);
    let st = |cwd: &Path, args: &[&OsStr]| {
        let mut c = with_store(user(home, cwd), &store);
        out(&mut c, args)
    };
    assert!(
        st(
            home,
            &[s("snapshot"), s("--name"), s("v1"), src.as_os_str()]
        )
        .status
        .success()
    );
    let wt = x.path().join("wt");
    assert!(
        st(home, &[s("checkout"), s("v1"), wt.as_os_str()])
            .status
            .success()
    );
    fs::write(wt.join("d1/f1"), b"changed").unwrap();
    let o = st(&wt.join("d1"), &[s("reset"), s("nosuchpath")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("nosuchpath"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        fs::read(wt.join("d1/f1")).unwrap(),
        b"changed",
        "nothing was reset"
    );
    // The path is relative to the current directory inside the worktree.
    let o = st(&wt.join("d1"), &[s("reset"), s("f1")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("1 entry restored"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(fs::read(wt.join("d1/f1")).unwrap(), pattern(100, 2));
    // A deleted file is in the base: resetting it is no error; -C names the worktree.
    fs::remove_file(wt.join("d2/f2")).unwrap();
    let o = st(home, &[s("reset"), s("-C"), wt.as_os_str(), s("d2/f2")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(wt.join("d2/f2").is_file());
    // Of several paths gone from the worktree, one not in the base either is named, and
    // nothing is reset; a whole directory gone is in the base by the entries beneath it.
    fs::remove_file(wt.join("d2/f2")).unwrap();
    fs::remove_dir_all(wt.join("d3")).unwrap();
    let o = st(&wt, &[s("reset"), s("d2/f2"), s("d3/nosuch"), s("d3")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("d3/nosuch is neither"),
        "{}",
        text(&o.stderr)
    );
    assert!(!wt.join("d2/f2").exists() && !wt.join("d3").exists());
    let o = st(&wt, &[s("reset"), s("d2/f2"), s("d3")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(wt.join("d2/f2").is_file() && wt.join("d3").is_dir());
}

#[test]
fn checkout_mode_clone_across_filesystems_exits_3_and_auto_warns_once() {
    let (Some(x), Some(y)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let home = x.path();
    let store = x.path().join("store");
    let src = x.path().join("src");
    tree(&src, 6, 1000);
    let st = |args: &[&OsStr]| {
        let mut c = with_store(user(home, home), &store);
        out(&mut c, args)
    };
    assert!(
        st(&[s("snapshot"), s("--name"), s("v1"), src.as_os_str()])
            .status
            .success()
    );
    let dst = y.path().join("wt");
    let o = st(&[
        s("checkout"),
        s("--mode"),
        s("clone"),
        s("v1"),
        dst.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(!dst.exists());
    assert_eq!(
        fs::read_dir(y.path()).unwrap().count(),
        0,
        "no staging left"
    );
    let o = st(&[s("checkout"), s("v1"), dst.as_os_str()]);
    assert!(o.status.success());
    let err = text(&o.stderr);
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    assert!(err.contains("different filesystem"), "{err}");
    // On the store's filesystem, clone mode clones.
    let same = x.path().join("wt");
    let o = st(&[
        s("checkout"),
        s("--mode"),
        s("clone"),
        s("--json"),
        s("v1"),
        same.as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["cloned"].as_u64(), v["copied"].as_u64()),
        (Some(6), Some(0)),
        "{v}"
    );
}

#[test]
fn a_dirty_switch_is_unblocked_by_the_command_its_refusal_names() {
    let Some(x) = scratch(Fs::Btrfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    let (a, b) = (x.path().join("a"), x.path().join("b"));
    tree(&a, 4, 100);
    tree(&b, 4, 200);
    let st = |cwd: &Path, args: &[&OsStr]| {
        let mut c = with_store(user(home, cwd), &store);
        out(&mut c, args)
    };
    assert!(
        st(home, &[s("snapshot"), s("--name"), s("a"), a.as_os_str()])
            .status
            .success()
    );
    assert!(
        st(home, &[s("snapshot"), s("--name"), s("b"), b.as_os_str()])
            .status
            .success()
    );
    let wt = x.path().join("wt");
    assert!(
        st(home, &[s("checkout"), s("a"), wt.as_os_str()])
            .status
            .success()
    );
    fs::write(wt.join("d0/f0"), b"my work").unwrap();
    let o = st(&wt, &[s("switch"), s("b")]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains(" snapshot -C "), "{err}");
    let rec = st(&wt, &[s("snapshot"), s("--name"), s("work")]);
    assert!(rec.status.success(), "{}", text(&rec.stderr));
    let o = st(&wt, &[s("switch"), s("b")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(fs::read(wt.join("d0/f0")).unwrap(), pattern(200, 1));
    // The work is in the snapshot it was recorded as.
    assert!(st(&wt, &[s("switch"), s("work")]).status.success());
    assert_eq!(fs::read(wt.join("d0/f0")).unwrap(), b"my work");
}

#[test]
fn ls_shows_date_source_files_and_size_newest_first_and_says_when_empty() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    init_store(&store);
    let st = |args: &[&OsStr]| {
        let mut c = with_store(user(home, home), &store);
        out(&mut c, args)
    };
    let o = st(&[s("ls")]);
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains("no snapshots"),
        "{}",
        text(&o.stdout)
    );
    let (a, b) = (x.path().join("older"), x.path().join("newer"));
    tree(&a, 3, 1024);
    tree(&b, 5, 2048);
    assert!(st(&[s("snapshot"), a.as_os_str()]).status.success());
    // Usually within the same second: the order of recording decides.
    assert!(
        st(&[s("snapshot"), s("--name"), s("new"), b.as_os_str()])
            .status
            .success()
    );
    let listing = text(&st(&[s("ls")]).stdout);
    let rows: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listing}");
    assert!(
        rows[0].contains("newer") && rows[0].contains("10.0 KiB") && rows[0].contains(" new "),
        "{listing}"
    );
    assert!(
        rows[1].contains("older") && rows[1].contains("3.0 KiB"),
        "{listing}"
    );
    assert!(rows[0].contains("20"), "a date: {listing}");
    let v: serde_json::Value = serde_json::from_slice(&st(&[s("ls"), s("--json")]).stdout).unwrap();
    let list = v["snapshots"].as_array().unwrap();
    assert!(list[0]["recorded_unix"].as_u64() >= list[1]["recorded_unix"].as_u64());
    assert_eq!(list[0]["source"], canon(&b).to_str().unwrap());
    assert_eq!(list[0]["files"], 5);
}

#[test]
fn dedupe_by_default_includes_files_of_one_block() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let base = x.path().join("one");
    tree(&base, 30, 8 * 1024);
    for copy in ["two", "three"] {
        let st = Command::new("cp")
            .args(["-a", "--reflink=never"])
            .arg(&base)
            .arg(x.path().join(copy))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let v: serde_json::Value = serde_json::from_slice(
        &ok(
            &mut user(x.path(), x.path()),
            &[s("dedupe"), s("--json"), x.path().as_os_str()],
        )
        .stdout,
    )
    .unwrap();
    // 30 sets of three 8 KiB files: two of each set now share the first's blocks.
    assert_eq!(v["files_deduped"], 60, "{v}");
    assert_eq!(v["groups"], 30, "{v}");
}

#[test]
fn a_snapshot_that_copies_into_the_store_warns_once_with_the_reason_and_the_fix() {
    let (Some(x), Some(y)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let home = x.path();
    let store = x.path().join("store");
    let st = |args: &[&OsStr]| {
        let mut c = with_store(user(home, home), &store);
        ok(&mut c, args)
    };
    let near = x.path().join("near");
    tree(&near, 10, 3000);
    let err = text(&st(&[s("snapshot"), near.as_os_str()]).stderr);
    assert!(!err.contains("warning"), "same filesystem: {err}");
    let far = y.path().join("far");
    tree(&far, 10, 3001);
    // Across filesystems the data would be copied: refused unless asked for (--mode copy).
    let mut c = with_store(user(home, home), &store);
    let refused = out(&mut c, &[s("snapshot"), far.as_os_str()]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    let err = text(&refused.stderr);
    assert!(
        err.contains("is on another filesystem") && err.contains("because it was named by --store"),
        "{err}"
    );
    let err = text(&st(&[s("snapshot"), s("--mode"), s("copy"), far.as_os_str()]).stderr);
    assert_eq!(err.matches("warning").count(), 1, "{err}");
    assert!(
        err.contains("29.3 KiB copied into the store")
            && err.contains("another filesystem")
            && err.contains("(--mode copy)"),
        "{err}"
    );
}

#[test]
fn every_command_that_does_work_takes_quiet_json_and_jobs_and_jobs_changes_no_result() {
    for cmd in [
        "snapshot", "checkout", "status", "switch", "reset", "verify", "dedupe",
    ] {
        let help = text(&common::bin().args([cmd, "--help"]).output().unwrap().stdout);
        for flag in ["--quiet", "--json", "--jobs"] {
            assert!(help.contains(flag), "{cmd} has no {flag}:\n{help}");
        }
    }
    for cmd in ["tag", "rm", "gc", "clone"] {
        let help = text(&common::bin().args([cmd, "--help"]).output().unwrap().stdout);
        for flag in ["--quiet", "--json"] {
            assert!(help.contains(flag), "{cmd} has no {flag}:\n{help}");
        }
    }
    let Some(x) = scratch(Fs::Xfs) else { return };
    let src = x.path().join("src");
    tree(&src, 200, 700);
    let id = |store: &str, jobs: &str| {
        let mut c = user(x.path(), x.path());
        c.arg("--store").arg(x.path().join(store));
        ok_json(
            &mut c,
            &[
                s("snapshot"),
                s("--json"),
                s("--jobs"),
                s(jobs),
                src.as_os_str(),
            ],
        )["id"]
            .clone()
    };
    assert_eq!(id("one", "1"), id("all", "0"));
}

#[test]
fn worktree_list_and_worktrees_print_the_same() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let store = x.path().join("store");
    let src = x.path().join("src");
    tree(&src, 3, 10);
    let st = |args: &[&OsStr]| {
        let mut c = with_store(user(x.path(), x.path()), &store);
        ok(&mut c, args).stdout
    };
    st(&[s("snapshot"), s("--name"), s("v1"), src.as_os_str()]);
    let wt = x.path().join("wt");
    st(&[s("checkout"), s("v1"), wt.as_os_str()]);
    let list = st(&[s("worktree"), s("list"), s("--json")]);
    assert_eq!(list, st(&[s("worktrees"), s("--json")]));
    let v: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(
        v["worktrees"][0]["path"],
        canon(&wt).to_str().unwrap(),
        "{v}"
    );
    assert_eq!(v["worktrees"][0]["state"], "present");
}

/// Starts `cowtree --store STORE ARGS` and sends it `sig` after `delay`; its output.
fn signalled(
    home: &Path,
    store: Option<&Path>,
    args: &[&OsStr],
    sig: i32,
    delay: Duration,
) -> Output {
    let mut c = user(home, home);
    if let Some(store) = store {
        c.arg("--store").arg(store);
    }
    c.args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("start cowtree");
    // The random point is a point of the command's work: wait until the handler is there (a
    // signal before it kills the process the default way, before it has done anything). Under
    // load, starting the process can take longer than the whole delay.
    handler_installed(child.id());
    std::thread::sleep(delay);
    // SAFETY: the child is ours and not yet reaped (wait_with_output below reaps it).
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    child.wait_with_output().expect("wait for cowtree")
}

/// The signal of a round of the interrupt tests (every fourth SIGTERM, the others SIGINT), the
/// exit code it gives and its name.
fn signal_of_round(round: u32) -> (i32, i32, &'static str) {
    if round % 4 == 3 {
        (libc::SIGTERM, 143, "SIGTERM")
    } else {
        (libc::SIGINT, 130, "SIGINT")
    }
}

/// The names in `dir` that cowtree's staging and temporary entries have (`.cowtree-`).
fn cowtree_entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".cowtree-"))
        .collect()
}

#[test]
fn sigint_at_random_points_of_clone_checkout_and_snapshot_leaves_only_what_the_message_says() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    let src = x.path().join("src");
    tree(&src, 3000, 1500);
    let started = Instant::now();
    snapshot_v1(home, &store, &src);
    // Delays are drawn below the time of one snapshot; each run that finishes before its signal
    // halves that bound, so that a slow first snapshot (a loaded machine) cannot leave every
    // later delay past the end of the work.
    let mut bound = started.elapsed().as_micros() as u64;
    let mut rng = XorShift::from_clock("sigint");
    let mut interrupted = 0;
    // 18 rounds in the full tier; in the README's run 9, or more until 3 were interrupted.
    let rounds = cowtree_testutil::rounds_until(18, 9);
    for round in 0u32.. {
        if rounds.done(round, interrupted >= 3) {
            break;
        }
        let delay = Duration::from_micros(rng.below(bound + 1));
        let (sig, code, sig_name) = signal_of_round(round);
        if round % 3 != 1 {
            // A new DST: clone (no store) or checkout (staging registered in the store).
            let (command, dst, store_arg, args) = if round % 3 == 2 {
                let dst = x.path().join(format!("clone{round}"));
                let args = vec![
                    s("clone").to_owned(),
                    src.clone().into(),
                    dst.clone().into(),
                ];
                ("clone", dst, None, args)
            } else {
                let dst = x.path().join(format!("wt{round}"));
                let args = vec![
                    s("checkout").to_owned(),
                    s("v1").to_owned(),
                    dst.clone().into(),
                ];
                ("checkout", dst, Some(store.as_path()), args)
            };
            let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            let o = signalled(home, store_arg, &args, sig, delay);
            let err = text(&o.stderr);
            match o.status.code() {
                Some(0) => {
                    assert_eq!(fs::read_dir(dst.join("d1")).unwrap().count(), 750);
                    bound /= 2;
                }
                Some(c) if c == code => {
                    interrupted += 1;
                    assert_eq!(err.lines().count(), 1, "one line: {err}");
                    assert!(
                        err.starts_with(&format!("cowtree: {command} interrupted by {sig_name}")),
                        "{err}"
                    );
                    // Only a run that had finished leaves DST, and then it says so.
                    assert_eq!(dst.exists(), err.contains("was already complete"), "{err}");
                    assert_eq!(!dst.exists(), err.contains("nothing was created"), "{err}");
                }
                other => panic!("{command} ended with {other:?}: {err}"),
            }
            let left = cowtree_entries(x.path());
            assert!(left.is_empty(), "round {round}: left {left:?} ({err})");
            let records = staging_records(&store);
            assert!(
                records.is_empty(),
                "round {round}: left {records:?} ({err})"
            );
        } else {
            let copy = x.path().join(format!("copy{round}"));
            tree(&copy, 3000, 1400 + round as usize);
            let o = signalled(
                home,
                Some(&store),
                &[s("snapshot"), copy.as_os_str()],
                sig,
                delay,
            );
            let err = text(&o.stderr);
            match o.status.code() {
                Some(0) => bound /= 2,
                Some(c) if c == code => {
                    interrupted += 1;
                    assert_eq!(err.lines().count(), 1, "one line: {err}");
                    assert!(err.contains("no snapshot was recorded unless"), "{err}");
                }
                other => panic!("snapshot ended with {other:?}: {err}"),
            }
            assert_eq!(
                fs::read_dir(store.join("tmp")).unwrap().count(),
                0,
                "round {round}: staging left in the store ({err})"
            );
        }
    }
    assert!(interrupted >= 3, "only {interrupted} runs were interrupted");
    let mut c = with_store(user(home, home), &store);
    let v = ok_json(&mut c, &[s("verify"), s("--json")]);
    assert_eq!(v["ok"], true, "{v}");
}

/// Starts cowtree with `args`, its stdout a pipe already full (nothing reads it yet), and
/// waits until its main thread is blocked writing to it: the command's work is done and it is
/// printing its result. Returns the child and the pipe's read end.
fn blocked_printing(
    home: &Path,
    store: Option<&Path>,
    args: &[&OsStr],
) -> (std::process::Child, fs::File) {
    use std::os::fd::AsRawFd;
    let (reader, writer) = std::io::pipe().unwrap();
    // SAFETY: F_SETFL on a descriptor this test owns.
    unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut w = &writer;
    while std::io::Write::write(&mut w, &[b'#'; 4096]).is_ok() {}
    // SAFETY: as above; the child's writes must block, not fail.
    unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, 0) };
    let mut c = user(home, home);
    if let Some(store) = store {
        c.arg("--store").arg(store);
    }
    c.args(args).stdout(writer).stderr(Stdio::piped());
    let mut child = c.spawn().expect("start cowtree");
    let wchan = format!("/proc/{}/wchan", child.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fs::read_to_string(&wchan).is_ok_and(|w| w.contains("pipe_write")) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("cowtree {args:?} ended ({status}) before printing its result: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "cowtree {args:?} never wrote its result"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, fs::File::from(std::os::fd::OwnedFd::from(reader)))
}

/// Once a command's work is done and kept, a signal while it prints its result changes
/// nothing: the result printed is the result (exit 0, no "interrupted" line after the
/// summary; found by the random-point test under load, where a snapshot printed "recorded
/// ..." and then "snapshot interrupted ... no snapshot was recorded unless its id was
/// printed"). A second signal ends the process at once, 128 + its number, saying nothing more.
#[test]
fn a_signal_while_the_result_is_printed_keeps_the_result_and_a_second_one_ends_the_process() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = home.join("store");
    let src = home.join("src");
    tree(&src, 40, 3000);
    snapshot_v1(home, &store, &src);
    let cases: [(&str, Vec<std::ffi::OsString>); 3] = [
        (
            "clone",
            vec![
                s("clone").into(),
                src.clone().into(),
                home.join("c1").into(),
            ],
        ),
        (
            "checkout",
            vec![s("checkout").into(), s("v1").into(), home.join("w1").into()],
        ),
        (
            "snapshot",
            vec![
                s("snapshot").into(),
                s("--name").into(),
                s("v2").into(),
                src.clone().into(),
            ],
        ),
    ];
    for (command, args) in &cases {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let store = (*command != "clone").then_some(store.as_path());
        let (child, mut reader) = blocked_printing(home, store, &args);
        // SAFETY: the child is ours and not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(300));
        let drain = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut out).unwrap();
            out
        });
        let o = child.wait_with_output().unwrap();
        let out = text(&drain.join().unwrap());
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{command}: {err}");
        assert!(!err.contains("interrupted"), "{command}: {err}");
        assert!(
            !out.trim_start_matches('#').trim().is_empty(),
            "{command} printed no result"
        );
    }
    assert_eq!(fs::read_dir(home.join("c1/d1")).unwrap().count(), 10);
    assert_eq!(fs::read_dir(home.join("w1/d1")).unwrap().count(), 10);
    let mut c = with_store(user(home, home), &store);
    let shown = ok(&mut c, &[s("show"), s("v2")]);
    assert!(
        text(&shown.stdout).contains("d1/f1"),
        "{}",
        text(&shown.stdout)
    );

    // A second signal: at once, 143, nothing said; the work stays done.
    let dst = home.join("c2");
    let args = [s("clone"), src.as_os_str(), dst.as_os_str()];
    let (child, _reader) = blocked_printing(home, None, &args);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
    assert_eq!(fs::read_dir(dst.join("d1")).unwrap().count(), 10);
}

#[test]
fn sigint_during_a_clone_of_one_file_leaves_no_temporary_file_and_says_what_dst_holds() {
    // tmpfs cannot reflink: the file is copied, which takes long enough to be interrupted.
    let Some(x) = scratch(Fs::Tmpfs) else { return };
    let home = x.path();
    let src = x.path().join("big");
    let old = vec![7u8; 1 << 20];
    let data = pattern(96 << 20, 3);
    fs::write(&src, &data).unwrap();
    let started = Instant::now();
    ok(
        &mut user(home, home),
        &[
            s("clone"),
            src.as_os_str(),
            x.path().join("first").as_os_str(),
        ],
    );
    let mut bound = started.elapsed().as_micros() as u64;
    let mut rng = XorShift::from_clock("sigint-file");
    let mut interrupted = 0;
    // 16 rounds in the full tier; in the README's run 8, or more until 3 were interrupted.
    let rounds = cowtree_testutil::rounds_until(16, 8);
    for round in 0u32.. {
        if rounds.done(round, interrupted >= 3) {
            break;
        }
        let delay = Duration::from_micros(rng.below(bound + 1));
        let (sig, code, sig_name) = signal_of_round(round);
        // Even rounds: a new DST; odd rounds: over an existing file.
        let dst = x.path().join(format!("dst{round}"));
        let over = round % 2 == 1;
        let mut args = vec![s("clone").to_owned()];
        if over {
            fs::write(&dst, &old).unwrap();
            args.extend([s("--on-existing").to_owned(), s("overwrite").to_owned()]);
        }
        args.extend([src.clone().into_os_string(), dst.clone().into_os_string()]);
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let o = signalled(home, None, &args, sig, delay);
        let err = text(&o.stderr);
        let whole = || fs::read(&dst).is_ok_and(|d| d == data);
        match o.status.code() {
            Some(0) => {
                assert!(whole(), "round {round}: {err}");
                bound /= 2;
            }
            Some(c) if c == code => {
                interrupted += 1;
                // A run interrupted after it finished may have printed its fallback warning.
                let said: Vec<&str> = err
                    .lines()
                    .filter(|l| !l.starts_with("cowtree: warning: "))
                    .collect();
                assert_eq!(said.len(), 1, "one line besides the warning: {err}");
                assert!(
                    said[0].starts_with(&format!("cowtree: clone interrupted by {sig_name}")),
                    "{err}"
                );
                if over {
                    assert!(err.contains("is as it was, or the whole new copy"), "{err}");
                    assert!(
                        whole() || fs::read(&dst).unwrap() == old,
                        "round {round}: DST is neither the old file nor the whole copy"
                    );
                } else {
                    assert_eq!(dst.exists(), err.contains("was already complete"), "{err}");
                    assert_eq!(!dst.exists(), err.contains("nothing was created"), "{err}");
                    if dst.exists() {
                        assert!(whole(), "round {round}: {err}");
                    }
                }
            }
            other => panic!("clone ended with {other:?}: {err}"),
        }
        let left = cowtree_entries(x.path());
        assert!(left.is_empty(), "round {round}: left {left:?} ({err})");
        let _ = fs::remove_file(&dst);
    }
    assert!(interrupted >= 3, "only {interrupted} runs were interrupted");
}

#[test]
fn sigint_during_a_pull_removes_its_staging_and_the_next_pull_finishes() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let (s1, s2, remote) = (home.join("s1"), home.join("s2"), home.join("remote"));
    let src = home.join("src");
    tree(&src, 2000, 20_000);
    snapshot_v1(home, &s1, &src);
    fs::create_dir(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    let add = [s("remote"), s("add"), s("r"), s(&url)];
    let pull = [s("pull"), s("--remote"), s("r"), s("v1")];
    ok(&mut with_store(user(home, home), &s1), &add);
    ok(
        &mut with_store(user(home, home), &s1),
        &[s("push"), s("--remote"), s("r"), s("v1")],
    );
    // The remote is the user's (HOME is the test's): s2, made anew, uses it.
    let fresh = || {
        let _ = fs::remove_dir_all(&s2);
        cowtree_store::Store::open(&s2).expect("an empty store");
    };
    fresh();
    let started = Instant::now();
    ok(&mut with_store(user(home, home), &s2), &pull);
    let mut bound = started.elapsed().as_micros() as u64;
    let mut rng = XorShift::from_clock("sigint-pull");
    let mut interrupted = 0;
    // 12 rounds in the full tier; in the README's run 6, or more until 3 were interrupted.
    let rounds = cowtree_testutil::rounds_until(12, 6);
    for round in 0u32.. {
        if rounds.done(round, interrupted >= 3) {
            break;
        }
        fresh();
        let delay = Duration::from_micros(rng.below(bound + 1));
        let (sig, code, sig_name) = signal_of_round(round);
        let o = signalled(home, Some(&s2), &pull, sig, delay);
        let err = text(&o.stderr);
        match o.status.code() {
            Some(0) => bound /= 2,
            Some(c) if c == code => {
                interrupted += 1;
                assert_eq!(err.lines().count(), 1, "one line: {err}");
                assert!(
                    err.starts_with(&format!("cowtree: pull interrupted by {sig_name}")),
                    "{err}"
                );
            }
            other => panic!("pull ended with {other:?}: {err}"),
        }
        let left: Vec<_> = fs::read_dir(s2.join("tmp"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "round {round}: left {left:?} ({err})");
        // What an interrupted pull placed is whole: the next pull finishes from there.
        ok(&mut with_store(user(home, home), &s2), &pull);
        let v = ok_json(
            &mut with_store(user(home, home), &s2),
            &[s("verify"), s("--json")],
        );
        assert_eq!(v["ok"], true, "round {round}: {v}");
    }
    assert!(interrupted >= 3, "only {interrupted} runs were interrupted");
}

/// Starts `cowtree ARGS` on a pseudo-terminal (through `script`), as a person at a shell
/// would; its stdout is everything the command drew.
fn on_terminal(home: &Path, args: &[&Path]) -> std::process::Child {
    let quoted: Vec<String> = std::iter::once(Path::new(BIN))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.display()))
        .collect();
    // `script` is in util-linux (Debian's essential bsdutils).
    as_user(Command::new("script"), home, home)
        .args(["-q", "-e", "-c", &quoted.join(" "), "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script")
}

#[test]
fn a_command_that_runs_over_a_second_on_a_terminal_shows_that_it_works() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    init_store(&store);
    let args = [Path::new("--store"), store.as_path(), Path::new("verify")];
    // Quick: nothing but the result.
    let drawn = |c: std::process::Child| text(&c.wait_with_output().unwrap().stdout);
    let shown = drawn(on_terminal(home, &args));
    assert!(shown.contains("checked 0 blobs"), "{shown}");
    assert!(!shown.contains("verifying"), "{shown}");
    // Held up for two seconds (gc's exclusive lock, taken here): the spinner appears.
    let lock = fs::File::open(store.join("lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let slow = on_terminal(home, &args);
    std::thread::sleep(Duration::from_millis(2500));
    drop(lock);
    let shown = drawn(slow);
    assert!(
        shown.contains(&format!("verifying {}: 0 blobs", store.display())),
        "{shown}"
    );
    assert!(shown.contains("checked 0 blobs"), "{shown}");
}

/// The staging registrations in the store (`worktrees/staging-*`).
fn staging_records(store: &Path) -> Vec<String> {
    fs::read_dir(store.join("worktrees"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("staging-"))
        .collect()
}

/// Starts `cowtree --store STORE checkout v1 DST` and waits until its staging directory
/// beside DST holds entries (the checkout is in the middle); `None` if it finished first.
fn checkout_caught_midway(home: &Path, store: &Path, dst: &Path) -> Option<std::process::Child> {
    let mut c = user(home, home);
    c.arg("--store")
        .arg(store)
        .args([s("checkout"), s("v1"), dst.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("start cowtree");
    loop {
        if let Some(stage) = cowtree_testutil::tree::checkout_staging(dst).first()
            && fs::read_dir(stage).is_ok_and(|mut d| d.next().is_some())
        {
            return Some(child);
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A checkout of snapshot `v1` into `wt<round>` beside the store (home) caught midway, with
/// its destination; up to 5 tries.
fn checkout_caught_midway_in_5_tries(home: &Path, store: &Path) -> (std::process::Child, PathBuf) {
    (0..5)
        .find_map(|round| {
            let dst = home.join(format!("wt{round}"));
            checkout_caught_midway(home, store, &dst).map(|child| (child, dst))
        })
        .expect("a checkout of 6,000 files was caught midway in 5 tries")
}

#[test]
fn gc_removes_the_staging_a_killed_checkout_left_and_reports_it() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    let src = x.path().join("src");
    tree(&src, 6000, 3000);
    snapshot_v1(home, &store, &src);
    let (mut child, dst) = checkout_caught_midway_in_5_tries(home, &store);
    child.kill().expect("SIGKILL the checkout");
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let left = cowtree_testutil::tree::checkout_staging(&dst);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!dst.exists());
    assert_eq!(staging_records(&store).len(), 1);

    // A dry run names it and removes nothing.
    let mut c = with_store(user(home, home), &store);
    let v = ok_json(&mut c, &[s("gc"), s("--dry-run"), s("--json")]);
    assert_eq!(v["staging_beside"][0], left[0].to_str().unwrap(), "{v}");
    assert!(left[0].exists());

    let mut c = with_store(user(home, home), &store);
    let said = text(&ok(&mut c, &[s("gc")]).stdout);
    assert!(
        said.contains(&format!(
            "removed {} (left by a checkout that was killed)",
            left[0].display()
        )),
        "{said}"
    );
    assert!(cowtree_testutil::tree::checkout_staging(&dst).is_empty());
    assert!(staging_records(&store).is_empty());
    // The store is whole, and the destination can be checked out.
    let mut c = with_store(user(home, home), &store);
    ok(&mut c, &[s("checkout"), s("v1"), dst.as_os_str()]);
    assert_eq!(fs::read_dir(dst.join("d1")).unwrap().count(), 1500);
    assert!(
        staging_records(&store).is_empty(),
        "a finished checkout unregisters"
    );
    let mut c = with_store(user(home, home), &store);
    assert_eq!(ok_json(&mut c, &[s("verify"), s("--json")])["ok"], true);
}

#[test]
fn gc_leaves_the_staging_of_a_running_checkout_alone() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    let src = x.path().join("src");
    tree(&src, 6000, 3000);
    snapshot_v1(home, &store, &src);
    let (child, dst) = checkout_caught_midway_in_5_tries(home, &store);
    // Paused in the middle: alive, its staging half full.
    // SAFETY: the child is ours and not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
    let stage = cowtree_testutil::tree::checkout_staging(&dst);
    assert_eq!(stage.len(), 1);
    let mut c = user(home, home);
    c.arg("--store")
        .arg(&store)
        .args([s("gc"), s("--json")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let gc = c.spawn().expect("start gc");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(stage[0].exists(), "gc removed a live checkout's staging");
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(fs::read_dir(dst.join("d1")).unwrap().count(), 1500);
    let g = gc.wait_with_output().unwrap();
    assert!(g.status.success(), "{}", text(&g.stderr));
    assert!(
        text(&g.stderr).contains("waiting for the store lock"),
        "{}",
        text(&g.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
    assert_eq!(v["staging_beside"], serde_json::json!([]), "{v}");
    assert!(staging_records(&store).is_empty());
}

#[test]
fn a_checkout_held_up_on_a_terminal_shows_its_counts_out_of_the_total() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let home = x.path();
    let store = x.path().join("store");
    let src = x.path().join("src");
    tree(&src, 100, 1500);
    snapshot_v1(home, &store, &src);
    // Held up after every file is placed and before it registers the worktree (the
    // registration lock, an flock on worktrees/, taken here): the bar shows the whole count.
    let lock = fs::File::open(store.join("worktrees")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let dst = x.path().join("wt");
    let args = [
        Path::new("--store"),
        store.as_path(),
        Path::new("checkout"),
        Path::new("v1"),
        dst.as_path(),
    ];
    let slow = on_terminal(home, &args);
    std::thread::sleep(Duration::from_millis(2500));
    drop(lock);
    let o = slow.wait_with_output().unwrap();
    let shown = text(&o.stdout);
    assert!(o.status.success(), "{shown}");
    assert!(
        shown.contains("100/100 files, 146.5 KiB/146.5 KiB"),
        "{shown}"
    );
    // Not drawn when stderr is not a terminal.
    let mut c = with_store(user(home, home), &store);
    let o = ok(
        &mut c,
        &[s("checkout"), s("v1"), x.path().join("wt2").as_os_str()],
    );
    assert!(!text(&o.stderr).contains("files,"), "{}", text(&o.stderr));
}
