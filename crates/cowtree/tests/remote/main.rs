//! The remote commands against a real S3 server (SeaweedFS, started by scripts/test.sh), one test
//! binary: each module was its own file in tests/ before, and keeps its tests' names.

#[path = "../common/mod.rs"]
mod common;

mod remote;
mod remote_gc;
mod remote_stream;
