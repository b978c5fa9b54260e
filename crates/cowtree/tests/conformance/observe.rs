//! What one side of a case left: the observations main.rs lists, each a named text with the
//! copy's root written `<COPY>`, in the order they are compared (the first that differs is the
//! one reported).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::index;
use crate::runner::{Env, Ran};

/// One side's observations.
pub struct Obs {
    pub exit: i32,
    /// The tool's stderr, normalized.
    pub stderr: String,
    /// Named texts, in the order they are compared.
    pub items: Vec<(&'static str, String)>,
}

/// The order observations are compared in.
const ORDER: &[&str] = &[
    "worktree files",
    "HEAD",
    "reflog of HEAD",
    "git ls-files --stage -v -t --sparse",
    "git sparse-checkout list",
    "registration",
    "git for-each-ref",
    "reflogs of the branches",
    "repository config",
    "git worktree list --porcelain",
    "git status --porcelain in DST",
    "git status --porcelain where add ran",
    "git fsck in DST",
    "names in the copy",
    "index file",
    "index cache tree (TREE)",
    "git ls-files --debug (no times, device, inode)",
];

/// Where a side ran and what to look at.
pub struct Site<'a> {
    /// The copy's root.
    pub copy: &'a Path,
    /// The state directory the copy was made from (written `<STATE>` where it shows).
    pub state: &'a Path,
    /// Where the add ran.
    pub cwd: &'a Path,
    /// The repository (for refs, config, the worktree list).
    pub repo: &'a Path,
    /// The new worktree, when the arguments name one.
    pub dst: Option<&'a Path>,
}

impl Site<'_> {
    fn norm(&self, s: &str) -> String {
        s.replace(&*self.copy.to_string_lossy(), "<COPY>")
            .replace(&*self.state.to_string_lossy(), "<STATE>")
    }
}

