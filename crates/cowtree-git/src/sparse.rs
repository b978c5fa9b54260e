//! Sparse checkout: which of the target's entries the new worktree gets, decided as git's
//! checkout decides it (`unpack-trees.c`, `mark_new_skip_worktree`, with `dir.c`'s pattern
//! rules), from the patterns `git worktree add` copies from the worktree the command runs in
//! (`$GIT_DIR/info/sparse-checkout`).
//!
//! Every entry starts outside the worktree; the patterns widen it:
//! - **Cone mode** (`core.sparseCheckoutCone`): the patterns are read into two sets, the
//!   directories taken whole (`/d/`) and the directories whose own files only are taken
//!   (`/d/` followed by `!/d/*/`), by the rules of git's `add_pattern_to_hashsets`; a file is
//!   in when it is at the top, when its directory is a parent directory, or when a directory
//!   above it is taken whole. A file git does not read as cone patterns turns cone matching
//!   off, as git's does (it warns), and the patterns are read as below.
//! - **Patterns** (non-cone): gitignore syntax. Each directory, from the top, and then the
//!   file itself, is matched against the patterns; the last pattern that matches decides
//!   (in, or out when negated), and where none matches the directory's answer above holds
//!   (git's `clear_ce_flags_1` and `clear_ce_flags_dir`).
//!
//! Entries left out get the skip-worktree flag and are never written.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gix::bstr::{BStr, BString, ByteSlice};

/// A sparse checkout's patterns, read for matching.
pub struct Patterns {
    mode: Mode,
}

enum Mode {
    /// `/*` without `!/*/`: everything is in.
    FullCone,
    /// Cone sets, paths with a leading `/` and no trailing one.
    Cone {
        recursive: HashSet<BString>,
        parent: HashSet<BString>,
    },
    /// Non-cone patterns, matched as gitignore patterns are.
    Globs(gix::ignore::Search),
}

/// git's answer for one path: in, out, or no pattern said (non-cone only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    In,
    Out,
    Undecided,
}

impl Patterns {
    /// Reads the patterns file's bytes; `cone` is `core.sparseCheckoutCone`. With `cone`, a
    /// file that is not all cone patterns is read as non-cone patterns (git warns and does
    /// the same).
    pub fn parse(bytes: &[u8], cone: bool) -> Patterns {
        if cone && let Some(mode) = cone_sets(bytes) {
            return Patterns { mode };
        }
        let mut search = gix::ignore::Search::default();
        search.add_patterns_buffer(
            bytes,
            Path::new("info/sparse-checkout"),
            None,
            gix::ignore::search::Ignore {
                support_precious: false,
            },
        );
        Patterns {
            mode: Mode::Globs(search),
        }
    }

    /// A matcher that remembers the answers for directories (each is asked once).
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            patterns: self,
            dirs: HashMap::new(),
        }
    }

    /// Whether the cone patterns put directory `dir` (no trailing slash) out of the worktree
    /// whole: nothing below it can be in. `false` for non-cone patterns, which have no such
    /// notion (and no sparse index).
    pub fn cone_excludes_dir(&self, dir: &BStr) -> bool {
        match &self.mode {
            Mode::FullCone | Mode::Globs(_) => false,
            Mode::Cone { .. } => {
                let mut fake = BString::from(dir.to_vec());
                fake.extend_from_slice(b"/-");
                self.cone_answer(fake.as_ref()) == Answer::Out
            }
        }
    }

    /// Whether these are cone patterns (a sparse index is possible only with them).
    pub fn is_cone(&self) -> bool {
        !matches!(self.mode, Mode::Globs(_))
    }

    /// git's `path_matches_pattern_list` in cone mode for the file `path` (no leading slash).
    fn cone_answer(&self, path: &BStr) -> Answer {
        let (recursive, parent) = match &self.mode {
            Mode::FullCone => return Answer::In,
            Mode::Cone { recursive, parent } => (recursive, parent),
            Mode::Globs(_) => unreachable!("cone_answer is asked of cone patterns only"),
        };
        let mut p = BString::from("/");
        p.extend_from_slice(path);
        if recursive.contains(&p) {
            return Answer::In;
        }
        let Some(slash) = p.rfind_byte(b'/').filter(|&s| s > 0) else {
            // A file at the top is always in.
            return Answer::In;
        };
        if parent.contains(p[..slash].as_bstr()) {
            return Answer::In;
        }
        // A directory above taken whole.
        for (i, b) in p.iter().enumerate().skip(1) {
            if *b == b'/' && recursive.contains(p[..i].as_bstr()) {
                return Answer::In;
            }
        }
        Answer::Out
    }
}

/// Answers, for the files of one target, in or out; directories' answers are kept.
pub struct Matcher<'a> {
    patterns: &'a Patterns,
    dirs: HashMap<BString, Answer>,
}

