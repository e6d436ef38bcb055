//! `wsp bench merge A.json B.json …`: the reports of the shards of a spread run (`wsp bench
//! --shard I/N`, one per machine or pod) made into the one report of the whole run, exactly:
//! the histograms are kept serialized in every report and added, counts and the per-second
//! timeline are summed, and what was expected is recomputed from what every shard's
//! publishers sent and how many subscribers every shard had. The gates (loss, duplicates,
//! order, `--threshold`) then apply to the whole.
//!
//! Latency stays honest without synchronised clocks: each shard sampled only its own
//! publishers' messages, sent and received on its own clock; the merge adds those samples.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use hdrhistogram::Histogram;

use super::ci;
use super::plan::Scenario;
use super::report::{self, Percentiles, Report, Threshold};
use super::stats;
use super::timeline::{distribution, Second};

/// Flags of `wsp bench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' `--json` reports (all N of them).
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Write the merged report as JSON (`-` for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the merged HTML report.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Gate on the whole run, e.g. `p99<50ms`; repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    threshold: Vec<Threshold>,
    /// Do not fail on lost, duplicated or reordered deliveries.
    #[arg(long)]
    allow_loss: bool,
    /// Write a JUnit XML file of the gates.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write the summary as Markdown.
    #[arg(long)]
    summary_md: Option<PathBuf>,
}

