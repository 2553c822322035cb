//! The NumRot and GestoPago clients against the vendor simulator, with the shared token store on a
//! real PostgreSQL (`PASARELA_TEST_PG`, default the local server): one token fetch for many calls and
//! two replicas, one refetch when the vendor refuses a token, no retry storm on bad credentials, the
//! `signed` payload on GET and POST, and paths that would leave the vendor refused.

use std::sync::Arc;
use std::time::Duration;

use pasarela_shared::contract::env::Env;
use pasarela_shared::contract::env::FromEnv;
use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::vendors::bearer::CallError;
use pasarela_shared::vendors::gestopago::GestoPagoClient;
use pasarela_shared::vendors::gestopago::GestoPagoSettings;
use pasarela_shared::vendors::http::VendorError;
use pasarela_shared::vendors::numrot::NumRotClient;
use pasarela_shared::vendors::numrot::NumRotSettings;
use secrecy::SecretString;
use serde_json::{Value, json};

mod common;

use common::{SECRET_KEY, TestDb};

struct World {
    sim: String,
    http: reqwest::Client,
    stores: Vec<Arc<TokenStore>>,
    db: TestDb,
}

async fn world(replicas: usize) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vendor_sim::serve(
        listener,
        vendor_sim::SimConfig::default(),
        std::future::pending(),
    ));
    let db = TestDb::create("pasarela_vc").await;
    let stores = (0..replicas)
        .map(|_| {
            let key = SecretKey::from_base64(&SecretString::from(SECRET_KEY)).unwrap();
            Arc::new(TokenStore::new(db.pool(8), key, Duration::from_secs(60)))
        })
        .collect();
    World {
        sim: format!("http://{addr}"),
        http: reqwest::Client::new(),
        stores,
        db,
    }
}

impl World {
    fn env(&self, extra: &[(&str, &str)]) -> Env {
        let mut pairs = vec![
            (
                "NUMROT_BASE_URL".to_string(),
                format!("{}/numrot", self.sim),
            ),
            (
                "GESTOPAGO_BASE_URL".to_string(),
                format!("{}/gestopago", self.sim),
            ),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env::from_pairs(pairs)
    }

    fn numrot(&self, extra: &[(&str, &str)]) -> NumRotClient {
        NumRotClient::new(&NumRotSettings::from_env(&self.env(extra)).unwrap()).unwrap()
    }

    fn gestopago(&self) -> GestoPagoClient {
        GestoPagoClient::new(&GestoPagoSettings::from_env(&self.env(&[])).unwrap()).unwrap()
    }

    async fn calls(&self, vendor: &str, op: &str) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/sim/stats", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats[vendor][op].as_u64().unwrap_or(0)
    }

    async fn control(&self, path: &str, body: Value) {
        let status = self
            .http
            .post(format!("{}/sim/{path}", self.sim))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }

    async fn drop_database(self) {
        drop(self.stores);
        self.db.drop().await;
    }
}

#[tokio::test]
async fn gestopago_one_token_for_a_hundred_calls_on_two_replicas_and_one_refetch_after_invalidation()
 {
    let w = world(2).await;
    let client = Arc::new(w.gestopago());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (client, store) = (client.clone(), w.stores[i % 2].clone());
        let method = if i % 2 == 0 { "GET" } else { "POST" };
        tasks.push(tokio::spawn(async move {
            client
                .call(
                    &store,
                    method,
                    "/api/ventas/consulta",
                    &json!({ "n": i, "ñ": "ü" }),
                )
                .await
        }));
    }
    for (i, t) in futures::future::join_all(tasks)
        .await
        .into_iter()
        .enumerate()
    {
        let r = t.unwrap().unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body["payload"],
            json!({ "n": i, "ñ": "ü" }),
            "signed round trip"
        );
        assert_eq!(r.body["method"], if i % 2 == 0 { "GET" } else { "POST" });
    }
    assert_eq!(w.calls("gestopago", "token").await, 1, "one token, shared");

    // The vendor expires its tokens: the next calls get 403, one refetch, and every call succeeds.
    w.control("gestopago/invalidate", json!({})).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (client, store) = (client.clone(), w.stores[i % 2].clone());
        tasks.push(tokio::spawn(async move {
            client.call(&store, "POST", "/api/x", &json!({})).await
        }));
    }
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap().unwrap().status, 200);
    }
    assert_eq!(w.calls("gestopago", "token").await, 2, "one refetch");

    // A path off the vendor's host never leaves.
    for bad in ["//evil.example/x", "http://evil.example/x"] {
        let r = client.call(&w.stores[0], "GET", bad, &json!({})).await;
        assert!(matches!(r, Err(CallError::Invalid(_))), "{bad}");
    }
    w.drop_database().await;
}

