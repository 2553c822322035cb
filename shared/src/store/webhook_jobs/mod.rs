//! The client webhook tables: `webhook_jobs` (one webhook to deliver), `webhook_deliveries` (every
//! attempt at one) and `webhook_endpoints` (an endpoint that answered 410 Gone is disabled until
//! someone redelivers to it); as the dispatcher delivers them and as an operator reads and repairs
//! them.

mod delivery;
mod endpoints;
mod list;
mod redeliver;

pub use delivery::*;
pub use endpoints::*;
pub use list::*;
pub use redeliver::*;

use serde::Serialize;

use crate::store::column::text_column;

/// Where a webhook job stands (`webhook_jobs.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for its next attempt.
    Pending,
    /// Held by a dispatcher until its lease ends.
    Delivering,
    /// Accepted by the client: final.
    Delivered,
    /// Given up on: final.
    Failed,
}

impl JobState {
    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Delivering => "delivering",
            JobState::Delivered => "delivered",
            JobState::Failed => "failed",
        }
    }
}

text_column!(JobState: Pending, Delivering, Delivered, Failed);

/// A document's webhook jobs, counted by state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookCounts {
    /// Waiting for their next attempt.
    pub pending: i64,
    /// Held by a dispatcher right now.
    pub delivering: i64,
    /// Accepted by the client.
    pub delivered: i64,
    /// Given up on.
    pub failed: i64,
}

impl WebhookCounts {
    /// Every job counted.
    pub fn total(&self) -> i64 {
        self.pending + self.delivering + self.delivered + self.failed
    }
}
