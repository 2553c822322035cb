//! Configuration that refuses to start wrong: outside `PASARELA_PROFILE=demo`, a worker with no vendor
//! settings exits at once, naming every variable it lacks, instead of starting "healthy" against the
//! simulator's demo endpoints.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pasarela_e2e::binary;

/// A worker that refuses its settings exits in milliseconds; one that starts instead is stopped here,
/// so that the test fails rather than hangs.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// Runs `worker` with only the settings that are not about vendors; returns its exit and stderr.
fn start_bare(worker: &str, extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(binary(worker))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/pasarela_unused",
        )
        .env("PASARELA_SECRET_KEY", pasarela_e2e::TEST_SECRET_KEY)
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the worker");
    let deadline = Instant::now() + EXIT_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the worker") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{worker} was still running after {EXIT_WITHIN:?}: it started instead of refusing"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("reading stderr");
    (status.code(), stderr)
}

#[test]
fn a_worker_without_its_vendor_settings_exits_naming_every_missing_variable() {
    for (worker, missing) in [
        (
            "otp-send",
            &[
                "ALDEAMO_BASE_URL",
                "ALDEAMO_PASSWORD",
                "ALDEAMO_USER",
                "DANACONNECT_BASE_URL",
                "DANACONNECT_COMPANY",
                "DANACONNECT_PASSWORD",
                "DANACONNECT_USER",
            ][..],
        ),
        (
            "vendor-call",
            &[
                "GESTOPAGO_AES_IV",
                "GESTOPAGO_AES_KEY",
                "GESTOPAGO_BASE_URL",
                "GESTOPAGO_CODIGO_DISPOSITIVO",
                "GESTOPAGO_ID_DISTRIBUIDOR",
                "GESTOPAGO_PASSWORD",
                "GESTOPAGO_TOKEN_PATH",
                "NUMROT_BASE_URL",
                "NUMROT_PASSWORD",
                "NUMROT_USERNAME",
            ][..],
        ),
        (
            "doc-sign",
            &[
                "PASARELA_INGRESS_PUBLIC_URL",
                "SIGNING_BASE_URL",
                "SIGNING_CLIENT_ID",
                "SIGNING_CLIENT_SECRET",
                "SIGNING_PASSWORD",
                "SIGNING_USERNAME",
            ][..],
        ),
    ] {
        let (code, stderr) = start_bare(worker, &[]);
        println!("{worker}: exit {code:?}: {}", stderr.trim());
        assert_ne!(
            code,
            Some(0),
            "{worker} started without its vendor settings"
        );
        assert!(code.is_some(), "{worker} was killed rather than exiting");
        let named = missing.join(", ");
        assert!(stderr.contains(&named), "{worker} names {named}:\n{stderr}");
        assert!(stderr.contains("PASARELA_PROFILE=demo"), "{stderr}");
    }
}

/// A variable that is set is not named; the others still are.
#[test]
fn a_set_variable_is_not_named() {
    let (code, stderr) = start_bare("vendor-call", &[("NUMROT_PASSWORD", "x")]);
    assert_ne!(code, Some(0));
    assert!(!stderr.contains("NUMROT_PASSWORD"), "{stderr}");
    assert!(stderr.contains("NUMROT_USERNAME"), "{stderr}");
}

