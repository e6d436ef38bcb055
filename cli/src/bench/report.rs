//! The bench report: built once from the merged results, printed as a summary, written as JSON
//! (schema `wsp-bench-report/1`, documented in docs/BENCH.md and pinned by a test), and judged
//! by the CI gates (loss, thresholds, baseline).

use std::fmt::Write as _;

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::plan::Scenario;
use super::stats::Counts;
use super::timeline::{distribution, Bucket, Second};
use super::wire::Protocol;

/// The report's schema name; bumped only on incompatible change.
pub const SCHEMA: &str = "wsp-bench-report/1";

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Samples.
    pub count: u64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn from_us(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
            count: h.len(),
        }
    }
}

/// The target of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// URLs the clients were spread over.
    pub urls: Vec<String>,
    /// True when wsp bench started its own `wsp serve`.
    pub embedded: bool,
    /// Protocol spoken.
    pub protocol: Protocol,
}

/// The workload as configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Config {
    /// Receiving clients (subscribers).
    pub clients: usize,
    /// Publishers (extra connections that send).
    pub publishers: usize,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Payload bytes per message.
    pub payload: usize,
    /// What filled the payload (`filler` or `json`).
    #[serde(default)]
    pub payload_kind: super::wire::PayloadKind,
    /// Clients offered permessage-deflate (and the embedded server accepted it).
    #[serde(default)]
    pub compression: bool,
    /// Publishing time, warm-up included, seconds.
    pub duration_s: f64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Worker processes.
    pub workers: usize,
    /// Connections opened per second.
    pub ramp: f64,
}

/// Connection figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connections {
    /// Connections attempted.
    pub attempted: u64,
    /// Connections established.
    pub established: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Connections lost before the end of the run.
    pub dropped: u64,
    /// Handshakes completed per second during the ramp.
    pub per_sec: f64,
}

/// CPU use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    /// Load generator CPU, percent of one core, while publishing.
    pub generator_percent: f64,
    /// Cores on this machine.
    pub cores: usize,
    /// Server CPU, percent of one core (embedded server only).
    pub server_percent: Option<f64>,
    /// True when the generator used at least 90% of the cores it has: the result may describe
    /// the generator rather than the server.
    pub generator_saturated: bool,
}

/// A `wsp bench` report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// wsp version that produced it.
    pub wsp_version: String,
    /// Scenario.
    pub scenario: Scenario,
    /// Target.
    pub target: Target,
    /// Configuration.
    pub config: Config,
    /// Connections.
    pub connections: Connections,
    /// Handshake latency.
    pub connect_latency_ms: Percentiles,
    /// Messages sent (whole run, warm-up included).
    pub sent: u64,
    /// Deliveries expected (sent × recipients).
    pub expected: u64,
    /// Distinct deliveries (whole run).
    pub delivered: u64,
    /// expected − delivered.
    pub lost: u64,
    /// Deliveries received more than once.
    pub duplicated: u64,
    /// Deliveries that came after a later message of the same publisher.
    pub out_of_order: u64,
    /// Mean bytes on the wire per received message, frame headers included.
    #[serde(default)]
    pub wire_bytes_per_message: f64,
    /// Share of received messages that came compressed (0 to 1).
    #[serde(default)]
    pub compressed_share: f64,
    /// Deliveries of measured-window messages per second of the measured window.
    pub deliveries_per_sec: f64,
    /// Messages sent per second in the measured window.
    pub sent_per_sec: f64,
    /// One-way latency from the intended send time (round trip for `echo`), measured window.
    pub latency_ms: Percentiles,
    /// Publisher round trip to the server's ack, from the intended send time.
    pub rtt_ms: Option<Percentiles>,
    /// CPU use.
    pub cpu: Cpu,
    /// Distinct errors and how often they happened.
    pub errors: Vec<(String, u64)>,
    /// The gates that failed (empty when the run passed).
    pub failures: Vec<String>,
    /// True when no gate failed.
    pub passed: bool,
    /// `reconnect` scenario: the subscribers' reconnects and how they recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<Reconnects>,
    /// The command line of the run.
    #[serde(default)]
    pub command_line: String,
    /// The run second by second from the start of publishing (latency by intended send time,
    /// deliveries by receipt time, connections, CPU).
    #[serde(default)]
    pub timeline: Vec<Second>,
    /// Connections established over time from the first handshake.
    #[serde(default)]
    pub ramp: Vec<RampPoint>,
    /// Latency distribution of the measured window.
    #[serde(default)]
    pub latency_distribution: Vec<Bucket>,
    /// The run's histograms in HdrHistogram's V2 serialized form (base64), so that reports
    /// can be merged exactly (`wsp bench merge`).
    #[serde(default)]
    pub histograms: Histograms,
    /// Per second of the timeline, its latency histogram (base64 V2), for the same reason.
    #[serde(default)]
    pub timeline_latency: Vec<String>,
    /// `--shard I/N`: which part of a spread run this report is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// `wsp bench merge`: how many shard reports this one merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<usize>,
}

