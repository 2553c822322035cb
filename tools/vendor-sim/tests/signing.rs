//! The signing simulator over HTTP: OAuth2 password and refresh grants and their errors, revocation,
//! Bearer checks, submission rules, the received → final lifecycle, the signed download, the webhook
//! (delivered to a receiver started here, lost on demand), token expiry mid-run, faults and reset.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use vendor_sim::SimConfig;

mod common;

use common::{Sim, error_of, start, start_with};

const TOKEN: &str = "/signing/api/v1/auth/token";
const REVOKE: &str = "/signing/api/v1/auth/revoke";
const DOCUMENTS: &str = "/signing/api/v1/documents";
const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
const USER: &str = "john.doe@company.com";

fn password_grant() -> Value {
    json!({ "grant_type": "password", "client_id": "pasarela-demo",
            "client_secret": "demo-client-secret", "username": "demo-signer",
            "password": "demo-password" })
}

fn refresh_grant(refresh_token: &str) -> Value {
    json!({ "grant_type": "refresh_token", "client_id": "pasarela-demo",
            "client_secret": "demo-client-secret", "refresh_token": refresh_token })
}

/// A valid submission of `PDF` for `USER`.
fn document() -> Value {
    json!({ "document_name": "contract.pdf", "document_content": STANDARD.encode(PDF),
            "active_directory_user": USER, "signature_type": "digital_signature" })
}

impl Sim {
    async fn token_call(&self, body: Value) -> (u16, Value) {
        self.request(Method::POST, TOKEN, None, Some(body)).await
    }

    /// A password grant with the demo credentials: (access token, refresh token).
    async fn login(&self) -> (String, String) {
        let (status, body) = self.token_call(password_grant()).await;
        assert_eq!(status, 200, "{body}");
        let field = |name: &str| body[name].as_str().unwrap().to_string();
        (field("access_token"), field("refresh_token"))
    }

    async fn submit(&self, token: &str, body: Value) -> (u16, Value) {
        self.request(Method::POST, DOCUMENTS, Some(token), Some(body))
            .await
    }

    /// Submits `body` and returns the new document's id.
    async fn submit_ok(&self, token: &str, body: Value) -> String {
        let (status, answer) = self.submit(token, body).await;
        assert_eq!(status, 202, "{answer}");
        answer["document_id"].as_str().unwrap().to_string()
    }

    async fn doc_status(&self, token: &str, id: &str) -> (u16, Value) {
        let path = format!("{DOCUMENTS}/{id}/status");
        self.request(Method::GET, &path, Some(token), None).await
    }

    async fn download(&self, token: &str, id: &str) -> (u16, Value) {
        let path = format!("{DOCUMENTS}/{id}/download");
        self.request(Method::GET, &path, Some(token), None).await
    }

