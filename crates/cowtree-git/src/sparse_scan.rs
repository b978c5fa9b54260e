//! Whether an index file has an entry outside the sparse checkout (the skip-worktree flag), or
//! is a sparse index: read from the file's bytes without building the index (git's
//! `read-cache.c` layout, versions 2 to 4, SHA-1 or SHA-256 ids), for [`crate::facts`], which
//! must know before anything is written and before the index is read for the checkout.
//!
//! Version 2 has no extended flags, so no entry can skip the worktree: the common case is
//! answered from the header. Versions 3 and 4 are walked entry by entry.

/// `CE_EXTENDED`, in an entry's 16-bit flags: 16 more bits of flags follow.
const EXTENDED: u16 = 0x4000;
/// `CE_SKIP_WORKTREE`, in the extended flags (shifted right by 16).
const SKIP_WORKTREE: u16 = 0x4000;
/// The signature of the sparse-directory extension (a sparse index).
const SDIR: &[u8; 4] = b"sdir";

/// True when `index` (the bytes of an index file) has an entry with the skip-worktree flag or
/// the sparse-directory extension. An index that cannot be read as git writes it answers
/// false: nothing here can be shown, and the step that reads the index reports the damage.
pub fn has_skip_worktree(index: &[u8]) -> bool {
    if index.len() < 12 || &index[..4] != b"DIRC" {
        return false;
    }
    let version = u32::from_be_bytes([index[4], index[5], index[6], index[7]]);
    if version == 2 {
        // No extended flags; a sparse index is always version 3 or more.
        return false;
    }
    let count = u32::from_be_bytes([index[8], index[9], index[10], index[11]]) as usize;
    // The id's length is not in the file: the one that leaves the entries, the extensions and
    // the trailer fitting exactly is the right one.
    [20usize, 32]
        .into_iter()
        .filter_map(|hash| scan(index, version, count, hash))
        .next()
        .unwrap_or(false)
}

/// Walks `count` entries of an index of `version` with ids of `hash` bytes: `Some(found)` when
/// the entries and the extensions after them fill the file up to a trailer of `hash` bytes,
/// `None` when they do not (the wrong id length, or damage).
fn scan(index: &[u8], version: u32, count: usize, hash: usize) -> Option<bool> {
    let mut at = 12usize;
    let mut found = false;
    for _ in 0..count {
        let start = at;
        // ctime, mtime (8 each), dev, ino, mode, uid, gid, size (4 each): 40 bytes.
        at = at.checked_add(40 + hash)?;
        let flags = u16::from_be_bytes(index.get(at..at + 2)?.try_into().ok()?);
        at += 2;
        if flags & EXTENDED != 0 {
            let ext = u16::from_be_bytes(index.get(at..at + 2)?.try_into().ok()?);
            found |= ext & SKIP_WORKTREE != 0;
            at += 2;
        }
        if version >= 4 {
            // The number of bytes dropped from the previous path (a varint), then the rest of
            // the path, NUL-terminated; no padding.
            loop {
                let b = *index.get(at)?;
                at += 1;
                if b & 0x80 == 0 {
                    break;
                }
            }
            let nul = index.get(at..)?.iter().position(|&b| b == 0)?;
            at += nul + 1;
        } else {
            let nul = index.get(at..)?.iter().position(|&b| b == 0)?;
            at += nul + 1;
            // Padded with NULs to a multiple of 8 bytes from the entry's start (1 to 8 NULs).
            let len = at - start;
            at = start + len.div_ceil(8) * 8;
        }
    }
    // Extensions: a 4-byte signature and a 4-byte size each, until the trailer.
    loop {
        let rest = index.len().checked_sub(at)?;
        if rest == hash {
            return Some(found);
        }
        if rest < 8 + hash {
            return None;
        }
        let sig = &index[at..at + 4];
        let size = u32::from_be_bytes(index[at + 4..at + 8].try_into().ok()?) as usize;
        found |= sig == SDIR;
        at = at.checked_add(8 + size)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .args(args)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    /// A repository with files at the top and in two directories, one commit.
    fn repo(init: &[&str]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = tmp.path();
        let mut args = vec!["init", "-q", "-b", "main"];
        args.extend_from_slice(init);
        git(r, &args);
        for p in ["a", "d/b", "d/e/c", "f/g"] {
            let p = r.join(p);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, b"x\n").expect("write");
        }
        git(r, &["add", "-A"]);
        git(r, &["commit", "-qm", "one"]);
        tmp
    }

    fn index(r: &Path) -> Vec<u8> {
        std::fs::read(r.join(".git/index")).expect("read index")
    }

    /// Real indexes, as git writes them: full ones are not sparse in any version; cone and
    /// non-cone sparse checkouts, a sparse index, and a single skip-worktree entry are, in
    /// versions 3 and 4, with SHA-1 and SHA-256 ids.
    #[test]
    fn git_written_indexes_are_read_right() {
        for init in [&[][..], &["--object-format=sha256"][..]] {
            let t = repo(init);
            let r = t.path();
            assert!(!has_skip_worktree(&index(r)), "full, v2, {init:?}");
            git(r, &["update-index", "--index-version", "4"]);
            assert!(!has_skip_worktree(&index(r)), "full, v4, {init:?}");
            git(r, &["update-index", "--index-version", "3"]);
            assert!(!has_skip_worktree(&index(r)), "full, v3, {init:?}");
            git(r, &["update-index", "--skip-worktree", "f/g"]);
            assert!(has_skip_worktree(&index(r)), "one entry, v3, {init:?}");
            git(r, &["update-index", "--index-version", "4"]);
            assert!(has_skip_worktree(&index(r)), "one entry, v4, {init:?}");
            git(r, &["update-index", "--no-skip-worktree", "f/g"]);
            assert!(!has_skip_worktree(&index(r)), "cleared, v4, {init:?}");
            git(r, &["sparse-checkout", "set", "--cone", "d"]);
            assert!(has_skip_worktree(&index(r)), "cone, {init:?}");
            git(r, &["sparse-checkout", "set", "--no-cone", "/d/"]);
            assert!(has_skip_worktree(&index(r)), "non-cone, {init:?}");
            git(
                r,
                &["sparse-checkout", "set", "--cone", "--sparse-index", "d/e"],
            );
            assert!(has_skip_worktree(&index(r)), "sparse index, {init:?}");
            git(r, &["sparse-checkout", "disable"]);
            assert!(!has_skip_worktree(&index(r)), "disabled, {init:?}");
        }
    }

    #[test]
    fn damaged_or_foreign_bytes_say_nothing() {
        assert!(!has_skip_worktree(b""));
        assert!(!has_skip_worktree(b"DIRC\0\0\0\x03\0\0\0\x05"));
        assert!(!has_skip_worktree(&[0xff; 100]));
        let mut v3 = b"DIRC\0\0\0\x03\xff\xff\xff\xff".to_vec();
        v3.extend_from_slice(&[0u8; 64]);
        assert!(!has_skip_worktree(&v3));
    }
}
