//! The store's error type. Messages name the path, blob or snapshot concerned.

use std::io;

use crate::manifest::ManifestError;

/// An error from a store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error; the message names the path.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A refusal or a failure described in words.
    #[error("{0}")]
    Msg(String),
    /// `--strict` refused a fallback (copy instead of clone, or a cross-device checkout).
    #[error("{0}")]
    Strict(String),
    /// A manifest that does not decode or validate; `context` says which one.
    #[error("{context}: {source}")]
    Manifest {
        /// Which manifest (a snapshot id or a file name).
        context: String,
        /// What is wrong with it.
        source: ManifestError,
    },
}

impl Error {
    /// An error described by `msg`.
    pub fn msg(msg: impl Into<String>) -> Error {
        Error::Msg(msg.into())
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
