//! Exit codes and the error type commands return.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | an error (the message names the path) |
//! | 2 | bad usage (from clap) |
//! | 3 | `--strict` refused a fallback |
//! | 4 | the check found problems (`verify`, `status --exit-code` uses 1 as git does) |

use std::fmt;
use std::process::ExitCode;

/// Successful completion with a chosen exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit 0.
    Ok,
    /// Exit with this code (e.g. 1 for "dirty" under `status --exit-code`).
    Code(u8),
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Code(c) => ExitCode::from(c),
        }
    }
}

/// A command failure: a message for stderr and an exit code.
#[derive(Debug)]
pub struct CliError {
    msg: String,
    code: u8,
}

impl CliError {
    /// A general error (exit 1).
    pub fn new(msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            code: 1,
        }
    }

    /// An error with a specific exit code.
    pub fn with_code(msg: impl Into<String>, code: u8) -> Self {
        Self {
            msg: msg.into(),
            code,
        }
    }

    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e.to_string())
    }
}

/// What every command returns.
pub type CmdResult = Result<Exit, CliError>;

impl From<cowtree_store::Error> for CliError {
    fn from(e: cowtree_store::Error) -> Self {
        let code = if e.is_strict_refusal() { 3 } else { 1 };
        Self::with_code(e.to_string(), code)
    }
}
