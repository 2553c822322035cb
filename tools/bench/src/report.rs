//! The bench's results as a table on stdout and as JSON.

use crate::Options;
use crate::kinds::KindReport;
use crate::measure::{Measurement, added_ms, ms};
use crate::verify::VerifyReport;

/// Prints one floor measurement.
pub fn floor_line(name: &str, m: &Measurement) {
    println!(
        "{name:<40} {:>9.0} msg/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        m.per_second,
        ms(m.p50),
        ms(m.p99)
    );
}

/// The latency pasarela adds at the paced rate, over the floor at the same rate: p50, p99, p99.9 ms.
pub fn added(k: &KindReport) -> Option<[f64; 3]> {
    let (p, f) = (k.flow.paced.as_ref()?, k.floor_paced.as_ref()?);
    Some([
        added_ms(p.p50, f.p50),
        added_ms(p.p99, f.p99),
        added_ms(p.p999, f.p999),
    ])
}

fn rss(k: &KindReport) -> String {
    k.rss_kib
        .iter()
        .map(|(binary, kib)| format!("{binary} {:.1}", *kib as f64 / 1024.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints every kind against its floor, the `otp.send` details, and the `otp.verify` figures.
pub fn print(kinds: &[KindReport], verified: Option<&VerifyReport>, paced_share: f64) {
    println!(
        "\n{:<44} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}  peak RSS MiB",
        "kind", "msg/s", "floor", "ratio", "+p50 ms", "+p99 ms", "+p99.9", "commits", "WAL B"
    );
    for k in kinds {
        let [p50, p99, p999] = added(k).map_or(["-".to_string(), "-".into(), "-".into()], |a| {
            a.map(|v| format!("{v:.2}"))
        });
        println!(
            "{:<44} {:>8.0} {:>8.0} {:>6.2} {p50:>8} {p99:>8} {p999:>8} {:>8.3} {:>8.0}  {}",
            k.name,
            k.flow.peak.per_second,
            k.floor.per_second,
            k.ratio(),
            k.flow.pg.commits_per_message,
            k.flow.pg.wal_bytes_per_message,
            rss(k)
        );
    }
    println!(
        "(floor: the two-leg broker floor with the kind's message size, measured after it; +p: latency \
         added over that floor, both at {:.0} % of the kind's peak rate; commits and WAL bytes per message \
         at the peak)",
        paced_share * 100.0
    );
    for k in kinds {
        if let (Some(p), Some(f)) = (&k.flow.paced, &k.floor_paced) {
            println!(
                "{:<44} at {:>7.0} msg/s: p50 {:>7.2}  p99 {:>7.2}  p99.9 {:>7.2} ms (floor {:.2} / {:.2} / {:.2})",
                k.name,
                p.per_second,
                ms(p.p50),
                ms(p.p99),
                ms(p.p999),
                ms(f.p50),
                ms(f.p99),
                ms(f.p999)
            );
        }
    }
    for k in kinds.iter().filter(|k| k.detailed) {
        let pg = &k.flow.pg;
        println!(
            "{}: work_items updates HOT {} of {} ({:.0} %)",
            k.name,
            pg.work_hot_updates,
            pg.work_updates,
            100.0 * pg.work_hot_updates as f64 / pg.work_updates.max(1) as f64
        );
        let steps = &k.flow.peak_steps;
        println!(
            "{}: where a message's time went in {} (means; group commits of {:.1} operations):",
            k.name,
            k.rss_kib.first().map_or("the worker", |(binary, _)| binary),
            steps.group_size
        );
        let paced = k.flow.paced_steps.as_ref();
        println!("  {:<28} {:>8} {:>12}", "step", "at peak", "when paced");
        for (step, ms, _) in &steps.means {
            let at_pace = paced
                .and_then(|p| p.means.iter().find(|(s, _, _)| s == step))
                .map_or("-".to_string(), |(_, ms, _)| format!("{ms:.2}"));
            println!("  {step:<28} {ms:>8.2} {at_pace:>12} ms");
        }
    }
    if let Some(report) = verified {
        verify_lines(report);
    }
}

/// Prints the `otp.verify` figures.
fn verify_lines(report: &VerifyReport) {
    let s = &report.one_at_a_time;
    println!(
        "{:<44} {:>6} rpcs   mean {:>6.2} ms   p50 {:>6.2} ms   p99 {:>6.2} ms   p99.9 {:>6.2} ms   max {:>6.2} ms",
        "otp.verify RPC, one at a time",
        s.count,
        ms(s.mean),
        ms(s.p50),
        ms(s.p99),
        ms(s.p999),
        ms(s.max)
    );
    let p = &report.parallel;
    println!(
        "{:<44} {:>6.0} rpc/s  p50 {:>6.2} ms   p99 {:>6.2} ms   p99.9 {:>6.2} ms",
        format!("otp.verify RPC, {} in flight", report.in_flight),
        p.per_second,
        ms(p.p50),
        ms(p.p99),
        ms(p.p999)
    );
    println!(
        "otp.verify: {}; otp-verify peak RSS {:.1} MiB",
        answers(report),
        report.rss_kib as f64 / 1024.0
    );
}

fn answers(report: &VerifyReport) -> String {
    let failed: usize = report.errors.values().sum();
    if failed == 0 {
        return "every reply verified".to_string();
    }
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
}

/// An error when any `otp.verify` RPC did not answer `verified`.
pub fn verify_failures(report: &VerifyReport) -> anyhow::Result<()> {
    let failed: usize = report.errors.values().sum();
    anyhow::ensure!(failed == 0, "{}", answers(report));
    Ok(())
}

fn steps_json(steps: &crate::steps::Steps) -> serde_json::Value {
    steps
        .means
        .iter()
        .map(|(step, ms, _)| (step.clone(), serde_json::json!(ms)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Everything measured, as JSON.
pub fn to_json(
    opts: &Options,
    one_leg: &Measurement,
    kinds: &[KindReport],
    verified: Option<&VerifyReport>,
) -> serde_json::Value {
    let kinds: Vec<serde_json::Value> = kinds
        .iter()
        .map(|k| {
            serde_json::json!({
                "kind": k.name,
                "body_bytes": k.body_size,
                "peak": k.flow.peak.to_json(),
                "floor_two_legs": k.floor.to_json(),
                "ratio_to_floor": k.ratio(),
                "paced": k.flow.paced.as_ref().map(Measurement::to_json),
                "floor_paced": k.floor_paced.as_ref().map(Measurement::to_json),
                "added_ms_p50_p99_p999": added(k),
                "peak_rss_kib": k.rss_kib.iter()
                    .map(|(b, kib)| (b.to_string(), serde_json::json!(kib)))
                    .collect::<serde_json::Map<_, _>>(),
                "commits_per_message": k.flow.pg.commits_per_message,
                "wal_bytes_per_message": k.flow.pg.wal_bytes_per_message,
                "work_items_updates": k.flow.pg.work_updates,
                "work_items_hot_updates": k.flow.pg.work_hot_updates,
                "steps_ms": steps_json(&k.flow.peak_steps),
                "group_commit_size": k.flow.peak_steps.group_size,
                "paced_steps_ms": k.flow.paced_steps.as_ref().map(steps_json),
            })
        })
        .collect();
    serde_json::json!({
        "options": {"count": opts.count, "warmup": opts.warmup, "in_flight": opts.in_flight,
                    "concurrency": opts.concurrency, "prefetch": opts.prefetch,
                    "slow_concurrency": opts.slow_concurrency,
                    "document_bytes": opts.document_bytes, "document_count": opts.document_count},
        "floor_one_leg": one_leg.to_json(),
        "kinds": kinds,
        "otp_verify": verified.map(VerifyReport::to_json),
    })
}
