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

/// Which sequence numbers of one publisher a recipient has seen: every number below `next`,
/// and a bitmap of the ones seen above it (those that came after a gap). In order, which is
/// nearly always, a receipt only bumps `next` and touches no heap memory (the bench reads
/// hundreds of thousands of frames a second; a cache miss per frame shows).
#[derive(Debug, Default)]
pub struct SeqTrack {
    next: u64,
    /// Bit `i` of word `w` is sequence number `base + 64 w + i`; empty while there is no gap.
    bits: std::collections::VecDeque<u64>,
    base: u64,
    max: Option<u64>,
}

/// The bitmap spans at most this many numbers past the first one not yet seen (2^26, 8 MiB):
/// a gap older than that is given up (a header is not trusted to size a table, and a run that
/// lost one early message must not grow the bitmap for ever).
const MAX_AHEAD: u64 = 1 << 26;

/// What a received sequence number was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time, after every earlier one.
    InOrder,
    /// First time, but a later one came before it.
    OutOfOrder,
    /// Seen before (or given up with a gap older than the bitmap's span, or `u64::MAX`, which
    /// no publisher reaches).
    Duplicate,
}

impl SeqTrack {
    /// Marks `seq` seen.
    pub fn see(&mut self, seq: u64) -> Seen {
        if seq < self.next || seq == u64::MAX {
            return Seen::Duplicate;
        }
        if seq - self.next >= MAX_AHEAD {
            // The oldest gap is given up: every number below `seq` counts as seen from here on
            // (its messages stay lost; a straggler from it is a duplicate).
            self.bits.clear();
            self.next = seq;
        }
        if seq == self.next && self.bits.is_empty() {
            // Everything below was seen and nothing above: the next one, in order.
            self.next += 1;
            self.max = Some(seq);
            return Seen::InOrder;
        }
        if self.bits.is_empty() {
            self.base = self.next & !63;
        }
        let (word, bit) = (((seq - self.base) / 64) as usize, (seq - self.base) % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            return Seen::Duplicate;
        }
        self.bits[word] |= 1 << bit;
        let seen = match self.max {
            Some(m) if seq < m => Seen::OutOfOrder,
            _ => {
                self.max = Some(seq);
                Seen::InOrder
            }
        };
        // Advance over what is now contiguous; drop the bitmap once no gap is left.
        while self.is_set(self.next) {
            self.next += 1;
        }
        if self.max.is_some_and(|m| self.next > m) {
            self.bits.clear();
        } else {
            while self.next - self.base >= 64 {
                self.bits.pop_front();
                self.base += 64;
            }
        }
        seen
    }

    fn is_set(&self, seq: u64) -> bool {
        let i = seq - self.base;
        self.bits
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// One recipient's [`SeqTrack`] per publisher: the first publisher's inline (a broadcast
/// subscriber usually hears one), the others in a map.
#[derive(Debug, Default)]
pub struct Tracks {
    first: Option<(u32, SeqTrack)>,
    rest: std::collections::HashMap<u32, SeqTrack>,
}

impl Tracks {
    /// The track of `publisher`'s messages, new if none yet.
    pub fn of(&mut self, publisher: u32) -> &mut SeqTrack {
        match &mut self.first {
            Some((p, _)) if *p != publisher => self.rest.entry(publisher).or_default(),
            first => {
                &mut first
                    .get_or_insert_with(|| (publisher, SeqTrack::default()))
                    .1
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
        assert_eq!(t.see(3), Seen::OutOfOrder);
        assert_eq!(t.see(3), Seen::Duplicate);
        assert_eq!(t.see(0), Seen::Duplicate);
        assert_eq!(t.see(u64::MAX), Seen::Duplicate);
        // A gap older than the bitmap's span is given up, not tracked for ever.
        let far = 200 + MAX_AHEAD;
        assert_eq!(t.see(far), Seen::InOrder);
        assert!(t.bits.is_empty());
        assert_eq!(t.see(far + 1), Seen::InOrder);
        assert_eq!(t.see(150), Seen::Duplicate);
    }

    #[test]
    fn seq_track_is_exact_through_gaps_and_reorders() {
        // A shuffled stream with drops and repeats, against a plain set.
        let mut t = SeqTrack::default();
        let mut seen = std::collections::HashSet::new();
        let mut max = None;
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let seq = (x >> 33) % 3_000;
            let want = if !seen.insert(seq) {
                Seen::Duplicate
            } else if max.is_some_and(|m| seq < m) {
                Seen::OutOfOrder
            } else {
                max = Some(seq);
                Seen::InOrder
            };
            assert_eq!(t.see(seq), want, "seq {seq}");
        }
        // In order after the gaps fill: the bitmap is gone.
        for seq in 0..3_000 {
            t.see(seq);
        }
        assert!(t.bits.is_empty());
        assert_eq!(t.see(3_000), Seen::InOrder);
        assert!(t.bits.is_empty());
    }

    #[test]
    fn tracks_keep_publishers_apart() {
        let mut t = Tracks::default();
        assert_eq!(t.of(4).see(0), Seen::InOrder);
        assert_eq!(t.of(9).see(0), Seen::InOrder);
        assert_eq!(t.of(4).see(0), Seen::Duplicate);
        assert_eq!(t.of(9).see(1), Seen::InOrder);
        assert_eq!(t.of(4).see(1), Seen::InOrder);
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
