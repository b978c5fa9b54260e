//! Validation of names and relative paths before any syscall sees them.
//!
//! A component is one directory entry name: non-empty, not `.` or `..`, no `/`, no NUL, at
//! most 255 bytes (NAME_MAX). A relative path is components joined by single `/`: no leading or
//! trailing `/`, no empty components, at most 4096 bytes (PATH_MAX). Anything else is refused
//! with the reason, so that a path from a manifest or a tree can never climb out of the
//! directory it is applied to.
//!
//! Names Windows cannot hold (`CON`, `aux.txt`, a trailing dot, `:`, ...) are refused by
//! [`windows`], on top of these rules. It builds everywhere, like git's `core.protectNTFS`
//! checks, but only the Windows code paths apply it by default.

use std::fmt;

pub mod windows;

/// Longest allowed component, in bytes.
pub const NAME_MAX: usize = 255;
/// Longest allowed relative path, in bytes.
pub const PATH_MAX: usize = 4096;

/// Why a name or path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The path or a component of it is empty.
    Empty,
    /// A `.` component.
    Dot,
    /// A `..` component.
    DotDot,
    /// A NUL byte.
    Nul,
    /// A `/` inside a single component.
    Slash,
    /// The path starts with `/`.
    Absolute,
    /// A component longer than [`NAME_MAX`].
    ComponentTooLong(usize),
    /// A path longer than [`PATH_MAX`].
    PathTooLong(usize),
    /// A name Windows cannot hold (only from [`windows`]'s checks).
    Windows(windows::WindowsNameError),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty name or empty path component"),
            Self::Dot => write!(f, "'.' component"),
            Self::DotDot => write!(f, "'..' component"),
            Self::Nul => write!(f, "NUL byte in name"),
            Self::Slash => write!(f, "'/' inside a single name"),
            Self::Absolute => write!(f, "absolute path where a relative one is required"),
            Self::ComponentTooLong(n) => write!(f, "component of {n} bytes (limit {NAME_MAX})"),
            Self::PathTooLong(n) => write!(f, "path of {n} bytes (limit {PATH_MAX})"),
            Self::Windows(e) => write!(f, "a name Windows cannot hold: {e}"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks one directory entry name.
pub fn validate_component(name: &[u8]) -> Result<(), NameError> {
    match name {
        [] => Err(NameError::Empty),
        b"." => Err(NameError::Dot),
        b".." => Err(NameError::DotDot),
        _ if name.len() > NAME_MAX => Err(NameError::ComponentTooLong(name.len())),
        _ if name.contains(&0) => Err(NameError::Nul),
        _ if name.contains(&b'/') => Err(NameError::Slash),
        _ => Ok(()),
    }
}

/// Checks a relative path and returns its components.
pub fn validate_relative_path(path: &[u8]) -> Result<Vec<&[u8]>, NameError> {
    check_relative_path(path)?;
    Ok(path.split(|&b| b == b'/').collect())
}

/// [`validate_relative_path`] without collecting the components (no allocation), for checking
/// many paths.
pub fn check_relative_path(path: &[u8]) -> Result<(), NameError> {
    check_relative_path_from(path, 0)
}

/// [`check_relative_path`] for a path whose components before byte `from` are known valid
/// (they are those of a path checked before, and `from` is 0 or just after a `/`): the checks
/// of the whole path, then those of the components from `from` on. The first refusal is the
/// one [`check_relative_path`] gives. A `from` that is not at a component's start, or past the
/// end, checks the whole path.
pub fn check_relative_path_from(path: &[u8], from: usize) -> Result<(), NameError> {
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    if path.len() > PATH_MAX {
        return Err(NameError::PathTooLong(path.len()));
    }
    if path[0] == b'/' {
        return Err(NameError::Absolute);
    }
    let at_component = from == 0 || path.get(from - 1) == Some(&b'/');
    let part = if at_component { &path[from..] } else { path };
    if part.contains(&0) {
        return part.split(|&b| b == b'/').try_for_each(validate_component);
    }
    // Without a NUL byte only the shape of each component is left to check (the same
    // checks, in the same order, as validate_component's).
    part.split(|&b| b == b'/').try_for_each(|c| match c {
        [] => Err(NameError::Empty),
        b"." => Err(NameError::Dot),
        b".." => Err(NameError::DotDot),
        _ if c.len() > NAME_MAX => Err(NameError::ComponentTooLong(c.len())),
        _ => Ok(()),
    })
}

/// Joins a relative parent path and a name with `/` (no leading `/` for the root, whose
/// relative path is empty).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Splits a relative path into (parent, name); the parent of a top-level name is empty.
pub fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A path made of raw bytes.
#[cfg(unix)]
pub fn path_of(bytes: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(bytes))
}

