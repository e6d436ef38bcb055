//! `wsp bench compare A.json B.json`: two `--json` reports side by side, the change in every
//! figure, and exit code 1 when B regressed past `--max-regression` (the same rule as
//! `--baseline`: p50/p99 may not grow, nor deliveries/s shrink, by more than the percentage;
//! latency changes under `--regression-floor-ms` are noise; more loss or duplicates than A
//! always counts).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::report::{self, Report};

/// Flags of `wsp bench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference report (e.g. the main branch's).
    a: PathBuf,
    /// The report to judge against it.
    b: PathBuf,
    /// Fail when B's p50/p99 grow, or its deliveries/s shrink, by more than this percent.
    #[arg(long, default_value_t = 20.0)]
    max_regression: f64,
    /// Latency differences below this many ms are noise, never a regression.
    #[arg(long, default_value_t = 1.0)]
    regression_floor_ms: f64,
    /// Also write the comparison as Markdown (for a CI step summary, e.g.
    /// `$GITHUB_STEP_SUMMARY`).
    #[arg(long)]
    summary_md: Option<PathBuf>,
}

/// Which way is better for a figure.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
    Neither,
}

/// Runs `wsp bench compare`.
pub fn main(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let a = report::load(&args.a)?;
    let mut b = report::load(&args.b)?;
    let figures = figures(&a, &b, &args);
    print!("{}", table(&a, &b, &args, &figures));
    b.failures.clear();
    b.passed = true;
    b.compare(&a, args.max_regression, args.regression_floor_ms);
    for (name, was, now) in [
        ("lost", a.lost, b.lost),
        ("duplicated", a.duplicated, b.duplicated),
        ("out_of_order", a.out_of_order, b.out_of_order),
    ] {
        if now > was {
            b.fail(format!("{name} grew: {now} vs {was}"));
        }
    }
    let verdict = if b.passed {
        vec![format!(
            "no regression past {}% (latency floor {} ms)",
            args.max_regression, args.regression_floor_ms
        )]
    } else {
        b.failures
            .iter()
            .map(|f| format!("REGRESSION  {f}"))
            .collect()
    };
    for v in &verdict {
        println!("{v}");
    }
    if let Some(path) = &args.summary_md {
        use anyhow::Context as _;
        std::fs::write(path, markdown(&args, &figures, &verdict))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if b.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One compared figure, formatted.
struct Figure {
    name: &'static str,
    a: String,
    b: String,
    change: String,
    worse: bool,
}

/// The comparison as Markdown: one row per figure, then the verdict.
fn markdown(args: &CompareArgs, figures: &[Figure], verdict: &[String]) -> String {
    let mut s = format!(
        "### wsp bench compare\n\nA `{}` · B `{}`\n\n| figure | A | B | change |\n|---|---|---|---|\n",
        args.a.display(),
        args.b.display()
    );
    for f in figures {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} |",
            f.name,
            f.a,
            f.b,
            f.change,
            if f.worse { " ❌ worse" } else { "" }
        );
    }
    s.push('\n');
    for v in verdict {
        let _ = writeln!(s, "- {v}");
    }
    s
}

/// A figure: name, A's value, B's value, which way is better, unit.
type Row = (&'static str, Option<f64>, Option<f64>, Better, &'static str);

fn figures(a: &Report, b: &Report, args: &CompareArgs) -> Vec<Figure> {
    let mut rows: Vec<Row> = vec![
        (
            "deliveries/s",
            Some(a.deliveries_per_sec),
            Some(b.deliveries_per_sec),
            Better::Higher,
            "",
        ),
        (
            "sent/s",
            Some(a.sent_per_sec),
            Some(b.sent_per_sec),
            Better::Neither,
            "",
        ),
    ];
    for (name, m) in [
        ("p50", "p50"),
        ("p90", "p90"),
        ("p99", "p99"),
        ("p99.9", "p999"),
        ("max", "max"),
        ("mean", "mean"),
        ("connect p99", "connect_p99"),
        ("rtt p50", "rtt_p50"),
        ("rtt p99", "rtt_p99"),
    ] {
        rows.push((name, a.metric(m), b.metric(m), Better::Lower, " ms"));
    }
    for (name, x, y) in [
        ("lost", a.lost, b.lost),
        ("duplicated", a.duplicated, b.duplicated),
        ("out of order", a.out_of_order, b.out_of_order),
    ] {
        rows.push((name, Some(x as f64), Some(y as f64), Better::Lower, ""));
    }
    rows.push((
        "generator cpu",
        Some(a.cpu.generator_percent),
        Some(b.cpu.generator_percent),
        Better::Neither,
        " %",
    ));
    rows.push((
        "server cpu",
        a.cpu.server_percent,
        b.cpu.server_percent,
        Better::Lower,
        " %",
    ));
    rows.push((
        "wire bytes/msg",
        Some(a.wire_bytes_per_message),
        Some(b.wire_bytes_per_message),
        Better::Lower,
        "",
    ));
    rows.into_iter()
        .filter_map(|(name, x, y, better, unit)| {
            let (x, y) = (x?, y?);
            let change = if x == 0.0 && y == 0.0 {
                "=".to_string()
            } else if x == 0.0 {
                "new".to_string()
            } else {
                format!("{:+.1}%", (y - x) / x * 100.0)
            };
            let worse = match better {
                Better::Higher => y * (1.0 + args.max_regression / 100.0) < x,
                Better::Lower => {
                    y > x * (1.0 + args.max_regression / 100.0)
                        && (unit != " ms" || y - x > args.regression_floor_ms)
                        && y > x
                }
                Better::Neither => false,
            };
            let fmt = |v: f64| {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    format!("{v:.0}{unit}")
                } else {
                    format!("{v:.3}{unit}")
                }
            };
            Some(Figure {
                name,
                a: fmt(x),
                b: fmt(y),
                change,
                worse,
            })
        })
        .collect()
}

fn table(a: &Report, b: &Report, args: &CompareArgs, figures: &[Figure]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "A  {}  ({}, {} clients, {}/s)",
        args.a.display(),
        a.scenario,
        a.config.clients,
        a.config.rate
    );
    let _ = writeln!(
        s,
        "B  {}  ({}, {} clients, {}/s)",
        args.b.display(),
        b.scenario,
        b.config.clients,
        b.config.rate
    );
    if (a.scenario, a.config.clients, a.config.payload)
        != (b.scenario, b.config.clients, b.config.payload)
        || a.config.rate != b.config.rate
    {
        let _ = writeln!(
            s,
            "note: the two runs had different workloads; the change reflects that too"
        );
    }
    let _ = writeln!(
        s,
        "{:<16} {:>14} {:>14} {:>10}  ",
        "figure", "A", "B", "change"
    );
    for f in figures {
        let _ = writeln!(
            s,
            "{:<16} {:>14} {:>14} {:>10}{}",
            f.name,
            f.a,
            f.b,
            f.change,
            if f.worse { "  worse" } else { "" }
        );
    }
    s
}
