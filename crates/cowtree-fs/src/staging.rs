//! A new directory built in a staging directory beside its destination and renamed into place
//! at the end, so that the destination appears whole or not at all.
//!
//! A staging directory is named `.<destination name><infix><stamp><separator><unique>` (the
//! destination name cut to [`Naming::keep`] bytes so the whole stays under NAME_MAX; the
//! stamp is the process's pid and start time, `PIDtSTART`, see [`crate::process`]), so a
//! person who finds one can tell what it is and which process made it. While a run uses it,
//! the run holds an exclusive `flock` on the directory itself: a staging directory whose lock
//! can be taken belongs to a run that died (killed, power loss), and [`remove_stale`] removes
//! it. Every operation is relative to the open parent directory ([`Dir`]), so this builds
//! wherever `Dir` does (Linux and macOS, through [`crate::sys`], and Windows).
//!
//! Windows cannot `flock` a directory. There the lock is the staging's own open handle
//! ([`Staging::dir`], made in the same call as the directory, so there is no unlocked moment):
//! [`remove_stale`] opens a candidate for itself alone (`Dir::open_dir_exclusive`, share mode
//! 0), which fails while any other handle is open on it, and removes it through that handle.
//! The stamp is the pid and the process's creation time (`GetProcessTimes`). A name is cut to
//! [`Naming::keep`] less 16 UTF-16 units there: Windows' stamp (a pid of up to 10 digits and
//! an 18-digit creation time) is longer than unix's, and a name holds 255 units.

use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dir::Dir;
use crate::process::Stamp;
use crate::undo::Registration;
pub use crate::undo::{remove_dir_or_subvolume, stop_staging, unless_stopping};

/// How one kind of staging directory is named (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming {
    /// Follows the (cut) destination name, e.g. `.cowtree-staging.`.
    pub infix: &'static str,
    /// Longest part of the destination name kept.
    pub keep: usize,
    /// Follows the pid, before the part that makes the name unique.
    pub separator: &'static str,
}

impl Naming {
    /// `.<dst name><infix>`: every staging directory of this kind for `dst_name` starts so,
    /// whichever process made it.
    pub fn prefix(&self, dst_name: &OsStr) -> OsString {
        let mut v = OsString::from(".");
        v.push(cut(dst_name, self.keep));
        v.push(self.infix);
        v
    }

    /// `.<dst name><infix><stamp><separator>`: every staging directory of this kind for
    /// `dst_name` made by this process starts so.
    pub fn process_prefix(&self, dst_name: &OsStr) -> OsString {
        let mut v = self.prefix(dst_name);
        v.push(format!("{}{}", Stamp::current(), self.separator));
        v
    }

    /// A name for a new staging directory of this process: the [`Naming::process_prefix`]
    /// followed by `unique`.
    pub fn name(&self, dst_name: &OsStr, unique: &str) -> OsString {
        let mut v = self.process_prefix(dst_name);
        v.push(unique);
        v
    }
}

/// The first `keep` bytes of `name`.
#[cfg(unix)]
fn cut(name: &OsStr, keep: usize) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let name = name.as_bytes();
    OsString::from_vec(name[..name.len().min(keep)].to_vec())
}

/// The first `keep - 16` UTF-16 units of `name` (see the module doc), never half of a
/// surrogate pair.
#[cfg(windows)]
fn cut(name: &OsStr, keep: usize) -> OsString {
    use std::os::windows::ffi::{OsStrExt, OsStringExt};
    let keep = keep.saturating_sub(16);
    let mut units: Vec<u16> = name.encode_wide().take(keep).collect();
    if units.len() == keep && units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
        units.pop();
    }
    OsString::from_wide(&units)
}

/// The naming of whole-tree staging directories (`cowtree clone` and `cowtree git worktree
/// add`): `.<dst name, at most 200 bytes>.cowtree-staging.<stamp>.<unique>`.
pub const TREE: Naming = Naming {
    infix: ".cowtree-staging.",
    keep: 200,
    separator: ".",
};

/// A random 64-bit number from the standard library's per-process random hash keys, a
/// counter and the clock: different on every call.
pub fn random_u64() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// A staging directory in use by this run. Dropping it before [`Staging::commit`] succeeded
/// removes it (best effort; [`Staging::remove`] reports the failure).
#[derive(Debug)]
pub struct Staging<'a> {
    parent: &'a Dir,
    name: OsString,
    /// The open staging directory; its open description holds the lock.
    pub dir: Dir,
    /// Its entry in the process's undo registry; `None` once committed or removed.
    undo: Option<Registration>,
}

/// A staging name registered for undo before the caller makes the directory there whole (a
/// subvolume snapshot, a subvolume: anything [`Staging::create`] does not make); see
/// [`Staging::reserve`]. Dropped without [`Reserved::adopt`], whatever was made there is
/// removed.
#[derive(Debug)]
pub struct Reserved<'a> {
    parent: &'a Dir,
    name: OsString,
    undo: Option<Registration>,
}

