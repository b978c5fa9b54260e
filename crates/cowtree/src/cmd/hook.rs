//! `cowtree hook claude-code worktree-create|worktree-remove|install`: Claude Code's
//! `WorktreeCreate` and `WorktreeRemove` hooks, and installing them in its settings.
//!
//! Claude Code runs a `WorktreeCreate` hook instead of its own `git worktree add` when one is
//! configured: the hook gets a JSON payload on stdin and must print the new worktree's absolute
//! path, alone, on stdout; any non-zero exit fails the creation. `WorktreeRemove` gets the
//! worktree's path (`worktree_path`). The payload's field names have differed between Claude
//! Code versions; every variant is read here (see docs/git.md, "Claude Code").

use std::io::{IsTerminal, Read};
use std::path::{Component, Path, PathBuf};

use cowtree_git::{AddOptions, BranchChoice};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};

use crate::exit::{CliError, CmdResult, Exit, Kind};

mod base;
mod program;
mod settings;

/// Hook handlers for agent tools.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree hook claude-code install             # add both hooks to .claude/settings.local.json
  cowtree hook claude-code install --user      # ... or to ~/.claude/settings.json
  cowtree hook claude-code worktree-create < payload.json   # what Claude Code runs: prints the path")]
pub struct Args {
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Debug, clap::Subcommand)]
enum Tool {
    /// Claude Code's WorktreeCreate and WorktreeRemove hooks.
    ClaudeCode(ClaudeArgs),
}

#[derive(Debug, clap::Args)]
struct ClaudeArgs {
    #[command(subcommand)]
    event: Event,
}

#[derive(Debug, clap::Subcommand)]
enum Event {
    /// The WorktreeCreate hook: reads Claude Code's payload on stdin, makes the worktree
    /// (`cowtree git worktree add`) and prints its absolute path, alone, on stdout.
    ///
    /// The payload's fields: `name` or `worktree_name` (the worktree's name, also its new
    /// branch's), `cwd` or `base_path` (a directory in the repository; default: the current
    /// directory), `base_commit` or `base_ref` (what the branch starts from; default: as
    /// Claude Code's `worktree.baseRef` setting says, below), `worktree_path` (where to make
    /// it; default: `<repository>/.claude/worktrees/<name>`). Other fields are ignored.
    /// Progress, warnings and where the branch started go to stderr.
    ///
    /// Without a base in the payload (Claude Code sends none), the branch starts where Claude
    /// Code starts the worktrees it makes itself: as its setting `{"worktree": {"baseRef":
    /// "fresh" | "head"}}` says, read from its settings files with its precedence, highest
    /// first: managed (/etc/claude-code/managed-settings.json, then managed-settings.d/*.json,
    /// a later name winning), local (.claude/settings.local.json at the top of the main
    /// checkout), project (.claude/settings.json in $CLAUDE_PROJECT_DIR, else at the top of
    /// the worktree), user ($CLAUDE_CONFIG_DIR/settings.json, else ~/.claude/settings.json).
    /// A file Claude Code would skip (unreadable, not JSON, not an object, a value other than
    /// "fresh" or "head") is skipped, with a warning naming it.
    ///
    /// "head": the branch starts at HEAD. "fresh" (the default): at origin's default branch
    /// (origin/HEAD), fetched first when the repository was not fetched in the last 24 hours
    /// (at most 5 s; if that fails, the cached branch); with no remote "origin", or no
    /// origin/HEAD cached or fetchable, at HEAD, with a note. The new branch has no upstream.
    /// `.worktreeinclude` is honoured, as by `cowtree git worktree add`.
    WorktreeCreate,
    /// The WorktreeRemove hook: reads the payload (`worktree_path`) on stdin and removes that
    /// worktree as `git worktree remove` does (refused while it has changes).
    WorktreeRemove,
    /// Adds the WorktreeCreate and WorktreeRemove hooks to Claude Code's settings, leaving every
    /// other entry as it is; says what it changed. Running it again changes nothing.
    Install(InstallArgs),
}

