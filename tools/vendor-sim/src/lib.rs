//! The vendor simulator: each vendor under its own prefix, plus the control API tests drive.
//!
//! - `GET /sim/inbox?to=...`: the codes "delivered" to a destination;
//! - `GET /sim/stats`: calls per vendor and operation;
//! - `GET /sim/requests?vendor=...&op=...`: the requests received (login and body, never a password);
//! - `POST /sim/faults` / `DELETE /sim/faults`: latency, error rate, 429 with Retry-After, outage, and a
//!   script of forced response codes, per vendor;
//! - `GET /sim/aldeamo/configs` / `POST /sim/aldeamo/configs`: Aldeamo's per-`configId` code
//!   properties, which the real vendor keeps in its web app (see [`aldeamo`]);
//! - `POST /sim/reset`: forget inbox, stats, requests and faults; every vendor's issued codes and
//!   Aldeamo's configurations are kept.
//!
//! The vendors: DANAConnect under `/danaconnect/otp/1.0` ([`danaconnect`]), Aldeamo under `/aldeamo`
//! ([`aldeamo`]).
//!
//! Adding a vendor is a new module with a `routes()` function, mounted in [`app`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub mod aldeamo;
pub mod danaconnect;

/// Credentials and rules the simulator enforces, from the same variables the workers read.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// DANAConnect login user (`DANACONNECT_USER`).
    pub danaconnect_user: String,
    /// DANAConnect company (`DANACONNECT_COMPANY`).
    pub danaconnect_company: String,
    /// DANAConnect password (`DANACONNECT_PASSWORD`).
    pub danaconnect_password: String,
    /// Active conversation ids (`VENDOR_SIM_DANACONNECT_CONVERSATIONS`); empty means every positive id.
    pub danaconnect_conversations: Vec<i64>,
    /// Aldeamo user (`ALDEAMO_USER`).
    pub aldeamo_user: String,
    /// Aldeamo password (`ALDEAMO_PASSWORD`).
    pub aldeamo_password: String,
}

impl SimConfig {
    /// Reads the configuration from environment-style pairs, with the documented demo values.
    pub fn from_vars(vars: &HashMap<String, String>) -> Self {
        let get = |k: &str, d: &str| {
            vars.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| d.to_string())
        };
        Self {
            danaconnect_user: get("DANACONNECT_USER", "demo"),
            danaconnect_company: get("DANACONNECT_COMPANY", "pasarela"),
            danaconnect_password: get("DANACONNECT_PASSWORD", "demo-password"),
            danaconnect_conversations: get("VENDOR_SIM_DANACONNECT_CONVERSATIONS", "")
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect(),
            aldeamo_user: get("ALDEAMO_USER", "demo"),
            aldeamo_password: get("ALDEAMO_PASSWORD", "demo-password"),
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::from_vars(&HashMap::new())
    }
}

/// A code as the simulated user receives it.
#[derive(Debug, Clone, Serialize)]
pub struct InboxEntry {
    /// The vendor that sent it.
    pub vendor: String,
    /// The destination.
    pub to: String,
    /// The code itself: this is the user's phone, so it is shown.
    pub code: String,
    /// The vendor's id for the request.
    pub request_id: String,
    /// When it was sent.
    pub at: String,
}

/// A request as received.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// The vendor.
    pub vendor: String,
    /// The operation.
    pub op: String,
    /// The authenticated login, if any (never the password).
    pub login: Option<String>,
    /// The body as received.
    pub body: serde_json::Value,
}

/// Faults for one vendor, set at run time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Added latency per call.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of calls answered HTTP 500, 0.0..=1.0.
    #[serde(default)]
    pub error_rate: f64,
    /// Answer 429 with this Retry-After (seconds).
    #[serde(default)]
    pub rate_limit_retry_after_s: Option<u64>,
    /// Answer every call with 503 and no body.
    #[serde(default)]
    pub outage: bool,
    /// Responses forced on the next calls, in order: DANAConnect response codes (e.g. `["05", "05"]`,
    /// `01` lets a call through); Aldeamo sending or validation statuses (e.g. `["failed"]`,
    /// `["EXPIRED"]`, `ok` lets a call through).
    #[serde(default)]
    pub script: VecDeque<String>,
}

/// `POST /sim/faults` body.
#[derive(Debug, Deserialize)]
pub struct FaultRequest {
    /// The vendor the faults apply to.
    pub vendor: String,
    /// The faults.
    #[serde(flatten)]
    pub faults: Faults,
}

/// State every vendor module shares.
#[derive(Default)]
pub struct SimState {
    /// The configuration.
    pub config: SimConfig,
    inner: Mutex<Shared>,
    /// DANAConnect's issued codes.
    pub danaconnect: danaconnect::DanaState,
    /// Aldeamo's configurations and issued codes.
    pub aldeamo: aldeamo::AldeamoState,
}

#[derive(Default)]
struct Shared {
    inbox: Vec<InboxEntry>,
    stats: HashMap<String, HashMap<String, u64>>,
    requests: VecDeque<RecordedRequest>,
    faults: HashMap<String, Faults>,
}

const MAX_RECORDED: usize = 20_000;

/// What a fault check decided for one call.
pub enum FaultVerdict {
    /// Serve the call; `Some(code)` forces that response code.
    Serve(Option<String>),
    /// Answer this response now.
    Respond(Response),
}

