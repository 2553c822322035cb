//! The Aldeamo simulator over HTTP: credentials, the request rules of docs/vendors/aldeamo.md, codes
//! shaped by their configuration, single use, the attempt limit, expiry, scripted sending failures
//! and the configuration control endpoint.

use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::{Sim, error_of, start};

impl Sim {
    async fn post(&self, op: &str, body: Value, password: &str) -> (u16, Value) {
        self.post_as(&format!("/aldeamo/{op}"), "demo", password, body)
            .await
    }

    async fn send(&self, body: Value) -> (u16, Value) {
        self.post("otp", body, "demo-password").await
    }

    /// Validates and returns the HTTP status and the answer's `status`.
    async fn validate(&self, otp_id: &str, pin: &str) -> (u16, String) {
        let (code, body) = self
            .post(
                "validateOtp",
                json!({ "otpId": otp_id, "pin": pin }),
                "demo-password",
            )
            .await;
        assert_eq!(body["otpId"], otp_id, "{body}");
        (code, body["status"].as_str().unwrap().to_string())
    }

    async fn configure(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/sim/aldeamo/configs", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn script(&self, entries: &[&str]) {
        self.http
            .post(format!("{}/sim/faults", self.base))
            .json(&json!({ "vendor": "aldeamo", "script": entries }))
            .send()
            .await
            .unwrap();
    }

    async fn inbox(&self, to: &str) -> Vec<Value> {
        let inbox = self.control(&format!("inbox?to={to}")).await;
        inbox.as_array().unwrap().clone()
    }

    async fn code_for(&self, to: &str) -> String {
        self.inbox(to).await.last().unwrap()["code"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn sms(otp_id: &str, mobile: &str) -> Value {
    json!({ "configId": "cfg-sms", "otpId": otp_id, "mobile": mobile })
}

#[tokio::test]
async fn otp_enforces_credentials_and_the_documented_request_rules() {
    let sim = start().await;
    let (status, body) = sim.post("otp", sms("a1", "573001000001"), "wrong").await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string(), "{body}");
    let anonymous = sim
        .http
        .post(format!("{}/aldeamo/otp", sim.base))
        .json(&sms("a1", "573001000001"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    let (status, body) = sim.send(sms("abcdefghij0123456789X", "573001000001")).await;
    assert_eq!(status, 400);
    assert!(
        error_of(&body).contains("otpId") && error_of(&body).contains("20"),
        "{body}"
    );
    let (status, body) = sim.send(sms("abc-123", "573001000001")).await;
    assert_eq!((status, error_of(&body).contains("otpId")), (400, true));

    let (status, body) = sim
        .send(json!({ "configId": "cfg-sms", "otpId": "a1", "email": "ana@example.com" }))
        .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("mobile"), "{body}");
    let (status, body) = sim
        .send(json!({ "configId": "cfg-whatsapp", "otpId": "a1" }))
        .await;
    assert_eq!((status, error_of(&body).contains("mobile")), (400, true));
    let (status, body) = sim
        .send(json!({ "configId": "cfg-email", "otpId": "a1", "mobile": "573001000001" }))
        .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("email"), "{body}");

    let (status, body) = sim
        .send(json!({ "configId": "cfg-nope", "otpId": "a1", "mobile": "573001000001" }))
        .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("is not configured"), "{body}");
    let (status, body) = sim
        .send(json!({ "otpId": "a1", "mobile": "573001000001" }))
        .await;
    assert_eq!((status, error_of(&body).contains("configId")), (400, true));

    assert!(
        sim.inbox("573001000001").await.is_empty(),
        "nothing is delivered for a rejected request"
    );
    let stats = sim.control("stats").await;
    assert_eq!(stats["aldeamo"]["otp"], 9);
}

#[tokio::test]
async fn a_send_delivers_a_code_shaped_by_its_configuration() {
    let sim = start().await;
    let (status, body) = sim.send(sms("sms1", "573001000002")).await;
    assert_eq!(status, 200);
    assert_eq!(body["smsSendingStatus"], "ok");
    assert_eq!(body["emailSendingStatus"], "not_requested");
    let transaction = body["otpTransactionId"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(transaction)
            .unwrap()
            .get_version_num(),
        4
    );
    let delivered = sim.inbox("573001000002").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["vendor"], "aldeamo");
    assert_eq!(delivered[0]["request_id"], "sms1");
    let code = delivered[0]["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");