#[derive(Debug, clap::Args)]
struct InstallArgs {
    /// The project's local settings, `<repository>/.claude/settings.local.json` (the default).
    #[arg(long, conflicts_with = "user")]
    project: bool,
    /// The user's settings, ~/.claude/settings.json.
    #[arg(long)]
    user: bool,
    /// Print one JSON object: settings (the file), added and present (the hook events).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CmdResult {
    match args.tool {
        Tool::ClaudeCode(c) => match c.event {
            Event::WorktreeCreate => create(),
            Event::WorktreeRemove => remove(),
            Event::Install(a) => install(&a),
        },
    }
}

/// The first of `keys` whose value in `v` is a non-empty string.
fn field<'a>(v: &'a serde_json::Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_str()))
        .filter(|s| !s.is_empty())
}

/// The payload on stdin, as JSON.
fn payload() -> Result<serde_json::Value, CliError> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::new(
            "no payload: the hook reads Claude Code's JSON payload on stdin",
        )
        .kind(Kind::Usage));
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| CliError::new(format!("read the payload on stdin: {e}")).kind(Kind::Io))?;
    if text.trim().is_empty() {
        return Err(CliError::new(
            "no payload: stdin was empty (the hook reads Claude Code's JSON payload)",
        )
        .kind(Kind::Usage));
    }
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CliError::new(format!("the payload on stdin is not JSON ({e})")).kind(Kind::Usage)
    })?;
    if !v.is_object() {
        return Err(CliError::new("the payload on stdin is not a JSON object").kind(Kind::Usage));
    }
    Ok(v)
}

/// The repository directory the payload names (`cwd`, `base_path`), else the current one.
fn payload_dir(v: &serde_json::Value) -> Result<PathBuf, CliError> {
    match field(v, &["cwd", "base_path"]) {
        Some(d) => Ok(PathBuf::from(d)),
        None => crate::cmd::cwd(),
    }
}

/// A worktree name usable as a path below `.claude/worktrees`: relative, no `..`.
fn check_name(name: &str) -> Result<(), CliError> {
    let p = Path::new(name);
    if name.is_empty()
        || name.contains('\0')
        || p.components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(CliError::new(format!(
            "worktree name {name:?}: not a plain relative name (no '..', no leading '/')"
        ))
        .kind(Kind::Usage));
    }
    Ok(())
}

