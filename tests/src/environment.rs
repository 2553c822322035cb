//! One test's isolated world: a broker namespace, a database, the vendor simulator, and the worker
//! processes the test names, started, stopped, logged and torn down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::broker::{open_broker, qualify};
use crate::database::drop_database;
use crate::services::{binary, pg_connect, run_ok, services, target_dir};
use crate::simulator::Simulator;

/// Retry tiers the tests run with: short, so retries take milliseconds.
pub const TEST_TIERS: [&str; 3] = ["100ms", "200ms", "400ms"];

/// The `PASARELA_SECRET_KEY` every test worker gets (32 bytes, Base64).
pub const TEST_SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// `PASARELA_WEBHOOK_SECRET` of every test worker: the Standard Webhooks specification's example.
pub const TEST_WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The workers a test can name, with the queue each consumes: how the harness knows one is ready,
/// and which queues teardown removes. `callback-ingress` consumes none; it is ready when it listens.
const WORKERS: [(&str, Option<&str>); 6] = [
    ("otp-send", Some("otp.send")),
    ("otp-verify", Some("otp.verify")),
    ("vendor-call", Some("vendor.call")),
    ("doc-sign", Some("doc.sign")),
    ("doc-callback", Some("doc.callback")),
    ("callback-ingress", None),
];

/// The queue the worker `binary` consumes; fails on a binary the harness does not know.
fn queue_of(binary: &str) -> Option<&'static str> {
    let (_, queue) = WORKERS
        .iter()
        .find(|(name, _)| *name == binary)
        .unwrap_or_else(|| {
            panic!(
                "unknown worker {binary:?}; known: {:?}",
                WORKERS.map(|w| w.0)
            )
        });
    *queue
}

/// How to build a test environment: which workers it runs and their settings (start from
/// [`TestEnv::builder`]).
#[derive(Clone)]
pub struct EnvOptions {
    workers: Vec<String>,
    worker_env: Vec<(String, String)>,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            workers: Vec::new(),
            worker_env: vec![
                // One queue's topology per worker, as before the contract's whole-topology default: a test
                // namespace is new each time, and creating every work queue's quorum queues for each
                // test would load the shared broker several times over. Tests of the default set `all`.
                ("PASARELA_DECLARE_TOPOLOGY".into(), "own".into()),
                ("PASARELA_RETRY_DELAYS".into(), TEST_TIERS.join(",")),
                ("PASARELA_MAX_ATTEMPTS".into(), "4".into()),
            ],
        }
    }
}

impl EnvOptions {
    /// Adds a process of the worker `binary` (name it twice for two). Workers start in this order,
    /// and the first creates and migrates the test's database, so it must be one that consumes a queue.
    pub fn worker(mut self, binary: &str) -> Self {
        // A misspelt name fails here, before anything is started.
        let _ = queue_of(binary);
        self.workers.push(binary.to_string());
        self
    }

    /// Sets `key` for every worker process, over the harness's own value if it has one; `{sim}` in
    /// `value` stands for the simulator's base URL, which is only known once it runs.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.worker_env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the environment: a fresh namespace and database, the simulator, and the workers.
    pub async fn start(self) -> TestEnv {
        TestEnv::start_with(self).await
    }
}

/// One test's isolated world.
pub struct TestEnv {
    /// The broker namespace.
    pub namespace: String,
    /// The database name.
    pub database: String,
    /// The database URL the worker uses.
    pub database_url: String,
    /// The simulator.
    pub sim: Simulator,
    /// A client on the test's database.
    pub db: tokio_postgres::Client,
    /// A confirm-mode channel for publishing and inspecting.
    pub channel: Channel,
    pub(crate) connection: Connection,
    worker_env: Vec<(String, String)>,
    /// Every worker process started, in order; the first is "the worker" of
    /// [`TestEnv::signal_worker`], [`TestEnv::start_worker`] and [`TestEnv::worker_running`].
    workers: Vec<Worker>,
    /// The port `callback-ingress` listens on (when the test names that worker).
    pub ingress_port: u16,
}

