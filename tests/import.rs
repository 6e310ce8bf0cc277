//! Black-box tests of `quire import goodbooks` against the committed goodbooks-mini fixture
//! (tests/fixtures/goodbooks-mini: goodbooks-10k by Zygmunt Zając, CC BY-SA 4.0).

mod common;

use common::{eventually, quire};

use std::path::{Path, PathBuf};
use std::process::Output;

use quire_actors::{CommandBus, CommandEnvelope, LocalBus};
use quire_domain::Principal;
use quire_domain::book::BookCommand;
use quire_domain::values::{AuthorName, Title};
use serde_json::Value;
use uuid::Uuid;

/// The importer's id namespace (src/cli/import/goodbooks.rs); ids derived from it are a stable
/// contract, because stored streams are named after them.
const NAMESPACE: Uuid = Uuid::from_u128(0x5d2a_8c3e_41f7_4b09_9e6d_0a7c_b3f1_2e84);

// What the fixture holds (see its README).
const BOOKS: u64 = 50;
const USERS: u64 = 227;
const RATING_ROWS: u64 = 2013;
const RATINGS: u64 = 2003;
const DUPLICATE_PAIRS: u64 = 10;
const CONFLICTING_PAIRS: u64 = 3;

/// How long a server may take to show an import or its revert.
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/goodbooks-mini")
}

fn run(store_args: &[&str], args: &[&str]) -> Output {
    quire()
        .args(store_args)
        .args(args)
        .output()
        .expect("run quire")
}

fn json_ok(store_args: &[&str], args: &[&str]) -> Value {
    let out = run(store_args, args);
    assert!(
        out.status.success(),
        "quire {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn import(store_args: &[&str], dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["import", "goodbooks", dir.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    json_ok(store_args, &args)
}

fn stats(store_args: &[&str]) -> Value {
    json_ok(store_args, &["events", "stats", "--json"])
}

fn count_of(stats: &Value, event_type: &str) -> u64 {
    stats["by_type"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["event_type"] == event_type)
        .map_or(0, |t| t["count"].as_u64().unwrap())
}

fn derive(name: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The rating of `user`'s review of `book` as stored, from `quire events show`.
fn stored_rating(store_args: &[&str], book: u32, user: u32) -> u64 {
    let stream = format!("book-{}", derive(&format!("goodbooks:book:{book}")));
    let member = derive(&format!("goodbooks:user:{user}")).to_string();
    let out = run(store_args, &["events", "show", &stream, "--json"]);
    assert!(out.status.success());
    let posted: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event_type"] == "ReviewPosted" && e["payload"]["member_id"] == member)
        .collect();
    assert_eq!(posted.len(), 1, "one review of book {book} by user {user}");
    posted[0]["payload"]["rating"].as_u64().unwrap()
}

fn assert_phase(summary: &Value, phase: &str, new: u64, replayed: u64, present: u64) {
    let p = &summary[phase];
    assert_eq!(p["new"], new, "{phase}: {p}");
    assert_eq!(p["replayed"], replayed, "{phase}: {p}");
    assert_eq!(p["already_present"], present, "{phase}: {p}");
    assert_eq!(p["rejected"], 0, "{phase}: {p}");
    assert_eq!(p["failed"], 0, "{phase}: {p}");
}

/// A full import, then a re-run that changes nothing.
fn imports_the_fixture_once(store_args: &[&str]) {
    let first = import(store_args, &fixture(), &[]);
    assert_phase(&first, "books", BOOKS, 0, 0);
    assert_phase(&first, "users", USERS, 0, 0);
    assert_phase(&first, "ratings", RATINGS, 0, 0);
    let rows = &first["rating_rows"];
    assert_eq!(rows["rows"], RATING_ROWS);
    assert_eq!(rows["unique"], RATINGS);
    assert_eq!(rows["duplicate_pairs"], DUPLICATE_PAIRS);
    assert_eq!(rows["conflicting_pairs"], CONFLICTING_PAIRS);
    assert_eq!(rows["duplicate_rows_dropped"], RATING_ROWS - RATINGS);
    assert_eq!(first["events_appended"], BOOKS + USERS + RATINGS);
    assert_eq!(first["isbn"]["from_isbn10"], BOOKS);

    // Every fact is one event of its entity; the batch's own stream holds its start and end.
    let after_first = stats(store_args);
    assert_eq!(after_first["events"], BOOKS + USERS + RATINGS + 2);
    assert_eq!(after_first["streams"], BOOKS + USERS + 1);
    assert_eq!(count_of(&after_first, "ImportStarted"), 1);
    assert_eq!(count_of(&after_first, "ImportCompleted"), 1);
    assert_eq!(count_of(&after_first, "BookAdded"), BOOKS);
    assert_eq!(count_of(&after_first, "UserRegistered"), USERS);
    assert_eq!(count_of(&after_first, "ReviewPosted"), RATINGS);

    // The last row of a duplicated pair wins: book 30 / user 24582 is rated 4, then 3.
    assert_eq!(stored_rating(store_args, 30, 24582), 3);
    assert_eq!(stored_rating(store_args, 38, 31198), 5);

    let batches = json_ok(store_args, &["import", "list", "--json"]);
    let batches = batches.as_array().unwrap();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0]["batch"], first["batch"]);
    assert_eq!(batches[0]["kind"], "import");
    assert_eq!(batches[0]["status"], "complete");
    assert_eq!(batches[0]["events"], BOOKS + USERS + RATINGS);
    assert_eq!(batches[0]["streams"], BOOKS + USERS);

    // Again: the same batch, finished, so nothing is appended.
    let second = import(store_args, &fixture(), &[]);
    assert_eq!(second["batch"], first["batch"]);
    assert_phase(&second, "books", 0, BOOKS, 0);
    assert_phase(&second, "users", 0, USERS, 0);
    assert_phase(&second, "ratings", 0, RATINGS, 0);
    assert_eq!(second["events_appended"], 0);
    let after_second = stats(store_args);
    assert_eq!(after_second["events"], after_first["events"]);
    assert_eq!(after_second["commands"], after_first["commands"]);
    assert_eq!(after_second["head"], after_first["head"]);
}

