//! The bench's results as SVG charts: each kind's throughput beside its broker floor, and the latency
//! distributions at half the peak rate, pasarela's and the floor's.

use std::path::{Path, PathBuf};

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

use crate::kinds::KindReport;
use crate::measure::ms;
use crate::verify::VerifyReport;

/// Colours, one per series, in a palette that stays apart for the colour-blind (Okabe–Ito).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
];
const FLOOR: RGBColor = RGBColor(150, 150, 150);

/// Draws `throughput.svg` and `latency.svg` in `dir`; the paths written.
pub fn draw(
    dir: &Path,
    paced_share: f64,
    kinds: &[KindReport],
    verified: Option<&VerifyReport>,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let throughput = dir.join("throughput.svg");
    draw_throughput(&throughput, &bars(kinds, verified))
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", throughput.display()))?;
    let latency = dir.join("latency.svg");
    draw_latency(&latency, kinds, paced_share)
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", latency.display()))?;
    Ok(vec![throughput, latency])
}

/// `(label, pasarela msg/s, floor msg/s)` for each bar pair.
fn bars(kinds: &[KindReport], verified: Option<&VerifyReport>) -> Vec<(String, f64, Option<f64>)> {
    let mut bars: Vec<_> = kinds
        .iter()
        .map(|k| {
            (
                k.name.clone(),
                k.flow.peak.per_second,
                Some(k.floor.per_second),
            )
        })
        .collect();
    if let Some(v) = verified {
        let label = format!("otp.verify RPC, {} in flight", v.in_flight);
        bars.push((label, v.parallel.per_second, None));
    }
    bars
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// One line of the latency chart: its name, `(nines, ms)` points, and colour.
type Curve = (String, Vec<(f64, f64)>, RGBColor);

fn draw_throughput(path: &Path, bars: &[(String, f64, Option<f64>)]) -> Drawn {
    let root = SVGBackend::new(path, (960, 140 + 70 * bars.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let most = bars
        .iter()
        .flat_map(|(_, p, f)| [*p, f.unwrap_or(0.0)])
        .fold(10.0, f64::max);
    let rows = bars.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput: pasarela (colour) and the two-leg broker floor with the same message size (grey)",
            ("sans-serif", 16),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(10)
        .build_cartesian_2d((1.0..most * 2.0).log_scale(), 0.0..rows)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("messages per second (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, (label, pasarela, floor)) in bars.iter().enumerate() {
        let top = rows - i as f64;
        let colour = PALETTE[i % PALETTE.len()];
        if let Some(floor) = floor {
            chart.draw_series([Rectangle::new(
                [(1.0, top - 0.45), (*floor, top - 0.15)],
                FLOOR.filled(),
            )])?;
        }
        chart.draw_series([Rectangle::new(
            [(1.0, top - 0.8), (*pasarela, top - 0.5)],
            colour.filled(),
        )])?;
        let text = match floor {
            Some(f) => format!(
                "{label}: {pasarela:.0} msg/s, {:.2} of the floor's {f:.0}",
                pasarela / f
            ),
            None => format!("{label}: {pasarela:.0} msg/s"),
        };
        chart.draw_series([Text::new(
            text,
            (1.2, top - 0.05),
            ("sans-serif", 14).into_font(),
        )])?;
    }
    root.present()?;
    Ok(())
}

/// Where a percentile sits on the chart's x axis: the number of nines, so 90 → 1, 99 → 2, 99.9 → 3.
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-4).log10()
}

/// The percentile at `nines` on the x axis, as people write it: 0, 90, 99, 99.9, 99.99.
fn percentile_label(nines: f64) -> String {
    let p = format!("{:.4}", 100.0 * (1.0 - 10f64.powf(-nines)));
    p.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn draw_latency(path: &Path, kinds: &[KindReport], paced_share: f64) -> Drawn {
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let series: Vec<Curve> = kinds
        .iter()
        .enumerate()
        .flat_map(|(i, k)| {
            let colour = PALETTE[i % PALETTE.len()];
            let curve = |m: &crate::measure::Measurement| -> Vec<(f64, f64)> {
                m.distribution
                    .iter()
                    .filter(|(p, _)| *p < 100.0)
                    .map(|(p, d)| (nines(*p), ms(*d).max(0.01)))
                    .collect()
            };
            let own = k
                .flow
                .paced
                .as_ref()
                .map(|m| (k.name.clone(), curve(m), colour));
            let floor = k
                .floor_paced
                .as_ref()
                .map(|m| (format!("{}: floor", k.name), curve(m), FLOOR));
            [own, floor]
        })
        .flatten()
        .collect();
    let ys = || {
        series
            .iter()
            .flat_map(|(_, points, _)| points.iter().map(|(_, y)| *y))
    };
    let most = ys().fold(1.0, f64::max);
    let least = ys().fold(most, f64::min).max(0.05);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Latency at {:.0} % of each kind's peak rate, publish to result (floor dashed grey)",
                paced_share * 100.0
            ),
            ("sans-serif", 16),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.0, (least / 2.0..most * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .x_labels(5)
        .y_desc("milliseconds (log scale)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()?;
    for (name, points, colour) in series {
        let floor = colour == FLOOR;
        let style = if floor {
            colour.stroke_width(1)
        } else {
            colour.stroke_width(2)
        };
        let drawn = if floor {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(points, style))?
        };
        if !floor {
            drawn
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_sit_at_their_nines() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!((nines(0.0)).abs() < 1e-9);
        let labels: Vec<String> = (0..5).map(|n| percentile_label(n as f64)).collect();
        assert_eq!(labels, ["0", "90", "99", "99.9", "99.99"]);
    }
}
