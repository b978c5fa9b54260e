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
    let mut out = Vec::with_capacity(12 + state.entries().len() * 96 + 4096);
    write_with(state, tree, sparse, &mut out)?;
    Ok(out)
}

/// The trailer's hash, as it is fed.
enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(kind: gix::hash::Kind) -> std::io::Result<Hasher> {
        use sha1::Digest as _;
        match kind {
            gix::hash::Kind::Sha1 => Ok(Hasher::Sha1(sha1::Sha1::new())),
            gix::hash::Kind::Sha256 => Ok(Hasher::Sha256(sha2::Sha256::new())),
            #[allow(unreachable_patterns)]
            other => Err(std::io::Error::other(format!(
                "index trailer of object format {other:?}"
            ))),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha1::Digest as _;
        match self {
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        use sha1::Digest as _;
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// An entry's first 40 bytes as the index file holds them: its stat data and `mode`.
fn stat_head(s: &gix::index::entry::Stat, mode: u32) -> [u8; 40] {
    let mut head = [0u8; 40];
    for (k, v) in [
        s.ctime.secs,
        s.ctime.nsecs,
        s.mtime.secs,
        s.mtime.nsecs,
        s.dev,
        s.ino,
        mode,
        s.uid,
        s.gid,
        s.size,
    ]
    .into_iter()
    .enumerate()
    {
        head[4 * k..4 * k + 4].copy_from_slice(&v.to_be_bytes());
    }
    head
}

/// Appends entry `e` (its path `path`) as the index file holds it, padded with NULs to a
/// multiple of 8 bytes: the bytes gix-index's `Entry::write_to` writes, in one pass.
fn put_entry(out: &mut Vec<u8>, e: &gix::index::Entry, path: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&stat_head(&e.stat, e.mode.bits()));
    out.extend_from_slice(e.id.as_bytes());
    // The flags as stored: the path's length (12 bits, saturated) in place of gix's own.
    let len = path.len().min(0x0fff) as u16;
    let stored = (e.flags.bits() & !0x0fff) as u16;
    out.extend_from_slice(&(stored | len).to_be_bytes());
    if e.flags.contains(Flags::EXTENDED) {
        let extended =
            ((e.flags & (Flags::INTENT_TO_ADD | Flags::SKIP_WORKTREE)).bits() >> 16) as u16;
        out.extend_from_slice(&extended.to_be_bytes());
    }
    out.extend_from_slice(path);
    // The path's NUL, and the padding.
    let len = out.len() - start + 1;
    out.resize(start + ((len + 7) & !7), 0);
}

/// Writes [`encode_with`]'s bytes to `w`: the entries serialized in parallel, then hashed
/// and written part by part (never copied into one buffer).
pub fn write_with(
    state: &gix::index::State,
    tree: Option<&gix::index::extension::Tree>,
    sparse: bool,
    w: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let entries = state.entries();
    let backing = state.path_backing();
    let extended = entries.iter().any(|e| e.flags.contains(Flags::EXTENDED));
    let count = entries
        .iter()
        .filter(|e| !e.flags.contains(Flags::REMOVE))
        .count() as u32;
    let parts: Vec<Vec<u8>> = entries
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut out = Vec::with_capacity(chunk.len() * 112);
            for e in chunk {
                if !e.flags.contains(Flags::REMOVE) {
                    put_entry(&mut out, e, e.path_in(backing));
                }
            }
            out
        })
        .collect();
    let mut header = Vec::with_capacity(12);
    header.extend_from_slice(b"DIRC");
    header.extend_from_slice(&(if extended { 3u32 } else { 2 }).to_be_bytes());
    header.extend_from_slice(&count.to_be_bytes());
    // The extensions git's checkout writes, in its order; no end-of-index-entry (`EOIE`),
    // which git writes only with index.recordEndOfIndexEntries or index.threads.
    let mut extensions = Vec::new();
    if let Some(tree) = tree {
        tree.write_to(&mut extensions)?;
    }
    if sparse {
        extension::sparse::write_to(&mut extensions)?;
    }
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
    all.push(&header);
    all.extend(parts.iter().map(Vec::as_slice));
    all.push(&extensions);
    write_hashed(&all, state.object_hash(), w)
}

