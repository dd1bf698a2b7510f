//! A line chart as inline SVG, rendered on the server (the CSP allows no
//! inline style: the look is classes of `/static/style.css`, the geometry
//! presentation attributes).

use std::fmt::Write as _;

use super::layout::esc;

/// One line: its legend label, its CSS class, and its points (x in ms
/// since the epoch; `None`: no data there, the line breaks).
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// The CSS class of its stroke (`total-p50` …).
    pub class: &'static str,
    /// `(x, y)`, x ascending.
    pub points: Vec<(i64, Option<f64>)>,
}

const W: f64 = 960.0;
const H: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 44.0;

/// A step of 1, 2 or 5 × 10^k giving about `ticks` intervals up to `max`.
pub fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let f = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * mag
}

/// Minutes between labelled ticks for a span of `minutes`.
fn minute_step(minutes: i64) -> i64 {
    [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720]
        .into_iter()
        .find(|s| minutes / s <= 12)
        .unwrap_or(1440)
}

fn hhmm(ms: i64) -> String {
    let t = switchyard_iso8583::UtcTime::from_unix(ms.div_euclid(1000));
    format!("{:02}:{:02}", t.hour, t.minute)
}

/// The chart of `series` over `[from, to)` ms, y in ms, titled `title`.
pub fn line_chart(title: &str, from: i64, to: i64, series: &[Series]) -> String {
    let span = (to - from).max(1) as f64;
    let ymax_data = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .fold(0.0, f64::max);
    let step = nice_step(if ymax_data > 0.0 { ymax_data } else { 1.0 }, 5.0);
    let ymax = ((ymax_data / step).ceil().max(1.0)) * step;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |ms: i64| LEFT + (ms - from) as f64 / span * pw;
    let y = |v: f64| TOP + ph - v / ymax * ph;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{0}\">\
         <text class=\"title\" x=\"{LEFT}\" y=\"16\">{0}</text>",
        esc(title)
    );
    // The y axis: gridlines and labels in ms.
    let mut v = 0.0;
    while v <= ymax + step / 2.0 {
        let yy = y(v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            trim(v)
        );
        v += step;
    }
    // The x axis: a tick per minute, labels every few.
    let first = from.div_euclid(60_000) * 60_000
        + if from.rem_euclid(60_000) == 0 {
            0
        } else {
            60_000
        };
    let label_every = minute_step((to - from) / 60_000);
    let tick_every = if (to - from) / 60_000 <= 180 {
        1
    } else {
        label_every
    };
    let mut m = first;
    while m <= to {
        let minute = m / 60_000;
        if minute % tick_every == 0 {
            let xx = x(m);
            let _ = write!(
                out,
                "<line class=\"axis\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
                TOP + ph,
                TOP + ph + 4.0
            );
            if minute % label_every == 0 {
                let _ = write!(
                    out,
                    "<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    TOP + ph + 16.0,
                    hhmm(m)
                );
            }
        }
        m += 60_000;
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">minute (UTC)</text>",
        TOP + ph,
        W - RIGHT,
        TOP + ph,
        TOP + ph,
        LEFT + pw / 2.0,
        H - 6.0
    );
    for s in series {
        out.push_str(&polyline(s, &x, &y));
    }
    // The legend, top right.
    let mut lx = W - RIGHT - 150.0 * series.len() as f64;
    for s in series {
        let _ = write!(
            out,
            "<line class=\"series swatch {0}\" x1=\"{lx:.1}\" x2=\"{2:.1}\" y1=\"12\" y2=\"12\"/>\
             <text x=\"{3:.1}\" y=\"16\">{1}</text>",
            s.class,
            esc(&s.label),
            lx + 22.0,
            lx + 27.0
        );
        lx += 150.0;
    }
    out.push_str("</svg>");
    out
}

/// `s`'s segments as one path (`M` where data resumes) and a dot for
/// each point standing alone.
fn polyline(s: &Series, x: &impl Fn(i64) -> f64, y: &impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut dots = String::new();
    let mut open = false;
    for (i, (px, py)) in s.points.iter().enumerate() {
        match py {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if open { "L" } else { "M" },
                    x(*px),
                    y(*v)
                );
                let next_empty = s.points.get(i + 1).is_none_or(|p| p.1.is_none());
                if !open && next_empty {
                    let _ = write!(
                        dots,
                        "<circle class=\"dot {}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"/>",
                        s.class,
                        x(*px),
                        y(*v)
                    );
                }
                open = true;
            }
            None => open = false,
        }
    }
    let path = match d.is_empty() {
        true => String::new(),
        false => format!(
            "<path class=\"series {}\" d=\"{}\"/>",
            s.class,
            d.trim_end()
        ),
    };
    path + &dots
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_five() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.9, 5.0), 0.2);
        assert_eq!(nice_step(240.0, 5.0), 50.0);
        assert_eq!(minute_step(60), 5);
        assert_eq!(minute_step(10), 1);
    }

    #[test]
    fn a_chart_has_its_axes_legend_and_lines() {
        let s = |class: &'static str, off: f64| Series {
            label: class.to_string(),
            class,
            points: vec![
                (0, Some(1.0 + off)),
                (60_000, Some(3.0 + off)),
                (120_000, None),
                (180_000, Some(2.0)),
            ],
        };
        let svg = line_chart(
            "t",
            0,
            240_000,
            &[s("total-p50", 0.0), s("external-p99", 1.0)],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("ms</text>"), "{svg}");
        assert!(svg.contains(">00:01</text>"), "{svg}");
        assert!(svg.contains("class=\"series total-p50\""), "{svg}");
        assert!(svg.contains("<circle class=\"dot external-p99\""), "{svg}");
        assert!(svg.contains(">external-p99</text>"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
    }
}
