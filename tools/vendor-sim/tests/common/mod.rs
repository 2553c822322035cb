//! What every simulator HTTP test shares: a simulator on a free port, Basic-auth JSON posts to a
//! vendor, and the control API.

#![allow(dead_code)] // each test file uses its own part of this

use serde_json::Value;
use vendor_sim::SimConfig;

/// A simulator serving on a free loopback port for the rest of the test.
pub struct Sim {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The client every call goes through.
    pub http: reqwest::Client,
}

/// Starts a simulator with the demo configuration.
pub async fn start() -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vendor_sim::serve(
        listener,
        SimConfig::default(),
        std::future::pending(),
    ));
    Sim {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    }
}

impl Sim {
    /// POSTs JSON to `path` (under the simulator) with Basic credentials; the status and the body.
    pub async fn post_as(
        &self,
        path: &str,
        login: &str,
        password: &str,
        body: Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(login, Some(password))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// `GET /sim/<path>` as JSON.
    pub async fn control(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/sim/{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
