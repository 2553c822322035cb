//! The stack a pasarela measurement runs against: the zero-latency vendor simulator and worker
//! processes in a fresh broker namespace and database, and the teardown that removes all of it again.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use pasarela_shared::store::database as db;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::Options;
use crate::floor::quorum_queue;
pub use crate::workers::*;

/// The workers' retry tiers, given to them explicitly so that teardown knows every queue they declare.
const TIERS: [&str; 6] = ["1s", "5s", "30s", "2m", "10m", "1h"];

struct Worker {
    spec: WorkerSpec,
    child: Child,
    /// Where it serves `/metrics`.
    metrics: std::net::SocketAddr,
}

/// A running simulator and workers in a namespace and database of their own.
pub struct Stack {
    /// The broker namespace (prefix of every exchange and queue).
    pub ns: String,
    /// The simulator's `host:port` on the loopback interface.
    pub sim_addr: String,
    /// A connection for the measurement's channels; closing it at teardown removes exclusive queues.
    pub conn: Connection,
    setup: Channel,
    database: String,
    pg_base: String,
    sim: Child,
    /// Where `callback-ingress` listens, when the stack runs it.
    ingress: std::net::SocketAddr,
    /// Settings given to every worker after the bench's own (`KEY`, value).
    extra_env: Vec<(String, String)>,
    workers: Vec<Worker>,
    /// Queues the bench declared itself.
    queues: Vec<String>,
}