/// A worker process the harness started.
struct Worker {
    binary: String,
    /// `None` once [`TestEnv::signal_worker`] has stopped it.
    child: Option<Child>,
    /// Its stdout and stderr; a restart appends, so the log tells the whole story.
    log: PathBuf,
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something answers HTTP at `base` (whatever the status), up to 30 s.
pub async fn wait_until_listening(base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if reqwest::get(base).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("nothing answered at {base}");
}

/// Where worker logs go: the target directory, where a failed test's logs stay for reading (teardown
/// removes a passing test's).
fn log_dir() -> PathBuf {
    let dir = target_dir().join("e2e-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

impl TestEnv {
    /// Options with no worker yet: name the workers the test needs, then [`EnvOptions::start`].
    pub fn builder() -> EnvOptions {
        EnvOptions::default()
    }

    /// A fresh namespace and database, the simulator, and the `otp-send` worker.
    pub async fn start() -> Self {
        Self::builder().worker("otp-send").start().await
    }

    async fn start_with(options: EnvOptions) -> Self {
        let EnvOptions {
            workers,
            worker_env,
        } = options;
        let (first, rest) = workers
            .split_first()
            .expect("name a worker: the first creates and migrates the test's database");
        assert!(
            queue_of(first).is_some(),
            "{first} serves before its database is migrated: name a worker that consumes a queue first"
        );
        let services = services().await;
        let id = Uuid::new_v4().simple().to_string();
        let namespace = format!("t{}", &id[..12]);
        let database = format!("pasarela_{namespace}");
        let database_url = format!("{}/{database}", services.pg_base);
        let (connection, channel) = open_broker(&services.amqp_url, &namespace).await;

        let sim = Simulator::start().await;
        // The first worker creates and migrates the test's database itself (that path is under test
        // too), so until it consumes, the harness holds the server's maintenance database.
        let mut env = Self {
            namespace,
            database,
            database_url,
            sim,
            db: pg_connect(&format!("{}/postgres", services.pg_base)).await,
            channel,
            connection,
            worker_env,
            workers: Vec::new(),
            ingress_port: free_port(),
        };
        env.add_worker(first).await;
        env.db = pg_connect(&env.database_url).await;
        for binary in rest {
            env.add_worker(binary).await;
        }
        env
    }

    /// Starts one more process of the worker `binary` (e.g. a second `otp-send`) with the test's
    /// environment, and waits until it serves.
    pub async fn add_worker(&mut self, binary: &str) {
        self.add_worker_with(binary, &[]).await;
    }

    /// [`TestEnv::add_worker`] with `extra` settings for this process only, over the test's own (a
    /// worker under another database role, say).
    pub async fn add_worker_with(&mut self, binary: &str, extra: &[(&str, &str)]) {
        assert!(
            queue_of(binary).is_some() || self.workers.iter().all(|w| w.binary != binary),
            "one {binary} per environment: a second could not listen on the same port"
        );
        let log = log_dir().join(format!(
            "{}-{binary}-{}.log",
            self.namespace,
            self.workers.len()
        ));
        let child = self
            .worker_command(binary, &log)
            .await
            .envs(extra.iter().copied())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        self.workers.push(Worker {
            binary: binary.to_string(),
            child: Some(child),
            log,
        });
        self.wait_until_serving(self.workers.len() - 1).await;
    }

    /// How many worker processes the environment has (running or not).
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// The binary of the `index`th worker.
    pub fn worker_binary(&self, index: usize) -> &str {
        &self.workers[index].binary
    }

    /// Kills the `index`th worker with SIGKILL (no chance to finish anything), starts it again and
    /// waits until it serves.
    pub async fn kill_and_restart(&mut self, index: usize) {
        if let Some(mut child) = self.workers[index].child.take() {
            let _ = child.kill().await;
        }
        let (binary, log) = (
            self.workers[index].binary.clone(),
            self.workers[index].log.clone(),
        );
        let child = self.spawn(&binary, &log).await;
        self.workers[index].child = Some(child);
        self.wait_until_serving(index).await;
    }

    /// Starts the worker again after [`TestEnv::signal_worker`] stopped it, and waits until it consumes.
    pub async fn start_worker(&mut self) {
        let (binary, log) = match self.workers.first() {
            Some(w) if w.child.is_none() => (w.binary.clone(), w.log.clone()),
            _ => panic!("the worker is still running: stop it with signal_worker first"),
        };
        let child = self.spawn(&binary, &log).await;
        self.workers[0].child = Some(child);
        self.wait_until_serving(0).await;
    }

    async fn spawn(&self, binary: &str, log: &Path) -> Child {
        self.worker_command(binary, log)
            .await
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"))
    }

    /// Waits until the `index`th worker serves: its queue has a consumer for every running process
    /// of its binary, or, for `callback-ingress`, its port accepts connections.
    async fn wait_until_serving(&self, index: usize) {
        let worker = &self.workers[index];
        let timeout = Duration::from_secs(60);
        if let Some(queue) = queue_of(&worker.binary) {
            let running = self
                .workers
                .iter()
                .filter(|w| w.binary == worker.binary && w.child.is_some())
                .count();
            let running = u32::try_from(running).expect("a handful of workers");
            self.wait_for_consumer(queue, running, &worker.log, timeout)
                .await;
            return;
        }
        let deadline = Instant::now() + timeout;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.ingress_port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{} did not listen; see {}",
                worker.binary,
                worker.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<ingress port>`.
    pub fn ingress_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress_port)
    }

    async fn worker_command(&self, binary: &str, log: &Path) -> Command {
        let services = services().await;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("worker log");
        let mut cmd = Command::new(self::binary(binary));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AMQP_URL", &services.amqp_url)
            .env("DATABASE_URL", &self.database_url)
            .env("PASARELA_NAMESPACE", &self.namespace)
            .env("PASARELA_METRICS_ADDR", "127.0.0.1:0")
            .env("PASARELA_CLAIM_LEASE", "5s")
            .env("PASARELA_OUTBOX_RELAY_AFTER", "1s")
            .env(
                "DANACONNECT_BASE_URL",
                format!("{}/danaconnect/otp/1.0", self.sim.base_url),
            )
            .env("ALDEAMO_BASE_URL", format!("{}/aldeamo", self.sim.base_url))
            .env("NUMROT_BASE_URL", format!("{}/numrot", self.sim.base_url))
            .env(
                "GESTOPAGO_BASE_URL",
                format!("{}/gestopago", self.sim.base_url),
            )
            .env("SIGNING_BASE_URL", format!("{}/signing", self.sim.base_url))
            .env("PASARELA_SECRET_KEY", TEST_SECRET_KEY)
            .env("PASARELA_WEBHOOK_SECRET", TEST_WEBHOOK_SECRET)
            .env(
                "PASARELA_INGRESS_ADDR",
                format!("127.0.0.1:{}", self.ingress_port),
            )
            .env("PASARELA_INGRESS_PUBLIC_URL", self.ingress_url())
            .env("PASARELA_SIGNING_POLL_DELAYS", "1s")
            .env("RUST_LOG", "info")
            // The vendors are the simulator: its demo credentials stand in for every unset one.
            .env("PASARELA_PROFILE", "demo")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in &self.worker_env {
            cmd.env(k, v.replace("{sim}", &self.sim.base_url));
        }
        cmd
    }

    /// Sends a signal to the worker and waits for it to exit; returns its exit status.
    pub async fn signal_worker(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self
            .workers
            .first_mut()
            .and_then(|w| w.child.take())
            .expect("a running worker");
        let pid = child.id().expect("pid").to_string();
        run_ok("kill", &[&format!("-{signal}"), &pid]).await;
        tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("the worker did not exit within 60 s")
            .expect("waiting for the worker")
    }

    /// Whether the worker process is still running.
    pub fn worker_running(&mut self) -> bool {
        self.workers
            .first_mut()
            .and_then(|w| w.child.as_mut())
            .is_some_and(|c| c.try_wait().expect("worker status").is_none())
    }

    /// The `pasarela` command with `args`, set up for this environment, to run as the caller likes.
    pub async fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("pasarela"));
        command
            .args(args)
            .env_clear()
            .env("PASARELA_PROFILE", "demo")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AMQP_URL", &services().await.amqp_url)
            .env("DATABASE_URL", &self.database_url)
            .env("PASARELA_NAMESPACE", &self.namespace)
            .env("PASARELA_RETRY_DELAYS", TEST_TIERS.join(","))
            .env("PASARELA_SECRET_KEY", TEST_SECRET_KEY)
            .env("SIGNING_BASE_URL", format!("{}/signing", self.sim.base_url));
        command
    }

    /// Runs the `pasarela` command against this environment; returns (success, stdout).
    pub async fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .cli_command(args)
            .await
            .output()
            .await
            .expect("running pasarela");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        (out.status.success(), format!("{stdout}{stderr}"))
    }

    /// Stops everything and removes the namespace's queues, exchanges and database.
    pub async fn teardown(mut self) {
        for w in &mut self.workers {
            if let Some(mut child) = w.child.take() {
                let _ = child.kill().await;
            }
        }
        let _ = self.sim.child.kill().await;
        let ns = &self.namespace;
        let mut queues = vec![qualify(ns, "test.events")];
        // The tiers the workers ran with: a test may set its own, written as the tier queues are named
        // (`1m`, not `60s`).
        let tiers: Vec<String> = self
            .worker_env
            .iter()
            .rev()
            .find(|(k, _)| k == "PASARELA_RETRY_DELAYS")
            .map(|(_, v)| v.split(',').map(|t| t.trim().to_string()).collect())
            .unwrap_or_else(|| TEST_TIERS.map(String::from).to_vec());
        // Every work queue, not only the named workers': a worker, a test or the CLI may declare another.
        for work in WORKERS.iter().filter_map(|(_, queue)| *queue) {
            queues.push(qualify(ns, work));
            queues.push(qualify(ns, &format!("{work}.dead")));
            queues.extend(
                tiers
                    .iter()
                    .map(|t| qualify(ns, &format!("{work}.retry.{t}"))),
            );
        }
        if let Ok(ch) = self.connection.create_channel().await {
            for q in queues {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for e in ["pasarela", "pasarela.events"] {
                let _ = ch
                    .exchange_delete(qualify(ns, e).into(), ExchangeDeleteOptions::default())
                    .await;
            }
        }
        let _ = self.connection.close(200, "done".into()).await;
        drop(self.db);
        drop_database(&self.database).await;
        for w in &self.workers {
            let _ = std::fs::remove_file(&w.log);
        }
    }

    /// Every worker's log, for failure messages and for checking what was logged.
    pub fn worker_log(&self) -> String {
        self.workers
            .iter()
            .map(|w| std::fs::read_to_string(&w.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
