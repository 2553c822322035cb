//! A worker run alone until it exits, for tests of what makes a worker refuse to start.

use std::time::Duration;

use crate::environment::TEST_SECRET_KEY;
use crate::services::{binary, services};

/// How a worker run alone ended.
pub struct Exit {
    /// Its exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Exit {
    /// The last line it wrote to stderr: the reason it gave.
    pub fn last_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
    }
}

/// Runs `worker` against the test services in the demo profile, with `env` on top, and waits for it
/// to exit; panics when it is still running after `within` (it kept retrying instead of refusing).
pub async fn run_until_exit(worker: &str, env: &[(&str, &str)], within: Duration) -> Exit {
    let child = tokio::process::Command::new(binary(worker))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PASARELA_PROFILE", "demo")
        .env("PASARELA_METRICS_ADDR", "127.0.0.1:0")
        .env("AMQP_URL", &services().await.amqp_url)
        .env("PASARELA_SECRET_KEY", TEST_SECRET_KEY)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(within, child)
        .await
        .unwrap_or_else(|_| panic!("{worker} was still running after {within:?}"))
        .unwrap_or_else(|e| panic!("running {worker}: {e}"));
    Exit {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
