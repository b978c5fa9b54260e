//! cowtree-space's tests, one test binary (one link instead of two): each module was its own file
//! in tests/ before, and keeps its tests' names (`disk_usage::...`). Unix only: they use
//! cowtree-testutil's mounts and FIEMAP; tests/windows.rs is the Windows one.
#![cfg(unix)]

mod dedupe_files;
mod disk_usage;
