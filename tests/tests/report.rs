//! The OTP reports: `pasarela report otp` and the Grafana dashboard, both over the same seeded sends in
//! a database of their own. The dashboard's SQL runs here with Grafana's macros and variables expanded,
//! so a query that would fail in Grafana fails here.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use pasarela_e2e::TestDatabase;
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;

/// The window every fixture but one falls in.
const SINCE: &str = "2024-05-01T00:00:00Z";
const UNTIL: &str = "2024-05-02T00:00:00Z";

/// Ten sends over three hours of the window, covering the five states, the four channels, two
/// tenants and providers and the three fraud-guard limits; one more before the window.
const FIXTURES: &str = "
INSERT INTO otp_requests (request_id, message_id, tenant, provider, channel, destination_mobile,
    destination_email, status, attempts, state, created_at, generated_at, expires_at, validated_at,
    verify_attempts, error_kind, error_message)
VALUES
    ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000001', 'acme', 'aldeamo',
     'sms', '+573001112233', NULL, 'sent', 1, 'validated_ok', '2024-05-01 10:05:00Z',
     '2024-05-01 10:05:02Z', '2024-05-01 10:10:02Z', '2024-05-01 10:06:02Z', 1, NULL, NULL),
    ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000002', 'acme', 'aldeamo',
     'email', NULL, 'ana@example.com', 'sent', 1, 'validated_failed', '2024-05-01 10:20:00Z',
     '2024-05-01 10:20:01Z', '2024-05-01 10:25:01Z', NULL, 1, NULL, NULL),
    ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000003', 'acme', 'aldeamo',
     'whatsapp', '+573004445566', NULL, 'sent', 1, 'generated', '2024-05-01 10:40:00Z',
     '2024-05-01 10:40:01Z', '2024-05-01 10:45:01Z', NULL, 0, NULL, NULL),
    ('00000000-0000-4000-8000-000000000004', '00000000-0000-4000-8000-000000000004', 'globex', 'danaconnect',
     'sms', '+573007778899', NULL, 'sent', 1, 'expired', '2024-05-01 11:00:00Z',
     '2024-05-01 11:00:01Z', '2024-05-01 11:05:01Z', NULL, 1, NULL, NULL),
    ('00000000-0000-4000-8000-000000000005', '00000000-0000-4000-8000-000000000005', 'globex', 'danaconnect',
     'voice', '+573001231234', NULL, 'sent', 1, 'validated_ok', '2024-05-01 11:15:00Z',
     '2024-05-01 11:15:00Z', '2024-05-01 11:20:00Z', '2024-05-01 11:17:00Z', 2, NULL, NULL),
    ('00000000-0000-4000-8000-000000000006', '00000000-0000-4000-8000-000000000006', 'globex', 'danaconnect',
     'email', NULL, 'bob@example.org', 'sent', 1, 'generated', '2024-05-01 11:30:00Z',
     '2024-05-01 11:30:01Z', '2024-05-01 11:35:01Z', NULL, 1, NULL, NULL),
    ('00000000-0000-4000-8000-000000000007', '00000000-0000-4000-8000-000000000007', 'acme', 'aldeamo',
     'sms', '+573009990000', NULL, 'rejected', 1, 'errored', '2024-05-01 12:00:00Z',
     NULL, NULL, NULL, 0, 'rate_limited', 'limit.destination: 5 sends in 3600 s'),
    ('00000000-0000-4000-8000-000000000008', '00000000-0000-4000-8000-000000000008', 'acme', 'aldeamo',
     'sms', '+573009990001', NULL, 'rejected', 1, 'errored', '2024-05-01 12:10:00Z',
     NULL, NULL, NULL, 0, 'rate_limited', 'limit.tenant: 1000 sends in 3600 s'),
    ('00000000-0000-4000-8000-000000000009', '00000000-0000-4000-8000-000000000009', 'globex', 'aldeamo',
     'sms', '+12025550123', NULL, 'rejected', 1, 'errored', '2024-05-01 12:20:00Z',
     NULL, NULL, NULL, 0, 'rejected', 'limit.country: +1 is not an allowed prefix'),
    ('00000000-0000-4000-8000-000000000010', '00000000-0000-4000-8000-000000000010', 'globex', 'danaconnect',
     'email', NULL, 'carol@example.net', 'failed', 4, 'errored', '2024-05-01 12:30:00Z',
     NULL, NULL, NULL, 0, 'vendor', 'HTTP 503 after 4 attempts'),
    ('00000000-0000-4000-8000-000000000011', '00000000-0000-4000-8000-000000000011', 'acme', 'aldeamo',
     'sms', '+573000000011', NULL, 'sent', 1, 'validated_ok', '2024-04-30 23:00:00Z',
     '2024-04-30 23:00:01Z', '2024-04-30 23:05:01Z', '2024-04-30 23:01:01Z', 1, NULL, NULL);

-- Validations the vendor answered: sends 1, 2, 4 and 5 (5 twice, counted once). Send 6 has only a
-- vendor failure and a pending verification, which are not validations.
INSERT INTO otp_verifications (verification_id, message_id, request_id, tenant, provider, status,
    outcome, created_at, completed_at)
