//! SVG plots of a run (or of a comparison): the latency percentile curve — latency
//! against percentile on a log axis of 1/(1-p), as HdrHistogram and OpenMessaging
//! Benchmark draw it, so the tail from 90 % to 99.999 % gets equal room — above the
//! throughput over time. Text is left to the SVG viewer (no fonts are needed here).

use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Points of a percentile curve.
pub const CURVE_POINTS: usize = 240;
/// The curve runs to 1 - 10^-CURVE_NINES (99.999 %), or to the last recorded value.
pub const CURVE_NINES: f64 = 5.0;
/// Size of the SVG, pixels.
const WIDTH_PX: u32 = 1000;
const HEIGHT_PX: u32 = 900;
/// Height of the upper (latency) chart, pixels.
const LATENCY_CHART_PX: u32 = 500;

/// The latency at log-spaced percentiles: `(quantile, µs)` pairs with quantile
/// `1 - 10^-(k·CURVE_NINES/CURVE_POINTS)`, ending where the histogram has no more
/// resolution (1/(1-q) beyond its count) — the last point is then its maximum.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let x_max = (h.len() as f64).min(10f64.powf(CURVE_NINES));
    let mut points = Vec::with_capacity(CURVE_POINTS + 1);
    for k in 0..=CURVE_POINTS {
        let x = 10f64.powf(CURVE_NINES * k as f64 / CURVE_POINTS as f64);
        if x > x_max {
            break;
        }
        let q = 1.0 - 1.0 / x;
        points.push((q, h.value_at_quantile(q)));
    }
    points.push((1.0 - 1.0 / x_max, h.max()));
    points
}

/// One latency curve of the plot.
#[derive(Clone, Debug)]
pub struct Curve {
    pub label: String,
    /// From [`percentile_curve`].
    pub points: Vec<(f64, u64)>,
}

/// One throughput line of the plot: `(seconds, MB/s)`.
#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// "99.9%" for the log axis position `x` = 1/(1-p).
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let mut s = format!("{p:.5}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s + "%"
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("draw the plot: {e}")
}

/// Writes the SVG: `curves` (latency percentile curves) above `lines` (throughput
/// over time). Either may be empty; its chart then says so.
pub fn write_svg(path: &Path, title: &str, curves: &[Curve], lines: &[Line]) -> anyhow::Result<()> {
    {
        let root = SVGBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (top, bottom) = root.split_vertically(LATENCY_CHART_PX);
        draw_latency(&top, title, curves)?;
        draw_throughput(&bottom, lines)?;
        root.present().map_err(plot_error)?;
    }
    // plotters reports I/O failures only through `present`; make sure it is there.
    std::fs::metadata(path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn draw_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    curves: &[Curve],
) -> anyhow::Result<()> {
    let points = curves.iter().flat_map(|c| c.points.iter());
    let x_max = points
        .clone()
        .map(|&(q, _)| 1.0 / (1.0 - q).max(1e-9))
        .fold(10.0f64, f64::max);
    let ms = |us: u64| (us.max(1) as f64) / 1000.0;
    let y_min = points
        .clone()
        .map(|&(_, us)| ms(us))
        .fold(f64::MAX, f64::min);
    let y_max = points.map(|&(_, us)| ms(us)).fold(0.0f64, f64::max);
    let (y_min, y_max) = if y_max > 0.0 {
        (y_min * 0.8, y_max * 1.25)
    } else {
        (0.001, 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{title}: latency by percentile"),
            ("sans-serif", 20),
        )
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0f64..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .light_line_style(BLACK.mix(0.04))
        .draw()
        .map_err(plot_error)?;
    for (i, c) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                c.points
                    .iter()
                    .map(|&(q, us)| (1.0 / (1.0 - q).max(1e-9), ms(us))),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(c.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

fn draw_throughput<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lines: &[Line],
) -> anyhow::Result<()> {
    let points = lines.iter().flat_map(|l| l.points.iter());
    let t_max = points.clone().map(|p| p.0).fold(1.0f64, f64::max);
    let y_max = points.map(|p| p.1).fold(0.0f64, f64::max).max(0.001) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption("throughput over time", ("sans-serif", 20))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0f64..t_max, 0.0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MB/s")
        .light_line_style(BLACK.mix(0.04))
        .draw()
        .map_err(plot_error)?;
    for (i, l) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(l.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    if !lines.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{latency_histogram, record_us};

    #[test]
    fn curve_points_are_hdrhistogram_quantiles() {
        let mut h = latency_histogram();
        for us in 1..=100_000u64 {
            record_us(&mut h, us);
        }
        let curve = percentile_curve(&h);
        assert_eq!(curve.first(), Some(&(0.0, h.value_at_quantile(0.0))));
        for &(q, v) in &curve[..curve.len() - 1] {
            assert_eq!(v, h.value_at_quantile(q), "q {q}");
        }
        let &(q_last, v_last) = curve.last().unwrap();
        assert!((q_last - 0.99999).abs() < 1e-9);
        assert_eq!(v_last, h.max());
        assert!(curve
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn curve_stops_at_the_histograms_resolution() {
        let mut h = latency_histogram();
        for us in 1..=100u64 {
            record_us(&mut h, us);
        }
        let curve = percentile_curve(&h);
        assert!(curve.iter().all(|&(q, _)| q <= 0.99 + 1e-9));
        assert_eq!(curve.last().unwrap().1, 100);
        assert!(percentile_curve(&latency_histogram()).is_empty());
    }

    #[test]
    fn labels_read_as_percentiles() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(100_000.0), "99.999%");
    }

    #[test]
    fn writes_an_svg_with_both_charts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        let mut h = latency_histogram();
        for us in [100, 200, 300, 5_000, 40_000] {
            record_us(&mut h, us);
        }
        let curves = [Curve {
            label: "publish".into(),
            points: percentile_curve(&h),
        }];
        let lines = [Line {
            label: "acked MB/s".into(),
            points: vec![(1.0, 10.0), (2.0, 12.5)],
        }];
        write_svg(&path, "test run", &curves, &lines).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for needle in [
            "latency by percentile",
            "throughput over time",
            "publish",
            "90%",
        ] {
            assert!(svg.contains(needle), "svg lacks {needle}");
        }
        // Empty inputs still make a valid file.
        write_svg(&path, "empty", &[], &[]).unwrap();
    }
}
