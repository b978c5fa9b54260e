//! cowtree-link's tests, one test binary (one link instead of four): each module was its own file
//! in tests/ before, and keeps its tests' names (`linker::...`). Unix only: they use
//! cowtree-testutil's mounts and unix modes; tests/windows.rs is the Windows one.
#![cfg(unix)]

mod cancel;
mod concurrent;
mod link_tree;
mod linker;
mod preserve;