#[test]
fn imports_goodbooks_into_sqlite_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    imports_the_fixture_once(&["--data-dir", data]);
}

#[tokio::test]
async fn imports_goodbooks_into_postgres_and_a_rerun_changes_nothing() {
    let url = quire_store::testing::fresh_postgres_database().await;
    tokio::task::spawn_blocking(move || imports_the_fixture_once(&["--database-url", &url]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_book_added_through_the_api_counts_as_already_present() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    // Add goodbooks book 1 as the API would: same id, another command id.
    let db = dir.path().join("events.db").display().to_string();
    let store = quire_store::open(&db, quire_store::StoreOptions::default())
        .await
        .unwrap();
    let bus = LocalBus::new(store.clone(), quire_actors::ActorConfig::default());
    let book_id = derive("goodbooks:book:1").into();
    let command = quire_actors::Command::Book {
        book_id,
        command: BookCommand::AddBook {
            book_id,
            title: Title::parse("The Hunger Games").unwrap(),
            authors: vec![AuthorName::parse("Suzanne Collins").unwrap()],
            genres: vec![],
            year_published: None,
            isbn: None,
            description: None,
        },
    };
    bus.dispatch(CommandEnvelope::new(Principal::system(), command))
        .await
        .unwrap();
    bus.shutdown(std::time::Duration::from_secs(5)).await;
    drop(store);

    let summary = tokio::task::spawn_blocking(move || {
        import(
            &["--data-dir", &data],
            &fixture(),
            &["--limit-books", "5", "--no-ratings"],
        )
    })
    .await
    .unwrap();
    assert_phase(&summary, "books", 4, 0, 1);
    assert_phase(&summary, "users", 0, 0, 0);
    assert_phase(&summary, "ratings", 0, 0, 0);
}

/// An import whose streams partly exist already (here from a smaller import of the same
/// goodbooks ids; an interrupted run leaves the same) decides those again against what is stored:
/// what is there is replayed, the rest appended, and every review still exists once.
fn a_larger_import_completes_a_smaller_one(store_args: &[&str]) {
    let small = import(store_args, &fixture(), &["--limit-books", "3"]);
    let small_ratings = small["ratings"]["new"].as_u64().unwrap();
    let small_users = small["users"]["new"].as_u64().unwrap();
    let full = import(store_args, &fixture(), &[]);
    assert_ne!(
        full["batch"], small["batch"],
        "another source is another batch"
    );
    assert_phase(&full, "books", BOOKS - 3, 3, 0);
    assert_phase(&full, "ratings", RATINGS - small_ratings, small_ratings, 0);
    assert_phase(&full, "users", USERS - small_users, small_users, 0);
    let after = stats(store_args);
    assert_eq!(count_of(&after, "ReviewPosted"), RATINGS);
    assert_eq!(count_of(&after, "BookAdded"), BOOKS);
    assert_eq!(count_of(&after, "UserRegistered"), USERS);
    assert_eq!(stored_rating(store_args, 30, 24582), 3);
}

#[test]
fn a_larger_import_completes_a_smaller_one_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_larger_import_completes_a_smaller_one(&["--data-dir", dir.path().to_str().unwrap()]);
}

#[tokio::test]
async fn a_larger_import_completes_a_smaller_one_on_postgres() {
    let url = quire_store::testing::fresh_postgres_database().await;
    tokio::task::spawn_blocking(move || {
        a_larger_import_completes_a_smaller_one(&["--database-url", &url])
    })
    .await
    .unwrap();
}

async fn book_count(api: &common::Api) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = api.url("/books?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = api
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        count += page["books"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return count,
        }
    }
}

