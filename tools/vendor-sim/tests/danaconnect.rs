//! The DANAConnect simulator over HTTP: credentials, every range check, single use, the attempt limit
//! and expiry, as docs/vendors/danaconnect.md describes them.

use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::{Sim, start};

impl Sim {
    async fn post(&self, op: &str, body: Value, password: &str) -> (u16, Value) {
        self.post_as(
            &format!("/danaconnect/otp/1.0/{op}"),
            "demo@pasarela",
            password,
            body,
        )
        .await
    }

    async fn send(&self, body: Value) -> Value {
        self.post("send", body, "demo-password").await.1
    }

    async fn verify(&self, id: i64, otp: &str) -> String {
        let (_, v) = self
            .post(
                "verify",
                json!({ "idRequest": id, "otp": otp }),
                "demo-password",
            )
            .await;
        v["responseCode"].as_str().unwrap().to_string()
    }

    async fn code_for(&self, to: &str) -> String {
        let inbox = self
            .control(&format!("inbox?to={}", to.replace('+', "%2B")))
            .await;
        inbox.as_array().unwrap().last().unwrap()["code"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn send_body(to: &str, kind: i64, length: i64, seconds: i64) -> Value {
    json!({ "idConversation": 824541, "values": [ { "key": "COD1_MOBILE", "value": to } ],
            "type": kind, "length": length, "secondsExpiration": seconds, "maximumTries": 2 })
}

#[tokio::test]
async fn send_enforces_credentials_and_every_range() {
    let sim = start().await;
    let (status, body) = sim.post("send", send_body("+571", 1, 6, 60), "wrong").await;
    assert_eq!((status, body["responseCode"].as_str()), (401, Some("06")));
    let code = |b: Value| b["responseCode"].as_str().unwrap().to_string();
    assert_eq!(code(sim.send(send_body("+571", 3, 6, 60)).await), "07");
    assert_eq!(code(sim.send(send_body("+571", 1, 2, 60)).await), "08");
    assert_eq!(code(sim.send(send_body("+571", 1, 13, 60)).await), "08");
    assert_eq!(code(sim.send(send_body("+571", 1, 6, 0)).await), "09");
    assert_eq!(code(sim.send(send_body("+571", 1, 6, 3201)).await), "09");
    let mut bad_conversation = send_body("+571", 1, 6, 60);
    bad_conversation["idConversation"] = json!(0);
    assert_eq!(code(sim.send(bad_conversation).await), "10");
    assert_eq!(code(sim.send(json!(["not", "an", "object"])).await), "15");
    let ok = sim.send(send_body("+571", 2, 12, 3200)).await;
    assert_eq!(code(ok.clone()), "01");
    assert!(ok["idRequest"].as_i64().is_some());
    assert!(ok["conversationRequestId"].as_str().is_some());
    let delivered = sim.code_for("+571").await;
    assert_eq!(delivered.len(), 12);
}

/// The same code reads differently per service: `/verify`'s 04 is "Incorrect code", `/send`'s "Failed".
#[tokio::test]
async fn code_04_is_worded_per_service() {
    let sim = start().await;
    let id = sim.send(send_body("+575", 1, 6, 60)).await["idRequest"]
        .as_i64()
        .unwrap();
    let (_, v) = sim
        .post(
            "verify",
            json!({ "idRequest": id, "otp": "000000x" }),
            "demo-password",
        )
        .await;
    assert_eq!(v["responseCode"], "04");
    assert_eq!(v["responseDescription"], "Incorrect code");
    sim.control_post(
        "faults",
        json!({ "vendor": "danaconnect", "script": ["04"] }),
    )
    .await;
    let failed = sim.send(send_body("+576", 1, 6, 60)).await;
    assert_eq!(failed["responseCode"], "04");
    assert_eq!(failed["responseDescription"], "Failed");
}

#[tokio::test]
async fn verify_is_single_use_limits_attempts_and_expires() {
    let sim = start().await;
    let id = sim.send(send_body("+572", 1, 6, 60)).await["idRequest"]
        .as_i64()
        .unwrap();
    let code = sim.code_for("+572").await;
    assert_eq!(sim.verify(id, "000000x").await, "04");
    assert_eq!(sim.verify(id, &code).await, "01");
    assert_eq!(sim.verify(id, &code).await, "14", "single use");

    let id = sim.send(send_body("+573", 1, 6, 60)).await["idRequest"]
        .as_i64()
        .unwrap();
    let code = sim.code_for("+573").await;
    assert_eq!(sim.verify(id, "wrong1").await, "04");
    assert_eq!(sim.verify(id, "wrong2").await, "04");
    assert_eq!(
        sim.verify(id, &code).await,
        "16",
        "disabled after maximumTries wrong answers"
    );

    let id = sim.send(send_body("+574", 1, 6, 1)).await["idRequest"]
        .as_i64()
        .unwrap();
    let code = sim.code_for("+574").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sim.verify(id, &code).await, "03");
}

#[tokio::test]
async fn faults_and_stats_are_driven_at_run_time() {
    let sim = start().await;
    let faults = |body: Value| {
        sim.http
            .post(format!("{}/sim/faults", sim.base))
            .json(&body)
            .send()
    };
    faults(json!({ "vendor": "danaconnect", "script": ["05"] }))
        .await
        .unwrap();
    assert_eq!(
        sim.send(send_body("+575", 1, 6, 60)).await["responseCode"],
        "05"
    );
    assert_eq!(
        sim.send(send_body("+575", 1, 6, 60)).await["responseCode"],
        "01"
    );
    faults(json!({ "vendor": "danaconnect", "rate_limit_retry_after_s": 7 }))
        .await
        .unwrap();
    let r = sim
        .http
        .post(format!("{}/danaconnect/otp/1.0/send", sim.base))
        .basic_auth("demo@pasarela", Some("demo-password"))
        .json(&send_body("+575", 1, 6, 60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    faults(json!({ "vendor": "danaconnect", "outage": true }))
        .await
        .unwrap();
    let (status, _) = sim
        .post("send", send_body("+575", 1, 6, 60), "demo-password")
        .await;
    assert_eq!(status, 503);
    sim.http
        .delete(format!("{}/sim/faults", sim.base))
        .send()
        .await
        .unwrap();
    let stats = sim.control("stats").await;
    assert_eq!(stats["danaconnect"]["send"], 4);
}
