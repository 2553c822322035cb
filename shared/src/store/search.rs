//! Finding requests by what a customer knows of them: their tenant or the destination a code went
//! to. Each answers the newest requests first, destinations masked; an id finds the rest
//! (`status::find`).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use uuid::Uuid;

use crate::store::error::DbError;

/// What an operator typed that is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term<'a> {
    /// A phone number or an e-mail address, typed in full.
    Destination(&'a str),
    /// A tenant's name.
    Tenant(&'a str),
}

impl<'a> Term<'a> {
    /// A destination when it looks like one (an e-mail address, or a number with an optional `+`),
    /// a tenant otherwise.
    pub fn of(text: &'a str) -> Self {
        let digits = text.strip_prefix('+').unwrap_or(text);
        let is_number = digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit());
        if text.contains('@') || is_number {
            Term::Destination(text)
        } else {
            Term::Tenant(text)
        }
    }
}

/// A request a term found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// `otp.send` or `doc.sign`.
    pub kind: &'static str,
    /// Its request_id or document_id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant: String,
    /// Where it stands.
    pub status: String,
    /// The destination, masked (OTP sends only).
    pub destination: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A destination's sends, off `otp_requests_destination`.
const BY_DESTINATION: &str = "SELECT request_id, tenant, status,
            pasarela_mask_destination(destination_mobile, destination_email), created_at
     FROM otp_requests WHERE coalesce(destination_mobile, destination_email) = $1
     ORDER BY created_at DESC LIMIT $2";

/// A tenant's sends, off `otp_requests_report`.
const SENDS_OF_TENANT: &str = "SELECT request_id, tenant, status,
            pasarela_mask_destination(destination_mobile, destination_email), created_at
     FROM otp_requests WHERE tenant = $1 ORDER BY created_at DESC LIMIT $2";

/// A tenant's documents, off `documents_tenant`.
const DOCUMENTS_OF_TENANT: &str = "SELECT document_id, tenant, state, NULL::text, created_at
     FROM documents WHERE tenant = $1 ORDER BY created_at DESC LIMIT $2";

/// The newest `limit` requests `term` finds, newest first.
pub async fn requests(pool: &Pool, term: Term<'_>, limit: i64) -> Result<Vec<Found>, DbError> {
    let client = pool.get().await?;
    let read = |kind: &'static str, rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| {
                Ok(Found {
                    kind,
                    id: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    status: r.try_get(2)?,
                    destination: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
    };
    let mut found = match term {
        Term::Destination(d) => read(
            "otp.send",
            client.query(BY_DESTINATION, &[&d, &limit]).await?,
        )?,
        Term::Tenant(t) => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&t, &limit];
            let (sends, documents) = futures::try_join!(
                client.query(SENDS_OF_TENANT, &params),
                client.query(DOCUMENTS_OF_TENANT, &params)
            )?;
            let mut found = read("otp.send", sends)?;
            found.extend(read("doc.sign", documents)?);
            found
        }
    };
    found.sort_by_key(|f| std::cmp::Reverse(f.created_at));
    found.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_are_destinations_and_the_rest_tenants() {
        assert_eq!(
            Term::of("+573001234567"),
            Term::Destination("+573001234567")
        );
        assert_eq!(Term::of("3001234567"), Term::Destination("3001234567"));
        assert_eq!(
            Term::of("ana@example.com"),
            Term::Destination("ana@example.com")
        );
        assert_eq!(Term::of("acme"), Term::Tenant("acme"));
        assert_eq!(Term::of("acme-2024"), Term::Tenant("acme-2024"));
        assert_eq!(Term::of("12345"), Term::Tenant("12345"));
    }
}