/// Import and revert while a server serves the same store: the server's read models show the
/// import, then its reversal; members who did something since the import stay active; the
/// history keeps both; neither the revert nor the import can be reverted again.
async fn an_import_is_reverted_on_a_live_server(backend: common::Backend) {
    let store = common::Store::new(backend).await;
    let server = common::Server::start(&store, &[]);
    let api = common::Api::new(&server.url);
    let args: Vec<&str> = store.args.iter().map(String::as_str).collect();
    let imported = {
        let args: Vec<String> = store.args.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            import(&args, &fixture(), &[])
        })
        .await
        .unwrap()
    };
    let batch = imported["batch"].as_str().unwrap().to_string();
    eventually("the server to show every imported book", WAIT, || async {
        (book_count(&api).await == BOOKS as usize).then_some(())
    })
    .await;

    // One imported member does something after the import: an admin sets their preferences.
    let active = derive("goodbooks:user:24582");
    let response = api
        .admin(
            api.http
                .put(api.url(&format!("/users/{active}/preferences"))),
        )
        .json(&serde_json::json!({ "favourite_genres": ["fantasy"] }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let reverted = json_ok(&args, &["import", "revert", &batch, "--json"]);
    assert_eq!(reverted["reviews"]["new"], RATINGS, "{reverted}");
    assert_eq!(reverted["books"]["new"], BOOKS, "{reverted}");
    assert_eq!(reverted["users"]["new"], USERS - 1, "{reverted}");
    assert_eq!(reverted["users_kept"], 1, "{reverted}");
    let revert = reverted["revert"].as_str().unwrap().to_string();

    eventually("the server to show no imported book", WAIT, || async {
        (book_count(&api).await == 0).then_some(())
    })
    .await;
    let book = derive("goodbooks:book:30");
    let response = api
        .http
        .get(api.url(&format!("/books/{book}")))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_client_error(),
        "a removed book: {}",
        response.status()
    );

    // The history keeps both: the imported facts and their compensations.
    let after = stats(&args);
    assert_eq!(count_of(&after, "ReviewPosted"), RATINGS);
    assert_eq!(count_of(&after, "ReviewDeleted"), RATINGS);
    assert_eq!(count_of(&after, "BookRemoved"), BOOKS);
    assert_eq!(count_of(&after, "UserDeactivated"), USERS - 1);
    let batches = json_ok(&args, &["import", "list", "--json"]);
    let status_of = |id: &str| {
        batches
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["batch"] == id)
            .map(|b| (b["status"].clone(), b["reverted_by"].clone()))
    };
    assert_eq!(
        status_of(&batch),
        Some((Value::from("reverted"), Value::from(revert.clone())))
    );
    assert_eq!(
        status_of(&revert).map(|s| s.0),
        Some(Value::from("complete"))
    );

    // Reverting again, or reverting the revert, is refused and appends nothing.
    for (id, why) in [(&batch, "reverted by"), (&revert, "cannot be reverted")] {
        let out = run(&args, &["import", "revert", id]);
        assert!(!out.status.success(), "revert {id} must be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
    assert_eq!(stats(&args)["head"], after["head"]);
    // Re-running the import brings nothing back: its facts stay reverted.
    let again = import(&args, &fixture(), &[]);
    assert_eq!(again["events_appended"], 0);
    drop(server);
}

#[tokio::test]
async fn an_import_is_reverted_on_a_live_server_on_sqlite() {
    an_import_is_reverted_on_a_live_server(common::Backend::Sqlite).await;
}

#[tokio::test]
async fn an_import_is_reverted_on_a_live_server_on_postgres() {
    an_import_is_reverted_on_a_live_server(common::Backend::Postgres).await;
}

#[test]
fn limit_books_imports_only_those_books_and_their_ratings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let summary = import(&["--data-dir", data], &fixture(), &["--limit-books", "3"]);
    assert_phase(&summary, "books", 3, 0, 0);
    let ratings = summary["ratings"]["new"].as_u64().unwrap();
    assert!(ratings > 0 && ratings < RATINGS, "{summary}");
    assert_eq!(
        summary["rating_rows"]["skipped_rows"].as_u64().unwrap()
            + summary["rating_rows"]["unique"].as_u64().unwrap()
            + summary["rating_rows"]["duplicate_rows_dropped"]
                .as_u64()
                .unwrap(),
        RATING_ROWS
    );
}

