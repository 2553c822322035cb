//! Every worker kind the bench measures, each against the two-leg broker floor with its own message
//! size, measured in the same run right after it: at the peak, and at half the peak rate for the
//! latency pasarela adds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use uuid::Uuid;

use crate::floor;
use crate::measure::{Measurement, Pace};
use crate::run::{self, Flow, FlowReport};
use crate::stack::{CALLBACK_INGRESS, DOC_CALLBACK, DOC_SIGN, OTP_SEND, Stack, VENDOR_CALL};
use crate::{Options, send_pace};

/// One worker kind as measured.
#[derive(Debug, Clone)]
pub struct KindReport {
    /// What was measured, as the table names it.
    pub name: String,
    /// Bytes per work message.
    pub body_size: usize,
    /// pasarela at the peak and, for most kinds, at half of it.
    pub flow: FlowReport,
    /// The two-leg floor with the same message size at its peak.
    pub floor: Measurement,
    /// The two-leg floor at the rate pasarela was paced at.
    pub floor_paced: Option<Measurement>,
    /// Peak RSS of each worker process, KiB.
    pub rss_kib: Vec<(&'static str, u64)>,
    /// Whether the table details where its time went and its HOT updates.
    pub detailed: bool,
}

impl KindReport {
    /// Throughput as a share of the floor's.
    pub fn ratio(&self) -> f64 {
        self.flow.peak.per_second / self.floor.per_second.max(1e-9)
    }
}

/// `vendor.call` to GestoPago, done at `vendor.call.completed`.
const CALL_FLOW: Flow = Flow {
    queue: "vendor.call",
    done_event: "vendor.call.completed",
    id_field: "call_id",
};

/// `doc.sign`, done when the client's webhook was delivered (`doc.webhook.delivered`).
const SIGN_FLOW: Flow = Flow {
    queue: "doc.sign",
    done_event: "doc.webhook.delivered",
    id_field: "document_id",
};

/// Measures one kind on a started stack, tears it down, then measures the floor at its size.
async fn kind(
    name: String,
    stack: Stack,
    opts: &Options,
    flow: Flow,
    pace: Pace,
    paced: bool,
    body: impl Fn(Uuid) -> Vec<u8>,
) -> anyhow::Result<KindReport> {
    let mut stack = stack;
    let body_size = body(Uuid::nil()).len();
    let share = paced.then_some(opts.paced_share);
    let measured = run::measure_flow(&mut stack, opts, flow, &pace, share, body).await;
    let rss_kib = stack.rss_kib();
    stack.teardown().await;
    let flow_report = measured?;
    kind_floor(name, opts, pace, body_size, flow_report, rss_kib, false).await
}

/// Completes a kind's report with the floor at its message size and at its paced rate.
async fn kind_floor(
    name: String,
    opts: &Options,
    pace: Pace,
    body_size: usize,
    flow: FlowReport,
    rss_kib: Vec<(&'static str, u64)>,
    detailed: bool,
) -> anyhow::Result<KindReport> {
    let mut paces = vec![pace];
    if let Some(paced) = &flow.paced {
        paces.push(pace.at_rate(paced.per_second));
    }
    let mut floors = floor::two_legs(opts, &paces, body_size).await?.into_iter();
    let floor = floors.next().unwrap_or_default();
    Ok(KindReport {
        name,
        body_size,
        flow,
        floor,
        floor_paced: floors.next(),
        rss_kib,
        detailed,
    })
}

/// `otp.send` at zero vendor latency, or at the options' vendor latency when they set one.
pub async fn otp_send(opts: &Options) -> anyhow::Result<KindReport> {
    let stack = Stack::start(opts, &[OTP_SEND], &[]).await?;
    let pace = send_pace(opts);
    let report = run::otp_send_on(stack, opts, &pace, Some(opts.paced_share)).await?;
    let name = match opts.vendor_latency_ms {
        0 => "otp.send".to_string(),
        ms => format!("otp.send, vendor {ms}±{} ms", opts.vendor_jitter_ms),
    };
    let size = run::sample_body(Uuid::nil()).len();
    kind_floor(name, opts, pace, size, report.flow, report.rss_kib, true).await
}

/// `otp.send` with a slow vendor (`--slow-vendor-ms` ± `--slow-vendor-jitter-ms`) at
/// `--slow-concurrency`: throughput from concurrency, from one process.
pub async fn otp_send_slow_vendor(opts: &Options) -> anyhow::Result<KindReport> {
    let concurrency = opts.slow_concurrency;
    let settings = [
        ("PASARELA_CONCURRENCY", concurrency.to_string()),
        ("PASARELA_PREFETCH", (2 * concurrency).to_string()),
    ];
    let stack = Stack::start(opts, &[OTP_SEND], &settings).await?;
    let slow = Options {
        vendor_latency_ms: opts.slow_vendor_ms,
        vendor_jitter_ms: opts.slow_vendor_jitter_ms,
        ..opts.clone()
    };
    let pace = Pace {
        count: opts.count / 2,
        in_flight: opts.in_flight.max(2 * concurrency),
        ..send_pace(opts)
    };
    let report = run::otp_send_on(stack, &slow, &pace, None).await?;
    let name = format!(
        "otp.send, vendor {}±{} ms, concurrency {concurrency}",
        opts.slow_vendor_ms, opts.slow_vendor_jitter_ms
    );
    let size = run::sample_body(Uuid::nil()).len();
    kind_floor(name, opts, pace, size, report.flow, report.rss_kib, true).await
}

/// A `vendor.call` to GestoPago: a POST whose body pasarela encrypts with AES and signs in.
fn gestopago_call(id: Uuid) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "call_id": id.to_string(), "vendor": "gestopago", "method": "POST", "path": "/api/ventas",
        "body": { "idProducto": 44, "monto": 100, "referencia": id.simple().to_string() }
    }))
    .expect("json")
}

