//! Relative paths as raw bytes.

pub use cowtree_store::manifest::show;

#[cfg(unix)]
pub use cowtree_fs::name::path_of;
pub use cowtree_fs::name::{join, split};

/// A relative path made of raw bytes, for messages: on Windows shown with `\\` between its
/// components, and with U+FFFD for bytes that are not UTF-8 (names are opened through
/// [`crate::os::name`], which refuses those).
#[cfg(windows)]
pub fn path_of(bytes: &[u8]) -> std::path::PathBuf {
    String::from_utf8_lossy(bytes).replace('/', "\\").into()
}

/// True when an error opening a directory means that it is not there any more (removed, or
/// replaced by something that is not a directory) rather than that it could not be read.
pub fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound
            | std::io::ErrorKind::NotADirectory
            | std::io::ErrorKind::InvalidInput
    )
}

/// True when `path` is `prefix` or lies beneath it (component-wise).
pub fn within(path: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'))
}

/// The proper ancestors of `path`, shortest first (`a`, `a/b` for `a/b/c`).
pub fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_is_component_wise_and_ancestors_are_shortest_first() {
        assert!(within(b"a/b", b"a"));
        assert!(within(b"a", b"a"));
        assert!(!within(b"ab", b"a"));
        assert!(within(b"x", b""));
        let a: Vec<&[u8]> = ancestors(b"a/b/c").collect();
        assert_eq!(a, vec![&b"a"[..], &b"a/b"[..]]);
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(join(b"", b"x"), b"x".to_vec());
    }
}
