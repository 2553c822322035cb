//! What every simulator HTTP test shares: a simulator on a free port, Basic-auth JSON posts to a
//! vendor, form and bearer-token calls, and the control API.

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
    start_with(SimConfig::default()).await
}

/// Starts a simulator with `config`.
pub async fn start_with(config: SimConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vendor_sim::serve(listener, config, std::future::pending()));
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

    /// Sends `method` to `path` (under the simulator), with a bearer token and a JSON body when given;
    /// the status and the body (`Value::Null` when it is not JSON).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs `fields` form-url-encoded to `path`, with a bearer token when given.
    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /sim/<path>` with a JSON body; the status and the body.
    pub async fn control_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.request(
            reqwest::Method::POST,
            &format!("/sim/{path}"),
            None,
            Some(body),
        )
        .await
    }
}

/// `fields` form-url-encoded (also a query string).
pub fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// The `error` text of a simulator's error answer.
pub fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap()
}
