//! The `vendor.call` handler: one call to NumRot or GestoPago on a producer's behalf. Credentials,
//! tokens, the AES key and IV never leave the worker; the producer gives the vendor, the method, a path
//! that must stay on the vendor's host, and a JSON body, and gets the vendor's status and answer.

mod settings;

use std::time::{Duration, Instant};

use pasarela_shared::contract::errors::{ErrorKind, Failure, Verdict};
use pasarela_shared::contract::events::{Ending, VendorCallCompleted};
use pasarela_shared::contract::messages::VendorCall;
use pasarela_shared::runtime::Worker;
use pasarela_shared::runtime::database::Database;
use pasarela_shared::runtime::handler::{
    Completion, HandleContext, Handler, Outcome, retry_or_failure,
};
use pasarela_shared::runtime::settings::WorkerDefaults;
use pasarela_shared::store::Record;
use pasarela_shared::store::vendor_calls::CallRow;
use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::vendors::bearer::{CallError, VendorResponse};
use pasarela_shared::vendors::gestopago::GestoPagoClient;
use pasarela_shared::vendors::http;
use pasarela_shared::vendors::numrot::NumRotClient;
pub use settings::Settings;

/// How long before a token's end the shared store replaces it.
const TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Calls token-protected vendors with tokens shared by every replica.
pub struct VendorCallHandler {
    numrot: NumRotClient,
    gestopago: GestoPagoClient,
    tokens: TokenStore,
    log_payloads: bool,
}

/// What a call came to, before it is recorded.
struct CallResult {
    status: &'static str,
    response: Option<VendorResponse>,
    error: Option<Failure>,
    latency: Option<Duration>,
}

impl VendorCallHandler {
    /// A handler over both clients, keeping tokens in `db` encrypted with `key`; with
    /// `log_payloads` (`PASARELA_LOG_PAYLOADS`, for debugging against a test vendor) each call's plain
    /// payload and answer are logged.
    pub fn new(
        numrot: NumRotClient,
        gestopago: GestoPagoClient,
        key: SecretKey,
        log_payloads: bool,
        db: &Database,
    ) -> Self {
        Self {
            numrot,
            gestopago,
            tokens: TokenStore::new(db.pool().clone(), key, TOKEN_MARGIN),
            log_payloads,
        }
    }

    /// A call that failed: retried when the verdict says so, else finished as failed.
    fn failed(
        message: &VendorCall,
        ctx: &HandleContext,
        verdict: Verdict,
        response: Option<VendorResponse>,
        latency: Option<Duration>,
    ) -> Outcome {
        match retry_or_failure(&message.vendor, verdict) {
            std::ops::ControlFlow::Break(retry) => retry,
            std::ops::ControlFlow::Continue(failure) => Self::finish(
                message,
                ctx,
                CallResult {
                    status: "failed",
                    response,
                    error: Some(failure),
                    latency,
                },
            ),
        }
    }

    fn completion(message: &VendorCall, ctx: &HandleContext, done: CallResult) -> Completion {
        let http_status = done.response.as_ref().map(|r| r.status);
        let event = VendorCallCompleted {
            call_id: message.call_id,
            ending: Ending::now(done.status, ctx.attempt, done.error.as_ref()),
            vendor: message.vendor.clone(),
            http_status,
            response: done.response.map(|r| r.body).unwrap_or_default(),
        };
        // The query string may carry a producer's parameters: only the path is kept.
        let path: String = message
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        let row = CallRow {
            call_id: message.call_id,
            message_id: ctx.message_id,
            vendor: message.vendor.chars().take(40).collect(),
            method: message.method.chars().take(10).collect(),
            path,
            status: done.status.to_string(),
            http_status: http_status.map(i32::from),
            latency_ms: done.latency.map(|l| l.as_millis() as i32),
            attempts: ctx.attempt as i32,
            error: done.error.clone(),
        };
        Completion::of(&event, done.error, vec![Record::VendorCall(row)])
    }

    fn finish(message: &VendorCall, ctx: &HandleContext, done: CallResult) -> Outcome {
        Outcome::Complete(Self::completion(message, ctx, done))
    }
}

fn rejected(message: impl Into<String>) -> CallResult {
    CallResult {
        status: "rejected",
        response: None,
        error: Some(Failure::new(ErrorKind::Rejected, message)),
        latency: None,
    }
}

impl Handler for VendorCallHandler {
    type Message = VendorCall;

    fn queue(&self) -> &'static str {
        "vendor.call"
    }

    async fn handle(&self, message: &VendorCall, ctx: &HandleContext) -> Outcome {
        let tokens = &self.tokens;
        let started = Instant::now();
        let result = match message.vendor.as_str() {
            "numrot" => {
                self.numrot
                    .call(
                        tokens,
                        &message.method,
                        &message.path,
                        message.body.as_ref(),
                    )
                    .await
            }
            "gestopago" => {
                let payload = message
                    .body
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({}));
                if !payload.is_object() {
                    return Self::finish(
                        message,
                        ctx,
                        rejected(
                            "body: gestopago takes a JSON object, which it encrypts as signed",
                        ),
                    );
                }
                self.gestopago
                    .call(tokens, &message.method, &message.path, &payload)
                    .await
            }
            other => {
                let shown: String = other.chars().take(40).collect();
                return Self::finish(
                    message,
                    ctx,
                    rejected(format!("vendor: numrot or gestopago, got {shown:?}")),
                );
            }
        };
        let latency = Some(started.elapsed());
        if self.log_payloads {
            let answer = result.as_ref().ok().map(|r| r.body.to_string());
            tracing::info!(
                payload = %message.body.clone().unwrap_or_default(),
                answer = answer.as_deref().unwrap_or(""),
                "vendor.call payload (PASARELA_LOG_PAYLOADS is set)"
            );
        }
        metrics::histogram!("pasarela_vendor_call_seconds", "vendor" => message.vendor.clone())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(response) if (200..300).contains(&response.status) => Self::finish(
                message,
                ctx,
                CallResult {
                    status: "ok",
                    response: Some(response),
                    error: None,
                    latency,
                },
            ),
            Ok(response) => {
                let said = format!("{}: HTTP {}", message.vendor, response.status);
                let verdict = http::verdict_of_status(response.status, response.retry_after, said);
                Self::failed(message, ctx, verdict, Some(response), latency)
            }
            Err(CallError::Invalid(why)) => Self::finish(message, ctx, rejected(why.to_string())),
            Err(CallError::Store(e)) => Outcome::Retry {
                failure: Failure::new(ErrorKind::Internal, format!("token store: {e}")),
                retry_after: None,
            },
            Err(CallError::Vendor(e)) => Self::failed(message, ctx, e.verdict(), None, latency),
        }
    }

    fn exhausted(&self, message: &VendorCall, ctx: &HandleContext, last: &Failure) -> Completion {
        let failure = Failure::exhausted(ctx.attempt, last);
        Self::completion(
            message,
            ctx,
            CallResult {
                status: "failed",
                response: None,
                error: Some(failure),
                latency: None,
            },
        )
    }
}

impl Worker for VendorCallHandler {
    const DEFAULTS: WorkerDefaults = pasarela_shared::runtime::settings::defaults::VENDOR_CALL;

    type Settings = Settings;

    fn build(s: Settings, db: &Database) -> Self {
        Self::new(s.numrot, s.gestopago, s.key, s.log_payloads, db)
    }
}
