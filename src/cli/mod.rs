//! Operator subcommands.
pub(crate) mod cluster;
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod lending;
pub(crate) mod projections;
pub(crate) mod recs;
pub(crate) mod summarize;
