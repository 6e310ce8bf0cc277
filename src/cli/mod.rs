//! Operator subcommands.
pub(crate) mod events;
