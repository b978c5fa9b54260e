//! `cowtree hook claude-code ...` run as Claude Code runs it: the payload on stdin, stdout read
//! as the worktree's path. Payloads of each shape Claude Code versions have sent (and unknown
//! fields), refusals of payloads that name no worktree, removal, and `install` merging into
//! existing settings and changing nothing the second time. Where the branch starts without a
//! base in the payload: Claude Code's `worktree.baseRef` read from each settings file alone and
//! together (its precedence), files it would skip, `"fresh"` from a real clone of a bare
//! `origin` (fetched when stale, never longer than the cap) and its fallbacks; and the ignored
//! files `.worktreeinclude` names, and only those, in the new worktree.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common::BIN;
use cowtree_testutil::git;
use cowtree_testutil::{Fs, git_cmd, scratch};

fn env(c: &mut Command, root: &Path) {
    c.env_remove("COWTREE_STORE")
        // What Claude Code gives its hooks, and a test run inside Claude Code would pass on.
        .env_remove("CLAUDE_PROJECT_DIR")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env("HOME", root.join("home"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
}

/// Runs `cowtree hook claude-code EVENT` in `cwd` with `payload` on stdin.
fn hook(root: &Path, cwd: &Path, event: &str, payload: &str) -> Output {
    hook_with(root, cwd, event, payload, &[])
}

/// [`hook`] with these environment variables set too.
fn hook_with(
    root: &Path,
    cwd: &Path,
    event: &str,
    payload: &str,
    vars: &[(&str, &OsStr)],
) -> Output {
    let mut c = Command::new(BIN);
    env(&mut c, root);
    c.envs(vars.iter().copied());
    let mut child = c
        .current_dir(cwd)
        .args(["hook", "claude-code", event])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn make_repo(root: &Path) -> PathBuf {
    let src = root.join("repo");
    fs::create_dir_all(src.join("lib")).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    fs::write(src.join("lib/a.txt"), "one\n").unwrap();
    fs::write(src.join(".gitignore"), ".env\n.claude/\n").unwrap();
    fs::write(src.join(".worktreeinclude"), ".env\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    fs::write(src.join("lib/a.txt"), "two\n").unwrap();
    git(&src, &["commit", "-qam", "two"]);
    git(&src, &["branch", "topic", "HEAD~1"]);
    fs::write(src.join(".env"), "TOKEN=1\n").unwrap();
    src
}

/// A successful create: stdout is the absolute path and a newline, nothing else; the
/// worktree is there, on branch `branch` at `commit`, with a clean status and `.env`.
#[track_caller]
fn assert_created(out: &Output, want: &Path, branch: &str, commit: &str) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout,
        format!("{}\n", want.display()),
        "stdout is the path alone"
    );
    assert!(want.is_absolute());
    assert!(want.join(".git").is_file());
    assert_eq!(git(want, &["status", "--porcelain"]), "");
    assert_eq!(
        git(want, &["symbolic-ref", "HEAD"]).trim(),
        format!("refs/heads/{branch}")
    );
    assert_eq!(git(want, &["rev-parse", "HEAD"]).trim(), commit);
    assert_eq!(fs::read(want.join(".env")).unwrap(), b"TOKEN=1\n");
}

#[test]
fn worktree_create_reads_every_payload_shape_and_prints_only_the_path() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root);
    let head = git(&src, &["rev-parse", "HEAD"]).trim().to_owned();
    let topic = git(&src, &["rev-parse", "topic"]).trim().to_owned();
    let wts = src.join(".claude/worktrees");
    let s = src.to_str().unwrap();

    // The shape current Claude Code sends (captured from a run): no path, no base.
    let out = hook(
        root,
        root,
        "worktree-create",
        &format!(
            r#"{{"session_id":"abc","transcript_path":"/tmp/t.jsonl","cwd":"{s}","hook_event_name":"WorktreeCreate","name":"agent-1"}}"#
        ),
    );
    assert_created(&out, &wts.join("agent-1"), "agent-1", &head);

    // `worktree_name` and `base_commit`.
    let out = hook(
        root,
        root,
        "worktree-create",
        &format!(r#"{{"worktree_name":"agent-2","cwd":"{s}","base_commit":"{topic}"}}"#),
    );
    assert_created(&out, &wts.join("agent-2"), "agent-2", &topic);

    // A path given, `base_ref`, unknown fields of every type.
    let elsewhere = root.join("elsewhere/w3");
    let out = hook(
        root,
        root,
        "worktree-create",
        &format!(
            r#"{{"worktree_path":"{}","base_ref":"topic","cwd":"{s}","isolation_type":"worktree","n":3,"x":{{"y":[1,null,true]}}}}"#,
            elsewhere.display()
        ),
    );
    assert_created(&out, &elsewhere, "w3", &topic);

    // `base_path` for the repository, `name`, run from elsewhere.
    let out = hook(
        root,
        root,
        "worktree-create",
        &format!(r#"{{"hook_event_name":"WorktreeCreate","base_path":"{s}","name":"agent-4"}}"#),
    );
    assert_created(&out, &wts.join("agent-4"), "agent-4", &head);

    // No directory in the payload: the current one (Claude Code runs hooks in the project).
    let out = hook(root, &src, "worktree-create", r#"{"name":"agent-5"}"#);
    assert_created(&out, &wts.join("agent-5"), "agent-5", &head);

    // Removal, as `git worktree remove`: gone, and git no longer lists it.
    let target = wts.join("agent-1");
    let out = hook(
        root,
        root,
        "worktree-remove",
        &format!(
            r#"{{"session_id":"abc","hook_event_name":"WorktreeRemove","worktree_path":"{}","cwd":"{s}"}}"#,
            target.display()
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(!target.exists());
    assert!(!git(&src, &["worktree", "list"]).contains("agent-1 "));

    // A worktree with changes is kept, as git keeps it, and the hook fails.
    let dirty = wts.join("agent-2");
    fs::write(dirty.join("lib/a.txt"), "edited\n").unwrap();
    let out = hook(
        root,
        root,
        "worktree-remove",
        &format!(r#"{{"worktree_path":"{}"}}"#, dirty.display()),
    );
    assert!(!out.status.success());
    assert!(dirty.join("lib/a.txt").exists());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("modified or untracked files"), "{err}");
}

#[test]
fn a_payload_that_names_no_worktree_is_refused_in_one_line_and_nothing_is_made() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root);
    let s = src.to_str().unwrap();
    let before = git(&src, &["worktree", "list", "--porcelain"]);
    let branches = git(&src, &["branch"]);
    for (payload, phrase) in [
        (String::new(), "stdin was empty"),
        ("not json".to_owned(), "not JSON"),
        ("[1,2]".to_owned(), "not a JSON object"),
        ("{}".to_owned(), "names no worktree"),
        (
            format!(r#"{{"cwd":"{s}","session_id":"x"}}"#),
            "names no worktree",
        ),
        (format!(r#"{{"cwd":"{s}","name":""}}"#), "names no worktree"),
        (
            format!(r#"{{"cwd":"{s}","name":"../escape"}}"#),
            "not a plain relative name",
        ),
        (
            format!(r#"{{"cwd":"{s}","name":"/abs"}}"#),
            "not a plain relative name",
        ),
    ] {
        let out = hook(root, root, "worktree-create", &payload);
        let err = String::from_utf8_lossy(&out.stderr);
        // A payload that cannot be acted on is bad usage: exit 2 (docs/json.md).
        assert_eq!(out.status.code(), Some(2), "{payload}: {err}");
        assert!(out.stdout.is_empty(), "{payload}: stdout {:?}", out.stdout);
        assert_eq!(err.lines().count(), 1, "{payload}: {err}");
        assert!(err.contains(phrase), "{payload}: {err}");
    }
    let out = hook(root, root, "worktree-remove", r#"{"cwd":"/x"}"#);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no worktree"));
    assert_eq!(git(&src, &["worktree", "list", "--porcelain"]), before);
    assert_eq!(git(&src, &["branch"]), branches);
    assert!(!root.join("escape").exists() && !src.join(".claude").exists());
}

/// What `install` writes: the settings JSON, parsed.
fn settings(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn install(root: &Path, cwd: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    env(&mut c, root);
    c.current_dir(cwd)
        .args(["hook", "claude-code", "install"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn install_merges_both_hooks_into_existing_settings_once_and_they_run() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root);
    let file = src.join(".claude/settings.local.json");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let original = r#"{
  "permissions": {"allow": ["Bash(npm test)"], "deny": []},
  "env": {"FOO": "bar"},
  "hooks": {
    "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard"}]}]
  },
  "model": "x"
}"#;
    fs::write(&file, original).unwrap();

    let out = install(root, &src, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("added the WorktreeCreate and WorktreeRemove hooks"),
        "{said}"
    );
    let mut v = settings(&file);
    let old: serde_json::Value = serde_json::from_str(original).unwrap();
    let hooks = v["hooks"].as_object_mut().unwrap();
    let create = hooks.remove("WorktreeCreate").unwrap();
    let remove = hooks.remove("WorktreeRemove").unwrap();
    assert_eq!(v, old, "every other entry is as it was");
    let command = create[0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(create[0]["hooks"][0]["type"], "command");
    assert!(
        command.ends_with("hook claude-code worktree-create"),
        "{command}"
    );
    assert!(create[0].get("matcher").is_none());
    assert!(
        remove[0]["hooks"][0]["command"]
            .as_str()
            .unwrap()
            .ends_with("hook claude-code worktree-remove")
    );
    // The keys stay in their order.
    let text = fs::read_to_string(&file).unwrap();
    let pos = |k: &str| text.find(k).unwrap();
    assert!(pos("permissions") < pos("\"env\"") && pos("\"env\"") < pos("PreToolUse"));
    assert!(pos("PreToolUse") < pos("WorktreeCreate") && pos("hooks") < pos("\"model\""));

    // Twice: nothing changes, and it says so.
    let bytes = fs::read(&file).unwrap();
    let out = install(root, &src, &["--json"]);
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["added"], serde_json::json!([]));
    assert_eq!(
        j["present"],
        serde_json::json!(["WorktreeCreate", "WorktreeRemove"])
    );
    assert_eq!(fs::read(&file).unwrap(), bytes);

    // The command as installed runs: through a shell, as Claude Code runs it.
    let mut c = Command::new("sh");
    env(&mut c, root);
    let mut child = c
        .arg("-c")
        .arg(&command)
        .current_dir(&src)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"name":"via-settings"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let want = src.join(".claude/worktrees/via-settings");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", want.display()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --user: the user's settings file, created.
    let out = install(root, &src, &["--user"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = settings(&root.join("home/.claude/settings.json"));
    assert!(user["hooks"]["WorktreeCreate"].is_array());
    assert!(user["hooks"]["WorktreeRemove"].is_array());

    // Settings that are not JSON are left alone.
    fs::write(&file, "{ not json").unwrap();
    let out = install(root, &src, &[]);
    assert!(!out.status.success());
    assert_eq!(fs::read(&file).unwrap(), b"{ not json");
}

const HEAD_SETTING: &str = r#"{"worktree": {"baseRef": "head"}}"#;
const FRESH_SETTING: &str = r#"{"model": "x", "worktree": {"baseRef": "fresh"}}"#;

/// A repository as most Claude Code users have one: a clone of a bare `origin` (so that
/// `origin/HEAD` is `origin/main`), with a commit of its own not pushed (so that "fresh" and
/// "head" give different commits), and the ignored `.env` that `.worktreeinclude` names.
struct Clone {
    origin: PathBuf,
    repo: PathBuf,
    /// `origin/main`.
    remote: String,
    /// The clone's HEAD, one commit ahead of `origin/main`.
    local: String,
}

fn make_clone(root: &Path) -> Clone {
    let seed = root.join("seed");
    fs::create_dir_all(seed.join("lib")).unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    fs::write(seed.join("lib/a.txt"), "one\n").unwrap();
    fs::write(seed.join(".gitignore"), ".env\n.claude/\n").unwrap();
    fs::write(seed.join(".worktreeinclude"), ".env\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "one"]);
    git(root, &["clone", "-q", "--bare", "seed", "origin.git"]);
    git(root, &["clone", "-q", "origin.git", "repo"]);
    let repo = root.join("repo");
    fs::write(repo.join("lib/a.txt"), "two, not pushed\n").unwrap();
    git(&repo, &["commit", "-qam", "two"]);
    fs::write(repo.join(".env"), "TOKEN=1\n").unwrap();
    let remote = git(&repo, &["rev-parse", "origin/main"]).trim().to_owned();
    let local = git(&repo, &["rev-parse", "HEAD"]).trim().to_owned();
    assert_ne!(remote, local);
    assert_eq!(
        git(&repo, &["symbolic-ref", "refs/remotes/origin/HEAD"]).trim(),
        "refs/remotes/origin/main"
    );
    Clone {
        origin: root.join("origin.git"),
        repo,
        remote,
        local,
    }
}

/// A commit on `origin`'s main made elsewhere (as a teammate pushes one); its id.
fn push_to_origin(root: &Path, origin: &Path, text: &str) -> String {
    let other = root.join("other");
    if !other.exists() {
        git(root, &["clone", "-q", origin.to_str().unwrap(), "other"]);
    }
    git(&other, &["pull", "-q", "--ff-only"]);
    fs::write(other.join("lib/a.txt"), text).unwrap();
    git(&other, &["commit", "-qam", text.trim()]);
    git(&other, &["push", "-q", "origin", "main"]);
    git(&other, &["rev-parse", "HEAD"]).trim().to_owned()
}

/// The payload current Claude Code sends: the session's directory and a name, no base.
fn name_only(repo: &Path, name: &str) -> String {
    format!(
        r#"{{"session_id":"s","transcript_path":"/tmp/t.jsonl","cwd":"{}","hook_event_name":"WorktreeCreate","name":"{name}"}}"#,
        repo.display()
    )
}

/// Writes `text` to `path`, or removes it for `None`.
fn put(path: &Path, text: Option<&str>) {
    match text {
        Some(t) => {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, t).unwrap();
        }
        None => {
            let _ = fs::remove_file(path);
        }
    }
}

/// The worktree `name` was made at `commit` (see [`assert_created`]), on a branch with no
/// upstream.
#[track_caller]
fn assert_made_at(out: &Output, repo: &Path, name: &str, commit: &str) {
    let wt = repo.join(".claude/worktrees").join(name);
    assert_created(out, &wt, name, commit);
    let up = git_cmd(repo)
        .args(["rev-parse", "--abbrev-ref", &format!("{name}@{{upstream}}")])
        .output()
        .unwrap();
    assert!(!up.status.success(), "{name} has an upstream");
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn without_a_base_the_branch_starts_where_worktree_base_ref_says_with_claude_codes_precedence() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let c = make_clone(root);
    let user = root.join("home/.claude/settings.json");
    let project = c.repo.join(".claude/settings.json");
    let local = c.repo.join(".claude/settings.local.json");
    let (h, f) = (Some(HEAD_SETTING), Some(FRESH_SETTING));
    // (user, project, local) -> HEAD (true) or origin/main, and the file that decided.
    type Case<'a> = ([Option<&'a str>; 3], bool, Option<&'a Path>);
    let cases: &[Case] = &[
        ([None, None, None], false, None),
        ([h, None, None], true, Some(&user)),
        ([None, h, None], true, Some(&project)),
        ([None, None, h], true, Some(&local)),
        ([f, None, None], false, Some(&user)),
        ([h, f, None], false, Some(&project)),
        ([f, h, None], true, Some(&project)),
        ([None, h, f], false, Some(&local)),
        ([f, None, h], true, Some(&local)),
        ([h, h, f], false, Some(&local)),
        ([f, f, h], true, Some(&local)),
        ([h, f, h], true, Some(&local)),
        // A file that sets something else leaves the value of the file below in force.
        (
            [
                h,
                Some(r#"{"worktree": {"sparsePaths": ["lib"]}}"#),
                Some("{}"),
            ],
            true,
            Some(&user),
        ),
    ];
    for (i, (files, at_head, decided)) in cases.iter().enumerate() {
        for (path, text) in [&user, &project, &local].into_iter().zip(files) {
            put(path, *text);
        }
        let name = format!("case-{i}");
        let out = hook(root, root, "worktree-create", &name_only(&c.repo, &name));
        let want = if *at_head { &c.local } else { &c.remote };
        assert_made_at(&out, &c.repo, &name, want);
        let err = stderr(&out);
        let said = err
            .lines()
            .find(|l| l.contains("the branch starts at"))
            .unwrap_or_else(|| panic!("case {i}: {err}"));
        match decided {
            Some(p) => assert!(said.contains(&p.display().to_string()), "case {i}: {said}"),
            None => assert!(said.contains("Claude Code's default"), "case {i}: {said}"),
        }
        assert!(
            said.contains(if *at_head {
                "at HEAD"
            } else {
                "at origin/main"
            }),
            "case {i}: {said}"
        );
        assert!(!err.contains("warning"), "case {i}: {err}");
    }
}

#[test]
fn a_base_in_the_payload_wins_over_the_setting() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let c = make_clone(root);
    let local = c.repo.join(".claude/settings.local.json");
    let r = c.repo.display();
    put(&local, Some(HEAD_SETTING));
    let out = hook(
        root,
        root,
        "worktree-create",
        &format!(
            r#"{{"cwd":"{r}","name":"p1","base_commit":"{}"}}"#,
            c.remote
        ),
    );
    assert_created(&out, &c.repo.join(".claude/worktrees/p1"), "p1", &c.remote);
    put(&local, Some(FRESH_SETTING));
    let out = hook(
        root,
        root,
        "worktree-create",
        &format!(r#"{{"cwd":"{r}","name":"p2","base_ref":"HEAD"}}"#),
    );
    assert_created(&out, &c.repo.join(".claude/worktrees/p2"), "p2", &c.local);
    // The settings are not even read: no word about where the branch starts, or about a
    // settings file that is broken.
    put(&local, Some("{ broken"));
    let out = hook(
        root,
        root,
        "worktree-create",
        &format!(r#"{{"cwd":"{r}","name":"p3","base_commit":"{}"}}"#, c.local),
    );
    assert_created(&out, &c.repo.join(".claude/worktrees/p3"), "p3", &c.local);
    let err = stderr(&out);
    // No word about where the branch starts; the settings are still read for the other
    // worktree settings (worktree.sparsePaths, worktree.symlinkDirectories), so the broken
    // file is named as skipped.
    assert!(!err.contains("starts at"), "{err}");
    assert!(err.contains("skipped, as Claude Code skips"), "{err}");
}

#[test]
fn a_settings_file_claude_code_would_skip_is_skipped_with_a_warning_naming_it() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let c = make_clone(root);
    let user = root.join("home/.claude/settings.json");
    let project = c.repo.join(".claude/settings.json");
    let local = c.repo.join(".claude/settings.local.json");
    put(&user, Some(HEAD_SETTING));
    // (the file, its text, what the warning says); each time the user's "head" applies.
    for (i, (path, text, says)) in [
        (&local, r#"{"worktree": {"baseRef": "main"}}"#, "\"main\""),
        (&local, r#"{"worktree": {"baseRef": "HEAD"}}"#, "\"HEAD\""),
        (&local, r#"{"worktree": "fresh"}"#, "not an object"),
        (&project, "{ \"worktree\": ", "not valid JSON"),
        (&project, r#"["worktree"]"#, "not a JSON object"),
    ]
    .into_iter()
    .enumerate()
    {
        put(path, Some(text));
        let name = format!("bad-{i}");
        let out = hook(root, root, "worktree-create", &name_only(&c.repo, &name));
        assert_made_at(&out, &c.repo, &name, &c.local);
        let err = stderr(&out);
        let warning = err
            .lines()
            .find(|l| l.contains("warning"))
            .unwrap_or_else(|| panic!("{text}: {err}"));
        assert!(warning.contains(&path.display().to_string()), "{warning}");
        assert!(
            warning.contains(says) && warning.contains("skipped"),
            "{warning}"
        );
        assert_eq!(err.matches("warning").count(), 1, "{err}");
        put(path, None);
    }
    // A settings file that cannot be read (here: a directory in its place) is skipped too.
    fs::create_dir_all(&local).unwrap();
    let out = hook(
        root,
        root,
        "worktree-create",
        &name_only(&c.repo, "unreadable"),
    );
    assert_made_at(&out, &c.repo, "unreadable", &c.local);
    assert!(stderr(&out).contains("cannot be read"), "{}", stderr(&out));
    fs::remove_dir(&local).unwrap();

    // The setting as one dotted key is not Claude Code's: ignored, with a word; "fresh" applies.
    put(&user, None);
    put(&local, Some(r#"{"worktree.baseRef": "head"}"#));
    let out = hook(root, root, "worktree-create", &name_only(&c.repo, "dotted"));
    assert_made_at(&out, &c.repo, "dotted", &c.remote);
    let err = stderr(&out);
    assert!(
        err.contains("not read by Claude Code") && err.contains(&local.display().to_string()),
        "{err}"
    );
}

#[test]
fn claude_config_dir_and_claude_project_dir_move_the_user_and_project_files() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let c = make_clone(root);
    let config = root.join("claude-config");
    let run = |name: &str, vars: &[(&str, &OsStr)]| {
        hook_with(
            root,
            root,
            "worktree-create",
            &name_only(&c.repo, name),
            vars,
        )
    };
    // With CLAUDE_CONFIG_DIR, ~/.claude/settings.json is not the user's file any more.
    put(&root.join("home/.claude/settings.json"), Some(HEAD_SETTING));
    let out = run("cfg-1", &[("CLAUDE_CONFIG_DIR", config.as_os_str())]);
    assert_made_at(&out, &c.repo, "cfg-1", &c.remote);
    put(&config.join("settings.json"), Some(HEAD_SETTING));
    put(&root.join("home/.claude/settings.json"), None);
    let out = run("cfg-2", &[("CLAUDE_CONFIG_DIR", config.as_os_str())]);
    assert_made_at(&out, &c.repo, "cfg-2", &c.local);
    assert!(stderr(&out).contains(&config.join("settings.json").display().to_string()));
    put(&config.join("settings.json"), None);

    // The project's settings are where Claude Code started (a subdirectory here) ...
    let sub = c.repo.join("lib");
    put(&sub.join(".claude/settings.json"), Some(HEAD_SETTING));
    let out = run("proj-1", &[("CLAUDE_PROJECT_DIR", sub.as_os_str())]);
    assert_made_at(&out, &c.repo, "proj-1", &c.local);
    // ... and only there: without the variable, the top of the worktree.
    let out = run("proj-2", &[]);
    assert_made_at(&out, &c.repo, "proj-2", &c.remote);
    // A CLAUDE_PROJECT_DIR of another repository (a hook run by hand in another session) is
    // not this repository's project.
    let other = root.join("elsewhere");
    fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q"]);
    put(&other.join(".claude/settings.json"), Some(HEAD_SETTING));
    put(&sub.join(".claude/settings.json"), None);
    let out = run("proj-3", &[("CLAUDE_PROJECT_DIR", other.as_os_str())]);
    assert_made_at(&out, &c.repo, "proj-3", &c.remote);

    // The local settings are the main checkout's, also for a session in a linked worktree.
    put(
        &c.repo.join(".claude/settings.local.json"),
        Some(HEAD_SETTING),
    );
    let linked = root.join("linked");
    git(
        &c.repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "linked",
            linked.to_str().unwrap(),
        ],
    );
    fs::write(linked.join(".env"), "TOKEN=1\n").unwrap();
    fs::write(linked.join("lib/a.txt"), "three\n").unwrap();
    git(&linked, &["commit", "-qam", "three"]);
    let linked_head = git(&linked, &["rev-parse", "HEAD"]).trim().to_owned();
    let out = hook(
        root,
        root,
        "worktree-create",
        &name_only(&linked, "from-linked-2"),
    );
    // "head" in a linked worktree is that worktree's HEAD.
    assert_created(
        &out,
        &linked.join(".claude/worktrees/from-linked-2"),
        "from-linked-2",
        &linked_head,
    );
}

#[test]
fn fresh_fetches_origin_when_the_repository_was_not_fetched_for_a_day() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let c = make_clone(root);
    let fetch_head = c.repo.join(".git/FETCH_HEAD");
    assert!(!fetch_head.exists(), "a clone has not fetched");
    // Never fetched: fetched first, so the branch starts at what origin has now.
    let pushed = push_to_origin(root, &c.origin, "pushed\n");
    let out = hook(root, root, "worktree-create", &name_only(&c.repo, "f1"));
    assert_made_at(&out, &c.repo, "f1", &pushed);
    assert!(fetch_head.exists());
    // Fetched a moment ago: origin is not asked again; the cached origin/main.
    let newer = push_to_origin(root, &c.origin, "newer\n");
    let out = hook(root, root, "worktree-create", &name_only(&c.repo, "f2"));
    assert_made_at(&out, &c.repo, "f2", &pushed);
    // A day and an hour ago: fetched.
    fs::File::options()
        .write(true)
        .open(&fetch_head)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(25 * 3600))
        .unwrap();
    let out = hook(root, root, "worktree-create", &name_only(&c.repo, "f3"));
    assert_made_at(&out, &c.repo, "f3", &newer);
    assert_eq!(git(&c.repo, &["rev-parse", "origin/main"]).trim(), newer);
    // Nothing but the remote-tracking branch moved: the checkout's own branch is as it was.
    assert_eq!(git(&c.repo, &["rev-parse", "main"]).trim(), c.local);
}

#[test]
fn fresh_falls_back_as_claude_code_does() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let c = make_clone(root);
    let gone = root.join("gone.git");
    let origin = c.origin.to_str().unwrap();

    // origin cannot be reached, origin/HEAD is cached: the cached origin/main, and why.
    git(
        &c.repo,
        &["remote", "set-url", "origin", gone.to_str().unwrap()],
    );
    let out = hook(root, root, "worktree-create", &name_only(&c.repo, "cached"));
    assert_made_at(&out, &c.repo, "cached", &c.remote);
    let err = stderr(&out);
    assert!(
        err.contains("fetching origin/main from origin failed") && err.contains("cached"),
        "{err}"
    );

    // Nor is origin/HEAD: HEAD, and why.
    git(&c.repo, &["remote", "set-head", "origin", "--delete"]);
    let out = hook(
        root,
        root,
        "worktree-create",
        &name_only(&c.repo, "unknown"),
    );
    assert_made_at(&out, &c.repo, "unknown", &c.local);
    let err = stderr(&out);
    assert!(
        err.contains("origin/HEAD is not known here") && err.contains("starts at HEAD"),
        "{err}"
    );

    // origin/HEAD not cached, origin reachable: origin is asked for its default branch.
    git(&c.repo, &["remote", "set-url", "origin", origin]);
    let out = hook(root, root, "worktree-create", &name_only(&c.repo, "asked"));
    assert_made_at(&out, &c.repo, "asked", &c.remote);
    assert_eq!(
        git(&c.repo, &["symbolic-ref", "refs/remotes/origin/HEAD"]).trim(),
        "refs/remotes/origin/main"
    );

    // A remote that does not answer is given 5 s, then the cached origin/main.
    git(&c.repo, &["config", "protocol.ext.allow", "always"]);
    git(&c.repo, &["remote", "set-url", "origin", "ext::sleep 60"]);
    fs::File::options()
        .write(true)
        .open(c.repo.join(".git/FETCH_HEAD"))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400))
        .unwrap();
    let t = Instant::now();
    let out = hook(root, root, "worktree-create", &name_only(&c.repo, "silent"));
    let took = t.elapsed();
    assert_made_at(&out, &c.repo, "silent", &c.remote);
    assert!(
        stderr(&out).contains("no answer within 5 s"),
        "{}",
        stderr(&out)
    );
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(20),
        "{took:?}"
    );
    git(&c.repo, &["remote", "set-url", "origin", origin]);

    // No remote "origin" at all: HEAD, and why.
    git(&c.repo, &["remote", "remove", "origin"]);
    let out = hook(
        root,
        root,
        "worktree-create",
        &name_only(&c.repo, "no-origin"),
    );
    assert_made_at(&out, &c.repo, "no-origin", &c.local);
    assert!(
        stderr(&out).contains("no remote \"origin\""),
        "{}",
        stderr(&out)
    );
}

/// Every path in the tree at `dir`, relative, without `.git`.
fn tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_name() == ".git" {
                continue;
            }
            let p = e.path();
            out.insert(p.strip_prefix(base).unwrap().to_str().unwrap().to_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_worktree_gets_the_ignored_files_worktreeinclude_names_and_no_other_ignored_file() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = root.join("repo");
    fs::create_dir_all(src.join("lib")).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    fs::write(src.join("lib/a.txt"), "one\n").unwrap();
    fs::write(
        src.join(".gitignore"),
        ".env\n.env.*\nconfig/local.json\nconfig/cache/\ntarget/\n*.log\nsecrets/\n.claude/\n",
    )
    .unwrap();
    fs::write(
        src.join(".worktreeinclude"),
        "# what a new worktree needs to run\n.env\n.env.*\n!.env.example\nconfig/local.json\n",
    )
    .unwrap();
    fs::create_dir_all(src.join("config")).unwrap();
    fs::write(src.join("config/app.toml"), "tracked\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    let head = git(&src, &["rev-parse", "HEAD"]).trim().to_owned();
    for (path, text) in [
        (".env", "TOKEN=1\n"),
        (".env.local", "LOCAL=1\n"),
        (".env.example", "ignored, named, then negated\n"),
        ("config/local.json", "{}\n"),
        ("config/cache/blob", "ignored directory\n"),
        ("target/debug/app", "build output\n"),
        ("build.log", "log\n"),
        ("secrets/key", "private\n"),
        (".claude/settings.local.json", "{}\n"),
        ("notes.txt", "untracked, not ignored\n"),
    ] {
        put(&src.join(path), Some(text));
    }
    let out = hook(root, root, "worktree-create", &name_only(&src, "inc"));
    let wt = src.join(".claude/worktrees/inc");
    assert_created(&out, &wt, "inc", &head);
    let want: BTreeSet<String> = [
        ".gitignore",
        ".worktreeinclude",
        "lib",
        "lib/a.txt",
        "config",
        "config/app.toml",
        // What .worktreeinclude names, and git ignores:
        ".env",
        ".env.local",
        "config/local.json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(tree(&wt), want);
    assert_eq!(fs::read(wt.join(".env.local")).unwrap(), b"LOCAL=1\n");
    assert_eq!(fs::read(wt.join("config/local.json")).unwrap(), b"{}\n");
}

/// `uvx cowtree hook claude-code install`: the program runs from uv's disposable environment,
/// first on PATH, so "the `cowtree` on PATH is this program" holds only while it runs. The
/// bare `cowtree` is never written: with no command shown to run this cowtree later, install
/// refuses and changes nothing; with a lasting install of the same version further on PATH,
/// that one's path is written. (The written `uvx --from cowtree==VERSION` command, with a real
/// uv, is tested with the wheel: crates/cowtree-py/tests/test_hook_install.py.)
#[test]
fn install_from_a_disposable_uv_environment_never_writes_a_bare_cowtree() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let root = dir.path();
    let src = make_repo(root);
    let cache_bin = root.join("home/.cache/uv/archive-v0/Ab3xYz/bin");
    let lasting = root.join("lasting/bin");
    let empty = root.join("empty");
    for d in [&cache_bin, &lasting, &empty] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(
        root.join("home/.cache/uv/CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    fs::copy(BIN, cache_bin.join("cowtree")).unwrap();
    let file = src.join(".claude/settings.local.json");
    let run = |path: &str| {
        let mut c = Command::new(cache_bin.join("cowtree"));
        env(&mut c, root);
        c.current_dir(&src)
            .env("PATH", path)
            .env_remove("UV_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .args(["hook", "claude-code", "install", "--json"])
            .output()
            .unwrap()
    };
    // No uvx, no other cowtree: refused, nothing written.
    // The git tests use (first on the test's own PATH), then the system's directories.
    let git_dir = String::from_utf8(
        Command::new("sh")
            .args(["-c", "dirname \"$(command -v git)\""])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let system = format!("{}:/usr/bin:/bin", git_dir.trim());
    let path = format!("{}:{}:{system}", cache_bin.display(), empty.display());
    let out = run(&path);
    let err = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("disposable environment"), "{err}");
    assert!(err.contains("uv tool install cowtree"), "{err}");
    assert!(
        !file.exists(),
        "settings written: {}",
        fs::read_to_string(&file).unwrap()
    );

    // A lasting install of the same version further on PATH: its path is the command.
    fs::copy(BIN, lasting.join("cowtree")).unwrap();
    let path = format!("{}:{}:{system}", cache_bin.display(), lasting.display());
    let out = run(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["how"], "persistent", "{j}");
    let want = lasting.join("cowtree").canonicalize().unwrap();
    assert_eq!(j["command"], want.to_str().unwrap(), "{j}");
    let v = settings(&file);
    assert_eq!(
        v["hooks"]["WorktreeCreate"][0]["hooks"][0]["command"],
        format!("{} hook claude-code worktree-create", want.display())
    );
    // The environment goes (`uv cache clean`); the hook still runs, as Claude Code runs it.
    fs::remove_dir_all(root.join("home/.cache/uv")).unwrap();
    let command = v["hooks"]["WorktreeCreate"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = Command::new("sh");
    env(&mut c, root);
    let mut child = c
        .arg("-c")
        .arg(&command)
        .env("PATH", format!("{}:{system}", empty.display()))
        .current_dir(&src)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!(r#"{{"name":"later","cwd":"{}"}}"#, src.display()).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(made.join(".git").is_file(), "{}", made.display());
}

/// With a WorktreeCreate hook, Claude Code applies none of its own worktree settings: the hook
/// does. `worktree.sparsePaths` (merged across the settings files) gives the cone-mode sparse
/// worktree git's `sparse-checkout set --cone` gives; `worktree.symlinkDirectories` links
/// those directories of the main checkout into the new worktree (absent ones are left out,
/// names that are not plain relative paths refused with a line on stderr).
#[test]
fn the_hook_applies_sparse_paths_and_symlink_directories_from_the_settings() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root);
    for f in ["app/main.rs", "docs/guide.md", "assets/big.bin", "top.txt"] {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, f).unwrap();
    }
    // A tracked symlink leading out of the worktree, relative: in the main checkout it names
    // a directory holding `x`, in the new worktree another one, outside it.
    std::os::unix::fs::symlink("../m-outside", src.join("out")).unwrap();
    fs::create_dir_all(root.join("m-outside/x")).unwrap();
    // Without a trailing slash: the link is a symlink, not a directory, to git.
    fs::write(src.join(".gitignore"), ".env\n.claude/\nnode_modules\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "monorepo"]);
    fs::create_dir_all(src.join(".claude/worktrees/m-outside")).unwrap();
    fs::create_dir_all(src.join("node_modules/pkg")).unwrap();
    fs::write(src.join("node_modules/pkg/index.js"), "x").unwrap();
    fs::create_dir_all(src.join(".claude")).unwrap();
    fs::write(
        src.join(".claude/settings.json"),
        r#"{"worktree": {"baseRef": "head", "sparsePaths": ["app"], "symlinkDirectories": ["node_modules", "missing", "../escape", "out/x"]}}"#,
    )
    .unwrap();
    fs::write(
        src.join(".claude/settings.local.json"),
        r#"{"worktree": {"sparsePaths": ["docs", "app"]}}"#,
    )
    .unwrap();
    // A copy of the repository for git's three commands, made before the hook runs.
    let theirs = root.join("theirs");
    cowtree_testutil::tool(
        "cp",
        &[OsStr::new("-a"), src.as_os_str(), theirs.as_os_str()],
    );
    let payload = format!(r#"{{"name":"sparse1","cwd":"{}"}}"#, src.display());
    let out = hook(root, &src, "worktree-create", &payload);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let wt = src.join(".claude/worktrees/sparse1");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        wt.to_str().unwrap()
    );
    assert!(wt.join("app/main.rs").is_file() && wt.join("docs/guide.md").is_file());
    assert!(
        wt.join("top.txt").is_file() && !wt.join("assets").exists(),
        "{err}"
    );
    assert_eq!(git(&wt, &["sparse-checkout", "list"]), "app\ndocs\n");
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    // The same as git's three commands in the copy.
    let by_git = root.join("by-git");
    git(
        &theirs,
        &[
            "worktree",
            "add",
            "-q",
            "--no-checkout",
            "-b",
            "sparse1",
            by_git.to_str().unwrap(),
        ],
    );
    git(
        &by_git,
        &["sparse-checkout", "set", "--cone", "app", "docs"],
    );
    git(&by_git, &["checkout", "-q"]);
    let listing = |wt: &Path| git(wt, &["ls-files", "--stage", "-t", "-v"]);
    assert_eq!(listing(&wt), listing(&by_git));
    // The links: node_modules to the main checkout's; the missing one left out; the escape
    // refused.
    let link = fs::read_link(wt.join("node_modules")).unwrap();
    assert_eq!(link, src.join("node_modules"));
    assert_eq!(
        fs::read(wt.join("node_modules/pkg/index.js")).unwrap(),
        b"x"
    );
    assert!(!wt.join("missing").exists());
    assert!(
        err.contains("\"../escape\" is not a plain relative path"),
        "{err}"
    );
    assert!(!root.join("escape").exists());
    // Not through the tracked symlink, out of the worktree.
    assert!(
        err.contains("out is a symlink in the new worktree; \"out/x\" not linked"),
        "{err}"
    );
    assert!(
        fs::symlink_metadata(src.join(".claude/worktrees/m-outside/x")).is_err(),
        "a link made outside the worktree"
    );
}
