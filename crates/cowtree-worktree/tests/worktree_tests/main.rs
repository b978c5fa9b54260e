//! cowtree-worktree's tests, one test binary (one link instead of three): each module was its own
//! file in tests/ before, and keeps its tests' names (`lifecycle::...`).
//! Unix only: they mount real filesystems (cowtree-testutil); the Windows tests are
//! tests/windows.rs.

#![cfg(unix)]

mod checkout_cache;
mod lifecycle;
mod record;
