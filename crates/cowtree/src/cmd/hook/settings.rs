//! Claude Code's worktree settings, read from the files Claude Code reads them from and
//! resolved with Claude Code's precedence. With a `WorktreeCreate` hook configured, Claude Code
//! applies none of them itself: the hook must. `worktree.baseRef` (where a new worktree
//! branches from: its payload names none), `worktree.sparsePaths` (a cone-mode sparse
//! checkout of these directories) and `worktree.symlinkDirectories` (directories of the main
//! checkout symlinked into the new worktree).
//!
//! The two lists are merged as Claude Code merges the arrays of its settings files: every
//! file's entries, lowest precedence first, each once.
//!
//! The files, lowest precedence first; a file that sets the value overrides every file above it
//! in the table (Claude Code merges its settings files key by key, so a file that does not set
//! `worktree.baseRef` leaves the value of the files below it in force):
//!
//! | scope | file |
//! |---|---|
//! | user | `$CLAUDE_CONFIG_DIR/settings.json`, else `~/.claude/settings.json` |
//! | project | `.claude/settings.json` in the project directory: `$CLAUDE_PROJECT_DIR` (where Claude Code started) when it is in the same repository, else the top of the worktree |
//! | local | `.claude/settings.local.json` at the top of the repository's main checkout |
//! | managed | `managed-settings.json`, then `managed-settings.d/*.json` by name, in [`managed_dir`] |
//!
//! The setting is nested, `{"worktree": {"baseRef": "fresh"}}`, and takes `"fresh"` (the
//! default) or `"head"`. Claude Code skips the whole of a settings file that has an error
//! ("Files with errors are skipped entirely, not just the invalid settings"), so a file that
//! cannot be read, is not JSON, is not an object, or whose `worktree` or `worktree.baseRef` is
//! invalid counts here as absent, and the hook says so on stderr. Only what this setting
//! depends on is checked: a file Claude Code rejects for some other key is still read here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the managed (organization) settings files are: the system directory of Claude Code's
/// file-based managed settings (`/etc/claude-code`, `/Library/Application Support/ClaudeCode`
/// on macOS, `C:\Program Files\ClaudeCode` on Windows, from `%ProgramFiles%`).
pub fn managed_dir() -> PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramFiles")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| r"C:\Program Files".into());
        PathBuf::from(base).join("ClaudeCode")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/ClaudeCode")
    } else {
        PathBuf::from("/etc/claude-code")
    }
}

/// The home directory Claude Code takes `~` as (Node's `os.homedir()`): `HOME`, on Windows
/// `USERPROFILE`.
pub fn home() -> Option<OsString> {
    let key = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(key).filter(|v| !v.is_empty())
}

/// Where new worktrees branch from: the two values Claude Code accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaseRef {
    /// `"fresh"`, Claude Code's default: the remote's default branch (`origin/HEAD`).
    #[default]
    Fresh,
    /// `"head"`: the `HEAD` of the worktree the hook runs for.
    Head,
}

impl BaseRef {
    /// The value as written in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            BaseRef::Fresh => "fresh",
            BaseRef::Head => "head",
        }
    }
}

/// Which settings a file holds, in Claude Code's order of precedence (lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The user's, for every project.
    User,
    /// The project's, shared through the repository.
    Project,
    /// The user's for this repository only.
    Local,
    /// The organization's; nothing overrides them.
    Managed,
}

impl Scope {
    /// The scope's name, as Claude Code's documentation names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Project => "project",
            Scope::Local => "local",
            Scope::Managed => "managed",
        }
    }
}

/// What one settings file says about `worktree.baseRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The file is absent, or does not set it.
    Unset,
    /// The file sets it.
    Set(BaseRef),
    /// Claude Code skips this file as a whole: why (one line, without the path).
    Skipped(String),
}

/// A settings file and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub scope: Scope,
    pub path: PathBuf,
    pub read: Read,
    /// Something the user should know that does not change the value (a dotted key).
    pub note: Option<String>,
    /// `worktree.sparsePaths` and `worktree.symlinkDirectories`, when the file sets them (and
    /// is not skipped).
    pub lists: Lists,
}

