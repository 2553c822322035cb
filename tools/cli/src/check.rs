//! `pasarela check`: can RabbitMQ and PostgreSQL be reached? Says how to start whichever is down.
//!
//! Only host and port are ever printed: the URLs may carry passwords, and error texts are scrubbed of
//! them too.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use lapin::uri::AMQPUri;
use pasarela_shared::runtime::publisher as broker;
use pasarela_shared::store::database as db;
use pasarela_shared::store::error::DbError;
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::Host;

use crate::context::Context;

/// How long each service gets to answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// How to start RabbitMQ on a developer's machine.
const RABBITMQ_HINT: &str =
    "start it locally with `rabbitmq-server -detached` (or `docker compose up -d rabbitmq`)";

/// How to start PostgreSQL on a developer's machine.
const POSTGRES_HINT: &str = "start it locally with \
     `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
     (or `docker compose up -d postgres`)";

/// What one check found.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Reachable and usable; the text adds detail.
    Ok(String),
    /// Nothing answers: the service is not running (or not where the URL says).
    Down(String),
    /// Something answers but refuses us (credentials, vhost, ...): starting it will not help.
    Refused(String),
}

/// One line of the report.
struct Report {
    service: &'static str,
    address: String,
    verdict: Verdict,
    hint: &'static str,
}

/// Runs `pasarela check`.
pub async fn run() -> anyhow::Result<ExitCode> {
    let ctx = Context::from_env()?;
    let (rabbitmq, postgres) = tokio::join!(
        check_rabbitmq(&ctx.settings.amqp_url),
        check_postgres(&ctx.settings.database_url)
    );
    let mut healthy = true;
    for r in [rabbitmq, postgres] {
        let line = match &r.verdict {
            Verdict::Ok(detail) => format!("ok{detail}"),
            Verdict::Down(why) => {
                healthy = false;
                format!("DOWN: {why}\n{:>14}{}", "", r.hint)
            }
            Verdict::Refused(why) => {
                healthy = false;
                format!("REFUSED: {why}")
            }
        };
        println!("{:<11} {:<22} {line}", r.service, r.address);
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An error and its causes on one line, with every occurrence of `secret` replaced (in case an
/// error echoes a URL).
fn describe(error: &dyn std::error::Error, secret: Option<&str>) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        // Some errors print their source as part of their own text already.
        if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    match secret {
        Some(s) if !s.is_empty() => text.replace(s, "***"),
        _ => text,
    }
}

/// `host:port` of an AMQP URL, and its password (to scrub it from errors).
fn amqp_address(url: &SecretString) -> Result<(String, Option<String>), String> {
    let uri = AMQPUri::from_str(url.expose_secret())
        .map_err(|_| "AMQP_URL is not a valid amqp:// URL".to_string())?;
    let a = &uri.authority;
    let password = Some(a.userinfo.password.clone());
    Ok((format!("{}:{}", a.host, a.port), password))
}

async fn check_rabbitmq(url: &SecretString) -> Report {
    let mut report = Report {
        service: "RabbitMQ",
        address: "AMQP_URL".into(),
        verdict: Verdict::Ok(String::new()),
        hint: RABBITMQ_HINT,
    };
    let password = match amqp_address(url) {
        Ok((address, password)) => {
            report.address = address;
            password
        }
        Err(problem) => {
            report.verdict = Verdict::Refused(problem);
            return report;
        }
    };
    report.verdict = match tokio::time::timeout(
        TIMEOUT,
        broker::connect(url, "pasarela-check", TIMEOUT),
    )
    .await
    {
        Err(_) => Verdict::Down(format!("no answer within {}s", TIMEOUT.as_secs())),
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "check done".into()).await;
            Verdict::Ok(String::new())
        }
        Ok(Err(e)) => {
            let why = describe(&e, password.as_deref());
            match e.kind() {
                lapin::ErrorKind::IOError(_) => Verdict::Down(why),
                _ => Verdict::Refused(format!(
                    "{why} (check the user, password and vhost in AMQP_URL)"
                )),
            }
        }
    };
    report
}

/// `host:port` of a parsed PostgreSQL URL.
fn postgres_address(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

async fn check_postgres(url: &SecretString) -> Report {
    let mut report = Report {
        service: "PostgreSQL",
        address: "DATABASE_URL".into(),
        verdict: Verdict::Ok(String::new()),
        hint: POSTGRES_HINT,
    };
    let config = match db::parse_url(url) {
        Ok(c) => c,
        Err(e) => {
            report.verdict = Verdict::Refused(e.to_string());
            return report;
        }
    };
    report.address = postgres_address(config.postgres());
    let password = config
        .postgres()
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let database = db::database_name(&config);
    // The maintenance database always exists, so a missing application database is not "down".
    let admin = config.with_database("postgres");
    report.verdict = match tokio::time::timeout(TIMEOUT, db::connect_client(&admin)).await {
        Err(_) => Verdict::Down(format!("no answer within {}s", TIMEOUT.as_secs())),
        Ok(Err(e)) => {
            let why = match &e {
                DbError::Postgres(pe) => describe(pe, password.as_deref()),
                other => describe(other, password.as_deref()),
            };
            if matches!(&e, DbError::Postgres(pe) if pe.code().is_some()) {
                Verdict::Refused(format!(
                    "{why} (check the user and password in DATABASE_URL)"
                ))
            } else {
                Verdict::Down(why)
            }
        }
        Ok(Ok(client)) => {
            match db::exists(&client, &database).await {
                Ok(true) => Verdict::Ok(format!(" (database {database:?} exists)")),
                Ok(false) => Verdict::Ok(format!(
                    " (database {database:?} does not exist yet: `pasarela migrate` creates it)"
                )),
                // The driver's own error, as the connection failures above are described.
                Err(DbError::Postgres(e)) => Verdict::Refused(describe(&e, password.as_deref())),
                Err(e) => Verdict::Refused(describe(&e, password.as_deref())),
            }
        }
    };
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_never_carry_the_password() {
        let url = SecretString::from("amqp://u:hunter2@rabbit.local:5673/%2f");
        let (address, password) = amqp_address(&url).unwrap();
        assert_eq!(address, "rabbit.local:5673");
        assert_eq!(password.as_deref(), Some("hunter2"));
        let config =
            db::parse_url(&SecretString::from("postgres://u:hunter2@db.local:6543/x")).unwrap();
        assert_eq!(postgres_address(config.postgres()), "db.local:6543");
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error connecting to server")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn errors_name_their_cause_and_are_scrubbed_of_the_password() {
        let error = Outer(std::io::Error::other("refused by amqp://u:hunter2@h"));
        assert_eq!(
            describe(&error, Some("hunter2")),
            "error connecting to server: refused by amqp://u:***@h"
        );
        let plain = std::io::Error::other("text");
        assert_eq!(describe(&plain, Some("")), "text");
        assert_eq!(describe(&plain, None), "text");
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_down_with_a_hint() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let r = check_rabbitmq(&SecretString::from("amqp://guest:pw-xyz@127.0.0.1:1/%2f")).await;
        assert!(matches!(r.verdict, Verdict::Down(_)), "{:?}", r.verdict);
        assert!(r.hint.contains("rabbitmq-server -detached"));
        let r = check_postgres(&SecretString::from(
            "postgres://postgres:pw-xyz@127.0.0.1:1/x",
        ))
        .await;
        assert!(matches!(r.verdict, Verdict::Down(_)), "{:?}", r.verdict);
        assert!(!format!("{:?}", r.verdict).contains("pw-xyz"));
    }
}
