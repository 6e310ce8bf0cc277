//! The `lending` projection against real stores and read models: member slot events and the
//! books' lending streams in the orders the borrow and hold processes write them, the queries the
//! API and the deadline scheduler make, and that replaying and rebuilding give the same rows.

use std::collections::HashSet;

use quire_domain::ids::{BookId, CopyId, HoldId, LoanId, UserId};
use quire_domain::lending::{HoldRequest, LendingEvent, LoanEnd, LoanRequest, implicit_copy_id};
use quire_domain::user::UserEvent;
use quire_domain::values::{Barcode, Timestamp};
use quire_projections::{
    CopyRow, HoldQuery, HoldRow, HoldStatus, LoanQuery, LoanRow, LoanStatus, LoanStatusFilter,
    PageRequest, ProjectionName, ReadModelError, ReadModels, rebuild,
};

// `helpers` itself too: the tests `both!` generates call `super::helpers::Env`.
use crate::helpers::{self, Env, WAIT, page};

both!(
    lending_follows_loans_holds_and_copies,
    lending_replays_and_rebuilds_to_the_same_rows,
);

/// A fixed origin for the domain's times (they come inside commands, never from a clock).
const T0: i64 = 1_700_000_000_000_000;
const DAY: i64 = Timestamp::MICROS_PER_DAY;