/// The top of the worktree containing `dir` (`git rev-parse --show-toplevel`).
fn toplevel(dir: &Path) -> Result<PathBuf, CliError> {
    let out = cowtree_git::branch::git(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .map_err(|e| CliError::new(format!("run git in {}: {e}", dir.display())))?;
    if !out.status.success() {
        let msg = crate::cmd::git::git_message(&String::from_utf8_lossy(&out.stderr))
            .unwrap_or_else(|| "not a git repository".into());
        return Err(CliError::new(format!("{}: {msg}", dir.display()))
            .kind(Kind::NotFound)
            .path(dir));
    }
    let s = String::from_utf8_lossy(&out.stdout);
    Ok(crate::os::path_from_git(s.trim_end_matches('\n')))
}

fn create() -> CmdResult {
    let v = payload()?;
    let name = field(&v, &["name", "worktree_name"]);
    let path = field(&v, &["worktree_path"]);
    if name.is_none() && path.is_none() {
        return Err(CliError::new(
            "the payload names no worktree (no \"name\", \"worktree_name\" or \"worktree_path\")",
        )
        .kind(Kind::Usage));
    }
    let dir = payload_dir(&v)?;
    let dst = match (path, name) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(n)) => {
            check_name(n)?;
            toplevel(&dir)?.join(".claude").join("worktrees").join(n)
        }
        (None, None) => unreachable!("refused above"),
    };
    let branch_name = match name {
        Some(n) => n.to_owned(),
        None => dst
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let files = load_settings(&dir)?;
    let commit = match field(&v, &["base_commit", "base_ref"]) {
        Some(c) => Some(c.to_owned()),
        None => setting_base(&dir, &files),
    };
    let lists = settings::merged_lists(&files);
    if !lists.sparse_paths.is_empty() {
        eprintln!(
            "cowtree: a sparse checkout of {} (worktree.sparsePaths)",
            lists.sparse_paths.join(", ")
        );
    }
    let opts = AddOptions {
        commit,
        branch: BranchChoice::New(branch_name),
        quiet: true,
        sparse: (!lists.sparse_paths.is_empty()).then(|| lists.sparse_paths.clone()),
        run_registry: crate::cmd::git::run_registry(),
        ..AddOptions::new(dir.clone(), dst)
    };
    let report = cowtree_git::add(&opts).map_err(crate::cmd::git_error::git_error)?;
    crate::cmd::pool::refill_after(&report, &dir);
    // stdout is Claude Code's: the path alone. People read stderr.
    if let Some(why) = &report.made_by_git {
        eprintln!(
            "cowtree: worktree {} made by `git worktree add` ({why})",
            report.dst.display()
        );
    } else {
        eprintln!(
            "cowtree: worktree {} on branch {}: {}",
            report.dst.display(),
            match &report.head {
                cowtree_git::HeadReport::Branch { name, .. }
                | cowtree_git::HeadReport::Unborn { name } => name.as_str(),
                cowtree_git::HeadReport::Detached => "(detached)",
            },
            crate::cmd::git::how(&report)
        );
    }
    if let Some((cause, first)) = &report.fallback {
        eprintln!(
            "cowtree: files were copied, not reflinked: {} (first: {})",
            cause.describe(),
            first.display()
        );
    }
    if !lists.symlink_directories.is_empty() {
        match settings::main_checkout(&dir) {
            Some(main) => symlink_directories(&main, &report.dst, &lists.symlink_directories),
            None => eprintln!(
                "cowtree: worktree.symlinkDirectories: the repository has no main checkout to \
                 link to; no directory linked"
            ),
        }
    }
    if let Some(code) = report.hook {
        return Err(CliError::new(format!(
            "the post-checkout hook failed (exit {code}); the worktree {} is in place",
            report.dst.display()
        ))
        .path(&report.dst));
    }
    println!("{}", report.dst.display());
    Ok(Exit::Ok)
}

/// `worktree.symlinkDirectories`, as Claude Code applies it: each directory of the main
/// checkout `main` named in `dirs` (a plain relative path) made a symlink at the same path in
/// the new worktree `dst`, pointing to it. One that is absent in `main`, or whose place in
/// `dst` is taken (the checkout or `.worktreeinclude` made it) or has no parent, is left out,
/// and a name that is not a plain relative path is refused; each said on stderr. A symlink in
/// the new worktree on the way to it (a tracked one) is not followed: that name is left out.
fn symlink_directories(main: &Path, dst: &Path, dirs: &[String]) {
    for d in dirs {
        let rel = Path::new(d.trim_end_matches('/'));
        let plain = !d.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            eprintln!(
                "cowtree: worktree.symlinkDirectories: {d:?} is not a plain relative path; not linked"
            );
            continue;
        }
        let from = main.join(rel);
        let to = dst.join(rel);
        if !from.is_dir() {
            continue;
        }
        // Directory-relative from DST: the parent opened beneath it with no symlink followed
        // in any component (a tracked symlink, or one `.worktreeinclude` made, leading out of
        // DST is refused, not followed), the link made there with symlinkat, which never
        // replaces what is there.
        let (Some(name), parent) = (rel.file_name(), rel.parent().unwrap_or(Path::new(""))) else {
            continue;
        };
        let opened = cowtree_fs::dir::Dir::open(dst).and_then(|d| {
            if parent.as_os_str().is_empty() {
                Ok(d)
            } else {
                d.open_dir_beneath(parent)
            }
        });
        let at = match opened {
            Ok(at) => at,
            Err(e) => {
                // Refused: say why. A symlink on the way (the kernel says ELOOP, or ENOTDIR for
                // a symlink opened as a directory without following it), else no parent.
                let mut link = dst.to_path_buf();
                let through = parent.components().any(|c| {
                    link.push(c);
                    link.symlink_metadata()
                        .is_ok_and(|m| m.file_type().is_symlink())
                });
                if through {
                    eprintln!(
                        "cowtree: worktree.symlinkDirectories: {} is a symlink in the new \
                         worktree; {d:?} not linked",
                        link.display()
                    );
                } else if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) {
                    eprintln!(
                        "cowtree: worktree.symlinkDirectories: {} has no parent directory in \
                         the new worktree; not linked",
                        to.display()
                    );
                } else {
                    eprintln!(
                        "cowtree: worktree.symlinkDirectories: could not link {}: {e}",
                        to.display()
                    );
                }
                continue;
            }
        };
        match at.symlink(from.as_os_str(), name) {
            Ok(()) => eprintln!(
                "cowtree: linked {} -> {} (worktree.symlinkDirectories)",
                to.display(),
                from.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => eprintln!(
                "cowtree: worktree.symlinkDirectories: {} exists in the new worktree; not linked",
                to.display()
            ),
            Err(e) => eprintln!(
                "cowtree: worktree.symlinkDirectories: could not link {}: {e}",
                to.display()
            ),
        }
    }
}

