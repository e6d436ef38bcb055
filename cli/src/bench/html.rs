//! `wsp bench --html FILE`: one self-contained HTML page per run, readable offline. The charts
//! are SVG drawn by `plotters` into the page (no script, no font file, no network); the tables
//! come from the same [`Report`] as the JSON.

use std::fmt::Write as _;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::report::Report;

// Drawn at this size and scaled to the page's width by CSS (the SVG has a viewBox).
const W: u32 = 1200;
const H: u32 = 340;

/// A named series of points.
struct Series {
    name: &'static str,
    color: RGBColor,
    /// Drawn dashed (a reference line: the maximum, what was expected), swatch too.
    dashed: bool,
    points: Vec<(f64, f64)>,
}

const BLUE_: RGBColor = RGBColor(31, 111, 235);
const GREEN_: RGBColor = RGBColor(46, 160, 67);
const ORANGE_: RGBColor = RGBColor(219, 109, 40);
const RED_: RGBColor = RGBColor(207, 34, 46);
const GREY_: RGBColor = RGBColor(130, 140, 150);

/// Draws `series` on the given axes; an empty string when there is nothing to draw.
fn chart<X, Y>(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x: X,
    y: Y,
    y_fmt: fn(&f64) -> String,
    series: &[Series],
) -> String
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    if series.iter().all(|s| s.points.is_empty()) {
        return String::new();
    }
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(64)
            .build_cartesian_2d(x, y)?;
        c.configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&y_fmt)
            .light_line_style(RGBColor(238, 240, 243))
            .draw()?;
        for s in series.iter().filter(|s| !s.points.is_empty()) {
            // The swatch is drawn with the line's own style: the same colour, the same dashes.
            let style = s.color.stroke_width(2);
            let anno = if s.dashed {
                c.draw_series(DashedLineSeries::new(s.points.clone(), 7, 5, style))?
            } else {
                c.draw_series(LineSeries::new(s.points.clone(), style))?
            };
            let gap = if s.dashed { (7, 12) } else { (9, 9) };
            anno.label(s.name).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (gap.0, 0)], style)
                    + PathElement::new(vec![(gap.1, 0), (20, 0)], style)
            });
        }
        if series.len() > 1 {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 205, 210))
                .draw()?;
        }
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => svg,
        Err(e) => format!(
            "<p class=\"dim\">chart “{}” could not be drawn: {}</p>",
            esc(title),
            esc(&e.to_string())
        ),
    }
}

fn x_range(series: &[Series]) -> std::ops::Range<f64> {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    0.0..max.max(1.0)
}

fn y_range(series: &[Series]) -> std::ops::Range<f64> {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    0.0..(max * 1.1).max(1.0)
}

/// Positive values for a log axis: the range spans them, with a floor above zero.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return 0.01..1.0;
    }
    (lo * 0.8).max(0.001)..hi * 1.25
}

fn latency_chart(r: &Report) -> String {
    let pick = |name, color, f: fn(&super::timeline::Second) -> Option<f64>| Series {
        name,
        color,
        dashed: name == "max",
        points: r
            .timeline
            .iter()
            .filter_map(|s| f(s).map(|v| (s.t as f64, v)))
            .collect(),
    };
    let series = [
        pick("p50", BLUE_, |s| s.p50_ms),
        pick("p90", GREEN_, |s| s.p90_ms),
        pick("p99", ORANGE_, |s| s.p99_ms),
        pick("max", GREY_, |s| s.max_ms),
    ];
    chart(
        "Latency over time (by intended send second)",
        "seconds since publishing started",
        "ms",
        x_range(&series),
        y_range(&series),
        ms,
        &series,
    )
}

fn distribution_chart(r: &Report) -> String {
    let total: u64 = r.latency_distribution.iter().map(|b| b.count).sum();
    if total == 0 {
        return String::new();
    }
    let series = [Series {
        name: "share of deliveries",
        color: BLUE_,
        dashed: false,
        points: r
            .latency_distribution
            .iter()
            .map(|b| (b.le_ms, b.count as f64 * 100.0 / total as f64))
            .collect(),
    }];
    let x = log_range(series[0].points.iter().map(|p| p.0));
    chart(
        "Latency distribution (measured window)",
        "latency, ms (log)",
        "% of deliveries",
        x.log_scale(),
        y_range(&series),
        whole,
        &series,
    )
}

fn rate_chart(r: &Report) -> String {
    let series = [
        Series {
            name: "deliveries/s",
            color: BLUE_,
            dashed: false,
            points: r
                .timeline
                .iter()
                .map(|s| (s.t as f64, s.delivered as f64))
                .collect(),
        },
        Series {
            name: "expected (sent × receivers)",
            color: GREY_,
            dashed: true,
            points: r
                .timeline
                .iter()
                .filter(|s| s.sent > 0)
                .map(|s| (s.t as f64, (s.sent * receivers(r)) as f64))
                .collect(),
        },
    ];
    chart(
        "Delivery rate over time",
        "seconds since publishing started",
        "per second",
        x_range(&series),
        y_range(&series),
        whole,
        &series,
    )
}

/// Receivers per message (broadcast: every subscriber; otherwise one).
fn receivers(r: &Report) -> u64 {
    r.expected.checked_div(r.sent).unwrap_or(0)
}

fn ramp_chart(r: &Report) -> String {
    let series = [Series {
        name: "connections",
        color: GREEN_,
        dashed: false,
        points: r.ramp.iter().map(|p| (p.t, p.connected as f64)).collect(),
    }];
    chart(
        "Connection ramp",
        "seconds since the first handshake",
        "connections established",
        x_range(&series),
        y_range(&series),
        whole,
        &series,
    )
}

