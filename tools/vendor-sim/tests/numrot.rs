//! The NumRot simulator over HTTP: the token call of docs/vendors/numrot.md (200, 500 "user not
//! registered", 400 for a malformed body), bearer calls (401 missing, unknown or expired), the
//! lifetime, invalidation, the bare-string token shape and scripted statuses.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

mod common;

use common::{Sim, error_of, start};

const TOKEN: &str = "/numrot/v2/api/Token";

impl Sim {
    async fn numrot_token(&self, username: &str, password: &str) -> (u16, Value) {
        self.request(
            Method::POST,
            TOKEN,
            None,
            Some(json!({ "Username": username, "Password": password })),
        )
        .await
    }

    /// A token for the demo credentials, in the object shape.
    async fn demo_token(&self) -> String {
        let (status, body) = self.numrot_token("demo", "demo-password").await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    async fn numrot_get(&self, token: Option<&str>) -> (u16, Value) {
        self.request(Method::GET, "/numrot/api/v1/ping", token, None)
            .await
    }
}

#[tokio::test]
async fn the_token_call_answers_200_500_or_400() {
    let sim = start().await;
    let (status, body) = sim.numrot_token("demo", "demo-password").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expiresIn"], 3600);
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "JWT-looking: {token}");
    let (_, again) = sim.numrot_token("demo", "demo-password").await;
    assert_ne!(again["token"], body["token"], "every token is new");

    for (username, password) in [("demo", "wrong"), ("stranger", "demo-password")] {
        let (status, body) = sim.numrot_token(username, password).await;
        assert_eq!(status, 500, "{username}: {body}");
        assert_eq!(error_of(&body), "user not registered");
    }