/// `bytes` (as [`std::ffi::OsStr::as_encoded_bytes`] gives them, or read back from a file
/// that stored them) as an OS string: any bytes on unix. On Windows only UTF-8 is taken back:
/// the bytes of a name with an unpaired surrogate (which NTFS allows) are returned as the
/// error rather than guessed at, so the caller reports it.
#[cfg(unix)]
pub fn os_string_from_bytes(bytes: Vec<u8>) -> Result<std::ffi::OsString, Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    Ok(std::ffi::OsString::from_vec(bytes))
}

/// `bytes` as an OS string (see the unix one): UTF-8 only.
#[cfg(windows)]
pub fn os_string_from_bytes(bytes: Vec<u8>) -> Result<std::ffi::OsString, Vec<u8>> {
    String::from_utf8(bytes)
        .map(std::ffi::OsString::from)
        .map_err(std::string::FromUtf8Error::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_table() {
        let long = vec![b'a'; 256];
        let max = vec![b'a'; 255];
        let cases: &[(&[u8], Result<(), NameError>)] = &[
            (b"a", Ok(())),
            (b".hidden", Ok(())),
            (b"..x", Ok(())),
            (b"with space\n\\and\x01ctl", Ok(())),
            (b"\xff\xfe", Ok(())),
            (&max, Ok(())),
            (b"", Err(NameError::Empty)),
            (b".", Err(NameError::Dot)),
            (b"..", Err(NameError::DotDot)),
            (b"a\0b", Err(NameError::Nul)),
            (b"a/b", Err(NameError::Slash)),
            (&long, Err(NameError::ComponentTooLong(256))),
        ];
        for (name, want) in cases {
            assert_eq!(
                &validate_component(name),
                want,
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn path_table() {
        let too_long = vec![b'a'; 4097];
        let cases: &[(&[u8], Result<usize, NameError>)] = &[
            (b"a", Ok(1)),
            (b"a/b/c", Ok(3)),
            (b"", Err(NameError::Empty)),
            (b"/etc/passwd", Err(NameError::Absolute)),
            (b"a//b", Err(NameError::Empty)),
            (b"a/", Err(NameError::Empty)),
            (b"a/./b", Err(NameError::Dot)),
            (b"a/../../b", Err(NameError::DotDot)),
            (b"..", Err(NameError::DotDot)),
            (b"a/b\0/c", Err(NameError::Nul)),
            (b"a\0/./b", Err(NameError::Nul)),
            (b"./a\0", Err(NameError::Dot)),
            (&too_long, Err(NameError::PathTooLong(4097))),
        ];
        for (path, want) in cases {
            let got = validate_relative_path(path).map(|p| p.len());
            assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(path));
        }
        let long_component = [&b"a/"[..], &[b'x'; 256][..], b"/\0"].concat();
        assert_eq!(
            check_relative_path(&long_component),
            Err(NameError::ComponentTooLong(256))
        );
        let long_component = [&b"a/"[..], &[b'x'; 256][..]].concat();
        assert_eq!(
            check_relative_path(&long_component),
            Err(NameError::ComponentTooLong(256))
        );
    }

    #[test]
    fn join_and_split_are_inverse() {
        for (parent, name) in [(&b""[..], &b"a"[..]), (b"a/b", b"c"), (b"x", b"\xff")] {
            let joined = join(parent, name);
            assert_eq!(split(&joined), (parent, name));
        }
        assert_eq!(join(b"", b"top"), b"top");
    }
}
