//! One module per subcommand.

pub mod clone;
pub mod probe;
