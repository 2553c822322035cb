//! Settings read once from the environment (DESIGN.md §6), checked at start.
//!
//! Nothing else in pasarela reads environment variables: binaries call [`Settings::from_env`] and pass
//! the result down. Secrets are [`SecretString`]s so that `{:?}` of any settings value prints
//! `[REDACTED]` instead of a password.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::retry::{RetryPolicy, parse_delays};

/// A setting that is present but cannot be used; names the variable and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: String,
    /// What is wrong with its value (never the value itself: it may be a secret).
    pub problem: String,
}

/// A snapshot of environment variables; tests build one from a map instead of the process env.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment, after reading `.env` when one is present.
    pub fn from_process() -> Self {
        // A missing .env file is the normal case; a malformed one is reported by the variables it leaves unset.
        let _ = dotenvy::dotenv();
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment made of the given pairs only.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, treating an empty value as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }

    /// A secret value or `default`, wrapped so it never prints.
    pub fn secret(&self, name: &str, default: &str) -> SecretString {
        SecretString::from(self.string(name, default))
    }

    /// A parsed value or `default`; a value that does not parse names the variable.
    pub fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
                variable: name.to_string(),
                problem: format!("cannot parse {raw:?}: {e}"),
            }),
        }
    }

    /// A duration written like `250ms`, `5s`, `2m` or `1h`, or `default`.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => crate::retry::parse_duration(raw).map_err(|problem| ConfigError {
                variable: name.to_string(),
                problem,
            }),
        }
    }
}

/// Defaults that differ per worker binary.
#[derive(Debug, Clone, Copy)]
pub struct WorkerDefaults {
    /// The service name used in logs and traces.
    pub service: &'static str,
    /// Deliveries the broker may push before they are acked.
    pub prefetch: u16,
    /// Deliveries handled at once by one process.
    pub concurrency: usize,
    /// Default listen address of `/metrics`, `/healthz` and `/readyz`.
    pub metrics_addr: &'static str,
}

/// Settings of the broker and database connections and the consumer loop.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `AMQP_URL`; holds a password, so it is secret.
    pub amqp_url: SecretString,
    /// `DATABASE_URL`; may hold a password.
    pub database_url: SecretString,
    /// `PASARELA_NAMESPACE`: prefix of every exchange and queue name.
    pub namespace: String,
    /// `PASARELA_PREFETCH`.
    pub prefetch: u16,
    /// `PASARELA_CONCURRENCY`.
    pub concurrency: usize,
    /// `PASARELA_METRICS_ADDR`; `off` disables the HTTP endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// `PASARELA_RETRY_DELAYS` and `PASARELA_MAX_ATTEMPTS`.
    pub retry: RetryPolicy,
    /// `PASARELA_DELIVERY_LIMIT`: the quorum queues' last guard against a message that crashes workers.
    pub delivery_limit: u32,
    /// `PASARELA_CLAIM_LEASE`: how long a claimed message is considered in progress by its holder.
    pub claim_lease: Duration,
    /// `PASARELA_SHUTDOWN_GRACE`: how long SIGTERM waits for in-flight work.
    pub shutdown_grace: Duration,
    /// `PASARELA_DB_POOL_SIZE`.
    pub db_pool_size: usize,
    /// `PASARELA_GROUP_COMMIT_MAX`: most operations committed in one transaction.
    pub group_commit_max: usize,
    /// `PASARELA_OUTBOX_RELAY_INTERVAL`.
    pub outbox_relay_interval: Duration,
    /// `PASARELA_OUTBOX_RELAY_AFTER`: how old an unsent outbox row is before the relay takes it.
    pub outbox_relay_after: Duration,
}