impl Stack {
    /// Starts the simulator and `workers`, one after another, each consuming before the next starts
    /// (the first creates and migrates the database, so they never race on it), each with `extra_env`
    /// after the bench's own settings. Cleans up on failure.
    pub async fn start(
        opts: &Options,
        workers: &[WorkerSpec],
        extra_env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let binaries = workers
            .iter()
            .map(|w| binary(w.binary))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ns = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..10]);
        let database = format!("pasarela_{}", ns.replace('-', "_"));
        let (sim, sim_addr) = start_sim().await?;
        let conn = Connection::connect(&opts.amqp_url, ConnectionProperties::default()).await?;
        let setup = conn.create_channel().await?;
        let mut stack = Self {
            ns,
            sim_addr,
            conn,
            setup,
            database,
            pg_base: opts.pg_base.clone(),
            sim,
            ingress: std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?,
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            workers: Vec::new(),
            queues: Vec::new(),
        };
        for (spec, path) in workers.iter().zip(binaries) {
            if let Err(e) = stack.start_worker(opts, *spec, path).await {
                stack.teardown().await;
                return Err(e);
            }
        }
        Ok(stack)
    }

    async fn start_worker(
        &mut self,
        opts: &Options,
        spec: WorkerSpec,
        path: PathBuf,
    ) -> anyhow::Result<()> {
        // A free port of our choosing, so that the bench can read the worker's metrics afterwards.
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let sim = &self.sim_addr;
        let mut command = Command::new(path);
        command
            .env("AMQP_URL", &opts.amqp_url)
            .env(
                "DATABASE_URL",
                format!("{}/{}", self.pg_base, self.database),
            )
            .env("PASARELA_NAMESPACE", &self.ns)
            // Each worker declares only its own queue's topology, which teardown removes: the whole
            // topology per run left hundreds of quorum queues behind after a dozen runs, and RabbitMQ
            // 3.10 stopped answering new connections under them.
            .env("PASARELA_DECLARE_TOPOLOGY", "own")
            .env("PASARELA_CONCURRENCY", opts.concurrency.to_string())
            .env("PASARELA_PREFETCH", opts.prefetch.to_string())
            .env("PASARELA_RETRY_DELAYS", TIERS.join(","))
            .env("PASARELA_METRICS_ADDR", metrics.to_string())
            .env(
                "DANACONNECT_BASE_URL",
                format!("http://{}/danaconnect/otp/1.0", self.sim_addr),
            )
            .env("ALDEAMO_BASE_URL", format!("http://{sim}/aldeamo"))
            .env("GESTOPAGO_BASE_URL", format!("http://{sim}/gestopago"))
            .env("NUMROT_BASE_URL", format!("http://{sim}/numrot"))
            .env("SIGNING_BASE_URL", format!("http://{sim}/signing"))
            .env("PASARELA_SECRET_KEY", BENCH_SECRET_KEY)
            .env("PASARELA_WEBHOOK_SECRET", BENCH_WEBHOOK_SECRET)
            .env("PASARELA_INGRESS_ADDR", self.ingress.to_string())
            .env(
                "PASARELA_INGRESS_PUBLIC_URL",
                format!("http://{}", self.ingress),
            )
            // The bench's client endpoint is on loopback, which the SSRF guard refuses otherwise.
            .env("PASARELA_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .env("PASARELA_PROFILE", "demo")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.binary))?;
        self.workers.push(Worker {
            spec,
            child,
            metrics,
        });
        match spec.queue {
            Some(queue) => wait_for_consumer(&self.conn, &self.qualify(queue)).await,
            None => wait_until_ready(metrics).await,
        }
    }

    /// Sets the simulator's faults for one vendor (`{"vendor": …, "latency_ms": …}`).
    pub async fn sim_faults(&self, faults: serde_json::Value) -> anyhow::Result<()> {
        self.sim_post("/sim/faults", faults).await
    }

    /// POSTs `body` to one of the simulator's control routes.
    pub async fn sim_post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let url = format!("http://{}{path}", self.sim_addr);
        reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The URL of this stack's database.
    pub fn database_url(&self) -> String {
        format!("{}/{}", self.pg_base, self.database)
    }

    /// Connects a probe of PostgreSQL's counters to this stack's database.
    pub async fn probe(&self) -> anyhow::Result<crate::pgcost::Probe> {
        crate::pgcost::Probe::connect(&self.pg_base, &self.database).await
    }

    /// `name` in this stack's namespace.
    pub fn qualify(&self, name: &str) -> String {
        format!("{}.{name}", self.ns)
    }

    /// Declares a quorum queue of the bench's own, bound to the events exchange with `routing_key`;
    /// teardown removes it.
    pub async fn events_queue(&mut self, name: &str, routing_key: &str) -> anyhow::Result<String> {
        let events = self.qualify("pasarela.events");
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.setup
            .exchange_declare(
                events.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        let queue = self.qualify(name);
        quorum_queue(&self.setup, &queue).await?;
        self.queues.push(queue.clone());
        self.setup
            .queue_bind(
                queue.as_str().into(),
                events.as_str().into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(queue)
    }

    /// Peak resident memory of the first worker running `binary`, in KiB (0 when unknown).
    pub fn peak_rss_kib(&self, binary: &str) -> u64 {
        self.workers
            .iter()
            .find(|w| w.spec.binary == binary)
            .and_then(|w| w.child.id())
            .map(peak_rss_kib)
            .unwrap_or(0)
    }

    /// The binary and process id of the first worker, while it runs.
    pub fn first_worker(&self) -> Option<(&'static str, u32)> {
        let w = self.workers.first()?;
        Some((w.spec.binary, w.child.id()?))
    }

    /// Peak resident memory of every worker process, KiB, in the order they started.
    pub fn rss_kib(&self) -> Vec<(&'static str, u64)> {
        self.workers
            .iter()
            .map(|w| (w.spec.binary, w.child.id().map(peak_rss_kib).unwrap_or(0)))
            .collect()
    }

    /// The `/metrics` text of the first worker running `binary`.
    pub async fn metrics(&self, binary: &str) -> anyhow::Result<String> {
        let worker = self
            .workers
            .iter()
            .find(|w| w.spec.binary == binary)
            .context("no such worker")?;
        let url = format!("http://{}/metrics", worker.metrics);
        Ok(reqwest::get(url).await?.error_for_status()?.text().await?)
    }

    /// Stops the processes and removes the namespace's queues and exchanges and the database.
    pub async fn teardown(mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill().await;
        }
        let _ = self.sim.kill().await;
        let mut queues = std::mem::take(&mut self.queues);
        for w in &self.workers {
            let Some(queue) = w.spec.queue else { continue };
            let work = self.qualify(queue);
            queues.push(format!("{work}.dead"));
            queues.extend(TIERS.iter().map(|t| format!("{work}.retry.{t}")));
            queues.push(work);
        }
        for q in queues {
            let _ = self
                .setup
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for e in [self.qualify("pasarela.events"), self.qualify("pasarela")] {
            let _ = self
                .setup
                .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = self.conn.close(200, "done".into()).await;
        // Teardown is best effort: a database left behind is only disk, and the run's numbers stand.
        let url = secrecy::SecretString::from(format!("{}/{}", self.pg_base, self.database));
        if let Ok(config) = db::parse_url(&url) {
            let _ = db::drop_database(&config).await;
        }
    }
}

/// A workspace binary beside this one (the bench runs what the same build made).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("binary dir")?.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build the workspace's binaries",
        path.display()
    );
    Ok(path)
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn start_sim() -> anyhow::Result<(Child, String)> {
    let mut sim = Command::new(binary("vendor-sim")?)
        .env("VENDOR_SIM_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(sim.stdout.take().context("sim stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await??
        .context("vendor-sim exited")?;
    let addr = first.rsplit(' ').next().context("sim address")?.to_string();
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((sim, addr))
}

/// Waits until the worker serving `/readyz` at `addr` answers 200.
async fn wait_until_ready(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{addr}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the worker at {addr} did not become ready")
}

async fn wait_for_consumer(conn: &Connection, queue: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        // A passive declare of a queue not there yet closes the channel: use a throwaway one.
        let ch = conn.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Ok(q) = ch
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            && q.consumer_count() > 0
        {
            let _ = ch.close(200, "ok".into()).await;
            return Ok(());
        }
        let _ = ch.close(200, "ok".into()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the worker did not start consuming {queue}")
}
