//! Given/when/then tests for the thread aggregate (a club discussion and its replies), one rule
//! per test, its value types and its stored event schema.

use quire_domain::ids::{BookId, ClubId, ReplyId, ThreadId, UserId};
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::thread::{ReplyStatus, Thread, ThreadCommand, ThreadError, ThreadEvent};
use quire_domain::values::{Chapter, PostText, ThreadTitle, Timestamp};
use quire_domain::{
    Aggregate, CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError, Principal,
    Role,
};
use serde_json::json;
use uuid::Uuid;

// Fixtures

fn thread() -> ThreadId {
    ThreadId::from_uuid(Uuid::from_u128(0x7e4d))
}

fn club() -> ClubId {
    ClubId::from_uuid(Uuid::from_u128(0xc1ab))
}

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e00 + n))
}

/// Started the tests' thread.
fn ada() -> UserId {
    user(1)
}

fn bob() -> UserId {
    user(2)
}

/// Moderates the club.
fn cyd() -> UserId {
    user(3)
}

fn book() -> BookId {
    BookId::from_uuid(Uuid::from_u128(0xb001))
}

fn reply(n: u128) -> ReplyId {
    ReplyId::from_uuid(Uuid::from_u128(0x3e00 + n))
}

/// Minute `n` of the tests' calendar.
fn minute(n: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + n * 60_000_000)
}

fn title(s: &str) -> ThreadTitle {
    ThreadTitle::parse(s).unwrap()
}

fn text(s: &str) -> PostText {
    PostText::parse(s).unwrap()
}

fn chapter(s: &str) -> Chapter {
    Chapter::parse(s).unwrap()
}

fn as_member(member: UserId) -> CommandContext {
    CommandContext::member(member)
}

fn staff() -> CommandContext {
    CommandContext::admin(user(99))
}

/// How the API sends a club moderator's removal, after checking in the clubs read model that
/// the caller moderates the thread's club: privileged, keeping the moderator's id.
fn moderator(member: UserId) -> CommandContext {
    CommandContext::new(Principal {
        user_id: Some(member),
        role: Role::System,
    })
}

// Commands

fn start() -> ThreadCommand {
    ThreadCommand::Start {
        thread_id: thread(),
        club_id: club(),
        title: title("First impressions"),
        author: ada(),
        content: text("What did you think of the opening?"),
        book_id: None,
        chapter: None,
        spoiler: false,
        at: minute(0),
    }
}

fn post(r: u128, author: UserId, content: &str, at: i64) -> ThreadCommand {
    ThreadCommand::Reply {
        reply_id: reply(r),
        author,
        content: text(content),
        at: minute(at),
    }
}

fn edit_reply(r: u128, content: &str, at: i64) -> ThreadCommand {
    ThreadCommand::EditReply {
        reply_id: reply(r),
        content: text(content),
        at: minute(at),
    }
}

fn delete_reply(r: u128, at: i64) -> ThreadCommand {
    ThreadCommand::DeleteReply {
        reply_id: reply(r),
        at: minute(at),
    }
}

fn remove_reply(r: u128, at: i64) -> ThreadCommand {
    ThreadCommand::RemoveReply {
        reply_id: reply(r),
        at: minute(at),
    }
}

fn edit_thread(new_title: Option<&str>, content: Option<&str>, at: i64) -> ThreadCommand {
    ThreadCommand::EditThread {
        title: new_title.map(title),
        content: content.map(text),
        at: minute(at),
    }
}

fn remove_thread(at: i64) -> ThreadCommand {
    ThreadCommand::RemoveThread { at: minute(at) }
}

// Events

fn started() -> ThreadEvent {
    ThreadEvent::ThreadStarted {
        thread_id: thread(),
        club_id: club(),
        title: title("First impressions"),
        author: ada(),
        content: text("What did you think of the opening?"),
        book_id: None,
        chapter: None,
        spoiler: false,
        at: minute(0),
    }
}

fn posted(r: u128, author: UserId, content: &str, at: i64) -> ThreadEvent {
    ThreadEvent::ReplyPosted {
        reply_id: reply(r),
        author,
        content: text(content),
        at: minute(at),
    }
}