/// The settings files Claude Code reads for a session in `dir`'s repository, with a warning
/// for each it would skip and each note.
fn load_settings(dir: &Path) -> Result<Vec<settings::File>, CliError> {
    let files = settings::load(&toplevel(dir)?);
    for f in &files {
        if let settings::Read::Skipped(why) = &f.read {
            eprintln!(
                "cowtree: warning: {}: {why}; skipped, as Claude Code skips a settings file with an error",
                f.path.display()
            );
        }
        if let Some(note) = &f.note {
            eprintln!("cowtree: warning: {}: {note}", f.path.display());
        }
    }
    Ok(files)
}

/// Where the branch starts when the payload names no base: `worktree.baseRef`.
fn setting_base(dir: &Path, files: &[settings::File]) -> Option<String> {
    let from = settings::effective(files);
    let value = settings::value(from);
    let why = match from {
        Some(f) => format!(
            "worktree.baseRef \"{}\" in the {} settings {}",
            value.as_str(),
            f.scope.as_str(),
            f.path.display()
        ),
        None => "worktree.baseRef \"fresh\", Claude Code's default".to_owned(),
    };
    let (commit, at) = match value {
        settings::BaseRef::Head => (None, "HEAD".to_owned()),
        settings::BaseRef::Fresh => {
            let fresh = base::fresh(dir);
            for note in &fresh.notes {
                eprintln!("cowtree: {note}");
            }
            match fresh.start {
                base::Start::Remote { name, commit } => {
                    let at = format!("{name} ({})", commit.get(..12).unwrap_or(&commit));
                    (Some(commit), at)
                }
                base::Start::Head => (None, "HEAD".to_owned()),
            }
        }
    };
    eprintln!("cowtree: the branch starts at {at}: {why}");
    commit
}

fn remove() -> CmdResult {
    let v = payload()?;
    let Some(path) = field(&v, &["worktree_path", "path"]) else {
        return Err(
            CliError::new("the payload names no worktree (no \"worktree_path\")").kind(Kind::Usage),
        );
    };
    // git finds the repository from the worktree itself (its `.git` file); from the payload's
    // directory when the worktree is gone.
    let here = if Path::new(path).is_dir() {
        PathBuf::from(path)
    } else {
        payload_dir(&v)?
    };
    let code = crate::cmd::git::remove_worktree(&here, &[path.into()])?;
    if code != 0 {
        return Err(CliError::with_code(
            format!("`git worktree remove {path}` failed (exit {code}); see git's message above"),
            code,
        )
        .kind(Kind::Refused)
        .path(path));
    }
    Ok(Exit::Ok)
}

/// An order-keeping JSON value: Claude Code's settings are rewritten with every key where it
/// was (serde_json's own map sorts them).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Object(Vec<(String, Json)>),
    Array(Vec<Json>),
    Scalar(serde_json::Value),
}