VALUES
    ('00000000-0000-4000-9000-000000000001', '00000000-0000-4000-9000-000000000001',
     '00000000-0000-4000-8000-000000000001', 'acme', 'aldeamo', 'completed', 'verified',
     '2024-05-01 10:06:01Z', '2024-05-01 10:06:02Z'),
    ('00000000-0000-4000-9000-000000000002', '00000000-0000-4000-9000-000000000002',
     '00000000-0000-4000-8000-000000000002', 'acme', 'aldeamo', 'completed', 'incorrect',
     '2024-05-01 10:21:00Z', '2024-05-01 10:21:01Z'),
    ('00000000-0000-4000-9000-000000000004', '00000000-0000-4000-9000-000000000004',
     '00000000-0000-4000-8000-000000000004', 'globex', 'danaconnect', 'completed', 'expired',
     '2024-05-01 11:09:00Z', '2024-05-01 11:09:01Z'),
    ('00000000-0000-4000-9000-000000000005', '00000000-0000-4000-9000-000000000005',
     '00000000-0000-4000-8000-000000000005', 'globex', 'danaconnect', 'completed', 'incorrect',
     '2024-05-01 11:16:00Z', '2024-05-01 11:16:01Z'),
    ('00000000-0000-4000-9000-000000000105', '00000000-0000-4000-9000-000000000105',
     '00000000-0000-4000-8000-000000000005', 'globex', 'danaconnect', 'completed', 'verified',
     '2024-05-01 11:16:59Z', '2024-05-01 11:17:00Z'),
    ('00000000-0000-4000-9000-000000000006', '00000000-0000-4000-9000-000000000006',
     '00000000-0000-4000-8000-000000000006', 'globex', 'danaconnect', 'failed', 'failed',
     '2024-05-01 11:31:00Z', '2024-05-01 11:31:05Z'),
    ('00000000-0000-4000-9000-000000000106', '00000000-0000-4000-9000-000000000106',
     '00000000-0000-4000-8000-000000000006', 'globex', 'danaconnect', 'pending', NULL,
     '2024-05-01 11:32:00Z', NULL),
    ('00000000-0000-4000-9000-000000000011', '00000000-0000-4000-9000-000000000011',
     '00000000-0000-4000-8000-000000000011', 'acme', 'aldeamo', 'completed', 'verified',
     '2024-04-30 23:01:00Z', '2024-04-30 23:01:01Z');

-- Aldeamo's otpTransactionId of send 1, which the report shows beside pasarela's id.
UPDATE otp_requests SET vendor_request_id = '013ff9a3-4ccf-4125-af33-8e38862680c2'
WHERE request_id = '00000000-0000-4000-8000-000000000001';
";

/// Every destination the fixtures hold: none may appear in a report.
const RAW_DESTINATIONS: [&str; 11] = [
    "+573001112233",
    "ana@example.com",
    "+573004445566",
    "+573007778899",
    "+573001231234",
    "bob@example.org",
    "+573009990000",
    "+573009990001",
    "+12025550123",
    "carol@example.net",
    "+573000000011",
];

async fn seeded() -> TestDatabase {
    let database = TestDatabase::create().await;
    database
        .db
        .batch_execute(FIXTURES)
        .await
        .expect("seeding the fixtures");
    database
}

/// Runs `pasarela report otp` over the fixtures' window with more arguments; returns stdout.
async fn report(database: &TestDatabase, args: &[&str]) -> String {
    let mut all = vec!["report", "otp", "--since", SINCE, "--until", UNTIL];
    all.extend_from_slice(args);
    let out = database.cli(&all).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pasarela {all:?} failed:\n{stderr}");
    assert_no_raw_destination(&stdout);
    assert_no_raw_destination(&stderr);
    stdout
}

fn assert_no_raw_destination(text: &str) {
    for raw in RAW_DESTINATIONS {
        assert!(!text.contains(raw), "{raw} appears unmasked in\n{text}");
    }
}

/// The CSV header of the detail section.
const DETAIL_HEADER: [&str; 9] = [
    "transaction_id",
    "vendor_transaction_id",
    "user",
    "destination",
    "channel",
    "provider",
    "generated_at",
    "validated_at",
    "state",
];

