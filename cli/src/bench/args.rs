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
}