impl RuntimeSettings {
    /// Reads the runtime settings, with `defaults` for what the environment leaves unset.
    pub fn from_env(env: &Env, defaults: WorkerDefaults) -> Result<Self, ConfigError> {
        let metrics_raw = env.string("PASARELA_METRICS_ADDR", defaults.metrics_addr);
        let metrics_addr = if metrics_raw.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(metrics_raw.parse().map_err(|e| ConfigError {
                variable: "PASARELA_METRICS_ADDR".into(),
                problem: format!("not a socket address ({e}); use host:port or off"),
            })?)
        };
        let delays = match env.get("PASARELA_RETRY_DELAYS") {
            None => RetryPolicy::default_delays(),
            Some(raw) => parse_delays(raw).map_err(|problem| ConfigError {
                variable: "PASARELA_RETRY_DELAYS".into(),
                problem,
            })?,
        };
        let max_attempts = env.parse("PASARELA_MAX_ATTEMPTS", delays.len() as u32 + 1)?;
        if max_attempts == 0 {
            return Err(ConfigError {
                variable: "PASARELA_MAX_ATTEMPTS".into(),
                problem: "must be at least 1".into(),
            });
        }
        let concurrency: usize = env.parse("PASARELA_CONCURRENCY", defaults.concurrency)?;
        let prefetch: u16 = env.parse("PASARELA_PREFETCH", defaults.prefetch)?;
        if concurrency == 0 || prefetch == 0 {
            return Err(ConfigError {
                variable: "PASARELA_CONCURRENCY/PASARELA_PREFETCH".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(Self {
            amqp_url: env.secret("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            database_url: env.secret(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/pasarela",
            ),
            namespace: env.string("PASARELA_NAMESPACE", ""),
            prefetch,
            concurrency,
            metrics_addr,
            retry: RetryPolicy::new(delays, max_attempts),
            delivery_limit: env.parse("PASARELA_DELIVERY_LIMIT", 20)?,
            claim_lease: env.duration("PASARELA_CLAIM_LEASE", Duration::from_secs(60))?,
            shutdown_grace: env.duration("PASARELA_SHUTDOWN_GRACE", Duration::from_secs(25))?,
            db_pool_size: env.parse("PASARELA_DB_POOL_SIZE", 8)?,
            group_commit_max: env.parse("PASARELA_GROUP_COMMIT_MAX", 128)?,
            outbox_relay_interval: env
                .duration("PASARELA_OUTBOX_RELAY_INTERVAL", Duration::from_secs(1))?,
            outbox_relay_after: env
                .duration("PASARELA_OUTBOX_RELAY_AFTER", Duration::from_secs(5))?,
        })
    }
}

/// DANAConnect credentials and endpoint (`DANACONNECT_*`).
#[derive(Debug, Clone)]
pub struct DanaConnectSettings {
    /// `DANACONNECT_BASE_URL`: the part before `/send` and `/verify`.
    pub base_url: String,
    /// `DANACONNECT_USER`.
    pub user: String,
    /// `DANACONNECT_COMPANY`: the IDCompany appended to the login after `@`.
    pub company: String,
    /// `DANACONNECT_PASSWORD`.
    pub password: SecretString,
    /// `DANACONNECT_TIMEOUT`: the whole request's deadline.
    pub timeout: Duration,
}

/// Demo values shared with the simulator's defaults, so `make demo` needs no configuration.
pub mod demo {
    /// Default `DANACONNECT_BASE_URL`: the simulator on its default port.
    pub const DANACONNECT_BASE_URL: &str = "http://127.0.0.1:7070/danaconnect/otp/1.0";
    /// Default `DANACONNECT_USER`.
    pub const DANACONNECT_USER: &str = "demo";
    /// Default `DANACONNECT_COMPANY`.
    pub const DANACONNECT_COMPANY: &str = "pasarela";
    /// Default `DANACONNECT_PASSWORD`.
    pub const DANACONNECT_PASSWORD: &str = "demo-password";
    /// Default `ALDEAMO_BASE_URL`: the simulator on its default port.
    pub const ALDEAMO_BASE_URL: &str = "http://127.0.0.1:7070/aldeamo";
    /// Default `ALDEAMO_USER`.
    pub const ALDEAMO_USER: &str = "demo";
    /// Default `ALDEAMO_PASSWORD`.
    pub const ALDEAMO_PASSWORD: &str = "demo-password";
    /// Default `NUMROT_BASE_URL`: the simulator on its default port.
    pub const NUMROT_BASE_URL: &str = "http://127.0.0.1:7070/numrot";
    /// Default `NUMROT_USERNAME`.
    pub const NUMROT_USERNAME: &str = "demo";
    /// Default `NUMROT_PASSWORD`.
    pub const NUMROT_PASSWORD: &str = "demo-password";
    /// Default `GESTOPAGO_BASE_URL`: the simulator on its default port.
    pub const GESTOPAGO_BASE_URL: &str = "http://127.0.0.1:7070/gestopago";
    /// Default `GESTOPAGO_TOKEN_PATH`.
    pub const GESTOPAGO_TOKEN_PATH: &str = "/api/token";
    /// Default `GESTOPAGO_ID_DISTRIBUIDOR`.
    pub const GESTOPAGO_ID_DISTRIBUIDOR: &str = "demo-distribuidor";
    /// Default `GESTOPAGO_CODIGO_DISPOSITIVO`.
    pub const GESTOPAGO_CODIGO_DISPOSITIVO: &str = "demo-dispositivo";
    /// Default `GESTOPAGO_PASSWORD`.
    pub const GESTOPAGO_PASSWORD: &str = "demo-password";
    /// Default `GESTOPAGO_AES_KEY` (32 bytes as text).
    pub const GESTOPAGO_AES_KEY: &str = "pasarela-gestopago-demo-key-32by";
    /// Default `GESTOPAGO_AES_IV` (16 bytes as text).
    pub const GESTOPAGO_AES_IV: &str = "pasarela-demo-iv";
    /// Default `SIGNING_BASE_URL`: the simulator on its default port.
    pub const SIGNING_BASE_URL: &str = "http://127.0.0.1:7070/signing";
    /// Default `SIGNING_CLIENT_ID`.
    pub const SIGNING_CLIENT_ID: &str = "pasarela-demo";
    /// Default `SIGNING_CLIENT_SECRET`.
    pub const SIGNING_CLIENT_SECRET: &str = "demo-client-secret";
    /// Default `SIGNING_USERNAME`.
    pub const SIGNING_USERNAME: &str = "demo-signer";
    /// Default `SIGNING_PASSWORD`.
    pub const SIGNING_PASSWORD: &str = "demo-password";
    /// Default `PASARELA_INGRESS_PUBLIC_URL`: callback-ingress on its default address.
    pub const INGRESS_PUBLIC_URL: &str = "http://127.0.0.1:8088";
}

impl DanaConnectSettings {
    /// Reads `DANACONNECT_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = base_url(env, "DANACONNECT_BASE_URL", demo::DANACONNECT_BASE_URL)?;
        Ok(Self {
            base_url,
            user: env.string("DANACONNECT_USER", demo::DANACONNECT_USER),
            company: env.string("DANACONNECT_COMPANY", demo::DANACONNECT_COMPANY),
            password: env.secret("DANACONNECT_PASSWORD", demo::DANACONNECT_PASSWORD),
            timeout: env.duration("DANACONNECT_TIMEOUT", Duration::from_secs(10))?,
        })
    }
}

/// Aldeamo credentials and endpoint (`ALDEAMO_*`).
#[derive(Debug, Clone)]
pub struct AldeamoSettings {
    /// `ALDEAMO_BASE_URL`: the part before `/otp` and `/validateOtp`.
    pub base_url: String,
    /// `ALDEAMO_USER`.
    pub user: String,
    /// `ALDEAMO_PASSWORD`.
    pub password: SecretString,
    /// `ALDEAMO_TIMEOUT`: the whole request's deadline.
    pub timeout: Duration,
}

impl AldeamoSettings {
    /// Reads `ALDEAMO_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = base_url(env, "ALDEAMO_BASE_URL", demo::ALDEAMO_BASE_URL)?;
        Ok(Self {
            base_url,
            user: env.string("ALDEAMO_USER", demo::ALDEAMO_USER),
            password: env.secret("ALDEAMO_PASSWORD", demo::ALDEAMO_PASSWORD),
            timeout: env.duration("ALDEAMO_TIMEOUT", Duration::from_secs(10))?,
        })
    }
}

