//! A small SVG scatter plot of acknowledgement latency over the run, with the
//! p50 and p99 of each second drawn as lines. Hand-written SVG: no plotting
//! dependency for one picture.

use std::fmt::Write as _;

const W: f64 = 900.0;
const H: f64 = 420.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 20.0;
const PAD_T: f64 = 36.0;
const PAD_B: f64 = 48.0;

pub(crate) fn latency_svg(points: impl Iterator<Item = (f64, f64)>) -> String {
    let points: Vec<(f64, f64)> = points.collect();
    let max_t = points.iter().map(|p| p.0).fold(0.0_f64, f64::max).max(1.0);
    let max_l = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1.0) * 1.05;
    let x = |t: f64| PAD_L + t / max_t * (W - PAD_L - PAD_R);
    let y = |l: f64| H - PAD_B - l / max_l * (H - PAD_T - PAD_B);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{PAD_L}" y="20" font-size="14">Hook acknowledgement latency over the run (each dot a delivery; lines: p50, p99 per second)</text>
<line x1="{PAD_L}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">seconds since start</text>
<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency (ms)</text>
"##,
        H - PAD_B,
        W - PAD_R,
        H - PAD_B,
        H - PAD_B,
        (PAD_L + W - PAD_R) / 2.0,
        H - 10.0,
        H / 2.0,
        H / 2.0
    );
    for k in 0..=4 {
        let l = max_l * f64::from(k) / 4.0;
        let t = max_t * f64::from(k) / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{l:.0}</text><text x="{}" y="{}" text-anchor="middle">{t:.1}</text>"##,
            PAD_L - 6.0,
            y(l) + 4.0,
            x(t),
            H - PAD_B + 16.0
        );
    }
    for (t, l) in &points {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.5" fill="#4477aa" fill-opacity="0.5"/>"##,
            x(*t),
            y(*l)
        );
    }
    // Per-second p50 / p99.
    let seconds = max_t.ceil() as usize;
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); seconds + 1];
    for (t, l) in &points {
        buckets[(*t as usize).min(seconds)].push(*l);
    }
    for (q, colour) in [(0.5, "#228833"), (0.99, "#cc3311")] {
        let mut path = String::new();
        for (s, b) in buckets.iter_mut().enumerate() {
            if b.is_empty() {
                continue;
            }
            b.sort_by(f64::total_cmp);
            let v = b[((q * (b.len() as f64 - 1.0)).round() as usize).min(b.len() - 1)];
            let _ = write!(
                path,
                "{}{:.1},{:.1} ",
                if path.is_empty() { "M" } else { "L" },
                x(s as f64 + 0.5),
                y(v)
            );
        }
        let _ = writeln!(
            svg,
            r##"<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>"##
        );
    }
    svg.push_str(r##"<text x="760" y="50" fill="#228833">p50</text><text x="800" y="50" fill="#cc3311">p99</text>
</svg>
"##);
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_is_well_formed_enough() {
        let svg = latency_svg([(0.1, 5.0), (0.5, 9.0), (1.2, 3.0)].into_iter());
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches("<path").count(), 2);
    }
}
