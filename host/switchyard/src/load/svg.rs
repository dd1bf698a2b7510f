//! `--plot FILE.svg`: latency over time, one point a second for p50, p99
//! and max; a log scale for the y axis when the values span more than
//! 30×, linear otherwise. Hand-written SVG 1.1, no plotting crate.

use std::fmt::Write as _;

use super::report::Summary;
use super::stats::Point;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// A series drawn: name, colour, its value in a point.
type Series = (&'static str, &'static str, fn(&Point) -> f64);

/// The series drawn.
const SERIES: [Series; 3] = [
    ("p50", "#1f77b4", |p| p.p50),
    ("p99", "#ff7f0e", |p| p.p99),
    ("max", "#d62728", |p| p.max),
];

/// How values in ms map to the plot's height.
#[derive(Debug, Clone, Copy)]
enum Scale {
    Linear { max: f64 },
    Log { lo: f64, hi: f64 },
}

impl Scale {
    fn for_points(points: &[Point]) -> Scale {
        let values = points.iter().flat_map(|p| [p.p50, p.p99, p.max]);
        let positive = values.clone().filter(|v| *v > 0.0);
        let min = positive.fold(f64::INFINITY, f64::min);
        let max = values.fold(0.0, f64::max);
        if min.is_finite() && max / min > 30.0 {
            Scale::Log {
                lo: 10f64.powf(min.log10().floor()),
                hi: 10f64.powf(max.log10().ceil()),
            }
        } else {
            Scale::Linear {
                max: nice_ceiling(max.max(0.001)),
            }
        }
    }

    /// 0 at the bottom of the plot, 1 at the top.
    fn fraction(self, ms: f64) -> f64 {
        match self {
            Scale::Linear { max } => ms / max,
            Scale::Log { lo, hi } => (ms.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()),
        }
    }

    fn ticks(self) -> Vec<f64> {
        match self {
            Scale::Linear { max } => (0..=5).map(|i| max * f64::from(i) / 5.0).collect(),
            Scale::Log { lo, hi } => {
                let (a, b) = (lo.log10().round() as i32, hi.log10().round() as i32);
                (a..=b).map(|e| 10f64.powi(e)).collect()
            }
        }
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|c| *c >= v * 0.999_999)
        .unwrap_or(10.0 * decade)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn label(ms: f64) -> String {
    if ms >= 10.0 || ms == 0.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms}")
    }
}

/// The chart of `summary`'s per-second points, as SVG text.
pub(crate) fn chart(summary: &Summary) -> String {
    let points = &summary.points;
    let scale = Scale::for_points(points);
    let seconds = points.last().map_or(1, |p| p.second + 1).max(1) as f64;
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |s: f64| LEFT + s / seconds * w;
    let y = |ms: f64| TOP + h - scale.fraction(ms).clamp(0.0, 1.0) * h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>
<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        LEFT + w / 2.0,
        escape(&format!(
            "switchyard load: {} loop to {}, {:.0}/s, latency per second",
            summary.mode,
            summary.target,
            summary.throughput_per_s()
        ))
    );
    if summary.warmup_s > 0.0 {
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{h}" fill="#eeeeee"/><text x="{:.1}" y="{}" fill="#888888">warm-up</text>"##,
            (summary.warmup_s / seconds * w).min(w),
            LEFT + 4.0,
            TOP + 14.0
        );
    }
    axes(&mut svg, scale, seconds, &x, &y);
    for (name, colour, value) in SERIES {
        let line: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.second as f64 + 0.5), y(value(p))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline class="{name}" fill="none" stroke="{colour}" stroke-width="1.8" points="{}"/>"#,
            line.join(" ")
        );
    }
    legend(&mut svg);
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no responses measured</text>"#,
            LEFT + w / 2.0,
            TOP + h / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn axes(
    svg: &mut String,
    scale: Scale,
    seconds: f64,
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(f64) -> f64,
) {
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    let _ = writeln!(
        svg,
        r#"<g stroke="black" stroke-width="1"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/><line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/></g>"#
    );
    for t in scale.ticks() {
        let ty = y(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{right}" y2="{ty:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            ty + 4.0,
            label(t)
        );
    }
    let step = nice_ceiling((seconds / 10.0).max(1.0));
    let mut s = 0.0;
    while s <= seconds {
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" y1="{bottom}" x2="{0:.1}" y2="{1}" stroke="black"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"#,
            x(s),
            bottom + 5.0,
            bottom + 18.0,
            s
        );
        s += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the start</text>
<text x="20" y="{}" text-anchor="middle" transform="rotate(-90 20 {})">latency, ms ({} scale)</text>"#,
        LEFT + (right - LEFT) / 2.0,
        HEIGHT - 16.0,
        TOP + (bottom - TOP) / 2.0,
        TOP + (bottom - TOP) / 2.0,
        match scale {
            Scale::Linear { .. } => "linear",
            Scale::Log { .. } => "log",
        }
    );
}

fn legend(svg: &mut String) {
    let lx = WIDTH - RIGHT + 20.0;
    for (i, (name, colour, _)) in SERIES.iter().enumerate() {
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales() {
        assert_eq!(nice_ceiling(0.73), 1.0);
        assert_eq!(nice_ceiling(1.3), 2.0);
        assert_eq!(nice_ceiling(37.0), 50.0);
        let p = |p50, max| Point {
            second: 0,
            p50,
            p99: p50,
            max,
        };
        assert!(matches!(Scale::for_points(&[p(0.2, 1.0)]), Scale::Linear { max } if max == 1.0));
        let log = Scale::for_points(&[p(0.2, 250.0)]);
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9 * b;
        assert!(matches!(log, Scale::Log { lo, hi } if near(lo, 0.1) && near(hi, 1000.0)));
        let ticks = log.ticks();
        assert_eq!(ticks.len(), 5);
        assert!(near(ticks[0], 0.1) && near(ticks[4], 1000.0));
    }
}
