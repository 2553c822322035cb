//! The wire and nothing else: queues, messages, events, headers, errors and environment variables, as
//! producers, consumers and operators see them (docs/CONTRACT.md). This layer imports nothing of the
//! crate; every other layer imports it.

pub mod documents;
pub mod env;
pub mod envelope;
pub mod errors;
pub mod events;
pub mod headers;
pub mod messages;
pub mod queue;
pub mod retry;
pub mod schemas;
pub mod settings;
pub mod webhooks;
