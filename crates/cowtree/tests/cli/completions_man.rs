//! `cowtree completions SHELL` loads without errors in bash, zsh and fish (as Debian installs
//! them), and completes run-time values by asking the binary: snapshot names of the store,
//! git refs for `cowtree git worktree add`; every page `cowtree man --dir` writes renders with
//! `man -l` without a warning.
//!
//! A shell or `man` that is not installed is skipped (a failure under
//! `COWTREE_TEST_REQUIRE_FS=1`, as in CI, where scripts/test.sh installs them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::BIN;
use cowtree_testutil::{Fs, git_cmd, scratch, skip};

/// The directory holding the binary under test, first on PATH: the scripts run `cowtree`.
fn path_with_bin() -> std::ffi::OsString {
    let dir = Path::new(BIN).parent().expect("the binary's directory");
    let mut p = dir.as_os_str().to_owned();
    p.push(":");
    p.push(std::env::var_os("PATH").unwrap_or_default());
    p
}

fn installed(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(&format!("{tool} is not installed"));
    }
    found
}

/// A store with the snapshots `alpha-snap` and `beta-snap`, in its own HOME.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        let dir = scratch(Fs::Xfs)?;
        let f = Fixture { dir };
        fs::create_dir_all(f.p("src")).unwrap();
        fs::write(f.p("src/a.txt"), b"a\n").unwrap();
        for name in ["alpha-snap", "beta-snap"] {
            let out = f
                .shell("cowtree")
                .arg("snapshot")
                .arg(f.p("src"))
                .args(["--name", name, "--quiet"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        Some(f)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `program` with PATH, HOME and COWTREE_STORE set for the fixture.
    fn shell(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir.path())
            .env("PATH", path_with_bin())
            .env("HOME", self.p("home"))
            .env("XDG_STATE_HOME", self.p("home/state"))
            .env("XDG_DATA_HOME", self.p("home/data"))
            .env("XDG_CONFIG_HOME", self.p("home/config"))
            .env("COWTREE_STORE", self.p("store"))
            .env_remove("COWTREE_COMPLETE");
        c
    }
}

#[track_caller]
fn assert_clean(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{what}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

/// bash: the function the script defines, called as bash's programmable completion calls it,
/// with the words of `line` (the last one being completed).
fn bash_complete(f: &Fixture, cwd: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "set -u; source <(cowtree completions bash) || exit 9\n\
         COMP_WORDS=({}); COMP_CWORD={}; COMP_TYPE=9; COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         _clap_complete_cowtree cowtree '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let out = f
        .shell("bash")
        .current_dir(cwd)
        .args(["--norc", "--noprofile", "-c", &script])
        .output()
        .unwrap();
    assert_clean(&out, "bash completion")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_loads_the_script_and_completes_commands_snapshot_names_and_git_refs() {
    if !installed("bash") {
        return;
    }
    let Some(f) = Fixture::new() else { return };
    let out = f
        .shell("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            "source <(cowtree completions bash) && complete -p cowtree",
        ])
        .output()
        .unwrap();
    let loaded = assert_clean(&out, "bash loads the script");
    assert!(loaded.contains("_clap_complete_cowtree"), "{loaded}");

    let cmds = bash_complete(&f, f.dir.path(), &["cowtree", "sto"]);
    assert_eq!(cmds, ["stores"], "commands");
    let snaps = bash_complete(&f, f.dir.path(), &["cowtree", "checkout", ""]);
    for n in ["alpha-snap", "beta-snap"] {
        assert!(snaps.contains(&n.to_string()), "{snaps:?}");
    }
    let snaps = bash_complete(&f, f.dir.path(), &["cowtree", "show", "be"]);
    assert_eq!(snaps, ["beta-snap"]);

    // git refs, in a repository with a branch and a tag.
    let repo = f.p("repo");
    fs::create_dir_all(&repo).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["commit", "-q", "--allow-empty", "-m", "one"],
        &["branch", "feature-x"],
        &["tag", "v1.0"],
    ] {
        let st = git_cmd(&repo).args(args).status().unwrap();
        assert!(st.success(), "git {args:?}");
    }
    let refs = bash_complete(
        &f,
        &repo,
        &["cowtree", "git", "worktree", "add", "../wt", ""],
    );
    for r in ["feature-x", "main", "v1.0", "HEAD"] {
        assert!(refs.contains(&r.to_string()), "{r} in {refs:?}");
    }
}

#[test]
fn zsh_loads_the_script_sourced_and_from_fpath() {
    if !installed("zsh") {
        return;
    }
    let Some(f) = Fixture::new() else { return };
    // Sourced after compinit, as `source <(cowtree completions zsh)` in .zshrc.
    let out = f
        .shell("zsh")
        .args([
            "-f",
            "-c",
            "autoload -U compinit && compinit -u -D && source <(cowtree completions zsh) \
             && print -r -- ${_comps[cowtree]}",
        ])
        .output()
        .unwrap();
    let comp = assert_clean(&out, "zsh sources the script");
    assert_eq!(comp.trim(), "_clap_dynamic_completer_cowtree");
    // Installed as _cowtree in a directory of $fpath (share/zsh/site-functions).
    let fpath = f.p("zfunc");
    fs::create_dir_all(&fpath).unwrap();
    let script = f
        .shell("cowtree")
        .args(["completions", "zsh"])
        .output()
        .unwrap();
    fs::write(fpath.join("_cowtree"), &script.stdout).unwrap();
    let out = f
        .shell("zsh")
        .args([
            "-f",
            "-c",
            &format!(
                "fpath=({} $fpath); autoload -U compinit && compinit -u -D \
                 && print -r -- ${{_comps[cowtree]}}",
                fpath.display()
            ),
        ])
        .output()
        .unwrap();
    let comp = assert_clean(&out, "zsh finds _cowtree in fpath");
    assert_eq!(comp.trim(), "_cowtree");
}

#[test]
fn fish_loads_the_script_and_completes_snapshot_names() {
    if !installed("fish") {
        return;
    }
    let Some(f) = Fixture::new() else { return };
    let out = f
        .shell("fish")
        .args([
            "--no-config",
            "-c",
            "cowtree completions fish | source; and complete -C'cowtree checkout '",
        ])
        .output()
        .unwrap();
    let got = assert_clean(&out, "fish completion");
    for n in ["alpha-snap", "beta-snap"] {
        assert!(
            got.lines().any(|l| l.split('\t').next() == Some(n)),
            "{n} in {got}"
        );
    }
    let out = f
        .shell("fish")
        .args([
            "--no-config",
            "-c",
            "cowtree completions fish | source; and complete -C'cowtree stor'",
        ])
        .output()
        .unwrap();
    let got = assert_clean(&out, "fish completes commands");
    assert!(got.lines().any(|l| l.starts_with("stores")), "{got}");
}

/// `man`'s output without its overstrikes (bold is `N\bN`, underline `_\bx`), as `col -b`.
fn plain(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn every_manual_page_renders_with_man_without_a_warning() {
    if !installed("man") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man", "--json", "--dir"])
        .arg(dir.path().join("man1"))
        .output()
        .unwrap();
    assert_clean(&out, "cowtree man --dir");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pages: Vec<&str> = v["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for must in [
        "cowtree.1",
        "cowtree-checkout.1",
        "cowtree-stores-rm.1",
        "cowtree-completions.1",
        "cowtree-git-worktree-add.1",
    ] {
        assert!(pages.contains(&must), "{must} in {pages:?}");
    }
    for page in &pages {
        let path = dir.path().join("man1").join(page);
        let out = Command::new("man")
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .env("LC_ALL", "C.UTF-8")
            .args(["--warnings", "-l"])
            .arg(&path)
            .output()
            .unwrap();
        let text = plain(&assert_clean(&out, &format!("man -l {page}")));
        let title = page.trim_end_matches(".1").to_uppercase();
        assert!(text.contains(&title), "{page}: {text}");
        assert!(text.contains("NAME"), "{page}: {text}");
    }
    // One page to stdout, as `cowtree man stores rm | man -l -` reads it.
    let out = Command::new(BIN)
        .args(["man", "stores", "rm"])
        .output()
        .unwrap();
    let roff = assert_clean(&out, "cowtree man stores rm");
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH COWTREE-STORES-RM"),
        "{roff}"
    );
    let bad = Command::new(BIN).args(["man", "nosuch"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}
