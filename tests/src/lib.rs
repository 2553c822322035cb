//! The end-to-end harness: each test gets its own database and broker namespace, a vendor simulator on
//! port 0, and the real worker binary as a process, all against real RabbitMQ and PostgreSQL.
//!
//! By default the services already running on this machine are used (`AMQP_URL`,
//! `PASARELA_TEST_DATABASE_ADMIN_URL`); with `PASARELA_TEST_CONTAINERS=1` the harness starts RabbitMQ
//! and PostgreSQL with testcontainers instead (needs a Docker engine).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// Retry tiers the tests run with: short, so retries take milliseconds.
pub const TEST_TIERS: [&str; 3] = ["100ms", "200ms", "400ms"];

/// The `PASARELA_SECRET_KEY` every test worker gets (32 bytes, Base64).
pub const TEST_SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// `PASARELA_WEBHOOK_SECRET` of every test worker: the Standard Webhooks specification's example.
pub const TEST_WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Where RabbitMQ and PostgreSQL are.
pub struct Services {
    /// AMQP URL.
    pub amqp_url: String,
    /// PostgreSQL URL without a database name (`postgres://user@host:port`).
    pub pg_base: String,
    /// Kept alive for the whole test binary when testcontainers started the services.
    containers: Option<Containers>,
}

struct Containers {
    rabbitmq: testcontainers::ContainerAsync<testcontainers_modules::rabbitmq::RabbitMq>,
    postgres: testcontainers::ContainerAsync<testcontainers_modules::postgres::Postgres>,
}

static SERVICES: OnceCell<Services> = OnceCell::const_new();

/// The services for this test binary, started once.
pub async fn services() -> &'static Services {
    SERVICES
        .get_or_init(|| async {
            if std::env::var("PASARELA_TEST_CONTAINERS").as_deref() == Ok("1") {
                start_containers().await
            } else {
                Services {
                    amqp_url: std::env::var("AMQP_URL")
                        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
                    pg_base: std::env::var("PASARELA_TEST_DATABASE_ADMIN_URL")
                        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
                    containers: None,
                }
            }
        })
        .await
}

async fn start_containers() -> Services {
    use testcontainers::ImageExt;
    use testcontainers::runners::AsyncRunner;
    let rabbitmq = testcontainers_modules::rabbitmq::RabbitMq::default()
        .with_tag("3.10-management")
        .start()
        .await
        .expect("starting the RabbitMQ container (is a Docker engine running?)");
    let postgres = testcontainers_modules::postgres::Postgres::default()
        .with_host_auth()
        .with_tag("15-alpine")
        .start()
        .await
        .expect("starting the PostgreSQL container");
    let amqp_port = rabbitmq.get_host_port_ipv4(5672).await.expect("amqp port");
    let pg_port = postgres.get_host_port_ipv4(5432).await.expect("pg port");
    Services {
        amqp_url: format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f"),
        pg_base: format!("postgres://postgres@127.0.0.1:{pg_port}"),
        containers: Some(Containers { rabbitmq, postgres }),
    }
}

impl Services {
    /// Stops and restarts the broker's application (connections drop, queues survive).
    pub async fn restart_broker(&self, down_for: Duration) {
        match &self.containers {
            None => {
                run_ok("rabbitmqctl", &["stop_app"]).await;
                tokio::time::sleep(down_for).await;
                run_ok("rabbitmqctl", &["start_app"]).await;
                run_ok("rabbitmqctl", &["await_startup"]).await;
            }
            Some(c) => {
                use testcontainers::core::ExecCommand;
                c.rabbitmq
                    .exec(ExecCommand::new(["rabbitmqctl", "stop_app"]))
                    .await
                    .expect("stop_app");
                tokio::time::sleep(down_for).await;
                c.rabbitmq
                    .exec(ExecCommand::new(["rabbitmqctl", "start_app"]))
                    .await
                    .expect("start_app");
            }
        }
    }