impl<'a> Reserved<'a> {
    /// Takes the directory the caller has made at the reserved name as a staging directory:
    /// opens it and takes its `flock`, as [`Staging::create`] does. On error it is removed.
    pub fn adopt(mut self) -> io::Result<Staging<'a>> {
        let (parent, name) = (self.parent, std::mem::take(&mut self.name));
        let dir = parent.open_dir(&name).and_then(|dir| {
            claim(parent, &name, &dir)?;
            Ok(dir)
        })?;
        Ok(Staging {
            parent,
            name,
            dir,
            undo: self.undo.take(),
        })
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            let _ = undo.undo();
        }
    }
}

impl<'a> Staging<'a> {
    /// Creates the directory `name` in `parent` with `mode` (it must not exist), opens it and
    /// takes its `flock`. A filesystem without `flock` is no error: a stale staging directory
    /// there is still recognisable by its name.
    ///
    /// After [`stop_staging`] it fails with [`io::ErrorKind::Interrupted`] and creates nothing.
    pub fn create(parent: &'a Dir, name: OsString, mode: u32) -> io::Result<Self> {
        let undo = Registration::tree(parent, &name)?;
        let dir = unless_stopping(|| parent.create_dir_open(&name, mode))?;
        if let Err(e) = claim(parent, &name, &dir) {
            // Not ours to remove: another run's cleanup took the name (see `claim`).
            undo.forget();
            return Err(e);
        }
        Ok(Staging {
            parent,
            name,
            dir,
            undo: Some(undo),
        })
    }

