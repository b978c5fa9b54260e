//! Hardening against hostile input and faults on real mounts, one test binary (one link instead
//! of five): each module was its own file in tests/ before, and keeps its tests' names.

#[path = "../common/mod.rs"]
mod common;

mod hardening_dest;
mod hardening_faults;
mod hardening_manifest;
mod hardening_source;
mod hardening_worktree;
mod plant;
