//! Entity actors and the command bus.
//!
//! Commands reach one ractor actor per entity (per book, per user) through a [`CommandBus`]. The actor
//! decides with the pure domain, appends the events with the expected version, and records the command
//! id with them, so a retried command returns its first outcome and appends nothing.

pub mod bulk;
mod bus;
pub mod clock;
pub mod cluster;
mod entity;
mod envelope;
pub mod lending;
mod process;
mod registry;
mod slots;
pub mod store;

pub use bus::{Command, CommandBus, LocalBus};
pub use entity::ActorConfig;
pub use envelope::{
    CommandEnvelope, CommandError, CommandOutcome, Rejection, RejectionKind, new_traceparent,
};
pub use registry::Entities;
