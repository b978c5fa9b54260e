//! Verify: rehash every blob, check every manifest and the blobs it needs.

use std::sync::atomic::{AtomicU64, Ordering};

use cowtree_fs::progress::{Progress, Total};
use rayon::prelude::*;

use std::path::Path;

use crate::compact::CompactManifest;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::ingest::hash_file;
use crate::manifest::show;
use crate::store::Store;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `corrupt-blob`, `unreadable-blob`, `writable-blob`, `missing-blob`, `blob-size`,
    /// `bad-snapshot`, `bad-ref` (a name that cannot be read), `bad-tree` (a tree subvolume
    /// that is not exactly its snapshot's tree, or not read-only); as a warning,
    /// `dangling-ref`, `orphan-tree` (a tree whose snapshot is gone, which gc removes).
    pub kind: &'static str,
    /// The blob path, snapshot id or ref name concerned.
    pub subject: String,
    /// What is wrong, in words.
    pub message: String,
}

/// What verify checked and found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Blobs rehashed.
    pub blobs_checked: u64,
    /// Bytes rehashed.
    pub bytes_checked: u64,
    /// Snapshots checked.
    pub snapshots_checked: u64,
    /// Tree subvolumes checked against their snapshots ([`crate::trees`]).
    pub trees_checked: u64,
    /// Every problem.
    pub problems: Vec<Problem>,
    /// Findings that leave every snapshot and blob intact, with what to do about them:
    /// `dangling-ref`, a name whose snapshot is gone (what an `rm` cut short leaves, since
    /// it removes the manifest before the names; `cowtree rm NAME` removes the name).
    pub warnings: Vec<Problem>,
}

/// Runs verify (under the shared lock, so it can run beside snapshots and checkouts).
pub fn verify(store: &Store) -> Result<VerifyReport> {
    verify_with_progress(store, &Progress::default())
}

/// [`verify`], counting into `progress`: the total (blobs) once they are listed, then one
/// entry per blob hashed, with its size. Checking the snapshots afterwards is not counted.
pub fn verify_with_progress(store: &Store, progress: &Progress) -> Result<VerifyReport> {
    let _lock = store.lock_shared()?;
    let mut report = VerifyReport::default();
    let blobs = list_blobs(store)?;
    progress.set_total(Total {
        entries: blobs.len() as u64,
        bytes: None,
    });
    let bytes = AtomicU64::new(0);
    let mut problems: Vec<Problem> = blobs
        .par_iter()
        .flat_map_iter(|(prefix, name)| check_blob(store, prefix, name, &bytes, progress))
        .collect();
    report.blobs_checked = blobs.len() as u64;
    report.bytes_checked = bytes.into_inner();
    check_snapshots(store, &mut problems, &mut report)?;
    check_trees(store, &mut problems, &mut report)?;
    check_refs(store, &mut problems, &mut report)?;
    report.problems = problems;
    Ok(report)
}

/// An I/O error at `p`, with no operation named.
fn at(p: &Path, e: std::io::Error) -> Error {
    Error::io_at("", p, e)
}

/// Every file under `blobs/<fan>/`, as (fan prefix, name).
fn list_blobs(store: &Store) -> Result<Vec<(String, std::ffi::OsString)>> {
    let mut blobs: Vec<(String, std::ffi::OsString)> = Vec::new();
    store.each_blob_file(|_, _, prefix, name| {
        blobs.push((prefix.to_string(), name));
        Ok(())
    })?;
    Ok(blobs)
}

