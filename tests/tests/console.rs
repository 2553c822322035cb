//! The operator console (`pasarela console`) against a real environment: it answers only with its
//! token, sends its security headers on every answer, finds a finished send by its request id and
//! shows the environment's queues.

use std::process::Stdio;

use pasarela_e2e::traces::TraceReceiver;
use pasarela_e2e::{TestEnv, free_port, otp, wait_until_listening};
use reqwest::StatusCode;
use uuid::Uuid;

const TOKEN: &str = "console-test-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn the_console_answers_only_with_its_token_and_finds_a_request() {
    // Traces exported to a receiver of the test's own, so that the send has a trace id to link.
    let receiver = TraceReceiver::start().await;
    let mut env = TestEnv::builder()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .worker("otp-send")
        .start()
        .await;
    let request_id = Uuid::new_v4();
    let sent = otp::send(
        &mut env,
        &otp::danaconnect_send(request_id, "numeric", 6, 300),
    )
    .await;
    assert_eq!(sent["status"], "sent", "{sent}");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut console = env
        .cli_command(&["console", "--listen", &format!("127.0.0.1:{port}")])
        .await
        .env("PASARELA_CONSOLE_TOKEN", TOKEN)
        .env(
            "PASARELA_CONSOLE_TRACE_URL",
            "http://127.0.0.1:3000/explore?trace={trace_id}",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting pasarela console");
    wait_until_listening(&base).await;
    let http = reqwest::Client::new();

    // No token, a wrong one: 401, and a browser is asked for the password.
    let bare = http.get(&base).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert!(
        bare.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let wrong = http
        .get(&base)
        .bearer_auth("console-test-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = http
        .get(&base)
        .basic_auth("ops", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // Even a refusal carries the security headers.
    assert_eq!(wrong.headers()["x-frame-options"], "DENY");

    // The token as a Bearer token and as the Basic password.
    let home = http.get(&base).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    let headers = home.headers().clone();
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"),
        "{policy}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(home.text().await.unwrap().contains("Find a request"));

    let found = http
        .get(format!("{base}/search?q={request_id}"))
        .basic_auth("ops", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), StatusCode::OK);
    let page = found.text().await.unwrap();
    for expected in [
        request_id.to_string().as_str(),
        "OTP send",
        "sent",
        "otp.send",
        "danaconnect",
    ] {
        assert!(page.contains(expected), "{expected:?} missing:\n{page}");
    }
    // The send's trace, linked to where traces are shown.
    let trace_id: String = env
        .query(&format!(
            "SELECT replace(trace_id::text, '-', '') FROM work_items WHERE message_id = '{request_id}'"
        ))
        .await[0]
        .get(0);
    assert!(
        page.contains(&format!("http://127.0.0.1:3000/explore?trace={trace_id}")),
        "no link to the trace {trace_id}:\n{page}"
    );
    // The code is never shown: the page does not hold the one the simulator delivered.
    let inbox = env.sim.get("inbox").await;
    let codes: Vec<&str> = inbox
        .as_array()
        .expect("the inbox is an array")
        .iter()
        .filter_map(|m| m["code"].as_str())
        .collect();
    assert!(!codes.is_empty(), "{inbox}");
    for code in codes {
        assert!(!page.contains(code), "the code {code} is on the page");
    }

    let not_an_id = http
        .get(format!(
            "{base}/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    // Not an id: a tenant's name to look for, echoed escaped.
    assert_eq!(not_an_id.status(), StatusCode::OK);
    let page = not_an_id.text().await.unwrap();
    assert!(
        !page.contains("<script>") && page.contains("&lt;script&gt;"),
        "{page}"
    );

    let queues = http
        .get(format!("{base}/queues"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(queues.status(), StatusCode::OK);
    let page = queues.text().await.unwrap();
    let work_queue = format!("{}.otp.send", env.namespace);
    assert!(
        page.contains(&work_queue) && page.contains("otp-send"),
        "{page}"
    );

    let _ = console.kill().await;
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_refuses_to_start_with_a_short_token() {
    let env = TestEnv::builder().worker("otp-send").start().await;
    let out = env
        .cli_command(&["console", "--listen", "127.0.0.1:0"])
        .await
        .env("PASARELA_CONSOLE_TOKEN", "short")
        .output()
        .await
        .expect("running pasarela console");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("PASARELA_CONSOLE_TOKEN"), "{stderr}");
    assert!(
        !stderr.contains("short"),
        "the refused token is echoed: {stderr}"
    );
    env.teardown().await;
}
