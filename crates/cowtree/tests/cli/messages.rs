//! Every command a message prints (`cowtree ...` between backquotes) runs as printed: each
//! test here makes cowtree print one, takes the command out of the message, runs it exactly
//! as printed (same directory, same environment) and checks that it does what the message
//! says. `every_printed_command_is_run_by_a_test` keeps the list complete: a new message that
//! prints a command must be added to `PRINTED` with the test that runs it.

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, Ran, run_limited, suggested};
use cowtree_testutil::{Fs, XorShift, pattern, scratch};

/// A HOME and XDG directories of the test's own.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("cowtree-env-")
                .tempdir()
                .expect("temp dir for HOME"),
        }
    }

    fn command(&self, cwd: &Path) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(cwd)
            .env_remove("COWTREE_STORE")
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"));
        c
    }

    /// `cowtree ARGS` run in `cwd`.
    fn run(&self, cwd: &Path, args: &[&OsStr]) -> Ran {
        let mut c = self.command(cwd);
        c.args(args);
        run_limited(c, Duration::from_secs(120))
    }

    /// The one command `message` prints, run exactly as printed in `cwd`.
    #[track_caller]
    fn run_printed(&self, cwd: &Path, message: &str) -> Ran {
        let cmds = suggested::commands(message);
        assert_eq!(cmds.len(), 1, "one command printed: {message}");
        self.run_words(cwd, &cmds[0])
    }

    fn run_words(&self, cwd: &Path, words: &[String]) -> Ran {
        assert_eq!(words[0], "cowtree", "{words:?}");
        let mut c = self.command(cwd);
        c.args(&words[1..]);
        run_limited(c, Duration::from_secs(120))
    }
}

fn s(x: &str) -> &OsStr {
    OsStr::new(x)
}

fn tree(root: &Path, files: u64, size: usize, seed: u64) {
    for i in 0..files {
        let p = root.join(format!("d{}/f{i}", i % 5));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, pattern(size, seed * 1000 + i)).unwrap();
    }
}

/// A store at `dir/store` with snapshot `v1` of a small tree (and `v2`, one file changed), and
/// a worktree of `v1` at `dir/wt`.
fn store_and_worktree(env: &Env, dir: &Path) -> (PathBuf, PathBuf) {
    let store = dir.join("store");
    let src = dir.join("src");
    tree(&src, 20, 300, 1);
    let st = store.as_os_str();
    env.run(
        dir,
        &[
            s("--store"),
            st,
            s("snapshot"),
            src.as_os_str(),
            s("--name"),
            s("v1"),
        ],
    )
    .assert_ok("snapshot v1");
    fs::write(src.join("d1/f1"), b"second version\n").unwrap();
    env.run(
        dir,
        &[
            s("--store"),
            st,
            s("snapshot"),
            src.as_os_str(),
            s("--name"),
            s("v2"),
        ],
    )
    .assert_ok("snapshot v2");
    let wt = dir.join("wt");
    env.run(
        dir,
        &[s("--store"), st, s("checkout"), s("v1"), wt.as_os_str()],
    )
    .assert_ok("checkout");
    (store, wt)
}

