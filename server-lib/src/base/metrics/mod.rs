//! Prometheus metrics (`GET /metrics`, OpenMetrics text from the `prometheus-client` crate).
//!
//! Counting must not cost the broadcast path, so the per-frame counters (frames and bytes in
//! and out, deliveries, drops) are sharded: each thread adds to its own cache line, never to
//! one shared by every core, and a scrape sums the shards. Everything else (handshakes, closes,
//! command durations, API calls, cluster traffic) happens once per connection or per command
//! and uses the crate's own counters and histograms. Gauges (connections, clients, channels,
//! refusals by cause) are read from the pool when scraped.
//!
//! Labels are bounded: a command label is a built-in name or `other`, a close code is a
//! number, a kind is one of five frame kinds. No label ever carries a client id, a uid or a
//! channel name.

#[cfg(feature = "metrics")]
mod prom;
#[cfg(feature = "metrics")]
pub use prom::Metrics;

#[cfg(not(feature = "metrics"))]
mod off;
#[cfg(not(feature = "metrics"))]
pub use off::Metrics;

use std::time::Duration;

/// The kinds of frames counted in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Text = 0,
    Binary = 1,
    Ping = 2,
    Pong = 3,
    Close = 4,
}

/// Where a command came from (the `source` label of the command histogram).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum Source {
    /// A client's frame.
    Ws,
    /// The server API.
    Api,
}

/// Point-in-time values for `Metrics::render`.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// The node's id.
    pub node: String,
    /// Open WebSocket connections.
    pub connections: usize,
    /// Registered clients here.
    pub clients: usize,
    /// Channels with members here.
    pub channels: usize,
    /// Clients in the cluster, in cluster mode.
    pub cluster_clients: Option<usize>,
    /// Since start.
    pub uptime: Duration,
    /// Refusals by cause.
    pub refused: Vec<(&'static str, u64)>,
    /// The channel history, when it is on.
    pub history: Option<HistoryGauges>,
}

/// Point-in-time values of the channel history.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryGauges {
    /// Bytes held.
    pub bytes: usize,
    /// Channels with a history.
    pub channels: usize,
    /// Histories dropped at a bound so far.
    pub evictions: usize,
}
