//! The vendor simulator as a process on port 0, and the calls the tests make on its control API.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::services::binary;

/// A running vendor simulator.
pub struct Simulator {
    /// Killed at teardown (and on drop, should a test panic first).
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    http: reqwest::Client,
}

impl Simulator {
    /// Starts the simulator on port 0 and waits for its address.
    pub async fn start() -> Self {
        let mut child = Command::new(binary("vendor-sim"))
            .env("VENDOR_SIM_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting vendor-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("vendor-sim did not start in 10 s")
            .expect("reading vendor-sim output")
            .expect("vendor-sim exited");
        let addr = line
            .rsplit(' ')
            .next()
            .expect("an address on the first line")
            .to_string();
        Self {
            child,
            base_url: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    /// `GET /sim/<path>` as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/sim/{path}", self.base_url))
            .send()
            .await
            .expect("sim request")
            .json()
            .await
            .expect("sim json")
    }

    /// Calls counted for a vendor operation.
    pub async fn calls(&self, vendor: &str, op: &str) -> u64 {
        self.get("stats").await[vendor][op].as_u64().unwrap_or(0)
    }

    /// Sets a vendor's faults (`POST /sim/faults`).
    pub async fn faults(&self, body: Value) {
        let status = self
            .http
            .post(format!("{}/sim/faults", self.base_url))
            .json(&body)
            .send()
            .await
            .expect("sim faults")
            .status();
        assert!(status.is_success(), "setting faults: {status}");
    }

    /// `POST /sim/<path>` with a JSON body; returns the HTTP status.
    pub async fn post(&self, path: &str, body: &Value) -> u16 {
        self.http
            .post(format!("{}/sim/{path}", self.base_url))
            .json(body)
            .send()
            .await
            .expect("sim request")
            .status()
            .as_u16()
    }

    /// The newest code delivered to `to`, waiting up to ten seconds for one.
    pub async fn latest_code(&self, to: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let inbox = self
                .http
                .get(format!(
                    "{}/sim/inbox?to={}",
                    self.base_url,
                    to.replace('+', "%2B")
                ))
                .send()
                .await
                .expect("sim inbox")
                .json::<Value>()
                .await
                .expect("inbox json");
            if let Some(code) = inbox
                .as_array()
                .and_then(|a| a.last())
                .and_then(|e| e["code"].as_str())
            {
                return code.to_string();
            }
            assert!(Instant::now() < deadline, "no code delivered to {to}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clears every fault.
    pub async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/sim/faults", self.base_url))
            .send()
            .await
            .expect("sim faults");
    }
}
