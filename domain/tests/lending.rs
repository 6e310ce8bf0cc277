//! Given/when/then tests for the lending aggregate (a book's copies, loans and hold queue), one
//! rule per test, its stored event schema, and a property test of its invariants over random
//! command sequences.

use quire_domain::ids::{BookId, CopyId, HoldId, LoanId, UserId};
use quire_domain::lending::{
    CopyStatus, HoldRequest, Lending, LendingCommand, LendingError, LendingEvent, LoanEnd,
    LoanRequest, RenewalRules, implicit_copy_id,
};
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::values::{Barcode, Timestamp};
use quire_domain::{
    Aggregate, CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError,
};
use serde_json::json;
use uuid::Uuid;

// Fixtures

const LOAN_DAYS: u32 = 21;
const PICKUP_DAYS: u32 = 7;

fn book() -> BookId {
    BookId::from_uuid(Uuid::from_u128(0xb00c))
}

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e00 + n))
}

fn ada() -> UserId {
    user(1)
}

fn bob() -> UserId {
    user(2)
}

fn cyd() -> UserId {
    user(3)
}

fn dee() -> UserId {
    user(4)
}

fn copy(n: u128) -> CopyId {
    CopyId::from_uuid(Uuid::from_u128(0xc0 + n))
}

fn loan(n: u128) -> LoanId {
    LoanId::from_uuid(Uuid::from_u128(0x10a0 + n))
}

fn hold(n: u128) -> HoldId {
    HoldId::from_uuid(Uuid::from_u128(0x40d0 + n))
}

fn barcode(s: &str) -> Barcode {
    Barcode::parse(s).unwrap()
}

/// Day `n` of the tests' calendar (day 0 is 2023-11-14T22:13:20Z).
fn day(n: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + n * Timestamp::MICROS_PER_DAY)
}

fn as_member(member: UserId) -> CommandContext {
    CommandContext::member(member)
}

fn staff() -> CommandContext {
    CommandContext::admin(user(99))
}

fn system() -> CommandContext {
    CommandContext::system()
}

fn loan_request(l: u128, member: UserId, at: i64, implicit_copies: u32) -> LoanRequest {
    LoanRequest {
        loan_id: loan(l),
        book_id: book(),
        member,
        requested_at: day(at),
        due_at: day(at).plus_days(LOAN_DAYS),
        implicit_copies,
    }
}

fn hold_request(h: u128, member: UserId, at: i64, implicit_copies: u32) -> HoldRequest {
    HoldRequest {
        hold_id: hold(h),
        book_id: book(),
        member,
        requested_at: day(at),
        implicit_copies,
    }
}

fn rules() -> RenewalRules {
    RenewalRules {
        max_renewals: 2,
        period_days: 14,
        refuse_while_held: false,
        earliest_days_before_due: None,
    }
}

// Commands

fn add_copy(c: u128, code: &str) -> LendingCommand {
    LendingCommand::AddCopy {
        copy_id: copy(c),
        barcode: barcode(code),
        at: day(0),
        pickup_until: day(PICKUP_DAYS.into()),
    }
}

/// A checkout on day `at` of a book with registered copies (so implicit copies never matter).
fn check_out(l: u128, member: UserId, at: i64) -> LendingCommand {
    LendingCommand::CheckOut {
        request: loan_request(l, member, at, 1),
    }
}

fn check_out_implicit(l: u128, member: UserId, implicit_copies: u32) -> LendingCommand {
    LendingCommand::CheckOut {
        request: loan_request(l, member, 0, implicit_copies),
    }
}

fn give_back(l: u128, at: i64) -> LendingCommand {
    LendingCommand::Return {
        loan_id: loan(l),
        at: day(at),
        pickup_until: day(at + i64::from(PICKUP_DAYS)),
    }
}

fn renew(l: u128, at: i64, rules: RenewalRules) -> LendingCommand {
    LendingCommand::Renew {
        loan_id: loan(l),
        at: day(at),
        rules,
    }
}

fn mark_overdue(l: u128, at: i64) -> LendingCommand {
    LendingCommand::MarkOverdue {
        loan_id: loan(l),
        at: day(at),
    }
}

fn place_hold(h: u128, member: UserId, at: i64) -> LendingCommand {
    LendingCommand::PlaceHold {
        request: hold_request(h, member, at, 1),
    }
}

fn cancel_hold(h: u128, at: i64) -> LendingCommand {
    LendingCommand::CancelHold {
        hold_id: hold(h),
        at: day(at),
        pickup_until: day(at + i64::from(PICKUP_DAYS)),
    }
}

fn expire_hold(h: u128, at: i64) -> LendingCommand {
    LendingCommand::ExpireHold {
        hold_id: hold(h),
        at: day(at),
        pickup_until: day(at + i64::from(PICKUP_DAYS)),
    }
}

fn mark_lost(c: u128, at: i64) -> LendingCommand {
    LendingCommand::MarkLost {
        copy_id: copy(c),
        at: day(at),
    }
}

fn withdraw(c: u128, at: i64) -> LendingCommand {
    LendingCommand::WithdrawCopy {
        copy_id: copy(c),
        at: day(at),
    }
}

// Events

fn copy_added(c: u128, code: &str) -> LendingEvent {
    LendingEvent::CopyAdded {
        copy_id: copy(c),
        barcode: Some(barcode(code)),
    }
}

fn implicit_added(n: u32) -> LendingEvent {
    LendingEvent::CopyAdded {
        copy_id: implicit_copy_id(book(), n),
        barcode: None,
    }
}

fn opened_copy(l: u128, copy_id: CopyId, member: UserId, at: i64) -> LendingEvent {
    LendingEvent::LoanOpened {
        loan_id: loan(l),
        copy_id,
        member,
        at: day(at),
        due_at: day(at).plus_days(LOAN_DAYS),
    }
}

fn opened(l: u128, c: u128, member: UserId, at: i64) -> LendingEvent {
    opened_copy(l, copy(c), member, at)
}

fn ended(l: u128, c: u128, member: UserId, at: i64, end: LoanEnd) -> LendingEvent {
    LendingEvent::LoanEnded {
        loan_id: loan(l),
        copy_id: copy(c),
        member,
        at: day(at),
        end,
    }
}

fn returned(l: u128, c: u128, member: UserId, at: i64) -> LendingEvent {
    ended(l, c, member, at, LoanEnd::Returned)
}

fn renewed(l: u128, member: UserId, at: i64, due_at: Timestamp, renewals: u32) -> LendingEvent {
    LendingEvent::LoanRenewed {
        loan_id: loan(l),
        member,
        at: day(at),
        due_at,
        renewals,
    }
}

fn overdue(l: u128, member: UserId, loaned_on: i64) -> LendingEvent {
    LendingEvent::LoanOverdue {
        loan_id: loan(l),
        member,
        due_at: day(loaned_on).plus_days(LOAN_DAYS),
    }
}

fn placed(h: u128, member: UserId, at: i64) -> LendingEvent {
    LendingEvent::HoldPlaced {
        hold_id: hold(h),
        member,
        at: day(at),
    }
}

/// A copy on the shelf for hold `h`, put there on day `at` (pickup within `PICKUP_DAYS`).
fn ready(h: u128, member: UserId, c: u128, at: i64) -> LendingEvent {
    LendingEvent::HoldReady {
        hold_id: hold(h),
        member,
        copy_id: copy(c),
        pickup_until: day(at + i64::from(PICKUP_DAYS)),
    }
}

fn fulfilled(h: u128, member: UserId, l: u128) -> LendingEvent {
    LendingEvent::HoldFulfilled {
        hold_id: hold(h),
        member,
        loan_id: loan(l),
    }
}

fn cancelled(h: u128, member: UserId, at: i64) -> LendingEvent {
    LendingEvent::HoldCancelled {
        hold_id: hold(h),
        member,
        at: day(at),
    }
}

fn expired(h: u128, member: UserId, at: i64) -> LendingEvent {
    LendingEvent::HoldExpired {
        hold_id: hold(h),
        member,
        at: day(at),
    }
}

fn lost(c: u128, at: i64) -> LendingEvent {
    LendingEvent::CopyLost {
        copy_id: copy(c),
        at: day(at),
    }
}

fn withdrawn(c: u128, at: i64) -> LendingEvent {
    LendingEvent::CopyWithdrawn {
        copy_id: copy(c),
        at: day(at),
    }
}

// Histories

/// Two registered copies, A-1 then A-2.
fn two_copies() -> Vec<LendingEvent> {
    vec![copy_added(1, "A-1"), copy_added(2, "A-2")]
}

