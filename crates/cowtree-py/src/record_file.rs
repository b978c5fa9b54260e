//! `cowtree.record_lines`: the lines of an installed package's `RECORD` file (PyPA's
//! "Recording installed projects": `path,sha256=<digest>,size`, CSV) for the entries a link
//! call wrote, made in Rust with the interpreter released.
//!
//! An installer writes one line per file it installed. The digest and size of a file come,
//! in this order of preference, from: the file itself, read again, when the caller says it
//! changed since it was linked (a script whose `#!python` line it rewrote); the Linker's
//! own SHA-256 (`hash="sha256"`) and size; the package's own RECORD (`known`), which the
//! installer verified when the package entered its cache, looked up by the path the entry
//! came from (as pip and uv reuse it); else the file, read from the destination. Symlinks
//! get `path,,`; directories no line. The destination is read without following symlinks
//! (its contents are not trusted).
//!
//! On Windows the paths are written with `/` (the linker's record joins names with `\`
//! there; see [`path_args::slash_bytes`]), the destination is read through
//! [`Dir::open_dir_beneath`] and [`Dir::open_file`] (no reparse point followed), and an OS
//! error reaches Python as `OSError(errno, strerror, filename, winerror)`, which maps the
//! Windows error code to its errno and subclass.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
#[cfg(unix)]
use std::ffi::OsStr;
use std::io::{self, Write as _};
#[cfg(unix)]
use std::os::fd::AsFd as _;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use cowtree_fs::dir::Dir;
#[cfg(unix)]
use cowtree_fs::sys;
use cowtree_link::{EntryKind, HashAlgo, RecordEntry as Entry};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
#[cfg(unix)]
use rustix::fs::{FileType, OFlags};
#[cfg(unix)]
use rustix::io::Errno;
use sha2::Digest as _;

use crate::path_args;
use crate::record_class::Record;

/// The lines of a `RECORD` file for the files and symlinks of `entries` (a call's record,
/// or one source's part of it), in its order.
#[pyfunction]
#[pyo3(signature = (entries, relative_to = None, *, known = None, changed = None))]
pub fn record_lines<'py>(
    py: Python<'py>,
    entries: &Bound<'py, Record>,
    relative_to: Option<&Bound<'py, PyAny>>,
    known: Option<&Bound<'py, PyAny>>,
    changed: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyString>> {
    let record = entries.get();
    let base = match relative_to {
        Some(p) => base_of(&path_args::extract(p)?)?,
        None => Vec::new(),
    };
    let known = known.map(path_args::extract).transpose()?;
    let mut changed_paths = HashSet::new();
    if let Some(list) = changed {
        for p in list.try_iter()? {
            changed_paths.insert(path_args::extract(&p?)?);
        }
    }
    let lines = py.detach(|| {
        let text = match &known {
            Some(path) => std::fs::read(path).map_err(|e| Failure(e, path.clone()))?,
            None => Vec::new(),
        };
        let listed = parse_record(&text);
        let mut dest = Destination::new(record.destination());
        write_lines(record, &base, &listed, &changed_paths, &mut dest)
    });
    match lines {
        #[cfg(unix)]
        Ok(bytes) => Ok(path_args::to_str(py, Path::new(OsStr::from_bytes(&bytes)))),
        // The lines are the paths' WTF-8 and ASCII: UTF-8 unless a name holds an unpaired
        // surrogate, which no RECORD (UTF-8) can hold.
        #[cfg(windows)]
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(PyString::new(py, &text)),
            Err(_) => Err(PyValueError::new_err(
                "a path in the record is not valid Unicode (an unpaired surrogate): a RECORD \
                 file is UTF-8",
            )),
        },
        Err(Failure(e, path)) => {
            let message = e.to_string();
            // Python writes "[Errno N] strerror: 'filename'": without Rust's " (os error N)".
            let message = match message.rfind(" (os error ") {
                Some(at) if message.ends_with(')') => message[..at].to_string(),
                _ => message,
            };
            Err(match cowtree_fs::raw_errno(&e) {
                // OSError(errno, strerror, filename): Python picks the subclass by errno.
                #[cfg(unix)]
                Some(code) => {
                    PyOSError::new_err((code, message, path_args::to_str(py, &path).unbind()))
                }
                // OSError(errno, strerror, filename, winerror): errno and the subclass come
                // from the Windows error code.
                #[cfg(windows)]
                Some(code) => {
                    PyOSError::new_err((code, message, path_args::to_str(py, &path).unbind(), code))
                }
                None => PyOSError::new_err(format!("{}: {message}", path.display())),
            })
        }
    }
}

