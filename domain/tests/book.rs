//! Given/when/then tests for the book aggregate, one rule per test, plus its stored event schema.

use quire_domain::book::{
    Book, BookChanges, BookCommand, BookError, BookEvent, BookText, MAX_AUTHORS, MAX_GENRES,
};
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::values::{
    AuthorName, Description, Genre, Isbn, Rating, ReviewText, SummaryText, Title, Year,
};
use quire_domain::{
    Aggregate, CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError,
};
use serde_json::json;
use uuid::Uuid;

fn book_id() -> BookId {
    BookId::from_uuid(Uuid::from_u128(0xb00c))
}

fn review_id(n: u128) -> ReviewId {
    ReviewId::from_uuid(Uuid::from_u128(0x7e00 + n))
}

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e00 + n))
}

fn alice() -> UserId {
    user(1)
}

fn bob() -> UserId {
    user(2)
}

fn admin() -> CommandContext {
    CommandContext::admin(user(99))
}

fn title(s: &str) -> Title {
    Title::parse(s).unwrap()
}

fn author(s: &str) -> AuthorName {
    AuthorName::parse(s).unwrap()
}

fn genre(s: &str) -> Genre {
    Genre::parse(s).unwrap()
}

fn rating(n: u8) -> Rating {
    Rating::parse(n).unwrap()
}

fn text(s: &str) -> ReviewText {
    ReviewText::parse(s).unwrap()
}

fn summary(s: &str) -> SummaryText {
    SummaryText::parse(s).unwrap()
}

fn dune_added() -> BookEvent {
    BookEvent::BookAdded {
        book_id: book_id(),
        title: title("Dune"),
        authors: vec![author("Frank Herbert")],
        genres: vec![genre("science fiction")],
        year_published: Some(Year::parse(1965).unwrap()),
        isbn: Some(Isbn::parse("978-0-441-01359-3").unwrap()),
        description: Some(Description::parse("A desert planet.").unwrap()),
    }
}

fn add_dune() -> BookCommand {
    BookCommand::AddBook {
        book_id: book_id(),
        title: title("Dune"),
        authors: vec![author("Frank Herbert")],
        genres: vec![genre("science fiction")],
        year_published: Some(Year::parse(1965).unwrap()),
        isbn: Some(Isbn::parse("978-0-441-01359-3").unwrap()),
        description: Some(Description::parse("A desert planet.").unwrap()),
    }
}

fn posted(n: u128, member: UserId, stars: u8, body: &str) -> BookEvent {
    BookEvent::ReviewPosted {
        review_id: review_id(n),
        member_id: member,
        rating: rating(stars),
        text: text(body),
    }
}

fn post(n: u128, stars: u8, body: &str) -> BookCommand {
    BookCommand::PostReview {
        review_id: review_id(n),
        rating: rating(stars),
        text: text(body),
    }
}

/// An `UpdateBook` carrying exactly these changes.
fn update(changes: BookChanges) -> BookCommand {
    BookCommand::UpdateBook {
        title: changes.title,
        authors: changes.authors,
        genres: changes.genres,
        year_published: changes.year_published,
        isbn: changes.isbn,
        description: changes.description,
    }
}

fn empty_update() -> BookCommand {
    update(BookChanges::default())
}

// AddBook

#[test]
fn admin_can_add_a_book() {
    let book = Given::<Book>::nothing()
        .when(add_dune(), admin())
        .then_events(vec![dune_added()]);
    assert!(book.exists());
    assert_eq!(book.id(), Some(book_id()));
    assert_eq!(book.title(), Some(&title("Dune")));
}

#[test]
fn system_can_add_a_book() {
    Given::<Book>::nothing()
        .when(add_dune(), CommandContext::system())
        .then_events(vec![dune_added()]);
}

