//! The `cowtree` command on Windows, run under Wine by `scripts/windows.sh` (Wine has no ReFS:
//! every clone falls back to a copy, which the reports must say). Each test runs the built
//! `cowtree.exe` as a user would, on a tree made with std in a temporary directory, and checks
//! the tree it makes byte for byte, the JSON it prints and the refusals.
#![cfg(windows)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn cowtree(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cowtree"))
        .current_dir(cwd)
        .args(args)
        // No store found from the user's profile: every test names its own.
        .env_remove("COWTREE_STORE")
        .output()
        .expect("run cowtree.exe")
}

/// Runs `cowtree ARGS` in `cwd`, which must succeed, and returns its stdout as JSON.
fn json(cwd: &Path, args: &[&str]) -> Value {
    let out = cowtree(cwd, args);
    assert!(
        out.status.success(),
        "cowtree {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cowtree {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Every file and directory below `root`, by relative path (with `/`): a file's bytes, or
/// `None` for a directory.
fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .expect("below root")
                .to_str()
                .expect("unicode")
                .replace('\\', "/");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A tree with what a source tree on Windows holds: nested directories, an empty file and an
/// empty directory, names beyond ASCII, a file of a few MiB (not a whole number of clusters).
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("src/deep/er")).unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::write(root.join("README.md"), b"# hello\r\n").unwrap();
    std::fs::write(root.join("caf\u{e9} \u{2615}.txt"), "cr\u{e8}me".as_bytes()).unwrap();
    std::fs::write(root.join("src/deep/er/empty"), b"").unwrap();
    std::fs::write(root.join("src/main.rs"), b"fn main() {}\n").unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("src/deep/big.bin"), big).unwrap();
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("unicode path")
}