/// Runs `wsp bench merge`.
pub fn main(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let reports = args
        .reports
        .iter()
        .map(|p| report::load(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut merged = merge(&reports)?;
    merged.command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let checks = ci::checks(&merged, &args.threshold, args.allow_loss);
    for c in &checks {
        if !c.passed {
            merged.fail(c.message.clone());
        }
    }
    eprint!("{}", merged.summary());
    ci::Outputs {
        json: args.json.as_deref(),
        html: args.html.as_deref(),
        junit: args.junit.as_deref(),
        summary_md: args.summary_md.as_deref(),
    }
    .write(&merged, &checks)?;
    Ok(if merged.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn add(into: &mut Histogram<u64>, encoded: &str, what: &str) -> anyhow::Result<()> {
    if encoded.is_empty() {
        return Ok(());
    }
    let h = stats::decode(encoded).with_context(|| format!("a shard's {what} histogram"))?;
    into.add(h)
        .map_err(|e| anyhow::anyhow!("adding a shard's {what} histogram: {e:?}"))
}

/// The report of the whole run from its shards' reports.
pub fn merge(shards: &[Report]) -> anyhow::Result<Report> {
    let Some(first) = shards.first() else {
        bail!("no report to merge");
    };
    let count = first
        .shard
        .as_ref()
        .map(|s| s.count)
        .context("the first report is not a shard's (run each part with --shard I/N)")?;
    let mut seen = vec![false; count];
    for r in shards {
        let Some(s) = &r.shard else {
            bail!("a report is not a shard's (run each part with --shard I/N)");
        };
        if s.count != count
            || r.scenario != first.scenario
            || r.target.protocol != first.target.protocol
        {
            bail!("these reports are not the shards of one run: shard counts, scenarios or protocols differ");
        }
        if std::mem::replace(&mut seen[s.index], true) {
            bail!("shard {} of {count} is given twice", s.index);
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        bail!("shard {missing} of {count} is missing: merge every shard's report");
    }

    let mut m = first.clone();
    m.errors.clear();
    m.target.urls.clear();
    let (mut latency, mut rtt, mut connect) =
        (stats::histogram(), stats::histogram(), stats::histogram());
    let mut timeline: Vec<Histogram<u64>> = Vec::new();
    let mut rows: Vec<Second> = Vec::new();
    let sum = |f: fn(&Report) -> u64| shards.iter().map(f).sum::<u64>();
    let sumf = |f: fn(&Report) -> f64| shards.iter().map(f).sum::<f64>();
    for r in shards {
        add(&mut latency, &r.histograms.latency, "latency")?;
        add(&mut rtt, &r.histograms.rtt, "round-trip")?;
        add(&mut connect, &r.histograms.connect, "connect")?;
        for (i, h) in r.timeline_latency.iter().enumerate() {
            if timeline.len() <= i {
                timeline.resize_with(i + 1, stats::histogram);
            }
            add(&mut timeline[i], h, "timeline")?;
        }
        for row in &r.timeline {
            let i = row.t as usize;
            if rows.len() <= i {
                rows.resize_with(i + 1, Second::default);
            }
            let m = &mut rows[i];
            m.t = row.t;
            m.connected += row.connected;
            m.sent += row.sent;
            m.delivered += row.delivered;
            m.generator_cpu_percent = match (m.generator_cpu_percent, row.generator_cpu_percent) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            // Every shard measures the same server (when it can see it): keep the highest.
            m.server_cpu_percent = match (m.server_cpu_percent, row.server_cpu_percent) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        for (e, n) in &r.errors {
            match m.errors.iter_mut().find(|(k, _)| k == e) {
                Some((_, c)) => *c += n,
                None => m.errors.push((e.clone(), *n)),
            }
        }
        for u in &r.target.urls {
            if !m.target.urls.contains(u) {
                m.target.urls.push(u.clone());
            }
        }
    }
    for (row, h) in rows.iter_mut().zip(&timeline) {
        let ms = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        row.p50_ms = ms(0.5);
        row.p90_ms = ms(0.9);
        row.p99_ms = ms(0.99);
        row.max_ms = (!h.is_empty()).then(|| h.max() as f64 / 1000.0);
        row.samples = h.len();
    }

    m.sent = sum(|r| r.sent);
    let receivers: u64 = shards
        .iter()
        .map(|r| r.shard.as_ref().map_or(0, |s| s.receivers))
        .sum();
    m.expected = match m.scenario {
        // Every subscriber of every shard should get every shard's messages.
        Scenario::Broadcast | Scenario::Reconnect => m.sent * receivers,
        Scenario::Unicast | Scenario::Echo => sum(|r| r.expected),
        Scenario::Connect => 0,
    };
    m.delivered = sum(|r| r.delivered);
    m.lost = m.expected.saturating_sub(m.delivered);
    m.duplicated = sum(|r| r.duplicated);
    m.out_of_order = sum(|r| r.out_of_order);
    m.deliveries_per_sec = sumf(|r| r.deliveries_per_sec);
    m.sent_per_sec = sumf(|r| r.sent_per_sec);
    let received: f64 = sum(|r| r.delivered) as f64;
    if received > 0.0 {
        m.wire_bytes_per_message =
            sumf(|r| r.wire_bytes_per_message * r.delivered as f64) / received;
        m.compressed_share = sumf(|r| r.compressed_share * r.delivered as f64) / received;
    }
    m.connections.attempted = sum(|r| r.connections.attempted);
    m.connections.established = sum(|r| r.connections.established);
    m.connections.failed = sum(|r| r.connections.failed);
    m.connections.dropped = sum(|r| r.connections.dropped);
    m.connections.per_sec = sumf(|r| r.connections.per_sec);
    m.config.clients = shards.iter().map(|r| r.config.clients).sum();
    m.config.publishers = shards.iter().map(|r| r.config.publishers).sum();
    m.config.rate = sumf(|r| r.config.rate);
    m.cpu.generator_percent = sumf(|r| r.cpu.generator_percent);
    m.cpu.cores = shards.iter().map(|r| r.cpu.cores).sum();
    m.cpu.server_percent = shards
        .iter()
        .filter_map(|r| r.cpu.server_percent)
        .reduce(f64::max);
    m.cpu.generator_saturated = shards.iter().any(|r| r.cpu.generator_saturated);
    if let Some(rec) = m.reconnects.as_mut() {
        rec.reconnects = sum(|r| r.reconnects.as_ref().map_or(0, |x| x.reconnects));
        rec.recovered = sum(|r| r.reconnects.as_ref().map_or(0, |x| x.recovered));
        rec.not_recovered = sum(|r| r.reconnects.as_ref().map_or(0, |x| x.not_recovered));
    }
    m.latency_ms = Percentiles::from_us(&latency);
    m.rtt_ms = (!rtt.is_empty()).then(|| Percentiles::from_us(&rtt));
    m.connect_latency_ms = Percentiles::from_us(&connect);
    m.latency_distribution = distribution(&latency);
    m.histograms = report::Histograms {
        latency: stats::encode(&latency),
        rtt: stats::encode(&rtt),
        connect: stats::encode(&connect),
    };
    m.timeline_latency = timeline.iter().map(stats::encode).collect();
    m.timeline = rows;
    m.ramp = Vec::new();
    m.shard = None;
    m.merged_from = Some(shards.len());
    m.failures = Vec::new();
    m.passed = true;
    Ok(m)
}
