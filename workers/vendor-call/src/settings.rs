//! What vendor-call reads from the environment besides the runtime's settings.

use pasarela_shared::contract::env::{ConfigError, Env, FromEnv};
use pasarela_shared::store::vendor_tokens::SecretKey;
use pasarela_shared::vendors::gestopago::GestoPagoClient;
use pasarela_shared::vendors::numrot::NumRotClient;

/// The vendors' clients, the token key, and whether payloads are logged.
pub struct Settings {
    /// `NUMROT_*`.
    pub numrot: NumRotClient,
    /// `GESTOPAGO_*`.
    pub gestopago: GestoPagoClient,
    /// `PASARELA_SECRET_KEY`: the key the shared vendor tokens are encrypted with.
    pub key: SecretKey,
    /// `PASARELA_LOG_PAYLOADS`: log each call's plain payload and answer, for debugging against a
    /// test vendor only.
    pub log_payloads: bool,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            numrot: NumRotClient::from_env(env)?,
            gestopago: GestoPagoClient::from_env(env)?,
            key: SecretKey::from_env(env)?,
            log_payloads: env.parse("PASARELA_LOG_PAYLOADS", false)?,
        })
    }
}
