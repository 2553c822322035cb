//! What doc-sign reads from the environment besides the runtime's settings.

use pasarela_shared::contract::env::{ConfigError, Env, FromEnv};
use pasarela_shared::contract::settings::{DocumentSettings, WebhookSettings};
use pasarela_shared::store::vendor_tokens::SecretKey;
use pasarela_shared::vendors::signing::SigningClient;

/// The signing client, the token key, and the document and webhook rules.
pub struct Settings {
    /// `SIGNING_*`.
    pub client: SigningClient,
    /// `PASARELA_SECRET_KEY`: the key the shared vendor token is encrypted with.
    pub key: SecretKey,
    /// How documents are taken, polled for and kept.
    pub documents: DocumentSettings,
    /// The client webhook rules (the callback URL guard's allow-list).
    pub webhooks: WebhookSettings,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            client: SigningClient::from_env(env)?,
            key: SecretKey::from_env(env)?,
            documents: DocumentSettings::from_env(env)?,
            webhooks: WebhookSettings::from_env(env)?,
        })
    }
}
