//! `cowtree probe` on real mounts.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use cowtree_testutil::{Fs, scratch};
use serde_json::Value;

fn cowtree(args: &[&std::ffi::OsStr]) -> Output {
    common::bin().args(args).output().expect("run cowtree")
}

fn probe_json(src: &Path, dst: Option<&Path>) -> Value {
    let mut args = vec!["probe".as_ref(), "--json".as_ref(), src.as_os_str()];
    if let Some(d) = dst {
        args.push(d.as_os_str());
    }
    let out = cowtree(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn probe_json_is_right_on_every_mount() {
    // Probing the small XFS writes to it: not while another test has filled it.
    let _small = cowtree_testutil::small_alone();
    let cases = [
        (Fs::Xfs, "xfs", true),
        (Fs::Btrfs, "btrfs", true),
        (Fs::Small, "xfs", true),
        (Fs::Tmpfs, "tmpfs", false),
        (Fs::NoCow, "", false),
    ];
    for (fsys, name, reflink) in cases {
        let Some(dir) = scratch(fsys) else { continue };
        let v = probe_json(dir.path(), None);
        if !name.is_empty() {
            assert_eq!(v["fs_type"], name, "{fsys:?}: {v}");
        }
        assert_eq!(v["reflink"], reflink, "{fsys:?}: {v}");
        assert_eq!(v["same_device"], true, "{fsys:?}: {v}");
        assert_eq!(v["hardlink"], true, "{fsys:?}: {v}");
        if reflink {
            assert!(v["reason"].is_null(), "{v}");
        } else {
            assert!(v["reason"].as_str().unwrap().contains("filesystem"), "{v}");
        }
        // The probe leaves nothing behind.
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{fsys:?}"
        );
    }
}

#[test]
fn probe_json_for_the_cross_device_pair_says_why() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let v = probe_json(a.path(), Some(b.path()));
    assert_eq!(v["fs_type"], "xfs");
    assert_eq!(v["same_device"], false);
    assert_eq!(v["reflink"], false);
    assert_eq!(v["hardlink"], false);
    assert!(
        v["reason"].as_str().unwrap().starts_with("cross-device"),
        "{v}"
    );
}

#[test]
fn probe_human_output_names_the_outcome() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let out = cowtree(&["probe".as_ref(), dir.path().as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("reflink:     yes"), "{text}");
    assert!(text.contains("(xfs)"), "{text}");
}

#[test]
fn probe_of_a_missing_path_fails_naming_it() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let missing = dir.path().join("no-such-dir");
    let out = cowtree(&["probe".as_ref(), missing.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir"), "{err}");
}

#[test]
fn probe_of_an_unwritable_directory_fails_naming_it() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let ro = dir.path().join("locked");
    std::fs::create_dir(&ro).unwrap();
    let root = rustix::process::geteuid().is_root();
    // Root ignores permission bits; the immutable attribute stops root too.
    let lock = |on: bool| {
        let status = if root {
            Command::new("chattr")
                .arg(if on { "+i" } else { "-i" })
                .arg(&ro)
                .status()
        } else {
            use std::os::unix::fs::PermissionsExt;
            let mode = if on { 0o555 } else { 0o755 };
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(mode))
                .map(|_| std::process::ExitStatus::default())
        };
        assert!(status.unwrap().success());
    };
    lock(true);
    let out = cowtree(&["probe".as_ref(), ro.as_os_str()]);
    lock(false);
    assert!(!out.status.success(), "probe of a read-only dir succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked"), "{err}");
}

#[test]
fn a_closed_output_pipe_ends_a_listing_command_by_sigpipe_not_by_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    // The read end is closed before cowtree starts: its first write to stdout fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = common::bin()
        .args(["probe".as_ref(), dir.path().as_os_str()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}
