//! cowtree-remote's tests against a real S3 server (SeaweedFS, started by scripts/test.sh), one
//! test binary (one link instead of two): each module was its own file in tests/ before, and keeps
//! its tests' names (`s3::...`, `gc::...`).
//! Unix only: they mount real filesystems (cowtree-testutil); the Windows tests are
//! tests/windows.rs.

#![cfg(unix)]

#[path = "../support/mod.rs"]
mod support;

mod arrivals;
mod gc;
mod s3;
