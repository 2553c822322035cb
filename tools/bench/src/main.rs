//! `pasarela-bench`: measures the broker's own floor and every pasarela worker kind in one run, so the
//! ratio between them means something on a noisy, shared machine.
//!
//! The floors: one leg (persistent publish with confirms → quorum queue → consume with ack) and two
//! legs (the same, then a result published with confirms to a second quorum queue and consumed: what a
//! worker does at the least), each with the message size of the kind it is compared to. The kinds, each
//! as processes beside the vendor simulator, N messages published with confirms and every result
//! awaited: `otp.send` (zero vendor latency, then a slow vendor), `vendor.call` to GestoPago,
//! `doc.sign` of 1 MiB PDFs to the client's webhook, and the `otp.verify` RPC one at a time and many
//! in flight. Output: a table, JSON (`--json`) and SVG charts (`--charts`).

mod chart;
mod console;
mod curve;
mod floor;
mod kinds;
mod measure;
mod pgcost;
mod profile;
mod report;
mod run;
mod stack;
mod steps;
mod verify;
mod workers;

use clap::Parser;

use crate::measure::Pace;

/// Command-line options.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pasarela-bench",
    about = "every worker kind's throughput and latency against the broker floor, in one run"
)]
pub struct Options {
    /// Messages per measurement.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Messages sent first and not measured (connections, caches, JIT of the broker).
    #[arg(long, default_value_t = 1_000)]
    pub warmup: usize,
    /// Publishes in flight before waiting for confirms.
    #[arg(long, default_value_t = 500)]
    pub window: usize,
    /// Most messages between publish and receipt (closed loop); the queue never holds a backlog larger.
    #[arg(long, default_value_t = 1_000)]
    pub in_flight: usize,
    /// The worker's PASARELA_CONCURRENCY.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// The worker's PASARELA_PREFETCH.
    #[arg(long, default_value_t = 400)]
    pub prefetch: usize,
    /// AMQP URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// PostgreSQL server URL, without a database.
    #[arg(
        long,
        env = "PASARELA_BENCH_PG",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub pg_base: String,
    /// Longest wait for all results.
    #[arg(long, default_value = "300")]
    pub timeout_s: u64,
    /// otp.verify RPCs measured, one at a time; 0 skips the measurement.
    #[arg(long, default_value_t = 2_000)]
    pub verify_count: usize,
    /// otp.verify RPCs made first and not measured.
    #[arg(long, default_value_t = 100)]
    pub verify_warmup: usize,
    /// The cost curve instead of the otp.send and otp.verify measurements: otp.send at 1, 2, 4 and 8
    /// worker processes, and at 10,000, 100,000 and 1,000,000 finished sends already in the tables.
    #[arg(long)]
    pub curve: bool,
    /// Latency the simulated DANAConnect adds to each call during the otp.send measurement, in ms.
    #[arg(long, default_value_t = 0)]
    pub vendor_latency_ms: u64,
    /// Up to this much more or less vendor latency per call, uniformly at random, in ms.
    #[arg(long, default_value_t = 0)]
    pub vendor_jitter_ms: u64,
    /// Leave the statistics to the workers and autovacuum instead of analyzing after the warm-up.
    #[arg(long)]
    pub no_analyze: bool,
    /// Message and request ids of version 7 (time-ordered), as a producer may choose, instead of 4.
    #[arg(long)]
    pub time_ordered_ids: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<std::path::PathBuf>,
    /// Also draw the results as SVG charts in this directory (throughput.svg, latency.svg).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<std::path::PathBuf>,
    /// Also record each kind's first worker with `perf` during its peak measurement, and draw
    /// `flamegraph-<worker>.svg` in this directory.
    #[arg(long, value_name = "DIR")]
    pub flamegraphs: Option<std::path::PathBuf>,
    /// The share of each kind's peak rate its latency is measured at (open loop).
    #[arg(long, default_value_t = 0.5)]
    pub paced_share: f64,
    /// The kinds to measure (comma-separated): otp-send, otp-send-slow, vendor-call, doc-sign,
    /// otp-verify.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "otp-send,otp-send-slow,vendor-call,doc-sign,otp-verify"
    )]
    pub kinds: Vec<Kind>,
    /// The slow vendor's latency for `otp-send-slow`, ms.
    #[arg(long, default_value_t = 150)]
    pub slow_vendor_ms: u64,
    /// Up to this much more or less, uniformly at random, ms.
    #[arg(long, default_value_t = 50)]
    pub slow_vendor_jitter_ms: u64,
    /// The worker's PASARELA_CONCURRENCY for `otp-send-slow`: the throughput of a slow vendor comes
    /// from requests in flight.
    #[arg(long, default_value_t = 400)]
    pub slow_concurrency: usize,
    /// otp.verify RPCs measured many at a time.
    #[arg(long, default_value_t = 5_000)]
    pub verify_parallel_count: usize,
    /// How many of those are in flight at once.
    #[arg(long, default_value_t = 100)]
    pub verify_in_flight: usize,
    /// Size of each PDF `doc-sign` signs, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub document_bytes: usize,
    /// Documents measured.
    #[arg(long, default_value_t = 300)]
    pub document_count: usize,
    /// Documents between publish and the client's webhook at once.
    #[arg(long, default_value_t = 32)]
    pub document_in_flight: usize,
    /// Measure the operator console's pages over 1,000,000 stored sends instead of the workers.
    #[arg(long)]
    pub console_pages: bool,
}