/// Runs `pasarela` with `database_url` and nothing else of this process's environment.
async fn cli_on(database_url: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(binary("pasarela"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .args(args)
        .output()
        .await
        .expect("running pasarela")
}

/// A read-only command never creates or migrates: a mistyped database name fails and creates nothing,
/// and a schema older or newer than the CLI's is refused with what to do about it.
#[tokio::test]
async fn read_only_commands_neither_create_nor_migrate() {
    use pasarela_e2e::{TestDatabase, pg_connect, services};
    let base = &services().await.pg_base;
    let admin = pg_connect(&format!("{base}/postgres")).await;
    let typo = format!(
        "pasarela_typo{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let out = cli_on(
        &format!("{base}/{typo}"),
        &["status", &uuid::Uuid::new_v4().to_string()],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "pasarela status on a mistyped database: exit {:?}: {}",
        out.status.code(),
        stderr.trim()
    );
    assert!(!out.status.success());
    assert!(
        stderr.contains("does not exist (nothing was created"),
        "{stderr}"
    );
    let exists = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&typo],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(exists, 0, "the mistyped database was created");

    // A database migrated by a newer pasarela is refused, not read wrong.
    let database = TestDatabase::create().await;
    database
        .db
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (9999, 'from_the_future', now()::text, '0')",
        )
        .await
        .unwrap();
    let out = database.cli(&["report", "otp"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "pasarela report on a newer schema: exit {:?}: {}",
        out.status.code(),
        stderr.trim()
    );
    assert!(!out.status.success());
    assert!(
        stderr.contains("V9999, newer than this pasarela's"),
        "{stderr}"
    );
    database.drop_database().await;
}

/// With `PASARELA_MIGRATE=off` (migrations run as their own step) a worker creates and migrates nothing:
/// pointed at a database that does not exist, it exits saying so, and the database is still absent.
#[tokio::test]
async fn a_worker_that_may_not_migrate_creates_nothing() {
    use pasarela_e2e::{pg_connect, services};
    let base = &services().await.pg_base;
    let missing = format!(
        "pasarela_nomigrate{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let database_url = format!("{base}/{missing}");
    let exit = pasarela_e2e::run_until_exit(
        "vendor-call",
        &[("DATABASE_URL", &database_url), ("PASARELA_MIGRATE", "off")],
        std::time::Duration::from_secs(30),
    )
    .await;
    println!(
        "vendor-call with PASARELA_MIGRATE=off: exit {:?}: {}",
        exit.code,
        exit.last_line()
    );
    assert!(exit.code.is_some_and(|c| c != 0), "{}", exit.stderr);
    assert!(
        exit.stderr
            .contains("does not exist (nothing was created; `pasarela migrate` creates it)"),
        "{}",
        exit.stderr
    );
    let admin = pg_connect(&format!("{base}/postgres")).await;
    let exists = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&missing],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(exists, 0);
}

/// `pasarela config <worker>` prints the settings the worker would use, never a secret's value, and
/// exits 1 naming what is missing when the worker would refuse to start.
#[test]
fn pasarela_config_shows_settings_redacted_and_what_is_missing() {
    let run = |envs: &[(&str, &str)]| {
        Command::new(binary("pasarela"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().copied())
            .args(["config", "vendor-call"])
            .output()
            .expect("running pasarela config")
    };
    let out = run(&[
        ("PASARELA_PROFILE", "demo"),
        ("GESTOPAGO_PASSWORD", "s3cr3t-value"),
        ("PASARELA_SECRET_KEY", pasarela_e2e::TEST_SECRET_KEY),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("gestopago") && stdout.contains("[REDACTED]"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cr3t-value"), "{stdout}");
    assert!(!stdout.contains(pasarela_e2e::TEST_SECRET_KEY), "{stdout}");
    // The worker's own defaults, not the command's.
    assert!(stdout.contains("concurrency: 50"), "{stdout}");
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("NUMROT_USERNAME"), "{stderr}");
    assert!(stderr.contains("PASARELA_SECRET_KEY"), "{stderr}");
}

/// A worker runs under a role with only the grants `deploy/postgres/runtime-role.sql` gives: no
/// database creation, no DDL. The schema is migrated by another role first; the worker only checks it.
#[tokio::test]
async fn a_worker_runs_under_a_least_privilege_role() {
    use pasarela_e2e::{TestEnv, otp_send, pg_connect, services};
    let mut env = TestEnv::builder().worker("otp-send").start().await;
    let role = format!("pasarela_rt_{}", &env.namespace[1..]);
    let grants = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/postgres/runtime-role.sql"),
    )
    .unwrap()
    .replace("pasarela_runtime", &role)
    .replace("DATABASE pasarela", &format!("DATABASE {}", env.database));
    env.db
        .batch_execute(&format!("CREATE ROLE {role} LOGIN; {grants}"))
        .await
        .expect("creating the runtime role with the documented grants");
    // The migrating worker steps aside; one under the runtime role takes the queue.
    env.signal_worker("TERM").await;
    let base = &services().await.pg_base;
    let url = base.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(&url, base, "the test server's URL names its user");
    let database_url = format!("{url}/{}", env.database);
    env.add_worker_with(
        "otp-send",
        &[("DATABASE_URL", &database_url), ("PASARELA_MIGRATE", "off")],
    )
    .await;
    let ids: Vec<uuid::Uuid> = (0..5).map(|_| uuid::Uuid::new_v4()).collect();
    for id in &ids {
        env.publish_to("otp.send", &otp_send(*id), &id.to_string())
            .await;
    }
    let events = env.events(5, std::time::Duration::from_secs(30)).await;
    println!(
        "under {role}: {} of 5 sent",
        events.iter().filter(|e| e.body["status"] == "sent").count()
    );
    assert_eq!(events.len(), 5, "{}", env.worker_log());
    assert!(
        events.iter().all(|e| e.body["status"] == "sent"),
        "{events:?}"
    );
    // And the role can change nothing of the schema, nor make a database.
    let as_role = pg_connect(&database_url).await;
    for ddl in [
        "CREATE TABLE intruder (id int)",
        "ALTER TABLE work_items ADD COLUMN intruder int",
        "CREATE DATABASE intruder",
    ] {
        let err = as_role.batch_execute(ddl).await.expect_err(ddl);
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{ddl}: {err:?}"
        );
    }
    drop(as_role);
    env.teardown().await;
    let admin = pg_connect(&format!("{base}/postgres")).await;
    let _ = admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}