impl Matcher<'_> {
    /// Whether the file (or symlink, or submodule) at `path` is in the worktree.
    pub fn includes(&mut self, path: &BStr, is_dir: bool) -> bool {
        match &self.patterns.mode {
            Mode::FullCone => true,
            Mode::Cone { .. } => self.patterns.cone_answer(path) == Answer::In,
            Mode::Globs(search) => {
                let inherited = match path.rfind_byte(b'/') {
                    Some(slash) => self.dir_answer(search, path[..slash].as_bstr()),
                    None => Answer::Out,
                };
                let own = glob_answer(search, path, is_dir);
                let answer = if own == Answer::Undecided {
                    inherited
                } else {
                    own
                };
                answer == Answer::In
            }
        }
    }

    /// The answer for directory `dir` (no trailing slash): its own, else its parent's; the
    /// top's is out.
    fn dir_answer(&mut self, search: &gix::ignore::Search, dir: &BStr) -> Answer {
        if let Some(a) = self.dirs.get(dir) {
            return *a;
        }
        let inherited = match dir.rfind_byte(b'/') {
            Some(slash) => self.dir_answer(search, dir[..slash].as_bstr()),
            None => Answer::Out,
        };
        let own = glob_answer(search, dir, true);
        let answer = if own == Answer::Undecided {
            inherited
        } else {
            own
        };
        self.dirs.insert(dir.to_owned(), answer);
        answer
    }
}

/// The last pattern matching `path` decides: in, out when it is negated; none: undecided.
fn glob_answer(search: &gix::ignore::Search, path: &BStr, is_dir: bool) -> Answer {
    match search.pattern_matching_relative_path(
        path,
        Some(is_dir),
        gix::glob::pattern::Case::Sensitive,
    ) {
        Some(m) if m.pattern.is_negative() => Answer::Out,
        Some(_) => Answer::In,
        None => Answer::Undecided,
    }
}

/// The patterns file `git sparse-checkout set --cone DIRS...` writes for `dirs` (its
/// `strbuf_to_cone_pattern`, `insert_recursive_pattern` and `write_cone_to_file`): `/*` and
/// `!/*/`, each parent of a directory as `/p/` and `!/p/*/`, then each directory not below
/// another, sorted, glob characters escaped. Refuses, with git's message, what `set` refuses
/// (a leading `/` or `!`, a path leaving the top).
pub fn cone_file(dirs: &[String]) -> Result<Vec<u8>, String> {
    let mut recursive: Vec<String> = Vec::new();
    let mut parents: Vec<String> = Vec::new();
    for d in dirs {
        if d.starts_with('/') {
            return Err("specify directories rather than patterns (no leading slash)".into());
        }
        if d.starts_with('!') {
            return Err(
                "specify directories rather than patterns.  If your directory starts with a '!', \
                 pass --skip-checks"
                    .into(),
            );
        }
        if d.contains(['*', '?', '[', ']']) {
            return Err(
                "specify directories rather than patterns.  If your directory really has any of \
                 '*?[]\\' in it, pass --skip-checks"
                    .into(),
            );
        }
        let trimmed = d.trim().trim_end_matches('/');
        let mut parts: Vec<&str> = Vec::new();
        for c in trimmed.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(format!("could not normalize path {trimmed}"));
                    }
                }
                c => parts.push(c),
            }
        }
        if parts.is_empty() {
            continue;
        }
        let path = format!("/{}", parts.join("/"));
        let mut p = path.as_str();
        while let Some(slash) = p.rfind('/').filter(|&s| s > 0) {
            p = &p[..slash];
            if !parents.iter().any(|x| x == p) {
                parents.push(p.to_owned());
            }
        }
        recursive.push(path);
    }
    let below_recursive = |p: &str| {
        recursive.iter().any(|r| {
            p.len() > r.len() && p.starts_with(r.as_str()) && p.as_bytes()[r.len()] == b'/'
        })
    };
    let escape = |p: &str| {
        let mut out = String::with_capacity(p.len());
        for c in p.chars() {
            if matches!(c, '*' | '?' | '[' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    let mut out = String::from("/*\n!/*/\n");
    let mut ps: Vec<&String> = parents
        .iter()
        .filter(|p| !recursive.contains(p) && !below_recursive(p))
        .collect();
    ps.sort();
    ps.dedup();
    for p in ps {
        let e = escape(p);
        out.push_str(&format!("{e}/\n!{e}/*/\n"));
    }
    let mut rs: Vec<&String> = recursive.iter().filter(|r| !below_recursive(r)).collect();
    rs.sort();
    rs.dedup();
    for r in rs {
        out.push_str(&format!("{}/\n", escape(r)));
    }
    Ok(out.into_bytes())
}

/// One line of a patterns file as git's `parse_path_pattern` reads it: the pattern (its `!`
/// and trailing `/` taken off), negated, must be a directory.
struct Line<'a> {
    pattern: &'a [u8],
    negative: bool,
    must_be_dir: bool,
}

/// The lines of a patterns file as git's `add_patterns_from_buffer` reads them: comments and
/// blank lines dropped, trailing spaces trimmed unless escaped.
fn lines(bytes: &[u8]) -> impl Iterator<Item = Line<'_>> {
    bytes.split(|&b| b == b'\n').filter_map(|raw| {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() || raw[0] == b'#' {
            return None;
        }
        let mut end = raw.len();
        while end > 0 && raw[end - 1] == b' ' {
            if end >= 2 && raw[end - 2] == b'\\' {
                break;
            }
            end -= 1;
        }
        let mut p = &raw[..end];
        if p.is_empty() {
            return None;
        }
        let negative = p[0] == b'!';
        if negative {
            p = &p[1..];
        }
        let must_be_dir = p.last() == Some(&b'/');
        if must_be_dir {
            p = &p[..p.len() - 1];
        }
        Some(Line {
            pattern: p,
            negative,
            must_be_dir,
        })
    })
}

