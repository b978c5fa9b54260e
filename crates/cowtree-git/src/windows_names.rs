//! Trees a Windows filesystem cannot hold as git's index says them, which cowtree hands to
//! Git for Windows' own `git worktree add` (its refusal, or its way of writing them, is the
//! result): a path that is not UTF-8 or that holds a name Windows refuses (`aux.txt`, `a:b`,
//! a trailing dot; git's `core.protectNTFS` rules, see `cowtree_fs::name::windows`), and two
//! paths that differ only in case (`README` and `readme`, or `Docs/a` and `docs/b`): NTFS
//! keeps one of the two names, where git writes both (the second overwriting the first, or
//! going into the first's directory) and its index keeps both spellings. Pure functions,
//! tested on every platform; used on Windows.

use std::collections::HashMap;

/// Why git must make a worktree of a tree with these `paths` (git's, `/`-separated) on
/// Windows, if it must: the first path Windows cannot hold, or the first two that differ only
/// in case (a path or any of its directories).
pub(crate) fn git_decides<'a>(paths: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    // Each path and each of its directories, by its case-folded form.
    let mut seen: HashMap<String, &'a str> = HashMap::new();
    for path in paths {
        let Ok(text) = std::str::from_utf8(path) else {
            return Some(format!(
                "a path that is not UTF-8, which Windows cannot name ({})",
                String::from_utf8_lossy(path)
            ));
        };
        for part in text.split('/') {
            if let Err(e) = cowtree_fs::name::windows::validate_native_component(part.as_bytes()) {
                return Some(format!("a path Windows cannot hold ({text}: {e})"));
            }
        }
        let mut end = 0;
        for (i, part) in text.split('/').enumerate() {
            end += part.len() + usize::from(i > 0);
            let prefix = &text[..end];
            match seen.entry(fold(prefix)) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    if *o.get() != prefix {
                        return Some(format!(
                            "paths that differ only in case ({} and {prefix}), of which Windows \
                             holds one",
                            o.get()
                        ));
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(prefix);
                }
            }
        }
    }
    None
}

/// `s` in the one case NTFS compares names in: each character's uppercase where that is one
/// character (NTFS's upcase table maps characters one to one; `ß` stays `ß`).
fn fold(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(paths: &[&str]) -> Option<String> {
        git_decides(paths.iter().map(|p| p.as_bytes()))
    }

    #[test]
    fn ordinary_trees_are_cowtrees_to_make() {
        assert_eq!(
            decide(&[
                "README",
                "docs/a.md",
                "docs/b.md",
                "src/caf\u{e9}.rs",
                "x/y/z"
            ]),
            None
        );
    }

    #[test]
    fn two_names_that_differ_only_in_case_go_to_git() {
        let why = decide(&["README", "a", "readme"]).expect("handed over");
        assert!(why.contains("README and readme"), "{why}");
        // Through a directory too, and beyond ASCII.
        let why = decide(&["Docs/a", "docs/b"]).expect("handed over");
        assert!(why.contains("Docs and docs"), "{why}");
        assert!(decide(&["\u{c9}t\u{e9}", "\u{e9}t\u{e9}"]).is_some());
    }

    #[test]
    fn names_windows_cannot_hold_go_to_git() {
        for bad in [
            "aux.txt",
            "dir/con",
            "a:b",
            "trailing.",
            "sp/trailing ",
            "q?",
        ] {
            let why = decide(&["ok", bad]).expect(bad);
            assert!(why.contains("Windows cannot hold"), "{why}");
        }
        assert!(
            git_decides([&b"bad\xff"[..]])
                .expect("not UTF-8")
                .contains("UTF-8")
        );
    }
}
