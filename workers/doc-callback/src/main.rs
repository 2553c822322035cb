//! `doc-callback`: consumes `doc.callback`, confirms and stores signed documents, polls the vendor for
//! documents whose webhook never came, and delivers the clients' signed webhooks.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(pasarela_shared::runtime::main::<doc_callback::DocCallbackHandler>().await?)
}
