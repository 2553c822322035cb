//! The NumRot and GestoPago clients against the vendor simulator, with the shared token store on a
//! real PostgreSQL (`PASARELA_TEST_PG`, default the local server): one token fetch for many calls and
//! two replicas, one refetch when the vendor refuses a token, no retry storm on bad credentials, the
//! `signed` payload on GET and POST, and paths that would leave the vendor refused.

use std::sync::Arc;
use std::time::Duration;

use pasarela_shared::contract::env::FromEnv;
use pasarela_shared::vendors::bearer::CallError;
use pasarela_shared::vendors::http::VendorError;
use serde_json::json;

mod common;

use common::world::world;

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

    // Wrong credentials: the token service answers 500, which its document reads as "not registered"
    // and a failing server also sends. The first two are a passing failure (retry); the third is
    // believed: a permanent auth error naming the cause; then no token call while the circuit holds.
    let wrong = w.numrot(&[("NUMROT_PASSWORD", "not-the-password")]);
    let other = world(1).await;
    let before = w.calls("numrot", "token").await;
    for round in 1..=4 {
        let err = wrong
            .call(&other.stores[0], "GET", "/api/estado", None)
            .await
            .unwrap_err();
        let CallError::Vendor(e) = &err else {
            panic!("round {round}: expected a vendor error, got {err:?}");
        };
        let verdict = e.verdict();
        if round < 3 {
            assert!(verdict.is_retry(), "round {round}: {e}");
            continue;
        }
        assert!(
            matches!(e, VendorError::Credentials { .. }),
            "round {round}: {e}"
        );
        assert!(!verdict.is_retry());
        let f = verdict.failure();
        assert_eq!(f.kind.as_str(), "auth");
        assert!(f.message.contains("not registered"), "{}", f.message);
        assert!(!f.message.contains("not-the-password"));
    }
    assert_eq!(
        w.calls("numrot", "token").await,
        before + 3,
        "the budget, then none"
    );
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

/// Rotating the signing credentials: a replica configured with the new password finds the grant the
/// old password got, revokes it with its own access token, and signs in again; the old one would have
/// gone on working at the vendor until it expired.
#[tokio::test]
async fn a_grant_of_rotated_signing_credentials_is_revoked_not_used() {
    use pasarela_shared::vendors::signing::{SigningClient, SigningSettings, SubmitDocument};

    let w = world(1).await;
    let base = format!("{}/signing", w.sim);
    let old = w.env(&[("SIGNING_BASE_URL", &base)]);
    let old = SigningClient::new(&SigningSettings::from_env(&old).unwrap()).unwrap();
    let doc = SubmitDocument {
        document_name: "a.pdf".into(),
        content: base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b"%PDF-1.4\n%%EOF\n",
        )
        .into(),
        active_directory_user: "j@x".into(),
        signature_type: "digital_signature".into(),
        callback_url: None,
    };
    let submitted = old.submit(&w.stores[0], &doc).await.unwrap();
    assert_eq!(w.calls("signing", "password_grant").await, 1);

    // The operator rotates the password at the vendor and in pasarela's settings.
    w.control(
        "signing/settings",
        json!({ "password": "rotated-password" }),
    )
    .await;
    let new = w.env(&[
        ("SIGNING_BASE_URL", &base),
        ("SIGNING_PASSWORD", "rotated-password"),
    ]);
    let new = SigningClient::new(&SigningSettings::from_env(&new).unwrap()).unwrap();
    new.status(&w.stores[0], &submitted.document_id)
        .await
        .unwrap();
    assert_eq!(
        w.calls("signing", "revoke").await,
        1,
        "the old grant revoked"
    );
    let revoked = w.requests("signing", "revoke").await;
    assert_eq!(revoked[0]["body"]["token_type_hint"], "refresh_token");
    assert_eq!(
        w.calls("signing", "password_grant").await,
        2,
        "signed in anew"
    );
    assert_eq!(
        w.calls("signing", "refresh_grant").await,
        0,
        "no refresh of the old grant"
    );
    // The new grant is used as it is from then on.
    new.status(&w.stores[0], &submitted.document_id)
        .await
        .unwrap();
    assert_eq!(w.calls("signing", "password_grant").await, 2);
    assert_eq!(w.calls("signing", "revoke").await, 1);
    w.drop_database().await;
}

/// GestoPago at the client: a 401 or 403 from the token call is the credentials (not retried); a 401
/// on a call fetches one new token and retries once; and the payload travels in whichever encoding the
/// settings name, the simulator taking only that one.
#[tokio::test]
async fn gestopago_token_refusals_a_refetch_on_401_and_both_encodings() {
    let w = world(1).await;
    let store = &w.stores[0];
    for status in ["401", "403"] {
        w.control(
            "faults",
            json!({ "vendor": "gestopago", "script": [status] }),
        )
        .await;
        let err = w
            .gestopago()
            .call(store, "POST", "/api/x", &json!({}))
            .await
            .unwrap_err();
        match &err {
            CallError::Vendor(e @ VendorError::Credentials { .. }) => {
                assert!(!e.verdict().is_retry(), "{e}");
                assert!(e.to_string().contains(status), "{e}");
            }
            other => panic!("token call {status}: expected a credentials error, got {other:?}"),
        }
    }
    assert_eq!(
        w.calls("gestopago", "call").await,
        0,
        "no call without a token"
    );

    let client = w.gestopago();
    let r = client
        .call(store, "POST", "/api/ventas", &json!({ "monto": 1 }))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (tokens, calls) = (
        w.calls("gestopago", "token").await,
        w.calls("gestopago", "call").await,
    );
    w.control(
        "faults",
        json!({ "vendor": "gestopago", "script": ["401"] }),
    )
    .await;
    let r = client
        .call(store, "GET", "/api/saldo", &json!({ "cuenta": 7 }))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["payload"], json!({ "cuenta": 7 }));
    assert_eq!(
        w.calls("gestopago", "token").await,
        tokens + 1,
        "one refetch"
    );
    assert_eq!(w.calls("gestopago", "call").await, calls + 2, "one retry");

    // Form-url-encoded and hex, on both sides; the multipart client is refused then.
    w.control(
        "gestopago/settings",
        json!({ "payload_encoding": "urlencoded", "cipher_encoding": "hex" }),
    )
    .await;
    let refused = client
        .call(store, "POST", "/api/ventas", &json!({ "monto": 2 }))
        .await
        .unwrap();
    assert_eq!(refused.status, 415, "{:?}", refused.body);
    let other = w.gestopago_with(&[
        ("GESTOPAGO_PAYLOAD_ENCODING", "urlencoded"),
        ("GESTOPAGO_CIPHER_ENCODING", "hex"),
    ]);
    let r = other
        .call(store, "POST", "/api/ventas", &json!({ "monto": 2 }))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["payload"], json!({ "monto": 2 }));
    w.drop_database().await;
}
