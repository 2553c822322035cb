//! Every wait-and-try-again of the runtime, on `backon`'s exponential backoff with jitter, so that
//! replicas that lost the same broker or database do not all come back in the same instant.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays between attempts to reach the broker or the database: from 100–200 ms, doubling, to at most
/// 5 s, for as long as it takes.
pub fn reconnect() -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(2500))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Delays while a store call waits out a database outage: from 25–50 ms, doubling, to at most 2 s,
/// for at most `budget` in all.
pub fn outage(budget: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(25))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .without_max_times()
        .with_total_delay(Some(budget))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_to_a_cap_and_never_end() {
        let delays: Vec<Duration> = reconnect().take(50).collect();
        assert_eq!(delays.len(), 50);
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(200));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays[49] >= Duration::from_millis(2500));
    }

    #[test]
    fn an_outage_wait_ends_within_its_budget() {
        let budget = Duration::from_secs(30);
        let total: Duration = outage(budget).sum();
        assert!(total <= budget, "{total:?}");
        assert!(total >= budget - Duration::from_secs(2), "{total:?}");
    }
}
