//! The projections against real stores and read models, every test on SQLite and on Postgres.

mod helpers;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use helpers::*;
use quire_domain::Role;
use quire_domain::book::{BookChanges, BookEvent};
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::user::UserEvent;
use quire_domain::values::*;
use quire_projections::{
    BookQuery, BookSort, PageRequest, ProjectionName, ReadModelError, ReadModelOptions, ReadModels,
    RunnerOptions, WaitError, rebuild,
};

/// Generates `<name>::sqlite` and `<name>::postgres` from `async fn name(env: Env)`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::helpers::Env::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::helpers::Env::postgres().await).await
            }
        }
    )*};
}

mod lending;
mod social;

both!(
    book_events_shape_the_book_view,
    listing_filters_sorts_and_pages_without_duplicates_or_misses,
    reviews_keep_stats_and_distribution_consistent,
    users_and_credentials,
    applying_the_log_twice_changes_nothing,
    a_restarted_runner_ends_where_a_fresh_build_does,
    wait_for_follows_the_checkpoints,
    rebuild_while_live_swaps_in_a_complete_model,
    an_undecodable_event_is_recorded_and_not_skipped,
    book_added_v1_without_book_id_takes_it_from_the_stream,
    interactions_fold_reviews_ratings_likes_and_views,
    recommendation_models_are_stored_and_pruned,
);

