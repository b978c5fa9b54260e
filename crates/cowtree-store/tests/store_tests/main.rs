//! cowtree-store's tests, one test binary (one link instead of six): each module was its own file
//! in tests/ before, and keeps its tests' names (`store::...`). stop_staging.rs (the process-wide
//! staging gate) and ingest_writer_processes.rs (its own harness) stay binaries of their own.

mod checkout_arriving;
mod checkout_blobs;
mod dest_staging;
mod ingest_writers;
mod progress;
mod source;
mod store;
