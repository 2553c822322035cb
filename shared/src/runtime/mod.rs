//! The only code that consumes, acks, publishes, sleeps or loops.
//!
//! A worker is a [`handler::Handler`]; [`consumer::run`] waits for the database, keeps a broker session
//! ([`session`]) and turns each delivery ([`delivery`], [`attempt`]) into an ack, a retry tier or a dead
//! letter (docs/ARCHITECTURE.md, "The life of one message").

pub mod attempt;
pub mod backoff;
pub mod binary;
pub mod catalogue;
pub mod consumer;
pub mod database;
pub mod delivery;
pub mod handler;
pub mod health;
pub mod http;
pub mod jobs;
pub mod link;
pub mod outbound;
pub mod publisher;
pub mod relay;
pub mod retention;
pub mod session;
pub mod settings;
pub mod statistics;
pub mod stop;
pub mod topology;

pub use binary::{Worker, main};
pub use stop::{StopSignal, shutdown_signal};
