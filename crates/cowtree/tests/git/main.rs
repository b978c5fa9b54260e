//! The git commands end to end, one test binary (one link instead of eight): each module was its
//! own file in tests/ before, and keeps its tests' names (`git_worktree::...`).

#[path = "../common/mod.rs"]
mod common;

mod git_concurrency;
mod git_conversions;
mod git_donors;
mod git_handover;
mod git_hook;
mod git_interrupt;
mod git_options;
mod git_pool;
mod git_reads;
mod git_subvolume;
mod git_worktree;