/// The CSV header of the traffic light's section.
const LIGHT_HEADER: [&str; 8] = [
    "measure",
    "generated",
    "validated",
    "validated_ok",
    "measured",
    "ratio_percent",
    "band",
    "label",
];

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The records of a CSV document after its header, which must be `header`.
fn csv_records(text: &str, header: &[&str]) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let found: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(found, header, "{text}");
    reader
        .records()
        .map(|r| {
            r.expect("an RFC 4180 record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// The lines of a table report's section: from its heading to the next blank line.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?} in\n{text}"))
        + 1;
    let rest = &text[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// The words of the line starting with `start`, which must be there.
fn words_of_line<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start:?} in\n{text}"))
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn the_otp_report_counts_the_seeded_sends_in_every_format() {
    let database = seeded().await;

    let table = report(&database, &[]).await;
    let detail = section(&table, "Detail (10 of 10 OTPs, newest first)");
    assert_eq!(
        detail.lines().count(),
        12,
        "heading, column titles, ten rows:\n{detail}"
    );
    // Masked as pasarela_mask_destination masks them; the send before the window is left out.
    assert_eq!(
        words_of_line(detail, "00000000-0000-4000-8000-000000000001"),
        [
            "00000000-0000-4000-8000-000000000001",
            "013ff9a3-4ccf-4125-af33-8e38862680c2",
            "acme",
            "+5730*****233",
            "sms",
            "aldeamo",
            "2024-05-01",
            "10:05:02",
            "2024-05-01",
            "10:06:02",
            "validated_ok"
        ]
    );
    assert!(detail.contains("b**@example.org"), "{detail}");
    assert!(!table.contains("000000000011"), "{table}");
    let states = section(&table, "States");
    for (state, count) in [
        ("generated", "2"),
        ("validated_ok", "2"),
        ("validated_failed", "1"),
        ("expired", "1"),
        ("errored", "4"),
    ] {
        let words = words_of_line(states, &format!("{state} "));
        assert_eq!(words.last(), Some(&count), "{state} in\n{states}");
    }
    let hourly = section(&table, "Sends per channel per hour (UTC)");
    assert_eq!(
        hourly.lines().count(),
        5,
        "heading, column titles, three hours:\n{hourly}"
    );
    assert_eq!(
        words_of_line(hourly, "2024-05-01 12:00"),
        ["2024-05-01", "12:00", "3", "1", "0", "0", "4"]
    );
    // The default measure: 4 of the 6 generated were not validated successfully (2 were).
    let light = section(
        &table,
        "Validation traffic light: share of generated OTPs not validated successfully",
    );
    assert_eq!(words_of_line(light, "generated "), ["generated", "6"]);
    assert_eq!(
        words_of_line(light, "validated "),
        ["validated", "4", "(2", "successfully)"]
    );
    assert_eq!(words_of_line(light, "measured "), ["measured", "4"]);
    assert_eq!(words_of_line(light, "ratio "), ["ratio", "67", "%"]);
    assert!(
        light.contains("band       regular (Validaciones regulares)"),
        "{light}"
    );
    let limits = section(&table, "Fraud-guard refusals");
    for limit in ["destination", "tenant", "country"] {
        assert_eq!(words_of_line(limits, &format!("{limit} ")), [limit, "1"]);
    }

    let report_json = json(&report(&database, &["--format", "json"]).await);
    assert_eq!(
        report_json["states"],
        serde_json::json!({ "generated": 2, "validated_ok": 2, "validated_failed": 1, "expired": 1, "errored": 4 })
    );
    assert_eq!(
        report_json["traffic_light"],
        serde_json::json!({ "measure": "unvalidated",
            "description": "share of generated OTPs not validated successfully",
            "generated": 6, "validated": 4, "validated_ok": 2, "measured": 4, "ratio_percent": 67,
            "band": "regular", "label": "Validaciones regulares" })
    );
    assert_eq!(
        report_json["limits"],
        serde_json::json!({ "destination": 1, "tenant": 1, "country": 1 })
    );
    assert_eq!(report_json["filters"]["since"], SINCE);
    assert_eq!(report_json["filters"]["until"], UNTIL);
    let detail = report_json["detail"].as_array().expect("detail");
    assert_eq!(detail.len(), 10, "every row: json has no default limit");
    assert_eq!(
        detail[0]["transaction_id"], "00000000-0000-4000-8000-000000000010",
        "newest first"
    );
    let first = &detail[9];
    assert_eq!(
        first["transaction_id"],
        "00000000-0000-4000-8000-000000000001"
    );
    assert_eq!(
        first["vendor_transaction_id"],
        "013ff9a3-4ccf-4125-af33-8e38862680c2"
    );
    assert_eq!(first["user"], "acme");
    assert_eq!(first["destination"], "+5730*****233");
    assert_eq!(first["channel"], "sms");
    assert_eq!(first["provider"], "aldeamo");
    assert_eq!(first["generated_at"], "2024-05-01T10:05:02Z");
    assert_eq!(first["validated_at"], "2024-05-01T10:06:02Z");
    assert_eq!(first["state"], "validated_ok");
    let hourly = report_json["hourly"].as_array().expect("hourly");
    let hours: Vec<(&str, i64, i64, i64, i64, i64)> = hourly
        .iter()
        .map(|h| {
            let n = |k: &str| h[k].as_i64().expect(k);
            (
                h["hour"].as_str().expect("hour"),
                n("sms"),
                n("email"),
                n("whatsapp"),
                n("voice"),
                n("total"),
            )
        })
        .collect();
    assert_eq!(
        hours,
        [
            ("2024-05-01T10:00:00Z", 1, 1, 1, 0, 3),
            ("2024-05-01T11:00:00Z", 1, 1, 0, 1, 3),
            ("2024-05-01T12:00:00Z", 3, 1, 0, 0, 4),
        ]
    );

    for (section, header, rows) in [
        ("detail", &DETAIL_HEADER[..], 10),
        ("states", &["state", "otps"][..], 5),
        (
            "hourly",
            &["hour", "sms", "email", "whatsapp", "voice", "total"][..],
            3,
        ),
        ("light", &LIGHT_HEADER[..], 1),
        ("limits", &["limit", "refused"][..], 3),
    ] {
        let text = report(&database, &["--format", "csv", "--section", section]).await;
        let records = csv_records(&text, header);
        assert_eq!(records.len(), rows, "{section}:\n{text}");
    }
    let light = report(&database, &["--format", "csv", "--section", "light"]).await;
    assert_eq!(
        csv_records(&light, &LIGHT_HEADER),
        [[
            "unvalidated",
            "6",
            "4",
            "2",
            "4",
            "67",
            "regular",
            "Validaciones regulares"
        ]]
    );
    let limited = report(&database, &["--format", "csv", "--limit", "3"]).await;
    let records = csv_records(&limited, &DETAIL_HEADER);
    assert_eq!(records.len(), 3, "--limit 3:\n{limited}");

    database.drop_database().await;
}

#[tokio::test]
async fn the_otp_report_filters_and_refuses_bad_values() {
    let database = seeded().await;

    // SMS alone: sends 1 and 4 generated and both validated (1 successfully), three refused.
    let sms = json(&report(&database, &["--channel", "sms", "--format", "json"]).await);
    assert_eq!(sms["detail"].as_array().expect("detail").len(), 5);
    assert_eq!(sms["traffic_light"]["measure"], "unvalidated");
    assert_eq!(sms["traffic_light"]["ratio_percent"], 50);
    assert_eq!(sms["traffic_light"]["band"], "partially effective");
    assert_eq!(sms["states"]["errored"], 3);
    assert_eq!(sms["filters"]["channels"], serde_json::json!(["sms"]));
    // The document's literal measure, by flag or by setting: every generated OTP validated.
    let literal = json(
        &report(
            &database,
            &[
                "--channel",
                "sms",
                "--light",
                "validated",
                "--format",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(literal["traffic_light"]["ratio_percent"], 100);
    assert_eq!(literal["traffic_light"]["band"], "in danger");
    assert_eq!(literal["traffic_light"]["label"], "Validaciones en peligro");
    let out = database
        .cli_with(
            &[("PASARELA_OTP_TRAFFIC_LIGHT", "validated")],
            &[
                "report",
                "otp",
                "--since",
                SINCE,
                "--until",
                UNTIL,
                "--channel",
                "sms",
                "--format",
                "json",
            ],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_setting = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(by_setting["traffic_light"], literal["traffic_light"]);
    let out = database
        .cli_with(
            &[("PASARELA_OTP_TRAFFIC_LIGHT", "sideways")],
            &["report", "otp"],
        )
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PASARELA_OTP_TRAFFIC_LIGHT"));

    // Every filter takes several values: a comma list or the flag repeated.
    for (args, rows) in [
        (&["--state", "sent,expired"][..], 3),
        (&["--state", "generated", "--state", "expired"][..], 3),
        (&["--channel", "sms,voice"][..], 6),
        (&["--tenant", "acme,globex"][..], 10),
        (&["--destination", "ana@example.com,+573007778899"][..], 2),
        (
            &[
                "--provider",
                "danaconnect",
                "--state",
                "validated_ok,errored",
            ][..],
            2,
        ),
    ] {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let r = json(&report(&database, &all).await);
        let detail = r["detail"].as_array().expect("detail");
        assert_eq!(detail.len(), rows, "{args:?}: {r}");
    }

    let acme = json(
        &report(
            &database,
            &[
                "--tenant",
                "acme",
                "--provider",
                "aldeamo",
                "--format",
                "json",
            ],
        )
        .await,
    );
    let users: HashSet<&str> = acme["detail"]
        .as_array()
        .expect("detail")
        .iter()
        .map(|d| d["user"].as_str().expect("user"))
        .collect();
    assert_eq!(users, HashSet::from(["acme"]));
    assert_eq!(acme["detail"].as_array().expect("detail").len(), 5);

    // The destination matches the raw column and is shown masked, in the filters too.
    let ana = json(
        &report(
            &database,
            &["--destination", "ana@example.com", "--format", "json"],
        )
        .await,
    );
    let detail = ana["detail"].as_array().expect("detail");
    assert_eq!(detail.len(), 1);
    assert_eq!(detail[0]["destination"], "a**@example.com");
    assert_eq!(
        ana["filters"]["destinations"],
        serde_json::json!(["a**@example.com"])
    );
    let by_mobile = json(
        &report(
            &database,
            &["--destination", "+573007778899", "--format", "json"],
        )
        .await,
    );
    assert_eq!(by_mobile["states"]["expired"], 1);
    assert_eq!(
        by_mobile["filters"]["destinations"],
        serde_json::json!(["+5730*****899"])
    );

    let errored = report(&database, &["--state", "errored"]).await;
    assert!(
        errored.contains("band       none: no OTPs generated in this window"),
        "{errored}"
    );
    assert!(errored.contains("Detail (4 of 4 OTPs"), "{errored}");
    let errored_json = json(&report(&database, &["--state", "errored", "--format", "json"]).await);
    assert_eq!(errored_json["traffic_light"]["band"], Value::Null);
    assert_eq!(errored_json["traffic_light"]["ratio_percent"], Value::Null);

    // A relative --since: a thousand weeks back reaches the send before the window too.
    let out = database
        .cli(&["report", "otp", "--since", "1000w", "--format", "json"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let everything = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(everything["detail"].as_array().expect("detail").len(), 11);
    assert_eq!(everything["states"]["validated_ok"], 3);
    // The default window, the last week, holds none of the fixtures of 2024.
    let out = database.cli(&["report", "otp", "--format", "json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recent = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(recent["detail"].as_array().expect("detail").len(), 0);
    let at = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(recent["filters"][k].as_str().expect(k)).expect(k)
    };
    assert_eq!(
        (at("until") - at("since")).num_days(),
        7,
        "{}",
        recent["filters"]
    );

    let out = database
        .cli(&["report", "otp", "--state", "sent,lost"])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for state in [
        "generated",
        "validated_ok",
        "validated_failed",
        "expired",
        "errored",
    ] {
        assert!(stderr.contains(state), "{state} listed in: {stderr}");
    }
    let out = database
        .cli(&["report", "otp", "--since", "yesterday"])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RFC 3339") && stderr.contains("24h"),
        "{stderr}"
    );
    let out = database
        .cli(&["report", "otp", "--since", UNTIL, "--until", SINCE])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is after --until"));
    let out = database.cli(&["report", "otp", "--section", "light"]).await;
    assert!(
        !out.status.success(),
        "--section without --format csv is refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--section chooses the CSV section"));

    database.drop_database().await;
}

// ---- the Grafana dashboard ----------------------------------------------------------------------

const DATASOURCE_TYPE: &str = "grafana-postgresql-datasource";
const DATASOURCE_UID: &str = "pasarela-postgres";

fn repository_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// How the dashboard names a destination: masked.
const MASKED: &str = "pasarela_mask_destination(o.destination_mobile, o.destination_email)";

fn dashboard() -> Value {
    let path = repository_file("deploy/grafana/dashboards/otp-reports.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    json(&text)
}

fn panels(dashboard: &Value) -> &Vec<Value> {
    dashboard["panels"].as_array().expect("panels")
}

fn variables(dashboard: &Value) -> &Vec<Value> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
}

fn panel<'a>(dashboard: &'a Value, title: &str) -> &'a Value {
    panels(dashboard)
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel {title:?}"))
}

fn sql_of(panel: &Value) -> &str {
    panel["targets"][0]["rawSql"].as_str().expect("rawSql")
}

#[test]
fn the_dashboard_is_a_valid_grafana_dashboard_on_its_provisioned_datasource() {
    let d = dashboard();
    assert_eq!(d["uid"], "pasarela-otp-reports");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );

    let mut ids = HashSet::new();
    let mut cells = HashSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().expect("a panel title");
        assert!(!title.is_empty());
        assert!(
            ids.insert(p["id"].as_u64().expect("a numeric panel id")),
            "{title}: duplicate id"
        );
        assert!(
            [
                "stat",
                "gauge",
                "timeseries",
                "barchart",
                "bargauge",
                "histogram",
                "table",
                "piechart"
            ]
            .contains(&p["type"].as_str().expect("a panel type")),
            "{title}: type {}",
            p["type"]
        );
        assert_eq!(p["datasource"]["type"], DATASOURCE_TYPE, "{title}");
        assert_eq!(p["datasource"]["uid"], DATASOURCE_UID, "{title}");
        let grid = |k: &str| {
            p["gridPos"][k]
                .as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        };
        let (h, w, x, y) = (grid("h"), grid("w"), grid("x"), grid("y"));
        assert!(h > 0 && w > 0 && x + w <= 24, "{title}: gridPos");
        for row in y..y + h {
            for column in x..x + w {
                assert!(
                    cells.insert((row, column)),
                    "{title} overlaps another panel"
                );
            }
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut ref_ids = HashSet::new();
        for t in targets {
            assert!(
                ref_ids.insert(t["refId"].as_str().expect("refId")),
                "{title}: duplicate refId"
            );
            let sql = t["rawSql"].as_str().expect("rawSql");
            // Every panel counts the same rows as the CLI: the window and all four filters.
            for filter in [
                "$__timeFilter(o.created_at)",
                "$tenant",
                "$channel",
                "$state",
                "$destination",
            ] {
                assert!(sql.contains(filter), "{title}: {filter} missing");
            }
            // A destination only ever leaves the database masked.
            let unmasked = sql.replace(MASKED, "");
            assert!(
                !unmasked.contains("destination_mobile") && !unmasked.contains("destination_email"),
                "{title}"
            );
        }
    }

    let names: Vec<&str> = variables(&d)
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["tenant", "channel", "state", "destination", "light"]
    );
    for v in variables(&d) {
        let name = v["name"].as_str().expect("name");
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], DATASOURCE_UID, "{name}");
        assert!(
            v["query"].as_str().is_some_and(|q| q.contains("SELECT")),
            "{name}: query"
        );
        if name == "light" {
            // One measure at a time, the default one chosen.
            assert_eq!(v["multi"], false);
            assert_eq!(v["current"]["value"], "unvalidated");
            continue;
        }
        assert_eq!(v["multi"], true, "{name}: a multi-select filter");
        assert_eq!(v["includeAll"], true, "{name}");
        // Grafana puts a custom All value into the SQL as it is: the column equals itself. The
        // destination is compared masked, as it leaves the database only masked.
        let column = if name == "destination" {
            format!("coalesce({MASKED}, '')")
        } else {
            format!("o.{name}")
        };
        assert_eq!(v["allValue"], column, "{name}");
    }
    assert_eq!(
        d["time"]["from"], "now-7d",
        "the last week, as the document's report opens"
    );
    for pie in ["OTPs by state (share)", "Sends by channel (share)"] {
        assert_eq!(panel(&d, pie)["type"], "piechart", "{pie}");
    }

    let light = panel(&d, "Validation traffic light");
    assert_eq!(light["type"], "gauge");
    let defaults = &light["fieldConfig"]["defaults"];
    let steps: Vec<(Value, &str)> = defaults["thresholds"]["steps"]
        .as_array()
        .expect("threshold steps")
        .iter()
        .map(|s| (s["value"].clone(), s["color"].as_str().expect("color")))
        .collect();
    assert_eq!(
        steps,
        [
            (Value::Null, "green"),
            (26.into(), "yellow"),
            (51.into(), "orange"),
            (76.into(), "red"),
        ]
    );
    let mappings = defaults["mappings"].to_string();
    for label in [
        "Validaciones efectivas",
        "Validaciones parcialmente efectivas",
        "Validaciones regulares",
        "Validaciones en peligro",
    ] {
        assert!(mappings.contains(label), "{label} mapped");
    }
    assert!(sql_of(panel(&d, "OTP detail")).contains("pasarela_mask_destination("));
    assert!(
        sql_of(panel(&d, "Sends per channel per hour"))
            .contains("$__timeGroupAlias(o.created_at, 1h")
    );

    let provisioning = std::fs::read_to_string(repository_file(
        "deploy/grafana/provisioning/datasources/postgres.yaml",
    ))
    .expect("the datasource provisioning file");
    for line in [
        format!("type: {DATASOURCE_TYPE}"),
        format!("uid: {DATASOURCE_UID}"),
        "url: postgres:5432".into(),
        "user: grafana_reader".into(),
        "database: pasarela".into(),
    ] {
        assert!(
            provisioning.lines().any(|l| l.trim() == line),
            "{line} in\n{provisioning}"
        );
    }
    // The compose file's Grafana reads both folders, and its PostgreSQL is the one provisioned.
    let compose =
        std::fs::read_to_string(repository_file("docker-compose.yml")).expect("docker-compose.yml");
    for needed in [
        "./deploy/grafana/provisioning:/etc/grafana/provisioning",
        "./deploy/grafana/dashboards:/var/lib/grafana/dashboards",
        "POSTGRES_DB: pasarela",
        "\n  postgres:\n",
    ] {
        assert!(compose.contains(needed), "{needed:?} in docker-compose.yml");
    }
}

