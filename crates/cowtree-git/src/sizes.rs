//! The target's blob sizes ([`crate::trust`] compares each with SRC's file), remembered per
//! tree: worktrees of one commit are made again and again (an agent platform hands out many),
//! and reading 78,000 object headers from a pack costs more than the rest of an add by
//! snapshot does.
//!
//! A tree's sizes are kept in `$GIT_COMMON_DIR/cowtree/sizes/<tree id>`, in the order of the
//! tree's entries as an index holds them:
//!
//! ```text
//! "cowtree sizes 1\n"   16 bytes
//! entries               u64, little-endian
//! size of each entry    u64, little-endian; u64::MAX where not known (not looked up)
//! SHA-1                 20 bytes, of all the bytes before it
//! ```
//!
//! A file that does not have exactly this form, for exactly this many entries, is not used
//! (and is written anew). A tree's id fixes its entries and their blobs, and a blob's id its
//! size, so a size read from a whole file is a size git would report; a file changed by
//! anyone who can write to the repository is as trustworthy as the repository's objects.
//! At most [`KEEP`] trees' files are kept, the most recently used.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use gix::ObjectId;

const MAGIC: &[u8; 16] = b"cowtree sizes 1\n";
/// How many trees' sizes are kept.
pub const KEEP: usize = 32;
const UNKNOWN: u64 = u64::MAX;

/// The target's blob sizes: those remembered, and those looked up during this run.
pub struct Sizes {
    known: Vec<AtomicU64>,
    looked_up: AtomicUsize,
    file: Option<PathBuf>,
}

/// The bytes of a sizes file for `sizes`.
fn encode(sizes: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 8 + sizes.len() * 8 + 20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sizes.len() as u64).to_le_bytes());
    for s in sizes {
        out.extend_from_slice(&s.to_le_bytes());
    }
    let sum = <sha1::Sha1 as sha1::Digest>::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The sizes in `data`, if it is a whole sizes file for `n` entries.
fn decode(data: &[u8], n: usize) -> Option<Vec<u64>> {
    let body_len = 16 + 8 + n.checked_mul(8)?;
    if data.len() != body_len + 20 || &data[..16] != MAGIC {
        return None;
    }
    let (body, sum) = data.split_at(body_len);
    if <sha1::Sha1 as sha1::Digest>::digest(body).as_slice() != sum {
        return None;
    }
    let count = u64::from_le_bytes(body[16..24].try_into().ok()?);
    if count != n as u64 {
        return None;
    }
    Some(
        body[24..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect(),
    )
}

impl Sizes {
    /// The sizes remembered for the tree `tree` of `n` entries in the repository whose
    /// common directory is `common_dir`; `None` for `tree`: nothing is remembered (a target
    /// that is not a tree, as with `--with-changes`).
    pub fn load(common_dir: &Path, tree: Option<ObjectId>, n: usize) -> Sizes {
        let file = tree.map(|t| common_dir.join("cowtree/sizes").join(t.to_string()));
        let known = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|data| decode(&data, n))
            .unwrap_or_else(|| vec![UNKNOWN; n]);
        Sizes {
            known: known.into_iter().map(AtomicU64::new).collect(),
            looked_up: AtomicUsize::new(0),
            file,
        }
    }

    /// The size of the blob `id`, the target's entry `i`: remembered, or read from the object
    /// database's header (`None`: no such object).
    pub fn get(&self, i: usize, id: ObjectId, repo: &gix::Repository) -> Option<u64> {
        if let Some(k) = self.known.get(i) {
            let v = k.load(Ordering::Relaxed);
            if v != UNKNOWN {
                return Some(v);
            }
        }
        let size = repo.find_header(id).ok()?.size();
        if let Some(k) = self.known.get(i) {
            k.store(size, Ordering::Relaxed);
            self.looked_up.fetch_add(1, Ordering::Relaxed);
        }
        Some(size)
    }

    /// How many sizes this run read from object headers.
    pub fn looked_up(&self) -> usize {
        self.looked_up.load(Ordering::Relaxed)
    }

    /// Remembers the sizes when any was looked up, and keeps only the [`KEEP`] most recently
    /// written trees' files. Best effort: a repository this run may not write to, or a full
    /// disk, only costs the next run its lookups.
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        if self.looked_up() == 0 {
            return;
        }
        let sizes: Vec<u64> = self
            .known
            .iter()
            .map(|k| k.load(Ordering::Relaxed))
            .collect();
        let Some(dir) = file.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".tmp-{}", std::process::id()));
        if std::fs::write(&tmp, encode(&sizes)).is_err() || std::fs::rename(&tmp, file).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        prune(dir);
    }
}

/// Removes all but the [`KEEP`] most recently written files of `dir`.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= KEEP {
        return;
    }
    files.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    for (_, p) in files.into_iter().skip(KEEP) {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_sizes_file_is_read_back_only_whole_and_for_its_entry_count() {
        let sizes = vec![0, 5, UNKNOWN, 1 << 40];
        let data = encode(&sizes);
        assert_eq!(decode(&data, 4), Some(sizes.clone()));
        assert_eq!(decode(&data, 3), None, "another entry count");
        assert_eq!(decode(&data[..data.len() - 1], 4), None, "cut short");
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 1;
            assert_eq!(decode(&bad, 4), None, "byte {i} changed");
        }
    }

    #[test]
    fn sizes_looked_up_are_remembered_for_the_next_run() {
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("r");
        std::fs::create_dir(&repo_dir).unwrap();
        let git = |args: &[&str]| {
            let out = cowtree_testutil::git_cmd(&repo_dir)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(repo_dir.join("a"), "12345").unwrap();
        std::fs::write(repo_dir.join("b"), "").unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-qm", "c"]);
        let repo = gix::open(&repo_dir).unwrap();
        let tree = repo.head_tree_id().unwrap().detach();
        let target = repo.index_from_tree(&tree).unwrap();
        let common = repo.common_dir().to_owned();
        let first = Sizes::load(&common, Some(tree), target.entries().len());
        let got: Vec<Option<u64>> = target
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| first.get(i, e.id, &repo))
            .collect();
        assert_eq!(got, vec![Some(5), Some(0)]);
        assert_eq!(first.looked_up(), 2);
        first.save();
        let second = Sizes::load(&common, Some(tree), target.entries().len());
        for (i, e) in target.entries().iter().enumerate() {
            second.get(i, e.id, &repo);
        }
        assert_eq!(second.looked_up(), 0, "every size remembered");
        // Not for another entry count, nor without a tree.
        let other = Sizes::load(&common, Some(tree), 3);
        other.get(0, target.entries()[0].id, &repo);
        assert_eq!(other.looked_up(), 1);
        let none = Sizes::load(&common, None, 2);
        none.get(0, target.entries()[0].id, &repo);
        none.save();
        assert_eq!(
            std::fs::read_dir(common.join("cowtree/sizes"))
                .unwrap()
                .count(),
            1
        );
    }
}
