//! Tests of the given/when/then harness itself: it must fail loudly and precisely.

use quire_domain::CommandContext;
use quire_domain::book::{Book, BookCommand, BookEvent};
use quire_domain::ids::{BookId, UserId};
use quire_domain::testing::Given;
use quire_domain::values::{AuthorName, Title};

fn added() -> BookEvent {
    BookEvent::BookAdded {
        book_id: BookId::from_uuid(uuid::Uuid::from_u128(1)),
        title: Title::parse("Dune").unwrap(),
        authors: vec![AuthorName::parse("Frank Herbert").unwrap()],
        genres: vec![],
        year_published: None,
        isbn: None,
        description: None,
    }
}

#[test]
#[should_panic(expected = "emitted events differ from the expected ones")]
fn then_events_panics_on_different_events() {
    Given::<Book>::events(vec![added()])
        .when(BookCommand::RemoveBook, CommandContext::system())
        .then_events(vec![added()]);
}

#[test]
#[should_panic(expected = "expected 0 event(s) but the command was refused with \"not_found\"")]
fn then_events_panics_when_the_command_is_refused() {
    Given::<Book>::nothing()
        .when(BookCommand::RemoveBook, CommandContext::system())
        .then_no_events();
}

#[test]
#[should_panic(expected = "expected error \"forbidden\" but got \"not_found\"")]
fn then_error_panics_on_a_different_code() {
    Given::<Book>::nothing()
        .when(BookCommand::RemoveBook, CommandContext::system())
        .then_error("forbidden");
}

#[test]
#[should_panic(expected = "expected error \"not_found\" but the command was accepted")]
fn then_error_panics_when_the_command_is_accepted() {
    Given::<Book>::events(vec![added()])
        .when(
            BookCommand::RemoveBook,
            CommandContext::admin(UserId::new()),
        )
        .then_error("not_found");
}

#[test]
fn then_events_returns_the_new_state() {
    let book = Given::<Book>::events(vec![added()])
        .when(BookCommand::RemoveBook, CommandContext::system())
        .then_events(vec![BookEvent::BookRemoved]);
    assert!(book.is_removed());
}
