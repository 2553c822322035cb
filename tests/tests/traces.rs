//! One trace per request, read back from a real OTLP/HTTP receiver the workers export to: an
//! `otp.send` published with a producer's `traceparent` is one tree under the producer's span, from the
//! consume through the vendor call to the published result, and no span holds a secret.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use pasarela_e2e::traces::{ReceivedSpan, TraceReceiver, tree};
use pasarela_e2e::{TestEnv, json_props, otp_send};
use uuid::Uuid;

fn hex(n: usize) -> String {
    Uuid::new_v4().simple().to_string()[..n].to_string()
}

/// Properties carrying a producer's span: `00-<trace>-<span>-01`.
fn with_traceparent(message_id: &str, trace_id: &str, span_id: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("traceparent"),
        AMQPValue::LongString(format!("00-{trace_id}-{span_id}-01").into()),
    );
    json_props()
        .with_message_id(message_id.into())
        .with_headers(headers)
}

async fn traced_env(workers: &[&str], receiver: &TraceReceiver) -> TestEnv {
    let mut options = TestEnv::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        // Export every 100 ms rather than every 5 s: the test waits for the spans.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("LOG_FORMAT", "json");
    for worker in workers {
        options = options.worker(worker);
    }
    options.start().await
}

/// Fails when `text` holds any credential, key, token or secret of the test's settings, or `more`.
fn assert_no_secret(text: &str, more: &[&str]) {
    for secret in [
        "demo-password",
        "demo-client-secret",
        "pasarela-gestopago-demo-key-32by",
        "pasarela-demo-iv",
        pasarela_e2e::TEST_SECRET_KEY,
        pasarela_e2e::TEST_WEBHOOK_SECRET,
        // Every token the simulator issues is a JWT, which starts so.
        "eyJ",
    ]
    .iter()
    .chain(more)
    {
        assert!(
            !text.contains(secret),
            "a span or log line holds {secret:?}"
        );
    }
}

fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &str) -> bool {
    let mut at = span;
    loop {
        if at.parent_span_id == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == at.parent_span_id) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
}

