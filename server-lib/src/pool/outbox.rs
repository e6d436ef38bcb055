//! A client's bounded outbound queue.
//!
//! Every sender (a broadcast, a unicast, the client's own replies) pushes into the queue without
//! waiting; the connection task drains it and writes the frames in one batch, flushing once.
//! A push never blocks and never allocates beyond `capacity` frames: when the queue is full the
//! configured [`SlowPolicy`] decides (drop the frame, or close the client with 1008).
//!
//! The task's waker lives under the queue's lock: a push queues and takes the waker in one
//! critical section, and the task takes a batch or registers in one (an `AtomicWaker` beside
//! the lock cost a second lock and an atomic round per poll, and 8 bytes).

use std::collections::VecDeque;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::base::config::SlowPolicy;
use crate::pool::stream::StreamRx;
use crate::transport::close::Close;
use crate::transport::frame::Frame;

/// One entry of the queue.
pub(crate) enum Item {
    /// A whole message.
    Frame(Frame),
    /// A message streamed in parts: the connection writes its parts, and nothing else, until it
    /// ends.
    Stream(StreamRx),
}

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for delivery.
    Queued,
    /// The queue was full and the policy is to drop: this frame is lost for this client.
    Dropped,
    /// The client is closing (or the queue was full and the policy is to close it).
    Closed,
}

/// One batch handed to the connection task.
pub(crate) enum Batch {
    /// Frames to write, oldest first.
    Frames,
    /// Close the connection with this code and reason (after writing nothing more).
    Close(Close),
}

#[derive(Default)]
struct Inner {
    frames: VecDeque<Item>,
    /// Boxed: set once, at the end (every idle client's handle is 24 bytes smaller).
    close: Option<Box<Close>>,
    /// The connection task, to wake for a push, a close or its alarm (taken by the wake).
    waker: Option<Waker>,
}

/// The top bit of `Outbox::bound`: a full queue drops the frame ([`SlowPolicy::Drop`]).
const DROP_BIT: u32 = 1 << 31;

/// Bounded multi-producer, single-consumer queue of frames for one client.
pub(crate) struct Outbox {
    // A std Mutex: critical sections are a push or a swap, never held across an await, and
    // an idle client costs no allocation (an empty VecDeque allocates nothing). The waker
    // lives under it too (an `AtomicWaker` beside it took 8 bytes more).
    inner: Mutex<Inner>,
    /// At most this many frames (up to 2^31 - 1), and in the top bit the policy when full
    /// ([`DROP_BIT`]: drop; clear: close): with `dropped`, one word for the three (an idle
    /// client's handle fits 128 bytes).
    bound: u32,
    /// Frames dropped (saturating at 4,294,967,295).
    dropped: AtomicU32,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, policy: SlowPolicy) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            bound: u32::try_from(capacity).unwrap_or(u32::MAX).min(!DROP_BIT)
                | match policy {
                    SlowPolicy::Drop => DROP_BIT,
                    SlowPolicy::Close => 0,
                },
            dropped: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue inconsistent (push/swap only).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item without waiting.
    pub(crate) fn push(&self, item: Item) -> Pushed {
        let mut inner = self.lock();
        if inner.close.is_some() {
            return Pushed::Closed;
        }
        let result = if inner.frames.len() < (self.bound & !DROP_BIT) as usize {
            inner.frames.push_back(item);
            Pushed::Queued
        } else if self.bound & DROP_BIT != 0 {
            Pushed::Dropped
        } else {
            inner.frames.clear();
            inner.close = Some(Box::new(Close::slow_consumer()));
            Pushed::Closed
        };
        match result {
            Pushed::Dropped => {
                drop(inner);
                let _ = self
                    .dropped
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
            }
            _ => wake(inner),
        }
        result
    }

    /// Asks the connection to close; frames already queued are discarded. The first request wins.
    pub(crate) fn close(&self, close: Close) {
        let mut inner = self.lock();
        if inner.close.is_none() {
            inner.frames.clear();
            inner.close = Some(Box::new(close));
        }
        wake(inner);
    }

    /// Gives back the spare buffer a burst left, when nothing is queued (called when the
    /// connection has been quiet for a while: a busy one keeps it, to reuse).
    pub(crate) fn shrink_idle(&self) {
        let mut inner = self.lock();
        if inner.frames.is_empty() && inner.frames.capacity() > 0 {
            inner.frames = VecDeque::new();
        }
    }

    /// Registers the connection task to be woken by the next push, close or alarm (each wake
    /// uses the registration up).
    pub(crate) fn register(&self, waker: &Waker) {
        set(&mut self.lock().waker, waker);
    }

    /// Wakes the connection task (its alarm rang).
    pub(crate) fn wake(&self) {
        wake(self.lock());
    }

    /// Frames dropped for this client under [`SlowPolicy::Drop`].
    pub(crate) fn dropped(&self) -> u64 {
        u64::from(self.dropped.load(Ordering::Relaxed))
    }

    /// Waits until there is something to do, then moves every queued frame into `out`.
    #[cfg(test)]
    pub(crate) async fn next(&self, out: &mut VecDeque<Item>) -> Batch {
        std::future::poll_fn(|cx| self.poll_next(cx, out)).await
    }

    /// Moves every queued frame into `out` (or says to close), and registers `cx` to be woken
    /// by the next push either way: a task that writes the batch it took needs no second look
    /// to learn that nothing came meanwhile (one lock per wake, not two).
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>, out: &mut VecDeque<Item>) -> Poll<Batch> {
        let mut inner = self.lock();
        if let Some(close) = &inner.close {
            return Poll::Ready(Batch::Close(Close::clone(close)));
        }
        set(&mut inner.waker, cx.waker());
        if inner.frames.is_empty() {
            return Poll::Pending;
        }
        // Swap buffers: the queue keeps the (empty) spare allocation, the writer gets the frames.
        std::mem::swap(&mut inner.frames, out);
        Poll::Ready(Batch::Frames)
    }
}