/// The worktree settings that are lists of directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lists {
    /// `worktree.sparsePaths`.
    pub sparse_paths: Vec<String>,
    /// `worktree.symlinkDirectories`.
    pub symlink_directories: Vec<String>,
}

/// The lists of `files` merged as Claude Code merges arrays across its settings files: each
/// file's entries, in precedence order (lowest first), each once. Skipped files never count.
pub fn merged_lists(files: &[File]) -> Lists {
    let mut ordered: Vec<&File> = files
        .iter()
        .filter(|f| !matches!(f.read, Read::Skipped(_)))
        .collect();
    ordered.sort_by_key(|f| f.scope);
    let mut out = Lists::default();
    for f in ordered {
        for (from, to) in [
            (&f.lists.sparse_paths, &mut out.sparse_paths),
            (&f.lists.symlink_directories, &mut out.symlink_directories),
        ] {
            for d in from {
                if !to.contains(d) {
                    to.push(d.clone());
                }
            }
        }
    }
    out
}

/// The list settings a settings object sets, or why Claude Code would skip the file (a value
/// that is not an array of strings).
fn lists_of(obj: &serde_json::Map<String, Value>) -> Result<Lists, String> {
    let Some(Value::Object(w)) = obj.get("worktree") else {
        return Ok(Lists::default());
    };
    let list = |key: &str| -> Result<Vec<String>, String> {
        match w.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!(
                        "\"worktree.{key}\" holds {other}, and Claude Code accepts only strings"
                    )),
                })
                .collect(),
            Some(other) => Err(format!(
                "\"worktree.{key}\" is {other}, not an array of directory paths"
            )),
        }
    };
    Ok(Lists {
        sparse_paths: list("sparsePaths")?,
        symlink_directories: list("symlinkDirectories")?,
    })
}

/// The file whose `worktree.baseRef` is in force among `files`: the one of the highest scope
/// that sets it and, within a scope, the last one given (managed drop-ins come after the base
/// file, by name). `None`: no file sets it, and Claude Code's default ([`BaseRef::Fresh`])
/// applies. Skipped files never count.
pub fn effective(files: &[File]) -> Option<&File> {
    let mut best: Option<&File> = None;
    for f in files {
        if matches!(f.read, Read::Set(_)) && best.is_none_or(|b| f.scope >= b.scope) {
            best = Some(f);
        }
    }
    best
}

/// The value `file` (from [`effective`]) gives, or the default without one.
pub fn value(file: Option<&File>) -> BaseRef {
    match file.map(|f| &f.read) {
        Some(Read::Set(v)) => *v,
        _ => BaseRef::default(),
    }
}

/// What the settings file text `bytes` says about `worktree.baseRef`, and a note for the user
/// when it has the setting as one dotted key, which Claude Code does not read. A file of only
/// whitespace sets nothing.
pub fn parse(bytes: &[u8]) -> (Read, Option<String>) {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return (Read::Unset, None);
    }
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return (Read::Skipped(format!("not valid JSON ({e})")), None),
    };
    let Some(obj) = v.as_object() else {
        return (Read::Skipped("not a JSON object".into()), None);
    };
    let note = obj.contains_key("worktree.baseRef").then(|| {
        "the key \"worktree.baseRef\" is not read by Claude Code, which reads \
         {\"worktree\": {\"baseRef\": ...}}; it is ignored"
            .to_owned()
    });
    let read = match obj.get("worktree") {
        None => Read::Unset,
        Some(Value::Object(w)) => match w.get("baseRef") {
            None => Read::Unset,
            Some(Value::String(s)) if s == "fresh" => Read::Set(BaseRef::Fresh),
            Some(Value::String(s)) if s == "head" => Read::Set(BaseRef::Head),
            Some(other) => Read::Skipped(format!(
                "\"worktree.baseRef\" is {other}, and Claude Code accepts only \"fresh\" or \"head\""
            )),
        },
        Some(other) => Read::Skipped(format!("\"worktree\" is {other}, not an object")),
    };
    (read, note)
}