fn base_url(env: &Env, variable: &str, default: &str) -> Result<String, ConfigError> {
    let raw = env.string(variable, default);
    url::Url::parse(&raw).map_err(|e| ConfigError {
        variable: variable.into(),
        problem: format!("not a URL: {e}"),
    })?;
    Ok(raw)
}

/// NumRot's token service and API (`NUMROT_*`).
#[derive(Debug, Clone)]
pub struct NumRotSettings {
    /// `NUMROT_BASE_URL`: test or production, the part before `/v2/api/Token`.
    pub base_url: String,
    /// `NUMROT_USERNAME`.
    pub username: String,
    /// `NUMROT_PASSWORD`.
    pub password: SecretString,
    /// `NUMROT_TIMEOUT`: one call's deadline.
    pub timeout: Duration,
}

impl NumRotSettings {
    /// Reads `NUMROT_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: base_url(env, "NUMROT_BASE_URL", demo::NUMROT_BASE_URL)?,
            username: env.string("NUMROT_USERNAME", demo::NUMROT_USERNAME),
            password: env.secret("NUMROT_PASSWORD", demo::NUMROT_PASSWORD),
            timeout: env.duration("NUMROT_TIMEOUT", Duration::from_secs(15))?,
        })
    }
}

/// GestoPago's token service, API and payload key (`GESTOPAGO_*`).
#[derive(Debug, Clone)]
pub struct GestoPagoSettings {
    /// `GESTOPAGO_BASE_URL`.
    pub base_url: String,
    /// `GESTOPAGO_TOKEN_PATH`: the authentication endpoint, after the base URL.
    pub token_path: String,
    /// `GESTOPAGO_ID_DISTRIBUIDOR`.
    pub id_distribuidor: String,
    /// `GESTOPAGO_CODIGO_DISPOSITIVO`.
    pub codigo_dispositivo: String,
    /// `GESTOPAGO_PASSWORD`.
    pub password: SecretString,
    /// `GESTOPAGO_AES_KEY`: text, `base64:` or `hex:`, 32 bytes.
    pub aes_key: SecretString,
    /// `GESTOPAGO_AES_IV`: text, `base64:` or `hex:`, 16 bytes.
    pub aes_iv: SecretString,
    /// `GESTOPAGO_TIMEOUT`: one call's deadline.
    pub timeout: Duration,
}

