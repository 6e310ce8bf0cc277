//! Given/when/then tests for the member's side of lending on the user aggregate: loan and hold
//! slots under the member's limits and blocks, one rule per test, plus their stored schema.

use quire_domain::ids::{BookId, HoldId, LoanId, UserId};
use quire_domain::lending::{HoldRequest, LoanRequest};
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::user::{User, UserCommand, UserError, UserEvent};
use quire_domain::values::{PersonName, Timestamp};
use quire_domain::{CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError, Role};
use serde_json::json;
use uuid::Uuid;

// Fixtures

const MAX_LOANS: u32 = 3;
const MAX_HOLDS: u32 = 2;
const BLOCK_AFTER: u32 = 2;

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e00 + n))
}

/// The member whose stream the tests use: a patron enrolled without a login.
fn ada() -> UserId {
    user(1)
}

fn bob() -> UserId {
    user(2)
}

fn book(n: u128) -> BookId {
    BookId::from_uuid(Uuid::from_u128(0xb000 + n))
}

fn loan(n: u128) -> LoanId {
    LoanId::from_uuid(Uuid::from_u128(0x10a0 + n))
}

fn hold(n: u128) -> HoldId {
    HoldId::from_uuid(Uuid::from_u128(0x40d0 + n))
}

fn day(n: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + n * Timestamp::MICROS_PER_DAY)
}

fn as_ada() -> CommandContext {
    CommandContext::member(ada())
}

fn as_bob() -> CommandContext {
    CommandContext::member(bob())
}

fn staff() -> CommandContext {
    CommandContext::admin(user(99))
}

fn system() -> CommandContext {
    CommandContext::system()
}

fn enrolled() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: ada(),
        name: PersonName::parse("Ada Lovelace").unwrap(),
        username: None,
        email: None,
        role: Role::Member,
        password_hash: None,
    }
}

fn loan_request(l: u128, b: u128) -> LoanRequest {
    LoanRequest {
        loan_id: loan(l),
        book_id: book(b),
        member: ada(),
        requested_at: day(0),
        due_at: day(21),
        implicit_copies: 1,
    }
}

fn hold_request(h: u128, b: u128) -> HoldRequest {
    HoldRequest {
        hold_id: hold(h),
        book_id: book(b),
        member: ada(),
        requested_at: day(0),
        implicit_copies: 1,
    }
}

// Commands

/// Loan `l` of book `b`, under the fixtures' limits.
fn take_loan(l: u128, b: u128) -> UserCommand {
    take_loan_under(l, b, MAX_LOANS, BLOCK_AFTER)
}

fn take_loan_under(l: u128, b: u128, max_loans: u32, block_after_overdue: u32) -> UserCommand {
    UserCommand::TakeLoanSlot {
        request: loan_request(l, b),
        max_loans,
        block_after_overdue,
    }
}

fn release_loan(l: u128) -> UserCommand {
    UserCommand::ReleaseLoanSlot { loan_id: loan(l) }
}

fn flag_overdue(l: u128) -> UserCommand {
    UserCommand::FlagLoanOverdue { loan_id: loan(l) }
}

fn take_hold(h: u128, b: u128) -> UserCommand {
    take_hold_under(h, b, MAX_HOLDS, BLOCK_AFTER)
}

fn take_hold_under(h: u128, b: u128, max_holds: u32, block_after_overdue: u32) -> UserCommand {
    UserCommand::TakeHoldSlot {
        request: hold_request(h, b),
        max_holds,
        block_after_overdue,
    }
}

fn release_hold(h: u128) -> UserCommand {
    UserCommand::ReleaseHoldSlot { hold_id: hold(h) }
}

// Events

fn loan_taken(l: u128, b: u128) -> UserEvent {
    UserEvent::LoanSlotTaken {
        request: loan_request(l, b),
    }
}

fn loan_released(l: u128) -> UserEvent {
    UserEvent::LoanSlotReleased { loan_id: loan(l) }
}

fn flagged(l: u128) -> UserEvent {
    UserEvent::LoanFlaggedOverdue { loan_id: loan(l) }
}

fn hold_taken(h: u128, b: u128) -> UserEvent {
    UserEvent::HoldSlotTaken {
        request: hold_request(h, b),
    }
}

