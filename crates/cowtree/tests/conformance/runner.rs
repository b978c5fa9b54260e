//! Running a group of cases: the environment, the copies, the two (or four) runs, the
//! comparison and the report (main.rs says what is compared).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cowtree_testutil::{Fs, scratch};

use crate::cases::{Case, Expect, Only, PRELUDE};
use crate::observe::{self, Obs, Site};

/// A run may take this long before it is killed (and the case reported).
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The branch (and worktree name) of the hook's payload.
const HOOK_NAME: &str = "hooked";

/// A global git configuration the cases run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `init.defaultBranch=main` only.
    Default,
    /// The defaults Git 3.0 announces (Documentation/BreakingChanges).
    Git3,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Git3 => "git3",
        }
    }

    fn global_config(self) -> &'static str {
        match self {
            Profile::Default => "[init]\n\tdefaultBranch = main\n",
            Profile::Git3 => concat!(
                "[init]\n",
                "\tdefaultObjectFormat = sha256\n",
                "\tdefaultRefFormat = reftable\n",
                "\tdefaultBranch = main\n",
                "[safe]\n",
                "\tbareRepository = explicit\n",
            ),
        }
    }
}

/// The profiles `COWTREE_TEST_GIT_PROFILE` asks for (`default`, `git3`, `both`; unset: both).
fn profiles() -> Vec<Profile> {
    match std::env::var("COWTREE_TEST_GIT_PROFILE").as_deref() {
        Ok("default") => vec![Profile::Default],
        Ok("git3") => vec![Profile::Git3],
        Ok("both") | Ok("") | Err(_) => vec![Profile::Default, Profile::Git3],
        Ok(other) => panic!("COWTREE_TEST_GIT_PROFILE={other}: expected default, git3 or both"),
    }
}

/// The fixed environment of every process a case runs (recipe, git, cowtree, observations).
pub struct Env {
    vars: Vec<(String, OsString)>,
}

impl Env {
    fn new(profile_dir: &Path) -> Env {
        let home = profile_dir.join("home");
        let claude = profile_dir.join("claude");
        for d in ["", ".config", ".local/share", ".local/state", ".cache"] {
            fs::create_dir_all(home.join(d)).expect("make HOME");
        }
        fs::create_dir_all(&claude).expect("make the Claude config dir");
        // Claude Code's user settings: the hook's branch starts at HEAD, as `-b NAME` does.
        fs::write(
            claude.join("settings.json"),
            "{\"worktree\": {\"baseRef\": \"head\"}}\n",
        )
        .expect("write Claude settings");
        let date = "2005-04-07 22:13:13 +0000";
        let mut vars: Vec<(String, OsString)> = vec![
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
            ("XDG_DATA_HOME".into(), home.join(".local/share").into()),
            ("XDG_STATE_HOME".into(), home.join(".local/state").into()),
            ("XDG_CACHE_HOME".into(), home.join(".cache").into()),
            ("CLAUDE_CONFIG_DIR".into(), claude.into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            (
                "GIT_CONFIG_GLOBAL".into(),
                profile_dir.join("gitconfig").into(),
            ),
            ("GIT_AUTHOR_NAME".into(), "A U Thor".into()),
            ("GIT_AUTHOR_EMAIL".into(), "author@example.com".into()),
            ("GIT_AUTHOR_DATE".into(), date.into()),
            ("GIT_COMMITTER_NAME".into(), "C O Mitter".into()),
            ("GIT_COMMITTER_EMAIL".into(), "committer@example.com".into()),
            ("GIT_COMMITTER_DATE".into(), date.into()),
            ("GIT_EDITOR".into(), "true".into()),
            ("GIT_PAGER".into(), "cat".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("LC_ALL".into(), "C".into()),
            ("TZ".into(), "UTC".into()),
        ];
        vars.sort();
        Env { vars }
    }

    /// `prog` in `dir` with this environment and nothing else of the caller's (no
    /// `COWTREE_STORE`, no `GIT_TEST_*`, no `GIT_DIR`/`GIT_WORK_TREE`/`GIT_INDEX_FILE`).
    pub fn command(&self, prog: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        let mut c = Command::new(prog);
        c.env_clear().current_dir(dir).stdin(Stdio::null());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// git in `dir` for an observation: also in a bare repository under
    /// `safe.bareRepository=explicit` (the observation is not what is tested).
    pub fn observer(&self, dir: &Path) -> Command {
        let mut c = self.command("git", dir);
        c.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "safe.bareRepository")
            .env("GIT_CONFIG_VALUE_0", "all");
        c
    }
}

/// What a run of git or cowtree did.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with `stdin` (or nothing) on stdin, killing it after [`RUN_LIMIT`]; its output
/// goes through the files `STEM.out` and `STEM.err` (never a pipe a child could fill).
fn run(mut cmd: Command, stdin: Option<&[u8]>, stem: &Path) -> Ran {
    let out = stem.with_extension("out");
    let err = stem.with_extension("err");
    cmd.stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"));
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input).expect("write stdin");
    }
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code().unwrap_or(-1);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break -9;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ran {
        code,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// The git on PATH's version, as (major, minor, patch).
fn git_version() -> (u32, u32, u32) {
    let out = Command::new("git")
        .arg("version")
        .output()
        .expect("run git version");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("git version: {text}"));
    let mut n = v
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0))
        .chain(std::iter::repeat(0));
    (
        n.next().unwrap_or(0),
        n.next().unwrap_or(0),
        n.next().unwrap_or(0),
    )
}