    let (status, body) = sim
        .send(json!({ "configId": "cfg-email", "otpId": "mail1", "email": "ana@example.com" }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["emailSendingStatus"], "ok");
    assert_eq!(body["smsSendingStatus"], "not_requested");
    let code = sim.code_for("ana@example.com").await;
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()), "{code}");

    let (status, body) = sim
        .send(json!({ "configId": "cfg-voice", "otpId": "voice1", "mobile": "573001000003" }))
        .await;
    assert_eq!((status, &body["smsSendingStatus"]), (200, &json!("ok")));
    assert_eq!(sim.code_for("573001000003").await.len(), 4);

    let (status, _) = sim
        .configure(
            json!({ "config_id": "cfg-letters", "channel": "whatsapp", "length": 7,
                           "type": "alphabetic", "expiry_minutes": 3 }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = sim
        .send(json!({ "configId": "cfg-letters", "otpId": "wa1", "mobile": "573001000004" }))
        .await;
    assert_eq!((status, &body["smsSendingStatus"]), (200, &json!("ok")));
    let code = sim.code_for("573001000004").await;
    assert_eq!(code.len(), 7);
    assert!(code.chars().all(|c| c.is_ascii_alphabetic()), "{code}");
}

#[tokio::test]
async fn validation_is_single_use_and_knows_only_sent_otp_ids() {
    let sim = start().await;
    sim.send(sms("once1", "573001000010")).await;
    let code = sim.code_for("573001000010").await;
    assert_eq!(sim.validate("once1", "x").await, (200, "INVALID".into()));
    assert_eq!(
        sim.validate("once1", &code).await,
        (200, "VALIDATED".into())
    );
    assert_eq!(
        sim.validate("once1", &code).await,
        (200, "ALREADY_USED".into())
    );
    assert_eq!(
        sim.validate("never1", &code).await,
        (404, "NOT_FOUND".into())
    );

    // The document's own spelling of the field.
    sim.send(sms("typo1", "573001000011")).await;
    let code = sim.code_for("573001000011").await;
    let (status, body) = sim
        .post(
            "validateOtp",
            json!({ "otpld": "typo1", "pin": code }),
            "demo-password",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "otpId": "typo1", "status": "VALIDATED" }));

    let (status, body) = sim
        .post("validateOtp", json!({ "pin": "123456" }), "demo-password")
        .await;
    assert_eq!((status, error_of(&body).contains("otpId")), (400, true));
    let (status, body) = sim
        .post("validateOtp", json!({ "otpId": "once1" }), "demo-password")
        .await;
    assert_eq!((status, error_of(&body).contains("pin")), (400, true));
    let (status, _) = sim
        .post(
            "validateOtp",
            json!({ "otpId": "once1", "pin": "1" }),
            "wrong",
        )
        .await;
    assert_eq!(status, 401);

    // The typed pin is never recorded.
    let recorded = sim.control("requests?vendor=aldeamo&op=validateOtp").await;
    assert_eq!(recorded[0]["body"], json!({ "otpId": "once1" }));
}

#[tokio::test]
async fn a_code_is_disabled_after_the_configured_failures_until_it_is_sent_again() {
    let sim = start().await;
    sim.send(sms("tries1", "573001000020")).await;
    let code = sim.code_for("573001000020").await;
    for _ in 0..5 {
        assert_eq!(sim.validate("tries1", "wrong").await.1, "INVALID");
    }
    assert_eq!(sim.validate("tries1", &code).await.1, "MAX_ATTEMPTS");

    // A retried send under the same otpId replaces the code and starts its count afresh.
    sim.send(sms("tries1", "573001000020")).await;
    let fresh = sim.code_for("573001000020").await;
    assert_eq!(sim.inbox("573001000020").await.len(), 2);
    assert_eq!(sim.validate("tries1", "wrong").await.1, "INVALID");
    assert_eq!(sim.validate("tries1", &fresh).await.1, "VALIDATED");

    sim.configure(
        json!({ "config_id": "cfg-strict", "channel": "sms", "length": 4,
                          "type": "numeric", "expiry_minutes": 5, "max_attempts": 1 }),
    )
    .await;
    sim.send(json!({ "configId": "cfg-strict", "otpId": "strict1", "mobile": "573001000021" }))
        .await;
    let code = sim.code_for("573001000021").await;
    assert_eq!(sim.validate("strict1", "wrong").await.1, "INVALID");
    assert_eq!(sim.validate("strict1", &code).await.1, "MAX_ATTEMPTS");
}