/// The run's histograms, serialized (base64 of HdrHistogram V2), microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Histograms {
    /// One-way latency, measured window.
    pub latency: String,
    /// Publisher round trip.
    pub rtt: String,
    /// Handshakes.
    pub connect: String,
}

/// A shard of a run spread over machines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    /// This shard, from 0.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
    /// Receiving clients of this shard that connected.
    pub receivers: u64,
    /// Global index of this shard's first publisher.
    pub first_publisher: usize,
    /// Its publishers.
    pub publishers: usize,
    /// What the other shards' publishers were seen to send (highest sequence + 1 each), in
    /// this shard's `expected`.
    pub foreign_sent: u64,
}

/// How the subscribers of a `reconnect` run came back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reconnects {
    /// Connections dropped and opened again.
    pub reconnects: u64,
    /// Rejoins whose missed messages all came back (`recovered: true`).
    pub recovered: u64,
    /// Rejoins that could not recover (a gap, an epoch change, or no history on the server).
    pub not_recovered: u64,
}

/// Connections established at a moment of the connect phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RampPoint {
    /// Seconds since the first handshake started.
    pub t: f64,
    /// Connections established.
    pub connected: u64,
}

/// Everything needed to build a report.
pub struct Inputs {
    /// Scenario.
    pub scenario: Scenario,
    /// Target.
    pub target: Target,
    /// Configuration.
    pub config: Config,
    /// Merged counters.
    pub counts: Counts,
    /// Merged histograms.
    pub latency: Histogram<u64>,
    /// Publisher round trip.
    pub rtt: Histogram<u64>,
    /// Handshakes.
    pub connect: Histogram<u64>,
    /// Longest connect phase of a worker, ms.
    pub connect_ms: u64,
    /// Generator CPU ms and wall ms while publishing.
    pub cpu_ms: u64,
    /// Wall ms of the publishing window.
    pub wall_ms: u64,
    /// Server CPU percent, when known.
    pub server_percent: Option<f64>,
    /// Errors.
    pub errors: Vec<(String, u64)>,
    /// Receiving clients established.
    pub receivers: u64,
    /// The command line.
    pub command_line: String,
    /// Per-second rows.
    pub timeline: Vec<Second>,
    /// Connections over the connect phase.
    pub ramp: Vec<RampPoint>,
    /// Messages other shards' publishers sent, as far as this shard saw (0 unsharded).
    pub foreign_sent: u64,
    /// Per-second latency histograms, serialized.
    pub timeline_latency: Vec<String>,
    /// The shard, when sharded.
    pub shard: Option<ShardInfo>,
}

