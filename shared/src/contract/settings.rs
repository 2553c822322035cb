//! Settings of the policies several workers share: the OTP rules, documents and client webhooks.

use std::time::Duration;

use secrecy::SecretString;

use crate::contract::env::{ConfigError, Env, FromEnv};
use crate::contract::retry::DurationError;

/// Default `PASARELA_INGRESS_PUBLIC_URL`: callback-ingress on its default address.
pub const DEMO_INGRESS_PUBLIC_URL: &str = "http://127.0.0.1:8088";

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

impl FromEnv for OtpSettings {
    /// Reads `PASARELA_OTP_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
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
}

impl OtpSettings {
    /// The longest window the guard counts over: admissions older than this can be forgotten.
    pub fn longest_window(&self) -> Duration {
        self.destination_window.max(self.tenant_window)
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

impl FromEnv for DocumentSettings {
    /// Reads the document settings.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const PUBLIC_URL: &str = "PASARELA_INGRESS_PUBLIC_URL";
        // Where the vendor's callbacks go: a default would send them nowhere the vendor can reach.
        let public = match env.demo_or_required(PUBLIC_URL, DEMO_INGRESS_PUBLIC_URL) {
            url if url.is_empty() => "http://unset.invalid".to_string(),
            url => url,
        };
        let ingress_public_url = url::Url::parse(&public)
            .map_err(|e| ConfigError::new(PUBLIC_URL, format!("not a URL: {e}")))?;
        if !matches!(ingress_public_url.scheme(), "http" | "https") {
            return Err(ConfigError::new(PUBLIC_URL, "must be an http or https URL"));
        }
        let poll_delays = crate::contract::retry::parse_delays(
            &env.string("PASARELA_SIGNING_POLL_DELAYS", "10s,30s,1m,2m,5m,10m,30m"),
        )
        .map_err(|e| ConfigError::new("PASARELA_SIGNING_POLL_DELAYS", e.to_string()))?;
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
}

impl DocumentSettings {
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

impl FromEnv for WebhookSettings {
    /// Reads `PASARELA_WEBHOOK_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let schedule =
            parse_schedule(&env.string("PASARELA_WEBHOOK_SCHEDULE", "0s,5s,5m,30m,2h,5h,10h,10h"))
                .map_err(|e| ConfigError {
                    variable: "PASARELA_WEBHOOK_SCHEDULE".into(),
                    problem: e.to_string(),
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
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, DurationError> {
    let steps = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(crate::contract::retry::parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        return Err(DurationError::new("no attempts given"));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
