//! The GestoPago simulator over HTTP: the form-url-encoded token call of docs/vendors/gestopago.md
//! (200, 401, 415), also on the separate authentication server, bearer calls (401 missing or
//! incorrect, 403 expired or invalidated), the AES-256-CBC/PKCS7 `signed` payload by POST form-data
//! (multipart, or form-url-encoded when set) and GET query, in Base64 or hex, a configured token path,
//! key and IV, and scripted statuses.

use std::collections::HashMap;
use std::time::Duration;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeEncrypt, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use vendor_sim::SimConfig;

mod common;

use common::{Sim, error_of, form, start, start_with};

const TOKEN: &str = "/gestopago/api/token";
const DEMO_KEY: &[u8; 32] = b"pasarela-gestopago-demo-key-32by";
const DEMO_IV: &[u8; 16] = b"pasarela-demo-iv";
const UNDECRYPTABLE: &str = "signed does not decrypt under the configured key and IV";

/// `payload` as GestoPago expects it: JSON, AES-256-CBC with PKCS7 under `key` and `iv`, standard Base64.
fn sign(payload: &Value, key: &[u8; 32], iv: &[u8; 16]) -> String {
    let cipher = cbc::Encryptor::<aes::Aes256>::new(key.into(), iv.into())
        .encrypt_padded_vec::<Pkcs7>(payload.to_string().as_bytes());
    STANDARD.encode(cipher)
}

fn demo_sign(payload: &Value) -> String {
    sign(payload, DEMO_KEY, DEMO_IV)
}

const DEMO_CREDENTIALS: [(&str, &str); 3] = [
    ("idDistribuidor", "demo-distribuidor"),
    ("codigoDispositivo", "demo-dispositivo"),
    ("password", "demo-password"),
];

impl Sim {
    async fn gestopago_token_at(&self, path: &str) -> String {
        let (status, body) = self.post_form(path, &DEMO_CREDENTIALS, None).await;
        assert_eq!(status, 200, "{body}");
        body["accessToken"].as_str().unwrap().to_string()
    }

    async fn gestopago_token(&self) -> String {
        self.gestopago_token_at(TOKEN).await
    }

    /// A POST call with `signed` in a `multipart/form-data` body, the default reading.
    async fn gestopago_post(&self, path: &str, token: Option<&str>, signed: &str) -> (u16, Value) {
        self.post_multipart(path, &[("signed", signed)], token)
            .await
    }

    /// A POST with `fields` as `multipart/form-data` text parts.
    async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(form);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// A GET call with `signed` as the query parameter.
    async fn gestopago_get(&self, path: &str, token: Option<&str>, signed: &str) -> (u16, Value) {
        let query = form(&[("signed", signed)]);
        self.request(Method::GET, &format!("{path}?{query}"), token, None)
            .await
    }
}

#[tokio::test]
async fn the_token_call_takes_form_credentials_only() {
    let sim = start().await;
    let (status, body) = sim.post_form(TOKEN, &DEMO_CREDENTIALS, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expiresIn"], 86_400);
    let token = body["accessToken"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "JWT-looking: {token}");

    for wrong in [0, 1, 2] {
        let mut fields = DEMO_CREDENTIALS;
        fields[wrong].1 = "wrong";
        let (status, body) = sim.post_form(TOKEN, &fields, None).await;
        assert_eq!(status, 401, "{fields:?}: {body}");
        assert_eq!(error_of(&body), "invalid credentials");
    }
    let (status, body) = sim.post_form(TOKEN, &DEMO_CREDENTIALS[..2], None).await;
    assert_eq!((status, error_of(&body)), (401, "invalid credentials"));

    let as_json: HashMap<_, _> = DEMO_CREDENTIALS.into_iter().collect();
    let (status, body) = sim
        .request(Method::POST, TOKEN, None, Some(json!(as_json)))
        .await;
    assert_eq!(status, 415, "{body}");
    assert!(error_of(&body).contains("x-www-form-urlencoded"), "{body}");
    let (status, _) = sim.request(Method::GET, TOKEN, None, None).await;
    assert_eq!(status, 405);

    let recorded = sim.control("requests?vendor=gestopago&op=token").await;
    let recorded = recorded.as_array().unwrap();
    assert_eq!(recorded.len(), 6, "the GET is no token call");
    assert_eq!(recorded[0]["login"], "demo-distribuidor");
    assert_eq!(
        recorded[0]["body"],
        json!({ "server": "api", "idDistribuidor": "demo-distribuidor",
                "codigoDispositivo": "demo-dispositivo" })
    );
    let text = serde_json::to_string(recorded).unwrap();
    assert!(
        !text.contains("demo-password"),
        "passwords are never recorded: {text}"
    );
}

#[tokio::test]
async fn signed_payloads_decrypt_by_post_form_and_get_query() {
    let sim = start().await;
    let token = sim.gestopago_token().await;
    let payload = json!({ "idProducto": 17, "referencia": "5512345678", "monto": 100.5,
                          "nota": "ñandú + más/?" });

    let (status, body) = sim
        .gestopago_post(
            "/gestopago/api/v1/recarga",
            Some(&token),
            &demo_sign(&payload),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "method": "POST", "path": "/api/v1/recarga", "payload": payload })
    );

    let (status, body) = sim
        .gestopago_get(
            "/gestopago/api/v1/saldo",
            Some(&token),
            &demo_sign(&payload),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "method": "GET", "path": "/api/v1/saldo", "payload": payload })
    );

    let recorded = sim.control("requests?vendor=gestopago&op=call").await;
    assert_eq!(recorded[0]["body"]["payload"], payload);
    assert_eq!(recorded[1]["body"]["method"], "GET");
}