async fn book_events_shape_the_book_view(env: Env) {
    let book = BookId::new();
    let gone = BookId::new();
    let member = UserId::new();
    env.append_book(
        book,
        vec![added(
            book,
            "Dune",
            &["Frank Herbert", "Brian Herbert"],
            &["Science Fiction"],
            Some(1965),
        )],
    )
    .await;
    env.append_book(
        book,
        vec![BookEvent::BookUpdated(BookChanges {
            title: Some(Title::parse("Dune (Deluxe)").unwrap()),
            year_published: Some(None),
            description: Some(Some(Description::parse("Spice.").unwrap())),
            genres: Some(vec![
                Genre::parse("classics").unwrap(),
                Genre::parse("sf").unwrap(),
            ]),
            ..BookChanges::default()
        })],
    )
    .await;
    env.append_book(
        book,
        vec![BookEvent::BookSummarySet {
            summary: SummaryText::parse("A desert planet.").unwrap(),
            source: "test-model".into(),
            provenance: None,
        }],
    )
    .await;
    env.append_book(gone, vec![added(gone, "Gone", &["Nobody"], &[], None)])
        .await;
    env.append_book(gone, vec![BookEvent::BookRemoved]).await;
    let head = env
        .append_book(book, vec![posted(ReviewId::new(), member, 4)])
        .await;

    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    let view = env.read.book(book).await.unwrap().expect("book");
    assert_eq!(view.title, "Dune (Deluxe)");
    assert_eq!(view.authors, ["Frank Herbert", "Brian Herbert"]);
    assert_eq!(view.genres, ["classics", "sf"]);
    assert_eq!(view.year_published, None);
    assert_eq!(view.isbn.as_deref(), Some("9780306406157"));
    assert_eq!(view.description.as_deref(), Some("Spice."));
    assert_eq!(view.summary.as_deref(), Some("A desert planet."));
    assert_eq!(view.summary_source.as_deref(), Some("test-model"));
    // The review is the fourth event of the book's stream: it moves the ETag too.
    assert_eq!(view.version, 4);
    assert!(view.updated_at >= view.added_at && view.added_at > 0);
    assert_eq!(view.rating.count, 1);
    assert_eq!(view.rating.average, Some(4.0));

    assert!(env.read.book(gone).await.unwrap().is_none());
    assert!(env.read.book_removed(gone).await.unwrap());
    assert!(!env.read.book_removed(book).await.unwrap());
    assert!(!env.read.book_removed(BookId::new()).await.unwrap());
    let all = env
        .read
        .list_books(&BookQuery {
            page: page(10),
            ..BookQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "removed books are not listed");
    // The old author index rows went with the update of genres only; authors still match.
    let by_author = env
        .read
        .list_books(&BookQuery {
            author: Some("  brian HERBERT ".into()),
            page: page(10),
            ..BookQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_author.items.len(), 1);
    let old_genre = env
        .read
        .list_books(&BookQuery {
            genre: Some("Science Fiction".into()),
            page: page(10),
            ..BookQuery::default()
        })
        .await
        .unwrap();
    assert!(
        old_genre.items.is_empty(),
        "replaced genres no longer match"
    );
    runner.shutdown().await;
}

async fn listing_filters_sorts_and_pages_without_duplicates_or_misses(env: Env) {
    let member = UserId::new();
    let mut books = Vec::new();
    for i in 0..23u32 {
        let id = BookId::new();
        let author = ["Ann Leckie", "Iain Banks", "Ursula Le Guin"][i as usize % 3];
        let genre = ["science-fiction", "fantasy"][i as usize % 2];
        // Repeated titles and years force the id tie-break; some books have no year.
        let year = (i % 4 != 0).then_some(1990 + (i % 5) as i32);
        env.append_book(
            id,
            vec![added(
                id,
                &format!("Title {}", i % 7),
                &[author],
                &[genre],
                year,
            )],
        )
        .await;
        // Ratings: none for every fifth book, else one or two with repeats across books.
        if i % 5 != 0 {
            env.append_book(id, vec![posted(ReviewId::new(), member, (i % 5) as u8)])
                .await;
            if i % 3 == 0 {
                env.append_book(id, vec![posted(ReviewId::new(), UserId::new(), 5)])
                    .await;
            }
        }
        books.push(id);
    }
    let head = env.store.head().await.unwrap();
    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();

    let everything = walk(
        &env,
        BookQuery {
            page: page(100),
            ..BookQuery::default()
        },
    )
    .await;
    assert_eq!(everything.len(), 23);
    for sort in [
        BookSort::Title,
        BookSort::Year,
        BookSort::Rating,
        BookSort::Added,
    ] {
        for descending in [false, true] {
            let mut expected = everything.clone();
            let key = |b: &quire_projections::BookView| -> (bool, String, String) {
                let k = match sort {
                    BookSort::Title => Some(b.title.to_lowercase()),
                    BookSort::Year => b.year_published.map(|y| format!("{y:08}")),
                    BookSort::Rating => b.rating.average.map(|a| format!("{a:012.6}")),
                    BookSort::Added => Some(format!("{:020}", b.added_at)),
                };
                (k.is_none(), k.unwrap_or_default(), b.id.to_string())
            };
            expected.sort_by(|a, b| {
                let (an, ak, ai) = key(a);
                let (bn, bk, bi) = key(b);
                an.cmp(&bn).then_with(|| {
                    let o = ak.cmp(&bk).then(ai.cmp(&bi));
                    if descending { o.reverse() } else { o }
                })
            });
            for size in [1, 4, 7] {
                let got = walk(
                    &env,
                    BookQuery {
                        sort,
                        descending,
                        page: page(size),
                        ..BookQuery::default()
                    },
                )
                .await;
                let got_ids: Vec<BookId> = got.iter().map(|b| b.id).collect();
                let want_ids: Vec<BookId> = expected.iter().map(|b| b.id).collect();
                assert_eq!(
                    got_ids, want_ids,
                    "sort {sort:?} descending {descending} page size {size}"
                );
            }
        }
    }

    let by_author = walk(
        &env,
        BookQuery {
            author: Some("IAIN BANKS".into()),
            page: page(3),
            ..BookQuery::default()
        },
    )
    .await;
    assert_eq!(by_author.len(), 8);
    assert!(by_author.iter().all(|b| b.authors == ["Iain Banks"]));
    let by_genre = walk(
        &env,
        BookQuery {
            genre: Some("Science Fiction".into()),
            page: page(5),
            ..BookQuery::default()
        },
    )
    .await;
    assert_eq!(by_genre.len(), 12);
    let by_year = walk(
        &env,
        BookQuery {
            year: Some(1991),
            sort: BookSort::Rating,
            page: page(2),
            ..BookQuery::default()
        },
    )
    .await;
    assert!(!by_year.is_empty() && by_year.iter().all(|b| b.year_published == Some(1991)));
    let combined = walk(
        &env,
        BookQuery {
            author: Some("ann leckie".into()),
            genre: Some("fantasy".into()),
            page: page(2),
            ..BookQuery::default()
        },
    )
    .await;
    assert_eq!(combined.len(), 4);

    // A cursor belongs to its listing.
    let first = env
        .read
        .list_books(&BookQuery {
            page: page(2),
            ..BookQuery::default()
        })
        .await
        .unwrap();
    let cursor = first.next_cursor.expect("more pages");
    let other = env
        .read
        .list_books(&BookQuery {
            sort: BookSort::Year,
            page: PageRequest {
                cursor: Some(cursor),
                limit: 2,
            },
            ..BookQuery::default()
        })
        .await;
    assert!(matches!(other, Err(ReadModelError::InvalidCursor)));
    let garbage = env
        .read
        .list_books(&BookQuery {
            page: PageRequest {
                cursor: Some("not a cursor".into()),
                limit: 2,
            },
            ..BookQuery::default()
        })
        .await;
    assert!(matches!(garbage, Err(ReadModelError::InvalidCursor)));
    runner.shutdown().await;
}

async fn reviews_keep_stats_and_distribution_consistent(env: Env) {
    let book = BookId::new();
    let (r1, r2, r3, r4) = (
        ReviewId::new(),
        ReviewId::new(),
        ReviewId::new(),
        ReviewId::new(),
    );
    let member = UserId::new();
    env.append_book(book, vec![added(book, "Reviewed", &["A"], &[], None)])
        .await;
    env.append_book(
        book,
        vec![posted(r1, member, 5), posted(r2, UserId::new(), 3)],
    )
    .await;
    env.append_book(book, vec![posted(r3, UserId::new(), 1)])
        .await;
    env.append_book(
        book,
        vec![BookEvent::ReviewEdited {
            review_id: r2,
            rating: Some(Rating::parse(4).unwrap()),
            text: Some(ReviewText::parse("better on reread").unwrap()),
        }],
    )
    .await;
    env.append_book(
        book,
        vec![BookEvent::ReviewEdited {
            review_id: r1,
            rating: None,
            text: Some(ReviewText::parse("still great").unwrap()),
        }],
    )
    .await;
    env.append_book(
        book,
        vec![BookEvent::ReviewDeleted {
            review_id: r3,
            member_id: member,
            deleted_by: None,
        }],
    )
    .await;
    let head = env
        .append_book(book, vec![posted(r4, UserId::new(), 4)])
        .await;

    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    let stats = env.read.rating_stats(book).await.unwrap();
    assert_eq!(stats.count, 3);
    assert_eq!(stats.distribution, [0, 0, 0, 2, 1]);
    assert_eq!(stats.average, Some(13.0 / 3.0));
    let view = env.read.book(book).await.unwrap().unwrap();
    assert_eq!(view.rating, stats);
    assert_eq!(view.version, 8);
    assert_eq!(env.read.rating_stats(BookId::new()).await.unwrap().count, 0);

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = env
            .read
            .reviews(book, &PageRequest { cursor, limit: 1 })
            .await
            .unwrap();
        seen.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let ids: Vec<ReviewId> = seen.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&r3), "deleted reviews are not listed");
    assert_eq!(ids[0], r4, "newest first");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id))
    );
    let edited = seen.iter().find(|r| r.id == r2).unwrap();
    assert_eq!(
        (edited.rating, edited.review_text.as_str()),
        (4, "better on reread")
    );
    let kept = seen.iter().find(|r| r.id == r1).unwrap();
    assert_eq!(
        (kept.rating, kept.review_text.as_str(), kept.user_id),
        (5, "still great", member)
    );
    assert!(kept.updated_at >= kept.created_at);
    runner.shutdown().await;
}