/// Writes `parts` to `w`, then their hash (the index file's trailer): hashed on another
/// thread while they are written, which takes as long again as the hash (8 MB: about 5 ms
/// each).
fn write_hashed(
    parts: &[&[u8]],
    kind: gix::hash::Kind,
    w: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut hash = Hasher::new(kind)?;
    let trailer = std::thread::scope(|s| {
        let hashing = s.spawn(move || {
            for p in parts {
                hash.update(p);
            }
            hash.finish()
        });
        for p in parts {
            w.write_all(p)?;
        }
        hashing
            .join()
            .map_err(|_| std::io::Error::other("the index trailer's hash failed"))
    })?;
    w.write_all(&trailer)
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
    if !trailer_matches(&bytes, kind) {
        return Err(bad("its checksum does not match its contents"));
    }
    let trailer = &bytes[bytes.len() - n..];
    let mut hex = String::with_capacity(2 * n);
    for b in trailer {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    let file = gix::index::File::at(path, kind, true, Default::default())
        .map_err(std::io::Error::other)?;
    Ok((file, hex))
}

/// An index file's bytes with its entries located, not decoded: to prove a tree against it
/// and to write it again with other stat data at the cost of its trailer's hash alone
/// (decoding 78,000 entries and encoding them again took 25 ms of a 90 ms claim of a spare).
/// Versions 2 and 3 only, whose entries are padded to 8 bytes ([`Located::new`] refuses
/// version 4's compressed paths). The bytes are untrusted: every offset is checked.
pub struct Located {
    bytes: Vec<u8>,
    /// Per entry: where it starts, where its path starts and ends.
    entries: Vec<(usize, usize, usize)>,
    kind: gix::hash::Kind,
}

/// What an index entry is, by its mode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EntryKind {
    /// A regular file (`100644` or `100755`).
    File,
    /// A symbolic link (`120000`).
    Symlink,
    /// A submodule (`160000`).
    Submodule,
    /// Anything else (a sparse directory, or not git's).
    Other,
}

/// Offsets of an entry's fields (all big-endian `u32`): ctime, mtime (seconds, nanoseconds),
/// dev, ino, mode, uid, gid, size; the object id follows at 40.
const ENTRY_MTIME: usize = 8;
const ENTRY_MODE: usize = 24;
const ENTRY_STAT_END: usize = 40;

impl Located {
    /// Locates the entries of the index file `bytes` of a repository of `kind` (its trailer
    /// is not checked here: see [`read_checked`]).
    pub fn new(bytes: Vec<u8>, kind: gix::hash::Kind) -> Result<Located, String> {
        let n = kind.len_in_bytes();
        if bytes.len() < 12 + n || &bytes[..4] != b"DIRC" {
            return Err("not an index file".into());
        }
        let be = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let version = be(4);
        if !(2..=3).contains(&version) {
            return Err(format!("an index of version {version}"));
        }
        let count = be(8) as usize;
        let end = bytes.len() - n;
        // Every entry takes at least 8 bytes more than its fixed part.
        let fixed = ENTRY_STAT_END + n + 2;
        if count > (end - 12) / (fixed + 1) {
            return Err(format!(
                "{count} entries cannot fit in {} bytes",
                bytes.len()
            ));
        }
        let mut entries = Vec::with_capacity(count);
        let mut at = 12;
        for _ in 0..count {
            if at + fixed > end {
                return Err("an entry runs past the end".into());
            }
            let flags = u16::from_be_bytes([bytes[at + fixed - 2], bytes[at + fixed - 1]]);
            let mut head = fixed;
            if flags & 0x4000 != 0 {
                if version < 3 {
                    return Err("extended flags in a version 2 index".into());
                }
                head += 2;
            }
            let path = at + head;
            if path > end {
                return Err("an entry runs past the end".into());
            }
            let len = usize::from(flags & 0x0fff);
            let path_end = if len < 0x0fff {
                path + len
            } else {
                bytes[path..end]
                    .iter()
                    .position(|b| *b == 0)
                    .map(|i| path + i)
                    .ok_or("a path runs past the end")?
            };
            if path_end >= end || bytes[path_end] != 0 {
                return Err("a path is not terminated".into());
            }
            entries.push((at, path, path_end));
            at += (head + (path_end - path) + 8) & !7;
        }
        if at > end {
            return Err("the last entry runs past the end".into());
        }
        Ok(Located {
            bytes,
            entries,
            kind,
        })
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn field(&self, i: usize, off: usize) -> u32 {
        let at = self.entries[i].0 + off;
        u32::from_be_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ])
    }

    /// Entry `i`'s path (`i < len()`).
    pub fn path(&self, i: usize) -> &[u8] {
        let (_, from, to) = self.entries[i];
        &self.bytes[from..to]
    }

    /// What entry `i` is (`i < len()`).
    pub fn kind(&self, i: usize) -> EntryKind {
        match self.field(i, ENTRY_MODE) {
            0o100644 | 0o100755 => EntryKind::File,
            0o120000 => EntryKind::Symlink,
            0o160000 => EntryKind::Submodule,
            _ => EntryKind::Other,
        }
    }

    /// Sets entry `i`'s stat data (`i < len()`).
    pub fn set_stat(&mut self, i: usize, s: &gix::index::entry::Stat) {
        let at = self.entries[i].0;
        let head = stat_head(s, self.field(i, ENTRY_MODE));
        self.bytes[at..at + ENTRY_STAT_END].copy_from_slice(&head);
    }

    /// Marks every entry git's checkout would mark with `core.ignoreStat`: all but those a
    /// sparse checkout skips (as [`crate::add`] does to a decoded index).
    pub fn assume_valid(&mut self) {
        let n = self.kind.len_in_bytes();
        for &(at, path, _) in &self.entries {
            let flags = at + ENTRY_STAT_END + n;
            // The extended flags, when there are: skip-worktree is 0x4000 of them.
            if path - at > ENTRY_STAT_END + n + 2 && self.bytes[flags + 2] & 0x40 != 0 {
                continue;
            }
            self.bytes[flags] |= 0x80;
        }
    }

    /// How many entries have stat data recorded with an mtime before `secs`: those git trusts
    /// without reading them when the index file's mtime is `secs` (see
    /// `admin::write_index`).
    pub fn trusted_before(&self, secs: i64) -> u64 {
        (0..self.len())
            .filter(|&i| {
                let at = self.entries[i].0;
                let stat = &self.bytes[at..at + ENTRY_STAT_END];
                let recorded = stat
                    .iter()
                    .enumerate()
                    .any(|(k, b)| !(ENTRY_MODE..ENTRY_MODE + 4).contains(&k) && *b != 0);
                recorded && i64::from(self.field(i, ENTRY_MTIME)) < secs
            })
            .count() as u64
    }

    /// The bytes with their trailer computed again (after [`Located::set_stat`]).
    pub fn sealed(&mut self) -> std::io::Result<&[u8]> {
        let end = self.bytes.len() - self.kind.len_in_bytes();
        let mut hash = Hasher::new(self.kind)?;
        hash.update(&self.bytes[..end]);
        self.bytes[end..].copy_from_slice(&hash.finish());
        Ok(&self.bytes)
    }

    /// Writes the bytes to `w` with their trailer computed again, as [`Located::sealed`]
    /// holds them (the hash computed while they are written).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let end = self.bytes.len() - self.kind.len_in_bytes();
        write_hashed(&[&self.bytes[..end]], self.kind, w)
    }
}

