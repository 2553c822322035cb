//! Every metric pasarela records, with the HELP text `/metrics` prints for it, the histogram buckets,
//! and `pasarela_build_info`.

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// Each metric: name, kind, HELP text.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "pasarela_build_info",
        Kind::Gauge,
        "Always 1; the labels say which pasarela service and version this is.",
    ),
    (
        "pasarela_broker_connected",
        Kind::Gauge,
        "1 while the worker holds a working broker connection, else 0.",
    ),
    (
        "pasarela_database_connected",
        Kind::Gauge,
        "1 while the database answers, else 0.",
    ),
    (
        "pasarela_messages_total",
        Kind::Counter,
        "Work messages handled, by queue and outcome.",
    ),
    (
        "pasarela_message_seconds",
        Kind::Histogram,
        "Time from a work message's delivery to its ack, by queue.",
    ),
    (
        "pasarela_step_seconds",
        Kind::Histogram,
        "Time a delivery spent in one step, by queue and step: claim (its group commit), commit (the outcome's group commit), publish (until every confirm), ack.",
    ),
    (
        "pasarela_handler_seconds",
        Kind::Histogram,
        "Time the handler took to turn a message into an outcome, by queue.",
    ),
    (
        "pasarela_retries_total",
        Kind::Counter,
        "Failed attempts deferred to a retry tier, by queue and tier.",
    ),
    (
        "pasarela_dead_letters_total",
        Kind::Counter,
        "Messages dead-lettered, by queue and error kind.",
    ),
    (
        "pasarela_possible_duplicates_total",
        Kind::Counter,
        "Messages handled again after a holder was lost mid-call (its vendor call may have been made), by queue.",
    ),
    (
        "pasarela_group_commit_size",
        Kind::Histogram,
        "Outcomes committed together in one database transaction.",
    ),
    (
        "pasarela_outbox_relayed_total",
        Kind::Counter,
        "Outbox rows the relay published (results whose first publish was not confirmed).",
    ),
    (
        "pasarela_jobs_taken_total",
        Kind::Counter,
        "Scheduled jobs (webhook deliveries, document checks) taken from the database, by kind of job.",
    ),
    (
        "pasarela_work_items_pruned_total",
        Kind::Counter,
        "Finished work rows deleted past PASARELA_WORK_RETENTION, by queue.",
    ),
    (
        "pasarela_vendor_request_seconds",
        Kind::Histogram,
        "Each HTTP request to a vendor, by vendor, operation and status.",
    ),
    (
        "pasarela_vendor_call_seconds",
        Kind::Histogram,
        "A vendor.call message's whole call, retries inside it included, by vendor.",
    ),
    (
        "pasarela_token_refreshes_total",
        Kind::Counter,
        "Vendor access tokens fetched anew, by vendor.",
    ),
    (
        "pasarela_circuit_open",
        Kind::Gauge,
        "1 while a vendor's circuit is open (calls skip it), by vendor.",
    ),
    (
        "pasarela_circuit_opened_total",
        Kind::Counter,
        "Times a vendor's circuit opened, by vendor.",
    ),
    (
        "pasarela_otp_failovers_total",
        Kind::Counter,
        "OTP sends served by a provider other than the first tried, by the provider that served.",
    ),
    (
        "pasarela_otp_limited_total",
        Kind::Counter,
        "OTP sends refused by a send limit, by limit.",
    ),
    (
        "pasarela_otp_expired_total",
        Kind::Counter,
        "OTP requests the sweep marked expired.",
    ),
    (
        "pasarela_otp_verifications_total",
        Kind::Counter,
        "OTP verifications, by outcome.",
    ),
    (
        "pasarela_documents_submitted_total",
        Kind::Counter,
        "Documents sent to the signing vendor.",
    ),
    (
        "pasarela_documents_signed_total",
        Kind::Counter,
        "Documents confirmed signed.",
    ),
    (
        "pasarela_documents_rejected_total",
        Kind::Counter,
        "doc.sign messages refused before reaching the vendor (size, type, fields).",
    ),
    (
        "pasarela_documents_failed_total",
        Kind::Counter,
        "Documents that ended failed (rejected by the signer, expired, errors).",
    ),
    (
        "pasarela_documents_purged_total",
        Kind::Counter,
        "Stored document PDFs erased past PASARELA_DOCUMENT_RETENTION.",
    ),
    (
        "pasarela_document_polls_total",
        Kind::Counter,
        "Status checks queued for documents whose webhook never came.",
    ),
    (
        "pasarela_webhook_attempts_total",
        Kind::Counter,
        "Client webhook delivery attempts, by outcome.",
    ),
    (
        "pasarela_webhook_seconds",
        Kind::Histogram,
        "Each client webhook delivery attempt's HTTP time.",
    ),
    (
        "pasarela_ingress_callbacks_total",
        Kind::Counter,
        "Signing vendor callbacks received, by outcome.",
    ),
    (
        "pasarela_ingress_callback_seconds",
        Kind::Histogram,
        "Time to check and queue one vendor callback.",
    ),
];

/// Buckets of every duration histogram, in seconds: sub-millisecond commits up to vendor calls and
/// document waits of minutes.
pub const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// Buckets of `pasarela_group_commit_size`, in outcomes.
pub const GROUP_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Gives every metric its HELP text (on the installed recorder).
pub fn describe() {
    for (name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, *help),
        }
    }
}

/// Sets `pasarela_build_info{service, version}` to 1.
pub fn build_info(service: &'static str) {
    metrics::gauge!(
        "pasarela_build_info",
        "service" => service,
        "version" => env!("CARGO_PKG_VERSION")
    )
    .set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the code records is in the catalogue (and so has HELP text), and none twice.
    #[test]
    fn every_recorded_metric_is_described() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut recorded = std::collections::BTreeSet::new();
        let mut stack = vec![root.join("shared/src"), root.join("workers")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if !path.ends_with("target") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (at, _) in text.match_indices("\"pasarela_") {
                        let name: String = text[at + 1..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        let before = &text[at.saturating_sub(80)..at];
                        if before.contains("counter!(")
                            || before.contains("gauge!(")
                            || before.contains("histogram!(")
                        {
                            recorded.insert(name);
                        }
                    }
                }
            }
        }
        let described: std::collections::BTreeSet<String> =
            METRICS.iter().map(|(n, ..)| n.to_string()).collect();
        assert_eq!(
            described.len(),
            METRICS.len(),
            "a metric is described twice"
        );
        let missing: Vec<_> = recorded.difference(&described).collect();
        assert!(
            missing.is_empty(),
            "recorded without HELP text: {missing:?}"
        );
        assert!(recorded.len() >= 30, "found only {recorded:?}");
        assert_eq!(SECONDS.last(), Some(&300.0));
    }
}