impl GestoPagoSettings {
    /// Reads `GESTOPAGO_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: base_url(env, "GESTOPAGO_BASE_URL", demo::GESTOPAGO_BASE_URL)?,
            token_path: env.string("GESTOPAGO_TOKEN_PATH", demo::GESTOPAGO_TOKEN_PATH),
            id_distribuidor: env
                .string("GESTOPAGO_ID_DISTRIBUIDOR", demo::GESTOPAGO_ID_DISTRIBUIDOR),
            codigo_dispositivo: env.string(
                "GESTOPAGO_CODIGO_DISPOSITIVO",
                demo::GESTOPAGO_CODIGO_DISPOSITIVO,
            ),
            password: env.secret("GESTOPAGO_PASSWORD", demo::GESTOPAGO_PASSWORD),
            aes_key: env.secret("GESTOPAGO_AES_KEY", demo::GESTOPAGO_AES_KEY),
            aes_iv: env.secret("GESTOPAGO_AES_IV", demo::GESTOPAGO_AES_IV),
            timeout: env.duration("GESTOPAGO_TIMEOUT", Duration::from_secs(15))?,
        })
    }
}

/// OTP rules shared by `otp-send` and `otp-verify`: provider order, the fraud guard and sweeps
/// (`PASARELA_OTP_*`).
#[derive(Debug, Clone)]
pub struct OtpSettings {
    /// `PASARELA_OTP_PROVIDERS`: the order `"provider": "auto"` tries, e.g. `danaconnect,aldeamo`.
    pub providers: Vec<String>,
    /// `PASARELA_OTP_DESTINATION_LIMIT`: sends allowed to one destination per window; 0 turns it off.
    pub destination_limit: u32,
    /// `PASARELA_OTP_DESTINATION_WINDOW`.
    pub destination_window: Duration,
    /// `PASARELA_OTP_TENANT_LIMIT`: sends allowed to one tenant per window; 0 (the default) turns it off.
    pub tenant_limit: u32,
    /// `PASARELA_OTP_TENANT_WINDOW`.
    pub tenant_window: Duration,
    /// `PASARELA_OTP_ALLOWED_PREFIXES`: mobile prefixes allowed (e.g. `+57,+52`); empty allows all.
    pub allowed_prefixes: Vec<String>,
    /// `PASARELA_OTP_BREAKER_FAILURES`: retryable failures in a row that open a provider's circuit.
    pub breaker_failures: u32,
    /// `PASARELA_OTP_BREAKER_COOLDOWN`: how long an open circuit skips its provider before a probe.
    pub breaker_cooldown: Duration,
    /// `PASARELA_OTP_SWEEP_INTERVAL`: how often codes past their expiry are marked expired.
    pub sweep_interval: Duration,
}