/// Rehashes one blob and checks its name and mode; adds its size to `bytes`.
fn check_blob(
    store: &Store,
    prefix: &str,
    name: &std::ffi::OsStr,
    bytes: &AtomicU64,
    progress: &Progress,
) -> Vec<Problem> {
    let mut found = Vec::new();
    let path = store.root().join("blobs").join(prefix).join(name);
    let subject = path.display().to_string();
    let want = name
        .to_str()
        .and_then(|rest| Hash::from_hex(&format!("{prefix}{rest}")));
    let Some(want) = want else {
        progress.add(1, 0);
        found.push(Problem {
            kind: "corrupt-blob",
            subject,
            message: "file in blobs/ whose name is not a BLAKE3 hash".into(),
        });
        return found;
    };
    match hash_blob(store, &want) {
        Ok((size, got)) => {
            bytes.fetch_add(size, Ordering::Relaxed);
            progress.add(1, size);
            if got != want {
                found.push(Problem {
                    kind: "corrupt-blob",
                    subject: subject.clone(),
                    message: format!("content hashes to {got}, not to its name"),
                });
            }
        }
        Err(e) => {
            progress.add(1, 0);
            found.push(Problem {
                kind: "unreadable-blob",
                subject,
                message: e.to_string(),
            });
            return found;
        }
    }
    if let Ok(st) = stat_blob(store, &want) {
        let mode = cowtree_fs::sys::stat_mode(&st);
        if mode & 0o222 != 0 {
            found.push(Problem {
                kind: "writable-blob",
                subject,
                message: format!("mode {:o}: blobs must be read-only (0444)", mode & 0o7777),
            });
        }
    }
    found
}

/// Hashes the blob `hash` as it is in the store: its size and BLAKE3 hash.
#[cfg(unix)]
fn hash_blob(store: &Store, hash: &Hash) -> std::io::Result<(u64, Hash)> {
    hash_file(store.blobs(), &Store::blob_rel(hash))
}

/// Hashes the blob `hash` as it is in the store (relative to its fan-out directory: Windows
/// opens one component at a time).
#[cfg(windows)]
fn hash_blob(store: &Store, hash: &Hash) -> std::io::Result<(u64, Hash)> {
    let (fan_dir, name) = store.blob_fanout(hash)?;
    hash_file(&fan_dir, &name)
}

