//! The worker processes a measurement can start, and the settings only the bench's workers use.

/// A worker process to start: its binary (beside this one) and the work queue it consumes.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSpec {
    /// The binary's name.
    pub binary: &'static str,
    /// The work queue it consumes, without the namespace; `None` for one that serves HTTP only.
    pub queue: Option<&'static str>,
}

/// The `otp-send` worker.
pub const OTP_SEND: WorkerSpec = WorkerSpec {
    binary: "otp-send",
    queue: Some("otp.send"),
};

/// The `otp-verify` worker.
pub const OTP_VERIFY: WorkerSpec = WorkerSpec {
    binary: "otp-verify",
    queue: Some("otp.verify"),
};

/// The `vendor-call` worker.
pub const VENDOR_CALL: WorkerSpec = WorkerSpec {
    binary: "vendor-call",
    queue: Some("vendor.call"),
};

/// The `doc-sign` worker.
pub const DOC_SIGN: WorkerSpec = WorkerSpec {
    binary: "doc-sign",
    queue: Some("doc.sign"),
};

/// The `doc-callback` worker, which also delivers the clients' webhooks.
pub const DOC_CALLBACK: WorkerSpec = WorkerSpec {
    binary: "doc-callback",
    queue: Some("doc.callback"),
};

/// The `callback-ingress` worker: the vendor's signing webhooks in, `doc.callback` out.
pub const CALLBACK_INGRESS: WorkerSpec = WorkerSpec {
    binary: "callback-ingress",
    queue: None,
};

/// `PASARELA_SECRET_KEY` for the bench's workers: 32 bytes, standard Base64, used for nothing else.
pub const BENCH_SECRET_KEY: &str = "YmVuY2gtb25seS1zZWNyZXQta2V5LTMyLWJ5dGVzISE=";
/// `PASARELA_WEBHOOK_SECRET` for the bench's workers.
pub const BENCH_WEBHOOK_SECRET: &str = "whsec_YmVuY2gtb25seS13ZWJob29rLXNlY3JldA==";
