//! cowtree-fs's tests, one test binary (one link instead of six): each module was its own file in
//! tests/ before, and keeps its tests' names (`copy::...`). stop_staging.rs, undo.rs and
//! place.rs stay binaries of their own: what they change is process-wide (the staging gate;
//! place.rs sets the process's umask, which dir.rs's and creation.rs's exact modes would see).
#![cfg(unix)]

mod copy;
mod creation;
mod dir;
mod entry_meta;
mod name_props;
mod reflink;
mod sparse;
mod subvolume;