/// What the blob `hash` is, not following a symlink.
#[cfg(unix)]
fn stat_blob(store: &Store, hash: &Hash) -> std::io::Result<cowtree_fs::dir::Stat> {
    let rel = Store::blob_rel(hash);
    Ok(rustix::fs::statat(
        store.blobs(),
        &rel,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// What the blob `hash` is, not following a reparse point.
#[cfg(windows)]
fn stat_blob(store: &Store, hash: &Hash) -> std::io::Result<cowtree_fs::dir::Stat> {
    let (fan_dir, name) = store.blob_fanout(hash)?;
    fan_dir.stat(&name)
}

/// Checks that every snapshot's manifest decodes and that each blob it needs is there with
/// its size.
fn check_snapshots(
    store: &Store,
    problems: &mut Vec<Problem>,
    report: &mut VerifyReport,
) -> Result<()> {
    for id in store.snapshot_ids()? {
        report.snapshots_checked += 1;
        // Each entry's blob checked as the manifest is read, none held; what was found is kept
        // only if the whole manifest is the snapshot's and decodes.
        let mut found = Vec::new();
        let read = store.each_entry(&id, |e| {
            let Some(hash) = e.hash() else { return };
            match stat_blob(store, &hash).map(|st| cowtree_fs::sys::stat_size(&st)) {
                Ok(size) if size == e.size() => {}
                Ok(size) => found.push(Problem {
                    kind: "blob-size",
                    subject: store.blob_path(&hash).display().to_string(),
                    message: format!(
                        "snapshot {id} entry {} expects {} bytes, the blob has {}",
                        show(e.path),
                        e.size(),
                        size
                    ),
                }),
                Err(_) => found.push(Problem {
                    kind: "missing-blob",
                    subject: store.blob_path(&hash).display().to_string(),
                    message: format!(
                        "blob {hash} is missing; snapshot {id} needs it for {}",
                        show(e.path)
                    ),
                }),
            }
        });
        match read {
            Ok(()) => problems.append(&mut found),
            Err(e) => problems.push(Problem {
                kind: "bad-snapshot",
                subject: id.to_hex(),
                message: e.to_string(),
            }),
        }
    }
    Ok(())
}

/// Checks each tree subvolume against its snapshot; one whose snapshot is gone is a warning.
fn check_trees(
    store: &Store,
    problems: &mut Vec<Problem>,
    report: &mut VerifyReport,
) -> Result<()> {
    let snapshots: std::collections::HashSet<Hash> = store.snapshot_ids()?.into_iter().collect();
    for id in crate::trees::ids(store)? {
        if !snapshots.contains(&id) {
            report.warnings.push(Problem {
                kind: "orphan-tree",
                subject: crate::trees::path(store, &id).display().to_string(),
                message: format!(
                    "the tree subvolume of snapshot {id}, which is gone; gc removes it"
                ),
            });
            continue;
        }
        report.trees_checked += 1;
        // A manifest that does not load is reported above as a bad snapshot; one too large
        // for the compact form (over 4 GiB of names) is said to be left unchecked.
        match store.load_compact(&id) {
            Ok(m) => problems.extend(check_tree(store, &id, &m)),
            Err(Error::Manifest {
                source: crate::manifest::ManifestError::TooManyNames,
                ..
            }) => problems.push(Problem {
                kind: "bad-tree",
                subject: crate::trees::path(store, &id).display().to_string(),
                message: "not checked: the snapshot's names and paths pass the 4 GiB the \
                          check can index"
                    .into(),
            }),
            Err(_) => {}
        }
    }
    Ok(())
}

/// Checks that every name can be read and points at a snapshot that exists.
fn check_refs(store: &Store, problems: &mut Vec<Problem>, report: &mut VerifyReport) -> Result<()> {
    let refs_path = store.root().join("refs");
    for e in store.refs_dir().entries().map_err(|e| at(&refs_path, e))? {
        let Some(name) = e.name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        match crate::refs::get(store, name) {
            Ok(Some(id)) if store.has_snapshot(&id)? => {}
            Ok(Some(id)) => report.warnings.push(Problem {
                kind: "dangling-ref",
                subject: name.to_string(),
                message: format!(
                    "points at snapshot {id}, which does not exist (an interrupted rm?); `{}` \
                     removes the name",
                    crate::error::command(store.root(), &["rm", name], Path::new(""))
                ),
            }),
            Ok(None) => {}
            Err(err) => problems.push(Problem {
                kind: "bad-ref",
                subject: name.to_string(),
                message: err.to_string(),
            }),
        }
    }
    Ok(())
}

/// Checks the tree subvolume of snapshot `id` against its manifest `m`: a read-only subvolume
/// root holding exactly the manifest's entries, each of its kind (a file's executable bit
/// set exactly for an executable entry), size, content (hashed) or symlink target, and
/// nothing else.
#[cfg(unix)]
fn check_tree(store: &Store, id: &Hash, m: &CompactManifest) -> Vec<Problem> {
    use crate::manifest::{DataRef, Kind};
    use crate::util::path_of;
    use rustix::fs::{AtFlags, FileType, statat};
    let path = crate::trees::path(store, id);
    let problem = |message: String| Problem {
        kind: "bad-tree",
        subject: path.display().to_string(),
        message,
    };
    let tree = match crate::trees::open(store, id) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return vec![problem(
                "not a read-only btrfs subvolume: a checkout does not use it; gc removes it \
                 (a later checkout builds it anew)"
                    .into(),
            )];
        }
        Err(e) => return vec![problem(e.to_string())],
    };
    let mut found_counts = Vec::new();
    if let Some(kept) = crate::trees::counts(store, id)
        && kept != crate::trees::Counts::of_compact(m)
    {
        found_counts.push(problem(format!(
            "the counts kept beside it ({kept:?}) are not the snapshot's"
        )));
    }
    // Each entry as the snapshot has it (its path built in a buffer of the worker's).
    let mut found: Vec<Problem> = (0..m.len())
        .into_par_iter()
        .map_init(Vec::new, |entry_path, i| {
            let e = m.get(i)?;
            m.path_into(i, entry_path);
            let rel = path_of(entry_path);
            let what = |why: String| Some(problem(format!("{}: {why}", show(entry_path))));
            let st = match statat(&tree.dir, rel, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(err) => return what(format!("missing ({err})")),
            };
            let ft = FileType::from_raw_mode(st.st_mode);
            match (e.data, e.kind) {
                (_, Kind::Dir) if ft == FileType::Directory => None,
                (DataRef::Target(t), Kind::Symlink) if ft == FileType::Symlink => {
                    match rustix::fs::readlinkat(&tree.dir, rel, Vec::new()) {
                        Ok(got) if got.as_bytes() == t => None,
                        Ok(got) => what(format!(
                            "symlink to {}, the snapshot has {}",
                            show(got.as_bytes()),
                            show(t)
                        )),
                        Err(err) => what(format!("unreadable symlink ({err})")),
                    }
                }
                (DataRef::Blob { hash, size }, Kind::File | Kind::Executable)
                    if ft == FileType::RegularFile =>
                {
                    let exec = st.st_mode & 0o111 != 0;
                    if exec != (e.kind == Kind::Executable) {
                        return what(format!(
                            "mode {:o}, the snapshot records {}",
                            st.st_mode & 0o7777,
                            e.kind.as_str()
                        ));
                    }
                    if st.st_size as u64 != size {
                        return what(format!("{} bytes, the snapshot has {size}", st.st_size));
                    }
                    match hash_file(&tree.dir, rel.as_os_str()) {
                        Ok((_, got)) if got == hash => None,
                        Ok((_, got)) => {
                            what(format!("content hashes to {got}, the snapshot has {hash}"))
                        }
                        Err(err) => what(format!("unreadable ({err})")),
                    }
                }
                _ => what(format!(
                    "a {}, the snapshot has a {}",
                    type_name(ft),
                    e.kind.as_str()
                )),
            }
        })
        .flatten()
        .collect();
    // Nothing else: every directory of the snapshot (the root, every ancestor of an entry,
    // every empty directory) listed, each name in it an entry or a directory of the
    // snapshot, looked up by path in the compact form (no set of every path).
    let mut extra: Vec<Problem> = (0..m.dirs())
        .into_par_iter()
        .flat_map_iter(|d| {
            let dir = m.dir_path(d);
            let listed = if dir.is_empty() {
                tree.dir.entries()
            } else {
                tree.dir
                    .open_dir_beneath(path_of(dir))
                    .and_then(|sub| sub.entries())
            };
            let mut out = Vec::new();
            match listed {
                Ok(entries) => {
                    for en in entries {
                        let child = crate::util::join(dir, en.name.as_bytes());
                        if m.find(&child).is_none() && m.find_dir(&child).is_none() {
                            out.push(problem(format!("{}: not in the snapshot", show(&child))));
                        }
                    }
                }
                Err(err) => out.push(problem(format!("{}: cannot list ({err})", show(dir)))),
            }
            out
        })
        .collect();
    found.append(&mut extra);
    found.append(&mut found_counts);
    found.sort_by(|a, b| a.message.cmp(&b.message));
    found
}

/// Checks the tree of snapshot `id` on Windows: there is none to trust (no read-only
/// subvolumes), so whatever is at `trees/<id>` is reported as gc will treat it.
#[cfg(windows)]
fn check_tree(store: &Store, id: &Hash, _m: &CompactManifest) -> Vec<Problem> {
    vec![Problem {
        kind: "bad-tree",
        subject: crate::trees::path(store, id).display().to_string(),
        message: "not a read-only btrfs subvolume (Windows has none): a checkout does not use \
                  it; gc removes it"
            .into(),
    }]
}

#[cfg(unix)]
fn type_name(ft: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType;
    match ft {
        FileType::RegularFile => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        _ => "special file",
    }
}
