//! `pasarela-bench`: measures the broker's own floor and pasarela's `otp.send` in one run, so the
//! ratio between them means something on a noisy, shared machine.
//!
//! Floors, with the same message size as an `otp.send`: one leg (persistent publish with confirms →
//! quorum queue → consume with ack) and two legs (the same, then a result published with confirms to a
//! second quorum queue and consumed: what a worker does at the least). Then the real thing: the
//! `otp-send` worker and a zero-latency vendor simulator as processes, N messages published with
//! confirms, every result awaited. Last, the `otp.verify` RPC round trip: codes sent, read from the
//! simulator's inbox and verified one at a time through the `otp-verify` worker.

mod curve;
mod floor;
mod pgcost;
mod run;
mod stack;
mod steps;
mod verify;

use std::time::Duration;

use clap::Parser;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "pasarela-bench",
    about = "otp.send throughput against the broker floor, and the otp.verify RPC round trip"
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
}

/// Throughput and latency of one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Messages per second, first publish to last receipt.
    pub per_second: f64,
    /// Median end-to-end latency.
    pub p50: Duration,
    /// 99th percentile end-to-end latency.
    pub p99: Duration,
}

impl Measurement {
    /// The measurement as JSON, latencies in milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "per_second": self.per_second, "p50_ms": ms(self.p50), "p99_ms": ms(self.p99)
        })
    }
}

/// The p-th percentile (0..=100) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn line(name: &str, m: &Measurement, floor: Option<f64>) {
    let ratio = floor
        .map(|f| format!("{:.2}", m.per_second / f))
        .unwrap_or_else(|| "-".into());
    println!(
        "{name:<34} {:>10.0} msg/s   p50 {:>7.1} ms   p99 {:>7.1} ms   ratio {ratio}",
        m.per_second,
        m.p50.as_secs_f64() * 1000.0,
        m.p99.as_secs_f64() * 1000.0
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints the `otp.verify` figures; an error when any RPC did not answer `verified`.
fn verify_lines(report: &verify::VerifyReport) -> anyhow::Result<()> {
    let s = &report.summary;
    println!(
        "{:<34} {:>10} rpcs   mean {:>6.2} ms   p50 {:>6.2} ms   p99 {:>6.2} ms   p99.9 {:>6.2} ms   max {:>6.2} ms",
        "pasarela otp.verify RPC, one at a time",
        s.count,
        ms(s.mean),
        ms(s.p50),
        ms(s.p99),
        ms(s.p999),
        ms(s.max)
    );
    let failed: usize = report.errors.values().sum();
    let answers = if failed == 0 {
        "every reply verified".to_string()
    } else {
        let kinds: Vec<String> = report
            .errors
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        format!(
            "{failed} of {} RPCs not verified ({})",
            report.attempted,
            kinds.join(", ")
        )
    };
    println!(
        "pasarela otp.verify: {answers}; otp-verify peak RSS {:.1} MiB",
        report.rss_kib as f64 / 1024.0
    );
    anyhow::ensure!(failed == 0, "{failed} otp.verify RPCs were not verified");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Options::parse();
    let body_size = run::sample_body(uuid::Uuid::new_v4()).len();
    println!(
        "pasarela-bench: {} messages of {body_size} bytes (+{} warm-up), {} in flight, confirm window {}, worker concurrency {} prefetch {}",
        opts.count, opts.warmup, opts.in_flight, opts.window, opts.concurrency, opts.prefetch
    );
    let one = floor::one_leg(&opts, body_size).await?;
    let two = floor::two_legs(&opts, body_size).await?;
    if opts.curve {
        let points = curve::curve(&opts).await?;
        line("broker floor, one leg", &one, None);
        line("broker floor, two legs", &two, None);
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
    let sends = run::otp_send(&opts).await?;
    let otp = sends.measurement;
    let verified = if opts.verify_count > 0 {
        Some(verify::otp_verify(&opts).await)
    } else {
        None
    };
    println!();
    line("broker floor, one leg", &one, None);
    line("broker floor, two legs", &two, None);
    line(
        "pasarela otp.send (vs two legs)",
        &otp,
        Some(two.per_second),
    );
    println!(
        "pasarela otp.send vs one leg: {:.2}; otp-send peak RSS {:.1} MiB",
        otp.per_second / one.per_second,
        sends.rss_kib as f64 / 1024.0
    );
    let pg = &sends.pg;
    println!(
        "PostgreSQL per otp.send message: {:.3} commits, {:.0} WAL bytes; work_items updates HOT {} of {} ({:.0} %)",
        pg.commits_per_message,
        pg.wal_bytes_per_message,
        pg.work_hot_updates,
        pg.work_updates,
        100.0 * pg.work_hot_updates as f64 / pg.work_updates.max(1) as f64
    );
    println!(
        "where an otp.send's time went in the worker (means; group commits of {:.1} operations):",
        sends.steps.group_size
    );
    for (step, ms, _) in &sends.steps.means {
        println!("  {step:<28} {ms:>8.2} ms");
    }
    let report = match verified {
        Some(report) => Some(report?),
        None => None,
    };
    if let Some(path) = &opts.json {
        let json = serde_json::json!({
            "options": {"count": opts.count, "warmup": opts.warmup, "in_flight": opts.in_flight,
                        "concurrency": opts.concurrency, "prefetch": opts.prefetch},
            "floor_one_leg": one.to_json(),
            "floor_two_legs": two.to_json(),
            "otp_send": {
                "measurement": otp.to_json(),
                "ratio_to_two_legs": otp.per_second / two.per_second,
                "peak_rss_kib": sends.rss_kib,
                "commits_per_message": pg.commits_per_message,
                "wal_bytes_per_message": pg.wal_bytes_per_message,
                "work_items_updates": pg.work_updates,
                "work_items_hot_updates": pg.work_hot_updates,
                "group_commit_size": sends.steps.group_size,
                "steps_ms": sends.steps.means.iter()
                    .map(|(step, ms, _)| (step.clone(), serde_json::json!(ms)))
                    .collect::<serde_json::Map<_, _>>(),
            },
            "otp_verify": report.as_ref().map(verify::VerifyReport::to_json),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)?;
        println!("results written to {}", path.display());
    }
    match report {
        Some(report) => verify_lines(&report),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_by_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(51));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
