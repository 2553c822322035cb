//! `otp-send`: consumes `otp.send` and sends each code through its provider.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(pasarela_shared::runtime::main::<otp_send::OtpSendHandler>().await?)
}
