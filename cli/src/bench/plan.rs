//! What one worker (a process) runs: its share of clients and publishers, the schedule, the
//! target. Serialized to JSON for `--workers` child processes.

use serde::{Deserialize, Serialize};

use super::wire::{PayloadKind, Protocol};

/// The workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// C subscribers on one channel, P publishers at a fixed total rate.
    Broadcast,
    /// P publishers each sending to one client at a time (round robin over the C clients).
    Unicast,
    /// Every client sends to itself (through the pool) and measures the round trip.
    Echo,
    /// A connection storm: handshake rate and latency, no messages.
    Connect,
    /// Broadcast while every subscriber drops its connection about every
    /// `--reconnect-every` and rejoins with `since` (lossless reconnects, with
    /// `wsp serve --history-size`).
    Reconnect,
}

/// The name users type (`--scenario`'s value), as shown in summaries and reports.
impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

/// One worker's part of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Target URLs; client `i` uses `urls[i % len]`.
    pub urls: Vec<String>,
    /// Protocol.
    pub protocol: Protocol,
    /// Scenario.
    pub scenario: Scenario,
    /// Global index of this worker's first receiving client.
    pub first_client: usize,
    /// Receiving clients of this worker.
    pub clients: usize,
    /// Global index of this worker's first publisher.
    pub first_publisher: usize,
    /// Publishers of this worker.
    pub publishers: usize,
    /// Receiving clients in the whole run.
    pub total_clients: usize,
    /// Publishers in the whole run.
    pub total_publishers: usize,
    /// Messages per second of each sender (publisher, or client in echo).
    pub rate_per_sender: f64,
    /// Payload bytes per message.
    pub payload: usize,
    /// What fills the payload.
    #[serde(default)]
    pub payload_kind: PayloadKind,
    /// Offer permessage-deflate.
    #[serde(default)]
    pub compression: bool,
    /// Publishing time, warm-up included, ms.
    pub duration_ms: u64,
    /// Warm-up at the start of publishing, excluded from latency and rates, ms.
    pub warmup_ms: u64,
    /// Longest wait for in-flight messages after publishing stops, ms.
    pub drain_ms: u64,
    /// Connections per second this worker opens.
    pub ramp_per_sec: f64,
    /// OS threads (each a single-threaded runtime owning its clients).
    pub threads: usize,
    /// Prefix of client ids (unique per run).
    pub run_id: String,
    /// Channel used by broadcast.
    pub channel: String,
    /// Spread client source addresses over 127.0.0.0/8 (loopback targets only).
    pub spread_sources: bool,
    /// `reconnect`: each subscriber drops its connection about this often (ms).
    #[serde(default)]
    pub reconnect_every_ms: u64,
    /// A shard of a spread run: latency is sampled only from the messages of these publishers
    /// (first global index, how many), the ones on this machine's clock. `None`: all.
    #[serde(default)]
    pub latency_from: Option<(u32, u32)>,
}

impl Plan {
    /// The client id of global receiving client `i`.
    pub fn client_id(&self, i: usize) -> String {
        format!("{}-c{i}", self.run_id)
    }

    /// The client id of global publisher `p`.
    pub fn publisher_id(&self, p: usize) -> String {
        format!("{}-p{p}", self.run_id)
    }
}
