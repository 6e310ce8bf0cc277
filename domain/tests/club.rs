//! Given/when/then tests for the club aggregate (membership, moderators and voting rounds), one
//! rule per test, its stored event schema, whole-round scenarios (100 members, replayed ties,
//! instant runoff, the seed's write-in vote) and a property test over random command sequences.

use quire_domain::club::tally::NO_BALLOTS;
use quire_domain::club::{
    BookCount, Club, ClubCommand, ClubError, ClubEvent, RunoffRound, Tally, Visibility,
    VotingMethod,
};
use quire_domain::ids::{BookId, ClubId, RoundId, UserId};
use quire_domain::testing::{Given, assert_round_trips};
use quire_domain::values::{ClubName, Timestamp};
use quire_domain::{
    Aggregate, CommandContext, DomainError, DomainEvent, ErrorKind, EventDecodeError,
};
use serde_json::json;
use uuid::Uuid;

use VotingMethod::{Plurality, RankedChoice};

// Fixtures

/// Nominations close on day 7 and voting on day 14 of the tests' calendar.
const NOMINATIONS_CLOSE: i64 = 7;
const VOTING_CLOSES: i64 = 14;
/// Books a member may nominate in the tests' rounds.
const MAX_NOMINATIONS: u32 = 2;

fn club() -> ClubId {
    ClubId::from_uuid(Uuid::from_u128(0xc1ab))
}

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e00 + n))
}

/// The owner of the tests' club.
fn ada() -> UserId {
    user(1)
}

fn bob() -> UserId {
    user(2)
}

fn cyd() -> UserId {
    user(3)
}

/// Not a member of the tests' club.
fn dee() -> UserId {
    user(4)
}

fn book(n: u128) -> BookId {
    BookId::from_uuid(Uuid::from_u128(0xb000 + n))
}

fn round(n: u128) -> RoundId {
    RoundId::from_uuid(Uuid::from_u128(0x40_0000 + n))
}

/// Day `n` of the tests' calendar (day 0 is 2023-11-14T22:13:20Z).
fn day(n: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + n * Timestamp::MICROS_PER_DAY)
}

