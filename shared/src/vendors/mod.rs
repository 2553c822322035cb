//! One module per vendor: typed requests and responses, one function per documented operation, and
//! every documented response code mapped to what pasarela does with it.

pub mod aldeamo;
pub mod bearer;
pub mod breaker;
pub mod cipher;
pub mod danaconnect;
pub mod demo;
pub mod gestopago;
pub mod http;
pub mod numrot;
pub mod shape;
pub mod signing;
pub mod tokens;
pub mod webhook;

use crate::contract::env::{ConfigError, Env, FromEnv};
use aldeamo::AldeamoSettings;
use danaconnect::DanaConnectSettings;

/// The OTP vendors' clients, as the OTP workers use them.
#[derive(Debug, Clone)]
pub struct OtpClients {
    /// DANAConnect.
    pub danaconnect: danaconnect::DanaConnectClient,
    /// Aldeamo.
    pub aldeamo: aldeamo::AldeamoClient,
}

impl FromEnv for OtpClients {
    /// Builds both clients from `DANACONNECT_*` and `ALDEAMO_*`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let bad_url = |variable: &str| {
            let variable = variable.to_string();
            move |e: url::ParseError| ConfigError {
                variable,
                problem: format!("not a URL: {e}"),
            }
        };
        Ok(Self {
            danaconnect: danaconnect::DanaConnectClient::new(&DanaConnectSettings::from_env(env)?)
                .map_err(bad_url("DANACONNECT_BASE_URL"))?,
            aldeamo: aldeamo::AldeamoClient::new(&AldeamoSettings::from_env(env)?)
                .map_err(bad_url("ALDEAMO_BASE_URL"))?,
        })
    }
}
