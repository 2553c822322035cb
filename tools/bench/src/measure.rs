//! What one measurement yields (throughput and the latency distribution) and how it loads the system
//! (closed loop at the most messages in flight, or open loop at a fixed rate).

use std::time::Duration;

/// Percentiles kept of every measurement's latencies, for the tables and the latency chart.
const GRID: [f64; 19] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.0, 98.0, 99.0, 99.5, 99.7, 99.8, 99.9, 99.95,
    99.97, 99.98, 99.99, 100.0,
];

/// How a measurement loads the system.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Messages measured.
    pub count: usize,
    /// Most messages between publish and receipt; the queue never holds a backlog larger.
    pub in_flight: usize,
    /// Most publishes awaiting their confirm.
    pub window: usize,
    /// Publishes per second, evenly spaced (open loop); `None` publishes as fast as `in_flight`
    /// allows (closed loop: the peak).
    pub rate: Option<f64>,
}

impl Pace {
    /// The same load at `rate` messages a second, with room for every message in flight: the
    /// latency a user sees at that rate, not the queueing of a closed loop.
    pub fn at_rate(self, rate: f64) -> Self {
        Self {
            rate: Some(rate),
            in_flight: self.count.max(1),
            ..self
        }
    }
}

/// Throughput and latency of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// Messages measured.
    pub count: usize,
    /// Messages per second, first publish to last receipt.
    pub per_second: f64,
    /// Mean end-to-end latency.
    pub mean: Duration,
    /// Median end-to-end latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The slowest.
    pub max: Duration,
    /// `(percentile, latency)` over [`GRID`], for the latency chart.
    pub distribution: Vec<(f64, Duration)>,
}

impl Measurement {
    /// The figures of `latencies` (in any order) received over `elapsed`.
    pub fn of(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        let count = latencies.len();
        let total: Duration = latencies.iter().sum();
        Self {
            count,
            per_second: count as f64 / elapsed.as_secs_f64().max(1e-9),
            mean: total.checked_div(count as u32).unwrap_or_default(),
            max: latencies.last().copied().unwrap_or_default(),
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            p999: percentile(&latencies, 99.9),
            distribution: GRID
                .iter()
                .map(|p| (*p, percentile(&latencies, *p)))
                .collect(),
        }
    }

    /// The measurement as JSON, latencies in milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count, "per_second": self.per_second, "mean_ms": ms(self.mean),
            "p50_ms": ms(self.p50), "p99_ms": ms(self.p99), "p999_ms": ms(self.p999),
            "max_ms": ms(self.max),
            "distribution_ms": self.distribution.iter()
                .map(|(p, d)| serde_json::json!([p, ms(*d)])).collect::<Vec<_>>(),
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

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds `a` takes beyond `b` (negative when faster: the two are measured apart).
pub fn added_ms(a: Duration, b: Duration) -> f64 {
    ms(a) - ms(b)
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

    #[test]
    fn a_measurement_has_rate_percentiles_and_distribution() {
        let latencies: Vec<Duration> = (1..=1000).rev().map(Duration::from_millis).collect();
        let m = Measurement::of(latencies, Duration::from_secs(2));
        assert_eq!((m.count, m.per_second), (1000, 500.0));
        assert_eq!(m.mean, Duration::from_micros(500_500));
        assert_eq!(m.max, Duration::from_secs(1));
        assert_eq!(m.p50, Duration::from_millis(501));
        assert_eq!(m.p99, Duration::from_millis(990));
        assert_eq!(m.p999, Duration::from_millis(999));
        assert_eq!(m.distribution.len(), GRID.len());
        assert_eq!(
            m.distribution.last(),
            Some(&(100.0, Duration::from_secs(1)))
        );
    }

    #[test]
    fn an_open_loop_pace_holds_every_message_in_flight() {
        let closed = Pace {
            count: 500,
            in_flight: 10,
            window: 50,
            rate: None,
        };
        let open = closed.at_rate(100.0);
        assert_eq!(
            (open.in_flight, open.rate, open.window),
            (500, Some(100.0), 50)
        );
    }
}
