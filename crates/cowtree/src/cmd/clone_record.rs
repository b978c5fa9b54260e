//! `cowtree clone --record FILE`: every entry the clone wrote, one JSON object per line,
//! written so that a record that cannot be written is known before anything is linked.
//!
//! FILE is made as a temporary file beside it (`.<name>.cowtree-record.<pid>.<random>`) before
//! the link starts, so that an unwritable place (a missing directory, no permission, a
//! directory at FILE) fails the command before it writes anything; the lines go into it once
//! the link is done, and it is renamed over FILE. A failure then (a full disk) is the caller's
//! to act on: `cowtree clone` removes a new DST it made.
//!
//! A line (docs/clone.md): `path` (relative to DST), `kind` (`file`, `dir`, `symlink`),
//! `size`, `method` (`clone`, `copy`, `hardlink`, `symlink`; null for directories and symlinks
//! from the source), `source` (the SRC argument that wrote it; for a directory, the first that
//! has it), `from` (the entry's path relative to that SRC, or the file SRC itself; absent for
//! directories), and `sha256` or `blake3` with `--record-hash`. A path that is not valid UTF-8
//! is written as `path_base64` (likewise `source_base64`, `from_base64`) instead: its raw
//! bytes in standard base64 with padding (RFC 4648), so no name is changed or merged with
//! another; every other path is the JSON string it is.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use cowtree_fs::dir::Dir;
use cowtree_link::{HashAlgo, LinkReport};
use serde_json::{Map, Value};

use crate::exit::{CliError, Kind};

/// The record file being prepared; removed when dropped uncommitted.
pub struct RecordFile {
    parent: Dir,
    path: PathBuf,
    name: OsString,
    tmp: OsString,
    file: std::fs::File,
    /// The temporary file's entry in the process's undo registry (`cowtree_fs::undo`).
    undo: Option<cowtree_fs::undo::Registration>,
}

impl RecordFile {
    /// Creates the temporary file beside `path` (see the module doc), registering it with
    /// the interrupt handler first.
    pub fn prepare(path: &Path) -> Result<RecordFile, CliError> {
        let fail = |why: String| {
            CliError::new(format!(
                "--record {}: {why}; nothing was written",
                path.display()
            ))
            .kind(Kind::Io)
            .path(path)
        };
        let name = path
            .file_name()
            .ok_or_else(|| fail("names no file".to_string()))?
            .to_owned();
        let parent_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent = Dir::open(parent_path)
            .map_err(|e| fail(format!("cannot open {}: {e}", parent_path.display())))?;
        if parent
            .try_stat(&name)
            .map_err(|e| fail(e.to_string()))?
            .is_some_and(|st| cowtree_fs::sys::stat_file_type(&st).is_dir())
        {
            return Err(fail("is a directory".to_string()));
        }
        let mut tmp = temp_prefix(&name);
        tmp.push(format!("{:08x}", cowtree_fs::staging::random_u64() as u32));
        let undo = cowtree_fs::undo::Registration::file(&parent, &tmp, false)
            .map_err(|e| fail(format!("cannot open {}: {e}", parent_path.display())))?;
        #[cfg(unix)]
        let file = {
            use rustix::fs::{Mode, OFlags, openat};
            openat(
                &parent,
                &tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            )
            .map(std::fs::File::from)
            .map_err(io::Error::from)
        };
        // Windows: created exclusively relative to the directory's handle, no reparse point
        // followed.
        #[cfg(windows)]
        let file = parent.create_file(&tmp);
        let file = file.map_err(|e| {
            fail(format!(
                "cannot create a file in {}: {e}",
                parent_path.display()
            ))
        })?;
        Ok(RecordFile {
            parent,
            path: path.to_path_buf(),
            name,
            tmp,
            file,
            undo: Some(undo),
        })
    }

    /// The path given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the record of `report` (whose sources are `srcs`) and renames it over the
    /// record's path.
    pub fn commit(mut self, report: &LinkReport, srcs: &[PathBuf]) -> io::Result<()> {
        let text = lines(report, srcs)?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()?;
        self.parent.rename(&self.tmp, &self.parent, &self.name)?;
        if let Some(undo) = self.undo.take() {
            undo.forget();
        }
        Ok(())
    }
}

impl Drop for RecordFile {
    fn drop(&mut self) {
        // Best effort, the same removal as a signal handler's: one left is marked by its
        // name.
        if let Some(undo) = self.undo.take() {
            let _ = undo.undo();
        }
    }
}