impl Report {
    /// Builds the report (gates not yet applied).
    pub fn build(i: Inputs) -> Report {
        let c = &i.counts;
        let expected = match i.scenario {
            Scenario::Broadcast | Scenario::Reconnect => (c.sent + i.foreign_sent) * i.receivers,
            Scenario::Unicast | Scenario::Echo => c.sent,
            Scenario::Connect => 0,
        };
        let measured_s = (i.config.duration_s - i.config.warmup_s).max(1e-9);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let generator_percent = if i.wall_ms > 0 {
            i.cpu_ms as f64 * 100.0 / i.wall_ms as f64
        } else {
            0.0
        };
        let attempted = c.connected + c.connect_failed;
        Report {
            schema: SCHEMA.into(),
            wsp_version: crate::sys::VERSION.into(),
            scenario: i.scenario,
            target: i.target,
            connections: Connections {
                attempted,
                established: c.connected,
                failed: c.connect_failed,
                dropped: c.dropped,
                per_sec: if i.connect_ms > 0 {
                    c.connected as f64 * 1000.0 / i.connect_ms as f64
                } else {
                    0.0
                },
            },
            connect_latency_ms: Percentiles::from_us(&i.connect),
            sent: c.sent,
            expected,
            delivered: c.delivered,
            lost: expected.saturating_sub(c.delivered),
            duplicated: c.duplicated,
            out_of_order: c.out_of_order,
            wire_bytes_per_message: if c.received > 0 {
                (c.wire_bytes as f64 / c.received as f64 * 10.0).round() / 10.0
            } else {
                0.0
            },
            compressed_share: if c.received > 0 {
                (c.compressed as f64 / c.received as f64 * 1000.0).round() / 1000.0
            } else {
                0.0
            },
            deliveries_per_sec: c.delivered_measured as f64 / measured_s,
            sent_per_sec: c.sent_measured as f64 / measured_s,
            latency_ms: Percentiles::from_us(&i.latency),
            rtt_ms: (!i.rtt.is_empty()).then(|| Percentiles::from_us(&i.rtt)),
            cpu: Cpu {
                generator_percent: (generator_percent * 10.0).round() / 10.0,
                cores,
                server_percent: i.server_percent.map(|p| (p * 10.0).round() / 10.0),
                generator_saturated: generator_percent >= 90.0 * cores as f64,
            },
            errors: i.errors,
            config: i.config,
            failures: Vec::new(),
            passed: true,
            reconnects: (i.scenario == Scenario::Reconnect).then_some(Reconnects {
                reconnects: c.reconnects,
                recovered: c.recovered,
                not_recovered: c.not_recovered,
            }),
            command_line: i.command_line,
            timeline: i.timeline,
            ramp: i.ramp,
            latency_distribution: distribution(&i.latency),
            histograms: Histograms {
                latency: super::stats::encode(&i.latency),
                rtt: super::stats::encode(&i.rtt),
                connect: super::stats::encode(&i.connect),
            },
            timeline_latency: i.timeline_latency,
            shard: i.shard,
            merged_from: None,
        }
    }

    /// Records a failed gate.
    pub fn fail(&mut self, why: String) {
        self.failures.push(why);
        self.passed = false;
    }

    /// The value of a metric by name, for thresholds and baselines.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let l = &self.latency_ms;
        Some(match name {
            "p50" => l.p50,
            "p90" => l.p90,
            "p99" => l.p99,
            "p999" => l.p999,
            "max" => l.max,
            "mean" => l.mean,
            "deliveries_per_sec" => self.deliveries_per_sec,
            "sent_per_sec" => self.sent_per_sec,
            "lost" => self.lost as f64,
            "duplicated" => self.duplicated as f64,
            "out_of_order" => self.out_of_order as f64,
            "connect_p99" => self.connect_latency_ms.p99,
            "rtt_p99" => self.rtt_ms.as_ref()?.p99,
            "rtt_p50" => self.rtt_ms.as_ref()?.p50,
            _ => return None,
        })
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(
            s,
            "wsp bench {} · {} protocol · {}",
            self.scenario,
            self.target.protocol,
            self.target.urls.join(", ")
        )
        .map(|_| ());
        let c = &self.connections;
        let _ = writeln!(
            s,
            "  connections   {} established, {} failed, {} dropped · {:.0}/s · connect p50 {:.2} ms p99 {:.2} ms",
            c.established, c.failed, c.dropped, c.per_sec, self.connect_latency_ms.p50, self.connect_latency_ms.p99
        );
        if self.scenario != Scenario::Connect {
            let _ = writeln!(
                s,
                "  messages      {} sent · {} of {} delivered · lost {} · duplicated {} · out of order {}",
                self.sent, self.delivered, self.expected, self.lost, self.duplicated, self.out_of_order
            );
            if let Some(r) = &self.reconnects {
                let _ = writeln!(
                    s,
                    "  reconnects    {} · recovered {} · not recovered {}",
                    r.reconnects, r.recovered, r.not_recovered
                );
            }
            let _ = writeln!(
                s,
                "  throughput    {:.0} deliveries/s ({:.0} sent/s)",
                self.deliveries_per_sec, self.sent_per_sec
            );
            let _ = writeln!(
                s,
                "  wire          {:.0} bytes per message received ({} payload) · {:.0}% compressed",
                self.wire_bytes_per_message,
                self.config.payload,
                self.compressed_share * 100.0
            );
            let _ = writeln!(
                s,
                "  latency (ms)  p50 {:.3} · p90 {:.3} · p99 {:.3} · p99.9 {:.3} · max {:.3}  ({} samples)",
                l.p50, l.p90, l.p99, l.p999, l.max, l.count
            );
            if let Some(r) = &self.rtt_ms {
                let _ = writeln!(
                    s,
                    "  publisher rtt p50 {:.3} · p99 {:.3} · max {:.3} ms",
                    r.p50, r.p99, r.max
                );
            }
        }
        let cpu = &self.cpu;
        let server = cpu
            .server_percent
            .map(|p| format!(" · server {p:.0}%"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  cpu           generator {:.0}% of {} cores{server}",
            cpu.generator_percent, cpu.cores
        );
        if cpu.generator_saturated {
            let _ = writeln!(s, "  warning: the generator used all its CPU: these figures may describe wsp bench, not the server (use --workers, or fewer clients)");
        }
        for (e, n) in self.errors.iter().take(5) {
            let _ = writeln!(s, "  error ×{n}: {e}");
        }
        if self.passed {
            let _ = writeln!(s, "  result        PASS");
        } else {
            for f in &self.failures {
                let _ = writeln!(s, "  FAIL          {f}");
            }
        }
        s
    }
}