fn hold_released(h: u128) -> UserEvent {
    UserEvent::HoldSlotReleased { hold_id: hold(h) }
}

// Histories

fn member() -> Vec<UserEvent> {
    vec![enrolled()]
}

fn deactivated() -> Vec<UserEvent> {
    vec![enrolled(), UserEvent::UserDeactivated]
}

fn with(mut history: Vec<UserEvent>, more: impl IntoIterator<Item = UserEvent>) -> Vec<UserEvent> {
    history.extend(more);
    history
}

/// Ada borrows books 1, 2 and 3: as many as `MAX_LOANS` allows.
fn at_loan_limit() -> Vec<UserEvent> {
    with(
        member(),
        [loan_taken(1, 1), loan_taken(2, 2), loan_taken(3, 3)],
    )
}

/// Ada has two loans, both overdue: `BLOCK_AFTER` blocks her.
fn blocked() -> Vec<UserEvent> {
    with(
        member(),
        [loan_taken(1, 1), loan_taken(2, 2), flagged(1), flagged(2)],
    )
}

fn loans_of(user: &User) -> Vec<(LoanId, BookId)> {
    user.lending().loans().collect()
}

fn holds_of(user: &User) -> Vec<(HoldId, BookId)> {
    user.lending().holds().collect()
}

// TakeLoanSlot

#[test]
fn a_member_takes_a_loan_slot_to_borrow() {
    let ada_user = Given::<User>::events(member())
        .when(take_loan(1, 1), as_ada())
        .then_events(vec![loan_taken(1, 1)]);
    assert_eq!(loans_of(&ada_user), vec![(loan(1), book(1))]);
    assert_eq!(ada_user.lending().overdue(), 0);
}

#[test]
fn staff_and_the_system_can_take_a_loan_slot_for_a_member() {
    for ctx in [staff(), system()] {
        Given::<User>::events(member())
            .when(take_loan(1, 1), ctx)
            .then_events(vec![loan_taken(1, 1)]);
    }
}

