//! The command line as a whole: every global option (`--store`, `--json`, `--quiet`/`-q`,
//! `--jobs`/`-j`) is accepted before and after every command with the same effect; an unknown
//! option is one line naming it (never clap's advice to write `-- -B`); under `--json` every
//! failure is one JSON error object on stdout with the exit code kept.
//!
//! The commands are found by reading `--help` (every `Commands:` section, recursively), so a
//! command added later is covered without touching this file.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{self, BIN, Ran, run_limited};

/// A run of the binary with `args`, in `root/cwd`, with HOME and every XDG directory under
/// `root`, no store from the environment and nothing on stdin.
fn run_in(root: &Path, args: &[&str]) -> Ran {
    let cwd = root.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let mut c = std::process::Command::new(BIN);
    c.current_dir(&cwd)
        .env_remove("COWTREE_STORE")
        .env("HOME", root.join("home"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .env("GIT_CEILING_DIRECTORIES", root)
        .stdin(Stdio::null())
        .args(args);
    run_limited(c, Duration::from_secs(60))
}

/// Every command path (`["git", "worktree", "add"]`, ...) that takes no further subcommand.
fn leaf_commands() -> Vec<Vec<String>> {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        if passes_to_git(&path) {
            // Its --help is git's manual page.
            out.push(path);
            continue;
        }
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let r = run_in(tmp.path(), &args);
        assert!(r.ok(), "{args:?}: {}", r.stderr);
        let subs = subcommands(&r.stdout);
        if subs.is_empty() {
            out.push(path);
        } else {
            for s in subs {
                let mut p = path.clone();
                p.push(s);
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The names in the `Commands:` section of a help text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            // A continuation line of a long description is indented further.
            if line.starts_with("   ") || name == "help" {
                continue;
            }
            names.push(name.to_owned());
        }
    }
    names
}

/// `git worktree list|remove|...` hand every argument after their name to git.
fn passes_to_git(path: &[String]) -> bool {
    path.len() == 3 && path[0] == "git" && path[1] == "worktree" && path[2] != "add"
}

fn masked(text: &str, root: &Path) -> String {
    text.replace(root.to_str().unwrap(), "ROOT")
}

#[test]
fn every_command_is_found_in_help() {
    let cmds = leaf_commands();
    for want in [
        vec!["clone"],
        vec!["ls"],
        vec!["remote", "add"],
        vec!["git", "worktree", "add"],
        vec!["git", "worktree", "remove"],
        vec!["worktree", "rm"],
    ] {
        assert!(
            cmds.iter().any(|c| c == &want),
            "{want:?} not among {cmds:?}"
        );
    }
}

#[test]
fn every_global_option_works_before_and_after_every_command_with_the_same_effect() {
    let options: [&[&str]; 7] = [
        &["--json"],
        &["-q"],
        &["--quiet"],
        &["--jobs", "2"],
        &["-j", "2"],
        &["--jobs=1"],
        &["--store", "STORE"],
    ];
    let cases: Vec<(Vec<String>, &[&str])> = leaf_commands()
        .into_iter()
        .flat_map(|cmd| options.iter().map(move |opt| (cmd.clone(), *opt)))
        .filter(|(cmd, opt)| !(passes_to_git(cmd) && opt[0] == "--store"))
        .collect();
    // Hundreds of cases of two short commands each, on four threads; every failing case is
    // reported, with its own message.
    let failed: Vec<String> = common::parallel(cases.len(), 4, |i| {
        let (cmd, opt) = (&cases[i].0, cases[i].1);
        std::panic::catch_unwind(|| option_before_and_after(cmd, opt))
            .err()
            .map(|e| format!("{cmd:?} with {opt:?}: {}", common::panic_message(&*e)))
    })
    .into_iter()
    .flatten()
    .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
    assert!(
        cases.len() > 100,
        "only {} combinations checked",
        cases.len()
    );
}

/// `args` run in `root` (as [`run_in`]), which must not refuse any of them as an option.
#[track_caller]
fn accepted(root: &Path, args: &[String]) -> Ran {
    let r = run_in(root, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !r.stderr.contains("unknown option") && !r.stderr.contains("unexpected argument"),
        "{args:?} refused its option: {}",
        r.stderr
    );
    r
}

/// `opt` before `cmd` and after it: both accepted, with the same exit status and output (for
/// a command that passes its arguments to git, before it only).
fn option_before_and_after(cmd: &[String], opt: &[&str]) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let with = |root: &Path, before: bool| -> Vec<String> {
        let opt: Vec<String> = opt
            .iter()
            .map(|o| o.replace("STORE", root.join("store").to_str().unwrap()))
            .collect();
        let mut v = Vec::new();
        if before {
            v.extend(opt.iter().cloned());
        }
        v.extend(cmd.iter().cloned());
        if !before {
            v.extend(opt.iter().cloned());
        }
        v
    };
    let args_before = with(a.path(), true);
    let args_after = with(b.path(), false);
    let before = accepted(a.path(), &args_before);
    if passes_to_git(cmd) {
        // After the subcommand's name every argument is git's own.
        return;
    }
    let after = accepted(b.path(), &args_after);
    assert_eq!(
        before.code(),
        after.code(),
        "{args_before:?} and {args_after:?} ended differently:\n{}\n{}",
        before.stderr,
        after.stderr
    );
    assert_eq!(
        masked(&before.stdout, a.path()),
        masked(&after.stdout, b.path()),
        "{args_before:?} and {args_after:?} printed different output"
    );
    assert_eq!(
        masked(&before.stderr, a.path()).replace(&args_before.join(" "), "ARGS"),
        masked(&after.stderr, b.path()).replace(&args_after.join(" "), "ARGS"),
        "{args_before:?} and {args_after:?} said different things"
    );
    if opt[0] == "--json" && !before.stdout.is_empty() {
        let v: serde_json::Value = serde_json::from_str(before.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{args_before:?}: stdout is not one JSON object ({e}): {}",
                before.stdout
            )
        });
        if !before.ok() {
            assert_eq!(v["exit"], before.code().unwrap(), "{args_before:?}: {v}");
            assert!(v["error"]["message"].is_string(), "{args_before:?}: {v}");
            assert!(v["error"]["kind"].is_string(), "{args_before:?}: {v}");
        }
    }
}