#[tokio::test]
async fn an_otp_send_is_one_trace_from_the_producer_to_its_result() {
    let receiver = TraceReceiver::start().await;
    let mut env = traced_env(&["otp-send"], &receiver).await;
    let (trace_id, producer_span) = (hex(32), hex(16));
    let request_id = Uuid::new_v4();
    let body = serde_json::to_vec(&otp_send(request_id)).unwrap();
    env.publish_raw_to(
        "otp.send",
        &body,
        with_traceparent(&request_id.to_string(), &trace_id, &producer_span),
    )
    .await;
    let events = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(events[0].body["status"], "sent", "{:?}", events[0].body);

    let spans = receiver
        .wait_for(&trace_id, Duration::from_secs(20), |spans| {
            spans.iter().any(|s| s.attributes.contains_key("vendor"))
                && spans.iter().any(|s| s.kind == 4)
        })
        .await;
    println!("otp.send trace {trace_id}:\n{}", tree(&spans));
    assert!(
        !spans.is_empty(),
        "no span of the producer's trace reached the receiver"
    );
    let consume = spans
        .iter()
        .find(|s| s.kind == 5)
        .unwrap_or_else(|| panic!("no consumer span:\n{}", tree(&spans)));
    assert_eq!(
        consume.parent_span_id, producer_span,
        "the consume continues the producer's span"
    );
    let attribute =
        |s: &ReceivedSpan, key: &str| s.attributes.get(key).cloned().unwrap_or_default();
    assert_eq!(attribute(consume, "messaging.system"), "rabbitmq");
    assert_eq!(attribute(consume, "messaging.operation.type"), "process");
    assert_eq!(
        attribute(consume, "messaging.destination.name"),
        format!("{}.pasarela", env.namespace),
        "the destination is the exchange"
    );
    assert_eq!(
        attribute(consume, "messaging.rabbitmq.destination.routing_key"),
        "otp.send"
    );
    assert!(
        !consume.service_version.is_empty(),
        "service.version is set"
    );
    let vendor = spans
        .iter()
        .find(|s| {
            s.kind == 3
                && s.attributes
                    .get("vendor")
                    .is_some_and(|v| v == "danaconnect")
        })
        .unwrap_or_else(|| panic!("no client span for the vendor call:\n{}", tree(&spans)));
    assert_eq!(attribute(vendor, "http.response.status_code"), "200");
    assert_eq!(attribute(vendor, "http.request.method"), "POST");
    assert_eq!(attribute(vendor, "server.address"), "127.0.0.1");
    assert!(!vendor.error);
    // The fraud guard counts the send inside the claim's transaction: the claim span holds it.
    for (name, table) in [
        ("claim work_items", "work_items"),
        ("commit work_items", "work_items"),
    ] {
        let db = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span:\n{}", tree(&spans)));
        assert_eq!(
            db.attributes.get("db.collection.name").map(String::as_str),
            Some(table)
        );
        assert_eq!(db.parent_span_id, consume.span_id, "{name}");
    }
    assert!(
        descends_from(&spans, vendor, &consume.span_id),
        "{}",
        tree(&spans)
    );
    let publish = spans
        .iter()
        .find(|s| s.kind == 4)
        .unwrap_or_else(|| panic!("no producer span for the result:\n{}", tree(&spans)));
    assert!(
        descends_from(&spans, publish, &producer_span),
        "{}",
        tree(&spans)
    );

    // The trace id is in `pasarela status` (and in a delivery's JSON log lines: see the 5xx test).
    let log = env.worker_log();
    let (ok, status) = env.cli(&["status", &request_id.to_string()]).await;
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!("trace:id = \"{trace_id}\"")),
        "{status}"
    );
    println!("pasarela status {request_id}:\n{status}");

    // No span, attribute, event or log line holds a secret or the code.
    // The simulator delivers to the first contact-list value, as DANAConnect's conversation would.
    let delivered_to = format!("+5730{}", &request_id.simple().to_string()[..8]);
    let code = env.sim.latest_code(&delivered_to).await;
    assert_no_secret(&format!("{:?}\n{log}", receiver.all()), &[&code]);
    env.teardown().await;
}

/// A document's whole life in the producer's trace: doc.sign, the vendor's submit, the vendor's
/// callback (a trace of its own, linked), doc.callback and the download, the doc.signed event, and the
/// client webhook attempt, whose request carries the trace on to the client.
#[tokio::test(flavor = "multi_thread")]
async fn a_document_is_one_trace_from_the_producer_to_the_client_webhook() {
    use pasarela_e2e::signing::{Endpoint, doc_sign, pdf, signing_env, wait_events};

    let receiver = TraceReceiver::start().await;
    let (endpoint, port) = Endpoint::start().await;
    let mut env = signing_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let (trace_id, producer_span) = (hex(32), hex(16));
    let id = Uuid::now_v7();
    let body = doc_sign(
        id,
        &pdf("traced"),
        Some(format!("http://127.0.0.1:{port}/ok/{id}")),
    );
    env.publish_raw_to(
        "doc.sign",
        &serde_json::to_vec(&body).unwrap(),
        with_traceparent(&id.to_string(), &trace_id, &producer_span),
    )
    .await;
    wait_events(&mut env, "doc.signed", 1, Duration::from_secs(30)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while endpoint.received("/ok/").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the client webhook never came"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let spans = receiver
        .wait_for(&trace_id, Duration::from_secs(20), |spans| {
            spans.iter().any(|s| s.name == "POST client webhook")
        })
        .await;
    println!("document trace {trace_id}:\n{}", tree(&spans));
    let named = |service: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name)
            .unwrap_or_else(|| panic!("no {service}: {name} in the trace:\n{}", tree(&spans)))
            .clone()
    };
    let sign = named("doc-sign", "doc.sign process");
    // The PDF's way into PostgreSQL and the check's read are on the trace too.
    let stored = named("doc-sign", "insert documents");
    assert_eq!(stored.parent_span_id, sign.span_id);
    named("doc-callback", "read documents");
    assert_eq!(sign.parent_span_id, producer_span);
    let submit = named("doc-sign", "signing.submit");
    assert!(descends_from(&spans, &submit, &sign.span_id));
    let check = named("doc-callback", "doc.callback process");
    let download = named("doc-callback", "signing.download");
    assert!(descends_from(&spans, &download, &check.span_id));
    let webhook = named("doc-callback", "POST client webhook");
    assert_eq!(webhook.kind, 3);
    assert_eq!(
        webhook
            .attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    // The vendor's callback arrives with no context: its span starts a trace of its own, linked here.
    let ingress: Vec<ReceivedSpan> = receiver
        .all()
        .into_iter()
        .filter(|s| s.service == "callback-ingress" && s.links.iter().any(|(t, _)| *t == trace_id))
        .collect();
    assert!(
        !ingress.is_empty(),
        "no callback-ingress span links to the trace"
    );
    println!(
        "linked: callback-ingress: {} (trace {}, links to {trace_id})",
        ingress[0].name, ingress[0].trace_id
    );
    // The client gets the trace too.
    let got = endpoint.received("/ok/");
    let traceparent = got[0]
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        traceparent.contains(&trace_id),
        "the webhook's traceparent {traceparent:?}"
    );
    println!("client webhook traceparent: {traceparent}");
    assert_no_secret(&format!("{:?}\n{}", receiver.all(), env.worker_log()), &[]);
    env.teardown().await;
}

