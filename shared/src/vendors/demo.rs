//! Demo values shared with the simulator's defaults, so `make demo` needs no configuration.

/// Default `DANACONNECT_BASE_URL`: the simulator on its default port.
pub const DANACONNECT_BASE_URL: &str = "http://127.0.0.1:7070/danaconnect/otp/1.0";
/// Default `DANACONNECT_USER`.
pub const DANACONNECT_USER: &str = "demo";
/// Default `DANACONNECT_COMPANY`.
pub const DANACONNECT_COMPANY: &str = "pasarela";
/// Default `DANACONNECT_PASSWORD`.
pub const DANACONNECT_PASSWORD: &str = "demo-password";
/// Default `ALDEAMO_BASE_URL`: the simulator on its default port.
pub const ALDEAMO_BASE_URL: &str = "http://127.0.0.1:7070/aldeamo";
/// Default `ALDEAMO_USER`.
pub const ALDEAMO_USER: &str = "demo";
/// Default `ALDEAMO_PASSWORD`.
pub const ALDEAMO_PASSWORD: &str = "demo-password";
/// Default `NUMROT_BASE_URL`: the simulator on its default port.
pub const NUMROT_BASE_URL: &str = "http://127.0.0.1:7070/numrot";
/// Default `NUMROT_USERNAME`.
pub const NUMROT_USERNAME: &str = "demo";
/// Default `NUMROT_PASSWORD`.
pub const NUMROT_PASSWORD: &str = "demo-password";
/// Default `GESTOPAGO_BASE_URL`: the simulator on its default port.
pub const GESTOPAGO_BASE_URL: &str = "http://127.0.0.1:7070/gestopago";
/// Default `GESTOPAGO_TOKEN_PATH`.
pub const GESTOPAGO_TOKEN_PATH: &str = "/api/token";
/// Default `GESTOPAGO_ID_DISTRIBUIDOR`.
pub const GESTOPAGO_ID_DISTRIBUIDOR: &str = "demo-distribuidor";
/// Default `GESTOPAGO_CODIGO_DISPOSITIVO`.
pub const GESTOPAGO_CODIGO_DISPOSITIVO: &str = "demo-dispositivo";
/// Default `GESTOPAGO_PASSWORD`.
pub const GESTOPAGO_PASSWORD: &str = "demo-password";
/// Default `GESTOPAGO_AES_KEY` (32 bytes as text).
pub const GESTOPAGO_AES_KEY: &str = "pasarela-gestopago-demo-key-32by";
/// Default `GESTOPAGO_AES_IV` (16 bytes as text).
pub const GESTOPAGO_AES_IV: &str = "pasarela-demo-iv";
/// Default `SIGNING_BASE_URL`: the simulator on its default port.
pub const SIGNING_BASE_URL: &str = "http://127.0.0.1:7070/signing";
/// Default `SIGNING_CLIENT_ID`.
pub const SIGNING_CLIENT_ID: &str = "pasarela-demo";
/// Default `SIGNING_CLIENT_SECRET`.
pub const SIGNING_CLIENT_SECRET: &str = "demo-client-secret";
/// Default `SIGNING_USERNAME`.
pub const SIGNING_USERNAME: &str = "demo-signer";
/// Default `SIGNING_PASSWORD`.
pub const SIGNING_PASSWORD: &str = "demo-password";
