//! Naming the filesystem a file lives on, from `statfs`'s magic number.

use std::io;
use std::os::fd::AsFd;

/// The filesystem type of an open file or directory: its magic number and, when known, name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsType {
    /// `statfs.f_type` on Linux; on macOS the type's name (`f_fstypename`) as a big-endian
    /// number of its first eight bytes.
    pub magic: u64,
}

impl FsType {
    /// A short name such as "xfs", "btrfs", "ext4" or "tmpfs"; "unknown" when the magic is not
    /// in cowtree's table.
    pub fn name(self) -> &'static str {
        match self.magic {
            0x5846_5342 => "xfs",
            0x9123_683e => "btrfs",
            0xef53 => "ext4", // also ext2/ext3: same magic
            0x0102_1994 => "tmpfs",
            0x2fc1_2fc1 => "zfs",
            0xca45_1a4e => "bcachefs",
            0x7461_636f => "ocfs2",
            0xf2f5_2010 => "f2fs",
            0x794c_7630 => "overlayfs",
            0x6969 => "nfs",
            0xff53_4d42 => "cifs",
            0x6573_5546 => "fuse",
            0x5346_544e => "ntfs",
            0x4d44 => "vfat",
            0x2011_bab0 => "exfat",
            0x5846_5358 => "xfs",
            0x0000_9fa0 => "proc",
            0x6265_6572 => "sysfs",
            0x0000_1373 => "devfs",
            // macOS has no magic numbers: there the number is the type's name
            // (`f_fstypename`), see `FsType::from_type_name`.
            0x6170_6673_0000_0000 => "apfs",
            0x6866_7300_0000_0000 => "hfs",
            _ => "unknown",
        }
    }

    /// Whether this filesystem type can share data between files at all (it may still be
    /// disabled on a given mount, e.g. XFS made without `reflink=1`; only a probe tells).
    pub fn may_reflink(self) -> bool {
        matches!(
            self.name(),
            "xfs" | "btrfs" | "bcachefs" | "ocfs2" | "zfs" | "apfs"
        )
    }
}

impl FsType {
    /// The type for a filesystem known by its name rather than a magic number (macOS's
    /// `statfs.f_fstypename`): the first eight bytes of the name, big-endian, which is what
    /// [`FsType::name`] maps back for the names it knows ("apfs", "hfs").
    pub fn from_type_name(name: &[u8]) -> FsType {
        let mut eight = [0u8; 8];
        for (d, s) in eight.iter_mut().zip(name.iter().take_while(|&&b| b != 0)) {
            *d = *s;
        }
        FsType {
            magic: u64::from_be_bytes(eight),
        }
    }
}

/// The filesystem type of `fd`'s filesystem.
pub fn fs_type(fd: impl AsFd) -> io::Result<FsType> {
    Ok(FsType {
        magic: crate::sys::fs_magic(fd.as_fd())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_magics_have_names() {
        assert_eq!(FsType { magic: 0x58465342 }.name(), "xfs");
        assert_eq!(FsType { magic: 0x9123683e }.name(), "btrfs");
        assert_eq!(FsType { magic: 0xef53 }.name(), "ext4");
        assert_eq!(FsType { magic: 0x01021994 }.name(), "tmpfs");
        assert_eq!(FsType { magic: 1 }.name(), "unknown");
        assert!(FsType { magic: 0x58465342 }.may_reflink());
        assert!(!FsType { magic: 0xef53 }.may_reflink());
    }

    #[test]
    fn type_names_map_to_their_names_and_apfs_may_reflink() {
        let apfs = FsType::from_type_name(b"apfs\0\0\0garbage-after-nul");
        assert_eq!(apfs.name(), "apfs");
        assert!(apfs.may_reflink());
        assert_eq!(FsType::from_type_name(b"hfs").name(), "hfs");
        assert!(!FsType::from_type_name(b"hfs").may_reflink());
        assert_eq!(FsType::from_type_name(b"msdos").name(), "unknown");
        assert_eq!(FsType::from_type_name(b"").name(), "unknown");
    }
}
