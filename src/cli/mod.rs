//! Operator subcommands.
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod projections;
