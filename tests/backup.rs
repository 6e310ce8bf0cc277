//! Black-box tests of `quire backup` and `quire restore` on the embedded store: a backup taken
//! while a server keeps writing is one consistent snapshot, and a server started on the restored
//! log serves everything the snapshot holds.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Api, Backend, Server, Store, eventually};
use serde_json::Value;

fn json(output: std::process::Output, what: &str) -> Value {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn head(store: &Store) -> u64 {
    json(store.run(&["events", "stats", "--json"]), "events stats")["head"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_into_a_working_server() {
    let source = Store::new(Backend::Sqlite).await;
    let server = Server::start(&source, &[]);
    let api = Api::new(&server.url);
    let mut before = Vec::new();
    for n in 0..10 {
        before.push(api.create_book(&format!("Before the backup {n}")).await.0);
    }

    // Writers keep adding books while the backup runs.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (api, writing) = (api.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(Ordering::Relaxed) {
                api.create_book(&format!("During the backup {n}")).await;
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let file = source.dir.path().join("backup.db");
    let file_arg = file.display().to_string();
    let backed = {
        let command = source.command();
        let file_arg = file_arg.clone();
        tokio::task::spawn_blocking(move || {
            let mut command = command;
            json(
                command
                    .args(["backup", "--to", &file_arg, "--json"])
                    .output()
                    .unwrap(),
                "backup",
            )
        })
        .await
        .unwrap()
    };
    writing.store(false, Ordering::Relaxed);
    let written_during = writer.await.unwrap();
    assert!(written_during > 0, "the server kept writing");
    let snapshot = backed["head"].as_u64().unwrap();
    assert!(snapshot > 0);
    assert!(
        head(&source) >= snapshot,
        "the live store went on past the snapshot"
    );

    // A backup never overwrites.
    let again = source.run(&["backup", "--to", &file_arg]);
    assert!(!again.status.success(), "a second backup to the same file");
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));

    // Restored into a new data directory: the log is the snapshot, to the event.
    let target = Store::new(Backend::Sqlite).await;
    let restored = json(
        target.run(&["restore", "--from", &file_arg, "--json"]),
        "restore",
    );
    assert_eq!(restored["head"].as_u64(), Some(snapshot));
    assert_eq!(head(&target), snapshot);

    // A server started on it rebuilds its read models from that log and serves every book
    // written before the backup.
    let restored_server = Server::start(&target, &[]);
    let restored_api = Api::new(&restored_server.url);
    for id in &before {
        let url = restored_api.url(&format!("/books/{id}"));
        let http = restored_api.http.clone();
        eventually(
            &format!("book {id} on the restored server"),
            Duration::from_secs(30),
            || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let response = http.get(url).send().await.ok()?;
                    response.status().is_success().then_some(())
                }
            },
        )
        .await;
    }
    drop(restored_server);

    // Restoring over a store is refused without --force; with it, the old one is set aside.
    let refused = target.run(&["restore", "--from", &file_arg]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let forced = json(
        target.run(&["restore", "--from", &file_arg, "--force", "--json"]),
        "restore --force",
    );
    let aside = forced["set_aside"].as_array().unwrap();
    assert!(
        aside
            .iter()
            .any(|p| p.as_str().unwrap().contains("events.db.replaced-")),
        "{forced}"
    );
    assert_eq!(head(&target), snapshot);
    drop(server);
}

#[tokio::test]
async fn restore_refuses_a_file_that_is_not_an_event_store_and_postgres_points_to_its_tools() {
    let target = Store::new(Backend::Sqlite).await;
    let junk = target.dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just text").unwrap();
    let out = target.run(&["restore", "--from", &junk.display().to_string()]);
    assert!(!out.status.success());
    assert!(
        !target.dir.path().join("events.db").exists(),
        "a refused restore changes nothing"
    );

    let postgres = Store::new(Backend::Postgres).await;
    let out = postgres.run(&["backup", "--to", "/tmp/never-written.db"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}