    /// Registers the staging name `name` in `parent` for undo before the caller makes the
    /// directory there itself (a subvolume snapshot, a subvolume: anything
    /// [`Staging::create`] does not make); [`Reserved::adopt`] then takes it as a staging
    /// directory. Make the directory inside [`unless_stopping`], so that once a signal
    /// handler's undo has begun nothing more is made.
    pub fn reserve(parent: &'a Dir, name: OsString) -> io::Result<Reserved<'a>> {
        let undo = Some(Registration::tree(parent, &name)?);
        Ok(Reserved { parent, name, undo })
    }

    /// The staging directory's name in the parent.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// Renames the staging directory to `dst_name` in the parent: with `RENAME_NOREPLACE`
    /// (an entry that appeared at `dst_name` meanwhile fails with `AlreadyExists`), or, with
    /// `replace`, over what is there (the caller has checked it is an empty directory). On
    /// error the staging directory is still there, and removed when this is dropped.
    ///
    /// After [`stop_staging`] it fails with [`io::ErrorKind::Interrupted`] and renames nothing.
    pub fn commit(&mut self, dst_name: &OsStr, replace: bool) -> io::Result<()> {
        unless_stopping(|| {
            if replace {
                self.parent.rename(&self.name, self.parent, dst_name)
            } else {
                self.parent
                    .rename_noreplace(&self.name, self.parent, dst_name)
            }
        })?;
        if let Some(undo) = self.undo.take() {
            undo.forget();
        }
        Ok(())
    }

    /// Removes the staging directory and what is in it now, saying whether that worked.
    pub fn remove(mut self) -> io::Result<()> {
        match self.undo.take() {
            Some(undo) => undo.undo(),
            None => Ok(()),
        }
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        // Best effort: what is left is recognisable and removed by the next run. The same
        // removal as a signal handler's (`crate::undo::undo_all`).
        if let Some(undo) = self.undo.take() {
            let _ = undo.undo();
        }
    }
}

/// Takes the lock of the staging directory `dir`, just made at `name` in `parent`, and checks
/// that `name` still is `dir`: a run that could not tell this process is alive (see
/// [`remove_stale`]) may have taken it for a dead run's between its creation and the lock.
/// A filesystem without `flock` is no error.
fn claim(parent: &Dir, name: &OsStr, dir: &Dir) -> io::Result<()> {
    let taken = || {
        io::Error::other(format!(
            "staging directory {} was removed by another run's cleanup as it was made; run again",
            std::path::Path::new(name).display()
        ))
    };
    // Windows: `dir`'s handle, open since the directory was made, is the lock.
    #[cfg(unix)]
    if let Ok(false) = dir.try_lock_exclusive() {
        return Err(taken());
    }
    let ours = dir.stat_self()?;
    match parent.try_stat(name)? {
        Some(st) if same_entry(&st, &ours) => Ok(()),
        _ => Err(taken()),
    }
}

/// Whether two stats are of one entry (device and inode; volume serial and file id).
#[cfg(unix)]
fn same_entry(a: &rustix::fs::Stat, b: &rustix::fs::Stat) -> bool {
    a.st_ino == b.st_ino && crate::sys::stat_dev(a) == crate::sys::stat_dev(b)
}

/// Whether two stats are of one entry (device and inode; volume serial and file id).
#[cfg(windows)]
fn same_entry(a: &crate::dir::Stat, b: &crate::dir::Stat) -> bool {
    a.ino == b.ino && a.dev == b.dev
}

/// Removes the staging directories in `parent` whose names start with `prefix` (see
/// [`Naming::prefix`]) and whose lock can be taken: those of runs that died. Returns how many
/// were removed. A staging directory whose run is alive is locked and left alone.
///
/// The lock alone cannot tell a dead run's staging from one a live run has just made and not
/// yet locked (`mkdir`, then `open` and `flock`): so a staging whose name carries the stamp of
/// a process that is alive (this one included) is never taken, whatever its lock says. The
/// stamp is the pid *and* the start time, so a pid that a later process was given does not
/// keep a dead run's staging ([`Stamp::is_alive`]); a name with a pid alone (written by an
/// older version) is judged by the pid. Where the process cannot be checked (a pid of another
/// pid namespace reads as absent), the lock decides, and [`Staging::create`] notices if its
/// directory was taken in that instant.
pub fn remove_stale(parent: &Dir, prefix: &OsStr) -> io::Result<usize> {
    let mut removed = 0;
    for entry in parent.entries()? {
        let Some(rest) = entry
            .name
            .as_encoded_bytes()
            .strip_prefix(prefix.as_encoded_bytes())
        else {
            continue;
        };
        #[cfg(unix)]
        let maybe_dir = matches!(
            entry.file_type,
            rustix::fs::FileType::Directory | rustix::fs::FileType::Unknown
        );
        #[cfg(windows)]
        let maybe_dir = entry.file_type.is_dir();
        if !maybe_dir || Stamp::parse_prefix(rest).is_some_and(|(owner, _)| owner.is_alive()) {
            continue;
        }
        if remove_unlocked(parent, &entry.name)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes the staging directory `name` if its lock can be taken; whether it did.
#[cfg(unix)]
fn remove_unlocked(parent: &Dir, name: &OsStr) -> io::Result<bool> {
    let Ok(dir) = parent.open_dir(name) else {
        return Ok(false);
    };
    if !dir.try_lock_exclusive()? {
        return Ok(false);
    }
    // The lock is held (`dir` open) while removing, so a run that somehow still uses it
    // cannot be its owner.
    remove_dir_or_subvolume(parent, name)?;
    Ok(true)
}

/// Removes the staging directory `name` if no other handle is open on it (see the module
/// doc); whether it did. The exclusive handle is held while removing, so no run can open it
/// meanwhile, and the directory is removed through it.
#[cfg(windows)]
fn remove_unlocked(parent: &Dir, name: &OsStr) -> io::Result<bool> {
    let Ok(Some(dir)) = parent.open_dir_exclusive(name) else {
        return Ok(false);
    };
    dir.remove_self_tree()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLONE: Naming = Naming {
        infix: ".cowtree-staging.",
        keep: 200,
        separator: ".",
    };

    #[cfg(unix)]
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    #[test]
    fn names_say_what_they_are_and_which_process_made_them() {
        assert_eq!(
            CLONE.prefix(OsStr::new("out")),
            OsStr::new(".out.cowtree-staging.")
        );
        let me = crate::process::Stamp::current();
        assert_eq!(
            CLONE.name(OsStr::new("out"), "00ff"),
            OsString::from(format!(".out.cowtree-staging.{me}.00ff"))
        );
        #[cfg(any(target_os = "linux", windows))]
        assert!(me.start.is_some(), "the name carries the start time: {me}");
        assert!(
            CLONE
                .name(OsStr::new("out"), "x")
                .as_encoded_bytes()
                .starts_with(CLONE.process_prefix(OsStr::new("out")).as_encoded_bytes())
        );
    }

    #[cfg(unix)]
    #[test]
    fn long_destination_names_are_cut_to_fit_name_max() {
        let long = OsString::from_vec(vec![b'x'; 255]);
        let n = CLONE.name(&long, &format!("{:016x}", u64::MAX));
        assert!(n.len() <= 255, "{}", n.len());
        assert!(n.as_bytes().starts_with(&[b'.'; 1]));
        assert_eq!(
            n.as_bytes().iter().filter(|&&b| b == b'x').count(),
            200,
            "the destination name keeps 200 bytes"
        );
    }

    #[test]
    fn random_numbers_differ() {
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn dropped_staging_is_removed_and_committed_staging_is_renamed() {
        let tmp = std::env::temp_dir().join(format!("cowtree-staging-test-{}", random_u64()));
        std::fs::create_dir(&tmp).unwrap();
        let parent = Dir::open(&tmp).unwrap();
        let dst = OsStr::new("dst");
        let s = Staging::create(&parent, CLONE.name(dst, "a"), 0o700).unwrap();
        s.dir.create_dir(OsStr::new("inner"), 0o755).unwrap();
        let staged = tmp.join(s.name());
        assert!(staged.is_dir());
        drop(s);
        assert!(!staged.exists(), "an uncommitted staging is removed");
        let mut s = Staging::create(&parent, CLONE.name(dst, "b"), 0o700).unwrap();
        s.dir.create_dir(OsStr::new("inner"), 0o755).unwrap();
        s.commit(dst, false).unwrap();
        drop(s);
        assert!(
            tmp.join("dst/inner").is_dir(),
            "a committed staging is the destination"
        );
        let mut s = Staging::create(&parent, CLONE.name(dst, "c"), 0o700).unwrap();
        let err = s.commit(dst, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let name = s.name().to_owned();
        s.remove().unwrap();
        assert!(!tmp.join(name).exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn staging_of_a_live_process_is_kept_even_before_its_lock_is_taken() {
        // A run that has made its staging and not yet locked it looks dead to the lock alone.
        let tmp = std::env::temp_dir().join(format!("cowtree-staging-test-{}", random_u64()));
        std::fs::create_dir(&tmp).unwrap();
        let parent = Dir::open(&tmp).unwrap();
        let dst = OsStr::new("dst");
        let unlocked = tmp.join(CLONE.name(dst, "justmade"));
        std::fs::create_dir(&unlocked).unwrap();
        // pid 1 is alive in every pid namespace.
        let init = tmp.join(".dst.cowtree-staging.1.justmade");
        std::fs::create_dir(&init).unwrap();
        assert_eq!(remove_stale(&parent, &CLONE.prefix(dst)).unwrap(), 0);
        assert!(unlocked.is_dir() && init.is_dir());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    /// The debris of a run killed outright whose pid another process holds now (pid_max is
    /// 32768 on many machines): the start time in the name tells them apart, so it is removed.
    #[cfg(unix)]
    #[test]
    fn staging_of_a_dead_run_whose_pid_was_reused_is_removed() {
        let tmp = std::env::temp_dir().join(format!("cowtree-staging-test-{}", random_u64()));
        std::fs::create_dir(&tmp).unwrap();
        let parent = Dir::open(&tmp).unwrap();
        let dst = OsStr::new("dst");
        // pid 1 is alive in every pid namespace; it did not start at tick 1 after boot
        // unless /proc cannot tell, in which case the pid alone decides (kept).
        let reused = tmp.join(".dst.cowtree-staging.1t1.dead");
        std::fs::create_dir_all(reused.join("sub")).unwrap();
        let init_start = crate::sys::process_start(1);
        let removed = remove_stale(&parent, &CLONE.prefix(dst)).unwrap();
        match init_start {
            Some(t) if t != 1 => {
                assert_eq!(removed, 1);
                assert!(!reused.exists(), "a reused pid kept a dead run's staging");
            }
            _ => assert!(reused.exists()),
        }
        // pid 1 with its real start time: alive, kept.
        if let Some(t) = init_start {
            let live = tmp.join(format!(".dst.cowtree-staging.1t{t}.live"));
            std::fs::create_dir(&live).unwrap();
            assert_eq!(remove_stale(&parent, &CLONE.prefix(dst)).unwrap(), 0);
            assert!(live.is_dir());
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn stale_staging_is_removed_and_live_staging_is_kept() {
        let tmp = std::env::temp_dir().join(format!("cowtree-staging-test-{}", random_u64()));
        std::fs::create_dir(&tmp).unwrap();
        let parent = Dir::open(&tmp).unwrap();
        let dst = OsStr::new("dst");
        // Left by a run that died: its name, no lock held.
        std::fs::create_dir_all(tmp.join(".dst.cowtree-staging.4000000.dead/sub")).unwrap();
        // Another destination's staging is not this one's.
        std::fs::create_dir(tmp.join(".other.cowtree-staging.4000000.dead")).unwrap();
        let live = Staging::create(&parent, CLONE.name(dst, "live"), 0o700).unwrap();
        let removed = remove_stale(&parent, &CLONE.prefix(dst)).unwrap();
        let lock_works = !Dir::open(&tmp.join(live.name()))
            .unwrap()
            .try_lock_exclusive()
            .unwrap_or(true);
        assert_eq!(removed, if lock_works { 1 } else { 2 });
        assert!(!tmp.join(".dst.cowtree-staging.4000000.dead").exists());
        assert!(tmp.join(".other.cowtree-staging.4000000.dead").exists());
        if lock_works {
            assert!(tmp.join(live.name()).is_dir(), "a locked staging is live");
        }
        drop(live);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