/// A threshold such as `p99<50ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    metric: String,
    op: String,
    value: f64,
    text: String,
}

impl Threshold {
    /// The metric it tests (a summary key such as `p99_ms`).
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// The threshold as the user wrote it (`p99_ms<50`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the measured value satisfies it.
    pub fn holds(&self, v: f64) -> bool {
        match self.op.as_str() {
            "<" => v < self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            _ => v >= self.value,
        }
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim().to_string();
        let pos = text
            .find(['<', '>'])
            .ok_or_else(|| format!("threshold {text:?} has no < or >: write e.g. `p99<50ms`"))?;
        let metric = text[..pos].trim().to_string();
        let rest = &text[pos..];
        let op = if rest.starts_with("<=") || rest.starts_with(">=") {
            &rest[..2]
        } else {
            &rest[..1]
        };
        let raw = rest[op.len()..].trim();
        let (num, scale) = if let Some(n) = raw.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = raw.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = raw.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (raw, 1.0)
        };
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("threshold {text:?}: {raw:?} is not a number"))?;
        let dummy = Report::metric_names();
        if !dummy.contains(&metric.as_str()) {
            return Err(format!(
                "threshold {text:?}: unknown metric {metric:?}; known: {}",
                dummy.join(", ")
            ));
        }
        Ok(Threshold {
            metric,
            op: op.into(),
            value: value * scale,
            text,
        })
    }
}