fn at(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

fn loan_request(loan_id: LoanId, book_id: BookId, member: UserId, day: i64) -> LoanRequest {
    LoanRequest {
        loan_id,
        book_id,
        member,
        requested_at: at(T0 + day * DAY),
        due_at: at(T0 + (day + 14) * DAY),
        implicit_copies: 0,
    }
}

fn hold_request(hold_id: HoldId, book_id: BookId, member: UserId, day: i64) -> HoldRequest {
    HoldRequest {
        hold_id,
        book_id,
        member,
        requested_at: at(T0 + day * DAY),
        implicit_copies: 1,
    }
}

fn opened(request: &LoanRequest, copy_id: CopyId) -> LendingEvent {
    LendingEvent::LoanOpened {
        loan_id: request.loan_id,
        copy_id,
        member: request.member,
        at: request.requested_at,
        due_at: request.due_at,
    }
}

fn copy_added(copy_id: CopyId, barcode: &str) -> LendingEvent {
    LendingEvent::CopyAdded {
        copy_id,
        barcode: Some(Barcode::parse(barcode).unwrap()),
    }
}

/// Who and what the scenario involves, for the checks and the snapshots.
struct World {
    books: Vec<BookId>,
    loans: Vec<LoanId>,
    holds: Vec<HoldId>,
    members: Vec<UserId>,
}

/// Book A: two registered copies, a loan renewed, overdue, returned and released; a refused
/// borrow; a borrow stuck half-way; a loan whose slot event is missing. Book B: one copy, two
/// holds queued behind a loan, the first expiring on the shelf and the second fulfilled; a hold
/// cancelled, one refused, one stuck. Book C: implicit copies, one lost while lent, one withdrawn.
/// Checks the read model at each stage; returns the ids and the head.
async fn scenario(env: &Env) -> (World, u64) {
    let (a, b, c) = (BookId::new(), BookId::new(), BookId::new());
    let m: Vec<UserId> = (0..5).map(|_| UserId::new()).collect();
    let (c1, c2, cb) = (CopyId::new(), CopyId::new(), CopyId::new());
    let loans: Vec<LoanId> = (0..8).map(|_| LoanId::new()).collect();
    let holds: Vec<HoldId> = (0..6).map(|_| HoldId::new()).collect();
    let runner = env.spawn();

    // Book A: copies, then m0 borrows c1 (slot first, then the loan).
    env.append_lending(a, vec![copy_added(c1, "A-1"), copy_added(c2, "A-2")])
        .await;
    let r1 = loan_request(loans[1], a, m[0], 0);
    env.append_user(
        m[0],
        vec![UserEvent::LoanSlotTaken {
            request: r1.clone(),
        }],
    )
    .await;
    let head = env.append_lending(a, vec![opened(&r1, c1)]).await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let loan = env.read.loan(loans[1]).await.unwrap().expect("loan 1");
    assert_eq!(
        loan,
        LoanRow {
            loan_id: loans[1],
            book_id: a,
            user_id: m[0],
            copy_id: Some(c1),
            barcode: Some("A-1".into()),
            status: LoanStatus::Open,
            requested_at: T0,
            checked_out_at: Some(T0),
            due_at: T0 + 14 * DAY,
            returned_at: None,
            renewals: 0,
            overdue: false,
            member_flagged_overdue: false,
            member_slot_held: true,
            implicit_copies: 0,
        }
    );
    assert_eq!(
        env.read
            .open_loan_of(m[0], a)
            .await
            .unwrap()
            .map(|l| l.loan_id),
        Some(loans[1])
    );
    assert!(env.read.open_loan_of(m[1], a).await.unwrap().is_none());
    let copy = env.read.copy(c1).await.unwrap().expect("copy 1");
    assert_eq!(
        (copy.status.as_str(), copy.loan_id, copy.hold_id),
        ("on_loan", Some(loans[1]), None)
    );
    assert_eq!(
        env.read.next_lending_deadline().await.unwrap(),
        Some(T0 + 14 * DAY)
    );
    assert!(
        env.read
            .loans_due(T0 + 14 * DAY - 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&env.read.loans_due(T0 + 14 * DAY, 10).await.unwrap()),
        [loans[1]]
    );

    // Renewed, then overdue on the lending stream, then flagged on the member.
    env.append_lending(
        a,
        vec![LendingEvent::LoanRenewed {
            loan_id: loans[1],
            member: m[0],
            at: at(T0 + 10 * DAY),
            due_at: at(T0 + 28 * DAY),
            renewals: 1,
        }],
    )
    .await;
    let head = env
        .append_lending(
            a,
            vec![LendingEvent::LoanOverdue {
                loan_id: loans[1],
                member: m[0],
                due_at: at(T0 + 28 * DAY),
            }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let loan = env.read.loan(loans[1]).await.unwrap().unwrap();
    assert_eq!(
        (loan.due_at, loan.renewals, loan.overdue),
        (T0 + 28 * DAY, 1, true)
    );
    assert!(env.read.loans_due(i64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(
        ids(&env.read.loans_to_flag_overdue(10).await.unwrap()),
        [loans[1]]
    );
    assert_eq!(env.read.next_lending_deadline().await.unwrap(), None);
    let head = env
        .append_user(
            m[0],
            vec![UserEvent::LoanFlaggedOverdue { loan_id: loans[1] }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    assert!(env.read.loans_to_flag_overdue(10).await.unwrap().is_empty());
    assert!(
        env.read
            .loan(loans[1])
            .await
            .unwrap()
            .unwrap()
            .member_flagged_overdue
    );

    // Returned; the slot is released by a later step of the process.
    let head = env
        .append_lending(
            a,
            vec![LendingEvent::LoanEnded {
                loan_id: loans[1],
                copy_id: c1,
                member: m[0],
                at: at(T0 + 30 * DAY),
                end: LoanEnd::Returned,
            }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let loan = env.read.loan(loans[1]).await.unwrap().unwrap();
    assert_eq!(
        (loan.status, loan.returned_at, loan.member_slot_held),
        (LoanStatus::Returned, Some(T0 + 30 * DAY), true)
    );
    assert_eq!(
        ids(&env.read.unreleased_loan_slots(10).await.unwrap()),
        [loans[1]]
    );
    assert!(env.read.open_loan_of(m[0], a).await.unwrap().is_none());
    let copy = env.read.copy(c1).await.unwrap().unwrap();
    assert_eq!((copy.status.as_str(), copy.loan_id), ("available", None));
    env.append_user(
        m[0],
        vec![UserEvent::LoanSlotReleased { loan_id: loans[1] }],
    )
    .await;

    // A refused borrow (slot taken, then given back), a stuck one, and a loan whose slot event
    // this log does not have.
    let refused = loan_request(loans[2], a, m[1], 31);
    env.append_user(
        m[1],
        vec![
            UserEvent::LoanSlotTaken { request: refused },
            UserEvent::LoanSlotReleased { loan_id: loans[2] },
        ],
    )
    .await;
    let stuck = loan_request(loans[3], a, m[2], 32);
    env.append_user(m[2], vec![UserEvent::LoanSlotTaken { request: stuck }])
        .await;
    let unslotted = loan_request(loans[7], a, m[4], 33);
    let head = env.append_lending(a, vec![opened(&unslotted, c2)]).await;
    env.read.wait_for(head, WAIT).await.unwrap();
    assert!(env.read.unreleased_loan_slots(10).await.unwrap().is_empty());
    let loan = env.read.loan(loans[2]).await.unwrap().unwrap();
    assert_eq!(
        (loan.status, loan.member_slot_held, loan.copy_id),
        (LoanStatus::Refused, false, None)
    );
    let loan = env.read.loan(loans[3]).await.unwrap().unwrap();
    assert_eq!(
        (loan.status, loan.member_slot_held, loan.checked_out_at),
        (LoanStatus::Pending, true, None)
    );
    assert!(
        env.read
            .stuck_borrows(T0 + 32 * DAY - 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&env.read.stuck_borrows(T0 + 40 * DAY, 10).await.unwrap()),
        [loans[3]]
    );
    let loan = env.read.loan(loans[7]).await.unwrap().unwrap();
    assert_eq!(
        (
            loan.status,
            loan.user_id,
            loan.requested_at,
            loan.member_slot_held,
            loan.barcode.as_deref()
        ),
        (LoanStatus::Open, m[4], T0 + 33 * DAY, false, Some("A-2"))
    );

    // Book B: one copy, lent to m0; m1 and m2 queue for it.
    let r4 = loan_request(loans[4], b, m[0], 40);
    env.append_lending(b, vec![copy_added(cb, "B-1")]).await;
    env.append_user(
        m[0],
        vec![UserEvent::LoanSlotTaken {
            request: r4.clone(),
        }],
    )
    .await;
    env.append_lending(b, vec![opened(&r4, cb)]).await;
    for (i, member) in [(0, m[1]), (1, m[2])] {
        let request = hold_request(holds[i], b, member, 41 + i as i64);
        env.append_user(
            member,
            vec![UserEvent::HoldSlotTaken {
                request: request.clone(),
            }],
        )
        .await;
        env.append_lending(
            b,
            vec![LendingEvent::HoldPlaced {
                hold_id: holds[i],
                member,
                at: request.requested_at,
            }],
        )
        .await;
    }
    // The return puts the copy on the shelf for the first hold.
    let pickup = T0 + 50 * DAY;
    let head = env
        .append_lending(
            b,
            vec![
                LendingEvent::LoanEnded {
                    loan_id: loans[4],
                    copy_id: cb,
                    member: m[0],
                    at: at(T0 + 45 * DAY),
                    end: LoanEnd::Returned,
                },
                LendingEvent::HoldReady {
                    hold_id: holds[0],
                    member: m[1],
                    copy_id: cb,
                    pickup_until: at(pickup),
                },
            ],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let queue = env.read.hold_queue(b).await.unwrap();
    assert_eq!(ids_of_holds(&queue), [holds[0], holds[1]]);
    assert_eq!(
        (queue[0].status, queue[0].copy_id, queue[0].pickup_until),
        (HoldStatus::Ready, Some(cb), Some(pickup))
    );
    assert_eq!(
        (
            queue[1].status,
            queue[1].placed_at,
            queue[1].member_slot_held
        ),
        (HoldStatus::Waiting, Some(T0 + 42 * DAY), true)
    );
    assert!(queue[0].queue_seq < queue[1].queue_seq);
    let copy = env.read.copy(cb).await.unwrap().unwrap();
    assert_eq!(
        (copy.status.as_str(), copy.hold_id, copy.loan_id),
        ("on_hold_shelf", Some(holds[0]), None)
    );
    assert_eq!(
        env.read.next_lending_deadline().await.unwrap(),
        Some(T0 + 47 * DAY),
        "loan 7 falls due before the pickup deadline"
    );
    assert!(
        env.read
            .holds_expired(pickup - 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids_of_holds(&env.read.holds_expired(pickup, 10).await.unwrap()),
        [holds[0]]
    );
    let active = walk_holds(
        &env.read,
        HoldQuery {
            book_id: Some(b),
            active_only: true,
            page: page(1),
            ..HoldQuery::default()
        },
    )
    .await;
    assert_eq!(ids_of_holds(&active), [holds[0], holds[1]]);

    // The first hold expires on the shelf; the copy passes to the second, which m2 borrows.
    let second_pickup = T0 + 55 * DAY;
    env.append_lending(
        b,
        vec![
            LendingEvent::HoldExpired {
                hold_id: holds[0],
                member: m[1],
                at: at(pickup + 1),
            },
            LendingEvent::HoldReady {
                hold_id: holds[1],
                member: m[2],
                copy_id: cb,
                pickup_until: at(second_pickup),
            },
        ],
    )
    .await;
    let head = env
        .append_user(
            m[1],
            vec![UserEvent::HoldSlotReleased { hold_id: holds[0] }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let copy = env.read.copy(cb).await.unwrap().unwrap();
    assert_eq!(
        (copy.status.as_str(), copy.hold_id),
        ("on_hold_shelf", Some(holds[1]))
    );
    let expired = env.read.hold(holds[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            expired.status,
            expired.ended_at,
            expired.member_slot_held,
            expired.copy_id
        ),
        (HoldStatus::Expired, Some(pickup + 1), false, Some(cb))
    );
    assert!(env.read.unreleased_hold_slots(10).await.unwrap().is_empty());

    let r5 = loan_request(loans[5], b, m[2], 52);
    env.append_user(
        m[2],
        vec![UserEvent::LoanSlotTaken {
            request: r5.clone(),
        }],
    )
    .await;
    let head = env
        .append_lending(
            b,
            vec![
                opened(&r5, cb),
                LendingEvent::HoldFulfilled {
                    hold_id: holds[1],
                    member: m[2],
                    loan_id: loans[5],
                },
            ],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let fulfilled = env.read.hold(holds[1]).await.unwrap().unwrap();
    assert_eq!(
        (
            fulfilled.status,
            fulfilled.loan_id,
            fulfilled.ended_at,
            fulfilled.member_slot_held
        ),
        (
            HoldStatus::Fulfilled,
            Some(loans[5]),
            Some(T0 + 52 * DAY),
            true
        ),
        "a fulfilled hold ends when its loan opens"
    );
    assert_eq!(
        ids_of_holds(&env.read.unreleased_hold_slots(10).await.unwrap()),
        [holds[1]]
    );
    let copy = env.read.copy(cb).await.unwrap().unwrap();
    assert_eq!(
        (copy.status.as_str(), copy.loan_id, copy.hold_id),
        ("on_loan", Some(loans[5]), None)
    );
    assert!(env.read.hold_queue(b).await.unwrap().is_empty());

    // m3 queues and cancels; m0's hold is refused; m4's hold is stuck half-way.
    let r = hold_request(holds[2], b, m[3], 53);
    env.append_user(m[3], vec![UserEvent::HoldSlotTaken { request: r.clone() }])
        .await;
    env.append_lending(
        b,
        vec![LendingEvent::HoldPlaced {
            hold_id: holds[2],
            member: m[3],
            at: r.requested_at,
        }],
    )
    .await;
    env.append_lending(
        b,
        vec![LendingEvent::HoldCancelled {
            hold_id: holds[2],
            member: m[3],
            at: at(T0 + 54 * DAY),
        }],
    )
    .await;
    env.append_user(
        m[3],
        vec![UserEvent::HoldSlotReleased { hold_id: holds[2] }],
    )
    .await;
    env.append_user(
        m[0],
        vec![
            UserEvent::HoldSlotTaken {
                request: hold_request(holds[3], b, m[0], 54),
            },
            UserEvent::HoldSlotReleased { hold_id: holds[3] },
        ],
    )
    .await;
    env.append_user(
        m[4],
        vec![UserEvent::HoldSlotTaken {
            request: hold_request(holds[4], b, m[4], 55),
        }],
    )
    .await;
    // Loan 5 goes overdue: the scheduler must flag it on m2.
    let head = env
        .append_lending(
            b,
            vec![LendingEvent::LoanOverdue {
                loan_id: loans[5],
                member: m[2],
                due_at: at(T0 + 66 * DAY),
            }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    assert_eq!(
        env.read.hold(holds[2]).await.unwrap().unwrap().status,
        HoldStatus::Cancelled
    );
    let refused = env.read.hold(holds[3]).await.unwrap().unwrap();
    assert_eq!(
        (refused.status, refused.member_slot_held, refused.queue_seq),
        (HoldStatus::Refused, false, None)
    );
    let stuck = env.read.hold(holds[4]).await.unwrap().unwrap();
    assert_eq!(
        (stuck.status, stuck.implicit_copies),
        (HoldStatus::Pending, 1)
    );
    assert_eq!(
        ids_of_holds(&env.read.stuck_holds(T0 + 60 * DAY, 10).await.unwrap()),
        [holds[4]]
    );
    assert!(
        env.read
            .stuck_holds(T0 + 55 * DAY - 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&env.read.loans_to_flag_overdue(10).await.unwrap()),
        [loans[5]]
    );
    let all_b = walk_holds(
        &env.read,
        HoldQuery {
            book_id: Some(b),
            page: page(2),
            ..HoldQuery::default()
        },
    )
    .await;
    assert_eq!(
        ids_of_holds(&all_b),
        [holds[0], holds[1], holds[2]],
        "queue order; pending and refused holds are not listed"
    );
    let by_member = walk_holds(
        &env.read,
        HoldQuery {
            user_id: Some(m[2]),
            page: page(5),
            ..HoldQuery::default()
        },
    )
    .await;
    assert_eq!(ids_of_holds(&by_member), [holds[1]]);

    // Book C lends as implicit copies: the first borrow registers them; the copy is lost while
    // lent, and the other withdrawn.
    let (i0, i1) = (implicit_copy_id(c, 0), implicit_copy_id(c, 1));
    let r6 = LoanRequest {
        implicit_copies: 2,
        ..loan_request(loans[6], c, m[0], 60)
    };
    env.append_user(
        m[0],
        vec![UserEvent::LoanSlotTaken {
            request: r6.clone(),
        }],
    )
    .await;
    env.append_lending(
        c,
        vec![
            LendingEvent::CopyAdded {
                copy_id: i0,
                barcode: None,
            },
            LendingEvent::CopyAdded {
                copy_id: i1,
                barcode: None,
            },
            opened(&r6, i0),
        ],
    )
    .await;
    env.append_lending(
        c,
        vec![
            LendingEvent::LoanEnded {
                loan_id: loans[6],
                copy_id: i0,
                member: m[0],
                at: at(T0 + 61 * DAY),
                end: LoanEnd::Lost,
            },
            LendingEvent::CopyLost {
                copy_id: i0,
                at: at(T0 + 61 * DAY),
            },
        ],
    )
    .await;
    env.append_lending(
        c,
        vec![LendingEvent::CopyWithdrawn {
            copy_id: i1,
            at: at(T0 + 62 * DAY),
        }],
    )
    .await;
    let head = env
        .append_user(
            m[0],
            vec![UserEvent::LoanSlotReleased { loan_id: loans[6] }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let copies = env.read.copies_of_book(c).await.unwrap();
    assert_eq!(
        copies
            .iter()
            .map(|c| (c.copy_id, c.barcode.as_deref(), c.status.as_str()))
            .collect::<Vec<_>>(),
        [(i0, None, "lost"), (i1, None, "withdrawn")]
    );
    assert!(copies.iter().all(|c| c.loan_id.is_none() && c.added_at > 0));
    let lost = env.read.loan(loans[6]).await.unwrap().unwrap();
    assert_eq!(
        (
            lost.status,
            lost.returned_at,
            lost.implicit_copies,
            lost.barcode
        ),
        (LoanStatus::Lost, Some(T0 + 61 * DAY), 2, None)
    );
    let copies_a: Vec<CopyRow> = env.read.copies_of_book(a).await.unwrap();
    assert_eq!(
        copies_a.iter().map(|c| c.copy_id).collect::<Vec<_>>(),
        [c1, c2],
        "registration order"
    );
    assert!(env.read.copy(CopyId::new()).await.unwrap().is_none());
    assert!(env.read.loan(LoanId::new()).await.unwrap().is_none());
    assert!(env.read.hold(HoldId::new()).await.unwrap().is_none());

    // Listings: newest checkout first, pending and refused borrows never listed.
    let m0 = walk_loans(
        &env.read,
        LoanQuery {
            user_id: Some(m[0]),
            page: page(1),
            ..LoanQuery::default()
        },
    )
    .await;
    assert_eq!(ids(&m0), [loans[6], loans[4], loans[1]]);
    let all = walk_loans(
        &env.read,
        LoanQuery {
            page: page(2),
            ..LoanQuery::default()
        },
    )
    .await;
    assert_eq!(
        ids(&all),
        [loans[6], loans[5], loans[4], loans[7], loans[1]]
    );
    let open = walk_loans(
        &env.read,
        LoanQuery {
            status: Some(LoanStatusFilter::Open),
            page: page(1),
            ..LoanQuery::default()
        },
    )
    .await;
    assert_eq!(ids(&open), [loans[5], loans[7]]);
    let overdue = |now| LoanQuery {
        status: Some(LoanStatusFilter::Overdue),
        now,
        page: page(10),
        ..LoanQuery::default()
    };
    assert_eq!(
        ids(&walk_loans(&env.read, overdue(T0)).await),
        [loans[5]],
        "recorded overdue"
    );
    assert_eq!(
        ids(&walk_loans(&env.read, overdue(T0 + 47 * DAY)).await),
        [loans[5], loans[7]],
        "past its due date, not yet recorded"
    );
    let returned = walk_loans(
        &env.read,
        LoanQuery {
            status: Some(LoanStatusFilter::Returned),
            book_id: Some(a),
            page: page(10),
            ..LoanQuery::default()
        },
    )
    .await;
    assert_eq!(ids(&returned), [loans[1]]);

    // A cursor belongs to its listing.
    let first = env
        .read
        .loans(&LoanQuery {
            page: page(1),
            ..LoanQuery::default()
        })
        .await
        .unwrap();
    let refused = env
        .read
        .holds(&HoldQuery {
            page: PageRequest {
                cursor: first.next_cursor,
                limit: 1,
            },
            ..HoldQuery::default()
        })
        .await;
    assert!(matches!(refused, Err(ReadModelError::InvalidCursor)));
    runner.shutdown().await;

    let world = World {
        books: vec![a, b, c],
        loans,
        holds,
        members: m,
    };
    (world, head)
}

async fn lending_follows_loans_holds_and_copies(env: Env) {
    let (world, head) = scenario(&env).await;
    assert_eq!(world.books.len(), 3);
    let statuses = env.read.statuses().await.unwrap();
    let lending = statuses
        .iter()
        .find(|s| s.name == ProjectionName::Lending)
        .expect("a lending checkpoint");
    assert!(lending.position >= head && lending.last_error.is_none());
}

async fn lending_replays_and_rebuilds_to_the_same_rows(env: Env) {
    let (world, head) = scenario(&env).await;
    let before = snapshot(&env.read, &world).await;

    // Every event applied again, from the start and from the middle, changes nothing.
    for position in [0, head / 2] {
        env.reset_checkpoints(position).await;
        let runner = env.spawn_with(quire_projections::RunnerOptions {
            batch_size: 5,
            ..Default::default()
        });
        wait_until_stored(&env, head).await;
        runner.shutdown().await;
        assert_eq!(
            snapshot(&env.read, &world).await,
            before,
            "replay from {position}"
        );
    }

    // A rebuild (`quire projections rebuild lending`) swaps in the same rows, twice (the second
    // works on the swapped tables and their indexes).
    for _ in 0..2 {
        let report = rebuild(&env.store, &env.read, ProjectionName::Lending, &|_| {})
            .await
            .unwrap();
        assert_eq!(report.name, ProjectionName::Lending);
        assert!(report.events >= head);
        assert_eq!(snapshot(&env.read, &world).await, before, "after a rebuild");
    }

    // So does a fresh build in a database of its own.
    let fresh = env.fresh_read_models().await;
    let runner = quire_projections::spawn(env.store.clone(), fresh.clone(), Default::default());
    fresh.wait_for(head, WAIT).await.unwrap();
    runner.shutdown().await;
    assert_eq!(snapshot(&fresh, &world).await, before, "a fresh build");
}

/// Waits until the stored lending checkpoint (not only the local watch) reaches `position`.
async fn wait_until_stored(env: &Env, position: u64) {
    for _ in 0..400 {
        let statuses = env.read.statuses().await.unwrap();
        if statuses
            .iter()
            .find(|s| s.name == ProjectionName::Lending)
            .is_some_and(|s| s.position >= position)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the lending checkpoint did not reach {position}");
}

fn ids(loans: &[LoanRow]) -> Vec<LoanId> {
    loans.iter().map(|l| l.loan_id).collect()
}

fn ids_of_holds(holds: &[HoldRow]) -> Vec<HoldId> {
    holds.iter().map(|h| h.hold_id).collect()
}

/// Every loan of a listing, page by page, checking page sizes and that no loan repeats.
async fn walk_loans(read: &ReadModels, mut query: LoanQuery) -> Vec<LoanRow> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let p = read.loans(&query).await.unwrap();
        assert!(p.items.len() <= query.page.limit as usize);
        for loan in p.items {
            assert!(seen.insert(loan.loan_id), "{} listed twice", loan.loan_id);
            out.push(loan);
        }
        match p.next_cursor {
            Some(c) => query.page.cursor = Some(c),
            None => return out,
        }
    }
}

/// Every hold of a listing, page by page, checking page sizes and that no hold repeats.
async fn walk_holds(read: &ReadModels, mut query: HoldQuery) -> Vec<HoldRow> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let p = read.holds(&query).await.unwrap();
        assert!(p.items.len() <= query.page.limit as usize);
        for hold in p.items {
            assert!(seen.insert(hold.hold_id), "{} listed twice", hold.hold_id);
            out.push(hold);
        }
        match p.next_cursor {
            Some(c) => query.page.cursor = Some(c),
            None => return out,
        }
    }
}

/// Everything the lending queries show about the scenario, as text.
async fn snapshot(read: &ReadModels, world: &World) -> String {
    let mut out = String::new();
    for book in &world.books {
        for copy in read.copies_of_book(*book).await.unwrap() {
            out += &format!("{copy:?}\n");
        }
        out += &format!("queue {:?}\n", read.hold_queue(*book).await.unwrap());
    }
    for loan in &world.loans {
        out += &format!("{:?}\n", read.loan(*loan).await.unwrap());
    }
    for hold in &world.holds {
        out += &format!("{:?}\n", read.hold(*hold).await.unwrap());
    }
    for member in &world.members {
        let loans = LoanQuery {
            user_id: Some(*member),
            page: page(3),
            ..LoanQuery::default()
        };
        out += &format!("loans {:?}\n", ids(&walk_loans(read, loans).await));
        let holds = HoldQuery {
            user_id: Some(*member),
            page: page(3),
            ..HoldQuery::default()
        };
        out += &format!("holds {:?}\n", ids_of_holds(&walk_holds(read, holds).await));
    }
    let now = T0 + 100 * DAY;
    out += &format!("due {:?}\n", read.loans_due(now, 100).await.unwrap());
    out += &format!(
        "flag {:?}\n",
        read.loans_to_flag_overdue(100).await.unwrap()
    );
    out += &format!(
        "expired {:?}\n",
        read.holds_expired(now, 100).await.unwrap()
    );
    out += &format!("stuck {:?}\n", read.stuck_borrows(now, 100).await.unwrap());
    out += &format!("stuck {:?}\n", read.stuck_holds(now, 100).await.unwrap());
    out += &format!(
        "slots {:?}\n",
        read.unreleased_loan_slots(100).await.unwrap()
    );
    out += &format!(
        "slots {:?}\n",
        read.unreleased_hold_slots(100).await.unwrap()
    );
    out += &format!("next {:?}\n", read.next_lending_deadline().await.unwrap());
    out
}
