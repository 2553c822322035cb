//! The vendor simulator: each vendor under its own prefix, plus the control API tests drive.
//!
//! - `GET /sim/inbox?to=...`: the codes "delivered" to a destination;
//! - `GET /sim/stats`: calls per vendor and operation;
//! - `GET /sim/requests?vendor=...&op=...`: the requests received (login and body, never a password);
//! - `POST /sim/faults` / `DELETE /sim/faults`: latency, error rate, 429 with Retry-After, outage, and a
//!   script of forced response codes, per vendor;
//! - `GET /sim/aldeamo/configs` / `POST /sim/aldeamo/configs`: Aldeamo's per-`configId` code
//!   properties, which the real vendor keeps in its web app (see [`aldeamo`]);
//! - `POST /sim/reset`: forget inbox, stats, requests and faults, and the signing vendor's documents
//!   and settings; every vendor's issued codes and tokens and Aldeamo's configurations are kept.
//!
//! - `POST /sim/numrot/settings` / `POST /sim/numrot/invalidate`: NumRot's token lifetime and body
//!   shape, and revoking every issued token (see [`numrot`]);
//! - `POST /sim/gestopago/settings` / `POST /sim/gestopago/invalidate`: GestoPago's token lifetime,
//!   payload and cipher text encodings, and expiring every issued token (see [`gestopago`]);
//! - `GET`/`POST /sim/aldeamo/settings`: the shape of Aldeamo's validation answer (see
//!   [`aldeamo::answers`]);
//! - `GET`/`POST /sim/signing/settings`, `POST /sim/signing/expire-tokens`,
//!   `GET /sim/signing/documents[/{id}]`: the signing vendor's timing, outcomes, lost webhooks and
//!   token lifetime, expiring every access token, and its documents as it sees them (see [`signing`]).
//!
//! The vendors: DANAConnect under `/danaconnect/otp/1.0` ([`danaconnect`]), Aldeamo under `/aldeamo`
//! ([`aldeamo`]), NumRot under `/numrot` ([`numrot`]), GestoPago under `/gestopago` with its
//! authentication server also under `/gestopago-auth` ([`gestopago`]),
//! the document-signing API under `/signing` ([`signing`]).
//!
//! Credentials come from the variables the workers read; with none set, the demo values are:
//!
//! | vendor | variables | demo values |
//! |---|---|---|
//! | DANAConnect | `DANACONNECT_USER`, `DANACONNECT_COMPANY`, `DANACONNECT_PASSWORD` | `demo`, `pasarela`, `demo-password` |
//! | Aldeamo | `ALDEAMO_USER`, `ALDEAMO_PASSWORD` | `demo`, `demo-password` |
//! | NumRot | `NUMROT_USERNAME`, `NUMROT_PASSWORD` | `demo`, `demo-password` |
//! | GestoPago | `GESTOPAGO_TOKEN_PATH`, `GESTOPAGO_ID_DISTRIBUIDOR`, `GESTOPAGO_CODIGO_DISPOSITIVO`, `GESTOPAGO_PASSWORD`, `GESTOPAGO_AES_KEY`, `GESTOPAGO_AES_IV` | `/api/token`, `demo-distribuidor`, `demo-dispositivo`, `demo-password`, `pasarela-gestopago-demo-key-32by`, `pasarela-demo-iv` |
//! | signing | `SIGNING_CLIENT_ID`, `SIGNING_CLIENT_SECRET`, `SIGNING_USERNAME`, `SIGNING_PASSWORD` | `pasarela-demo`, `demo-client-secret`, `demo-signer`, `demo-password` |
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
pub mod gestopago;
pub mod numrot;
pub mod signing;
pub mod tokens;

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
    /// NumRot user (`NUMROT_USERNAME`).
    pub numrot_username: String,
    /// NumRot password (`NUMROT_PASSWORD`).
    pub numrot_password: String,
    /// The word NumRot takes before the token (`NUMROT_AUTH_SCHEME`), or `none`.
    pub numrot_auth_scheme: String,
    /// GestoPago's authentication path under `/gestopago` (`GESTOPAGO_TOKEN_PATH`), with a leading `/`.
    pub gestopago_token_path: String,
    /// GestoPago distributor id (`GESTOPAGO_ID_DISTRIBUIDOR`).
    pub gestopago_id_distribuidor: String,
    /// GestoPago device code (`GESTOPAGO_CODIGO_DISPOSITIVO`).
    pub gestopago_codigo_dispositivo: String,
    /// GestoPago password (`GESTOPAGO_PASSWORD`).
    pub gestopago_password: String,
    /// GestoPago's AES-256 key (`GESTOPAGO_AES_KEY`), decoded; `Err` says why it could not be.
    pub gestopago_aes_key: Result<Vec<u8>, String>,
    /// GestoPago's AES IV (`GESTOPAGO_AES_IV`), decoded; `Err` says why it could not be.
    pub gestopago_aes_iv: Result<Vec<u8>, String>,
    /// How a POST's `signed` travels (`GESTOPAGO_PAYLOAD_ENCODING`): `multipart` or `urlencoded`.
    pub gestopago_payload_encoding: String,
    /// How the cipher text is written (`GESTOPAGO_CIPHER_ENCODING`): `base64` or `hex`.
    pub gestopago_cipher_encoding: String,
    /// Signing API OAuth2 client id (`SIGNING_CLIENT_ID`).
    pub signing_client_id: String,
    /// Signing API OAuth2 client secret (`SIGNING_CLIENT_SECRET`).
    pub signing_client_secret: String,
    /// Signing API user of the password grant (`SIGNING_USERNAME`).
    pub signing_username: String,
    /// Signing API password of the password grant (`SIGNING_PASSWORD`).
    pub signing_password: String,
}

