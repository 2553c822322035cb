//! PostgreSQL over TLS, against the local server given a CA and a certificate made here: every
//! `sslmode` a `DATABASE_URL` may name, a worker whose connections are all encrypted, and a refused
//! certificate that stops a worker at once instead of being waited out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pasarela_e2e::{TestEnv, binary, otp_send, pg_connect, run_until_exit, services};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The only name on the server's certificate; URLs reach it through `hostaddr`.
const SERVER_NAME: &str = "db.pasarela.test";

/// A CA, as PEM, with what signs under it.
struct Authority {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn authority(name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Authority {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// Writes `pem` into the server's data directory through the server itself, so the file is the
/// server's own, readable by it alone as it demands of a key (whichever OS user runs the test).
async fn write_on_server(admin: &tokio_postgres::Client, path: &str, pem: &str) {
    let lines = pem.trim_end().replace('\'', "");
    admin
        .batch_execute(&format!(
            "COPY (SELECT unnest(string_to_array('{lines}', chr(10)))) \
             TO PROGRAM 'umask 077 && cat > {path} && chmod 600 {path}'"
        ))
        .await
        .unwrap_or_else(|e| panic!("writing {path} on the server: {e}"));
}

/// Points the server at a certificate for [`SERVER_NAME`] signed by `ca`, and reloads it.
async fn install(admin: &tokio_postgres::Client, ca: &Authority) {
    let dir: String = admin
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![SERVER_NAME.to_string()])
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    let (cert_file, key_file) = (
        format!("{dir}/pasarela-test-server.crt"),
        format!("{dir}/pasarela-test-server.key"),
    );
    write_on_server(admin, &cert_file, &cert.pem()).await;
    write_on_server(admin, &key_file, &key.serialize_pem()).await;
    for setting in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{cert_file}'"),
        format!("ALTER SYSTEM SET ssl_key_file = '{key_file}'"),
        "ALTER SYSTEM SET ssl = on".to_string(),
    ] {
        admin.batch_execute(&setting).await.unwrap();
    }
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
}

/// Puts the server's own TLS settings back.
async fn restore(admin: &tokio_postgres::Client) {
    for setting in ["ssl_cert_file", "ssl_key_file", "ssl"] {
        let _ = admin
            .batch_execute(&format!("ALTER SYSTEM RESET {setting}"))
            .await;
    }
    let _ = admin.batch_execute("SELECT pg_reload_conf()").await;
}

/// The test server's URL with `host` on the certificate's name, reached at its loopback address.
fn url_by_name(base: &str, database: &str, query: &str) -> String {
    let mut url = reqwest::Url::parse(base).unwrap();
    let address = match url.host_str() {
        Some("localhost") | None => "127.0.0.1".to_string(),
        Some(host) => host.to_string(),
    };
    url.set_host(Some(SERVER_NAME)).unwrap();
    url.set_path(database);
    format!("{url}?hostaddr={address}&{query}")
}

/// The test server's URL as the harness uses it (by address).
fn url_by_address(base: &str, database: &str, query: &str) -> String {
    format!("{base}/{database}?{query}")
}

/// `pasarela migrate` on `url`: whether it connected, and its last words.
async fn migrate(url: &str) -> (bool, String) {
    let out = tokio::process::Command::new(binary("pasarela"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PASARELA_PROFILE", "demo")
        .env("DATABASE_URL", url)
        .arg("migrate")
        .output()
        .await
        .expect("running pasarela migrate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string();
    (out.status.success(), last)
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Every `sslmode`, against a server whose certificate names only [`SERVER_NAME`]; then a worker on
/// `verify-full` with every connection encrypted; then a worker given the wrong CA exits, saying why.
#[tokio::test]
async fn postgresql_over_tls_in_every_sslmode() {
    let base = services().await.pg_base.clone();
    let admin = pg_connect(&format!("{base}/postgres")).await;
    let ca = authority("pasarela test CA");
    let stranger = authority("a CA the server never used");
    install(&admin, &ca).await;
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "pasarela-tls-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = write_file(&dir, "ca.pem", &ca.pem);
    let stranger_file = write_file(&dir, "stranger.pem", &stranger.pem);
    let database = format!(
        "pasarela_tls{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );

    // The server's settings are restored however the checks end: a failed one must not leave the
    // shared server on the test's certificate.
    let checks = tokio::spawn(checks(
        base.clone(),
        database.clone(),
        ca_file,
        stranger_file,
    ))
    .await;
    restore(&admin).await;
    let _ = admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        ))
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(failed) = checks {
        std::panic::resume_unwind(failed.into_panic());
    }
}

/// Every case, then the worker on verify-full and the worker with the wrong CA.
async fn checks(base: String, database: String, ca_file: String, stranger_file: String) {
    // The reload is the postmaster's to do; a verified connection says it has.
    let full = url_by_name(
        &base,
        &database,
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    let mut reloaded = false;
    for _ in 0..50 {
        if migrate(&full).await.0 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloaded,
        "verify-full never connected: {}",
        migrate(&full).await.1
    );

    let cases: [(&str, String, bool, &str); 7] = [
        (
            "verify-full, the name on the certificate",
            full.clone(),
            true,
            "",
        ),
        (
            "verify-full, by address (not on the certificate)",
            url_by_address(
                &base,
                &database,
                &format!("sslmode=verify-full&sslrootcert={ca_file}"),
            ),
            false,
            "certificate",
        ),
        (
            "verify-ca, by address",
            url_by_address(
                &base,
                &database,
                &format!("sslmode=verify-ca&sslrootcert={ca_file}"),
            ),
            true,
            "",
        ),
        (
            "verify-full, another CA",
            url_by_name(
                &base,
                &database,
                &format!("sslmode=verify-full&sslrootcert={stranger_file}"),
            ),
            false,
            "UnknownIssuer",
        ),
        (
            "require with another CA (checked as verify-ca)",
            url_by_address(
                &base,
                &database,
                &format!("sslmode=require&sslrootcert={stranger_file}"),
            ),
            false,
            "UnknownIssuer",
        ),
        (
            "require, no CA",
            url_by_address(&base, &database, "sslmode=require"),
            true,
            "",
        ),
        (
            "disable",
            url_by_address(&base, &database, "sslmode=disable"),
            true,
            "",
        ),
    ];
    for (case, url, connects, says) in &cases {
        let (ok, last) = migrate(url).await;
        println!(
            "{case}: {} ({last})",
            if ok { "connected" } else { "refused" }
        );
        assert_eq!(ok, *connects, "{case}: {last}");
        assert!(last.contains(says), "{case}: {last}");
    }

    // A worker on verify-full: its work done, every one of its connections encrypted.
    let mut env = TestEnv::builder().worker("otp-send").start().await;
    env.signal_worker("TERM").await;
    let worker_url = url_by_name(
        &base,
        &env.database,
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    env.add_worker_with(
        "otp-send",
        &[("DATABASE_URL", &worker_url), ("PASARELA_MIGRATE", "off")],
    )
    .await;
    let ids: Vec<uuid::Uuid> = (0..5).map(|_| uuid::Uuid::new_v4()).collect();
    for id in &ids {
        env.publish_to("otp.send", &otp_send(*id), &id.to_string())
            .await;
    }
    let events = env.events(5, Duration::from_secs(30)).await;
    let sent = events.iter().filter(|e| e.body["status"] == "sent").count();
    let row = env
        .db
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*), \
                    string_agg(DISTINCT s.version, ',') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, all, version): (i64, i64, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    println!(
        "otp-send on verify-full: {sent} of 5 sent; connections encrypted {encrypted} of {all} ({version:?})"
    );
    assert_eq!(sent, 5, "{}", env.worker_log());
    assert!(all > 0 && encrypted == all, "{encrypted} of {all}");

    // The wrong CA: the worker stops at once with the reason, rather than retrying at /readyz 503.
    let wrong = url_by_name(
        &base,
        &env.database,
        &format!("sslmode=verify-full&sslrootcert={stranger_file}"),
    );
    let exit = run_until_exit(
        "otp-send",
        &[("DATABASE_URL", &wrong), ("PASARELA_MIGRATE", "off")],
        Duration::from_secs(30),
    )
    .await;
    println!(
        "otp-send with another CA: exit {:?}: {}",
        exit.code,
        exit.last_line()
    );
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    assert!(exit.stderr.contains("UnknownIssuer"), "{}", exit.stderr);

    env.teardown().await;
}