/// How a case (or its hook run) came out.
enum Outcome {
    Same,
    Differs(String),
    Skipped(String),
    /// The case itself is wrong: its recipe failed, or git did not do what it says.
    Broken(String),
}

/// `cp -a from to`.
fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a {} {}: {}",
        from.display(),
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Points the copy's own absolute paths at itself: git writes absolute paths in gitfiles,
/// `gitdir` files and configuration (`core.worktree`, remote URLs, alternates).
fn relocate(copy: &Path, state: &Path) {
    let from = state.to_string_lossy().into_owned();
    let to = copy.to_string_lossy().into_owned();
    let mut stack = vec![copy.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !meta.is_file()
                || meta.len() > 1 << 20
                || ![".git", "gitdir", "config", "config.worktree", "alternates"]
                    .contains(&name.as_ref())
            {
                continue;
            }
            if let Ok(text) = fs::read_to_string(&path)
                && text.contains(&from)
            {
                fs::write(&path, text.replace(&from, &to)).expect("relocate a copy's path");
            }
        }
    }
}

/// The first position of `dst` in `args` (after `worktree add`): the first argument that is
/// not an option or an option's value.
pub fn dst_arg(args: &[String]) -> Option<&str> {
    let mut i = 0;
    let mut options = true;
    while let Some(a) = args.get(i) {
        if options && a == "--" {
            options = false;
        } else if options && ["-b", "-B", "--reason"].contains(&a.as_str()) {
            i += 1;
        } else if !(options && a.starts_with('-') && a.len() > 1) {
            return Some(a);
        }
        i += 1;
    }
    None
}

/// git's message in a refusal's stderr: its last `fatal:`/`error:`/`usage:` line and the lines
/// continuing it (not `hint:`/`warning:`), without the prefix; else its last line when
/// `or_last`.
fn git_message(stderr: &str, or_last: bool) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let prefixes = ["fatal: ", "error: ", "usage: "];
    let start = lines
        .iter()
        .rposition(|l| prefixes.iter().any(|p| l.starts_with(p)));
    let Some(start) = start else {
        if !or_last {
            return None;
        }
        return lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_owned());
    };
    let first = prefixes
        .iter()
        .find_map(|p| lines[start].strip_prefix(p))
        .unwrap_or(lines[start]);
    let mut msg = vec![first];
    for l in &lines[start + 1..] {
        if l.starts_with("hint: ") || l.starts_with("warning: ") || l.trim().is_empty() {
            break;
        }
        msg.push(l);
    }
    Some(msg.join("\n"))
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if l.chars().count() > 300 {
        format!("{}...", l.chars().take(300).collect::<String>())
    } else {
        l.to_owned()
    }
}

