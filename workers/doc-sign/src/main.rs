//! `doc-sign`: consumes `doc.sign`, stores each PDF and submits it to the signing vendor.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(pasarela_shared::runtime::main::<doc_sign::DocSignHandler>().await?)
}
