//! Recommendations on goodbooks-10k, end to end on the embedded backend: the ratings go into the
//! event log as reviews (appended directly, in bulk), the projections (with `interactions`) catch
//! up, a model is trained from the read model exactly as the scheduler trains it (64 factors, 15
//! iterations, BM25 blend) and stored; then a node started by `Application::build` on that data
//! serves `GET /recommendations`, measured over real HTTP for random raters (collaborative) and
//! for members without interactions (cold start).
//!
//! Run: `QUIRE_BENCH_GOODBOOKS=DIR cargo bench -p quire-benches --bench recommendations` (DIR:
//! the goodbooks-10k directory; QUIRE_BENCH_SECONDS per timed scenario, default 5).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quire::Application;
use quire::config::{Secret, Settings};
use quire_benches::{header, rss_bytes, run_for, scenario_duration};
use quire_domain::DomainEvent;
use quire_domain::Role;
use quire_domain::book::BookEvent;
use quire_domain::ids::{BookId, ReviewId, UserId};
use quire_domain::user::UserEvent;
use quire_domain::values::{AuthorName, PersonName, Rating, ReviewText, Title};
use quire_projections::{ReadModelOptions, ReadModels, RunnerOptions, TrainOptions};
use quire_store::{AppendRequest, DynEventStore, ExpectedVersion, NewEvent, StoreOptions};

const ADMIN: &str = "admin";
const PASSWORD: &str = "bench-password-1";

fn new_event<E: DomainEvent>(event: &E) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: event.event_type().into(),
        schema_version: event.schema_version(),
        payload: event.to_payload(),
        metadata: Default::default(),
    }
}

async fn append(store: &DynEventStore, stream_id: String, events: Vec<NewEvent>) {
    store
        .append(AppendRequest {
            stream_id,
            expected: ExpectedVersion::NoStream,
            events,
            command: None,
        })
        .await
        .expect("append");
}

/// Appends `streams` with `concurrency` appends in flight.
async fn append_all(
    store: &DynEventStore,
    streams: Vec<(String, Vec<NewEvent>)>,
    concurrency: usize,
) {
    use futures::StreamExt;
    futures::stream::iter(streams)
        .for_each_concurrent(concurrency, |(id, events)| append(store, id, events))
        .await;
}

