//! Every SQL statement of pasarela, by table, and the group committer that batches the hot path.
//!
//! Nothing outside this layer writes SQL. It imports the contract and the vendors' token vault, never
//! the runtime: outbox rows reach the broker through the [`outbox::Sink`] the runtime supplies.

pub mod committer;
pub mod database;
pub mod dead_letters;
pub mod documents;
pub mod error;
pub mod operator_actions;
pub mod otp;
pub mod outbox;
pub mod statistics;
pub mod vendor_calls;
pub mod vendor_tokens;
pub mod work_items;

use deadpool_postgres::Transaction;

use crate::store::error::StoreError;

/// A domain row written in the same transaction as the outcome it belongs to: what a handler asks
/// the store to record, by table, never as SQL.
#[derive(Debug, Clone)]
pub enum Record {
    /// An OTP send (`otp_requests`).
    OtpSend(otp::SendRow),
    /// An OTP verification (`otp_verifications`, and its send's state).
    OtpVerification(otp::VerificationRow),
    /// A document the vendor accepted (`documents`).
    DocumentSubmitted(documents::SubmittedRow),
    /// A document that failed for good (`documents`).
    DocumentFailed(documents::FailedRow),
    /// A vendor call (`vendor_calls`).
    VendorCall(vendor_calls::CallRow),
    /// What a document check found (`documents`, its signed file, its client webhook).
    DocumentChecked(documents::Checked),
}

impl Record {
    /// Writes a record that is not a send (sends are written together, by [`write_all`]).
    async fn write(&self, txn: &Transaction<'_>) -> Result<u64, StoreError> {
        let written = match self {
            Record::OtpSend(row) => otp::write_sends(txn, &[row]).await,
            Record::OtpVerification(row) => row.write(txn).await,
            Record::DocumentSubmitted(row) => row.write(txn).await,
            Record::DocumentFailed(row) => row.write(txn).await,
            Record::VendorCall(row) => row.write(txn).await,
            Record::DocumentChecked(checked) => return checked.write(txn).await,
        };
        Ok(written?)
    }
}

/// Writes the domain rows of a group, all statements pipelined: the sends in one statement, the
/// other records one statement each.
pub(crate) async fn write_all(
    txn: &Transaction<'_>,
    records: &[&Record],
) -> Result<(), StoreError> {
    let sends: Vec<&otp::SendRow> = records
        .iter()
        .filter_map(|r| match r {
            Record::OtpSend(row) => Some(row),
            _ => None,
        })
        .collect();
    let sending = async {
        if sends.is_empty() {
            Ok(0)
        } else {
            otp::write_sends(txn, &sends)
                .await
                .map_err(StoreError::from)
        }
    };
    let others = records
        .iter()
        .filter(|r| !matches!(r, Record::OtpSend(_)))
        .map(|r| r.write(txn));
    let (sent, written) = futures::join!(sending, futures::future::join_all(others));
    let failures = std::iter::once(sent).chain(written).filter_map(Result::err);
    match StoreError::first_cause(failures) {
        Some(cause) => Err(cause),
        None => Ok(()),
    }
}

// Reads and repairs for operators (the `pasarela` command), by table like the rest; `column` types
// the text columns they match on.
pub(crate) mod column;
pub mod reports;
pub mod search;
pub mod status;
pub mod tls;
pub mod webhook_jobs;