impl SimState {
    /// Counts a call and records its request.
    pub fn record(&self, vendor: &str, op: &str, login: Option<String>, body: serde_json::Value) {
        let mut s = self.inner.lock().expect("sim state");
        *s.stats
            .entry(vendor.into())
            .or_default()
            .entry(op.into())
            .or_default() += 1;
        if s.requests.len() >= MAX_RECORDED {
            s.requests.pop_front();
        }
        s.requests.push_back(RecordedRequest {
            vendor: vendor.into(),
            op: op.into(),
            login,
            body,
        });
    }

    /// Delivers a code to the inbox.
    pub fn deliver(&self, entry: InboxEntry) {
        self.inner.lock().expect("sim state").inbox.push(entry);
    }

    /// What every simulated endpoint does first: count and record the call, then apply the vendor's
    /// faults. `Err` is the response a fault decided; `Ok` carries a forced answer from the script.
    pub async fn intake(
        &self,
        vendor: &str,
        op: &str,
        login: Option<String>,
        body: serde_json::Value,
    ) -> Result<Option<String>, Response> {
        self.record(vendor, op, login, body);
        match self.faults(vendor).await {
            FaultVerdict::Respond(r) => Err(r),
            FaultVerdict::Serve(forced) => Ok(forced),
        }
    }

    /// Applies the vendor's faults to one call: waits out latency, then maybe answers for it.
    pub async fn faults(&self, vendor: &str) -> FaultVerdict {
        let (latency, verdict) = {
            let mut s = self.inner.lock().expect("sim state");
            let Some(f) = s.faults.get_mut(vendor) else {
                return FaultVerdict::Serve(None);
            };
            let latency = Duration::from_millis(f.latency_ms);
            let verdict = if f.outage {
                FaultVerdict::Respond(StatusCode::SERVICE_UNAVAILABLE.into_response())
            } else if let Some(after) = f.rate_limit_retry_after_s {
                FaultVerdict::Respond(
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", after.to_string())],
                        "rate limited",
                    )
                        .into_response(),
                )
            } else if f.error_rate > 0.0 && rand::rng().random_bool(f.error_rate.min(1.0)) {
                FaultVerdict::Respond(
                    (StatusCode::INTERNAL_SERVER_ERROR, "simulated failure").into_response(),
                )
            } else {
                FaultVerdict::Serve(f.script.pop_front())
            };
            (latency, verdict)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        verdict
    }
}

/// The shared state handle every route gets.
pub type Sim = Arc<SimState>;

#[derive(Deserialize)]
struct InboxQuery {
    to: Option<String>,
}

#[derive(Deserialize)]
struct RequestsQuery {
    vendor: Option<String>,
    op: Option<String>,
}

async fn inbox(State(sim): State<Sim>, Query(q): Query<InboxQuery>) -> Json<Vec<InboxEntry>> {
    let s = sim.inner.lock().expect("sim state");
    Json(
        s.inbox
            .iter()
            .filter(|e| q.to.as_ref().is_none_or(|to| &e.to == to))
            .cloned()
            .collect(),
    )
}

async fn stats(State(sim): State<Sim>) -> Json<HashMap<String, HashMap<String, u64>>> {
    Json(sim.inner.lock().expect("sim state").stats.clone())
}

async fn requests(
    State(sim): State<Sim>,
    Query(q): Query<RequestsQuery>,
) -> Json<Vec<RecordedRequest>> {
    let s = sim.inner.lock().expect("sim state");
    Json(
        s.requests
            .iter()
            .filter(|r| q.vendor.as_ref().is_none_or(|v| &r.vendor == v))
            .filter(|r| q.op.as_ref().is_none_or(|o| &r.op == o))
            .cloned()
            .collect(),
    )
}

async fn set_faults(State(sim): State<Sim>, Json(req): Json<FaultRequest>) -> StatusCode {
    sim.inner
        .lock()
        .expect("sim state")
        .faults
        .insert(req.vendor, req.faults);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(sim): State<Sim>) -> StatusCode {
    sim.inner.lock().expect("sim state").faults.clear();
    StatusCode::NO_CONTENT
}

async fn reset(State(sim): State<Sim>) -> StatusCode {
    let mut s = sim.inner.lock().expect("sim state");
    s.inbox.clear();
    s.stats.clear();
    s.requests.clear();
    s.faults.clear();
    StatusCode::NO_CONTENT
}

/// Decodes HTTP Basic credentials into (login, password).
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_string(), password.to_string()))
}

/// The whole simulator.
pub fn app(config: SimConfig) -> Router {
    let state: Sim = Arc::new(SimState {
        config,
        ..Default::default()
    });
    Router::new()
        .route("/sim/inbox", get(inbox))
        .route("/sim/stats", get(stats))
        .route("/sim/requests", get(requests))
        .route("/sim/faults", post(set_faults).delete(clear_faults))
        .route("/sim/reset", post(reset))
        .nest("/sim/aldeamo", aldeamo::control_routes())
        .nest("/danaconnect/otp/1.0", danaconnect::routes())
        .nest("/aldeamo", aldeamo::routes())
        .with_state(state)
}

/// Serves the simulator on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(config))
        .with_graceful_shutdown(shutdown)
        .await
}
