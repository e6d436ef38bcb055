//! What a worker shares while it runs ([`Live`], read by the progress display) and returns at
//! the end ([`WorkerResult`]).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::stats::Counts;

/// Live counters, updated by the threads every 100 ms, read by the progress display.
#[derive(Debug, Default)]
pub struct Live {
    /// Connections established.
    pub connected: AtomicU64,
    /// Connections that failed.
    pub failed: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Distinct deliveries.
    pub delivered: AtomicU64,
    /// Connections lost before the end.
    pub dropped: AtomicU64,
    /// Latency over the last second, median (µs).
    pub recent_p50_us: AtomicU64,
    /// Latency over the last second, 99th percentile (µs).
    pub recent_p99_us: AtomicU64,
}

impl Live {
    /// A snapshot as [`Counts`] (only the live fields are set).
    pub fn snapshot(&self) -> Counts {
        Counts {
            connected: self.connected.load(Ordering::Relaxed),
            connect_failed: self.failed.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            recent_p50_us: self.recent_p50_us.load(Ordering::Relaxed),
            recent_p99_us: self.recent_p99_us.load(Ordering::Relaxed),
            ..Counts::default()
        }
    }

    /// Stores a snapshot (for child-process workers).
    pub fn store(&self, c: &Counts) {
        self.connected.store(c.connected, Ordering::Relaxed);
        self.failed.store(c.connect_failed, Ordering::Relaxed);
        self.sent.store(c.sent, Ordering::Relaxed);
        self.delivered.store(c.delivered, Ordering::Relaxed);
        self.dropped.store(c.dropped, Ordering::Relaxed);
        self.recent_p50_us.store(c.recent_p50_us, Ordering::Relaxed);
        self.recent_p99_us.store(c.recent_p99_us, Ordering::Relaxed);
    }

    pub(super) fn add(&self, d: &Counts) {
        self.connected.fetch_add(d.connected, Ordering::Relaxed);
        self.failed.fetch_add(d.connect_failed, Ordering::Relaxed);
        self.sent.fetch_add(d.sent, Ordering::Relaxed);
        self.delivered.fetch_add(d.delivered, Ordering::Relaxed);
        self.dropped.fetch_add(d.dropped, Ordering::Relaxed);
    }
}

/// What a worker measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WorkerResult {
    /// Counters.
    pub counts: Counts,
    /// One-way latency (µs), measured window only; round trip in echo.
    pub latency: String,
    /// Publisher round trip to the ack (µs), measured window only.
    pub rtt: String,
    /// Handshake latency (µs).
    pub connect: String,
    /// Distinct errors seen, with how many times (at most 20 kinds).
    pub errors: Vec<(String, u64)>,
    /// CPU time this worker process used while publishing, ms.
    pub cpu_ms: u64,
    /// Wall time of the publishing window, ms.
    pub wall_ms: u64,
    /// When connecting took, ms (first attempt to last outcome).
    pub connect_ms: u64,
    /// Per-second latency and deliveries.
    #[serde(default)]
    pub timeline: super::timeline::Encoded,
    /// The highest sequence number + 1 seen of each publisher.
    #[serde(default)]
    pub seen: std::collections::BTreeMap<u32, u64>,
}