/// The first difference between git's side and cowtree's, with the names of the other
/// observations that differ; `None` when none does.
fn compare(git: &Obs, cow: &Obs, refusal_or_failure: bool, made: bool) -> Option<String> {
    let diffs = differences(git, cow, refusal_or_failure, made);
    let (_, first) = diffs.first()?;
    let others: Vec<&str> = diffs[1..].iter().map(|(k, _)| *k).collect();
    Some(if others.is_empty() {
        first.clone()
    } else {
        format!("{first} [also: {}]", others.join(", "))
    })
}

/// Every difference, in the order of comparison: the observation's name and what differs.
fn differences(
    git: &Obs,
    cow: &Obs,
    refusal_or_failure: bool,
    made: bool,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if git.exit != cow.exit {
        out.push((
            "exit status",
            format!(
                "exit status: git {}, cowtree {} (cowtree's stderr: {}; git's: {})",
                git.exit,
                cow.exit,
                first_line(&last_lines(&cow.stderr, 3)),
                first_line(&last_lines(&git.stderr, 1)),
            ),
        ));
    }
    if refusal_or_failure
        && let Some(msg) = git_message(&git.stderr, !made)
        && !squash(&cow.stderr).contains(&squash(&msg))
    {
        out.push((
            "message",
            format!(
                "message: git's \"{}\" is not in cowtree's stderr \"{}\"",
                squash(&msg),
                squash(&cow.stderr)
            ),
        ));
    }
    for ((key, a), (_, b)) in git.items.iter().zip(&cow.items) {
        if a != b {
            out.push((key, format!("{key}: {}", first_line_diff(a, b))));
        }
    }
    out
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// The first line where `a` (git's) and `b` (cowtree's) differ, both shown.
fn first_line_diff(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let n = la.len().max(lb.len());
    for i in 0..n {
        let (x, y) = (la.get(i), lb.get(i));
        if x != y {
            let show = |l: Option<&&str>| match l {
                Some(l) => format!("{:?}", first_line(l)),
                None => "(nothing)".to_owned(),
            };
            return format!("line {}: git {} / cowtree {}", i + 1, show(x), show(y));
        }
    }
    "differ (same lines?)".into()
}

/// Where a group's cases run, and what every case shares.
struct Ctx {
    profile: Profile,
    dir: PathBuf,
    env: Env,
    git_version: (u32, u32, u32),
    keep: bool,
    self_check: bool,
}

/// One side of a run: the tool on that side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Git,
    Cowtree,
}

