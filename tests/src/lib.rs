//! The end-to-end harness: each test gets its own database and broker namespace, a vendor simulator on
//! port 0, and the real worker binaries it names as processes, all against real RabbitMQ and
//! PostgreSQL.
//!
//! By default the services already running on this machine are used (`AMQP_URL`,
//! `PASARELA_TEST_DATABASE_ADMIN_URL`); with `PASARELA_TEST_CONTAINERS=1` the harness starts RabbitMQ
//! and PostgreSQL with testcontainers instead (needs a Docker engine).

mod broker;
mod database;
mod environment;
mod exits;
pub mod otp;
mod proxy;
mod services;
pub mod signing;
mod simulator;
pub mod traces;
pub mod vendor_call;

pub use broker::{DeadMessage, Event, json_props, mobile_for, otp_send, qualify};
pub use database::{TestDatabase, drop_database};
pub use environment::{
    EnvOptions, TEST_SECRET_KEY, TEST_TIERS, TEST_WEBHOOK_SECRET, TestEnv, free_port,
    wait_until_listening,
};
pub use exits::{Exit, run_until_exit};
pub use proxy::BlackHole;
pub use services::{Services, binary, pg_connect, services};
pub use simulator::Simulator;
