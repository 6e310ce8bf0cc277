//! A given/when/then harness for aggregates, usable from any crate's tests.
//!
//! ```
//! use quire_domain::book::{Book, BookCommand};
//! use quire_domain::ids::UserId;
//! use quire_domain::testing::Given;
//! use quire_domain::CommandContext;
//!
//! Given::<Book>::nothing()
//!     .when(BookCommand::RemoveBook, CommandContext::admin(UserId::new()))
//!     .then_error("not_found");
//! ```
//!
//! Besides the outcome the harness checks what a test would otherwise forget: every given and
//! emitted event survives `to_payload`/`from_stored` unchanged, the command survives a JSON round
//! trip, and deciding the decoded command gives the same outcome, so stored and wire schemas are
//! exercised by every test.

use std::fmt::{Debug, Write as _};

use crate::aggregate::{Aggregate, DomainError, DomainEvent};
use crate::auth::CommandContext;

/// The history an aggregate is rebuilt from.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// No history: the aggregate does not exist yet.
    pub fn nothing() -> Self {
        Self {
            state: A::default(),
        }
    }

    /// Rebuilds the aggregate from these events, checking that each round-trips through storage.
    #[track_caller]
    pub fn events(events: Vec<A::Event>) -> Self {
        let mut state = A::default();
        for event in &events {
            assert_round_trips(event);
            state.apply(event);
        }
        Self { state }
    }

    /// The rebuilt state, for assertions before a command.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides a command against the rebuilt state.
    #[track_caller]
    pub fn when(self, command: A::Command, ctx: CommandContext) -> When<A> {
        let outcome = self.state.decide(&command, &ctx);
        let decoded = assert_command_round_trips::<A>(&command);
        let decoded_outcome = self.state.decide(&decoded, &ctx);
        assert_same_outcome::<A>(&outcome, &decoded_outcome);
        When {
            state: self.state,
            command,
            outcome,
        }
    }
}

/// The outcome of one command, waiting for expectations.
#[derive(Debug)]
pub struct When<A: Aggregate> {
    state: A,
    command: A::Command,
    outcome: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> When<A> {
    /// The raw outcome, for expectations the `then_*` methods do not cover.
    pub fn outcome(&self) -> &Result<Vec<A::Event>, A::Error> {
        &self.outcome
    }

    /// Expects exactly these events and returns the state after applying them.
    #[track_caller]
    pub fn then_events(self, expected: Vec<A::Event>) -> A {
        let actual = match self.outcome {
            Ok(events) => events,
            Err(error) => panic!(
                "expected {} event(s) but the command was refused with {:?} ({error})\ncommand: {:#?}\nexpected: {expected:#?}",
                expected.len(),
                error.code(),
                self.command,
            ),
        };
        if actual != expected {
            panic!(
                "emitted events differ from the expected ones\ncommand: {:#?}\n{}",
                self.command,
                event_diff(&expected, &actual)
            );
        }
        let mut state = self.state;
        for event in &actual {
            assert_round_trips(event);
            state.apply(event);
        }
        state
    }

    /// Expects the command to be accepted without any change.
    #[track_caller]
    pub fn then_no_events(self) -> A {
        self.then_events(Vec::new())
    }

    /// Expects a refusal with this error code and returns the error for further checks.
    #[track_caller]
    pub fn then_error(self, code: &str) -> A::Error {
        match self.outcome {
            Err(error) if error.code() == code => error,
            Err(error) => panic!(
                "expected error {code:?} but got {:?} ({error})\ncommand: {:#?}",
                error.code(),
                self.command
            ),
            Ok(events) => panic!(
                "expected error {code:?} but the command was accepted\ncommand: {:#?}\nemitted: {events:#?}",
                self.command
            ),
        }
    }
}

/// Asserts that an event decodes from its own payload into an equal event.
#[track_caller]
pub fn assert_round_trips<E: DomainEvent + PartialEq + Debug>(event: &E) {
    let payload = event.to_payload();
    assert!(
        payload.is_object(),
        "payload of {} must be a json object, got {payload}",
        event.event_type()
    );
    match E::from_stored(event.event_type(), event.schema_version(), &payload) {
        Ok(decoded) if decoded == *event => {}
        Ok(decoded) => panic!(
            "event {} changed on its way through storage\npayload: {payload:#}\nbefore: {event:#?}\nafter: {decoded:#?}",
            event.event_type()
        ),
        Err(error) => panic!(
            "event {} cannot be decoded from its own payload: {error}\npayload: {payload:#}",
            event.event_type()
        ),
    }
}

/// Serializes and deserializes a command, asserting that the JSON is stable.
#[track_caller]
fn assert_command_round_trips<A: Aggregate>(command: &A::Command) -> A::Command {
    let json = serde_json::to_value(command)
        .unwrap_or_else(|error| panic!("command {command:?} does not serialize: {error}"));
    let decoded: A::Command = serde_json::from_value(json.clone())
        .unwrap_or_else(|error| panic!("command json {json:#} does not deserialize: {error}"));
    let again = serde_json::to_value(&decoded).expect("a decoded command serializes again");
    assert_eq!(
        json, again,
        "command json changed on a serialize/deserialize round trip"
    );
    decoded
}

/// Asserts that the original and the JSON-decoded command were decided alike, which also catches
/// `decide` depending on anything but its inputs.
#[track_caller]
fn assert_same_outcome<A: Aggregate>(
    original: &Result<Vec<A::Event>, A::Error>,
    decoded: &Result<Vec<A::Event>, A::Error>,
) {
    match (original, decoded) {
        (Ok(a), Ok(b)) if a == b => {}
        (Err(a), Err(b)) if a.code() == b.code() => {}
        _ => panic!(
            "the command decoded from json was decided differently\noriginal: {original:#?}\ndecoded: {decoded:#?}"
        ),
    }
}

/// Describes how two event lists differ, event by event.
fn event_diff<E: Debug + PartialEq>(expected: &[E], actual: &[E]) -> String {
    let mut out = String::new();
    if expected.len() != actual.len() {
        let _ = writeln!(
            out,
            "expected {} event(s), got {}",
            expected.len(),
            actual.len()
        );
    }
    for index in 0..expected.len().max(actual.len()) {
        match (expected.get(index), actual.get(index)) {
            (Some(e), Some(a)) if e == a => {
                let _ = writeln!(out, "  #{index} equal: {e:?}");
            }
            (Some(e), Some(a)) => {
                let _ = writeln!(
                    out,
                    "- #{index} expected: {e:#?}\n+ #{index} actual:   {a:#?}"
                );
            }
            (Some(e), None) => {
                let _ = writeln!(out, "- #{index} missing:  {e:#?}");
            }
            (None, Some(a)) => {
                let _ = writeln!(out, "+ #{index} unexpected: {a:#?}");
            }
            (None, None) => {}
        }
    }
    out
}
