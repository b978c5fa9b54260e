//! Errors: the store's type, whose messages name the path concerned.

pub use cowtree_store::error::{Error, Result};