fn name() -> ClubName {
    ClubName::parse("Tuesday Readers").unwrap()
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

fn books(ns: &[u128]) -> Vec<BookId> {
    ns.iter().map(|n| book(*n)).collect()
}

// Commands

fn create(visibility: Visibility, write_ins: bool) -> ClubCommand {
    ClubCommand::Create {
        club_id: club(),
        name: name(),
        visibility,
        owner: ada(),
        write_ins,
        at: day(0),
    }
}

fn join(member: UserId) -> ClubCommand {
    ClubCommand::Join { member, at: day(0) }
}

fn leave(member: UserId) -> ClubCommand {
    ClubCommand::Leave { member, at: day(1) }
}

fn add_moderator(member: UserId) -> ClubCommand {
    ClubCommand::AddModerator { member, at: day(0) }
}

fn remove_moderator(member: UserId) -> ClubCommand {
    ClubCommand::RemoveModerator { member, at: day(1) }
}

fn open_with(r: u128, method: VotingMethod, at: i64, close: i64, closes: i64) -> ClubCommand {
    ClubCommand::OpenRound {
        round_id: round(r),
        method,
        nominations_close: day(close),
        voting_closes: day(closes),
        max_nominations_per_member: MAX_NOMINATIONS,
        hide_results: false,
        at: day(at),
    }
}

fn open(r: u128, method: VotingMethod) -> ClubCommand {
    open_with(r, method, 0, NOMINATIONS_CLOSE, VOTING_CLOSES)
}

fn nominate(r: u128, b: u128, member: UserId, at: i64) -> ClubCommand {
    ClubCommand::Nominate {
        round_id: round(r),
        book_id: book(b),
        member,
        at: day(at),
    }
}

fn cast(r: u128, member: UserId, choices: &[u128], at: i64) -> ClubCommand {
    ClubCommand::CastBallot {
        round_id: round(r),
        member,
        choices: books(choices),
        at: day(at),
    }
}

fn close(r: u128, at: i64) -> ClubCommand {
    ClubCommand::CloseRound {
        round_id: round(r),
        at: day(at),
    }
}

// Events

fn created(visibility: Visibility, write_ins: bool) -> ClubEvent {
    ClubEvent::ClubCreated {
        club_id: club(),
        name: name(),
        visibility,
        owner: ada(),
        write_ins,
        at: day(0),
    }
}

fn joined(member: UserId) -> ClubEvent {
    ClubEvent::MemberJoined { member, at: day(0) }
}

fn left(member: UserId) -> ClubEvent {
    ClubEvent::MemberLeft { member, at: day(1) }
}

fn moderator_added(member: UserId) -> ClubEvent {
    ClubEvent::ModeratorAdded { member, at: day(0) }
}

fn moderator_removed(member: UserId) -> ClubEvent {
    ClubEvent::ModeratorRemoved { member, at: day(1) }
}

fn opened_with(r: u128, method: VotingMethod, at: i64) -> ClubEvent {
    ClubEvent::RoundOpened {
        round_id: round(r),
        method,
        nominations_close: day(at + NOMINATIONS_CLOSE),
        voting_closes: day(at + VOTING_CLOSES),
        max_nominations_per_member: MAX_NOMINATIONS,
        hide_results: false,
        at: day(at),
    }
}

fn opened(r: u128, method: VotingMethod) -> ClubEvent {
    opened_with(r, method, 0)
}

fn nominated(r: u128, b: u128, member: UserId, at: i64) -> ClubEvent {
    ClubEvent::BookNominated {
        round_id: round(r),
        book_id: book(b),
        member,
        at: day(at),
    }
}

fn cast_ballot(r: u128, member: UserId, choices: &[u128], at: i64) -> ClubEvent {
    ClubEvent::BallotCast {
        round_id: round(r),
        member,
        choices: books(choices),
        at: day(at),
    }
}

fn closed(
    r: u128,
    tally: Tally,
    winner: Option<u128>,
    tie_break: Option<String>,
    at: i64,
) -> ClubEvent {
    ClubEvent::RoundClosed {
        round_id: round(r),
        tally,
        winner: winner.map(book),
        tie_break,
        at: day(at),
    }
}

fn counts(pairs: &[(u128, u32)]) -> Vec<BookCount> {
    pairs
        .iter()
        .map(|(b, votes)| BookCount {
            book_id: book(*b),
            votes: *votes,
        })
        .collect()
}

fn plurality_tally(pairs: &[(u128, u32)]) -> Tally {
    Tally::Plurality {
        counts: counts(pairs),
    }
}

// Histories

fn with(mut history: Vec<ClubEvent>, more: impl IntoIterator<Item = ClubEvent>) -> Vec<ClubEvent> {
    history.extend(more);
    history
}

/// Ada's club with Bob and Cyd as members.
fn club_of_three(visibility: Visibility, write_ins: bool) -> Vec<ClubEvent> {
    vec![created(visibility, write_ins), joined(bob()), joined(cyd())]
}

fn public_club() -> Vec<ClubEvent> {
    club_of_three(Visibility::Public, false)
}

/// A public club of three with round 1 open.
fn round_open(method: VotingMethod) -> Vec<ClubEvent> {
    with(public_club(), [opened(1, method)])
}

/// Round 1 with books 1 (Ada), 2 (Bob) and 3 (Cyd) nominated, in that order.
fn nominations(method: VotingMethod) -> Vec<ClubEvent> {
    with(
        round_open(method),
        [
            nominated(1, 1, ada(), 1),
            nominated(1, 2, bob(), 1),
            nominated(1, 3, cyd(), 2),
        ],
    )
}

/// A write-in club of three (Ada owns it) with a plurality round 1 open and nothing nominated.
fn write_in_round() -> Vec<ClubEvent> {
    with(
        club_of_three(Visibility::Public, true),
        [opened(1, Plurality)],
    )
}

/// Book 9 won round 1; round 2 is open.
fn after_a_win() -> Vec<ClubEvent> {
    with(
        round_open(Plurality),
        [
            nominated(1, 9, ada(), 1),
            cast_ballot(1, bob(), &[9], 8),
            closed(1, plurality_tally(&[(9, 1)]), Some(9), None, 14),
            opened_with(2, Plurality, 20),
        ],
    )
}

// Create

#[test]
fn a_signed_in_user_creates_a_club_they_own_and_moderate() {
    let club_state = Given::<Club>::nothing()
        .when(create(Visibility::Public, false), as_member(ada()))
        .then_events(vec![created(Visibility::Public, false)]);
    assert_eq!(club_state.id(), Some(club()));
    assert_eq!(club_state.name(), Some(&name()));
    assert_eq!(club_state.owner(), Some(ada()));
    assert_eq!(club_state.visibility(), Some(Visibility::Public));
    assert_eq!(club_state.created_at(), Some(day(0)));
    assert!(!club_state.allows_write_ins());
    assert!(club_state.is_member(ada()));
    assert_eq!(club_state.moderators(), [ada()]);
    assert_eq!(club_state.round(), None);
    assert!(club_state.books_read().is_empty());
}

#[test]
fn staff_create_a_club_for_another_user() {
    for ctx in [staff(), system()] {
        Given::<Club>::nothing()
            .when(create(Visibility::MembersOnly, true), ctx)
            .then_events(vec![created(Visibility::MembersOnly, true)]);
    }
}

#[test]
fn a_member_cannot_create_a_club_for_someone_else() {
    let error = Given::<Club>::nothing()
        .when(create(Visibility::Public, false), as_member(bob()))
        .then_error("forbidden");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn an_anonymous_caller_cannot_create_a_club() {
    Given::<Club>::nothing()
        .when(
            create(Visibility::Public, false),
            CommandContext::anonymous(),
        )
        .then_error("forbidden");
}

#[test]
fn a_club_is_created_once() {
    let error = Given::<Club>::events(public_club())
        .when(create(Visibility::Public, false), as_member(ada()))
        .then_error("already_exists");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_create_sent_to_another_clubs_stream_is_refused() {
    let other = ClubId::from_uuid(Uuid::from_u128(0xc1ac));
    let command = create(Visibility::Public, false);
    assert_eq!(command.check_stream(club()), Ok(()));
    let error = command.check_stream(other).unwrap_err();
    assert_eq!(error.code(), "club_id_mismatch");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(join(bob()).check_stream(other), Ok(()));
}

#[test]
fn commands_to_a_club_that_was_never_created_are_refused_as_not_found() {
    for command in [
        join(bob()),
        leave(bob()),
        add_moderator(bob()),
        remove_moderator(bob()),
        open(1, Plurality),
        nominate(1, 1, bob(), 1),
        cast(1, bob(), &[1], 8),
        close(1, 14),
    ] {
        let error = Given::<Club>::nothing()
            .when(command, staff())
            .then_error("not_found");
        assert_eq!(error.kind(), ErrorKind::NotFound);
    }
}

#[test]
fn the_club_stream_is_named_after_the_club() {
    assert_eq!(
        club().stream_id(),
        format!("club-{}", club().as_uuid().hyphenated())
    );
    assert_eq!(Club::CATEGORY, "club");
}

// Join

#[test]
fn anyone_signed_in_joins_a_public_club() {
    let club_state = Given::<Club>::events(public_club())
        .when(join(dee()), as_member(dee()))
        .then_events(vec![joined(dee())]);
    assert!(club_state.is_member(dee()));
    assert!(!club_state.is_moderator(dee()));
}

#[test]
fn joining_twice_records_nothing() {
    Given::<Club>::events(public_club())
        .when(join(bob()), as_member(bob()))
        .then_no_events();
}

#[test]
fn a_member_cannot_add_someone_else_to_a_public_club() {
    Given::<Club>::events(public_club())
        .when(join(dee()), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn nobody_joins_a_members_only_club_by_themself() {
    let history = club_of_three(Visibility::MembersOnly, false);
    Given::<Club>::events(history)
        .when(join(dee()), as_member(dee()))
        .then_error("forbidden");
}

#[test]
fn a_moderator_adds_a_member_to_a_members_only_club() {
    let history = with(
        club_of_three(Visibility::MembersOnly, false),
        [moderator_added(bob())],
    );
    for moderator in [ada(), bob()] {
        Given::<Club>::events(history.clone())
            .when(join(dee()), as_member(moderator))
            .then_events(vec![joined(dee())]);
    }
}

#[test]
fn a_moderator_adds_someone_to_a_public_club_too() {
    Given::<Club>::events(public_club())
        .when(join(dee()), as_member(ada()))
        .then_events(vec![joined(dee())]);
}

#[test]
fn a_member_of_a_members_only_club_asking_to_join_again_records_nothing() {
    let history = club_of_three(Visibility::MembersOnly, false);
    Given::<Club>::events(history)
        .when(join(bob()), as_member(bob()))
        .then_no_events();
}

#[test]
fn staff_add_a_member_to_a_members_only_club() {
    let history = club_of_three(Visibility::MembersOnly, false);
    for ctx in [staff(), system()] {
        Given::<Club>::events(history.clone())
            .when(join(dee()), ctx)
            .then_events(vec![joined(dee())]);
    }
}

#[test]
fn an_ordinary_member_cannot_add_anyone_to_a_members_only_club() {
    let history = club_of_three(Visibility::MembersOnly, false);
    Given::<Club>::events(history)
        .when(join(dee()), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn members_are_listed_in_join_order_with_the_owner_first() {
    let club_state = Given::<Club>::events(public_club())
        .when(join(dee()), as_member(dee()))
        .then_events(vec![joined(dee())]);
    let order: Vec<_> = club_state.members().iter().map(|m| m.user_id).collect();
    assert_eq!(order, vec![ada(), bob(), cyd(), dee()]);
    assert_eq!(club_state.members()[0].joined_at, day(0));
}

// Leave

#[test]
fn a_member_leaves() {
    let club_state = Given::<Club>::events(public_club())
        .when(leave(bob()), as_member(bob()))
        .then_events(vec![left(bob())]);
    assert!(!club_state.is_member(bob()));
    assert_eq!(club_state.members().len(), 2);
}

#[test]
fn staff_remove_a_member() {
    for ctx in [staff(), system()] {
        Given::<Club>::events(public_club())
            .when(leave(cyd()), ctx)
            .then_events(vec![left(cyd())]);
    }
}

#[test]
fn the_owner_cannot_leave() {
    let error = Given::<Club>::events(public_club())
        .when(leave(ada()), as_member(ada()))
        .then_error("owner_cannot_leave");
    assert_eq!(error, ClubError::OwnerCannotLeave);
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn leaving_a_club_one_is_not_in_records_nothing() {
    Given::<Club>::events(public_club())
        .when(leave(dee()), as_member(dee()))
        .then_no_events();
}

#[test]
fn a_member_cannot_remove_another_member() {
    Given::<Club>::events(public_club())
        .when(leave(cyd()), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn a_moderator_removes_an_ordinary_member_but_not_another_moderator() {
    let history = with(
        public_club(),
        [
            joined(dee()),
            moderator_added(bob()),
            moderator_added(cyd()),
        ],
    );
    Given::<Club>::events(history.clone())
        .when(leave(dee()), as_member(bob()))
        .then_events(vec![left(dee())]);
    Given::<Club>::events(history)
        .when(leave(cyd()), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn the_owner_removes_a_moderator_from_the_club() {
    let history = with(public_club(), [moderator_added(bob())]);
    let club_state = Given::<Club>::events(history)
        .when(leave(bob()), as_member(ada()))
        .then_events(vec![left(bob())]);
    assert!(!club_state.is_member(bob()));
    assert!(!club_state.is_moderator(bob()));
    assert_eq!(club_state.moderators(), [ada()]);
}

#[test]
fn a_member_who_leaves_takes_their_ballot_back() {
    let history = with(
        nominations(Plurality),
        [
            cast_ballot(1, bob(), &[2], 8),
            cast_ballot(1, cyd(), &[3], 8),
        ],
    );
    let club_state = Given::<Club>::events(history)
        .when(leave(bob()), as_member(bob()))
        .then_events(vec![left(bob())]);
    let round_state = club_state.round().unwrap();
    assert_eq!(
        round_state.ballots().keys().copied().collect::<Vec<_>>(),
        vec![cyd()]
    );
    // The book Bob nominated stays nominated.
    assert!(round_state.is_nominated(book(2)));
    assert_eq!(
        club_state.standings().unwrap().tally,
        plurality_tally(&[(1, 0), (2, 0), (3, 1)])
    );
}

// Moderators

#[test]
fn the_owner_appoints_a_member_as_moderator() {
    let club_state = Given::<Club>::events(public_club())
        .when(add_moderator(bob()), as_member(ada()))
        .then_events(vec![moderator_added(bob())]);
    assert_eq!(club_state.moderators(), [ada(), bob()]);
    assert!(club_state.is_moderator(bob()));
}

#[test]
fn a_moderator_who_is_not_the_owner_cannot_appoint_moderators() {
    let history = with(public_club(), [moderator_added(bob())]);
    Given::<Club>::events(history)
        .when(add_moderator(cyd()), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn only_members_become_moderators() {
    let error = Given::<Club>::events(public_club())
        .when(add_moderator(dee()), as_member(ada()))
        .then_error("not_a_member");
    assert_eq!(error, ClubError::NotAMember { member: dee() });
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn appointing_a_moderator_twice_records_nothing() {
    let history = with(public_club(), [moderator_added(bob())]);
    Given::<Club>::events(history)
        .when(add_moderator(bob()), as_member(ada()))
        .then_no_events();
}

#[test]
fn a_removed_moderator_stays_a_member() {
    let history = with(public_club(), [moderator_added(bob())]);
    let club_state = Given::<Club>::events(history)
        .when(remove_moderator(bob()), as_member(ada()))
        .then_events(vec![moderator_removed(bob())]);
    assert!(!club_state.is_moderator(bob()));
    assert!(club_state.is_member(bob()));
}

#[test]
fn removing_someone_who_does_not_moderate_records_nothing() {
    Given::<Club>::events(public_club())
        .when(remove_moderator(bob()), as_member(ada()))
        .then_no_events();
}

#[test]
fn the_owner_always_moderates() {
    Given::<Club>::events(public_club())
        .when(remove_moderator(ada()), staff())
        .then_error("forbidden");
}

#[test]
fn staff_appoint_and_remove_moderators() {
    let club_state = Given::<Club>::events(public_club())
        .when(add_moderator(cyd()), staff())
        .then_events(vec![moderator_added(cyd())]);
    assert!(club_state.is_moderator(cyd()));
    Given::<Club>::events(with(public_club(), [moderator_added(cyd())]))
        .when(remove_moderator(cyd()), system())
        .then_events(vec![moderator_removed(cyd())]);
}

// OpenRound

#[test]
fn a_moderator_opens_a_round() {
    let club_state = Given::<Club>::events(public_club())
        .when(open(1, RankedChoice), as_member(ada()))
        .then_events(vec![opened(1, RankedChoice)]);
    let round_state = club_state.round().unwrap();
    assert_eq!(round_state.round_id, round(1));
    assert_eq!(round_state.method, RankedChoice);
    assert_eq!(round_state.opened_at, day(0));
    assert_eq!(round_state.nominations_close, day(7));
    assert_eq!(round_state.voting_closes, day(14));
    assert_eq!(round_state.max_nominations_per_member, MAX_NOMINATIONS);
    assert!(!round_state.hide_results);
    assert!(round_state.nominations().is_empty());
    assert!(round_state.ballots().is_empty());
}

#[test]
fn the_system_opens_a_round() {
    Given::<Club>::events(public_club())
        .when(open(1, Plurality), system())
        .then_events(vec![opened(1, Plurality)]);
}

#[test]
fn an_ordinary_member_cannot_open_a_round() {
    Given::<Club>::events(public_club())
        .when(open(1, Plurality), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn a_round_cannot_open_while_another_is_open() {
    let error = Given::<Club>::events(round_open(Plurality))
        .when(open(2, Plurality), as_member(ada()))
        .then_error("round_open");
    assert_eq!(error, ClubError::RoundOpen { round_id: round(1) });
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn opening_the_open_round_again_records_nothing() {
    Given::<Club>::events(round_open(Plurality))
        .when(open(1, Plurality), as_member(ada()))
        .then_no_events();
}

#[test]
fn deadlines_must_come_after_the_opening_and_in_order() {
    for (at, nominations_close, voting_closes) in [(7, 7, 14), (8, 7, 14), (0, 8, 7), (0, 0, 0)] {
        let error = Given::<Club>::events(public_club())
            .when(
                open_with(1, Plurality, at, nominations_close, voting_closes),
                as_member(ada()),
            )
            .then_error("invalid_deadlines");
        assert_eq!(error.kind(), ErrorKind::Invalid);
    }
}

#[test]
fn nominations_may_close_when_voting_does() {
    Given::<Club>::events(public_club())
        .when(open_with(1, Plurality, 0, 7, 7), as_member(ada()))
        .then_events(vec![ClubEvent::RoundOpened {
            round_id: round(1),
            method: Plurality,
            nominations_close: day(7),
            voting_closes: day(7),
            max_nominations_per_member: MAX_NOMINATIONS,
            hide_results: false,
            at: day(0),
        }]);
}

#[test]
fn a_round_lets_members_nominate_at_least_one_book() {
    let command = ClubCommand::OpenRound {
        round_id: round(1),
        method: Plurality,
        nominations_close: day(7),
        voting_closes: day(14),
        max_nominations_per_member: 0,
        hide_results: true,
        at: day(0),
    };
    let error = Given::<Club>::events(public_club())
        .when(command, as_member(ada()))
        .then_error("invalid_nomination_limit");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

#[test]
fn a_new_round_opens_once_the_last_one_closed_but_a_closed_round_never_reopens() {
    let history = after_a_win();
    let club_state = Given::<Club>::events(history.clone()).state().clone();
    assert_eq!(club_state.round().unwrap().round_id, round(2));
    let mut closed_history = history;
    closed_history.push(closed(
        2,
        plurality_tally(&[]),
        None,
        Some(NO_BALLOTS.into()),
        30,
    ));
    Given::<Club>::events(closed_history)
        .when(open(1, Plurality), as_member(ada()))
        .then_no_events();
}

// Nominate

#[test]
fn a_member_nominates_a_book() {
    let club_state = Given::<Club>::events(round_open(Plurality))
        .when(nominate(1, 1, bob(), 1), as_member(bob()))
        .then_events(vec![nominated(1, 1, bob(), 1)]);
    let round_state = club_state.round().unwrap();
    assert!(round_state.is_nominated(book(1)));
    assert_eq!(round_state.nominations_by(bob()), 1);
    assert_eq!(round_state.nominations()[0].at, day(1));
}

#[test]
fn a_non_member_cannot_nominate() {
    let error = Given::<Club>::events(round_open(Plurality))
        .when(nominate(1, 1, dee(), 1), as_member(dee()))
        .then_error("not_a_member");
    assert_eq!(error.kind(), ErrorKind::Forbidden);
}

#[test]
fn a_member_cannot_nominate_in_another_members_name() {
    Given::<Club>::events(round_open(Plurality))
        .when(nominate(1, 1, cyd(), 1), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn nothing_is_nominated_while_no_round_is_open() {
    let error = Given::<Club>::events(public_club())
        .when(nominate(1, 1, bob(), 1), as_member(bob()))
        .then_error("no_open_round");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_nomination_must_name_the_open_round() {
    let error = Given::<Club>::events(round_open(Plurality))
        .when(nominate(2, 1, bob(), 1), as_member(bob()))
        .then_error("wrong_round");
    assert_eq!(error, ClubError::WrongRound { round_id: round(2) });
}

#[test]
fn nominations_close_at_their_deadline() {
    let just_before = ClubCommand::Nominate {
        round_id: round(1),
        book_id: book(1),
        member: bob(),
        at: Timestamp::from_micros(day(NOMINATIONS_CLOSE).as_micros() - 1),
    };
    Given::<Club>::events(round_open(Plurality))
        .when(just_before, as_member(bob()))
        .then_events(vec![ClubEvent::BookNominated {
            round_id: round(1),
            book_id: book(1),
            member: bob(),
            at: Timestamp::from_micros(day(NOMINATIONS_CLOSE).as_micros() - 1),
        }]);
    let error = Given::<Club>::events(round_open(Plurality))
        .when(nominate(1, 1, bob(), NOMINATIONS_CLOSE), as_member(bob()))
        .then_error("nominations_closed");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_book_is_nominated_once_per_round() {
    let error = Given::<Club>::events(nominations(Plurality))
        .when(nominate(1, 2, cyd(), 3), as_member(cyd()))
        .then_error("already_nominated");
    assert_eq!(error, ClubError::AlreadyNominated { book_id: book(2) });
}

#[test]
fn a_book_the_club_has_read_cannot_be_nominated_again() {
    let error = Given::<Club>::events(after_a_win())
        .when(nominate(2, 9, bob(), 21), as_member(bob()))
        .then_error("already_read");
    assert_eq!(error, ClubError::AlreadyRead { book_id: book(9) });
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_member_nominates_at_most_the_rounds_limit() {
    let history = with(
        round_open(Plurality),
        [nominated(1, 1, bob(), 1), nominated(1, 2, bob(), 1)],
    );
    let error = Given::<Club>::events(history.clone())
        .when(nominate(1, 3, bob(), 2), as_member(bob()))
        .then_error("nomination_limit_reached");
    assert_eq!(
        error,
        ClubError::NominationLimitReached {
            max: MAX_NOMINATIONS
        }
    );
    // The limit is each member's own.
    Given::<Club>::events(history)
        .when(nominate(1, 3, cyd(), 2), as_member(cyd()))
        .then_events(vec![nominated(1, 3, cyd(), 2)]);
}

#[test]
fn staff_nominate_for_a_member() {
    Given::<Club>::events(round_open(Plurality))
        .when(nominate(1, 1, bob(), 1), system())
        .then_events(vec![nominated(1, 1, bob(), 1)]);
}

// CastBallot

#[test]
fn a_member_votes_for_a_nominated_book_once_voting_opens() {
    let club_state = Given::<Club>::events(nominations(Plurality))
        .when(cast(1, bob(), &[3], NOMINATIONS_CLOSE), as_member(bob()))
        .then_events(vec![cast_ballot(1, bob(), &[3], NOMINATIONS_CLOSE)]);
    let ballot = &club_state.round().unwrap().ballots()[&bob()];
    assert_eq!(ballot.choices, books(&[3]));
    assert_eq!(ballot.cast_at, day(NOMINATIONS_CLOSE));
}

#[test]
fn voting_does_not_open_before_nominations_close_in_a_club_without_write_ins() {
    let error = Given::<Club>::events(nominations(Plurality))
        .when(cast(1, bob(), &[3], 6), as_member(bob()))
        .then_error("voting_not_open");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn voting_closes_at_its_deadline() {
    let error = Given::<Club>::events(nominations(Plurality))
        .when(cast(1, bob(), &[3], VOTING_CLOSES), as_member(bob()))
        .then_error("voting_closed");
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn only_members_vote() {
    let error = Given::<Club>::events(nominations(Plurality))
        .when(cast(1, dee(), &[3], 8), as_member(dee()))
        .then_error("not_a_member");
    assert_eq!(error, ClubError::NotAMember { member: dee() });
}

#[test]
fn a_member_cannot_vote_in_another_members_name_but_staff_may_record_a_vote() {
    Given::<Club>::events(nominations(Plurality))
        .when(cast(1, cyd(), &[3], 8), as_member(bob()))
        .then_error("forbidden");
    Given::<Club>::events(nominations(Plurality))
        .when(cast(1, cyd(), &[3], 8), system())
        .then_events(vec![cast_ballot(1, cyd(), &[3], 8)]);
}

#[test]
fn a_ballot_must_name_the_open_round() {
    Given::<Club>::events(nominations(Plurality))
        .when(cast(2, bob(), &[3], 8), as_member(bob()))
        .then_error("wrong_round");
    Given::<Club>::events(public_club())
        .when(cast(1, bob(), &[3], 8), as_member(bob()))
        .then_error("no_open_round");
}

#[test]
fn a_plurality_ballot_names_exactly_one_book() {
    for choices in [&[][..], &[1, 2][..]] {
        let error = Given::<Club>::events(nominations(Plurality))
            .when(cast(1, bob(), choices, 8), as_member(bob()))
            .then_error("invalid_ballot");
        assert_eq!(error.kind(), ErrorKind::Invalid);
    }
}

#[test]
fn a_ranked_ballot_ranks_one_to_three_different_books() {
    let history = with(nominations(RankedChoice), [nominated(1, 4, ada(), 2)]);
    for choices in [&[][..], &[1, 2, 3, 4][..], &[1, 2, 1][..]] {
        Given::<Club>::events(history.clone())
            .when(cast(1, bob(), choices, 8), as_member(bob()))
            .then_error("invalid_ballot");
    }
    for choices in [&[2][..], &[2, 1][..], &[3, 1, 2][..]] {
        Given::<Club>::events(history.clone())
            .when(cast(1, bob(), choices, 8), as_member(bob()))
            .then_events(vec![cast_ballot(1, bob(), choices, 8)]);
    }
}

#[test]
fn a_ballot_for_a_book_nobody_nominated_is_refused_without_write_ins() {
    let error = Given::<Club>::events(nominations(Plurality))
        .when(cast(1, bob(), &[7], 8), as_member(bob()))
        .then_error("not_nominated");
    assert_eq!(error, ClubError::NotNominated { book_id: book(7) });
    assert_eq!(error.kind(), ErrorKind::Conflict);
    Given::<Club>::events(nominations(RankedChoice))
        .when(cast(1, bob(), &[1, 7], 8), as_member(bob()))
        .then_error("not_nominated");
}

#[test]
fn a_new_ballot_replaces_the_members_previous_one() {
    let history = with(nominations(Plurality), [cast_ballot(1, bob(), &[1], 8)]);
    let club_state = Given::<Club>::events(history)
        .when(cast(1, bob(), &[2], 9), as_member(bob()))
        .then_events(vec![cast_ballot(1, bob(), &[2], 9)]);
    let round_state = club_state.round().unwrap();
    assert_eq!(round_state.ballots().len(), 1);
    assert_eq!(round_state.ballots()[&bob()].choices, books(&[2]));
    assert_eq!(
        club_state.standings().unwrap().tally,
        plurality_tally(&[(1, 0), (2, 1), (3, 0)])
    );
}

#[test]
fn casting_the_same_ballot_again_records_nothing() {
    let history = with(
        nominations(RankedChoice),
        [cast_ballot(1, bob(), &[2, 1], 8)],
    );
    Given::<Club>::events(history.clone())
        .when(cast(1, bob(), &[2, 1], 9), as_member(bob()))
        .then_no_events();
    // The same books in another order are another ballot.
    Given::<Club>::events(history)
        .when(cast(1, bob(), &[1, 2], 9), as_member(bob()))
        .then_events(vec![cast_ballot(1, bob(), &[1, 2], 9)]);
}

// Write-ins

#[test]
fn a_write_in_ballot_nominates_the_book_in_the_same_decision() {
    let club_state = Given::<Club>::events(write_in_round())
        .when(cast(1, bob(), &[5], 8), as_member(bob()))
        .then_events(vec![
            nominated(1, 5, bob(), 8),
            cast_ballot(1, bob(), &[5], 8),
        ]);
    let round_state = club_state.round().unwrap();
    assert!(round_state.is_nominated(book(5)));
    assert_eq!(round_state.ballots()[&bob()].choices, books(&[5]));
}

#[test]
fn a_write_in_club_takes_ballots_while_nominations_are_open() {
    Given::<Club>::events(write_in_round())
        .when(cast(1, bob(), &[5], 1), as_member(bob()))
        .then_events(vec![
            nominated(1, 5, bob(), 1),
            cast_ballot(1, bob(), &[5], 1),
        ]);
}

#[test]
fn a_vote_for_a_book_already_written_in_only_casts_the_ballot() {
    let history = with(
        write_in_round(),
        [nominated(1, 5, bob(), 1), cast_ballot(1, bob(), &[5], 1)],
    );
    Given::<Club>::events(history)
        .when(cast(1, cyd(), &[5], 2), as_member(cyd()))
        .then_events(vec![cast_ballot(1, cyd(), &[5], 2)]);
}

#[test]
fn a_write_in_is_taken_until_voting_closes_and_not_after() {
    Given::<Club>::events(write_in_round())
        .when(cast(1, bob(), &[5], VOTING_CLOSES - 1), as_member(bob()))
        .then_events(vec![
            nominated(1, 5, bob(), VOTING_CLOSES - 1),
            cast_ballot(1, bob(), &[5], VOTING_CLOSES - 1),
        ]);
    Given::<Club>::events(write_in_round())
        .when(cast(1, bob(), &[5], VOTING_CLOSES), as_member(bob()))
        .then_error("voting_closed");
}

#[test]
fn a_write_in_for_a_book_the_club_has_read_is_refused() {
    let history = with(
        club_of_three(Visibility::Public, true),
        [
            opened(1, Plurality),
            nominated(1, 9, ada(), 1),
            cast_ballot(1, bob(), &[9], 1),
            closed(1, plurality_tally(&[(9, 1)]), Some(9), None, 3),
            opened_with(2, Plurality, 4),
        ],
    );
    Given::<Club>::events(history)
        .when(cast(2, bob(), &[9], 5), as_member(bob()))
        .then_error("already_read");
}

#[test]
fn write_ins_are_not_held_to_the_nomination_limit_but_count_towards_it() {
    // Bob wrote in two books (changing his mind): both count as his nominations.
    let history = with(
        write_in_round(),
        [
            nominated(1, 5, bob(), 1),
            cast_ballot(1, bob(), &[5], 1),
            nominated(1, 6, bob(), 2),
            cast_ballot(1, bob(), &[6], 2),
        ],
    );
    Given::<Club>::events(history.clone())
        .when(cast(1, bob(), &[7], 3), as_member(bob()))
        .then_events(vec![
            nominated(1, 7, bob(), 3),
            cast_ballot(1, bob(), &[7], 3),
        ]);
    Given::<Club>::events(history)
        .when(nominate(1, 7, bob(), 3), as_member(bob()))
        .then_error("nomination_limit_reached");
}

#[test]
fn ranked_choice_ballots_take_no_write_ins() {
    let history = with(
        club_of_three(Visibility::Public, true),
        [opened(1, RankedChoice), nominated(1, 1, ada(), 1)],
    );
    Given::<Club>::events(history)
        .when(cast(1, bob(), &[1, 5], 8), as_member(bob()))
        .then_error("not_nominated");
}

#[test]
fn the_seed_vote_works_on_a_default_club_without_a_nomination_step() {
    // The seed's `POST /vote {book_id, user_id}`: a write-in club the system created and opened
    // a round in, and votes the API records for members as the system.
    let history = vec![
        ClubEvent::ClubCreated {
            club_id: club(),
            name: name(),
            visibility: Visibility::Public,
            owner: ada(),
            write_ins: true,
            at: day(0),
        },
        joined(bob()),
        joined(cyd()),
        opened(1, Plurality),
    ];
    let after_bob = Given::<Club>::events(history.clone())
        .when(cast(1, bob(), &[5], 1), system())
        .then_events(vec![
            nominated(1, 5, bob(), 1),
            cast_ballot(1, bob(), &[5], 1),
        ]);
    let mut history = with(
        history,
        [nominated(1, 5, bob(), 1), cast_ballot(1, bob(), &[5], 1)],
    );
    assert_eq!(after_bob.standings().unwrap().winner, Some(book(5)));
    Given::<Club>::events(history.clone())
        .when(cast(1, cyd(), &[6], 2), system())
        .then_events(vec![
            nominated(1, 6, cyd(), 2),
            cast_ballot(1, cyd(), &[6], 2),
        ]);
    history.extend([nominated(1, 6, cyd(), 2), cast_ballot(1, cyd(), &[6], 2)]);
    history.push(cast_ballot(1, ada(), &[6], 3));
    let club_state = Given::<Club>::events(history)
        .when(close(1, VOTING_CLOSES), system())
        .then_events(vec![closed(
            1,
            plurality_tally(&[(5, 1), (6, 2)]),
            Some(6),
            None,
            VOTING_CLOSES,
        )]);
    assert_eq!(club_state.current_book(), Some(book(6)));
}

// CloseRound

#[test]
fn a_moderator_closes_a_round_early_and_the_winner_becomes_the_current_book() {
    let history = with(
        nominations(Plurality),
        [
            cast_ballot(1, ada(), &[2], 8),
            cast_ballot(1, bob(), &[2], 8),
            cast_ballot(1, cyd(), &[3], 8),
        ],
    );
    let club_state = Given::<Club>::events(history)
        .when(close(1, 9), as_member(ada()))
        .then_events(vec![closed(
            1,
            plurality_tally(&[(1, 0), (2, 2), (3, 1)]),
            Some(2),
            None,
            9,
        )]);
    assert_eq!(club_state.round(), None);
    assert_eq!(club_state.books_read(), books(&[2]));
    assert_eq!(club_state.current_book(), Some(book(2)));
    assert_eq!(club_state.closed_rounds(), [round(1)]);
    assert_eq!(club_state.standings(), None);
}

#[test]
fn the_scheduler_closes_a_round_once_voting_has_closed() {
    let history = with(nominations(Plurality), [cast_ballot(1, bob(), &[1], 8)]);
    Given::<Club>::events(history)
        .when(close(1, VOTING_CLOSES), system())
        .then_events(vec![closed(
            1,
            plurality_tally(&[(1, 1), (2, 0), (3, 0)]),
            Some(1),
            None,
            VOTING_CLOSES,
        )]);
}

#[test]
fn an_ordinary_member_cannot_close_a_round() {
    Given::<Club>::events(nominations(Plurality))
        .when(close(1, VOTING_CLOSES), as_member(bob()))
        .then_error("forbidden");
}

#[test]
fn closing_a_closed_round_records_nothing() {
    let history = with(
        nominations(Plurality),
        [closed(
            1,
            plurality_tally(&[(1, 0), (2, 0), (3, 0)]),
            None,
            Some(NO_BALLOTS.into()),
            14,
        )],
    );
    Given::<Club>::events(history)
        .when(close(1, 15), system())
        .then_no_events();
}

#[test]
fn closing_needs_the_open_round() {
    Given::<Club>::events(public_club())
        .when(close(1, 14), system())
        .then_error("no_open_round");
    Given::<Club>::events(round_open(Plurality))
        .when(close(2, 14), system())
        .then_error("wrong_round");
}

#[test]
fn a_round_without_ballots_closes_without_a_winner() {
    let club_state = Given::<Club>::events(nominations(Plurality))
        .when(close(1, VOTING_CLOSES), system())
        .then_events(vec![closed(
            1,
            plurality_tally(&[(1, 0), (2, 0), (3, 0)]),
            None,
            Some(NO_BALLOTS.into()),
            VOTING_CLOSES,
        )]);
    assert!(club_state.books_read().is_empty());
    assert_eq!(club_state.current_book(), None);
    assert_eq!(club_state.round(), None);
}

#[test]
fn a_round_without_nominations_closes_without_a_winner() {
    Given::<Club>::events(round_open(RankedChoice))
        .when(close(1, 3), as_member(ada()))
        .then_events(vec![closed(
            1,
            Tally::RankedChoice {
                rounds: vec![RunoffRound {
                    counts: vec![],
                    exhausted: 0,
                    eliminated: vec![],
                }],
            },
            None,
            Some(NO_BALLOTS.into()),
            3,
        )]);
}

#[test]
fn the_winner_of_a_round_cannot_be_nominated_in_the_next() {
    let history = with(nominations(Plurality), [cast_ballot(1, bob(), &[3], 8)]);
    let club_state = Given::<Club>::events(history.clone())
        .when(close(1, 14), system())
        .then_events(vec![closed(
            1,
            plurality_tally(&[(1, 0), (2, 0), (3, 1)]),
            Some(3),
            None,
            14,
        )]);
    assert_eq!(club_state.books_read(), books(&[3]));
    let history = with(
        history,
        [
            closed(
                1,
                plurality_tally(&[(1, 0), (2, 0), (3, 1)]),
                Some(3),
                None,
                14,
            ),
            opened_with(2, Plurality, 20),
        ],
    );
    Given::<Club>::events(history.clone())
        .when(nominate(2, 3, cyd(), 21), as_member(cyd()))
        .then_error("already_read");
    // Losing books may come back.
    Given::<Club>::events(history)
        .when(nominate(2, 1, cyd(), 21), as_member(cyd()))
        .then_events(vec![nominated(2, 1, cyd(), 21)]);
}

#[test]
fn a_ranked_choice_round_records_every_runoff_round_with_its_transfers() {
    // First choices: A (book 1) 3, B (2) 2, C (3) 2 of 7 members. C is eliminated by the tie
    // rule (nominated after B); its ballots go to B, who wins 4 to 3.
    let mut history = nominations(RankedChoice);
    let members: Vec<UserId> = (10..14).map(user).collect();
    history.extend(members.iter().map(|m| joined(*m)));
    let ballots: [(UserId, &[u128]); 7] = [
        (ada(), &[1]),
        (members[0], &[1, 2]),
        (members[1], &[1]),
        (bob(), &[2, 1]),
        (members[2], &[2]),
        (cyd(), &[3, 2]),
        (members[3], &[3, 2, 1]),
    ];
    history.extend(ballots.iter().map(|(m, c)| cast_ballot(1, *m, c, 8)));
    let expected = Tally::RankedChoice {
        rounds: vec![
            RunoffRound {
                counts: counts(&[(1, 3), (2, 2), (3, 2)]),
                exhausted: 0,
                eliminated: vec![book(3)],
            },
            RunoffRound {
                counts: counts(&[(1, 3), (2, 4)]),
                exhausted: 0,
                eliminated: vec![],
            },
        ],
    };
    let tie_break = format!(
        "round 1: tie for fewest votes between {} and {} with 2 votes each broken by latest \
         nomination: {} eliminated",
        book(2),
        book(3),
        book(3)
    );
    let club_state = Given::<Club>::events(history)
        .when(close(1, 14), system())
        .then_events(vec![closed(1, expected, Some(2), Some(tie_break), 14)]);
    assert_eq!(club_state.current_book(), Some(book(2)));
}

#[test]
fn a_ranked_choice_majority_in_the_first_round_wins_without_runoff() {
    let history = with(
        nominations(RankedChoice),
        [
            cast_ballot(1, ada(), &[2, 1], 8),
            cast_ballot(1, bob(), &[2], 8),
            cast_ballot(1, cyd(), &[1, 3], 8),
        ],
    );
    Given::<Club>::events(history)
        .when(close(1, 14), system())
        .then_events(vec![closed(
            1,
            Tally::RankedChoice {
                rounds: vec![RunoffRound {
                    counts: counts(&[(1, 1), (2, 2), (3, 0)]),
                    exhausted: 0,
                    eliminated: vec![],
                }],
            },
            Some(2),
            None,
            14,
        )]);
}

#[test]
fn an_elimination_tie_in_a_ranked_round_removes_the_latest_nomination() {
    // 1 vote each for books 1, 2, 3: no majority, all three tie for fewest; book 3 goes first and
    // its ballot moves to book 1 (2 of 3: a majority).
    let history = with(
        nominations(RankedChoice),
        [
            cast_ballot(1, ada(), &[1], 8),
            cast_ballot(1, bob(), &[2], 8),
            cast_ballot(1, cyd(), &[3, 1], 8),
        ],
    );
    let club_state = Given::<Club>::events(history)
        .when(close(1, 14), system())
        .then_events(vec![closed(
            1,
            Tally::RankedChoice {
                rounds: vec![
                    RunoffRound {
                        counts: counts(&[(1, 1), (2, 1), (3, 1)]),
                        exhausted: 0,
                        eliminated: vec![book(3)],
                    },
                    RunoffRound {
                        counts: counts(&[(1, 2), (2, 1)]),
                        exhausted: 0,
                        eliminated: vec![],
                    },
                ],
            },
            Some(1),
            Some(format!(
                "round 1: tie for fewest votes between {}, {} and {} with 1 vote each broken by \
                 latest nomination: {} eliminated",
                book(1),
                book(2),
                book(3),
                book(3)
            )),
            14,
        )]);
    assert_eq!(club_state.books_read(), books(&[1]));
}

#[test]
fn a_plurality_tie_is_broken_the_same_way_every_time_the_history_is_replayed() {
    // Nominated in the order 3, 1, 2. Books 1 and 2 tie with two votes each (Bob changed his
    // vote from 2 to 1); 1 was nominated before 2 and wins. Book 3 came first but has fewer.
    let history = with(
        round_open(Plurality),
        [
            nominated(1, 3, ada(), 1),
            nominated(1, 1, bob(), 1),
            nominated(1, 2, cyd(), 2),
            cast_ballot(1, cyd(), &[2], 8),
            cast_ballot(1, ada(), &[1], 8),
            cast_ballot(1, bob(), &[2], 9),
            cast_ballot(1, bob(), &[1], 10),
            joined(dee()),
            cast_ballot(1, dee(), &[2], 11),
            joined(user(5)),
            cast_ballot(1, user(5), &[3], 11),
        ],
    );
    let expected = closed(
        1,
        plurality_tally(&[(3, 1), (1, 2), (2, 2)]),
        Some(1),
        Some(format!(
            "tie between {} and {} with 2 votes each broken by earliest nomination: {} wins",
            book(1),
            book(2),
            book(1)
        )),
        14,
    );
    for _ in 0..20 {
        let club_state = Given::<Club>::events(history.clone())
            .when(close(1, 14), system())
            .then_events(vec![expected.clone()]);
        assert_eq!(club_state.current_book(), Some(book(1)));
        let standings = Given::<Club>::events(history.clone())
            .state()
            .standings()
            .unwrap();
        assert_eq!(standings.winner, Some(book(1)));
    }
}

#[test]
fn standings_are_counted_by_the_same_code_that_closes_the_round() {
    let history = with(
        nominations(Plurality),
        [
            cast_ballot(1, bob(), &[2], 8),
            cast_ballot(1, cyd(), &[3], 8),
        ],
    );
    let given = Given::<Club>::events(history);
    let standings = given.state().standings().unwrap();
    let ClubEvent::RoundClosed {
        tally,
        winner,
        tie_break,
        ..
    } = given
        .when(close(1, 9), system())
        .outcome()
        .clone()
        .unwrap()
        .remove(0)
    else {
        panic!("expected RoundClosed");
    };
    assert_eq!(standings.tally, tally);
    assert_eq!(standings.winner, winner);
    assert_eq!(standings.tie_break, tie_break);
}

#[test]
fn a_hundred_members_casting_two_different_ballots_each_count_once_each() {
    let members: Vec<UserId> = std::iter::once(ada()).chain((100..199).map(user)).collect();
    assert_eq!(members.len(), 100);
    let mut history = vec![created(Visibility::Public, false)];
    history.extend(members[1..].iter().map(|m| joined(*m)));
    history.extend([
        opened(1, Plurality),
        nominated(1, 1, members[1], 1),
        nominated(1, 2, members[2], 1),
        nominated(1, 3, members[3], 1),
    ]);
    let mut state = Given::<Club>::events(history).state().clone();
    let first = |i: usize| (i % 3) as u128 + 1;
    // The second ballot differs from the first; the books split 34/33/33 on second ballots.
    let last = |i: usize| ((i + 1) % 3) as u128 + 1;
    for pass in 0..2 {
        for (i, member) in members.iter().enumerate() {
            let choice = if pass == 0 { first(i) } else { last(i) };
            let command = cast(1, *member, &[choice], 8 + pass);
            let events = state.decide(&command, &as_member(*member)).unwrap();
            assert_eq!(events, vec![cast_ballot(1, *member, &[choice], 8 + pass)]);
            for event in &events {
                assert_round_trips(event);
                state.apply(event);
            }
        }
    }
    let round_state = state.round().unwrap();
    assert_eq!(round_state.ballots().len(), 100);
    let expected: Vec<(u128, u32)> = (1..=3)
        .map(|b| (b, (0..100).filter(|i| last(*i) == b).count() as u32))
        .collect();
    assert_eq!(expected, vec![(1, 33), (2, 34), (3, 33)]);
    let events = state.decide(&close(1, 14), &system()).unwrap();
    assert_eq!(
        events,
        vec![closed(1, plurality_tally(&expected), Some(2), None, 14)]
    );
    let total: u32 = state
        .standings()
        .unwrap()
        .tally
        .first_choices()
        .iter()
        .map(|c| c.votes)
        .sum();
    assert_eq!(total, 100);
}

// Stream and stored schema

fn one_of_each_event() -> Vec<ClubEvent> {
    vec![
        created(Visibility::MembersOnly, true),
        joined(bob()),
        left(bob()),
        moderator_added(cyd()),
        moderator_removed(cyd()),
        opened(1, RankedChoice),
        nominated(1, 1, bob(), 1),
        cast_ballot(1, bob(), &[1, 2, 3], 8),
        closed(
            1,
            plurality_tally(&[(1, 2), (2, 2)]),
            Some(1),
            Some("tie".into()),
            14,
        ),
        closed(
            1,
            Tally::RankedChoice {
                rounds: vec![
                    RunoffRound {
                        counts: counts(&[(1, 1), (2, 2), (3, 0)]),
                        exhausted: 1,
                        eliminated: books(&[3]),
                    },
                    RunoffRound {
                        counts: counts(&[(1, 1), (2, 2)]),
                        exhausted: 1,
                        eliminated: vec![],
                    },
                ],
            },
            Some(2),
            None,
            14,
        ),
        closed(1, plurality_tally(&[]), None, Some(NO_BALLOTS.into()), 14),
    ]
}

#[test]
fn every_club_event_round_trips_through_storage() {
    for event in one_of_each_event() {
        assert_round_trips(&event);
        assert_eq!(event.schema_version(), 1);
    }
}

#[test]
fn club_events_have_pinned_shapes() {
    assert_eq!(
        created(Visibility::MembersOnly, true).to_payload(),
        json!({
            "club_id": club().to_string(),
            "name": "Tuesday Readers",
            "visibility": "members_only",
            "owner": ada().to_string(),
            "write_ins": true,
            "at": day(0).as_micros(),
        })
    );
    assert_eq!(
        opened(1, RankedChoice).to_payload(),
        json!({
            "round_id": round(1).to_string(),
            "method": "ranked_choice",
            "nominations_close": day(7).as_micros(),
            "voting_closes": day(14).as_micros(),
            "max_nominations_per_member": 2,
            "hide_results": false,
            "at": day(0).as_micros(),
        })
    );
    assert_eq!(
        cast_ballot(1, bob(), &[2, 1], 8).to_payload(),
        json!({
            "round_id": round(1).to_string(),
            "member": bob().to_string(),
            "choices": [book(2).to_string(), book(1).to_string()],
            "at": day(8).as_micros(),
        })
    );
    assert_eq!(
        one_of_each_event()[9].to_payload(),
        json!({
            "round_id": round(1).to_string(),
            "tally": {
                "method": "ranked_choice",
                "rounds": [
                    {
                        "counts": [
                            {"book_id": book(1).to_string(), "votes": 1},
                            {"book_id": book(2).to_string(), "votes": 2},
                            {"book_id": book(3).to_string(), "votes": 0},
                        ],
                        "exhausted": 1,
                        "eliminated": [book(3).to_string()],
                    },
                    {
                        "counts": [
                            {"book_id": book(1).to_string(), "votes": 1},
                            {"book_id": book(2).to_string(), "votes": 2},
                        ],
                        "exhausted": 1,
                        "eliminated": [],
                    },
                ],
            },
            "winner": book(2).to_string(),
            "tie_break": null,
            "at": day(14).as_micros(),
        })
    );
    assert_eq!(
        one_of_each_event()[8].to_payload()["tally"],
        json!({
            "method": "plurality",
            "counts": [
                {"book_id": book(1).to_string(), "votes": 2},
                {"book_id": book(2).to_string(), "votes": 2},
            ],
        })
    );
    assert_eq!(
        left(bob()).to_payload(),
        json!({"member": bob().to_string(), "at": day(1).as_micros()})
    );
    let names: Vec<_> = one_of_each_event()
        .iter()
        .map(|event| event.event_type())
        .collect();
    assert_eq!(
        names,
        vec![
            "ClubCreated",
            "MemberJoined",
            "MemberLeft",
            "ModeratorAdded",
            "ModeratorRemoved",
            "RoundOpened",
            "BookNominated",
            "BallotCast",
            "RoundClosed",
            "RoundClosed",
            "RoundClosed",
        ]
    );
}

#[test]
fn unknown_club_types_and_future_versions_are_reported() {
    assert_eq!(
        ClubEvent::from_stored("ClubDissolved", 1, &json!({})).unwrap_err(),
        EventDecodeError::UnknownType {
            event_type: "ClubDissolved".to_owned()
        }
    );
    assert_eq!(
        ClubEvent::from_stored("BallotCast", 2, &json!({})).unwrap_err(),
        EventDecodeError::UnsupportedVersion {
            event_type: "BallotCast".to_owned(),
            version: 2
        }
    );
    let mut payload = created(Visibility::Public, false).to_payload();
    payload["name"] = json!("Tuesday\u{0}Readers");
    assert!(matches!(
        ClubEvent::from_stored("ClubCreated", 1, &payload).unwrap_err(),
        EventDecodeError::Malformed { .. }
    ));
    let mut payload = opened(1, Plurality).to_payload();
    payload["method"] = json!("approval");
    assert!(matches!(
        ClubEvent::from_stored("RoundOpened", 1, &payload).unwrap_err(),
        EventDecodeError::Malformed { .. }
    ));
}

#[test]
fn club_error_codes_and_kinds() {
    let cases = [
        (ClubError::NotFound, "not_found", ErrorKind::NotFound),
        (
            ClubError::AlreadyExists,
            "already_exists",
            ErrorKind::Conflict,
        ),
        (
            ClubError::ClubIdMismatch {
                stream: club(),
                command: club(),
            },
            "club_id_mismatch",
            ErrorKind::Invalid,
        ),
        (
            ClubError::NotAMember { member: dee() },
            "not_a_member",
            ErrorKind::Forbidden,
        ),
        (
            ClubError::Forbidden { action: "x" },
            "forbidden",
            ErrorKind::Forbidden,
        ),
        (
            ClubError::OwnerCannotLeave,
            "owner_cannot_leave",
            ErrorKind::Conflict,
        ),
        (
            ClubError::RoundOpen { round_id: round(1) },
            "round_open",
            ErrorKind::Conflict,
        ),
        (ClubError::NoOpenRound, "no_open_round", ErrorKind::Conflict),
        (
            ClubError::WrongRound { round_id: round(1) },
            "wrong_round",
            ErrorKind::Conflict,
        ),
        (
            ClubError::InvalidDeadlines,
            "invalid_deadlines",
            ErrorKind::Invalid,
        ),
        (
            ClubError::InvalidNominationLimit,
            "invalid_nomination_limit",
            ErrorKind::Invalid,
        ),
        (
            ClubError::NominationsClosed,
            "nominations_closed",
            ErrorKind::Conflict,
        ),
        (
            ClubError::VotingNotOpen,
            "voting_not_open",
            ErrorKind::Conflict,
        ),
        (
            ClubError::VotingClosed,
            "voting_closed",
            ErrorKind::Conflict,
        ),
        (
            ClubError::AlreadyNominated { book_id: book(1) },
            "already_nominated",
            ErrorKind::Conflict,
        ),
        (
            ClubError::AlreadyRead { book_id: book(1) },
            "already_read",
            ErrorKind::Conflict,
        ),
        (
            ClubError::NominationLimitReached { max: 1 },
            "nomination_limit_reached",
            ErrorKind::Conflict,
        ),
        (
            ClubError::NotNominated { book_id: book(1) },
            "not_nominated",
            ErrorKind::Conflict,
        ),
        (
            ClubError::InvalidBallot { reason: "x" },
            "invalid_ballot",
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
fn a_club_name_is_one_line_of_one_to_a_hundred_characters() {
    assert_eq!(
        ClubName::parse("  Tuesday Readers ").unwrap().as_str(),
        "Tuesday Readers"
    );
    assert!(ClubName::parse("é".repeat(100)).is_ok());
    for raw in ["   ".to_owned(), "é".repeat(101), "Tuesday\nReaders".into()] {
        let error = ClubName::parse(raw.as_str()).unwrap_err();
        assert_eq!(error.code(), "invalid_club_name", "{raw:?}");
    }
    assert!(serde_json::from_value::<ClubName>(json!("a\u{0}b")).is_err());
}

#[test]
fn club_commands_have_a_stable_wire_form() {
    assert_eq!(
        serde_json::to_value(cast(1, bob(), &[2], 8)).unwrap(),
        json!({
            "type": "cast_ballot",
            "round_id": round(1).to_string(),
            "member": bob().to_string(),
            "choices": [book(2).to_string()],
            "at": day(8).as_micros(),
        })
    );
    assert_eq!(
        serde_json::to_value(create(Visibility::MembersOnly, false)).unwrap()["visibility"],
        json!("members_only")
    );
    assert_eq!(
        serde_json::to_value(open(1, RankedChoice)).unwrap()["method"],
        json!("ranked_choice")
    );
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

const PEOPLE: [u128; 6] = [1, 2, 3, 4, 5, 6];
const BOOKS: [u128; 6] = [1, 2, 3, 4, 5, 6];

/// What a random run knows besides the state: the clock and the rounds it has opened.
struct Run {
    rng: Rng,
    /// Hours since day 0.
    now: i64,
    next_round: u128,
}

impl Run {
    fn at(&self) -> Timestamp {
        Timestamp::from_micros(day(0).as_micros() + self.now * 3_600_000_000)
    }

    fn context(&mut self, acting_for: UserId) -> CommandContext {
        match self.rng.below(10) {
            0..=5 => as_member(acting_for),
            6 => as_member(ada()),
            7 => system(),
            _ => as_member(user(self.rng.pick(&PEOPLE))),
        }
    }

    fn round_id(&mut self, state: &Club) -> RoundId {
        match state.round() {
            Some(open) if self.rng.chance(90) => open.round_id,
            _ => round(u128::from(self.rng.below(self.next_round as u64 + 1))),
        }
    }

    fn command(&mut self, state: &Club) -> (ClubCommand, CommandContext) {
        self.now += i64::try_from(self.rng.below(36)).unwrap();
        let at = self.at();
        let person = user(self.rng.pick(&PEOPLE));
        match self.rng.below(100) {
            0..=9 => (
                ClubCommand::Join { member: person, at },
                self.context(person),
            ),
            10..=14 => (
                ClubCommand::Leave { member: person, at },
                self.context(person),
            ),
            15..=17 => (ClubCommand::AddModerator { member: person, at }, {
                let by = user(self.rng.pick(&PEOPLE));
                self.context(by)
            }),
            18..=19 => (ClubCommand::RemoveModerator { member: person, at }, {
                let by = user(self.rng.pick(&PEOPLE));
                self.context(by)
            }),
            20..=27 => {
                self.next_round += 1;
                let round_id = if self.rng.chance(90) {
                    round(self.next_round)
                } else {
                    self.round_id(state)
                };
                let close_in = i64::try_from(self.rng.below(72)).unwrap() - 4;
                let vote_for = i64::try_from(self.rng.below(96)).unwrap();
                let hours = |h: i64| Timestamp::from_micros(at.as_micros() + h * 3_600_000_000);
                let by = user(self.rng.pick(&PEOPLE));
                (
                    ClubCommand::OpenRound {
                        round_id,
                        method: if self.rng.chance(50) {
                            Plurality
                        } else {
                            RankedChoice
                        },
                        nominations_close: hours(close_in),
                        voting_closes: hours(close_in + vote_for),
                        max_nominations_per_member: self.rng.pick(&[0, 1, 2, 3]),
                        hide_results: self.rng.chance(30),
                        at,
                    },
                    self.context(by),
                )
            }
            28..=49 => {
                let round_id = self.round_id(state);
                (
                    ClubCommand::Nominate {
                        round_id,
                        book_id: book(self.rng.pick(&BOOKS)),
                        member: person,
                        at,
                    },
                    self.context(person),
                )
            }
            50..=89 => {
                let round_id = self.round_id(state);
                let count = match self.rng.below(10) {
                    0 => 0,
                    1..=5 => 1,
                    6 | 7 => 2,
                    8 => 3,
                    _ => 4,
                };
                let choices = (0..count).map(|_| book(self.rng.pick(&BOOKS))).collect();
                (
                    ClubCommand::CastBallot {
                        round_id,
                        member: person,
                        choices,
                        at,
                    },
                    self.context(person),
                )
            }
            _ => {
                let round_id = self.round_id(state);
                let by = user(self.rng.pick(&PEOPLE));
                (ClubCommand::CloseRound { round_id, at }, self.context(by))
            }
        }
    }
}

fn check_invariants(state: &Club, context: &str) {
    let owner = state.owner().unwrap();
    assert!(state.is_member(owner), "the owner left\n{context}");
    assert!(
        state.is_moderator(owner),
        "the owner stopped moderating\n{context}"
    );
    for moderator in state.moderators() {
        assert!(
            state.is_member(*moderator),
            "moderator {moderator} is not a member\n{context}"
        );
    }
    let members: Vec<UserId> = state.members().iter().map(|m| m.user_id).collect();
    for (i, member) in members.iter().enumerate() {
        assert!(!members[..i].contains(member), "member twice\n{context}");
    }
    let read = state.books_read();
    for (i, book_id) in read.iter().enumerate() {
        assert!(
            !read[..i].contains(book_id),
            "a book was read twice\n{context}"
        );
    }
    let Some(round_state) = state.round() else {
        return;
    };
    let nominated: Vec<BookId> = round_state
        .nominations()
        .iter()
        .map(|n| n.book_id)
        .collect();
    for (i, book_id) in nominated.iter().enumerate() {
        assert!(
            !nominated[..i].contains(book_id),
            "book nominated twice\n{context}"
        );
        assert!(
            !read.contains(book_id),
            "a read book is nominated\n{context}"
        );
    }
    for (member, ballot) in round_state.ballots() {
        assert!(
            state.is_member(*member),
            "a ballot of a non-member counts\n{context}"
        );
        assert!(
            ballot.choices.iter().all(|b| nominated.contains(b)),
            "a ballot names a book that is not nominated\n{context}"
        );
        let len = ballot.choices.len();
        match round_state.method {
            Plurality => assert_eq!(len, 1, "{context}"),
            RankedChoice => assert!((1..=3).contains(&len), "{context}"),
        }
    }
}

/// Runs one random sequence on a club created with `write_ins`; returns the event types seen.
fn random_run(seed: u64, steps: usize, write_ins: bool) -> Vec<&'static str> {
    let mut run = Run {
        rng: Rng(seed),
        now: 0,
        next_round: 0,
    };
    let mut history = vec![created(Visibility::Public, write_ins)];
    let mut state = Given::<Club>::events(history.clone()).state().clone();
    let mut seen = vec!["ClubCreated"];
    for step in 0..steps {
        let (command, ctx) = run.command(&state);
        let outcome = state.decide(&command, &ctx);
        let context = format!(
            "seed {seed}, write-ins {write_ins}, step {step}\ncommand: {command:?}\nby: {:?}\noutcome: {outcome:?}",
            ctx.principal
        );
        let Ok(events) = outcome else { continue };
        if let Some(ClubEvent::RoundClosed { winner, tally, .. }) = events.first() {
            // A close counts the ballots of members only, at most one each.
            let votes: u32 = tally.first_choices().iter().map(|c| c.votes).sum();
            assert!(votes as usize <= state.members().len(), "{context}");
            // Replaying the history gives the same decision: same count, same winner.
            let replayed = Given::<Club>::events(history.clone())
                .state()
                .decide(&command, &ctx);
            assert_eq!(replayed.as_ref(), Ok(&events), "{context}");
            assert_eq!(*winner, state.standings().unwrap().winner, "{context}");
        }
        for event in &events {
            assert_round_trips(event);
            if !seen.contains(&event.event_type()) {
                seen.push(event.event_type());
            }
            state.apply(event);
        }
        history.extend(events.iter().cloned());
        check_invariants(&state, &context);

        // An accepted command redone finds nothing left to do (but a nomination is refused: the
        // book is nominated now).
        if !events.is_empty() && !matches!(command, ClubCommand::Nominate { .. }) {
            assert_eq!(
                state.decide(&command, &ctx),
                Ok(Vec::new()),
                "redoing the command changed something\n{context}"
            );
        }
    }
    let rebuilt = Given::<Club>::events(history).state().clone();
    assert_eq!(rebuilt.members(), state.members());
    assert_eq!(rebuilt.moderators(), state.moderators());
    assert_eq!(rebuilt.books_read(), state.books_read());
    assert_eq!(rebuilt.round(), state.round());
    assert_eq!(rebuilt.closed_rounds(), state.closed_rounds());
    assert_eq!(rebuilt.standings(), state.standings());
    seen
}

#[test]
fn random_command_sequences_keep_the_club_invariants() {
    let mut seen: Vec<&str> = Vec::new();
    for seed in 0..200_u64 {
        for event_type in random_run(seed, 150, seed % 2 == 0) {
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
            "BallotCast",
            "BookNominated",
            "ClubCreated",
            "MemberJoined",
            "MemberLeft",
            "ModeratorAdded",
            "ModeratorRemoved",
            "RoundClosed",
            "RoundOpened",
        ]
    );
}
