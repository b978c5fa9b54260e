//! `cowtree stores`: a listed store that no longer exists is marked, and `--prune` (the
//! command the listing prints, run as printed) drops it from the list, keeping the others.

use crate::common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::{Ran, run_limited};
use cowtree_testutil::{Fs, isolate_home, scratch};

/// `cowtree ARGS` with HOME and the XDG directories under `home`.
fn run(home: &Path, args: &[&str]) -> Ran {
    let mut c = std::process::Command::new(common::BIN);
    isolate_home(&mut c, home);
    c.args(args);
    run_limited(c, Duration::from_secs(60))
}

#[test]
fn a_store_that_no_longer_exists_is_marked_and_prune_drops_it_from_the_list() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let home = dir.path().join("user");
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let (kept, gone) = (dir.path().join("kept"), dir.path().join("gone"));
    for store in [&kept, &gone] {
        run(
            &home,
            &[
                "--store",
                store.to_str().unwrap(),
                "snapshot",
                src.to_str().unwrap(),
            ],
        )
        .assert_ok("snapshot");
    }
    let list = home.join("state/cowtree/stores");
    assert_eq!(fs::read_to_string(&list).unwrap().lines().count(), 2);
    fs::remove_dir_all(&gone).unwrap();

    let r = run(&home, &["stores"]);
    r.assert_ok("stores");
    let line = |p: &Path| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}  ", p.display())))
            .unwrap_or_else(|| panic!("{} not listed: {}", p.display(), r.stdout))
            .to_string()
    };
    assert!(line(&gone).contains("missing"), "{}", r.stdout);
    assert!(!line(&kept).contains("missing"), "{}", r.stdout);
    let hint = r
        .stdout
        .lines()
        .find(|l| l.contains("--prune"))
        .unwrap_or_else(|| panic!("no hint: {}", r.stdout));
    let printed = hint.split('`').nth(1).expect("a command in backquotes");
    let words: Vec<&str> = printed.split(' ').collect();
    assert_eq!(words[0], "cowtree");

    let r = run(&home, &words[1..]);
    r.assert_ok("the printed prune");
    assert!(
        r.stdout.contains(&format!(
            "{}  (no longer exists: removed from the list)",
            gone.display()
        )),
        "{}",
        r.stdout
    );
    assert_eq!(
        fs::read_to_string(&list).unwrap(),
        format!("{}\n", kept.display())
    );
    let r = run(&home, &["stores", "--json", "--prune"]);
    r.assert_ok("stores --json --prune");
    let v = r.json();
    assert_eq!(v["pruned"], serde_json::json!([]));
    let paths: Vec<&str> = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["exists"] == true)
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec![kept.to_str().unwrap()]);
}