async fn users_and_credentials(env: Env) {
    let alice_name = Username::parse("Alice").unwrap();
    let alice = UserId::for_username(&alice_name);
    let patron = UserId::new();
    env.append_user(
        alice,
        vec![registered(
            alice,
            "Alice A.",
            Some(alice_name.clone()),
            Role::Admin,
        )],
    )
    .await;
    env.append_user(
        patron,
        vec![registered(patron, "Pat Ron", None, Role::Member)],
    )
    .await;
    env.append_user(
        alice,
        vec![UserEvent::PreferencesChanged {
            favourite_genres: vec![Genre::parse("poetry").unwrap()],
        }],
    )
    .await;
    env.append_user(
        alice,
        vec![UserEvent::PasswordChanged {
            password_hash: PasswordHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3")
                .unwrap(),
        }],
    )
    .await;
    let head = env
        .append_user(patron, vec![UserEvent::UserDeactivated])
        .await;

    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    let a = env.read.user(alice).await.unwrap().unwrap();
    assert_eq!(
        (a.name.as_str(), a.username.as_deref(), a.role, a.active),
        ("Alice A.", Some("alice"), Role::Admin, true)
    );
    assert_eq!(a.favourite_genres, ["poetry"]);
    assert_eq!(a.email.as_deref(), Some("alice@example.com"));
    assert_eq!(a.version, 3);
    let p = env.read.user(patron).await.unwrap().unwrap();
    assert!(!p.active && p.username.is_none());
    assert!(env.read.user(UserId::new()).await.unwrap().is_none());

    let creds = env.read.credentials("alice").await.unwrap().unwrap();
    assert_eq!(creds.user_id, alice);
    assert_eq!(
        creds.password_hash.as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3")
    );
    assert_eq!(creds.role, Role::Admin);
    assert!(creds.active);
    assert!(env.read.credentials("nobody").await.unwrap().is_none());

    let first = env.read.list_users(&page(1)).await.unwrap();
    assert_eq!(first.items[0].id, alice);
    let second = env
        .read
        .list_users(&PageRequest {
            cursor: first.next_cursor,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(second.items[0].id, patron);
    assert!(second.next_cursor.is_none());
    runner.shutdown().await;
}

async fn applying_the_log_twice_changes_nothing(env: Env) {
    let head = env.mixed_history(6, 20).await;
    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    runner.shutdown().await;
    let before = snapshot(&env.read).await;

    // Move every checkpoint back: the whole log is applied a second time, then half of it a third.
    for position in [0, head / 2] {
        env.reset_checkpoints(position).await;
        let runner = env.spawn_with(RunnerOptions {
            batch_size: 7,
            ..RunnerOptions::default()
        });
        env.read.wait_for(head, WAIT).await.unwrap();
        wait_until_stored(&env, head).await;
        runner.shutdown().await;
        assert_eq!(snapshot(&env.read).await, before, "replay from {position}");
    }
}

async fn a_restarted_runner_ends_where_a_fresh_build_does(env: Env) {
    let head = env.mixed_history(10, 300).await;
    let options = RunnerOptions {
        batch_size: 50,
        ..RunnerOptions::default()
    };
    let runner = env.spawn_with(options.clone());
    // Stop somewhere in the middle.
    let mut watch = env.read.checkpoint_watch(ProjectionName::Reviews);
    watch.wait_for(|p| *p > 0).await.unwrap();
    runner.shutdown().await;
    let stopped_at = env.read.min_position().await.unwrap();
    assert!(
        stopped_at < head,
        "stopped before the end ({stopped_at} of {head})"
    );

    let runner = env.spawn_with(options);
    env.read.wait_for(head, WAIT).await.unwrap();
    runner.shutdown().await;

    let fresh = env.fresh_read_models().await;
    let runner =
        quire_projections::spawn(env.store.clone(), fresh.clone(), RunnerOptions::default());
    fresh.wait_for(head, WAIT).await.unwrap();
    runner.shutdown().await;
    assert_eq!(snapshot(&env.read).await, snapshot(&fresh).await);
}

async fn wait_for_follows_the_checkpoints(env: Env) {
    let book = BookId::new();
    let head = env
        .append_book(book, vec![added(book, "Waited", &["W"], &[], None)])
        .await;
    match env.read.wait_for(head, Duration::from_millis(150)).await {
        Err(WaitError::Timeout { reached }) => assert_eq!(reached, 0),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // A runner elsewhere (another ReadModels on the same database) advances the checkpoints; this
    // instance only sees them through its polls.
    let other = env.reopen_read_models().await;
    let runner = quire_projections::spawn(env.store.clone(), other, RunnerOptions::default());
    env.read.wait_for(head, WAIT).await.unwrap();
    assert!(env.read.book(book).await.unwrap().is_some());
    let later = env
        .append_book(book, vec![posted(ReviewId::new(), UserId::new(), 2)])
        .await;
    env.read.wait_for(later, WAIT).await.unwrap();
    assert_eq!(env.read.book(book).await.unwrap().unwrap().version, 2);
    assert!(env.read.min_position().await.unwrap() >= later);
    runner.shutdown().await;
    let statuses = env.read.statuses().await.unwrap();
    let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "books",
            "reviews",
            "users",
            "interactions",
            "lending",
            "club",
            "social",
            "store"
        ]
    );
    assert!(
        statuses
            .iter()
            .all(|s| s.position == later && s.last_error.is_none())
    );

    // Read-only (the CLI's `projections status` on a live system): queries work, writes do not.
    let read_only = ReadModels::open(
        &env.read_url(),
        ReadModelOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(read_only.min_position().await.unwrap(), later);
    assert!(read_only.book(book).await.unwrap().is_some());
    let refused = rebuild(&env.store, &read_only, ProjectionName::Books, &|_| {}).await;
    assert!(
        matches!(refused, Err(ReadModelError::ReadOnly)),
        "{refused:?}"
    );
}

#[test]
fn read_models_are_shareable() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<ReadModels>();
}

async fn rebuild_while_live_swaps_in_a_complete_model(env: Env) {
    let head = env.mixed_history(30, 1500).await;
    let runner = env.spawn_with(RunnerOptions {
        batch_size: 100,
        ..RunnerOptions::default()
    });
    env.read.wait_for(head, WAIT).await.unwrap();
    let books_before = count_books(&env.read).await;
    assert_eq!(books_before, 28, "two of the thirty books are removed");

    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let writer = {
        let env = env.clone();
        let stop = stop.clone();
        let appended = appended.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = BookId::new();
                env.append_book(
                    id,
                    vec![added(
                        id,
                        "Written during rebuild",
                        &["Live"],
                        &["now"],
                        Some(2024),
                    )],
                )
                .await;
                env.append_book(
                    id,
                    vec![
                        posted(ReviewId::new(), UserId::new(), 3),
                        posted(ReviewId::new(), UserId::new(), 5),
                    ],
                )
                .await;
                appended.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let reader = {
        let read = env.read.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut checks = 0u32;
            let mut seen = books_before;
            while !stop.load(Ordering::Relaxed) {
                let n = count_books(&read).await;
                assert!(n >= seen, "a reader saw {n} books after {seen}");
                seen = n;
                checks += 1;
            }
            checks
        })
    };
    let progressed = Arc::new(AtomicU64::new(0));
    for name in [
        ProjectionName::Books,
        ProjectionName::Reviews,
        ProjectionName::Users,
    ] {
        let p = progressed.clone();
        let report = rebuild(&env.store, &env.read, name, &move |progress| {
            assert!(progress.position <= progress.head);
            p.store(progress.position, Ordering::Relaxed);
        })
        .await
        .unwrap();
        assert_eq!(report.name, name);
        assert!(report.events >= head && report.events_per_sec > 0.0);
    }
    assert!(progressed.load(Ordering::Relaxed) >= head);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let checks = reader.await.unwrap();
    assert!(checks > 0);
    assert!(
        appended.load(Ordering::Relaxed) > 0,
        "appends ran during the rebuilds"
    );

    let head = env.store.head().await.unwrap();
    env.read.wait_for(head, WAIT).await.unwrap();
    runner.shutdown().await;
    let fresh = env.fresh_read_models().await;
    let fresh_runner =
        quire_projections::spawn(env.store.clone(), fresh.clone(), RunnerOptions::default());
    fresh.wait_for(head, WAIT).await.unwrap();
    fresh_runner.shutdown().await;
    assert_eq!(snapshot(&env.read).await, snapshot(&fresh).await);

    // A second rebuild works on the swapped tables (their indexes and all).
    rebuild(&env.store, &env.read, ProjectionName::Books, &|_| {})
        .await
        .unwrap();
    assert_eq!(snapshot(&env.read).await, snapshot(&fresh).await);
}