/// Copies the fixture to a temp dir, letting `edit` change one file.
fn broken_fixture(file: &str, mut edit: impl FnMut(String) -> Option<String>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["books.csv", "book_tags.csv", "tags.csv", "ratings.csv"] {
        let text = std::fs::read_to_string(fixture().join(name)).unwrap();
        let text = if name == file { edit(text) } else { Some(text) };
        if let Some(text) = text {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
    }
    dir
}

fn import_fails(dir: &Path) -> String {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        &["--data-dir", data.path().to_str().unwrap()],
        &["import", "goodbooks", dir.to_str().unwrap()],
    );
    assert!(!out.status.success(), "the import must fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_malformed_row_is_reported_with_its_file_and_line() {
    // Line 101 of ratings.csv gets a user id that is not a number.
    let dir = broken_fixture("ratings.csv", |text| {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[100] = "5,not-a-user,4".into();
        Some(lines.join("\n") + "\n")
    });
    let err = import_fails(dir.path());
    assert!(
        err.contains("ratings.csv line 101") && err.contains("user_id"),
        "{err}"
    );

    // A row with a missing field in books.csv, line 7.
    let dir = broken_fixture("books.csv", |text| {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[6] = "7,1,2,3".into();
        Some(lines.join("\n") + "\n")
    });
    let err = import_fails(dir.path());
    assert!(err.contains("books.csv line 7"), "{err}");

    // A rating outside 1..5.
    let dir = broken_fixture("ratings.csv", |text| Some(text + "1,99,9\n"));
    let err = import_fails(dir.path());
    assert!(
        err.contains(&format!("ratings.csv line {}", RATING_ROWS + 2)) && err.contains("rating"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let dir = broken_fixture("tags.csv", |_| None);
    let err = import_fails(dir.path());
    assert!(err.contains("tags.csv"), "{err}");
}

// Project Gutenberg texts (tests/fixtures/gutenberg: openings of public-domain eBooks).

fn gutenberg(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gutenberg")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn gutenberg_books_come_in_with_their_texts_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ["--data-dir", dir.path().to_str().unwrap()];
    let files = [
        gutenberg("pg84.txt"),
        gutenberg("pg74.txt"),
        gutenberg("pg2701.txt"),
    ];
    let mut args = vec!["import", "gutenberg", "--genre", "classics", "--json"];
    args.extend(files.iter().map(String::as_str));
    let first = json_ok(&store, &args);
    let books = first.as_array().unwrap();
    let row = |i: usize, key: &str| books[i][key].clone();
    assert_eq!(row(0, "title"), "Frankenstein; or, the Modern Prometheus");
    assert_eq!(
        row(0, "authors"),
        serde_json::json!(["Mary Wollstonecraft (Godwin) Shelley"])
    );
    assert_eq!(row(0, "ebook"), 84, "from the file name");
    assert_eq!(row(1, "title"), "The Adventures of Tom Sawyer");
    assert_eq!(row(1, "authors"), serde_json::json!(["Mark Twain"]));
    assert_eq!(row(2, "title"), "Moby-Dick; or, The Whale");
    assert_eq!(row(2, "ebook"), 2701, "from the START marker");
    for book in books {
        assert_eq!(book["book"], "added", "{book}");
        assert_eq!(book["text"], "attached", "{book}");
    }
    // The text stored is the book without Gutenberg's license: hash what the store holds.
    let sha = row(1, "sha256");
    let sha = sha.as_str().unwrap();
    let stored = std::fs::read_to_string(
        dir.path()
            .join("texts")
            .join(&sha[..2])
            .join(format!("{sha}.txt")),
    )
    .unwrap();
    assert!(
        stored.starts_with("THE ADVENTURES OF TOM SAWYER"),
        "{stored}"
    );
    assert!(!stored.contains("PROJECT GUTENBERG"), "{stored}");

    let again = json_ok(&store, &args);
    for book in again.as_array().unwrap() {
        assert_eq!(book["book"], "present", "{book}");
        assert_eq!(book["text"], "unchanged", "{book}");
    }
    let stats = stats(&store);
    assert_eq!(count_of(&stats, "BookAdded"), 3);
    assert_eq!(count_of(&stats, "BookTextSet"), 3);

    // A title names one book.
    let mut several = vec!["import", "gutenberg", "--title", "Two Books"];
    several.extend(files.iter().map(String::as_str));
    let out = run(&store, &several);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("one FILE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