/// The observations of `site` after `ran`; `made`: whether git's side made the worktree (then
/// the worktree's own observations are taken on both sides).
pub fn observe(env: &Env, site: &Site, ran: &Ran, made: bool) -> Obs {
    let mut items: Vec<(&'static str, String)> = Vec::new();
    let git = |dir: &Path, args: &[&str]| -> String { site.norm(&git_text(env, dir, args)) };
    let hash_len = if git(site.repo, &["rev-parse", "--show-object-format"]).contains("sha256") {
        32
    } else {
        20
    };
    let common = common_dir(env, site.repo);
    match (made, site.dst) {
        (true, Some(dst)) => {
            let gitdir = linked_git_dir(dst);
            items.push((
                "registration",
                match &gitdir {
                    Some(g) => site.norm(&registration(g)),
                    None => "DST/.git names no git dir".into(),
                },
            ));
            items.push(("worktree files", site.norm(&tree(dst))));
            let (ix_head, ix_tree) = match &gitdir {
                Some(g) => match fs::read(g.join("index")) {
                    Ok(b) => index::describe(&b, hash_len),
                    Err(e) => (format!("no index ({})\n", e.kind()), String::new()),
                },
                None => ("no git dir\n".into(), String::new()),
            };
            items.push(("index file", ix_head));
            // Before any `git status`: it may rewrite the index.
            items.push((
                "git ls-files --stage -v -t --sparse",
                git(dst, &["ls-files", "--stage", "-v", "-t", "--sparse"]),
            ));
            items.push((
                "git sparse-checkout list",
                git(dst, &["sparse-checkout", "list"]),
            ));
            items.push((
                "HEAD",
                git(dst, &["rev-parse", "HEAD"]) + &git(dst, &["symbolic-ref", "-q", "HEAD"]),
            ));
            items.push((
                "reflog of HEAD",
                git(dst, &["reflog", "show", "--format=%H %gs", "HEAD"]),
            ));
            repo_items(env, site, &common, &mut items);
            items.push(("index cache tree (TREE)", ix_tree));
            items.push((
                "git ls-files --debug (no times, device, inode)",
                mask_debug(&git(dst, &["ls-files", "--stage", "--debug", "--sparse"])),
            ));
            // Without stderr: `git status` warns (a cone mode that cannot parse its patterns,
            // ...) only when it re-reads racily clean files, a matter of the clock.
            items.push((
                "git status --porcelain in DST",
                without_stderr(&git(dst, &["status", "--porcelain"])),
            ));
            items.push((
                "git status --porcelain where add ran",
                without_stderr(&git(site.cwd, &["status", "--porcelain"])),
            ));
            items.push((
                "git fsck in DST",
                git(dst, &["fsck", "--no-progress", "--no-dangling"]),
            ));
        }
        _ => {
            repo_items(env, site, &common, &mut items);
        }
    }
    items.push(("names in the copy", site.norm(&names(site.copy))));
    // Taken in the order git needs (the index before any `git status`), compared in the order
    // of what matters most to a user: the first difference reported is the most telling.
    items.sort_by_key(|(k, _)| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    Obs {
        exit: ran.code,
        stderr: site.norm(&ran.stderr),
        items,
    }
}

/// The repository's refs, reflogs, config and worktree list.
fn repo_items(
    env: &Env,
    site: &Site,
    common: &Option<PathBuf>,
    items: &mut Vec<(&'static str, String)>,
) {
    let git = |args: &[&str]| -> String { site.norm(&git_text(env, site.repo, args)) };
    items.push((
        "git for-each-ref",
        git(&[
            "for-each-ref",
            "--format=%(refname) %(objectname) %(symref) %(upstream)",
        ]),
    ));
    let heads = git_stdout(
        env,
        site.repo,
        &["for-each-ref", "--format=%(refname)", "refs/heads"],
    );
    let mut logs = String::new();
    for r in heads.lines() {
        logs.push_str(&git(&["reflog", "show", "--format=%H %gs", r]));
    }
    items.push(("reflogs of the branches", logs));
    items.push((
        "repository config",
        match common {
            Some(c) => match fs::read(c.join("config")) {
                Ok(b) => site.norm(&String::from_utf8_lossy(&b)),
                Err(e) => format!("unreadable: {}", e.kind()),
            },
            None => "no common dir".into(),
        },
    ));
    items.push((
        "git worktree list --porcelain",
        git(&["worktree", "list", "--porcelain"]),
    ));
}

/// `git ARGS` in `dir`: its exit status, stdout and stderr, as one text.
fn git_text(env: &Env, dir: &Path, args: &[&str]) -> String {
    if !dir.is_dir() {
        return format!("$ git {}\nno directory {}\n", args.join(" "), dir.display());
    }
    let out = env
        .observer(dir)
        .args(args)
        .output()
        .expect("run git to observe");
    let mut s = format!(
        "$ git {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    if !out.status.success() {
        s.push_str(&format!("exit {:?}\n", out.status.code()));
    }
    if !out.stderr.is_empty() {
        s.push_str(&format!("stderr: {}", String::from_utf8_lossy(&out.stderr)));
    }
    s
}

/// A [`git_text`] without its stderr.
fn without_stderr(text: &str) -> String {
    match text.find("stderr: ") {
        Some(i) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

fn git_stdout(env: &Env, dir: &Path, args: &[&str]) -> String {
    env.observer(dir)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The common git directory of the repository at `dir`, as git finds it.
pub fn common_dir(env: &Env, dir: &Path) -> Option<PathBuf> {
    let out = env
        .observer(dir)
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .output()
        .ok()?;
    out.status.success().then(|| {
        PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .trim_end_matches('\n')
                .to_owned(),
        )
    })
}

/// The git dir `dst/.git` names (`gitdir: X`, relative to `dst` when relative).
fn linked_git_dir(dst: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(dst.join(".git")).ok()?;
    let p = text.strip_prefix("gitdir: ")?.trim_end_matches('\n');
    Some(dst.join(p))
}

/// `--debug` lines without what differs between two checkouts of the same files (times,
/// device, inode); uid, gid, size and flags stay.
fn mask_debug(s: &str) -> String {
    s.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("ctime:") || t.starts_with("mtime:") || t.starts_with("dev:"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every entry under `root`, sorted: kind, permission bits, and a file's bytes (in full when
/// short and text, else length and BLAKE3) or a symlink's target. `.git` included.
pub fn tree(root: &Path) -> String {
    let mut out = BTreeMap::new();
    walk(root, root, &mut |rel, path, meta| {
        let ft = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let v = if ft.is_symlink() {
            format!(
                "l {:?}",
                fs::read_link(path).unwrap_or_default().to_string_lossy()
            )
        } else if ft.is_dir() {
            format!("d {mode:o}")
        } else if ft.is_file() {
            let b = fs::read(path).unwrap_or_default();
            match std::str::from_utf8(&b) {
                Ok(s) if b.len() <= 512 => format!("f {mode:o} {s:?}"),
                _ => format!(
                    "f {mode:o} {} bytes, {}",
                    b.len(),
                    blake3::hash(&b).to_hex()
                ),
            }
        } else {
            format!("other {:o}", meta.mode())
        };
        out.insert(rel.to_owned(), v);
        true
    });
    out.into_iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

/// The registration directory: every name in it (a reftable stack's tables by count only:
/// their names are random; `sharedindex.<id>` as `sharedindex.*`), and the bytes of every
/// small regular file but the index, the shared index and the reflogs (compared through git).
fn registration(gitdir: &Path) -> String {
    let mut names = Vec::new();
    let mut bytes = Vec::new();
    walk(gitdir, gitdir, &mut |rel, path, meta| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if rel.starts_with("reftable/") && name != "tables.list" {
            return false;
        }
        if name.starts_with("sharedindex.") {
            names.push("sharedindex.*".to_owned());
            return false;
        }
        names.push(format!("{rel}{}", if meta.is_dir() { "/" } else { "" }));
        if meta.is_file()
            && rel != "index"
            && !rel.starts_with("logs/")
            && !rel.starts_with("reftable/")
            && meta.len() <= 4096
        {
            let b = fs::read(path).unwrap_or_default();
            bytes.push(format!("{rel}: {:?}", String::from_utf8_lossy(&b)));
        }
        true
    });
    names.sort();
    bytes.sort();
    format!("entries: {}\n{}\n", names.join(" "), bytes.join("\n"))
}

/// Every name under the copy, sorted, with its kind; not inside an object store (lazy
/// fetches, packs) or cowtree's own cache in a git dir (`$GIT_COMMON_DIR/cowtree`), a reftable
/// stack's tables by name (random) or a shared index's id.
pub fn names(root: &Path) -> String {
    let mut out = Vec::new();
    walk(root, root, &mut |rel, path, meta| {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let parent = path.parent().unwrap_or(root);
        let in_git_dir = parent.join("HEAD").is_file() && parent.join("config").is_file()
            || parent.join("commondir").is_file();
        if meta.is_dir() && in_git_dir && name == "objects" {
            out.push(format!("{rel}/ (not compared)"));
            return false;
        }
        if meta.is_dir() && in_git_dir && name == "cowtree" {
            return false;
        }
        if parent.file_name().is_some_and(|n| n == "reftable") && name != "tables.list" {
            return false;
        }
        let shown = if name.starts_with("sharedindex.") {
            rel.replace(&*name, "sharedindex.*")
        } else {
            rel.to_owned()
        };
        let kind = if meta.file_type().is_symlink() {
            "l"
        } else if meta.is_dir() {
            "d"
        } else {
            "f"
        };
        out.push(format!("{shown} {kind}"));
        true
    });
    out.sort();
    out.dedup();
    out.iter().map(|l| format!("{l}\n")).collect()
}

/// Calls `visit(relative path, path, lstat)` for every entry under `dir`, descending into a
/// directory when it returns true. Symlinks are not followed.
fn walk(root: &Path, dir: &Path, visit: &mut dyn FnMut(&str, &Path, &fs::Metadata) -> bool) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        if visit(&rel, &path, &meta) && meta.is_dir() {
            walk(root, &path, visit);
        }
    }
}