/// Runs every case of a group under every profile asked for; fails with one message naming
/// each case that differed (or is broken) and its first difference.
pub fn run_group(group: &str, cases: &[Case]) {
    let Some(tmp) = scratch(Fs::Xfs) else {
        return;
    };
    let root = tmp.path().canonicalize().expect("canonical scratch dir");
    let keep = std::env::var_os("COWTREE_TEST_CONFORMANCE_KEEP").is_some_and(|v| v == "1");
    let self_check = std::env::var_os("COWTREE_TEST_CONFORMANCE_SELF").is_some_and(|v| v == "1");
    let filter = std::env::var("COWTREE_TEST_CONFORMANCE_CASE").unwrap_or_default();
    let version = git_version();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut counts = [0usize; 4];
    for profile in profiles() {
        let dir = root.join(profile.name());
        fs::create_dir_all(&dir).expect("make the profile dir");
        fs::write(dir.join("gitconfig"), profile.global_config()).expect("write gitconfig");
        let ctx = Ctx {
            profile,
            env: Env::new(&dir),
            dir,
            git_version: version,
            keep,
            self_check,
        };
        let mut hooked: Vec<(&str, &str)> = Vec::new();
        for (n, case) in cases.iter().enumerate() {
            if !case.name.contains(&filter) {
                continue;
            }
            let t = Instant::now();
            for (label, outcome) in run_case(&ctx, case, n, &mut hooked) {
                let (slot, text) = match &outcome {
                    Outcome::Same => (0, "same".to_owned()),
                    Outcome::Differs(d) => (1, format!("differs: {d}")),
                    Outcome::Skipped(why) => (2, format!("skipped: {why}")),
                    Outcome::Broken(why) => (3, format!("broken: {why}")),
                };
                counts[slot] += 1;
                let line = format!(
                    "conformance: {} {label}: {text} ({:.1} s)",
                    profile.name(),
                    t.elapsed().as_secs_f64()
                );
                report(&line);
                if slot == 1 || slot == 3 {
                    failures.push(format!("{} {label}: {text}", profile.name()));
                }
            }
        }
    }
    report(&format!(
        "conformance: group {group}: {} same, {} differ, {} skipped, {} broken, in {:.1} s",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        started.elapsed().as_secs_f64()
    ));
    if keep {
        let kept = tmp.keep();
        println!("conformance: kept {}", kept.display());
    }
    assert!(
        failures.is_empty(),
        "{} case(s) of group {group} differ from git or are broken:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn report(line: &str) {
    println!("{line}");
    if let Some(f) = std::env::var_os("COWTREE_TEST_CONFORMANCE_REPORT")
        && let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(f)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Runs one case (and its hook run where it applies): each run's label and outcome.
fn run_case<'c>(
    ctx: &Ctx,
    case: &'c Case,
    n: usize,
    hooked: &mut Vec<(&'c str, &'c str)>,
) -> Vec<(String, Outcome)> {
    let name = case.name.to_owned();
    if ctx.git_version < case.min_git {
        let (a, b, c) = case.min_git;
        return vec![(name, Outcome::Skipped(format!("needs git >= {a}.{b}.{c}")))];
    }
    if let (Profile::Git3, Only::DefaultProfile(why)) = (ctx.profile, case.only) {
        return vec![(
            name,
            Outcome::Skipped(format!("default profile only: {why}")),
        )];
    }
    let dir = ctx.dir.join(format!("c{n:03}"));
    let _ = fs::remove_dir_all(&dir);
    let state = dir.join("state");
    fs::create_dir_all(&state).expect("make the state dir");
    let recipe = ctx
        .env
        .command("sh", &state)
        .arg("-c")
        .arg(format!("{PRELUDE}\n{}\n", case.recipe))
        .output()
        .expect("run sh");
    if !recipe.status.success() {
        return vec![(
            name,
            Outcome::Broken(format!(
                "recipe failed ({:?}): {}",
                recipe.status.code(),
                last_lines(&String::from_utf8_lossy(&recipe.stderr), 3)
            )),
        )];
    }
    if !state.join(case.cwd).is_dir() {
        return vec![(
            name,
            Outcome::Broken(format!("no directory {} after the recipe", case.cwd)),
        )];
    }
    let mut out = match git_side(ctx, case, &dir, &state) {
        Err(broken) => vec![(name.clone(), broken)],
        Ok(git) => {
            let mut out = vec![(
                name.clone(),
                compare_args(ctx, case, &dir, &state, Variant::Plain, &git),
            )];
            // Every case git makes a worktree of, again through a spare of a pool.
            if git.ran.code == 0 && git.made && !ctx.self_check {
                out.push((
                    format!("{name} (spare)"),
                    compare_args(ctx, case, &dir, &state, Variant::Spare, &git),
                ));
            }
            out
        }
    };
    if let Some(top) = hook_applies(ctx, case, &state, hooked) {
        out.push((
            format!("{name} (hook)"),
            compare_hook(ctx, case, &dir, &state, &top),
        ));
    }
    if !ctx.keep {
        let _ = fs::remove_dir_all(&dir);
    }
    out
}

/// Copies `state` to `dir/side`, relocated and with its index refreshed where the add runs.
fn prepare(ctx: &Ctx, case: &Case, dir: &Path, state: &Path, side: &str) -> PathBuf {
    let copy = dir.join(side);
    copy_tree(state, &copy);
    relocate(&copy, state);
    let _ = ctx
        .env
        .observer(&copy.join(case.cwd))
        .args(["update-index", "-q", "--refresh"])
        .output();
    copy
}

fn substitute(args: &[&str], copy: &Path) -> Vec<String> {
    args.iter()
        .map(|a| a.replace("{copy}", &copy.to_string_lossy()))
        .collect()
}

/// Runs `worktree add ARGS` with `tool` in the copy.
fn add(ctx: &Ctx, case: &Case, copy: &Path, tool: Tool, args: &[String]) -> Ran {
    let tool = if ctx.self_check { Tool::Git } else { tool };
    let cwd = copy.join(case.cwd);
    let mut cmd = match tool {
        Tool::Git => {
            let mut c = ctx.env.command("git", &cwd);
            c.args(["worktree", "add"]);
            c
        }
        Tool::Cowtree => {
            let mut c = ctx.env.command(crate::common::BIN, &cwd);
            c.args(["git", "worktree", "add"]);
            c
        }
    };
    cmd.args(args);
    for (k, v) in case.env {
        cmd.env(k, v);
    }
    run(cmd, None, &copy.with_extension("run"))
}

/// Writes a side's observations to `dir/obs-SIDE.txt` (kept with
/// `COWTREE_TEST_CONFORMANCE_KEEP=1`: `diff obs-A.txt obs-B.txt` shows every difference).
fn dump(dir: &Path, side: &str, obs: &Obs) {
    let mut text = format!("exit {}\n== stderr\n{}", obs.exit, obs.stderr);
    for (k, v) in &obs.items {
        text.push_str(&format!("== {k}\n{v}"));
    }
    let _ = fs::write(dir.join(format!("obs-{side}.txt")), text);
}

/// Whether git's side made the worktree at `dst`.
fn made(dst: Option<&Path>) -> bool {
    dst.is_some_and(|d| fs::symlink_metadata(d.join(".git")).is_ok())
}

/// Checks that git did what the case says it does; `Some(why)` when it did not.
fn check_expectation(ctx: &Ctx, case: &Case, git: &Ran, made: bool) -> Option<String> {
    let expect = case.expect_under(ctx.profile == Profile::Git3);
    let ok = match expect {
        Expect::Success => git.code == 0 && made,
        Expect::Refusal => git.code != 0 && !made,
        Expect::MadeButFails => git.code != 0 && made,
        Expect::RefusalUnderGit3 => unreachable!("resolved by expect_under"),
    };
    (!ok).then(|| {
        format!(
            "git exited {} ({}), the case expects {expect:?}: {}",
            git.code,
            if made { "worktree made" } else { "no worktree" },
            last_lines(&git.stderr, 2)
        )
    })
}

fn site<'a>(
    copy: &'a Path,
    state: &'a Path,
    cwd: &'a Path,
    repo: &'a Path,
    dst: Option<&'a Path>,
) -> Site<'a> {
    Site {
        copy,
        state,
        cwd,
        repo,
        dst,
    }
}

