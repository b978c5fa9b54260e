//! `checkout --pull` writing the worktree while its pull runs, and remote commands through a
//! proxy that delays, cuts and drops the server's responses (tests/common/proxy.rs): what
//! returned is exact, what failed failed cleanly, left nothing at the destination, and a
//! re-run finishes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::proxy::Proxy;
use crate::common::s3::{Server, server};
use crate::remote::{blobs_in, cw, env, push_big};
use cowtree_testutil::tree::files_under;
use cowtree_testutil::{Fs, assert_diff_clean, scratch};

/// The checkout's staging directory beside `dst`, while there.
fn staging_of(dst: &Path) -> Option<PathBuf> {
    cowtree_testutil::tree::checkout_staging(dst)
        .into_iter()
        .next()
}

/// Adds remote `name` to `store`: origin's bucket and prefix, through `proxy`.
fn add_through(srv: &Server, store: &Path, name: &str, proxy: &Proxy) {
    let ls = cw(srv, store, &["remote", "ls", "--json"]).json();
    let url = ls["remotes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "origin")
        .expect("origin")["url"]
        .as_str()
        .unwrap()
        .to_string();
    let args = ["remote", "add", "--in-store", name, &url, "--endpoint"];
    let mut args: Vec<&str> = args.to_vec();
    args.push(&proxy.endpoint);
    cw(srv, store, &args).assert_ok("remote add through the proxy");
}

/// `cowtree --store STORE ARGS` started in the background, its output captured.
fn spawn(srv: &Server, store: &Path, args: &[&str]) -> Child {
    let mut c = common::bin();
    env(&mut c, (&srv.key, &srv.secret));
    c.arg("--store")
        .arg(store)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (up to 120 s, while `child` runs) until a file of the worktree at `dst` is written
/// while `store` still lacks some of the `total` blobs: the checkout is writing while its pull
/// runs. False when the child ended first. Sound as sampled: blobs only arrive, so fewer than
/// `total` read after the file was seen were fewer when it was written.
fn written_while_pulling(child: &mut Child, dst: &Path, store: &Path, total: usize) -> bool {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        if staging_of(dst).is_some_and(|s| files_under(&s) > 0) && blobs_in(store) < total {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// What `child` said, once it ended (killed, and the test failed, after 180 s: a hang fails
/// instead of waiting forever).
fn ended(mut child: Child) -> (Option<i32>, String, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("still running after 180 s: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The snapshots `store` has recorded.
fn recorded(srv: &Server, store: &Path) -> usize {
    let ls = cw(srv, store, &["ls", "--json"]).json();
    ls["snapshots"].as_array().unwrap().len()
}

/// Nothing at `dst` and nothing beside it but `expect`.
fn nothing_at(dst: &Path, expect: &[&str], what: &str) {
    assert!(
        dst.symlink_metadata().is_err(),
        "{what}: {} exists",
        dst.display()
    );
    let mut names: Vec<String> = fs::read_dir(dst.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, expect, "{what}: only these beside the destination");
}

#[test]
fn checkout_pull_writes_the_worktree_while_its_pull_runs_and_it_is_exact() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let Some(b) = scratch(Fs::Btrfs) else { return };
    let (sa, sb) = (a.path().join("store"), b.path().join("store"));
    let src = a.path().join("src");
    push_big(&srv, &sa, &src, 32, 4 << 20, 300);
    // Slowed a little (2 ms a chunk of 64 KiB): the poll below sees the overlap however fast
    // the server is.
    let proxy = Proxy::start(&srv.endpoint, 1);
    proxy.faults.delay_ms.store(2, Ordering::SeqCst);
    cowtree_store::Store::open(&sb).unwrap();
    add_through(&srv, &sb, "slow", &proxy);
    let dst = b.path().join("wt");
    let d = dst.to_str().unwrap();
    let mut child = spawn(
        &srv,
        &sb,
        &["checkout", "--json", "--pull", "--remote", "slow", "big", d],
    );
    let streamed = written_while_pulling(&mut child, &dst, &sb, 32);
    let (code, out, err) = ended(child);
    assert_eq!(code, Some(0), "checkout --pull: {err}");
    assert!(
        streamed,
        "no file of the worktree was written while blobs were still arriving"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"], 32);
    // On btrfs a snapshot in the store would be one snapshot of its tree: this one went per
    // file, and says why.
    assert_eq!(v["reason"], "arriving", "{out}");
    // --json: one object on stdout, no line about the pull.
    assert!(!err.contains("pulled big"), "{err}");
    assert_diff_clean(&src, &dst);
    let st = cw(&srv, &sb, &["status", "-C", d]);
    assert_eq!(st.assert_ok("status").stdout, "", "the worktree is clean");
    cw(&srv, &sb, &["verify"]).assert_ok("verify");
    assert_eq!(recorded(&srv, &sb), 1);
}

#[test]
fn an_interrupted_or_failed_checkout_pull_leaves_nothing_and_a_rerun_finishes() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let src = a.path().join("src");
    let sa = a.path().join("store");
    push_big(&srv, &sa, &src, 32, 4 << 20, 400);
    let proxy = Proxy::start(&srv.endpoint, 2);
    proxy.faults.delay_ms.store(2, Ordering::SeqCst);
    // XFS (clones) and ext4 (copies).
    for fsys in [Fs::Xfs2, Fs::NoCow] {
        let Some(b) = scratch(fsys) else { continue };
        let sb = b.path().join("store");
        cowtree_store::Store::open(&sb).unwrap();
        add_through(&srv, &sb, "slow", &proxy);
        let dst = b.path().join("wt");
        let d = dst.to_str().unwrap();
        let args = ["checkout", "--pull", "--remote", "slow", "big", d];

        // SIGINT once files are being written: exit 130, nothing at DST.
        proxy.set_down(false);
        let mut child = spawn(&srv, &sb, &args);
        assert!(
            written_while_pulling(&mut child, &dst, &sb, 32),
            "{fsys:?}: the checkout wrote nothing before the pull ended"
        );
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let (code, _, err) = ended(child);
        assert_eq!(code, Some(130), "{fsys:?}: {err}");
        assert!(err.contains("interrupted by SIGINT"), "{fsys:?}: {err}");
        nothing_at(&dst, &["store"], &format!("{fsys:?} interrupted"));
        assert_eq!(recorded(&srv, &sb), 0, "{fsys:?}: nothing recorded");

        // The server lost mid-run, once this run has fetched something: the pull's error,
        // nothing at DST, what arrived kept. Slower here (20 ms a chunk): the blobs left are
        // fetched at once and come in together, and at 2 ms a chunk the others could all
        // finish between the first one's arrival and the cut (seen once in CI).
        proxy.faults.delay_ms.store(20, Ordering::SeqCst);
        let before = blobs_in(&sb);
        let mut child = spawn(&srv, &sb, &args);
        let start = Instant::now();
        while blobs_in(&sb) == before && child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{fsys:?}: no blob"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        proxy.set_down(true);
        let (code, _, err) = ended(child);
        assert!(
            code.is_some_and(|c| c != 0 && c != 130),
            "{fsys:?}: exit {code:?}: {err}"
        );
        assert!(
            err.starts_with("cowtree: ") && !err.contains("panicked"),
            "{err}"
        );
        assert!(
            !err.contains("did not arrive"),
            "{fsys:?}: the pull's error, not the checkout's: {err}"
        );
        nothing_at(&dst, &["store"], &format!("{fsys:?} failed"));
        assert_eq!(recorded(&srv, &sb), 0, "{fsys:?}: nothing recorded");
        let kept = blobs_in(&sb);
        assert!(
            kept > before && kept < 32,
            "{fsys:?}: {kept} blobs kept, {before} before this run"
        );

        // Back up: the re-run fetches only what is missing and is exact.
        proxy.faults.delay_ms.store(2, Ordering::SeqCst);
        proxy.set_down(false);
        let (code, _, err) = ended(spawn(&srv, &sb, &args));
        assert_eq!(code, Some(0), "{fsys:?}: {err}");
        assert!(
            err.contains(&format!("{kept} blobs already here")),
            "{fsys:?}: {err}"
        );
        assert_diff_clean(&src, &dst);
        cw(&srv, &sb, &["verify"]).assert_ok("verify");
    }
    assert!(proxy.cuts() > 0, "the proxy went down");
}

/// Runs `cowtree --store STORE ARGS` until it succeeds (at most 40 runs): every failed run
/// fails cleanly (an exit code, one `cowtree: ` message, no panic). Returns its stdout and
/// how many runs failed.
fn until_ok(srv: &Server, store: &Path, args: &[&str]) -> (String, u32) {
    for failed in 0..40 {
        let r = cw(srv, store, args);
        if r.ok() {
            return (r.stdout, failed);
        }
        assert!(
            r.code().is_some_and(|c| c != 0) && r.stderr.starts_with("cowtree: "),
            "{args:?}: a failed run exits with a code and a message: {:?} {}",
            r.code(),
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    }
    panic!("{args:?} never succeeded in 40 runs through the proxy");
}

#[test]
fn push_pull_and_gc_through_a_proxy_that_cuts_connections_end_exact_or_fail_cleanly() {
    let Some(srv) = server() else { return };
    let Some(a) = scratch(Fs::Xfs) else { return };
    let Some(b) = scratch(Fs::Xfs2) else { return };
    let (sa, sb) = (a.path().join("store"), b.path().join("store"));
    // v1 and v2 of a tree (v2 rewrites a quarter of the files), kept to compare with.
    let src = a.path().join("src");
    let mut rng = cowtree_testutil::XorShift::new(7);
    fs::create_dir(&src).unwrap();
    for v in 1..=2u64 {
        for i in 0..48u64 {
            if v == 1 || rng.below(4) == 0 {
                let data = cowtree_testutil::pattern(256 << 10, v * 1000 + i);
                fs::write(src.join(format!("f{i}")), data).unwrap();
            }
        }
        let keep = a.path().join(format!("v{v}"));
        let st = std::process::Command::new("cp")
            .args(["-a".as_ref(), src.as_os_str(), keep.as_os_str()])
            .status()
            .unwrap();
        assert!(st.success());
        let name = format!("v{v}");
        cw(
            &srv,
            &sa,
            &["snapshot", "--name", &name, src.to_str().unwrap()],
        )
        .assert_ok("snapshot");
    }
    // Cut one connection in two, somewhere in its first 256 KiB.
    let proxy = Proxy::start(&srv.endpoint, 3);
    proxy.faults.cut_one_in.store(2, Ordering::SeqCst);
    proxy.faults.cut_within.store(256 << 10, Ordering::SeqCst);
    let url = format!("s3://cowtree/cli-faults-{}", std::process::id());
    for store in [&sa, &sb] {
        cowtree_store::Store::open(store).unwrap();
        let add = ["remote", "add", "--in-store", "flaky", &url, "--endpoint"];
        let mut add = add.to_vec();
        add.push(&proxy.endpoint);
        cw(&srv, store, &add).assert_ok("remote add");
    }
    let mut failures = Vec::new();
    for v in ["v1", "v2"] {
        let (_, failed) = until_ok(&srv, &sa, &["push", "--remote", "flaky", v]);
        failures.push((format!("push {v}"), failed));
    }
    for v in ["v1", "v2"] {
        let (_, failed) = until_ok(&srv, &sb, &["pull", "--remote", "flaky", v]);
        failures.push((format!("pull {v}"), failed));
        let dst = b.path().join(format!("wt-{v}"));
        cw(&srv, &sb, &["checkout", v, dst.to_str().unwrap()]).assert_ok("checkout");
        assert_diff_clean(&a.path().join(v), &dst);
    }
    // v1 dropped from the remote, and gc (no grace) through the proxy.
    let (_, failed) = until_ok(&srv, &sa, &["remote", "rm", "flaky", "v1"]);
    failures.push(("remote rm v1".into(), failed));
    let gc = [
        "remote",
        "gc",
        "flaky",
        "--grace",
        "0s",
        "--repack-threshold",
        "0",
    ];
    let (_, failed) = until_ok(&srv, &sa, &gc);
    failures.push(("gc".into(), failed));
    println!(
        "failed runs through the proxy before success: {failures:?}; {} cuts",
        proxy.cuts()
    );
    assert!(proxy.cuts() > 0, "the proxy cut no connection");
    // Straight to the server: v2 whole and exact in a new store, v1 gone.
    let Some(c) = scratch(Fs::Xfs) else { return };
    let sc = c.path().join("store");
    cowtree_store::Store::open(&sc).unwrap();
    let add = [
        "remote",
        "add",
        "--in-store",
        "direct",
        &url,
        "--endpoint",
        &srv.endpoint,
    ];
    cw(&srv, &sc, &add).assert_ok("remote add");
    let dst = c.path().join("wt");
    let co = [
        "checkout",
        "--pull",
        "--remote",
        "direct",
        "v2",
        dst.to_str().unwrap(),
    ];
    cw(&srv, &sc, &co).assert_ok("checkout --pull v2 after gc");
    assert_diff_clean(&a.path().join("v2"), &dst);
    let gone = cw(&srv, &sc, &["pull", "--remote", "direct", "v1"]);
    assert_eq!(gone.code(), Some(8), "v1 is gone: {}", gone.stderr);
    // The next gc, straight to the server, finds nothing more to do and nothing missing.
    let gc = ["remote", "gc", "direct", "--grace", "0s", "--json"];
    let g = cw(&srv, &sc, &gc).assert_ok("gc").json();
    assert_eq!(g["blobs_missing"], 0, "{g}");
}