/// The providers pasarela can send OTPs through, in the default failover order.
pub const OTP_PROVIDERS: [&str; 2] = ["danaconnect", "aldeamo"];

impl OtpSettings {
    /// Reads `PASARELA_OTP_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let list = |name: &str, default: &str| -> Vec<String> {
            env.string(name, default)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let providers = list("PASARELA_OTP_PROVIDERS", &OTP_PROVIDERS.join(","));
        if let Some(bad) = providers
            .iter()
            .find(|p| !OTP_PROVIDERS.contains(&p.as_str()))
        {
            return Err(ConfigError {
                variable: "PASARELA_OTP_PROVIDERS".into(),
                problem: format!(
                    "unknown provider {bad:?}; known: {}",
                    OTP_PROVIDERS.join(", ")
                ),
            });
        }
        let allowed_prefixes = list("PASARELA_OTP_ALLOWED_PREFIXES", "");
        if let Some(bad) = allowed_prefixes
            .iter()
            .find(|p| !p.starts_with('+') || !p[1..].chars().all(|c| c.is_ascii_digit()))
        {
            return Err(ConfigError {
                variable: "PASARELA_OTP_ALLOWED_PREFIXES".into(),
                problem: format!("{bad:?} is not a prefix like +57"),
            });
        }
        Ok(Self {
            providers,
            destination_limit: env.parse("PASARELA_OTP_DESTINATION_LIMIT", 5)?,
            destination_window: env
                .duration("PASARELA_OTP_DESTINATION_WINDOW", Duration::from_secs(600))?,
            tenant_limit: env.parse("PASARELA_OTP_TENANT_LIMIT", 0)?,
            tenant_window: env.duration("PASARELA_OTP_TENANT_WINDOW", Duration::from_secs(3600))?,
            allowed_prefixes,
            breaker_failures: env.parse("PASARELA_OTP_BREAKER_FAILURES", 5)?,
            breaker_cooldown: env
                .duration("PASARELA_OTP_BREAKER_COOLDOWN", Duration::from_secs(30))?,
            sweep_interval: env.duration("PASARELA_OTP_SWEEP_INTERVAL", Duration::from_secs(30))?,
        })
    }

    /// The longest window the guard counts over: admissions older than this can be forgotten.
    pub fn longest_window(&self) -> Duration {
        self.destination_window.max(self.tenant_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: WorkerDefaults = WorkerDefaults {
        service: "test",
        prefetch: 10,
        concurrency: 5,
        metrics_addr: "127.0.0.1:0",
    };

    #[test]
    fn defaults_serve_a_local_machine() {
        let s = RuntimeSettings::from_env(&Env::default(), DEFAULTS).unwrap();
        assert_eq!(s.namespace, "");
        assert_eq!(s.prefetch, 10);
        assert_eq!(s.concurrency, 5);
        assert_eq!(s.retry.delays().len(), 6);
        assert_eq!(s.retry.max_attempts(), 7);
    }

    #[test]
    fn secrets_never_print() {
        let env = Env::from_pairs([
            ("AMQP_URL", "amqp://u:hunter2@h:5672/%2f"),
            ("DANACONNECT_PASSWORD", "s3cr3t-pw"),
        ]);
        let runtime = RuntimeSettings::from_env(&env, DEFAULTS).unwrap();
        let dana = DanaConnectSettings::from_env(&env).unwrap();
        let printed = format!("{runtime:?} {dana:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cr3t-pw"), "{printed}");
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("PASARELA_RETRY_DELAYS", "1s,soon")]);
        let err = RuntimeSettings::from_env(&env, DEFAULTS).unwrap_err();
        assert_eq!(err.variable, "PASARELA_RETRY_DELAYS");
        let env = Env::from_pairs([("PASARELA_CONCURRENCY", "many")]);
        assert_eq!(
            RuntimeSettings::from_env(&env, DEFAULTS)
                .unwrap_err()
                .variable,
            "PASARELA_CONCURRENCY"
        );
    }

    #[test]
    fn otp_settings_have_safe_defaults_and_check_their_values() {
        let s = OtpSettings::from_env(&Env::default()).unwrap();
        assert_eq!(s.providers, ["danaconnect", "aldeamo"]);
        assert_eq!(s.destination_limit, 5);
        assert_eq!(s.destination_window, Duration::from_secs(600));
        assert_eq!(s.tenant_limit, 0);
        let env = Env::from_pairs([("PASARELA_OTP_PROVIDERS", "aldeamo,twilio")]);
        assert_eq!(
            OtpSettings::from_env(&env).unwrap_err().variable,
            "PASARELA_OTP_PROVIDERS"
        );
        let env = Env::from_pairs([("PASARELA_OTP_ALLOWED_PREFIXES", "+57, 52")]);
        assert_eq!(
            OtpSettings::from_env(&env).unwrap_err().variable,
            "PASARELA_OTP_ALLOWED_PREFIXES"
        );
    }

    #[test]
    fn retry_settings_are_read() {
        let env = Env::from_pairs([
            ("PASARELA_RETRY_DELAYS", "100ms,200ms"),
            ("PASARELA_MAX_ATTEMPTS", "4"),
            ("PASARELA_METRICS_ADDR", "off"),
        ]);
        let s = RuntimeSettings::from_env(&env, DEFAULTS).unwrap();
        assert_eq!(
            s.retry.delays(),
            &[Duration::from_millis(100), Duration::from_millis(200)]
        );
        assert_eq!(s.retry.max_attempts(), 4);
        assert!(s.metrics_addr.is_none());
    }
}

