//! The fraud guard's admissions, batched: concurrent sends hand their admission to one task, which
//! admits whatever is waiting in one call of `pasarela_admit_otp_sends` (one round trip, one
//! transaction) and answers each send with its own verdict. One call per send cost a third of the
//! worker's throughput.

use std::collections::HashMap;

use pasarela_shared::contract::settings::OtpSettings;
use pasarela_shared::runtime::database::Database;
use pasarela_shared::store::error::DbError;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most admissions in one call.
const MAX_BATCH: usize = 256;

/// What the guard says about one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within every limit: send it.
    Admitted,
    /// The destination's window is full.
    DestinationLimit,
    /// The tenant's window is full.
    TenantLimit,
}

/// One send to admit.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The send's request id: a retried send is counted once.
    pub request_id: Uuid,
    /// Its tenant.
    pub tenant: String,
    /// The destination the guard counts.
    pub destination: String,
}

type Waiter = (Admission, oneshot::Sender<Result<Verdict, String>>);

/// The sender side of the task that admits sends in batches.
pub struct AdmissionBatcher {
    queue: mpsc::Sender<Waiter>,
}

impl AdmissionBatcher {
    /// Starts the task admitting sends against `settings`' limits in `db`.
    pub fn start(db: Database, settings: &OtpSettings) -> Self {
        let limits = [
            settings.destination_limit as i32,
            settings.destination_window.as_secs() as i32,
            settings.tenant_limit as i32,
            settings.tenant_window.as_secs() as i32,
        ];
        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run(db, limits, rx));
        Self { queue }
    }

    /// Admits one send, waiting out a database outage; `Err` says why it could not be decided.
    pub async fn admit(&self, admission: Admission) -> Result<Verdict, String> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((admission, tx))
            .await
            .map_err(|_| "the admission task stopped".to_string())?;
        rx.await
            .map_err(|_| "the admission task stopped".to_string())?
    }
}

async fn run(db: Database, limits: [i32; 4], mut rx: mpsc::Receiver<Waiter>) {
    let mut batch: Vec<Waiter> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let answers = db
            .retrying("otp fraud guard", || admit_batch(&db, &limits, &batch))
            .await;
        match answers {
            Ok(verdicts) => {
                for (admission, waiter) in batch.drain(..) {
                    let verdict = verdicts
                        .get(&admission.request_id)
                        .copied()
                        .ok_or_else(|| "fraud guard: no verdict for the send".to_string());
                    let _ = waiter.send(verdict);
                }
            }
            Err(e) => {
                let why = format!("fraud guard: {e}");
                for (_, waiter) in batch.drain(..) {
                    let _ = waiter.send(Err(why.clone()));
                }
            }
        }
    }
}

async fn admit_batch(
    db: &Database,
    limits: &[i32; 4],
    batch: &[Waiter],
) -> Result<HashMap<Uuid, Verdict>, DbError> {
    let requests: Vec<Uuid> = batch.iter().map(|(a, _)| a.request_id).collect();
    let tenants: Vec<&str> = batch.iter().map(|(a, _)| a.tenant.as_str()).collect();
    let destinations: Vec<&str> = batch.iter().map(|(a, _)| a.destination.as_str()).collect();
    let client = db.pool().get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT admitted_request, verdict
             FROM pasarela_admit_otp_sends($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &requests,
                &tenants,
                &destinations,
                &limits[0],
                &limits[1],
                &limits[2],
                &limits[3],
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let verdict = match r.get::<_, &str>(1) {
                "admitted" => Verdict::Admitted,
                "destination" => Verdict::DestinationLimit,
                _ => Verdict::TenantLimit,
            };
            (r.get(0), verdict)
        })
        .collect())
}
