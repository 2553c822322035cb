//! When and where a failed attempt is tried again: the retry tiers as data.
//!
//! A retryable failure is republished to one of the queue's tier queues (`<queue>.retry.<delay>`), whose
//! message TTL dead-letters it back to the work queue. Which tier, and how long the message waits in it,
//! is decided here and nowhere else.

use std::time::Duration;

use rand::Rng;

/// The retry tiers and the attempt budget of one work queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
    max_attempts: u32,
}

/// Where a retry goes: the tier queue and the message's own expiration inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryTier {
    /// The tier's delay, which is also its queue TTL and the suffix of its name.
    pub delay: Duration,
    /// The per-message expiration, at most `delay`: jitter spreads a burst of retries, and a shorter
    /// `Retry-After` shortens the wait.
    pub expiration: Duration,
}

impl RetryPolicy {
    /// The tiers when `PASARELA_RETRY_DELAYS` is unset: 1s, 5s, 30s, 2m, 10m, 1h.
    pub fn default_delays() -> Vec<Duration> {
        [1, 5, 30, 120, 600, 3600]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }

    /// A policy with these tiers (sorted, deduplicated) and at most `max_attempts` vendor attempts.
    pub fn new(mut delays: Vec<Duration>, max_attempts: u32) -> Self {
        delays.sort();
        delays.dedup();
        if delays.is_empty() {
            delays = Self::default_delays();
        }
        Self {
            delays,
            max_attempts: max_attempts.max(1),
        }
    }

    /// The tier delays, shortest first.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The most attempts a message gets before it is given up as exhausted.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether another attempt may follow attempt number `attempt` (1-based).
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The tier for the retry after attempt `attempt` failed: exponential by attempt, or the
    /// smallest tier that covers the vendor's `Retry-After`, with up to 20 % jitter taken off.
    pub fn tier_after(&self, attempt: u32, retry_after: Option<Duration>) -> RetryTier {
        let by_attempt = self.delays[(attempt.max(1) as usize - 1).min(self.delays.len() - 1)];
        let delay = match retry_after {
            Some(wanted) => {
                let covering = self
                    .delays
                    .iter()
                    .copied()
                    .find(|d| *d >= wanted)
                    .unwrap_or(*self.delays.last().expect("at least one tier"));
                by_attempt.max(covering)
            }
            None => by_attempt,
        };
        let jittered = {
            let factor = rand::rng().random_range(0.8..=1.0);
            delay.mul_f64(factor)
        };
        let expiration = match retry_after {
            // Never earlier than the vendor asked, never later than the tier holds it.
            Some(wanted) => wanted.max(jittered).min(delay),
            None => jittered,
        };
        RetryTier {
            delay,
            expiration: expiration.max(Duration::from_millis(1)),
        }
    }

    /// The shortest tier: where a message waits while another holder of it finishes.
    pub fn shortest(&self) -> Duration {
        self.delays[0]
    }
}

/// A duration, or a list of them, that cannot be read; says why without more than the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

impl DurationError {
    /// A duration that cannot be read, for the reason `why`.
    pub fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// Parses `1s,5s,30s,2m,10m,1h`.
pub fn parse_delays(raw: &str) -> Result<Vec<Duration>, DurationError> {
    let delays = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if delays.is_empty() {
        return Err(DurationError("no delays given".into()));
    }
    if delays.iter().any(Duration::is_zero) {
        return Err(DurationError(
            "a retry delay must be longer than zero".into(),
        ));
    }
    Ok(delays)
}

/// Parses a duration written as a whole number and a unit: `250ms`, `5s`, `2m`, `1h`, `30d`.
pub fn parse_duration(raw: &str) -> Result<Duration, DurationError> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| DurationError(format!("{raw:?} has no unit (ms, s, m, h or d)")))?;
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| DurationError(format!("{raw:?} does not start with a whole number")))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "d" => Ok(Duration::from_secs(n * 86_400)),
        _ => Err(DurationError(format!(
            "{raw:?} has an unknown unit (use ms, s, m, h or d)"
        ))),
    }
}

/// Writes a duration the way tier queue names carry it: `100ms`, `5s`, `2m`, `1h`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn durations_round_trip() {
        for raw in ["100ms", "1s", "5s", "30s", "2m", "10m", "1h"] {
            assert_eq!(format_duration(parse_duration(raw).unwrap()), raw);
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert!(parse_duration("5").is_err());
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(parse_duration("5w").is_err());
        assert!(parse_delays("1s,0s").is_err());
    }

    #[test]
    fn tiers_grow_with_attempts_and_stop_at_the_last() {
        let p = RetryPolicy::new(vec![secs(1), secs(5), secs(30)], 5);
        assert_eq!(p.tier_after(1, None).delay, secs(1));
        assert_eq!(p.tier_after(2, None).delay, secs(5));
        assert_eq!(p.tier_after(3, None).delay, secs(30));
        assert_eq!(p.tier_after(9, None).delay, secs(30));
        for attempt in 1..5 {
            let t = p.tier_after(attempt, None);
            assert!(t.expiration <= t.delay && t.expiration >= t.delay.mul_f64(0.8));
        }
    }

    #[test]
    fn retry_after_picks_the_covering_tier_and_is_honoured() {
        let p = RetryPolicy::new(vec![secs(1), secs(5), secs(30)], 5);
        let t = p.tier_after(1, Some(secs(4)));
        assert_eq!(t.delay, secs(5));
        assert!(t.expiration >= secs(4) && t.expiration <= secs(5));
        // Longer than every tier: the longest tier, whole.
        let t = p.tier_after(1, Some(secs(600)));
        assert_eq!(
            t,
            RetryTier {
                delay: secs(30),
                expiration: secs(30)
            }
        );
    }

    #[test]
    fn the_budget_counts_attempts() {
        let p = RetryPolicy::new(vec![secs(1)], 3);
        assert!(p.may_retry(1));
        assert!(p.may_retry(2));
        assert!(!p.may_retry(3));
    }
}