#[test]
fn member_cannot_add_a_book() {
    let error = Given::<Book>::nothing()
        .when(add_dune(), CommandContext::member(alice()))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn a_book_cannot_be_added_twice() {
    let error = Given::<Book>::events(vec![dune_added()])
        .when(add_dune(), admin())
        .then_error("already_exists");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_removed_book_cannot_be_added_again() {
    Given::<Book>::events(vec![dune_added(), BookEvent::BookRemoved])
        .when(add_dune(), admin())
        .then_error("already_exists");
}

#[test]
fn a_book_needs_at_least_one_author() {
    let mut command = add_dune();
    if let BookCommand::AddBook { authors, .. } = &mut command {
        authors.clear();
    }
    let error = Given::<Book>::nothing()
        .when(command, admin())
        .then_error("missing_authors");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn duplicate_genres_are_dropped_keeping_order() {
    let command = BookCommand::AddBook {
        book_id: book_id(),
        title: title("Dune"),
        authors: vec![author("Frank Herbert")],
        genres: vec![genre("SF"), genre("classic"), genre("sf"), genre("Classic")],
        year_published: None,
        isbn: None,
        description: None,
    };
    let book = Given::<Book>::nothing()
        .when(command, admin())
        .then_events(vec![BookEvent::BookAdded {
            book_id: book_id(),
            title: title("Dune"),
            authors: vec![author("Frank Herbert")],
            genres: vec![genre("sf"), genre("classic")],
            year_published: None,
            isbn: None,
            description: None,
        }]);
    assert_eq!(book.genres(), &[genre("sf"), genre("classic")]);
}

// UpdateBook

#[test]
fn an_update_records_only_the_fields_that_changed() {
    let command = BookCommand::UpdateBook {
        title: Some(title("Dune")),
        authors: Some(vec![author("Frank Herbert")]),
        genres: Some(vec![genre("classic")]),
        year_published: Some(Some(Year::parse(1966).unwrap())),
        isbn: None,
        description: None,
    };
    let book = Given::<Book>::events(vec![dune_added()])
        .when(command, admin())
        .then_events(vec![BookEvent::BookUpdated(BookChanges {
            genres: Some(vec![genre("classic")]),
            year_published: Some(Some(Year::parse(1966).unwrap())),
            ..BookChanges::default()
        })]);
    assert_eq!(book.year_published().map(Year::value), Some(1966));
    assert_eq!(book.title(), Some(&title("Dune")));
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    let command = BookCommand::UpdateBook {
        title: Some(title("Dune")),
        authors: None,
        genres: Some(vec![genre("science fiction")]),
        year_published: Some(Some(Year::parse(1965).unwrap())),
        isbn: None,
        description: None,
    };
    Given::<Book>::events(vec![dune_added()])
        .when(command, admin())
        .then_no_events();
}

#[test]
fn an_empty_update_emits_nothing() {
    Given::<Book>::events(vec![dune_added()])
        .when(empty_update(), admin())
        .then_no_events();
}

#[test]
fn an_update_can_clear_optional_metadata() {
    let command = BookCommand::UpdateBook {
        title: None,
        authors: None,
        genres: None,
        year_published: None,
        isbn: Some(None),
        description: Some(None),
    };
    let book = Given::<Book>::events(vec![dune_added()])
        .when(command, CommandContext::system())
        .then_events(vec![BookEvent::BookUpdated(BookChanges {
            isbn: Some(None),
            description: Some(None),
            ..BookChanges::default()
        })]);
    assert_eq!(book.isbn(), None);
    assert_eq!(book.description(), None);
    assert!(book.year_published().is_some());
}

#[test]
fn an_update_deduplicates_genres_before_comparing() {
    let command = update(BookChanges {
        genres: Some(vec![genre("science fiction"), genre("Science Fiction")]),
        ..BookChanges::default()
    });
    Given::<Book>::events(vec![dune_added()])
        .when(command, admin())
        .then_no_events();
}

#[test]
fn an_update_cannot_remove_all_authors() {
    let command = update(BookChanges {
        authors: Some(vec![]),
        ..BookChanges::default()
    });
    Given::<Book>::events(vec![dune_added()])
        .when(command, admin())
        .then_error("missing_authors");
}

#[test]
fn member_cannot_update_a_book() {
    let command = update(BookChanges {
        title: Some(title("Dune Messiah")),
        ..BookChanges::default()
    });
    Given::<Book>::events(vec![dune_added()])
        .when(command, CommandContext::member(alice()))
        .then_error("forbidden");
}

#[test]
fn updating_a_missing_book_is_not_found() {
    let error = Given::<Book>::nothing()
        .when(empty_update(), admin())
        .then_error("not_found");
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[test]
fn updating_a_removed_book_is_gone() {
    let error = Given::<Book>::events(vec![dune_added(), BookEvent::BookRemoved])
        .when(empty_update(), admin())
        .then_error("book_removed");
    assert_eq!(error.kind(), ErrorKind::Gone);
}

// RemoveBook

#[test]
fn admin_can_remove_a_book() {
    let book = Given::<Book>::events(vec![dune_added()])
        .when(BookCommand::RemoveBook, admin())
        .then_events(vec![BookEvent::BookRemoved]);
    assert!(book.is_removed());
    assert!(book.exists());
}

#[test]
fn member_cannot_remove_a_book() {
    Given::<Book>::events(vec![dune_added()])
        .when(BookCommand::RemoveBook, CommandContext::member(alice()))
        .then_error("forbidden");
}

#[test]
fn removing_a_missing_book_is_not_found() {
    Given::<Book>::nothing()
        .when(BookCommand::RemoveBook, admin())
        .then_error("not_found");
}

#[test]
fn removing_a_book_twice_is_gone() {
    Given::<Book>::events(vec![dune_added(), BookEvent::BookRemoved])
        .when(BookCommand::RemoveBook, admin())
        .then_error("book_removed");
}

// SetSummary

fn set_summary(body: &str, source: &str) -> BookCommand {
    BookCommand::SetSummary {
        summary: summary(body),
        source: source.to_owned(),
        provenance: None,
    }
}

#[test]
fn the_summary_engine_can_set_a_summary() {
    let book = Given::<Book>::events(vec![dune_added()])
        .when(set_summary("Spice.", "llm-v1"), CommandContext::system())
        .then_events(vec![BookEvent::BookSummarySet {
            summary: summary("Spice."),
            source: "llm-v1".to_owned(),
            provenance: None,
        }]);
    assert_eq!(book.summary(), Some(&summary("Spice.")));
    assert_eq!(book.summary_source(), Some("llm-v1"));
}

#[test]
fn member_cannot_set_a_summary() {
    Given::<Book>::events(vec![dune_added()])
        .when(set_summary("Spice.", "me"), CommandContext::member(alice()))
        .then_error("forbidden");
}

#[test]
fn a_summary_needs_an_existing_book() {
    Given::<Book>::nothing()
        .when(set_summary("Spice.", "llm-v1"), CommandContext::system())
        .then_error("not_found");
}

#[test]
fn a_removed_book_gets_no_summary() {
    Given::<Book>::events(vec![dune_added(), BookEvent::BookRemoved])
        .when(set_summary("Spice.", "llm-v1"), CommandContext::system())
        .then_error("book_removed");
}

#[test]
fn setting_the_same_summary_again_emits_nothing() {
    Given::<Book>::events(vec![
        dune_added(),
        BookEvent::BookSummarySet {
            summary: summary("Spice."),
            source: "llm-v1".to_owned(),
            provenance: None,
        },
    ])
    .when(set_summary("Spice.", " llm-v1 "), CommandContext::system())
    .then_no_events();
}

#[test]
fn a_summary_source_must_not_be_blank() {
    let error = Given::<Book>::events(vec![dune_added()])
        .when(set_summary("Spice.", "  "), CommandContext::system())
        .then_error("invalid_summary_source");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

// PostReview

#[test]
fn member_can_post_a_review() {
    let book = Given::<Book>::events(vec![dune_added()])
        .when(post(1, 5, "Loved it"), CommandContext::member(alice()))
        .then_events(vec![posted(1, alice(), 5, "Loved it")]);
    let review = book.live_review_of(alice()).expect("alice's review");
    assert_eq!(review.id(), review_id(1));
    assert_eq!(review.rating().value(), 5);
}

#[test]
fn admin_with_a_user_id_can_post_a_review() {
    Given::<Book>::events(vec![dune_added()])
        .when(post(1, 4, ""), admin())
        .then_events(vec![posted(1, user(99), 4, "")]);
}

#[test]
fn a_review_needs_a_reviewer() {
    let error = Given::<Book>::events(vec![dune_added()])
        .when(post(1, 4, "Fine"), CommandContext::system())
        .then_error("reviewer_required");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn a_member_has_at_most_one_live_review_per_book() {
    let error = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(
            post(2, 1, "Changed my mind"),
            CommandContext::member(alice()),
        )
        .then_error("review_already_exists");
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(
        error,
        BookError::ReviewAlreadyExists {
            member_id: alice(),
            review_id: review_id(1)
        }
    );
}

#[test]
fn different_members_may_review_the_same_book() {
    let book = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(post(2, 3, "Long"), CommandContext::member(bob()))
        .then_events(vec![posted(2, bob(), 3, "Long")]);
    assert_eq!(book.review_count(), 2);
}

#[test]
fn a_review_id_cannot_be_reused() {
    let error = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(post(1, 3, "Mine now"), CommandContext::member(bob()))
        .then_error("review_id_taken");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_deleted_review_keeps_its_id_taken() {
    Given::<Book>::events(vec![
        dune_added(),
        posted(1, alice(), 5, "Loved it"),
        deleted(1, alice(), Some(alice())),
    ])
    .when(post(1, 3, "Again"), CommandContext::member(alice()))
    .then_error("review_id_taken");
}

#[test]
fn reviewing_a_missing_book_is_not_found() {
    Given::<Book>::nothing()
        .when(post(1, 5, "?"), CommandContext::member(alice()))
        .then_error("not_found");
}

#[test]
fn reviewing_a_removed_book_is_gone() {
    Given::<Book>::events(vec![dune_added(), BookEvent::BookRemoved])
        .when(post(1, 5, "?"), CommandContext::member(alice()))
        .then_error("book_removed");
}

// EditReview

fn edit(n: u128, stars: Option<u8>, body: Option<&str>) -> BookCommand {
    BookCommand::EditReview {
        review_id: review_id(n),
        rating: stars.map(rating),
        text: body.map(text),
    }
}

fn deleted(n: u128, member: UserId, by: Option<UserId>) -> BookEvent {
    BookEvent::ReviewDeleted {
        review_id: review_id(n),
        member_id: member,
        deleted_by: by,
    }
}

#[test]
fn the_author_can_edit_their_review() {
    let book = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(
            edit(1, Some(4), Some("Loved it, mostly")),
            CommandContext::member(alice()),
        )
        .then_events(vec![BookEvent::ReviewEdited {
            review_id: review_id(1),
            rating: Some(rating(4)),
            text: Some(text("Loved it, mostly")),
        }]);
    let review = book.review(review_id(1)).unwrap();
    assert_eq!(review.rating().value(), 4);
    assert_eq!(review.text().as_str(), "Loved it, mostly");
}

#[test]
fn an_edit_records_only_what_changed() {
    Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(
            edit(1, Some(5), Some("Adored it")),
            CommandContext::member(alice()),
        )
        .then_events(vec![BookEvent::ReviewEdited {
            review_id: review_id(1),
            rating: None,
            text: Some(text("Adored it")),
        }]);
}

#[test]
fn an_edit_that_changes_nothing_emits_nothing() {
    Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(edit(1, Some(5), None), CommandContext::member(alice()))
        .then_no_events();
}

#[test]
fn only_the_author_can_edit_a_review() {
    let error = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(edit(1, Some(1), None), CommandContext::member(bob()))
        .then_error("not_review_author");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn not_even_an_admin_can_edit_someone_elses_review() {
    Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(edit(1, Some(1), None), admin())
        .then_error("not_review_author");
}

#[test]
fn editing_an_unknown_review_is_not_found() {
    let error = Given::<Book>::events(vec![dune_added()])
        .when(edit(1, Some(1), None), CommandContext::member(alice()))
        .then_error("review_not_found");
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[test]
fn editing_a_deleted_review_is_gone() {
    let error = Given::<Book>::events(vec![
        dune_added(),
        posted(1, alice(), 5, "Loved it"),
        deleted(1, alice(), Some(alice())),
    ])
    .when(edit(1, Some(1), None), CommandContext::member(alice()))
    .then_error("review_deleted");
    assert_eq!(error.kind(), ErrorKind::Gone);
}

#[test]
fn reviews_of_a_removed_book_cannot_be_edited() {
    Given::<Book>::events(vec![
        dune_added(),
        posted(1, alice(), 5, "Loved it"),
        BookEvent::BookRemoved,
    ])
    .when(edit(1, Some(1), None), CommandContext::member(alice()))
    .then_error("book_removed");
}

// DeleteReview

fn delete(n: u128) -> BookCommand {
    BookCommand::DeleteReview {
        review_id: review_id(n),
    }
}

#[test]
fn the_author_can_delete_their_review() {
    let book = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(delete(1), CommandContext::member(alice()))
        .then_events(vec![deleted(1, alice(), Some(alice()))]);
    assert!(book.live_review_of(alice()).is_none());
    assert!(book.review(review_id(1)).unwrap().is_deleted());
    assert_eq!(book.reviews().count(), 0);
}

#[test]
fn an_admin_can_delete_any_review() {
    Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(delete(1), admin())
        .then_events(vec![deleted(1, alice(), Some(user(99)))]);
}

#[test]
fn the_system_can_delete_a_review_without_a_user() {
    Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Spam")])
        .when(delete(1), CommandContext::system())
        .then_events(vec![deleted(1, alice(), None)]);
}

#[test]
fn another_member_cannot_delete_a_review() {
    Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(delete(1), CommandContext::member(bob()))
        .then_error("not_review_author");
}

#[test]
fn deleting_an_unknown_review_is_not_found() {
    Given::<Book>::events(vec![dune_added()])
        .when(delete(1), admin())
        .then_error("review_not_found");
}

#[test]
fn deleting_a_review_twice_is_gone() {
    Given::<Book>::events(vec![
        dune_added(),
        posted(1, alice(), 5, "Loved it"),
        deleted(1, alice(), Some(alice())),
    ])
    .when(delete(1), CommandContext::member(alice()))
    .then_error("review_deleted");
}

#[test]
fn after_deleting_a_member_may_review_again() {
    let book = Given::<Book>::events(vec![
        dune_added(),
        posted(1, alice(), 5, "Loved it"),
        deleted(1, alice(), Some(alice())),
    ])
    .when(post(2, 2, "On reflection"), CommandContext::member(alice()))
    .then_events(vec![posted(2, alice(), 2, "On reflection")]);
    assert_eq!(book.live_review_of(alice()).unwrap().id(), review_id(2));
}

// State

#[test]
fn state_exposes_live_reviews_and_their_average() {
    let book = Given::<Book>::events(vec![
        dune_added(),
        posted(1, alice(), 5, "Loved it"),
        posted(2, bob(), 2, "Too long"),
        posted(3, user(3), 1, "Spam"),
        deleted(3, user(3), None),
    ])
    .state()
    .clone();
    let ids: Vec<_> = book.reviews().map(|r| r.id()).collect();
    assert_eq!(ids, vec![review_id(1), review_id(2)]);
    assert_eq!(book.average_rating(), Some(3.5));
    assert_eq!(book.authors(), &[author("Frank Herbert")]);
    assert_eq!(book.live_review_of(bob()).unwrap().member_id(), bob());
    assert!(book.live_review_of(user(3)).is_none());
}

#[test]
fn a_new_book_does_not_exist() {
    let book = Book::default();
    assert!(!book.exists());
    assert!(!book.is_removed());
    assert_eq!(book.average_rating(), None);
    assert_eq!(Book::CATEGORY, "book");
}

// Stored schema

fn every_event() -> Vec<BookEvent> {
    vec![
        dune_added(),
        BookEvent::BookAdded {
            book_id: book_id(),
            title: title("Anonymous"),
            authors: vec![author("A"), author("B")],
            genres: vec![],
            year_published: None,
            isbn: None,
            description: None,
        },
        BookEvent::BookUpdated(BookChanges {
            title: Some(title("Dune Messiah")),
            authors: Some(vec![author("Frank Herbert"), author("Brian Herbert")]),
            genres: Some(vec![]),
            year_published: Some(None),
            isbn: Some(Some(Isbn::parse("0-306-40615-2").unwrap())),
            description: None,
        }),
        BookEvent::BookRemoved,
        BookEvent::BookSummarySet {
            summary: summary("Spice."),
            source: "llm-v1".to_owned(),
            provenance: None,
        },
        posted(1, alice(), 5, "Loved it"),
        posted(2, alice(), 3, ""),
        BookEvent::ReviewEdited {
            review_id: review_id(1),
            rating: Some(rating(4)),
            text: None,
        },
        BookEvent::ReviewEdited {
            review_id: review_id(1),
            rating: None,
            text: Some(text("")),
        },
        deleted(1, alice(), Some(user(99))),
        deleted(1, alice(), None),
    ]
}

#[test]
fn every_event_round_trips_through_its_stored_payload() {
    let events = every_event();
    let types: std::collections::BTreeSet<_> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(types.len(), 7, "one of each event type");
    for event in &events {
        assert_round_trips(event);
    }
}

#[test]
fn book_added_is_written_as_version_2_with_a_pinned_shape() {
    let event = dune_added();
    assert_eq!(event.event_type(), "BookAdded");
    assert_eq!(event.schema_version(), 2);
    assert_eq!(
        event.to_payload(),
        json!({
            "book_id": "00000000-0000-0000-0000-00000000b00c",
            "title": "Dune",
            "authors": ["Frank Herbert"],
            "genres": ["science-fiction"],
            "year_published": 1965,
            "isbn": "9780441013593",
            "description": "A desert planet."
        })
    );
}

#[test]
fn book_added_version_1_is_upcast_to_authors_and_genres_lists() {
    let v1 = json!({
        "book_id": "00000000-0000-0000-0000-00000000b00c",
        "title": "Dune",
        "author": "Frank Herbert",
        "genre": "Science Fiction",
        "year_published": 1965,
        "isbn": "978-0-441-01359-3",
        "description": "A desert planet."
    });
    let event = BookEvent::from_stored("BookAdded", 1, &v1).unwrap();
    assert_eq!(event, dune_added());
    assert_eq!(event.schema_version(), 2);
}

#[test]
fn book_added_version_1_without_a_genre_has_no_genres() {
    for genre in [json!(null), json!("  ")] {
        let v1 = json!({
            "book_id": "00000000-0000-0000-0000-00000000b00c",
            "title": "Dune",
            "author": "Frank Herbert",
            "genre": genre,
            "year_published": null,
            "isbn": null,
            "description": null
        });
        let event = BookEvent::from_stored("BookAdded", 1, &v1).unwrap();
        let BookEvent::BookAdded {
            authors, genres, ..
        } = event
        else {
            panic!("expected BookAdded");
        };
        assert_eq!(authors, vec![author("Frank Herbert")]);
        assert!(genres.is_empty());
    }
}

#[test]
fn book_added_version_1_without_a_book_id_is_malformed() {
    let v1 = json!({"title": "Dune", "author": "Frank Herbert", "genre": null});
    let error = BookEvent::from_stored("BookAdded", 1, &v1).unwrap_err();
    assert!(
        matches!(&error, EventDecodeError::Malformed { version: 1, reason, .. } if reason.contains("book_id")),
        "{error}"
    );
}

#[test]
fn book_updated_distinguishes_absent_from_null() {
    let payload = json!({"isbn": null, "year_published": 1999});
    let event = BookEvent::from_stored("BookUpdated", 1, &payload).unwrap();
    assert_eq!(
        event,
        BookEvent::BookUpdated(BookChanges {
            isbn: Some(None),
            year_published: Some(Some(Year::parse(1999).unwrap())),
            ..BookChanges::default()
        })
    );
    assert_eq!(event.to_payload(), payload);
}

#[test]
fn an_unknown_event_type_is_reported() {
    let error = BookEvent::from_stored("BookBurned", 1, &json!({})).unwrap_err();
    assert_eq!(
        error,
        EventDecodeError::UnknownType {
            event_type: "BookBurned".to_owned()
        }
    );
}

#[test]
fn a_future_schema_version_is_unsupported() {
    let error = BookEvent::from_stored("BookAdded", 3, &dune_added().to_payload()).unwrap_err();
    assert_eq!(
        error,
        EventDecodeError::UnsupportedVersion {
            event_type: "BookAdded".to_owned(),
            version: 3
        }
    );
    let error = BookEvent::from_stored("ReviewPosted", 2, &json!({})).unwrap_err();
    assert!(matches!(
        error,
        EventDecodeError::UnsupportedVersion { version: 2, .. }
    ));
}

#[test]
fn an_invalid_stored_value_is_malformed() {
    let payload = json!({
        "review_id": "00000000-0000-0000-0000-000000007e01",
        "member_id": "00000000-0000-0000-0000-000000005e01",
        "rating": 9,
        "text": ""
    });
    let error = BookEvent::from_stored("ReviewPosted", 1, &payload).unwrap_err();
    assert!(
        matches!(&error, EventDecodeError::Malformed { reason, .. } if reason.contains("rating")),
        "{error}"
    );
}

#[test]
fn book_added_with_no_authors_is_malformed() {
    let mut payload = dune_added().to_payload();
    payload["authors"] = json!([]);
    let error = BookEvent::from_stored("BookAdded", 2, &payload).unwrap_err();
    assert!(
        matches!(error, EventDecodeError::Malformed { .. }),
        "{error}"
    );
}

// Wire format of commands

#[test]
fn commands_are_tagged_with_a_snake_case_type() {
    let json = serde_json::to_value(BookCommand::RemoveBook).unwrap();
    assert_eq!(json, json!({"type": "remove_book"}));
    let command: BookCommand = serde_json::from_value(json!({
        "type": "update_book",
        "description": null,
        "title": "Dune"
    }))
    .unwrap();
    assert_eq!(
        command,
        update(BookChanges {
            title: Some(title("Dune")),
            description: Some(None),
            ..BookChanges::default()
        })
    );
}

#[test]
fn commands_with_invalid_values_do_not_deserialize() {
    let result = serde_json::from_value::<BookCommand>(json!({
        "type": "post_review",
        "review_id": "00000000-0000-0000-0000-000000007e01",
        "rating": 0,
        "text": ""
    }));
    assert!(result.is_err());
}

// Errors

#[test]
fn every_error_has_a_stable_code_and_kind() {
    let cases = [
        (BookError::NotFound, "not_found", ErrorKind::NotFound),
        (
            BookError::AlreadyExists,
            "already_exists",
            ErrorKind::Conflict,
        ),
        (BookError::Removed, "book_removed", ErrorKind::Gone),
        (
            BookError::Forbidden { action: "x" },
            "forbidden",
            ErrorKind::Forbidden,
        ),
        (
            BookError::ReviewNotFound {
                review_id: review_id(1),
            },
            "review_not_found",
            ErrorKind::NotFound,
        ),
        (
            BookError::ReviewDeleted {
                review_id: review_id(1),
            },
            "review_deleted",
            ErrorKind::Gone,
        ),
        (
            BookError::ReviewAlreadyExists {
                member_id: alice(),
                review_id: review_id(1),
            },
            "review_already_exists",
            ErrorKind::Conflict,
        ),
        (
            BookError::ReviewIdTaken {
                review_id: review_id(1),
            },
            "review_id_taken",
            ErrorKind::Conflict,
        ),
        (
            BookError::NotReviewAuthor {
                review_id: review_id(1),
            },
            "not_review_author",
            ErrorKind::Forbidden,
        ),
        (
            BookError::MissingAuthors,
            "missing_authors",
            ErrorKind::Invalid,
        ),
        (
            BookError::ReviewerRequired,
            "reviewer_required",
            ErrorKind::Invalid,
        ),
        (
            BookError::InvalidSummarySource,
            "invalid_summary_source",
            ErrorKind::Invalid,
        ),
    ];
    for (error, code, kind) in cases {
        assert_eq!(error.code(), code);
        assert_eq!(error.kind(), kind, "{code}");
        let message = error.to_string();
        assert_eq!(message, message.to_lowercase(), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
}

// Generated summaries: provenance, review summaries, versions

fn provenance(covers: u64) -> quire_domain::book::SummaryProvenance {
    quire_domain::book::SummaryProvenance {
        backend: "gguf".into(),
        model: "SmolLM2-135M-Instruct".into(),
        prompt_version: "quire-summary-v1".into(),
        covers_version: covers,
        fallback_reason: None,
    }
}

#[test]
fn content_and_review_versions_follow_their_events() {
    let book = Given::<Book>::events(vec![
        dune_added(),
        posted(1, alice(), 5, "Loved it"),
        BookEvent::BookUpdated(BookChanges {
            title: Some(title("Dune Messiah")),
            ..BookChanges::default()
        }),
        posted(2, bob(), 3, "Fine"),
        BookEvent::BookSummarySet {
            summary: summary("Spice."),
            source: "gguf:SmolLM2".into(),
            provenance: Some(provenance(3)),
        },
    ])
    .when(set_summary("Spice.", "editor"), admin())
    .then_events(vec![BookEvent::BookSummarySet {
        summary: summary("Spice."),
        source: "editor".into(),
        provenance: None,
    }]);
    assert_eq!(book.content_version(), 3);
    assert_eq!(book.reviews_version(), 4);
}

#[test]
fn the_summary_engine_records_a_review_summary_once() {
    let command = BookCommand::SetReviewSummary {
        summary: summary("Readers love the spice."),
        provenance: provenance(2),
    };
    let event = BookEvent::ReviewSummarySet {
        summary: summary("Readers love the spice."),
        provenance: provenance(2),
    };
    let book = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it")])
        .when(command.clone(), CommandContext::system())
        .then_events(vec![event.clone()]);
    assert_eq!(
        book.review_summary(),
        Some((&summary("Readers love the spice."), &provenance(2)))
    );
    // The same summary of the same version again changes nothing; members may not set one.
    Given::<Book>::events(vec![dune_added(), posted(1, alice(), 5, "Loved it"), event])
        .when(command.clone(), CommandContext::system())
        .then_events(vec![]);
    Given::<Book>::events(vec![dune_added()])
        .when(command, CommandContext::member(alice()))
        .then_error("forbidden");
}

#[test]
fn a_regenerated_summary_of_a_newer_version_is_recorded() {
    Given::<Book>::events(vec![
        dune_added(),
        BookEvent::BookSummarySet {
            summary: summary("Spice."),
            source: "gguf:SmolLM2".into(),
            provenance: Some(provenance(1)),
        },
    ])
    .when(
        BookCommand::SetSummary {
            summary: summary("Spice."),
            source: "gguf:SmolLM2".into(),
            provenance: Some(provenance(3)),
        },
        CommandContext::system(),
    )
    .then_events(vec![BookEvent::BookSummarySet {
        summary: summary("Spice."),
        source: "gguf:SmolLM2".into(),
        provenance: Some(provenance(3)),
    }]);
}

#[test]
fn summary_events_round_trip_and_version_1_upcasts_without_provenance() {
    assert_round_trips(&BookEvent::BookSummarySet {
        summary: summary("Spice."),
        source: "gguf:SmolLM2".into(),
        provenance: Some(provenance(4)),
    });
    assert_round_trips(&BookEvent::ReviewSummarySet {
        summary: summary("Readers love it."),
        provenance: provenance(5),
    });
    let v1 = json!({ "summary": "Spice.", "source": "llm-v1" });
    let event = BookEvent::from_stored("BookSummarySet", 1, &v1).unwrap();
    assert_eq!(
        event,
        BookEvent::BookSummarySet {
            summary: summary("Spice."),
            source: "llm-v1".into(),
            provenance: None,
        }
    );
}

#[test]
fn a_books_stream_is_named_after_its_category() {
    let id = BookId::from_uuid(Uuid::nil());
    assert_eq!(id.stream_id(), "book-00000000-0000-0000-0000-000000000000");
    assert!(id.stream_id().starts_with(Book::CATEGORY));
}

// Erasing a deleted review's words

#[test]
fn a_deleted_review_keeps_its_facts_but_not_its_text() {
    let book = Given::<Book>::events(vec![dune_added(), posted(1, alice(), 4, "My diary: …")])
        .when(delete(1), CommandContext::member(alice()))
        .then_events(vec![deleted(1, alice(), Some(alice()))]);
    let review = book.review(review_id(1)).unwrap();
    assert!(review.is_deleted());
    assert_eq!(review.member_id(), alice());
    assert_eq!(review.rating(), rating(4));
    assert_eq!(review.text(), &text(""), "the state keeps no deleted words");
}

#[test]
fn review_events_name_their_review_and_book_events_none() {
    assert_eq!(posted(1, alice(), 5, "x").review_id(), Some(review_id(1)));
    assert_eq!(
        BookEvent::ReviewEdited {
            review_id: review_id(2),
            rating: None,
            text: Some(text("y")),
        }
        .review_id(),
        Some(review_id(2))
    );
    assert_eq!(deleted(3, alice(), None).review_id(), Some(review_id(3)));
    assert_eq!(dune_added().review_id(), None);
    assert_eq!(BookEvent::BookRemoved.review_id(), None);
}

#[test]
fn taking_the_text_out_keeps_the_facts_and_a_valid_event() {
    let erased = posted(1, alice(), 2, "Call me on 555-0100").without_review_text();
    assert_eq!(erased, posted(1, alice(), 2, ""));
    let payload = erased.to_payload();
    assert!(!payload.to_string().contains("555-0100"), "{payload}");
    assert_round_trips(&erased);

    let edited_text = BookEvent::ReviewEdited {
        review_id: review_id(1),
        rating: Some(rating(3)),
        text: Some(text("my address is …")),
    };
    assert_eq!(
        edited_text.without_review_text(),
        BookEvent::ReviewEdited {
            review_id: review_id(1),
            rating: Some(rating(3)),
            text: Some(text("")),
        },
        "the edit still says the text changed, without the words"
    );
    let edited_rating = BookEvent::ReviewEdited {
        review_id: review_id(1),
        rating: Some(rating(1)),
        text: None,
    };
    assert_eq!(edited_rating.clone().without_review_text(), edited_rating);

    // Events without a member's words are left as they are.
    for event in [
        dune_added(),
        deleted(1, alice(), Some(alice())),
        BookEvent::BookRemoved,
    ] {
        assert_eq!(event.clone().without_review_text(), event);
    }
}

// Bounded lists and one-line labels

fn authors(n: usize) -> Vec<AuthorName> {
    (0..n).map(|i| author(&format!("Author {i}"))).collect()
}

fn genres(n: usize) -> Vec<Genre> {
    (0..n).map(|i| genre(&format!("genre-{i}"))).collect()
}

fn add_with(authors: Vec<AuthorName>, genres: Vec<Genre>) -> BookCommand {
    BookCommand::AddBook {
        book_id: book_id(),
        title: title("Dune"),
        authors,
        genres,
        year_published: None,
        isbn: None,
        description: None,
    }
}

#[test]
fn a_book_lists_at_most_fifty_authors() {
    Given::<Book>::nothing()
        .when(add_with(authors(MAX_AUTHORS), vec![]), admin())
        .then_events(vec![BookEvent::BookAdded {
            book_id: book_id(),
            title: title("Dune"),
            authors: authors(MAX_AUTHORS),
            genres: vec![],
            year_published: None,
            isbn: None,
            description: None,
        }]);
    let error = Given::<Book>::nothing()
        .when(add_with(authors(3_000), vec![]), admin())
        .then_error("too_many_authors");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(
        error,
        BookError::TooManyAuthors {
            count: 3_000,
            max: 50
        }
    );
}

#[test]
fn a_book_has_at_most_thirty_genres_counted_without_duplicates() {
    let error = Given::<Book>::nothing()
        .when(add_with(authors(1), genres(5_000)), admin())
        .then_error("too_many_genres");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(
        error.to_string(),
        "a book may have at most 30 genres, got 5000"
    );
    // Repeats are dropped first: 60 entries naming 30 genres are 30 genres.
    let mut repeated = genres(MAX_GENRES);
    repeated.extend(genres(MAX_GENRES));
    let book = Given::<Book>::nothing()
        .when(add_with(authors(1), repeated), admin())
        .then_events(vec![BookEvent::BookAdded {
            book_id: book_id(),
            title: title("Dune"),
            authors: authors(1),
            genres: genres(MAX_GENRES),
            year_published: None,
            isbn: None,
            description: None,
        }]);
    assert_eq!(book.genres().len(), MAX_GENRES);
}

#[test]
fn an_update_has_the_same_bounds() {
    Given::<Book>::events(vec![dune_added()])
        .when(
            update(BookChanges {
                authors: Some(authors(MAX_AUTHORS + 1)),
                ..BookChanges::default()
            }),
            admin(),
        )
        .then_error("too_many_authors");
    Given::<Book>::events(vec![dune_added()])
        .when(
            update(BookChanges {
                genres: Some(genres(MAX_GENRES + 1)),
                ..BookChanges::default()
            }),
            admin(),
        )
        .then_error("too_many_genres");
    Given::<Book>::events(vec![dune_added()])
        .when(
            update(BookChanges {
                genres: Some(genres(MAX_GENRES)),
                ..BookChanges::default()
            }),
            admin(),
        )
        .then_events(vec![BookEvent::BookUpdated(BookChanges {
            genres: Some(genres(MAX_GENRES)),
            ..BookChanges::default()
        })]);
}

#[test]
fn a_book_stored_with_more_authors_than_allowed_still_loads_and_takes_other_updates() {
    // The bound is for new commands: an existing book over it is not broken by it.
    let crowded = BookEvent::BookAdded {
        book_id: book_id(),
        title: title("Dune"),
        authors: authors(300),
        genres: genres(100),
        year_published: None,
        isbn: None,
        description: None,
    };
    Given::<Book>::events(vec![crowded])
        .when(
            update(BookChanges {
                title: Some(title("Dune Messiah")),
                ..BookChanges::default()
            }),
            admin(),
        )
        .then_events(vec![BookEvent::BookUpdated(BookChanges {
            title: Some(title("Dune Messiah")),
            ..BookChanges::default()
        })]);
}

#[test]
fn a_summary_source_is_one_line_without_control_characters() {
    for source in ["llm\u{0}v1", "llm\nv1", "llm\u{1b}v1"] {
        Given::<Book>::events(vec![dune_added()])
            .when(set_summary("Spice.", source), CommandContext::system())
            .then_error("invalid_summary_source");
    }
}

// Full texts: the log records the hash, size and source; the bytes live in the text store.

fn novel(source: &str) -> BookText {
    BookText {
        sha256: "a".repeat(64),
        bytes: 144_600,
        source: source.to_owned(),
    }
}

#[test]
fn an_admin_attaches_a_text_and_it_makes_the_summary_stale() {
    let book = Given::<Book>::events(vec![dune_added()])
        .when(
            BookCommand::SetText {
                text: novel("gutenberg:11"),
            },
            admin(),
        )
        .then_events(vec![BookEvent::BookTextSet {
            text: novel("gutenberg:11"),
        }]);
    assert_eq!(book.text(), Some(&novel("gutenberg:11")));
    assert_eq!(
        book.content_version(),
        2,
        "a new text is a content change: the book summary is due again"
    );
}

#[test]
fn attaching_the_same_text_again_is_a_no_op_and_another_replaces_it() {
    let set = |text| BookEvent::BookTextSet { text };
    Given::<Book>::events(vec![dune_added(), set(novel("upload"))])
        .when(
            BookCommand::SetText {
                text: novel("upload"),
            },
            CommandContext::system(),
        )
        .then_no_events();
    let other = BookText {
        sha256: "b".repeat(64),
        ..novel("upload")
    };
    let book = Given::<Book>::events(vec![dune_added(), set(novel("upload"))])
        .when(
            BookCommand::SetText {
                text: other.clone(),
            },
            admin(),
        )
        .then_events(vec![set(other.clone())]);
    assert_eq!(book.text(), Some(&other));
}

#[test]
fn members_may_not_attach_or_remove_texts() {
    Given::<Book>::events(vec![dune_added()])
        .when(
            BookCommand::SetText {
                text: novel("upload"),
            },
            CommandContext::member(alice()),
        )
        .then_error("forbidden");
    Given::<Book>::events(vec![
        dune_added(),
        BookEvent::BookTextSet {
            text: novel("upload"),
        },
    ])
    .when(BookCommand::RemoveText, CommandContext::member(alice()))
    .then_error("forbidden");
}

#[test]
fn a_text_reference_must_be_a_sha256_a_size_and_a_one_line_source() {
    let refused = |text: BookText| {
        Given::<Book>::events(vec![dune_added()])
            .when(BookCommand::SetText { text }, admin())
            .then_error("invalid_text")
    };
    refused(BookText {
        sha256: "A".repeat(64),
        ..novel("upload")
    });
    refused(BookText {
        sha256: "a".repeat(63),
        ..novel("upload")
    });
    refused(BookText {
        bytes: 0,
        ..novel("upload")
    });
    refused(novel(""));
    refused(novel(" upload"));
    refused(novel("up\nload"));
    refused(novel(&"s".repeat(201)));
}

#[test]
fn texts_belong_to_live_books() {
    Given::<Book>::nothing()
        .when(
            BookCommand::SetText {
                text: novel("upload"),
            },
            admin(),
        )
        .then_error("not_found");
    Given::<Book>::events(vec![dune_added(), BookEvent::BookRemoved])
        .when(
            BookCommand::SetText {
                text: novel("upload"),
            },
            admin(),
        )
        .then_error("book_removed");
}

#[test]
fn removing_a_text_detaches_it_and_removing_none_is_not_found() {
    let book = Given::<Book>::events(vec![
        dune_added(),
        BookEvent::BookTextSet {
            text: novel("upload"),
        },
    ])
    .when(BookCommand::RemoveText, admin())
    .then_events(vec![BookEvent::BookTextRemoved]);
    assert_eq!(book.text(), None);
    assert_eq!(book.content_version(), 3);
    Given::<Book>::events(vec![dune_added()])
        .when(BookCommand::RemoveText, admin())
        .then_error("no_text");
}

#[test]
fn text_events_keep_their_stored_schema() {
    let event = BookEvent::from_stored(
        "BookTextSet",
        1,
        &json!({"sha256": "c".repeat(64), "bytes": 7, "source": "upload"}),
    )
    .unwrap();
    assert_eq!(
        event,
        BookEvent::BookTextSet {
            text: BookText {
                sha256: "c".repeat(64),
                bytes: 7,
                source: "upload".into(),
            }
        }
    );
    assert_round_trips(&event);
    assert_round_trips(&BookEvent::BookTextRemoved);
    assert_eq!(
        BookEvent::from_stored("BookTextRemoved", 1, &json!({})).unwrap(),
        BookEvent::BookTextRemoved
    );
}
