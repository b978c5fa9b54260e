//! Which process made something, told in a way a reused pid cannot pass for: the pid and the
//! process's start time ([`Stamp`]).
//!
//! A pid alone names a process only while it runs: once it ends, the kernel gives the number
//! to the next process that needs one (with `pid_max` at 32768, a busy machine goes round in
//! seconds). So "the process with this pid exists" does not prove that the one that wrote the
//! pid is alive. The start time does: two processes that hold the same pid one after the
//! other do not start at the same instant. A stamp is alive when a process with its pid
//! exists *and* that process started when the stamp says.
//!
//! Where the start time cannot be read (a pid of another pid namespace, `/proc` mounted with
//! `hidepid`, a stamp written before start times were recorded), [`Stamp::is_alive`] falls
//! back to the pid alone: a process that exists counts as alive. That is the safe side for
//! every caller (something of a live run is never taken), and the lock-based checks callers
//! make beside it (the `flock` a live run holds) decide the rest.

use std::fmt;

/// A process, named by pid and start time (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The pid.
    pub pid: u32,
    /// When it started, in the platform's own unit (Linux: clock ticks since boot, field 22
    /// of `/proc/PID/stat`; macOS: microseconds since the epoch; Windows: the creation time,
    /// 100 ns units since 1601); `None` when unknown.
    pub start: Option<u64>,
}

impl Stamp {
    /// This process (its start time read once).
    pub fn current() -> Stamp {
        static ME: std::sync::OnceLock<Stamp> = std::sync::OnceLock::new();
        *ME.get_or_init(|| {
            let pid = std::process::id();
            Stamp {
                pid,
                start: crate::sys::process_start(pid),
            }
        })
    }

    /// Whether the process this stamp names is running: a process with its pid exists and,
    /// when both start times are known, started when the stamp says. This process is always
    /// alive.
    pub fn is_alive(&self) -> bool {
        if *self == Stamp::current() || (self.pid == std::process::id() && self.start.is_none()) {
            return true;
        }
        if !pid_exists(self.pid) {
            return false;
        }
        match (self.start, crate::sys::process_start(self.pid)) {
            (Some(then), Some(now)) => then == now,
            // Unknown on either side: the pid alone decides (see the module doc).
            _ => true,
        }
    }

    /// The stamp as names carry it: `PID` or `PIDtSTART` (digits, a `t`, digits).
    pub fn token(&self) -> String {
        self.to_string()
    }

    /// Reads a stamp from the start of `bytes` (`PID` or `PIDtSTART`, as [`Stamp::token`]
    /// writes it), returning it and what follows; `None` when `bytes` starts with no pid.
    pub fn parse_prefix(bytes: &[u8]) -> Option<(Stamp, &[u8])> {
        let (pid, rest) = digits(bytes)?;
        let pid = u32::try_from(pid).ok().filter(|&p| p > 0)?;
        if let Some(after_t) = rest.strip_prefix(b"t")
            && let Some((start, rest)) = digits(after_t)
        {
            return Some((
                Stamp {
                    pid,
                    start: Some(start),
                },
                rest,
            ));
        }
        Some((Stamp { pid, start: None }, rest))
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.start {
            Some(s) => write!(f, "{}t{s}", self.pid),
            None => write!(f, "{}", self.pid),
        }
    }
}

/// The number at the start of `bytes` and what follows it; `None` without one (or one that
/// does not fit in a u64).
fn digits(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let value = std::str::from_utf8(&bytes[..n]).ok()?.parse().ok()?;
    Some((value, &bytes[n..]))
}

/// Whether a process with this pid exists and has not ended: `OpenProcess` and a poll of the
/// handle (a process object lingers while anyone holds a handle on it); one this user may
/// not open exists. Pid 0 names none.
#[cfg(windows)]
pub fn pid_exists(pid: u32) -> bool {
    crate::sys::process_running(pid)
}

