//! The command bus: how a command reaches the actor that owns its entity.
//!
//! The API and engines depend only on [`CommandBus`]. [`LocalBus`] delivers to actors in this
//! process; the NATS bus (its own issue) routes the same serializable [`Command`] to the node that
//! holds the entity's partition.

use std::time::Duration;

use async_trait::async_trait;
use quire_domain::book::{Book, BookCommand};
use quire_domain::club::{Club, ClubCommand};
use quire_domain::ids::{BookId, ClubId, OrderId, ThreadId, UserId};
use quire_domain::lending::{Lending, LendingCommand};
use quire_domain::store::{Order, OrderCommand, Stock, StockCommand};
use quire_domain::thread::{Thread, ThreadCommand};
use quire_domain::user::{User, UserCommand};
use quire_store::DynEventStore;
use serde::{Deserialize, Serialize};

use crate::entity::ActorConfig;
use crate::envelope::{CommandEnvelope, CommandError, CommandOutcome, Rejection};
use crate::registry::Entities;

/// Every command Quire's entities accept, addressed to one entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "snake_case")]
pub enum Command {
    Book {
        book_id: BookId,
        command: BookCommand,
    },
    User {
        user_id: UserId,
        command: UserCommand,
    },
    /// A command to a book's circulation (its copies, loans and holds).
    Lending {
        book_id: BookId,
        command: LendingCommand,
    },
    /// A command to a book club (membership and voting rounds).
    Club {
        club_id: ClubId,
        command: ClubCommand,
    },
    /// A command to a discussion thread.
    Thread {
        thread_id: ThreadId,
        command: ThreadCommand,
    },
    /// A command to a book's stock in the bookstore (price, copies left, reservations).
    Stock {
        book_id: BookId,
        command: StockCommand,
    },
    /// A command to a bookstore order.
    Order {
        order_id: OrderId,
        command: OrderCommand,
    },
}

impl Command {
    /// The id of the stream the command writes to, e.g. `book-<uuid>`.
    pub fn stream_id(&self) -> String {
        match self {
            Self::Book { book_id, .. } => book_id.stream_id(),
            Self::User { user_id, .. } => user_id.stream_id(),
            Self::Lending { book_id, .. } => book_id.lending_stream_id(),
            Self::Club { club_id, .. } => club_id.stream_id(),
            Self::Thread { thread_id, .. } => thread_id.stream_id(),
            Self::Stock { book_id, .. } => book_id.stock_stream_id(),
            Self::Order { order_id, .. } => order_id.stream_id(),
        }
    }

    /// The command's name, such as `book.add_book`: its entity and its `type`.
    pub fn name(&self) -> String {
        let (entity, tag) = match self {
            Command::Book { command, .. } => ("book", type_tag(command)),
            Command::User { command, .. } => ("user", type_tag(command)),
            Command::Lending { command, .. } => ("lending", type_tag(command)),
            Command::Club { command, .. } => ("club", type_tag(command)),
            Command::Thread { command, .. } => ("thread", type_tag(command)),
            Command::Stock { command, .. } => ("stock", type_tag(command)),
            Command::Order { command, .. } => ("order", type_tag(command)),
        };
        format!("{entity}.{tag}")
    }
}

