//! Fails chosen btrfs ioctls with EPERM in a child process (a seccomp filter), as a sandbox
//! or a user namespace may: the tests of what cowtree does when the kernel refuses a
//! subvolume operation.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// btrfs ioctl numbers (linux/btrfs.h): `_IOW(0x94, nr, struct btrfs_ioctl_vol_args_v2)`,
/// 4096 bytes.
const fn btrfs_iow(nr: u64) -> u64 {
    (1 << 30) | (4096 << 16) | (0x94 << 8) | nr
}
/// BTRFS_IOC_SNAP_CREATE_V2.
pub const SNAP_CREATE_V2: u64 = btrfs_iow(23);
/// BTRFS_IOC_SUBVOL_CREATE_V2.
pub const SUBVOL_CREATE_V2: u64 = btrfs_iow(24);
/// BTRFS_IOC_SNAP_DESTROY_V2.
pub const SNAP_DESTROY_V2: u64 = btrfs_iow(63);

#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
pub const SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Whether this architecture has a filter here; where not, the test is recorded as skipped.
pub fn available() -> bool {
    if !SUPPORTED {
        cowtree_testutil::skip("no seccomp filter for this architecture");
    }
    SUPPORTED
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Installs, in the child `cmd` starts, a filter failing `ioctl(fd, request, ...)` with
/// EPERM for each of `requests`.
pub fn deny_ioctls(cmd: &mut Command, requests: Vec<u64>) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use libc::{
            BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
            SECCOMP_RET_ERRNO,
        };
        let ld = (BPF_LD | BPF_W | BPF_ABS) as u16;
        let jeq = (BPF_JMP | BPF_JEQ | BPF_K) as u16;
        let ret = (BPF_RET | BPF_K) as u16;
        // struct seccomp_data: nr at 0, arch at 4, args[1] (low half) at 24.
        let mut prog = vec![
            stmt(ld, 4),
            jump(jeq, ARCH, 1, 0),
            stmt(ret, SECCOMP_RET_ALLOW),
            stmt(ld, 0),
            jump(jeq, libc::SYS_ioctl as u32, 1, 0),
            stmt(ret, SECCOMP_RET_ALLOW),
            stmt(ld, 24),
        ];
        for r in &requests {
            prog.push(jump(jeq, *r as u32, 0, 1));
            prog.push(stmt(ret, SECCOMP_RET_ERRNO | libc::EPERM as u32));
        }
        prog.push(stmt(ret, SECCOMP_RET_ALLOW));
        // SAFETY: between fork and exec only async-signal-safe calls (prctl) are made, on
        // a filter program built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fprog = libc::sock_fprog {
                    len: prog.len() as u16,
                    filter: prog.as_ptr() as *mut libc::sock_filter,
                };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        &fprog as *const libc::sock_fprog,
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (cmd, requests);
    }
}
