//! pasarela's shared library: the runtime every worker runs on, storage, vendor clients and telemetry.
//!
//! A worker binary is a [`handler::Handler`] plus a `main.rs` that reads [`config`], starts
//! [`telemetry`] and calls [`runtime::run`]. Everything that decides ack, retry or dead-letter lives here.

pub mod breaker;
pub mod broker;
pub mod cipher;
pub mod config;
pub mod db;
pub mod documents;
pub mod handler;
pub mod health;
pub mod messages;
pub mod retry;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod topology;
pub mod vendors;
pub mod webhooks;
