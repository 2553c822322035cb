//! The fraud guard's admissions when a send was not counted with its claim (the claim counts every
//! send that reaches the guard; this path serves any other), batched: concurrent sends hand their
//! admission to the runtime's batcher, which admits whatever is waiting in one call of the store's `admit_sends` (one round trip,
//! one transaction) and answers each send with its own admission. One call per send cost a third of
//! the worker's throughput.

use std::sync::Arc;

use pasarela_shared::contract::settings::OtpSettings;
use pasarela_shared::runtime::batch::Batcher;
use pasarela_shared::runtime::database::Database;
use pasarela_shared::store::otp::{self, GuardLimits, SendAdmission, SendToAdmit};

/// Most admissions in one call.
const MAX_BATCH: usize = 256;

/// Why a send could not be admitted or refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GuardError {
    /// The admission task is gone (the worker is stopping).
    #[error("the admission task stopped")]
    Stopped,
    /// The database did not answer.
    #[error("fraud guard: {0}")]
    Database(String),
    /// The batch came back without this send.
    #[error("fraud guard: no answer for the send")]
    Missing,
}

/// Admits sends in batches.
pub struct AdmissionBatcher(Batcher<SendToAdmit, Result<SendAdmission, GuardError>>);

impl AdmissionBatcher {
    /// Starts the task admitting sends against `settings`' limits in `db`.
    pub fn start(db: Database, settings: &OtpSettings) -> Self {
        let limits = limits(settings);
        Self(Batcher::start(MAX_BATCH, move |sends| {
            admit(db.clone(), limits, sends)
        }))
    }

    /// Admits one send, waiting out a database outage.
    pub async fn admit(&self, send: SendToAdmit) -> Result<SendAdmission, GuardError> {
        self.0.ask(send).await.unwrap_or(Err(GuardError::Stopped))
    }
}

/// The guard's limits as the store counts them.
pub fn limits(settings: &OtpSettings) -> GuardLimits {
    GuardLimits {
        destination_limit: settings.destination_limit as i32,
        destination_window_s: settings.destination_window.as_secs() as i32,
        tenant_limit: settings.tenant_limit as i32,
        tenant_window_s: settings.tenant_window.as_secs() as i32,
    }
}

/// One batch: every send counted in one statement, each answered in order.
async fn admit(
    db: Database,
    limits: GuardLimits,
    sends: Arc<Vec<SendToAdmit>>,
) -> Vec<Result<SendAdmission, GuardError>> {
    let refs: Vec<&SendToAdmit> = sends.iter().collect();
    let answers = db
        .retrying("otp fraud guard", || {
            otp::admit_sends(db.pool(), &limits, &refs)
        })
        .await;
    match answers {
        Ok(admissions) => sends
            .iter()
            .map(|send| {
                admissions
                    .get(&send.request_id)
                    .copied()
                    .ok_or(GuardError::Missing)
            })
            .collect(),
        Err(e) => vec![Err(GuardError::Database(e.to_string())); sends.len()],
    }
}
