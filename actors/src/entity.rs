//! The entity actor: a thin ractor shell around an aggregate's `decide` and `apply`.
//!
//! One actor per entity handles that entity's commands one at a time. It loads its state from the
//! entity's stream on first use, decides, appends with the expected version, and on a version conflict
//! (another writer, such as another node) catches up and decides again, a bounded number of times.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use quire_domain::{Aggregate, CommandContext, DomainEvent};
use quire_store::{
    AppendOutcome, AppendRequest, DynEventStore, EventMetadata, EventStore, ExpectedVersion,
    NewEvent, PendingCommand, RecordedEvent, StoreError, now_micros,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use crate::envelope::{
    CommandEnvelope, CommandError, CommandOutcome, Rejection, fingerprint, replay,
};
use crate::slots::{Slot, Slots};

/// Tuning for entity actors.
#[derive(Debug, Clone)]
pub struct ActorConfig {
    /// An actor idle this long stops and frees its memory; the next command reloads it.
    pub idle_timeout: Duration,
    /// How often an actor checks whether it is idle.
    pub idle_check: Duration,
    /// How many times a command is re-decided after version conflicts before giving up.
    pub max_conflict_retries: u32,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            idle_check: Duration::from_secs(30),
            max_conflict_retries: 5,
        }
    }
}

/// Messages an entity actor handles.
pub(crate) enum EntityMsg<A: Aggregate> {
    Execute {
        envelope: CommandEnvelope<A::Command>,
        reply: oneshot::Sender<Result<CommandOutcome, CommandError>>,
    },
    /// Periodic idleness check.
    Tick,
}

/// The handle of a running entity actor, as kept in the live-actor table.
pub(crate) type EntityRef<A> = ActorRef<EntityMsg<A>>;

/// The actor type (stateless; the state lives in [`EntityState`]).
pub(crate) struct EntityActor<A>(std::marker::PhantomData<fn() -> A>);

