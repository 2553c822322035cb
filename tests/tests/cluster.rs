//! `make cluster`: pasarela on a three-node RabbitMQ cluster (tools/cluster/cluster.sh) with replicated
//! quorum queues. Three otp-send replicas and two of the other consumers run with `AMQP_URL` listing
//! the three nodes; the node that leads `otp.send` is stopped mid-run. Nothing may be lost, every result
//! is delivered, and a vendor call repeats only inside the crash window.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pasarela_e2e::{TestEnv, otp_send, qualify};
use serde_json::{Value, json};
use uuid::Uuid;

fn cluster(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/cluster/cluster.sh");
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .expect("tools/cluster/cluster.sh");
    assert!(
        out.status.success(),
        "cluster.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "make cluster: needs the three-node cluster of tools/cluster/cluster.sh"]
async fn the_node_leading_otp_send_stops_mid_run_and_nothing_is_lost() {
    let mut env = TestEnv::builder()
        .worker("otp-send")
        .worker("otp-send")
        .worker("otp-send")
        .worker("otp-verify")
        .worker("otp-verify")
        .worker("vendor-call")
        .worker("vendor-call")
        .env("PASARELA_AMQP_HEARTBEAT", "5s")
        .start()
        .await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "latency_ms": 200 }))
        .await;
    let sends: Vec<(String, Value)> = (0..5_000)
        .map(|_| {
            let id = Uuid::new_v4();
            (id.to_string(), otp_send(id))
        })
        .collect();
    let calls: Vec<(String, Value)> = (0..2_000)
        .map(|i| {
            let id = Uuid::new_v4().to_string();
            let body = json!({ "call_id": id, "vendor": "numrot", "method": "POST",
                "path": "/api/facturas", "body": { "i": i } });
            (id, body)
        })
        .collect();
    let started = Instant::now();
    env.publish_bulk("otp.send", &sends).await;
    env.publish_bulk("vendor.call", &calls).await;
    let published = sends.len() + calls.len();

    let mut seen = HashSet::new();
    while seen.len() < 500 {
        for e in env.events(100, Duration::from_secs(10)).await {
            let id = e.body["request_id"].as_str().or(e.body["call_id"].as_str());
            seen.insert(id.unwrap_or_default().to_string());
        }
    }
    let leader = cluster(&["leader", &qualify(&env.namespace, "otp.send")]);
    let node: String = leader
        .trim_start_matches("pasarela-")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let in_flight = published - seen.len();
    let stopped_at = Instant::now();
    cluster(&["stop-node", &node]);
    println!(
        "cluster: stopped {leader}, which led otp.send, with {in_flight} of {published} unfinished"
    );
    env.reconnect_broker().await;

    let deadline = Instant::now() + Duration::from_secs(600);
    let expected: HashSet<String> = sends
        .iter()
        .chain(&calls)
        .map(|(id, _)| id.clone())
        .collect();
    while !expected.is_subset(&seen) && Instant::now() < deadline {
        for e in env.events(500, Duration::from_secs(2)).await {
            let id = e.body["request_id"].as_str().or(e.body["call_id"].as_str());
            seen.insert(id.unwrap_or_default().to_string());
        }
    }
    let drained = stopped_at.elapsed();
    cluster(&["start-node", &node]);
    let terminal = expected.intersection(&seen).count();
    let lost = published - terminal;
    let calls_made =
        env.sim.calls("danaconnect", "send").await + env.sim.calls("numrot", "call").await;
    let taken_over: i64 = env
        .query("SELECT coalesce(sum(possible_duplicates), 0)::int8 FROM work_items")
        .await[0]
        .get(0);
    println!(
        "cluster: published {published}, terminal {terminal}, lost {lost}, vendor calls {calls_made} ({} repeated, {taken_over} taken over after a crash), drained {:.1} s after the stop ({:.1} s in all)",
        calls_made.saturating_sub(published as u64),
        drained.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    env.teardown().await;
    assert_eq!(lost, 0, "results were lost");
    assert!(
        calls_made <= published as u64 + taken_over as u64,
        "a vendor call repeated outside a crash window"
    );
}
