//! The KurrentDB adapter's contract, run against a live server named by `KURRENTDB_URL`
//! (for example `kurrentdb://admin:changeit@localhost:2113?tls=false`).
//!
//! This is the one documented exception to "a missing service is a broken environment": no KurrentDB
//! server can run on the machines that build Quire, so without `KURRENTDB_URL` every test says so on
//! stdout and returns. The server is shared and persistent, so each test writes to streams with fresh
//! ids and only ever asserts about its own events; positions are compared, never counted, because
//! KurrentDB positions are log offsets with gaps.
#![cfg(feature = "kurrentdb")]

use quire_store::testing::{append, event, with_command};
use quire_store::{
    AppendOutcome, CommandResult, DynEventStore, ExpectedVersion, PendingCommand, StoreError,
    StoreOptions,
};
use uuid::Uuid;

/// Opens the store `KURRENTDB_URL` names, or says why the test is not run.
async fn store() -> Option<DynEventStore> {
    match std::env::var("KURRENTDB_URL") {
        Ok(url) if !url.trim().is_empty() => Some(
            quire_store::open(url.trim(), StoreOptions::default())
                .await
                .expect("KURRENTDB_URL is set, so the KurrentDB server must be reachable"),
        ),
        _ => {
            println!("KURRENTDB_URL not set: KurrentDB contract not run");
            None
        }
    }
}

fn stream(kind: &str) -> String {
    format!("{kind}-{}", Uuid::new_v4().simple())
}

