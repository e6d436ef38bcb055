//! Channel history, kept on this node: the last `size` messages of each channel (no older than
//! `ttl`), each at an offset of the channel's stream, so a reconnecting client recovers what
//! it missed with no gap and no duplicate at the seam.
//!
//! On a single node this is the history itself: [`History::publish`] assigns the offsets. In
//! cluster mode the history lives in Redis, which assigns the offsets; this is then the
//! node's cache of the channels it follows, fed in Redis order by [`History::apply`] and topped
//! up from Redis by [`History::merge`] when a client recovers.
//!
//! The seam: a stream's lock is held while a message is appended *and* queued for the
//! channel's members, and while a joining client is added, answered and sent what it missed.
//! So every message is either in what the joiner recovers or delivered to it live, never both
//! and never neither, and the recovered ones come first (they are queued first).
//!
//! Bounds: `size` messages per stream, `ttl` for each message, `max_channels` streams, and
//! `max_bytes` of messages over all streams. At a bound the stream published to least recently
//! goes first (an LRU kept in a `BTreeMap`, so finding it is O(log n), never a scan); its next
//! message starts a new epoch, so its clients learn they cannot recover. A stream stays when its
//! channel's members leave: that is when a reconnecting client needs it. [`History::sweep`]
//! (run every second by the server) frees expired messages and the streams left empty, so the
//! memory of a burst comes back once its TTL has passed.
//!
//! Locks: the index (which streams exist, their LRU order and the byte total) is a std mutex
//! held for a map operation, never while a stream is locked by the same thread; each stream has
//! its own mutex, held for a push to the members' queues, never across an `.await`.

mod stream;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::transport::frame::Frame;
use crate::wire::publication::{Position, Publication, Since};
use stream::Stream;
pub use stream::{Entry, Limits};

/// The answer to a join: where the stream is, and whether the client's `since` was recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The stream's epoch.
    pub epoch: String,
    /// The newest offset (the client is now at it).
    pub offset: u64,
    /// With a `since`: every missed message follows (`true`), or they cannot all be
    /// recovered and none is sent (`false`: resync, e.g. with the `history` command).
    pub recovered: Option<bool>,
    /// Messages sent after the reply.
    pub missed: usize,
}

/// Messages read from Redis for one channel, to top up the cache before a recovery.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// The stream's epoch in Redis.
    pub epoch: String,
    /// Its newest offset.
    pub top: u64,
    /// Messages after the client's offset, oldest first.
    pub entries: Vec<(u64, i64, Frame)>,
}

type Shared = Arc<Mutex<Stream>>;

/// Which streams exist, and in which order they were last published to.
#[derive(Debug, Default)]
struct Index {
    /// Channel → (stream, its key in `lru`).
    streams: HashMap<Arc<str>, (Shared, u64)>,
    /// Least recently published first.
    lru: BTreeMap<u64, Arc<str>>,
    next: u64,
}

impl Index {
    /// Moves `channel` to the most recent end of the LRU.
    fn touch(&mut self, channel: &str) {
        let next = self.next;
        let Some(key) = self.streams.get_key_value(channel).map(|(k, _)| k.clone()) else {
            return;
        };
        if let Some((_, seq)) = self.streams.get_mut(channel) {
            self.lru.remove(seq);
            *seq = next;
            self.lru.insert(next, key);
            self.next += 1;
        }
    }

    /// Drops the least recently published stream; false when there is none.
    fn evict_oldest(&mut self, total: &AtomicUsize) -> bool {
        let Some((_, channel)) = self.lru.pop_first() else {
            return false;
        };
        if let Some((s, _)) = self.streams.remove(&channel) {
            let mut g = lock(&s);
            g.evicted = true;
            total.fetch_sub(g.bytes, Ordering::Relaxed);
            g.bytes = 0;
            g.entries = VecDeque::new();
        }
        true
    }
}