/// What the dashboard's variables are set to: each a list of values, or All when `None`.
type Choice<'a> = HashMap<&'a str, Option<Vec<&'a str>>>;

/// `sql` as Grafana sends it to PostgreSQL over the fixtures' window: macros and variables expanded.
fn expand(sql: &str, dashboard: &Value, choice: &Choice) -> String {
    let from = format!("'{SINCE}'");
    let to = format!("'{UNTIL}'");
    let hour = |args: &[String]| {
        assert_eq!(args[1], "1h", "only hourly groups are expanded here");
        format!("date_trunc('hour', {})", args[0])
    };
    let mut sql = replace_macro(sql, "$__timeFilter", |a| {
        format!("{} BETWEEN {from} AND {to}", a[0])
    });
    sql = replace_macro(&sql, "$__timeGroupAlias", |a| {
        format!("{} AS time", hour(a))
    });
    sql = replace_macro(&sql, "$__timeGroup", hour);
    sql = replace_macro(&sql, "$__timeFrom", |_| from.clone());
    sql = replace_macro(&sql, "$__timeTo", |_| to.clone());
    for v in variables(dashboard) {
        let name = v["name"].as_str().expect("name");
        let chosen = choice.get(name).cloned().flatten();
        // A variable that is neither multi nor All goes in as its text, which the SQL quotes itself.
        let single = v["multi"] != true && v["includeAll"] != true;
        let value = match chosen {
            None if single => v["current"]["value"]
                .as_str()
                .expect("a current value")
                .replace('\'', "''"),
            None => v["allValue"].as_str().expect("allValue").to_string(),
            Some(values) if single => values[0].replace('\'', "''"),
            Some(values) => values
                .iter()
                .map(|s| format!("'{}'", s.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(","),
        };
        for form in [format!("${{{name}:sqlstring}}"), format!("${{{name}}}")] {
            sql = sql.replace(&form, &value);
        }
        sql = replace_word(&sql, &format!("${name}"), &value);
    }
    assert!(!sql.contains('$'), "unexpanded macro or variable in\n{sql}");
    sql
}

/// Replaces each `name(args)` with `expansion(args)`, arguments split at top-level commas.
fn replace_macro(sql: &str, name: &str, expansion: impl Fn(&[String]) -> String) -> String {
    let opening = format!("{name}(");
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find(&opening) {
        out.push_str(&rest[..start]);
        let after = &rest[start + opening.len()..];
        let (mut depth, mut args, mut current) = (0, Vec::new(), String::new());
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    args.push(current.trim().to_string());
                    current.clear();
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        let end = end.unwrap_or_else(|| panic!("{name} is not closed in\n{sql}"));
        args.push(current.trim().to_string());
        out.push_str(&expansion(&args));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Replaces `word` where no identifier character follows it.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let after = &rest[at + word.len()..];
        let whole = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if whole { with } else { word });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A query's result as text, the way Grafana's table view would show it.
struct Rows {
    columns: Vec<String>,
    values: Vec<Vec<Option<String>>>,
}

impl Rows {
    fn column(&self, name: &str) -> Vec<Option<&str>> {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name:?} in {:?}", self.columns));
        self.values.iter().map(|row| row[i].as_deref()).collect()
    }

    fn only_row(&self) -> HashMap<&str, &str> {
        assert_eq!(self.values.len(), 1, "one row expected");
        self.columns
            .iter()
            .map(String::as_str)
            .zip(
                self.values[0]
                    .iter()
                    .map(|v| v.as_deref().unwrap_or("NULL")),
            )
            .collect()
    }
}

async fn run(reader: &tokio_postgres::Client, sql: &str) -> Rows {
    let messages = reader
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{e:?} running\n{sql}"));
    let mut rows = Rows {
        columns: Vec::new(),
        values: Vec::new(),
    };
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                rows.columns = columns.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                rows.values.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    rows
}

/// A role made by deploy/postgres/grafana-reader.sh's SQL (named for this database, as roles are the
/// server's), and a client logged in as it.
async fn grafana_reader(database: &TestDatabase) -> (String, tokio_postgres::Client) {
    let script = std::fs::read_to_string(repository_file("deploy/postgres/grafana-reader.sh"))
        .expect("deploy/postgres/grafana-reader.sh");
    let sql = script
        .split("<<'SQL'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nSQL").next())
        .expect("the script's SQL");
    let role = format!("grafana_reader_{}", &database.name[10..]);
    let sql = sql
        .replace(":'password'", "'reader'")
        .replace("DATABASE pasarela", &format!("DATABASE {}", database.name))
        .replace("grafana_reader", &role);
    database
        .db
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("{e:?} running\n{sql}"));
    let url = database
        .url
        .replacen("postgres@", &format!("{role}:reader@"), 1);
    assert_ne!(url, database.url, "the test server's URL names its user");
    (role, pasarela_e2e::pg_connect(&url).await)
}