/// Whether the index file `bytes` of a repository of `kind` ends with the hash of what
/// comes before (with the CPU's SHA extensions).
pub fn trailer_matches(bytes: &[u8], kind: gix::hash::Kind) -> bool {
    let n = kind.len_in_bytes();
    if bytes.len() < n {
        return false;
    }
    let (body, trailer) = bytes.split_at(bytes.len() - n);
    match kind {
        gix::hash::Kind::Sha1 => <sha1::Sha1 as sha1::Digest>::digest(body).as_slice() == trailer,
        gix::hash::Kind::Sha256 => {
            <sha2::Sha256 as sha2::Digest>::digest(body).as_slice() == trailer
        }
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether [`encode`] writes `state`'s index: a SHA-1 or SHA-256 repository's.
pub fn supported(state: &gix::index::State) -> bool {
    matches!(
        state.object_hash(),
        gix::hash::Kind::Sha1 | gix::hash::Kind::Sha256
    )
}

#[cfg(all(test, unix))]
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
            // Every kind of flag git stores: assume-valid, a stage, skip-worktree and
            // intent-to-add (extended).
            let flags = match i % 5 {
                1 => Flags::ASSUME_VALID,
                2 => Flags::from_stage(gix::index::entry::Stage::Ours),
                3 => Flags::SKIP_WORKTREE | Flags::EXTENDED,
                4 => Flags::INTENT_TO_ADD | Flags::EXTENDED | Flags::ASSUME_VALID,
                _ => Flags::empty(),
            };
            big.dangerously_push_entry(
                Default::default(),
                gix::ObjectId::empty_blob(gix::hash::Kind::Sha1),
                flags,
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

    /// A located index with new stat data is the index encoded with that stat data, byte for
    /// byte (SHA-1 and SHA-256, versions 2 and 3, long paths, symlinks, a submodule);
    /// `core.ignoreStat`'s marking is the decoded index's; damaged bytes are refused, never
    /// read past.
    #[test]
    fn a_located_index_with_new_stat_data_is_that_index_encoded()
    -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        for (format, kind) in [
            ("sha1", gix::hash::Kind::Sha1),
            ("sha256", gix::hash::Kind::Sha256),
        ] {
            let root = tmp.path().join(format);
            std::fs::create_dir_all(root.join("d"))?;
            crate::test_git(&root, &["init", "-q", &format!("--object-format={format}")]);
            for n in 1..30 {
                std::fs::write(root.join("d").join("p".repeat(n)), n.to_string())?;
            }
            std::fs::write(root.join("d").join("l".repeat(250)), "x")?;
            std::os::unix::fs::symlink("d", root.join("link"))?;
            crate::test_git(&root, &["add", "-A"]);
            let sub = tmp.path().join(format!("{format}-sub"));
            crate::test_git(
                tmp.path(),
                &[
                    "init",
                    "-q",
                    &format!("--object-format={format}"),
                    &format!("{format}-sub"),
                ],
            );
            std::fs::write(sub.join("s"), "s")?;
            crate::test_git(&sub, &["add", "s"]);
            crate::test_git(&sub, &["commit", "-qm", "s"]);
            let head = crate::test_git(&sub, &["rev-parse", "HEAD"]);
            crate::test_git(
                &root,
                &[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("160000,{},sub", head.trim()),
                ],
            );
            crate::test_git(&root, &["commit", "-qm", "c"]);
            for ita in [false, true] {
                if ita {
                    std::fs::write(root.join("later"), "later")?;
                    crate::test_git(&root, &["add", "-N", "later"]);
                    crate::test_git(&root, &["update-index", "--skip-worktree", "d/p"]);
                }
                let mut index = gix::open(&root)?.open_index()?;
                let template = encode(&index)?;
                assert_eq!(
                    u32::from_be_bytes(template[4..8].try_into()?),
                    if ita { 3 } else { 2 }
                );
                let mut located = Located::new(template.clone(), kind)?;
                assert_eq!(located.len(), index.entries().len());
                for (i, e) in index.entries_mut().iter_mut().enumerate() {
                    let i = i as u32;
                    e.stat.mtime.secs = 1_800_000_000 + i;
                    e.stat.mtime.nsecs = i * 7919;
                    e.stat.ctime.secs = u32::MAX - i;
                    e.stat.ctime.nsecs = i;
                    e.stat.dev = 77;
                    e.stat.ino = i * 31;
                    e.stat.uid = 1000 + i;
                    e.stat.gid = 2000 + i;
                    e.stat.size = i * 1000;
                }
                let backing = index.path_backing();
                for (i, e) in index.entries().iter().enumerate() {
                    assert_eq!(located.path(i), e.path_in(backing));
                    let want = match e.mode {
                        gix::index::entry::Mode::SYMLINK => EntryKind::Symlink,
                        gix::index::entry::Mode::COMMIT => EntryKind::Submodule,
                        _ => EntryKind::File,
                    };
                    assert_eq!(located.kind(i), want);
                    located.set_stat(i, &e.stat);
                }
                assert!((0..located.len()).any(|i| located.kind(i) == EntryKind::Submodule));
                assert!((0..located.len()).any(|i| located.kind(i) == EntryKind::Symlink));
                let mut written = Vec::new();
                located.write_to(&mut written)?;
                assert_eq!(written, encode(&index)?);
                assert_eq!(located.sealed()?, &encode(&index)?[..]);
                assert_eq!(
                    located.trusted_before(1_800_000_010),
                    index.entries().len().min(10) as u64
                );
                located.assume_valid();
                for e in index.entries_mut() {
                    if !e.flags.contains(Flags::SKIP_WORKTREE) {
                        e.flags |= Flags::ASSUME_VALID;
                    }
                }
                assert_eq!(located.sealed()?, &encode(&index)?[..]);
                // Damaged: refused, whatever is cut or changed.
                for cut in [0, 5, 11, 12 + kind.len_in_bytes() + 40] {
                    assert!(
                        Located::new(template[..cut].to_vec(), kind).is_err(),
                        "cut {cut}"
                    );
                }
                let mut v4 = template.clone();
                v4[7] = 4;
                assert!(Located::new(v4, kind).is_err());
                let mut many = template.clone();
                many[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
                assert!(Located::new(many, kind).is_err());
                let mut unterminated = template.clone();
                let first_path = 12 + 40 + kind.len_in_bytes() + 2;
                let len = usize::from(
                    u16::from_be_bytes([
                        unterminated[first_path - 2],
                        unterminated[first_path - 1],
                    ]) & 0xfff,
                );
                unterminated[first_path + len] = b'x';
                assert!(Located::new(unterminated, kind).is_err());
                for b in 0..template.len() {
                    let mut flipped = template.clone();
                    flipped[b] ^= 0xff;
                    // Never a panic; anything located stays in bounds.
                    if let Ok(l) = Located::new(flipped, kind) {
                        for i in 0..l.len() {
                            let _ = (l.path(i), l.kind(i));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