    let (status, body) = sim
        .request(
            Method::POST,
            TOKEN,
            None,
            Some(json!({ "Username": "demo" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("Password"), "{body}");
    let r = sim
        .http
        .post(format!("{}{TOKEN}", sim.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let recorded = sim.control("requests?vendor=numrot&op=token").await;
    let recorded = recorded.as_array().unwrap();
    assert_eq!(recorded.len(), 6);
    assert_eq!(recorded[0]["login"], "demo");
    assert_eq!(recorded[0]["body"], json!({ "Username": "demo" }));
    assert_eq!(recorded[3]["login"], "stranger");
    let text = serde_json::to_string(recorded).unwrap();
    assert!(
        !text.contains("demo-password"),
        "passwords are never recorded: {text}"
    );
    let stats = sim.control("stats").await;
    assert_eq!(stats["numrot"]["token"], 6);
}

#[tokio::test]
async fn calls_echo_with_a_live_token_and_answer_401_without_one() {
    let sim = start().await;
    let token = sim.demo_token().await;

    let (status, body) = sim
        .request(
            Method::GET,
            "/numrot/api/v1/invoices/42?page=2&size=10",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "method": "GET", "path": "/api/v1/invoices/42", "query": "page=2&size=10",
                "body": null })
    );
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let (status, body) = sim
            .request(
                method.clone(),
                "/numrot/api/documents",
                Some(&token),
                Some(json!({ "n": 1 })),
            )
            .await;
        assert_eq!(status, 200, "{method}: {body}");
        assert_eq!(body["method"], method.as_str());
        assert_eq!(body["query"], Value::Null);
        assert_eq!(body["body"], json!({ "n": 1 }));
    }

    let (status, body) = sim.numrot_get(None).await;
    assert_eq!(status, 401, "{body}");
    assert!(error_of(&body).contains("missing"), "{body}");
    let (status, body) = sim.numrot_get(Some("not.a.token")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_of(&body), "invalid token");
    let r = sim
        .http
        .get(format!("{}/numrot/api/v1/ping", sim.base))
        .basic_auth("demo", Some("demo-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "Basic is not a bearer token");

    let r = sim
        .http
        .post(format!("{}/numrot/api/documents", sim.base))
        .bearer_auth(&token)
        .body("<xml/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "a body that is not JSON");

    let calls = sim.control("requests?vendor=numrot&op=call").await;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 8);
    assert_eq!(calls[0]["login"], Value::Null);
    assert_eq!(calls[0]["body"]["path"], "/api/v1/invoices/42");
}

#[tokio::test]
async fn a_token_expires_after_its_lifetime_with_401_session_expired() {
    let sim = start().await;
    let (status, settings) = sim
        .control_post("numrot/settings", json!({ "token_lifetime_s": 1 }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        settings,
        json!({ "token_lifetime_s": 1, "bare_token": false, "nul_in_answers": false,
                "auth_scheme": "Bearer" })
    );
    let (_, body) = sim.numrot_token("demo", "demo-password").await;
    assert_eq!(body["expiresIn"], 1);
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(sim.numrot_get(Some(&token)).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = sim.numrot_get(Some(&token)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_of(&body), "session expired");

    // The lifetime is fixed when a token is issued.
    sim.control_post("numrot/settings", json!({ "token_lifetime_s": 3600 }))
        .await;
    let fresh = sim.demo_token().await;
    assert_eq!(sim.numrot_get(Some(&fresh)).await.0, 200);
    assert_eq!(sim.numrot_get(Some(&token)).await.0, 401);

    for bad in [
        json!({ "token_lifetime_s": 0 }),
        json!({ "token_lifetime_s": "60" }),
        json!({ "bare_token": "yes" }),
        json!([]),
    ] {
        let (status, body) = sim.control_post("numrot/settings", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let settings = sim.control("numrot/settings").await;
    assert_eq!(
        settings,
        json!({ "token_lifetime_s": 3600, "bare_token": false, "nul_in_answers": false,
                "auth_scheme": "Bearer" })
    );
}

#[tokio::test]
async fn invalidate_ends_every_issued_token_at_once() {
    let sim = start().await;
    let first = sim.demo_token().await;
    let second = sim.demo_token().await;
    assert_eq!(sim.numrot_get(Some(&first)).await.0, 200);
    let (status, _) = sim.control_post("numrot/invalidate", json!({})).await;
    assert_eq!(status, 204);
    for token in [&first, &second] {
        let (status, body) = sim.numrot_get(Some(token)).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(error_of(&body), "session expired");
    }
    let third = sim.demo_token().await;
    assert_eq!(sim.numrot_get(Some(&third)).await.0, 200);
}

#[tokio::test]
async fn bare_token_mode_answers_the_token_as_a_json_string() {
    let sim = start().await;
    let (status, settings) = sim
        .control_post("numrot/settings", json!({ "bare_token": true }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        settings,
        json!({ "token_lifetime_s": 3600, "bare_token": true, "nul_in_answers": false,
                "auth_scheme": "Bearer" })
    );
    let (status, body) = sim.numrot_token("demo", "demo-password").await;
    assert_eq!(status, 200, "{body}");
    let token = body.as_str().expect("a bare JSON string").to_string();
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(sim.numrot_get(Some(&token)).await.0, 200);
    let (status, body) = sim.numrot_token("demo", "wrong").await;
    assert_eq!((status, error_of(&body)), (500, "user not registered"));

    sim.control_post("numrot/settings", json!({ "bare_token": false }))
        .await;
    let (_, body) = sim.numrot_token("demo", "demo-password").await;
    assert!(body["token"].is_string(), "{body}");
}

#[tokio::test]
async fn scripted_statuses_and_faults_apply_to_numrot() {
    let sim = start().await;
    let token = sim.demo_token().await;
    let (status, _) = sim
        .control_post(
            "faults",
            json!({ "vendor": "numrot", "script": ["401", "ok", "500"] }),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = sim.numrot_get(Some(&token)).await;
    assert_eq!((status, error_of(&body)), (401, "session expired"));
    assert_eq!(sim.numrot_get(Some(&token)).await.0, 200);
    let (status, body) = sim.numrot_token("demo", "demo-password").await;
    assert_eq!((status, error_of(&body)), (500, "user not registered"));
    assert_eq!(sim.numrot_get(Some(&token)).await.0, 200, "script used up");

    sim.control_post("faults", json!({ "vendor": "numrot", "outage": true }))
        .await;
    assert_eq!(sim.numrot_get(Some(&token)).await.0, 503);
    let stats = sim.control("stats").await;
    assert_eq!(stats["numrot"]["call"], 4);
    assert_eq!(stats["numrot"]["token"], 2);
}
