//! A circuit breaker per vendor: after enough retryable failures in a row, stop calling the vendor for
//! a cool-down and let callers fail over; after it, let one call through as a probe.
//!
//! It is per process on purpose: each replica learns a vendor's health from its own calls within a few
//! messages, and no shared state can itself become the thing that fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breakers for a set of vendors, keyed by name.
#[derive(Debug)]
pub struct CircuitBreakers {
    threshold: u32,
    cooldown: Duration,
    circuits: Mutex<HashMap<&'static str, Circuit>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Circuit {
    failures_in_row: u32,
    open_until: Option<Instant>,
}

/// Whether a vendor may be called now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call it.
    Call,
    /// Open: skip it for this long unless nothing else is left.
    Skip(Duration),
}

impl CircuitBreakers {
    /// Breakers that open after `threshold` failures in a row and stay open for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            circuits: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `vendor` may be called now. Once the cool-down has passed, one call goes through as a
    /// probe while the others keep skipping for another cool-down; a success closes the circuit, a
    /// failure keeps it open.
    pub fn admission(&self, vendor: &'static str) -> Admission {
        let mut circuits = self.circuits.lock().expect("breakers");
        let Some(c) = circuits.get_mut(vendor) else {
            return Admission::Call;
        };
        match c.open_until {
            None => Admission::Call,
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Admission::Skip(left),
                _ => {
                    c.open_until = Some(Instant::now() + self.cooldown);
                    Admission::Call
                }
            },
        }
    }

    /// Records a call that got an answer: the circuit closes.
    pub fn success(&self, vendor: &'static str) {
        let mut circuits = self.circuits.lock().expect("breakers");
        let c = circuits.entry(vendor).or_default();
        if c.open_until.is_some() {
            tracing::info!(vendor, "vendor answering again: circuit closed");
        }
        *c = Circuit::default();
        metrics::gauge!("pasarela_circuit_open", "vendor" => vendor).set(0.0);
    }

    /// Records a retryable failure; says whether the circuit is now open.
    pub fn failure(&self, vendor: &'static str) -> bool {
        let mut circuits = self.circuits.lock().expect("breakers");
        let c = circuits.entry(vendor).or_default();
        c.failures_in_row = c.failures_in_row.saturating_add(1);
        // Past the threshold (or failing its probe after a cool-down) the circuit opens again.
        if c.failures_in_row >= self.threshold {
            if c.open_until.is_none_or(|u| u <= Instant::now()) {
                tracing::warn!(
                    vendor,
                    failures = c.failures_in_row,
                    cooldown = ?self.cooldown,
                    "vendor failing: circuit open, failing over"
                );
                metrics::counter!("pasarela_circuit_opened_total", "vendor" => vendor).increment(1);
            }
            c.open_until = Some(Instant::now() + self.cooldown);
            metrics::gauge!("pasarela_circuit_open", "vendor" => vendor).set(1.0);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let b = CircuitBreakers::new(3, Duration::from_secs(60));
        assert_eq!(b.admission("v"), Admission::Call);
        assert!(!b.failure("v"));
        assert!(!b.failure("v"));
        assert!(b.failure("v"));
        assert!(matches!(b.admission("v"), Admission::Skip(_)));
        assert_eq!(b.admission("other"), Admission::Call);
        b.success("v");
        assert_eq!(b.admission("v"), Admission::Call);
        assert!(!b.failure("v"), "a success starts the count again");
    }

    #[test]
    fn after_the_cooldown_one_probe_goes_through_and_a_failure_reopens() {
        let b = CircuitBreakers::new(1, Duration::from_millis(20));
        assert!(b.failure("v"));
        assert!(matches!(b.admission("v"), Admission::Skip(_)));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(b.admission("v"), Admission::Call, "the probe");
        assert!(
            matches!(b.admission("v"), Admission::Skip(_)),
            "one probe at a time"
        );
        assert!(b.failure("v"));
        assert!(matches!(b.admission("v"), Admission::Skip(_)));
    }
}
