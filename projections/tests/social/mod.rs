//! The `social` projection against real stores and read models: follows, activity privacy and
//! the members' activity from the users' and books' streams, the queries the API makes (follow
//! lists, feeds, social recommendations and their counts), and that replaying and rebuilding give
//! the same answers.

use std::collections::BTreeMap;

use quire_domain::Role;
use quire_domain::book::BookEvent;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::user::UserEvent;
use quire_domain::values::{Rating, ReviewText, Username};
use quire_projections::{ActivityKind, PageRequest, ProjectionName, ReadModels, rebuild};

// `helpers` itself too: the tests `both!` generates call `super::helpers::Env`.
use crate::helpers::{self, Env, WAIT, added, page, posted, registered};

both!(
    social_follows_feeds_and_recommends,
    social_replays_and_rebuilds_to_the_same_answers,
);

/// Who and what the scenario involves.
struct World {
    a: UserId,
    b: UserId,
    c: UserId,
    d: UserId,
    e: UserId,
    f: UserId,
    x: BookId,
    y: BookId,
    z: BookId,
    w: BookId,
    q: BookId,
    u: BookId,
    v: BookId,
}

fn stars(n: u8) -> Rating {
    Rating::parse(n).unwrap()
}

fn follow(followee: UserId) -> UserEvent {
    UserEvent::UserFollowed { followee }
}

