//! Logs and traces: `tracing` to stdout (JSON when `LOG_FORMAT=json`) and, when an OTLP endpoint is set,
//! OpenTelemetry spans to Tempo, with W3C trace context carried through AMQP headers and HTTP calls.

use std::collections::BTreeMap;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::contract::env::Env;
use crate::contract::headers::HeaderValue;

/// How to log and where to send traces.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `OTEL_SERVICE_NAME`, or the binary's name.
    pub service_name: String,
    /// `LOG_FORMAT=json`.
    pub json_logs: bool,
    /// `RUST_LOG`, default `info`.
    pub filter: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; none means no export.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf` (the default).
    pub otlp_protocol: String,
}

impl TelemetrySettings {
    /// Reads the standard variables, naming the service `default_service` unless told otherwise.
    pub fn from_env(env: &Env, default_service: &str) -> Self {
        Self {
            service_name: env.string("OTEL_SERVICE_NAME", default_service),
            json_logs: env
                .get("LOG_FORMAT")
                .is_some_and(|f| f.eq_ignore_ascii_case("json")),
            filter: env.string("RUST_LOG", "info"),
            otlp_endpoint: env.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_string),
            otlp_protocol: env.string("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        }
    }
}

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names no protocol pasarela speaks.
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL: {0:?} is not grpc or http/protobuf")]
    Protocol(String),
}

/// Keeps the trace exporter alive; flushes the last spans when dropped.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace exporter shutdown: {e}");
        }
    }
}

/// Installs the global subscriber and, when configured, the OTLP exporter.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));

    let provider = match &settings.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let exporter = match settings.otlp_protocol.as_str() {
                "grpc" => opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.clone())
                    .build(),
                "http/protobuf" | "http" => opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                    .build(),
                other => return Err(TelemetryError::Protocol(other.to_string())),
            }
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(settings.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new(
                    opentelemetry_semantic_conventions::attribute::SERVICE_VERSION,
                    env!("CARGO_PKG_VERSION"),
                ))
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer().with_tracer(p.tracer(settings.service_name.clone()))
    });

    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    // A second init (tests running several workers in one process) keeps the first subscriber.
    let _ = if settings.json_logs {
        registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
    Ok(TelemetryGuard { provider })
}

/// A span for a database operation on `table`, as the OpenTelemetry database conventions name it:
/// the time a message waits for its claim or its commit is then on its trace.
pub fn database_span(operation: &'static str, table: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.name = format!("{operation} {table}"),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.collection.name = table,
    )
}

/// A span for publishing `messages` with confirms, as the messaging conventions name it: `send` and
/// the routing keys (the exchange is pasarela's or the events one).
pub fn publish_span(messages: &[crate::contract::envelope::OutboundMessage]) -> tracing::Span {
    let keys: Vec<&str> = messages.iter().map(|m| m.routing_key.as_str()).collect();
    let exchange = messages.first().map(|m| m.exchange.as_str()).unwrap_or("");
    tracing::info_span!(
        "publish",
        otel.name = format!("send {}", keys.join(",")),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = exchange,
        messaging.rabbitmq.destination.routing_key = keys.join(","),
        messaging.batch.message_count = messages.len(),
    )
}

/// Records an outgoing HTTP request on the current (client) span, by the HTTP conventions.
pub fn record_http_request(method: &str, url: &url::Url) {
    use opentelemetry_semantic_conventions::attribute::{HTTP_REQUEST_METHOD, SERVER_ADDRESS};
    let span = tracing::Span::current();
    span.record(HTTP_REQUEST_METHOD, method);
    span.record(SERVER_ADDRESS, url.host_str().unwrap_or_default());
}

/// Records the answer's status on the current span; a 5xx marks the span an error.
pub fn record_http_response(status: u16) {
    use opentelemetry_semantic_conventions::attribute::HTTP_RESPONSE_STATUS_CODE;
    let span = tracing::Span::current();
    span.record(HTTP_RESPONSE_STATUS_CODE, status);
    if status >= 500 {
        record_error(&status.to_string());
    }
}

/// Marks the current span an error of `kind` (`timeout`, `transport`, a status code).
pub fn record_error(kind: &str) {
    use opentelemetry_semantic_conventions::attribute::ERROR_TYPE;
    let span = tracing::Span::current();
    span.record(ERROR_TYPE, kind);
    span.record("otel.status_code", "error");
}

struct HeaderExtractor<'a>(&'a BTreeMap<String, HeaderValue>);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(HeaderValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut BTreeMap<String, HeaderValue>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), HeaderValue::Text(value));
    }
}

/// Makes the producer's trace (`traceparent`/`tracestate` headers) the parent of `span`.
pub fn adopt_parent(span: &tracing::Span, headers: &BTreeMap<String, HeaderValue>) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
}

/// The current span's W3C `traceparent`, to store with work that outlives the message (a document, a
/// webhook job) so that what happens to it later continues the same trace. `None` without a trace.
pub fn current_traceparent() -> Option<String> {
    let mut headers = BTreeMap::new();
    inject_current(&mut headers);
    match headers.remove("traceparent") {
        Some(HeaderValue::Text(t)) => Some(t),
        _ => None,
    }
}

/// The trace id of `span`, as the 16 bytes of a UUID; `None` without a valid trace.
pub fn trace_id_of(span: &tracing::Span) -> Option<uuid::Uuid> {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = span.context();
    let context = cx.span().span_context().clone();
    context
        .is_valid()
        .then(|| uuid::Uuid::from_bytes(context.trace_id().to_bytes()))
}

/// A trace id as W3C and Tempo write it: 32 lowercase hex digits.
pub fn trace_id_hex(id: uuid::Uuid) -> String {
    id.simple().to_string()
}

/// Makes a stored `traceparent` the parent of `span`.
pub fn adopt_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(t) = traceparent {
        let headers = BTreeMap::from([("traceparent".to_string(), HeaderValue::Text(t.into()))]);
        adopt_parent(span, &headers);
    }
}

/// Links `span` to the trace a stored `traceparent` names: for a span that must start a trace of its
/// own (a vendor's callback arriving) yet belongs to that one.
pub fn link_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    use opentelemetry::trace::TraceContextExt as _;
    let Some(t) = traceparent else {
        return;
    };
    let headers = BTreeMap::from([("traceparent".to_string(), HeaderValue::Text(t.into()))]);
    let cx =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&headers)));
    let linked = cx.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// Writes the current span's trace context into outgoing AMQP headers.
pub fn inject_current(headers: &mut BTreeMap<String, HeaderValue>) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(headers))
    });
}

struct HttpInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HttpInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The current span's trace context as HTTP headers, for a vendor call.
pub fn http_trace_headers() -> reqwest::header::HeaderMap {
    let mut map = reqwest::header::HeaderMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HttpInjector(&mut map))
    });
    map
}
