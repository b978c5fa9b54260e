//! Removing entries from the snapshot: a directory with everything in it, its
//! subdirectories in parallel, counted.

use std::ffi::OsStr;

use cowtree_fs::dir::Dir;
use rayon::prelude::*;
use rustix::fs::FileType;

use super::file_type_of;

/// Removes `name` in `parent`, and everything below it when it is a directory, its
/// subdirectories in parallel; never follows a symlink. Returns the number of entries removed.
pub(crate) fn remove_counted(parent: &Dir, name: &OsStr) -> std::io::Result<u64> {
    let dir = match parent.open_dir(name) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(_) => {
            // Not a directory (or a symlink to one): one entry.
            return match parent.remove_file(name) {
                Ok(()) => Ok(1),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            };
        }
    };
    if !rustix::process::geteuid().is_root() {
        // A directory without write or search permission keeps its entries; ours to change.
        let st = dir.stat_self()?;
        if cowtree_fs::sys::stat_mode(&st) & 0o300 != 0o300 {
            dir.set_mode(0o700)?;
        }
    }
    let mut subdirs = Vec::new();
    let mut n = 0u64;
    for e in dir.entries()? {
        if file_type_of(&dir, &e) == FileType::Directory {
            subdirs.push(e.name);
        } else {
            match dir.remove_file(&e.name) {
                Ok(()) => n += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    n += subdirs
        .par_iter()
        .map(|s| remove_counted(&dir, s))
        .sum::<std::io::Result<u64>>()?;
    drop(dir);
    match parent.remove_dir(name) {
        Ok(()) => Ok(n + 1),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(n),
        Err(e) => Err(e),
    }
}
