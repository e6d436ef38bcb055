//! Per-thread statistics: latency histograms and delivery accounting. Each bench thread owns
//! one `Stats`; they are merged once at the end (never a message per sample).

use anyhow::Context as _;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Histogram of durations in microseconds, 1 µs to 1 hour, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Records `us` microseconds, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    let _ = h.record(us.clamp(1, 3_600_000_000));
}

/// Encodes a histogram as base64 of its V2 serialization (for worker results).
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("serializing to a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Decodes [`encode`]'s output.
pub fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .context("histogram base64")?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("histogram decode: {e:?}"))?;
    Ok(h)
}

/// Which sequence numbers of one publisher a recipient has seen.
#[derive(Debug, Default)]
pub struct SeqTrack {
    bits: Vec<u64>,
    max: Option<u64>,
}

/// What a received sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time, after every earlier one.
    InOrder,
    /// First time, but a later one came before it.
    OutOfOrder,
    /// Seen before.
    Duplicate,
}

impl SeqTrack {
    /// Marks `seq` seen.
    pub fn see(&mut self, seq: u64) -> Seen {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            return Seen::Duplicate;
        }
        self.bits[word] |= 1 << bit;
        match self.max {
            Some(m) if seq < m => Seen::OutOfOrder,
            _ => {
                self.max = Some(seq);
                Seen::InOrder
            }
        }
    }
}

/// Counters of one thread, merged into a worker result, then into the report.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Messages sent.
    pub sent: u64,
    /// Messages sent inside the measured window (after warm-up).
    pub sent_measured: u64,
    /// Frames received that carried a bench message, duplicates included.
    pub received: u64,
    /// Distinct (publisher, seq) receipts.
    pub delivered: u64,
    /// Distinct receipts of messages sent inside the measured window.
    pub delivered_measured: u64,
    /// Receipts of a (publisher, seq) already received.
    pub duplicated: u64,
    /// Receipts that came after a later sequence number of the same publisher.
    pub out_of_order: u64,
    /// Acks (or echoes) received by senders.
    pub acks: u64,
    /// Connections established.
    pub connected: u64,
    /// Connections that failed to establish.
    pub connect_failed: u64,
    /// Connections the server closed or reset before the end.
    pub dropped: u64,
    /// Bytes on the wire (frame headers included) of the received frames that carried a bench
    /// message.
    #[serde(default)]
    pub wire_bytes: u64,
    /// Of those frames, how many came compressed.
    #[serde(default)]
    pub compressed: u64,
    /// Reconnects of `--scenario reconnect` subscribers.
    #[serde(default)]
    pub reconnects: u64,
    /// Of those, the rejoins that recovered every missed message.
    #[serde(default)]
    pub recovered: u64,
    /// Of those, the rejoins that could not (a gap, or no history).
    #[serde(default)]
    pub not_recovered: u64,
    /// Live view only: median latency over the last second (µs).
    #[serde(default)]
    pub recent_p50_us: u64,
    /// Live view only: 99th percentile latency over the last second (µs).
    #[serde(default)]
    pub recent_p99_us: u64,
}

impl Counts {
    /// Adds another thread's counts.
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.sent_measured += o.sent_measured;
        self.received += o.received;
        self.delivered += o.delivered;
        self.delivered_measured += o.delivered_measured;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        self.acks += o.acks;
        self.connected += o.connected;
        self.connect_failed += o.connect_failed;
        self.dropped += o.dropped;
        self.wire_bytes += o.wire_bytes;
        self.compressed += o.compressed;
        self.reconnects += o.reconnects;
        self.recovered += o.recovered;
        self.not_recovered += o.not_recovered;
        // Percentiles do not add up: show the worst thread's.
        self.recent_p50_us = self.recent_p50_us.max(o.recent_p50_us);
        self.recent_p99_us = self.recent_p99_us.max(o.recent_p99_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_track_tells_order_and_duplicates() {
        let mut t = SeqTrack::default();
        assert_eq!(t.see(0), Seen::InOrder);
        assert_eq!(t.see(2), Seen::InOrder);
        assert_eq!(t.see(1), Seen::OutOfOrder);
        assert_eq!(t.see(2), Seen::Duplicate);
        assert_eq!(t.see(200), Seen::InOrder);
    }

    #[test]
    fn histogram_round_trips() {
        let mut h = histogram();
        for v in [5, 50, 500, 5000] {
            record(&mut h, v);
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back.value_at_quantile(1.0), h.value_at_quantile(1.0));
    }
}
