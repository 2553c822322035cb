//! `vendor-call`: consumes `vendor.call` and calls NumRot or GestoPago with the shared tokens.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(pasarela_shared::runtime::main::<vendor_call::VendorCallHandler>().await?)
}