/// The signing vendor's API and OAuth2 client (`SIGNING_*`).
#[derive(Debug, Clone)]
pub struct SigningSettings {
    /// `SIGNING_BASE_URL`: the part before `/api/v1`.
    pub base_url: String,
    /// `SIGNING_CLIENT_ID`.
    pub client_id: String,
    /// `SIGNING_CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// `SIGNING_USERNAME`.
    pub username: String,
    /// `SIGNING_PASSWORD`.
    pub password: SecretString,
    /// `SIGNING_TIMEOUT`: the deadline of a token, status or revoke call.
    pub timeout: Duration,
    /// `SIGNING_TRANSFER_TIMEOUT`: the deadline of a call that moves a document (submit, download).
    pub transfer_timeout: Duration,
}

impl SigningSettings {
    /// Reads `SIGNING_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: base_url(env, "SIGNING_BASE_URL", demo::SIGNING_BASE_URL)?,
            client_id: env.string("SIGNING_CLIENT_ID", demo::SIGNING_CLIENT_ID),
            client_secret: env.secret("SIGNING_CLIENT_SECRET", demo::SIGNING_CLIENT_SECRET),
            username: env.string("SIGNING_USERNAME", demo::SIGNING_USERNAME),
            password: env.secret("SIGNING_PASSWORD", demo::SIGNING_PASSWORD),
            timeout: env.duration("SIGNING_TIMEOUT", Duration::from_secs(15))?,
            transfer_timeout: env.duration("SIGNING_TRANSFER_TIMEOUT", Duration::from_secs(120))?,
        })
    }
}

/// How documents are taken, polled for and kept (`PASARELA_*` of the signing workers).
#[derive(Debug, Clone)]
pub struct DocumentSettings {
    /// `PASARELA_MAX_DOCUMENT_BYTES`: the largest PDF accepted, decoded (default 25 MiB).
    pub max_document_bytes: usize,
    /// `PASARELA_DOCUMENT_RETENTION`: how long PDFs are kept before the sweep erases them (30 days).
    pub retention: Duration,
    /// `PASARELA_INGRESS_PUBLIC_URL`: callback-ingress as the vendor reaches it.
    pub ingress_public_url: url::Url,
    /// `PASARELA_DOCUMENT_SWEEP_INTERVAL`: how often doc-sign erases PDFs past retention (1 min).
    pub sweep_interval: Duration,
    /// `PASARELA_SIGNING_POLL_DELAYS`: the waits between status polls; the last one repeats.
    pub poll_delays: Vec<Duration>,
    /// `PASARELA_SIGNING_POLL_FOR`: how long after submission pasarela keeps asking (72 h).
    pub poll_for: Duration,
}

