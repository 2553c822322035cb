//! An OTLP/HTTP trace receiver on loopback: the workers export their spans to it (protobuf, decoded with
//! the `opentelemetry-proto` types) and a test reads them back as a tree.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One span as the receiver got it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the process that exported it.
    pub service: String,
    /// `service.version` of that process.
    pub service_version: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id; empty for a root.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// `SPAN_KIND_*` as a number (2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// Its attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// The span ids it links to, with their trace ids.
    pub links: Vec<(String, String)>,
    /// Whether its status is an error.
    pub error: bool,
    /// The texts of its events.
    pub events: Vec<String>,
}

/// A running receiver.
#[derive(Clone)]
pub struct TraceReceiver {
    /// The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

async fn receive(State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>, body: Bytes) -> &'static str {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return "";
    };
    let mut got = spans.lock().unwrap();
    for resource in request.resource_spans {
        let resource_attribute = |key: &str| {
            resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == key))
                .map(|kv| text(&kv.value))
                .unwrap_or_default()
        };
        let (service, service_version) = (
            resource_attribute("service.name"),
            resource_attribute("service.version"),
        );
        for scope in resource.scope_spans {
            for span in scope.spans {
                got.push(ReceivedSpan {
                    service: service.clone(),
                    service_version: service_version.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    error: span.status.as_ref().is_some_and(|s| s.code == 2),
                    events: span
                        .events
                        .iter()
                        .map(|e| format!("{} {:?}", e.name, attributes(&e.attributes)))
                        .collect(),
                });
            }
        }
    }
    ""
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TraceReceiver {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { endpoint, spans }
    }

    /// Every span of `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Every span received so far.
    pub fn all(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans of `trace_id`, or `within` passes; returns them.
    pub async fn wait_for(
        &self,
        trace_id: &str,
        within: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + within;
        loop {
            let spans = self.trace(trace_id);
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The spans as an indented tree, children under their parent, each line `service: name [kind]`.
pub fn tree(spans: &[ReceivedSpan]) -> String {
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    fn walk(spans: &[ReceivedSpan], parent: &str, depth: usize, out: &mut String) {
        for s in spans.iter().filter(|s| s.parent_span_id == parent) {
            let kind = ["", "internal", "server", "client", "producer", "consumer"]
                .get(s.kind as usize)
                .copied()
                .unwrap_or("?");
            out.push_str(&format!(
                "{}{}: {} [{kind}]\n",
                "  ".repeat(depth),
                s.service,
                s.name
            ));
            walk(spans, &s.span_id, depth + 1, out);
        }
    }
    // Roots: spans whose parent is not among these (the producer's own span, outside the receiver).
    let mut roots: Vec<&str> = spans
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_str()))
        .map(|s| s.parent_span_id.as_str())
        .collect();
    roots.sort();
    roots.dedup();
    for root in roots {
        out.push_str(&format!(
            "(parent {})\n",
            if root.is_empty() { "none" } else { root }
        ));
        walk(spans, root, 1, &mut out);
    }
    out
}
