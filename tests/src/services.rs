//! The RabbitMQ and PostgreSQL every test of a binary shares, restarting them for the fault tests, and
//! where the workspace's binaries are.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::OnceCell;

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

/// Runs a command to completion and fails the test when it fails (its output is not wanted).
pub(crate) async fn run_ok(program: &str, args: &[&str]) {
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

/// The target directory this test binary was built into: its `deps` folder's parent, where cargo
/// also put the workspace's binaries.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// Where the workspace's binaries are: `PASARELA_BIN_DIR` when set (to run the tests against another
/// build, such as a release or an older commit), else beside this test binary's `deps` folder.
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("PASARELA_BIN_DIR").map_or_else(target_dir, PathBuf::from);
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
        path.display()
    );
    path
}
