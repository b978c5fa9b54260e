//! Test helpers shared by cowtree's crates: where the real filesystems are.
//!
//! `scripts/test.sh` mounts real filesystems and exports their paths:
//!
//! | variable | filesystem |
//! |---|---|
//! | `COWTREE_TEST_XFS` | XFS with reflink |
//! | `COWTREE_TEST_XFS2` | a second, separate XFS with reflink (cross-device cases) |
//! | `COWTREE_TEST_BTRFS` | btrfs (mounted without `user_subvol_rm_allowed`) |
//! | `COWTREE_TEST_BTRFS_USER_RM` | a second btrfs, mounted with `user_subvol_rm_allowed` |
//! | `COWTREE_TEST_SMALL` | a small XFS with reflink, about 64 MiB (ENOSPC cases) |
//! | `COWTREE_TEST_TMPFS` | tmpfs (no reflink, no FIEMAP) |
//! | `COWTREE_TEST_NOCOW` | a directory on the host filesystem (ext4 here: no reflink) |
//!
//! A test asks for one with [`scratch`]. When the variable is missing the test prints one line
//! saying it was skipped and why, and returns; with `COWTREE_TEST_REQUIRE_FS=1` (CI) a missing
//! filesystem fails the test instead.
//!
//! Tests that must also run without privilege make a throwaway user with
//! [`user::TestUser`] and run commands under it (see [`user`]). Images of a test's own
//! (quotas, power loss) are [`loop_mount::LoopMount`]s; `git`, system tools and `strace` run
//! through [`run`].

use std::path::{Path, PathBuf};

pub use run::{git, strace, tool};

#[cfg(target_os = "linux")]
pub mod loop_mount;
pub mod run;
pub mod seed;
#[cfg(target_os = "linux")]
pub mod tree;
#[cfg(target_os = "linux")]
pub mod user;

/// A filesystem the harness can provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    /// XFS with reflink.
    Xfs,
    /// A second, separate XFS with reflink.
    Xfs2,
    /// btrfs, mounted without `user_subvol_rm_allowed`.
    Btrfs,
    /// A second btrfs, mounted with `user_subvol_rm_allowed` (unprivileged users may delete
    /// subvolumes with the ioctl).
    BtrfsUserRm,
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
            Fs::BtrfsUserRm => "COWTREE_TEST_BTRFS_USER_RM",
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
            skip(&why);
            None
        }
    }
}

/// Prints the skip line for `why` (and logs it for scripts/test.sh), or panics when
/// `COWTREE_TEST_REQUIRE_FS=1` (CI), where every check must run.
pub fn skip(why: &str) {
    if std::env::var_os("COWTREE_TEST_REQUIRE_FS").is_some_and(|v| v == "1") {
        panic!("{}: required test setup missing: {why}", test_name());
    }
    note(&format!("skipped: {}: {why}", test_name()));
}

/// Prints `line` and appends it to `COWTREE_TEST_SKIP_LOG`: the test harness captures the
/// stdout of passing tests, and scripts/test.sh prints that log at the end, so what did not
/// run (or ran less) is visible. [`skip`], [`full_tier`] and [`rounds`] write theirs here;
/// a test that leaves out something else says so with it.
pub fn note(line: &str) {
    println!("{line}");
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
}

/// True when the heavy tier runs (`COWTREE_TEST_FULL=1`, which .ci/run sets): tests heavy by
/// nature (the 200,000-file memory bounds, every power-loss round) that the README's
/// `scripts/test.sh` leaves to CI. Otherwise prints (and logs for scripts/test.sh) a line
/// saying what did not run: `what`.
pub fn full_tier(what: &str) -> bool {
    if in_full_tier() {
        return true;
    }
    note(&format!(
        "heavy tier, not run: {}: {what} (COWTREE_TEST_FULL=1 runs it; .ci/run does)",
        test_name()
    ));
    false
}

/// Whether this is the full tier (`COWTREE_TEST_FULL=1`, which .ci/run sets).
pub fn in_full_tier() -> bool {
    std::env::var_os("COWTREE_TEST_FULL").is_some_and(|v| v == "1")
}