/// An I/O error and the path it is about.
struct Failure(io::Error, PathBuf);

/// `relative_to` as bytes without a trailing `/` (empty for the destination itself), or a
/// `ValueError` for a path that is absolute or climbs out with `..`.
fn base_of(p: &Path) -> PyResult<Vec<u8>> {
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(PyValueError::new_err(format!(
                    "relative_to {:?} must be a directory relative to the destination, without ..",
                    p
                )));
            }
        }
    }
    let normal: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    Ok(path_args::slash_bytes(&normal).into_owned())
}

/// What a package's own RECORD says of each path: the `sha256=` value (URL-safe base64, as
/// written there) and the size, if given. Lines without a SHA-256 are left out.
type Listed<'a> = HashMap<Cow<'a, [u8]>, Listing<'a>>;

/// A path's `sha256=` value and size in a RECORD.
type Listing<'a> = (&'a str, Option<u64>);

fn parse_record(text: &[u8]) -> Listed<'_> {
    let mut listed = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        if let Some((path, listing)) = parse_line(line) {
            listed.insert(path, listing);
        }
    }
    listed
}

/// One RECORD line: the path (unquoted), the `sha256=` value and the size. The hash and
/// the size never hold a comma or a quote, so they are split off from the right and what is
/// left is the path field, quoted CSV-style when it holds a comma or a quote.
fn parse_line(line: &[u8]) -> Option<(Cow<'_, [u8]>, Listing<'_>)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut fields = line.rsplitn(3, |&b| b == b',');
    let (size, hash, path) = (fields.next()?, fields.next()?, fields.next()?);
    let hash = std::str::from_utf8(hash.strip_prefix(b"sha256=")?).ok()?;
    if hash.is_empty() {
        return None;
    }
    let size = std::str::from_utf8(size).ok()?.trim();
    let size = if size.is_empty() {
        None
    } else {
        Some(size.parse().ok()?)
    };
    let path = match path.strip_prefix(b"\"").and_then(|p| p.strip_suffix(b"\"")) {
        Some(inner) if inner.windows(2).any(|w| w == b"\"\"") => {
            let mut out = Vec::with_capacity(inner.len());
            let mut rest = inner;
            while let Some(at) = rest.windows(2).position(|w| w == b"\"\"") {
                out.extend_from_slice(&rest[..=at]);
                rest = &rest[at + 2..];
            }
            out.extend_from_slice(rest);
            Cow::Owned(out)
        }
        Some(inner) => Cow::Borrowed(inner),
        None => Cow::Borrowed(path),
    };
    Some((path, (hash, size)))
}

/// The destination, opened when a file has to be read from it.
struct Destination<'a> {
    path: &'a Path,
    dir: Option<Dir>,
}

