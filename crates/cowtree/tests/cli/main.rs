//! The binary's commands end to end on real mounts, one test binary (one link instead of
//! twenty): each module was its own file in tests/ before, and keeps its tests' names
//! (`clone::...`, `usability::...`). The git commands, the hardening tests and the remote tests
//! have binaries of their own (tests/git, tests/hardening, tests/remote), and so have the heavy
//! power-loss and scale tests (tests/crash.rs, tests/scale.rs).

#[path = "../common/mod.rs"]
mod common;

mod cli_options;
mod clone;
mod clone_archive;
mod clone_merge;
mod clone_preserve;
mod clone_record;
mod clone_subvolume;
mod completions_man;
mod messages;
mod modes;
mod probe;
mod records;
mod snapshot_archive;
mod snapshot_archive_json;
mod space;
mod store;
mod store_access;
mod stores;
mod stores_rm;
mod subvolume_cmd;
mod subvolume_store;
mod usability;
mod worktree;