/// Every panel's query under `choice`, by panel title.
async fn run_panels(
    reader: &tokio_postgres::Client,
    d: &Value,
    choice: &Choice<'_>,
) -> HashMap<String, Rows> {
    let mut results = HashMap::new();
    for p in panels(d) {
        let rows = run(reader, &expand(sql_of(p), d, choice)).await;
        let text: String = rows
            .values
            .iter()
            .flatten()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        assert_no_raw_destination(&text);
        results.insert(p["title"].as_str().expect("title").to_string(), rows);
    }
    results
}

#[tokio::test]
async fn every_dashboard_query_runs_against_the_schema_and_sees_the_seeded_sends() {
    let database = seeded().await;
    // As Grafana runs them: under the SELECT-only role deploy/postgres/grafana-reader.sh makes.
    let (role, reader) = grafana_reader(&database).await;
    let d = dashboard();

    let all: Choice = HashMap::new();
    let mut options = HashMap::new();
    for v in variables(&d) {
        let rows = run(
            &reader,
            &expand(v["query"].as_str().expect("query"), &d, &all),
        )
        .await;
        let values: Vec<String> = if rows.columns.iter().any(|c| c == "__value") {
            rows.column("__value")
                .into_iter()
                .map(|v| v.expect("a value").to_string())
                .collect()
        } else {
            rows.values
                .iter()
                .map(|r| r[0].clone().expect("a value"))
                .collect()
        };
        options.insert(v["name"].as_str().expect("name").to_string(), values);
    }
    assert_eq!(options["tenant"], ["acme", "globex"]);
    assert_eq!(options["light"], ["unvalidated", "validated"]);
    assert_eq!(
        options["destination"].len(),
        10,
        "{:?}",
        options["destination"]
    );
    assert!(options["destination"].contains(&"a**@example.com".to_string()));
    assert_eq!(options["channel"], ["sms", "email", "whatsapp", "voice"]);
    assert_eq!(
        options["state"],
        [
            "generated",
            "validated_ok",
            "validated_failed",
            "expired",
            "errored"
        ]
    );

    let results = run_panels(&reader, &d, &all).await;
    for p in panels(&d) {
        let title = p["title"].as_str().expect("title");
        assert!(
            !results[title].values.is_empty(),
            "{title}: no rows for the seeded sends"
        );
    }
    let states = results["OTPs by state"].only_row();
    assert_eq!(
        states,
        HashMap::from([
            ("Generated (generado)", "2"),
            ("Validated ok (validado exitoso)", "2"),
            ("Validated failed (validado no exitoso)", "1"),
            ("Expired (vencido)", "1"),
            ("Errored (errado)", "4"),
        ])
    );
    assert_eq!(
        results["Validation traffic light"].only_row()["Traffic light"],
        "67",
        "4 of the 6 generated not validated successfully, as the CLI counts"
    );
    assert_eq!(
        results["OTPs generated, validated and validated ok"].only_row(),
        HashMap::from([
            ("OTPs generated", "6"),
            ("OTPs validated", "4"),
            ("Validated ok", "2")
        ])
    );
    assert_eq!(
        results["OTPs by state (share)"].only_row(),
        results["OTPs by state"].only_row()
    );
    assert_eq!(
        results["Sends by channel (share)"].only_row(),
        HashMap::from([
            ("SMS", "5"),
            ("Email", "3"),
            ("WhatsApp", "1"),
            ("Voice", "1")
        ])
    );
    assert_eq!(
        results["OTP detail"].column("Vendor transaction id")[9],
        Some("013ff9a3-4ccf-4125-af33-8e38862680c2")
    );
    let hourly = &results["Sends per channel per hour"];
    assert_eq!(hourly.values.len(), 3);
    assert_eq!(hourly.column("SMS"), [Some("1"), Some("1"), Some("3")]);
    assert_eq!(hourly.column("Voice"), [Some("0"), Some("1"), Some("0")]);
    let limits = &results["Fraud-guard refusals"];
    assert_eq!(
        limits.column("Limit"),
        [Some("destination"), Some("tenant"), Some("country")]
    );
    assert_eq!(
        limits.column("Sends refused"),
        [Some("1"), Some("1"), Some("1")]
    );
    let mut seconds: Vec<f64> = results["Time to validate"]
        .column("Seconds to validate")
        .into_iter()
        .map(|s| s.expect("seconds").parse().expect("a number"))
        .collect();
    seconds.sort_by(f64::total_cmp);
    assert_eq!(seconds, [60.0, 120.0]);
    let detail = &results["OTP detail"];
    assert_eq!(detail.values.len(), 10);
    assert_eq!(detail.column("Destination")[9], Some("+5730*****233"));

    // One value of each variable: acme's validated SMS, send 1 alone.
    let one: Choice = HashMap::from([
        ("tenant", Some(vec!["acme"])),
        ("channel", Some(vec!["sms"])),
        ("state", Some(vec!["validated_ok"])),
        ("destination", Some(vec!["+5730*****233"])),
    ]);
    let results = run_panels(&reader, &d, &one).await;
    assert_eq!(
        results["OTP detail"].column("Transaction id"),
        [Some("00000000-0000-4000-8000-000000000001")]
    );
    assert_eq!(
        results["OTPs by state"].only_row()["Validated ok (validado exitoso)"],
        "1"
    );
    assert_eq!(
        results["Validation traffic light"].only_row()["Traffic light"],
        "0",
        "the one OTP was validated successfully"
    );
    let literal = HashMap::from([
        ("tenant", Some(vec!["acme"])),
        ("channel", Some(vec!["sms"])),
        ("state", Some(vec!["validated_ok"])),
        ("light", Some(vec!["validated"])),
    ]);
    let results_literal = run_panels(&reader, &d, &literal).await;
    assert_eq!(
        results_literal["Validation traffic light"].only_row()["Traffic light"],
        "100"
    );
    assert_eq!(
        results["Fraud-guard refusals"].column("Sends refused"),
        [Some("0"), Some("0"), Some("0")]
    );
    // Several values: both tenants are every tenant; a state no send is in leaves the light without
    // a value, which the gauge maps to "no band".
    let several: Choice = HashMap::from([
        ("tenant", Some(vec!["acme", "globex"])),
        ("state", Some(vec!["errored"])),
    ]);
    let results = run_panels(&reader, &d, &several).await;
    assert_eq!(results["OTP detail"].values.len(), 4);
    assert_eq!(
        results["Validation traffic light"].only_row()["Traffic light"],
        "NULL"
    );
    assert_eq!(
        results["Fraud-guard refusals"].column("Sends refused"),
        [Some("1"), Some("1"), Some("1")]
    );

    // And it may change nothing: read-only is its sessions' default, and it has no write grant either.
    for write in ["DELETE FROM otp_requests", "CREATE TABLE intruder (id int)"] {
        let refused = reader.batch_execute(write).await.expect_err(write);
        assert_eq!(
            refused.code(),
            Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
            "grafana_reader: {write}: {refused:?}"
        );
    }
    reader
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .expect("a session setting");
    let refused = reader
        .batch_execute("DELETE FROM otp_requests")
        .await
        .expect_err("a DELETE without the grant");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "grafana_reader, read-only off: DELETE: {refused:?}"
    );
    drop(reader);
    database.drop_database().await;
    let admin = pasarela_e2e::pg_connect(&format!(
        "{}/postgres",
        pasarela_e2e::services().await.pg_base
    ))
    .await;
    let _ = admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}
