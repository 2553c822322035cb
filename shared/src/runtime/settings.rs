//! The runtime's own settings: connections, the consumer loop, retries and shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::contract::env::{ConfigError, Env};
use crate::contract::retry::{RetryPolicy, parse_delays};

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

impl WorkerDefaults {
    /// The defaults of worker `service`: prefetch, concurrency, and where `/metrics` listens.
    pub const fn new(
        service: &'static str,
        prefetch: u16,
        concurrency: usize,
        metrics_addr: &'static str,
    ) -> Self {
        Self {
            service,
            prefetch,
            concurrency,
            metrics_addr,
        }
    }
}

/// Every worker's defaults, in one place so that the `pasarela` command (its `config` and `queues`
/// views) knows what each worker runs with.
pub mod defaults {
    use super::WorkerDefaults;

    /// `otp-send`.
    pub const OTP_SEND: WorkerDefaults = WorkerDefaults::new("otp-send", 200, 100, "0.0.0.0:9101");
    /// `otp-verify`.
    pub const OTP_VERIFY: WorkerDefaults =
        WorkerDefaults::new("otp-verify", 200, 100, "0.0.0.0:9102");
    /// `vendor-call`.
    pub const VENDOR_CALL: WorkerDefaults =
        WorkerDefaults::new("vendor-call", 100, 50, "0.0.0.0:9103");
    /// `doc-sign`.
    pub const DOC_SIGN: WorkerDefaults = WorkerDefaults::new("doc-sign", 2, 2, "0.0.0.0:9104");
    /// `doc-callback`.
    pub const DOC_CALLBACK: WorkerDefaults =
        WorkerDefaults::new("doc-callback", 4, 2, "0.0.0.0:9105");
    /// `callback-ingress`.
    pub const CALLBACK_INGRESS: WorkerDefaults =
        WorkerDefaults::new("callback-ingress", 1, 1, "0.0.0.0:9106");
    /// All of them.
    pub const ALL: [WorkerDefaults; 6] = [
        OTP_SEND,
        OTP_VERIFY,
        VENDOR_CALL,
        DOC_SIGN,
        DOC_CALLBACK,
        CALLBACK_INGRESS,
    ];
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
    /// `PASARELA_WORK_RETENTION`: how long a finished message's row is kept to answer its duplicates
    /// (7 days); older rows are pruned.
    pub work_retention: Duration,
    /// `PASARELA_AMQP_HEARTBEAT`: the heartbeat asked of the broker (unless `AMQP_URL` names one), and
    /// how long a broker call may go unanswered before the broker is taken for gone (10 s).
    pub amqp_heartbeat: Duration,
    /// `PASARELA_MIGRATE`: `auto` (the default) creates and migrates the database at start; `off` only
    /// checks that its schema is exactly this build's, for when `pasarela migrate` runs as its own step
    /// (a Kubernetes Job) and the runtime role may not change the schema.
    pub migrate: bool,
    /// `PASARELA_DECLARE_TOPOLOGY`: `all` (the default) declares every work queue's topology at start,
    /// so work for a worker not deployed yet is kept; `own` only the worker's queue (a vhost where a
    /// worker may configure only its own queues, with `pasarela topology` run by the deploy instead).
    pub declare_whole_topology: bool,
    /// `PASARELA_WORK_PRUNE_INTERVAL`: how often each worker prunes its queue's rows past retention
    /// (10 minutes).
    pub work_prune_interval: Duration,
    /// `PASARELA_DB_POOL_SIZE`.
    pub db_pool_size: usize,
    /// `PASARELA_GROUP_COMMIT_MAX`: most operations committed in one transaction.
    pub group_commit_max: usize,
    /// `PASARELA_GROUP_COMMIT_LINGER`: how long a group waits for more operations while another is
    /// committing (300 µs); never when the worker is idle.
    pub group_commit_linger: Duration,
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
            Some(raw) => parse_delays(raw).map_err(|e| ConfigError {
                variable: "PASARELA_RETRY_DELAYS".into(),
                problem: e.to_string(),
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
            group_commit_linger: env
                .duration("PASARELA_GROUP_COMMIT_LINGER", Duration::from_micros(300))?,
            outbox_relay_interval: env
                .duration("PASARELA_OUTBOX_RELAY_INTERVAL", Duration::from_secs(1))?,
            outbox_relay_after: env
                .duration("PASARELA_OUTBOX_RELAY_AFTER", Duration::from_secs(5))?,
            amqp_heartbeat: env.duration("PASARELA_AMQP_HEARTBEAT", Duration::from_secs(10))?,
            declare_whole_topology: env.choice(
                "PASARELA_DECLARE_TOPOLOGY",
                &[("all", true), ("own", false)],
            )?,
            migrate: env.choice("PASARELA_MIGRATE", &[("auto", true), ("off", false)])?,
            work_retention: env.duration(
                "PASARELA_WORK_RETENTION",
                Duration::from_secs(7 * 24 * 3600),
            )?,
            work_prune_interval: env
                .duration("PASARELA_WORK_PRUNE_INTERVAL", Duration::from_secs(600))?,
        })
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
            ("DATABASE_URL", "postgres://u:s3cr3t-pw@h/db"),
        ]);
        let runtime = RuntimeSettings::from_env(&env, DEFAULTS).unwrap();
        let printed = format!("{runtime:?}");
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