/// Decodes a key or IV setting: `base64:` (standard alphabet) and `hex:` prefixes are decoded, anything
/// else is taken as text (its UTF-8 bytes).
pub fn decode_secret_bytes(value: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    if let Some(encoded) = value.strip_prefix("base64:") {
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("not standard Base64: {e}"))
    } else if let Some(encoded) = value.strip_prefix("hex:") {
        let encoded = encoded.trim();
        if encoded.len() % 2 != 0 {
            return Err("hex with an odd number of digits".into());
        }
        (0..encoded.len())
            .step_by(2)
            .map(|i| {
                encoded
                    .get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| format!("not hex at position {i}"))
            })
            .collect()
    } else {
        Ok(value.as_bytes().to_vec())
    }
}

/// Decodes a key or IV setting and checks its length.
fn secret_bytes(name: &str, value: &str, len: usize) -> Result<Vec<u8>, String> {
    let bytes = decode_secret_bytes(value).map_err(|e| format!("{name}: {e}"))?;
    if bytes.len() == len {
        Ok(bytes)
    } else {
        Err(format!(
            "{name} must be {len} bytes, got {} (text is taken as UTF-8; prefix base64: or hex: to decode)",
            bytes.len()
        ))
    }
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
            numrot_username: get("NUMROT_USERNAME", "demo"),
            numrot_password: get("NUMROT_PASSWORD", "demo-password"),
            numrot_auth_scheme: get("NUMROT_AUTH_SCHEME", "Bearer"),
            gestopago_token_path: {
                let path = get("GESTOPAGO_TOKEN_PATH", "/api/token");
                let path = path.trim().trim_end_matches('/');
                if path.starts_with('/') {
                    path.to_string()
                } else {
                    format!("/{path}")
                }
            },
            gestopago_id_distribuidor: get("GESTOPAGO_ID_DISTRIBUIDOR", "demo-distribuidor"),
            gestopago_codigo_dispositivo: get("GESTOPAGO_CODIGO_DISPOSITIVO", "demo-dispositivo"),
            gestopago_password: get("GESTOPAGO_PASSWORD", "demo-password"),
            gestopago_aes_key: secret_bytes(
                "GESTOPAGO_AES_KEY",
                &get("GESTOPAGO_AES_KEY", "pasarela-gestopago-demo-key-32by"),
                32,
            ),
            gestopago_aes_iv: secret_bytes(
                "GESTOPAGO_AES_IV",
                &get("GESTOPAGO_AES_IV", "pasarela-demo-iv"),
                16,
            ),
            gestopago_payload_encoding: get("GESTOPAGO_PAYLOAD_ENCODING", "multipart")
                .to_ascii_lowercase(),
            gestopago_cipher_encoding: get("GESTOPAGO_CIPHER_ENCODING", "base64")
                .to_ascii_lowercase(),
            signing_client_id: get("SIGNING_CLIENT_ID", "pasarela-demo"),
            signing_client_secret: get("SIGNING_CLIENT_SECRET", "demo-client-secret"),
            signing_username: get("SIGNING_USERNAME", "demo-signer"),
            signing_password: get("SIGNING_PASSWORD", "demo-password"),
        }
    }

    /// What in the configuration cannot work (a key or IV of the wrong length, say); empty when all is
    /// well. The simulator still serves with problems, answering 400 where they matter. Credentials
    /// (DANAConnect, Aldeamo, NumRot, signing) are free text with a demo default, so none is a problem.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = [&self.gestopago_aes_key, &self.gestopago_aes_iv]
            .into_iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect();
        if !["multipart", "urlencoded"].contains(&self.gestopago_payload_encoding.as_str()) {
            problems.push("GESTOPAGO_PAYLOAD_ENCODING must be multipart or urlencoded".into());
        }
        if !["base64", "hex"].contains(&self.gestopago_cipher_encoding.as_str()) {
            problems.push("GESTOPAGO_CIPHER_ENCODING must be base64 or hex".into());
        }
        problems
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
    /// Up to this much more or less latency per call, uniformly at random.
    #[serde(default)]
    pub latency_jitter_ms: u64,
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
    /// `["EXPIRED"]`, `ok` lets a call through); NumRot, GestoPago and signing HTTP statuses (e.g.
    /// `["401"]`, `["403"]`; `ok` or `200` lets a call through).
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
    /// NumRot's settings and issued tokens.
    pub numrot: numrot::NumRotState,
    /// GestoPago's settings and issued tokens.
    pub gestopago: gestopago::GestoPagoState,
    /// The signing API's settings, tokens and documents.
    pub signing: signing::SigningState,
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
            let jitter = f.latency_jitter_ms.min(f.latency_ms);
            let latency = if jitter > 0 {
                let ms = rand::rng().random_range(f.latency_ms - jitter..=f.latency_ms + jitter);
                Duration::from_millis(ms)
            } else {
                Duration::from_millis(f.latency_ms)
            };
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
    {
        let mut s = sim.inner.lock().expect("sim state");
        s.inbox.clear();
        s.stats.clear();
        s.requests.clear();
        s.faults.clear();
    }
    sim.signing.reset();
    StatusCode::NO_CONTENT
}

