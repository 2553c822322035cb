//! `vendor-sim`: every vendor pasarela talks to, on one port, for tests, benchmarks and `make demo`.

use anyhow::Context;
use vendor_sim::SimConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let vars: std::collections::HashMap<String, String> = std::env::vars().collect();
    let config = SimConfig::from_vars(&vars);
    let problems = config.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration: {}", problems.join("; "));
    }
    let addr = vars
        .get("VENDOR_SIM_ADDR")
        .map(String::as_str)
        .unwrap_or("127.0.0.1:7070");
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    // The first line of stdout is the bound address: tests start the simulator on port 0 and read it.
    println!("vendor-sim listening on {}", listener.local_addr()?);
    vendor_sim::serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
