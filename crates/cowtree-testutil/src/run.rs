//! Running the reference tools a test checks cowtree against: `git`, system tools (mkfs,
//! losetup, mount, btrfs, xfs_io), and `strace` to count system calls.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// `git ARGS` in `dir` (the environment of [`crate::git_cmd`]), which must succeed; its stdout.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = crate::git_cmd(dir).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the system tool `prog`, panicking with its output when it fails; its stdout, trimmed.
#[track_caller]
pub fn tool(prog: &str, args: &[&OsStr]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `strace -f -qq -e trace=TRACE -o LOG`, for the caller to add the program and its
/// arguments to; panics when strace is missing (scripts/mounts.sh installs it).
#[track_caller]
pub fn strace(trace: &str, log: &Path) -> Command {
    let present = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(present, "strace is needed (scripts/mounts.sh installs it)");
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-e", &format!("trace={trace}"), "-o"])
        .arg(log);
    c
}