/// Reads the settings file at `path`: absent (or under a non-directory) sets nothing; a file
/// that cannot be read is skipped, as Claude Code cannot read it either.
pub fn read(scope: Scope, path: PathBuf) -> File {
    let mut lists = Lists::default();
    let (read, note) = match std::fs::read(&path) {
        Ok(bytes) => {
            let (read, note) = parse(&bytes);
            let obj = serde_json::from_slice::<Value>(&bytes).ok();
            match obj.as_ref().and_then(Value::as_object).map(lists_of) {
                Some(Err(why)) if !matches!(read, Read::Skipped(_)) => (Read::Skipped(why), note),
                Some(Ok(l)) => {
                    lists = l;
                    (read, note)
                }
                _ => (read, note),
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            (Read::Unset, None)
        }
        Err(e) => (Read::Skipped(format!("cannot be read ({e})")), None),
    };
    File {
        scope,
        path,
        read,
        note,
        lists,
    }
}

/// The user settings file: in `config_dir` (`CLAUDE_CONFIG_DIR`, which moves all of Claude
/// Code's user configuration) when set, else `<home>/.claude`; none without either.
pub fn user_file(config_dir: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    match (config_dir, home) {
        (Some(c), _) => Some(PathBuf::from(c).join("settings.json")),
        (None, Some(h)) => Some(PathBuf::from(h).join(".claude").join("settings.json")),
        (None, None) => None,
    }
}

/// The managed settings files in `dir`: `managed-settings.json`, then each `*.json` of
/// `managed-settings.d` not starting with `.`, sorted by name (Claude Code merges them in that
/// order, so a later one wins). A drop-in directory that exists but cannot be listed is
/// returned as a skipped entry of its own.
pub fn managed(dir: &Path) -> Vec<File> {
    let mut files = vec![read(Scope::Managed, dir.join("managed-settings.json"))];
    let d = dir.join("managed-settings.d");
    match std::fs::read_dir(&d) {
        Ok(entries) => {
            let mut names: Vec<OsString> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|n| {
                    let b = n.as_encoded_bytes();
                    !b.starts_with(b".") && b.ends_with(b".json")
                })
                .collect();
            names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
            files.extend(names.into_iter().map(|n| read(Scope::Managed, d.join(n))));
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) => {}
        Err(e) => files.push(File {
            scope: Scope::Managed,
            path: d,
            read: Read::Skipped(format!("cannot be listed ({e})")),
            note: None,
            lists: Lists::default(),
        }),
    }
    files
}

/// Every settings file Claude Code reads `worktree.baseRef` from, for a session in the
/// repository whose worktree has its top at `top`, lowest precedence first: where each file is
/// comes from the environment Claude Code gives its hooks (`CLAUDE_CONFIG_DIR`,
/// `CLAUDE_PROJECT_DIR`, `HOME`; `USERPROFILE` on Windows) and from git.
pub fn load(top: &Path) -> Vec<File> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let project = project_dir(top, env("CLAUDE_PROJECT_DIR"));
    let main = main_checkout(top).unwrap_or_else(|| project.clone());
    let mut files = Vec::new();
    let user = user_file(env("CLAUDE_CONFIG_DIR"), home());
    let project_file = project.join(".claude").join("settings.json");
    if let Some(u) = &user {
        files.push(read(Scope::User, u.clone()));
    }
    // A session started in the home directory: Claude Code reads that file as the user's.
    if user.as_ref() != Some(&project_file) {
        files.push(read(Scope::Project, project_file));
    }
    files.push(read(
        Scope::Local,
        main.join(".claude").join("settings.local.json"),
    ));
    files.extend(managed(&managed_dir()));
    files
}

/// The project directory: `CLAUDE_PROJECT_DIR` (`env`) when it is in the same repository as
/// `top` (a hook run by hand inside another session may inherit another project's), else `top`.
fn project_dir(top: &Path, env: Option<OsString>) -> PathBuf {
    if let Some(p) = env.map(PathBuf::from)
        && p.is_absolute()
        && let Some(repo) = common_dir(&p)
        && common_dir(top) == Some(repo)
    {
        return p;
    }
    top.to_owned()
}