/// Stores `waker` unless the one stored already wakes the same task.
fn set(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// Takes the task's waker and wakes it once the lock is released.
fn wake(mut inner: MutexGuard<'_, Inner>) {
    let waker = inner.waker.take();
    drop(inner);
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Item {
        Item::Frame(Frame::text(s))
    }

    #[tokio::test]
    async fn full_queue_drops_under_drop_policy() {
        let outbox = Outbox::new(2, SlowPolicy::Drop);
        assert_eq!(outbox.push(t("a")), Pushed::Queued);
        assert_eq!(outbox.push(t("b")), Pushed::Queued);
        assert_eq!(outbox.push(t("c")), Pushed::Dropped);
        assert_eq!(outbox.dropped(), 1);
        let mut out = VecDeque::new();
        assert!(matches!(outbox.next(&mut out).await, Batch::Frames));
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn full_queue_closes_under_close_policy() {
        let outbox = Outbox::new(1, SlowPolicy::Close);
        assert_eq!(outbox.push(t("a")), Pushed::Queued);
        assert_eq!(outbox.push(t("b")), Pushed::Closed);
        assert_eq!(outbox.push(t("c")), Pushed::Closed);
        let mut out = VecDeque::new();
        match outbox.next(&mut out).await {
            Batch::Close(c) => assert_eq!(c.code, 1008),
            Batch::Frames => panic!("expected a close"),
        }
    }

    #[test]
    fn a_push_after_a_poll_wakes_the_task_once() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let outbox = Outbox::new(4, SlowPolicy::Drop);
        let mut out = VecDeque::new();
        assert!(outbox.poll_next(&mut cx, &mut out).is_pending());
        assert_eq!(outbox.push(t("a")), Pushed::Queued);
        assert_eq!(outbox.push(t("b")), Pushed::Queued);
        // The first push used the registration up; the second found none.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        assert_eq!(out.len(), 2);
        // Taking a batch registered the task: the next push wakes it with no second poll.
        out.clear();
        assert_eq!(outbox.push(t("c")), Pushed::Queued);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        assert_eq!(out.len(), 1);
        // A ring (the alarm) wakes a registered task too.
        out.clear();
        assert!(outbox.poll_next(&mut cx, &mut out).is_pending());
        outbox.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
    }
}