#[test]
fn a_member_cannot_take_a_loan_slot_for_another_member() {
    let error = Given::<User>::events(member())
        .when(take_loan(1, 1), as_bob())
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn nobody_takes_a_loan_slot_for_a_user_who_never_registered() {
    Given::<User>::nothing()
        .when(take_loan(1, 1), system())
        .then_error("not_found");
}

#[test]
fn a_member_takes_loan_slots_up_to_the_limit() {
    let two = with(member(), [loan_taken(1, 1), loan_taken(2, 2)]);
    let ada_user = Given::<User>::events(two)
        .when(take_loan(3, 3), as_ada())
        .then_events(vec![loan_taken(3, 3)]);
    assert_eq!(loans_of(&ada_user).len(), MAX_LOANS as usize);
}

#[test]
fn a_member_at_the_loan_limit_cannot_take_another_slot() {
    let error = Given::<User>::events(at_loan_limit())
        .when(take_loan(4, 4), as_ada())
        .then_error("loan_limit_reached");
    assert_eq!(error, UserError::LoanLimitReached { max: MAX_LOANS });
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn staff_cannot_take_a_slot_past_the_limit_either() {
    Given::<User>::events(at_loan_limit())
        .when(take_loan(4, 4), system())
        .then_error("loan_limit_reached");
}

#[test]
fn a_limit_of_zero_loans_refuses_every_borrow() {
    Given::<User>::events(member())
        .when(take_loan_under(1, 1, 0, BLOCK_AFTER), as_ada())
        .then_error("loan_limit_reached");
}

#[test]
fn a_lower_limit_applies_to_loans_already_held() {
    // The policy went from 3 to 2 loans while Ada had 3: she keeps them but borrows no more.
    Given::<User>::events(at_loan_limit())
        .when(take_loan_under(4, 4, 2, BLOCK_AFTER), as_ada())
        .then_error("loan_limit_reached");
}

#[test]
fn a_member_cannot_take_two_loan_slots_for_the_same_book() {
    let history = with(member(), [loan_taken(1, 1)]);
    let error = Given::<User>::events(history)
        .when(take_loan(2, 1), as_ada())
        .then_error("already_borrowed");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn the_same_book_is_refused_as_already_borrowed_even_at_the_limit() {
    Given::<User>::events(at_loan_limit())
        .when(take_loan(4, 1), as_ada())
        .then_error("already_borrowed");
}

#[test]
fn retaking_the_same_loan_slot_records_nothing() {
    let history = with(member(), [loan_taken(1, 1)]);
    Given::<User>::events(history)
        .when(take_loan(1, 1), as_ada())
        .then_no_events();
}

#[test]
fn retaking_a_slot_already_held_records_nothing_even_at_the_limit_or_when_blocked() {
    Given::<User>::events(at_loan_limit())
        .when(take_loan(3, 3), system())
        .then_no_events();
    Given::<User>::events(blocked())
        .when(take_loan(2, 2), system())
        .then_no_events();
}

#[test]
fn a_loan_request_for_another_member_is_refused() {
    let mut request = loan_request(1, 1);
    request.member = bob();
    let error = Given::<User>::events(member())
        .when(
            UserCommand::TakeLoanSlot {
                request,
                max_loans: MAX_LOANS,
                block_after_overdue: BLOCK_AFTER,
            },
            system(),
        )
        .then_error("wrong_member");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn a_deactivated_member_cannot_take_a_loan_slot() {
    for ctx in [as_ada(), system()] {
        Given::<User>::events(deactivated())
            .when(take_loan(1, 1), ctx)
            .then_error("user_deactivated");
    }
}

// Blocks

#[test]
fn a_member_with_fewer_overdue_loans_than_the_block_can_borrow() {
    let history = with(member(), [loan_taken(1, 1), flagged(1)]);
    Given::<User>::events(history)
        .when(take_loan(2, 2), as_ada())
        .then_events(vec![loan_taken(2, 2)]);
}

#[test]
fn a_member_with_as_many_overdue_loans_as_the_block_cannot_borrow() {
    let error = Given::<User>::events(blocked())
        .when(take_loan(3, 3), as_ada())
        .then_error("member_blocked");
    assert_eq!(error, UserError::MemberBlocked { overdue: 2 });
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn one_overdue_loan_blocks_when_the_block_is_one() {
    let history = with(member(), [loan_taken(1, 1), flagged(1)]);
    Given::<User>::events(history)
        .when(take_loan_under(2, 2, MAX_LOANS, 1), as_ada())
        .then_error("member_blocked");
}

#[test]
fn a_block_of_zero_never_blocks() {
    Given::<User>::events(blocked())
        .when(take_loan_under(3, 3, MAX_LOANS, 0), as_ada())
        .then_events(vec![loan_taken(3, 3)]);
}

#[test]
fn a_blocked_member_at_the_limit_is_told_about_the_block() {
    let history = with(blocked(), [loan_taken(3, 3)]);
    Given::<User>::events(history)
        .when(take_loan(4, 4), as_ada())
        .then_error("member_blocked");
}

#[test]
fn returning_an_overdue_loan_lifts_the_block() {
    let history = with(blocked(), [loan_released(1)]);
    let ada_user = Given::<User>::events(history)
        .when(take_loan(3, 3), as_ada())
        .then_events(vec![loan_taken(3, 3)]);
    assert_eq!(ada_user.lending().overdue(), 1);
}

// FlagLoanOverdue

#[test]
fn the_system_flags_an_overdue_loan() {
    let history = with(member(), [loan_taken(1, 1)]);
    let ada_user = Given::<User>::events(history)
        .when(flag_overdue(1), system())
        .then_events(vec![flagged(1)]);
    assert_eq!(ada_user.lending().overdue(), 1);
}

#[test]
fn a_loan_is_flagged_overdue_once() {
    let history = with(member(), [loan_taken(1, 1), flagged(1)]);
    let ada_user = Given::<User>::events(history)
        .when(flag_overdue(1), system())
        .then_no_events();
    assert_eq!(ada_user.lending().overdue(), 1);
}

#[test]
fn flagging_a_loan_the_member_does_not_hold_records_nothing() {
    let history = with(member(), [loan_taken(1, 1), loan_released(1)]);
    for l in [1, 7] {
        Given::<User>::events(history.clone())
            .when(flag_overdue(l), system())
            .then_no_events();
    }
}

#[test]
fn a_member_cannot_flag_their_own_loans() {
    let history = with(member(), [loan_taken(1, 1)]);
    let error = Given::<User>::events(history)
        .when(flag_overdue(1), as_ada())
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn an_admin_can_flag_an_overdue_loan() {
    let history = with(member(), [loan_taken(1, 1)]);
    Given::<User>::events(history)
        .when(flag_overdue(1), staff())
        .then_events(vec![flagged(1)]);
}

#[test]
fn a_deactivated_members_loan_can_still_be_flagged() {
    // The slot was taken before the deactivation; the loan still runs its course.
    let mut history = with(member(), [loan_taken(1, 1)]);
    history.push(UserEvent::UserDeactivated);
    Given::<User>::events(history)
        .when(flag_overdue(1), system())
        .then_events(vec![flagged(1)]);
}

// ReleaseLoanSlot

#[test]
fn releasing_a_loan_slot_frees_room_under_the_limit() {
    let ada_user = Given::<User>::events(at_loan_limit())
        .when(release_loan(2), system())
        .then_events(vec![loan_released(2)]);
    assert_eq!(
        loans_of(&ada_user),
        vec![(loan(1), book(1)), (loan(3), book(3))]
    );
    Given::<User>::events(with(at_loan_limit(), [loan_released(2)]))
        .when(take_loan(4, 4), as_ada())
        .then_events(vec![loan_taken(4, 4)]);
}

#[test]
fn a_member_can_borrow_a_book_again_once_its_slot_is_released() {
    let history = with(member(), [loan_taken(1, 1), loan_released(1)]);
    Given::<User>::events(history)
        .when(take_loan(2, 1), as_ada())
        .then_events(vec![loan_taken(2, 1)]);
}

#[test]
fn releasing_an_unknown_or_released_loan_slot_records_nothing() {
    let history = with(member(), [loan_taken(1, 1), loan_released(1)]);
    for l in [1, 7] {
        Given::<User>::events(history.clone())
            .when(release_loan(l), system())
            .then_no_events();
    }
}

#[test]
fn a_member_cannot_release_their_own_loan_slot() {
    let history = with(member(), [loan_taken(1, 1)]);
    for ctx in [as_ada(), as_bob()] {
        Given::<User>::events(history.clone())
            .when(release_loan(1), ctx)
            .then_error("forbidden");
    }
}

#[test]
fn an_admin_can_release_a_loan_slot() {
    let history = with(member(), [loan_taken(1, 1)]);
    Given::<User>::events(history)
        .when(release_loan(1), staff())
        .then_events(vec![loan_released(1)]);
}

#[test]
fn a_deactivated_member_still_gets_loan_slots_released() {
    let mut history = with(member(), [loan_taken(1, 1), flagged(1)]);
    history.push(UserEvent::UserDeactivated);
    let ada_user = Given::<User>::events(history)
        .when(release_loan(1), system())
        .then_events(vec![loan_released(1)]);
    assert!(loans_of(&ada_user).is_empty());
    assert_eq!(ada_user.lending().overdue(), 0);
    assert!(!ada_user.is_active());
}

#[test]
fn releasing_a_slot_of_a_user_who_never_registered_is_not_found() {
    Given::<User>::nothing()
        .when(release_loan(1), system())
        .then_error("not_found");
    Given::<User>::nothing()
        .when(flag_overdue(1), system())
        .then_error("not_found");
    Given::<User>::nothing()
        .when(release_hold(1), system())
        .then_error("not_found");
}

#[test]
fn a_reactivated_member_borrows_again() {
    let history = with(deactivated(), [UserEvent::UserReactivated]);
    Given::<User>::events(history)
        .when(take_loan(1, 1), as_ada())
        .then_events(vec![loan_taken(1, 1)]);
}

// TakeHoldSlot

#[test]
fn a_member_takes_a_hold_slot_to_wait_for_a_book() {
    let ada_user = Given::<User>::events(member())
        .when(take_hold(1, 1), as_ada())
        .then_events(vec![hold_taken(1, 1)]);
    assert_eq!(holds_of(&ada_user), vec![(hold(1), book(1))]);
}

#[test]
fn staff_can_take_a_hold_slot_for_a_member() {
    for ctx in [staff(), system()] {
        Given::<User>::events(member())
            .when(take_hold(1, 1), ctx)
            .then_events(vec![hold_taken(1, 1)]);
    }
}

#[test]
fn a_member_cannot_take_a_hold_slot_for_another_member() {
    Given::<User>::events(member())
        .when(take_hold(1, 1), as_bob())
        .then_error("forbidden");
}

#[test]
fn a_member_at_the_hold_limit_cannot_take_another_hold_slot() {
    let history = with(member(), [hold_taken(1, 1), hold_taken(2, 2)]);
    let error = Given::<User>::events(history)
        .when(take_hold(3, 3), as_ada())
        .then_error("hold_limit_reached");
    assert_eq!(error, UserError::HoldLimitReached { max: MAX_HOLDS });
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_member_takes_hold_slots_up_to_the_limit() {
    let history = with(member(), [hold_taken(1, 1)]);
    Given::<User>::events(history)
        .when(take_hold(2, 2), as_ada())
        .then_events(vec![hold_taken(2, 2)]);
}

#[test]
fn a_member_cannot_take_two_hold_slots_for_the_same_book() {
    let history = with(member(), [hold_taken(1, 1)]);
    let error = Given::<User>::events(history)
        .when(take_hold(2, 1), as_ada())
        .then_error("hold_exists");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn retaking_the_same_hold_slot_records_nothing() {
    let history = with(member(), [hold_taken(1, 1), hold_taken(2, 2)]);
    Given::<User>::events(history)
        .when(take_hold(2, 2), as_ada())
        .then_no_events();
}

#[test]
fn a_hold_request_for_another_member_is_refused() {
    let mut request = hold_request(1, 1);
    request.member = bob();
    Given::<User>::events(member())
        .when(
            UserCommand::TakeHoldSlot {
                request,
                max_holds: MAX_HOLDS,
                block_after_overdue: BLOCK_AFTER,
            },
            system(),
        )
        .then_error("wrong_member");
}

#[test]
fn a_blocked_member_cannot_take_a_hold_slot() {
    let error = Given::<User>::events(blocked())
        .when(take_hold(1, 3), as_ada())
        .then_error("member_blocked");
    assert_eq!(error, UserError::MemberBlocked { overdue: 2 });
}

#[test]
fn a_block_of_zero_never_blocks_holds() {
    Given::<User>::events(blocked())
        .when(take_hold_under(1, 3, MAX_HOLDS, 0), as_ada())
        .then_events(vec![hold_taken(1, 3)]);
}

#[test]
fn a_deactivated_member_cannot_take_a_hold_slot() {
    Given::<User>::events(deactivated())
        .when(take_hold(1, 1), system())
        .then_error("user_deactivated");
}

#[test]
fn a_member_waiting_for_a_book_can_take_a_loan_slot_for_it() {
    // The borrow that fulfils a hold takes the loan slot while the hold slot is still held.
    let history = with(member(), [hold_taken(1, 1)]);
    let ada_user = Given::<User>::events(history)
        .when(take_loan(1, 1), as_ada())
        .then_events(vec![loan_taken(1, 1)]);
    assert_eq!(holds_of(&ada_user), vec![(hold(1), book(1))]);
    assert_eq!(loans_of(&ada_user), vec![(loan(1), book(1))]);
}

#[test]
fn hold_slots_and_loan_slots_count_against_separate_limits() {
    Given::<User>::events(at_loan_limit())
        .when(take_hold(1, 9), as_ada())
        .then_events(vec![hold_taken(1, 9)]);
    let history = with(member(), [hold_taken(1, 1), hold_taken(2, 2)]);
    Given::<User>::events(history)
        .when(take_loan(1, 3), as_ada())
        .then_events(vec![loan_taken(1, 3)]);
}

// ReleaseHoldSlot

#[test]
fn releasing_a_hold_slot_frees_room_under_the_limit() {
    let history = with(member(), [hold_taken(1, 1), hold_taken(2, 2)]);
    let ada_user = Given::<User>::events(history.clone())
        .when(release_hold(1), system())
        .then_events(vec![hold_released(1)]);
    assert_eq!(holds_of(&ada_user), vec![(hold(2), book(2))]);
    Given::<User>::events(with(history, [hold_released(1)]))
        .when(take_hold(3, 3), as_ada())
        .then_events(vec![hold_taken(3, 3)]);
}

#[test]
fn releasing_an_unknown_or_released_hold_slot_records_nothing() {
    let history = with(member(), [hold_taken(1, 1), hold_released(1)]);
    for h in [1, 7] {
        Given::<User>::events(history.clone())
            .when(release_hold(h), system())
            .then_no_events();
    }
}

#[test]
fn a_member_cannot_release_their_own_hold_slot() {
    let history = with(member(), [hold_taken(1, 1)]);
    let error = Given::<User>::events(history)
        .when(release_hold(1), as_ada())
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn a_deactivated_member_still_gets_hold_slots_released() {
    let mut history = with(member(), [hold_taken(1, 1)]);
    history.push(UserEvent::UserDeactivated);
    let ada_user = Given::<User>::events(history)
        .when(release_hold(1), staff())
        .then_events(vec![hold_released(1)]);
    assert!(holds_of(&ada_user).is_empty());
}

// Stored schema

#[test]
fn member_lending_events_round_trip_through_storage() {
    for event in [
        loan_taken(1, 1),
        loan_released(1),
        flagged(1),
        hold_taken(1, 1),
        hold_released(1),
    ] {
        assert_round_trips(&event);
        assert_eq!(event.schema_version(), 1);
    }
}

#[test]
fn member_lending_events_have_pinned_shapes() {
    let names: Vec<_> = [
        loan_taken(1, 1),
        loan_released(1),
        flagged(1),
        hold_taken(1, 1),
        hold_released(1),
    ]
    .iter()
    .map(|event| event.event_type())
    .collect();
    assert_eq!(
        names,
        vec![
            "LoanSlotTaken",
            "LoanSlotReleased",
            "LoanFlaggedOverdue",
            "HoldSlotTaken",
            "HoldSlotReleased",
        ]
    );
    assert_eq!(
        loan_released(1).to_payload(),
        json!({"loan_id": loan(1).to_string()})
    );
    assert_eq!(
        flagged(1).to_payload(),
        json!({"loan_id": loan(1).to_string()})
    );
    assert_eq!(
        hold_released(1).to_payload(),
        json!({"hold_id": hold(1).to_string()})
    );
    // The slot keeps the whole request, so an interrupted borrow is completed with it.
    let taken = loan_taken(1, 1).to_payload();
    for field in [
        "loan_id",
        "book_id",
        "member",
        "requested_at",
        "due_at",
        "implicit_copies",
    ] {
        assert!(taken.get(field).is_some(), "{field} missing from {taken}");
    }
    let held = hold_taken(1, 1).to_payload();
    for field in [
        "hold_id",
        "book_id",
        "member",
        "requested_at",
        "implicit_copies",
    ] {
        assert!(held.get(field).is_some(), "{field} missing from {held}");
    }
}

#[test]
fn future_versions_of_member_lending_events_are_reported() {
    assert_eq!(
        UserEvent::from_stored("LoanSlotTaken", 2, &json!({})).unwrap_err(),
        EventDecodeError::UnsupportedVersion {
            event_type: "LoanSlotTaken".to_owned(),
            version: 2
        }
    );
    let error =
        UserEvent::from_stored("HoldSlotReleased", 1, &json!({"hold_id": "nope"})).unwrap_err();
    assert!(
        matches!(error, EventDecodeError::Malformed { .. }),
        "{error}"
    );
}

#[test]
fn member_lending_error_codes_and_kinds() {
    let cases = [
        (
            UserError::AlreadyBorrowed,
            "already_borrowed",
            ErrorKind::Conflict,
        ),
        (UserError::HoldExists, "hold_exists", ErrorKind::Conflict),
        (
            UserError::LoanLimitReached { max: 1 },
            "loan_limit_reached",
            ErrorKind::Conflict,
        ),
        (
            UserError::HoldLimitReached { max: 1 },
            "hold_limit_reached",
            ErrorKind::Conflict,
        ),
        (
            UserError::MemberBlocked { overdue: 1 },
            "member_blocked",
            ErrorKind::Conflict,
        ),
        (UserError::WrongMember, "wrong_member", ErrorKind::Invalid),
    ];
    for (error, code, kind) in cases {
        assert_eq!(error.code(), code);
        assert_eq!(error.kind(), kind);
    }
}
