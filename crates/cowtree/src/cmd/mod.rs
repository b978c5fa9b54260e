//! One module per subcommand.

pub mod dedupe;
pub mod du;
pub mod probe;