    /// Polls the status until it is `want`, for at most five seconds.
    async fn wait_status(&self, token: &str, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (code, body) = self.doc_status(token, id).await;
            assert_eq!(code, 200, "{body}");
            if body["status"] == want {
                return body;
            }
            assert!(Instant::now() < deadline, "still {body} instead of {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The recorded requests of signing operation `op`, once there are `n` of them (five seconds at most).
    async fn wait_recorded(&self, op: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let recorded = self
                .control(&format!("requests?vendor=signing&op={op}"))
                .await;
            let recorded = recorded.as_array().unwrap().clone();
            if recorded.len() >= n {
                return recorded;
            }
            assert!(Instant::now() < deadline, "{op}: {recorded:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn settings(&self, body: Value) -> Value {
        let (status, settings) = self.control_post("signing/settings", body).await;
        assert_eq!(status, 200, "{settings}");
        settings
    }
}

type HookState = (mpsc::UnboundedSender<Value>, StatusCode);

async fn hook(
    State((tx, status)): State<HookState>,
    axum::Json(body): axum::Json<Value>,
) -> StatusCode {
    let _ = tx.send(body);
    status
}

/// A webhook receiver on a free loopback port that answers `status` and hands each body over.
async fn receiver(status: StatusCode) -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hook/{id}", axum::routing::post(hook))
        .with_state((tx, status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook/capability-token"), rx)
}

fn keys(body: &Value) -> BTreeSet<&str> {
    body.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn the_password_grant_answers_tokens_or_the_oauth2_error() {
    let sim = start().await;
    let (status, body) = sim.token_call(password_grant()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope"
        ])
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "sign");
    assert_ne!(body["access_token"], body["refresh_token"]);

    let with = |field: &str, value: Value| {
        let mut body = password_grant();
        body[field] = value;
        body
    };
    let cases = [
        (with("client_secret", json!("wrong")), 401, "invalid_client"),
        (with("client_id", json!("stranger")), 401, "invalid_client"),
        (with("password", json!("wrong")), 400, "invalid_grant"),
        (with("username", json!("stranger")), 400, "invalid_grant"),
        (with("password", Value::Null), 400, "invalid_request"),
        (with("client_id", json!("")), 400, "invalid_request"),
        (with("username", json!(7)), 400, "invalid_request"),
        (
            with("grant_type", json!("client_credentials")),
            400,
            "unsupported_grant_type",
        ),
        (with("grant_type", Value::Null), 400, "invalid_request"),
        (json!([1, 2]), 400, "invalid_request"),
    ];
    for (body, want_status, want_error) in cases {
        let (status, answer) = sim.token_call(body.clone()).await;
        assert_eq!(
            (status, error_of(&answer)),
            (want_status, want_error),
            "{body}: {answer}"
        );
        assert!(answer["message"].is_string(), "{answer}");
    }
    let (_, answer) = sim.token_call(with("password", Value::Null)).await;
    assert!(
        answer["message"].as_str().unwrap().contains("password"),
        "{answer}"
    );
    let r = sim
        .http
        .post(format!("{}{TOKEN}", sim.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415, "the document's bodies are JSON");

    let stats = sim.control("stats").await;
    assert_eq!(stats["signing"]["password_grant"], 9, "{stats}");
    assert_eq!(stats["signing"]["token"], 4, "{stats}");
    let recorded = sim.control("requests?vendor=signing").await;
    assert_eq!(recorded[0]["login"], "demo-signer");
    assert_eq!(
        recorded[0]["body"],
        json!({ "grant_type": "password", "client_id": "pasarela-demo", "username": "demo-signer" })
    );
    let text = recorded.to_string();
    for secret in ["demo-password", "demo-client-secret"] {
        assert!(!text.contains(secret), "{secret} recorded: {text}");
    }
}

#[tokio::test]
async fn credentials_come_from_the_workers_variables() {
    let vars = [
        ("SIGNING_CLIENT_ID", "client-7"),
        ("SIGNING_CLIENT_SECRET", "s3cret"),
        ("SIGNING_USERNAME", "firmante"),
        ("SIGNING_PASSWORD", "clave"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sim = start_with(SimConfig::from_vars(&vars)).await;
    let (status, _) = sim.token_call(password_grant()).await;
    assert_eq!(status, 401, "the demo client is not configured");
    let body = json!({ "grant_type": "password", "client_id": "client-7", "client_secret": "s3cret",
                       "username": "firmante", "password": "clave" });
    let (status, answer) = sim.token_call(body).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn the_refresh_grant_issues_a_new_access_token() {
    let sim = start().await;
    let (access, refresh) = sim.login().await;
    let (status, body) = sim.token_call(refresh_grant(&refresh)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys(&body),
        BTreeSet::from(["access_token", "token_type", "expires_in", "scope"])
    );
    assert_eq!(
        (&body["token_type"], &body["expires_in"]),
        (&json!("Bearer"), &json!(3600))
    );
    let fresh = body["access_token"].as_str().unwrap();
    assert_ne!(fresh, access);
    assert_eq!(sim.submit(fresh, document()).await.0, 202);
    assert_eq!(
        sim.submit(&access, document()).await.0,
        202,
        "the old one lives on"
    );
    let (status, _) = sim.token_call(refresh_grant(&refresh)).await;
    assert_eq!(status, 200, "a refresh token is not single use");

    let (status, body) = sim.token_call(refresh_grant("never-issued")).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    let (status, body) = sim.token_call(refresh_grant(&access)).await;
    assert_eq!(
        (status, error_of(&body)),
        (400, "invalid_grant"),
        "an access token is no refresh token"
    );
    let mut wrong_client = refresh_grant(&refresh);
    wrong_client["client_secret"] = json!("wrong");
    let (status, body) = sim.token_call(wrong_client).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    let mut missing = refresh_grant(&refresh);
    missing.as_object_mut().unwrap().remove("refresh_token");
    let (status, body) = sim.token_call(missing).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));

    let stats = sim.control("stats").await;
    assert_eq!(stats["signing"]["refresh_grant"], 6, "{stats}");
    assert_eq!(stats["signing"]["password_grant"], 1, "{stats}");
    assert!(
        !sim.control("requests").await.to_string().contains(&refresh),
        "refresh tokens are not recorded"
    );
}

#[tokio::test]
async fn a_revoked_token_stops_working() {
    let sim = start().await;
    let (access, refresh) = sim.login().await;
    let (other, _) = sim.login().await;
    let revoke = |token: &str, hint: &str| json!({ "token": token, "token_type_hint": hint });

    let (status, body) = sim
        .request(
            Method::POST,
            REVOKE,
            Some(&other),
            Some(revoke(&access, "access_token")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "message": "The token has been successfully revoked." })
    );
    let (status, body) = sim.submit(&access, document()).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_token"));
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );

    // Its refresh token lives on, until it is revoked too; then its access tokens die with it.
    let (_, body) = sim.token_call(refresh_grant(&refresh)).await;
    let refreshed = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(sim.submit(&refreshed, document()).await.0, 202);
    let (status, _) = sim
        .request(
            Method::POST,
            REVOKE,
            Some(&other),
            Some(revoke(&refresh, "refresh_token")),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = sim.token_call(refresh_grant(&refresh)).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    assert_eq!(sim.submit(&refreshed, document()).await.0, 401);
    assert_eq!(
        sim.submit(&other, document()).await.0,
        202,
        "another grant is untouched"
    );

    // RFC 7009: an unknown token is no error; but the call itself needs a live Bearer token.
    let (status, _) = sim
        .request(
            Method::POST,
            REVOKE,
            Some(&other),
            Some(revoke("never-issued", "access_token")),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = sim
        .request(
            Method::POST,
            REVOKE,
            None,
            Some(revoke(&other, "access_token")),
        )
        .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_token"));
    let (status, body) = sim
        .request(
            Method::POST,
            REVOKE,
            Some(&other),
            Some(revoke(&other, "id_token")),
        )
        .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));
    let (status, body) = sim
        .request(Method::POST, REVOKE, Some(&other), Some(json!({})))
        .await;
    assert_eq!((status, error_of(&body)), (400, "invalid_request"));
    assert_eq!(sim.control("stats").await["signing"]["revoke"], 6);
}

#[tokio::test]
async fn bearer_calls_refuse_missing_and_unknown_tokens() {
    let sim = start().await;
    let (status, body) = sim
        .request(Method::POST, DOCUMENTS, None, Some(document()))
        .await;
    assert_eq!((status, error_of(&body)), (401, "invalid_token"));
    let id = uuid::Uuid::new_v4().to_string();
    for path in [
        format!("{DOCUMENTS}/{id}/status"),
        format!("{DOCUMENTS}/{id}/download"),
    ] {
        let (status, body) = sim.request(Method::GET, &path, Some("made-up"), None).await;
        assert_eq!((status, error_of(&body)), (401, "invalid_token"), "{path}");
    }
    let r = sim
        .http
        .get(format!("{}{DOCUMENTS}/{id}/status", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}

#[tokio::test]
async fn submissions_are_checked_field_by_field() {
    let sim = start().await;
    let (token, _) = sim.login().await;
    let with = |field: &str, value: Value| {
        let mut body = document();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = document();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (without("document_name"), "document_name"),
        (without("document_content"), "document_content"),
        (without("active_directory_user"), "active_directory_user"),
        (without("signature_type"), "signature_type"),
        (with("document_name", json!("")), "document_name"),
        (
            with("active_directory_user", json!("  ")),
            "active_directory_user",
        ),
        (with("document_content", json!("")), "document_content"),
        (
            with("document_content", json!("%PDF-1.7 not base64")),
            "document_content",
        ),
        (
            with("document_content", json!(STANDARD.encode(b"GIF89a..."))),
            "document_content",
        ),
        (with("document_content", json!(42)), "document_content"),
        (with("signature_type", json!("")), "signature_type"),
        (
            with("callback_url", json!("/relative/path")),
            "callback_url",
        ),
        (
            with("callback_url", json!("ftp://example.com/x")),
            "callback_url",
        ),
        (with("callback_url", json!("")), "callback_url"),
        (with("callback_url", json!(true)), "callback_url"),
    ];
    for (body, field) in cases {
        let (status, answer) = sim.submit(&token, body.clone()).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(error_of(&answer), "invalid_request");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(field), "{field}: {message}");
    }
    let (_, answer) = sim
        .submit(
            &token,
            with("document_content", json!(STANDARD.encode(b"GIF89a..."))),
        )
        .await;
    assert!(
        answer["message"].as_str().unwrap().contains("PDF"),
        "{answer}"
    );
    let (status, _) = sim.submit(&token, json!([document()])).await;
    assert_eq!(status, 400);
    let (status, answer) = sim.submit(&token, with("callback_url", Value::Null)).await;
    assert_eq!(status, 202, "callback_url is optional: {answer}");

    // The content is measured, never recorded.
    let recorded = sim.wait_recorded("submit", 18).await;
    assert_eq!(recorded[0]["login"], "demo-signer");
    assert_eq!(recorded[1]["body"]["document_content_length"], Value::Null);
    assert_eq!(recorded[1]["body"]["document_name"], "contract.pdf");
    let last = &recorded[17]["body"];
    assert_eq!(last["document_content_length"], STANDARD.encode(PDF).len());
    assert!(
        !recorded
            .iter()
            .any(|r| r.to_string().contains(&STANDARD.encode(PDF)))
    );
}

#[tokio::test]
async fn a_document_is_received_then_signed_then_downloadable() {
    let sim = start().await;
    // Long enough that the first status call surely comes before the signing, on a loaded machine too.
    sim.settings(json!({ "sign_after_ms": 800 })).await;
    let (token, _) = sim.login().await;
    let (status, answer) = sim.submit(&token, document()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "received");
    assert_eq!(
        answer["message"],
        "The document has been received and is queued for signing."
    );
    let id = answer["document_id"].as_str().unwrap();
    uuid::Uuid::parse_str(id).unwrap();

    let (status, received) = sim.doc_status(&token, id).await;
    assert_eq!(status, 200, "{received}");
    assert_eq!(
        keys(&received),
        BTreeSet::from([
            "document_id",
            "status",
            "date_sent_to_sign",
            "assigned_active_directory_user",
            "signing_date",
            "message"
        ])
    );
    assert_eq!(received["status"], "received");
    assert_eq!(received["signing_date"], Value::Null);
    assert_eq!(received["assigned_active_directory_user"], USER);
    let sent = received["date_sent_to_sign"].as_str().unwrap();
    assert!(sent.ends_with('Z'), "{sent}");
    let sent_at = chrono::DateTime::parse_from_rfc3339(sent).unwrap();
    let (status, body) = sim.download(&token, id).await;
    assert_eq!((status, error_of(&body)), (409, "not_signed"));

    let signed = sim.wait_status(&token, id, "signed").await;
    assert_eq!(
        signed["message"],
        "The document has been successfully signed."
    );
    assert_eq!(signed["date_sent_to_sign"], sent);
    let signing_date =
        chrono::DateTime::parse_from_rfc3339(signed["signing_date"].as_str().unwrap()).unwrap();
    assert!(signing_date >= sent_at);

    let (status, body) = sim.download(&token, id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "document_id",
            "document_name",
            "signed_document_content",
            "date_sent_to_sign",
            "assigned_active_directory_user"
        ])
    );
    assert_eq!(body["document_id"], id);
    assert_eq!(body["document_name"], "contract_signed.pdf");
    assert_eq!(body["date_sent_to_sign"], sent);
    assert_eq!(body["assigned_active_directory_user"], USER);
    let pdf = STANDARD
        .decode(body["signed_document_content"].as_str().unwrap())
        .unwrap();
    assert!(pdf.starts_with(PDF), "the original, then the signature");
    assert_ne!(pdf, PDF);
    let tail = String::from_utf8_lossy(&pdf[PDF.len()..]).to_string();
    assert!(tail.contains(USER) && tail.ends_with("%%EOF\n"), "{tail}");

    for (status, body) in [
        sim.doc_status(&token, &uuid::Uuid::new_v4().to_string())
            .await,
        sim.download(&token, &uuid::Uuid::new_v4().to_string())
            .await,
        sim.doc_status(&token, "not-a-uuid").await,
    ] {
        assert_eq!((status, error_of(&body)), (404, "not_found"), "{body}");
    }
    let stats = sim.control("stats").await;
    assert_eq!(stats["signing"]["download"], 3, "{stats}");
    assert_eq!(stats["signing"]["submit"], 1, "{stats}");
}

#[tokio::test]
async fn documents_up_to_25_mib_are_taken_and_handed_back() {
    let sim = start().await;
    sim.settings(json!({ "sign_after_ms": 0 })).await;
    let (token, _) = sim.login().await;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.resize(25 * 1024 * 1024, b'x');
    // Written by hand: serde escaping 34 MB character by character takes seconds in a debug build.
    let mut body = document();
    body["document_content"] = json!("CONTENT");
    let body = body.to_string().replace("CONTENT", &STANDARD.encode(&pdf));
    let r = sim
        .http
        .post(format!("{}{DOCUMENTS}", sim.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        202,
        "a body far over axum's default 2 MB limit"
    );
    let answer: Value = r.json().await.unwrap();
    let id = answer["document_id"].as_str().unwrap().to_string();
    sim.wait_status(&token, &id, "signed").await;
    let view = sim.control(&format!("signing/documents/{id}")).await;
    assert!(
        view["size_bytes"].as_u64().unwrap() > pdf.len() as u64,
        "{view}"
    );
    let (status, body) = sim.download(&token, &id).await;
    assert_eq!(status, 200);
    let signed = STANDARD
        .decode(body["signed_document_content"].as_str().unwrap())
        .unwrap();
    assert!(signed.starts_with(&pdf) && signed.len() > pdf.len());
}

#[tokio::test]
async fn outcomes_are_set_globally_or_per_user() {
    let sim = start().await;
    let settings = sim
        .settings(json!({ "sign_after_ms": 0, "outcome": "expired",
                          "outcomes": { "ana@x.com": "rejected", "luis@x.com": "error" } }))
        .await;
    assert_eq!(
        settings,
        json!({ "sign_after_ms": 0, "webhook_delay_ms": 100, "lose_webhooks": false,
                "token_lifetime_s": 3600, "outcome": "expired",
                "outcomes": { "ana@x.com": "rejected", "luis@x.com": "error" },
                "pending_status": "received" })
    );
    let (token, _) = sim.login().await;
    for (user, want) in [
        ("ana@x.com", "rejected"),
        ("luis@x.com", "error"),
        (USER, "expired"),
    ] {
        let mut body = document();
        body["active_directory_user"] = json!(user);
        let id = sim.submit_ok(&token, body).await;
        let status = sim.wait_status(&token, &id, want).await;
        assert_eq!(status["signing_date"], Value::Null, "{status}");
        let (code, body) = sim.download(&token, &id).await;
        assert_eq!((code, error_of(&body)), (409, "not_signed"));
        assert!(body["message"].as_str().unwrap().contains(want), "{body}");
    }

    for bad in [
        json!({ "outcome": "received" }),
        json!({ "outcomes": ["rejected"] }),
        json!({ "sign_after_ms": "fast" }),
        json!({ "lose_webhook": true }),
    ] {
        let (status, body) = sim.control_post("signing/settings", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(
        sim.control("signing/settings").await,
        settings,
        "a refused update changes nothing"
    );
}

#[tokio::test]
async fn the_webhook_reaches_the_callback_url_once_with_the_documented_fields() {
    let sim = start().await;
    sim.settings(json!({ "sign_after_ms": 50, "webhook_delay_ms": 50 }))
        .await;
    let (url, mut hooks) = receiver(StatusCode::OK).await;
    let (token, _) = sim.login().await;
    let mut body = document();
    body["callback_url"] = json!(url);
    let id = sim.submit_ok(&token, body).await;

    let hook = tokio::time::timeout(Duration::from_secs(5), hooks.recv())
        .await
        .expect("a webhook")
        .unwrap();
    assert_eq!(
        keys(&hook),
        BTreeSet::from([
            "document_id",
            "status",
            "signing_date",
            "message",
            "date_sent_to_sign",
            "assigned_active_directory_user"
        ])
    );
    let (_, status) = sim.doc_status(&token, &id).await;
    assert_eq!(hook["document_id"], id);
    assert_eq!(hook["status"], "signed");
    assert_eq!(
        hook["message"],
        "The document has been successfully signed."
    );
    assert_eq!(hook["signing_date"], status["signing_date"]);
    assert_eq!(hook["date_sent_to_sign"], status["date_sent_to_sign"]);
    assert_eq!(hook["assigned_active_directory_user"], USER);

    let attempts = sim.wait_recorded("webhook", 1).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["body"]["url"], url);
    assert_eq!(attempts[0]["body"]["http_status"], 200);
    assert_eq!(attempts[0]["body"]["error"], Value::Null);
    assert_eq!(attempts[0]["body"]["payload"], hook);
    let view = sim.control(&format!("signing/documents/{id}")).await;
    assert_eq!(
        (&view["callback_url"], &view["webhook_attempts"]),
        (&json!(url), &json!(1))
    );
    assert_eq!(view["status"], "signed");
}

#[tokio::test]
async fn a_failed_webhook_is_recorded_and_not_retried() {
    let sim = start().await;
    sim.settings(json!({ "sign_after_ms": 0, "webhook_delay_ms": 0, "outcome": "rejected" }))
        .await;
    let (url, mut hooks) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    // A port nobody listens on: bound, then closed.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let (token, _) = sim.login().await;
    for callback in [&url, &dead_url] {
        let mut body = document();
        body["callback_url"] = json!(callback);
        sim.submit_ok(&token, body).await;
    }
    let hook = tokio::time::timeout(Duration::from_secs(5), hooks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hook["status"], "rejected", "every final status is notified");
    assert_eq!(hook["signing_date"], Value::Null);
    let attempts = sim.wait_recorded("webhook", 2).await;
    let by_url = |u: &str| {
        attempts
            .iter()
            .find(|a| a["body"]["url"] == u)
            .map(|a| a["body"].clone())
            .unwrap()
    };
    assert_eq!(by_url(&url)["http_status"], 500);
    let refused = by_url(&dead_url);
    assert_eq!(refused["http_status"], Value::Null);
    assert!(
        refused["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{refused}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hooks.try_recv().is_err(), "no retry");
    assert_eq!(sim.control("stats").await["signing"]["webhook"], 2);
}

#[tokio::test]
async fn lost_webhooks_are_recorded_but_never_sent() {
    let sim = start().await;
    sim.settings(json!({ "sign_after_ms": 0, "webhook_delay_ms": 0, "lose_webhooks": true }))
        .await;
    let (url, mut hooks) = receiver(StatusCode::OK).await;
    let (token, _) = sim.login().await;
    let mut body = document();
    body["callback_url"] = json!(url);
    let id = sim.submit_ok(&token, body).await;
    sim.wait_status(&token, &id, "signed").await;
    let lost = sim.wait_recorded("webhook_lost", 1).await;
    assert_eq!(lost[0]["body"]["document_id"], id);
    assert_eq!(lost[0]["body"]["url"], url);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hooks.try_recv().is_err(), "the webhook was lost");
    assert_eq!(sim.wait_recorded("webhook", 0).await.len(), 0);
    let view = sim.control(&format!("signing/documents/{id}")).await;
    assert_eq!(
        (&view["webhook_attempts"], &view["webhooks_lost"]),
        (&json!(0), &json!(1))
    );
    // The status call still tells the truth, which is how pasarela finds out.
    assert_eq!(sim.download(&token, &id).await.0, 200);
}

#[tokio::test]
async fn expired_tokens_answer_401_and_a_refresh_grant_recovers() {
    let sim = start().await;
    let (access, refresh) = sim.login().await;
    let id = sim.submit_ok(&access, document()).await;
    let (status, _) = sim.control_post("signing/expire-tokens", json!({})).await;
    assert_eq!(status, 204);
    let (status, body) = sim.doc_status(&access, &id).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_token"));
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let (status, body) = sim.token_call(refresh_grant(&refresh)).await;
    assert_eq!(status, 200, "refresh tokens survive: {body}");
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(sim.doc_status(fresh, &id).await.0, 200);

    // A short lifetime ends tokens by itself, and expires_in says so.
    sim.settings(json!({ "token_lifetime_s": 1 })).await;
    let (_, body) = sim.token_call(password_grant()).await;
    assert_eq!(body["expires_in"], 1);
    let short = body["access_token"].as_str().unwrap();
    assert_eq!(sim.doc_status(short, &id).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sim.doc_status(short, &id).await.0, 401);
    assert_eq!(
        sim.doc_status(fresh, &id).await.0,
        200,
        "issued with the old lifetime"
    );
}

#[tokio::test]
async fn faults_apply_to_the_signing_vendor() {
    let sim = start().await;
    let (token, _) = sim.login().await;
    let fault = |faults: Value| {
        let mut body = faults;
        body["vendor"] = json!("signing");
        body
    };
    sim.control_post("faults", fault(json!({ "outage": true })))
        .await;
    let (status, _) = sim.submit(&token, document()).await;
    assert_eq!(status, 503);
    assert_eq!(sim.token_call(password_grant()).await.0, 503);

    sim.control_post("faults", fault(json!({ "rate_limit_retry_after_s": 7 })))
        .await;
    let r = sim
        .http
        .post(format!("{}{DOCUMENTS}", sim.base))
        .bearer_auth(&token)
        .json(&document())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "7");

    sim.control_post("faults", fault(json!({ "error_rate": 1.0 })))
        .await;
    assert_eq!(sim.submit(&token, document()).await.0, 500);

    sim.control_post("faults", fault(json!({ "script": ["401", "ok"] })))
        .await;
    let (status, body) = sim.submit(&token, document()).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_token"));
    assert_eq!(sim.submit(&token, document()).await.0, 202);

    sim.control_post("faults", fault(json!({ "latency_ms": 300 })))
        .await;
    let started = Instant::now();
    assert_eq!(sim.submit(&token, document()).await.0, 202);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let stats = sim.control("stats").await;
    assert_eq!(
        stats["signing"]["submit"], 6,
        "every call is counted: {stats}"
    );
}

#[tokio::test]
async fn reset_forgets_documents_and_settings_but_not_tokens() {
    let sim = start().await;
    sim.settings(json!({ "sign_after_ms": 1000, "webhook_delay_ms": 0, "outcome": "rejected" }))
        .await;
    let (url, mut hooks) = receiver(StatusCode::OK).await;
    let (token, _) = sim.login().await;
    let mut body = document();
    body["callback_url"] = json!(url);
    let id = sim.submit_ok(&token, body).await;
    let (status, _) = sim.control_post("reset", json!({})).await;
    assert_eq!(status, 204);

    let (status, body) = sim.doc_status(&token, &id).await;
    assert_eq!(
        (status, error_of(&body)),
        (404, "not_found"),
        "the token survives, the document not"
    );
    assert_eq!(sim.control("signing/documents").await, json!([]));
    assert_eq!(sim.control("signing/settings").await["outcome"], "signed");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        hooks.try_recv().is_err(),
        "a forgotten document sends no webhook"
    );
    assert_eq!(sim.control("stats").await["signing"]["status"], 1);
}