fn is_glob_special(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b'\\')
}

/// git's `dup_and_filter_pattern`: escapes removed, a trailing `/*` dropped.
fn filter_pattern(p: &[u8]) -> BString {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'\\' {
            i += 1;
            if i >= p.len() {
                break;
            }
        }
        out.push(p[i]);
        i += 1;
    }
    if out.len() > 2 && out.ends_with(b"/*") {
        out.truncate(out.len() - 2);
    }
    out.into()
}

/// The cone sets of a patterns file (git's `add_pattern_to_hashsets`, pattern by pattern), or
/// `None` where git would warn and turn cone matching off.
fn cone_sets(bytes: &[u8]) -> Option<Mode> {
    let mut recursive: HashSet<BString> = HashSet::new();
    let mut parent: HashSet<BString> = HashSet::new();
    let mut full_cone = false;
    for l in lines(bytes) {
        let p = l.pattern;
        if l.negative && l.must_be_dir && p == b"/*" {
            full_cone = false;
            continue;
        }
        if !l.negative && !l.must_be_dir && p == b"/*" {
            full_cone = true;
            continue;
        }
        if p.len() < 2 || p[0] != b'/' || p.windows(2).any(|w| w == b"**") {
            return None;
        }
        if !l.must_be_dir {
            return None;
        }
        // Glob characters only escaped, or as a final `/*`.
        for i in 1..p.len() {
            let (prev, cur, next) = (p[i - 1], p[i], p.get(i + 1).copied());
            if !is_glob_special(cur) || prev == b'\\' {
                continue;
            }
            if cur == b'\\' && next.is_some_and(is_glob_special) {
                continue;
            }
            if prev == b'/' && cur == b'*' && next.is_none() {
                continue;
            }
            return None;
        }
        if p.len() > 2 && p.ends_with(b"/*") {
            if !l.negative {
                return None;
            }
            let dir = filter_pattern(p);
            if !recursive.remove(&dir) {
                // "We did not see the parent included."
                return None;
            }
            parent.insert(dir);
            continue;
        }
        if l.negative {
            return None;
        }
        let dir = filter_pattern(p);
        if parent.contains(&dir) {
            // Repeated at the parent level: git warns and turns cone matching off.
            return None;
        }
        recursive.insert(dir);
    }
    Some(if full_cone {
        Mode::FullCone
    } else {
        Mode::Cone { recursive, parent }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn includes(p: &Patterns, path: &str) -> bool {
        p.matcher().includes(path.into(), false)
    }

    #[test]
    fn cone_patterns_take_the_top_parents_files_and_whole_directories() {
        let p = Patterns::parse(b"/*\n!/*/\n/a/\n!/a/*/\n/a/b/\n/c/\n", true);
        assert!(p.is_cone());
        for (path, inside) in [
            ("top", true),
            ("a/file", true),
            ("a/other/x", false),
            ("a/b/x", true),
            ("a/b/deep/y", true),
            ("c/z", true),
            ("c/d/e", true),
            ("d/x", false),
            ("ab/x", false),
        ] {
            assert_eq!(includes(&p, path), inside, "{path}");
        }
        assert!(p.cone_excludes_dir("d".into()));
        assert!(p.cone_excludes_dir("a/other".into()));
        assert!(!p.cone_excludes_dir("a".into()));
        assert!(!p.cone_excludes_dir("a/b".into()));
    }

    /// The file `git sparse-checkout set --cone` writes, byte for byte, for directories
    /// nested, repeated, below one another, with glob characters and dots.
    #[test]
    #[cfg(unix)] // runs git
    fn cone_files_are_the_ones_git_writes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path();
        git(r, &["init", "-q", "-b", "main"]);
        for f in ["a/b/c/x", "a/d/y", "e/z", "s t/w", "q/r/s/t/u"] {
            let p = r.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f).expect("write");
        }
        git(r, &["add", "-A"]);
        git(r, &["commit", "-qm", "one"]);
        for dirs in [
            &["a/b"][..],
            &["a/b/c", "a/d", "e"],
            &["a", "a/b", "e/"],
            &["s t", "q/r/s/t"],
            &["./a/../e", "a//d"],
            &[],
        ] {
            let mut args = vec!["sparse-checkout", "set", "--cone"];
            args.extend_from_slice(dirs);
            git(r, &args);
            let theirs = std::fs::read(r.join(".git/info/sparse-checkout")).expect("patterns");
            let owned: Vec<String> = dirs.iter().map(|d| d.to_string()).collect();
            assert_eq!(
                cone_file(&owned).expect("cone file").as_bstr(),
                theirs.as_bstr(),
                "{dirs:?}"
            );
        }
        assert!(cone_file(&["/a".into()]).is_err());
        assert!(cone_file(&["!a".into()]).is_err());
        assert!(cone_file(&["../a".into()]).is_err());
        assert!(cone_file(&["s*t".into()]).is_err());
    }

    #[test]
    fn files_that_are_not_cone_patterns_are_read_as_patterns() {
        for text in [
            &b"/*\n!/*/\n/a/**/b/\n"[..],
            b"*.txt\n",
            b"/*\n!/*/\n!/x/*/\n",
            b"/a/\n!/a/\n",
        ] {
            assert!(
                !Patterns::parse(text, true).is_cone(),
                "{:?}",
                text.as_bstr()
            );
        }
        assert!(Patterns::parse(b"/*\n", true).is_cone());
        assert!(includes(&Patterns::parse(b"/*\n", true), "any/where/x"));
    }

    #[test]
    fn non_cone_patterns_inherit_a_directory_s_answer_until_a_pattern_decides() {
        let p = Patterns::parse(b"/*\n!/*/\n/keep/\n!/keep/drop/\n*.md\n", false);
        assert!(!p.is_cone());
        let mut m = p.matcher();
        for (path, inside) in [
            ("top", true),
            ("other/x", false),
            ("other/readme.md", true),
            ("keep/x", true),
            ("keep/sub/y", true),
            ("keep/drop/z", false),
            ("keep/drop/z.md", true),
        ] {
            assert_eq!(m.includes(path.into(), false), inside, "{path}");
        }
    }

    #[cfg(unix)]
    use crate::test_git as git;

    /// The answers against git's own: for cone and non-cone pattern sets (as `git
    /// sparse-checkout set` writes them, and hand-written ones), the files git leaves out
    /// (`ls-files -t` shows `S`) are exactly those this module leaves out.
    #[test]
    #[cfg(unix)] // runs git
    fn answers_are_gits_for_every_file_of_a_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path();
        git(r, &["init", "-q", "-b", "main"]);
        let files = [
            "top",
            "a/f",
            "a/b/g",
            "a/b/c/h",
            "a/x/i",
            "ab/j",
            "d/e/k",
            "d/l.md",
            "d/e/m.md",
            "n.md",
            "sp ace/o",
            "a/b/c/d/p",
        ];
        for f in files {
            let p = r.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f).expect("write");
        }
        git(r, &["add", "-A"]);
        git(r, &["commit", "-qm", "one"]);
        let cases: &[(&[&str], bool)] = &[
            (&["set", "--cone", "a/b"], true),
            (&["set", "--cone", "a", "d/e"], true),
            (&["set", "--cone", "sp ace"], true),
            (&["set", "--cone"], true),
            (&["set", "--no-cone", "/a/b/", "!/a/b/c/", "*.md"], false),
            (&["set", "--no-cone", "a"], false),
            (&["set", "--no-cone", "/*", "!/*/", "d/"], false),
        ];
        for (args, cone) in cases {
            let mut a = vec!["sparse-checkout"];
            a.extend_from_slice(args);
            git(r, &a);
            let bytes = std::fs::read(r.join(".git/info/sparse-checkout")).expect("patterns");
            let p = Patterns::parse(&bytes, *cone);
            assert_eq!(p.is_cone(), *cone, "{args:?}");
            let mut m = p.matcher();
            for line in git(r, &["ls-files", "-t"]).lines() {
                let (tag, path) = line.split_once(' ').expect("tag and path");
                assert_eq!(
                    m.includes(path.into(), false),
                    tag != "S",
                    "{path} with {args:?}: git says {tag}"
                );
            }
        }
    }
}
