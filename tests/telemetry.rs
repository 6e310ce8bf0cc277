//! OpenTelemetry end to end: `quire serve` nodes export over OTLP/HTTP to a receiver inside the
//! test (axum on loopback, decoding the protobuf requests with `opentelemetry-proto`).
//!
//! - Two cluster nodes over real NATS and Postgres: one request, sent to the node that does not
//!   own the book, makes one trace whose spans cross both nodes with the right parents (HTTP
//!   request → NATS dispatch → the owning node's command span → actor → store append), the
//!   stored event carries the actor's span, and the projection that applies the event links to it.
//! - Metrics arrive over OTLP, and `GET /metrics` serves them as Prometheus text.
//! - With default settings nothing is exported and `GET /metrics` still answers.
//!
//! NATS comes from `QUIRE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`), Postgres as for every
//! Postgres test.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use common::cluster::Cluster;
use common::{Api, Backend, Server, Store, eventually};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};

/// A span as received, with the node that sent it.
#[derive(Debug, Clone)]
struct Received {
    node: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    /// The OTLP span kind (2 server, 3 client, 5 consumer, …).
    kind: i32,
    /// `trace_id-span_id` of each link.
    links: Vec<String>,
    attributes: HashMap<String, String>,
}

/// What the receiver has been sent.
#[derive(Default)]
struct Sink {
    spans: Vec<Received>,
    /// Metric names, per node.
    metrics: HashMap<String, BTreeSet<String>>,
}

