//! Knowing new entries' permission bits in advance (`creation::CreationMask`) on real
//! filesystems, and the transfer that trusts it. Run through scripts/test.sh, which mounts them.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cowtree_fs::creation::{CreationMask, process_umask};
use cowtree_fs::dir::Dir;
use cowtree_fs::{CopyRange, Method, Transfer, TransferOptions, transfer_at_masked};
use cowtree_testutil::{Fs, pattern, scratch, set_default_acl};

#[test]
fn the_mask_is_known_on_local_filesystems_and_not_under_a_default_acl_or_an_unknown_umask() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow, Fs::Tmpfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let plain = dir.path().join("plain");
        fs::create_dir(&plain).unwrap();
        let d = Dir::open(&plain).unwrap();
        let m = CreationMask::of_dir(&d, Some(0o022))
            .unwrap()
            .unwrap_or_else(|| panic!("{fsys:?}: no mask on a plain directory"));
        assert!(m.file_exact(0o644) && m.dir_exact(0o755), "{fsys:?}");
        assert!(!m.file_exact(0o664), "{fsys:?}");
        assert_eq!(CreationMask::of_dir(&d, None).unwrap(), None, "{fsys:?}");

        let setgid = dir.path().join("setgid");
        fs::create_dir(&setgid).unwrap();
        fs::set_permissions(&setgid, fs::Permissions::from_mode(0o2775)).unwrap();
        let m = CreationMask::of_dir(Dir::open(&setgid).unwrap(), Some(0o022))
            .unwrap()
            .unwrap();
        assert!(m.file_exact(0o644), "{fsys:?}");
        assert!(
            !m.dir_exact(0o755),
            "{fsys:?}: subdirectories inherit set-group-ID"
        );

        let acl = dir.path().join("acl");
        fs::create_dir(&acl).unwrap();
        match set_default_acl(&acl) {
            Ok(()) => assert_eq!(
                CreationMask::of_dir(Dir::open(&acl).unwrap(), Some(0o022)).unwrap(),
                None,
                "{fsys:?}: a default ACL decides instead of the umask"
            ),
            Err(e) => eprintln!("{fsys:?}: no default ACL to test: {e}"),
        }
    }
}

#[test]
fn process_umask_is_read_from_proc() {
    let Some(u) = process_umask() else {
        panic!("/proc/self/status has no Umask line")
    };
    // Whatever it is, a file made now has exactly the bits it says.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    rustix::fs::open(
        &p,
        rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
        rustix::fs::Mode::from_raw_mode(0o777),
    )
    .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o777 & !u);
}

/// Transfers `name` from `src` into the directory `dst` with `mask` and returns the new
/// file's bits.
fn transfer_mode(src: &Dir, dst: &Path, name: &str, mask: Option<CreationMask>) -> u32 {
    let t = transfer_at_masked(
        src,
        name.as_ref(),
        Dir::open(dst).unwrap(),
        name.as_ref(),
        &TransferOptions::new(Method::CloneOrCopy),
        &CopyRange::new(),
        mask,
    )
    .unwrap();
    assert!(
        matches!(t, Transfer::Cloned { .. } | Transfer::Copied { .. }),
        "{t:?}"
    );
    fs::symlink_metadata(dst.join(name)).unwrap().mode() & 0o7777
}

#[test]
fn transfer_reads_modes_back_without_a_mask_and_trusts_the_one_it_is_given() {
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        for (name, mode) in [("a", 0o644u32), ("b", 0o1755), ("c", 0o600)] {
            fs::write(src.join(name), pattern(20_000, u64::from(mode))).unwrap();
            fs::set_permissions(src.join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        let src_dir = Dir::open(&src).unwrap();
        // Under this default ACL a file asked for 0644 is made 0640, whatever the umask.
        let acl = dir.path().join("acl");
        fs::create_dir(&acl).unwrap();
        if let Err(e) = set_default_acl(&acl) {
            eprintln!("{fsys:?}: no default ACL to test: {e}");
            continue;
        }
        assert_eq!(
            CreationMask::of_dir(Dir::open(&acl).unwrap(), process_umask()).unwrap(),
            None
        );
        // No mask: every mode is read back and set.
        assert_eq!(transfer_mode(&src_dir, &acl, "a", None), 0o644, "{fsys:?}");
        assert_eq!(transfer_mode(&src_dir, &acl, "b", None), 0o1755, "{fsys:?}");
        assert_eq!(transfer_mode(&src_dir, &acl, "c", None), 0o600, "{fsys:?}");
        // A mask is trusted: one claiming that nothing is removed (wrongly, here) leaves the
        // bits creation gave, which shows the read-back is skipped; bits it cannot vouch for
        // (the sticky bit) are still checked.
        let wrong = Some(CreationMask::new(0, false));
        let trusting = dir.path().join("trusting");
        fs::create_dir(&trusting).unwrap();
        set_default_acl(&trusting).unwrap();
        assert_eq!(
            transfer_mode(&src_dir, &trusting, "a", wrong),
            0o640,
            "{fsys:?}"
        );
        assert_eq!(
            transfer_mode(&src_dir, &trusting, "b", wrong),
            0o1755,
            "{fsys:?}"
        );
        assert_eq!(
            transfer_mode(&src_dir, &trusting, "c", wrong),
            0o600,
            "{fsys:?}"
        );
    }
}