fn cpu_chart(r: &Report) -> String {
    let series = [
        Series {
            name: "generator",
            color: ORANGE_,
            dashed: false,
            points: r
                .timeline
                .iter()
                .filter_map(|s| s.generator_cpu_percent.map(|v| (s.t as f64, v)))
                .collect(),
        },
        Series {
            name: "server",
            color: RED_,
            dashed: false,
            points: r
                .timeline
                .iter()
                .filter_map(|s| s.server_cpu_percent.map(|v| (s.t as f64, v)))
                .collect(),
        },
    ];
    chart(
        "CPU over time",
        "seconds since publishing started",
        "% of one core",
        x_range(&series),
        y_range(&series),
        whole,
        &series,
    )
}

fn whole(v: &f64) -> String {
    format!("{v:.0}")
}

fn ms(v: &f64) -> String {
    if *v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let l = &r.latency_ms;
    let c = &r.connections;
    let verdict = if r.passed {
        "<span class=\"pass\">PASS</span>".to_string()
    } else {
        format!(
            "<span class=\"fail\">FAIL</span> {}",
            r.failures
                .iter()
                .map(|f| esc(f))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let mut rows = String::new();
    let mut row = |k: &str, v: String| {
        let _ = write!(rows, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
    };
    row("result", verdict);
    row(
        "target",
        format!(
            "{} · {} protocol{}",
            esc(&r.target.urls.join(", ")),
            r.target.protocol,
            if r.target.embedded {
                " · embedded wsp serve"
            } else {
                ""
            }
        ),
    );
    row(
        "workload",
        format!(
            "{} · {} clients · {} publishers · {} msg/s · {} B {} · {:.0} s ({:.0} s warm-up){}",
            r.scenario,
            r.config.clients,
            r.config.publishers,
            r.config.rate,
            r.config.payload,
            r.config.payload_kind,
            r.config.duration_s,
            r.config.warmup_s,
            if r.config.compression {
                " · permessage-deflate"
            } else {
                ""
            }
        ),
    );
    row(
        "connections",
        format!(
            "{} established · {} failed · {} dropped · {:.0}/s · connect p50 {:.2} ms, p99 {:.2} ms",
            c.established, c.failed, c.dropped, c.per_sec, r.connect_latency_ms.p50, r.connect_latency_ms.p99
        ),
    );
    row(
        "messages",
        format!(
            "{} sent · {} of {} delivered · <b>lost {}</b> · <b>duplicated {}</b> · out of order {}",
            r.sent, r.delivered, r.expected, r.lost, r.duplicated, r.out_of_order
        ),
    );
    row(
        "throughput",
        format!(
            "{:.0} deliveries/s ({:.0} sent/s)",
            r.deliveries_per_sec, r.sent_per_sec
        ),
    );
    row(
        "latency",
        format!(
            "p50 {:.3} · p90 {:.3} · p99 {:.3} · p99.9 {:.3} · max {:.3} ms ({} samples)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.count
        ),
    );
    if let Some(rtt) = &r.rtt_ms {
        row(
            "publisher rtt",
            format!(
                "p50 {:.3} · p99 {:.3} · max {:.3} ms",
                rtt.p50, rtt.p99, rtt.max
            ),
        );
    }
    row(
        "cpu",
        format!(
            "generator {:.0}% of {} cores{}{}",
            r.cpu.generator_percent,
            r.cpu.cores,
            r.cpu
                .server_percent
                .map(|p| format!(" · server {p:.0}%"))
                .unwrap_or_default(),
            if r.cpu.generator_saturated {
                " · <span class=\"fail\">generator saturated</span>"
            } else {
                ""
            }
        ),
    );
    row(
        "wire",
        format!(
            "{:.0} bytes per message received · {:.0}% compressed",
            r.wire_bytes_per_message,
            r.compressed_share * 100.0
        ),
    );
    for (e, n) in r.errors.iter().take(10) {
        row("error", format!("×{n} {}", esc(e)));
    }
    let charts = [
        latency_chart(r),
        rate_chart(r),
        distribution_chart(r),
        ramp_chart(r),
        cpu_chart(r),
    ]
    .into_iter()
    .filter(|c| !c.is_empty())
    .map(|c| format!("<figure>{c}</figure>"))
    .collect::<String>();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>wsp bench · {scenario} · {clients} clients</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1560px; color: #1f2328; padding: 0 16px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }}
code {{ background: #f3f4f6; padding: 2px 6px; border-radius: 4px; word-break: break-all; }}
table {{ border-collapse: collapse; margin: 12px 0 18px; }}
th {{ text-align: left; color: #57606a; font-weight: 500; padding: 3px 16px 3px 0; vertical-align: top; white-space: nowrap; }}
td {{ padding: 3px 0; }}
.charts {{ display: flex; flex-direction: column; gap: 12px; }}
figure {{ margin: 0; border: 1px solid #d0d7de; border-radius: 6px; overflow: hidden; }}
figure svg {{ display: block; width: 100%; height: auto; }}
.pass {{ color: #1a7f37; font-weight: 700; }} .fail {{ color: #cf222e; font-weight: 700; }}
.dim {{ color: #57606a; }}
</style></head><body>
<h1>wsp bench report</h1>
<p class="dim">{version} · schema {schema}</p>
<p><code>{cmd}</code></p>
<table>{rows}</table>
<div class="charts">{charts}</div>
</body></html>
"#,
        scenario = r.scenario,
        clients = r.config.clients,
        version = esc(&r.wsp_version),
        schema = esc(&r.schema),
        cmd = esc(&r.command_line),
    )
}