/// One copy, lent to Ada on day 0 (loan 1).
fn lent_to_ada() -> Vec<LendingEvent> {
    vec![copy_added(1, "A-1"), opened(1, 1, ada(), 0)]
}

/// One copy lent to Ada; Bob (hold 1), then Cyd (hold 2) wait for it.
fn lent_with_queue() -> Vec<LendingEvent> {
    let mut history = lent_to_ada();
    history.extend([placed(1, bob(), 1), placed(2, cyd(), 2)]);
    history
}

/// Ada returned on day 5: the copy waits on the shelf for Bob until day 12; Cyd waits behind.
fn on_shelf_for_bob() -> Vec<LendingEvent> {
    let mut history = lent_with_queue();
    history.extend([returned(1, 1, ada(), 5), ready(1, bob(), 1, 5)]);
    history
}

fn with(
    mut history: Vec<LendingEvent>,
    more: impl IntoIterator<Item = LendingEvent>,
) -> Vec<LendingEvent> {
    history.extend(more);
    history
}

fn status(state: &Lending, c: u128) -> CopyStatus {
    state
        .copies()
        .find(|(id, _)| *id == copy(c))
        .map(|(_, copy)| copy.status)
        .unwrap_or_else(|| panic!("no copy {c}"))
}

// Implicit copies

#[test]
fn a_book_without_copies_lends_as_its_implicit_copy() {
    let lending = Given::<Lending>::nothing()
        .when(check_out_implicit(1, ada(), 1), system())
        .then_events(vec![
            implicit_added(0),
            opened_copy(1, implicit_copy_id(book(), 0), ada(), 0),
        ]);
    let copies: Vec<_> = lending.copies().collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].1.barcode, None);
    assert_eq!(copies[0].1.status, CopyStatus::OnLoan(loan(1)));
}

#[test]
fn all_implicit_copies_are_registered_at_the_first_checkout_which_takes_the_first() {
    let lending = Given::<Lending>::nothing()
        .when(check_out_implicit(1, ada(), 3), system())
        .then_events(vec![
            implicit_added(0),
            implicit_added(1),
            implicit_added(2),
            opened_copy(1, implicit_copy_id(book(), 0), ada(), 0),
        ]);
    let available = lending
        .copies()
        .filter(|(_, copy)| copy.status == CopyStatus::Available)
        .count();
    assert_eq!(available, 2);
}

