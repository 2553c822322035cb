//! What doc-callback reads from the environment besides the runtime's settings.

use pasarela_shared::contract::env::{ConfigError, Env, FromEnv};
use pasarela_shared::contract::settings::{DocumentSettings, WebhookSettings};
use pasarela_shared::store::vendor_tokens::SecretKey;
use pasarela_shared::vendors::signing::SigningClient;
use pasarela_shared::vendors::webhook::WebhookSigner;

/// The signing client, the token key, the document rules, and how client webhooks are signed and
/// delivered.
pub struct Settings {
    /// `SIGNING_*`.
    pub client: SigningClient,
    /// `PASARELA_SECRET_KEY`: the key the shared vendor token is encrypted with.
    pub key: SecretKey,
    /// How documents are polled for and kept.
    pub documents: DocumentSettings,
    /// How client webhooks are delivered.
    pub webhooks: WebhookSettings,
    /// The signer of `PASARELA_WEBHOOK_SECRET`; none: webhooks wait, with an alert logged.
    pub signer: Option<WebhookSigner>,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let webhooks = WebhookSettings::from_env(env)?;
        let signer = webhooks
            .secret
            .as_ref()
            .map(WebhookSigner::new)
            .transpose()?;
        Ok(Self {
            client: SigningClient::from_env(env)?,
            key: SecretKey::from_env(env)?,
            documents: DocumentSettings::from_env(env)?,
            webhooks,
            signer,
        })
    }
}
