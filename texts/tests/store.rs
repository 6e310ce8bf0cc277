//! The book text store on both of its backends: a local directory and a real S3-compatible server
//! (`QUIRE_TEST_S3_URL`, default the moto server `ops/services.sh` starts).

use bytes::Bytes;
use quire_texts::testing::fresh_s3_location;
use quire_texts::{TextStore, TextStoreError};

/// A text larger than one network read, with multi-byte characters.
fn novel() -> Bytes {
    let line = "It was on a dreary night of November that I beheld the accomplishment of my toils — Victor.\n";
    Bytes::from(line.repeat(30_000))
}

async fn stores_fetches_and_deduplicates(store: &TextStore) {
    let text = novel();
    let first = store.put(text.clone()).await.unwrap();
    assert_eq!(first.sha256, TextStore::address_of(&text));
    assert_eq!(first.bytes, text.len() as u64);
    assert!(first.written);
    // The same text again is found, not written again.
    let again = store.put(text.clone()).await.unwrap();
    assert_eq!(again.sha256, first.sha256);
    assert!(!again.written, "a stored text is not uploaded twice");

    assert_eq!(store.get(&first.sha256).await.unwrap(), Some(text));
    assert!(store.contains(&first.sha256).await.unwrap());

    let absent = TextStore::address_of(b"never stored");
    assert_eq!(store.get(&absent).await.unwrap(), None);
    assert!(!store.contains(&absent).await.unwrap());
    assert!(matches!(
        store.get("../../etc/passwd").await,
        Err(TextStoreError::BadHash(_))
    ));
}

#[tokio::test]
async fn a_local_store_keeps_texts_by_their_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = TextStore::local(dir.path().join("texts")).unwrap();
    stores_fetches_and_deduplicates(&store).await;
    // Fanned out by the hash's first byte, as the module says.
    let sha = TextStore::address_of(&novel());
    assert!(
        dir.path()
            .join("texts")
            .join(&sha[..2])
            .join(format!("{sha}.txt"))
            .is_file()
    );
}

#[tokio::test]
async fn a_local_store_refuses_a_text_that_no_longer_matches_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = TextStore::local(dir.path()).unwrap();
    let stored = store
        .put(Bytes::from_static(b"Call me Ishmael."))
        .await
        .unwrap();
    let file = dir
        .path()
        .join(&stored.sha256[..2])
        .join(format!("{}.txt", stored.sha256));
    std::fs::write(&file, b"Call me Queequeg.").unwrap();
    match store.get(&stored.sha256).await {
        Err(TextStoreError::Corrupt { sha256, actual }) => {
            assert_eq!(sha256, stored.sha256);
            assert_eq!(actual, TextStore::address_of(b"Call me Queequeg."));
        }
        other => panic!("a changed text must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn an_s3_compatible_store_keeps_texts_by_their_hash() {
    let location = fresh_s3_location().await;
    let store = TextStore::s3(&location).unwrap();
    assert!(
        !store.location().contains("test:"),
        "no credentials in {}",
        store.location()
    );
    stores_fetches_and_deduplicates(&store).await;
    // Another store on the same bucket and prefix (another node) reads what this one wrote.
    let other = TextStore::s3(&location).unwrap();
    let sha = TextStore::address_of(&novel());
    assert_eq!(other.get(&sha).await.unwrap(), Some(novel()));
}

#[tokio::test]
async fn an_unreachable_s3_store_is_an_error_not_an_absent_text() {
    let mut location = fresh_s3_location().await;
    // A port nothing listens on.
    location.endpoint = Some("http://127.0.0.1:9".into());
    let store = TextStore::s3(&location).unwrap();
    let sha = TextStore::address_of(b"x");
    assert!(matches!(
        store.get(&sha).await,
        Err(TextStoreError::Backend { .. })
    ));
}