/// A vendor's 5xx marks its client span an error (`error.type` the status), and the retry copy the
/// runtime publishes continues the same trace: both attempts are in it.
#[tokio::test]
async fn a_vendor_5xx_is_an_error_span_and_the_retry_stays_in_the_trace() {
    let receiver = TraceReceiver::start().await;
    let mut env = traced_env(&["vendor-call"], &receiver).await;
    env.sim
        .faults(serde_json::json!({ "vendor": "numrot", "script": ["200", "503"] }))
        .await;
    let (trace_id, producer_span) = (hex(32), hex(16));
    let call_id = Uuid::new_v4().to_string();
    let body = serde_json::json!({ "call_id": call_id, "vendor": "numrot", "method": "GET",
                                   "path": "/api/estado" });
    env.publish_raw_to(
        "vendor.call",
        &serde_json::to_vec(&body).unwrap(),
        with_traceparent(&call_id, &trace_id, &producer_span),
    )
    .await;
    let events = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(events[0].body["status"], "ok", "{:?}", events[0].body);
    assert_eq!(events[0].body["attempts"], 2);
    let spans = receiver
        .wait_for(&trace_id, Duration::from_secs(20), |spans| {
            spans.iter().filter(|s| s.kind == 5).count() >= 2
                && spans.iter().filter(|s| s.name == "numrot.call").count() >= 2
        })
        .await;
    println!("vendor.call trace {trace_id}:\n{}", tree(&spans));
    let consumes: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == 5).collect();
    assert_eq!(
        consumes.len(),
        2,
        "both attempts in the trace:\n{}",
        tree(&spans)
    );
    let calls: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "numrot.call").collect();
    let failed = calls
        .iter()
        .find(|s| {
            s.attributes
                .get("http.response.status_code")
                .map(String::as_str)
                == Some("503")
        })
        .unwrap_or_else(|| panic!("no 503 call span:\n{}", tree(&spans)));
    assert!(failed.error, "a 5xx is an error span");
    assert_eq!(
        failed.attributes.get("error.type").map(String::as_str),
        Some("503")
    );
    assert!(calls.iter().any(|s| !s.error), "the retry's call succeeded");
    // The failed attempt's log line carries the trace id (JSON logs hold the span's fields).
    let log = env.worker_log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("\"trace_id\":\"{trace_id}\"")))
        .unwrap_or_else(|| panic!("no JSON log line carries the trace id:\n{log}"));
    println!("a log line of the trace: {line}");
    assert_no_secret(&format!("{:?}\n{log}", receiver.all()), &[]);
    env.teardown().await;
}
