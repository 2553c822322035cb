//! pasarela's shared library, in layers that import one way (docs/ARCHITECTURE.md):
//!
//! `contract` ← `telemetry` ← `vendors` ← `store` ← `runtime` ← the workers.
//!
//! - [`contract`]: the wire and nothing else: queues, messages, events, headers, errors, settings.
//! - [`telemetry`]: logs, traces and metrics set-up, and the W3C trace context in headers.
//! - [`vendors`]: one module per vendor, each with its settings, codes and one verdict table.
//! - [`store`]: every SQL statement, by table, and the group committer.
//! - [`runtime`]: the only code that consumes, acks, publishes, sleeps or loops.

pub mod contract;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod vendors;
