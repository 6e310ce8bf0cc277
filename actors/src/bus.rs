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
        Self {
            books: Entities::new(store.clone(), config.clone()),
            users: Entities::new(store.clone(), config.clone()),
            lendings: Entities::new(store.clone(), config.clone()),
            clubs: Entities::new(store.clone(), config.clone()),
            threads: Entities::new(store.clone(), config.clone()),
            stocks: Entities::new(store.clone(), config.clone()),
            orders: Entities::new(store, config),
        }
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
    #[tracing::instrument(name = "bus.dispatch", skip_all, fields(bus = "local", command_id = %envelope.command_id))]
    async fn dispatch(
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
