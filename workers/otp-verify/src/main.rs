//! `otp-verify`: consumes `otp.verify`, checks each code with the vendor that sent it, and answers.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(pasarela_shared::runtime::main::<otp_verify::OtpVerifyHandler>().await?)
}