async fn an_undecodable_event_is_recorded_and_not_skipped(env: Env) {
    let good = BookId::new();
    env.append_book(good, vec![added(good, "Fine", &["A"], &[], None)])
        .await;
    let bad = BookId::new();
    let bad_position = env
        .append_raw(
            &bad.stream_id(),
            "BookAdded",
            2,
            serde_json::json!({ "title": 42 }),
        )
        .await;
    let user = UserId::new();
    let head = env
        .append_user(user, vec![registered(user, "After", None, Role::Member)])
        .await;

    let runner = env.spawn_with(RunnerOptions {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        ..RunnerOptions::default()
    });
    // The other projections pass the event (it is not theirs) and reach the head.
    let mut users = env.read.checkpoint_watch(ProjectionName::Users);
    users.wait_for(|p| *p >= head).await.unwrap();
    let status = loop {
        let statuses = env.read.statuses().await.unwrap();
        let books = statuses
            .into_iter()
            .find(|s| s.name == ProjectionName::Books)
            .unwrap();
        if books.last_error.is_some() {
            break books;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = status.last_error.unwrap();
    assert!(
        error.contains("BookAdded") && error.contains(&bad_position.to_string()),
        "{error}"
    );
    assert!(status.last_error_at.is_some());
    assert!(
        status.position < bad_position,
        "the bad event is not skipped"
    );
    // It keeps failing on retries and never moves past the event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let books = env
        .read
        .statuses()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == ProjectionName::Books)
        .unwrap();
    assert!(books.position < bad_position && books.last_error.is_some());
    assert!(matches!(
        env.read.wait_for(head, Duration::from_millis(100)).await,
        Err(WaitError::Timeout { .. })
    ));
    assert!(
        env.read.book(good).await.unwrap().is_some(),
        "events before it were applied"
    );
    runner.shutdown().await;
}

async fn book_added_v1_without_book_id_takes_it_from_the_stream(env: Env) {
    let book = BookId::new();
    let head = env
        .append_raw(
            &book.stream_id(),
            "BookAdded",
            1,
            serde_json::json!({ "title": "Seed", "author": "Old Author", "genre": "Science Fiction", "year_published": 1999 }),
        )
        .await;
    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    let view = env.read.book(book).await.unwrap().expect("projected");
    assert_eq!(view.id, book);
    assert_eq!(view.authors, ["Old Author"]);
    assert_eq!(view.genres, ["science-fiction"]);
    assert_eq!(view.year_published, Some(1999));
    assert_eq!(view.version, 1);
    runner.shutdown().await;
}

/// Every book of a listing, page by page, checking that no id repeats.
async fn walk(env: &Env, mut query: BookQuery) -> Vec<quire_projections::BookView> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    loop {
        let p = env.read.list_books(&query).await.unwrap();
        assert!(p.items.len() <= query.page.limit as usize);
        for b in p.items {
            assert!(ids.insert(b.id), "{} listed twice", b.id);
            out.push(b);
        }
        match p.next_cursor {
            Some(c) => query.page.cursor = Some(c),
            None => return out,
        }
    }
}