impl<A> EntityActor<A> {
    pub(crate) fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

pub(crate) struct EntityArgs<A: Aggregate> {
    pub(crate) key: String,
    pub(crate) store: DynEventStore,
    /// The table this actor is registered in, through which it passivates.
    pub(crate) slots: Arc<Slots<EntityRef<A>>>,
    pub(crate) slot: Arc<Slot<EntityRef<A>>>,
    pub(crate) config: ActorConfig,
}

pub(crate) struct EntityState<A: Aggregate> {
    args: EntityArgs<A>,
    stream_id: String,
    /// `None` until loaded, and again after a failure that may have left it inconsistent.
    aggregate: Option<A>,
    version: u64,
    last_active: Instant,
}

impl<A: Aggregate> Actor for EntityActor<A> {
    type Msg = EntityMsg<A>;
    type State = EntityState<A>;
    type Arguments = EntityArgs<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(args.config.idle_check, || EntityMsg::Tick);
        Ok(EntityState {
            stream_id: format!("{}-{}", A::CATEGORY, args.key),
            args,
            aggregate: None,
            version: 0,
            last_active: Instant::now(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            EntityMsg::Execute {
                mut envelope,
                reply,
            } => {
                let span = tracing::info_span!(
                    "actor.execute",
                    stream = %state.stream_id,
                    command_id = %envelope.command_id,
                    correlation_id = %envelope.correlation_id,
                );
                // The dispatcher's span (another task's, maybe another node's) is the parent;
                // the events written carry this span, for the projections to link to.
                quire_store::telemetry::adopt(&span, envelope.traceparent.as_deref());
                if let Some(own) = quire_store::telemetry::traceparent(&span) {
                    envelope.traceparent = Some(own);
                }
                // A panicking `decide` or `apply` fails this command only: the actor drops its
                // possibly half-applied state, reloads it on the next command, and lives on.
                let result = AssertUnwindSafe(state.execute(envelope))
                    .catch_unwind()
                    .instrument(span)
                    .await
                    .unwrap_or_else(|panic| {
                        state.aggregate = None;
                        let message = panic_message(&panic);
                        tracing::error!(stream = %state.stream_id, %message, "command handler panicked");
                        Err(CommandError::HandlerPanicked(message))
                    });
                state.last_active = Instant::now();
                state.args.slot.finished();
                let _ = reply.send(result);
            }
            EntityMsg::Tick => {
                if state.last_active.elapsed() >= state.args.config.idle_timeout
                    && state
                        .args
                        .slots
                        .try_passivate(&state.args.key, &state.args.slot)
                {
                    tracing::debug!(stream = %state.stream_id, "passivating idle entity");
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".into())
}

impl<A: Aggregate> EntityState<A> {
    /// Brings the aggregate up to the stream's latest version.
    async fn catch_up(&mut self) -> Result<(), CommandError> {
        let (mut aggregate, after) = match self.aggregate.take() {
            Some(a) => (a, self.version),
            None => (A::default(), 0),
        };
        let version = fold_stream(
            &*self.args.store,
            &self.stream_id,
            &mut aggregate,
            after,
            |_| {},
        )
        .await?;
        self.aggregate = Some(aggregate);
        self.version = version;
        Ok(())
    }

    async fn execute(
        &mut self,
        envelope: CommandEnvelope<A::Command>,
    ) -> Result<CommandOutcome, CommandError> {
        let fingerprint = fingerprint(
            &envelope.principal,
            &envelope.command,
            envelope.expected_version,
        );
        let ctx = CommandContext {
            principal: envelope.principal.clone(),
        };
        let attempts = self.args.config.max_conflict_retries + 1;
        for _ in 0..attempts {
            if self.aggregate.is_none() {
                self.catch_up().await?;
            }
            if let Some(expected) = envelope.expected_version
                && expected != self.version
            {
                // Another node may have written since this actor last looked: only the stream's
                // tail can tell whether the sender's version is really stale.
                self.catch_up().await?;
            }
            let aggregate = self.aggregate.as_ref().expect("loaded above");
            let (events, rejection) = match envelope.expected_version {
                Some(expected) if expected != self.version => (
                    Vec::new(),
                    Some(Rejection::version_mismatch(expected, self.version)),
                ),
                _ => match aggregate.decide(&envelope.command, &ctx) {
                    Ok(events) => (events, None),
                    Err(error) => (Vec::new(), Some(Rejection::from_domain(&error))),
                },
            };
            let request = AppendRequest {
                stream_id: self.stream_id.clone(),
                expected: ExpectedVersion::Exact(self.version),
                events: events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| to_new_event(&envelope, i, e))
                    .collect(),
                command: Some(PendingCommand {
                    command_id: envelope.command_id,
                    fingerprint: Some(fingerprint.clone()),
                    rejection: rejection
                        .as_ref()
                        .map(|r| serde_json::to_value(r).expect("rejections serialize")),
                }),
            };
            match self.args.store.append(request).await {
                Ok(AppendOutcome::Appended {
                    stream_version,
                    first_position,
                    last_position,
                    recorded_at,
                }) => {
                    if let Some(rejection) = rejection {
                        return Err(CommandError::Rejected(rejection));
                    }
                    let aggregate = self.aggregate.as_mut().expect("loaded above");
                    for event in &events {
                        aggregate.apply(event);
                    }
                    self.version = stream_version;
                    return Ok(CommandOutcome {
                        command_id: envelope.command_id,
                        stream_id: self.stream_id.clone(),
                        stream_version,
                        first_position,
                        last_position,
                        event_count: events.len() as u32,
                        replayed: false,
                        recorded_at,
                    });
                }
                Ok(AppendOutcome::Duplicate(record)) => {
                    if record.fingerprint.is_some()
                        && record.fingerprint.as_deref() != Some(fingerprint.as_str())
                    {
                        return Err(CommandError::KeyReused(envelope.command_id));
                    }
                    // The first attempt may have come through another node: our state may be
                    // behind, which the next command's conflict check will reveal and repair.
                    return replay(&record);
                }
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    tracing::debug!(stream = %self.stream_id, "version conflict; catching up");
                    self.catch_up().await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(CommandError::Contention {
            stream_id: self.stream_id.clone(),
            attempts,
        })
    }
}

/// Applies the events of `stream_id` after version `after` to `aggregate`, showing each stored
/// event to `seen` too, and returns the version reached.
pub(crate) async fn fold_stream<A: Aggregate>(
    store: &dyn EventStore,
    stream_id: &str,
    aggregate: &mut A,
    after: u64,
    mut seen: impl FnMut(&RecordedEvent),
) -> Result<u64, CommandError> {
    let events = quire_store::read_stream_to_end(store, stream_id, after).await?;
    let mut version = after;
    for stored in &events {
        let event =
            A::Event::from_stored(&stored.event_type, stored.schema_version, &stored.payload)
                .map_err(|e| CommandError::Corrupt {
                    stream_id: stream_id.to_owned(),
                    reason: format!("event at version {}: {e}", stored.version),
                })?;
        aggregate.apply(&event);
        seen(stored);
        version = stored.version;
    }
    Ok(version)
}

/// Builds the stored form of a decided event. Event ids derive from the command id, so a command
/// re-decided after a crash produces the same ids (which backends such as KurrentDB dedupe).
pub(crate) fn to_new_event<C, E: DomainEvent>(
    envelope: &CommandEnvelope<C>,
    index: usize,
    event: &E,
) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v5(&envelope.command_id, &(index as u64).to_be_bytes()),
        event_type: event.event_type().to_string(),
        schema_version: event.schema_version(),
        payload: event.to_payload(),
        metadata: EventMetadata {
            command_id: Some(envelope.command_id),
            causation_id: Some(envelope.causation_id.unwrap_or(envelope.command_id)),
            correlation_id: Some(envelope.correlation_id),
            actor: Some(
                envelope
                    .principal
                    .user_id
                    .map_or_else(|| "system".to_string(), |u| u.to_string()),
            ),
            occurred_at: now_micros(),
            traceparent: envelope.traceparent.clone(),
        },
    }
}