fn appended(outcome: AppendOutcome) -> (u64, u64, u64) {
    match outcome {
        AppendOutcome::Appended {
            stream_version,
            first_position,
            last_position,
            ..
        } => (stream_version, first_position, last_position),
        other => panic!("expected an append, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn appends_and_reads_a_stream() -> anyhow::Result<()> {
    let Some(store) = store().await else {
        return Ok(());
    };
    assert_eq!(store.backend(), "kurrentdb");
    let id = stream("book");
    let events = vec![event("A", 1), event("B", 2), event("C", 3)];
    let (version, first, last) = appended(
        store
            .append(append(&id, ExpectedVersion::NoStream, events.clone()))
            .await?,
    );
    assert_eq!(version, 3);
    assert!(first > 0 && first < last, "positions {first}..={last}");

    let read = store.read_stream(&id, 0, 100).await?;
    assert_eq!(read.len(), 3);
    for (i, (stored, sent)) in read.iter().zip(&events).enumerate() {
        assert_eq!(stored.version, i as u64 + 1);
        assert_eq!(stored.stream_id, id);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.schema_version, sent.schema_version);
        assert_eq!(stored.payload, sent.payload);
        assert_eq!(stored.metadata, sent.metadata);
        assert!(stored.recorded_at > 0);
    }
    assert!(read.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(read[0].position, first);
    assert_eq!(read[2].position, last);

    let tail = store.read_stream(&id, 2, 100).await?;
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 3);
    assert_eq!(store.read_stream(&id, 0, 2).await?.len(), 2);
    assert!(
        store
            .read_stream(&stream("missing"), 0, 100)
            .await?
            .is_empty()
    );
    assert!(store.head().await? >= last);
    assert!(*store.head_watch().borrow() >= last);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_expected_version_is_refused_and_writes_nothing() -> anyhow::Result<()> {
    let Some(store) = store().await else {
        return Ok(());
    };
    let id = stream("s");
    store
        .append(append(&id, ExpectedVersion::NoStream, vec![event("A", 1)]))
        .await?;
    let err = store
        .append(append(&id, ExpectedVersion::NoStream, vec![event("A", 2)]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::WrongExpectedVersion { stream_id, actual: 1, .. } if *stream_id == id),
        "{err}"
    );
    let err = store
        .append(append(&id, ExpectedVersion::Exact(5), vec![event("A", 2)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: 1, .. }),
        "{err}"
    );
    let err = store
        .append(append(
            &stream("new"),
            ExpectedVersion::Exact(2),
            vec![event("A", 1)],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: 0, .. }),
        "{err}"
    );
    assert_eq!(store.read_stream(&id, 0, 10).await?.len(), 1);
    let (version, _, _) = appended(
        store
            .append(append(&id, ExpectedVersion::Exact(1), vec![event("A", 2)]))
            .await?,
    );
    assert_eq!(version, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_command_returns_its_first_outcome_and_appends_nothing() -> anyhow::Result<()> {
    let Some(store) = store().await else {
        return Ok(());
    };
    let id = stream("order");
    let command_id = Uuid::new_v4();
    let first = with_command(
        append(
            &id,
            ExpectedVersion::NoStream,
            vec![event("A", 1), event("B", 2)],
        ),
        command_id,
    );
    let (version, first_position, last_position) = appended(store.append(first.clone()).await?);
    assert_eq!(version, 2);

    // The same command again, even with a stale expected version and other events, is a duplicate.
    let retry = with_command(
        append(&id, ExpectedVersion::NoStream, vec![event("C", 3)]),
        command_id,
    );
    let record = match store.append(retry).await? {
        AppendOutcome::Duplicate(record) => record,
        other => panic!("expected a duplicate, got {other:?}"),
    };
    assert_eq!(record.command_id, command_id);
    assert_eq!(record.stream_id, id);
    assert_eq!(record.fingerprint.as_deref(), Some("fp"));
    assert_eq!(
        record.result,
        CommandResult::Accepted {
            stream_version: 2,
            first_position,
            last_position,
            event_count: 2,
        }
    );
    assert!(matches!(
        store.append(first).await?,
        AppendOutcome::Duplicate(_)
    ));
    assert_eq!(store.read_stream(&id, 0, 10).await?.len(), 2);
    assert_eq!(store.command(command_id).await?, Some(record));
    assert_eq!(store.command(Uuid::new_v4()).await?, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_is_recorded_without_events() -> anyhow::Result<()> {
    let Some(store) = store().await else {
        return Ok(());
    };
    let id = stream("book");
    let command_id = Uuid::new_v4();
    let error = serde_json::json!({ "code": "out_of_stock" });
    let mut request = append(&id, ExpectedVersion::NoStream, Vec::new());
    request.command = Some(PendingCommand {
        command_id,
        fingerprint: None,
        rejection: Some(error.clone()),
    });
    let (version, _, _) = appended(store.append(request.clone()).await?);
    assert_eq!(version, 0);
    assert!(store.read_stream(&id, 0, 10).await?.is_empty());

    let record = store
        .command(command_id)
        .await?
        .expect("rejection recorded");
    assert_eq!(record.stream_id, id);
    assert_eq!(record.result, CommandResult::Rejected { error });
    match store.append(request).await? {
        AppendOutcome::Duplicate(again) => assert_eq!(again, record),
        other => panic!("expected a duplicate, got {other:?}"),
    }

    // A rejection still checks the expected version, like the SQL backends.
    let mut stale = append(&id, ExpectedVersion::Exact(3), Vec::new());
    stale.command = Some(PendingCommand {
        command_id: Uuid::new_v4(),
        fingerprint: None,
        rejection: Some(serde_json::json!({})),
    });
    let err = store.append(stale).await.unwrap_err();
    assert!(
        matches!(err, StoreError::WrongExpectedVersion { actual: 0, .. }),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn read_all_returns_appended_events_in_position_order() -> anyhow::Result<()> {
    let Some(store) = store().await else {
        return Ok(());
    };
    let before = store.head().await?;
    let a = stream("a");
    let b = stream("b");
    let mut sent = Vec::new();
    for (stream_id, n) in [(&a, 1), (&b, 1), (&a, 2), (&b, 2)] {
        let e = event("Ordered", n);
        sent.push(e.event_id);
        let expected = ExpectedVersion::Exact(n - 1);
        store.append(append(stream_id, expected, vec![e])).await?;
    }
    // A command record lands right after this append and must not show up in the global log.
    let third = event("Ordered", 3);
    sent.push(third.event_id);
    store
        .append(with_command(
            append(&a, ExpectedVersion::Exact(2), vec![third]),
            Uuid::new_v4(),
        ))
        .await?;

    // Other writers may share the server, so only this test's streams are compared.
    let mut ours = Vec::new();
    let mut after = before;
    loop {
        let page = store.read_all(after, 2).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            assert!(e.position > after, "positions must increase");
            assert!(!e.stream_id.starts_with('$') && !e.stream_id.starts_with("quire-commands-"));
            after = e.position;
            if e.stream_id == a || e.stream_id == b {
                ours.push(e.clone());
            }
        }
    }
    let ids: Vec<Uuid> = ours.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, sent);
    assert!(ours.windows(2).all(|w| w[0].position < w[1].position));

    // Reading after an event's position excludes that event.
    let from_second = store.read_all(ours[0].position, 1000).await?;
    assert!(from_second.iter().all(|e| e.position > ours[0].position));
    assert!(from_second.iter().any(|e| e.event_id == ours[1].event_id));
    assert!(!from_second.iter().any(|e| e.event_id == ours[0].event_id));
    assert!(store.head().await? >= ours.last().map_or(0, |e| e.position));
    Ok(())
}