/// A worker kind the bench can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `otp.send` at zero vendor latency (or `--vendor-latency-ms`).
    OtpSend,
    /// `otp.send` with a slow vendor, at `--slow-concurrency`.
    OtpSendSlow,
    /// `vendor.call` to GestoPago.
    VendorCall,
    /// `doc.sign` to the client's webhook.
    DocSign,
    /// The `otp.verify` RPC.
    OtpVerify,
}

/// How the `otp.send` measurements load the system, from the options.
pub fn send_pace(opts: &Options) -> Pace {
    Pace {
        count: opts.count,
        in_flight: opts.in_flight,
        window: opts.window,
        rate: None,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Options::parse();
    let body_size = run::sample_body(uuid::Uuid::new_v4()).len();
    println!(
        "pasarela-bench: {} messages of {body_size} bytes (+{} warm-up), {} in flight, confirm window {}, worker concurrency {} prefetch {}",
        opts.count, opts.warmup, opts.in_flight, opts.window, opts.concurrency, opts.prefetch
    );
    if opts.console_pages {
        let timings = console::pages(&opts).await?;
        console::print(&timings);
        if let Some(path) = &opts.json {
            std::fs::write(
                path,
                serde_json::to_vec_pretty(&console::to_json(&timings))?,
            )?;
            println!("results written to {}", path.display());
        }
        return Ok(());
    }
    let pace = send_pace(&opts);
    let one = floor::one_leg(&opts, &pace, body_size).await?;
    if opts.curve {
        let two = floor::two_legs(&opts, &[pace], body_size)
            .await?
            .pop()
            .unwrap_or_default();
        let points = curve::curve(&opts).await?;
        report::floor_line("broker floor, one leg", &one);
        report::floor_line("broker floor, two legs", &two);
        curve::print(&points, &two);
        if let Some(path) = &opts.json {
            let json = serde_json::json!({
                "floor_one_leg": one.to_json(),
                "floor_two_legs": two.to_json(),
                "curve": curve::to_json(&points),
            });
            std::fs::write(path, serde_json::to_vec_pretty(&json)?)?;
        }
        return Ok(());
    }
    let mut kinds = Vec::new();
    let mut verified = None;
    for kind in &opts.kinds {
        match kind {
            Kind::OtpSend => kinds.push(kinds::otp_send(&opts).await?),
            Kind::OtpSendSlow => kinds.push(kinds::otp_send_slow_vendor(&opts).await?),
            Kind::VendorCall => kinds.push(kinds::vendor_call(&opts).await?),
            Kind::DocSign => kinds.push(kinds::doc_sign(&opts).await?),
            Kind::OtpVerify => verified = Some(verify::otp_verify(&opts).await?),
        }
    }
    println!();
    report::floor_line("broker floor, one leg (otp.send size)", &one);
    report::print(&kinds, verified.as_ref(), opts.paced_share);
    if let Some(path) = &opts.json {
        let json = report::to_json(&opts, &one, &kinds, verified.as_ref());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)?;
        println!("results written to {}", path.display());
    }
    if let Some(dir) = &opts.charts {
        for path in chart::draw(dir, opts.paced_share, &kinds, verified.as_ref())? {
            println!("chart written to {}", path.display());
        }
    }
    match &verified {
        Some(report) => report::verify_failures(report),
        None => Ok(()),
    }
}
