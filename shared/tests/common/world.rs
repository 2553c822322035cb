//! The NumRot and GestoPago clients' world: the vendor simulator in process and token stores on one
//! fresh database.

use std::sync::Arc;
use std::time::Duration;

use pasarela_shared::contract::env::{Env, FromEnv};
use pasarela_shared::store::vendor_tokens::{SecretKey, TokenStore};
use pasarela_shared::vendors::gestopago::{GestoPagoClient, GestoPagoSettings};
use pasarela_shared::vendors::numrot::{NumRotClient, NumRotSettings};
use secrecy::SecretString;
use serde_json::Value;

use super::{SECRET_KEY, TestDb};

/// The simulator in process, and `replicas` token stores on one fresh database.
pub struct World {
    /// The simulator's base URL.
    pub sim: String,
    /// A client for its control API.
    pub http: reqwest::Client,
    /// One token store per replica.
    pub stores: Vec<Arc<TokenStore>>,
    db: TestDb,
}

/// A world with `replicas` token stores.
pub async fn world(replicas: usize) -> World {
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
    /// The vendors' settings pointing at the simulator, with `extra` on top.
    pub fn env(&self, extra: &[(&str, &str)]) -> Env {
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
        pairs.push(("PASARELA_PROFILE".into(), "demo".into()));
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env::from_pairs(pairs)
    }

    /// A NumRot client with `extra` settings.
    pub fn numrot(&self, extra: &[(&str, &str)]) -> NumRotClient {
        NumRotClient::new(&NumRotSettings::from_env(&self.env(extra)).unwrap()).unwrap()
    }

    /// A GestoPago client with the default settings.
    pub fn gestopago(&self) -> GestoPagoClient {
        self.gestopago_with(&[])
    }

    /// A GestoPago client with `extra` settings.
    pub fn gestopago_with(&self, extra: &[(&str, &str)]) -> GestoPagoClient {
        GestoPagoClient::new(&GestoPagoSettings::from_env(&self.env(extra)).unwrap()).unwrap()
    }

    /// Calls the simulator counted for a vendor operation.
    pub async fn calls(&self, vendor: &str, op: &str) -> u64 {
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

    /// The requests the simulator recorded for a vendor operation.
    pub async fn requests(&self, vendor: &str, op: &str) -> Value {
        self.http
            .get(format!("{}/sim/requests?vendor={vendor}&op={op}", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `POST /sim/<path>`, which must succeed.
    pub async fn control(&self, path: &str, body: Value) {
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

    /// Drops the database.
    pub async fn drop_database(self) {
        drop(self.stores);
        self.db.drop().await;
    }
}
