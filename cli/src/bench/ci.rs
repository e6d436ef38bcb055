//! What CI systems read of a run: the gates as a list of checks (connections, loss,
//! duplicates, order, each `--threshold`), written as JUnit XML (`--junit`: one test case per
//! check, the measured value in its message) and as a Markdown summary (`--summary-md`, for a
//! CI step summary). `wsp bench`, `wsp bench merge` and `wsp bench compare` share them.

use std::fmt::Write as _;
use std::path::Path;

use super::plan::Scenario;
use super::report::{Report, Threshold};

/// One gate and how it went.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is checked, e.g. `lost` or `threshold p99<50ms`.
    pub name: String,
    /// It held.
    pub passed: bool,
    /// The measured value and what was expected.
    pub message: String,
}

/// The gates of a run: every connection made, nothing lost, duplicated or out of order
/// (unless `allow_loss`), and each threshold.
pub fn checks(r: &Report, thresholds: &[Threshold], allow_loss: bool) -> Vec<Check> {
    let mut out = vec![Check {
        name: "connections".into(),
        passed: r.connections.failed == 0,
        message: format!(
            "{} of {} connections established, {} failed",
            r.connections.established, r.connections.attempted, r.connections.failed
        ),
    }];
    if r.scenario != Scenario::Connect {
        let allowed = if allow_loss {
            " (allowed: --allow-loss)"
        } else {
            ""
        };
        for (name, n, what) in [
            ("lost", r.lost, "lost"),
            ("duplicated", r.duplicated, "duplicated"),
            ("out_of_order", r.out_of_order, "out of order"),
        ] {
            out.push(Check {
                name: name.into(),
                passed: allow_loss || n == 0,
                message: format!("{n} of {} deliveries {what}{allowed}", r.expected),
            });
        }
    }
    for t in thresholds {
        let (passed, message) = match r.metric(t.metric()) {
            None => (false, format!("{}: not measured in this run", t.metric())),
            Some(v) => (
                t.holds(v),
                format!("{} = {v} (must be {})", t.metric(), t.text()),
            ),
        };
        out.push(Check {
            name: format!("threshold {}", t.text()),
            passed,
            message,
        });
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// JUnit XML: one `<testsuite>` for the run, one `<testcase>` per check; a failed check has a
/// `<failure>` with the measured value; the summary is the suite's `<system-out>`.
pub fn junit(r: &Report, checks: &[Check]) -> String {
    let failures = checks.iter().filter(|c| !c.passed).count();
    let suite = format!("wsp bench {}", r.scenario);
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"wsp bench\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
        checks.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{:.3}\">",
        xml(&suite),
        checks.len(),
        r.config.duration_s
    );
    for c in checks {
        let _ = write!(
            s,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\">",
            xml(&suite),
            xml(&c.name)
        );
        if c.passed {
            let _ = writeln!(s, "<system-out>{}</system-out></testcase>", xml(&c.message));
        } else {
            let _ = writeln!(
                s,
                "<failure message=\"{}\" type=\"gate\">{}</failure></testcase>",
                xml(&c.message),
                xml(&c.message)
            );
        }
    }
    let _ = writeln!(s, "    <system-out>{}</system-out>", xml(&r.summary()));
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// The summary as Markdown: a table of the figures, then the checks.
pub fn markdown(r: &Report, checks: &[Check]) -> String {
    let mut s = String::new();
    let verdict = if checks.iter().all(|c| c.passed) && r.passed {
        "passed"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        s,
        "### wsp bench {} · {} protocol · {verdict}\n",
        r.scenario, r.target.protocol
    );
    let l = &r.latency_ms;
    s.push_str("| figure | value |\n|---|---|\n");
    let c = &r.connections;
    let _ = writeln!(
        s,
        "| connections | {} established, {} failed, {} dropped |",
        c.established, c.failed, c.dropped
    );
    if r.scenario != Scenario::Connect {
        let _ = writeln!(
            s,
            "| deliveries | {} of {} (lost {}, duplicated {}, out of order {}) |",
            r.delivered, r.expected, r.lost, r.duplicated, r.out_of_order
        );
        let _ = writeln!(s, "| deliveries/s | {:.0} |", r.deliveries_per_sec);
        let _ = writeln!(
            s,
            "| latency p50 / p90 / p99 / max | {:.2} / {:.2} / {:.2} / {:.2} ms |",
            l.p50, l.p90, l.p99, l.max
        );
    }
    if let Some(p) = r.cpu.server_percent {
        let _ = writeln!(s, "| server CPU | {p:.0}% of a core |");
    }
    if let Some(sh) = &r.shard {
        let _ = writeln!(s, "| shard | {} of {} |", sh.index, sh.count);
    }
    if let Some(n) = r.merged_from {
        let _ = writeln!(s, "| merged | {n} shard reports |");
    }
    if let Some(hint) = r.limit_hint() {
        let _ = writeln!(s, "\n> {hint}");
    }
    s.push_str("\n| check | result |\n|---|---|\n");
    for c in checks {
        let _ = writeln!(
            s,
            "| {} | {} {} |",
            c.name.replace('|', "\\|"),
            if c.passed { "✅" } else { "❌" },
            c.message.replace('|', "\\|")
        );
    }
    for f in r
        .failures
        .iter()
        .filter(|f| !checks.iter().any(|c| &c.message == *f))
    {
        let _ = writeln!(s, "| other | ❌ {} |", f.replace('|', "\\|"));
    }
    s
}

/// Where a run's report goes: `--json` (`-` for stdout), `--html`, `--junit`, `--summary-md`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outputs<'a> {
    /// The JSON report.
    pub json: Option<&'a Path>,
    /// The HTML page.
    pub html: Option<&'a Path>,
    /// JUnit XML of the checks.
    pub junit: Option<&'a Path>,
    /// The Markdown summary.
    pub summary_md: Option<&'a Path>,
}

impl Outputs<'_> {
    /// Writes every file asked for.
    pub fn write(&self, r: &Report, checks: &[Check]) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let put = |p: &Path, text: String| {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))
        };
        if let Some(p) = self.junit {
            put(p, junit(r, checks))?;
        }
        if let Some(p) = self.summary_md {
            put(p, markdown(r, checks))?;
        }
        if let Some(p) = self.json {
            let text = serde_json::to_string_pretty(r)? + "\n";
            if p.as_os_str() == "-" {
                print!("{text}");
            } else {
                put(p, text)?;
            }
        }
        if let Some(p) = self.html {
            put(p, super::html::render(r))?;
            eprintln!("  report        {}", p.display());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts_failures() {
        let r = super::super::report::tests::sample_report();
        let checks = vec![
            Check {
                name: "threshold p99<5ms".into(),
                passed: false,
                message: "p99 = 7 (must be p99<5ms) & more".into(),
            },
            Check {
                name: "lost".into(),
                passed: true,
                message: "0 of 10 deliveries lost".into(),
            },
        ];
        let x = junit(&r, &checks);
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("p99&lt;5ms"));
        assert!(x.contains("&amp; more"));
        let md = markdown(&r, &checks);
        assert!(md.contains("| threshold p99<5ms | ❌"), "{md}");
    }
}