/// `.<name>.cowtree-record.<pid>.`: what this process's temporary record files start with.
fn temp_prefix(name: &OsStr) -> OsString {
    let mut v = OsString::from(".");
    v.push(short_name(name));
    v.push(format!(".cowtree-record.{}.", std::process::id()));
    v
}

/// `name`'s first 200 bytes (on Windows, up to 200 UTF-16 units short of a whole
/// character: the platform's rule of 255 per name leaves room for the rest).
#[cfg(unix)]
fn short_name(name: &OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = name.as_bytes();
    OsString::from_vec(bytes[..bytes.len().min(200)].to_vec())
}

/// `name`'s first 200 bytes (on Windows, up to 200 UTF-16 units short of a whole
/// character: the platform's rule of 255 per name leaves room for the rest).
#[cfg(windows)]
fn short_name(name: &OsStr) -> OsString {
    use std::os::windows::ffi::{OsStrExt, OsStringExt};
    let mut units: Vec<u16> = name.encode_wide().take(200).collect();
    // Never end on the first half of a surrogate pair.
    if units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
        units.pop();
    }
    OsString::from_wide(&units)
}

/// The record's lines (see the module doc).
pub fn lines(report: &LinkReport, srcs: &[PathBuf]) -> io::Result<String> {
    let mut out = String::new();
    for e in &report.record {
        let mut line = Map::new();
        put_path(&mut line, "path", &e.path);
        line.insert("kind".into(), e.kind.as_str().into());
        line.insert("size".into(), e.size.into());
        line.insert(
            "method".into(),
            e.method.map(cowtree_link::error::attempt_name).into(),
        );
        if let Some(src) = srcs.get(e.source) {
            put_path(&mut line, "source", src);
        }
        if let Some(from) = &e.from {
            put_path(&mut line, "from", from);
        }
        if let Some(h) = &e.hash {
            let key = match h.algo {
                HashAlgo::Sha256 => "sha256",
                HashAlgo::Blake3 => "blake3",
            };
            line.insert(key.into(), h.to_hex().into());
        }
        out.push_str(&serde_json::to_string(&Value::Object(line)).map_err(io::Error::other)?);
        out.push('\n');
    }
    Ok(out)
}

/// `key: "<path>"` when `path` is valid UTF-8, else `<key>_base64: "<its bytes>"`.
fn put_path(line: &mut Map<String, Value>, key: &str, path: &Path) {
    match path.to_str() {
        Some(s) => {
            line.insert(key.into(), s.into());
        }
        None => {
            // The path's bytes: on unix its own; on Windows (a name that is not Unicode, an
            // unpaired surrogate) std's WTF-8 encoding of it.
            let b64 = base64::engine::general_purpose::STANDARD
                .encode(path.as_os_str().as_encoded_bytes());
            line.insert(format!("{key}_base64"), b64.into());
        }
    }
}

// Unix: paths of any bytes.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use cowtree_link::{EntryKind, RecordEntry};

    #[test]
    fn utf8_paths_are_strings_and_others_their_bytes_in_base64() {
        use std::os::unix::ffi::OsStrExt as _;
        let raw = PathBuf::from(OsStr::from_bytes(b"caf\xe9/\xff.py"));
        let report = LinkReport {
            record: vec![
                RecordEntry {
                    path: PathBuf::from("bin/\u{e9}t\u{e9}"),
                    kind: EntryKind::File,
                    size: Some(3),
                    method: Some(cowtree_link::Attempt::Clone),
                    hash: None,
                    source: 1,
                    from: Some(PathBuf::from("x")),
                },
                RecordEntry {
                    path: raw.clone(),
                    kind: EntryKind::Dir,
                    size: Some(0),
                    method: None,
                    hash: None,
                    source: 0,
                    from: None,
                },
            ],
            ..LinkReport::default()
        };
        let srcs = [
            PathBuf::from(OsStr::from_bytes(b"pkg\xfe")),
            PathBuf::from("b"),
        ];
        let text = lines(&report, &srcs).unwrap();
        let l: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(l[0]["path"], "bin/\u{e9}t\u{e9}");
        assert_eq!(l[0]["source"], "b");
        assert_eq!(l[0]["from"], "x");
        assert_eq!(l[0]["method"], "clone");
        assert!(l[0].get("path_base64").is_none());
        assert!(l[1].get("path").is_none());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(l[1]["path_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, b"caf\xe9/\xff.py");
        assert_eq!(l[1]["source_base64"], "cGtn/g==");
        assert!(l[1].get("from").is_none() && l[1].get("from_base64").is_none());
        assert_eq!(l[1]["method"], Value::Null);
    }
}
