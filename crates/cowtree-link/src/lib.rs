//! cowtree-link: links a source tree into a destination, one mode for the whole batch with a
//! fallback that tells the truth about what ran.
//!
//! [`state::LinkState`] is the fallback policy for one (source device, destination device)
//! pair, as plain code.

#![warn(missing_docs)]

pub mod state;

pub use state::{Attempt, Decision, Failure, LinkMode, LinkState};