/// An error answer as every simulated vendor gives it: `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
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
        gestopago: gestopago::GestoPagoState::new(&config),
        numrot: numrot::NumRotState::new(&config),
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
        .nest("/sim/numrot", numrot::control_routes())
        .nest("/sim/gestopago", gestopago::control_routes())
        .nest("/sim/signing", signing::control_routes())
        .nest("/danaconnect/otp/1.0", danaconnect::routes())
        .nest("/aldeamo", aldeamo::routes())
        .nest("/numrot", numrot::routes())
        .nest("/gestopago", gestopago::routes())
        .nest("/gestopago-auth", gestopago::auth_routes())
        .nest("/signing", signing::routes())
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

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A script entry for the vendors whose answers are HTTP statuses (NumRot, GestoPago): `None` lets the
/// call through (no entry, `ok` or `200`), `Some` is the status to answer instead. An entry that is no
/// HTTP status is answered 500, so a mistyped script shows.
pub fn scripted_status(forced: Option<String>) -> Option<StatusCode> {
    let entry = forced?;
    if entry.eq_ignore_ascii_case("ok") {
        return None;
    }
    let status = entry
        .trim()
        .parse::<u16>()
        .ok()
        .and_then(|n| StatusCode::from_u16(n).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status != StatusCode::OK).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_iv_are_text_or_prefixed_base64_or_hex() {
        assert_eq!(decode_secret_bytes("ab").unwrap(), b"ab");
        assert_eq!(decode_secret_bytes("base64:YWI=").unwrap(), b"ab");
        assert_eq!(decode_secret_bytes("hex:6162").unwrap(), b"ab");
        assert!(decode_secret_bytes("hex:616").is_err());
        assert!(decode_secret_bytes("hex:zz").is_err());
        assert!(decode_secret_bytes("base64:@@").is_err());
        let config = SimConfig::default();
        assert_eq!(
            config.gestopago_aes_key.as_deref().unwrap(),
            b"pasarela-gestopago-demo-key-32by"
        );
        assert_eq!(
            config.gestopago_aes_iv.as_deref().unwrap(),
            b"pasarela-demo-iv"
        );
        assert!(config.problems().is_empty());
        assert_eq!(config.gestopago_token_path, "/api/token");
        assert_eq!(
            [
                config.signing_client_id.as_str(),
                &config.signing_client_secret,
                &config.signing_username,
                &config.signing_password,
            ],
            [
                "pasarela-demo",
                "demo-client-secret",
                "demo-signer",
                "demo-password"
            ]
        );
        let vars = HashMap::from([
            (
                "GESTOPAGO_AES_KEY".to_string(),
                format!("hex:{}", "00".repeat(32)),
            ),
            ("GESTOPAGO_AES_IV".to_string(), "short".to_string()),
            (
                "GESTOPAGO_TOKEN_PATH".to_string(),
                "auth/token/".to_string(),
            ),
        ]);
        let config = SimConfig::from_vars(&vars);
        assert_eq!(config.gestopago_aes_key.as_deref().unwrap(), [0u8; 32]);
        let problems = config.problems();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("GESTOPAGO_AES_IV"), "{problems:?}");
        assert_eq!(config.gestopago_token_path, "/auth/token");
    }
}
