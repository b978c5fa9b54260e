//! Helpers shared by the binary's tests: run it against a store, run it with a time limit,
//! measure a child's peak memory, and compare a sandbox before and after.

#![allow(dead_code)]

pub mod proxy;
pub mod s3;
pub mod seccomp;
pub mod suggested;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cowtree_testutil::TreeState;

pub const BIN: &str = env!("CARGO_BIN_EXE_cowtree");

/// The binary, with no store taken from the environment, and HOME and the XDG directories
/// (its list of known stores, its default store, its remotes) under the test's target
/// directory, never the real ones (see [`cowtree_testutil::isolate_home`]).
pub fn bin() -> Command {
    isolated(Command::new(BIN))
}

/// `cmd` (the binary, or a shell that runs it) with the home [`bin`] gives the binary.
pub fn isolated(mut cmd: Command) -> Command {
    cowtree_testutil::isolate_home(
        &mut cmd,
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("cowtree-test-home"),
    );
    cmd
}

/// Creates an empty store at `path` (only writing commands create one).
pub fn init_store(path: &Path) {
    cowtree_store::Store::open(path).expect("create the store");
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size of the child in KiB (from `wait4`). Never below
    /// [`Ran::parent_rss_kib`]: see [`run_limited`].
    pub maxrss_kib: u64,
    /// This process's resident set in KiB when it started the child: the least `maxrss_kib`
    /// can be, whatever the child used.
    pub parent_rss_kib: u64,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    #[track_caller]
    pub fn assert_ok(&self, what: &str) -> &Ran {
        assert!(self.ok(), "{what}: {:?}\n{}", self.status, self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_error(&self, what: &str) -> &Ran {
        assert_eq!(
            self.code(),
            Some(1),
            "{what}: expected exit 1, got {:?}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.starts_with("cowtree: "),
            "{what}: error not on stderr as `cowtree: ...`: {}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).expect("one JSON object on stdout")
    }
}

/// Runs `cmd` to completion, killing it (and failing the test) after `limit`. Output goes
/// through files, so a child that never reads stdin or fills a pipe cannot block it.
#[track_caller]
pub fn run_limited(mut cmd: Command, limit: Duration) -> Ran {
    let tmp = tempfile::tempdir().expect("temp dir for output");
    let out = tmp.path().join("out");
    let err = tmp.path().join("err");
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    // The child's `ru_maxrss` starts from the high-water mark of the address space it
    // replaces at exec, which is this process's (the child shares or copies it until then):
    // a child started after this process once held 200 MiB reports at least 200 MiB. Give
    // back what this process freed (`malloc_trim`) and reset its mark to its current resident
    // set (`clear_refs`, 5), so that the least the child can report is what this process
    // holds now, not the most it ever held.
    // SAFETY: malloc_trim only returns free heap memory to the system.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = fs::write("/proc/self/clear_refs", "5");
    let parent_rss_kib = own_rss_kib();
    let child = cmd.spawn().expect("spawn cowtree");
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let (raw, ru) = loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; pid is our own child, reaped here (not by `child`).
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break (status, ru);
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if started.elapsed() > limit {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!(
                "{cmd:?} did not finish within {limit:?} (killed); stderr: {}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::mem::forget(child);
    Ran {
        status: ExitStatus::from_raw(raw),
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
        maxrss_kib: ru.ru_maxrss as u64,
        parent_rss_kib,
    }
}

/// This process's resident set in KiB (`VmRSS` of /proc/self/status; 0 if unreadable).
fn own_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// `cowtree --store STORE ARGS...` with a 120 s limit.
#[track_caller]
pub fn cowtree(store: &Path, args: &[&OsStr]) -> Ran {
    let mut c = bin();
    c.arg("--store").arg(store).args(args);
    run_limited(c, Duration::from_secs(120))
}

/// `cowtree ARGS...` (no store) with a 120 s limit.
#[track_caller]
pub fn cowtree_plain(args: &[&OsStr]) -> Ran {
    let mut c = bin();
    c.args(args);
    run_limited(c, Duration::from_secs(120))
}

pub fn s(x: &str) -> &OsStr {
    OsStr::new(x)
}

/// Records everything under `root` except beneath the `skip` paths.
pub fn capture_except(root: &Path, skip: &[&Path]) -> TreeState {
    let skip: Vec<PathBuf> = skip.iter().map(|p| p.to_path_buf()).collect();
    TreeState::capture(root, &move |p: &Path| skip.iter().any(|s| p.starts_with(s)))
}

/// `verify --json` says ok.
#[track_caller]
pub fn assert_verify_ok(store: &Path, what: &str) {
    let r = cowtree(store, &[s("verify"), s("--json")]);
    r.assert_ok(what);
    assert_eq!(r.json()["ok"], true, "{what}: {}", r.stdout);
}

/// Snapshot `src` and return the id.
#[track_caller]
pub fn snapshot(store: &Path, src: &Path) -> String {
    let r = cowtree(store, &[s("snapshot"), s("--json"), src.as_os_str()]);
    r.assert_ok("snapshot");
    r.json()["id"].as_str().unwrap().to_string()
}

/// Names in `dir` that look like a cowtree staging or temporary entry.
pub fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".cowtree-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs cowtree with `--store store` and `args`, waiting for it.
pub fn run(store: &Path, args: &[&OsStr]) -> std::process::Output {
    bin()
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run cowtree")
}

/// [`run`], asserting success (the message shows its stderr).
pub fn ok(store: &Path, args: &[&OsStr]) -> std::process::Output {
    let out = run(store, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`ok`], parsing its output as one JSON object.
pub fn ok_json(store: &Path, args: &[&OsStr]) -> serde_json::Value {
    serde_json::from_slice(&ok(store, args).stdout).expect("one JSON object")
}

/// Runs cowtree with `--store store` and `args`, and sends it SIGKILL once `delay` has passed
/// unless it ended first. True when it ended on its own (it must have succeeded: the assertion
/// shows its stderr), false when it was killed.
pub fn run_killed_after(store: &Path, args: &[&OsStr], delay: Duration) -> bool {
    let mut child = bin()
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cowtree");
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if child.try_wait().expect("wait for cowtree").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait for cowtree");
    if out.status.code().is_none() {
        // Only our SIGKILL counts as a kill; any other signal (SIGSEGV, SIGABRT) is a crash.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{args:?} died of a signal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return false;
    }
    assert!(
        out.status.success(),
        "{args:?} failed on its own: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Waits (at most 30 s) until process `pid` blocks SIGINT and SIGTERM, which cowtree does
/// when it installs its handler, or until it has ended.
pub fn handler_installed(pid: u32) {
    let wanted = (1u64 << (libc::SIGINT - 1)) | (1u64 << (libc::SIGTERM - 1));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        if status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("zombie"))
        {
            return;
        }
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0);
        if blocked & wanted == wanted {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("cowtree {pid} did not install its signal handler within 30 s");
}

/// Runs `job(i)` for every `i` below `n` on `threads` threads; the results in order. For jobs
/// that mostly wait (for the clock's next second, on the commands they run): more threads than
/// cores help.
pub fn parallel<T: Send>(n: usize, threads: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<T>>> =
        std::sync::Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.min(n) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let r = job(i);
                    results.lock().expect("results")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}

/// The message of a caught panic.
pub fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}
