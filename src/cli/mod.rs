//! Operator subcommands.
pub(crate) mod events;
pub(crate) mod import;