/// Sets up a pool of one spare where the add runs in `copy` (`pool set 1`, `pool fill`):
/// `Err(why)` when the fill made none (git makes this repository's worktrees, a sparse
/// checkout, filter drivers: what the pool refuses).
fn fill_pool(ctx: &Ctx, case: &Case, copy: &Path) -> Result<(), String> {
    let cwd = copy.join(case.cwd);
    for args in [&["set", "1", "--no-fill"][..], &["fill"][..]] {
        let out = ctx
            .env
            .command(crate::common::BIN, &cwd)
            .args(["git", "worktree", "pool"])
            .args(args)
            .output()
            .expect("run cowtree");
        if !out.status.success() {
            return Err(first_line(&String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(())
}

/// Waits for the refill an add started in `copy` to end (it holds the pool's lock).
fn wait_for_refill(ctx: &Ctx, case: &Case, copy: &Path) {
    let out = ctx
        .env
        .observer(&copy.join(case.cwd))
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .output()
        .expect("run git");
    let common = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let lock = common.join("cowtree/pool/fill.lock");
    if lock.exists() {
        let _ = Command::new("flock").arg(&lock).arg("true").status();
    }
}

/// Which cowtree run a comparison is of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `cowtree git worktree add ARGS` as the case gives it.
    Plain,
    /// The same, with a pool of one spare filled first where the add runs: the add claims it
    /// when it fits ([`fill_pool`]).
    Spare,
}

/// git's side of a case: the add in copy A, and what is observed after it (or, where git
/// leaves what it made on the way to its refusal, the state before: [`Case::git_leaves`]).
struct GitSide {
    ran: Ran,
    made: bool,
    theirs: Obs,
}

/// Runs git's side of the case in copy A; `Err`: git did not do what the case says.
fn git_side(ctx: &Ctx, case: &Case, dir: &Path, state: &Path) -> Result<GitSide, Outcome> {
    let a = prepare(ctx, case, dir, state, "A");
    let args_a = substitute(case.args, &a);
    let dst_a = dst_arg(&args_a).map(|d| a.join(case.cwd).join(d));
    let ran = add(ctx, case, &a, Tool::Git, &args_a);
    let made_a = made(dst_a.as_deref());
    if let Some(why) = check_expectation(ctx, case, &ran, made_a) {
        return Err(Outcome::Broken(why));
    }
    let repo = case.repo.unwrap_or(case.cwd);
    let (cwd_a, repo_a) = (a.join(case.cwd), a.join(repo));
    let obs_a = observe::observe(
        &ctx.env,
        &site(&a, state, &cwd_a, &repo_a, dst_a.as_deref()),
        &ran,
        made_a,
    );
    dump(dir, "A", &obs_a);
    // Where git leaves what it made on the way to its refusal, cowtree's state after is
    // compared with the state before (a copy nothing ran in): exit status and message with
    // git's.
    let theirs = match case.git_leaves {
        Some(_) => {
            let c = prepare(ctx, case, dir, state, "C");
            let (cwd_c, repo_c) = (c.join(case.cwd), c.join(repo));
            let dst_c = dst_arg(&args_a).map(|d| c.join(case.cwd).join(d));
            let before = observe::observe(
                &ctx.env,
                &site(&c, state, &cwd_c, &repo_c, dst_c.as_deref()),
                &ran,
                made_a,
            );
            observe::Obs {
                exit: obs_a.exit,
                stderr: obs_a.stderr.clone(),
                items: before.items,
            }
        }
        None => obs_a,
    };
    Ok(GitSide {
        ran,
        made: made_a,
        theirs,
    })
}

/// The case itself: cowtree in copy B (or, [`Variant::Spare`], in copy P with a pool),
/// against git's side.
fn compare_args(
    ctx: &Ctx,
    case: &Case,
    dir: &Path,
    state: &Path,
    variant: Variant,
    git: &GitSide,
) -> Outcome {
    let side = if variant == Variant::Spare { "P" } else { "B" };
    let b = prepare(ctx, case, dir, state, side);
    if variant == Variant::Spare
        && let Err(why) = fill_pool(ctx, case, &b)
    {
        return Outcome::Skipped(format!("no spare: {why}"));
    }
    let args_b = substitute(case.args, &b);
    let dst_b = dst_arg(&args_b).map(|d| b.join(case.cwd).join(d));
    let ran_b = match variant {
        Variant::Plain => add(ctx, case, &b, Tool::Cowtree, &args_b),
        Variant::Spare => {
            let mut args = vec!["--json".to_owned()];
            args.extend(args_b.iter().cloned());
            let ran = add(ctx, case, &b, Tool::Cowtree, &args);
            wait_for_refill(ctx, case, &b);
            ran
        }
    };
    // With the pool: whether the add took the spare, and if not why (its report says).
    let claimed = (variant == Variant::Spare).then(|| {
        let v: serde_json::Value = serde_json::from_str(&ran_b.stdout).unwrap_or_default();
        match v["method"].as_str() {
            Some("spare") => Ok(()),
            _ => Err(v["pool"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("made {}", v["method"]))),
        }
    });
    let repo = case.repo.unwrap_or(case.cwd);
    let (cwd_b, repo_b) = (b.join(case.cwd), b.join(repo));
    let obs_b = observe::observe(
        &ctx.env,
        &site(&b, state, &cwd_b, &repo_b, dst_b.as_deref()),
        &ran_b,
        git.made,
    );
    dump(dir, side, &obs_b);
    match (
        compare(&git.theirs, &obs_b, git.ran.code != 0, git.made),
        claimed,
    ) {
        (Some(d), _) => Outcome::Differs(d),
        (None, None | Some(Ok(()))) => Outcome::Same,
        // Compared all the same; but no spare was claimed, so it proves nothing of the pool.
        (None, Some(Err(why))) => Outcome::Skipped(format!("no spare claimed: {why}")),
    }
}

/// Whether the hook run applies to the case: `Some(top)` (the worktree's top relative to
/// `state`) when the add succeeds, sets no environment of its own, runs in a worktree, and no
/// earlier case of the group ran the hook on the same recipe from the same place.
fn hook_applies<'c>(
    ctx: &Ctx,
    case: &'c Case,
    state: &Path,
    hooked: &mut Vec<(&'c str, &'c str)>,
) -> Option<String> {
    if case.expect_under(ctx.profile == Profile::Git3) != Expect::Success
        || !case.env.is_empty()
        || hooked.contains(&(case.recipe, case.cwd))
    {
        return None;
    }
    let out = ctx
        .env
        .command("git", &state.join(case.cwd))
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'));
    let rel = top.strip_prefix(state).ok()?.to_string_lossy().into_owned();
    hooked.push((case.recipe, case.cwd));
    Some(rel)
}

/// The hook run: `git worktree add -b hooked <top>/.claude/worktrees/hooked` in copy C, the
/// hook with `{"name": "hooked", "cwd": ...}` in copy D.
fn compare_hook(ctx: &Ctx, case: &Case, dir: &Path, state: &Path, top: &str) -> Outcome {
    let c = prepare(ctx, case, dir, state, "C");
    let d = prepare(ctx, case, dir, state, "D");
    let dst_c = c.join(top).join(".claude/worktrees").join(HOOK_NAME);
    let dst_d = d.join(top).join(".claude/worktrees").join(HOOK_NAME);
    let args_c = vec![
        "-b".to_owned(),
        HOOK_NAME.to_owned(),
        dst_c.to_string_lossy().into_owned(),
    ];
    let ran_c = add(ctx, case, &c, Tool::Git, &args_c);
    let made_c = made(Some(&dst_c));
    if ran_c.code != 0 || !made_c {
        return Outcome::Broken(format!(
            "git worktree add -b {HOOK_NAME} failed ({}): {}",
            ran_c.code,
            last_lines(&ran_c.stderr, 2)
        ));
    }
    let cwd_d = d.join(case.cwd);
    let ran_d = if ctx.self_check {
        let args_d = vec![
            "-b".to_owned(),
            HOOK_NAME.to_owned(),
            dst_d.to_string_lossy().into_owned(),
        ];
        let mut r = add(ctx, case, &d, Tool::Git, &args_d);
        r.stdout = format!("{}\n", dst_d.display());
        r
    } else {
        let payload = serde_json::json!({
            "session_id": "conformance",
            "transcript_path": d.join("transcript.jsonl"),
            "cwd": cwd_d,
            "hook_event_name": "WorktreeCreate",
            "name": HOOK_NAME,
        })
        .to_string();
        let mut cmd = ctx.env.command(crate::common::BIN, &cwd_d);
        cmd.args(["hook", "claude-code", "worktree-create"]);
        run(cmd, Some(payload.as_bytes()), &d.with_extension("run"))
    };
    let repo = case.repo.unwrap_or(case.cwd);
    let (cwd_c, repo_c, repo_d) = (c.join(case.cwd), c.join(repo), d.join(repo));
    let obs_c = observe::observe(
        &ctx.env,
        &site(&c, state, &cwd_c, &repo_c, Some(&dst_c)),
        &ran_c,
        true,
    );
    let mut obs_d = observe::observe(
        &ctx.env,
        &site(&d, state, &cwd_d, &repo_d, Some(&dst_d)),
        &ran_d,
        true,
    );
    // The hook prints the new worktree's absolute path, alone, on stdout.
    let printed = ran_d.stdout.replace(&*d.to_string_lossy(), "<COPY>");
    let expected = format!("{}\n", dst_c.display()).replace(&*c.to_string_lossy(), "<COPY>");
    let mut obs_c = obs_c;
    obs_c
        .items
        .insert(0, ("hook's stdout (the path)", expected));
    obs_d.items.insert(0, ("hook's stdout (the path)", printed));
    dump(dir, "C", &obs_c);
    dump(dir, "D", &obs_d);
    match compare(&obs_c, &obs_d, false, true) {
        None => Outcome::Same,
        Some(d) => Outcome::Differs(d),
    }
}

/// The table's own checks: unique names, a DST in every case's arguments, a known profile;
/// with `COWTREE_TEST_CONFORMANCE_LIST=FILE`, the table written there as Markdown.
pub fn check_table(groups: &[(&str, &[Case])]) {
    let mut seen = std::collections::BTreeSet::new();
    let mut md = String::from(
        "| group | case | git's test | runs in | arguments | git does | needs |\n|---|---|---|---|---|---|---|\n",
    );
    for (group, cases) in groups {
        for c in *cases {
            assert!(seen.insert(c.name), "case name {} used twice", c.name);
            assert!(
                c.name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-'),
                "case name {} is not [A-Za-z0-9-]",
                c.name
            );
            let args: Vec<String> = c.args.iter().map(|s| s.to_string()).collect();
            assert!(
                dst_arg(&args).is_some(),
                "case {}: no DST in {:?}",
                c.name,
                c.args
            );
            assert!(
                !c.cwd.starts_with('/') && !c.recipe.trim().is_empty(),
                "case {}: cwd must be relative and the recipe not empty",
                c.name
            );
            let (a, b, v) = c.min_git;
            md.push_str(&format!(
                "| {group} | {} | {} | `{}` | `{}` | {:?}{} | git >= {a}.{b}.{v} |\n",
                c.name,
                c.source.replace('|', "\\|"),
                c.cwd,
                c.args.join(" ").replace('|', "\\|"),
                c.expect,
                match c.only {
                    Only::Both => String::new(),
                    Only::DefaultProfile(why) => format!(" (default profile only: {why})"),
                },
            ));
        }
    }
    assert!(seen.len() >= 100, "the table has {} cases", seen.len());
    if let Some(f) = std::env::var_os("COWTREE_TEST_CONFORMANCE_LIST") {
        fs::write(&f, md).expect("write the case list");
    }
}

#[cfg(test)]
mod tests {
    use super::{dst_arg, git_message};

    #[test]
    fn conformance_dst_is_the_first_argument_not_an_option_or_its_value() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(dst_arg(&v(&["-b", "x", "../d", "main"])), Some("../d"));
        assert_eq!(
            dst_arg(&v(&["--lock", "--reason", "why not", "d"])),
            Some("d")
        );
        assert_eq!(dst_arg(&v(&["--detach", "--", "-d"])), Some("-d"));
        assert_eq!(dst_arg(&v(&["--orphan"])), None);
    }

    #[test]
    fn conformance_git_message_is_the_last_fatal_and_its_continuation() {
        let e = "Preparing worktree (detached HEAD 1234567)\nfatal: 'pneu' is a missing but already registered worktree;\nuse 'add -f' to override, or 'prune' or 'remove' to clear\n";
        assert_eq!(
            git_message(e, true).unwrap(),
            "'pneu' is a missing but already registered worktree;\nuse 'add -f' to override, or 'prune' or 'remove' to clear"
        );
        let e = "fatal: first\nfatal: second\nhint: h\n";
        assert_eq!(git_message(e, true).unwrap(), "second");
    }
}
