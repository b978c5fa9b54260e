//! What every remote command reports the same way: a remote error with its exit code, and a
//! byte count.

use crate::exit::CliError;
use crate::units;

/// A remote error with its exit code (docs/remote.md): 5 name conflict, 6 access denied or
/// missing bucket, 7 corrupt or missing remote data, 8 no such snapshot there, 1 anything else.
pub fn remote_error(e: cowtree_remote::Error) -> CliError {
    CliError::with_code(e.to_string(), e.exit_code())
}

/// "1.2 MiB" and the like.
pub fn human(n: u64) -> String {
    units::bytes(n)
}