/// Where each command a message prints is run: (file, a piece of its line, the test). A line
/// prints a command when a string on it holds `cowtree` or a placeholder between backquotes.
const PRINTED: &[(&str, &str, &str)] = &[
    // The pool of spare worktrees.
    (
        "crates/cowtree/src/cmd/pool.rs",
        "`cowtree git worktree pool status` shows it",
        "git_pool::pool_messages_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-git/src/pool/fill.rs",
        "`cowtree git worktree pool set 4` \\",
        "git_pool::pool_messages_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-git/src/pool/mod.rs",
        "`cowtree git worktree pool set 4` writes it anew",
        "git_pool::pool_messages_print_commands_that_run_as_printed",
    ),
    // switch and reset of a snapshot made with --archive.
    (
        "crates/cowtree/src/cmd/mod.rs",
        "--archive); `{checkout}` makes a worktree with them",
        "snapshot_archive::snapshot_archive_and_checkout_keep_what_cp_a_keeps_on_xfs_and_btrfs",
    ),
    // The store and the worktree layer.
    (
        "crates/cowtree-store/src/error.rs",
        "(commit them with `{}`, discard them with",
        "switch_refused_prints_the_snapshot_and_the_reset_that_get_past_it",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "`{}`, or use --force)",
        "switch_refused_prints_the_snapshot_and_the_reset_that_get_past_it",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "has an interrupted switch to {to}; `{} {to}` finishes it",
        "status_of_an_interrupted_switch_prints_the_switch_that_finishes_it",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "\" (name one; `cowtree checkout --help` says",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "\" (`cowtree checkout --help` says how to make one)\"",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "none exists yet (`cowtree snapshot --help` says",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "is missing from the store (needed for {}); the store is damaged",
        "a_missing_blob_and_a_dangling_name_print_the_verify_and_rm_that_deal_with_them",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "\"/w is not a worktree registered in the store /s (`cowtree checkout --help`",
        "(a unit test's expected text)",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "\"/w/d is not inside a worktree registered in the store /s (name one; `cowtree",
        "(a unit test's expected text)",
    ),
    (
        "crates/cowtree-store/src/verify.rs",
        "(an interrupted rm?); `{}`",
        "a_missing_blob_and_a_dangling_name_print_the_verify_and_rm_that_deal_with_them",
    ),
    // Remote messages: crates/cowtree/tests/remote/remote.rs (run against the S3 server).
    (
        "crates/cowtree/src/cmd/retention.rs",
        "`cowtree remote gc {}` frees their content",
        "remote_gc.rs: forget_rm_and_gc_drop_what_no_kept_snapshot_needs_and_keep_the_rest_exact",
    ),
    (
        "crates/cowtree-remote/src/error.rs",
        "does not match its name or size",
        "remote.rs: messages_about_remotes_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-remote/src/error.rs",
        "`cowtree --store {} gc` frees them",
        "remote.rs: a_pull_that_fills_the_disk_removes_what_it_fetched_or_says_what_gc_frees",
    ),
    (
        "crates/cowtree-remote/src/config.rs",
        "\"no remote named {name:?} (`cowtree remote ls` lists",
        "remote.rs: messages_about_remotes_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-remote/src/config.rs",
        "no remote configured (`cowtree remote add --help`",
        "remote.rs: messages_about_remotes_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-remote/src/config.rs",
        "(remove it first with `cowtree{store} remote rm{flag} {}`)",
        "remote.rs: messages_about_remotes_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-remote/src/config.rs",
        "\"no remote named {name:?}{} (`cowtree remote ls` lists",
        "remote.rs: messages_about_remotes_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-remote/src/push.rs",
        "saw it at {}; `{}` moves this store's name there",
        "remote.rs: messages_about_remotes_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree-remote/src/push.rs",
        "which this store has not seen; `{}` moves",
        "remote.rs: messages_about_remotes_print_commands_that_run_as_printed",
    ),
    (
        "crates/cowtree/src/cmd/pull.rs",
        "(`{head} --force {}` moves the name; `{head} {}` fetches the snapshot and leaves",
        "remote.rs: pull_refuses_to_move_a_local_name_off_this_hosts_own_snapshot_unless_forced",
    ),
    // The command line.
    (
        "crates/cowtree/src/cmd/rm.rs",
        "\"{}   (`{}` removes it)\"",
        "rm_refused_and_done_print_the_worktree_rm_and_gc_to_run",
    ),
    (
        "crates/cowtree/src/cmd/rm.rs",
        "\"removed snapshot {id} (`{}` frees its blobs)\"",
        "rm_refused_and_done_print_the_worktree_rm_and_gc_to_run",
    ),
    (
        "crates/cowtree/src/cmd/snapshot.rs",
        "\"blobs already stored are freed by `{}`\"",
        "an_interrupted_snapshot_prints_the_gc_that_frees_its_blobs",
    ),
    (
        "crates/cowtree/src/cmd/snapshot.rs",
        "(to record this directory: `cowtree snapshot .`)",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree/src/cmd/ls.rs",
        "(`cowtree snapshot --help` says how to record one)",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree/src/cmd/mod.rs",
        "`cowtree stores` lists the",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree/src/cmd/mod.rs",
        "(searched {}; `cowtree checkout --help` says",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree/src/cmd/switch.rs",
        "\"the switch is journaled in the store: `{}`",
        "an_interrupted_switch_or_reset_prints_the_command_that_finishes_it",
    ),
    (
        "crates/cowtree/src/cmd/reset.rs",
        "\"each file is either restored or as it was: `{}`",
        "an_interrupted_switch_or_reset_prints_the_command_that_finishes_it",
    ),
    (
        "crates/cowtree/src/main.rs",
        "None => format!(\" (see `{command} --help`)\")",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree/src/main.rs",
        "(format!(\"{prefix}{msg} (see `{command} --help`)\"), 2)",
        "commands_that_find_nothing_print_what_to_run",
    ),
    (
        "crates/cowtree/src/interrupt.rs",
        "`cowtree clone --recover {}` (until then its temporary entries",
        "clone_merge.rs (the merge's interrupt tests run it)",
    ),
    // Printed only where a test cannot make cowtree print them on purpose; each is built as
    // those above are (`cowtree_store::error::command`, `shell_word`), which the tests run.
    (
        "crates/cowtree-store/src/checkout/stage.rs",
        "\"warning: could not remove staging {} (`{}` removes it)",
        "not triggered: needs the removal of a checkout's own staging to fail",
    ),
    (
        "crates/cowtree/src/cmd/gc.rs",
        "\"`{}` finishes it\"",
        "not triggered: gc cannot be interrupted at a chosen point",
    ),
    (
        "crates/cowtree/src/cmd/checkout.rs",
        "\"{} was already complete (`cowtree status -C {}` checks it)\"",
        "not triggered: needs a signal between the rename and the exit",
    ),
    (
        "crates/cowtree-git/src/run.rs",
        "`cowtree gc` removes \\",
        "git_interrupt.rs: an_interrupted_add_whose_staging_cannot_be_removed_leaves_it_all_to_the_printed_gc",
    ),
    (
        "crates/cowtree/src/cmd/gc.rs",
        "the next `cowtree gc` tries again",
        "git_interrupt.rs: an_interrupted_add_whose_staging_cannot_be_removed_leaves_it_all_to_the_printed_gc",
    ),
    (
        "crates/cowtree/src/cmd/stores.rs",
        "`cowtree stores --prune` removes {} from the list",
        "stores_and_probe_print_the_prune_and_the_convert_that_run_as_printed",
    ),
    (
        "crates/cowtree/src/cmd/probe.rs",
        "\"subvolume:   no (`cowtree subvolume convert {}` makes it one)\"",
        "stores_and_probe_print_the_prune_and_the_convert_that_run_as_printed",
    ),
    // Backquotes that name no command to run.
    (
        "crates/cowtree/src/cmd/subvolume.rs",
        "# make it a subvolume: `cowtree clone` then snapshots it",
        "help text: an example's comment",
    ),
    (
        "crates/cowtree/src/cmd/subvolume.rs",
        "# then `cowtree clone ~/src/app DST` is one snapshot",
        "help text: an example's comment",
    ),
    (
        "crates/cowtree/src/main.rs",
        "`cowtree {name}` uses no store",
        "not a suggestion: it names the command that was given",
    ),
    (
        "crates/cowtree/src/cmd/hook.rs",
        "hook{} (running `{} hook claude-code ...`: {}){}",
        "not a suggestion: the command the hook runs (run as written in git_hook.rs: \
         install_from_a_disposable_uv_environment_never_writes_a_bare_cowtree, and with uvx \
         and pipx in crates/cowtree-py/tests/test_hook_install.py)",
    ),
    (
        "crates/cowtree/src/cmd/hook/program.rs",
        "the `cowtree` on PATH",
        "not a suggestion: says which program the hook command names",
    ),
    (
        "crates/cowtree/src/cmd/hook/program.rs",
        "no `cowtree` is on PATH",
        "not a suggestion: says why the hook command is an absolute path",
    ),
    (
        "crates/cowtree/src/cmd/hook/program.rs",
        "the command that makes it again, checked to print `{}`",
        "not a suggestion: the version line the launcher printed",
    ),
    (
        "crates/cowtree/src/cmd/hook/program.rs",
        "tried.push(format!(\"`{} --version` {e}\"",
        "not a suggestion: what was tried (the launcher's --version), said in the refusal",
    ),
    (
        "crates/cowtree/src/cmd/hook/program.rs",
        "`cowtree hook claude-code install` with that one",
        "install_from_a_disposable_uv_environment_never_writes_a_bare_cowtree (git_hook.rs) \
         runs the install again with a lasting install on PATH",
    ),
    (
        "crates/cowtree/src/cmd/hook/program.rs",
        "printed `{said}`, not `{}`",
        "not a suggestion: what a launcher printed for --version",
    ),
    (
        "crates/cowtree-git/src/filters.rs",
        "the required filter driver `{driver}` failed",
        "not a suggestion: names the repository's filter driver",
    ),
    // `cowtree stores rm`: run as printed in crates/cowtree/tests/cli/stores_rm.rs.
    (
        "crates/cowtree-store/src/error.rs",
        "subvolumes, `cowtree stores rm {}` removes it)",
        "stores_rm.rs: what_rm_rf_leaves_of_a_store_is_refused_with_the_stores_rm_that_removes_it",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "`cowtree stores rm {}` finishes removing it",
        "stores_rm.rs: an_interrupted_stores_rm_is_refused_by_every_command_and_finished_by_the_printed_stores_rm",
    ),
    (
        "crates/cowtree-store/src/error.rs",
        "(`cowtree worktree rm DIR`), or add --force",
        "a placeholder, not run: stores_rm.rs: \
         stores_rm_refuses_while_worktrees_are_registered_and_with_force_deletes_the_trees_and_forgets_the_store \
         checks that the worktrees are named",
    ),
    (
        "crates/cowtree/src/cmd/stores_rm.rs",
        "(`cowtree stores` lists the known ones)",
        "stores_rm.rs: stores_rm_refuses_a_directory_holding_what_no_store_holds_and_a_missing_path_prints_stores",
    ),
    (
        "crates/cowtree/src/cmd/stores_rm.rs",
        "(and refused by every command): `{again}` finishes removing it",
        "not triggered: needs a signal during the removal; the command is the one the store's \
         error prints, run in stores_rm.rs: an_interrupted_stores_rm_...",
    ),
    (
        "crates/cowtree/src/cmd/stores_rm.rs",
        "the store is partly removed: `{again}` finishes removing it",
        "not triggered: needs the removal to fail partway; the command is the one the store's \
         error prints, run in stores_rm.rs: an_interrupted_stores_rm_...",
    ),
];