/// The channels' histories on this node.
#[derive(Debug)]
pub struct History {
    limits: Limits,
    index: Mutex<Index>,
    /// Bytes held by every stream (see [`Entry::cost`]).
    bytes: AtomicUsize,
    /// Streams dropped at a bound so far.
    evicted: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh epoch: random, so a restarted node never reuses one.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl History {
    /// An empty history.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            index: Mutex::new(Index::default()),
            bytes: AtomicUsize::new(0),
            evicted: AtomicUsize::new(0),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes of messages held now, over all channels.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Streams dropped so far because the history was at its channel or byte bound.
    pub fn evictions(&self) -> usize {
        self.evicted.load(Ordering::Relaxed)
    }

    /// The stream of `channel`, created (with `epoch`, or a new one) when missing, and made
    /// the most recent. O(log n) under the index lock.
    fn stream(&self, channel: &str, epoch: Option<&str>) -> Shared {
        let mut index = lock(&self.index);
        if index.streams.contains_key(channel) {
            index.touch(channel);
            return index.streams[channel].0.clone();
        }
        while index.streams.len() >= self.limits.max_channels {
            if !index.evict_oldest(&self.bytes) {
                break;
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        let s = Arc::new(Mutex::new(Stream::new(
            epoch.map_or_else(new_epoch, str::to_string),
        )));
        let key: Arc<str> = channel.into();
        let seq = index.next;
        index.next += 1;
        index.lru.insert(seq, key.clone());
        index.streams.insert(key, (s.clone(), seq));
        s
    }

    fn existing(&self, channel: &str) -> Option<Shared> {
        lock(&self.index)
            .streams
            .get(channel)
            .map(|(s, _)| s.clone())
    }

    /// Drops least recently published streams until the bytes are within the budget. Called
    /// with no stream locked.
    fn shrink(&self) {
        if self.bytes() <= self.limits.max_bytes {
            return;
        }
        let mut index = lock(&self.index);
        // Keep the most recent stream: one message always fits (the budget is at least one
        // message), and the one just published must not be the one that pays.
        while self.bytes() > self.limits.max_bytes && index.streams.len() > 1 {
            if !index.evict_oldest(&self.bytes) {
                break;
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Single node: gives the message the next offset in each of `channels` (listed once
    /// each), builds its frame with those positions, keeps it, and hands it to `deliver` while
    /// the streams are locked, so no join can slip between keeping and delivering.
    pub fn publish<R>(
        &self,
        channels: &[String],
        p: &Publication,
        deliver: impl FnOnce(Frame) -> R,
    ) -> (Vec<Position>, R) {
        // Lock in name order, so two sends to overlapping channels cannot deadlock.
        let mut order: Vec<&String> = channels.iter().collect();
        order.sort();
        order.dedup();
        let streams: Vec<Shared> = order.iter().map(|c| self.stream(c, None)).collect();
        let mut guards: Vec<MutexGuard<'_, Stream>> = streams.iter().map(|s| lock(s)).collect();
        let positions: Vec<Position> = channels
            .iter()
            .map(|ch| {
                let i = order.binary_search(&ch).expect("every channel is locked");
                Position {
                    channel: ch.clone(),
                    offset: guards[i].top + 1,
                    epoch: guards[i].epoch.clone(),
                }
            })
            .collect();
        let frame = p.frame(&positions);
        let now = crate::wire::protocol::now_ms();
        for (g, ch) in guards.iter_mut().zip(&order) {
            let offset = positions
                .iter()
                .find(|p| &p.channel == *ch)
                .map_or(g.top + 1, |p| p.offset);
            g.push(offset, now, frame.clone(), &self.limits, &self.bytes);
        }
        let r = deliver(frame);
        drop(guards);
        self.shrink();
        (positions, r)
    }

    /// Cluster: applies a message whose position Redis assigned, in Redis order. Keeps it and
    /// calls `deliver` (with the stream locked) unless it is one this node already has (it
    /// came both in a recovery read and over pub/sub). A new epoch resets the stream. Returns
    /// whether it was new here.
    pub fn apply(
        &self,
        position: &Position,
        time_ms: i64,
        frame: Frame,
        deliver: impl FnOnce(&Frame),
    ) -> bool {
        let s = self.stream(&position.channel, Some(&position.epoch));
        {
            let mut g = lock(&s);
            if g.epoch != position.epoch {
                g.reset(position.epoch.clone(), &self.bytes);
            }
            if position.offset <= g.top {
                // This node has it already (a recovery read brought it first), or it is older
                // than what this node delivered.
                return false;
            }
            deliver(&frame);
            g.push(position.offset, time_ms, frame, &self.limits, &self.bytes);
        }
        self.shrink();
        true
    }

    /// Adds a client to `channel` through `join`, with the stream locked: `join` gets the
    /// recovery and the missed frames (in order) and must queue its reply and then those
    /// frames. With `fetched` (cluster mode) the cache is first topped up from Redis.
    pub fn join<R>(
        &self,
        channel: &str,
        since: Option<&Since>,
        fetched: Option<Fetched>,
        join: impl FnOnce(&Recovery, Vec<Frame>) -> R,
    ) -> R {
        let s = self.stream(channel, fetched.as_ref().map(|f| f.epoch.as_str()));
        let r = {
            let mut g = lock(&s);
            if let Some(f) = fetched {
                merge(&mut g, f, &self.limits, &self.bytes);
            }
            g.expire(&self.limits, &self.bytes);
            let (recovered, missed) = match since {
                None => (None, Vec::new()),
                Some(since) => match g.missed(since) {
                    Some(frames) => (Some(true), frames),
                    None => (Some(false), Vec::new()),
                },
            };
            let r = Recovery {
                epoch: g.epoch.clone(),
                offset: g.top,
                recovered,
                missed: missed.len(),
            };
            join(&r, missed)
        };
        self.shrink();
        r
    }

    /// The newest `limit` messages of a channel, oldest first, with the stream's epoch and
    /// newest offset (`None`: no history for it).
    pub fn last(&self, channel: &str, limit: usize) -> Option<(String, u64, Vec<Entry>)> {
        let s = self.existing(channel)?;
        let mut g = lock(&s);
        g.expire(&self.limits, &self.bytes);
        let skip = g.entries.len().saturating_sub(limit);
        Some((
            g.epoch.clone(),
            g.top,
            g.entries.iter().skip(skip).cloned().collect(),
        ))
    }

    /// Frees expired messages in every stream, each locked on its own and briefly; returns
    /// the bytes freed. A stream left empty keeps its epoch and newest offset (a client that
    /// saw its last message still recovers "nothing missed"): it costs a few hundred bytes, and
    /// the channel bound evicts it like any other.
    pub fn sweep(&self) -> usize {
        let before = self.bytes();
        let streams: Vec<Shared> = lock(&self.index)
            .streams
            .values()
            .map(|(s, _)| s.clone())
            .collect();
        for s in streams {
            lock(&s).expire(&self.limits, &self.bytes);
        }
        before.saturating_sub(self.bytes())
    }

    /// Channels with a history here.
    pub fn len(&self) -> usize {
        lock(&self.index).streams.len()
    }

    /// True when no channel has a history here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tops up a cached stream with what Redis returned (Redis is the truth: a different epoch
/// replaces the cache).
fn merge(g: &mut Stream, f: Fetched, limits: &Limits, total: &AtomicUsize) {
    if g.epoch != f.epoch {
        g.reset(f.epoch.clone(), total);
    }
    for (offset, time_ms, frame) in f.entries {
        if g.entries.iter().any(|e| e.offset == offset) {
            continue;
        }
        let at = g.entries.partition_point(|e| e.offset < offset);
        g.insert(at, Entry::new(offset, time_ms, frame), total);
    }
    g.top = g.top.max(f.top);
    while g.entries.len() > limits.size.max(1) * 2 {
        g.pop_front(total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(size: usize) -> Limits {
        Limits {
            size,
            ttl: Duration::from_secs(60),
            max_channels: 3,
            max_bytes: 1 << 20,
        }
    }

    fn text(n: u64) -> Publication {
        Publication::Frame(Frame::text(n.to_string()))
    }

    #[test]
    fn offsets_increase_and_a_seam_loses_nothing() {
        let h = History::new(limits(10));
        let chs = vec!["news".to_string()];
        let ((p1, _), (p2, _)) = (
            h.publish(&chs, &text(1), |_| ()),
            h.publish(&chs, &text(2), |_| ()),
        );
        assert_eq!((p1[0].offset, p2[0].offset), (1, 2));
        assert_eq!(p1[0].epoch, p2[0].epoch);
        let since = Since {
            epoch: p1[0].epoch.clone(),
            offset: 1,
        };
        let (r, frames) = h.join("news", Some(&since), None, |r, f| (r.clone(), f));
        assert_eq!(r.recovered, Some(true));
        assert_eq!(r.offset, 2);
        assert_eq!(frames, vec![Frame::text("2")]);
        // Up to date: recovered, nothing to send.
        let since = Since { offset: 2, ..since };
        let (r, frames) = h.join("news", Some(&since), None, |r, f| (r.clone(), f));
        assert_eq!((r.recovered, frames.len()), (Some(true), 0));
        // Another epoch, or an offset from the future: not recovered.
        let other = Since {
            epoch: "other".into(),
            offset: 1,
        };
        assert_eq!(
            h.join("news", Some(&other), None, |r, _| r.recovered),
            Some(false)
        );
        let ahead = Since { offset: 9, ..since };
        assert_eq!(
            h.join("news", Some(&ahead), None, |r, _| r.recovered),
            Some(false)
        );
    }

    #[test]
    fn a_gap_past_the_window_is_not_recovered() {
        let h = History::new(limits(2));
        let chs = vec!["c".to_string()];
        let epoch = (1..=5)
            .map(|n| h.publish(&chs, &text(n), |_| ()).0[0].epoch.clone())
            .last()
            .unwrap();
        let since = |offset| Since {
            epoch: epoch.clone(),
            offset,
        };
        assert_eq!(
            h.join("c", Some(&since(2)), None, |r, _| r.recovered),
            Some(false)
        );
        let (r, f) = h.join("c", Some(&since(3)), None, |r, f| (r.clone(), f));
        assert_eq!((r.recovered, f.len()), (Some(true), 2));
        let (_, top, last) = h.last("c", 10).unwrap();
        assert_eq!((top, last.len(), last[0].offset), (5, 2, 4));
    }

    #[test]
    fn multi_channel_sends_get_a_position_in_each() {
        let h = History::new(limits(5));
        h.publish(&["b".to_string()], &text(0), |_| ());
        let (pos, delivered) = h.publish(&["b".into(), "a".into()], &text(1), |f| f);
        assert_eq!((pos[0].channel.as_str(), pos[0].offset), ("b", 2));
        assert_eq!((pos[1].channel.as_str(), pos[1].offset), ("a", 1));
        assert_eq!(delivered, Frame::text("1"));
    }

    #[test]
    fn the_stream_published_to_least_recently_is_evicted_at_the_cap() {
        let h = History::new(limits(5));
        for ch in ["a", "b", "c", "d"] {
            h.publish(&[ch.to_string()], &text(1), |_| ());
        }
        assert_eq!(h.len(), 3);
        assert!(h.last("a", 1).is_none());
    }

    #[test]
    fn a_publish_makes_a_stream_recent_again() {
        let h = History::new(limits(5));
        for ch in ["a", "b", "c"] {
            h.publish(&[ch.to_string()], &text(1), |_| ());
        }
        h.publish(&["a".to_string()], &text(2), |_| ());
        h.publish(&["d".to_string()], &text(1), |_| ());
        assert!(h.last("a", 1).is_some(), "a was published to after b");
        assert!(h.last("b", 1).is_none(), "b is the least recent");
        assert_eq!(h.evictions(), 1);
    }

    #[test]
    fn the_byte_budget_evicts_the_least_recent_streams() {
        let h = History::new(Limits {
            max_channels: 100,
            max_bytes: 10_000,
            ..limits(5)
        });
        let big = Publication::Frame(Frame::text("x".repeat(3000)));
        for ch in ["a", "b", "c", "d"] {
            h.publish(&[ch.to_string()], &big, |_| ());
        }
        assert!(h.bytes() <= 10_000, "{} bytes held", h.bytes());
        assert!(h.last("a", 1).is_none());
        assert!(h.last("d", 1).is_some());
        // Eviction gives the bytes back.
        assert_eq!(h.bytes(), h.len() * (3000 + stream::ENTRY_OVERHEAD));
    }

    #[test]
    fn the_sweep_frees_expired_messages_and_keeps_the_position() {
        let h = History::new(Limits {
            ttl: Duration::from_millis(20),
            ..limits(5)
        });
        let (pos, _) = h.publish(&["a".to_string()], &text(1), |_| ());
        assert!(h.bytes() > 0);
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.sweep() > 0);
        assert_eq!(h.bytes(), 0);
        // Nothing was missed since offset 1: still recovered.
        let since = Since {
            epoch: pos[0].epoch.clone(),
            offset: 1,
        };
        assert_eq!(
            h.join("a", Some(&since), None, |r, _| r.recovered),
            Some(true)
        );
    }

    #[test]
    fn the_cluster_cache_skips_what_it_has_and_follows_new_epochs() {
        let h = History::new(limits(5));
        let at = |offset, epoch: &str| Position {
            channel: "c".into(),
            offset,
            epoch: epoch.into(),
        };
        let mut delivered = Vec::new();
        // A recovery read first (offsets 1–2), then pub/sub brings 2 (again) and 3.
        h.join(
            "c",
            None,
            Some(Fetched {
                epoch: "e".into(),
                top: 2,
                entries: vec![(1, 0, Frame::text("1")), (2, 0, Frame::text("2"))],
            }),
            |_, _| (),
        );
        for n in [2, 3] {
            h.apply(&at(n, "e"), 0, Frame::text(n.to_string()), |f| {
                delivered.push(f.clone())
            });
        }
        assert_eq!(delivered, vec![Frame::text("3")]);
        let since = Since {
            epoch: "e".into(),
            offset: 1,
        };
        let (r, f) = h.join("c", Some(&since), None, |r, f| (r.clone(), f));
        assert_eq!((r.recovered, f.len(), r.offset), (Some(true), 2, 3));
        // Redis restarted: a new epoch starts the stream over.
        h.apply(&at(1, "e2"), 0, Frame::text("x"), |f| {
            delivered.push(f.clone())
        });
        assert_eq!(h.last("c", 9).unwrap().0, "e2");
        assert_eq!(
            h.join("c", Some(&since), None, |r, _| r.recovered),
            Some(false)
        );
    }
}
