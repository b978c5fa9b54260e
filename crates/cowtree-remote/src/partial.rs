//! Partial pulls (`cowtree pull SNAPSHOT --path GLOB`): the part of a snapshot under some
//! paths, recorded as a snapshot of its own.
//!
//! A store records a snapshot only when it holds every blob the snapshot names, so a pull of
//! part of a snapshot records the part: the entries some glob selects (and everything beneath
//! a selected directory), as a new manifest with its own id. That id checks out, and `status`
//! and `switch` treat the worktree as any other; the remote's snapshot is not recorded.
//!
//! Globs are matched against entry paths (`/`-separated, relative to the tree's root): `*`
//! any run of characters but `/`, `?` one character but `/`, `**` any run of characters
//! including `/` (`src/**`: everything beneath `src`). An entry is selected when a glob
//! matches its path or the path of a directory above it.

use cowtree_store::manifest::{Entry, Manifest, ManifestError};

/// Whether `glob` matches all of `path`.
pub fn glob_match(glob: &[u8], path: &[u8]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((b'*', rest)) if rest.first() == Some(&b'*') => {
            let rest = &rest[1..];
            // `**/` also matches nothing at all (`src/**/x` matches `src/x`).
            if rest.first() == Some(&b'/') && glob_match(&rest[1..], path) {
                return true;
            }
            (0..=path.len()).any(|i| glob_match(rest, &path[i..]))
        }
        Some((b'*', rest)) => {
            let stop = path.iter().position(|&c| c == b'/').unwrap_or(path.len());
            (0..=stop).any(|i| glob_match(rest, &path[i..]))
        }
        Some((b'?', rest)) => {
            matches!(path.first(), Some(&c) if c != b'/') && glob_match(rest, &path[1..])
        }
        Some((&g, rest)) => path.first() == Some(&g) && glob_match(rest, &path[1..]),
    }
}

/// Whether a glob of `globs` selects `path`: matches it or a directory above it.
pub fn selected(globs: &[String], path: &[u8]) -> bool {
    globs.iter().any(|g| {
        let g = g.trim_end_matches('/').as_bytes();
        glob_match(g, path)
            || path
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == b'/')
                .any(|(i, _)| glob_match(g, &path[..i]))
    })
}

/// The part of `manifest` (encoded) that `globs` select, encoded; `None` when they select no
/// entry.
pub fn select(manifest: &[u8], globs: &[String]) -> Result<Option<Manifest>, ManifestError> {
    let full = Manifest::decode(manifest)?;
    let part: Vec<Entry> = full
        .entries()
        .iter()
        .filter(|e| selected(globs, &e.path))
        .cloned()
        .collect();
    if part.is_empty() {
        return Ok(None);
    }
    Manifest::new(part).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        for (g, p, want) in [
            ("src/**", "src/a/b.rs", true),
            ("src/**", "src/a", true),
            ("src/**", "srcx/a", false),
            ("src/*", "src/a", true),
            ("src/*", "src/a/b", false),
            ("*.rs", "a.rs", true),
            ("*.rs", "d/a.rs", false),
            ("**/*.rs", "d/e/a.rs", true),
            ("**/*.rs", "a.rs", true),
            ("src/**/mod.rs", "src/mod.rs", true),
            ("src/**/mod.rs", "src/a/b/mod.rs", true),
            ("pkg/?", "pkg/a", true),
            ("pkg/?", "pkg/ab", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(g.as_bytes(), p.as_bytes()), want, "{g} {p}");
        }
    }

    #[test]
    fn a_directory_selected_selects_what_is_beneath() {
        let globs = vec!["pkg/a".to_string(), "docs/".to_string()];
        assert!(selected(&globs, b"pkg/a"));
        assert!(selected(&globs, b"pkg/a/x/y"));
        assert!(selected(&globs, b"docs/readme"));
        assert!(!selected(&globs, b"pkg/ab"));
        assert!(!selected(&globs, b"pkg"));
    }

    #[test]
    fn select_keeps_only_the_selected_entries() {
        let h = cowtree_store::Hash::of(b"x");
        let m = Manifest::new(vec![
            Entry::dir(b"pkg/a/empty".to_vec()),
            Entry::dir(b"pkg/c".to_vec()),
            Entry::blob(b"pkg/a/f".to_vec(), false, 1, h),
            Entry::blob(b"pkg/b/g".to_vec(), true, 1, h),
            Entry::symlink(b"pkg/a/l".to_vec(), b"f".to_vec()),
            Entry::blob(b"top".to_vec(), false, 1, h),
        ])
        .unwrap();
        let part = select(&m.encode(), &["pkg/a/**".into()]).unwrap().unwrap();
        let paths: Vec<&[u8]> = part.entries().iter().map(|e| e.path.as_slice()).collect();
        assert_eq!(paths, vec![&b"pkg/a/empty"[..], b"pkg/a/f", b"pkg/a/l"]);
        assert!(select(&m.encode(), &["nothing".into()]).unwrap().is_none());
    }
}