#[tokio::test]
async fn a_missing_or_undecryptable_signed_is_400() {
    let sim = start().await;
    let token = sim.gestopago_token().await;
    let path = "/gestopago/api/v1/recarga";

    let (status, body) = sim
        .post_multipart(path, &[("other", "x")], Some(&token))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("signed is missing"), "{body}");
    let (status, body) = sim.request(Method::GET, path, Some(&token), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("query parameter"), "{body}");
    let signed = demo_sign(&json!({ "monto": 1 }));
    let (status, body) = sim
        .request(
            Method::POST,
            &format!("{path}?{}", form(&[("signed", &signed)])),
            Some(&token),
            Some(json!({ "signed": signed })),
        )
        .await;
    assert_eq!(status, 415, "POST reads the form-data body only: {body}");

    let wrong_key = sign(
        &json!({ "monto": 1 }),
        b"another-key-of-thirty-two-bytes!",
        DEMO_IV,
    );
    let cipher_of_text = STANDARD.encode(
        cbc::Encryptor::<aes::Aes256>::new(DEMO_KEY.into(), DEMO_IV.into())
            .encrypt_padded_vec::<Pkcs7>(b"monto=1"),
    );
    for signed in [
        wrong_key.as_str(),
        "bm90IGNpcGhlcg==",
        "%%%",
        &cipher_of_text,
    ] {
        let (status, body) = sim.gestopago_post(path, Some(&token), signed).await;
        assert_eq!(status, 400, "{signed}: {body}");
        assert_eq!(error_of(&body), UNDECRYPTABLE);
        let (status, body) = sim.gestopago_get(path, Some(&token), signed).await;
        assert_eq!((status, error_of(&body)), (400, UNDECRYPTABLE));
    }
    // A `+` of the Base64 sent unencoded is a space once the form is decoded.
    sim.control_post(
        "gestopago/settings",
        json!({ "payload_encoding": "urlencoded" }),
    )
    .await;
    let with_plus = (0..)
        .map(|n| demo_sign(&json!({ "n": n })))
        .find(|s| s.contains('+'))
        .unwrap();
    let r = sim
        .http
        .post(format!("{}{path}", sim.base))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("signed={with_plus}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn calls_need_a_token_401_when_missing_or_incorrect() {
    let sim = start().await;
    let signed = demo_sign(&json!({ "monto": 1 }));
    let path = "/gestopago/api/v1/recarga";
    let (status, body) = sim.gestopago_post(path, None, &signed).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = sim.gestopago_get(path, Some("a.b.c"), &signed).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = sim.request(Method::GET, path, None, None).await;
    assert_eq!(status, 401, "the token is checked before the payload");
    let (status, _) = sim
        .request(Method::GET, "/gestopago/elsewhere", None, None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(sim.control("stats").await["gestopago"]["call"], 3);
}

#[tokio::test]
async fn expired_and_invalidated_tokens_are_403() {
    let sim = start().await;
    let signed = demo_sign(&json!({ "monto": 1 }));
    let path = "/gestopago/api/v1/recarga";
    let (status, settings) = sim
        .control_post("gestopago/settings", json!({ "token_lifetime_s": 1 }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        settings,
        json!({ "token_lifetime_s": 1, "token_path": "/api/token",
                "payload_encoding": "multipart", "cipher_encoding": "base64" })
    );
    let (_, body) = sim.post_form(TOKEN, &DEMO_CREDENTIALS, None).await;
    assert_eq!(body["expiresIn"], 1);
    let short = body["accessToken"].as_str().unwrap().to_string();
    assert_eq!(sim.gestopago_post(path, Some(&short), &signed).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = sim.gestopago_post(path, Some(&short), &signed).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(sim.gestopago_get(path, Some(&short), &signed).await.0, 403);

    let (status, _) = sim
        .control_post("gestopago/settings", json!({ "token_lifetime_s": 86_400 }))
        .await;
    assert_eq!(status, 200);
    let long = sim.gestopago_token().await;
    assert_eq!(sim.gestopago_get(path, Some(&long), &signed).await.0, 200);
    let (status, _) = sim.control_post("gestopago/invalidate", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(sim.gestopago_get(path, Some(&long), &signed).await.0, 403);
    let fresh = sim.gestopago_token().await;
    assert_eq!(sim.gestopago_get(path, Some(&fresh), &signed).await.0, 200);

    let (status, _) = sim
        .control_post("gestopago/settings", json!({ "token_lifetime_s": -1 }))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_token_path_key_and_iv_come_from_the_configuration() {
    let key = [7u8; 32];
    let iv = [9u8; 16];
    let vars = HashMap::from([
        (
            "GESTOPAGO_TOKEN_PATH".to_string(),
            "/auth/login".to_string(),
        ),
        ("GESTOPAGO_PASSWORD".to_string(), "s3cret".to_string()),
        (
            "GESTOPAGO_AES_KEY".to_string(),
            format!("base64:{}", STANDARD.encode(key)),
        ),
        (
            "GESTOPAGO_AES_IV".to_string(),
            format!("hex:{}", "09".repeat(16)),
        ),
    ]);
    let sim = start_with(SimConfig::from_vars(&vars)).await;
    let mut credentials = DEMO_CREDENTIALS;
    credentials[2].1 = "s3cret";
    let (status, body) = sim
        .post_form("/gestopago/auth/login", &credentials, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["accessToken"].as_str().unwrap();
    let (status, _) = sim.post_form(TOKEN, &credentials, None).await;
    assert_eq!(status, 401, "/api/token is now an ordinary protected path");

    let payload = json!({ "monto": 5 });
    let (status, body) = sim
        .gestopago_post(
            "/gestopago/api/pago",
            Some(token),
            &sign(&payload, &key, &iv),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"], payload);
    let (status, body) = sim
        .gestopago_post("/gestopago/api/pago", Some(token), &demo_sign(&payload))
        .await;
    assert_eq!((status, error_of(&body)), (400, UNDECRYPTABLE));
}

#[tokio::test]
async fn scripted_statuses_apply_to_gestopago() {
    let sim = start().await;
    let token = sim.gestopago_token().await;
    let signed = demo_sign(&json!({ "monto": 1 }));
    let path = "/gestopago/api/v1/recarga";
    sim.control_post(
        "faults",
        json!({ "vendor": "gestopago", "script": ["403", "401", "200"] }),
    )
    .await;
    assert_eq!(sim.gestopago_post(path, Some(&token), &signed).await.0, 403);
    assert_eq!(sim.gestopago_post(path, Some(&token), &signed).await.0, 401);
    assert_eq!(sim.gestopago_post(path, Some(&token), &signed).await.0, 200);
    assert_eq!(sim.gestopago_post(path, Some(&token), &signed).await.0, 200);
    sim.control_post(
        "faults",
        json!({ "vendor": "gestopago", "rate_limit_retry_after_s": 2 }),
    )
    .await;
    let r = sim
        .http
        .post(format!("{}{TOKEN}", sim.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&DEMO_CREDENTIALS))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
}

/// The readings the document leaves open: the simulator takes `signed` only as its settings say, and
/// answers the token call on the separate authentication server too.
#[tokio::test]
async fn signed_is_taken_only_in_the_configured_encoding() {
    let sim = start().await;
    let token = sim.gestopago_token().await;
    let path = "/gestopago/api/v1/recarga";
    let payload = json!({ "monto": 1 });
    let signed = demo_sign(&payload);
    let cipher = STANDARD.decode(&signed).unwrap();
    let hex: String = cipher.iter().map(|b| format!("{b:02X}")).collect();

    assert_eq!(sim.gestopago_post(path, Some(&token), &signed).await.0, 200);
    let (status, body) = sim
        .post_form(path, &[("signed", &signed)], Some(&token))
        .await;
    assert_eq!(status, 415, "multipart is the default: {body}");
    assert!(error_of(&body).contains("multipart/form-data"), "{body}");

    let (status, settings) = sim
        .control_post(
            "gestopago/settings",
            json!({ "payload_encoding": "urlencoded", "cipher_encoding": "hex" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(settings["payload_encoding"], "urlencoded");
    let (status, body) = sim.post_form(path, &[("signed", &hex)], Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"], payload);
    let lower = hex.to_lowercase();
    let (status, _) = sim.gestopago_get(path, Some(&token), &lower).await;
    assert_eq!(status, 200, "hex in either case");
    let (status, body) = sim
        .post_form(path, &[("signed", &signed)], Some(&token))
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (400, UNDECRYPTABLE),
        "Base64 is refused now"
    );
    let (status, _) = sim.gestopago_post(path, Some(&token), &hex).await;
    assert_eq!(status, 415, "multipart is refused now");

    let (status, body) = sim
        .control_post("gestopago/settings", json!({ "payload_encoding": "json" }))
        .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = sim
        .post_form("/gestopago-auth/api/token", &DEMO_CREDENTIALS, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["accessToken"].is_string());
    let recorded = sim.control("requests?vendor=gestopago&op=token").await;
    let servers: Vec<&str> = recorded
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"]["server"].as_str().unwrap())
        .collect();
    assert_eq!(servers, ["api", "auth"]);
    let (status, _) = sim
        .post_form("/gestopago-auth/api/other", &DEMO_CREDENTIALS, None)
        .await;
    assert_eq!(status, 404);
}
