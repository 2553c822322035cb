//! The example producers under `examples/` (Python, Node, Go, Java), each run as a process against the
//! real broker and the running `otp-send` and `otp-verify` workers: it publishes an `otp.send` with
//! confirms, a `message_id` and a `traceparent`, waits for `otp.send.completed`, reads the code from the
//! simulator's inbox and verifies it by RPC. A language whose toolchain this machine lacks is skipped
//! with the reason printed (`make examples`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pasarela_e2e::{TestEnv, services};
use serde_json::Value;
use tokio::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Whether `program args` runs and exits 0 (a toolchain or library is present).
async fn available(program: &str, args: &[&str], dir: &Path) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Runs one producer against a fresh environment and checks what it printed: the send's result event
/// and the verification's reply.
async fn run_producer(
    language: &str,
    program: &str,
    args: &[&str],
    dir: &Path,
    extra: &[(&str, &str)],
) {
    let mut env = TestEnv::builder()
        .worker("otp-send")
        .worker("otp-verify")
        .start()
        .await;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("AMQP_URL", &services().await.amqp_url)
        .env("PASARELA_NAMESPACE", &env.namespace)
        .env("VENDOR_SIM_URL", &env.sim.base_url)
        .envs(extra.iter().copied())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{language}: the producer did not finish in 120 s"))
        .unwrap_or_else(|e| panic!("{language}: {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{language}:\n{stdout}");
    assert!(
        out.status.success(),
        "{language} exited {}:\n{stdout}\n{stderr}\nworkers:\n{}",
        out.status,
        env.worker_log()
    );
    let line = |prefix: &str| -> Value {
        let json = stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{language}: no {prefix:?} line in\n{stdout}"));
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{language}: {e}: {json}"))
    };
    let sent = line("otp.send.completed ");
    assert_eq!(sent["status"], "sent", "{language}: {sent}");
    let reply = line("otp.verify reply ");
    assert_eq!(reply["outcome"], "verified", "{language}: {reply}");
    assert_eq!(reply["request_id"], sent["request_id"], "{language}");
    // The send the producer published is what pasarela stored, once.
    let rows = env
        .query(&format!(
            "SELECT count(*) FROM otp_requests WHERE request_id = '{}' AND state = 'validated_ok'",
            sent["request_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rows[0].get::<_, i64>(0), 1, "{language}");
    let _ = env.events(2, Duration::from_millis(500)).await;
    env.teardown().await;
}

#[tokio::test]
async fn the_python_producer() {
    let dir = examples().join("python");
    if !available("python3", &["-c", "import pika"], &dir).await {
        println!(
            "python: skipped: python3 with pika is not installed (python3 -m pip install pika==1.3.2)"
        );
        return;
    }
    run_producer("python", "python3", &["producer.py"], &dir, &[]).await;
}

#[tokio::test]
async fn the_node_producer() {
    let dir = examples().join("node");
    if !available(
        "npm",
        &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        &dir,
    )
    .await
    {
        println!(
            "node: skipped: npm is not installed or cannot install amqplib (npm ci in examples/node)"
        );
        return;
    }
    run_producer("node", "node", &["producer.mjs"], &dir, &[]).await;
}

#[tokio::test]
async fn the_go_producer() {
    let dir = examples().join("go");
    let gopath = [
        ("GO111MODULE", "off"),
        ("GOPATH", "/usr/share/gocode"),
        ("GOCACHE", "/tmp/pasarela-go-cache"),
    ];
    let library = Path::new("/usr/share/gocode/src/github.com/rabbitmq/amqp091-go");
    if !library.exists() || !available("go", &["version"], &dir).await {
        println!(
            "go: skipped: go or Debian's golang-github-rabbitmq-amqp091-go-dev is not installed"
        );
        return;
    }
    run_producer("go", "go", &["run", "producer.go"], &dir, &gopath).await;
}

#[tokio::test]
async fn the_java_producer() {
    let dir = examples().join("java");
    let classpath = "/usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar";
    if !Path::new("/usr/share/java/amqp-client.jar").exists()
        || !available("java", &["-version"], &dir).await
    {
        println!("java: skipped: java or Debian's librabbitmq-client-java is not installed");
        return;
    }
    run_producer(
        "java",
        "java",
        &["-cp", classpath, "Producer.java"],
        &dir,
        &[],
    )
    .await;
}
