//! The demo's report: results by status, end-to-end latency percentiles, and what never completed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use uuid::Uuid;

/// The terminal statuses of `otp.send.completed`.
pub const TERMINAL: [&str; 3] = ["sent", "rejected", "failed"];

/// How one published request ended.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The event's `status`.
    pub status: String,
    /// Publish to event received.
    pub latency: Duration,
    /// The demo meant it to be rejected.
    pub meant_invalid: bool,
}

/// What the demo prints at the end.
#[derive(Debug)]
pub struct Summary {
    published: usize,
    by_status: BTreeMap<String, usize>,
    /// Sorted ascending.
    latencies: Vec<Duration>,
    meant_invalid: usize,
    rejected_as_meant: usize,
    unexpected: usize,
    missing: Vec<Uuid>,
}

/// A latency as the summaries print it: whole milliseconds, or `-` when there is none.
pub fn millis(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{} ms", d.as_millis()))
}

/// The nearest-rank `p`th percentile (0 < p <= 100) of ascending `sorted` values.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Summary {
    /// Summarises `published` requests (`meant_invalid` of them broken on purpose), of which
    /// `completed` got their event and `missing` did not.
    pub fn new(
        published: usize,
        meant_invalid: usize,
        completed: &[Completed],
        missing: Vec<Uuid>,
    ) -> Self {
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        for c in completed {
            *by_status.entry(c.status.clone()).or_default() += 1;
        }
        let mut latencies: Vec<Duration> = completed.iter().map(|c| c.latency).collect();
        latencies.sort_unstable();
        let rejected = |c: &&Completed| c.status == "rejected";
        Self {
            published,
            by_status,
            latencies,
            meant_invalid,
            rejected_as_meant: completed
                .iter()
                .filter(|c| c.meant_invalid)
                .filter(rejected)
                .count(),
            unexpected: completed
                .iter()
                .filter(|c| !c.meant_invalid)
                .filter(rejected)
                .count(),
            missing,
        }
    }

    /// Whether every published request reached a terminal status.
    pub fn all_terminal(&self) -> bool {
        self.missing.is_empty()
            && self
                .by_status
                .keys()
                .all(|status| TERMINAL.contains(&status.as_str()))
    }

    /// The summary table.
    pub fn render(&self) -> String {
        let completed: usize = self.by_status.values().sum();
        let mut out = String::new();
        let _ = writeln!(out, "published            {:>6}", self.published);
        let _ = writeln!(out, "completed            {:>6}", completed);
        // The contract's statuses first, in their usual order, then anything unexpected.
        let others = self
            .by_status
            .keys()
            .filter(|s| !TERMINAL.contains(&s.as_str()));
        for status in TERMINAL.iter().copied().chain(others.map(String::as_str)) {
            let n = self.by_status.get(status).copied().unwrap_or(0);
            let _ = writeln!(out, "  {status:<18} {n:>6}");
        }
        let _ = writeln!(
            out,
            "  (rejected on purpose: {} of {} invalid; valid sends rejected: {})",
            self.rejected_as_meant, self.meant_invalid, self.unexpected
        );
        let _ = writeln!(
            out,
            "latency p50          {:>9}",
            millis(percentile(&self.latencies, 50.0))
        );
        let _ = writeln!(
            out,
            "latency p99          {:>9}",
            millis(percentile(&self.latencies, 99.0))
        );
        let _ = writeln!(out, "not completed        {:>6}", self.missing.len());
        const SHOWN: usize = 20;
        for id in self.missing.iter().take(SHOWN) {
            let _ = writeln!(out, "  {id}");
        }
        if self.missing.len() > SHOWN {
            let _ = writeln!(out, "  ... and {} more", self.missing.len() - SHOWN);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&values, 50.0), Some(ms(50)));
        assert_eq!(percentile(&values, 99.0), Some(ms(99)));
        assert_eq!(percentile(&values, 100.0), Some(ms(100)));
        assert_eq!(percentile(&[ms(7)], 99.0), Some(ms(7)));
        assert_eq!(percentile(&[ms(1), ms(2), ms(3)], 50.0), Some(ms(2)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    fn done(status: &str, latency: u64, meant_invalid: bool) -> Completed {
        Completed {
            status: status.into(),
            latency: ms(latency),
            meant_invalid,
        }
    }

    #[test]
    fn the_summary_counts_statuses_and_missing_requests() {
        let completed = [
            done("sent", 30, false),
            done("sent", 10, false),
            done("rejected", 20, true),
            done("failed", 40, false),
        ];
        let s = Summary::new(5, 1, &completed, vec![Uuid::nil()]);
        assert!(!s.all_terminal());
        let text = s.render();
        assert!(text.contains("published                 5"), "{text}");
        assert!(text.contains("  sent                    2"), "{text}");
        assert!(text.contains("rejected on purpose: 1 of 1"), "{text}");
        assert!(text.contains("latency p50              20 ms"), "{text}");
        assert!(text.contains("latency p99              40 ms"), "{text}");
        assert!(text.contains(&Uuid::nil().to_string()), "{text}");

        assert!(Summary::new(4, 1, &completed, vec![]).all_terminal());
        let odd = [done("pending", 1, false)];
        assert!(!Summary::new(1, 0, &odd, vec![]).all_terminal());
    }
}
