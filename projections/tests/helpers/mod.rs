//! Test support: a store and read models per backend, domain events, and whole-model snapshots.

use std::sync::Arc;
use std::time::Duration;

use quire_domain::book::{BookChanges, BookEvent};
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::lending::LendingEvent;
use quire_domain::user::UserEvent;
use quire_domain::values::*;
use quire_domain::{DomainEvent, Role};
use quire_projections::{
    BookQuery, BookSort, PageRequest, ProjectionsHandle, ReadModelOptions, ReadModels,
    RunnerOptions,
};
use quire_store::{AppendOutcome, AppendRequest, DynEventStore, ExpectedVersion, NewEvent};
use sqlx::Connection;

/// How long a test waits for the projections.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
enum Kind {
    Sqlite(Arc<tempfile::TempDir>),
    Postgres(String),
}

/// An event store and read models on one backend.
#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) store: DynEventStore,
    pub(crate) read: ReadModels,
    kind: Kind,
    read_url: String,
}

impl Env {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let events = dir.path().join("events.db").display().to_string();
        let read_url = dir.path().join("read.db").display().to_string();
        let store = quire_store::open(&events, Default::default())
            .await
            .expect("store");
        let read = ReadModels::open(&read_url, ReadModelOptions::default())
            .await
            .expect("read models");
        assert_eq!(read.backend(), "sqlite");
        Self {
            store,
            read,
            kind: Kind::Sqlite(Arc::new(dir)),
            read_url,
        }
    }

    /// The store and the read models share one fresh database, as in a scaled deployment.
    pub(crate) async fn postgres() -> Self {
        let url = quire_store::testing::fresh_postgres_database().await;
        let store = quire_store::open(&url, Default::default())
            .await
            .expect("store");
        let read = ReadModels::open(&url, ReadModelOptions::default())
            .await
            .expect("read models");
        assert_eq!(read.backend(), "postgres");
        Self {
            store,
            read,
            kind: Kind::Postgres(url.clone()),
            read_url: url,
        }
    }

    pub(crate) fn spawn(&self) -> ProjectionsHandle {
        self.spawn_with(RunnerOptions::default())
    }

    pub(crate) fn spawn_with(&self, options: RunnerOptions) -> ProjectionsHandle {
        quire_projections::spawn(self.store.clone(), self.read.clone(), options)
    }

    pub(crate) fn read_url(&self) -> String {
        self.read_url.clone()
    }

    /// Other read models on the same database (as another process would open them).
    pub(crate) async fn reopen_read_models(&self) -> ReadModels {
        ReadModels::open(&self.read_url, ReadModelOptions::default())
            .await
            .expect("reopen")
    }

    /// Empty read models in a database of their own.
    pub(crate) async fn fresh_read_models(&self) -> ReadModels {
        let url = match &self.kind {
            Kind::Sqlite(dir) => dir
                .path()
                .join(format!("fresh-{}.db", uuid::Uuid::new_v4().simple()))
                .display()
                .to_string(),
            Kind::Postgres(_) => quire_store::testing::fresh_postgres_database().await,
        };
        ReadModels::open(&url, ReadModelOptions::default())
            .await
            .expect("fresh read models")
    }

    /// Moves every projection's stored checkpoint to `position` (back, to replay).
    pub(crate) async fn reset_checkpoints(&self, position: u64) {
        let sql = "UPDATE rm_checkpoints SET position = $1";
        match &self.kind {
            Kind::Sqlite(_) => {
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.read_url))
                        .await
                        .unwrap();
                sqlx::query(sql)
                    .bind(position as i64)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Kind::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sql)
                    .bind(position as i64)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    async fn append(&self, stream_id: String, events: Vec<NewEvent>) -> u64 {
        let outcome = self
            .store
            .append(AppendRequest {
                stream_id,
                expected: ExpectedVersion::Any,
                events,
                command: None,
            })
            .await
            .expect("append");
        match outcome {
            AppendOutcome::Appended { last_position, .. } => last_position,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    /// Appends book events; returns the last position.
    pub(crate) async fn append_book(&self, id: BookId, events: Vec<BookEvent>) -> u64 {
        self.append(id.stream_id(), events.iter().map(stored).collect())
            .await
    }

    pub(crate) async fn append_user(&self, id: UserId, events: Vec<UserEvent>) -> u64 {
        self.append(id.stream_id(), events.iter().map(stored).collect())
            .await
    }

    /// Appends events to a book's lending stream (as one command would); returns the last
    /// position.
    pub(crate) async fn append_lending(&self, book: BookId, events: Vec<LendingEvent>) -> u64 {
        self.append(
            book.lending_stream_id(),
            events.iter().map(stored).collect(),
        )
        .await
    }

    /// Appends a hand-written payload (old versions, broken ones).
    pub(crate) async fn append_raw(
        &self,
        stream_id: &str,
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> u64 {
        let event = NewEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version,
            payload,
            metadata: Default::default(),
        };
        self.append(stream_id.to_string(), vec![event]).await
    }

    /// A history with every kind of event: `books` books (some updated, summarized, removed),
    /// `reviews` reviews spread over them (some edited, some deleted) and a few users.
    pub(crate) async fn mixed_history(&self, books: usize, reviews: usize) -> u64 {
        let ids: Vec<BookId> = (0..books).map(|_| BookId::new()).collect();
        for (i, id) in ids.iter().enumerate() {
            let genres: &[&str] = if i % 2 == 0 {
                &["fantasy"]
            } else {
                &["history", "war"]
            };
            self.append_book(
                *id,
                vec![added(
                    *id,
                    &format!("Book {i}"),
                    &["Author", &format!("Co {}", i % 3)],
                    genres,
                    Some(1900 + i as i32),
                )],
            )
            .await;
        }
        let mut head = 0;
        let mut posted_ids = Vec::new();
        for k in 0..reviews {
            let book = ids[k % ids.len()];
            let review = ReviewId::new();
            head = self
                .append_book(book, vec![posted(review, UserId::new(), (k % 5 + 1) as u8)])
                .await;
            posted_ids.push((book, review));
        }
        for (k, (book, review)) in posted_ids.iter().enumerate().step_by(7) {
            let event = if k % 2 == 0 {
                BookEvent::ReviewEdited {
                    review_id: *review,
                    rating: Some(Rating::parse((k % 5 + 1) as u8).unwrap()),
                    text: None,
                }
            } else {
                BookEvent::ReviewDeleted {
                    review_id: *review,
                    member_id: UserId::new(),
                    deleted_by: None,
                }
            };
            head = self.append_book(*book, vec![event]).await;
        }
        for (i, id) in ids.iter().enumerate().step_by(4) {
            let event = match i % 3 {
                0 => BookEvent::BookUpdated(BookChanges {
                    title: Some(Title::parse(format!("Renamed {i}")).unwrap()),
                    authors: Some(vec![AuthorName::parse("New Author").unwrap()]),
                    ..BookChanges::default()
                }),
                1 => BookEvent::BookSummarySet {
                    summary: SummaryText::parse("Short.").unwrap(),
                    source: "test".into(),
                    provenance: None,
                },
                _ => BookEvent::BookRemoved,
            };
            head = self.append_book(*id, vec![event]).await;
        }
        for i in 0..3 {
            let user = UserId::new();
            self.append_user(
                user,
                vec![registered(
                    user,
                    &format!("User {i}"),
                    Some(Username::parse(format!("user{i}-{}", user.as_uuid().simple())).unwrap()),
                    Role::Member,
                )],
            )
            .await;
            let (liked, rated) = (ids[i % ids.len()], ids[(i + 1) % ids.len()]);
            let mut interactions = vec![
                UserEvent::BookLiked { book_id: liked },
                UserEvent::BookViewed { book_id: liked },
                UserEvent::BookViewed { book_id: rated },
                UserEvent::BookRated {
                    book_id: rated,
                    rating: Rating::parse(4).unwrap(),
                },
            ];
            if i == 2 {
                interactions.push(UserEvent::BookUnliked { book_id: liked });
            }
            head = self.append_user(user, interactions).await;
        }
        head
    }
}

fn stored<E: DomainEvent>(event: &E) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        payload: event.to_payload(),
        metadata: quire_store::EventMetadata {
            occurred_at: quire_store::now_micros(),
            ..Default::default()
        },
    }
}

