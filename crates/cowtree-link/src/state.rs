//! The batch fallback policy: which method to try next for one (source device, destination
//! device) pair, and what a failure means.
//!
//! Rules (docs/architecture.md, "The tree linker"):
//! - A batch starts at the requested mode; `Auto` and `Clone` start by cloning.
//! - The first pair-wide failure, before the method has worked once, moves the batch to the
//!   next method: clone -> copy; hardlink -> copy on EXDEV/EPERM.
//! - Per-file failures (source vanished, EAGAIN twice, EPERM from the clone call, EMLINK) fall
//!   back to copy for that one file; the batch keeps its method.
//! - After a method has worked once, a pair-wide failure is an error: the filesystem said it
//!   could, so something is wrong and copying would hide it.
//! - `strict` turns every fallback into an error.
//! - `Copy` and `Symlink` have no fallback.

use cowtree_fs::{HardlinkRefusal, UnsupportedCause};

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkMode {
    /// Clone where the filesystems can, copy where they cannot. The default.
    Auto,
    /// Clone; copy (with a warning) where the filesystems cannot.
    Clone,
    /// Always copy the data.
    Copy,
    /// Hardlink to the source: writes through the destination reach the source. Copy where
    /// hardlinks are impossible.
    Hardlink,
    /// Make symlinks pointing at the source files.
    Symlink,
}

/// The method to try for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attempt {
    /// Reflink.
    Clone,
    /// Copy the data.
    Copy,
    /// Hardlink.
    Hardlink,
    /// Symlink.
    Symlink,
}

/// Why an attempt did not work, as the `cowtree-fs` primitives report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The clone was unsupported, for the pair or (per its cause) for this file.
    Clone(UnsupportedCause),
    /// The hardlink was refused, for the pair or (EMLINK) for this file.
    Hardlink(HardlinkRefusal),
    /// The source file was gone.
    SourceVanished,
}

impl Failure {
    /// True when the failure is about this file only.
    pub fn is_per_file(self) -> bool {
        match self {
            Failure::Clone(c) => c.is_per_file(),
            Failure::Hardlink(r) => r.is_per_file(),
            Failure::SourceVanished => true,
        }
    }

    /// A short stable name for reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Clone(c) => c.as_str(),
            Failure::Hardlink(r) => r.as_str(),
            Failure::SourceVanished => "source-vanished",
        }
    }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try `attempt` for this file. `batch_moved` is true when this failure moved the whole
    /// batch to a new method (report it once).
    Fallback {
        /// What to try for this file now.
        attempt: Attempt,
        /// This failure changed the batch's method.
        batch_moved: bool,
    },
    /// Stop with an error: no fallback is allowed (strict mode, a mode without fallback, or a
    /// pair-wide failure after the method had already worked).
    Fail,
}

/// The fallback state of one (source device, destination device) pair. Small and `Copy`, so
/// a batch keeps one per pair and transitions are named methods, not flags in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    attempt: Attempt,
    worked: bool,
    strict: bool,
}

impl LinkState {
    /// The starting state for `mode`.
    pub fn new(mode: LinkMode, strict: bool) -> Self {
        let attempt = match mode {
            LinkMode::Auto | LinkMode::Clone => Attempt::Clone,
            LinkMode::Copy => Attempt::Copy,
            LinkMode::Hardlink => Attempt::Hardlink,
            LinkMode::Symlink => Attempt::Symlink,
        };
        Self {
            attempt,
            worked: false,
            strict,
        }
    }

    /// The method to try for the next file.
    pub fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// Whether the current method has worked at least once.
    pub fn has_worked(&self) -> bool {
        self.worked
    }

    /// Records that `attempt` worked.
    pub fn succeeded(&mut self, attempt: Attempt) {
        if attempt == self.attempt {
            self.worked = true;
        }
    }

    /// Records that `tried` failed with `failure` and says what to do for this file.
    ///
    /// `tried` may differ from [`LinkState::attempt`] when another worker moved the batch
    /// in the meantime; that failure then only needs the file redone with the current method.
    pub fn failed(&mut self, tried: Attempt, failure: Failure) -> Decision {
        if self.strict {
            return Decision::Fail;
        }
        let next = match (tried, failure) {
            (Attempt::Clone, Failure::Clone(_) | Failure::SourceVanished) => Attempt::Copy,
            (Attempt::Hardlink, Failure::Hardlink(_) | Failure::SourceVanished) => Attempt::Copy,
            _ => return Decision::Fail,
        };
        if failure.is_per_file() {
            return Decision::Fallback {
                attempt: next,
                batch_moved: false,
            };
        }
        if tried != self.attempt {
            // Another file already moved the batch away from `tried`.
            return Decision::Fallback {
                attempt: self.attempt,
                batch_moved: false,
            };
        }
        if self.worked {
            return Decision::Fail;
        }
        self.attempt = next;
        self.worked = false;
        Decision::Fallback {
            attempt: next,
            batch_moved: true,
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
