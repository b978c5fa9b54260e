//! Filesystem images of a test's own, loop-mounted (as root): a btrfs with quotas, a
//! filesystem to lose power on, a btrfs whose subvolumes a test deletes. Unmounted and
//! detached when dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::tool;

/// The filesystem an image is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// XFS with reflink.
    Xfs,
    /// btrfs.
    Btrfs,
    /// ext4 (no reflink).
    Ext4,
}

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Makes the sparse image `img` of `size` bytes and a `kind` filesystem in it.
#[track_caller]
pub fn mkfs(kind: Kind, img: &Path, size: u64) {
    std::fs::File::create(img)
        .and_then(|f| f.set_len(size))
        .unwrap_or_else(|e| panic!("create image {}: {e}", img.display()));
    match kind {
        Kind::Xfs => tool(
            "mkfs.xfs",
            &[o("-q"), o("-m"), o("reflink=1"), img.as_os_str()],
        ),
        Kind::Btrfs => tool("mkfs.btrfs", &[o("-q"), img.as_os_str()]),
        Kind::Ext4 => tool("mkfs.ext4", &[o("-q"), o("-F"), img.as_os_str()]),
    };
}

/// An image attached to a loop device and mounted; unmounted (lazily) and detached when
/// dropped.
#[derive(Debug)]
pub struct LoopMount {
    kind: Kind,
    mnt: PathBuf,
    dev: Option<String>,
}

impl LoopMount {
    /// Attaches `img` (a `kind` filesystem) and mounts it at `mnt` (a directory) with the
    /// mount options `options` (none when empty). An XFS image is mounted `nouuid`: copies of
    /// one image share its UUID.
    #[track_caller]
    pub fn mount(kind: Kind, img: &Path, mnt: &Path, options: &str) -> LoopMount {
        let dev = tool("losetup", &[o("-f"), o("--show"), img.as_os_str()]);
        let mut opts: Vec<&str> = options.split(',').filter(|s| !s.is_empty()).collect();
        if kind == Kind::Xfs {
            opts.push("nouuid");
        }
        let joined = opts.join(",");
        let mut c = Command::new("mount");
        if !joined.is_empty() {
            c.args(["-o", &joined]);
        }
        let out = c.arg(&dev).arg(mnt).output().expect("run mount");
        if !out.status.success() {
            let _ = Command::new("losetup").args(["-d", &dev]).status();
            panic!(
                "mount {} ({kind:?}) at {}: {}",
                img.display(),
                mnt.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        LoopMount {
            kind,
            mnt: mnt.to_path_buf(),
            dev: Some(dev),
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// Unmounts it now (waiting up to ten seconds while it is busy: a process a killed
    /// command started may still be finishing in it) and detaches the device; a btrfs
    /// device is also forgotten by the kernel (copies of one image share its id).
    #[track_caller]
    pub fn unmount(mut self) {
        let Some(dev) = self.dev.take() else {
            return;
        };
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("umount")
                .arg(&self.mnt)
                .output()
                .expect("run umount");
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("busy") && Instant::now() < until,
                "umount {}: {err}",
                self.mnt.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.kind == Kind::Btrfs {
            let _ = Command::new("btrfs")
                .args(["device", "scan", "--forget", &dev])
                .stderr(Stdio::null())
                .status();
        }
        tool("losetup", &[o("-d"), o(&dev)]);
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if let Some(dev) = self.dev.take() {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            let _ = Command::new("losetup").args(["-d", &dev]).status();
        }
    }
}