pub(crate) fn added(
    id: BookId,
    title: &str,
    authors: &[&str],
    genres: &[&str],
    year: Option<i32>,
) -> BookEvent {
    BookEvent::BookAdded {
        book_id: id,
        title: Title::parse(title).unwrap(),
        authors: authors
            .iter()
            .map(|a| AuthorName::parse(*a).unwrap())
            .collect(),
        genres: genres.iter().map(|g| Genre::parse(*g).unwrap()).collect(),
        year_published: year.map(|y| Year::parse(y).unwrap()),
        isbn: Some(Isbn::parse("9780306406157").unwrap()),
        description: None,
    }
}

pub(crate) fn posted(review: ReviewId, member: UserId, rating: u8) -> BookEvent {
    BookEvent::ReviewPosted {
        review_id: review,
        member_id: member,
        rating: Rating::parse(rating).unwrap(),
        text: ReviewText::parse(format!("{rating} stars")).unwrap(),
    }
}

pub(crate) fn registered(
    id: UserId,
    name: &str,
    username: Option<Username>,
    role: Role,
) -> UserEvent {
    UserEvent::UserRegistered {
        user_id: id,
        name: PersonName::parse(name).unwrap(),
        email: username
            .as_ref()
            .map(|u| Email::parse(format!("{}@example.com", u.as_str())).unwrap()),
        username,
        role,
        password_hash: Some(
            PasswordHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap(),
        ),
    }
}

pub(crate) fn page(limit: u32) -> PageRequest {
    PageRequest {
        cursor: None,
        limit,
    }
}

/// The number of listed books, counted page by page.
pub(crate) async fn count_books(read: &ReadModels) -> usize {
    let mut query = BookQuery {
        page: page(100),
        ..BookQuery::default()
    };
    let mut n = 0;
    loop {
        let p = read.list_books(&query).await.unwrap();
        n += p.items.len();
        match p.next_cursor {
            Some(c) => query.page.cursor = Some(c),
            None => return n,
        }
    }
}

/// Everything the queries can see, as text, for comparing two read models.
pub(crate) async fn snapshot(read: &ReadModels) -> String {
    let mut out = String::new();
    let mut query = BookQuery {
        sort: BookSort::Added,
        page: page(100),
        ..BookQuery::default()
    };
    loop {
        let p = read.list_books(&query).await.unwrap();
        for b in p.items {
            out += &format!("{b:?}\n");
            let mut cursor = None;
            loop {
                let r = read
                    .reviews(b.id, &PageRequest { cursor, limit: 100 })
                    .await
                    .unwrap();
                for review in r.items {
                    out += &format!("  {review:?}\n");
                }
                match r.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        match p.next_cursor {
            Some(c) => query.page.cursor = Some(c),
            None => break,
        }
    }
    let mut cursor = None;
    loop {
        let p = read
            .list_users(&PageRequest { cursor, limit: 100 })
            .await
            .unwrap();
        for u in p.items {
            out += &format!("{u:?}\n");
        }
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let (interactions, _) = read.interaction_snapshot().await.unwrap();
    for i in interactions {
        out += &format!("{i:?}\n");
    }
    out
}