#[test]
fn an_unknown_option_is_one_line_naming_it_never_clap_dash_dash_advice() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in leaf_commands() {
        if passes_to_git(&cmd) {
            continue;
        }
        for bad in ["-B", "-Z", "--no-such-option"] {
            if bad == "-B" && cmd == ["git", "worktree", "add"] {
                // git's -B, which `git worktree add` has.
                continue;
            }
            let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            args.push(bad);
            args.push("x");
            let r = run_in(tmp.path(), &args);
            assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
            assert!(
                !r.stderr.contains("-- ") && !r.stderr.contains("tip:"),
                "{args:?}: clap's advice: {}",
                r.stderr
            );
            assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
            assert!(
                r.stderr.starts_with("cowtree: ") && r.stderr.contains(&format!("'{bad}'")),
                "{args:?}: {}",
                r.stderr
            );
            assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);

            args.insert(0, "--json");
            let r = run_in(tmp.path(), &args);
            assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
            let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
            assert_eq!(v["exit"], 2);
            assert_eq!(v["error"]["kind"], "usage");
            assert!(v["error"]["message"].as_str().unwrap().contains(bad));
        }
    }
}

#[test]
fn an_option_git_worktree_add_has_and_cowtree_does_not_says_git_handles_it() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_in(
        tmp.path(),
        &["git", "worktree", "add", "--no-such-git-option", "x"],
    );
    assert_eq!(r.code(), Some(2));
    assert!(
        r.stderr.contains("'--no-such-git-option'") && r.stderr.contains("`git worktree add`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_failure_under_json_is_one_error_object_on_stdout_with_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    // A store that does not exist (an error of the store layer), a missing snapshot name, a
    // usage error, and git's own failure through `git worktree remove`.
    let store = tmp.path().join("nostore");
    let cases: [Vec<&str>; 4] = [
        vec!["ls", "--store", store.to_str().unwrap()],
        vec!["clone", "/nonexistent/src", "dst"],
        vec!["checkout"],
        vec!["git", "worktree", "remove", "/nonexistent"],
    ];
    for case in cases {
        let mut args = vec!["--json"];
        args.extend(case.iter());
        let r = run_in(tmp.path(), &args);
        assert!(!r.ok(), "{args:?} succeeded");
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {:?}", r.stdout));
        assert_eq!(v["exit"], r.code().unwrap(), "{args:?}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(!msg.is_empty(), "{args:?}: {v}");
        assert!(
            r.stderr.contains(msg),
            "{args:?}: stderr does not say it: {}",
            r.stderr
        );
        let keys: Vec<&String> = v["error"].as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["kind", "message", "path"].contains(&k.as_str())),
            "{args:?}: {v}"
        );
    }
}