/// `vendor.call` to GestoPago.
pub async fn vendor_call(opts: &Options) -> anyhow::Result<KindReport> {
    let stack = Stack::start(opts, &[VENDOR_CALL], &[]).await?;
    let pace = Pace {
        count: opts.count / 2,
        ..send_pace(opts)
    };
    let name = "vendor.call, GestoPago".to_string();
    kind(name, stack, opts, CALL_FLOW, pace, true, gestopago_call).await
}

/// A PDF of `size` bytes: a header, filler comment lines, and a trailer.
fn pdf_of(size: usize) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let line = b"% pasarela bench filler, a line of a large document\n";
    while pdf.len() + line.len() + 6 < size {
        pdf.extend_from_slice(line);
    }
    pdf.extend_from_slice(b"%%EOF\n");
    pdf
}

/// `doc.sign` of `--document-bytes` PDFs, done when the client's endpoint received the signed
/// document's webhook.
pub async fn doc_sign(opts: &Options) -> anyhow::Result<KindReport> {
    let (endpoint, received) = client_endpoint().await?;
    let stack = Stack::start(opts, &[DOC_SIGN, DOC_CALLBACK, CALLBACK_INGRESS], &[]).await?;
    // The simulated vendor signs at once: the bench measures pasarela, not a person signing.
    if let Err(e) = stack
        .sim_post(
            "/sim/signing/settings",
            serde_json::json!({"sign_after_ms": 0}),
        )
        .await
    {
        stack.teardown().await;
        return Err(e);
    }
    let content = base64::engine::general_purpose::STANDARD.encode(pdf_of(opts.document_bytes));
    let body = move |id: Uuid| {
        serde_json::to_vec(&serde_json::json!({
            "document_id": id.to_string(), "tenant": "bench", "document_name": "contract.pdf",
            "document_content": content, "active_directory_user": "john.doe@company.com",
            "signature_type": "digital_signature",
            "callback_url": format!("http://{endpoint}/hooks/{}", id.simple()),
        }))
        .expect("json")
    };
    let pace = Pace {
        count: opts.document_count,
        in_flight: opts.document_in_flight,
        window: opts.document_in_flight,
        rate: None,
    };
    let name = format!("doc.sign, {} KiB PDF", opts.document_bytes / 1024);
    let report = kind(name, stack, opts, SIGN_FLOW, pace, true, body).await?;
    let webhooks = received.load(Ordering::Relaxed);
    let expected = 2 * opts.document_count + floor::warmup(opts, &pace).count;
    anyhow::ensure!(
        webhooks == expected,
        "the client endpoint received {webhooks} webhooks for {expected} documents"
    );
    Ok(report)
}

/// A client's webhook endpoint on loopback that answers 200 and counts what it received.
async fn client_endpoint() -> anyhow::Result<(std::net::SocketAddr, Arc<AtomicUsize>)> {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hooks/{id}",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, received))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filler_pdf_has_its_size_header_and_trailer() {
        let pdf = pdf_of(1 << 20);
        assert!(pdf.starts_with(b"%PDF-") && pdf.ends_with(b"%%EOF\n"));
        assert!(pdf.len() <= 1 << 20 && pdf.len() > (1 << 20) - 64);
    }

    #[test]
    fn a_gestopago_call_is_a_contract_message() {
        let id = Uuid::new_v4();
        let v: serde_json::Value = serde_json::from_slice(&gestopago_call(id)).unwrap();
        assert_eq!(v["call_id"], id.to_string());
        assert_eq!(
            (v["vendor"].as_str(), v["method"].as_str()),
            (Some("gestopago"), Some("POST"))
        );
    }
}
