//! The fraud guard's admissions, batched: concurrent sends hand their admission to one task, which
//! admits whatever is waiting in one call of the store's `admit_sends` (one round trip, one
//! transaction) and answers each send with its own admission. One call per send cost a third of the
//! worker's throughput.

use pasarela_shared::contract::settings::OtpSettings;
use pasarela_shared::runtime::database::Database;
use pasarela_shared::store::otp::{self, GuardLimits, SendAdmission, SendToAdmit};
use tokio::sync::{mpsc, oneshot};

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

type Waiter = (
    SendToAdmit,
    oneshot::Sender<Result<SendAdmission, GuardError>>,
);

/// The sender side of the task that admits sends in batches.
pub struct AdmissionBatcher {
    queue: mpsc::Sender<Waiter>,
}

impl AdmissionBatcher {
    /// Starts the task admitting sends against `settings`' limits in `db`.
    pub fn start(db: Database, settings: &OtpSettings) -> Self {
        let limits = GuardLimits {
            destination_limit: settings.destination_limit as i32,
            destination_window_s: settings.destination_window.as_secs() as i32,
            tenant_limit: settings.tenant_limit as i32,
            tenant_window_s: settings.tenant_window.as_secs() as i32,
        };
        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(db, limits, rx));
        Self { queue }
    }

    /// Admits one send, waiting out a database outage.
    pub async fn admit(&self, send: SendToAdmit) -> Result<SendAdmission, GuardError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((send, tx))
            .await
            .map_err(|_| GuardError::Stopped)?;
        rx.await.map_err(|_| GuardError::Stopped)?
    }
}

async fn run(db: Database, limits: GuardLimits, mut rx: mpsc::Receiver<Waiter>) {
    let mut batch: Vec<Waiter> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let sends: Vec<&SendToAdmit> = batch.iter().map(|(s, _)| s).collect();
        let answers = db
            .retrying("otp fraud guard", || {
                otp::admit_sends(db.pool(), &limits, &sends)
            })
            .await;
        match answers {
            Ok(admissions) => {
                for (send, waiter) in batch.drain(..) {
                    let admission = admissions
                        .get(&send.request_id)
                        .copied()
                        .ok_or(GuardError::Missing);
                    let _ = waiter.send(admission);
                }
            }
            Err(e) => {
                let why = GuardError::Database(e.to_string());
                for (_, waiter) in batch.drain(..) {
                    let _ = waiter.send(Err(why.clone()));
                }
            }
        }
    }
}