impl Report {
    /// The metric names thresholds and baselines accept.
    pub fn metric_names() -> &'static [&'static str] {
        &[
            "p50",
            "p90",
            "p99",
            "p999",
            "max",
            "mean",
            "deliveries_per_sec",
            "sent_per_sec",
            "lost",
            "duplicated",
            "out_of_order",
            "connect_p99",
            "rtt_p50",
            "rtt_p99",
        ]
    }

    /// When the server's own limits refused the bench: which setting did it, and what to do.
    pub fn limit_hint(&self) -> Option<String> {
        let (e, _) = self.errors.iter().find(|(e, _)| e.contains("rate limit"))?;
        let limit: Option<f64> = e
            .split("over ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        let per_publisher = self.config.rate / self.config.publishers.max(1) as f64;
        let spread = limit.map_or(String::new(), |l| {
            format!(
                ", or spread the rate over more publishers: -p {} keeps each under {l:.0}/s",
                (self.config.rate / (l * 0.8)).ceil().max(2.0)
            )
        });
        Some(format!(
            "the server's rate limit refused the bench ({e}; each publisher sent {per_publisher:.0}/s): raise the server's --max-messages-per-sec (0: no limit){spread}"
        ))
    }

    /// Compares with a baseline: latency p50/p99 may grow by at most `pct` percent (a factor of
    /// `1 + pct/100`), and deliveries/s may shrink by at most the same factor; latency
    /// differences under `floor_ms` are ignored (noise).
    pub fn compare(&mut self, base: &Report, pct: f64, floor_ms: f64) {
        for m in ["p50", "p99"] {
            let (now, was) = (self.metric(m).unwrap_or(0.0), base.metric(m).unwrap_or(0.0));
            if now - was > floor_ms && now > was * (1.0 + pct / 100.0) {
                self.fail(format!("{m} regressed: {now:.3} ms vs baseline {was:.3} ms (more than {pct}% and {floor_ms} ms)"));
            }
        }
        // The same factor both ways: 100% allows latency to double and throughput to halve.
        let (now, was) = (self.deliveries_per_sec, base.deliveries_per_sec);
        if now * (1.0 + pct / 100.0) < was {
            self.fail(format!(
                "deliveries_per_sec regressed: {now:.0} vs baseline {was:.0} (worse by more than {pct}%)"
            ));
        }
    }
}

/// Reads a report written by `--json`.
pub fn load(path: &std::path::Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading baseline {}", path.display()))?;
    let r: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a wsp bench report", path.display()))?;
    if r.schema != SCHEMA {
        bail!(
            "{} has schema {:?}; this wsp reads {SCHEMA:?}",
            path.display(),
            r.schema
        );
    }
    Ok(r)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small report, for tests of what is built from one.
    pub(crate) fn sample_report() -> Report {
        let mut latency = crate::bench::stats::histogram();
        for us in [900, 1000, 1100, 5000] {
            latency.record(us).unwrap();
        }
        Report::build(Inputs {
            scenario: Scenario::Broadcast,
            target: Target {
                urls: vec!["ws://127.0.0.1:1/ws".into()],
                embedded: false,
                protocol: Protocol::Wsp,
            },
            config: Config {
                clients: 2,
                publishers: 1,
                rate: 10.0,
                payload: 64,
                payload_kind: Default::default(),
                compression: false,
                duration_s: 3.0,
                warmup_s: 1.0,
                workers: 1,
                ramp: 100.0,
            },
            counts: Counts {
                sent: 5,
                delivered: 10,
                connected: 3,
                ..Counts::default()
            },
            latency,
            rtt: crate::bench::stats::histogram(),
            connect: crate::bench::stats::histogram(),
            connect_ms: 10,
            cpu_ms: 10,
            wall_ms: 1000,
            server_percent: None,
            errors: vec![],
            receivers: 2,
            command_line: "wsp bench".into(),
            timeline: vec![],
            ramp: vec![],
            foreign_sent: 0,
            timeline_latency: vec![],
            shard: None,
        })
    }

    #[test]
    fn thresholds_parse_units_and_reject_nonsense() {
        let t: Threshold = "p99<50ms".parse().unwrap();
        assert_eq!(
            (t.metric.as_str(), t.op.as_str(), t.value),
            ("p99", "<", 50.0)
        );
        let t: Threshold = "p50 <= 2s".parse().unwrap();
        assert_eq!((t.op.as_str(), t.value), ("<=", 2000.0));
        let t: Threshold = "deliveries_per_sec>1000".parse().unwrap();
        assert_eq!(t.value, 1000.0);
        assert!("p99=5".parse::<Threshold>().is_err());
        assert!("p42<5ms".parse::<Threshold>().is_err());
        assert!("p99<fast".parse::<Threshold>().is_err());
    }

    #[test]
    fn a_rate_limit_refusal_says_which_setting_and_what_to_do() {
        let mut r = sample_report();
        assert_eq!(r.limit_hint(), None);
        r.config.rate = 300.0;
        r.errors = vec![(
            "server closed a connection: 1008 rate limit: over 100 frames/s for a whole burst"
                .into(),
            1,
        )];
        let hint = r.limit_hint().unwrap();
        assert!(hint.contains("--max-messages-per-sec"), "{hint}");
        assert!(hint.contains("-p 4"), "{hint}");
    }
}