#[tokio::test]
async fn a_code_expires_with_its_configuration() {
    let sim = start().await;
    let (status, body) = sim
        .configure(
            json!({ "config_id": "cfg-fast", "channel": "sms", "length": 6,
                           "type": "numeric", "expiry_minutes": 1, "expiry_seconds": 1 }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["expiry_seconds"], 1);
    sim.send(json!({ "configId": "cfg-fast", "otpId": "late1", "mobile": "573001000030" }))
        .await;
    let code = sim.code_for("573001000030").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sim.validate("late1", &code).await, (200, "EXPIRED".into()));
}

#[tokio::test]
async fn scripted_statuses_fail_a_send_or_force_a_validation() {
    let sim = start().await;
    sim.send(sms("kept1", "573001000040")).await;
    let earlier = sim.code_for("573001000040").await;

    sim.script(&["failed", "failed"]).await;
    let (status, body) = sim.send(sms("kept1", "573001000040")).await;
    assert_eq!(status, 200);
    assert_eq!(body["smsSendingStatus"], "failed");
    assert_eq!(body["emailSendingStatus"], "not_requested");
    assert!(body["otpTransactionId"].is_string());
    let (_, body) = sim
        .send(json!({ "configId": "cfg-email", "otpId": "mail2", "email": "bea@example.com" }))
        .await;
    assert_eq!(body["emailSendingStatus"], "failed");
    assert_eq!(body["smsSendingStatus"], "not_requested");
    assert_eq!(
        sim.inbox("573001000040").await.len(),
        1,
        "a failed send delivers nothing"
    );
    assert!(sim.inbox("bea@example.com").await.is_empty());
    assert_eq!(
        sim.validate("mail2", "whatever").await.1,
        "NOT_FOUND",
        "a failed send stores no code"
    );
    assert_eq!(
        sim.validate("kept1", &earlier).await.1,
        "VALIDATED",
        "a failed send leaves the earlier code in place"
    );

    sim.script(&["ok", "EXPIRED"]).await;
    let (_, body) = sim.send(sms("fresh1", "573001000041")).await;
    assert_eq!(body["smsSendingStatus"], "ok");
    let code = sim.code_for("573001000041").await;
    assert_eq!(sim.validate("fresh1", &code).await, (200, "EXPIRED".into()));
    assert_eq!(
        sim.validate("fresh1", &code).await.1,
        "VALIDATED",
        "a forced status leaves the code untouched"
    );
    let stats = sim.control("stats").await;
    assert_eq!(
        (&stats["aldeamo"]["otp"], &stats["aldeamo"]["validateOtp"]),
        (&json!(4), &json!(4))
    );
}

#[tokio::test]
async fn the_configuration_endpoint_holds_configurations_to_the_documented_limits() {
    let sim = start().await;
    let ids: Vec<Value> = sim
        .control("aldeamo/configs")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["config_id"].clone())
        .collect();
    assert_eq!(
        ids,
        json!(["cfg-1", "cfg-email", "cfg-sms", "cfg-voice", "cfg-whatsapp"])
            .as_array()
            .unwrap()
            .clone()
    );

    let body = |length: i64, minutes: i64| {
        json!({ "config_id": "cfg-new", "channel": "email", "length": length,
                "type": "alphanumeric", "expiry_minutes": minutes })
    };
    let (status, answer) = sim.configure(body(9, 10)).await;
    assert_eq!(status, 400);
    assert!(error_of(&answer).contains("length"), "{answer}");
    let (status, answer) = sim.configure(body(8, 121)).await;
    assert_eq!(status, 400);
    assert!(error_of(&answer).contains("expiry_minutes"), "{answer}");
    let (status, answer) = sim.configure(json!({ "config_id": "cfg-new" })).await;
    assert_eq!(status, 400);
    assert!(error_of(&answer).contains("channel"), "{answer}");
    let (status, answer) = sim.configure(body(8, 120)).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({ "config_id": "cfg-new", "channel": "email", "length": 8, "type": "alphanumeric",
                "expiry_minutes": 120, "expiry_seconds": 7200, "max_attempts": 5 })
    );

    // Replacing a configuration: sends under it follow the new properties.
    let (status, _) = sim
        .configure(
            json!({ "config_id": "cfg-sms", "channel": "sms", "length": 8,
                           "type": "alphabetic", "expiry_minutes": 5 }),
        )
        .await;
    assert_eq!(status, 200);
    sim.send(sms("swap1", "573001000050")).await;
    let code = sim.code_for("573001000050").await;
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| c.is_ascii_alphabetic()), "{code}");
    let listed = sim.control("aldeamo/configs").await;
    assert_eq!(listed.as_array().unwrap().len(), 6);
}
