//! Hole 11: a broker node that keeps its TCP port open but stops answering. A proxy between the worker
//! and RabbitMQ stops forwarding (a black hole) while work is in flight; the worker must say not ready
//! within two heartbeat intervals, recover when forwarding resumes, and exit within its grace period on
//! SIGTERM during the black hole, losing nothing.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pasarela_e2e::{BlackHole, TestEnv, free_port, services};
use serde_json::json;
use uuid::Uuid;

const HEARTBEAT: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_secs(5);
const BATCH: usize = 40;

/// The broker's address, from the harness's `AMQP_URL`.
async fn broker_address() -> SocketAddr {
    let url = &services().await.amqp_url;
    let authority = url.split('@').next_back().expect("host");
    let host_port = authority.split('/').next().expect("host:port");
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().expect("a loopback host:port")
}

async fn publish_batch(env: &TestEnv) -> Vec<String> {
    let mut ids = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        let id = Uuid::new_v4().to_string();
        let message = json!({ "call_id": id, "vendor": "numrot", "method": "POST",
            "path": "/api/facturas", "body": { "i": i } });
        env.publish_to("vendor.call", &message, &id).await;
        ids.push(id);
    }
    ids
}

/// Reads events until `seen` holds every id of `ids` or `timeout` passes.
async fn collect(env: &mut TestEnv, ids: &[String], seen: &mut HashSet<String>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while ids.iter().any(|id| !seen.contains(id)) && Instant::now() < deadline {
        for e in env.events(1, Duration::from_millis(500)).await {
            seen.insert(e.body["call_id"].as_str().unwrap_or_default().to_string());
        }
    }
}

async fn ready(http: &reqwest::Client, port: u16) -> bool {
    http.get(format!("http://127.0.0.1:{port}/readyz"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

async fn wait_ready(http: &reqwest::Client, port: u16, want: bool, within: Duration) -> Duration {
    let started = Instant::now();
    while ready(http, port).await != want {
        assert!(
            started.elapsed() < within,
            "/readyz is not {want} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn hole_11_a_broker_that_stops_answering_is_left_found_again_and_sigterm_still_exits() {
    let proxy = BlackHole::start(broker_address().await).await;
    let metrics = free_port();
    let mut env = TestEnv::builder()
        .worker("vendor-call")
        .env(
            "AMQP_URL",
            &format!("amqp://guest:guest@{}/%2f", proxy.addr),
        )
        .env("PASARELA_AMQP_HEARTBEAT", "2s")
        .env("PASARELA_METRICS_ADDR", &format!("127.0.0.1:{metrics}"))
        .env("PASARELA_SHUTDOWN_GRACE", "5s")
        .start()
        .await;
    let http = reqwest::Client::new();
    wait_ready(&http, metrics, true, Duration::from_secs(10)).await;
    env.sim
        .faults(json!({ "vendor": "numrot", "latency_ms": 100 }))
        .await;
    let mut seen = HashSet::new();

    // The black hole strikes mid-batch.
    let first = publish_batch(&env).await;
    collect(&mut env, &first[..1], &mut seen, Duration::from_secs(30)).await;
    proxy.swallow();
    let in_flight = BATCH - seen.len();
    assert!(in_flight > 0, "the batch finished before the fault");
    let not_ready = wait_ready(&http, metrics, false, HEARTBEAT * 2).await;
    eprintln!(
        "black hole 1: {in_flight} of {BATCH} in flight; /readyz not ready after {not_ready:?}"
    );
    proxy.forward();
    let back = wait_ready(&http, metrics, true, Duration::from_secs(60)).await;
    collect(&mut env, &first, &mut seen, Duration::from_secs(90)).await;
    let lost = first.iter().filter(|id| !seen.contains(*id)).count();
    eprintln!("forwarding again: ready after {back:?}; lost {lost}");
    assert_eq!(lost, 0, "logs:\n{}", env.worker_log());

    // SIGTERM during a second black hole.
    let second = publish_batch(&env).await;
    collect(&mut env, &second[..1], &mut seen, Duration::from_secs(30)).await;
    proxy.swallow();
    let in_flight = second.iter().filter(|id| !seen.contains(*id)).count();
    assert!(in_flight > 0, "the batch finished before the fault");
    let started = Instant::now();
    let status = env.signal_worker("TERM").await;
    let took = started.elapsed();
    eprintln!(
        "black hole 2: {in_flight} of {BATCH} in flight; SIGTERM exit {status:?} after {took:?}"
    );
    assert!(
        took < GRACE + Duration::from_secs(1),
        "exit took {took:?}, past the grace period; logs:\n{}",
        env.worker_log()
    );
    proxy.forward();
    env.start_worker().await;
    collect(&mut env, &second, &mut seen, Duration::from_secs(90)).await;
    let lost = second.iter().filter(|id| !seen.contains(*id)).count();
    let calls = env.sim.calls("numrot", "call").await;
    eprintln!(
        "published {}, terminal {}, lost {lost}, vendor calls {calls}",
        2 * BATCH,
        seen.len()
    );
    assert_eq!(lost, 0, "logs:\n{}", env.worker_log());
    env.teardown().await;
}
