//! One bench thread's state: its counters and histograms, shared by its tasks through
//! `Rc<RefCell<…>>` (one thread: no lock), and the phase signal they all watch.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;

use super::live::Live;
use super::stats::{self, Counts, Seen, SeqTrack};
use super::timeline::Timeline;
use super::wire::Header;

/// Publisher indices past this are not tracked in `seen` (a header is not trusted to size a
/// table).
const MAX_PUBLISHERS: usize = 1 << 20;

/// Per-thread state, shared by the thread's tasks through `Rc<RefCell<…>>` (one thread: no lock).
pub(super) struct ThreadStats {
    pub(super) counts: Counts,
    pub(super) flushed: Counts,
    pub(super) latency: Histogram<u64>,
    pub(super) rtt: Histogram<u64>,
    pub(super) connect: Histogram<u64>,
    pub(super) errors: HashMap<String, u64>,
    /// When this thread last received a bench message (ns since the epoch, the clock the
    /// receipts are stamped with: no second clock read per message).
    pub(super) last_receipt_ns: u64,
    /// Latencies since the last live update (the live view's "last second").
    pub(super) recent: Histogram<u64>,
    pub(super) flushes: u64,
    pub(super) timeline: Timeline,
    /// Latency is sampled only from these publishers' messages (a shard's own), when set.
    pub(super) latency_from: Option<(u32, u32)>,
    /// The highest sequence number + 1 seen of each publisher, by publisher index (to know
    /// what other shards' publishers sent).
    pub(super) seen: Vec<u64>,
}

impl ThreadStats {
    pub(super) fn error(&mut self, e: String) {
        let n = self.errors.len();
        match self.errors.get_mut(&e) {
            Some(c) => *c += 1,
            None if n < 20 => {
                self.errors.insert(e, 1);
            }
            None => {}
        }
    }

    /// Accounts one received bench message: duplicate, out of order, or a new delivery (whose
    /// latency counts when it was sent in the measured window).
    pub(super) fn delivery(
        &mut self,
        track: &mut SeqTrack,
        h: Header,
        now_ns: u64,
        wire: (usize, bool),
    ) {
        self.last_receipt_ns = now_ns;
        let p = h.publisher as usize;
        if p >= self.seen.len() && p < MAX_PUBLISHERS {
            self.seen.resize(p + 1, 0);
        }
        if let Some(top) = self.seen.get_mut(p) {
            *top = (*top).max(h.seq + 1);
        }
        let sampled = match self.latency_from {
            None => true,
            Some((first, n)) => (first..first + n).contains(&h.publisher),
        };
        self.counts.received += 1;
        self.counts.wire_bytes += wire.0 as u64;
        self.counts.compressed += u64::from(wire.1);
        match track.see(h.seq) {
            Seen::Duplicate => self.counts.duplicated += 1,
            seen => {
                if seen == Seen::OutOfOrder {
                    self.counts.out_of_order += 1;
                }
                self.counts.delivered += 1;
                let us = now_ns.saturating_sub(h.intended_ns) / 1000;
                if !sampled {
                    // Another machine's publisher: its send time is on another clock.
                    self.timeline.count(now_ns);
                    if h.measured {
                        self.counts.delivered_measured += 1;
                    }
                    return;
                }
                stats::record(&mut self.recent, us);
                self.timeline.record(h.intended_ns, now_ns, us);
                if h.measured {
                    self.counts.delivered_measured += 1;
                    stats::record(&mut self.latency, us);
                }
            }
        }
    }

    pub(super) fn flush(&mut self, live: &Live) {
        let c = &self.counts;
        let f = &self.flushed;
        live.add(&Counts {
            connected: c.connected - f.connected,
            connect_failed: c.connect_failed - f.connect_failed,
            sent: c.sent - f.sent,
            delivered: c.delivered - f.delivered,
            dropped: c.dropped - f.dropped,
            ..Counts::default()
        });
        self.flushed = self.counts.clone();
        // Every second: this thread's recent percentiles for the live view.
        self.flushes += 1;
        if self.flushes % 10 == 0 && !self.recent.is_empty() {
            live.recent_p50_us
                .store(self.recent.value_at_quantile(0.5), Ordering::Relaxed);
            live.recent_p99_us
                .store(self.recent.value_at_quantile(0.99), Ordering::Relaxed);
            self.recent.reset();
        }
    }
}

pub(super) type Shared = Rc<RefCell<ThreadStats>>;
/// The phase signal every task watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    /// Publishing starts at this time (ns since the epoch).
    Go(u64),
    Stop,
}
