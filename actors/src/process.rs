//! What the processes of [`crate::lending`] and [`crate::store`] share: their steps go through the
//! command bus correlated with the request that started them, internal steps run as the system
//! with ids derived from the process's entity, and a keyed retry's first step is answered from
//! the first attempt's record.

use quire_domain::Principal;
use quire_store::{CommandRecord, EventStore};
use uuid::Uuid;

use crate::bus::{Command, CommandBus};
use crate::envelope::{CommandEnvelope, CommandError, CommandOutcome, replay};
use crate::lending::{Origin, step_id};

/// Sends a process's steps over a command bus; `store` (when there is one) answers keyed retries.
pub(crate) struct Steps<'a> {
    bus: &'a dyn CommandBus,
    store: Option<&'a dyn EventStore>,
    traceparent: Option<String>,
    correlation_id: Option<Uuid>,
}

impl<'a> Steps<'a> {
    /// Steps with no request behind them (the scheduler's).
    pub(crate) fn new(bus: &'a dyn CommandBus, store: Option<&'a dyn EventStore>) -> Self {
        Self {
            bus,
            store,
            traceparent: None,
            correlation_id: None,
        }
    }

    /// Steps correlated with the request in `origin`.
    pub(crate) fn for_request(
        bus: &'a dyn CommandBus,
        store: Option<&'a dyn EventStore>,
        origin: &Origin,
    ) -> Self {
        Self {
            bus,
            store,
            traceparent: origin.traceparent.clone(),
            correlation_id: Some(origin.command_id),
        }
    }

    /// The store that answers keyed retries, if any.
    pub(crate) fn store(&self) -> Option<&'a dyn EventStore> {
        self.store
    }

    /// Sends one command, correlated with the request (and caused by it, unless it is the
    /// request's own command).
    pub(crate) async fn send(
        &self,
        principal: Principal,
        command_id: Uuid,
        command: Command,
    ) -> Result<CommandOutcome, CommandError> {
        let mut envelope = CommandEnvelope::new(principal, command).with_command_id(command_id);
        if let Some(correlation) = self.correlation_id {
            envelope.correlation_id = correlation;
            if correlation != command_id {
                envelope.causation_id = Some(correlation);
            }
        }
        envelope.traceparent = self.traceparent.clone();
        self.bus.dispatch(envelope).await
    }

    /// An internal step of the process of `entity` (a loan, hold or order id): run by the
    /// system, with its id derived from the entity and the step's name.
    pub(crate) async fn step(
        &self,
        entity: Uuid,
        name: &str,
        command: Command,
    ) -> Result<CommandOutcome, CommandError> {
        self.send(Principal::system(), step_id(entity, name), command)
            .await
    }

    /// The outcome the store recorded for a keyed request's first step, if it ran before.
    pub(crate) async fn recorded(
        &self,
        origin: &Origin,
    ) -> Result<Option<CommandRecord>, CommandError> {
        match self.store {
            Some(store) if origin.keyed => Ok(store.command(origin.command_id).await?),
            _ => Ok(None),
        }
    }

    /// Runs a request's first step. A keyed retry is answered from the first attempt's record:
    /// the commands carry the time they were sent at, so the retry's command differs from the
    /// first one's by that time alone (the command id covers caller, route and key).
    pub(crate) async fn first_step(
        &self,
        origin: &Origin,
        command: Command,
    ) -> Result<CommandOutcome, CommandError> {
        if let Some(record) = self.recorded(origin).await? {
            return replay(&record);
        }
        match self
            .send(origin.principal.clone(), origin.command_id, command)
            .await
        {
            // Two attempts with one key raced: the other one's outcome is the answer.
            Err(CommandError::KeyReused(id)) => match self.recorded(origin).await? {
                Some(record) => replay(&record),
                None => Err(CommandError::KeyReused(id)),
            },
            other => other,
        }
    }
}
