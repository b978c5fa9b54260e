//! cowtree-fs's tests, one test binary (one link instead of seven): each module was its own file in
//! tests/ before, and keeps its tests' names (`copy::...`). stop_staging.rs and undo.rs stay
//! binaries of their own: what they test (the staging gate) is process-wide.

mod copy;
mod creation;
mod dir;
mod name_props;
mod place;
mod reflink;
mod subvolume;
