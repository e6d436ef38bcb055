//! The flags of `wsp bench` (the report's `config` echoes them).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::plan::Scenario;
use super::report::Threshold;
use super::wire::{PayloadKind, Protocol};

/// Flags of `wsp bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server URL(s), `ws://host:port/ws`; comma-separated or repeated to spread clients over
    /// nodes. Without one, wsp bench starts its own `wsp serve` on loopback.
    #[arg(long, value_delimiter = ',')]
    pub(super) url: Vec<String>,
    /// Protocol: `wsp` (SendMsg) or `shootout` (the websocket-shootout JSON protocol of the
    /// Node `ws` and Go gorilla peers).
    #[arg(long, value_enum, default_value = "wsp")]
    pub(super) protocol: Protocol,
    /// Workload.
    #[arg(long, value_enum, default_value = "broadcast")]
    pub(super) scenario: Scenario,
    /// `--scenario reconnect`: each subscriber drops its connection about this often (at
    /// random between half and one and a half times it) and rejoins with `since`.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(super) reconnect_every: Duration,
    /// Receiving clients (subscribers).
    #[arg(short = 'c', long, default_value_t = 1000)]
    pub(super) clients: usize,
    /// Publishers (extra connections that send; broadcast and unicast).
    #[arg(short = 'p', long, default_value_t = 1)]
    pub(super) publishers: usize,
    /// Messages per second, all senders together (fixed schedule, open loop).
    #[arg(short = 'r', long, default_value_t = 100.0)]
    pub(super) rate: f64,
    /// Payload bytes per message (at least 21: the header).
    #[arg(short = 's', long, default_value_t = 64)]
    pub(super) payload: usize,
    /// What fills the payload after the header: `filler` (one repeated byte) or `json` (varied
    /// JSON records that compress like real traffic).
    #[arg(long, value_enum, default_value = "filler")]
    pub(super) payload_kind: PayloadKind,
    /// A JWT every client presents (`?token=`), for a server with `--auth-jwt-secret`/
    /// `--auth-jwt-public-key`; its `channels` must allow the bench channel (`bench`).
    #[arg(long, env = "WSP_BENCH_TOKEN", hide_env_values = true)]
    pub(super) token: Option<String>,
    /// Clients offer permessage-deflate; the embedded server is started with `--compression`.
    #[arg(long)]
    pub(super) compression: bool,
    /// With --url: the process id of a server on this machine, to report its CPU while
    /// publishing (as for the embedded server).
    #[arg(long)]
    pub(super) server_pid: Option<u32>,
    /// Extra `wsp serve` flags for the embedded server, e.g. `--serve-arg=--compression-min-size=0`
    /// (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub(super) serve_args: Vec<String>,
    /// Publishing time, warm-up included.
    #[arg(short = 'd', long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(super) duration: Duration,
    /// Stop after this many messages instead (sets the duration to messages / rate).
    #[arg(long)]
    pub(super) messages: Option<u64>,
    /// Warm-up excluded from latency and rates.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub(super) warmup: Duration,
    /// Longest wait for in-flight messages after publishing stops.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(super) drain: Duration,
    /// Connections opened per second (all workers together).
    #[arg(long, default_value_t = 2000.0)]
    pub(super) ramp: f64,
    /// Worker processes (each with its own fd limit and core); their histograms are merged.
    #[arg(long, default_value_t = 1)]
    pub(super) workers: usize,
    /// Threads per worker (default: one per core).
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// Write the JSON report (schema in docs/BENCH.md) to this file (`-` for stdout).
    #[arg(long)]
    pub(super) json: Option<PathBuf>,
    /// Write a self-contained HTML report (charts of latency, rates, connections and CPU over
    /// time; no network needed to open it) to this file.
    #[arg(long)]
    pub(super) html: Option<PathBuf>,
    /// Gate, e.g. `p99<50ms` or `deliveries_per_sec>10000`; repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(super) threshold: Vec<Threshold>,
    /// A previous `--json` report to compare with.
    #[arg(long)]
    pub(super) baseline: Option<PathBuf>,
    /// With --baseline: fail when p50/p99 grow or deliveries/s shrink by more than this percent.
    #[arg(long, default_value_t = 20.0)]
    pub(super) max_regression: f64,
    /// With --baseline: latency differences below this many ms are noise, never a regression.
    #[arg(long, default_value_t = 1.0)]
    pub(super) regression_floor_ms: f64,
    /// Do not fail the run on lost messages.
    #[arg(long)]
    pub(super) allow_loss: bool,
    /// Plain progress lines instead of the live terminal view.
    #[arg(long)]
    pub(super) no_tui: bool,
    /// Connect every client from 127.0.0.1 (by default sources spread over 127.0.0.0/8).
    #[arg(long)]
    pub(super) no_spread_sources: bool,
    /// Run shard I of N (0-based) of a bench spread over machines: this process opens its share
    /// of the subscribers (-c) and of the publishers (-p) and publishes its share of the rate
    /// (-r); -c, -p and -r are the whole run's. Every shard accounts for every publisher's
    /// messages; latency is taken from this shard's own publishers only (one clock). Merge the
    /// shards' --json reports with `wsp bench merge`. Needs --url (one pool for all shards).
    #[arg(long, env = "WSP_BENCH_SHARD")]
    pub(super) shard: Option<Shard>,
    /// Start publishing at this wall-clock time, seconds since the Unix epoch (every shard of a
    /// spread bench the same; connections open before it). Default: as soon as connected.
    #[arg(long, env = "WSP_BENCH_START_AT")]
    pub(super) start_at: Option<f64>,
    /// Write a JUnit XML file: one test case per threshold and per loss check, with the
    /// measured value in its message (for a CI's test report).
    #[arg(long)]
    pub(super) junit: Option<PathBuf>,
    /// Write the summary as a Markdown table (for a CI step summary, e.g.
    /// `$GITHUB_STEP_SUMMARY`).
    #[arg(long)]
    pub(super) summary_md: Option<PathBuf>,
}

/// `--shard I/N`: shard I (0-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "--shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/3 (I is 0-based, as Kubernetes' JOB_COMPLETION_INDEX)"
            )
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The part of `total` that share `index` of `count` takes: (first, how many), in contiguous
/// ranges, the first ones one bigger when it does not divide.
pub fn share(total: usize, index: usize, count: usize) -> (usize, usize) {
    let base = total / count;
    let extra = total % count;
    (
        index * base + index.min(extra),
        base + usize::from(index < extra),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_share_without_overlap() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let parts: Vec<_> = (0..3).map(|i| share(10, i, 3)).collect();
        assert_eq!(parts, vec![(0, 4), (4, 3), (7, 3)]);
    }
}