    /// Restarts PostgreSQL (a container's postmaster is its first process, so there every
    /// connection is cut instead).
    pub async fn restart_database(&self) {
        match &self.containers {
            None => {
                let version = std::fs::read_dir("/etc/postgresql")
                    .expect("/etc/postgresql")
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .next()
                    .expect("a PostgreSQL cluster");
                run_ok(
                    "pg_ctlcluster",
                    &[
                        "--skip-systemctl-redirect",
                        &version,
                        "main",
                        "restart",
                        "-m",
                        "fast",
                    ],
                )
                .await;
            }
            Some(c) => {
                let _ = &c.postgres;
                let admin = pg_connect(&format!("{}/postgres", self.pg_base)).await;
                admin
                    .batch_execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    )
                    .await
                    .expect("terminating backends");
            }
        }
    }
}

async fn run_ok(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Connects to PostgreSQL, retrying while the server restarts.
pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connecting to PostgreSQL: {e}"),
        }
    }
}

/// Where the workspace's binaries are: beside this test binary's `deps` folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
        path.display()
    );
    path
}

fn log_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("e2e-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// A running vendor simulator.
pub struct Simulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    http: reqwest::Client,
}

impl Simulator {
    /// Starts the simulator on port 0 and waits for its address.
    pub async fn start() -> Self {
        let mut child = Command::new(binary("vendor-sim"))
            .env("VENDOR_SIM_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting vendor-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("vendor-sim did not start in 10 s")
            .expect("reading vendor-sim output")
            .expect("vendor-sim exited");
        let addr = line
            .rsplit(' ')
            .next()
            .expect("an address on the first line")
            .to_string();
        Self {
            child,
            base_url: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    /// `GET /sim/<path>` as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/sim/{path}", self.base_url))
            .send()
            .await
            .expect("sim request")
            .json()
            .await
            .expect("sim json")
    }

    /// Calls counted for a vendor operation.
    pub async fn calls(&self, vendor: &str, op: &str) -> u64 {
        self.get("stats").await[vendor][op].as_u64().unwrap_or(0)
    }

    /// Sets a vendor's faults (`POST /sim/faults`).
    pub async fn faults(&self, body: Value) {
        let status = self
            .http
            .post(format!("{}/sim/faults", self.base_url))
            .json(&body)
            .send()
            .await
            .expect("sim faults")
            .status();
        assert!(status.is_success(), "setting faults: {status}");
    }

    /// `POST /sim/<path>` with a JSON body; returns the HTTP status.
    pub async fn post(&self, path: &str, body: &Value) -> u16 {
        self.http
            .post(format!("{}/sim/{path}", self.base_url))
            .json(body)
            .send()
            .await
            .expect("sim request")
            .status()
            .as_u16()
    }

    /// The newest code delivered to `to`, waiting up to ten seconds for one.
    pub async fn latest_code(&self, to: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let inbox = self
                .http
                .get(format!(
                    "{}/sim/inbox?to={}",
                    self.base_url,
                    to.replace('+', "%2B")
                ))
                .send()
                .await
                .expect("sim inbox")
                .json::<Value>()
                .await
                .expect("inbox json");
            if let Some(code) = inbox
                .as_array()
                .and_then(|a| a.last())
                .and_then(|e| e["code"].as_str())
            {
                return code.to_string();
            }
            assert!(Instant::now() < deadline, "no code delivered to {to}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clears every fault.
    pub async fn clear_faults(&self) {
        self.http
            .delete(format!("{}/sim/faults", self.base_url))
            .send()
            .await
            .expect("sim faults");
    }
}

/// Options of a test environment.
#[derive(Clone)]
pub struct EnvOptions {
    /// Extra environment for the worker.
    pub worker_env: Vec<(String, String)>,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            worker_env: vec![
                ("PASARELA_RETRY_DELAYS".into(), TEST_TIERS.join(",")),
                ("PASARELA_MAX_ATTEMPTS".into(), "4".into()),
            ],
        }
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
    /// The worker process, when running.
    pub worker: Option<Child>,
    /// A client on the test's database.
    pub db: tokio_postgres::Client,
    /// A confirm-mode channel for publishing and inspecting.
    pub channel: Channel,
    connection: Connection,
    options: EnvOptions,
    worker_log: PathBuf,
    /// How many worker processes were started.
    pub worker_starts: u32,
    /// Further worker processes (`otp-verify`, a second `otp-send`), started with [`TestEnv::start_extra`].
    pub extra: Vec<Child>,
    extra_logs: Vec<PathBuf>,
    /// The port `callback-ingress` listens on (started with [`TestEnv::start_ingress`]).
    pub ingress_port: u16,
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The exchange/queue names of a namespace.
pub fn qualify(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

fn declare_args_quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

/// Connects, and declares the events exchange and the test's own durable queue on it.
async fn open_broker(amqp_url: &str, namespace: &str) -> (Connection, Channel) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let connection = loop {
        match Connection::connect(amqp_url, ConnectionProperties::default()).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("connecting to RabbitMQ: {e}"),
        }
    };
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    // The events exchange and the test's own queue on it exist before any worker publishes.
    let events_exchange = qualify(namespace, "pasarela.events");
    channel
        .exchange_declare(
            events_exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("events exchange");
    let events_queue = qualify(namespace, "test.events");
    channel
        .queue_declare(
            events_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            declare_args_quorum(),
        )
        .await
        .expect("events queue");
    channel
        .queue_bind(
            events_queue.as_str().into(),
            events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind events");
    (connection, channel)
}

impl TestEnv {
    /// A fresh namespace and database, the simulator, and the `otp-send` worker.
    pub async fn start() -> Self {
        Self::start_with(EnvOptions::default()).await
    }

    /// Like [`TestEnv::start`], with options.
    pub async fn start_with(options: EnvOptions) -> Self {
        let services = services().await;
        let id = Uuid::new_v4().simple().to_string();
        let namespace = format!("t{}", &id[..12]);
        let database = format!("pasarela_{namespace}");
        let database_url = format!("{}/{database}", services.pg_base);
        let (connection, channel) = open_broker(&services.amqp_url, &namespace).await;

        let sim = Simulator::start().await;
        let worker_log = log_dir().join(format!("{namespace}-otp-send.log"));
        // The worker creates and migrates the test's database itself (that path is under test too), so
        // until it has, the harness holds the server's maintenance database.
        let mut env = Self {
            namespace,
            database,
            database_url,
            sim,
            worker: None,
            db: pg_connect(&format!("{}/postgres", services.pg_base)).await,
            channel,
            connection,
            options,
            worker_log,
            worker_starts: 0,
            extra: Vec::new(),
            extra_logs: Vec::new(),
            ingress_port: free_port(),
        };
        env.start_worker().await;
        env.db = pg_connect(&env.database_url).await;
        env
    }

    /// Starts the `otp-send` worker and waits until it consumes.
    pub async fn start_worker(&mut self) {
        let mut cmd = self
            .worker_command("otp-send", &self.worker_log.clone())
            .await;
        self.worker = Some(cmd.spawn().expect("starting otp-send"));
        self.worker_starts += 1;
        self.wait_for_consumer("otp.send", 1, Duration::from_secs(60))
            .await;
    }

    /// Starts another worker process of `binary` (e.g. `otp-verify`, or a second `otp-send`) with the
    /// test's environment, and waits until `queue` has `consumers` consumers.
    pub async fn start_extra(&mut self, binary: &str, queue: &str, consumers: u32) {
        let log = log_dir().join(format!(
            "{}-{binary}-{}.log",
            self.namespace,
            self.extra.len()
        ));
        let mut cmd = self.worker_command(binary, &log).await;
        self.extra.push(cmd.spawn().expect("starting a worker"));
        self.extra_logs.push(log);
        self.wait_for_consumer(queue, consumers, Duration::from_secs(60))
            .await;
    }

    /// Starts `callback-ingress` on [`TestEnv::ingress_port`] and waits until it answers.
    pub async fn start_ingress(&mut self) {
        let log = log_dir().join(format!("{}-callback-ingress.log", self.namespace));
        let mut cmd = self.worker_command("callback-ingress", &log).await;
        self.extra
            .push(cmd.spawn().expect("starting callback-ingress"));
        self.extra_logs.push(log);
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.ingress_port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "callback-ingress did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<ingress port>`.
    pub fn ingress_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress_port)
    }

    async fn worker_command(&self, binary: &str, log: &std::path::Path) -> Command {
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
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in &self.options.worker_env {
            cmd.env(k, v);
        }
        cmd
    }

    async fn wait_for_consumer(&self, queue: &str, consumers: u32, timeout: Duration) {
        let queue = qualify(&self.namespace, queue);
        let deadline = Instant::now() + timeout;
        loop {
            // A passive declare on a missing queue closes the channel: use a throwaway one.
            if let Ok(ch) = self.connection.create_channel().await {
                if let Ok(q) = ch
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    && q.consumer_count() >= consumers
                {
                    let _ = ch.close(200, "ok".into()).await;
                    return;
                }
                let _ = ch.close(200, "ok".into()).await;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not start consuming; see {}",
                self.worker_log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a signal to the worker and waits for it to exit; returns its exit status.
    pub async fn signal_worker(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.worker.take().expect("a running worker");
        let pid = child.id().expect("pid").to_string();
        run_ok("kill", &[&format!("-{signal}"), &pid]).await;
        tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("the worker did not exit within 60 s")
            .expect("waiting for the worker")
    }

    /// Publishes a valid `otp.send` for `request_id`, with the request id as its `message_id`.
    pub async fn send_otp(&self, request_id: Uuid) {
        self.publish(&otp_send(request_id), Some(&request_id.to_string()))
            .await;
    }

    /// Publishes an `otp.send` body with this `message_id` to the work exchange, and waits for the confirm.
    pub async fn publish(&self, body: &Value, message_id: Option<&str>) {
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        if let Some(id) = message_id {
            props = props.with_message_id(ShortString::from(id));
        }
        self.publish_raw(&serde_json::to_vec(body).expect("json"), props)
            .await;
    }

    /// Publishes many `otp.send` bodies, each with its request id as `message_id`, confirms pipelined.
    pub async fn publish_many(&self, ids: &[Uuid]) {
        let mut confirms = Vec::with_capacity(ids.len());
        for id in ids {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(ShortString::from(id.to_string()));
            let body = serde_json::to_vec(&otp_send(*id)).expect("json");
            let confirm = self
                .channel
                .basic_publish(
                    qualify(&self.namespace, "pasarela").into(),
                    "otp.send".into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .expect("publish");
            confirms.push(confirm);
        }
        for c in futures::future::try_join_all(confirms)
            .await
            .expect("confirms")
        {
            assert!(c.is_ack(), "the broker refused a message");
        }
    }

    /// Publishes raw bytes with the given properties to `otp.send`.
    pub async fn publish_raw(&self, body: &[u8], props: BasicProperties) {
        self.publish_raw_to("otp.send", body, props).await;
    }

    /// Publishes a JSON body to the work exchange with `routing_key` (a queue name) and this
    /// `message_id`, and waits for the confirm.
    pub async fn publish_to(&self, routing_key: &str, body: &Value, message_id: &str) {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(message_id));
        let body = serde_json::to_vec(body).expect("json");
        self.publish_raw_to(routing_key, &body, props).await;
    }

    /// Calls a worker the way a producer waiting on its user does: publishes `body` to `routing_key`
    /// with `reply_to` (a private queue) and a fresh `correlation_id`, and waits for the reply.
    /// Returns the reply's body and correlation id, or `None` after `timeout`.
    pub async fn rpc(
        &self,
        routing_key: &str,
        body: &Value,
        message_id: &str,
        timeout: Duration,
    ) -> Option<(Value, Option<String>, String)> {
        let reply = self
            .channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("reply queue");
        let correlation = Uuid::new_v4().to_string();
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(ShortString::from(message_id))
            .with_reply_to(reply.name().clone())
            .with_correlation_id(ShortString::from(correlation.as_str()));
        let bytes = serde_json::to_vec(body).expect("json");
        self.publish_raw_to(routing_key, &bytes, props).await;
        let deadline = Instant::now() + timeout;
        let mut answer = None;
        while Instant::now() < deadline {
            match self
                .channel
                .basic_get(reply.name().clone(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic_get reply")
            {
                Some(m) => {
                    let got = m
                        .delivery
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(|c| c.as_str().to_string());
                    answer = Some((
                        serde_json::from_slice(&m.delivery.data).expect("reply json"),
                        got,
                        correlation.clone(),
                    ));
                    break;
                }
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        let _ = self
            .channel
            .queue_delete(reply.name().clone(), QueueDeleteOptions::default())
            .await;
        answer
    }

    /// Publishes raw bytes with the given properties to the work exchange with `routing_key`.
    pub async fn publish_raw_to(&self, routing_key: &str, body: &[u8], props: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                qualify(&self.namespace, "pasarela").into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "the broker refused the message");
    }

    /// Receives events until `count` arrived or `timeout` passed. Polls with `basic.get`, which
    /// survives a broker restart without consumer bookkeeping.
    pub async fn events(&mut self, count: usize, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let queue = qualify(&self.namespace, "test.events");
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            let got = self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await;
            match got {
                Ok(Some(m)) => out.push(Event {
                    routing_key: m.delivery.routing_key.as_str().to_string(),
                    body: serde_json::from_slice(&m.delivery.data).expect("event json"),
                }),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                // The broker went away under the harness: reconnect and keep reading.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    self.reconnect_broker().await;
                }
            }
        }
        out
    }

    /// Takes every message from `otp.send.dead` (waiting up to `timeout` for `count`).
    pub async fn dead_letters(&self, count: usize, timeout: Duration) -> Vec<DeadMessage> {
        self.dead_letters_of("otp.send", count, timeout).await
    }

    /// Takes every message from `<work_queue>.dead` (waiting up to `timeout` for `count`).
    pub async fn dead_letters_of(
        &self,
        work_queue: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<DeadMessage> {
        let queue = qualify(&self.namespace, &format!("{work_queue}.dead"));
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            match self
                .channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .expect("basic_get")
            {
                Some(m) => {
                    let headers: HashMap<String, String> = m
                        .delivery
                        .properties
                        .headers()
                        .as_ref()
                        .map(|t| {
                            t.inner()
                                .iter()
                                .filter_map(|(k, v)| match v {
                                    AMQPValue::LongString(s) => Some((
                                        k.as_str().to_string(),
                                        String::from_utf8_lossy(s.as_bytes()).into_owned(),
                                    )),
                                    AMQPValue::LongLongInt(i) => {
                                        Some((k.as_str().to_string(), i.to_string()))
                                    }
                                    _ => None,
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    m.delivery
                        .ack(BasicAckOptions::default())
                        .await
                        .expect("ack dead");
                    out.push(DeadMessage {
                        headers,
                        body: m.delivery.data.clone(),
                        message_id: m
                            .delivery
                            .properties
                            .message_id()
                            .as_ref()
                            .map(|s| s.as_str().to_string()),
                    });
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        out
    }

    /// Runs a query on the test's database.
    pub async fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.db.query(sql, &[]).await.expect("query")
    }

    /// Reconnects the harness to the broker (after a broker restart); queued events are kept.
    pub async fn reconnect_broker(&mut self) {
        let (connection, channel) = open_broker(&services().await.amqp_url, &self.namespace).await;
        self.connection = connection;
        self.channel = channel;
    }

    /// Whether the worker process is still running.
    pub fn worker_running(&mut self) -> bool {
        self.worker
            .as_mut()
            .is_some_and(|w| w.try_wait().expect("worker status").is_none())
    }

    /// Runs the `pasarela` command against this environment; returns (success, stdout).
    pub async fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(binary("pasarela"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AMQP_URL", &services().await.amqp_url)
            .env("DATABASE_URL", &self.database_url)
            .env("PASARELA_NAMESPACE", &self.namespace)
            .env("PASARELA_RETRY_DELAYS", TEST_TIERS.join(","))
            .output()
            .await
            .expect("running pasarela");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        (out.status.success(), format!("{stdout}{stderr}"))
    }

    /// Reconnects the harness's database client (after a database restart).
    pub async fn reconnect_db(&mut self) {
        self.db = pg_connect(&self.database_url).await;
    }

    /// Stops everything and removes the namespace's queues, exchanges and database.
    pub async fn teardown(mut self) {
        if let Some(mut w) = self.worker.take() {
            let _ = w.kill().await;
        }
        for mut w in self.extra.drain(..) {
            let _ = w.kill().await;
        }
        let _ = self.sim.child.kill().await;
        let ns = &self.namespace;
        let mut queues = vec![qualify(ns, "test.events")];
        for work in [
            "otp.send",
            "otp.verify",
            "vendor.call",
            "doc.sign",
            "doc.callback",
        ] {
            queues.push(qualify(ns, work));
            queues.push(qualify(ns, &format!("{work}.dead")));
            queues.extend(
                TEST_TIERS
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
        let _ = std::fs::remove_file(&self.worker_log);
        for log in &self.extra_logs {
            let _ = std::fs::remove_file(log);
        }
    }

    /// Every worker's log, for failure messages and for checking what was logged.
    pub fn worker_log(&self) -> String {
        std::iter::once(&self.worker_log)
            .chain(&self.extra_logs)
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A result event as received.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its routing key.
    pub routing_key: String,
    /// Its body.
    pub body: Value,
}

/// A message taken from a `.dead` queue.
#[derive(Debug, Clone)]
pub struct DeadMessage {
    /// Its headers (text and numbers).
    pub headers: HashMap<String, String>,
    /// Its body.
    pub body: Vec<u8>,
    /// Its `message_id`.
    pub message_id: Option<String>,
}

/// A valid `otp.send` body for DANAConnect with a fresh request id.
pub fn otp_send(request_id: Uuid) -> Value {
    serde_json::json!({
        "request_id": request_id.to_string(),
        "tenant": "acme",
        "provider": "danaconnect",
        "channel": "sms",
        // One destination per request, so that the fraud guard's per-destination limit stays out of
        // tests about something else.
        "destination": { "mobile": mobile_for(request_id) },
        "code": { "type": "numeric", "length": 6, "expires_in_s": 300, "max_tries": 5 },
        "danaconnect": {
            "id_conversation": 824541,
            "values": [ { "key": "COD1_MOBILE", "value": format!("+5730{}", &request_id.simple().to_string()[..8]) } ]
        }
    })
}

/// A mobile number derived from a request id: distinct per request, stable for the same one.
pub fn mobile_for(request_id: Uuid) -> String {
    format!("+5730{:08}", request_id.as_u128() % 100_000_000)
}

/// A database of its own for a test that needs PostgreSQL alone: no broker, simulator or worker.
pub struct TestDatabase {
    /// The database name.
    pub name: String,
    /// Its URL, as the `pasarela` command gets it.
    pub url: String,
    /// A client on it.
    pub db: tokio_postgres::Client,
}

impl TestDatabase {
    /// Creates a fresh database and migrates it the way an operator does, with `pasarela migrate`.
    pub async fn create() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let name = format!("pasarela_d{}", &id[..12]);
        let url = format!("{}/{name}", services().await.pg_base);
        let migrated = pasarela_on(&url)
            .arg("migrate")
            .output()
            .await
            .expect("running pasarela migrate");
        assert!(
            migrated.status.success(),
            "pasarela migrate failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        let db = pg_connect(&url).await;
        Self { name, url, db }
    }

    /// Runs the `pasarela` command against this database; stdout and stderr stay apart.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        pasarela_on(&self.url)
            .args(args)
            .output()
            .await
            .expect("running pasarela")
    }

    /// Drops the database.
    pub async fn drop_database(self) {
        drop(self.db);
        drop_database(&self.name).await;
    }
}

/// The `pasarela` command with only `DATABASE_URL` set, so nothing else of the test's environment
/// reaches it.
fn pasarela_on(database_url: &str) -> Command {
    let mut command = Command::new(binary("pasarela"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url);
    command
}

/// Drops a test's database, closing whatever connections are left on it.
pub async fn drop_database(name: &str) {
    let admin = pg_connect(&format!("{}/postgres", services().await.pg_base)).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}
