//! Quire's pure domain: aggregates, their commands and events, and the rules that decide between them.
//!
//! Nothing in this crate performs IO or reads a clock. An aggregate is rebuilt by applying its stored
//! events in order ([`Aggregate::apply`]) and answers a command with new events or a typed error
//! ([`Aggregate::decide`]). The surrounding crates store the events, run one actor per entity and
//! translate errors into responses through [`DomainError::code`] and [`DomainError::kind`].
//!
//! Events cross the storage boundary through [`DomainEvent`]: every event type has an explicit schema
//! version and a hand-written payload shape, so renaming a Rust field can never silently change what
//! is stored, and older payloads are upcast when they are read.

mod aggregate;
mod auth;
pub mod book;
pub mod club;
pub mod ids;
pub mod import;
pub mod lending;
mod serde_util;
pub mod store;
pub mod testing;
pub mod thread;
pub mod user;
pub mod values;

pub use aggregate::{Aggregate, DomainError, DomainEvent, ErrorKind, EventDecodeError};
pub use auth::{CommandContext, Principal, Role};
