//! What the hardening tests plant in a destination or a worktree: FIFOs, and a thread that
//! swaps directories for symlinks to outside while a command runs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A FIFO at `path` (mode 0644).
pub(crate) fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

/// Swaps each of `targets` (paths of directories) with a symlink to `to` and back, in a loop,
/// until `stop` is set or `limit` has passed. Every step may fail (cowtree moves things too);
/// failures are ignored.
pub(crate) fn swapper(
    targets: Vec<PathBuf>,
    to: PathBuf,
    pause: Duration,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let until = Instant::now() + limit;
        let mut swaps = 0u64;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            for t in &targets {
                let aside = t.with_extension("swapped-aside");
                let is_dir = fs::symlink_metadata(t).is_ok_and(|m| m.is_dir());
                if is_dir && fs::rename(t, &aside).is_ok() && symlink(&to, t).is_ok() {
                    swaps += 1;
                }
                std::thread::yield_now();
                if fs::symlink_metadata(t).is_ok_and(|m| m.file_type().is_symlink()) {
                    let _ = fs::remove_file(t);
                }
                if fs::symlink_metadata(&aside).is_ok() {
                    let _ = fs::rename(&aside, t);
                }
            }
            std::thread::sleep(pause);
        }
        swaps
    })
}