#[test]
fn clone_copies_a_tree_and_says_so() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let dst = t.path().join("dst");
    let r = json(
        t.path(),
        &["clone", "--json", path_str(&src), path_str(&dst)],
    );
    assert_eq!(tree(&dst), tree(&src));
    // Wine has no ReFS: nothing was block-cloned, and the report says each file was copied.
    assert_eq!(r["cloned"], 0, "{r}");
    assert_eq!(r["copied"], 5, "{r}");

    // An existing destination is refused, and left as it was.
    let again = cowtree(t.path(), &["clone", path_str(&src), path_str(&dst)]);
    assert!(!again.status.success());
    assert_eq!(tree(&dst), tree(&src));

    // Merged into with --on-existing: a changed file replaced, a file only there kept (skip
    // keeps the changed one), no temporary entry or journal left.
    std::fs::write(dst.join("README.md"), b"changed in DST").unwrap();
    std::fs::write(dst.join("only in dst.txt"), b"theirs").unwrap();
    std::fs::write(src.join("src").join("only in src.txt"), b"added").unwrap();
    let skip = json(
        t.path(),
        &[
            "clone",
            "--json",
            "--on-existing",
            "skip",
            path_str(&src),
            path_str(&dst),
        ],
    );
    assert_eq!(
        std::fs::read(dst.join("README.md")).unwrap(),
        b"changed in DST",
        "{skip}"
    );
    let added = dst.join("src").join("only in src.txt");
    assert_eq!(std::fs::read(&added).unwrap(), b"added", "{skip}");
    let merged = json(
        t.path(),
        &[
            "clone",
            "--json",
            "--on-existing",
            "overwrite",
            path_str(&src),
            path_str(&dst),
        ],
    );
    assert_eq!(
        std::fs::read(dst.join("README.md")).unwrap(),
        b"# hello\r\n",
        "{merged}"
    );
    assert_eq!(
        std::fs::read(dst.join("only in dst.txt")).unwrap(),
        b"theirs"
    );
    std::fs::remove_file(dst.join("only in dst.txt")).unwrap();
    assert_eq!(tree(&dst), tree(&src), "nothing else left in DST");

    // A name Windows cannot hold is refused by name before anything is written.
    let aux = t.path().join("aux");
    let out = cowtree(t.path(), &["clone", path_str(&src), path_str(&aux)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aux"), "{err}");
    assert!(!aux.exists());
}

#[test]
fn snapshot_checkout_status_switch_reset() {
    let t = tempfile::tempdir().unwrap();
    let (src, store) = (t.path().join("src"), t.path().join("store"));
    let store = path_str(&store).to_owned();
    make_tree(&src);
    let v1 = json(
        t.path(),
        &[
            "--store",
            &store,
            "snapshot",
            "--json",
            "--name",
            "v1",
            path_str(&src),
        ],
    );
    let first = tree(&src);
    assert_eq!(v1["files"], 5, "{v1}");

    // The same tree always gives the same id.
    let again = json(
        t.path(),
        &["--store", &store, "snapshot", "--json", path_str(&src)],
    );
    assert_eq!(again["id"], v1["id"]);

    // A second state: one file changed, one removed, one added.
    std::fs::write(src.join("src/main.rs"), b"fn main() { println!(); }\n").unwrap();
    std::fs::remove_file(src.join("README.md")).unwrap();
    std::fs::write(src.join("src/new.txt"), b"new").unwrap();
    let v2 = json(
        t.path(),
        &[
            "--store",
            &store,
            "snapshot",
            "--json",
            "--name",
            "v2",
            path_str(&src),
        ],
    );
    assert_ne!(v2["id"], v1["id"]);
    let second = tree(&src);

    // A checkout is v1 exactly, and clean.
    let wt = t.path().join("wt");
    json(
        t.path(),
        &["--store", &store, "checkout", "--json", "v1", path_str(&wt)],
    );
    assert_eq!(tree(&wt), first);
    let st = json(&wt, &["status", "--json"]);
    assert_eq!(st["clean"], true, "{st}");

    // Changes are seen.
    std::fs::write(wt.join("src/main.rs"), b"changed").unwrap();
    std::fs::write(wt.join("untracked.txt"), b"u").unwrap();
    std::fs::remove_file(wt.join("src/deep/er/empty")).unwrap();
    let st = json(&wt, &["status", "--json"]);
    assert_eq!(st["clean"], false);
    assert_eq!(st["modified"], serde_json::json!(["src/main.rs"]), "{st}");
    assert_eq!(st["added"], serde_json::json!(["untracked.txt"]), "{st}");
    assert_eq!(
        st["deleted"],
        serde_json::json!(["src/deep/er/empty"]),
        "{st}"
    );

    // reset --hard gives v1 back exactly.
    json(&wt, &["reset", "--hard", "--json"]);
    assert_eq!(tree(&wt), first);

    // switch makes the tree v2 exactly: the changed file rewritten, the removed one gone.
    let sw = json(&wt, &["switch", "--json", "v2"]);
    assert_eq!(sw["to"], v2["id"], "{sw}");
    assert_eq!(tree(&wt), second);
    assert_eq!(json(&wt, &["status", "--json"])["clean"], true);

    // The store checks out whole; gc keeps what the snapshots use.
    let v = json(t.path(), &["--store", &store, "verify", "--json"]);
    assert_eq!(v["ok"], true, "{v}");
    let gc = json(t.path(), &["--store", &store, "--json", "gc"]);
    assert_eq!(gc["blobs_removed"], 0, "{gc}");
}

#[test]
fn probe_says_what_the_volume_is() {
    let t = tempfile::tempdir().unwrap();
    let r = json(t.path(), &["probe", "--json", path_str(t.path())]);
    assert!(r["fs_type"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
    assert!(r["cluster_size"].as_u64().is_some_and(|c| c > 0), "{r}");
    // No ReFS under Wine: no block clone, and the reason is given.
    assert_eq!(r["reflink"], false, "{r}");
    assert!(r["reason"].as_str().is_some(), "{r}");
}

#[test]
fn linux_only_commands_say_so_in_one_line() {
    let t = tempfile::tempdir().unwrap();
    let out = cowtree(
        t.path(),
        &["subvolume", "list", "--json", path_str(t.path())],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("Windows"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON error object");
    assert_eq!(v["error"]["kind"], "unsupported", "{v}");

    // dedupe: no FIDEDUPERANGE; refused before anything is read, the file left as it was.
    std::fs::write(t.path().join("a"), b"same bytes").unwrap();
    std::fs::write(t.path().join("b"), b"same bytes").unwrap();
    let out = cowtree(t.path(), &["dedupe", "--json", path_str(t.path())]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FIDEDUPERANGE") && err.contains("Windows"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON error object");
    assert_eq!(v["error"]["kind"], "unsupported", "{v}");
    assert_eq!(std::fs::read(t.path().join("b")).unwrap(), b"same bytes");

    // git worktree pool: none on Windows.
    let out = cowtree(t.path(), &["git", "worktree", "pool", "status", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON error object");
    assert_eq!(v["error"]["kind"], "unsupported", "{v}");
}