#[test]
fn a_second_member_finds_the_only_implicit_copy_lent() {
    let history = vec![
        implicit_added(0),
        opened_copy(1, implicit_copy_id(book(), 0), ada(), 0),
    ];
    let error = Given::<Lending>::events(history)
        .when(check_out_implicit(2, bob(), 1), system())
        .then_error("copy_unavailable");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_second_member_borrows_the_second_implicit_copy_without_registering_more() {
    let history = vec![
        implicit_added(0),
        implicit_added(1),
        opened_copy(1, implicit_copy_id(book(), 0), ada(), 0),
    ];
    Given::<Lending>::events(history)
        .when(check_out_implicit(2, bob(), 2), system())
        .then_events(vec![opened_copy(2, implicit_copy_id(book(), 1), bob(), 0)]);
}

#[test]
fn a_book_with_zero_implicit_copies_does_not_lend_until_a_copy_is_registered() {
    Given::<Lending>::nothing()
        .when(check_out_implicit(1, ada(), 0), system())
        .then_error("copy_unavailable");
}

#[test]
fn a_book_with_registered_copies_gets_no_implicit_copies() {
    Given::<Lending>::events(lent_to_ada())
        .when(check_out_implicit(2, bob(), 5), system())
        .then_error("copy_unavailable");
}

#[test]
fn a_returned_implicit_copy_is_lent_again_without_registering_it_again() {
    let implicit = implicit_copy_id(book(), 0);
    let history = vec![
        implicit_added(0),
        opened_copy(1, implicit, ada(), 0),
        LendingEvent::LoanEnded {
            loan_id: loan(1),
            copy_id: implicit,
            member: ada(),
            at: day(3),
            end: LoanEnd::Returned,
        },
    ];
    Given::<Lending>::events(history)
        .when(check_out_implicit(2, bob(), 1), system())
        .then_events(vec![opened_copy(2, implicit, bob(), 0)]);
}

#[test]
fn a_book_members_wait_for_gets_no_implicit_copies_when_it_starts_lending_implicitly() {
    // Bob queued while books without copies did not lend; then the policy lends them as one
    // copy. Neither a newcomer nor Bob himself may jump the queue with an implicit copy.
    let history = vec![placed(1, bob(), 0)];
    for member in [ada(), bob()] {
        Given::<Lending>::events(history.clone())
            .when(check_out_implicit(1, member, 1), system())
            .then_error("copy_unavailable");
    }
}

#[test]
fn a_newcomer_joins_the_queue_of_a_book_members_wait_for_without_copies() {
    let history = vec![placed(1, bob(), 0)];
    let lending = Given::<Lending>::events(history)
        .when(place_hold(2, ada(), 1), system())
        .then_events(vec![placed(2, ada(), 1)]);
    let queue: Vec<_> = lending.queue().iter().map(|h| h.member).collect();
    assert_eq!(queue, vec![bob(), ada()]);
}

#[test]
fn a_book_whose_queue_emptied_lends_implicitly_again() {
    let history = vec![placed(1, bob(), 0), cancelled(1, bob(), 1)];
    Given::<Lending>::events(history)
        .when(check_out_implicit(1, ada(), 1), system())
        .then_events(vec![
            implicit_added(0),
            opened_copy(1, implicit_copy_id(book(), 0), ada(), 0),
        ]);
}

#[test]
fn implicit_copy_ids_are_stable_and_distinct_per_book_and_number() {
    let other_book = BookId::from_uuid(Uuid::from_u128(0xb00d));
    assert_eq!(implicit_copy_id(book(), 0), implicit_copy_id(book(), 0));
    assert_ne!(implicit_copy_id(book(), 0), implicit_copy_id(book(), 1));
    assert_ne!(implicit_copy_id(book(), 0), implicit_copy_id(other_book, 0));
    assert_eq!(implicit_copy_id(book(), 0).as_uuid().get_version_num(), 5);
}

#[test]
fn registered_copies_come_after_the_implicit_ones_in_lending_order() {
    let history = vec![
        implicit_added(0),
        opened_copy(1, implicit_copy_id(book(), 0), ada(), 0),
    ];
    let lending = Given::<Lending>::events(history)
        .when(add_copy(1, "A-1"), staff())
        .then_events(vec![copy_added(1, "A-1")]);
    let order: Vec<_> = lending.copies().map(|(id, _)| id).collect();
    assert_eq!(order, vec![implicit_copy_id(book(), 0), copy(1)]);
}

// AddCopy

#[test]
fn staff_can_register_a_copy() {
    for ctx in [staff(), system()] {
        let lending = Given::<Lending>::nothing()
            .when(add_copy(1, "A-1"), ctx)
            .then_events(vec![copy_added(1, "A-1")]);
        assert_eq!(status(&lending, 1), CopyStatus::Available);
    }
}

#[test]
fn a_member_cannot_register_a_copy() {
    let error = Given::<Lending>::nothing()
        .when(add_copy(1, "A-1"), as_member(ada()))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn a_barcode_belongs_to_one_copy_of_the_book() {
    let error = Given::<Lending>::events(vec![copy_added(1, "A-1")])
        .when(add_copy(2, "A-1"), staff())
        .then_error("barcode_taken");
    assert_eq!(
        error,
        LendingError::BarcodeTaken {
            barcode: "A-1".to_owned()
        }
    );
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_withdrawn_copy_keeps_its_barcode() {
    let history = vec![copy_added(1, "A-1"), withdrawn(1, 1)];
    Given::<Lending>::events(history)
        .when(add_copy(2, "A-1"), staff())
        .then_error("barcode_taken");
}

#[test]
fn registering_the_same_copy_again_records_nothing() {
    Given::<Lending>::events(vec![copy_added(1, "A-1")])
        .when(add_copy(1, "A-1"), staff())
        .then_no_events();
}

#[test]
fn registering_a_known_copy_with_another_barcode_is_refused() {
    Given::<Lending>::events(vec![copy_added(1, "A-1")])
        .when(add_copy(1, "A-9"), staff())
        .then_error("barcode_taken");
}

#[test]
fn a_copy_registered_while_members_wait_goes_on_the_shelf_for_the_first() {
    let lending = Given::<Lending>::events(lent_with_queue())
        .when(add_copy(2, "A-2"), staff())
        .then_events(vec![copy_added(2, "A-2"), ready(1, bob(), 2, 0)]);
    assert_eq!(status(&lending, 2), CopyStatus::OnHoldShelf(hold(1)));
    assert_eq!(lending.queue()[0].ready, Some((copy(2), day(7))));
    assert_eq!(lending.queue()[1].ready, None);
}

#[test]
fn a_copy_registered_for_a_book_whose_holds_wait_without_copies_goes_to_the_first_hold() {
    let history = vec![placed(1, ada(), 0)];
    Given::<Lending>::events(history)
        .when(add_copy(1, "A-1"), staff())
        .then_events(vec![copy_added(1, "A-1"), ready(1, ada(), 1, 0)]);
}

// CheckOut

#[test]
fn a_member_borrows_an_available_copy() {
    let lending = Given::<Lending>::events(vec![copy_added(1, "A-1")])
        .when(check_out(1, ada(), 0), as_member(ada()))
        .then_events(vec![opened(1, 1, ada(), 0)]);
    assert_eq!(status(&lending, 1), CopyStatus::OnLoan(loan(1)));
    let open = &lending.loans()[&loan(1)];
    assert_eq!(open.member, ada());
    assert_eq!(open.copy_id, copy(1));
    assert_eq!(open.checked_out_at, day(0));
    assert_eq!(open.due_at, day(21));
    assert_eq!(open.renewals, 0);
    assert!(!open.overdue);
}

#[test]
fn a_checkout_takes_the_first_available_copy_in_registration_order() {
    // Registered 3, 1, 2: the order of registration, not of the ids, decides.
    let history = vec![
        copy_added(3, "A-3"),
        copy_added(1, "A-1"),
        copy_added(2, "A-2"),
    ];
    Given::<Lending>::events(history)
        .when(check_out(1, ada(), 0), system())
        .then_events(vec![opened(1, 3, ada(), 0)]);
}

#[test]
fn a_checkout_skips_copies_that_are_lent_lost_or_withdrawn() {
    let history = vec![
        copy_added(1, "A-1"),
        copy_added(2, "A-2"),
        copy_added(3, "A-3"),
        copy_added(4, "A-4"),
        opened(1, 1, ada(), 0),
        lost(2, 0),
        withdrawn(3, 0),
    ];
    Given::<Lending>::events(history)
        .when(check_out(2, bob(), 1), system())
        .then_events(vec![opened(2, 4, bob(), 1)]);
}

#[test]
fn a_returned_copy_is_lent_again() {
    let history = with(lent_to_ada(), [returned(1, 1, ada(), 3)]);
    Given::<Lending>::events(history)
        .when(check_out(2, bob(), 4), system())
        .then_events(vec![opened(2, 1, bob(), 4)]);
}

#[test]
fn nobody_can_borrow_when_every_copy_is_lent() {
    Given::<Lending>::events(lent_to_ada())
        .when(check_out(2, bob(), 1), system())
        .then_error("copy_unavailable");
}

#[test]
fn nobody_can_borrow_when_every_copy_is_lost_or_withdrawn() {
    let history = vec![
        copy_added(1, "A-1"),
        copy_added(2, "A-2"),
        lost(1, 0),
        withdrawn(2, 0),
    ];
    Given::<Lending>::events(history)
        .when(check_out(1, ada(), 1), system())
        .then_error("copy_unavailable");
}

#[test]
fn a_member_cannot_borrow_a_book_they_already_have() {
    let history = with(two_copies(), [opened(1, 1, ada(), 0)]);
    let error = Given::<Lending>::events(history)
        .when(check_out(2, ada(), 1), system())
        .then_error("already_borrowed");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_member_can_borrow_the_book_again_after_returning_it() {
    let history = with(
        two_copies(),
        [opened(1, 1, ada(), 0), returned(1, 1, ada(), 2)],
    );
    Given::<Lending>::events(history)
        .when(check_out(2, ada(), 3), system())
        .then_events(vec![opened(2, 1, ada(), 3)]);
}

#[test]
fn a_resent_checkout_of_an_open_loan_records_nothing() {
    Given::<Lending>::events(with(two_copies(), [opened(1, 1, ada(), 0)]))
        .when(check_out(1, ada(), 0), system())
        .then_no_events();
}

#[test]
fn a_resent_checkout_of_an_ended_loan_records_nothing() {
    let history = with(
        two_copies(),
        [opened(1, 1, ada(), 0), returned(1, 1, ada(), 2)],
    );
    Given::<Lending>::events(history)
        .when(check_out(1, ada(), 0), system())
        .then_no_events();
}

#[test]
fn a_member_cannot_borrow_for_another_member() {
    let error = Given::<Lending>::events(two_copies())
        .when(check_out(1, ada(), 0), as_member(bob()))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn staff_can_borrow_for_a_member() {
    Given::<Lending>::events(two_copies())
        .when(check_out(1, ada(), 0), staff())
        .then_events(vec![opened(1, 1, ada(), 0)]);
}

// Return

#[test]
fn returning_ends_the_loan_and_the_copy_is_available_again() {
    let lending = Given::<Lending>::events(lent_to_ada())
        .when(give_back(1, 5), as_member(ada()))
        .then_events(vec![returned(1, 1, ada(), 5)]);
    assert!(lending.loans().is_empty());
    assert_eq!(status(&lending, 1), CopyStatus::Available);
}

#[test]
fn returning_with_members_waiting_puts_the_copy_on_the_shelf_for_the_first() {
    let lending = Given::<Lending>::events(lent_with_queue())
        .when(give_back(1, 5), system())
        .then_events(vec![returned(1, 1, ada(), 5), ready(1, bob(), 1, 5)]);
    assert_eq!(status(&lending, 1), CopyStatus::OnHoldShelf(hold(1)));
    let queue = lending.queue();
    assert_eq!(queue.len(), 2);
    assert_eq!(
        (queue[0].hold_id, queue[0].ready),
        (hold(1), Some((copy(1), day(12))))
    );
    assert_eq!((queue[1].hold_id, queue[1].ready), (hold(2), None));
}

#[test]
fn a_copy_returned_while_the_first_hold_is_ready_goes_to_the_next_waiting_hold() {
    // Two copies lent to Ada and Dee; Bob then Cyd wait; Ada's copy went on the shelf for Bob.
    let history = vec![
        copy_added(1, "A-1"),
        copy_added(2, "A-2"),
        opened(1, 1, ada(), 0),
        opened(2, 2, dee(), 0),
        placed(1, bob(), 1),
        placed(2, cyd(), 2),
        returned(1, 1, ada(), 5),
        ready(1, bob(), 1, 5),
    ];
    let lending = Given::<Lending>::events(history)
        .when(give_back(2, 6), as_member(dee()))
        .then_events(vec![returned(2, 2, dee(), 6), ready(2, cyd(), 2, 6)]);
    assert_eq!(status(&lending, 1), CopyStatus::OnHoldShelf(hold(1)));
    assert_eq!(status(&lending, 2), CopyStatus::OnHoldShelf(hold(2)));
}

#[test]
fn a_copy_returned_while_every_hold_is_ready_is_available() {
    let history = vec![
        copy_added(1, "A-1"),
        copy_added(2, "A-2"),
        opened(1, 1, ada(), 0),
        opened(2, 2, dee(), 0),
        placed(1, bob(), 1),
        returned(1, 1, ada(), 5),
        ready(1, bob(), 1, 5),
    ];
    let lending = Given::<Lending>::events(history)
        .when(give_back(2, 6), as_member(dee()))
        .then_events(vec![returned(2, 2, dee(), 6)]);
    assert_eq!(status(&lending, 2), CopyStatus::Available);
}

#[test]
fn returning_an_ended_loan_again_records_nothing() {
    let history = with(lent_to_ada(), [returned(1, 1, ada(), 5)]);
    Given::<Lending>::events(history)
        .when(give_back(1, 6), system())
        .then_no_events();
}

#[test]
fn returning_an_unknown_loan_is_refused() {
    let error = Given::<Lending>::events(lent_to_ada())
        .when(give_back(7, 5), system())
        .then_error("not_on_loan");
    assert_eq!(error, LendingError::NotOnLoan { loan_id: loan(7) });
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_member_cannot_return_another_members_loan() {
    Given::<Lending>::events(lent_to_ada())
        .when(give_back(1, 5), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn staff_and_the_system_can_return_a_members_loan() {
    for ctx in [staff(), system()] {
        Given::<Lending>::events(lent_to_ada())
            .when(give_back(1, 5), ctx)
            .then_events(vec![returned(1, 1, ada(), 5)]);
    }
}

// The hold shelf

#[test]
fn the_held_member_borrows_the_shelf_copy_and_fulfils_the_hold() {
    let lending = Given::<Lending>::events(on_shelf_for_bob())
        .when(check_out(2, bob(), 6), as_member(bob()))
        .then_events(vec![opened(2, 1, bob(), 6), fulfilled(1, bob(), 2)]);
    assert_eq!(status(&lending, 1), CopyStatus::OnLoan(loan(2)));
    let queue: Vec<_> = lending.queue().iter().map(|h| h.hold_id).collect();
    assert_eq!(queue, vec![hold(2)]);
}

#[test]
fn another_member_cannot_take_the_shelf_copy() {
    for member in [ada(), cyd(), dee()] {
        Given::<Lending>::events(on_shelf_for_bob())
            .when(check_out(2, member, 6), system())
            .then_error("copy_unavailable");
    }
}

#[test]
fn the_held_member_gets_the_shelf_copy_even_when_another_is_available() {
    let history = with(
        on_shelf_for_bob(),
        [copy_added(2, "A-2"), ready(2, cyd(), 2, 5)],
    );
    let history = with(history, [copy_added(3, "A-3")]);
    // Copy 3 came when nobody waited any more: it is available, but Bob's is on the shelf.
    Given::<Lending>::events(history)
        .when(check_out(2, bob(), 6), system())
        .then_events(vec![opened(2, 1, bob(), 6), fulfilled(1, bob(), 2)]);
}

#[test]
fn a_waiting_member_cannot_borrow_before_a_copy_is_held_for_them() {
    Given::<Lending>::events(lent_with_queue())
        .when(check_out(2, bob(), 3), system())
        .then_error("copy_unavailable");
}

#[test]
fn cancelling_a_fulfilled_hold_records_nothing() {
    let history = with(
        on_shelf_for_bob(),
        [opened(2, 1, bob(), 6), fulfilled(1, bob(), 2)],
    );
    Given::<Lending>::events(history)
        .when(cancel_hold(1, 7), as_member(bob()))
        .then_no_events();
}

// CancelHold

#[test]
fn cancelling_a_ready_hold_passes_the_copy_to_the_next_waiting_hold() {
    let lending = Given::<Lending>::events(on_shelf_for_bob())
        .when(cancel_hold(1, 6), as_member(bob()))
        .then_events(vec![cancelled(1, bob(), 6), ready(2, cyd(), 1, 6)]);
    assert_eq!(status(&lending, 1), CopyStatus::OnHoldShelf(hold(2)));
    assert_eq!(lending.queue().len(), 1);
    assert_eq!(lending.queue()[0].ready, Some((copy(1), day(13))));
}

#[test]
fn cancelling_a_ready_hold_with_nobody_waiting_makes_the_copy_available() {
    let history = with(on_shelf_for_bob(), [cancelled(2, cyd(), 5)]);
    let lending = Given::<Lending>::events(history)
        .when(cancel_hold(1, 6), as_member(bob()))
        .then_events(vec![cancelled(1, bob(), 6)]);
    assert_eq!(status(&lending, 1), CopyStatus::Available);
    assert!(lending.queue().is_empty());
}

#[test]
fn cancelling_a_waiting_hold_leaves_the_queue_without_moving_a_copy() {
    let lending = Given::<Lending>::events(on_shelf_for_bob())
        .when(cancel_hold(2, 6), as_member(cyd()))
        .then_events(vec![cancelled(2, cyd(), 6)]);
    assert_eq!(status(&lending, 1), CopyStatus::OnHoldShelf(hold(1)));
    let queue: Vec<_> = lending.queue().iter().map(|h| h.hold_id).collect();
    assert_eq!(queue, vec![hold(1)]);
}

#[test]
fn a_member_cannot_cancel_another_members_hold() {
    let error = Given::<Lending>::events(lent_with_queue())
        .when(cancel_hold(1, 3), as_member(cyd()))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn staff_can_cancel_a_members_hold() {
    Given::<Lending>::events(lent_with_queue())
        .when(cancel_hold(1, 3), staff())
        .then_events(vec![cancelled(1, bob(), 3)]);
}

#[test]
fn cancelling_an_unknown_hold_is_refused() {
    let error = Given::<Lending>::events(lent_with_queue())
        .when(cancel_hold(9, 3), staff())
        .then_error("hold_not_found");
    assert_eq!(error, LendingError::HoldNotFound { hold_id: hold(9) });
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[test]
fn cancelling_a_hold_again_records_nothing() {
    let history = with(lent_with_queue(), [cancelled(1, bob(), 3)]);
    Given::<Lending>::events(history)
        .when(cancel_hold(1, 4), as_member(bob()))
        .then_no_events();
}

// ExpireHold

#[test]
fn a_hold_does_not_expire_before_its_pickup_deadline() {
    // The copy waits for Bob until day 12.
    Given::<Lending>::events(on_shelf_for_bob())
        .when(expire_hold(1, 11), system())
        .then_no_events();
}

#[test]
fn a_hold_expires_at_its_pickup_deadline_and_the_copy_goes_to_the_next_hold() {
    let lending = Given::<Lending>::events(on_shelf_for_bob())
        .when(expire_hold(1, 12), system())
        .then_events(vec![expired(1, bob(), 12), ready(2, cyd(), 1, 12)]);
    assert_eq!(status(&lending, 1), CopyStatus::OnHoldShelf(hold(2)));
    assert_eq!(lending.queue()[0].ready, Some((copy(1), day(19))));
}

#[test]
fn an_expired_hold_with_nobody_waiting_makes_the_copy_available() {
    let history = with(on_shelf_for_bob(), [cancelled(2, cyd(), 6)]);
    let lending = Given::<Lending>::events(history)
        .when(expire_hold(1, 20), system())
        .then_events(vec![expired(1, bob(), 20)]);
    assert_eq!(status(&lending, 1), CopyStatus::Available);
    assert!(lending.queue().is_empty());
}

#[test]
fn a_waiting_hold_never_expires() {
    Given::<Lending>::events(on_shelf_for_bob())
        .when(expire_hold(2, 400), system())
        .then_no_events();
}

#[test]
fn expiring_an_unknown_or_ended_hold_records_nothing() {
    let history = with(
        on_shelf_for_bob(),
        [expired(1, bob(), 12), ready(2, cyd(), 1, 12)],
    );
    for h in [1, 9] {
        Given::<Lending>::events(history.clone())
            .when(expire_hold(h, 30), system())
            .then_no_events();
    }
}

#[test]
fn only_staff_expire_holds() {
    Given::<Lending>::events(on_shelf_for_bob())
        .when(expire_hold(1, 12), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn the_expired_members_place_passes_to_the_next_in_order() {
    // Bob expires, Cyd gets the copy; Cyd expires too and Dee, who queued last, gets it.
    let history = with(on_shelf_for_bob(), [placed(3, dee(), 6)]);
    let history = with(history, [expired(1, bob(), 12), ready(2, cyd(), 1, 12)]);
    Given::<Lending>::events(history)
        .when(expire_hold(2, 19), system())
        .then_events(vec![expired(2, cyd(), 19), ready(3, dee(), 1, 19)]);
}

// PlaceHold

#[test]
fn a_member_joins_the_queue_when_every_copy_is_lent() {
    let lending = Given::<Lending>::events(lent_to_ada())
        .when(place_hold(1, bob(), 1), as_member(bob()))
        .then_events(vec![placed(1, bob(), 1)]);
    let queue = lending.queue();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].member, bob());
    assert_eq!(queue[0].placed_at, day(1));
    assert_eq!(queue[0].ready, None);
}

#[test]
fn a_hold_is_not_needed_when_a_copy_is_available() {
    let error = Given::<Lending>::events(with(two_copies(), [opened(1, 1, ada(), 0)]))
        .when(place_hold(1, bob(), 1), system())
        .then_error("hold_not_needed");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_hold_is_not_needed_on_a_book_that_would_lend_an_implicit_copy() {
    Given::<Lending>::nothing()
        .when(place_hold(1, bob(), 1), system())
        .then_error("hold_not_needed");
}

#[test]
fn a_member_can_wait_for_a_book_that_does_not_lend_without_copies() {
    Given::<Lending>::nothing()
        .when(
            LendingCommand::PlaceHold {
                request: hold_request(1, bob(), 1, 0),
            },
            system(),
        )
        .then_events(vec![placed(1, bob(), 1)]);
}

#[test]
fn a_member_cannot_wait_for_a_book_they_have() {
    Given::<Lending>::events(lent_to_ada())
        .when(place_hold(1, ada(), 1), system())
        .then_error("already_borrowed");
}

#[test]
fn a_member_cannot_wait_twice_for_the_same_book() {
    let error = Given::<Lending>::events(lent_with_queue())
        .when(place_hold(3, bob(), 3), system())
        .then_error("hold_exists");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_member_with_a_copy_on_the_shelf_cannot_place_another_hold() {
    Given::<Lending>::events(on_shelf_for_bob())
        .when(place_hold(3, bob(), 6), system())
        .then_error("hold_exists");
}

#[test]
fn a_resent_hold_records_nothing_while_active_or_after_it_ended() {
    Given::<Lending>::events(lent_with_queue())
        .when(place_hold(1, bob(), 1), system())
        .then_no_events();
    let history = with(lent_with_queue(), [cancelled(1, bob(), 3)]);
    Given::<Lending>::events(history)
        .when(place_hold(1, bob(), 1), system())
        .then_no_events();
}

#[test]
fn a_member_can_wait_again_after_cancelling() {
    let history = with(lent_with_queue(), [cancelled(1, bob(), 3)]);
    let lending = Given::<Lending>::events(history)
        .when(place_hold(3, bob(), 4), system())
        .then_events(vec![placed(3, bob(), 4)]);
    // Bob joins at the end, behind Cyd.
    let queue: Vec<_> = lending.queue().iter().map(|h| h.member).collect();
    assert_eq!(queue, vec![cyd(), bob()]);
}

#[test]
fn a_member_cannot_place_a_hold_for_another_member() {
    Given::<Lending>::events(lent_to_ada())
        .when(place_hold(1, bob(), 1), as_member(cyd()))
        .then_error("forbidden");
}

#[test]
fn holds_are_served_strictly_in_the_order_they_were_placed() {
    // One copy; Bob, Cyd and Dee wait in that order; each borrows and returns in turn.
    let mut history = with(lent_with_queue(), [placed(3, dee(), 3)]);
    let mut returning = (1, ada());
    for (turn, (h, member)) in [(1, bob()), (2, cyd()), (3, dee())].into_iter().enumerate() {
        let next_loan = 2 + turn as u128;
        let at = 10 * (2 + turn as i64);
        let lending = Given::<Lending>::events(history.clone())
            .when(give_back(returning.0, at), system())
            .then_events(vec![
                returned(returning.0, 1, returning.1, at),
                ready(h, member, 1, at),
            ]);
        assert_eq!(lending.queue()[0].member, member);
        history.extend([
            returned(returning.0, 1, returning.1, at),
            ready(h, member, 1, at),
        ]);
        // Nobody else may take it meanwhile.
        for other in [ada(), bob(), cyd(), dee()]
            .into_iter()
            .filter(|m| *m != member)
        {
            Given::<Lending>::events(history.clone())
                .when(check_out(99, other, at + 1), system())
                .then_error("copy_unavailable");
        }
        let borrowed = vec![
            opened(next_loan, 1, member, at + 1),
            fulfilled(h, member, next_loan),
        ];
        Given::<Lending>::events(history.clone())
            .when(check_out(next_loan, member, at + 1), system())
            .then_events(borrowed.clone());
        history.extend(borrowed);
        returning = (next_loan, member);
    }
    let lending = Given::<Lending>::events(history).state().clone();
    assert!(lending.queue().is_empty());
    assert_eq!(lending.loans()[&loan(4)].member, dee());
}

// Renew

#[test]
fn renewing_adds_the_period_to_the_due_date_and_counts() {
    let lending = Given::<Lending>::events(lent_to_ada())
        .when(renew(1, 10, rules()), as_member(ada()))
        .then_events(vec![renewed(1, ada(), 10, day(35), 1)]);
    let open = &lending.loans()[&loan(1)];
    assert_eq!(open.due_at, day(35));
    assert_eq!(open.renewals, 1);
}

#[test]
fn a_second_renewal_extends_the_renewed_due_date() {
    let history = with(lent_to_ada(), [renewed(1, ada(), 10, day(35), 1)]);
    Given::<Lending>::events(history)
        .when(renew(1, 30, rules()), as_member(ada()))
        .then_events(vec![renewed(1, ada(), 30, day(49), 2)]);
}

#[test]
fn no_renewal_once_the_renewals_are_used_up() {
    let history = with(
        lent_to_ada(),
        [
            renewed(1, ada(), 10, day(35), 1),
            renewed(1, ada(), 30, day(49), 2),
        ],
    );
    let error = Given::<Lending>::events(history)
        .when(renew(1, 40, rules()), as_member(ada()))
        .then_error("renewal_not_allowed");
    assert_eq!(
        error,
        LendingError::RenewalNotAllowed {
            reason: "no renewals left"
        }
    );
}

#[test]
fn no_renewal_when_the_policy_allows_none() {
    let none = RenewalRules {
        max_renewals: 0,
        ..rules()
    };
    Given::<Lending>::events(lent_to_ada())
        .when(renew(1, 10, none), as_member(ada()))
        .then_error("renewal_not_allowed");
}

#[test]
fn no_renewal_of_a_loan_marked_overdue() {
    let history = with(lent_to_ada(), [overdue(1, ada(), 0)]);
    let error = Given::<Lending>::events(history)
        .when(renew(1, 22, rules()), as_member(ada()))
        .then_error("renewal_not_allowed");
    assert_eq!(
        error,
        LendingError::RenewalNotAllowed {
            reason: "the loan is overdue"
        }
    );
}

#[test]
fn no_renewal_on_or_after_the_due_date_even_before_it_is_marked_overdue() {
    for at in [21, 22] {
        Given::<Lending>::events(lent_to_ada())
            .when(renew(1, at, rules()), as_member(ada()))
            .then_error("renewal_not_allowed");
    }
}

#[test]
fn no_renewal_while_others_wait_when_the_rules_refuse_it() {
    let strict = RenewalRules {
        refuse_while_held: true,
        ..rules()
    };
    let history = with(lent_to_ada(), [placed(1, bob(), 1)]);
    let error = Given::<Lending>::events(history)
        .when(renew(1, 10, strict), as_member(ada()))
        .then_error("renewal_not_allowed");
    assert_eq!(
        error,
        LendingError::RenewalNotAllowed {
            reason: "other members are waiting for this book"
        }
    );
}

#[test]
fn a_hold_already_served_from_the_shelf_does_not_block_a_renewal() {
    // Two copies: Ada has copy 1; Bob's hold got copy 2 on the shelf, so nobody waits for Ada's.
    let strict = RenewalRules {
        refuse_while_held: true,
        ..rules()
    };
    let history = vec![
        copy_added(1, "A-1"),
        opened(1, 1, ada(), 0),
        copy_added(2, "A-2"),
        opened(2, 2, cyd(), 0),
        placed(1, bob(), 1),
        returned(2, 2, cyd(), 2),
        ready(1, bob(), 2, 2),
    ];
    Given::<Lending>::events(history)
        .when(renew(1, 10, strict), as_member(ada()))
        .then_events(vec![renewed(1, ada(), 10, day(35), 1)]);
}

#[test]
fn a_renewal_is_allowed_while_others_wait_when_the_rules_allow_it() {
    let history = with(lent_to_ada(), [placed(1, bob(), 1)]);
    Given::<Lending>::events(history)
        .when(renew(1, 10, rules()), as_member(ada()))
        .then_events(vec![renewed(1, ada(), 10, day(35), 1)]);
}

#[test]
fn a_renewal_refused_while_others_waited_is_allowed_once_the_queue_is_empty() {
    let strict = RenewalRules {
        refuse_while_held: true,
        ..rules()
    };
    let history = with(lent_to_ada(), [placed(1, bob(), 1), cancelled(1, bob(), 2)]);
    Given::<Lending>::events(history)
        .when(renew(1, 10, strict), as_member(ada()))
        .then_events(vec![renewed(1, ada(), 10, day(35), 1)]);
}

#[test]
fn no_renewal_earlier_than_the_rules_allow() {
    // Due on day 21; renewals open 3 days before, on day 18.
    let window = RenewalRules {
        earliest_days_before_due: Some(3),
        ..rules()
    };
    let error = Given::<Lending>::events(lent_to_ada())
        .when(renew(1, 17, window), as_member(ada()))
        .then_error("renewal_not_allowed");
    assert_eq!(
        error,
        LendingError::RenewalNotAllowed {
            reason: "too early to renew"
        }
    );
    for at in [18, 20] {
        Given::<Lending>::events(lent_to_ada())
            .when(renew(1, at, window), as_member(ada()))
            .then_events(vec![renewed(1, ada(), at, day(35), 1)]);
    }
}

#[test]
fn a_member_cannot_renew_another_members_loan() {
    let error = Given::<Lending>::events(lent_to_ada())
        .when(renew(1, 10, rules()), as_member(bob()))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn staff_and_the_system_can_renew_a_members_loan() {
    for ctx in [staff(), system()] {
        Given::<Lending>::events(lent_to_ada())
            .when(renew(1, 10, rules()), ctx)
            .then_events(vec![renewed(1, ada(), 10, day(35), 1)]);
    }
}

#[test]
fn renewing_a_loan_that_is_not_open_is_refused() {
    let history = with(lent_to_ada(), [returned(1, 1, ada(), 5)]);
    for l in [1, 7] {
        Given::<Lending>::events(history.clone())
            .when(renew(l, 6, rules()), system())
            .then_error("not_on_loan");
    }
}

// MarkOverdue

#[test]
fn a_loan_is_not_overdue_before_its_due_date() {
    Given::<Lending>::events(lent_to_ada())
        .when(mark_overdue(1, 20), system())
        .then_no_events();
}

#[test]
fn a_loan_is_overdue_from_its_due_date() {
    let lending = Given::<Lending>::events(lent_to_ada())
        .when(mark_overdue(1, 21), system())
        .then_events(vec![overdue(1, ada(), 0)]);
    assert!(lending.loans()[&loan(1)].overdue);
}

#[test]
fn a_loan_is_marked_overdue_once() {
    let history = with(lent_to_ada(), [overdue(1, ada(), 0)]);
    Given::<Lending>::events(history)
        .when(mark_overdue(1, 30), system())
        .then_no_events();
}

#[test]
fn a_renewed_loan_is_overdue_only_after_its_new_due_date() {
    let history = with(lent_to_ada(), [renewed(1, ada(), 10, day(35), 1)]);
    Given::<Lending>::events(history.clone())
        .when(mark_overdue(1, 30), system())
        .then_no_events();
    Given::<Lending>::events(history)
        .when(mark_overdue(1, 35), system())
        .then_events(vec![LendingEvent::LoanOverdue {
            loan_id: loan(1),
            member: ada(),
            due_at: day(35),
        }]);
}

#[test]
fn marking_a_returned_or_unknown_loan_overdue_records_nothing() {
    let history = with(lent_to_ada(), [returned(1, 1, ada(), 5)]);
    for l in [1, 7] {
        Given::<Lending>::events(history.clone())
            .when(mark_overdue(l, 30), system())
            .then_no_events();
    }
}

#[test]
fn only_staff_mark_loans_overdue() {
    Given::<Lending>::events(lent_to_ada())
        .when(mark_overdue(1, 30), as_member(ada()))
        .then_error("forbidden");
}

// MarkLost

#[test]
fn marking_a_lent_copy_lost_ends_its_loan_as_lost() {
    let lending = Given::<Lending>::events(lent_to_ada())
        .when(mark_lost(1, 30), staff())
        .then_events(vec![ended(1, 1, ada(), 30, LoanEnd::Lost), lost(1, 30)]);
    assert!(lending.loans().is_empty());
    assert_eq!(status(&lending, 1), CopyStatus::Lost);
}

#[test]
fn a_loan_ended_as_lost_cannot_be_returned_afterwards() {
    let history = with(
        lent_to_ada(),
        [ended(1, 1, ada(), 30, LoanEnd::Lost), lost(1, 30)],
    );
    Given::<Lending>::events(history)
        .when(give_back(1, 31), as_member(ada()))
        .then_no_events();
}

#[test]
fn a_lost_copy_does_not_go_to_waiting_holds() {
    let lending = Given::<Lending>::events(lent_with_queue())
        .when(mark_lost(1, 30), staff())
        .then_events(vec![ended(1, 1, ada(), 30, LoanEnd::Lost), lost(1, 30)]);
    assert!(lending.queue().iter().all(|hold| hold.ready.is_none()));
}

#[test]
fn marking_an_available_copy_lost() {
    let lending = Given::<Lending>::events(two_copies())
        .when(mark_lost(2, 3), staff())
        .then_events(vec![lost(2, 3)]);
    assert_eq!(status(&lending, 2), CopyStatus::Lost);
    assert_eq!(status(&lending, 1), CopyStatus::Available);
}

#[test]
fn a_copy_on_the_hold_shelf_cannot_be_marked_lost() {
    let error = Given::<Lending>::events(on_shelf_for_bob())
        .when(mark_lost(1, 6), staff())
        .then_error("copy_in_use");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn marking_a_lost_or_withdrawn_copy_lost_records_nothing() {
    let history = with(two_copies(), [lost(1, 1), withdrawn(2, 1)]);
    for c in [1, 2] {
        Given::<Lending>::events(history.clone())
            .when(mark_lost(c, 2), staff())
            .then_no_events();
    }
}

#[test]
fn marking_an_unknown_copy_lost_is_refused() {
    let error = Given::<Lending>::events(two_copies())
        .when(mark_lost(9, 2), staff())
        .then_error("copy_not_found");
    assert_eq!(error, LendingError::CopyNotFound { copy_id: copy(9) });
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[test]
fn only_staff_mark_copies_lost() {
    Given::<Lending>::events(lent_to_ada())
        .when(mark_lost(1, 2), as_member(ada()))
        .then_error("forbidden");
}

// WithdrawCopy

#[test]
fn a_lent_copy_cannot_be_withdrawn() {
    let error = Given::<Lending>::events(lent_to_ada())
        .when(withdraw(1, 2), staff())
        .then_error("copy_in_use");
    assert_eq!(
        error,
        LendingError::CopyInUse {
            copy_id: copy(1),
            status: "on loan"
        }
    );
}

#[test]
fn a_copy_on_the_hold_shelf_cannot_be_withdrawn() {
    Given::<Lending>::events(on_shelf_for_bob())
        .when(withdraw(1, 6), staff())
        .then_error("copy_in_use");
}

#[test]
fn an_available_copy_can_be_withdrawn_and_is_lent_no_more() {
    let history = vec![copy_added(1, "A-1")];
    let lending = Given::<Lending>::events(history.clone())
        .when(withdraw(1, 2), staff())
        .then_events(vec![withdrawn(1, 2)]);
    assert_eq!(status(&lending, 1), CopyStatus::Withdrawn);
    Given::<Lending>::events(with(history, [withdrawn(1, 2)]))
        .when(check_out(1, ada(), 3), system())
        .then_error("copy_unavailable");
}

#[test]
fn a_lost_copy_can_be_withdrawn() {
    let history = with(
        lent_to_ada(),
        [ended(1, 1, ada(), 30, LoanEnd::Lost), lost(1, 30)],
    );
    Given::<Lending>::events(history)
        .when(withdraw(1, 31), staff())
        .then_events(vec![withdrawn(1, 31)]);
}

#[test]
fn withdrawing_a_copy_again_records_nothing() {
    let history = vec![copy_added(1, "A-1"), withdrawn(1, 2)];
    Given::<Lending>::events(history)
        .when(withdraw(1, 3), staff())
        .then_no_events();
}

#[test]
fn withdrawing_an_unknown_copy_is_refused() {
    Given::<Lending>::events(two_copies())
        .when(withdraw(9, 3), staff())
        .then_error("copy_not_found");
}

#[test]
fn only_staff_withdraw_copies() {
    Given::<Lending>::events(two_copies())
        .when(withdraw(1, 3), as_member(ada()))
        .then_error("forbidden");
}

#[test]
fn a_withdrawn_copy_is_not_lent_even_to_a_book_that_would_lend_implicit_copies() {
    let history = vec![copy_added(1, "A-1"), withdrawn(1, 2)];
    Given::<Lending>::events(history)
        .when(check_out_implicit(1, ada(), 3), system())
        .then_error("copy_unavailable");
}

// Stream and stored schema

#[test]
fn the_lending_stream_is_named_after_the_book() {
    assert_eq!(
        book().lending_stream_id(),
        format!("lending-{}", book().as_uuid().hyphenated())
    );
    assert_eq!(Lending::CATEGORY, "lending");
}

#[test]
fn every_lending_event_round_trips_through_storage() {
    let events = vec![
        copy_added(1, "A-1"),
        implicit_added(0),
        opened(1, 1, ada(), 0),
        fulfilled(1, ada(), 1),
        returned(1, 1, ada(), 5),
        ended(1, 1, ada(), 5, LoanEnd::Lost),
        renewed(1, ada(), 10, day(35), 1),
        overdue(1, ada(), 0),
        placed(1, bob(), 1),
        ready(1, bob(), 1, 5),
        cancelled(1, bob(), 6),
        expired(1, bob(), 12),
        lost(1, 30),
        withdrawn(1, 31),
    ];
    for event in &events {
        assert_round_trips(event);
        assert_eq!(event.schema_version(), 1);
    }
}

#[test]
fn lending_events_have_pinned_shapes() {
    let ended = ended(1, 1, ada(), 5, LoanEnd::Lost);
    assert_eq!(ended.event_type(), "LoanEnded");
    assert_eq!(
        ended.to_payload(),
        json!({
            "loan_id": loan(1).to_string(),
            "copy_id": copy(1).to_string(),
            "member": ada().to_string(),
            "at": day(5).as_micros(),
            "end": "lost",
        })
    );
    assert_eq!(implicit_added(0).event_type(), "CopyAdded");
    assert_eq!(
        implicit_added(0).to_payload(),
        json!({"copy_id": implicit_copy_id(book(), 0).to_string(), "barcode": null})
    );
    assert_eq!(
        ready(1, bob(), 1, 5).to_payload(),
        json!({
            "hold_id": hold(1).to_string(),
            "member": bob().to_string(),
            "copy_id": copy(1).to_string(),
            "pickup_until": day(12).as_micros(),
        })
    );
    let names: Vec<_> = [
        copy_added(1, "A-1"),
        opened(1, 1, ada(), 0),
        fulfilled(1, ada(), 1),
        returned(1, 1, ada(), 5),
        renewed(1, ada(), 10, day(35), 1),
        overdue(1, ada(), 0),
        placed(1, bob(), 1),
        ready(1, bob(), 1, 5),
        cancelled(1, bob(), 6),
        expired(1, bob(), 12),
        lost(1, 30),
        withdrawn(1, 31),
    ]
    .iter()
    .map(|event| event.event_type())
    .collect();
    assert_eq!(
        names,
        vec![
            "CopyAdded",
            "LoanOpened",
            "HoldFulfilled",
            "LoanEnded",
            "LoanRenewed",
            "LoanOverdue",
            "HoldPlaced",
            "HoldReady",
            "HoldCancelled",
            "HoldExpired",
            "CopyLost",
            "CopyWithdrawn",
        ]
    );
}

#[test]
fn a_stored_copy_without_a_barcode_field_is_an_implicit_copy() {
    let event = LendingEvent::from_stored("CopyAdded", 1, &json!({"copy_id": copy(1).to_string()}))
        .unwrap();
    assert_eq!(
        event,
        LendingEvent::CopyAdded {
            copy_id: copy(1),
            barcode: None
        }
    );
}

#[test]
fn unknown_lending_types_and_future_versions_are_reported() {
    assert_eq!(
        LendingEvent::from_stored("CopyStolen", 1, &json!({})).unwrap_err(),
        EventDecodeError::UnknownType {
            event_type: "CopyStolen".to_owned()
        }
    );
    assert_eq!(
        LendingEvent::from_stored("LoanOpened", 2, &json!({})).unwrap_err(),
        EventDecodeError::UnsupportedVersion {
            event_type: "LoanOpened".to_owned(),
            version: 2
        }
    );
    let error = LendingEvent::from_stored(
        "CopyAdded",
        1,
        &json!({"copy_id": copy(1).to_string(), "barcode": "  "}),
    )
    .unwrap_err();
    assert!(
        matches!(error, EventDecodeError::Malformed { .. }),
        "{error}"
    );
}

#[test]
fn lending_error_codes_and_kinds() {
    let cases = [
        (
            LendingError::CopyUnavailable,
            "copy_unavailable",
            ErrorKind::Conflict,
        ),
        (
            LendingError::AlreadyBorrowed,
            "already_borrowed",
            ErrorKind::Conflict,
        ),
        (LendingError::HoldExists, "hold_exists", ErrorKind::Conflict),
        (
            LendingError::HoldNotNeeded,
            "hold_not_needed",
            ErrorKind::Conflict,
        ),
        (
            LendingError::Forbidden { action: "x" },
            "forbidden",
            ErrorKind::Forbidden,
        ),
    ];
    for (error, code, kind) in cases {
        assert_eq!(error.code(), code);
        assert_eq!(error.kind(), kind);
    }
}

// Invariants over random command sequences

/// A small deterministic pseudo-random generator (SplitMix64), so failures reproduce by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const MEMBERS: [u128; 5] = [1, 2, 3, 4, 5];
const BARCODES: [&str; 5] = ["B-1", "B-2", "B-3", "B-4", "B-5"];

/// What a random run knows: the ids it has used, so commands hit existing loans and holds often.
struct Run {
    rng: Rng,
    now: i64,
    implicit_copies: u32,
    next_loan: u128,
    next_hold: u128,
}

impl Run {
    /// The policy's implicit copies, which now and then changes between commands (a new
    /// setting, or nodes that disagree while it rolls out).
    fn implicit_copies(&mut self) -> u32 {
        if self.rng.chance(10) {
            self.rng.below(3) as u32
        } else {
            self.implicit_copies
        }
    }

    fn micros(&self) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + self.now)
    }

    fn known_loan(&mut self) -> LoanId {
        // Mostly a used id (open or ended), sometimes one never seen.
        let n = if self.next_loan > 1 && self.rng.chance(90) {
            1 + u128::from(self.rng.below((self.next_loan - 1) as u64))
        } else {
            self.next_loan + 1000
        };
        loan(n)
    }

    fn known_hold(&mut self) -> HoldId {
        let n = if self.next_hold > 1 && self.rng.chance(90) {
            1 + u128::from(self.rng.below((self.next_hold - 1) as u64))
        } else {
            self.next_hold + 1000
        };
        hold(n)
    }

    fn context(&mut self, owner: Option<UserId>) -> CommandContext {
        match self.rng.below(10) {
            0..=5 => system(),
            6 => staff(),
            7 | 8 => owner.map_or_else(system, as_member),
            _ => as_member(user(self.rng.pick(&MEMBERS))),
        }
    }

    fn command(&mut self, state: &Lending) -> (LendingCommand, CommandContext) {
        // Time moves on by up to five days a step, in hours.
        self.now += i64::try_from(self.rng.below(5 * 24)).unwrap() * 3_600_000_000;
        let at = self.micros();
        let pickup_until = at.plus_days(1 + self.rng.below(4) as u32);
        let member = user(self.rng.pick(&MEMBERS));
        match self.rng.below(100) {
            0..=7 => (
                LendingCommand::AddCopy {
                    copy_id: copy(u128::from(self.rng.below(6))),
                    barcode: barcode(self.rng.pick(&BARCODES)),
                    at,
                    pickup_until,
                },
                self.context(None),
            ),
            8..=29 => {
                let loan_id = if self.rng.chance(85) {
                    self.next_loan += 1;
                    loan(self.next_loan - 1)
                } else {
                    self.known_loan()
                };
                let request = LoanRequest {
                    loan_id,
                    book_id: book(),
                    member,
                    requested_at: at,
                    due_at: at.plus_days(1 + self.rng.below(10) as u32),
                    implicit_copies: self.implicit_copies(),
                };
                (
                    LendingCommand::CheckOut { request },
                    self.context(Some(member)),
                )
            }
            30..=44 => {
                let loan_id = self.pick_open_loan(state);
                let owner = state.loans().get(&loan_id).map(|loan| loan.member);
                (
                    LendingCommand::Return {
                        loan_id,
                        at,
                        pickup_until,
                    },
                    self.context(owner),
                )
            }
            45..=51 => {
                let loan_id = self.pick_open_loan(state);
                let owner = state.loans().get(&loan_id).map(|loan| loan.member);
                let rules = RenewalRules {
                    max_renewals: self.rng.below(3) as u32,
                    period_days: 1 + self.rng.below(14) as u32,
                    refuse_while_held: self.rng.chance(50),
                    earliest_days_before_due: self.rng.chance(30).then(|| self.rng.below(5) as u32),
                };
                (
                    LendingCommand::Renew { loan_id, at, rules },
                    self.context(owner),
                )
            }
            52..=56 => {
                let loan_id = self.pick_open_loan(state);
                (
                    LendingCommand::MarkOverdue { loan_id, at },
                    self.context(None),
                )
            }
            57..=74 => {
                let hold_id = if self.rng.chance(85) {
                    self.next_hold += 1;
                    hold(self.next_hold - 1)
                } else {
                    self.known_hold()
                };
                let request = HoldRequest {
                    hold_id,
                    book_id: book(),
                    member,
                    requested_at: at,
                    implicit_copies: self.implicit_copies(),
                };
                (
                    LendingCommand::PlaceHold { request },
                    self.context(Some(member)),
                )
            }
            75..=82 => {
                let hold_id = self.pick_active_hold(state);
                let owner = state
                    .queue()
                    .iter()
                    .find(|hold| hold.hold_id == hold_id)
                    .map(|hold| hold.member);
                (
                    LendingCommand::CancelHold {
                        hold_id,
                        at,
                        pickup_until,
                    },
                    self.context(owner),
                )
            }
            83..=91 => {
                let hold_id = self.pick_active_hold(state);
                (
                    LendingCommand::ExpireHold {
                        hold_id,
                        at,
                        pickup_until,
                    },
                    self.context(None),
                )
            }
            92..=95 => (
                LendingCommand::MarkLost {
                    copy_id: self.pick_copy(state),
                    at,
                },
                self.context(None),
            ),
            _ => (
                LendingCommand::WithdrawCopy {
                    copy_id: self.pick_copy(state),
                    at,
                },
                self.context(None),
            ),
        }
    }

    fn pick_open_loan(&mut self, state: &Lending) -> LoanId {
        let open: Vec<_> = state.loans().keys().copied().collect();
        if !open.is_empty() && self.rng.chance(85) {
            self.rng.pick(&open)
        } else {
            self.known_loan()
        }
    }

    fn pick_active_hold(&mut self, state: &Lending) -> HoldId {
        let active: Vec<_> = state.queue().iter().map(|hold| hold.hold_id).collect();
        if !active.is_empty() && self.rng.chance(85) {
            self.rng.pick(&active)
        } else {
            self.known_hold()
        }
    }

    fn pick_copy(&mut self, state: &Lending) -> CopyId {
        let copies: Vec<_> = state.copies().map(|(id, _)| id).collect();
        if !copies.is_empty() && self.rng.chance(90) {
            self.rng.pick(&copies)
        } else {
            copy(100 + u128::from(self.rng.below(3)))
        }
    }
}

/// Checks every invariant of the lending state, `placed` being every hold id in the order its
/// `HoldPlaced` was recorded.
fn check_invariants(state: &Lending, placed: &[HoldId], context: &str) {
    let copies: Vec<_> = state
        .copies()
        .map(|(id, copy)| (id, copy.clone()))
        .collect();
    let status_of = |copy_id: CopyId| {
        copies
            .iter()
            .find(|(id, _)| *id == copy_id)
            .map(|(_, copy)| copy.status)
    };

    // Copy ids are unique; each copy on loan belongs to exactly the loan it names.
    for (index, (id, copy)) in copies.iter().enumerate() {
        assert!(
            copies[..index].iter().all(|(other, _)| other != id),
            "copy {id} registered twice\n{context}"
        );
        match copy.status {
            CopyStatus::OnLoan(loan_id) => {
                let open = state.loans().get(&loan_id);
                assert!(
                    open.is_some_and(|loan| loan.copy_id == *id),
                    "copy {id} is on loan {loan_id}, which is not an open loan of it\n{context}"
                );
            }
            CopyStatus::OnHoldShelf(hold_id) => {
                let hold = state.queue().iter().find(|hold| hold.hold_id == hold_id);
                assert!(
                    hold.is_some_and(|hold| hold.ready.is_some_and(|(c, _)| c == *id)),
                    "copy {id} is on the shelf for hold {hold_id}, which does not hold it\n{context}"
                );
            }
            CopyStatus::Available | CopyStatus::Lost | CopyStatus::Withdrawn => {}
        }
    }

    // Every open loan's copy is on loan to it, so no copy has two open loans.
    let mut lent_copies = Vec::new();
    let mut borrowers = Vec::new();
    for (loan_id, loan) in state.loans() {
        assert_eq!(
            status_of(loan.copy_id),
            Some(CopyStatus::OnLoan(*loan_id)),
            "open loan {loan_id}'s copy is not on loan to it\n{context}"
        );
        assert!(
            !lent_copies.contains(&loan.copy_id),
            "copy {} has two open loans\n{context}",
            loan.copy_id
        );
        lent_copies.push(loan.copy_id);
        assert!(
            !borrowers.contains(&loan.member),
            "member {} has two open loans of the book\n{context}",
            loan.member
        );
        borrowers.push(loan.member);
    }

    // Every ready hold's copy is on the shelf for it, and no two holds share a copy.
    let mut shelved = Vec::new();
    let mut waiters = Vec::new();
    for hold in state.queue() {
        if let Some((copy_id, _)) = hold.ready {
            assert_eq!(
                status_of(copy_id),
                Some(CopyStatus::OnHoldShelf(hold.hold_id)),
                "ready hold {}'s copy is not on the shelf for it\n{context}",
                hold.hold_id
            );
            assert!(
                !shelved.contains(&copy_id),
                "copy {copy_id} held twice\n{context}"
            );
            shelved.push(copy_id);
        }
        assert!(
            !waiters.contains(&hold.member),
            "member {} has two holds on the book\n{context}",
            hold.member
        );
        waiters.push(hold.member);
        assert!(
            !borrowers.contains(&hold.member),
            "member {} waits for a book they have\n{context}",
            hold.member
        );
    }

    // The queue keeps the order holds were placed in.
    let positions: Vec<_> = state
        .queue()
        .iter()
        .map(|hold| {
            placed
                .iter()
                .position(|id| *id == hold.hold_id)
                .unwrap_or_else(|| panic!("hold {} was never placed\n{context}", hold.hold_id))
        })
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "the queue is out of order: {positions:?}\n{context}"
    );

    // Copies go to holds in queue order: the ready holds are a prefix of the queue, and while
    // anyone waits no copy is simply available.
    let first_waiting = state.queue().iter().position(|hold| hold.ready.is_none());
    if let Some(first_waiting) = first_waiting {
        assert!(
            state.queue()[first_waiting..]
                .iter()
                .all(|hold| hold.ready.is_none()),
            "a later hold got a copy before an earlier one\n{context}"
        );
        assert!(
            copies
                .iter()
                .all(|(_, copy)| copy.status != CopyStatus::Available),
            "a copy is available while a member waits\n{context}"
        );
    }
}

/// Runs one random sequence; returns the event types it produced.
fn random_run(seed: u64, steps: usize, implicit_copies: u32) -> Vec<&'static str> {
    let mut run = Run {
        rng: Rng(seed),
        now: 0,
        implicit_copies,
        next_loan: 1,
        next_hold: 1,
    };
    let mut state = Lending::default();
    let mut history: Vec<LendingEvent> = Vec::new();
    let mut placed_order: Vec<HoldId> = Vec::new();
    let mut seen = Vec::new();
    for step in 0..steps {
        let (command, ctx) = run.command(&state);
        let outcome = state.decide(&command, &ctx);
        let context = format!(
            "seed {seed}, implicit copies {implicit_copies}, step {step}\ncommand: {command:?}\nby: {:?}\noutcome: {outcome:?}",
            ctx.principal
        );
        let Ok(events) = outcome else { continue };
        for event in &events {
            assert_round_trips(event);
            if let LendingEvent::HoldPlaced { hold_id, .. } = event {
                assert!(
                    !placed_order.contains(hold_id),
                    "hold placed twice\n{context}"
                );
                placed_order.push(*hold_id);
            }
            if !seen.contains(&event.event_type()) {
                seen.push(event.event_type());
            }
            state.apply(event);
        }
        history.extend(events.iter().cloned());
        check_invariants(&state, &placed_order, &context);

        // An accepted command redone finds nothing left to do (a renewal would renew again; the
        // store's command ids keep it from being redone).
        if !events.is_empty() && !matches!(command, LendingCommand::Renew { .. }) {
            let again = state.decide(&command, &ctx);
            assert_eq!(
                again,
                Ok(Vec::new()),
                "redoing the command changed something\n{context}"
            );
        }
    }

    // Rebuilding from the history gives the same state.
    let rebuilt = Given::<Lending>::events(history).state().clone();
    assert_eq!(
        rebuilt
            .copies()
            .map(|(id, copy)| (id, copy.clone()))
            .collect::<Vec<_>>(),
        state
            .copies()
            .map(|(id, copy)| (id, copy.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(rebuilt.loans(), state.loans());
    assert_eq!(rebuilt.queue(), state.queue());
    seen
}

#[test]
fn random_command_sequences_keep_the_lending_invariants() {
    let mut seen: Vec<&str> = Vec::new();
    for seed in 0..300_u64 {
        let implicit_copies = (seed % 3) as u32;
        for event_type in random_run(seed, 120, implicit_copies) {
            if !seen.contains(&event_type) {
                seen.push(event_type);
            }
        }
    }
    // The runs are only worth something if they reached every kind of fact.
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![
            "CopyAdded",
            "CopyLost",
            "CopyWithdrawn",
            "HoldCancelled",
            "HoldExpired",
            "HoldFulfilled",
            "HoldPlaced",
            "HoldReady",
            "LoanEnded",
            "LoanOpened",
            "LoanOverdue",
            "LoanRenewed",
        ]
    );
}
