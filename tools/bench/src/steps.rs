//! Where a message's time goes inside the worker: the means of the worker's own step, handler and
//! vendor histograms, read from its `/metrics` after a measurement.

use std::collections::BTreeMap;

/// Mean milliseconds per step, in the order a delivery meets them, and the mean group size.
#[derive(Debug, Clone, Default)]
pub struct Steps {
    /// `(step, mean ms, count)`.
    pub means: Vec<(String, f64, f64)>,
    /// Operations per group commit, on average.
    pub group_size: f64,
}

/// Sums and counts of every histogram series in a Prometheus text, by `name{labels}`.
fn sums_and_counts(text: &str) -> BTreeMap<String, (f64, f64)> {
    let mut series: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = key.split_once('{').unwrap_or((key, ""));
        let labels = labels.trim_end_matches('}');
        if let Some(base) = name.strip_suffix("_sum") {
            series.entry(format!("{base}{{{labels}}}")).or_default().0 += value;
        } else if let Some(base) = name.strip_suffix("_count") {
            series.entry(format!("{base}{{{labels}}}")).or_default().1 += value;
        }
    }
    series
}

/// The steps of `queue` between two `/metrics` texts of the same worker: what happened in between.
pub fn read_between(before: &str, after: &str, queue: &str) -> Steps {
    let earlier = sums_and_counts(before);
    let mut series = sums_and_counts(after);
    for (key, (sum, count)) in &mut series {
        if let Some((s0, c0)) = earlier.get(key) {
            *sum -= s0;
            *count -= c0;
        }
    }
    steps_of(&series, queue)
}

fn steps_of(series: &BTreeMap<String, (f64, f64)>, queue: &str) -> Steps {
    let mean = |key: &str| -> Option<(f64, f64)> {
        let (sum, count) = series.get(key)?;
        (*count > 0.0).then(|| (1000.0 * sum / count, *count))
    };
    let mut means = Vec::new();
    let labelled =
        |step: &str| format!("pasarela_step_seconds{{queue=\"{queue}\",step=\"{step}\"}}");
    for (step, key) in [
        ("claim", labelled("claim")),
        (
            "handler",
            format!("pasarela_handler_seconds{{queue=\"{queue}\"}}"),
        ),
        ("commit", labelled("commit")),
        ("publish", labelled("publish")),
        ("ack", labelled("ack")),
        (
            "delivery to ack",
            format!("pasarela_message_seconds{{queue=\"{queue}\"}}"),
        ),
    ] {
        if let Some((ms, count)) = mean(&key) {
            means.push((step.to_string(), ms, count));
        }
    }
    // Vendor requests, all series together: inside the handler.
    let (sum, count) = series
        .iter()
        .filter(|(k, _)| k.starts_with("pasarela_vendor_request_seconds{"))
        .fold((0.0, 0.0), |(s, c), (_, (s2, c2))| (s + s2, c + c2));
    if count > 0.0 {
        means.push((
            "vendor request (in handler)".into(),
            1000.0 * sum / count,
            count,
        ));
    }
    let group_size = series
        .get("pasarela_group_commit_size{}")
        .map(|(s, c)| if *c > 0.0 { s / c } else { 0.0 })
        .unwrap_or(0.0);
    Steps { means, group_size }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_come_from_sums_and_counts() {
        let text = "# HELP x\n\
            pasarela_step_seconds_sum{queue=\"otp.send\",step=\"claim\"} 2\n\
            pasarela_step_seconds_count{queue=\"otp.send\",step=\"claim\"} 1000\n\
            pasarela_group_commit_size_sum 300\n\
            pasarela_group_commit_size_count 10\n";
        let steps = read_between("", text, "otp.send");
        assert_eq!(steps.means[0].0, "claim");
        assert!((steps.means[0].1 - 2.0).abs() < 1e-9);
        assert!((steps.group_size - 30.0).abs() < 1e-9);
    }
}
