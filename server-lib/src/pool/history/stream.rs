//! One channel's stream: its epoch, newest offset and kept messages, with their byte count.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::transport::frame::Frame;
use crate::wire::publication::Since;

/// How the history is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Messages kept per channel.
    pub size: usize,
    /// Oldest message kept.
    pub ttl: Duration,
    /// Channels with a history at once.
    pub max_channels: usize,
    /// Bytes of messages kept over all channels.
    pub max_bytes: usize,
}

/// One kept message.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its offset in the stream.
    pub offset: u64,
    /// When it was published (milliseconds since the Unix epoch).
    pub time_ms: i64,
    /// The frame recipients got.
    pub frame: Frame,
    pub(super) at: Instant,
}

/// What an entry costs beyond its frame's bytes (the entry, its slot and the frame's header).
pub(super) const ENTRY_OVERHEAD: usize = 96;

impl Entry {
    /// An entry read from elsewhere (Redis), kept from now.
    pub fn new(offset: u64, time_ms: i64, frame: Frame) -> Self {
        Self {
            offset,
            time_ms,
            frame,
            at: Instant::now(),
        }
    }

    /// Bytes this entry holds, as counted against `max_bytes`.
    pub(super) fn cost(&self) -> usize {
        self.frame.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug)]
pub(super) struct Stream {
    pub(super) epoch: String,
    /// Offset of the newest message (0: none yet).
    pub(super) top: u64,
    pub(super) entries: VecDeque<Entry>,
    /// Bytes of `entries` (see [`Entry::cost`]).
    pub(super) bytes: usize,
    /// Dropped from the index (evicted): what is pushed now is delivered, not kept.
    pub(super) evicted: bool,
}

impl Stream {
    pub(super) fn new(epoch: String) -> Self {
        Self {
            epoch,
            top: 0,
            entries: VecDeque::new(),
            bytes: 0,
            evicted: false,
        }
    }

    pub(super) fn pop_front(&mut self, total: &AtomicUsize) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.cost();
            total.fetch_sub(e.cost(), Ordering::Relaxed);
        }
    }

    /// Drops what is over `size` or older than `ttl`.
    pub(super) fn expire(&mut self, limits: &Limits, total: &AtomicUsize) {
        while self.entries.len() > limits.size {
            self.pop_front(total);
        }
        while self
            .entries
            .front()
            .is_some_and(|e| e.at.elapsed() > limits.ttl)
        {
            self.pop_front(total);
        }
        if self.entries.is_empty() && self.entries.capacity() > 0 {
            self.entries = VecDeque::new();
        }
    }

    pub(super) fn insert(&mut self, at: usize, entry: Entry, total: &AtomicUsize) {
        if self.evicted {
            return;
        }
        self.bytes += entry.cost();
        total.fetch_add(entry.cost(), Ordering::Relaxed);
        self.entries.insert(at, entry);
    }

    pub(super) fn push(
        &mut self,
        offset: u64,
        time_ms: i64,
        frame: Frame,
        limits: &Limits,
        total: &AtomicUsize,
    ) {
        self.top = self.top.max(offset);
        let at = self.entries.len();
        self.insert(at, Entry::new(offset, time_ms, frame), total);
        self.expire(limits, total);
    }

    /// Replaces the stream with an empty one of `epoch` (a new epoch in Redis).
    pub(super) fn reset(&mut self, epoch: String, total: &AtomicUsize) {
        total.fetch_sub(self.bytes, Ordering::Relaxed);
        let evicted = self.evicted;
        *self = Stream::new(epoch);
        self.evicted = evicted;
    }

    /// What a client that saw `since` missed, if it can all be recovered.
    pub(super) fn missed(&self, since: &Since) -> Option<Vec<Frame>> {
        if since.epoch != self.epoch || since.offset > self.top {
            return None;
        }
        let mut next = since.offset + 1;
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| e.offset > since.offset) {
            if e.offset != next {
                return None; // a gap: older messages left the window
            }
            out.push(e.frame.clone());
            next += 1;
        }
        (next == self.top + 1).then_some(out)
    }
}