/// The `type` tag of an internally tagged command, which serde writes first: only the start of
/// the JSON is produced (a review's text is not copied to learn that it is `add_review`).
fn type_tag<T: Serialize>(command: &T) -> String {
    struct Prefix(Vec<u8>);
    impl std::io::Write for Prefix {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.0.len() >= 64 {
                return Err(std::io::Error::other("enough of the command read"));
            }
            self.0.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut prefix = Prefix(Vec::with_capacity(96));
    let _ = serde_json::to_writer(&mut prefix, command);
    let text = String::from_utf8_lossy(&prefix.0);
    text.strip_prefix("{\"type\":\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
        .to_string()
}

/// Delivers commands to entities and returns their outcome.
#[async_trait]
pub trait CommandBus: Send + Sync + 'static {
    async fn dispatch(
        &self,
        envelope: CommandEnvelope<Command>,
    ) -> Result<CommandOutcome, CommandError>;
}

/// The in-process bus: the entity actors live in this process.
#[derive(Clone)]
pub struct LocalBus {
    books: Entities<Book>,
    users: Entities<User>,
    lendings: Entities<Lending>,
    clubs: Entities<Club>,
    threads: Entities<Thread>,
    stocks: Entities<Stock>,
    orders: Entities<Order>,
}

impl LocalBus {
    pub fn new(store: DynEventStore, config: ActorConfig) -> Self {
        let bus = Self {
            books: Entities::new(store.clone(), config.clone()),
            users: Entities::new(store.clone(), config.clone()),
            lendings: Entities::new(store.clone(), config.clone()),
            clubs: Entities::new(store.clone(), config.clone()),
            threads: Entities::new(store.clone(), config.clone()),
            stocks: Entities::new(store.clone(), config.clone()),
            orders: Entities::new(store, config),
        };
        bus.observe_live_actors();
        bus
    }

    /// Reports the live actors per entity type as the gauge `quire.actors.live`. The callback
    /// holds the registries weakly, so a dropped bus stops reporting.
    fn observe_live_actors(&self) {
        let kinds: Vec<(&'static str, crate::registry::LiveCount)> = vec![
            ("book", self.books.live_weak()),
            ("user", self.users.live_weak()),
            ("lending", self.lendings.live_weak()),
            ("club", self.clubs.live_weak()),
            ("thread", self.threads.live_weak()),
            ("stock", self.stocks.live_weak()),
            ("order", self.orders.live_weak()),
        ];
        quire_store::telemetry::meter()
            .u64_observable_gauge("quire.actors.live")
            .with_description("Entity actors alive on this node, by entity type")
            .with_callback(move |observer| {
                for (kind, live) in &kinds {
                    if let Some(count) = live() {
                        observer.observe(
                            count as u64,
                            &[opentelemetry::KeyValue::new("entity", *kind)],
                        );
                    }
                }
            })
            .build();
    }

    /// Live actors per entity type (books, users), for status pages and tests.
    pub fn live_actors(&self) -> (usize, usize) {
        (self.books.live(), self.users.live())
    }

    /// Live lending actors (one per book with circulation activity).
    pub fn live_lending_actors(&self) -> usize {
        self.lendings.live()
    }

    /// Drains every actor's queue and stops it.
    pub async fn shutdown(&self, timeout: Duration) {
        futures::join!(
            self.books.shutdown(timeout),
            self.users.shutdown(timeout),
            self.lendings.shutdown(timeout),
            self.clubs.shutdown(timeout),
            self.threads.shutdown(timeout),
            self.stocks.shutdown(timeout),
            self.orders.shutdown(timeout)
        );
    }
}

#[async_trait]
impl CommandBus for LocalBus {
    #[tracing::instrument(name = "bus.dispatch", skip_all, fields(bus = "local", command_id = %envelope.command_id, command))]
    async fn dispatch(
        &self,
        mut envelope: CommandEnvelope<Command>,
    ) -> Result<CommandOutcome, CommandError> {
        // The actor runs on its own task: it continues the trace from this span.
        envelope.traceparent = quire_store::telemetry::pass_on(envelope.traceparent.take());
        let name = envelope.command.name();
        tracing::Span::current().record("command", name.as_str());
        let result = self.deliver(envelope).await;
        COMMANDS.add(
            1,
            &[
                opentelemetry::KeyValue::new("command", name),
                opentelemetry::KeyValue::new("outcome", outcome_label(&result)),
            ],
        );
        result
    }
}

/// Commands executed here, by command and outcome.
static COMMANDS: std::sync::LazyLock<opentelemetry::metrics::Counter<u64>> =
    std::sync::LazyLock::new(|| {
        quire_store::telemetry::meter()
            .u64_counter("quire.commands")
            .with_description("Commands executed by this node's actors, by command and outcome")
            .build()
    });

/// The `outcome` of a command for telemetry: `ok`, `replayed` (an identical retry), or why not.
fn outcome_label(result: &Result<CommandOutcome, CommandError>) -> &'static str {
    match result {
        Ok(outcome) if outcome.replayed => "replayed",
        Ok(_) => "ok",
        Err(CommandError::Rejected(_)) => "rejected",
        Err(CommandError::KeyReused(_)) => "key_reused",
        Err(CommandError::Unavailable(_)) => "unavailable",
        Err(_) => "failed",
    }
}

impl LocalBus {
    async fn deliver(
        &self,
        envelope: CommandEnvelope<Command>,
    ) -> Result<CommandOutcome, CommandError> {
        match envelope.command.clone() {
            Command::Book { book_id, command } => {
                self.books
                    .execute(&book_id.to_string(), envelope.map(|_| command))
                    .await
            }
            Command::User { user_id, command } => {
                self.users
                    .execute(&user_id.to_string(), envelope.map(|_| command))
                    .await
            }
            Command::Lending { book_id, command } => {
                self.lendings
                    .execute(&book_id.to_string(), envelope.map(|_| command))
                    .await
            }
            Command::Club { club_id, command } => {
                // A command naming another club than its stream's is refused before it runs.
                command
                    .check_stream(club_id)
                    .map_err(|e| CommandError::Rejected(Rejection::from_domain(&e)))?;
                self.clubs
                    .execute(&club_id.to_string(), envelope.map(|_| command))
                    .await
            }
            Command::Thread { thread_id, command } => {
                command
                    .check_stream(thread_id)
                    .map_err(|e| CommandError::Rejected(Rejection::from_domain(&e)))?;
                self.threads
                    .execute(&thread_id.to_string(), envelope.map(|_| command))
                    .await
            }
            Command::Stock { book_id, command } => {
                self.stocks
                    .execute(&book_id.to_string(), envelope.map(|_| command))
                    .await
            }
            Command::Order { order_id, command } => {
                self.orders
                    .execute(&order_id.to_string(), envelope.map(|_| command))
                    .await
            }
        }
    }
}
