//! The `pasarela` command against a running worker: status, the queues view, and dead letters shown,
//! replayed once the vendor is back, and discarded with a reason.

use std::time::Duration;

use pasarela_e2e::TestEnv;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_message_dead_lettered_in_an_outage_is_replayed_and_sent() {
    let mut env = TestEnv::start().await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "outage": true }))
        .await;
    let id = Uuid::new_v4();
    env.send_otp(id).await;
    let ev = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(
        ev[0].body["status"],
        "failed",
        "worker log:\n{}",
        env.worker_log()
    );

    let (ok, out) = env.cli(&["dlq", "list", "otp.send"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&id.to_string()) && out.contains("exhausted"),
        "{out}"
    );

    let (ok, out) = env.cli(&["status", &id.to_string()]).await;
    assert!(ok, "{out}");
    assert!(out.contains("failed"), "{out}");

    env.sim.clear_faults().await;
    let (ok, out) = env.cli(&["dlq", "replay", "otp.send"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("replayed 1"), "{out}");

    let ev = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(ev.len(), 1, "worker log:\n{}", env.worker_log());
    assert_eq!(ev[0].body["request_id"], id.to_string());
    assert_eq!(ev[0].body["status"], "sent");
    assert_eq!(ev[0].body["attempts"], 1, "a replay starts over");

    let (ok, out) = env.cli(&["status", &id.to_string(), "--json"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("\"sent\""), "{out}");
    let rows = env
        .query("SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL")
        .await;
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    env.teardown().await;
}

/// The first `/metrics` address a worker of `env` logged.
fn health_address(env: &TestEnv) -> String {
    let log = env.worker_log();
    let line = log
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .expect("the worker logs where it serves /readyz");
    let at = line.find("127.0.0.1:").expect("a loopback address");
    line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect()
}

/// The JSON document a command printed on stdout.
async fn json_of(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let (ok, out) = env.cli(args).await;
    assert!(ok, "{args:?}: {out}");
    let start = out.find('{').unwrap_or(0);
    let end = out.rfind('}').map_or(out.len(), |e| e + 1);
    serde_json::from_str(&out[start..end]).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// An operator's tools on real dead letters: `queues --once` shows the `.dead` queue and the worker,
/// `dlq show` prints one letter, `dlq replay --id` sends one back, `dlq discard --kind` throws the
/// rest away with a reason, and the queue ends empty.
#[tokio::test]
async fn queues_and_dlq_show_replay_and_discard_real_dead_letters() {
    // Twelve failed calls open the provider's circuit; a short cooldown lets the replay find it closed.
    let mut env = TestEnv::builder()
        .worker("otp-send")
        .env("PASARELA_OTP_BREAKER_COOLDOWN", "1s")
        .start()
        .await;
    env.sim
        .faults(json!({ "vendor": "danaconnect", "outage": true }))
        .await;
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        env.send_otp(*id).await;
    }
    let ev = env.events(3, Duration::from_secs(40)).await;
    assert!(ev.iter().all(|e| e.body["status"] == "failed"), "{ev:?}");
    let dead = format!("{}.otp.send.dead", env.namespace);
    let health = format!("--health=otp-send=http://{}", health_address(&env));

    // The management API samples every few seconds: wait for it to count the three.
    let mut view = serde_json::Value::Null;
    for _ in 0..30 {
        view = json_of(&env, &["queues", "--once", "--format", "json", &health]).await;
        let line = view["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == dead.as_str());
        if line.is_some_and(|q| q["messages"] == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let line = view["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == dead.as_str())
        .cloned()
        .unwrap();
    println!("queues --format json, {dead}: {line}");
    assert_eq!(line["messages"], 3, "{view}");
    assert_eq!(line["oldest_from"], "dead_letters", "{line}");
    assert_eq!(view["workers"][0]["state"], "ready", "{view}");
    // The worker's /metrics: HELP text on every metric, buckets up to 300 s, and its build.
    let metrics = reqwest::get(format!("http://{}/metrics", health_address(&env)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let types = metrics.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = metrics.lines().filter(|l| l.starts_with("# HELP ")).count();
    println!(
        "/metrics: {types} metrics, {helps} with HELP; {}",
        metrics
            .lines()
            .find(|l| l.starts_with("pasarela_build_info"))
            .unwrap_or("no build_info")
    );
    assert_eq!(types, helps, "{metrics}");
    assert!(
        metrics.contains("pasarela_build_info{service=\"otp-send\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("pasarela_message_seconds_bucket{queue=\"otp.send\",le=\"300\"}"),
        "{metrics}"
    );
    let (ok, table) = env.cli(&["queues", "--once", &health]).await;
    assert!(ok, "{table}");
    println!(
        "queues --once:\n{}",
        table
            .lines()
            .filter(|l| !l.contains("(not declared)"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(table.lines().any(|l| l.starts_with(&dead)), "{table}");

    let listing = json_of(&env, &["dlq", "list", "otp.send", "--format", "json"]).await;
    let letters = listing["letters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 3, "{listing}");
    let first = letters[0]["id"].as_i64().unwrap().to_string();
    let (ok, shown) = env.cli(&["dlq", "show", &first]).await;
    println!("dlq show {first}:\n{shown}");
    assert!(
        ok && shown.contains("exhausted") && shown.contains("headers:"),
        "{shown}"
    );
    let shown = json_of(&env, &["dlq", "show", &first, "--format", "json"]).await;
    assert_eq!(shown["queue"], "otp.send");
    assert!(shown["body"].is_object(), "{shown}");

    env.sim.clear_faults().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The newest letter by its row: the letters ahead of it in the queue are looked at and handed
    // back. Rows are stamped when their commit runs and the queue keeps the order the messages
    // died in, which can differ by a few milliseconds, so up to two are ahead of it.
    let last = letters[2]["id"].as_i64().unwrap().to_string();
    let (ok, out) = env.cli(&["dlq", "replay", "otp.send", "--id", &last]).await;
    println!("dlq replay --id {last}: {out}");
    let ahead = ["(0 looked at", "(1 looked at", "(2 looked at"];
    assert!(
        ok && out.contains("replayed 1 message(s)") && ahead.iter().any(|a| out.contains(a)),
        "{out}"
    );
    let ev = env.events(1, Duration::from_secs(30)).await;
    assert_eq!(ev[0].body["status"], "sent");
    assert_eq!(ev[0].body["request_id"], letters[2]["message_id"]);

    let discard = [
        "dlq",
        "discard",
        "otp.send",
        "--kind",
        "exhausted",
        "--since",
        "1h",
        "--reason",
        "customer cancelled",
    ];
    for (dry_run, says) in [
        (true, "would discard 2 of 2"),
        (false, "discarded 2 message(s)"),
    ] {
        let mut args = discard.to_vec();
        if dry_run {
            args.push("--dry-run");
        }
        let (ok, out) = env.cli(&args).await;
        println!(
            "dlq discard{}: {out}",
            if dry_run { " --dry-run" } else { "" }
        );
        assert!(ok && out.contains(says), "{out}");
    }
    let rows = env
        .query(
            "SELECT count(*) FILTER (WHERE replayed_at IS NOT NULL), \
                    count(*) FILTER (WHERE discard_reason = 'customer cancelled') FROM dead_letters",
        )
        .await;
    assert_eq!((rows[0].get::<_, i64>(0), rows[0].get::<_, i64>(1)), (1, 2));
    // Both are on the console's Actions page too, under the command's user.
    let actions = env
        .query(
            "SELECT action, reason, outcome FROM operator_actions \
             WHERE operator LIKE 'cli:%' ORDER BY created_at",
        )
        .await;
    let actions: Vec<(String, Option<String>, Option<String>)> = actions
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0].0, "replay", "{actions:?}");
    assert_eq!(actions[1].0, "discard", "{actions:?}");
    assert_eq!(actions[1].1.as_deref(), Some("customer cancelled"));
    assert!(
        actions[1]
            .2
            .as_deref()
            .is_some_and(|o| o.starts_with("discarded 2 message(s)")),
        "{actions:?}"
    );
    let listing = json_of(&env, &["dlq", "list", "otp.send", "--format", "json"]).await;
    println!(
        "after: broker {} message(s), {} open letter(s)",
        listing["broker_messages"], listing["open_letters"]
    );
    assert_eq!(listing["broker_messages"], 0, "{listing}");
    assert_eq!(listing["open_letters"], 0, "{listing}");
    env.teardown().await;
}