type Shared = Arc<Mutex<Sink>>;

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn node_of(resource: &Option<opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    let attributes = resource
        .as_ref()
        .map(|r| attributes(&r.attributes))
        .unwrap_or_default();
    attributes
        .get("service.instance.id")
        .cloned()
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn traces(State(sink): State<Shared>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut sink = sink.lock().unwrap();
    for resource in request.resource_spans {
        let node = node_of(&resource.resource);
        for scope in resource.scope_spans {
            for span in scope.spans {
                sink.spans.push(Received {
                    node: node.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    kind: span.kind,
                    links: span
                        .links
                        .iter()
                        .map(|l| format!("{}-{}", hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

async fn metrics(State(sink): State<Shared>, body: Bytes) -> Vec<u8> {
    let request = ExportMetricsServiceRequest::decode(body).expect("an OTLP metrics export");
    let mut sink = sink.lock().unwrap();
    for resource in request.resource_metrics {
        let node = node_of(&resource.resource);
        let names = sink.metrics.entry(node).or_default();
        for scope in resource.scope_metrics {
            names.extend(scope.metrics.into_iter().map(|m| m.name));
        }
    }
    ExportMetricsServiceResponse::default().encode_to_vec()
}

/// Starts the OTLP/HTTP receiver; returns its base URL and what it receives.
async fn receiver() -> (String, Shared) {
    let sink = Shared::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, sink)
}

fn spans_of(sink: &Shared, trace_id: &str) -> Vec<Received> {
    sink.lock()
        .unwrap()
        .spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .cloned()
        .collect()
}

/// The chain of span names from `span` up to the trace's root within `spans`, each with its node.
fn ancestry(spans: &[Received], span: &Received) -> Vec<(String, String)> {
    let by_id: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut chain = vec![(span.node.clone(), span.name.clone())];
    let mut parent = span.parent.as_str();
    while let Some(up) = by_id.get(parent) {
        chain.push((up.node.clone(), up.name.clone()));
        parent = up.parent.as_str();
    }
    chain
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_spans_two_nodes_and_metrics_arrive() {
    let (otlp, sink) = receiver().await;
    let env = [
        ("QUIRE_TELEMETRY__OTLP_ENDPOINT", otlp.as_str()),
        ("QUIRE_TELEMETRY__EXPORT_INTERVAL_MS", "200"),
    ];
    let cluster = Cluster::started_with(&["a", "b"], &env, common::cluster::CLIENT_TIMEOUT).await;
    let a = cluster.nodes[cluster.index_of("a")].api.clone();
    let status = cluster.wait_until_formed(2).await;

    // A book whose partition node b owns, updated through node a: the command crosses NATS.
    let mut book = None;
    for i in 0..40 {
        let (id, _) = a.create_book(&format!("Telemetry {i}")).await;
        if Cluster::owner_of_book(&status, &id) == "b" {
            book = Some(id);
            break;
        }
    }
    let book = book.expect("some book is owned by node b");
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let response = a
        .admin(a.http.put(a.url(&format!("/books/{book}"))))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&json!({ "title": "Traced across nodes" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    // The answer names the request's span, in the caller's trace.
    let answered = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(&answered[3..35], trace_id, "{answered}");

    // The request's span is named by its method and route template (OpenTelemetry's HTTP
    // conventions), not `http.request` as in the logs.
    let request_span = "PUT /books/{id}";
    let wanted = [
        request_span,
        "bus.dispatch",
        "cluster.command",
        "actor.execute",
        "store.append",
    ];
    let complete = |spans: &[Received]| {
        let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        wanted.iter().all(|w| names.contains(w))
            && spans
                .iter()
                .any(|s| s.name == "store.append" && s.node == "b")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = spans_of(&sink, &trace_id);
        if complete(&spans) {
            break spans;
        }
        if std::time::Instant::now() > deadline {
            let all = sink.lock().unwrap().spans.clone();
            let names: BTreeSet<(String, String)> = all
                .iter()
                .map(|s| (s.node.clone(), s.name.clone()))
                .collect();
            panic!(
                "the request's spans did not all arrive: of its trace {:#?}; {} spans in all: {names:?}",
                spans
                    .iter()
                    .map(|s| (&s.node, &s.name, &s.span_id, &s.parent))
                    .collect::<Vec<_>>(),
                all.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Node a: the request span is the child of the caller's span, and its id is the one answered.
    let request = spans
        .iter()
        .find(|s| s.name == request_span)
        .expect("the request span");
    assert_eq!(request.node, "a");
    assert_eq!(
        request.parent, client_span,
        "the request continues the caller's span"
    );
    assert_eq!(request.span_id, &answered[36..52]);
    assert_eq!(
        request.attributes.get("route").map(String::as_str),
        Some("/books/{id}")
    );

    // Node b: the append descends from the actor, the owning node's command span, node a's NATS
    // dispatch and the request, with nothing missing between them.
    let append = spans
        .iter()
        .find(|s| s.name == "store.append" && s.node == "b")
        .unwrap();
    let chain = ancestry(&spans, append);
    let names: Vec<(&str, &str)> = chain
        .iter()
        .map(|(node, name)| (node.as_str(), name.as_str()))
        .collect();
    let position = |node: &str, name: &str| {
        names
            .iter()
            .position(|n| *n == (node, name))
            .unwrap_or_else(|| {
                panic!("{name} on {node} is not an ancestor of the append: {names:?}")
            })
    };
    let order = [
        position("b", "store.append"),
        position("b", "actor.execute"),
        position("b", "cluster.command"),
        position("a", "bus.dispatch"),
        position("a", request_span),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    assert_eq!(
        chain.last().unwrap().1,
        request_span,
        "the chain ends at the request: {names:?}"
    );
    let command = spans.iter().find(|s| s.name == "cluster.command").unwrap();
    let dispatch = spans
        .iter()
        .find(|s| s.span_id == command.parent)
        .expect("the command span's parent was exported");
    assert_eq!(
        (
            dispatch.node.as_str(),
            dispatch.name.as_str(),
            dispatch.attributes.get("bus").map(String::as_str)
        ),
        ("a", "bus.dispatch", Some("nats")),
        "node b's command span is a child of node a's NATS dispatch"
    );

    // The stored event carries the actor's span; the projection applying it links to that span.
    let actor = spans
        .iter()
        .find(|s| s.name == "actor.execute" && s.node == "b")
        .unwrap();
    let events = cluster.store.events(&[
        "events",
        "show",
        &format!("book-{book}"),
        "--limit",
        "100000",
        "--json",
    ]);
    // (The summary worker may have written since, in a trace of its own.)
    let traced: Vec<&str> = events
        .iter()
        .filter_map(|e| e["metadata"]["traceparent"].as_str())
        .filter(|t| t[3..35] == trace_id)
        .collect();
    assert_eq!(
        traced,
        [format!("00-{trace_id}-{}-01", actor.span_id)],
        "the rename, and only it, is in the request's trace: {events:?}"
    );
    let linked = format!("{trace_id}-{}", actor.span_id);
    eventually(
        "a projection span linked to the write",
        Duration::from_secs(30),
        || {
            let found = sink
                .lock()
                .unwrap()
                .spans
                .iter()
                .any(|s| s.name == "projection.apply" && s.links.contains(&linked));
            async move { found.then_some(()) }
        },
    )
    .await;

    // Only work that arrived starts a trace (a request, a projection applying events, a job):
    // the nodes' own polls every second are not traced.
    let roots: BTreeSet<(String, i32)> = sink
        .lock()
        .unwrap()
        .spans
        .iter()
        .filter(|s| s.parent.is_empty())
        .map(|s| (s.name.clone(), s.kind))
        .collect();
    assert!(
        roots.iter().all(|(_, kind)| *kind == 2 || *kind == 5),
        "roots that are not requests or consumed work: {roots:?}"
    );
    assert!(
        roots.iter().any(|(name, _)| name == "projection.apply"),
        "{roots:?}"
    );

    // Metrics arrive over OTLP from both nodes: the request's on a, the command's on b.
    let expect_a = ["http.server.request.duration", "quire.projection.lag"];
    let expect_b = [
        "quire.commands",
        "quire.store.commit.duration",
        "quire.store.commit.events",
        "quire.actors.live",
    ];
    eventually("metrics from both nodes", Duration::from_secs(30), || {
        let sink = sink.lock().unwrap();
        let has = |node: &str, names: &[&str]| {
            sink.metrics
                .get(node)
                .is_some_and(|got| names.iter().all(|n| got.contains(*n)))
        };
        let ready = has("a", &expect_a[..1]) && has("b", &expect_b);
        let projected = sink.metrics.values().any(|got| got.contains(expect_a[1]));
        async move { (ready && projected).then_some(()) }
    })
    .await;

    // The same metrics for a Prometheus scraper.
    let scraped = scrape(&a).await;
    assert!(
        scraped.contains("http_server_request_duration_seconds_bucket{")
            && scraped.contains(r#"http_route="/books/{id}""#),
        "{scraped}"
    );
    let b = cluster.nodes[cluster.index_of("b")].api.clone();
    let scraped = scrape(&b).await;
    assert!(
        scraped.contains(r#"quire_commands_total{command="book.update_book""#)
            && scraped.contains(r#"outcome="ok""#),
        "{scraped}"
    );
    cluster.remove().await;
}

async fn scrape(api: &Api) -> String {
    let response = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_telemetry_is_off_by_default_and_metrics_are_served_when_asked() {
    // Embedded and unconfigured: nothing exported, no /metrics.
    let store = Store::new(Backend::Sqlite).await;
    let config = store.run(&["config", "--json"]);
    let config: Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(config["telemetry"]["otlp_endpoint"], Value::Null);
    assert_eq!(config["telemetry"]["prometheus"], Value::Null);
    let server = Server::start(&store, &[]);
    let api = Api::new(&server.url);
    let response = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    drop(server);

    // Asked for: the node's metrics in the Prometheus text format.
    let store = Store::new(Backend::Sqlite).await;
    let server = Server::start_with_env(&store, &[], &[("QUIRE_TELEMETRY__PROMETHEUS", "true")]);
    let api = Api::new(&server.url);
    let (book, _) = api.create_book("Counted").await;
    let (status, _) = api.get(&format!("/books/{book}"), None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let scraped = scrape(&api).await;
    assert!(
        scraped.contains(r#"http_route="/books""#)
            && scraped.contains(r#"quire_commands_total{command="book.add_book""#)
            && scraped.contains("quire_store_commit_duration_seconds_bucket"),
        "{scraped}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_telemetry_settings_are_refused() {
    let store = Store::new(Backend::Sqlite).await;
    for (key, value, message) in [
        (
            "QUIRE_TELEMETRY__SAMPLING_RATIO",
            "1.5",
            "telemetry.sampling_ratio",
        ),
        (
            "QUIRE_TELEMETRY__OTLP_ENDPOINT",
            "collector:4318",
            "telemetry.otlp_endpoint",
        ),
        (
            "QUIRE_TELEMETRY__EXPORT_INTERVAL_MS",
            "5",
            "telemetry.export_interval_ms",
        ),
        ("QUIRE_TELEMETRY__SPANS", "info,[", "telemetry.spans"),
    ] {
        let output = store
            .command()
            .args(["config"])
            .env(key, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{key}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{key}={value}: {stderr}");
    }
}
