//! The lending processes over a real store: every state a crash can leave between two steps is
//! finished by re-running the remaining steps with their derived ids, and nothing is recorded
//! twice. The crashes are made exactly: the test runs a prefix of a process's steps by hand, then
//! runs what the scheduler would.

mod common;

use common::{events, setup};

use quire_actors::lending::{LendingPolicy, LendingProcess, Origin, step_id};
use quire_actors::{Command, CommandBus, CommandEnvelope, CommandError, LocalBus};
use quire_domain::Principal;
use quire_domain::ids::{BookId, LoanId, UserId};
use quire_domain::lending::LendingCommand;
use quire_domain::user::UserCommand;
use quire_domain::values::{PersonName, Timestamp};
use uuid::Uuid;

async fn send(bus: &LocalBus, principal: Principal, id: Uuid, command: Command) {
    let envelope = CommandEnvelope::new(principal, command).with_command_id(id);
    bus.dispatch(envelope).await.unwrap();
}

async fn member(bus: &LocalBus) -> UserId {
    let user_id = UserId::new();
    send(
        bus,
        Principal::system(),
        Uuid::now_v7(),
        Command::User {
            user_id,
            command: UserCommand::Register {
                user_id,
                name: PersonName::parse("Patron").unwrap(),
                username: None,
                email: None,
                role: quire_domain::Role::Member,
                password_hash: None,
            },
        },
    )
    .await;
    user_id
}

fn at() -> Timestamp {
    Timestamp::from_micros(1_800_000_000_000_000)
}

#[tokio::test]
async fn a_borrow_cut_after_the_member_slot_is_completed_by_rerunning_its_rest() {
    let s = setup().await;
    let policy = LendingPolicy::default();
    let (book, alice) = (BookId::new(), member(&s.bus).await);
    let request = policy.loan_request(LoanId::new(), book, alice, at());
    // The first step alone, as if the node died right after it.
    send(
        &s.bus,
        Principal::member(alice),
        Uuid::now_v7(),
        Command::User {
            user_id: alice,
            command: UserCommand::TakeLoanSlot {
                request: request.clone(),
                max_loans: 5,
                block_after_overdue: 1,
            },
        },
    )
    .await;
    let process = LendingProcess::new(&s.bus);
    let first = process.complete_borrow(&request).await.unwrap();
    let again = process.complete_borrow(&request).await.unwrap();
    assert!(again.replayed, "the redo is answered from the record");
    assert_eq!(first.last_position, again.last_position);
    assert_eq!(
        events(&s.store, &book.lending_stream_id()).await,
        ["CopyAdded", "LoanOpened"]
    );
}

#[tokio::test]
async fn a_refused_borrow_cut_before_its_release_gives_the_slot_back_when_rerun() {
    let s = setup().await;
    let policy = LendingPolicy::default();
    let book = BookId::new();
    let (alice, bob) = (member(&s.bus).await, member(&s.bus).await);
    let origin = |principal| Origin {
        principal,
        command_id: Uuid::now_v7(),
        traceparent: None,
        keyed: false,
    };
    let process = LendingProcess::new(&s.bus);
    let alice_request = policy.loan_request(LoanId::new(), book, alice, at());
    process
        .borrow(
            &origin(Principal::member(alice)),
            &alice_request,
            policy.limits(),
        )
        .await
        .unwrap();
    // Bob's slot is taken and the checkout refused, then the node dies before the release.
    let bob_request = policy.loan_request(LoanId::new(), book, bob, at());
    send(
        &s.bus,
        Principal::member(bob),
        Uuid::now_v7(),
        Command::User {
            user_id: bob,
            command: UserCommand::TakeLoanSlot {
                request: bob_request.clone(),
                max_loans: 1,
                block_after_overdue: 1,
            },
        },
    )
    .await;
    let refused = s
        .bus
        .dispatch(
            CommandEnvelope::new(
                Principal::system(),
                Command::Lending {
                    book_id: book,
                    command: LendingCommand::CheckOut {
                        request: bob_request.clone(),
                    },
                },
            )
            .with_command_id(step_id(bob_request.loan_id.as_uuid(), "check-out")),
        )
        .await;
    assert!(matches!(refused, Err(CommandError::Rejected(r)) if r.code == "copy_unavailable"));
    // The redo: the checkout's recorded refusal, then the release.
    let redo = process.complete_borrow(&bob_request).await;
    assert!(matches!(redo, Err(CommandError::Rejected(r)) if r.code == "copy_unavailable"));
    assert_eq!(
        events(&s.store, &bob.stream_id()).await,
        ["UserRegistered", "LoanSlotTaken", "LoanSlotReleased"]
    );
    // The slot is free: with a limit of 1, Bob can borrow another book.
    let other = policy.loan_request(LoanId::new(), BookId::new(), bob, at());
    let mut limits = policy.limits();
    limits.max_loans = 1;
    process
        .borrow(&origin(Principal::member(bob)), &other, limits)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_keyed_retry_stamped_later_gets_the_first_attempts_loan() {
    let s = setup().await;
    let policy = LendingPolicy::default();
    let (book, alice) = (BookId::new(), member(&s.bus).await);
    let origin = Origin {
        principal: Principal::member(alice),
        command_id: Uuid::now_v7(),
        traceparent: None,
        keyed: true,
    };
    let process = LendingProcess::for_request(&s.bus, &*s.store, &origin);
    let loan_id = LoanId::from_uuid(Uuid::new_v5(&origin.command_id, b"loan"));
    let first = policy.loan_request(loan_id, book, alice, at());
    let (_, one) = process
        .borrow(&origin, &first, policy.limits())
        .await
        .unwrap();
    // The retry is stamped a minute later: without the record its command would differ.
    let later = policy.loan_request(loan_id, book, alice, at().plus_seconds(60));
    let (request, two) = process
        .borrow(&origin, &later, policy.limits())
        .await
        .unwrap();
    assert_eq!(request, first);
    assert_eq!(one.last_position, two.last_position);
    assert_eq!(
        events(&s.store, &alice.stream_id()).await,
        ["UserRegistered", "LoanSlotTaken"]
    );
}

#[tokio::test]
async fn a_return_cut_before_its_release_is_finished_by_the_release_alone() {
    let s = setup().await;
    let policy = LendingPolicy::default();
    let (book, alice) = (BookId::new(), member(&s.bus).await);
    let process = LendingProcess::new(&s.bus);
    let origin = Origin {
        principal: Principal::member(alice),
        command_id: Uuid::now_v7(),
        traceparent: None,
        keyed: false,
    };
    let request = policy.loan_request(LoanId::new(), book, alice, at());
    process
        .borrow(&origin, &request, policy.limits())
        .await
        .unwrap();
    send(
        &s.bus,
        Principal::member(alice),
        Uuid::now_v7(),
        Command::Lending {
            book_id: book,
            command: LendingCommand::Return {
                loan_id: request.loan_id,
                at: at(),
                pickup_until: at().plus_days(7),
            },
        },
    )
    .await;
    process
        .release_loan_slot(alice, request.loan_id)
        .await
        .unwrap();
    let twice = process
        .release_loan_slot(alice, request.loan_id)
        .await
        .unwrap();
    assert!(twice.replayed);
    assert_eq!(
        events(&s.store, &alice.stream_id()).await,
        ["UserRegistered", "LoanSlotTaken", "LoanSlotReleased"]
    );
}