fn edited(r: u128, content: &str, at: i64) -> ThreadEvent {
    ThreadEvent::ReplyEdited {
        reply_id: reply(r),
        content: text(content),
        at: minute(at),
    }
}

fn deleted(r: u128, author: UserId, at: i64) -> ThreadEvent {
    ThreadEvent::ReplyDeleted {
        reply_id: reply(r),
        author,
        at: minute(at),
    }
}

fn removed(r: u128, author: UserId, by: Option<UserId>, at: i64) -> ThreadEvent {
    ThreadEvent::ReplyRemoved {
        reply_id: reply(r),
        author,
        removed_by: by,
        at: minute(at),
    }
}

fn thread_removed(by: Option<UserId>, at: i64) -> ThreadEvent {
    ThreadEvent::ThreadRemoved {
        removed_by: by,
        at: minute(at),
    }
}

// Histories

/// Ada's thread with Bob's reply 1.
fn with_a_reply() -> Vec<ThreadEvent> {
    vec![started(), posted(1, bob(), "Slow, but it grew on me.", 5)]
}

fn with(
    mut history: Vec<ThreadEvent>,
    more: impl IntoIterator<Item = ThreadEvent>,
) -> Vec<ThreadEvent> {
    history.extend(more);
    history
}

// Start

#[test]
fn a_member_starts_a_thread_in_a_club() {
    let state = Given::<Thread>::nothing()
        .when(start(), as_member(ada()))
        .then_events(vec![started()]);
    assert!(state.exists());
    assert_eq!(state.id(), Some(thread()));
    assert_eq!(state.club_id(), Some(club()));
    assert_eq!(state.title(), Some(&title("First impressions")));
    assert_eq!(state.author(), Some(ada()));
    assert_eq!(
        state.content(),
        Some(&text("What did you think of the opening?"))
    );
    assert_eq!(state.book_id(), None);
    assert_eq!(state.chapter(), None);
    assert!(!state.is_spoiler());
    assert_eq!(state.started_at(), Some(minute(0)));
    assert_eq!(state.edited_at(), None);
    assert!(!state.is_removed());
    assert!(state.replies().is_empty());
}

#[test]
fn a_thread_may_discuss_a_chapter_of_a_book_and_be_flagged_as_a_spoiler() {
    let command = ThreadCommand::Start {
        thread_id: thread(),
        club_id: club(),
        title: title("The twist"),
        author: ada(),
        content: text("Did anyone see it coming?"),
        book_id: Some(book()),
        chapter: Some(chapter("Chapter 12")),
        spoiler: true,
        at: minute(0),
    };
    let state = Given::<Thread>::nothing()
        .when(command, as_member(ada()))
        .then_events(vec![ThreadEvent::ThreadStarted {
            thread_id: thread(),
            club_id: club(),
            title: title("The twist"),
            author: ada(),
            content: text("Did anyone see it coming?"),
            book_id: Some(book()),
            chapter: Some(chapter("Chapter 12")),
            spoiler: true,
            at: minute(0),
        }]);
    assert_eq!(state.book_id(), Some(book()));
    assert_eq!(state.chapter(), Some(&chapter("Chapter 12")));
    assert!(state.is_spoiler());
}

