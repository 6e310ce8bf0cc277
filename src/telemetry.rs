//! Logging, tracing and metrics, set up once for the process.
//!
//! Logs go to stderr through `tracing-subscriber`. A serving node also installs OpenTelemetry
//! (`[telemetry]`, ARCHITECTURE.md "Telemetry"): spans, filtered by `telemetry.spans` apart from
//! the log filter, become OpenTelemetry spans, and every instrument made from
//! `quire_store::telemetry::meter()` is collected. When `otlp_endpoint` is set, both are sent
//! over OTLP/HTTP to a collector; `GET /metrics` renders the same metrics for Prometheus.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetrySettings};

/// The providers a serving node installed; [`shutdown`](Self::shutdown) sends what is still
/// buffered.
#[derive(Default)]
pub(crate) struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    registry: Option<prometheus::Registry>,
}

/// What OpenTelemetry is set up for: the node serving, under `settings`, as `node_id`.
pub(crate) struct Serving<'a> {
    pub settings: &'a TelemetrySettings,
    pub node_id: String,
    /// Serve `GET /metrics` (see `Settings::serves_metrics`).
    pub prometheus: bool,
}

impl Telemetry {
    /// `GET /metrics`'s renderer, when the node serves it.
    pub(crate) fn prometheus(&self) -> Option<quire_api::metrics::Render> {
        let registry = self.registry.clone()?;
        Some(Arc::new(move || {
            use prometheus::Encoder as _;
            let mut text = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut text)
                .map_err(|e| e.to_string())?;
            String::from_utf8(text).map_err(|e| e.to_string())
        }))
    }

    /// Flushes and stops the exporters. It blocks (the exporters wait for their last send), so it
    /// runs outside the async runtime's workers.
    pub(crate) fn shutdown(self) {
        if let Some(tracer) = self.tracer
            && let Err(error) = tracer.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("telemetry: flushing spans failed: {error}");
        }
        if let Some(meter) = self.meter
            && let Err(error) = meter.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("telemetry: flushing metrics failed: {error}");
        }
    }
}

/// Installs the global subscriber: `filter` is a `tracing` filter for logs (`RUST_LOG` wins when
/// set); logs go to stderr so command output on stdout stays machine-readable. With `serving`,
/// OpenTelemetry is installed as well. Call it inside the async runtime: the OTLP exporters send
/// through it.
pub(crate) fn init(filter: &str, format: LogFormat, serving: Option<Serving<'_>>) -> Telemetry {
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed(),
    };
    let (telemetry, spans) = match serving {
        Some(serving) => match open_telemetry(&serving) {
            Ok(parts) => parts,
            Err(error) => {
                eprintln!("telemetry: not started: {error:#}");
                (Telemetry::default(), None)
            }
        },
        None => (Telemetry::default(), None),
    };
    let mut layers = vec![logs];
    layers.extend(spans);
    if let Err(error) = tracing_subscriber::registry().with(layers).try_init() {
        eprintln!("tracing was already initialised: {error}");
    }
    telemetry
}

type SpanLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn open_telemetry(serving: &Serving<'_>) -> anyhow::Result<(Telemetry, Option<SpanLayer>)> {
    let settings = serving.settings;
    if !serving.prometheus && settings.otlp_endpoint.is_none() {
        // Telemetry off: no provider, so every instrument is the no-op one.
        return Ok((Telemetry::default(), None));
    }
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            KeyValue::new("service.instance.id", serving.node_id.clone()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let interval = Duration::from_millis(settings.export_interval_ms);

    let mut meters = SdkMeterProvider::builder().with_resource(resource.clone());
    let mut registry = None;
    if serving.prometheus {
        let scraped = prometheus::Registry::new();
        meters = meters.with_reader(
            opentelemetry_prometheus::exporter()
                .with_registry(scraped.clone())
                .build()?,
        );
        registry = Some(scraped);
    }
    let mut tracer = None;
    if let Some(endpoint) = &settings.otlp_endpoint {
        let base = endpoint.trim_end_matches('/');
        let client = Exporter::new()?;
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(client.clone())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/metrics"))
            .build()?;
        meters = meters.with_reader(
            PeriodicReader::builder(metrics)
                .with_interval(interval)
                .build(),
        );
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/traces"))
            .build()?;
        let processor = BatchSpanProcessor::builder(spans)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(interval)
                    .build(),
            )
            .build();
        tracer = Some(
            SdkTracerProvider::builder()
                .with_resource(resource)
                .with_sampler(Sampler::ParentBased(Box::new(EntryPoints(
                    Sampler::TraceIdRatioBased(settings.sampling_ratio),
                ))))
                .with_span_processor(processor)
                .build(),
        );
    }
    let meter = meters.build();
    opentelemetry::global::set_meter_provider(meter.clone());
    // The W3C trace context: the format of every `traceparent` Quire reads and writes.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let layer = tracer.as_ref().map(|provider| {
        opentelemetry::global::set_tracer_provider(provider.clone());
        // The exporter's own crates are left out: their spans would describe sending spans.
        let filter = EnvFilter::new(format!(
            "{},opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,hyper=off,reqwest=off,h2=off",
            settings.spans
        ));
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("quire"))
            .with_filter(filter)
            .boxed()
    });
    Ok((
        Telemetry {
            tracer,
            meter: Some(meter),
            registry,
        },
        layer,
    ))
}

/// Which traces may start: only those whose first span is work arriving from outside, a request
/// (`otel.kind = "server"`) or an item taken from a queue or the log (`"consumer"`: a projection
/// applying events, a summary job, a training run), and of those `sampling_ratio`. Everything
/// else a node does on its own without doing any work (the scheduler's and workers' polls every
/// second, start-up) would be a stream of one-span traces that bury the ones that matter. A
/// span with a parent follows its parent's decision (`Sampler::ParentBased` around this).
#[derive(Debug, Clone)]
struct EntryPoints(Sampler);

impl opentelemetry_sdk::trace::ShouldSample for EntryPoints {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &opentelemetry::trace::SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        use opentelemetry::trace::SpanKind;
        match span_kind {
            SpanKind::Server | SpanKind::Consumer => {
                self.0
                    .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
            }
            _ => opentelemetry_sdk::trace::SamplingResult {
                decision: opentelemetry_sdk::trace::SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: Default::default(),
            },
        }
    }
}

/// The OTLP exporters' HTTP client: reqwest, the HTTP client library the rest of Quire uses, run
/// on the process's async runtime (made only when an OTLP endpoint is set). The exporters call it from their own threads; each send is spawned
/// onto the runtime and awaited from there.
#[derive(Debug, Clone)]
struct Exporter {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl Exporter {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            runtime: tokio::runtime::Handle::try_current()?,
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporter {
    async fn send_bytes(
        &self,
        request: axum::http::Request<bytes::Bytes>,
    ) -> Result<axum::http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let mut answer = axum::http::Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok::<_, reqwest::Error>(answer)
        });
        Ok(sent.await??)
    }
}
