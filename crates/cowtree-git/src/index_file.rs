//! DST's index file, byte for byte as gix-index writes it without the end-of-index-entry
//! extension, as git's checkout writes it (a test compares the two), but with its entries
//! serialized in parallel and its SHA-1 trailer
//! computed with the CPU's SHA extensions (SHA-256 in a SHA-256 repository): for 78,000 entries gix-index's writer took 35 ms of
//! an add that otherwise takes 250.
//!
//! The format (git's `index-format.txt`): a 12-byte header (`DIRC`, version 2, or 3 when an
//! entry has extended flags, the entry count), the entries in order, each padded with NULs
//! to a multiple of 8 bytes, the extensions git's checkout writes (the cache-tree `TREE`, `sdir`
//! for a sparse index), and the SHA-1 (or SHA-256) of everything before it.

use gix::index::entry::Flags;
use gix::index::extension;
use rayon::prelude::*;

/// Entries serialized by one task.
const CHUNK: usize = 8192;

/// The bytes of the index file for `state` (SHA-1 and SHA-256 repositories; see [`supported`]).
pub fn encode(state: &gix::index::State) -> std::io::Result<Vec<u8>> {
    encode_with(state, state.tree(), state.is_sparse())
}

/// [`encode`] with the cache-tree `tree` and, with `sparse`, the sparse-directory extension
/// (a sparse index: [`crate::cache_tree::collapse`]), in place of `state`'s own.
pub fn encode_with(
    state: &gix::index::State,
    tree: Option<&gix::index::extension::Tree>,
    sparse: bool,
) -> std::io::Result<Vec<u8>> {
    let entries = state.entries();
    let extended = entries.iter().any(|e| e.flags.contains(Flags::EXTENDED));
    let count = entries
        .iter()
        .filter(|e| !e.flags.contains(Flags::REMOVE))
        .count() as u32;
    let parts: Vec<std::io::Result<Vec<u8>>> = entries
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut out = Vec::with_capacity(chunk.len() * 96);
            for e in chunk {
                if e.flags.contains(Flags::REMOVE) {
                    continue;
                }
                let start = out.len();
                e.write_to(&mut out, state)?;
                let pad = (out.len() - start) % 8;
                if pad != 0 {
                    out.resize(out.len() + 8 - pad, 0);
                }
            }
            Ok(out)
        })
        .collect();
    let mut out = Vec::with_capacity(12 + entries.len() * 96 + 4096);
    out.extend_from_slice(b"DIRC");
    out.extend_from_slice(&(if extended { 3u32 } else { 2 }).to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for p in parts {
        out.extend_from_slice(&p?);
    }
    // The extensions git's checkout writes, in its order; no end-of-index-entry (`EOIE`),
    // which git writes only with index.recordEndOfIndexEntries or index.threads.
    if let Some(tree) = tree {
        tree.write_to(&mut out)?;
    }
    if sparse {
        extension::sparse::write_to(&mut out)?;
    }
    match state.object_hash() {
        gix::hash::Kind::Sha1 => out.extend_from_slice(&<sha1::Sha1 as sha1::Digest>::digest(&out)),
        gix::hash::Kind::Sha256 => {
            out.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&out));
        }
        #[allow(unreachable_patterns)]
        other => {
            return Err(std::io::Error::other(format!(
                "index trailer of object format {other:?}"
            )));
        }
    }
    Ok(out)
}