#[tokio::test]
async fn numrot_refetches_once_after_expiry_and_never_storms_on_bad_credentials() {
    let w = world(1).await;
    let store = &w.stores[0];
    let client = w.numrot(&[]);
    let r = client
        .call(store, "POST", "/api/facturas", Some(&json!({ "a": 1 })))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["body"], json!({ "a": 1 }));

    // The token's session ends at the vendor: 401, one refetch, ok.
    w.control("numrot/invalidate", json!({})).await;
    let r = client
        .call(store, "GET", "/api/estado", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(w.calls("numrot", "token").await, 2);

    // A bare token (no lifetime given: pasarela assumes the document's 60 minutes) that the vendor
    // ends after one second: the call past it gets 401, one refetch, ok.
    w.control(
        "numrot/settings",
        json!({ "token_lifetime_s": 1, "bare_token": true }),
    )
    .await;
    w.control("numrot/invalidate", json!({})).await;
    client
        .call(store, "GET", "/api/estado", None)
        .await
        .unwrap();
    let fetched = w.calls("numrot", "token").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = client
        .call(store, "GET", "/api/estado", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        w.calls("numrot", "token").await,
        fetched + 1,
        "one refetch after 401"
    );

    // Wrong credentials: a permanent auth error naming the cause, after one token call.
    let wrong = w.numrot(&[("NUMROT_PASSWORD", "not-the-password")]);
    let other = world(1).await;
    let before = w.calls("numrot", "token").await;
    let err = wrong
        .call(&other.stores[0], "GET", "/api/estado", None)
        .await
        .unwrap_err();
    match &err {
        CallError::Vendor(e @ VendorError::Credentials { .. }) => {
            let verdict = e.verdict();
            assert!(!verdict.is_retry());
            let f = verdict.failure();
            assert_eq!(f.kind.as_str(), "auth");
            assert!(f.message.contains("not registered"), "{}", f.message);
            assert!(!f.message.contains("not-the-password"));
        }
        other => panic!("expected a credentials error, got {other:?}"),
    }
    assert_eq!(w.calls("numrot", "token").await, before + 1);
    other.drop_database().await;
    w.drop_database().await;
}

#[tokio::test]
async fn signing_grants_refreshes_and_revokes_through_the_shared_store() {
    use pasarela_shared::vendors::signing::SigningSettings;
    use pasarela_shared::vendors::signing::{SigningClient, SigningError, SubmitDocument};

    let w = world(2).await;
    let env = w.env(&[("SIGNING_BASE_URL", &format!("{}/signing", w.sim))]);
    let client = SigningClient::new(&SigningSettings::from_env(&env).unwrap()).unwrap();
    let pdf = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"%PDF-1.4\n%%EOF\n",
    );
    let doc = SubmitDocument {
        document_name: "a.pdf".into(),
        content: pdf.into(),
        active_directory_user: "j@x".into(),
        signature_type: "digital_signature".into(),
        callback_url: None,
    };
    // Two replicas, ten submissions each: one password grant.
    for store in &w.stores {
        for _ in 0..10 {
            let submitted = client.submit(store, &doc).await.unwrap();
            assert_eq!(submitted.status, "received");
            let status = client.status(store, &submitted.document_id).await.unwrap();
            assert_eq!(status.status, "received");
        }
    }
    assert_eq!(w.calls("signing", "password_grant").await, 1);

    // Not signed yet: the download says so; unknown ids are told apart.
    let submitted = client.submit(&w.stores[0], &doc).await.unwrap();
    assert!(matches!(
        client
            .download(&w.stores[0], &submitted.document_id, 1 << 20)
            .await,
        Err(SigningError::NotSigned(_))
    ));
    assert!(matches!(
        client.status(&w.stores[0], "no-such-document").await,
        Err(SigningError::UnknownDocument(_))
    ));

    // The vendor expires every access token: one refresh grant, and the call goes through.
    w.control("signing/expire-tokens", json!({})).await;
    client
        .status(&w.stores[1], &submitted.document_id)
        .await
        .unwrap();
    client
        .status(&w.stores[0], &submitted.document_id)
        .await
        .unwrap();
    assert_eq!(w.calls("signing", "refresh_grant").await, 1);
    assert_eq!(w.calls("signing", "password_grant").await, 1);

    // Revoking the stored grant really ends it: the next call needs a new password grant.
    assert!(client.revoke_stored(&w.stores[0]).await.unwrap());
    assert_eq!(w.calls("signing", "revoke").await, 1);
    client
        .status(&w.stores[0], &submitted.document_id)
        .await
        .unwrap();
    assert_eq!(w.calls("signing", "password_grant").await, 2);

    // A refused document is a refusal with the vendor's words, not a retry.
    let bad = SubmitDocument {
        content: "R0lGODlh".into(),
        ..doc.clone()
    };
    let err = client.submit(&w.stores[0], &bad).await.unwrap_err();
    let verdict = err.verdict();
    assert!(!verdict.is_retry(), "{err}");
    let failure = verdict.failure();
    assert_eq!(
        failure.kind,
        pasarela_shared::contract::errors::ErrorKind::Rejected
    );
    w.drop_database().await;
}