impl DocumentSettings {
    /// Reads the document settings.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let bad = |variable: &str| {
            let variable = variable.to_string();
            move |problem: String| ConfigError { variable, problem }
        };
        let public = env.string("PASARELA_INGRESS_PUBLIC_URL", demo::INGRESS_PUBLIC_URL);
        let ingress_public_url = url::Url::parse(&public)
            .map_err(|e| format!("not a URL: {e}"))
            .and_then(|u| {
                matches!(u.scheme(), "http" | "https")
                    .then_some(u)
                    .ok_or_else(|| "must be an http or https URL".to_string())
            })
            .map_err(bad("PASARELA_INGRESS_PUBLIC_URL"))?;
        let poll_delays = crate::retry::parse_delays(
            &env.string("PASARELA_SIGNING_POLL_DELAYS", "10s,30s,1m,2m,5m,10m,30m"),
        )
        .map_err(bad("PASARELA_SIGNING_POLL_DELAYS"))?;
        Ok(Self {
            max_document_bytes: env.parse("PASARELA_MAX_DOCUMENT_BYTES", 25 * 1024 * 1024)?,
            retention: env.duration(
                "PASARELA_DOCUMENT_RETENTION",
                Duration::from_secs(30 * 24 * 3600),
            )?,
            sweep_interval: env
                .duration("PASARELA_DOCUMENT_SWEEP_INTERVAL", Duration::from_secs(60))?,
            ingress_public_url,
            poll_delays,
            poll_for: env.duration("PASARELA_SIGNING_POLL_FOR", Duration::from_secs(72 * 3600))?,
        })
    }

    /// The wait before poll number `polls + 1`.
    pub fn poll_delay(&self, polls: u32) -> Duration {
        let i = (polls as usize).min(self.poll_delays.len() - 1);
        self.poll_delays[i]
    }
}

/// How client webhooks are signed and delivered (`PASARELA_WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `PASARELA_WEBHOOK_SECRET`: `whsec_` + Base64; required to deliver.
    pub secret: Option<SecretString>,
    /// `PASARELA_WEBHOOK_ALLOW_HOSTS`: hosts a callback URL may resolve to internal addresses for.
    pub allow_hosts: Vec<String>,
    /// `PASARELA_WEBHOOK_SCHEDULE`: the wait before each attempt, the first usually `0s`.
    pub schedule: Vec<Duration>,
    /// `PASARELA_WEBHOOK_TIMEOUT`: one attempt's deadline.
    pub timeout: Duration,
    /// `PASARELA_WEBHOOK_CONCURRENCY`: attempts in flight per process.
    pub concurrency: usize,
    /// `PASARELA_WEBHOOK_ENDPOINT_CONCURRENCY`: attempts in flight per endpoint per process.
    pub endpoint_concurrency: usize,
}

impl WebhookSettings {
    /// Reads `PASARELA_WEBHOOK_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let schedule =
            parse_schedule(&env.string("PASARELA_WEBHOOK_SCHEDULE", "0s,5s,5m,30m,2h,5h,10h,10h"))
                .map_err(|problem| ConfigError {
                    variable: "PASARELA_WEBHOOK_SCHEDULE".into(),
                    problem,
                })?;
        Ok(Self {
            secret: env
                .get("PASARELA_WEBHOOK_SECRET")
                .map(|s| s.to_string().into()),
            allow_hosts: allow_hosts(env.get("PASARELA_WEBHOOK_ALLOW_HOSTS").unwrap_or("")),
            schedule,
            timeout: env.duration("PASARELA_WEBHOOK_TIMEOUT", Duration::from_secs(15))?,
            concurrency: env.parse("PASARELA_WEBHOOK_CONCURRENCY", 64usize)?.max(1),
            endpoint_concurrency: env
                .parse("PASARELA_WEBHOOK_ENDPOINT_CONCURRENCY", 4usize)?
                .max(1),
        })
    }
}

/// Splits `PASARELA_WEBHOOK_ALLOW_HOSTS` into trimmed, lower-case hosts.
pub fn allow_hosts(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// Parses a delivery schedule such as `0s,5s,5m`: zero is allowed (at once), order is kept.
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    let steps = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(crate::retry::parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        return Err("no attempts given".into());
    }
    Ok(steps)
}