impl Json {
    fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        match self {
            Json::Object(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The object member `key`, created as `default` when absent.
    fn entry(&mut self, key: &str, default: Json) -> Option<&mut Json> {
        let Json::Object(m) = self else { return None };
        if !m.iter().any(|(k, _)| k == key) {
            m.push((key.to_owned(), default));
        }
        self.get_mut(key)
    }

    /// Every `command` string in this value.
    fn commands(&self, out: &mut Vec<String>) {
        match self {
            Json::Object(m) => {
                for (k, v) in m {
                    match v {
                        Json::Scalar(serde_json::Value::String(s)) if k == "command" => {
                            out.push(s.clone())
                        }
                        _ => v.commands(out),
                    }
                }
            }
            Json::Array(a) => a.iter().for_each(|v| v.commands(out)),
            Json::Scalar(_) => {}
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut m = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Json>()? {
                    m.push((k, v));
                }
                Ok(Json::Object(m))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<Json>()? {
                    v.push(x);
                }
                Ok(Json::Array(v))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Scalar(b.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Scalar(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Scalar(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Scalar(n.into()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::Scalar(s.into()))
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Scalar(serde_json::Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Json::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Json::Scalar(v) => v.serialize(s),
        }
    }
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Adds a hook entry for each event to `settings` unless one running `cowtree hook
/// claude-code <event>` is there. Returns the events added and those already present.
fn merge_hooks(
    settings: &mut Json,
    mut command: impl FnMut(&str) -> String,
) -> (Vec<String>, Vec<String>) {
    let (mut added, mut present) = (Vec::new(), Vec::new());
    let hooks = settings
        .entry("hooks", Json::Object(Vec::new()))
        .expect("settings are an object");
    for (event, sub) in [
        ("WorktreeCreate", "worktree-create"),
        ("WorktreeRemove", "worktree-remove"),
    ] {
        let Some(list) = hooks.entry(event, Json::Array(Vec::new())) else {
            continue;
        };
        let mut cmds = Vec::new();
        list.commands(&mut cmds);
        if cmds
            .iter()
            .any(|c| c.trim_end().ends_with(&format!("hook claude-code {sub}")))
        {
            present.push(event.to_owned());
            continue;
        }
        if let Json::Array(a) = list {
            // Worktree events take no matcher.
            a.push(Json::Object(vec![(
                "hooks".into(),
                Json::Array(vec![Json::Object(vec![
                    ("type".into(), Json::Scalar("command".into())),
                    ("command".into(), Json::Scalar(command(sub).into())),
                ])]),
            )]));
            added.push(event.to_owned());
        }
    }
    (added, present)
}

fn install(a: &InstallArgs) -> CmdResult {
    let file = if a.user {
        let home = settings::home().ok_or_else(|| {
            CliError::new(format!(
                "{} is not set: cannot find ~/.claude/settings.json",
                if cfg!(windows) { "USERPROFILE" } else { "HOME" }
            ))
        })?;
        PathBuf::from(home).join(".claude").join("settings.json")
    } else {
        toplevel(&crate::cmd::cwd()?)?
            .join(".claude")
            .join("settings.local.json")
    };
    let mut settings = match std::fs::read(&file) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Json::Object(Vec::new()),
        Ok(bytes) => serde_json::from_slice::<Json>(&bytes).map_err(|e| {
            CliError::new(format!(
                "{}: not valid JSON ({e}); left as it is",
                file.display()
            ))
            .path(&file)
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Json::Object(Vec::new()),
        Err(e) => {
            return Err(CliError::new(format!("read {}: {e}", file.display()))
                .kind(Kind::Io)
                .path(&file));
        }
    };
    if !matches!(settings, Json::Object(_)) {
        return Err(CliError::new(format!(
            "{}: not a JSON object; left as it is",
            file.display()
        ))
        .path(&file));
    }
    if matches!(settings.get_mut("hooks"), Some(h) if !matches!(h, Json::Object(_))) {
        return Err(CliError::new(format!(
            "{}: \"hooks\" is not an object; left as it is",
            file.display()
        ))
        .path(&file));
    }
    // Decided (and checked) only when a hook is to be added: an install that changes nothing
    // runs nothing.
    let mut chosen: Option<program::Program> = None;
    let mut failed = None;
    let (added, present) = merge_hooks(&mut settings, |event| {
        if chosen.is_none() && failed.is_none() {
            match program::choose() {
                Ok(p) => chosen = Some(p),
                Err(e) => failed = Some(e),
            }
        }
        let program = chosen.as_ref().map_or("cowtree", |p| p.command.as_str());
        format!("{program} hook claude-code {event}")
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if !added.is_empty() {
        write_settings(&file, &settings)?;
    }
    if a.json {
        crate::cmd::print_json(&serde_json::json!({
            "settings": file, "added": added, "present": present,
            "command": chosen.as_ref().map(|p| &p.command),
            "how": chosen.as_ref().map(|p| p.how),
            "why": chosen.as_ref().map(|p| &p.why),
        }))?;
    } else if added.is_empty() {
        println!(
            "{}: the WorktreeCreate and WorktreeRemove hooks are there already; nothing changed",
            file.display()
        );
    } else {
        let p = chosen.as_ref().expect("chosen when a hook was added");
        println!(
            "{}: added the {} hook{} (running `{} hook claude-code ...`: {}){}",
            file.display(),
            added.join(" and "),
            if added.len() > 1 { "s" } else { "" },
            p.command,
            p.why,
            if present.is_empty() {
                String::new()
            } else {
                format!("; {} was there already", present.join(", "))
            }
        );
    }
    Ok(Exit::Ok)
}

/// Writes `settings` to `file` (two-space indented, as Claude Code writes it) through a
/// temporary file renamed over it; an existing file keeps its permission bits.
fn write_settings(file: &Path, settings: &Json) -> Result<(), CliError> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        CliError::new(format!("{what} {}: {e}", p.display()))
            .kind(Kind::Io)
            .path(p)
    };
    let dir = file.parent().expect("a settings file has a directory");
    std::fs::create_dir_all(dir).map_err(|e| io("create directory", dir, e))?;
    let mut text = serde_json::to_string_pretty(settings)
        .map_err(|e| CliError::new(format!("encode settings: {e}")))?;
    text.push('\n');
    let tmp = dir.join(format!(
        ".{}.cowtree-tmp.{}",
        file.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).map_err(|e| io("write", &tmp, e))?;
    if let Ok(m) = std::fs::metadata(file) {
        let _ = std::fs::set_permissions(&tmp, m.permissions());
    }
    std::fs::rename(&tmp, file).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("rename into", file, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(text: &str) -> (String, Vec<String>) {
        let mut s: Json = serde_json::from_str(text).unwrap();
        let (added, _) = merge_hooks(&mut s, |sub| format!("cowtree hook claude-code {sub}"));
        (serde_json::to_string(&s).unwrap(), added)
    }

    #[test]
    fn install_keeps_every_other_entry_and_its_order() {
        let (out, added) = merged(
            r#"{"z":1,"permissions":{"allow":["Bash(ls)"]},"hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"x"}]}]},"a":[true,null,2.5]}"#,
        );
        assert_eq!(added, ["WorktreeCreate", "WorktreeRemove"]);
        assert_eq!(
            out,
            r#"{"z":1,"permissions":{"allow":["Bash(ls)"]},"hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"x"}]}],"WorktreeCreate":[{"hooks":[{"type":"command","command":"cowtree hook claude-code worktree-create"}]}],"WorktreeRemove":[{"hooks":[{"type":"command","command":"cowtree hook claude-code worktree-remove"}]}]},"a":[true,null,2.5]}"#
        );
    }

    #[test]
    fn install_twice_changes_nothing_the_second_time() {
        let (once, _) = merged("{}");
        let (twice, added) = merged(&once);
        assert!(added.is_empty());
        assert_eq!(once, twice);
    }

    #[test]
    fn an_existing_hook_of_another_program_is_kept_beside_ours() {
        let (out, added) = merged(
            r#"{"hooks":{"WorktreeCreate":[{"hooks":[{"type":"command","command":"my-script"}]}]}}"#,
        );
        assert_eq!(added, ["WorktreeCreate", "WorktreeRemove"]);
        assert!(out.contains("my-script") && out.contains("worktree-create"));
    }

    #[test]
    fn names_that_leave_the_worktrees_directory_are_refused() {
        assert!(check_name("agent-1a2b").is_ok());
        assert!(check_name("team/task").is_ok());
        for bad in ["../x", "/abs", "a/../../b", ".", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
