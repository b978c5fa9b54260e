//! A throwaway unprivileged user, for tests that must show what works without root (btrfs
//! subvolumes: an unprivileged user may snapshot what it owns, but may delete a subvolume in
//! O(1) only where the filesystem is mounted with `user_subvol_rm_allowed`).
//!
//! [`TestUser::create`] adds a user with `useradd -M -N` (no home directory, no group of its
//! own: its group is `nogroup`), named `cowtree-t<pid>-<n>`; dropping it (also when the test
//! panics) removes it with `userdel`. Users left by a test process that died are removed by the
//! next one that creates a user. Commands run under it through `setpriv --reuid --regid
//! --clear-groups` ([`TestUser::command`]): every uid the user's, no supplementary groups, no
//! capabilities. [`TestUser::dir_in`] makes a directory it owns on a mount, for it to work in.
//!
//! A test that runs "as root and as the user" loops over [`identities`], each an [`As`]
//! with the same two calls.
//!
//! Needs root and the `useradd`, `userdel` and `setpriv` tools (shadow's `passwd` package and
//! util-linux); without them [`TestUser::create`] prints a skip line (or panics under
//! `COWTREE_TEST_REQUIRE_FS=1`, as in CI) and returns `None`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The group new test users get (Debian's `nogroup`).
const NOGROUP: u32 = 65534;
const PREFIX: &str = "cowtree-t";

/// A user made for one test, removed when dropped.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    uid: u32,
}

impl TestUser {
    /// Adds a new user, or returns `None` after a skip line when this process cannot (not
    /// root, tools missing).
    pub fn create() -> Option<TestUser> {
        if !rustix::process::geteuid().is_root() {
            crate::skip("not root: cannot add a test user");
            return None;
        }
        for tool in ["useradd", "userdel", "setpriv"] {
            if Command::new(tool).arg("--help").output().is_err() {
                crate::skip(&format!("{tool} is not installed"));
                return None;
            }
        }
        remove_stale();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        retry_locked("useradd", || {
            Command::new("useradd")
                .args(["-M", "-N", "-g", &NOGROUP.to_string()])
                .args(["-s", "/usr/sbin/nologin", "-c", "cowtree test user"])
                .arg(&name)
                .output()
        });
        let out = Command::new("id")
            .args(["-u", &name])
            .output()
            .expect("run id");
        let uid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("id -u {name}: {:?}", out));
        Some(TestUser { name, uid })
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The user's gid (`nogroup`).
    pub fn gid(&self) -> u32 {
        NOGROUP
    }

    /// `program` to be run as this user: `setpriv --reuid UID --regid GID --clear-groups --
    /// program`. The caller's environment is inherited: give it a HOME and XDG directories the
    /// user may write (see [`TestUser::dir_in`]).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={NOGROUP}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(program);
        c
    }

    /// Runs the test `test` of the running test binary again, as this user, and panics with
    /// its output unless it passed. `test` is its full name in the binary, as `--list` prints
    /// it (the module, the file it is in, then the function: `subvolume::child_...`; a
    /// binary's files are modules of its main.rs). The binary is started with `test --exact
    /// --include-ignored --nocapture`, the variables in `env` and `COWTREE_TEST_CHILD=1`. The
    /// child test is marked `#[ignore]` (so a normal run does not start it as root) and
    /// returns at once without `COWTREE_TEST_CHILD` (see [`is_child`]).
    pub fn run_test(&self, test: &str, env: &[(&str, &OsStr)]) {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut c = self.command(&exe);
        c.args([
            test,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("COWTREE_TEST_CHILD", "1")
        // The child makes the choices the parent's seed makes (a replay replays both).
        .env(crate::seed::VAR, crate::seed::base().to_string());
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("run {} as {}: {e}", exe.display(), self.name));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{test} as {} ({}): {text}",
            self.name,
            out.status
        );
    }

    /// A new directory in `parent`, owned by this user (mode 0755), removed when dropped.
    pub fn dir_in(&self, parent: &Path) -> tempfile::TempDir {
        let d = tempfile::Builder::new()
            .prefix("cowtree-user-")
            .tempdir_in(parent)
            .unwrap_or_else(|e| panic!("temp dir in {}: {e}", parent.display()));
        std::os::unix::fs::chown(d.path(), Some(self.uid), Some(NOGROUP))
            .unwrap_or_else(|e| panic!("chown {}: {e}", d.path().display()));
        std::fs::set_permissions(
            d.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        d
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        retry_locked("userdel", || Command::new("userdel").arg(&name).output());
    }
}