#[test]
fn a_chapter_needs_its_book() {
    let command = ThreadCommand::Start {
        thread_id: thread(),
        club_id: club(),
        title: title("Part II"),
        author: ada(),
        content: text("Where were we?"),
        book_id: None,
        chapter: Some(chapter("Part II")),
        spoiler: false,
        at: minute(0),
    };
    let error = Given::<Thread>::nothing()
        .when(command, as_member(ada()))
        .then_error("chapter_without_book");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn a_member_cannot_start_a_thread_in_someone_elses_name_but_staff_may() {
    let error = Given::<Thread>::nothing()
        .when(start(), as_member(bob()))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
    Given::<Thread>::nothing()
        .when(start(), staff())
        .then_events(vec![started()]);
}

#[test]
fn an_anonymous_caller_cannot_start_a_thread() {
    Given::<Thread>::nothing()
        .when(start(), CommandContext::anonymous())
        .then_error("forbidden");
}

#[test]
fn a_thread_is_started_once() {
    let error = Given::<Thread>::events(vec![started()])
        .when(start(), as_member(ada()))
        .then_error("already_exists");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_start_sent_to_another_threads_stream_is_refused() {
    let other = ThreadId::from_uuid(Uuid::from_u128(0x7e4e));
    assert_eq!(start().check_stream(thread()), Ok(()));
    let error = start().check_stream(other).unwrap_err();
    assert_eq!(error.code(), "thread_id_mismatch");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(remove_thread(1).check_stream(other), Ok(()));
}

#[test]
fn commands_to_a_thread_that_was_never_started_are_refused_as_not_found() {
    for command in [
        post(1, bob(), "Hello", 1),
        edit_reply(1, "Hello", 1),
        delete_reply(1, 1),
        remove_reply(1, 1),
        edit_thread(Some("New"), None, 1),
        remove_thread(1),
    ] {
        let error = Given::<Thread>::nothing()
            .when(command, staff())
            .then_error("not_found");
        assert_eq!(error.kind(), ErrorKind::NotFound);
    }
}

#[test]
fn the_thread_stream_is_named_after_the_thread() {
    assert_eq!(
        thread().stream_id(),
        format!("thread-{}", thread().as_uuid().hyphenated())
    );
    assert_eq!(Thread::CATEGORY, "thread");
}

// Reply

#[test]
fn a_member_replies() {
    let state = Given::<Thread>::events(vec![started()])
        .when(
            post(1, bob(), "Slow, but it grew on me.", 5),
            as_member(bob()),
        )
        .then_events(vec![posted(1, bob(), "Slow, but it grew on me.", 5)]);
    let posted_reply = state.reply(reply(1)).unwrap();
    assert_eq!(posted_reply.author, bob());
    assert_eq!(posted_reply.content, Some(text("Slow, but it grew on me.")));
    assert_eq!(posted_reply.status, ReplyStatus::Live);
    assert_eq!(posted_reply.posted_at, minute(5));
    assert_eq!(posted_reply.edited_at, None);
}

#[test]
fn replies_are_kept_in_posting_order() {
    let state = Given::<Thread>::events(with_a_reply())
        .when(post(0, ada(), "Agreed.", 6), as_member(ada()))
        .then_events(vec![posted(0, ada(), "Agreed.", 6)]);
    let order: Vec<_> = state.replies().iter().map(|r| r.reply_id).collect();
    assert_eq!(order, vec![reply(1), reply(0)]);
}

#[test]
fn a_member_cannot_reply_in_someone_elses_name() {
    Given::<Thread>::events(vec![started()])
        .when(post(1, bob(), "Hello", 1), as_member(ada()))
        .then_error("forbidden");
}

#[test]
fn a_reply_id_is_used_once_even_after_the_reply_is_deleted() {
    let error = Given::<Thread>::events(with_a_reply())
        .when(post(1, ada(), "Me too", 6), as_member(ada()))
        .then_error("reply_id_taken");
    assert_eq!(error, ThreadError::ReplyIdTaken { reply_id: reply(1) });
    assert_eq!(error.kind(), ErrorKind::Conflict);
    Given::<Thread>::events(with(with_a_reply(), [deleted(1, bob(), 6)]))
        .when(post(1, bob(), "Again", 7), as_member(bob()))
        .then_error("reply_id_taken");
}

// EditReply

#[test]
fn the_author_edits_their_reply() {
    let state = Given::<Thread>::events(with_a_reply())
        .when(edit_reply(1, "It grew on me.", 9), as_member(bob()))
        .then_events(vec![edited(1, "It grew on me.", 9)]);
    let edited_reply = state.reply(reply(1)).unwrap();
    assert_eq!(edited_reply.content, Some(text("It grew on me.")));
    assert_eq!(edited_reply.edited_at, Some(minute(9)));
}

#[test]
fn nobody_else_edits_a_reply_not_even_staff() {
    for ctx in [as_member(ada()), staff(), moderator(cyd())] {
        let error = Given::<Thread>::events(with_a_reply())
            .when(edit_reply(1, "Words in his mouth", 9), ctx)
            .then_error("not_author");
        assert_eq!(error.kind(), ErrorKind::Forbidden);
    }
}

#[test]
fn editing_a_reply_to_the_same_text_records_nothing() {
    Given::<Thread>::events(with_a_reply())
        .when(
            edit_reply(1, "Slow, but it grew on me.", 9),
            as_member(bob()),
        )
        .then_no_events();
}

#[test]
fn a_deleted_or_removed_reply_cannot_be_edited() {
    for gone in [deleted(1, bob(), 6), removed(1, bob(), Some(cyd()), 6)] {
        let error = Given::<Thread>::events(with(with_a_reply(), [gone]))
            .when(edit_reply(1, "Back again", 9), as_member(bob()))
            .then_error("reply_gone");
        assert_eq!(error, ThreadError::ReplyGone { reply_id: reply(1) });
        assert_eq!(error.kind(), ErrorKind::Gone);
    }
}

#[test]
fn editing_an_unknown_reply_is_refused() {
    let error = Given::<Thread>::events(with_a_reply())
        .when(edit_reply(7, "Hello", 9), as_member(bob()))
        .then_error("reply_not_found");
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

// DeleteReply

#[test]
fn the_author_deletes_their_reply_which_keeps_its_id_and_author_but_not_its_text() {
    let state = Given::<Thread>::events(with_a_reply())
        .when(delete_reply(1, 9), as_member(bob()))
        .then_events(vec![deleted(1, bob(), 9)]);
    let gone = state.reply(reply(1)).unwrap();
    assert_eq!(gone.reply_id, reply(1));
    assert_eq!(gone.author, bob());
    assert_eq!(gone.status, ReplyStatus::Deleted);
    assert_eq!(gone.content, None);
    assert_eq!(state.replies().len(), 1);
}

#[test]
fn only_the_author_deletes_a_reply_moderation_removes_it() {
    for ctx in [as_member(ada()), staff()] {
        Given::<Thread>::events(with_a_reply())
            .when(delete_reply(1, 9), ctx)
            .then_error("not_author");
    }
}

#[test]
fn deleting_a_reply_that_is_gone_records_nothing() {
    for gone in [deleted(1, bob(), 6), removed(1, bob(), None, 6)] {
        Given::<Thread>::events(with(with_a_reply(), [gone]))
            .when(delete_reply(1, 9), as_member(bob()))
            .then_no_events();
    }
}

// RemoveReply

#[test]
fn a_moderator_removes_a_reply_and_the_event_says_who() {
    let state = Given::<Thread>::events(with_a_reply())
        .when(remove_reply(1, 9), moderator(cyd()))
        .then_events(vec![removed(1, bob(), Some(cyd()), 9)]);
    let gone = state.reply(reply(1)).unwrap();
    assert_eq!(gone.status, ReplyStatus::Removed);
    assert_eq!(gone.author, bob());
    assert_eq!(gone.content, None);
}

#[test]
fn an_engine_removes_a_reply_as_nobody_in_particular() {
    Given::<Thread>::events(with_a_reply())
        .when(remove_reply(1, 9), CommandContext::system())
        .then_events(vec![removed(1, bob(), None, 9)]);
}

#[test]
fn a_member_cannot_remove_a_reply_even_their_own() {
    for member in [ada(), bob()] {
        let error = Given::<Thread>::events(with_a_reply())
            .when(remove_reply(1, 9), as_member(member))
            .then_error("forbidden");
        assert_eq!(error.kind(), ErrorKind::Forbidden);
    }
}

#[test]
fn removing_a_reply_that_is_gone_records_nothing() {
    for gone in [deleted(1, bob(), 6), removed(1, bob(), None, 6)] {
        Given::<Thread>::events(with(with_a_reply(), [gone]))
            .when(remove_reply(1, 9), staff())
            .then_no_events();
    }
}

#[test]
fn removing_an_unknown_reply_is_refused() {
    Given::<Thread>::events(with_a_reply())
        .when(remove_reply(7, 9), staff())
        .then_error("reply_not_found");
}

// EditThread

#[test]
fn the_author_edits_the_title_and_the_first_post() {
    let state = Given::<Thread>::events(with_a_reply())
        .when(
            edit_thread(Some("Opening chapters"), Some("And the prologue?"), 9),
            as_member(ada()),
        )
        .then_events(vec![ThreadEvent::ThreadEdited {
            title: Some(title("Opening chapters")),
            content: Some(text("And the prologue?")),
            at: minute(9),
        }]);
    assert_eq!(state.title(), Some(&title("Opening chapters")));
    assert_eq!(state.content(), Some(&text("And the prologue?")));
    assert_eq!(state.edited_at(), Some(minute(9)));
}

#[test]
fn only_what_changed_goes_into_a_thread_edit() {
    let state = Given::<Thread>::events(vec![started()])
        .when(
            edit_thread(Some("First impressions"), Some("Thoughts?"), 9),
            as_member(ada()),
        )
        .then_events(vec![ThreadEvent::ThreadEdited {
            title: None,
            content: Some(text("Thoughts?")),
            at: minute(9),
        }]);
    assert_eq!(state.title(), Some(&title("First impressions")));
    Given::<Thread>::events(vec![started()])
        .when(
            edit_thread(
                Some("First impressions"),
                Some("What did you think of the opening?"),
                9,
            ),
            as_member(ada()),
        )
        .then_no_events();
    Given::<Thread>::events(vec![started()])
        .when(edit_thread(None, None, 9), as_member(ada()))
        .then_no_events();
}

#[test]
fn nobody_else_edits_a_thread_not_even_staff() {
    for ctx in [as_member(bob()), staff(), moderator(cyd())] {
        Given::<Thread>::events(vec![started()])
            .when(edit_thread(Some("Mine now"), None, 9), ctx)
            .then_error("not_author");
    }
}

// RemoveThread

#[test]
fn a_moderator_removes_a_thread() {
    let state = Given::<Thread>::events(with_a_reply())
        .when(remove_thread(9), moderator(cyd()))
        .then_events(vec![thread_removed(Some(cyd()), 9)]);
    assert!(state.is_removed());
}

#[test]
fn members_cannot_remove_a_thread_not_even_its_author() {
    for member in [ada(), bob()] {
        Given::<Thread>::events(with_a_reply())
            .when(remove_thread(9), as_member(member))
            .then_error("forbidden");
    }
}

#[test]
fn removing_a_removed_thread_records_nothing() {
    Given::<Thread>::events(with(with_a_reply(), [thread_removed(None, 8)]))
        .when(remove_thread(9), staff())
        .then_no_events();
}

#[test]
fn a_removed_thread_takes_no_replies_edits_or_deletions() {
    let history = with(with_a_reply(), [thread_removed(Some(cyd()), 8)]);
    for (command, ctx) in [
        (post(2, bob(), "Hello?", 9), as_member(bob())),
        (edit_reply(1, "Edited", 9), as_member(bob())),
        (delete_reply(1, 9), as_member(bob())),
        (remove_reply(1, 9), staff()),
        (edit_thread(Some("Renamed"), None, 9), as_member(ada())),
    ] {
        let error = Given::<Thread>::events(history.clone())
            .when(command, ctx)
            .then_error("thread_removed");
        assert_eq!(error.kind(), ErrorKind::Gone);
    }
}

// Value types

#[test]
fn a_thread_title_is_one_line_of_one_to_two_hundred_characters() {
    assert_eq!(
        ThreadTitle::parse("  The twist ").unwrap().as_str(),
        "The twist"
    );
    assert!(ThreadTitle::parse("é".repeat(200)).is_ok());
    for raw in ["  ".to_owned(), "é".repeat(201), "two\nlines".into()] {
        assert_eq!(
            ThreadTitle::parse(raw.as_str()).unwrap_err().code(),
            "invalid_thread_title",
            "{raw:?}"
        );
    }
}

#[test]
fn a_post_is_one_to_ten_thousand_characters_and_may_span_lines() {
    let multi_line = "first line\r\nsecond\tcolumn\nthird";
    assert_eq!(PostText::parse(multi_line).unwrap().as_str(), multi_line);
    assert_eq!(PostText::parse("  hi \n").unwrap().as_str(), "hi");
    assert!(PostText::parse("é".repeat(10_000)).is_ok());
    for raw in [" \n ".to_owned(), "é".repeat(10_001)] {
        assert_eq!(
            PostText::parse(raw.as_str()).unwrap_err().code(),
            "invalid_post_text"
        );
    }
}

#[test]
fn a_post_refuses_control_characters_other_than_line_breaks_and_tabs() {
    for control in ('\u{0}'..='\u{1f}').chain(['\u{7f}', '\u{85}', '\u{9f}']) {
        if matches!(control, '\t' | '\n' | '\r') {
            continue;
        }
        let raw = format!("a{control}b");
        assert_eq!(
            PostText::parse(raw.as_str()).unwrap_err().code(),
            "invalid_post_text",
            "{raw:?}"
        );
        // The same rule holds for what is read back: the type is younger than the rule.
        assert!(serde_json::from_value::<PostText>(json!(raw)).is_err());
        for single_line in [
            ThreadTitle::parse(raw.as_str()).unwrap_err().code(),
            Chapter::parse(raw.as_str()).unwrap_err().code(),
        ] {
            assert!(single_line.starts_with("invalid_"), "{raw:?}");
        }
    }
}

#[test]
fn a_chapter_is_one_short_line() {
    assert_eq!(Chapter::parse(" Part II ").unwrap().as_str(), "Part II");
    assert!(Chapter::parse("x".repeat(100)).is_ok());
    for raw in ["".to_owned(), "x".repeat(101), "Part\nII".into()] {
        assert_eq!(
            Chapter::parse(raw.as_str()).unwrap_err().code(),
            "invalid_chapter",
            "{raw:?}"
        );
    }
}

// Stored schema

fn one_of_each_event() -> Vec<ThreadEvent> {
    vec![
        started(),
        ThreadEvent::ThreadStarted {
            thread_id: thread(),
            club_id: club(),
            title: title("The twist"),
            author: ada(),
            content: text("Line one\nLine two"),
            book_id: Some(book()),
            chapter: Some(chapter("Chapter 12")),
            spoiler: true,
            at: minute(0),
        },
        posted(1, bob(), "Slow, but it grew on me.", 5),
        edited(1, "It grew on me.", 9),
        deleted(1, bob(), 10),
        removed(1, bob(), Some(cyd()), 11),
        removed(1, bob(), None, 11),
        ThreadEvent::ThreadEdited {
            title: Some(title("Renamed")),
            content: None,
            at: minute(12),
        },
        thread_removed(Some(cyd()), 13),
        thread_removed(None, 13),
    ]
}

#[test]
fn every_thread_event_round_trips_through_storage() {
    for event in one_of_each_event() {
        assert_round_trips(&event);
        assert_eq!(event.schema_version(), 1);
    }
}

#[test]
fn thread_events_have_pinned_shapes() {
    assert_eq!(
        one_of_each_event()[1].to_payload(),
        json!({
            "thread_id": thread().to_string(),
            "club_id": club().to_string(),
            "title": "The twist",
            "author": ada().to_string(),
            "content": "Line one\nLine two",
            "book_id": book().to_string(),
            "chapter": "Chapter 12",
            "spoiler": true,
            "at": minute(0).as_micros(),
        })
    );
    assert_eq!(
        removed(1, bob(), Some(cyd()), 11).to_payload(),
        json!({
            "reply_id": reply(1).to_string(),
            "author": bob().to_string(),
            "removed_by": cyd().to_string(),
            "at": minute(11).as_micros(),
        })
    );
    assert_eq!(
        one_of_each_event()[7].to_payload(),
        json!({"title": "Renamed", "content": null, "at": minute(12).as_micros()})
    );
    let names: Vec<_> = one_of_each_event()
        .iter()
        .map(|event| event.event_type())
        .collect();
    assert_eq!(
        names,
        vec![
            "ThreadStarted",
            "ThreadStarted",
            "ReplyPosted",
            "ReplyEdited",
            "ReplyDeleted",
            "ReplyRemoved",
            "ReplyRemoved",
            "ThreadEdited",
            "ThreadRemoved",
            "ThreadRemoved",
        ]
    );
}

#[test]
fn a_stored_thread_edit_without_a_field_left_it_unchanged() {
    let event =
        ThreadEvent::from_stored("ThreadEdited", 1, &json!({"at": minute(3).as_micros()})).unwrap();
    assert_eq!(
        event,
        ThreadEvent::ThreadEdited {
            title: None,
            content: None,
            at: minute(3)
        }
    );
}

#[test]
fn unknown_thread_types_and_future_versions_are_reported() {
    assert_eq!(
        ThreadEvent::from_stored("ThreadLocked", 1, &json!({})).unwrap_err(),
        EventDecodeError::UnknownType {
            event_type: "ThreadLocked".to_owned()
        }
    );
    assert_eq!(
        ThreadEvent::from_stored("ReplyPosted", 2, &json!({})).unwrap_err(),
        EventDecodeError::UnsupportedVersion {
            event_type: "ReplyPosted".to_owned(),
            version: 2
        }
    );
    let mut payload = posted(1, bob(), "Hi", 1).to_payload();
    payload["content"] = json!("   ");
    assert!(matches!(
        ThreadEvent::from_stored("ReplyPosted", 1, &payload).unwrap_err(),
        EventDecodeError::Malformed { .. }
    ));
}

#[test]
fn thread_error_codes_and_kinds() {
    let cases = [
        (ThreadError::NotFound, "not_found", ErrorKind::NotFound),
        (
            ThreadError::AlreadyExists,
            "already_exists",
            ErrorKind::Conflict,
        ),
        (
            ThreadError::ThreadIdMismatch {
                stream: thread(),
                command: thread(),
            },
            "thread_id_mismatch",
            ErrorKind::Invalid,
        ),
        (ThreadError::Removed, "thread_removed", ErrorKind::Gone),
        (
            ThreadError::Forbidden { action: "x" },
            "forbidden",
            ErrorKind::Forbidden,
        ),
        (ThreadError::NotAuthor, "not_author", ErrorKind::Forbidden),
        (
            ThreadError::ReplyNotFound { reply_id: reply(1) },
            "reply_not_found",
            ErrorKind::NotFound,
        ),
        (
            ThreadError::ReplyGone { reply_id: reply(1) },
            "reply_gone",
            ErrorKind::Gone,
        ),
        (
            ThreadError::ReplyIdTaken { reply_id: reply(1) },
            "reply_id_taken",
            ErrorKind::Conflict,
        ),
        (
            ThreadError::ChapterWithoutBook,
            "chapter_without_book",
            ErrorKind::Invalid,
        ),
    ];
    for (error, code, kind) in cases {
        assert_eq!(error.code(), code, "{error}");
        assert_eq!(error.kind(), kind, "{error}");
        let message = error.to_string();
        assert_eq!(message, message.to_lowercase(), "{message}");
    }
}

#[test]
fn thread_commands_have_a_stable_wire_form() {
    assert_eq!(
        serde_json::to_value(edit_thread(None, Some("New"), 3)).unwrap(),
        json!({"type": "edit_thread", "content": "New", "at": minute(3).as_micros()})
    );
    // Optional fields of a start may be left out.
    let decoded: ThreadCommand = serde_json::from_value(json!({
        "type": "start",
        "thread_id": thread().to_string(),
        "club_id": club().to_string(),
        "title": "First impressions",
        "author": ada().to_string(),
        "content": "What did you think of the opening?",
        "at": minute(0).as_micros(),
    }))
    .unwrap();
    assert_eq!(decoded, start());
}