#[tokio::main]
async fn main() {
    let dir: PathBuf = std::env::var("QUIRE_BENCH_GOODBOOKS")
        .map(PathBuf::from)
        .expect("set QUIRE_BENCH_GOODBOOKS to the goodbooks-10k directory");
    // One rating per (book, user), the last row winning: the goodbooks reader the importer uses.
    let read = quire_recs::goodbooks::read_rating_rows_file(
        &dir.join("ratings.csv"),
        quire_recs::goodbooks::ScalePolicy::Stars,
        |_| true,
    )
    .unwrap_or_else(|e| panic!("{e} (set QUIRE_BENCH_GOODBOOKS)"));
    let ratings: BTreeMap<(u32, u32), u8> = read
        .rows
        .iter()
        .map(|r| ((r.book_id, r.user_id), r.rating))
        .collect();
    let book_id = |b: u32| {
        BookId::from_uuid(uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("bench:book:{b}").as_bytes(),
        ))
    };
    let user_id = |u: u32| {
        UserId::from_uuid(uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("bench:user:{u}").as_bytes(),
        ))
    };
    let users: std::collections::BTreeSet<u32> = ratings.keys().map(|(_, u)| *u).collect();
    let mut by_book: BTreeMap<u32, Vec<(u32, u8)>> = BTreeMap::new();
    for ((b, u), r) in &ratings {
        by_book.entry(*b).or_default().push((*u, *r));
    }
    println!(
        "goodbooks: {} ratings of {} users on {} books",
        ratings.len(),
        users.len(),
        by_book.len()
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let store_url = tmp.path().join("events.db").display().to_string();
    let read_url = tmp.path().join("read.db").display().to_string();
    let store = quire_store::open(&store_url, StoreOptions::default())
        .await
        .expect("store");
    let started = Instant::now();
    let user_streams: Vec<(String, Vec<NewEvent>)> = users
        .iter()
        .map(|u| {
            let id = user_id(*u);
            let event = UserEvent::UserRegistered {
                user_id: id,
                name: PersonName::parse(format!("Goodbooks reader {u}")).unwrap(),
                username: None,
                email: None,
                role: Role::Member,
                password_hash: None,
            };
            (id.stream_id(), vec![new_event(&event)])
        })
        .collect();
    append_all(&store, user_streams, 64).await;
    let book_streams: Vec<(String, Vec<NewEvent>)> = by_book
        .iter()
        .map(|(b, raters)| {
            let id = book_id(*b);
            let mut events = vec![new_event(&BookEvent::BookAdded {
                book_id: id,
                title: Title::parse(format!("Goodbooks book {b}")).unwrap(),
                authors: vec![AuthorName::parse("Someone").unwrap()],
                genres: vec![],
                year_published: None,
                isbn: None,
                description: None,
            })];
            events.extend(raters.iter().map(|(u, r)| {
                new_event(&BookEvent::ReviewPosted {
                    review_id: ReviewId::new(),
                    member_id: user_id(*u),
                    rating: Rating::parse(*r).unwrap(),
                    text: ReviewText::parse("").unwrap_or_else(|_| ReviewText::parse(".").unwrap()),
                })
            }));
            (id.stream_id(), events)
        })
        .collect();
    append_all(&store, book_streams, 16).await;
    let head = store.head().await.expect("head");
    println!(
        "appended {head} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let read = ReadModels::open(&read_url, ReadModelOptions::default())
        .await
        .expect("read models");
    let started = Instant::now();
    let projections =
        quire_projections::spawn(store.clone(), read.clone(), RunnerOptions::default());
    read.wait_for(head, Duration::from_secs(3600))
        .await
        .expect("catch up");
    println!(
        "projections (books, reviews, users, interactions) caught up in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let before = rss_bytes().unwrap_or(0);
    let report = read
        .train_recs_model(&TrainOptions::default(), |_| {})
        .await
        .expect("train")
        .expect("a model");
    let after = rss_bytes().unwrap_or(0);
    println!(
        "trained model {}: {} interactions, {} members, {} books; engine {:.2} s, in all {:.2} s \
         (snapshot, matrix, store); {:.1} MiB stored; RSS {:.0} → {:.0} MiB",
        report.version,
        report.interactions,
        report.users,
        report.books,
        report.train_secs,
        report.total_secs,
        report.model_bytes as f64 / 1048576.0,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
    );

    // Serve from a node started as `quire serve` starts one, on the data just prepared.
    projections.shutdown().await;
    drop(read);
    drop(store);
    let mut settings = Settings {
        data_dir: tmp.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        admin_user: Some(ADMIN.into()),
        admin_password: Some(Secret::new(PASSWORD)),
        ..Settings::default()
    };
    settings.api.rate_limit_per_second = 0.0;
    // 10,000 new books would keep the summary worker busy through the measurements.
    settings.summaries.auto = false;
    let started = Instant::now();
    let app = Application::build(settings).await.expect("start the node");
    let base = format!("http://{}", app.local_addr().expect("HTTP address"));
    let read = app.read_models().clone();
    let bus = app.bus();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let token: String = {
        let response = http
            .post(format!("{base}/auth/token"))
            .basic_auth(ADMIN, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().expect("token").to_string()
    };
    let raters: Arc<Vec<UserId>> = Arc::new(users.iter().map(|u| user_id(*u)).collect());
    // The node loads the newest stored model when it starts serving: time until it answers.
    loop {
        let response = http
            .get(format!(
                "{base}/recommendations?user_id={}&limit=20",
                raters[0]
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        let body: serde_json::Value = response.json().await.expect("json");
        if body["model"]["version"].is_number() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no model served: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "the node served the stored model {:.2} s after it started (RSS {:.0} MiB)",
        started.elapsed().as_secs_f64(),
        rss_bytes().unwrap_or(0) as f64 / 1048576.0
    );
    // A member with no interactions: cold start.
    let newcomer = UserId::new();
    {
        use quire_actors::{Command, CommandEnvelope};
        use quire_domain::user::UserCommand;
        let outcome = bus
            .dispatch(CommandEnvelope::new(
                quire_domain::Principal::system(),
                Command::User {
                    user_id: newcomer,
                    command: UserCommand::Register {
                        user_id: newcomer,
                        name: PersonName::parse("Newcomer").unwrap(),
                        username: None,
                        email: None,
                        role: Role::Member,
                        password_hash: None,
                    },
                },
            ))
            .await
            .expect("register");
        read.wait_for(outcome.last_position, Duration::from_secs(60))
            .await
            .unwrap();
    }

    header();
    let duration = scenario_duration();
    for (name, workers, cold) in [
        ("GET /recommendations?limit=20, raters, 1 client", 1, false),
        ("GET /recommendations?limit=20, raters, 8 clients", 8, false),
        (
            "GET /recommendations?limit=20, raters, 32 clients",
            32,
            false,
        ),
        (
            "GET /recommendations?limit=20, cold start, 8 clients",
            8,
            true,
        ),
    ] {
        let (http, base, token, raters) =
            (http.clone(), base.clone(), token.clone(), raters.clone());
        let m = run_for(name, workers, duration, move |w, i| {
            let (http, base, token, raters) =
                (http.clone(), base.clone(), token.clone(), raters.clone());
            async move {
                let user = if cold {
                    newcomer
                } else {
                    raters[((w as u64 * 7919 + i * 104_729) % raters.len() as u64) as usize]
                };
                let response = http
                    .get(format!("{base}/recommendations?user_id={user}&limit=20"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), reqwest::StatusCode::OK);
                let body: serde_json::Value = response.json().await.expect("json");
                assert_eq!(body["items"].as_array().map(Vec::len), Some(20));
                1
            }
        })
        .await;
        println!("{}", m.row());
    }
    let _ = stop.send(());
    server.await.expect("node task").expect("node");
}