/// Runs a `useradd`/`userdel` call, again while another process holds the lock on
/// /etc/passwd (exit 10: "cannot lock"; other engineers' tests may be adding users too).
fn retry_locked(what: &str, run: impl Fn() -> std::io::Result<std::process::Output>) {
    for attempt in 0.. {
        let out = run().unwrap_or_else(|e| panic!("run {what}: {e}"));
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if attempt < 100 && (out.status.code() == Some(10) || err.contains("lock")) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        panic!("{what} failed ({}): {err}", out.status);
    }
}

/// Removes test users whose process is gone (killed before their `Drop` ran).
fn remove_stale() {
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return;
    };
    for line in passwd.lines() {
        let Some(name) = line.split(':').next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("userdel").arg(name).output();
        }
    }
}

/// True in a test started by [`TestUser::run_test`]; such a test returns at once otherwise.
pub fn is_child() -> bool {
    std::env::var_os("COWTREE_TEST_CHILD").is_some_and(|v| v == "1")
}

/// Who runs a step of a test: root (this process), or a test user.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    /// The test process itself (root, under scripts/test.sh).
    Root,
    /// The throwaway user.
    User(&'a TestUser),
}

impl As<'_> {
    /// `root` or `user`, for messages.
    pub fn label(&self) -> &'static str {
        match self {
            As::Root => "root",
            As::User(_) => "user",
        }
    }

    /// `program` run as this identity.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match self {
            As::Root => Command::new(program),
            As::User(u) => u.command(program),
        }
    }

    /// A new directory in `parent` this identity owns, removed when dropped.
    pub fn dir_in(&self, parent: &Path) -> tempfile::TempDir {
        match self {
            As::Root => tempfile::Builder::new()
                .prefix("cowtree-root-")
                .tempdir_in(parent)
                .unwrap_or_else(|e| panic!("temp dir in {}: {e}", parent.display())),
            As::User(u) => u.dir_in(parent),
        }
    }

    /// The identity's uid.
    pub fn uid(&self) -> u32 {
        match self {
            As::Root => rustix::process::geteuid().as_raw(),
            As::User(u) => u.uid(),
        }
    }
}

/// Root, then `user` when there is one.
pub fn identities(user: Option<&TestUser>) -> Vec<As<'_>> {
    let mut v = vec![As::Root];
    v.extend(user.map(As::User));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_user_runs_commands_without_privilege_and_is_removed() {
        let Some(user) = TestUser::create() else {
            return;
        };
        let name = user.name().to_string();
        let out = user
            .command("sh")
            .args(["-c", "id -u; id -G; grep CapEff /proc/self/status"])
            .output()
            .expect("run sh as the user");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(user.uid().to_string().as_str()));
        assert_eq!(lines.next(), Some(NOGROUP.to_string().as_str()));
        assert_eq!(
            lines.next().map(|l| l.split_whitespace().last()),
            Some(Some("0000000000000000")),
            "{text}"
        );
        let dir = user.dir_in(Path::new("/tmp"));
        let made = user
            .command("touch")
            .arg(dir.path().join("f"))
            .status()
            .expect("touch as the user");
        assert!(made.success());
        drop(user);
        let passwd = std::fs::read_to_string("/etc/passwd").expect("read passwd");
        assert!(
            !passwd.lines().any(|l| l.starts_with(&format!("{name}:"))),
            "{name} still exists"
        );
    }
}