/// Whether a process with this pid exists in this pid namespace (`kill(pid, 0)`: EPERM means
/// it exists and belongs to another user). A pid that is not a positive `i32` names none (0 or
/// a negative number would address a process group).
#[cfg(unix)]
pub fn pid_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back_with_and_without_a_start_time() {
        for s in [
            Stamp {
                pid: 1234,
                start: Some(987_654),
            },
            Stamp {
                pid: 7,
                start: None,
            },
        ] {
            let text = format!("{}.rest", s.token());
            assert_eq!(
                Stamp::parse_prefix(text.as_bytes()),
                Some((s, &b".rest"[..]))
            );
        }
        assert_eq!(
            Stamp::parse_prefix(b"12t.x"),
            Some((
                Stamp {
                    pid: 12,
                    start: None
                },
                &b"t.x"[..]
            ))
        );
        assert_eq!(Stamp::parse_prefix(b"x12"), None);
        assert_eq!(Stamp::parse_prefix(b""), None);
        assert_eq!(Stamp::parse_prefix(b"0.x"), None);
        assert_eq!(Stamp::parse_prefix(b"99999999999999999999.x"), None);
    }

    #[test]
    fn this_process_is_alive_and_has_a_start_time_on_linux() {
        let me = Stamp::current();
        assert!(me.is_alive());
        assert_eq!(me.pid, std::process::id());
        #[cfg(any(target_os = "linux", windows))]
        assert!(me.start.is_some(), "no start time read for this process");
    }

    /// The case the stamp exists for: a process that holds a dead one's pid is not it.
    #[cfg(unix)]
    #[test]
    fn a_live_pid_with_another_start_time_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let real = Stamp {
            pid: child.id(),
            start: crate::sys::process_start(child.id()),
        };
        assert!(real.is_alive());
        if let Some(start) = real.start {
            let reused = Stamp {
                pid: real.pid,
                start: Some(start + 1),
            };
            assert!(!reused.is_alive(), "a pid now held by another process");
        }
        // Without a start time, the pid alone decides.
        assert!(
            Stamp {
                pid: real.pid,
                start: None
            }
            .is_alive()
        );
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(!real.is_alive(), "a reaped process");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_start_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let line = b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                     555666 12345 67 18446744073709551615";
        assert_eq!(crate::sys::parse_stat_start(line), Some(555_666));
        assert_eq!(crate::sys::parse_stat_start(b"4242 (a) S 1"), None);
        assert_eq!(crate::sys::parse_stat_start(b"garbage"), None);
    }

    #[test]
    fn pids_that_name_no_process() {
        assert!(!pid_exists(0));
        assert!(!pid_exists(u32::MAX));
        assert!(!pid_exists(i32::MAX as u32));
    }

    /// Windows: a child is alive with its creation time, another creation time under its pid
    /// is not it, and once it has ended it is not alive even while this process still holds
    /// a handle on it (std's `Child` does, until dropped).
    #[cfg(windows)]
    #[test]
    fn a_windows_child_is_alive_until_it_ends_and_only_with_its_own_creation_time() {
        // `pause` waits for a key on stdin: a pipe nobody writes keeps it running.
        let mut child = std::process::Command::new("cmd")
            .args(["/c", "pause"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn cmd /c pause");
        let real = Stamp {
            pid: child.id(),
            start: crate::sys::process_start(child.id()),
        };
        assert!(real.start.is_some(), "no creation time for a child");
        assert!(real.is_alive());
        let reused = Stamp {
            pid: real.pid,
            start: real.start.map(|s| s + 1),
        };
        assert!(
            !reused.is_alive(),
            "another creation time under the same pid"
        );
        child.kill().expect("kill");
        child.wait().expect("wait");
        // `child` still holds its process handle: the object lingers, the process does not.
        assert!(!real.is_alive(), "an ended process");
        assert!(!pid_exists(real.pid));
    }
}