/// Waits until the stored checkpoints (not only the local watches) reach `position`.
async fn wait_until_stored(env: &Env, position: u64) {
    for _ in 0..400 {
        if env.read.min_position().await.unwrap() >= position {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("stored checkpoints did not reach {position}");
}

async fn interactions_fold_reviews_ratings_likes_and_views(env: Env) {
    let (a, b, gone) = (BookId::new(), BookId::new(), BookId::new());
    let members: Vec<UserId> = (0..2).map(|_| UserId::new()).collect();
    let (u1, u2, stranger) = (members[0], members[1], UserId::new());
    for (i, u) in members.iter().enumerate() {
        env.append_user(
            *u,
            vec![registered(*u, &format!("M {i}"), None, Role::Member)],
        )
        .await;
    }
    env.append_book(a, vec![added(a, "A", &["X"], &["fantasy"], None)])
        .await;
    env.append_book(b, vec![added(b, "B", &["X"], &["history"], None)])
        .await;
    env.append_book(gone, vec![added(gone, "Gone", &["X"], &[], None)])
        .await;
    let (r1, r2, r3) = (ReviewId::new(), ReviewId::new(), ReviewId::new());
    let stars = |n| Rating::parse(n).unwrap();
    // u1: a review beats a bare rating; a like taken back leaves the views.
    env.append_book(a, vec![posted(r1, u1, 5)]).await;
    env.append_user(
        u1,
        vec![
            UserEvent::BookRated {
                book_id: a,
                rating: stars(3),
            },
            UserEvent::BookLiked { book_id: b },
            UserEvent::BookViewed { book_id: b },
            UserEvent::BookViewed { book_id: b },
            UserEvent::BookViewed { book_id: b },
            UserEvent::BookUnliked { book_id: b },
            UserEvent::BookLiked { book_id: gone },
        ],
    )
    .await;
    // u2: a review posted and edited in one batch; a deleted review falls back to the bare rating.
    env.append_book(
        a,
        vec![
            posted(r2, u2, 2),
            BookEvent::ReviewEdited {
                review_id: r2,
                rating: Some(stars(4)),
                text: None,
            },
        ],
    )
    .await;
    env.append_user(
        u2,
        vec![UserEvent::BookRated {
            book_id: b,
            rating: stars(2),
        }],
    )
    .await;
    env.append_book(b, vec![posted(r3, u2, 5)]).await;
    env.append_book(
        b,
        vec![BookEvent::ReviewDeleted {
            review_id: r3,
            member_id: u2,
            deleted_by: None,
        }],
    )
    .await;
    env.append_book(gone, vec![BookEvent::BookRemoved]).await;
    let head = env
        .append_user(stranger, vec![UserEvent::BookLiked { book_id: a }])
        .await;

    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    let (rows, covers) = env.read.interaction_snapshot().await.unwrap();
    assert!(
        covers >= head,
        "the snapshot covers the log it was read after"
    );
    let row = |user: UserId, book: BookId| {
        rows.iter()
            .find(|r| r.user_id == user && r.book_id == book)
            .cloned()
    };
    let expect = |user, book, rating, liked, views| quire_projections::InteractionRow {
        user_id: user,
        book_id: book,
        rating,
        liked,
        views,
    };
    assert_eq!(row(u1, a), Some(expect(u1, a, Some(5), false, 0)));
    assert_eq!(row(u1, b), Some(expect(u1, b, None, false, 3)));
    assert_eq!(row(u2, a), Some(expect(u2, a, Some(4), false, 0)));
    assert_eq!(row(u2, b), Some(expect(u2, b, Some(2), false, 0)));
    assert_eq!(
        rows.len(),
        4,
        "removed books and unknown members are left out: {rows:?}"
    );
    assert_eq!(env.read.user_interactions(u1).await.unwrap().len(), 2);
    assert!(
        env.read
            .user_interactions(stranger)
            .await
            .unwrap()
            .is_empty()
    );

    let catalog = env.read.recs_catalog().await.unwrap();
    let titles: HashSet<&str> = catalog.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, HashSet::from(["A", "B"]));
    let book_a = catalog.iter().find(|c| c.id == a).unwrap();
    assert_eq!((book_a.ratings, book_a.rating_sum), (2, 9));
    assert_eq!(book_a.genres, vec!["fantasy".to_string()]);
    runner.shutdown().await;
}

async fn recommendation_models_are_stored_and_pruned(env: Env) {
    assert_eq!(env.read.newest_recs_model_version().await.unwrap(), None);
    let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    let books: Vec<BookId> = (0..2).map(|_| BookId::new()).collect();
    let mut versions = Vec::new();
    for i in 0..5u8 {
        let model = quire_projections::StoredModel {
            version: 0,
            covers: 40 + u64::from(i),
            trained_at: 1_700_000_000_000_000,
            algorithm: "als".into(),
            params: "{\"factors\":64}".into(),
            users: users.clone(),
            books: books.clone(),
            model: vec![i, 0, 255, 7],
            train_secs: 1.5,
        };
        versions.push(env.read.save_recs_model(&model).await.unwrap());
    }
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    assert_eq!(env.read.newest_recs_model_version().await.unwrap(), Some(5));
    let newest = env.read.recs_model(5).await.unwrap().unwrap();
    assert_eq!(
        (newest.covers, newest.users, newest.books, newest.model),
        (44, users, books, vec![4, 0, 255, 7])
    );
    assert!(env.read.recs_model(3).await.unwrap().is_some());
    assert!(
        env.read.recs_model(2).await.unwrap().is_none(),
        "old models are dropped"
    );
}
