//! The only code that consumes, acks, publishes, sleeps or loops.
//!
//! A worker is a [`handler::Handler`]; [`consumer::run`] connects, declares, consumes, and for each
//! delivery turns the handler's outcome into an ack, a retry tier or a dead letter
//! (docs/ARCHITECTURE.md, "The life of one message").

pub mod consumer;
pub mod database;
pub mod handler;
pub mod health;
pub mod publisher;
pub mod settings;
pub mod topology;

pub use consumer::{StopSignal, run, shutdown_signal};