/// The lines of the project's sources (not comments) that print a `cowtree ...` command, as
/// (file, line).
fn printed_in_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    let mut stack = vec![root.join("crates")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // Not the tests, builds, or the wheel's generated files (scripts/wheel.sh
                // remakes crates/cowtree-py/build-data while these tests run beside it).
                if !p.ends_with("tests") && !p.ends_with("target") && !p.ends_with("build-data") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension() != Some(OsStr::new("rs"))
                || !p.components().any(|c| c.as_os_str() == "src")
            {
                continue;
            }
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for line in fs::read_to_string(&p).unwrap().lines() {
                let t = line.trim_start();
                if t.starts_with("//") || !(line.contains("`cowtree") || line.contains("`{")) {
                    continue;
                }
                out.push((rel.clone(), line.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_printed_command_is_run_by_a_test() {
    let found = printed_in_sources();
    let mut unlisted = Vec::new();
    for (file, line) in &found {
        if !PRINTED
            .iter()
            .any(|(f, piece, _)| f == file && line.contains(piece))
        {
            unlisted.push(format!("{file}: {}", line.trim()));
        }
    }
    assert!(
        unlisted.is_empty(),
        "messages print commands that no test runs (add each to PRINTED in \
         crates/cowtree/tests/cli/messages.rs, with a test that runs it as printed):\n  {}",
        unlisted.join("\n  ")
    );
    for (file, piece, test) in PRINTED {
        assert!(
            found.iter().any(|(f, l)| f == file && l.contains(piece)),
            "PRINTED lists {file}: {piece:?} ({test}), which no source prints any more"
        );
    }
}

#[test]
fn suggested_commands_are_found_and_split_as_a_shell_would() {
    let m = "x (`cowtree pull --force v3` moves it; `cowtree switch -C '/a b/it'\\''s' 0f`), \
             not `git status`";
    assert_eq!(
        suggested::commands(m),
        [
            vec!["cowtree", "pull", "--force", "v3"],
            vec!["cowtree", "switch", "-C", "/a b/it's", "0f"]
        ]
    );
    assert_eq!(
        cowtree_store::error::command(Path::new("/s p"), &["rm", "n"], Path::new("")),
        "cowtree --store '/s p' rm n"
    );
}

#[test]
fn switch_refused_prints_the_snapshot_and_the_reset_that_get_past_it() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let env = Env::new();
    // A directory name a shell would split: the printed commands quote it.
    let dir = x.path().join("my dir");
    fs::create_dir(&dir).unwrap();
    let (_, wt) = store_and_worktree(&env, &dir);
    let refused = |env: &Env| {
        fs::write(wt.join("d1/f1"), b"local change\n").unwrap();
        let r = env.run(&dir, &[s("switch"), s("-C"), wt.as_os_str(), s("v2")]);
        assert_eq!(r.code(), Some(1), "{}", r.stderr);
        let cmds = suggested::commands(&r.stderr);
        assert_eq!(cmds.len(), 2, "{}", r.stderr);
        cmds
    };
    // The snapshot commits the change (it becomes the base); the switch then goes through,
    // leaving the change in the snapshot.
    let cmds = refused(&env);
    let snap = env.run_words(x.path(), &cmds[0]);
    snap.assert_ok("the printed snapshot");
    let r = env.run(&dir, &[s("switch"), s("-C"), wt.as_os_str(), s("v2")]);
    r.assert_ok("switch after the printed snapshot");
    assert_eq!(fs::read(wt.join("d1/f1")).unwrap(), b"second version\n");
    // The reset discards it.
    env.run(&dir, &[s("switch"), s("-C"), wt.as_os_str(), s("v1")])
        .assert_ok("back to v1");
    let cmds = refused(&env);
    env.run_words(x.path(), &cmds[1])
        .assert_ok("the printed reset");
    let st = env.run(&dir, &[s("status"), s("-C"), wt.as_os_str()]);
    assert_eq!(
        st.assert_ok("status").stdout,
        "",
        "the change was discarded"
    );
}

/// Records in worktree `wt`'s registry record that a switch to `to` was under way (as a switch
/// killed after its journal was written leaves it: docs/worktree.md).
fn journal_a_switch(env: &Env, store: &Path, wt: &Path, from: &str, to: &str) {
    let list = env.run(
        store,
        &[
            s("--store"),
            store.as_os_str(),
            s("worktree"),
            s("list"),
            s("--json"),
        ],
    );
    let v = list.assert_ok("worktree list").json();
    let id = v["worktrees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == wt.to_str().unwrap())
        .expect("the worktree is listed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = store.join("worktrees").join(&id);
    let mut rec: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    rec["pending"] = serde_json::json!({"op": "switch", "from": from, "to": to});
    rec["also_pins"] = serde_json::json!([from, to]);
    fs::write(&file, serde_json::to_vec(&rec).unwrap()).unwrap();
}

fn id_of(env: &Env, store: &Path, name: &str) -> String {
    let r = env.run(
        store,
        &[
            s("--store"),
            store.as_os_str(),
            s("show"),
            s("--json"),
            s(name),
        ],
    );
    r.assert_ok("show").json()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn status_of_an_interrupted_switch_prints_the_switch_that_finishes_it() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let env = Env::new();
    let (store, wt) = store_and_worktree(&env, x.path());
    let (v1, v2) = (id_of(&env, &store, "v1"), id_of(&env, &store, "v2"));
    journal_a_switch(&env, &store, &wt, &v1, &v2);
    // status refuses, printing the switch with its arguments in their places.
    let st = env.run(&wt, &[s("status")]);
    assert_eq!(st.code(), Some(1), "{}", st.stderr);
    assert!(
        st.stderr.contains("has an interrupted switch to"),
        "{}",
        st.stderr
    );
    // Run from anywhere, as printed, it finishes the switch.
    env.run_printed(Path::new("/"), &st.stderr)
        .assert_ok("the printed switch");
    let st = env.run(&wt, &[s("status")]);
    assert_eq!(st.assert_ok("status after it").stdout, "");
    assert_eq!(fs::read(wt.join("d1/f1")).unwrap(), b"second version\n");
}

#[test]
fn commands_that_find_nothing_print_what_to_run() {
    // On the host filesystem, as the test's default store: no other test's store is in the way.
    let Some(x) = scratch(Fs::NoCow) else { return };
    let env = Env::new();
    let here = x.path().join("plain");
    fs::create_dir(&here).unwrap();
    fs::write(here.join("f"), b"x").unwrap();
    // No store anywhere yet: a checkout says so and points at how to record one.
    let r = env.run(&here, &[s("checkout"), s("v1"), s("out")]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("none exists yet"), "{}", r.stderr);
    let help = env.run_printed(&here, &r.stderr);
    assert!(
        help.assert_ok("snapshot --help")
            .stdout
            .contains("Usage: cowtree snapshot")
    );
    // `snapshot` outside a worktree: the printed command records this directory (in the
    // default store, which is on this filesystem).
    let r = env.run(&here, &[s("snapshot")]);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    for cmd in suggested::commands(&r.stderr) {
        env.run_words(&here, &cmd).assert_ok("each printed command");
    }
    let store = env.dir.path().join("data/cowtree");
    assert!(
        store.join("format").is_file(),
        "recorded in the default store"
    );
    // Not inside a worktree (status searching the stores, then with a store named).
    for args in [
        vec![s("status")],
        vec![
            s("--store"),
            store.as_os_str(),
            s("status"),
            s("-C"),
            here.as_os_str(),
        ],
        vec![s("--store"), store.as_os_str(), s("status")],
    ] {
        let r = env.run(&here, &args);
        assert_eq!(r.code(), Some(1), "{args:?}: {}", r.stderr);
        let help = env.run_printed(&here, &r.stderr);
        assert!(
            help.assert_ok("checkout --help")
                .stdout
                .contains("Usage: cowtree checkout")
        );
    }
    // A store named that does not exist: `cowtree stores` lists the known ones.
    let none = x.path().join("nostore");
    let r = env.run(&here, &[s("--store"), none.as_os_str(), s("ls")]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    let stores = env.run_printed(&here, &r.stderr);
    assert!(
        stores
            .assert_ok("stores")
            .stdout
            .contains(store.to_str().unwrap()),
        "{}",
        stores.stdout
    );
    // An empty store.
    let empty = x.path().join("empty");
    common::init_store(&empty);
    let r = env.run(&here, &[s("--store"), empty.as_os_str(), s("ls")]);
    env.run_printed(&here, &r.assert_ok("ls").stdout)
        .assert_ok("snapshot --help");
    // A usage error names the help of the command.
    for args in [vec![s("ls"), s("--no-such-option")], vec![s("checkout")]] {
        let r = env.run(&here, &args);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        env.run_printed(&here, &r.stderr)
            .assert_ok("the printed --help");
    }
}

#[test]
fn a_missing_blob_and_a_dangling_name_print_the_verify_and_rm_that_deal_with_them() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let env = Env::new();
    let (store, _) = store_and_worktree(&env, x.path());
    // A blob of v1 gone from the store (d0/f0's): a checkout stops, naming the verify to run.
    let hex = cowtree_store::Hash::of(&pattern(300, 1000)).to_hex();
    fs::remove_file(store.join("blobs").join(&hex[..2]).join(&hex[2..])).unwrap();
    let r = env.run(
        x.path(),
        &[
            s("--store"),
            store.as_os_str(),
            s("checkout"),
            s("v1"),
            s("wt2"),
        ],
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("is missing from the store"),
        "{}",
        r.stderr
    );
    let v = env.run_printed(Path::new("/"), &r.stderr);
    assert_eq!(v.code(), Some(4), "verify finds the damage: {}", v.stdout);
    assert!(v.stdout.contains("missing"), "{}", v.stdout);
    // A name pointing at no snapshot: verify warns, printing the rm that removes it.
    fs::write(store.join("refs/stale"), format!("{}\n", "ab".repeat(32))).unwrap();
    let r = env.run(x.path(), &[s("--store"), store.as_os_str(), s("verify")]);
    let said = format!("{}{}", r.stdout, r.stderr);
    let cmds = suggested::commands(&said);
    let rm = cmds
        .iter()
        .find(|c| c.contains(&"rm".to_string()))
        .expect("an rm printed");
    env.run_words(Path::new("/"), rm)
        .assert_ok("the printed rm");
    assert!(!store.join("refs/stale").exists());
}

#[test]
fn rm_refused_and_done_print_the_worktree_rm_and_gc_to_run() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let env = Env::new();
    let (store, wt) = store_and_worktree(&env, x.path());
    let st = store.as_os_str();
    let r = env.run(x.path(), &[s("--store"), st, s("rm"), s("v1")]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    env.run_printed(Path::new("/"), &r.stderr)
        .assert_ok("the printed worktree rm");
    assert!(!wt.exists());
    let r = env.run(x.path(), &[s("--store"), st, s("rm"), s("v1")]);
    env.run_printed(Path::new("/"), &r.assert_ok("rm").stdout)
        .assert_ok("the printed gc");
    let j = env.run(
        x.path(),
        &[s("--store"), st, s("gc"), s("--json"), s("--dry-run")],
    );
    let v = j.assert_ok("gc --json").json();
    assert_eq!(v["blobs_removed"], 0, "the printed gc freed them: {v}");
}

/// Starts `cowtree ARGS` in `cwd` and sends it SIGINT after `delay` (once its handler is
/// installed); its output.
fn interrupted(env: &Env, cwd: &Path, args: &[&OsStr], delay: Duration) -> std::process::Output {
    let mut c = env.command(cwd);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("start cowtree");
    let started = Instant::now();
    // The handler thread is named cowtree-signals.
    while started.elapsed() < Duration::from_secs(10) {
        let tasks = fs::read_dir(format!("/proc/{}/task", child.id()));
        let named = tasks.is_ok_and(|t| {
            t.filter_map(|e| e.ok()).any(|e| {
                fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "cowtree-signals")
            })
        });
        if named {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(delay);
    // SAFETY: the child is ours and not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    child.wait_with_output().expect("wait for cowtree")
}

/// Where the signal goes: a delay drawn between `lo` and `hi` microseconds after cowtree's
/// signal thread is up, narrowed by what each run showed (too early: the step wanted had not
/// begun; too late: the run had ended). Under load a run takes longer than `took` said, and
/// the window moves with it instead of the test missing it.
struct Window {
    lo: u64,
    hi: u64,
    rng: XorShift,
}

impl Window {
    fn new(took: Duration) -> Window {
        Window {
            lo: 0,
            hi: took.as_micros() as u64,
            rng: XorShift::from_clock("interrupt"),
        }
    }

    fn draw(&mut self) -> u64 {
        if self.hi <= self.lo {
            // Both ends met: the run is slower (or faster) than it was; open it again.
            self.hi = self.lo * 2 + 1000;
            self.lo /= 2;
        }
        self.lo + self.rng.below(self.hi - self.lo + 1)
    }

    /// A signal after `delay` came before what the test wants.
    fn too_early(&mut self, delay: u64) {
        self.lo = self.lo.max(delay);
    }

    /// A signal after `delay` came after it (or after the end).
    fn too_late(&mut self, delay: u64) {
        self.hi = self.hi.min(delay);
    }
}

/// Runs `args` in `cwd`, interrupting it at a point drawn from `window` until a run is
/// interrupted; the message of that run and the delay. `reset` puts things back before each
/// run.
fn until_interrupted(
    env: &Env,
    cwd: &Path,
    args: &[&OsStr],
    window: &mut Window,
    reset: &dyn Fn(),
) -> (String, u64) {
    for _ in 0..40 {
        reset();
        let delay = window.draw();
        let o = interrupted(env, cwd, args, Duration::from_micros(delay));
        match o.status.code() {
            Some(0) => window.too_late(delay),
            Some(130) => return (String::from_utf8_lossy(&o.stderr).into_owned(), delay),
            other => panic!(
                "{args:?} ended with {other:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
        }
    }
    panic!("{args:?} was never interrupted in 40 runs");
}

#[test]
fn an_interrupted_switch_or_reset_prints_the_command_that_finishes_it() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let env = Env::new();
    let store = x.path().join("store");
    let st = store.as_os_str();
    let (a, b) = (x.path().join("a"), x.path().join("b"));
    tree(&a, 3000, 2000, 1);
    tree(&b, 3000, 2000, 2);
    for (src, name) in [(&a, "a"), (&b, "b")] {
        env.run(
            x.path(),
            &[
                s("--store"),
                st,
                s("snapshot"),
                src.as_os_str(),
                s("--name"),
                s(name),
            ],
        )
        .assert_ok("snapshot");
    }
    let wt = x.path().join("wt");
    env.run(
        x.path(),
        &[s("--store"), st, s("checkout"), s("a"), wt.as_os_str()],
    )
    .assert_ok("checkout");
    let t = Instant::now();
    env.run(&wt, &[s("switch"), s("b")]).assert_ok("switch");
    let took = t.elapsed();
    env.run(&wt, &[s("switch"), s("a")])
        .assert_ok("switch back");

    // An interrupted switch: once journaled, the command printed (this one again) finishes
    // it; stopped before its journal or after its end, it says which, and that is so.
    let mut tries = 0;
    let mut window = Window::new(took);
    let msg = loop {
        let (msg, delay) =
            until_interrupted(&env, &wt, &[s("switch"), s("b")], &mut window, &|| {
                let _ = env.run(&wt, &[s("switch"), s("--force"), s("a")]);
            });
        assert!(msg.contains("switch interrupted by SIGINT"), "{msg}");
        if msg.contains("journaled") {
            break msg;
        }
        if msg.contains("was switched") {
            window.too_late(delay);
        } else {
            window.too_early(delay);
        }
        assert_eq!(suggested::commands(&msg).len(), 0, "{msg}");
        let status = env.run(&wt, &[s("status")]);
        assert_eq!(status.assert_ok("status").stdout, "", "{msg}");
        if msg.contains("was switched") {
            cowtree_testutil::assert_diff_clean(&b, &wt);
        } else {
            // "was not changed", or stopped before the switch had begun (nothing said of it).
            cowtree_testutil::assert_diff_clean(&a, &wt);
        }
        tries += 1;
        assert!(tries < 30, "never interrupted midway in 30 tries");
    };
    env.run_printed(&wt, &msg).assert_ok("the printed switch");
    let status = env.run(&wt, &[s("status")]);
    assert_eq!(status.assert_ok("status").stdout, "", "{msg}");
    cowtree_testutil::assert_diff_clean(&b, &wt);

    // An interrupted reset: the command printed finishes it.
    let dirtied: Vec<PathBuf> = (0..3000)
        .step_by(3)
        .map(|i| wt.join(format!("d{}/f{i}", i % 5)))
        .collect();
    let dirty = || {
        for f in &dirtied {
            fs::write(f, b"changed").unwrap();
        }
    };
    let t = Instant::now();
    dirty();
    env.run(&wt, &[s("reset"), s("--hard")]).assert_ok("reset");
    let took = t.elapsed();
    // Stopped before it began, a reset says only that it was interrupted (no command to
    // finish it): try again, as for the switch above.
    let mut tries = 0;
    let mut window = Window::new(took);
    let msg = loop {
        let (msg, delay) =
            until_interrupted(&env, &wt, &[s("reset"), s("--hard")], &mut window, &dirty);
        assert!(msg.contains("reset interrupted by SIGINT"), "{msg}");
        if !suggested::commands(&msg).is_empty() {
            break msg;
        }
        window.too_early(delay);
        // No command: stopped before it said how to finish (it says so before its first
        // change), so every dirtied file is still as `dirty` left it.
        let still_dirty = dirtied
            .iter()
            .filter(|f| fs::read(f).unwrap() == b"changed")
            .count();
        assert_eq!(
            still_dirty,
            dirtied.len(),
            "a reset that printed no command changed files: {msg}"
        );
        tries += 1;
        assert!(tries < 30, "never interrupted midway in 30 tries: {msg}");
    };
    env.run_printed(&wt, &msg).assert_ok("the printed reset");
    cowtree_testutil::assert_diff_clean(&b, &wt);
}

#[test]
fn an_interrupted_snapshot_prints_the_gc_that_frees_its_blobs() {
    let Some(x) = scratch(Fs::Xfs) else { return };
    let env = Env::new();
    let store = x.path().join("store");
    let st = store.as_os_str();
    let src = x.path().join("src");
    tree(&src, 3000, 1500, 3);
    let t = Instant::now();
    env.run(
        x.path(),
        &[s("--store"), st, s("snapshot"), src.as_os_str()],
    )
    .assert_ok("snapshot");
    let took = t.elapsed();
    // Each round records new content, so that an interrupted one leaves blobs no snapshot
    // names.
    let round = std::cell::Cell::new(0u64);
    let copy = x.path().join("copy");
    let fresh = || {
        round.set(round.get() + 1);
        let _ = fs::remove_dir_all(&copy);
        tree(&copy, 3000, 1500, 4 + round.get());
    };
    let args = [s("--store"), st, s("snapshot"), copy.as_os_str()];
    // A signal that comes before the store is opened finds no blobs stored, and the gc
    // sentence is not said then: interrupted again until one comes after (each earlier one
    // still says that no snapshot was recorded).
    let mut msg = String::new();
    let mut window = Window::new(took);
    for _ in 0..10 {
        let delay;
        (msg, delay) = until_interrupted(&env, x.path(), &args, &mut window, &fresh);
        if msg.contains("blobs already stored are freed by") {
            break;
        }
        assert!(msg.contains("no snapshot was recorded"), "{msg}");
        window.too_early(delay);
    }
    assert!(msg.contains("blobs already stored are freed by"), "{msg}");
    // Nor is a manifest being written left (it is written as it is put in order).
    let written: Vec<_> = fs::read_dir(store.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_encoded_bytes().starts_with(b".tmp-"))
        .collect();
    assert!(written.is_empty(), "{written:?}: {msg}");
    env.run_printed(Path::new("/"), &msg)
        .assert_ok("the printed gc");
    let v = env.run(
        x.path(),
        &[s("--store"), st, s("gc"), s("--json"), s("--dry-run")],
    );
    assert_eq!(
        v.assert_ok("gc").json()["blobs_removed"],
        0,
        "the printed gc freed them"
    );
}

#[test]
fn stores_and_probe_print_the_prune_and_the_convert_that_run_as_printed() {
    let (Some(x), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Btrfs)) else {
        return;
    };
    let env = Env::new();
    // A known store that was deleted: stores says so, and its printed prune drops it.
    let gone = x.path().join("gone");
    let src = x.path().join("src");
    tree(&src, 2, 10, 5);
    env.run(
        x.path(),
        &[
            s("--store"),
            gone.as_os_str(),
            s("snapshot"),
            src.as_os_str(),
        ],
    )
    .assert_ok("snapshot");
    fs::remove_dir_all(&gone).unwrap();
    let r = env.run(x.path(), &[s("stores")]);
    env.run_printed(x.path(), &r.assert_ok("stores").stdout)
        .assert_ok("the printed stores --prune");
    let r = env.run(x.path(), &[s("stores")]);
    assert!(
        !r.assert_ok("stores")
            .stdout
            .contains(gone.to_str().unwrap()),
        "{}",
        r.stdout
    );
    // A btrfs directory that is no subvolume: probe prints the convert that makes it one.
    let dir = b.path().join("plain dir");
    tree(&dir, 3, 10, 6);
    let r = env.run(x.path(), &[s("probe"), dir.as_os_str()]);
    env.run_printed(x.path(), &r.assert_ok("probe").stdout)
        .assert_ok("the printed subvolume convert");
    let r = env.run(x.path(), &[s("probe"), dir.as_os_str()]);
    assert!(
        r.assert_ok("probe").stdout.contains("subvolume:   yes"),
        "{}",
        r.stdout
    );
}
