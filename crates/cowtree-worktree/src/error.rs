//! Errors: the store's type (see [`cowtree_store::error`]), whose variants cover the worktree
//! layer's conditions too (a worktree with changes, an entry in the way, an interrupted
//! switch), and whose messages name the path concerned.

pub use cowtree_store::error::{Corrupt, Error, NotFound, Result};