impl<'a> Destination<'a> {
    fn new(path: &'a Path) -> Destination<'a> {
        Destination { path, dir: None }
    }

    /// Opens the regular file at `rel` beneath the destination without following a symlink
    /// anywhere on the way (`ELOOP`) or leaving the destination, and gives it with its size.
    #[cfg(unix)]
    fn open(&mut self, rel: &Path) -> Result<(std::fs::File, u64), Failure> {
        let failed = |e: io::Error| Failure(e, self.path.join(rel));
        if self.dir.is_none() {
            self.dir = Some(Dir::open(self.path).map_err(|e| Failure(e, self.path.into()))?);
        }
        let root = self.dir.as_ref().expect("opened above").as_fd();
        // O_NONBLOCK: a FIFO put there since would not hold the call up; it is refused below.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match sys::open_beneath(root, rel, flags) {
            Err(Errno::NOSYS) => sys::walk_beneath(root, rel.as_os_str().as_bytes(), flags),
            r => r,
        }
        .map_err(|e| failed(e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| failed(e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(failed(io::Error::other("not a regular file")));
        }
        Ok((std::fs::File::from(fd), st.st_size as u64))
    }

    /// Opens the regular file at `rel` beneath the destination, one component at a time
    /// relative to the directory's handle, never following a reparse point (a symlink or a
    /// junction on the way, or at the end, is an error) or leaving the destination, and
    /// gives it with its size.
    #[cfg(windows)]
    fn open(&mut self, rel: &Path) -> Result<(std::fs::File, u64), Failure> {
        use std::os::windows::io::AsHandle as _;
        let failed = |e: io::Error| Failure(e, self.path.join(rel));
        if self.dir.is_none() {
            self.dir = Some(Dir::open(self.path).map_err(|e| Failure(e, self.path.into()))?);
        }
        let Some(root) = self.dir.as_ref() else {
            return Err(failed(io::Error::other("the destination is not open")));
        };
        let mut names = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(name) => names.push(name),
                _ => {
                    return Err(failed(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "not a path beneath the destination",
                    )));
                }
            }
        }
        let Some((name, parents)) = names.split_last() else {
            return Err(failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty path",
            )));
        };
        let below;
        let dir = if parents.is_empty() {
            root
        } else {
            let mut parent = std::ffi::OsString::new();
            for (i, p) in parents.iter().enumerate() {
                if i > 0 {
                    parent.push("/");
                }
                parent.push(p);
            }
            below = root.open_dir_beneath(Path::new(&parent)).map_err(failed)?;
            &below
        };
        let file = dir.open_file(name).map_err(failed)?;
        let st = cowtree_fs::sys::fstat(file.as_handle()).map_err(failed)?;
        if !st.file_type().is_file() {
            return Err(failed(io::Error::other("not a regular file")));
        }
        Ok((file, st.size))
    }

    /// The SHA-256 and size of the file at `rel`.
    fn hash(&mut self, rel: &Path) -> Result<([u8; 32], u64), Failure> {
        let (file, _) = self.open(rel)?;
        let data =
            cowtree_fs::read::read_whole(&file).map_err(|e| Failure(e, self.path.join(rel)))?;
        Ok((sha2::Sha256::digest(&data).into(), data.len() as u64))
    }

    fn size(&mut self, rel: &Path) -> Result<u64, Failure> {
        self.open(rel).map(|(_, size)| size)
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn write_lines(
    record: &Record,
    base: &[u8],
    listed: &Listed<'_>,
    changed: &HashSet<PathBuf>,
    dest: &mut Destination<'_>,
) -> Result<Vec<u8>, Failure> {
    let ups = if base.is_empty() {
        0
    } else {
        base.split(|&b| b == b'/').count()
    };
    let mut out = Vec::with_capacity(record.len() * 96);
    let mut digest = String::with_capacity(44);
    for e in record.iter() {
        if e.kind == EntryKind::Dir {
            continue;
        }
        push_path(&mut out, &path_args::slash_bytes(&e.path), base, ups);
        if e.kind != EntryKind::File {
            out.extend_from_slice(b",,\n");
            continue;
        }
        digest.clear();
        let size = file_facts(e, listed, changed, dest, &mut digest)?;
        out.extend_from_slice(b",sha256=");
        out.extend_from_slice(digest.as_bytes());
        let _ = writeln!(out, ",{size}");
    }
    Ok(out)
}

/// Puts the URL-safe base64 SHA-256 of the file `e` in `digest` and returns its size, from
/// the first source that has them (see the module doc).
fn file_facts(
    e: &Entry,
    listed: &Listed<'_>,
    changed: &HashSet<PathBuf>,
    dest: &mut Destination<'_>,
    digest: &mut String,
) -> Result<u64, Failure> {
    if !changed.is_empty() && changed.contains(&e.path) {
        let (sum, size) = dest.hash(&e.path)?;
        B64.encode_string(sum, digest);
        return Ok(size);
    }
    let from = e.from.as_deref().map(path_args::slash_bytes);
    let listed = from.and_then(|f| listed.get(&*f));
    match &e.hash {
        Some(d) if d.algo == HashAlgo::Sha256 => B64.encode_string(&d.bytes, digest),
        _ => match listed {
            Some((h, _)) => digest.push_str(h),
            None => {
                let (sum, size) = dest.hash(&e.path)?;
                B64.encode_string(sum, digest);
                return Ok(size);
            }
        },
    }
    match (e.size, listed.and_then(|(_, s)| *s)) {
        (Some(size), _) | (None, Some(size)) => Ok(size),
        (None, None) => dest.size(&e.path),
    }
}

/// Appends `path` (relative to the destination) relative to `base` (`ups` components): the
/// rest beneath it, or `../` per component of `base` before the path; CSV-quoted (as
/// Python's `csv` module quotes) when it holds a comma, a quote or a line break.
fn push_path(out: &mut Vec<u8>, path: &[u8], base: &[u8], ups: usize) {
    let beneath = path
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix(b"/"))
        .filter(|_| !base.is_empty());
    let (prefix, rest) = match beneath {
        Some(rest) => (0, rest),
        None => (ups, path),
    };
    let quote = rest
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if quote {
        out.push(b'"');
    }
    for _ in 0..prefix {
        out.extend_from_slice(b"../");
    }
    if quote {
        for &b in rest {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(rest);
    }
}
