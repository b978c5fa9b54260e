//! Relative paths as raw bytes.

pub use cowtree_store::manifest::show;

pub use cowtree_fs::name::{join, path_of, split};

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
