//! Where the tree goes: DST checked (absent, or an empty directory) and split into its open
//! parent and its name ([`Dest`]), before any work; checked again before the rename.

use std::ffi::{OsStr, OsString};
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;

use crate::error::{Error, Result};

/// Where the tree goes: DST split into its open parent and its name.
pub(super) struct Dest {
    pub(super) parent_path: PathBuf,
    pub(super) parent: Dir,
    pub(super) name: OsString,
    /// DST's absolute path (its parent canonical).
    pub(super) abs: PathBuf,
    /// DST is an empty directory, which the tree replaces.
    pub(super) replace_empty: bool,
}

impl Dest {
    /// Opens DST's parent and checks DST: absent, or an empty directory.
    pub(super) fn resolve(dst: &Path) -> Result<Dest> {
        let (parent_path, name) = split_dst(dst)?;
        // The error names the directory ("open directory PARENT: ...").
        let parent = Dir::open(&parent_path).map_err(|e| Error::Context {
            context: "checkout destination",
            source: Box::new(Error::Io(e)),
        })?;
        let abs = std::fs::canonicalize(&parent_path)
            .map_err(|e| Error::io_at("", &parent_path, e))?
            .join(&name);
        let replace_empty = match parent
            .try_stat(&name)
            .map_err(|e| Error::io_at("", dst, e))?
        {
            None => false,
            Some(st) if cowtree_fs::sys::stat_file_type(&st).is_dir() => {
                let d = parent
                    .open_dir(&name)
                    .map_err(|e| Error::io_at("", dst, e))?;
                let entries = d.entries().map_err(|e| Error::io_at("", dst, e))?;
                if !entries.is_empty() {
                    return Err(taken(dst, "exists and is not empty"));
                }
                true
            }
            Some(_) => return Err(taken(dst, "exists and is not a directory")),
        };
        Ok(Dest {
            parent_path,
            parent,
            name,
            abs,
            replace_empty,
        })
    }
}

/// DST is still what the checkout may take: absent, or (`replace_empty`) an empty directory.
pub(super) fn dst_still_free(parent: &Dir, name: &OsStr, replace_empty: bool) -> Result<bool> {
    match parent
        .try_stat(name)
        .map_err(|e| Error::io_at("", name, e))?
    {
        None => Ok(true),
        Some(_) if !replace_empty => Ok(false),
        Some(_) => Ok(parent
            .open_dir(name)
            .and_then(|d| d.entries())
            .is_ok_and(|e| e.is_empty())),
    }
}

/// Splits DST into its parent directory and final name, refusing `/`, `.`, `..` and the like.
#[cfg(unix)]
fn split_dst(dst: &Path) -> Result<(PathBuf, OsString)> {
    let mut bytes = dst.as_os_str().as_bytes();
    while bytes.len() > 1 && bytes.ends_with(b"/") {
        bytes = &bytes[..bytes.len() - 1];
    }
    let (parent, name) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &bytes[1..]),
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&b"."[..], bytes),
    };
    if matches!(name, b"" | b"." | b"..") || name.contains(&b'/') {
        return Err(Error::BadDestination {
            path: dst.to_path_buf(),
        });
    }
    Ok((
        PathBuf::from(OsStr::from_bytes(parent)),
        OsStr::from_bytes(name).to_owned(),
    ))
}

/// Splits DST into its parent directory and final name on Windows, where `\\` and `/` both
/// separate components and a path may start with a drive or a UNC prefix (`C:\wt`,
/// `\\server\share\wt`): the name is what follows the last separator (or the drive's
/// colon), the parent what [`Path::parent`] gives, `.` when that is empty. A root, `.`, `..`,
/// and a name with a colon left in it (a stream or a drive) are refused.
#[cfg(windows)]
fn split_dst(dst: &Path) -> Result<(PathBuf, OsString)> {
    let bad = || Error::BadDestination {
        path: dst.to_path_buf(),
    };
    let text = dst.to_str().ok_or_else(bad)?;
    let sep = |c: char| c == '/' || c == '\\';
    let trimmed = text.trim_end_matches(sep);
    let name = trimmed.rsplit(sep).next().unwrap_or("");
    let name = match name.rsplit_once(':') {
        // `C:wt`: the name after the drive; a colon anywhere else is refused below.
        Some((drive, rest)) if drive.len() == 1 && name.len() == trimmed.len() => rest,
        _ => name,
    };
    if matches!(name, "" | "." | "..") || name.contains(':') {
        return Err(bad());
    }
    let parent = Path::new(&trimmed[..trimmed.len() - name.len()]);
    let parent = match parent.as_os_str().is_empty() {
        true => PathBuf::from("."),
        false => parent.to_path_buf(),
    };
    Ok((parent, OsString::from(name)))
}

/// The refusal of DST, which is not (or no longer) free: `how` says what is there.
pub(super) fn taken(dst: &Path, how: &'static str) -> Error {
    Error::AlreadyExists {
        what: "checkout destination",
        path: dst.to_path_buf(),
        how,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn split_dst_table() {
        let ok = [
            ("wt", ".", "wt"),
            ("a/wt", "a", "wt"),
            ("a/wt/", "a", "wt"),
            ("/wt", "/", "wt"),
            ("rel.", ".", "rel."),
            ("a/..x", "a", "..x"),
        ];
        for (input, parent, name) in ok {
            let (p, n) = split_dst(Path::new(input)).unwrap();
            assert_eq!(
                (p.to_str().unwrap(), n.to_str().unwrap()),
                (parent, name),
                "{input}"
            );
        }
        for bad in [".", "..", "a/.", "a/..", "/", ""] {
            assert!(split_dst(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[cfg(windows)]
    #[test]
    fn split_dst_table_on_windows() {
        let ok = [
            ("wt", ".", "wt"),
            ("a\\wt", "a\\", "wt"),
            ("a/wt/", "a/", "wt"),
            ("a\\b\\wt\\", "a\\b\\", "wt"),
            ("C:\\wt", "C:\\", "wt"),
            ("C:wt", "C:", "wt"),
            ("\\\\server\\share\\wt", "\\\\server\\share\\", "wt"),
            ("rel.x", ".", "rel.x"),
        ];
        for (input, parent, name) in ok {
            let (p, n) = split_dst(Path::new(input)).expect("a destination that splits");
            assert_eq!(
                (p.to_str().expect("unicode"), n.to_str().expect("unicode")),
                (parent, name),
                "{input}"
            );
        }
        for bad in [
            ".", "..", "a\\.", "a/..", "\\", "/", "", "C:\\", "C:", "a\\b:c",
        ] {
            assert!(split_dst(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