/// The repository's common git directory, as seen from `dir`, canonical.
fn common_dir(dir: &Path) -> Option<PathBuf> {
    let out = cowtree_git::branch::git(dir)
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?;
    PathBuf::from(text.trim_end_matches('\n'))
        .canonicalize()
        .ok()
}

/// The top of the repository's main checkout (its first worktree), seen from `dir`; `None`
/// for a bare repository.
pub fn main_checkout(dir: &Path) -> Option<PathBuf> {
    let out = cowtree_git::branch::git(dir)
        .args(["worktree", "list", "--porcelain", "-z"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    first_worktree(&out.stdout)
}

/// The main worktree's path in `git worktree list --porcelain -z` output: the first record's
/// `worktree` line, unless that record says `bare`.
fn first_worktree(porcelain: &[u8]) -> Option<PathBuf> {
    let mut path = None;
    for field in porcelain.split(|&b| b == 0) {
        if field.is_empty() {
            break;
        }
        if let Some(p) = field.strip_prefix(b"worktree ") {
            path = Some(crate::os::path_from_bytes(p));
        } else if field == b"bare" {
            return None;
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows: the places Claude Code reads there, and a path Git for Windows prints made one
    /// Windows path before the hook joins to it.
    #[cfg(windows)]
    #[test]
    fn windows_paths_are_claude_codes_and_read_as_windows_paths() {
        let pf = std::env::var_os("ProgramFiles").expect("ProgramFiles is set on Windows");
        assert_eq!(managed_dir(), PathBuf::from(pf).join("ClaudeCode"));
        assert_eq!(home(), std::env::var_os("USERPROFILE"));
        assert_eq!(
            user_file(None, Some(r"C:\Users\me".into())),
            Some(PathBuf::from(r"C:\Users\me\.claude\settings.json"))
        );
        let top = crate::os::path_from_git("C:/Users/me/repo");
        assert_eq!(
            top.join(".claude").join("worktrees").join("w1").as_os_str(),
            r"C:\Users\me\repo\.claude\worktrees\w1"
        );
        // A settings file at a Windows path is read.
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join(".claude");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(
            dir.join("settings.json"),
            br#"{"worktree": {"baseRef": "head"}}"#,
        )
        .expect("write");
        let user = user_file(None, Some(t.path().as_os_str().to_owned())).expect("a user file");
        assert_eq!(user, dir.join("settings.json"));
        assert_eq!(read(Scope::User, user).read, Read::Set(BaseRef::Head));
    }

    fn file(scope: Scope, name: &str, read: Read) -> File {
        File {
            scope,
            path: PathBuf::from(name),
            read,
            note: None,
            lists: Lists::default(),
        }
    }

    #[test]
    fn lists_merge_every_file_lowest_first_each_entry_once_and_skip_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let user = read(
            User,
            write(
                "u.json",
                r#"{"worktree": {"sparsePaths": ["a", "b"], "symlinkDirectories": ["node_modules"]}}"#,
            ),
        );
        let local = read(
            Local,
            write("l.json", r#"{"worktree": {"sparsePaths": ["b", "c"]}}"#),
        );
        let bad = read(
            Project,
            write("p.json", r#"{"worktree": {"sparsePaths": "d"}}"#),
        );
        assert!(matches!(bad.read, Skipped(_)), "{:?}", bad.read);
        let m = merged_lists(&[local.clone(), bad, user.clone()]);
        assert_eq!(m.sparse_paths, ["a", "b", "c"]);
        assert_eq!(m.symlink_directories, ["node_modules"]);
        let nums = read(
            User,
            write("n.json", r#"{"worktree": {"symlinkDirectories": [1]}}"#),
        );
        assert!(matches!(nums.read, Skipped(_)));
        assert_eq!(merged_lists(&[]), Lists::default());
    }

    fn winner(files: &[File]) -> (BaseRef, Option<&str>) {
        let f = effective(files);
        (value(f), f.map(|f| f.path.to_str().unwrap()))
    }

    use BaseRef::{Fresh, Head};
    use Read::{Set, Skipped, Unset};
    use Scope::{Local, Managed, Project, User};

    #[test]
    fn no_file_setting_it_gives_claude_codes_default_fresh() {
        assert_eq!(winner(&[]), (Fresh, None));
        let files = [
            file(User, "u", Unset),
            file(Project, "p", Unset),
            file(Local, "l", Skipped("not JSON".into())),
        ];
        assert_eq!(winner(&files), (Fresh, None));
    }

    #[test]
    fn each_file_alone_sets_the_value() {
        for scope in [User, Project, Local, Managed] {
            let files = [file(scope, "only", Set(Head))];
            assert_eq!(winner(&files), (Head, Some("only")), "{scope:?}");
        }
    }

    #[test]
    fn the_more_specific_file_wins_local_over_project_over_user_and_managed_over_all() {
        // (user, project, local, managed) -> the winner
        type Row = ([Option<BaseRef>; 4], (BaseRef, &'static str));
        let table: &[Row] = &[
            ([Some(Head), Some(Fresh), None, None], (Fresh, "p")),
            ([Some(Fresh), Some(Head), None, None], (Head, "p")),
            ([None, Some(Head), Some(Fresh), None], (Fresh, "l")),
            ([Some(Fresh), None, Some(Head), None], (Head, "l")),
            ([Some(Head), Some(Head), Some(Fresh), None], (Fresh, "l")),
            ([Some(Fresh), Some(Fresh), Some(Head), None], (Head, "l")),
            (
                [Some(Head), Some(Head), Some(Head), Some(Fresh)],
                (Fresh, "m"),
            ),
            ([Some(Fresh), None, None, Some(Head)], (Head, "m")),
            ([Some(Head), None, None, None], (Head, "u")),
        ];
        for (values, want) in table {
            let files: Vec<File> = [(User, "u"), (Project, "p"), (Local, "l"), (Managed, "m")]
                .into_iter()
                .zip(values)
                .map(|((s, n), v)| file(s, n, v.map_or(Unset, Set)))
                .collect();
            assert_eq!(winner(&files), (want.0, Some(want.1)), "{values:?}");
        }
    }

    #[test]
    fn precedence_is_by_scope_not_by_the_order_given() {
        let files = [
            file(Managed, "m", Set(Fresh)),
            file(Local, "l", Set(Head)),
            file(User, "u", Set(Head)),
        ];
        assert_eq!(winner(&files), (Fresh, Some("m")));
    }

    #[test]
    fn a_later_managed_drop_in_overrides_the_managed_base_file() {
        let files = [
            file(Local, "l", Set(Fresh)),
            file(Managed, "managed-settings.json", Set(Fresh)),
            file(Managed, "d/10-a.json", Set(Head)),
            file(Managed, "d/20-b.json", Unset),
        ];
        assert_eq!(winner(&files), (Head, Some("d/10-a.json")));
    }

    #[test]
    fn a_skipped_file_does_not_count_and_the_next_one_down_applies() {
        let files = [
            file(User, "u", Set(Head)),
            file(Project, "p", Unset),
            file(
                Local,
                "l",
                Skipped("\"worktree.baseRef\" is \"main\"".into()),
            ),
        ];
        assert_eq!(winner(&files), (Head, Some("u")));
    }

    #[test]
    fn parse_reads_the_nested_setting_and_skips_files_claude_code_rejects() {
        let skipped = |r: &Read, what: &str| matches!(r, Skipped(s) if s.contains(what));
        for (text, want) in [
            (r#"{"worktree": {"baseRef": "fresh"}}"#, Set(Fresh)),
            (
                r#"{"worktree": {"baseRef": "head"}, "model": "x"}"#,
                Set(Head),
            ),
            (r#"{"worktree": {"sparsePaths": ["a"]}}"#, Unset),
            (r#"{"permissions": {}}"#, Unset),
            ("{}", Unset),
            ("", Unset),
            (" \n\t", Unset),
        ] {
            assert_eq!(parse(text.as_bytes()).0, want, "{text}");
        }
        for (text, what) in [
            (r#"{"worktree": {"baseRef": "main"}}"#, "\"main\""),
            (r#"{"worktree": {"baseRef": "HEAD"}}"#, "\"HEAD\""),
            (r#"{"worktree": {"baseRef": true}}"#, "true"),
            (r#"{"worktree": {"baseRef": null}}"#, "null"),
            (r#"{"worktree": "head"}"#, "not an object"),
            ("[1]", "not a JSON object"),
            ("{\"worktree\": {\"baseRef\": \"head\"},}", "not valid JSON"),
            ("// comment\n{}", "not valid JSON"),
        ] {
            let (r, _) = parse(text.as_bytes());
            assert!(skipped(&r, what), "{text}: {r:?}");
        }
    }

    #[test]
    fn a_dotted_key_sets_nothing_and_says_so() {
        let (r, note) = parse(br#"{"worktree.baseRef": "head"}"#);
        assert_eq!(r, Unset);
        assert!(note.unwrap().contains("not read by Claude Code"));
        let (r, note) = parse(br#"{"worktree": {"baseRef": "head"}}"#);
        assert_eq!(r, Set(Head));
        assert!(note.is_none());
    }

    #[test]
    fn the_user_file_moves_with_claude_config_dir() {
        let s = |x: &str| Some(OsString::from(x));
        assert_eq!(
            user_file(None, s("/h")),
            Some(PathBuf::from("/h/.claude/settings.json"))
        );
        assert_eq!(
            user_file(s("/c"), s("/h")),
            Some(PathBuf::from("/c/settings.json"))
        );
        assert_eq!(user_file(None, None), None);
    }

    #[test]
    fn managed_files_are_the_base_then_json_drop_ins_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("managed-settings.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            dir.path().join("managed-settings.json"),
            r#"{"worktree":{"baseRef":"fresh"}}"#,
        )
        .unwrap();
        for (name, text) in [
            ("20-b.json", r#"{"worktree":{"baseRef":"head"}}"#),
            ("10-a.json", r#"{"worktree":{"baseRef":"fresh"}}"#),
            (".30-hidden.json", r#"{"worktree":{"baseRef":"fresh"}}"#),
            ("40-c.txt", r#"{"worktree":{"baseRef":"fresh"}}"#),
        ] {
            std::fs::write(d.join(name), text).unwrap();
        }
        let files = managed(dir.path());
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["managed-settings.json", "10-a.json", "20-b.json"]);
        assert_eq!(value(effective(&files)), Head);
        assert!(files.iter().all(|f| f.scope == Managed));

        let none = tempfile::tempdir().unwrap();
        let files = managed(none.path());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].read, Unset);
    }

    #[test]
    fn an_unreadable_file_is_skipped_and_an_absent_one_sets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(User, dir.path().join("absent.json")).read, Unset);
        // A directory where the file should be: read fails with EISDIR.
        let f = read(User, dir.path().to_owned());
        assert!(
            matches!(f.read, Skipped(ref s) if s.contains("cannot be read")),
            "{f:?}"
        );
        // A file where a directory of the path should be.
        std::fs::write(dir.path().join("plain"), "").unwrap();
        assert_eq!(
            read(User, dir.path().join("plain/settings.json")).read,
            Unset
        );
    }

    #[test]
    fn the_main_worktree_is_the_first_record_unless_bare() {
        let out = b"worktree /r\0HEAD 0123\0branch refs/heads/main\0\0worktree /r/w\0HEAD 4567\0detached\0\0";
        assert_eq!(first_worktree(out), Some(PathBuf::from("/r")));
        assert_eq!(
            first_worktree(b"worktree /r.git\0bare\0\0worktree /w\0\0"),
            None
        );
        assert_eq!(first_worktree(b""), None);
    }
}
