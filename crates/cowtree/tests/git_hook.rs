//! `cowtree hook claude-code ...` run as Claude Code runs it: the payload on stdin, stdout read
//! as the worktree's path. Payloads of each shape Claude Code versions have sent (and unknown
//! fields), refusals of payloads that name no worktree, removal, and `install` merging into
//! existing settings and changing nothing the second time.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::BIN;
use cowtree_testutil::{Fs, git_cmd, scratch};

#[track_caller]
fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn env(c: &mut Command, root: &Path) {
    c.env_remove("COWTREE_STORE")
        .env("HOME", root.join("home"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid");
}

/// Runs `cowtree hook claude-code EVENT` in `cwd` with `payload` on stdin.
fn hook(root: &Path, cwd: &Path, event: &str, payload: &str) -> Output {
    let mut c = Command::new(BIN);
    env(&mut c, root);
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