/// Reads the index file `path` of a repository of `kind`, its trailer checked first with the
/// CPU's SHA extensions (gitoxide's own check, with collision detection, takes three times as
/// long on an index of 78,000 entries). Its checksum, in hex.
pub fn read_checked(
    path: &std::path::Path,
    kind: gix::hash::Kind,
) -> std::io::Result<(gix::index::File, String)> {
    let bytes = std::fs::read(path)?;
    let n = kind.len_in_bytes();
    let bad = |what: &str| std::io::Error::other(format!("{}: {what}", path.display()));
    if bytes.len() < 12 + n {
        return Err(bad("too short for an index"));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - n);
    let ok = match kind {
        gix::hash::Kind::Sha1 => <sha1::Sha1 as sha1::Digest>::digest(body).as_slice() == trailer,
        gix::hash::Kind::Sha256 => {
            <sha2::Sha256 as sha2::Digest>::digest(body).as_slice() == trailer
        }
        #[allow(unreachable_patterns)]
        _ => return Err(bad("an object format without an index trailer check")),
    };
    if !ok {
        return Err(bad("its checksum does not match its contents"));
    }
    let mut hex = String::with_capacity(2 * n);
    for b in trailer {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    let file = gix::index::File::at(path, kind, true, Default::default())
        .map_err(std::io::Error::other)?;
    Ok((file, hex))
}

/// Whether [`encode`] writes `state`'s index: a SHA-1 or SHA-256 repository's.
pub fn supported(state: &gix::index::State) -> bool {
    matches!(
        state.object_hash(),
        gix::hash::Kind::Sha1 | gix::hash::Kind::Sha256
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gix_bytes(file: &gix::index::File) -> Vec<u8> {
        let mut v = Vec::new();
        file.write_to(
            &mut v,
            gix::index::write::Options {
                extensions: gix::index::write::Extensions::Given {
                    tree_cache: true,
                    end_of_index_entry: false,
                },
                ..Default::default()
            },
        )
        .unwrap();
        v
    }

    #[test]
    fn the_bytes_are_gix_indexs_own_for_every_kind_of_index() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let git = |args: &[&str]| {
            let out = cowtree_testutil::git_cmd(root).args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        git(&["init", "-q"]);
        // Path lengths around every padding, and one over git's 12-bit length field.
        for n in 1..40 {
            let name = "p".repeat(n);
            std::fs::write(root.join(&name), n.to_string()).unwrap();
        }
        let long = "l".repeat(4100);
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d").join(&long[..200]), "x").unwrap();
        std::os::unix::fs::symlink("p", root.join("link")).unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-qm", "c"]);
        let repo = gix::open(root).unwrap();
        // With a cache-tree (TREE and EOIE), as git wrote it.
        let with_tree = repo.open_index().unwrap();
        assert!(with_tree.tree().is_some());
        assert_eq!(encode(&with_tree).unwrap(), gix_bytes(&with_tree));
        // Made from a tree: no extension; stat data of every kind.
        let tree = repo.head_tree_id().unwrap();
        let mut from_tree = repo.index_from_tree(&tree).unwrap();
        for (i, e) in from_tree.entries_mut().iter_mut().enumerate() {
            let i = i as u32;
            e.stat.mtime.secs = 1_700_000_000 + i;
            e.stat.mtime.nsecs = i * 7919;
            e.stat.ctime.secs = u32::MAX - i;
            e.stat.ino = i * 31;
            e.stat.size = i * 1000;
        }
        assert_eq!(encode(&from_tree).unwrap(), gix_bytes(&from_tree));
        // An entry with extended flags (intent-to-add) makes it version 3.
        std::fs::write(root.join("ita"), "later").unwrap();
        git(&["add", "-N", "ita"]);
        let ita = gix::open(root).unwrap().open_index().unwrap();
        assert_eq!(&encode(&ita).unwrap()[4..8], &3u32.to_be_bytes());
        assert_eq!(encode(&ita).unwrap(), gix_bytes(&ita));
        // Empty.
        let empty = gix::index::File::from_state(
            gix::index::State::new(gix::hash::Kind::Sha1),
            repo.index_path(),
        );
        assert_eq!(encode(&empty).unwrap(), gix_bytes(&empty));
        // Many entries, over several chunks.
        let mut big = gix::index::State::new(gix::hash::Kind::Sha1);
        for i in 0..(CHUNK * 2 + 17) {
            big.dangerously_push_entry(
                Default::default(),
                gix::ObjectId::empty_blob(gix::hash::Kind::Sha1),
                Flags::empty(),
                gix::index::entry::Mode::FILE,
                format!("d{}/f{i:06}", i % 7).as_str().into(),
            );
        }
        big.sort_entries();
        let big = gix::index::File::from_state(big, repo.index_path());
        assert_eq!(encode(&big).unwrap(), gix_bytes(&big));
    }

    /// A SHA-256 repository's index (Git 3.0's default object format): 32-byte ids and a
    /// SHA-256 trailer, the bytes gix-index writes and git reads.
    #[test]
    fn a_sha256_index_is_gix_indexs_own_and_git_reads_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let git = |args: &[&str]| {
            let out = cowtree_testutil::git_cmd(root).args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        git(&["init", "-q", "--object-format=sha256"]);
        for n in 1..20 {
            std::fs::write(root.join("f".repeat(n)), n.to_string()).unwrap();
        }
        git(&["add", "-A"]);
        git(&["commit", "-qm", "c"]);
        let repo = gix::open(root).unwrap();
        let index = repo.open_index().unwrap();
        assert_eq!(index.object_hash(), gix::hash::Kind::Sha256);
        let bytes = encode(&index).unwrap();
        assert_eq!(bytes, gix_bytes(&index));
        std::fs::write(root.join(".git/index"), &bytes).unwrap();
        assert_eq!(git(&["status", "--porcelain"]), "");
        git(&["fsck", "--no-progress"]);
    }

    #[test]
    fn read_checked_reads_an_index_and_refuses_one_whose_trailer_does_not_match()
    -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path();
        for (format, kind) in [
            ("sha1", gix::hash::Kind::Sha1),
            ("sha256", gix::hash::Kind::Sha256),
        ] {
            let r = root.join(format);
            std::fs::create_dir_all(&r)?;
            crate::test_git(&r, &["init", "-q", &format!("--object-format={format}")]);
            std::fs::write(r.join("a"), "a\n")?;
            crate::test_git(&r, &["add", "a"]);
            let path = r.join(".git/index");
            let (file, checksum) = read_checked(&path, kind)?;
            assert_eq!(file.entries().len(), 1);
            assert_eq!(Some(checksum), file.checksum().map(|c| c.to_string()));
            let mut bytes = std::fs::read(&path)?;
            bytes[20] ^= 1;
            std::fs::write(&path, &bytes)?;
            let e = read_checked(&path, kind)
                .err()
                .ok_or("a damaged index was read")?
                .to_string();
            assert!(e.contains("checksum does not match"), "{e}");
        }
        Ok(())
    }
}