/// How many rounds a randomized test runs, each making the same checks at another random
/// point, seed or interleaving: `all` in the full tier (`COWTREE_TEST_FULL=1`, which .ci/run
/// sets), `readme` in the README's `scripts/test.sh`, which then prints and logs a line
/// saying how many of `all` ran. `COWTREE_TEST_ROUNDS=N` runs N, to chase a failure. A test
/// that asserts a minimum of outcomes over its rounds takes [`rounds_until`] instead.
pub fn rounds(all: u64, readme: u64) -> u64 {
    rounds_logged(all, readme, "")
}

fn rounds_logged(all: u64, readme: u64, more: &str) -> u64 {
    if let Some(n) = std::env::var("COWTREE_TEST_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    fewer_logged("rounds", all, readme, more)
}

/// The rounds of a randomized test that asserts a minimum of outcomes over them (runs killed
/// midway, interrupted): at least [`rounds`]`(all, readme)`, then more, up to `all`, until the
/// minimum is met; so the README's run never fails the assertion for want of rounds the full
/// tier would have made.
pub fn rounds_until(all: u64, readme: u64) -> RoundsUntil {
    let least = rounds_logged(all, readme, " or more, until its minimum is met,");
    RoundsUntil {
        least,
        most: all.max(least),
    }
}

/// See [`rounds_until`]: `for round in 0.. { if r.done(round, met) { break } ... }`.
#[derive(Debug, Clone, Copy)]
pub struct RoundsUntil {
    least: u64,
    most: u64,
}

impl RoundsUntil {
    /// Whether round `round` (counted from 0) is not to run: past the last, or past the least
    /// once `met` (the test's minimum) holds.
    pub fn done(&self, round: impl Into<u64>, met: bool) -> bool {
        let round = round.into();
        round >= self.most || (round >= self.least && met)
    }

    /// The rounds that run at least.
    pub fn least(&self) -> u64 {
        self.least
    }
}

/// `all` in the full tier, `readme` (when smaller) in the README's run, which then prints and
/// logs "fewer WHAT: TEST: readme of all": for a test whose property holds at any size, the
/// full size is left to CI.
pub fn fewer(what: &str, all: u64, readme: u64) -> u64 {
    fewer_logged(what, all, readme, "")
}

fn fewer_logged(what: &str, all: u64, readme: u64, more: &str) -> u64 {
    if in_full_tier() || readme >= all {
        return all;
    }
    note(&format!(
        "fewer {what}: {}: {readme}{more} of {all} (COWTREE_TEST_FULL=1 runs them all; .ci/run does)",
        test_name()
    ));
    readme
}

/// Held by a test while it fills the small XFS ([`Fs::Small`], made to run out of space) or
/// needs free space on it: one such test at a time on that mount. The tests of a binary run
/// in parallel, and scripts/test.sh runs two binaries at a time (scripts/test_lanes.py), so
/// this is a file lock (`flock` on `small.lock` beside the mount point, one open file each, so
/// threads of one process exclude each other too), not a mutex. Nothing is locked when the
/// small XFS is not mounted (the test skips). Take it before the scratch directory, for the
/// whole test: `let _small = small_alone();`.
#[cfg(unix)]
pub fn small_alone() -> SmallAlone {
    let Some(small) = std::env::var_os("COWTREE_TEST_SMALL").filter(|v| !v.is_empty()) else {
        return SmallAlone { _file: None };
    };
    let path = Path::new(&small).with_file_name("small.lock");
    // Read-only when another user made it: flock needs no write access.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .or_else(|_| std::fs::File::open(&path))
        .unwrap_or_else(|e| panic!("cannot open the lock {}: {e}", path.display()));
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    SmallAlone { _file: Some(file) }
}

/// [`small_alone`]'s lock, released when dropped (the file is closed; a test that panicked
/// leaves nothing to repair).
#[cfg(unix)]
pub struct SmallAlone {
    _file: Option<std::fs::File>,
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

/// A small deterministic generator (xorshift64) for randomized tests and patterns; the same
/// seed gives the same numbers (a seed of 0, which would stay 0, is taken as 1).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    /// Seeded from the binary's base seed (`COWTREE_TEST_SEED`, else the clock) and `what`
    /// (see [`seed`]); the seed is printed (`what: seed N`), and a panic of the test that
    /// took it prints the command that replays it.
    #[track_caller]
    pub fn from_clock(what: &str) -> XorShift {
        let seed = seed::for_name(what);
        seed::note_taken(std::panic::Location::caller());
        println!("{what}: seed {seed} ({}={})", seed::VAR, seed::base());
        XorShift::new(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A number no other call in any process is likely to get (the clock, the pid and a
/// counter): for names that must not collide, such as a test's key prefix on a shared S3
/// server. Not a seed: a replay need not reproduce it.
pub fn unique_u64() -> u64 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut x = XorShift::new(
        nanos ^ (u64::from(std::process::id()) << 40) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    x.next_u64()
}

/// Writes `len` bytes of a deterministic, non-repeating pattern seeded by `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = XorShift::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..len).map(|_| x.next_u64() as u8).collect()
}

/// Asserts that `diff -r --no-dereference` finds no difference between two trees (contents,
/// names, kinds, symlink targets; not modes or times).
#[track_caller]
pub fn assert_diff_clean(a: &Path, b: &Path) {
    let out = std::process::Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap_or_else(|e| panic!("run diff: {e}"));
    assert!(
        out.status.success(),
        "{} and {} differ: {}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// What one entry of a tree looked like, for before/after comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds.
    pub mtime_ns: i128,
    /// File contents (regular files) or link target (symlinks); empty otherwise.
    pub data: Vec<u8>,
}

/// A recording of every entry under a root (symlinks not followed), keyed by relative path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeState {
    /// Entries by path relative to the root.
    pub entries: std::collections::BTreeMap<PathBuf, EntryState>,
}

impl TreeState {
    /// Records everything under `root`, skipping any path for which `skip` returns true (and
    /// everything beneath it). Special files are recorded without data.
    #[cfg(unix)]
    pub fn capture(root: &Path, skip: &dyn Fn(&Path) -> bool) -> TreeState {
        use std::os::unix::fs::MetadataExt;
        let mut state = TreeState::default();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) => panic!("read {}: {e}", dir.display()),
            };
            for entry in rd {
                let entry = entry.expect("read dir entry");
                let path = entry.path();
                if skip(&path) {
                    continue;
                }
                let meta = std::fs::symlink_metadata(&path).expect("lstat");
                let ft = meta.file_type();
                let data = if ft.is_file() {
                    std::fs::read(&path).unwrap_or_default()
                } else if ft.is_symlink() {
                    use std::os::unix::ffi::OsStrExt;
                    std::fs::read_link(&path)
                        .map(|t| t.as_os_str().as_bytes().to_vec())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                if ft.is_dir() {
                    stack.push(path.clone());
                }
                let rel = path.strip_prefix(root).expect("beneath root").to_path_buf();
                state.entries.insert(
                    rel,
                    EntryState {
                        mode: meta.mode(),
                        ino: meta.ino(),
                        size: if ft.is_dir() { 0 } else { meta.size() },
                        mtime_ns: if ft.is_dir() {
                            0
                        } else {
                            meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
                        },
                        data,
                    },
                );
            }
        }
        state
    }

    /// Panics with a list of differences if `self` and `other` differ.
    pub fn assert_same(&self, other: &TreeState, what: &str) {
        let mut diffs = Vec::new();
        for (path, a) in &self.entries {
            match other.entries.get(path) {
                None => diffs.push(format!("removed: {}", path.display())),
                Some(b) if a != b => diffs.push(format!("changed: {}", path.display())),
                Some(_) => {}
            }
        }
        for path in other.entries.keys() {
            if !self.entries.contains_key(path) {
                diffs.push(format!("created: {}", path.display()));
            }
        }
        assert!(diffs.is_empty(), "{what}: {}", diffs.join("; "));
    }
}

/// Points `cmd` (a cowtree process a test starts) at a home of its own under `root`: `HOME`,
/// `XDG_DATA_HOME`, `XDG_STATE_HOME`, `XDG_CONFIG_HOME` and `XDG_CACHE_HOME` (`root/home`,
/// `root/data`, ...), and no `COWTREE_STORE`. What cowtree keeps per user (the list of known
/// stores, the default store, remotes) then never reaches the real `~/.local` or `~/.config`
/// of whoever runs the tests. Directories are made by cowtree as it needs them.
pub fn isolate_home<'c>(
    cmd: &'c mut std::process::Command,
    root: &Path,
) -> &'c mut std::process::Command {
    cmd.env_remove("COWTREE_STORE")
        .env("HOME", root.join("home"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_CACHE_HOME", root.join("cache"))
}

/// `git` run in `dir` as a test's reference tool: no system or global configuration (so no
/// hooks, fsmonitor or pager of the machine's), a fixed author and committer, and none of the
/// caller's `GIT_DIR`, `GIT_WORK_TREE` or `GIT_INDEX_FILE`.
pub fn git_cmd(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new("git");
    git_env(c.current_dir(dir));
    c
}

/// The global git configuration the tests give git (`GIT_CONFIG_GLOBAL`): none (`/dev/null`),
/// or with `COWTREE_TEST_GIT_PROFILE=git3` Git 3.0's defaults: SHA-256 objects, reftable refs,
/// `main` as the first branch, and bare repositories used only when named explicitly
/// (`safe.bareRepository = explicit`). `.ci/run` runs the git tests both ways.
pub fn git_global_config() -> std::ffi::OsString {
    static PATH: std::sync::OnceLock<std::ffi::OsString> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        if std::env::var("COWTREE_TEST_GIT_PROFILE").as_deref() != Ok("git3") {
            return "/dev/null".into();
        }
        let path = std::env::temp_dir().join(format!(
            "cowtree-git3-profile-{}.gitconfig",
            std::process::id()
        ));
        std::fs::write(
            &path,
            "[init]\n\tdefaultObjectFormat = sha256\n\tdefaultRefFormat = reftable\n\
             \tdefaultBranch = main\n[safe]\n\tbareRepository = explicit\n",
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.into_os_string()
    })
    .clone()
}

/// The environment [`git_cmd`] gives git, given to `c` (git, or cowtree where it reads git's
/// configuration and writes commits): no system configuration, the global one of
/// [`git_global_config`], a fixed author and committer, none of the caller's `GIT_DIR`,
/// `GIT_WORK_TREE` or `GIT_INDEX_FILE`.
pub fn git_env(c: &mut std::process::Command) -> &mut std::process::Command {
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", git_global_config())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
}

/// Sets a default POSIX ACL (user rwx, group r-x, other none) in the kernel's xattr format on
/// `dir`: new entries below it get their bits from it instead of the umask, so a file asked for
/// 0644 is made 0640 and needs its bits set afterwards. Errors where the filesystem keeps no
/// ACLs.
#[cfg(unix)]
pub fn set_default_acl(dir: &Path) -> std::io::Result<()> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 7u16), (0x04, 5), (0x20, 0)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    rustix::fs::setxattr(
        dir,
        "system.posix_acl_default",
        &v,
        rustix::fs::XattrFlags::empty(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_state_sees_creation_change_and_removal() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), b"1").unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        let before = TreeState::capture(t.path(), &|_| false);
        assert_eq!(before.entries.len(), 2);
        before.assert_same(&TreeState::capture(t.path(), &|_| false), "unchanged");
        std::fs::write(t.path().join("d/new"), b"x").unwrap();
        let after = TreeState::capture(t.path(), &|_| false);
        let r = std::panic::catch_unwind(|| before.assert_same(&after, "created"));
        assert!(r.is_err(), "a created file must be noticed");
        std::fs::write(t.path().join("a"), b"2").unwrap();
        let changed = TreeState::capture(t.path(), &|p| p.ends_with("d"));
        assert_ne!(
            changed.entries[Path::new("a")].data,
            before.entries[Path::new("a")].data
        );
        assert!(!changed.entries.contains_key(Path::new("d/new")));
    }
}
