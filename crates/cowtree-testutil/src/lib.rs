//! Test helpers shared by cowtree's crates: where the real filesystems are.
//!
//! `scripts/test.sh` mounts real filesystems and exports their paths:
//!
//! | variable | filesystem |
//! |---|---|
//! | `COWTREE_TEST_XFS` | XFS with reflink |
//! | `COWTREE_TEST_XFS2` | a second, separate XFS with reflink (cross-device cases) |
//! | `COWTREE_TEST_BTRFS` | btrfs |
//! | `COWTREE_TEST_SMALL` | a small XFS with reflink, about 64 MiB (ENOSPC cases) |
//! | `COWTREE_TEST_TMPFS` | tmpfs (no reflink, no FIEMAP) |
//! | `COWTREE_TEST_NOCOW` | a directory on the host filesystem (ext4 here: no reflink) |
//!
//! A test asks for one with [`scratch`]. When the variable is missing the test prints one line
//! saying it was skipped and why, and returns; with `COWTREE_TEST_REQUIRE_FS=1` (CI) a missing
//! filesystem fails the test instead.

use std::path::{Path, PathBuf};

#[cfg(target_os = "linux")]
pub mod tree;

/// A filesystem the harness can provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    /// XFS with reflink.
    Xfs,
    /// A second, separate XFS with reflink.
    Xfs2,
    /// btrfs.
    Btrfs,
    /// A small XFS (about 64 MiB) with reflink.
    Small,
    /// tmpfs.
    Tmpfs,
    /// The host filesystem (no reflink).
    NoCow,
}

impl Fs {
    /// The environment variable naming this filesystem's mount.
    pub fn var(self) -> &'static str {
        match self {
            Fs::Xfs => "COWTREE_TEST_XFS",
            Fs::Xfs2 => "COWTREE_TEST_XFS2",
            Fs::Btrfs => "COWTREE_TEST_BTRFS",
            Fs::Small => "COWTREE_TEST_SMALL",
            Fs::Tmpfs => "COWTREE_TEST_TMPFS",
            Fs::NoCow => "COWTREE_TEST_NOCOW",
        }
    }

    /// Every filesystem that can reflink.
    pub const COW: [Fs; 2] = [Fs::Xfs, Fs::Btrfs];
    /// Every filesystem that cannot reflink.
    pub const NO_COW: [Fs; 2] = [Fs::NoCow, Fs::Tmpfs];
}

fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string()
}

/// The mount root for `fs`, or `None` after printing a skip line (or panicking when
/// `COWTREE_TEST_REQUIRE_FS=1`).
pub fn mount(fs: Fs) -> Option<PathBuf> {
    match std::env::var_os(fs.var()) {
        Some(p) if Path::new(&p).is_dir() => Some(PathBuf::from(p)),
        other => {
            let why = match other {
                Some(p) => format!(
                    "{}={} is not a directory",
                    fs.var(),
                    Path::new(&p).display()
                ),
                None => format!(
                    "{} is not set (run scripts/test.sh as root to mount it)",
                    fs.var()
                ),
            };
            if std::env::var_os("COWTREE_TEST_REQUIRE_FS").is_some_and(|v| v == "1") {
                panic!("{}: required filesystem missing: {why}", test_name());
            }
            let line = format!("skipped: {}: {why}", test_name());
            println!("{line}");
            // The test harness captures stdout of passing tests; scripts/test.sh prints this
            // log at the end so the skips are visible.
            if let Some(log) = std::env::var_os("COWTREE_TEST_SKIP_LOG") {
                use std::io::Write;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                {
                    let _ = writeln!(f, "{line}");
                }
            }
            None
        }
    }
}

/// A fresh temporary directory on `fs`, removed when dropped; `None` (after a skip line) when
/// `fs` is not available.
pub fn scratch(fs: Fs) -> Option<tempfile::TempDir> {
    let root = mount(fs)?;
    Some(
        tempfile::Builder::new()
            .prefix("cowtree-test-")
            .tempdir_in(&root)
            .unwrap_or_else(|e| panic!("cannot make a temp dir in {}: {e}", root.display())),
    )
}

/// Writes `len` bytes of a deterministic, non-repeating pattern seeded by `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