async fn member(env: &Env, name: &str) -> UserId {
    let username = Username::parse(format!("{name}-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let id = UserId::for_username(&username);
    env.append_user(id, vec![registered(id, name, Some(username), Role::Member)])
        .await;
    id
}

async fn book(env: &Env, title: &str, genre: &str) -> BookId {
    let id = BookId::new();
    env.append_book(id, vec![added(id, title, &["Someone"], &[genre], None)])
        .await;
    id
}

/// A follows B, C, D, E (who keeps their activity private) and followed F (then unfollowed);
/// C follows B. B and C like or highly rate X; D rates Y 5 and E likes Y; B rates Z 3, E
/// reviews Z 5 and F likes it; B likes W, which A rated; C's review of Q is edited from 2 to 4
/// stars; C's review of Y is deleted; B likes and unlikes U; D likes V, which is then removed.
async fn scenario(env: &Env) -> (World, u64) {
    let a = member(env, "Ann").await;
    let b = member(env, "Ben").await;
    let c = member(env, "Cat").await;
    let d = member(env, "Dan").await;
    let e = member(env, "Eve").await;
    let f = member(env, "Fay").await;
    let x = book(env, "Xenogenesis", "science fiction").await;
    let y = book(env, "Yellowface", "satire").await;
    let z = book(env, "Zami", "memoir").await;
    let w = book(env, "Wool", "science fiction").await;
    let q = book(env, "Quicksand", "fiction").await;
    let u = book(env, "Ubik", "science fiction").await;
    let v = book(env, "Vurt", "science fiction").await;

    env.append_user(e, vec![UserEvent::ActivityPrivacyChanged { private: true }])
        .await;
    for followee in [b, c, d, e, f] {
        env.append_user(a, vec![follow(followee)]).await;
    }
    env.append_user(a, vec![UserEvent::UserUnfollowed { followee: f }])
        .await;
    env.append_user(c, vec![follow(b)]).await;

    env.append_user(b, vec![UserEvent::BookLiked { book_id: x }])
        .await;
    env.append_book(x, vec![posted(ReviewId::new(), c, 5)])
        .await;
    env.append_user(
        d,
        vec![UserEvent::BookRated {
            book_id: y,
            rating: stars(5),
        }],
    )
    .await;
    env.append_user(e, vec![UserEvent::BookLiked { book_id: y }])
        .await;
    env.append_user(
        b,
        vec![UserEvent::BookRated {
            book_id: z,
            rating: stars(3),
        }],
    )
    .await;
    env.append_book(z, vec![posted(ReviewId::new(), e, 5)])
        .await;
    env.append_user(f, vec![UserEvent::BookLiked { book_id: z }])
        .await;
    env.append_user(b, vec![UserEvent::BookLiked { book_id: w }])
        .await;
    env.append_user(
        a,
        vec![UserEvent::BookRated {
            book_id: w,
            rating: stars(4),
        }],
    )
    .await;
    let q_review = ReviewId::new();
    env.append_book(q, vec![posted(q_review, c, 2)]).await;
    env.append_book(
        q,
        vec![BookEvent::ReviewEdited {
            review_id: q_review,
            rating: Some(stars(4)),
            text: Some(ReviewText::parse("Better on a second reading.").unwrap()),
        }],
    )
    .await;
    let y_review = ReviewId::new();
    env.append_book(y, vec![posted(y_review, c, 5)]).await;
    env.append_book(
        y,
        vec![BookEvent::ReviewDeleted {
            review_id: y_review,
            member_id: c,
            deleted_by: Some(c),
        }],
    )
    .await;
    env.append_user(
        b,
        vec![
            UserEvent::BookLiked { book_id: u },
            UserEvent::BookUnliked { book_id: u },
        ],
    )
    .await;
    env.append_user(d, vec![UserEvent::BookLiked { book_id: v }])
        .await;
    let head = env.append_book(v, vec![BookEvent::BookRemoved]).await;
    let world = World {
        a,
        b,
        c,
        d,
        e,
        f,
        x,
        y,
        z,
        w,
        q,
        u,
        v,
    };
    (world, head)
}

/// Every page of a listing, checking that no page is larger than asked.
async fn all_pages<T, F, Fut>(limit: u32, mut fetch: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = quire_projections::Page<T>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(PageRequest { cursor, limit }).await;
        assert!(page.items.len() <= limit as usize);
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn social_follows_feeds_and_recommends(env: Env) {
    let (world, head) = scenario(&env).await;
    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    let read = &env.read;
    let World {
        a,
        b,
        c,
        d,
        e,
        f,
        x,
        y,
        z,
        w,
        q,
        u,
        v,
    } = world;

    // Follow lists: newest first, paged without gaps; an unfollow leaves them.
    let following = all_pages(2, |p| async move { read.following(a, &p).await.unwrap() }).await;
    let ids: Vec<UserId> = following.iter().map(|r| r.user_id).collect();
    assert_eq!(ids, [e, d, c, b]);
    assert_eq!(following[3].name.as_deref(), Some("Ben"));
    assert!(
        following[3]
            .username
            .as_deref()
            .unwrap()
            .starts_with("ben-")
    );
    let followers = all_pages(1, |p| async move { read.followers(b, &p).await.unwrap() }).await;
    let ids: Vec<UserId> = followers.iter().map(|r| r.user_id).collect();
    assert_eq!(ids, [c, a]);
    assert!(read.follow(a, b).await.unwrap().is_some());
    assert!(read.follow(a, f).await.unwrap().is_none(), "unfollowed");
    assert!(read.follow(b, a).await.unwrap().is_none());
    assert!(read.followers(f, &page(10)).await.unwrap().items.is_empty());
    assert!(read.activity_private(e).await.unwrap());
    assert!(!read.activity_private(a).await.unwrap());

    // The feed: followees' public activity, newest first; private, unfollowed, taken back,
    // deleted and removed-book items are not in it.
    let feed = all_pages(3, |p| async move { read.feed(a, &p).await.unwrap() }).await;
    let items: Vec<(ActivityKind, UserId, BookId, Option<u8>)> = feed
        .iter()
        .map(|i| (i.kind, i.user_id, i.book_id, i.rating))
        .collect();
    assert_eq!(
        items,
        [
            (ActivityKind::Review, c, q, Some(4)),
            (ActivityKind::Like, b, w, None),
            (ActivityKind::Rating, b, z, Some(3)),
            (ActivityKind::Rating, d, y, Some(5)),
            (ActivityKind::Review, c, x, Some(5)),
            (ActivityKind::Like, b, x, None),
        ]
    );
    assert!(feed.windows(2).all(|p| p[0].position > p[1].position));
    let edited = &feed[0];
    assert_eq!(edited.book_title.as_deref(), Some("Quicksand"));
    assert_eq!(edited.user_name.as_deref(), Some("Cat"));
    assert_eq!(
        edited.excerpt.as_deref(),
        Some("Better on a second reading.")
    );
    assert!(edited.review_id.is_some());
    assert!(edited.at > 0);
    assert_eq!(feed[4].excerpt.as_deref(), Some("5 stars"));
    assert!(feed.iter().all(|i| i.book_id != u && i.book_id != v));
    // C's feed has B's activity only; B follows nobody.
    let c_feed = read.feed(c, &page(100)).await.unwrap().items;
    assert!(c_feed.iter().all(|i| i.user_id == b) && c_feed.len() == 3);
    assert!(read.feed(b, &page(10)).await.unwrap().items.is_empty());

    // Social recommendations: X (2 followees) then Y (1, 5 stars) then Q (1, 4 stars); Z only
    // has a 3 from a public followee, W is A's own, U was unliked, V removed.
    let recs = all_pages(2, |p| async move {
        read.social_recommendations(a, &[], &p).await.unwrap()
    })
    .await;
    let ranked: Vec<(BookId, u32, Option<f64>)> = recs
        .iter()
        .map(|r| (r.book_id, r.followees, r.average_rating))
        .collect();
    assert_eq!(
        ranked,
        [(x, 2, Some(5.0)), (y, 1, Some(5.0)), (q, 1, Some(4.0))]
    );
    assert_eq!(recs[0].title, "Xenogenesis");
    assert_eq!(recs[0].genres, ["science-fiction"]);
    assert_eq!(recs[0].followee_names, ["Ben", "Cat"]);
    assert_eq!(recs[1].followee_names, ["Dan"]);
    let counts = read.followees_who_liked(a, &[x, y, z, w, u]).await.unwrap();
    assert_eq!(
        counts.into_iter().collect::<BTreeMap<_, _>>(),
        BTreeMap::from([(x, 2), (y, 1), (w, 1)])
    );
    assert!(read.followees_who_liked(a, &[]).await.unwrap().is_empty());
    let satire = read
        .social_recommendations(a, &["satire".into(), "memoir".into()], &page(10))
        .await
        .unwrap();
    let ids: Vec<BookId> = satire.items.iter().map(|r| r.book_id).collect();
    assert_eq!(ids, [y]);
    let bad = PageRequest {
        cursor: Some("nonsense".into()),
        limit: 2,
    };
    assert!(read.social_recommendations(a, &[], &bad).await.is_err());
    let foreign = read.feed(a, &page(1)).await.unwrap().next_cursor;
    let foreign = PageRequest {
        cursor: foreign,
        limit: 2,
    };
    assert!(
        read.social_recommendations(a, &[], &foreign).await.is_err(),
        "a feed cursor is not a recommendations cursor"
    );

    // E makes their activity public again: it is back everywhere at once.
    let head = env
        .append_user(
            e,
            vec![UserEvent::ActivityPrivacyChanged { private: false }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    assert!(!read.activity_private(e).await.unwrap());
    let recs = read
        .social_recommendations(a, &[], &page(10))
        .await
        .unwrap();
    let ranked: Vec<(BookId, u32)> = recs
        .items
        .iter()
        .map(|r| (r.book_id, r.followees))
        .collect();
    // Ties on followees and average go by title: Xenogenesis before Yellowface.
    assert_eq!(ranked, [(x, 2), (y, 2), (z, 1), (q, 1)]);
    let feed = read.feed(a, &page(100)).await.unwrap().items;
    assert_eq!(feed.iter().filter(|i| i.user_id == e).count(), 2);
    let counts = read.followees_who_liked(a, &[y, z]).await.unwrap();
    assert_eq!(counts.get(&y), Some(&2));
    assert_eq!(counts.get(&z), Some(&1));

    // A takes Y: it leaves A's own recommendations.
    let head = env
        .append_user(a, vec![UserEvent::BookLiked { book_id: y }])
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let recs = read
        .social_recommendations(a, &[], &page(10))
        .await
        .unwrap();
    assert!(recs.items.iter().all(|r| r.book_id != y));

    // C, whose review of Y was deleted, reviews Y again and edits the new review: the item is
    // back in A's feed, newest, with the new review's id and the edited rating.
    let again = ReviewId::new();
    env.append_book(y, vec![posted(again, c, 3)]).await;
    let head = env
        .append_book(
            y,
            vec![BookEvent::ReviewEdited {
                review_id: again,
                rating: Some(stars(2)),
                text: None,
            }],
        )
        .await;
    env.read.wait_for(head, WAIT).await.unwrap();
    let feed = read.feed(a, &page(1)).await.unwrap().items;
    assert_eq!(
        (
            feed[0].kind,
            feed[0].user_id,
            feed[0].book_id,
            feed[0].rating
        ),
        (ActivityKind::Review, c, y, Some(2))
    );
    assert_eq!(feed[0].review_id, Some(again));
    runner.shutdown().await;
}

/// Everything the social queries answer about the scenario, as text.
async fn snapshot(read: &ReadModels, world: &World) -> String {
    let mut out = String::new();
    for user in [world.a, world.b, world.c, world.d, world.e, world.f] {
        let following = all_pages(
            2,
            |p| async move { read.following(user, &p).await.unwrap() },
        );
        out += &format!("following {user}: {:?}\n", following.await);
        let followers = all_pages(
            2,
            |p| async move { read.followers(user, &p).await.unwrap() },
        );
        out += &format!("followers {user}: {:?}\n", followers.await);
        let feed = all_pages(2, |p| async move { read.feed(user, &p).await.unwrap() });
        out += &format!("feed {user}: {:?}\n", feed.await);
        let recs = all_pages(2, |p| async move {
            read.social_recommendations(user, &[], &p).await.unwrap()
        });
        out += &format!("recs {user}: {:?}\n", recs.await);
        let books = [
            world.x, world.y, world.z, world.w, world.q, world.u, world.v,
        ];
        let counts: BTreeMap<_, _> = read
            .followees_who_liked(user, &books)
            .await
            .unwrap()
            .into_iter()
            .collect();
        out += &format!("counts {user}: {counts:?}\n");
        out += &format!(
            "private {user}: {}\n",
            read.activity_private(user).await.unwrap()
        );
    }
    out
}

async fn social_replays_and_rebuilds_to_the_same_answers(env: Env) {
    let (world, head) = scenario(&env).await;
    let runner = env.spawn();
    env.read.wait_for(head, WAIT).await.unwrap();
    runner.shutdown().await;
    let before = snapshot(&env.read, &world).await;
    assert!(before.contains("Xenogenesis"), "{before}");

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

    // A rebuild (`quire projections rebuild social`) swaps in the same rows, twice (the second
    // works on the swapped tables and their indexes).
    for _ in 0..2 {
        let report = rebuild(&env.store, &env.read, ProjectionName::Social, &|_| {})
            .await
            .unwrap();
        assert_eq!(report.name, ProjectionName::Social);
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

/// Waits until the stored social checkpoint (not only the local watch) reaches `position`.
async fn wait_until_stored(env: &Env, position: u64) {
    for _ in 0..400 {
        let statuses = env.read.statuses().await.unwrap();
        if statuses
            .iter()
            .find(|s| s.name == ProjectionName::Social)
            .is_some_and(|s| s.position >= position)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the social checkpoint did not reach {position}");
}
